/*
 * exec_sessions.c - a worker's chat sessions: one sandbox per chat, taken
 * from a warm pool of ready sandboxes when one is there, ended when idle
 * too long, when the worker needs room, or when asked.
 *
 * The table `exec.sessions` remembers, per chat, its sandbox generation,
 * how many runs the current one had and how it ended. A new sandbox reads
 * it to tell the model whether (and why) earlier state is gone: also when
 * the sandbox was on another worker that died. For backends whose
 * sandboxes outlive a worker (Daytona), it also names the chat's live
 * sandbox (`sandbox`): a worker that has no session for a chat takes that
 * sandbox over, state and all, and a worker shutting down leaves its
 * sessions' sandboxes running for the next one.
 *
 * Locking: one mutex guards the list, the pool and each session's busy
 * flag. A session is used by one request at a time (acquire/release);
 * sandboxes are created and destroyed outside the lock.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "mk_log.h"
#include "mk_time.h"

struct exec_session {
	char chat[65];
	char owner[65];
	sbx *box; /* NULL while being set up */
	int generation;
	int busy;
	int64_t last_used;
	exec_session *next;
};

struct exec_sessions {
	exec_sessions_opts o;
	char worker_id[65];
	pthread_mutex_t mu;
	pthread_cond_t cv; /* a session was released or the pool changed */
	exec_session *list;
	int count;
	sbx **pool;
	int npool, starting;
	int stop;
	pthread_t filler, reaper;
};

/* ------------------------------------------------------------------ records */

/* Mark the chat's session ended (only the generation this worker runs). */
static void record_end(exec_sessions *ss, const char *chat, int generation, const char *reason)
{
	char err[256] = "", gen[16];
	const char *p[4] = {chat, ss->worker_id, gen, reason};
	PGconn *c = mk_db_acquire(ss->o.db, 5000, err, sizeof(err));
	PGresult *r;

	if (!c) {
		MK_WARN("EXEC-DB", NULL, "cannot record the end of a session: %s", err);
		return;
	}
	snprintf(gen, sizeof(gen), "%d", generation);
	r = mk_db_exec_prep(c,
	                    "UPDATE sessions SET live = false, end_reason = $4, ended_at = now(), "
	                    "sandbox = NULL "
	                    "WHERE chat_id = $1 AND worker_id = $2 AND generation = $3::int",
	                    4, p, err, sizeof(err), NULL);
	if (!r)
		MK_WARN("EXEC-DB", NULL, "cannot record the end of a session: %s", err);
	PQclear(r);
	mk_db_release(ss->o.db, c);
}

/*
 * Claim a new generation for the chat on this worker and find out what
 * the model lost. Returns MK_OK, MK_E_NOT_FOUND (another owner's chat) or
 * MK_E_DB.
 */
static mk_err record_start(exec_sessions *ss, const char *chat, const char *owner,
                           exec_session_info *info, char *err, size_t errlen)
{
	const char *p[3] = {chat, owner, ss->worker_id};
	PGconn *c = mk_db_acquire(ss->o.db, 5000, err, errlen);
	PGresult *r = NULL;
	mk_err e = MK_E_DB;

	if (!c)
		return MK_E_DB;
	/* One statement: claim (or create) the row and report what it was. */
	r = mk_db_exec_prep(
	    c,
	    "WITH old AS (SELECT owner_id, executions, live, worker_id, end_reason FROM sessions "
	    "             WHERE chat_id = $1 FOR UPDATE), "
	    "ins AS (INSERT INTO sessions (chat_id, owner_id) SELECT $1, $2 "
	    "        WHERE NOT EXISTS (SELECT 1 FROM old) ON CONFLICT (chat_id) DO NOTHING) "
	    "UPDATE sessions s SET generation = s.generation + 1, executions = 0, live = true, "
	    "  worker_id = $3, end_reason = NULL, started_at = now(), last_used_at = now(), "
	    "  ended_at = NULL "
	    "FROM old WHERE s.chat_id = $1 AND old.owner_id = $2 "
	    "RETURNING s.generation, old.executions, old.live, old.end_reason",
	    3, p, err, errlen, NULL);
	if (!r)
		goto out;
	if (PQntuples(r) == 0) {
		/* Either a fresh chat (the row was just inserted) or another owner's. */
		PQclear(r);
		r = mk_db_exec_prep(
		    c,
		    "UPDATE sessions SET generation = generation + 1, executions = 0, live = true, "
		    "  worker_id = $3, end_reason = NULL, started_at = now(), last_used_at = "
		    "now(), "
		    "  ended_at = NULL "
		    "WHERE chat_id = $1 AND owner_id = $2 RETURNING generation, 0, false, NULL",
		    3, p, err, errlen, NULL);
		if (!r)
			goto out;
		if (PQntuples(r) == 0) {
			mk_errf(err, errlen, "no chat '%s'", chat);
			e = MK_E_NOT_FOUND;
			goto out;
		}
	}
	info->generation = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
	info->started = 1;
	info->reset = strtol(PQgetvalue(r, 0, 1), NULL, 10) > 0;
	info->reason[0] = '\0';
	if (info->reset) {
		if (strcmp(PQgetvalue(r, 0, 2), "t") == 0)
			snprintf(info->reason, sizeof(info->reason), "worker_lost");
		else
			snprintf(info->reason, sizeof(info->reason), "%s",
			         PQgetisnull(r, 0, 3) ? "ended" : PQgetvalue(r, 0, 3));
	}
	e = MK_OK;
out:
	PQclear(r);
	mk_db_release(ss->o.db, c);
	return e;
}

