/*
 * mk_db.c - the PostgreSQL connection pool and migration runner (see
 * mk_db.h).
 *
 * This is the one place in libmk that talks to libpq directly: it opens,
 * checks, resets and closes connections, and turns libpq's failures into
 * one-line messages in the caller's err buffer. It does not log, does not
 * retry queries and knows nothing of services or of proto/ errors; callers
 * translate its -1/NULL into their error replies.
 *
 * The pool is an array of slots (empty, idle or busy) under one mutex; a
 * condition variable on CLOCK_MONOTONIC wakes callers waiting for a slot.
 * Connecting, checking and resetting happen outside the mutex, in a slot
 * already marked busy, so a slow Postgres never blocks the other threads'
 * acquire and release.
 *
 * Secrets: the pool keeps a copy of the connection string and of the
 * password parsed out of it, both zeroed when the pool is freed. Messages
 * never quote the connection string, and any occurrence of the password in
 * a libpq message is masked before it reaches err.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-events.h>

#include "mk_db.h"
#include "mk_db_metrics.h"
#include "mk_time.h"

/* Postgres truncates longer identifiers (NAMEDATALEN - 1). */
#define SCHEMA_MAX 63
/* How long mk_db_migrate waits for a free connection; it runs at start-up. */
#define MIGRATE_WAIT_MS 30000

enum slot_state { SLOT_EMPTY, SLOT_IDLE, SLOT_BUSY };

struct slot {
	PGconn *conn; /* NULL while empty, and while busy being opened */
	enum slot_state state;
};

struct mk_db_pool {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a slot turns idle or empty */
	bool mu_ok, cv_ok;
	char *conninfo;
	char *password; /* parsed from conninfo, to mask in messages; or NULL */
	bool conninfo_ok;
	char *schema;  /* NULL: no search_path */
	char *options; /* the "options" parameter, or NULL */
	char *appname;
	char timeout_s[16];
	int size;
	struct slot *slots;
	int metric; /* the pool's label in the metrics */
};

/* Every change of a slot's state goes through here, so the metrics follow it (under mu). */
static void move(mk_db_pool *p, struct slot *s, enum slot_state st)
{
	mk_db_metrics_move(p->metric, s->state == SLOT_BUSY, s->state == SLOT_IDLE, st == SLOT_BUSY,
	                   st == SLOT_IDLE);
	s->state = st;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

/* Replace each occurrence of secret in s by "***" (never longer than what it replaces). */
static void mask(char *s, const char *secret)
{
	size_t n, m;
	char *hit;

	if (!secret || !*secret)
		return;
	n = strlen(secret);
	m = n < 3 ? n : 3;
	while ((hit = strstr(s, secret)) != NULL) {
		memset(hit, '*', m);
		memmove(hit + m, hit + n, strlen(hit + n) + 1);
		s = hit + m;
	}
}

/* Make s one line: runs of whitespace become one space; the ends are trimmed. */
static void one_line(char *s)
{
	char *r = s, *w = s;
	bool space = false;

	for (; *r; r++) {
		if (*r == ' ' || *r == '\t' || *r == '\n' || *r == '\r') {
			space = w != s;
			continue;
		}
		if (space)
			*w++ = ' ';
		space = false;
		*w++ = *r;
	}
	*w = '\0';
}

/*
 * Write a message into err (when there is one). The whole message is
 * formatted and masked before it is cut to errlen, so a truncation can
 * never leave part of the password behind.
 */
__attribute__((format(printf, 4, 5))) static void errf(const mk_db_pool *p, char *err,
                                                       size_t errlen, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0) {
		snprintf(err, errlen, "out of memory");
		return;
	}
	if (p)
		mask(msg, p->password);
	one_line(msg);
	snprintf(err, errlen, "%s", msg);
	explicit_bzero(msg, (size_t)n);
	free(msg);
}

