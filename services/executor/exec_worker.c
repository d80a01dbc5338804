/*
 * exec_worker.c - a worker's link to the router: it dials the router and
 * keeps `concurrency` polls in flight, each on its own req0 context. A poll
 * is answered with a job (a request, handled here by mk_rpc_dispatch like
 * any server would) or with nothing; the job's reply travels as the next
 * poll. On (re)connecting, the first poll is a hello naming the chats this
 * worker holds, so a restarted router routes them back here. On stop, a
 * goodbye makes the router send no more work, and requests in hand finish
 * within the grace. The lines are documented in proto/PROTOCOL.md.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "executor.h"
#include "mk_buf.h"
#include "mk_log.h"
#include "mk_time.h"

struct exec_link {
	nng_socket sock;
	char id[65];
	mk_rpc_server_opts opts;
	mk_seal_key key;
	exec_link_state st;
	long long wait_ms; /* a poll unanswered this long is sent again */
	int n;
	pthread_t *th;
	atomic_int hello;    /* the next poll says hello */
	atomic_int stopping; /* said goodbye: finish what is in hand, then end */
	int running;         /* threads still in their loop (guarded by mu) */
	pthread_mutex_t mu;
	int64_t started_ms;
};

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	exec_link *l = arg;

	(void)p;
	if (ev == NNG_PIPE_EV_ADD_POST) {
		MK_INFO("EXEC-LINK-UP", NULL, "worker '%s' connected to the router", l->id);
		atomic_store(&l->hello, 1);
	}
}

/* The next message to the router: a job's reply (takes *reply), a hello or a poll. */
static nng_msg *next_message(exec_link *l, char **reply, unsigned long long job)
{
	nng_msg *m;
	char line[160];
	int sessions = l->st.sessions ? l->st.sessions(l->st.ud) : 0;
	int rv;

	if (nng_msg_alloc(&m, 0) != 0)
		return NULL;
	if (*reply) {
		snprintf(line, sizeof(line), "MKW1 R %s %d %llu\n", l->id, sessions, job);
		rv = nng_msg_append(m, line, strlen(line));
		if (rv == 0)
			rv = nng_msg_append(m, *reply, strlen(*reply));
		free(*reply);
		*reply = NULL;
	} else if (atomic_exchange(&l->hello, 0)) {
		cJSON *chats = cJSON_CreateArray();
		const cJSON *c;

		snprintf(line, sizeof(line), "MKW1 H %s %d %s\n", l->id, sessions,
		         l->st.isolation && *l->st.isolation ? l->st.isolation : "unknown");
		rv = nng_msg_append(m, line, strlen(line));
		if (chats && l->st.chats)
			l->st.chats(l->st.ud, chats);
		cJSON_ArrayForEach(c, chats)
		{
			if (rv == 0 && cJSON_IsString(c))
				rv = nng_msg_append(m, c->valuestring, strlen(c->valuestring));
			if (rv == 0)
				rv = nng_msg_append(m, "\n", 1);
		}
		cJSON_Delete(chats);
	} else {
		snprintf(line, sizeof(line), "MKW1 P %s %d\n", l->id, sessions);
		rv = nng_msg_append(m, line, strlen(line));
	}
	if (rv != 0) {
		nng_msg_free(m);
		return NULL;
	}
	return m;
}

/*
 * Seal m, send it and wait for the answer; returns it, or NULL (m is freed
 * either way). An answer that is not sealed with the bus key is dropped:
 * *refused is then set (the router may have another key, or may not be
 * Mark's router at all).
 */
static nng_msg *exchange(const exec_link *l, nng_ctx ctx, nng_aio *aio, nng_msg *m,
                         long long wait_ms, int *refused)
{
	nng_msg *in;

	*refused = 0;
	if (mk_seal_msg(&l->key, MK_SEAL_WORKER, m) != 0) {
		nng_msg_free(m);
		return NULL;
	}
	nng_aio_set_msg(aio, m);
	nng_aio_set_timeout(aio, (nng_duration)wait_ms);
	nng_ctx_send(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0) {
		nng_msg_free(m);
		return NULL;
	}
	nng_aio_set_timeout(aio, (nng_duration)wait_ms);
	nng_ctx_recv(ctx, aio);
	nng_aio_wait(aio);
	if (nng_aio_result(aio) != 0)
		return NULL;
	in = nng_aio_get_msg(aio);
	if (mk_seal_open(&l->key, MK_SEAL_ROUTER, in) != 0) {
		if (mk_seal_is_refusal(nng_msg_body(in), nng_msg_len(in)))
			MK_WARN("EXEC-LINK-REFUSED", NULL,
			        "the router refused worker '%s': its bus key differs", l->id);
		else
			mk_seal_refused("an executor worker");
		nng_msg_free(in);
		*refused = 1;
		return NULL;
	}
	return in;
}

