/*
 * llm_turn_events.c - a streamed turn's events, readable from any llm
 * replica (chat.turn_events).
 *
 * The replica running a turn keeps its events in memory for its own
 * pollers and writes them to Postgres (chat.turn_events) from one thread
 * of its own, the turn bus, which also NOTIFYs `mark_turn` so that pollers
 * on other replicas wake, and beats each running turn's heartbeat. A
 * poller on another replica reads the events from the table. A turn whose
 * replica stopped beating for LLM_TURN_LOST_AFTER is over: the first
 * poller to see it ends it with a `final` event saying so, and records the
 * same story as the chat's answer (the question was saved first).
 */
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "llm.h"
#include "mk_buf.h"
#include "mk_log.h"
#include "mk_time.h"

/* How long an ended turn's events stay in memory for a late reader. */
#define TURN_KEEP_MS (5 * 60 * 1000)
/* Events kept per turn; answer text beyond it still reaches the final event. */
#define TURN_MAX_EVENTS 4000
/* Turns and their events are kept in the database this long. */
#define TURN_ROWS_KEEP "1 day"

#define LOST_STORY                                                                                 \
	"I lost track of this answer: the part of Mark that was working on it stopped. Your "      \
	"question is saved; please ask it again."

struct llm_stream {
	char id[37];
	char owner[MK_CALLER_MAX + 1];
	cJSON *events; /* array of {seq, event, data} */
	int stored;    /* events written to the database */
	int done, closed_in_db;
	int64_t ended_ms;
	struct llm_stream *next;
};

struct llm_turns {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* an event here, or a notification from another replica */
	llm_stream *list;
	int running; /* streamed turns on their own threads */
	char replica[37];
	long long lost_after_ms;
	char *dsn;
	int stop;
	pthread_t bus;
	int bus_started;
};

static void uuid_new(char out[37])
{
	unsigned char b[16];

	randombytes_buf(b, sizeof(b));
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
}

/* ------------------------------------------------------------------ the turn bus */

