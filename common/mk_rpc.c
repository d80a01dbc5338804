/*
 * mk_rpc.c - NNG request/reply server and client (see mk_rpc.h).
 *
 * The server runs one thread per context rather than NNG callbacks, because
 * handlers block (Postgres, model calls, sandboxes) and must not tie up
 * NNG's own task threads. The client tracks whether a pipe is up, so a call
 * to a peer that is down fails quickly as `unavailable` instead of waiting
 * out its whole deadline.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "mk_json.h"
#include "mk_log.h"
#include "mk_rpc.h"
#include "mk_rpc_metrics.h"
#include "mk_time.h"

/* ------------------------------------------------------------------ server */

/*
 * Worker states, guarded by the server's mutex. The shutdown rule: no NNG
 * operation on a context starts once `closing` is set, because starting
 * one on a socket being closed is not safe; a worker checks the flag under
 * the mutex before each recv and send.
 */
enum { W_IDLE, W_RECV, W_BUSY, W_SEND, W_DONE };

typedef struct {
	struct mk_rpc_server *s;
	pthread_t th;
	nng_ctx ctx;
	nng_aio *aio;
	int state;
	int joined;
} worker;

struct mk_rpc_server {
	mk_rpc_server_opts o;
	mk_seal_key key;
	char *service, *url;
	nng_socket sock;
	int nworkers;
	worker *w;
	int64_t started_ms;
	atomic_int stopping; /* no new requests */
	int closing;         /* no new NNG operations (guarded by mu) */
	int stopped;
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled on every state change */
	int busy;          /* workers in W_BUSY or W_SEND */
};

char *mk_rpc_dispatch(const mk_rpc_server_opts *o, int64_t started_ms, int stopping,
                      const char *data, size_t len)
{
	char err[512] = "";
	cJSON *reply = NULL;
	mk_env env;
	mk_err e;
	char *out;
	int64_t t0 = mk_mono_ms();
	double t0s = mk_rpc_metrics_now();

	mk_rpc_metrics_init_server();
	e = mk_env_decode(data, len, mk_now_ms(), &env, err, sizeof(err));
	if (e != MK_OK) {
		MK_WARN("RPC-REJECT", env.rid, "%s: %s", mk_err_code(e), err);
		mk_rpc_metrics_served(MK_OP__COUNT, e, mk_rpc_metrics_now() - t0s);
		return mk_env_encode_error(env.rid, e, err);
	}
	if (env.op == MK_OP_SYS_PING) {
		reply = cJSON_CreateObject();
		if (reply) {
			cJSON_AddStringToObject(reply, "service", o->service);
			cJSON_AddNumberToObject(reply, "pid", getpid());
			cJSON_AddNumberToObject(reply, "uptime_ms",
			                        (double)(mk_mono_ms() - started_ms));
			if (o->ping)
				o->ping(o->ping_ud, reply);
		}
	} else if (strcmp(mk_op_owner(env.op), "*") != 0 &&
	           strcmp(mk_op_owner(env.op), o->service) != 0) {
		e = MK_E_UNKNOWN_OP;
		snprintf(err, sizeof(err), "operation '%s' is not served by '%s'",
		         mk_op_name(env.op), o->service);
	} else if (stopping) {
		e = MK_E_SHUTTING_DOWN;
	} else {
		e = o->handler(o->ud, &env, &reply, err, sizeof(err));
	}
	if (e == MK_OK) {
		out = mk_env_encode_reply(env.rid, reply);
	} else {
		if (mk_err_status(e) >= 500)
			MK_WARN("RPC-FAIL", env.rid, "%s: %s: %s", mk_op_name(env.op),
			        mk_err_code(e), err[0] ? err : mk_err_message(e));
		/* Internal and database details stay in the log, not in the reply. */
		if (e == MK_E_DB || e == MK_E_INTERNAL)
			err[0] = '\0';
		out = mk_env_encode_error_ex(env.rid, e, err, reply);
	}
	mk_rpc_metrics_served(env.op, e, mk_rpc_metrics_now() - t0s);
	MK_DEBUG("RPC-DONE", env.rid, "%s %s in %lld ms", mk_op_name(env.op), mk_err_code(e),
	         (long long)(mk_mono_ms() - t0));
	cJSON_Delete(reply);
	mk_env_release(&env);
	return out;
}