/* Note the sandbox the chat's generation holds, for another worker to take over. */
static void record_ref(exec_sessions *ss, const char *chat, int generation, const char *ref)
{
	char err[256] = "", gen[16];
	const char *p[4] = {chat, gen, ss->worker_id, ref};
	PGconn *c = mk_db_acquire(ss->o.db, 5000, err, sizeof(err));
	PGresult *r;

	if (!c) {
		MK_WARN("EXEC-DB", NULL, "cannot record a session's sandbox: %s", err);
		return;
	}
	snprintf(gen, sizeof(gen), "%d", generation);
	r = mk_db_exec_prep(c,
	                    "UPDATE sessions SET sandbox = $4 "
	                    "WHERE chat_id = $1 AND generation = $2::int AND worker_id = $3",
	                    4, p, err, sizeof(err), NULL);
	if (!r)
		MK_WARN("EXEC-DB", NULL, "cannot record a session's sandbox: %s", err);
	PQclear(r);
	mk_db_release(ss->o.db, c);
}

/*
 * Take over the live sandbox the chat's session left (on a worker that
 * restarted or died). 1 with s->box and info filled; 0 when there is none,
 * it is another owner's chat, or the sandbox cannot be reached (then the
 * caller starts a new generation, which says the state is gone).
 */
