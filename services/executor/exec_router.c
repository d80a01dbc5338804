/*
 * exec_router.c - the executor's router: requesters dial its front socket,
 * workers dial its worker socket, and each chat's requests go to the worker
 * that holds the chat's session.
 *
 * Both sockets are raw rep0, so the router can hold a request and answer
 * it later from any thread by copying its header. A worker asks for work
 * with a request of its own (a poll); the router parks the poll and answers
 * it with a job when one arrives for that worker, or with nothing after
 * poll_ms. The job's reply comes back as the worker's next request. This
 * way every worker only dials out, and the router can still address one
 * worker. The wire lines are documented in proto/PROTOCOL.md.
 *
 * When a worker's connection drops, its requests in flight are answered
 * worker_lost and its queued ones go to another worker, whose new session
 * tells the model its state was lost. Requests past their deadline are
 * answered deadline_exceeded. The router keeps no state worth saving: a
 * restarted router learns each worker's chats from its hello.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>

#include "executor.h"
#include "mk_log.h"
#include "mk_time.h"

#define HDR_MAX      64     /* a raw rep0 header: pipe id + up to 15 hops */
#define AFFINITY_MAX 200000 /* chats remembered; the least recently used go first */
#define NBUCKETS     4096

typedef struct job job;
typedef struct park park;

typedef struct wk {
	char id[65];
	uint32_t pipe;       /* current connection; 0: none */
	uint32_t hello_pipe; /* the connection its hello came on */
	int draining;        /* said goodbye: no new work */
	int sessions;        /* as the worker last reported */
	char isolation[16];  /* how its sandboxes are held, from its hello */
	int inflight;        /* jobs sent, not answered */
	long long handled;   /* jobs sent since it connected */
	int queued;
	park *parked; /* polls waiting for work, oldest first */
	job *qhead, *qtail;
	struct wk *next;
} wk;

struct park {
	nng_msg *m; /* the poll; its header addresses the reply */
	uint32_t pipe;
	int64_t at;
	park *next;
};

struct job {
	uint64_t id;
	unsigned char hdr[HDR_MAX]; /* the requester's header */
	size_t hdrlen;
	char rid[MK_RID_MAX + 1];
	char chat[65];
	nng_msg *req; /* the request, until sent to a worker */
	wk *w;
	int sent;
	int64_t deadline; /* mk_mono_ms */
	job *qnext;       /* in w's queue */
	job *next;        /* in the router's list */
};

typedef struct aff {
	char chat[65];
	wk *w;
	int64_t used;
	struct aff *next;
} aff;

typedef struct outq {
	nng_msg *m;
	struct outq *next;
} outq;

/* One socket's sender: replies are queued and sent by their own thread,
 * so a slow peer never stalls the router's receiving threads. */
typedef struct {
	nng_socket sock;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	outq *head, *tail;
	int stop;
	pthread_t th;
} sender;

struct exec_router {
	nng_socket front, back;
	mk_seal_key key;
	sender fs, bs;
	long long poll_ms;
	pthread_mutex_t mu;
	wk *workers;
	job *jobs;
	uint64_t next_job;
	aff *buckets[NBUCKETS];
	size_t naff;
	atomic_int stop;
	pthread_t th_front, th_back, th_timer;
	int started;
	int64_t started_ms;
};