/* Move w to state st; returns 0, or -1 (state left alone) when the move
 * would start an NNG operation after closing began. */
static int set_state(worker *w, int st)
{
	mk_rpc_server *s = w->s;
	int was_busy, is_busy;

	pthread_mutex_lock(&s->mu);
	if ((st == W_RECV && atomic_load(&s->stopping)) || (st == W_SEND && s->closing)) {
		pthread_mutex_unlock(&s->mu);
		return -1;
	}
	was_busy = w->state == W_BUSY || w->state == W_SEND;
	is_busy = st == W_BUSY || st == W_SEND;
	s->busy += is_busy - was_busy;
	if (is_busy != was_busy)
		mk_rpc_metrics_busy(s->busy);
	w->state = st;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	mk_rpc_server *s = w->s;

	while (set_state(w, W_RECV) == 0) {
		nng_msg *m;
		char *out;
		int rv;

		nng_ctx_recv(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		rv = nng_aio_result(w->aio);
		if (rv != 0) {
			if (rv == NNG_ECLOSED || atomic_load(&s->stopping))
				break;
			continue;
		}
		m = nng_aio_get_msg(w->aio);
		set_state(w, W_BUSY);
		if (mk_seal_open(&s->key, MK_SEAL_REQUEST, m) != 0) {
			mk_seal_refused(s->o.service);
			out = NULL;
			nng_msg_clear(m);
			rv = nng_msg_append(m, MK_SEAL_REFUSAL, strlen(MK_SEAL_REFUSAL));
		} else {
			out = mk_rpc_dispatch(&s->o, s->started_ms, atomic_load(&s->stopping),
			                      nng_msg_body(m), nng_msg_len(m));
			nng_msg_clear(m);
			rv = !out || nng_msg_append(m, out, strlen(out)) != 0 ||
			     mk_seal_msg(&s->key, MK_SEAL_REPLY, m) != 0;
		}
		if (rv != 0 || set_state(w, W_SEND) != 0) {
			nng_msg_free(m);
			free(out);
			continue; /* the next set_state(W_RECV) ends the loop when stopping */
		}
		free(out);
		nng_aio_set_msg(w->aio, m);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0)
			nng_msg_free(m);
		set_state(w, W_IDLE);
	}
	set_state(w, W_DONE);
	return NULL;
}