static PGconn *bus_connect(struct llm_turns *ts)
{
	PGconn *c = PQconnectdb(ts->dsn);
	PGresult *r;

	if (PQstatus(c) != CONNECTION_OK) {
		MK_WARN("LLM-TURN-BUS", NULL, "cannot connect: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	r = PQexec(c, "SET search_path TO chat; LISTEN mark_turn");
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		MK_WARN("LLM-TURN-BUS", NULL, "cannot listen: %s", PQerrorMessage(c));
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

static int bus_exec(PGconn *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		MK_WARN("LLM-TURN-BUS", NULL, "%s", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

/* Write what the turns here have not written yet; -1 when the connection failed. */
static int bus_flush(struct llm_turns *ts, PGconn *c)
{
	for (;;) {
		llm_stream *t;
		cJSON *batch = NULL;
		char *json = NULL, id[37];
		int upto = 0, close_it = 0;

		pthread_mutex_lock(&ts->mu);
		for (t = ts->list; t; t = t->next)
			if (t->stored < cJSON_GetArraySize(t->events) ||
			    (t->done && !t->closed_in_db))
				break;
		if (t) {
			batch = cJSON_CreateArray();
			for (int i = t->stored; i < cJSON_GetArraySize(t->events); i++)
				cJSON_AddItemToArray(
				    batch, cJSON_Duplicate(cJSON_GetArrayItem(t->events, i), 1));
			upto = cJSON_GetArraySize(t->events);
			close_it = t->done;
			snprintf(id, sizeof(id), "%s", t->id);
		}
		pthread_mutex_unlock(&ts->mu);
		if (!t)
			return 0;
		json = cJSON_PrintUnformatted(batch);
		cJSON_Delete(batch);
		{
			const char *p[2] = {id, json};
			int rc = bus_exec(
			    c,
			    "WITH e AS (INSERT INTO turn_events (turn_id, seq, event, data) "
			    "SELECT $1::uuid, (x->>'seq')::int, x->>'event', x->'data' "
			    "FROM jsonb_array_elements($2::jsonb) x "
			    "ON CONFLICT DO NOTHING) SELECT pg_notify('mark_turn', $1::text)",
			    2, p);

			if (rc == 0 && close_it)
				rc =
				    bus_exec(c, "UPDATE turns SET done = true WHERE id = $1", 1, p);
			free(json);
			/* A lost connection is retried; a statement that fails is not (it would
			 * again). */
			if (rc != 0 && PQstatus(c) != CONNECTION_OK)
				return -1;
		}
		pthread_mutex_lock(&ts->mu);
		for (t = ts->list; t; t = t->next)
			if (strcmp(t->id, id) == 0) {
				t->stored = upto;
				t->closed_in_db = close_it;
			}
		pthread_mutex_unlock(&ts->mu);
	}
}

static void *bus_main(void *arg)
{
	struct llm_turns *ts = arg;
	PGconn *c = NULL;
	int64_t beat_at = 0, prune_at = 0;
	char lost[32];

	snprintf(lost, sizeof(lost), "%lld", ts->lost_after_ms);
	for (;;) {
		struct pollfd pfd;
		PGnotify *n;
		int stop, woke = 0;

		pthread_mutex_lock(&ts->mu);
		stop = ts->stop;
		pthread_mutex_unlock(&ts->mu);
		if (!c && !(c = bus_connect(ts))) {
			if (stop)
				break;
			mk_sleep_ms(500);
			continue;
		}
		if (bus_flush(ts, c) != 0 && PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
			continue;
		}
		if (stop)
			break;
		if (mk_mono_ms() >= beat_at) {
			const char *p[1] = {ts->replica};

			bus_exec(
			    c,
			    "UPDATE turns SET heartbeat_at = now() WHERE replica = $1 AND NOT done",
			    1, p);
			beat_at = mk_mono_ms() + ts->lost_after_ms / 4;
		}
		if (mk_mono_ms() >= prune_at) {
			bus_exec(
			    c,
			    "DELETE FROM turns WHERE created_at < now() - interval '" TURN_ROWS_KEEP
			    "'",
			    0, NULL);
			prune_at = mk_mono_ms() + 3600 * 1000;
		}
		/* Notifications from every replica wake this one's pollers. */
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 50) > 0 && !PQconsumeInput(c)) {
			PQfinish(c);
			c = NULL;
			continue;
		}
		while ((n = PQnotifies(c)) != NULL) {
			woke = 1;
			PQfreemem(n);
		}
		if (woke) {
			pthread_mutex_lock(&ts->mu);
			pthread_cond_broadcast(&ts->cv);
			pthread_mutex_unlock(&ts->mu);
		}
	}
	if (c)
		PQfinish(c);
	return NULL;
}

/* ------------------------------------------------------------------ registry */

int llm_turns_init(llm *l, char *err, size_t errlen)
{
	struct llm_turns *ts = calloc(1, sizeof(*ts));

	if (!ts || !(ts->dsn = strdup(l->cfg->svc.database_url))) {
		free(ts);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&ts->mu, NULL);
	pthread_cond_init(&ts->cv, NULL);
	uuid_new(ts->replica);
	ts->lost_after_ms = l->cfg->turn_lost_after_ms;
	l->turns = ts;
	if (pthread_create(&ts->bus, NULL, bus_main, ts) != 0) {
		mk_errf(err, errlen, "cannot start the turn bus");
		return -1;
	}
	ts->bus_started = 1;
	MK_INFO("LLM-REPLICA", NULL, "replica %s: streamed turns are readable from every replica",
	        ts->replica);
	return 0;
}

int llm_turns_wait(llm *l, int grace_ms)
{
	int64_t until = mk_mono_ms() + grace_ms;
	int n;

	for (;;) {
		pthread_mutex_lock(&l->turns->mu);
		n = l->turns->running;
		pthread_mutex_unlock(&l->turns->mu);
		if (n == 0 || mk_mono_ms() >= until)
			return n;
		mk_sleep_ms(50);
	}
}

void llm_turns_free(llm *l)
{
	struct llm_turns *ts = l->turns;
	llm_stream *t;

	if (!ts)
		return;
	if (ts->bus_started) {
		/* The bus writes what is left, then ends. */
		pthread_mutex_lock(&ts->mu);
		ts->stop = 1;
		pthread_mutex_unlock(&ts->mu);
		pthread_join(ts->bus, NULL);
	}
	while ((t = ts->list) != NULL) {
		ts->list = t->next;
		cJSON_Delete(t->events);
		free(t);
	}
	pthread_mutex_destroy(&ts->mu);
	pthread_cond_destroy(&ts->cv);
	free(ts->dsn);
	free(ts);
	l->turns = NULL;
}

/* Forget turns that ended long ago and are written. Lock held. */
static void turns_prune(struct llm_turns *ts)
{
	llm_stream **pp = &ts->list;
	int64_t now = mk_mono_ms();

	while (*pp) {
		llm_stream *t = *pp;

		if (t->done && t->closed_in_db && now - t->ended_ms > TURN_KEEP_MS) {
			*pp = t->next;
			cJSON_Delete(t->events);
			free(t);
		} else {
			pp = &t->next;
		}
	}
}

llm_stream *llm_stream_open(llm *l, PGconn *db, const char *owner, const char *chat_id, char *err,
                            size_t errlen)
{
	struct llm_turns *ts = l->turns;
	llm_stream *t = calloc(1, sizeof(*t));
	PGresult *r;

	if (!t || !(t->events = cJSON_CreateArray())) {
		free(t);
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	uuid_new(t->id);
	snprintf(t->owner, sizeof(t->owner), "%s", owner);
	{
		const char *p[4] = {t->id, owner, chat_id, ts->replica};

		r = mk_db_exec(db,
		               "INSERT INTO turns (id, owner_id, chat_id, replica) "
		               "VALUES ($1, $2, $3, $4)",
		               4, p, err, errlen, NULL);
	}
	if (!r) {
		cJSON_Delete(t->events);
		free(t);
		return NULL;
	}
	PQclear(r);
	pthread_mutex_lock(&ts->mu);
	turns_prune(ts);
	t->next = ts->list;
	ts->list = t;
	ts->running++;
	pthread_mutex_unlock(&ts->mu);
	return t;
}

const char *llm_stream_id(const llm_stream *t)
{
	return t->id;
}

void llm_stream_emit(llm *l, llm_stream *t, const char *event, cJSON *data)
{
	struct llm_turns *ts = l->turns;
	cJSON *e;

	if (!t) {
		cJSON_Delete(data);
		return;
	}
	pthread_mutex_lock(&ts->mu);
	if (cJSON_GetArraySize(t->events) < TURN_MAX_EVENTS || strcmp(event, "final") == 0) {
		e = cJSON_CreateObject();
		cJSON_AddNumberToObject(e, "seq", (double)cJSON_GetArraySize(t->events) + 1);
		cJSON_AddStringToObject(e, "event", event);
		cJSON_AddItemToObject(e, "data", data ? data : cJSON_CreateObject());
		cJSON_AddItemToArray(t->events, e);
		data = NULL;
	}
	pthread_cond_broadcast(&ts->cv);
	pthread_mutex_unlock(&ts->mu);
	cJSON_Delete(data);
}

void llm_stream_close(llm *l, llm_stream *t)
{
	struct llm_turns *ts = l->turns;

	pthread_mutex_lock(&ts->mu);
	t->done = 1;
	t->ended_ms = mk_mono_ms();
	ts->running--;
	pthread_cond_broadcast(&ts->cv);
	pthread_mutex_unlock(&ts->mu);
}

/* ------------------------------------------------------------------ chat.turn_events */

/* Wait on the registry's condition until until (mk_mono_ms). Lock held. */
static void wait_until(struct llm_turns *ts, int64_t until)
{
	struct timespec tsp;
	int64_t left = until - mk_mono_ms();

	if (left <= 0)
		return;
	clock_gettime(CLOCK_REALTIME, &tsp);
	tsp.tv_sec += (time_t)(left / 1000);
	tsp.tv_nsec += (long)(left % 1000) * 1000000L;
	if (tsp.tv_nsec >= 1000000000L) {
		tsp.tv_sec++;
		tsp.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&ts->cv, &ts->mu, &tsp);
}

/* The events of a turn this replica runs (or ran): from memory. */
static void events_here(struct llm_turns *ts, llm_stream *t, long long after, int64_t until,
                        cJSON **reply)
{
	cJSON *events = cJSON_CreateArray();
	int done;

	/* Long poll: wait for an event past `after`, or the end. Lock held. */
	while (!t->done && cJSON_GetArraySize(t->events) <= after && mk_mono_ms() < until)
		wait_until(ts, until);
	for (int i = (int)after; i < cJSON_GetArraySize(t->events); i++)
		cJSON_AddItemToArray(events, cJSON_Duplicate(cJSON_GetArrayItem(t->events, i), 1));
	done = t->done && cJSON_GetArraySize(t->events) <= after + cJSON_GetArraySize(events);
	pthread_mutex_unlock(&ts->mu);
	*reply = cJSON_CreateObject();
	cJSON_AddItemToObject(*reply, "events", events);
	cJSON_AddBoolToObject(*reply, "done", done);
}

/*
 * End a turn whose replica stopped: a final event with the story, and the
 * story as the chat's answer. Only the first poller to see it does so.
 */
static void end_lost_turn(PGconn *db, const char *id)
{
	char err[256], msg_id[37];
	PGresult *r;
	cJSON *d, *e, *content;
	char *json, *cj, *ej;
	const char *p[2] = {id, NULL};

	r = mk_db_exec(db,
	               "UPDATE turns SET done = true WHERE id = $1 AND NOT done RETURNING chat_id",
	               1, p, err, sizeof(err), NULL);
	if (!r || PQntuples(r) != 1) {
		PQclear(r);
		return;
	}
	MK_WARN("LLM-TURN-LOST", NULL, "turn %s: its replica stopped; ended it", id);
	d = cJSON_CreateObject();
	cJSON_AddStringToObject(d, "chat_id", PQgetvalue(r, 0, 0));
	cJSON_AddStringToObject(d, "answer_story", LOST_STORY);
	e = cJSON_AddObjectToObject(d, "error");
	cJSON_AddStringToObject(e, "code", "turn_lost");
	cJSON_AddStringToObject(e, "message", "the llm replica running this turn stopped");
	content = cJSON_CreateArray();
	{
		cJSON *part = cJSON_CreateObject();

		cJSON_AddStringToObject(part, "type", "text");
		cJSON_AddStringToObject(part, "text", LOST_STORY);
		cJSON_AddItemToArray(content, part);
	}
	cj = cJSON_PrintUnformatted(content);
	ej = cJSON_PrintUnformatted(e);
	if (llm_message_add(db, PQgetvalue(r, 0, 0), "assistant", cj, NULL, NULL, NULL, ej,
	                    llm_tokens_estimate(LOST_STORY), msg_id, err, sizeof(err)) == 0)
		cJSON_AddStringToObject(d, "message_id", msg_id);
	PQclear(r);
	json = cJSON_PrintUnformatted(d);
	p[1] = json;
	r = mk_db_exec(db,
	               "INSERT INTO turn_events (turn_id, seq, event, data) SELECT $1, "
	               "coalesce(max(seq), 0) + 1, 'final', $2::jsonb FROM turn_events "
	               "WHERE turn_id = $1",
	               2, p, err, sizeof(err), NULL);
	PQclear(r);
	free(json);
	free(cj);
	free(ej);
	cJSON_Delete(content);
	cJSON_Delete(d);
}

/* The events of a turn another replica runs (or ran): from the database. */
static mk_err events_elsewhere(llm *l, const mk_env *req, const char *id, long long after,
                               int64_t until, cJSON **reply, char *err, size_t errlen)
{
	struct llm_turns *ts = l->turns;
	char after_s[24], lost_s[24];

	snprintf(after_s, sizeof(after_s), "%lld", after);
	snprintf(lost_s, sizeof(lost_s), "%lld", ts->lost_after_ms);
	for (;;) {
		const char *p[3] = {id, req->caller.user_id, lost_s};
		PGconn *db = mk_svc_db_acquire(&l->svc, req, err, errlen);
		PGresult *r;
		int done, lost, n;

		if (!db)
			return MK_E_DB;
		r = mk_db_exec(db,
		               "SELECT done, now() - heartbeat_at > $3::bigint * interval '1 ms' "
		               "FROM turns WHERE id = $1 AND owner_id = $2",
		               3, p, err, errlen, NULL);
		if (!r) {
			mk_db_release(l->svc.db, db);
			return MK_E_DB;
		}
		if (PQntuples(r) != 1) {
			PQclear(r);
			mk_db_release(l->svc.db, db);
			mk_errf(err, errlen, "no turn '%s'", id);
			return MK_E_NOT_FOUND;
		}
		done = PQgetvalue(r, 0, 0)[0] == 't';
		lost = !done && PQgetvalue(r, 0, 1)[0] == 't';
		PQclear(r);
		if (lost) {
			end_lost_turn(db, id);
			done = 1;
		}
		p[1] = after_s;
		r = mk_db_exec(
		    db,
		    "SELECT coalesce(jsonb_agg(jsonb_build_object('seq', seq, 'event', event, "
		    "'data', data) ORDER BY seq), '[]') FROM (SELECT * FROM turn_events "
		    "WHERE turn_id = $1 AND seq > $2::int ORDER BY seq LIMIT 1000) e",
		    2, p, err, errlen, NULL);
		mk_db_release(l->svc.db, db);
		if (!r)
			return MK_E_DB;
		*reply = cJSON_CreateObject();
		{
			cJSON *events = cJSON_Parse(PQgetvalue(r, 0, 0));

			n = cJSON_GetArraySize(events);
			cJSON_AddItemToObject(*reply, "events",
			                      events ? events : cJSON_CreateArray());
		}
		PQclear(r);
		/* Done when ended and nothing more is left to read. */
		cJSON_AddBoolToObject(*reply, "done", done && n < 1000);
		if (n > 0 || done || mk_mono_ms() >= until)
			return MK_OK;
		cJSON_Delete(*reply);
		*reply = NULL;
		/* Wait for a notification (any replica's), at most a second: the heartbeat may
		 * lapse. */
		pthread_mutex_lock(&ts->mu);
		wait_until(ts, mk_mono_ms() + 1000 < until ? mk_mono_ms() + 1000 : until);
		pthread_mutex_unlock(&ts->mu);
	}
}

mk_err llm_turn_events(LLM_HANDLER_ARGS)
{
	struct llm_turns *ts = l->turns;
	const char *id = mk_json_str(req->body, "turn_id");
	long long after = 0, wait = 15000;
	llm_stream *t;

	if (!llm_uuid_valid(id)) {
		mk_errf(err, errlen, "no turn '%s'", id);
		return MK_E_NOT_FOUND;
	}
	mk_json_int(req->body, "after", &after);
	mk_json_int(req->body, "wait_ms", &wait);
	if (req->deadline_ms && req->deadline_ms - mk_now_ms() - 500 < wait)
		wait = req->deadline_ms - mk_now_ms() - 500;
	pthread_mutex_lock(&ts->mu);
	for (t = ts->list; t; t = t->next)
		if (strcmp(t->id, id) == 0 && strcmp(t->owner, req->caller.user_id) == 0)
			break;
	if (t) {
		events_here(ts, t, after, mk_mono_ms() + (wait > 0 ? wait : 0), reply);
		return MK_OK;
	}
	pthread_mutex_unlock(&ts->mu);
	return events_elsewhere(l, req, id, after, mk_mono_ms() + (wait > 0 ? wait : 0), reply, err,
	                        errlen);
}

void llm_turns_ping(void *ud, cJSON *reply)
{
	llm *l = ud;
	char err[200];
	PGconn *db = mk_db_acquire(l->svc.db, 500, err, sizeof(err));
	PGresult *r;
	cJSON *o, *by;
	double total = 0;

	if (!db)
		return;
	r = mk_db_exec(db,
	               "SELECT count(*) FROM turns WHERE created_at > now() - interval '1 hour' "
	               "GROUP BY replica ORDER BY 1 DESC LIMIT 64",
	               0, NULL, err, sizeof(err), NULL);
	mk_db_release(l->svc.db, db);
	if (!r)
		return;
	o = cJSON_AddObjectToObject(reply, "turns_last_hour");
	by = o ? cJSON_AddArrayToObject(o, "by_replica") : NULL;
	for (int i = 0; by && i < PQntuples(r); i++) {
		double n = strtod(PQgetvalue(r, i, 0), NULL);

		cJSON_AddItemToArray(by, cJSON_CreateNumber(n));
		total += n;
	}
	if (o)
		cJSON_AddNumberToObject(o, "total", total);
	PQclear(r);
}