static void *sender_main(void *arg)
{
	sender *s = arg;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		outq *q;

		while (!s->head && !s->stop)
			pthread_cond_wait(&s->cv, &s->mu);
		if (!s->head)
			break;
		q = s->head;
		s->head = q->next;
		if (!s->head)
			s->tail = NULL;
		pthread_mutex_unlock(&s->mu);
		if (nng_sendmsg(s->sock, q->m, 0) != 0)
			nng_msg_free(q->m);
		free(q);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static void sender_push(sender *s, nng_msg *m)
{
	outq *q = malloc(sizeof(*q));

	if (!q) {
		nng_msg_free(m);
		return;
	}
	q->m = m;
	q->next = NULL;
	pthread_mutex_lock(&s->mu);
	if (s->stop) { /* closing: nothing goes out any more */
		pthread_mutex_unlock(&s->mu);
		nng_msg_free(m);
		free(q);
		return;
	}
	if (s->tail)
		s->tail->next = q;
	else
		s->head = q;
	s->tail = q;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Answer a requester: hdr is its request's header, text the reply. */
static void front_reply(exec_router *r, const unsigned char *hdr, size_t hdrlen, const char *text,
                        size_t len)
{
	nng_msg *m;

	if (!text || nng_msg_alloc(&m, 0) != 0)
		return;
	if (nng_msg_header_append(m, hdr, hdrlen) != 0 || nng_msg_append(m, text, len) != 0 ||
	    mk_seal_msg(&r->key, MK_SEAL_REPLY, m) != 0) {
		nng_msg_free(m);
		return;
	}
	sender_push(&r->fs, m);
}

/* Answer a message that was not sealed with the bus key (m keeps its header). */
static void refuse(sender *s, nng_msg *m, const char *where)
{
	mk_seal_refused(where);
	nng_msg_clear(m);
	if (nng_msg_append(m, MK_SEAL_REFUSAL, strlen(MK_SEAL_REFUSAL)) != 0) {
		nng_msg_free(m);
		return;
	}
	sender_push(s, m);
}

static void front_error(exec_router *r, const unsigned char *hdr, size_t hdrlen, const char *rid,
                        mk_err e, const char *msg, int retry_after)
{
	cJSON *extra = NULL;
	char *out;

	if (retry_after > 0) {
		extra = cJSON_CreateObject();
		if (extra)
			cJSON_AddNumberToObject(extra, "retry_after", retry_after);
	}
	out = mk_env_encode_error_ex(rid, e, msg, extra);
	cJSON_Delete(extra);
	if (out)
		front_reply(r, hdr, hdrlen, out, strlen(out));
	free(out);
}

/* ------------------------------------------------------------------ affinity */

static unsigned hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h % NBUCKETS;
}

static aff *aff_find(exec_router *r, const char *chat)
{
	aff *a;

	for (a = r->buckets[hash(chat)]; a; a = a->next)
		if (strcmp(a->chat, chat) == 0)
			return a;
	return NULL;
}

/* Forget the least recently used chat (a linear scan, rare: only at the cap). */
static void aff_evict_one(exec_router *r)
{
	aff **best = NULL, **pp;
	int i;

	for (i = 0; i < NBUCKETS; i++)
		for (pp = &r->buckets[i]; *pp; pp = &(*pp)->next)
			if (!best || (*pp)->used < (*best)->used)
				best = pp;
	if (best) {
		aff *a = *best;

		*best = a->next;
		free(a);
		r->naff--;
	}
}

static void aff_set(exec_router *r, const char *chat, wk *w)
{
	aff *a = aff_find(r, chat);
	unsigned h;

	if (!a) {
		if (r->naff >= AFFINITY_MAX)
			aff_evict_one(r);
		a = calloc(1, sizeof(*a));
		if (!a)
			return;
		snprintf(a->chat, sizeof(a->chat), "%s", chat);
		h = hash(chat);
		a->next = r->buckets[h];
		r->buckets[h] = a;
		r->naff++;
	}
	a->w = w;
	a->used = mk_mono_ms();
}

/* ------------------------------------------------------------------ workers */

/* Connected, said hello on this connection (so its chats are known), not leaving. */
static int usable(const wk *w)
{
	return w->pipe != 0 && w->hello_pipe == w->pipe && !w->draining;
}

static wk *least_loaded(exec_router *r, const wk *except)
{
	wk *w, *best = NULL;

	for (w = r->workers; w; w = w->next) {
		if (!usable(w) || w == except)
			continue;
		if (!best || w->sessions + w->inflight + w->queued <
		                 best->sessions + best->inflight + best->queued)
			best = w;
	}
	return best;
}

static wk *worker_get(exec_router *r, const char *id)
{
	wk *w;

	for (w = r->workers; w; w = w->next)
		if (strcmp(w->id, id) == 0)
			return w;
	w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->next = r->workers;
	r->workers = w;
	return w;
}

static void job_unlink(exec_router *r, job *j)
{
	job **pp;

	for (pp = &r->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	if (j->w && !j->sent) {
		for (pp = &j->w->qhead; *pp; pp = &(*pp)->qnext)
			if (*pp == j) {
				*pp = j->qnext;
				break;
			}
		j->w->qtail = NULL;
		for (job *q = j->w->qhead; q; q = q->qnext)
			j->w->qtail = q;
		j->w->queued--;
	} else if (j->w && j->sent) {
		j->w->inflight--;
	}
	if (j->req)
		nng_msg_free(j->req);
	free(j);
}

/* Hand job j to w using the poll m (whose header addresses w). Takes m. */
static void send_job(exec_router *r, wk *w, job *j, nng_msg *m)
{
	char line[48];

	nng_msg_clear(m);
	snprintf(line, sizeof(line), "J %llu\n", (unsigned long long)j->id);
	if (nng_msg_append(m, line, strlen(line)) != 0 ||
	    nng_msg_append(m, nng_msg_body(j->req), nng_msg_len(j->req)) != 0 ||
	    mk_seal_msg(&r->key, MK_SEAL_ROUTER, m) != 0) {
		nng_msg_free(m);
		front_error(r, j->hdr, j->hdrlen, j->rid, MK_E_INTERNAL, NULL, 0);
		job_unlink(r, j);
		return;
	}
	nng_msg_free(j->req);
	j->req = NULL;
	j->sent = 1;
	w->inflight++;
	w->handled++;
	sender_push(&r->bs, m);
}

/* A parked poll of w that is still on w's current connection, or NULL. */
static nng_msg *take_poll(wk *w)
{
	while (w->parked) {
		park *p = w->parked;
		nng_msg *m = p->m;
		int live = p->pipe == w->pipe;

		w->parked = p->next;
		free(p);
		if (live)
			return m;
		nng_msg_free(m);
	}
	return NULL;
}

/* Give j to w now if it has a poll waiting, else queue it. */
static void assign(exec_router *r, wk *w, job *j)
{
	nng_msg *m;

	j->w = w;
	m = take_poll(w);
	if (m) {
		send_job(r, w, j, m);
		return;
	}
	j->qnext = NULL;
	if (w->qtail)
		w->qtail->qnext = j;
	else
		w->qhead = j;
	w->qtail = j;
	w->queued++;
}

/* Answer a worker's message with a bare line: "N" (nothing to do) or "H" (say hello). */
static void answer_line(exec_router *r, nng_msg *m, const char *line)
{
	nng_msg_clear(m);
	if (nng_msg_append(m, line, strlen(line)) != 0 ||
	    mk_seal_msg(&r->key, MK_SEAL_ROUTER, m) != 0) {
		nng_msg_free(m);
		return;
	}
	sender_push(&r->bs, m);
}

static void answer_nothing(exec_router *r, nng_msg *m)
{
	answer_line(r, m, "N\n");
}

/* w's queue goes elsewhere (w left or is leaving); its parked polls get nothing. */
static void requeue_from(exec_router *r, wk *w, int answer_polls)
{
	job *j = w->qhead;
	nng_msg *m;

	w->qhead = w->qtail = NULL;
	w->queued = 0;
	while (j) {
		job *nx = j->qnext;
		wk *to = least_loaded(r, w);

		j->w = NULL;
		if (to) {
			if (j->chat[0])
				aff_set(r, j->chat, to);
			assign(r, to, j);
		} else {
			front_error(r, j->hdr, j->hdrlen, j->rid, MK_E_UNAVAILABLE,
			            "no executor worker is connected", 5);
			job_unlink(r, j);
		}
		j = nx;
	}
	while ((m = take_poll(w)) != NULL) {
		if (answer_polls)
			answer_nothing(r, m);
		else
			nng_msg_free(m);
	}
}

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	exec_router *r = arg;
	uint32_t id = nng_pipe_id(p);
	wk *w;
	job *j, *nx;

	if (ev != NNG_PIPE_EV_REM_POST)
		return;
	pthread_mutex_lock(&r->mu);
	for (w = r->workers; w; w = w->next)
		if (w->pipe == id)
			break;
	if (w) {
		MK_WARN("EXEC-WORKER-GONE", NULL, "worker '%s' disconnected", w->id);
		w->pipe = 0;
		for (j = r->jobs; j; j = nx) {
			nx = j->next;
			if (j->w == w && j->sent) {
				front_error(
				    r, j->hdr, j->hdrlen, j->rid, MK_E_WORKER_LOST,
				    "the executor worker running this chat stopped; its session "
				    "is lost, run the code again",
				    0);
				job_unlink(r, j);
			}
		}
		requeue_from(r, w, 0);
	}
	pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------ front */

/* How the usable workers hold their sandboxes: one mode, "mixed", or "none" without workers. */
static const char *isolation(exec_router *r)
{
	static const char *const known[] = {"cgroup-v2", "cgroup-v1", "off", "daytona", "unknown"};
	const char *seen = NULL;
	wk *w;

	pthread_mutex_lock(&r->mu);
	for (w = r->workers; w; w = w->next) {
		if (!usable(w))
			continue;
		if (seen && strcmp(seen, w->isolation) != 0) {
			seen = "mixed";
			break;
		}
		seen = w->isolation;
	}
	pthread_mutex_unlock(&r->mu);
	if (!seen)
		return "none";
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(seen, known[i]) == 0)
			return known[i];
	return strcmp(seen, "mixed") == 0 ? "mixed" : "unknown";
}

/* Jobs each usable worker was sent since it connected, so that an operator sees the spread. */
static void add_jobs_by_worker(exec_router *r, cJSON *b)
{
	cJSON *a = cJSON_AddArrayToObject(b, "jobs_by_worker");
	wk *w;

	pthread_mutex_lock(&r->mu);
	for (w = r->workers; w && a; w = w->next)
		if (usable(w))
			cJSON_AddItemToArray(a, cJSON_CreateNumber((double)w->handled));
	pthread_mutex_unlock(&r->mu);
}

static void ping_reply(exec_router *r, nng_msg *m, const mk_env *env)
{
	cJSON *b = cJSON_CreateObject();
	int n = exec_router_workers(r);
	char *out;

	if (b) {
		cJSON_AddStringToObject(b, "service", "executor");
		cJSON_AddStringToObject(b, "mode", "router");
		cJSON_AddNumberToObject(b, "uptime_ms", (double)(mk_mono_ms() - r->started_ms));
		cJSON_AddNumberToObject(b, "workers", n);
		cJSON_AddStringToObject(b, "isolation", isolation(r));
		add_jobs_by_worker(r, b);
		/* Without a worker nothing can run: not ready. */
		cJSON_AddBoolToObject(b, "ready", n > 0);
	}
	out = mk_env_encode_reply(env->rid, b);
	cJSON_Delete(b);
	if (out)
		front_reply(r, nng_msg_header(m), nng_msg_header_len(m), out, strlen(out));
	free(out);
}

static void on_front(exec_router *r, nng_msg *m)
{
	char err[256] = "";
	mk_env env;
	mk_err e;
	const cJSON *chat;
	job *j;
	wk *w = NULL;
	aff *a;
	int64_t now = mk_now_ms(), mono = mk_mono_ms();

	if (nng_msg_header_len(m) > HDR_MAX) {
		nng_msg_free(m);
		return;
	}
	if (mk_seal_open(&r->key, MK_SEAL_REQUEST, m) != 0) {
		refuse(&r->fs, m, "the executor router");
		return;
	}
	e = mk_env_decode(nng_msg_body(m), nng_msg_len(m), now, &env, err, sizeof(err));
	if (e != MK_OK) {
		front_error(r, nng_msg_header(m), nng_msg_header_len(m), env.rid, e, err, 0);
		nng_msg_free(m);
		return;
	}
	if (env.op == MK_OP_SYS_PING) {
		ping_reply(r, m, &env);
		goto out;
	}
	if (strcmp(mk_op_owner(env.op), "executor") != 0) {
		snprintf(err, sizeof(err), "operation '%s' is not served by 'executor'",
		         mk_op_name(env.op));
		front_error(r, nng_msg_header(m), nng_msg_header_len(m), env.rid, MK_E_UNKNOWN_OP,
		            err, 0);
		goto out;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		front_error(r, nng_msg_header(m), nng_msg_header_len(m), env.rid, MK_E_INTERNAL,
		            NULL, 0);
		goto out;
	}
	memcpy(j->hdr, nng_msg_header(m), nng_msg_header_len(m));
	j->hdrlen = nng_msg_header_len(m);
	snprintf(j->rid, sizeof(j->rid), "%s", env.rid);
	chat = cJSON_GetObjectItemCaseSensitive(env.body, "chat_id");
	if (cJSON_IsString(chat))
		snprintf(j->chat, sizeof(j->chat), "%s", chat->valuestring);
	/* No deadline: the longest a run may take, and some. */
	j->deadline = env.deadline_ms ? mono + (env.deadline_ms - now) : mono + 3600000;
	j->req = m;
	m = NULL;

	pthread_mutex_lock(&r->mu);
	j->id = ++r->next_job;
	a = j->chat[0] ? aff_find(r, j->chat) : NULL;
	if (a && a->w && usable(a->w)) {
		w = a->w;
		a->used = mono;
	} else {
		w = least_loaded(r, NULL);
		if (w && j->chat[0])
			aff_set(r, j->chat, w);
	}
	if (!w) {
		front_error(r, j->hdr, j->hdrlen, j->rid, MK_E_UNAVAILABLE,
		            "no executor worker is connected", 5);
		nng_msg_free(j->req);
		free(j);
	} else {
		j->next = r->jobs;
		r->jobs = j;
		assign(r, w, j);
	}
	pthread_mutex_unlock(&r->mu);
out:
	if (m)
		nng_msg_free(m);
	mk_env_release(&env);
}

static void *front_main(void *arg)
{
	exec_router *r = arg;

	while (!atomic_load(&r->stop)) {
		nng_msg *m;

		if (nng_recvmsg(r->front, &m, 0) != 0)
			continue; /* closed: the loop ends on stop */
		on_front(r, m);
	}
	return NULL;
}

/* ------------------------------------------------------------------ back */

/* "MKW1 <T> <worker> <sessions>[ <job>]\n": the parts, or -1. */
static int parse_line(const char *p, size_t len, char *type, char *id, int *sessions,
                      unsigned long long *jobid, size_t *rest)
{
	const char *nl = memchr(p, '\n', len < 256 ? len : 256);
	char line[257];
	int n;

	if (!nl)
		return -1;
	memcpy(line, p, (size_t)(nl - p));
	line[nl - p] = '\0';
	*jobid = 0;
	n = sscanf(line, "MKW1 %c %64s %d %llu", type, id, sessions, jobid);
	if (n < 3)
		return -1;
	*rest = (size_t)(nl - p) + 1;
	return 0;
}

static void on_back(exec_router *r, nng_msg *m)
{
	const char *body = nng_msg_body(m);
	size_t len = nng_msg_len(m), rest;
	char type, id[65];
	int sessions;
	unsigned long long jobid;
	uint32_t pipe = nng_pipe_id(nng_msg_get_pipe(m));
	wk *w;
	job *j;

	/* Only a process holding the bus key may register as a worker. */
	if (mk_seal_open(&r->key, MK_SEAL_WORKER, m) != 0) {
		refuse(&r->bs, m, "the executor router (worker socket)");
		return;
	}
	body = nng_msg_body(m);
	len = nng_msg_len(m);
	if (parse_line(body, len, &type, id, &sessions, &jobid, &rest) != 0) {
		MK_WARN("EXEC-ROUTER-BAD", NULL, "a malformed message from a worker was dropped");
		nng_msg_free(m);
		return;
	}
	pthread_mutex_lock(&r->mu);
	w = worker_get(r, id);
	if (!w) {
		pthread_mutex_unlock(&r->mu);
		nng_msg_free(m);
		return;
	}
	if (w->pipe != pipe) {
		if (w->pipe == 0)
			MK_INFO("EXEC-WORKER-UP", NULL, "worker '%s' connected", w->id);
		w->pipe = pipe;
		w->draining = 0;
	}
	w->sessions = sessions;
	if (type == 'H') {
		char iso[16] = "unknown", line[257];
		size_t n = rest - 1 < sizeof(line) - 1 ? rest - 1 : sizeof(line) - 1;

		memcpy(line, body, n);
		line[n] = '\0';
		sscanf(line, "MKW1 H %*s %*d %15[a-z0-9-]", iso);
		snprintf(w->isolation, sizeof(w->isolation), "%s", iso);
		w->hello_pipe = pipe;
	}
	if (type == 'H') {
		/* The chats this worker holds: route them back to it. */
		const char *p = body + rest, *end = body + len;

		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			char chat[65];

			if (n > 0 && n < sizeof(chat)) {
				memcpy(chat, p, n);
				chat[n] = '\0';
				aff_set(r, chat, w);
			}
			p += n + 1;
		}
	} else if (type == 'R') {
		for (j = r->jobs; j; j = j->next)
			if (j->id == jobid && j->w == w && j->sent)
				break;
		if (j) {
			front_reply(r, j->hdr, j->hdrlen, body + rest, len - rest);
			job_unlink(r, j);
		}
	} else if (type == 'B') {
		MK_INFO("EXEC-WORKER-DRAIN", NULL, "worker '%s' is leaving", w->id);
		w->draining = 1;
		requeue_from(r, w, 1);
	}
	/*
	 * Every message is also a poll: answer it with work, or park it. A
	 * worker new on this connection (it reconnected, or the router
	 * restarted) gets no work before its hello, and is asked for one.
	 */
	if (w->hello_pipe != pipe && !w->draining) {
		answer_line(r, m, "H\n");
	} else if (w->draining) {
		answer_nothing(r, m);
	} else if (w->qhead) {
		j = w->qhead;
		w->qhead = j->qnext;
		if (!w->qhead)
			w->qtail = NULL;
		w->queued--;
		send_job(r, w, j, m);
	} else {
		park *pk = malloc(sizeof(*pk)), **pp;

		if (!pk) {
			nng_msg_free(m);
		} else {
			nng_msg_clear(m);
			pk->m = m;
			pk->pipe = pipe;
			pk->at = mk_mono_ms();
			pk->next = NULL;
			for (pp = &w->parked; *pp; pp = &(*pp)->next)
				;
			*pp = pk;
		}
	}
	pthread_mutex_unlock(&r->mu);
}