int mk_rpc_server_start(const mk_rpc_server_opts *opts, mk_rpc_server **out, char *err,
                        size_t errlen)
{
	mk_rpc_server *s;
	int rv, i;

	s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	s->o = *opts;
	mk_rpc_metrics_init_server();
	s->key = *opts->key;
	s->o.key = &s->key;
	s->service = strdup(opts->service);
	s->url = strdup(opts->url);
	s->o.service = s->service;
	s->o.url = s->url;
	s->nworkers = opts->workers > 0 ? opts->workers : 8;
	s->started_ms = mk_mono_ms();
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	s->w = calloc((size_t)s->nworkers, sizeof(worker));
	if (!s->service || !s->url || !s->w) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rv = nng_rep0_open(&s->sock)) != 0) {
		snprintf(err, errlen, "cannot open socket: %s", nng_strerror(rv));
		goto fail;
	}
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ,
	                    (opts->max_msg ? opts->max_msg : 1 << 20) + MK_SEAL_LEN);
	if ((rv = nng_listen(s->sock, s->url, NULL, 0)) != 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", s->url, nng_strerror(rv));
		goto fail_sock;
	}
	for (i = 0; i < s->nworkers; i++) {
		worker *w = &s->w[i];

		w->s = s;
		if (nng_ctx_open(&w->ctx, s->sock) != 0 ||
		    nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
		    pthread_create(&w->th, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "cannot start worker %d", i);
			/* Workers already running exit when the socket closes. */
			atomic_store(&s->stopping, 1);
			nng_close(s->sock);
			while (--i >= 0)
				pthread_join(s->w[i].th, NULL);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail_sock:
	nng_close(s->sock);
fail:
	for (i = 0; s->w && i < s->nworkers; i++)
		if (s->w[i].aio)
			nng_aio_free(s->w[i].aio);
	free(s->w);
	free(s->service);
	free(s->url);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
	return -1;
}

int mk_rpc_server_stop(mk_rpc_server *s, int grace_ms)
{
	struct timespec until;
	int i, left = 0, sending;

	if (s->stopped)
		return 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += grace_ms / 1000;
	until.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->mu);
	atomic_store(&s->stopping, 1);
	/* Idle workers stop waiting for requests; busy ones finish theirs. */
	for (i = 0; i < s->nworkers; i++)
		if (s->w[i].state == W_RECV)
			nng_aio_cancel(s->w[i].aio);
	while (s->busy > 0 && pthread_cond_timedwait(&s->cv, &s->mu, &until) != ETIMEDOUT)
		;
	s->closing = 1;
	/* Replies already being sent are short; let them go out before closing. */
	for (;;) {
		sending = 0;
		for (i = 0; i < s->nworkers; i++)
			sending += s->w[i].state == W_SEND;
		if (!sending)
			break;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	for (i = 0; i < s->nworkers; i++)
		left += s->w[i].state == W_BUSY;
	pthread_mutex_unlock(&s->mu);
	nng_close(s->sock);
	/* Join every worker not still inside a handler; free joins the rest. */
	for (i = 0; i < s->nworkers; i++) {
		int abandoned;

		pthread_mutex_lock(&s->mu);
		abandoned = s->w[i].state == W_BUSY;
		pthread_mutex_unlock(&s->mu);
		if (!abandoned) {
			pthread_join(s->w[i].th, NULL);
			s->w[i].joined = 1;
		}
	}
	s->stopped = 1;
	return left;
}

void mk_rpc_server_free(mk_rpc_server *s)
{
	int i;

	if (!s)
		return;
	mk_rpc_server_stop(s, 0);
	for (i = 0; i < s->nworkers; i++) {
		if (!s->w[i].joined)
			pthread_join(s->w[i].th, NULL);
		nng_aio_free(s->w[i].aio);
	}
	free(s->w);
	free(s->service);
	free(s->url);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s);
}

/* ------------------------------------------------------------------ client */

#define DIAL_MAX 64 /* addresses of one service dialled at once */

typedef struct {
	char url[320];
	nng_dialer d;
} dial;

struct mk_rpc_client {
	nng_socket sock;
	mk_seal_key key;
	char *url;
	atomic_int pipes; /* connected pipes; 0 means the peer is down */
	int target;       /* its label in mark_rpc_client_connections */
	/* tcp://NAME:PORT: every address NAME resolves to is dialled, and kept so */
	char host[256], port[16];
	mk_rpc_resolver resolve;
	void *resolve_ud;
	long long refresh_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop, threaded;
	pthread_t th;
	dial dials[DIAL_MAX];
	int ndials;
	nng_dialer by_name; /* the name itself, while it resolves to nothing */
	int has_by_name;
};

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	mk_rpc_client *c = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		atomic_fetch_add(&c->pipes, 1);
		mk_rpc_metrics_connections(c->target, 1);
	} else if (ev == NNG_PIPE_EV_REM_POST) {
		atomic_fetch_sub(&c->pipes, 1);
		mk_rpc_metrics_connections(c->target, -1);
	}
}

int mk_rpc_resolve_dns(void *ud, const char *host, char addrs[][MK_RPC_ADDR_MAX], int max)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *a;
	int n = 0;

	(void)ud;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -1;
	for (a = res; a && n < max; a = a->ai_next) {
		char text[MK_RPC_ADDR_MAX];
		const void *in =
		    a->ai_family == AF_INET
		        ? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
		        : (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		int dup = 0;

		if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
		    !inet_ntop(a->ai_family, in, text, sizeof(text)))
			continue;
		for (int i = 0; i < n; i++)
			dup |= strcmp(addrs[i], text) == 0;
		if (!dup)
			snprintf(addrs[n++], MK_RPC_ADDR_MAX, "%s", text);
	}
	freeaddrinfo(res);
	return n;
}