static int adopt(exec_sessions *ss, exec_session *s, exec_session_info *info)
{
	const char *p[5] = {s->chat, s->owner, ss->worker_id, NULL, NULL};
	char err[512] = "", ref[128] = "", gen[16] = "";
	PGconn *c = mk_db_acquire(ss->o.db, 5000, err, sizeof(err));
	PGresult *r;
	sbx *box;
	int ok;

	if (!c)
		return 0;
	r = mk_db_exec_prep(c,
	                    "SELECT sandbox, generation FROM sessions WHERE chat_id = $1 AND "
	                    "owner_id = $2 AND live AND sandbox IS NOT NULL",
	                    2, p, err, sizeof(err), NULL);
	if (r && PQntuples(r) == 1) {
		snprintf(ref, sizeof(ref), "%s", PQgetvalue(r, 0, 0));
		snprintf(gen, sizeof(gen), "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	mk_db_release(ss->o.db, c);
	if (!ref[0])
		return 0;
	box = sbx_attach(ss->o.backend, ref, err, sizeof(err));
	if (!box) {
		MK_INFO("EXEC-SESSION-ADOPT", NULL, "the sandbox of '%s' is lost: %s", s->chat,
		        err);
		return 0;
	}
	/* Claim it; a worker that claimed it first keeps it. */
	p[3] = gen;
	p[4] = ref;
	c = mk_db_acquire(ss->o.db, 5000, err, sizeof(err));
	r = c ? mk_db_exec_prep(c,
	                        "UPDATE sessions SET worker_id = $3, last_used_at = now() "
	                        "WHERE chat_id = $1 AND owner_id = $2 AND generation = $4::int "
	                        "AND live AND sandbox = $5 RETURNING generation",
	                        5, p, err, sizeof(err), NULL)
	      : NULL;
	ok = r && PQntuples(r) == 1;
	PQclear(r);
	if (c)
		mk_db_release(ss->o.db, c);
	if (!ok) {
		sbx_detach(box);
		return 0;
	}
	s->box = box;
	s->generation = (int)strtol(gen, NULL, 10);
	sbx_label(box, s->chat, s->owner); /* now this worker's */
	info->generation = s->generation;
	MK_INFO("EXEC-SESSION-ADOPT", NULL, "the session of '%s' goes on in its sandbox", s->chat);
	return 1;
}

/* ------------------------------------------------------------------ list */

static exec_session *find(exec_sessions *ss, const char *chat)
{
	exec_session *s;

	for (s = ss->list; s; s = s->next)
		if (strcmp(s->chat, chat) == 0)
			return s;
	return NULL;
}

static void unlink_session(exec_sessions *ss, exec_session *s)
{
	exec_session **pp;

	for (pp = &ss->list; *pp; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			ss->count--;
			return;
		}
}

/*
 * Destroy a session already unlinked, recording why it ended; at shutdown
 * a sandbox that outlives the worker is left running for the next one.
 */
static void end_session(exec_sessions *ss, exec_session *s, const char *reason)
{
	if (strcmp(reason, "shutdown") == 0 && s->generation > 0 && sbx_ref(s->box)) {
		sbx_detach(s->box);
		MK_DEBUG("EXEC-SESSION-KEEP", NULL, "the sandbox of '%s' is kept", s->chat);
		free(s);
		return;
	}
	sbx_destroy(s->box);
	if (s->generation > 0)
		record_end(ss, s->chat, s->generation, reason);
	MK_DEBUG("EXEC-SESSION-END", NULL, "session of '%s' ended: %s", s->chat, reason);
	free(s);
}

/* Wait (lock held) until deadline_ms (mono) for s to be free. 0 when it is. */
static int wait_free(exec_sessions *ss, exec_session *s, int64_t deadline_ms)
{
	while (s->busy) {
		struct timespec ts;
		int64_t left = deadline_ms - mk_mono_ms();

		if (left <= 0)
			return -1;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)(left / 1000);
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ss->cv, &ss->mu, &ts);
	}
	return 0;
}

/* Sessions of owner on this worker. Lock held. */
static int owned(const exec_sessions *ss, const char *owner)
{
	int n = 0;

	for (const exec_session *s = ss->list; s; s = s->next)
		n += strcmp(s->owner, owner) == 0;
	return n;
}

/* Sessions of owner running now (a session being set up counts). Lock held. */
static int running(const exec_sessions *ss, const char *owner)
{
	int n = 0;

	for (const exec_session *s = ss->list; s; s = s->next)
		n += s->busy && strcmp(s->owner, owner) == 0;
	return n;
}

/* The least recently used idle session of owner, unlinked, or NULL. Lock held. */
static exec_session *take_lru_of(exec_sessions *ss, const char *owner)
{
	exec_session *s, *best = NULL;

	for (s = ss->list; s; s = s->next)
		if (!s->busy && s->box && strcmp(s->owner, owner) == 0 &&
		    (!best || s->last_used < best->last_used))
			best = s;
	if (best)
		unlink_session(ss, best);
	return best;
}

/* Refuse a run past owner's runs at once (0: within them). Lock held. */
static int too_many_runs(const exec_sessions *ss, const char *owner, char *err, size_t errlen)
{
	if (ss->o.user_max_runs <= 0 || running(ss, owner) < ss->o.user_max_runs)
		return 0;
	mk_errf(err, errlen,
	        "%d runs of this user are going at once on this worker, the most it allows; "
	        "wait for one to end",
	        ss->o.user_max_runs);
	return 1;
}

/*
 * The session to end for room, unlinked, or NULL: an idle one of the user
 * who holds the most sessions here (so one user's many chats do not push
 * out everyone else's), the least recently used of theirs. Lock held.
 */
static exec_session *take_lru(exec_sessions *ss)
{
	exec_session *s, *best = NULL;
	int best_held = 0;

	for (s = ss->list; s; s = s->next) {
		int held;

		if (s->busy || !s->box)
			continue;
		held = owned(ss, s->owner);
		if (!best || held > best_held ||
		    (held == best_held && s->last_used < best->last_used)) {
			best = s;
			best_held = held;
		}
	}
	if (best)
		unlink_session(ss, best);
	return best;
}