static void *back_main(void *arg)
{
	exec_router *r = arg;

	while (!atomic_load(&r->stop)) {
		nng_msg *m;

		if (nng_recvmsg(r->back, &m, 0) != 0)
			continue;
		on_back(r, m);
	}
	return NULL;
}

/* Deadlines of waiting requests, and polls that waited long enough. */
static void *timer_main(void *arg)
{
	exec_router *r = arg;

	while (!atomic_load(&r->stop)) {
		int64_t now;
		job *j, *nx;
		wk *w;

		mk_sleep_ms(100);
		now = mk_mono_ms();
		pthread_mutex_lock(&r->mu);
		for (j = r->jobs; j; j = nx) {
			nx = j->next;
			if (now > j->deadline) {
				front_error(r, j->hdr, j->hdrlen, j->rid, MK_E_DEADLINE,
				            "the request deadline passed in the executor", 0);
				job_unlink(r, j);
			}
		}
		for (w = r->workers; w; w = w->next)
			while (w->parked && now - w->parked->at >= r->poll_ms) {
				park *p = w->parked;

				w->parked = p->next;
				if (p->pipe == w->pipe)
					answer_nothing(r, p->m);
				else
					nng_msg_free(p->m);
				free(p);
			}
		pthread_mutex_unlock(&r->mu);
	}
	return NULL;
}