/* Dial what the name resolves to now; drop what it no longer does. Under c->mu. */
static void redial(mk_rpc_client *c)
{
	char addrs[DIAL_MAX][MK_RPC_ADDR_MAX], url[320];
	int n = c->resolve(c->resolve_ud, c->host, addrs, DIAL_MAX), i, j;

	if (n <= 0) {
		/* Nothing (yet): NNG dials the name itself and keeps trying. */
		if (c->ndials == 0 && !c->has_by_name &&
		    nng_dial(c->sock, c->url, &c->by_name, NNG_FLAG_NONBLOCK) == 0)
			c->has_by_name = 1;
		return;
	}
	for (i = 0; i < c->ndials;) {
		for (j = 0; j < n; j++) {
			snprintf(url, sizeof(url),
			         strchr(addrs[j], ':') ? "tcp://[%s]:%s" : "tcp://%s:%s", addrs[j],
			         c->port);
			if (strcmp(url, c->dials[i].url) == 0)
				break;
		}
		if (j < n) {
			i++;
			continue;
		}
		MK_INFO("RPC-PEER-GONE", NULL, "%s no longer resolves to %s", c->url,
		        c->dials[i].url);
		nng_dialer_close(c->dials[i].d);
		c->dials[i] = c->dials[--c->ndials];
	}
	for (j = 0; j < n && c->ndials < DIAL_MAX; j++) {
		snprintf(url, sizeof(url), strchr(addrs[j], ':') ? "tcp://[%s]:%s" : "tcp://%s:%s",
		         addrs[j], c->port);
		for (i = 0; i < c->ndials && strcmp(c->dials[i].url, url) != 0; i++)
			;
		if (i < c->ndials)
			continue;
		if (nng_dial(c->sock, url, &c->dials[c->ndials].d, NNG_FLAG_NONBLOCK) != 0)
			continue;
		snprintf(c->dials[c->ndials++].url, sizeof(c->dials[0].url), "%s", url);
		MK_DEBUG("RPC-PEER", NULL, "%s: dialling %s", c->url, url);
	}
	if (c->has_by_name && c->ndials > 0) {
		nng_dialer_close(c->by_name);
		c->has_by_name = 0;
	}
}

static void *refresh_main(void *arg)
{
	mk_rpc_client *c = arg;

	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += (time_t)(c->refresh_ms / 1000);
		until.tv_nsec += (long)(c->refresh_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cv, &c->mu, &until);
		if (!c->stop)
			redial(c);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* "tcp://NAME:PORT" with NAME not an address: *c gets the parts; 1, else 0. */
static int named_tcp(mk_rpc_client *c, const char *url)
{
	const char *h = url + 6, *colon = strrchr(url, ':');
	struct in_addr a4;

	if (strncmp(url, "tcp://", 6) != 0 || *h == '[' || !colon || colon <= h ||
	    (size_t)(colon - h) >= sizeof(c->host) || strlen(colon + 1) >= sizeof(c->port))
		return 0;
	snprintf(c->host, sizeof(c->host), "%.*s", (int)(colon - h), h);
	snprintf(c->port, sizeof(c->port), "%s", colon + 1);
	return inet_pton(AF_INET, c->host, &a4) != 1 && strcmp(c->host, "*") != 0;
}

mk_rpc_client *mk_rpc_client_new(const char *url, size_t max_msg, const mk_seal_key *key, char *err,
                                 size_t errlen)
{
	return mk_rpc_client_new_resolving(url, max_msg, key, NULL, NULL, 0, err, errlen);
}

mk_rpc_client *mk_rpc_client_new_resolving(const char *url, size_t max_msg, const mk_seal_key *key,
                                           mk_rpc_resolver resolve, void *ud, long long refresh_ms,
                                           char *err, size_t errlen)
{
	mk_rpc_client *c = calloc(1, sizeof(*c));
	int rv;

	if (!c || !(c->url = strdup(url))) {
		snprintf(err, errlen, "out of memory");
		free(c);
		return NULL;
	}
	c->key = *key;
	mk_rpc_metrics_init_client();
	c->target = mk_rpc_metrics_target(url);
	c->resolve = resolve ? resolve : mk_rpc_resolve_dns;
	c->resolve_ud = ud;
	c->refresh_ms = refresh_ms > 0 ? refresh_ms : MK_RPC_REFRESH_MS;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	if ((rv = nng_req0_open(&c->sock)) != 0) {
		snprintf(err, errlen, "cannot open socket: %s", nng_strerror(rv));
		goto fail;
	}
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ,
	                    (max_msg ? max_msg : 16 << 20) + MK_SEAL_LEN);
	/* A request is sent once; the deadline, not NNG, decides when to give up. */
	nng_socket_set_ms(c->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 50);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_event, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_event, c);
	if (named_tcp(c, url)) {
		/* Every replica behind the name (a headless Service, a scaled compose service). */
		pthread_mutex_lock(&c->mu);
		redial(c);
		pthread_mutex_unlock(&c->mu);
		if (pthread_create(&c->th, NULL, refresh_main, c) != 0) {
			snprintf(err, errlen, "cannot start the resolver of '%s'", url);
			nng_close(c->sock);
			goto fail;
		}
		c->threaded = 1;
	} else if ((rv = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		snprintf(err, errlen, "cannot dial '%s': %s", url, nng_strerror(rv));
		nng_close(c->sock);
		goto fail;
	}
	return c;
fail:
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->url);
	free(c);
	return NULL;
}