static bool schema_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > SCHEMA_MAX || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/*
 * Parse conninfo once, to keep its password (for masking) and its own
 * "options" (which ours must extend, not replace). A string libpq cannot
 * parse is remembered as such and reported by acquire; libpq's parse
 * message is not kept because it quotes pieces of the string.
 */
static int parse_conninfo(mk_db_pool *p, const char *conninfo)
{
	PQconninfoOption *opts, *o;
	const char *dsn_options = NULL;
	char *perr = NULL;
	int rc = 0;

	opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		if (!perr)
			return -1; /* out of memory */
		PQfreemem(perr);
		p->conninfo_ok = false;
		return 0;
	}
	p->conninfo_ok = true;
	for (o = opts; o->keyword; o++) {
		if (!o->val || !*o->val)
			continue;
		if (strcmp(o->keyword, "password") == 0 && !(p->password = strdup(o->val)))
			rc = -1;
		else if (strcmp(o->keyword, "options") == 0)
			dsn_options = o->val;
	}
	if (rc == 0 && p->schema) {
		if (asprintf(&p->options, "%s%s-c search_path=%s,public",
		             dsn_options ? dsn_options : "", dsn_options ? " " : "",
		             p->schema) < 0) {
			p->options = NULL;
			rc = -1;
		}
	} else if (rc == 0 && dsn_options && !(p->options = strdup(dsn_options))) {
		rc = -1;
	}
	for (o = opts; o->keyword; o++)
		if (o->val && strcmp(o->keyword, "password") == 0)
			explicit_bzero(o->val, strlen(o->val));
	PQconninfoFree(opts);
	return rc;
}

mk_db_pool *mk_db_pool_new(const char *conninfo, const char *schema, int size,
                           int connect_timeout_ms)
{
	pthread_condattr_t ca;
	mk_db_pool *p;
	int secs;

	if (!conninfo || size < 1 || (schema && !schema_valid(schema)))
		return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->size = size;
	/* libpq takes whole seconds: round up, and never 0, which means forever. */
	secs = connect_timeout_ms <= 1000 ? 1 : (connect_timeout_ms - 1) / 1000 + 1;
	snprintf(p->timeout_s, sizeof(p->timeout_s), "%d", secs);
	p->slots = calloc((size_t)size, sizeof(*p->slots));
	p->conninfo = strdup(conninfo);
	p->schema = schema ? strdup(schema) : NULL;
	if (!p->slots || !p->conninfo || (schema && !p->schema))
		goto fail;
	if (asprintf(&p->appname, "mark%s%s", schema ? "-" : "", schema ? schema : "") < 0) {
		p->appname = NULL;
		goto fail;
	}
	if (parse_conninfo(p, conninfo) != 0)
		goto fail;
	if (pthread_mutex_init(&p->mu, NULL) != 0)
		goto fail;
	p->mu_ok = true;
	if (pthread_condattr_init(&ca) != 0)
		goto fail;
	if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
	    pthread_cond_init(&p->cv, &ca) == 0)
		p->cv_ok = true;
	pthread_condattr_destroy(&ca);
	if (!p->cv_ok)
		goto fail;
	p->metric = mk_db_metrics_pool(schema, size);
	return p;
fail:
	mk_db_pool_free(p);
	return NULL;
}

void mk_db_pool_free(mk_db_pool *p)
{
	int i;

	if (!p)
		return;
	for (i = 0; p->slots && i < p->size; i++) {
		assert(p->slots[i].state != SLOT_BUSY &&
		       "mk_db_pool_free with a connection still out");
		if (p->slots[i].conn)
			PQfinish(p->slots[i].conn);
		if (p->cv_ok)
			move(p, &p->slots[i], SLOT_EMPTY);
	}
	if (p->cv_ok) /* counted in by mk_db_pool_new */
		mk_db_metrics_pool_gone(p->metric, p->size);
	if (p->cv_ok)
		pthread_cond_destroy(&p->cv);
	if (p->mu_ok)
		pthread_mutex_destroy(&p->mu);
	wipe_free(p->conninfo);
	wipe_free(p->password);
	free(p->schema);
	free(p->options);
	free(p->appname);
	free(p->slots);
	free(p);
}