/* ------------------------------------------------------------------ pool */

static sbx *pool_take(exec_sessions *ss)
{
	sbx *b = NULL;

	pthread_mutex_lock(&ss->mu);
	while (ss->npool > 0 && !b) {
		b = ss->pool[--ss->npool];
		exec_metrics_pool(ss->npool);
		if (!sbx_alive(b)) {
			pthread_mutex_unlock(&ss->mu);
			sbx_destroy(b);
			b = NULL;
			pthread_mutex_lock(&ss->mu);
		}
	}
	pthread_cond_broadcast(&ss->cv); /* the filler refills */
	pthread_mutex_unlock(&ss->mu);
	return b;
}

static void *filler_main(void *arg)
{
	exec_sessions *ss = arg;
	int failures = 0;

	pthread_mutex_lock(&ss->mu);
	while (!ss->stop) {
		char err[512] = "";
		sbx *b;

		if (ss->npool + ss->starting >= ss->o.pool_size) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 1;
			pthread_cond_timedwait(&ss->cv, &ss->mu, &ts);
			continue;
		}
		ss->starting++;
		pthread_mutex_unlock(&ss->mu);
		b = sbx_create(ss->o.backend, err, sizeof(err));
		if (!b) {
			MK_WARN("EXEC-POOL", NULL, "cannot start a sandbox for the pool: %s", err);
			mk_sleep_ms(failures < 6 ? 500LL << failures : 30000);
			failures++;
		} else {
			failures = 0;
		}
		pthread_mutex_lock(&ss->mu);
		ss->starting--;
		if (b && !ss->stop) {
			ss->pool[ss->npool++] = b;
			exec_metrics_pool(ss->npool);
			pthread_cond_broadcast(&ss->cv);
		} else if (b) {
			pthread_mutex_unlock(&ss->mu);
			sbx_destroy(b);
			pthread_mutex_lock(&ss->mu);
		}
	}
	pthread_mutex_unlock(&ss->mu);
	return NULL;
}

/* Ends sessions idle too long, and those whose sandbox died between runs. */
static void *reaper_main(void *arg)
{
	exec_sessions *ss = arg;
	int64_t tick = ss->o.idle_timeout_ms / 4;

	if (tick > 1000)
		tick = 1000;
	if (tick < 20)
		tick = 20;
	for (;;) {
		exec_session *s, *gone = NULL, *nx;
		const char *why[2] = {"idle_timeout", "crashed"};
		int64_t now;

		mk_sleep_ms(tick);
		now = mk_mono_ms();
		pthread_mutex_lock(&ss->mu);
		if (ss->stop) {
			pthread_mutex_unlock(&ss->mu);
			break;
		}
		for (s = ss->list; s; s = nx) {
			nx = s->next;
			if (s->busy || !s->box)
				continue;
			if (now - s->last_used >= ss->o.idle_timeout_ms || !sbx_alive(s->box)) {
				unlink_session(ss, s);
				s->next = gone;
				gone = s;
			}
		}
		pthread_mutex_unlock(&ss->mu);
		for (s = gone; s; s = nx) {
			nx = s->next;
			end_session(ss, s, why[sbx_alive(s->box) ? 0 : 1]);
		}
	}
	return NULL;
}

/* ------------------------------------------------------------------ api */

