/*
 * exec_orphans.c - a worker's heartbeat and the reaper of orphaned
 * sandboxes (libexecutor, worker side), for backends whose sandboxes
 * outlive a worker (Daytona).
 *
 * Every worker notes in exec.workers that it is alive, every quarter of
 * the lease. Every sandbox is labelled with the worker that made it, or
 * last took it over (sbx_label). At start, and then every interval, a
 * worker lists the deployment's sandboxes (sbx_leftovers) and deletes the
 * orphans: those whose worker has not been heard from for the lease and
 * that no live chat session names (exec.sessions.sandbox; the next worker
 * the chat reaches takes such a one over, state and all). A sandbox that
 * names no worker (made before the label) goes only when it is not
 * running. Several workers reaping at once is harmless: a delete of a
 * sandbox already gone succeeds.
 *
 * Nothing here for the local backend: sbx_leftovers lists nothing.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

struct exec_orphans {
	sbx_backend *backend;
	mk_db_pool *db;
	char worker_id[65];
	long long lease_ms, interval_ms;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	pthread_t th;
};

int exec_worker_beat(mk_db_pool *db, const char *worker_id, char *err, size_t errlen)
{
	const char *p[1] = {worker_id};
	PGconn *c = mk_db_acquire(db, 5000, err, errlen);
	PGresult *r;
	int ok;

	if (!c)
		return -1;
	r = mk_db_exec_prep(c,
	                    "INSERT INTO workers (worker_id, seen_at) VALUES ($1, now()) "
	                    "ON CONFLICT (worker_id) DO UPDATE SET seen_at = now()",
	                    1, p, err, errlen, NULL);
	ok = r != NULL;
	PQclear(r);
	mk_db_release(db, c);
	return ok ? 0 : -1;
}

/* The first column of sql's rows as a JSON array of strings, or NULL with err. */
static cJSON *column(PGconn *c, const char *sql, int n, const char *const *p, char *err,
                     size_t errlen)
{
	PGresult *r = mk_db_exec_prep(c, sql, n, p, err, errlen, NULL);
	cJSON *a = r ? cJSON_CreateArray() : NULL;

	for (int i = 0; a && i < PQntuples(r); i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(PQgetvalue(r, i, 0)));
	PQclear(r);
	return a;
}

static int has(const cJSON *a, const char *s)
{
	const cJSON *x;

	cJSON_ArrayForEach(x, a)
	{
		if (strcmp(x->valuestring, s) == 0)
			return 1;
	}
	return 0;
}

int exec_orphans_reap(sbx_backend *b, mk_db_pool *db, long long lease_ms, char *err, size_t errlen)
{
	char lease[32];
	const char *p[1] = {lease};
	cJSON *left = NULL, *live = NULL, *held = NULL, *x;
	PGconn *c;
	int n = -1;

	/* Listed first: a sandbox made after the list is not looked at; one named later is kept. */
	left = sbx_leftovers(b, err, errlen);
	if (!left)
		return -1;
	if (cJSON_GetArraySize(left) == 0) {
		cJSON_Delete(left);
		return 0;
	}
	if (!(c = mk_db_acquire(db, 5000, err, errlen)))
		goto out;
	snprintf(lease, sizeof(lease), "%lld", lease_ms);
	live = column(c,
	              "SELECT worker_id FROM workers "
	              "WHERE seen_at > now() - $1::bigint * interval '1 millisecond'",
	              1, p, err, errlen);
	held = live ? column(c, "SELECT sandbox FROM sessions WHERE live AND sandbox IS NOT NULL",
	                     0, NULL, err, errlen)
	            : NULL;
	mk_db_release(db, c);
	if (!held)
		goto out;
	n = 0;
	cJSON_ArrayForEach(x, left)
	{
		const char *ref = mk_json_str(x, "ref"), *wk = mk_json_str(x, "worker");
		int started = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "started"));

		if (!ref || has(held, ref) || (wk && *wk && has(live, wk)) ||
		    ((!wk || !*wk) && started))
			continue;
		MK_INFO("EXEC-ORPHAN", NULL, "sandbox %s of worker '%s' is an orphan: deleted", ref,
		        wk && *wk ? wk : "(unknown)");
		sbx_drop(b, ref);
		n++;
	}