/* Drop notices ("schema ... already exists, skipping"): libpq would print them on stderr. */
static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static PGconn *open_conn(mk_db_pool *p, char *err, size_t errlen)
{
	const char *keys[5], *vals[5];
	PGconn *c;
	int n = 0;

	/* The connection string comes first so that what follows overrides it. */
	keys[n] = "dbname", vals[n++] = p->conninfo;
	keys[n] = "connect_timeout", vals[n++] = p->timeout_s;
	keys[n] = "fallback_application_name", vals[n++] = p->appname;
	if (p->options)
		keys[n] = "options", vals[n++] = p->options;
	keys[n] = NULL, vals[n] = NULL;
	c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		errf(p, err, errlen, "cannot connect to postgres: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		errf(p, err, errlen, "cannot connect to postgres: %s", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	return c;
}

/*
 * Is an idle connection still open? PQstatus only changes when libpq reads
 * from the socket, so read what is pending: a backend that went away while
 * the connection sat idle has left its FATAL message and then an EOF there,
 * which takes libpq two reads to see. Best effort: a query can still find
 * the connection dead, and release then drops it.
 */
static bool conn_alive(PGconn *c)
{
	struct pollfd pfd;
	int i;

	for (i = 0; i < 8 && PQstatus(c) == CONNECTION_OK; i++) {
		pfd.fd = PQsocket(c);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (pfd.fd < 0)
			return false;
		if (poll(&pfd, 1, 0) <= 0)
			break; /* nothing pending */
		if (!PQconsumeInput(c))
			return false;
	}
	return PQstatus(c) == CONNECTION_OK;
}

/* Make an idle connection usable, resetting it when it is broken. */
static int check_conn(mk_db_pool *p, PGconn *c, char *err, size_t errlen)
{
	if (conn_alive(c))
		return 0;
	PQreset(c);
	if (PQstatus(c) == CONNECTION_OK)
		return 0;
	errf(p, err, errlen, "cannot reconnect to postgres: %s", PQerrorMessage(c));
	return -1;
}

static struct slot *find_slot(mk_db_pool *p, enum slot_state st)
{
	int i;

	for (i = 0; i < p->size; i++)
		if (p->slots[i].state == st)
			return &p->slots[i];
	return NULL;
}

/* Hand a busy slot back: keep its connection idle, or close it and empty the slot. */
static void put_conn(mk_db_pool *p, PGconn *c, bool keep)
{
	struct slot *s = NULL;
	int i;

	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->size; i++)
		if (p->slots[i].conn == c && p->slots[i].state == SLOT_BUSY)
			s = &p->slots[i];
	assert(s && "mk_db_release of a connection this pool did not hand out");
	if (!s) {
		/* Never put it back twice: two callers would share it. */
		pthread_mutex_unlock(&p->mu);
		return;
	}
	if (keep) {
		move(p, s, SLOT_IDLE);
	} else {
		s->conn = NULL;
		move(p, s, SLOT_EMPTY);
	}
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	if (!keep)
		PQfinish(c);
}

static double seconds_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