void mk_rpc_client_free(mk_rpc_client *c)
{
	if (!c)
		return;
	if (c->threaded) {
		pthread_mutex_lock(&c->mu);
		c->stop = 1;
		pthread_cond_signal(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->th, NULL);
	}
	nng_close(c->sock);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c->url);
	free(c);
}

int mk_rpc_client_peers(const mk_rpc_client *c)
{
	return atomic_load(&((mk_rpc_client *)c)->pipes);
}

const char *mk_rpc_client_url(const mk_rpc_client *c)
{
	return c->url;
}

void mk_rpc_result_release(mk_rpc_result *res)
{
	cJSON_Delete(res->root);
	if (res->nmsg)
		nng_msg_free(res->nmsg);
	res->root = NULL;
	res->body = NULL;
	res->error = NULL;
	res->raw_body = NULL;
	res->nmsg = NULL;
}

static mk_err result_fail(mk_rpc_result *res, mk_err e, const char *fmt, const char *a)
{
	res->err = e;
	snprintf(res->msg, sizeof(res->msg), fmt, a);
	return e;
}

/*
 * Read a reply into res. The peer is one of our services, so its JSON is
 * trusted to be well-formed: a plain parse, no input checks. With raw set,
 * an ok reply's body is located by its fixed prefix and not parsed.
 */
static mk_err read_reply(mk_rpc_result *res, const char *data, size_t len, const char *url,
                         const char *rid, int raw)
{
	char prefix[MK_RID_MAX + 64];
	const cJSON *er;
	const char *msg;
	int ok, n;

	n = snprintf(prefix, sizeof(prefix), MK_REPLY_PREFIX_FMT, rid);
	if (raw && n > 0 && len > (size_t)n && memcmp(data, prefix, (size_t)n) == 0 &&
	    data[len - 1] == '}') {
		res->raw_body = data + n;
		res->raw_len = len - (size_t)n - 1;
		res->err = MK_OK;
		return MK_OK;
	}
	res->root = cJSON_ParseWithLength(data, len);
	if (!res->root || mk_json_bool(res->root, "ok", &ok) != 0)
		return result_fail(res, MK_E_INTERNAL, "malformed reply from '%s'", url);
	if (ok) {
		res->body = cJSON_GetObjectItemCaseSensitive(res->root, "body");
		res->err = MK_OK;
		return MK_OK;
	}
	er = cJSON_GetObjectItemCaseSensitive(res->root, "error");
	res->error = er;
	res->err = mk_err_from_code(mk_json_str(er, "code"));
	msg = mk_json_str(er, "message");
	snprintf(res->msg, sizeof(res->msg), "%s", msg ? msg : mk_err_message(res->err));
	return res->err;
}