/* ------------------------------------------------------------------ life */

static int open_raw(nng_socket *s, const char *url, size_t max_msg, char *err, size_t errlen)
{
	int rv;

	if ((rv = nng_rep0_open_raw(s)) != 0) {
		mk_errf(err, errlen, "cannot open socket: %s", nng_strerror(rv));
		return -1;
	}
	nng_socket_set_size(*s, NNG_OPT_RECVMAXSZ, max_msg + 4096);
	if ((rv = nng_listen(*s, url, NULL, 0)) != 0) {
		mk_errf(err, errlen, "cannot listen on '%s': %s", url, nng_strerror(rv));
		nng_close(*s);
		return -1;
	}
	return 0;
}

static void sender_init(sender *s, nng_socket sock)
{
	s->sock = sock;
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
}

int exec_router_start(const char *front_url, const char *worker_url, size_t max_msg,
                      long long poll_ms, const mk_seal_key *key, exec_router **out, char *err,
                      size_t errlen)
{
	exec_router *r = calloc(1, sizeof(*r));

	if (!r) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	r->key = *key;
	pthread_mutex_init(&r->mu, NULL);
	r->poll_ms = poll_ms;
	r->started_ms = mk_mono_ms();
	if (open_raw(&r->front, front_url, max_msg, err, errlen) != 0) {
		free(r);
		return -1;
	}
	if (open_raw(&r->back, worker_url, max_msg, err, errlen) != 0) {
		nng_close(r->front);
		free(r);
		return -1;
	}
	nng_pipe_notify(r->back, NNG_PIPE_EV_REM_POST, pipe_event, r);
	sender_init(&r->fs, r->front);
	sender_init(&r->bs, r->back);
	pthread_create(&r->fs.th, NULL, sender_main, &r->fs);
	pthread_create(&r->bs.th, NULL, sender_main, &r->bs);
	pthread_create(&r->th_front, NULL, front_main, r);
	pthread_create(&r->th_back, NULL, back_main, r);
	pthread_create(&r->th_timer, NULL, timer_main, r);
	r->started = 1;
	MK_INFO("EXEC-ROUTER", NULL, "routing %s to workers dialling %s", front_url, worker_url);
	*out = r;
	return 0;
}