PGconn *mk_db_acquire(mk_db_pool *p, int wait_ms, char *err, size_t errlen)
{
	struct timespec deadline;
	struct timespec t0, t1;
	struct slot *s;
	PGconn *c;
	int rc = 0, waited = 0;

	if (!p) {
		errf(NULL, err, errlen, "no database pool");
		return NULL;
	}
	if (!p->conninfo_ok) {
		errf(NULL, err, errlen, "cannot connect to postgres: invalid connection string");
		return NULL;
	}
	if (wait_ms < 0)
		wait_ms = 0;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += wait_ms / 1000;
	deadline.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* Look once more after a timeout: a slot may have freed just then. */
		if ((s = find_slot(p, SLOT_IDLE)) || (s = find_slot(p, SLOT_EMPTY)))
			break;
		if (!waited++)
			clock_gettime(CLOCK_MONOTONIC, &t0);
		if (rc != 0) {
			pthread_mutex_unlock(&p->mu);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			mk_db_metrics_waited(p->metric, seconds_between(&t0, &t1), 0);
			errf(NULL, err, errlen,
			     "no database connection free after %d ms (pool of %d)", wait_ms,
			     p->size);
			return NULL;
		}
		rc = pthread_cond_timedwait(&p->cv, &p->mu, &deadline);
	}
	move(p, s, SLOT_BUSY);
	c = s->conn;
	pthread_mutex_unlock(&p->mu);
	if (waited) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		mk_db_metrics_waited(p->metric, seconds_between(&t0, &t1), 1);
	}

	if (c) {
		if (check_conn(p, c, err, errlen) == 0)
			return c;
		put_conn(p, c, false);
		return NULL;
	}
	c = open_conn(p, err, errlen);
	pthread_mutex_lock(&p->mu);
	if (c) {
		s->conn = c;
	} else {
		move(p, s, SLOT_EMPTY);
		pthread_cond_signal(&p->cv);
	}
	pthread_mutex_unlock(&p->mu);
	return c;
}

void mk_db_release(mk_db_pool *p, PGconn *c)
{
	if (!p || !c)
		return;
	put_conn(p, c, PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE);
}

int mk_db_ping(mk_db_pool *p, int wait_ms)
{
	PGresult *r;
	PGconn *c;
	int rc;

	c = mk_db_acquire(p, wait_ms, NULL, 0);
	if (!c)
		return -1;
	r = PQexec(c, "SELECT 1");
	rc = PQresultStatus(r) == PGRES_TUPLES_OK ? 0 : -1;
	PQclear(r);
	mk_db_release(p, c);
	return rc;
}

/* Describe a failed result r (may be NULL) of c: Postgres's message and SQLSTATE. */
static void result_err(PGconn *c, const PGresult *r, char *err, size_t errlen, char sqlstate[6])
{
	const char *msg = NULL, *state = NULL;
	ExecStatusType st;

	if (r) {
		st = PQresultStatus(r);
		if (st != PGRES_BAD_RESPONSE && st != PGRES_NONFATAL_ERROR &&
		    st != PGRES_FATAL_ERROR) {
			errf(NULL, err, errlen, "unexpected result status '%s'", PQresStatus(st));
		} else {
			msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
			if (!msg || !*msg)
				msg = PQresultErrorMessage(r);
			state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
		}
	}
	if (!r || msg) {
		if (!msg || !*msg)
			msg = PQerrorMessage(c);
		errf(NULL, err, errlen, "%s", msg && *msg ? msg : "unknown error");
	}
	if (sqlstate)
		snprintf(sqlstate, 6, "%s", state ? state : "");
}

/* Keep an ok result; otherwise clear it and describe the failure. */
static PGresult *ok_or_fail(PGconn *c, PGresult *r, char *err, size_t errlen, char sqlstate[6])
{
	ExecStatusType st = PQresultStatus(r);

	if (r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
		return r;
	result_err(c, r, err, errlen, sqlstate);
	PQclear(r);
	return NULL;
}

PGresult *mk_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *err,
                     size_t errlen, char sqlstate[6])
{
	return ok_or_fail(c, PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0), err,
	                  errlen, sqlstate);
}