out:
	cJSON_Delete(left);
	cJSON_Delete(live);
	cJSON_Delete(held);
	return n;
}

/* Wait (lock held) up to ms; 1 when asked to stop. */
static int pause_ms(exec_orphans *o, long long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	if (!o->stop)
		pthread_cond_timedwait(&o->cv, &o->mu, &ts);
	return o->stop;
}

static void *orphans_main(void *arg)
{
	exec_orphans *o = arg;
	long long beat = o->lease_ms / 4 > 0 ? o->lease_ms / 4 : 1;
	int64_t next_reap = mk_mono_ms(); /* at start, then every interval */

	pthread_mutex_lock(&o->mu);
	while (!o->stop) {
		char err[512] = "";
		int64_t now = mk_mono_ms();
		int n;

		pthread_mutex_unlock(&o->mu);
		if (exec_worker_beat(o->db, o->worker_id, err, sizeof(err)) != 0)
			MK_WARN("EXEC-WORKER-BEAT", NULL, "cannot note that this worker lives: %s",
			        err);
		if (now >= next_reap) {
			n = exec_orphans_reap(o->backend, o->db, o->lease_ms, err, sizeof(err));
			if (n < 0)
				MK_WARN("EXEC-ORPHAN", NULL,
				        "cannot look for orphaned sandboxes: %s", err);
			else if (n > 0)
				MK_INFO("EXEC-ORPHAN", NULL, "%d orphaned sandboxes deleted", n);
			next_reap = o->interval_ms > 0 ? mk_mono_ms() + o->interval_ms : INT64_MAX;
		}
		pthread_mutex_lock(&o->mu);
		now = mk_mono_ms();
		pause_ms(o, next_reap - now < beat ? (next_reap - now > 0 ? next_reap - now : 0)
		                                   : beat);
	}
	pthread_mutex_unlock(&o->mu);
	return NULL;
}

exec_orphans *exec_orphans_start(sbx_backend *b, mk_db_pool *db, const char *worker_id,
                                 long long lease_ms, long long interval_ms, char *err,
                                 size_t errlen)
{
	exec_orphans *o = calloc(1, sizeof(*o));

	if (!o) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	o->backend = b;
	o->db = db;
	snprintf(o->worker_id, sizeof(o->worker_id), "%s", worker_id);
	o->lease_ms = lease_ms;
	o->interval_ms = interval_ms;
	pthread_mutex_init(&o->mu, NULL);
	pthread_cond_init(&o->cv, NULL);
	if (pthread_create(&o->th, NULL, orphans_main, o) != 0) {
		pthread_mutex_destroy(&o->mu);
		pthread_cond_destroy(&o->cv);
		free(o);
		mk_errf(err, errlen, "cannot start the orphan reaper");
		return NULL;
	}
	return o;
}

void exec_orphans_stop(exec_orphans *o)
{
	const char *p[1];
	char err[256];
	PGconn *c;

	if (!o)
		return;
	pthread_mutex_lock(&o->mu);
	o->stop = 1;
	pthread_cond_broadcast(&o->cv);
	pthread_mutex_unlock(&o->mu);
	pthread_join(o->th, NULL);
	/* Gone for good: what it leaves unnamed by a session is an orphan at once. */
	p[0] = o->worker_id;
	c = mk_db_acquire(o->db, 5000, err, sizeof(err));
	if (c) {
		PQclear(mk_db_exec_prep(c, "DELETE FROM workers WHERE worker_id = $1", 1, p, err,
		                        sizeof(err), NULL));
		mk_db_release(o->db, c);
	}
	pthread_mutex_destroy(&o->mu);
	pthread_cond_destroy(&o->cv);
	free(o);
}