int exec_router_workers(exec_router *r)
{
	int n = 0;
	wk *w;

	pthread_mutex_lock(&r->mu);
	for (w = r->workers; w; w = w->next)
		n += usable(w);
	pthread_mutex_unlock(&r->mu);
	return n;
}

static void sender_stop(sender *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->th, NULL);
	while (s->head) {
		outq *q = s->head;

		s->head = q->next;
		nng_msg_free(q->m);
		free(q);
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

void exec_router_free(exec_router *r)
{
	wk *w;
	int i;

	if (!r)
		return;
	atomic_store(&r->stop, 1);
	pthread_mutex_lock(&r->mu);
	while (r->jobs) {
		job *j = r->jobs;

		front_error(r, j->hdr, j->hdrlen, j->rid, MK_E_SHUTTING_DOWN, NULL, 0);
		job_unlink(r, j);
	}
	pthread_mutex_unlock(&r->mu);
	/* Let the queued replies go out before the sockets close. */
	sender_stop(&r->fs);
	sender_stop(&r->bs);
	nng_close(r->front);
	nng_close(r->back);
	pthread_join(r->th_front, NULL);
	pthread_join(r->th_back, NULL);
	pthread_join(r->th_timer, NULL);
	while ((w = r->workers) != NULL) {
		nng_msg *m;

		r->workers = w->next;
		while ((m = take_poll(w)) != NULL)
			nng_msg_free(m);
		while (w->parked) { /* stale ones take_poll skipped */
			park *p = w->parked;

			w->parked = p->next;
			nng_msg_free(p->m);
			free(p);
		}
		free(w);
	}
	for (i = 0; i < NBUCKETS; i++)
		while (r->buckets[i]) {
			aff *a = r->buckets[i];

			r->buckets[i] = a->next;
			free(a);
		}
	pthread_mutex_destroy(&r->mu);
	free(r);
}