PGresult *mk_db_exec_until(PGconn *c, const char *sql, int64_t deadline, char *err, size_t errlen,
                           char sqlstate[6])
{
	PGresult *r, *last = NULL;
	int cancelled = 0;

	if (!PQsendQueryParams(c, sql, 0, NULL, NULL, NULL, NULL, 0))
		return ok_or_fail(c, NULL, err, errlen, sqlstate);
	for (;;) {
		while (PQisBusy(c)) {
			int64_t left = deadline - mk_mono_ms();
			struct pollfd pf = {PQsocket(c), POLLIN, 0};

			if (left <= 0 && !cancelled) {
				/* Past the deadline: the server stops the statement. */
				PGcancel *cn = PQgetCancel(c);
				char buf[256];

				if (cn) {
					PQcancel(cn, buf, sizeof(buf));
					PQfreeCancel(cn);
				}
				cancelled = 1;
				deadline = mk_mono_ms() + MK_DB_CANCEL_WAIT_MS;
				continue;
			}
			if (left <= 0) {
				/* The server did not stop it: the connection is left busy (closed
				 * on release). */
				PQclear(last);
				snprintf(err, errlen, "the statement did not stop when cancelled");
				if (sqlstate)
					memcpy(sqlstate, "57014", 6);
				return NULL;
			}
			if (poll(&pf, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR)
				break;
			if (!PQconsumeInput(c))
				break;
		}
		r = PQgetResult(c);
		if (!r)
			break;
		if (last && PQresultStatus(last) == PGRES_FATAL_ERROR)
			PQclear(r); /* keep the first error */
		else {
			PQclear(last);
			last = r;
		}
	}
	if (cancelled && last && PQresultStatus(last) != PGRES_FATAL_ERROR) {
		PQclear(last);
		last = NULL;
	}
	if (cancelled && !last) {
		snprintf(err, errlen, "canceling statement due to the deadline");
		if (sqlstate)
			memcpy(sqlstate, "57014", 6);
		return NULL;
	}
	return ok_or_fail(c, last, err, errlen, sqlstate);
}

void mk_db_discard(mk_db_pool *p, PGconn *c)
{
	if (p && c)
		put_conn(p, c, false);
}

/*
 * Prepared statements, per connection: the statements a connection has
 * prepared live in its libpq instance data, keyed by the SQL text's
 * address (mk_db_exec_prep takes only static strings), and are forgotten
 * when libpq resets or frees the connection.
 */
#define PREP_MAX 128

typedef struct {
	const char *sql[PREP_MAX];
	int n;
} prep_set;

static int prep_event(PGEventId id, void *info, void *pass)
{
	(void)pass;
	if (id == PGEVT_CONNRESET) {
		prep_set *ps = PQinstanceData(((PGEventConnReset *)info)->conn, prep_event);

		if (ps)
			ps->n = 0;
	} else if (id == PGEVT_CONNDESTROY) {
		free(PQinstanceData(((PGEventConnDestroy *)info)->conn, prep_event));
	}
	return 1;
}

PGresult *mk_db_exec_prep(PGconn *c, const char *sql, int nparams, const char *const *params,
                          char *err, size_t errlen, char sqlstate[6])
{
	prep_set *ps = PQinstanceData(c, prep_event);
	char name[16];
	PGresult *r;
	int i;

	if (!ps) {
		ps = calloc(1, sizeof(*ps));
		if (!ps || !PQregisterEventProc(c, prep_event, "mk_db", NULL) ||
		    !PQsetInstanceData(c, prep_event, ps)) {
			free(ps);
			return mk_db_exec(c, sql, nparams, params, err, errlen, sqlstate);
		}
	}
	for (i = 0; i < ps->n && ps->sql[i] != sql; i++)
		;
	snprintf(name, sizeof(name), "mk%d", i);
	if (i == ps->n) {
		if (i == PREP_MAX)
			return mk_db_exec(c, sql, nparams, params, err, errlen, sqlstate);
		r = ok_or_fail(c, PQprepare(c, name, sql, nparams, NULL), err, errlen, sqlstate);
		if (!r)
			return NULL;
		PQclear(r);
		ps->sql[ps->n++] = sql;
	}
	return ok_or_fail(c, PQexecPrepared(c, name, nparams, params, NULL, NULL, 0), err, errlen,
	                  sqlstate);
}

/* Run sql without keeping the result; 0 or -1 with the message in msg. */
static int run(PGconn *c, const char *sql, int nparams, const char *const *params, char *msg,
               size_t msglen)
{
	PGresult *r;

	r = mk_db_exec(c, sql, nparams, params, msg, msglen, NULL);
	PQclear(r);
	return r ? 0 : -1;
}

static int check_order(const mk_migration *m, size_t n, char *err, size_t errlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (!m[i].name || !m[i].sql) {
			errf(NULL, err, errlen, "migration #%zu has no name or no sql", i);
			return -1;
		}
		if (i > 0 && m[i].version <= m[i - 1].version) {
			errf(NULL, err, errlen,
			     "migration '%s': version %d does not follow '%s' (versions must "
			     "increase)",
			     m[i].name, m[i].version, m[i - 1].name);
			return -1;
		}
	}
	return 0;
}