exec_sessions *exec_sessions_new(const exec_sessions_opts *o, char *err, size_t errlen)
{
	exec_sessions *ss = calloc(1, sizeof(*ss));

	if (!ss || !(ss->pool = calloc((size_t)o->pool_size + 1, sizeof(sbx *)))) {
		free(ss);
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	ss->o = *o;
	exec_metrics_init(o->pool_size);
	snprintf(ss->worker_id, sizeof(ss->worker_id), "%s", o->worker_id);
	ss->o.worker_id = ss->worker_id;
	pthread_mutex_init(&ss->mu, NULL);
	pthread_cond_init(&ss->cv, NULL);
	pthread_create(&ss->filler, NULL, filler_main, ss);
	pthread_create(&ss->reaper, NULL, reaper_main, ss);
	return ss;
}

void exec_sessions_free(exec_sessions *ss)
{
	exec_session *s;

	if (!ss)
		return;
	pthread_mutex_lock(&ss->mu);
	ss->stop = 1;
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
	pthread_join(ss->filler, NULL);
	pthread_join(ss->reaper, NULL);
	while ((s = ss->list) != NULL) {
		ss->list = s->next;
		end_session(ss, s, "shutdown");
	}
	while (ss->npool > 0)
		sbx_destroy(ss->pool[--ss->npool]);
	pthread_mutex_destroy(&ss->mu);
	pthread_cond_destroy(&ss->cv);
	free(ss->pool);
	free(ss);
}

mk_err exec_session_acquire(exec_sessions *ss, const char *chat_id, const char *owner_id,
                            int64_t deadline_ms, exec_session **out, exec_session_info *info,
                            char *err, size_t errlen)
{
	exec_session *s, *evict = NULL;
	char why[32] = "";
	mk_err e;

	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&ss->mu);
	for (;;) {
		s = find(ss, chat_id);
		if (!s)
			break;
		if (strcmp(s->owner, owner_id) != 0) {
			pthread_mutex_unlock(&ss->mu);
			mk_errf(err, errlen, "no chat '%s'", chat_id);
			return MK_E_NOT_FOUND;
		}
		if (wait_free(ss, s, deadline_ms) != 0) {
			pthread_mutex_unlock(&ss->mu);
			mk_errf(err, errlen, "the chat's previous run is still going");
			return MK_E_DEADLINE;
		}
		if (find(ss, chat_id) != s)
			continue; /* ended while we waited */
		if (too_many_runs(ss, owner_id, err, errlen)) {
			pthread_mutex_unlock(&ss->mu);
			return MK_E_RATE_LIMITED;
		}
		s->busy = 1;
		if (s->box && sbx_alive(s->box)) {
			pthread_mutex_unlock(&ss->mu);
			info->generation = s->generation;
			*out = s;
			return MK_OK;
		}
		/* Its sandbox died between runs: a new one, saying so. */
		unlink_session(ss, s);
		pthread_mutex_unlock(&ss->mu);
		end_session(ss, s, "crashed");
		pthread_mutex_lock(&ss->mu);
	}
	if (too_many_runs(ss, owner_id, err, errlen)) {
		pthread_mutex_unlock(&ss->mu);
		return MK_E_RATE_LIMITED;
	}
	/* A user at their own cap makes room from their own sessions. */
	if (ss->o.user_max_sessions > 0 && owned(ss, owner_id) >= ss->o.user_max_sessions) {
		evict = take_lru_of(ss, owner_id);
		if (!evict) {
			pthread_mutex_unlock(&ss->mu);
			mk_errf(err, errlen,
			        "all %d sessions this user may hold on this worker are running",
			        ss->o.user_max_sessions);
			return MK_E_RATE_LIMITED;
		}
	} else if (ss->count >= ss->o.max_sessions) {
		evict = take_lru(ss);
		if (!evict) {
			pthread_mutex_unlock(&ss->mu);
			mk_errf(err, errlen, "every sandbox of this worker is busy");
			return MK_E_UNAVAILABLE;
		}
	}
	/* A placeholder, so a second request for this chat waits for this one. */
	s = calloc(1, sizeof(*s));
	if (!s) {
		pthread_mutex_unlock(&ss->mu);
		if (evict)
			end_session(ss, evict, "evicted");
		mk_errf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	snprintf(s->chat, sizeof(s->chat), "%s", chat_id);
	snprintf(s->owner, sizeof(s->owner), "%s", owner_id);
	s->busy = 1;
	s->next = ss->list;
	ss->list = s;
	ss->count++;
	pthread_mutex_unlock(&ss->mu);
	if (evict)
		end_session(ss, evict, "evicted");

	if (adopt(ss, s, info)) {
		s->last_used = mk_mono_ms();
		*out = s;
		return MK_OK;
	}
	e = record_start(ss, chat_id, owner_id, info, err, errlen);
	if (e != MK_OK)
		goto fail;
	s->generation = info->generation;
	s->box = pool_take(ss);
	info->warm = s->box != NULL;
	exec_metrics_sandbox_start(info->warm);
	if (!s->box) {
		char cerr[512] = "";

		s->box = sbx_create(ss->o.backend, cerr, sizeof(cerr));
		if (!s->box) {
			mk_errf(err, errlen, "cannot start a sandbox: %s", cerr);
			snprintf(why, sizeof(why), "crashed");
			e = MK_E_UNAVAILABLE;
			goto fail;
		}
	}
	if (sbx_ref(s->box))
		record_ref(ss, s->chat, s->generation, sbx_ref(s->box));
	sbx_label(s->box, s->chat, s->owner);
	s->last_used = mk_mono_ms();
	*out = s;
	return MK_OK;
fail:
	pthread_mutex_lock(&ss->mu);
	unlink_session(ss, s);
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
	if (why[0] && s->generation > 0)
		record_end(ss, s->chat, s->generation, why);
	free(s);
	return e;
}

sbx *exec_session_sbx(exec_session *s)
{
	return s->box;
}

int exec_session_generation(const exec_session *s)
{
	return s->generation;
}

void exec_session_release(exec_sessions *ss, exec_session *s, const char *end_reason)
{
	pthread_mutex_lock(&ss->mu);
	s->busy = 0;
	s->last_used = mk_mono_ms();
	if (end_reason)
		unlink_session(ss, s);
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
	if (end_reason)
		end_session(ss, s, end_reason);
}

exec_session *exec_session_peek(exec_sessions *ss, const char *chat_id, int64_t deadline_ms)
{
	exec_session *s;

	pthread_mutex_lock(&ss->mu);
	s = find(ss, chat_id);
	if (s && (wait_free(ss, s, deadline_ms) != 0 || find(ss, chat_id) != s || !s->box))
		s = NULL;
	if (s)
		s->busy = 1;
	pthread_mutex_unlock(&ss->mu);
	return s;
}

mk_err exec_session_end(exec_sessions *ss, const char *chat_id, const char *owner_id,
                        const char *reason, int64_t deadline_ms, char *err, size_t errlen)
{
	exec_session *s;
	char e[256] = "";
	const char *p[2] = {chat_id, reason};
	PGconn *c;
	PGresult *r;

	pthread_mutex_lock(&ss->mu);
	s = find(ss, chat_id);
	if (s && strcmp(s->owner, owner_id) != 0) {
		pthread_mutex_unlock(&ss->mu);
		mk_errf(err, errlen, "no chat '%s'", chat_id);
		return MK_E_NOT_FOUND;
	}
	if (s && wait_free(ss, s, deadline_ms) != 0) {
		pthread_mutex_unlock(&ss->mu);
		mk_errf(err, errlen, "the chat's previous run is still going");
		return MK_E_DEADLINE;
	}
	if (s && find(ss, chat_id) == s)
		unlink_session(ss, s);
	else
		s = NULL;
	pthread_cond_broadcast(&ss->cv);
	pthread_mutex_unlock(&ss->mu);
	if (s)
		end_session(ss, s, reason);
	/* A session live on a worker that is gone ends too, so the next says why. */
	c = mk_db_acquire(ss->o.db, 5000, e, sizeof(e));
	if (!c) {
		mk_errf(err, errlen, "%s", e);
		return MK_E_DB;
	}
	r = mk_db_exec_prep(
	    c,
	    "UPDATE sessions s SET live = false, end_reason = $2, ended_at = now(), "
	    "sandbox = NULL FROM (SELECT chat_id, sandbox FROM sessions WHERE "
	    "chat_id = $1 AND live FOR UPDATE) o WHERE s.chat_id = o.chat_id "
	    "RETURNING o.sandbox",
	    2, p, e, sizeof(e), NULL);
	mk_db_release(ss->o.db, c);
	if (!r) {
		mk_errf(err, errlen, "%s", e);
		return MK_E_DB;
	}
	/* The sandbox a stopped worker left for the chat goes too. */
	if (PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
		sbx_drop(ss->o.backend, PQgetvalue(r, 0, 0));
	PQclear(r);
	return MK_OK;
}

int exec_sessions_count(exec_sessions *ss)
{
	int n;

	pthread_mutex_lock(&ss->mu);
	n = ss->count;
	pthread_mutex_unlock(&ss->mu);
	return n;
}

void exec_sessions_chats(exec_sessions *ss, cJSON *arr)
{
	exec_session *s;

	pthread_mutex_lock(&ss->mu);
	for (s = ss->list; s; s = s->next)
		cJSON_AddItemToArray(arr, cJSON_CreateString(s->chat));
	pthread_mutex_unlock(&ss->mu);
}