static mk_err call(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                   const cJSON *body, int timeout_ms, mk_rpc_result *res, int raw)
{
	int64_t start = mk_mono_ms(), waited;
	nng_aio *aio = NULL;
	nng_msg *m = NULL;
	nng_ctx ctx;
	char *req;
	int rv;
	mk_err e;

	memset(res, 0, sizeof(*res));
	/* A peer that is down (or restarting) gets a short chance to come back. */
	while (atomic_load(&c->pipes) <= 0) {
		waited = mk_mono_ms() - start;
		if (waited >= timeout_ms || waited >= 1000)
			return result_fail(res, MK_E_UNAVAILABLE, "no connection to '%s'", c->url);
		mk_sleep_ms(10);
	}
	timeout_ms -= (int)(mk_mono_ms() - start);
	if (timeout_ms <= 0)
		return result_fail(res, MK_E_DEADLINE, "deadline passed before calling '%s'",
		                   c->url);
	req = mk_env_encode_request(op, rid, mk_now_ms() + timeout_ms, caller, body);
	if (!req)
		return result_fail(res, MK_E_INTERNAL, "out of memory calling '%s'", c->url);
	if (nng_ctx_open(&ctx, c->sock) != 0) {
		free(req);
		return result_fail(res, MK_E_INTERNAL, "cannot open a context for '%s'", c->url);
	}
	if (nng_aio_alloc(&aio, NULL, NULL) != 0 || nng_msg_alloc(&m, 0) != 0 ||
	    nng_msg_append(m, req, strlen(req)) != 0 ||
	    mk_seal_msg(&c->key, MK_SEAL_REQUEST, m) != 0) {
		e = result_fail(res, MK_E_INTERNAL, "out of memory calling '%s'", c->url);
		goto out;
	}
	nng_aio_set_timeout(aio, timeout_ms);
	nng_aio_set_msg(aio, m);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		e = result_fail(res, rv == NNG_ETIMEDOUT ? MK_E_DEADLINE : MK_E_UNAVAILABLE,
		                "cannot send to '%s'", c->url);
		goto out; /* m still ours */
	}
	m = NULL; /* sent: owned by NNG now */
	timeout_ms -= (int)(mk_mono_ms() - start);
	nng_aio_set_timeout(aio, timeout_ms > 0 ? timeout_ms : 1);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if ((rv = nng_aio_result(aio)) != 0) {
		if (rv == NNG_ETIMEDOUT)
			e = result_fail(
			    res, atomic_load(&c->pipes) > 0 ? MK_E_DEADLINE : MK_E_UNAVAILABLE,
			    "no reply from '%s' before the deadline", c->url);
		else
			e = result_fail(res, MK_E_UNAVAILABLE, "lost connection to '%s'", c->url);
		goto out;
	}
	m = nng_aio_get_msg(aio);
	if (mk_seal_open(&c->key, MK_SEAL_REPLY, m) != 0) {
		e = result_fail(res, MK_E_INTERNAL,
		                mk_seal_is_refusal(nng_msg_body(m), nng_msg_len(m))
		                    ? "'%s' refused the request: its bus key differs from this "
		                      "service's"
		                    : "the reply from '%s' is not sealed with the bus key",
		                c->url);
		MK_WARN("RPC-SEAL", rid, "%s", res->msg);
		goto out;
	}
	e = read_reply(res, nng_msg_body(m), nng_msg_len(m), c->url, rid, raw);
	res->nmsg = m; /* raw_body points into it */
	m = NULL;
out:
	if (m)
		nng_msg_free(m);
	nng_aio_free(aio);
	nng_ctx_close(ctx);
	free(req);
	return e;
}

/* A call, counted by op and outcome in the metrics. */
static mk_err timed_call(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                         const cJSON *body, int timeout_ms, mk_rpc_result *res, int raw)
{
	double t0 = mk_rpc_metrics_now();
	mk_err e = call(c, op, rid, caller, body, timeout_ms, res, raw);

	mk_rpc_metrics_called(op, e, mk_rpc_metrics_now() - t0);
	return e;
}

mk_err mk_rpc_call(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                   const cJSON *body, int timeout_ms, mk_rpc_result *res)
{
	return timed_call(c, op, rid, caller, body, timeout_ms, res, 0);
}

mk_err mk_rpc_call_raw(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                       const cJSON *body, int timeout_ms, mk_rpc_result *res)
{
	return timed_call(c, op, rid, caller, body, timeout_ms, res, 1);
}