/* Apply one migration in its own transaction; on failure roll it back. */
static int apply_one(PGconn *c, const char *schema, const mk_migration *m, char *err, size_t errlen)
{
	char sql[256], version[16], msg[1024];
	const char *params[2];
	PGresult *r;
	ExecStatusType st;

	if (run(c, "BEGIN", 0, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	snprintf(sql, sizeof(sql), "SET LOCAL search_path TO \"%s\", public", schema);
	if (run(c, sql, 0, NULL, msg, sizeof(msg)) != 0)
		goto fail;
	/* PQexec, not PQexecParams: a migration file may hold many statements. */
	r = PQexec(c, m->sql);
	st = PQresultStatus(r);
	if (!r || (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)) {
		result_err(c, r, msg, sizeof(msg), NULL);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
		snprintf(msg, sizeof(msg),
		         "it ended its transaction itself (no BEGIN/COMMIT in migrations)");
		goto fail;
	}
	snprintf(sql, sizeof(sql),
	         "INSERT INTO \"%s\".schema_migrations (version, name) VALUES ($1, $2)", schema);
	snprintf(version, sizeof(version), "%d", m->version);
	params[0] = version;
	params[1] = m->name;
	if (run(c, sql, 2, params, msg, sizeof(msg)) != 0)
		goto fail;
	/* A COMMIT that turns into a ROLLBACK still reports COMMAND_OK. */
	r = PQexec(c, "COMMIT");
	st = PQresultStatus(r);
	if (st != PGRES_COMMAND_OK || strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		if (st == PGRES_COMMAND_OK)
			snprintf(msg, sizeof(msg), "commit was turned into '%s'", PQcmdStatus(r));
		else
			result_err(c, r, msg, sizeof(msg), NULL);
		PQclear(r);
		goto fail;
	}
	PQclear(r);
	return 0;
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	errf(NULL, err, errlen, "migration '%s': %s", m->name, msg);
	return -1;
}

/*
 * Compare what the database recorded with the list: a recorded version
 * whose name differs, or a name recorded under another version, means a
 * migration was renamed or renumbered after it ran. Versions the list does
 * not know are ignored. applied[i] is set for each migration recorded.
 */
static int check_recorded(const PGresult *r, const mk_migration *m, size_t n, bool *applied,
                          char *err, size_t errlen)
{
	int row, rows = PQntuples(r);
	size_t i = 0;
	long v;

	for (row = 0; row < rows; row++) {
		v = strtol(PQgetvalue(r, row, 0), NULL, 10);
		while (i < n && m[i].version < v)
			i++;
		if (i == n)
			break;
		if (m[i].version != v)
			continue;
		if (strcmp(m[i].name, PQgetvalue(r, row, 1)) != 0) {
			errf(NULL, err, errlen,
			     "migration '%s': version %d was applied as '%s' (renamed or "
			     "renumbered?)",
			     m[i].name, m[i].version, PQgetvalue(r, row, 1));
			return -1;
		}
		applied[i] = true;
	}
	for (i = 0; i < n; i++) {
		for (row = 0; !applied[i] && row < rows; row++) {
			if (strcmp(m[i].name, PQgetvalue(r, row, 1)) == 0) {
				errf(NULL, err, errlen,
				     "migration '%s': applied as version %s, now numbered %d",
				     m[i].name, PQgetvalue(r, row, 0), m[i].version);
				return -1;
			}
		}
	}
	return 0;
}

int mk_db_migrate(mk_db_pool *p, const mk_migration *migrations, size_t n, char *err, size_t errlen)
{
	static const char lock_sql[] = "SELECT pg_advisory_lock(hashtext('mark.migrate.' || $1))";
	static const char unlock_sql[] =
	    "SELECT pg_advisory_unlock(hashtext('mark.migrate.' || $1))";
	char sql[512], msg[1024];
	const char *schema;
	bool *applied = NULL, keep;
	PGresult *r;
	PGconn *c;
	int count = 0, rc = -1;
	size_t i;

	if (!p || !p->schema) {
		errf(NULL, err, errlen, "cannot migrate: the pool has no schema");
		return -1;
	}
	if (n > 0 && !migrations) {
		errf(NULL, err, errlen, "cannot migrate: no migrations given");
		return -1;
	}
	if (check_order(migrations, n, err, errlen) != 0)
		return -1;
	schema = p->schema;
	c = mk_db_acquire(p, MIGRATE_WAIT_MS, err, errlen);
	if (!c)
		return -1;
	/* A session lock, held across the per-migration transactions. */
	if (run(c, lock_sql, 1, &schema, msg, sizeof(msg)) != 0) {
		errf(NULL, err, errlen, "migrate '%s': cannot take the advisory lock: %s", schema,
		     msg);
		mk_db_release(p, c);
		return -1;
	}

	applied = calloc(n ? n : 1, sizeof(*applied));
	if (!applied) {
		errf(NULL, err, errlen, "migrate '%s': out of memory", schema);
		goto out;
	}
	snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
	if (run(c, sql, 0, NULL, msg, sizeof(msg)) != 0) {
		errf(NULL, err, errlen, "migrate '%s': cannot create the schema: %s", schema, msg);
		goto out;
	}
	snprintf(sql, sizeof(sql),
	         "CREATE TABLE IF NOT EXISTS \"%s\".schema_migrations ("
	         "version int PRIMARY KEY, name text NOT NULL, "
	         "applied_at timestamptz NOT NULL DEFAULT now())",
	         schema);
	if (run(c, sql, 0, NULL, msg, sizeof(msg)) != 0) {
		errf(NULL, err, errlen, "migrate '%s': cannot create schema_migrations: %s", schema,
		     msg);
		goto out;
	}
	snprintf(sql, sizeof(sql),
	         "SELECT version, name FROM \"%s\".schema_migrations ORDER BY version", schema);
	r = mk_db_exec(c, sql, 0, NULL, msg, sizeof(msg), NULL);
	if (!r) {
		errf(NULL, err, errlen, "migrate '%s': cannot read schema_migrations: %s", schema,
		     msg);
		goto out;
	}
	if (check_recorded(r, migrations, n, applied, err, errlen) != 0) {
		PQclear(r);
		goto out;
	}
	PQclear(r);

	for (i = 0; i < n; i++) {
		if (applied[i])
			continue;
		if (apply_one(c, schema, &migrations[i], err, errlen) != 0)
			goto out;
		count++;
	}
	rc = count;
out:
	free(applied);
	/*
	 * If the unlock fails the session may still hold the lock: close the
	 * connection, which releases it, rather than pool it.
	 */
	r = mk_db_exec(c, unlock_sql, 1, &schema, msg, sizeof(msg), NULL);
	keep = r && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (keep)
		mk_db_release(p, c);
	else
		put_conn(p, c, false);
	return rc;
}