static void *link_main(void *arg)
{
	exec_link *l = arg;
	nng_ctx ctx;
	nng_aio *aio = NULL;
	char *reply = NULL;
	unsigned long long job = 0;
	int refused;

	if (nng_ctx_open(&ctx, l->sock) != 0 || nng_aio_alloc(&aio, NULL, NULL) != 0)
		goto out;
	nng_ctx_set_ms(ctx, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	for (;;) {
		nng_msg *m, *in;
		const char *body;
		size_t len;

		if (atomic_load(&l->stopping) && !reply)
			break;
		m = next_message(l, &reply, job);
		if (!m) {
			mk_sleep_ms(100);
			continue;
		}
		in = exchange(l, ctx, aio, m, l->wait_ms, &refused);
		if (!in) {
			if (nng_aio_result(aio) == NNG_ECLOSED)
				break;
			if (refused) /* no work from a router without our key: wait, then retry */
				mk_sleep_ms(1000);
			continue; /* unanswered: poll again (the router may have restarted) */
		}
		body = nng_msg_body(in);
		len = nng_msg_len(in);
		if (len >= 1 && body[0] == 'H') /* the router does not know our chats yet */
			atomic_store(&l->hello, 1);
		if (len > 2 && body[0] == 'J' && body[1] == ' ') {
			const char *nl = memchr(body, '\n', len < 64 ? len : 64);

			if (nl && sscanf(body + 2, "%llu", &job) == 1)
				reply = mk_rpc_dispatch(&l->opts, l->started_ms, 0, nl + 1,
				                        len - (size_t)(nl + 1 - body));
		}
		nng_msg_free(in);
	}
	free(reply);
out:
	if (aio)
		nng_aio_free(aio);
	pthread_mutex_lock(&l->mu);
	l->running--;
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

int exec_link_start(const char *router_url, const char *worker_id, int concurrency,
                    long long poll_ms, const mk_rpc_server_opts *opts, const exec_link_state *st,
                    exec_link **out, char *err, size_t errlen)
{
	exec_link *l = calloc(1, sizeof(*l));
	int rv, i;

	if (!l || !(l->th = calloc((size_t)concurrency, sizeof(pthread_t)))) {
		free(l);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(l->id, sizeof(l->id), "%s", worker_id);
	l->opts = *opts;
	l->key = *opts->key;
	l->opts.key = &l->key;
	l->st = *st;
	l->wait_ms = poll_ms * 3 + 5000;
	l->started_ms = mk_mono_ms();
	pthread_mutex_init(&l->mu, NULL);
	if ((rv = nng_req0_open(&l->sock)) != 0) {
		mk_errf(err, errlen, "cannot open socket: %s", nng_strerror(rv));
		goto fail;
	}
	nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, opts->max_msg + 4096);
	nng_socket_set_ms(l->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	nng_socket_set_ms(l->sock, NNG_OPT_RECONNMINT, 100);
	nng_socket_set_ms(l->sock, NNG_OPT_RECONNMAXT, 2000);
	nng_pipe_notify(l->sock, NNG_PIPE_EV_ADD_POST, pipe_event, l);
	if ((rv = nng_dial(l->sock, router_url, NULL, NNG_FLAG_NONBLOCK)) != 0) {
		mk_errf(err, errlen, "cannot dial '%s': %s", router_url, nng_strerror(rv));
		nng_close(l->sock);
		goto fail;
	}
	for (i = 0; i < concurrency; i++) {
		pthread_mutex_lock(&l->mu);
		l->running++;
		pthread_mutex_unlock(&l->mu);
		pthread_create(&l->th[l->n++], NULL, link_main, l);
	}
	MK_INFO("EXEC-LINK", NULL, "worker '%s' serving %d at once via %s", l->id, concurrency,
	        router_url);
	*out = l;
	return 0;
fail:
	free(l->th);
	free(l);
	return -1;
}

static int running(exec_link *l)
{
	int n;

	pthread_mutex_lock(&l->mu);
	n = l->running;
	pthread_mutex_unlock(&l->mu);
	return n;
}

int exec_link_free(exec_link *l, int grace_ms)
{
	nng_ctx ctx;
	nng_aio *aio = NULL;
	nng_msg *m;
	char line[100];
	int64_t until = mk_mono_ms() + grace_ms;
	int i, left;

	if (!l)
		return 0;
	/* Goodbye: the router answers our waiting polls with nothing and
	 * sends no more work; requests in hand still finish. */
	atomic_store(&l->stopping, 1);
	if (nng_ctx_open(&ctx, l->sock) == 0 && nng_aio_alloc(&aio, NULL, NULL) == 0 &&
	    nng_msg_alloc(&m, 0) == 0) {
		snprintf(line, sizeof(line), "MKW1 B %s 0\n", l->id);
		if (nng_msg_append(m, line, strlen(line)) != 0) {
			nng_msg_free(m);
		} else {
			int refused;

			m = exchange(l, ctx, aio, m, 2000, &refused);
			if (m)
				nng_msg_free(m);
		}
	}
	if (aio)
		nng_aio_free(aio);
	while ((left = running(l)) > 0 && mk_mono_ms() < until)
		mk_sleep_ms(50);
	nng_close(l->sock);
	/* Idle polls end at once when the socket closes. */
	until = mk_mono_ms() + 1000;
	while ((left = running(l)) > 0 && mk_mono_ms() < until)
		mk_sleep_ms(20);
	if (left > 0) {
		/* Handlers still running (a long execution): the process exits without them. */
		return left;
	}
	for (i = 0; i < l->n; i++)
		pthread_join(l->th[i], NULL);
	pthread_mutex_destroy(&l->mu);
	free(l->th);
	free(l);
	return 0;
}
