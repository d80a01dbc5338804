/*
 * db_test.c - unit tests for common/mk_db.c against a real Postgres.
 *
 * The database comes from MARK_TEST_DATABASE_URL (scripts/pg.sh start
 * prints one); without it the suite fails rather than skips. Each test
 * works in its own schema, t_<runner pid>_<test pid>_<n>, drops it at the
 * end, and main drops whatever a failed test left behind. Only the runner's
 * own schemas are touched, so two runs may share a database.
 */
#include <check.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mk_db.h"
#include "mk_time.h"

#define SECRET "s3cr3tpw"

/* A pool's connect timeout: reaching Postgres is not what these tests time. */
#define CONNECT_MS 30000

static const char *dsn;
static pid_t runner_pid;

static void quiet_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void new_schema(char *buf, size_t len)
{
	static int n;

	snprintf(buf, len, "t_%d_%d_%d", (int)runner_pid, (int)getpid(), n++);
}

/* A connection outside any pool, to look at and clean up after the pool. */
static PGconn *admin_connect(void)
{
	PGconn *c = PQconnectdb(dsn);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "admin connection: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	return c;
}

/* Run sql as admin and return the first value (caller frees), or NULL when there is none. */
static char *admin_run(const char *sql)
{
	char *v = NULL;
	PGresult *r;
	PGconn *c;

	c = admin_connect();
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
	              "%s: %s", sql, PQerrorMessage(c));
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
		v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

__attribute__((format(printf, 1, 2))) static void admin_exec(const char *fmt, ...)
{
	char sql[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	free(admin_run(sql));
}

/* Run a query as admin and assert its first value is want (NULL: no value). */
__attribute__((format(printf, 2, 3))) static void expect_admin(const char *want, const char *fmt,
                                                               ...)
{
	char sql[1024], *got;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	got = admin_run(sql);
	if (!want)
		ck_assert_msg(got == NULL, "%s: expected no value, got '%s'", sql, got);
	else
		ck_assert_msg(got && strcmp(got, want) == 0, "%s: expected '%s', got '%s'", sql,
		              want, got ? got : "(null)");
	free(got);
}

static void create_schema(const char *schema)
{
	admin_exec("CREATE SCHEMA \"%s\"", schema);
}

static void drop_schema(const char *schema)
{
	admin_exec("DROP SCHEMA IF EXISTS \"%s\" CASCADE", schema);
}

/* Run sql on c through mk_db_exec, expect success, return the first value (caller frees). */
static char *value(PGconn *c, const char *sql)
{
	char err[256] = "", *v;
	PGresult *r;

	r = mk_db_exec(c, sql, 0, NULL, err, sizeof(err), NULL);
	ck_assert_msg(r != NULL, "%s: %s", sql, err);
	v = strdup(PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
	PQclear(r);
	return v;
}

static void exec_ok(PGconn *c, const char *sql)
{
	free(value(c, sql));
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

START_TEST(test_acquire_exec_and_release_round_trip_with_the_schema_on_the_search_path)
{
	const char *params[] = {"41"};
	char schema[64], err[256] = "", *v;
	mk_db_pool *p;
	PGresult *r;
	PGconn *c;

	new_schema(schema, sizeof(schema));
	create_schema(schema);
	p = mk_db_pool_new(dsn, schema, 2, CONNECT_MS);
	ck_assert_ptr_nonnull(p);

	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	r = mk_db_exec(c, "SELECT $1::int + 1", 1, params, err, sizeof(err), NULL);
	ck_assert_msg(r != NULL, "exec: %s", err);
	ck_assert_str_eq(PQgetvalue(r, 0, 0), "42");
	PQclear(r);

	v = value(c, "SELECT current_setting('search_path')");
	ck_assert_msg(strncmp(v, schema, strlen(schema)) == 0 && strstr(v, "public"),
	              "search_path is '%s'", v);
	free(v);
	/* Unqualified names land in the schema. */
	exec_ok(c, "CREATE TABLE here (a int)");
	v = value(c, "SELECT current_setting('application_name')");
	ck_assert_msg(strncmp(v, "mark", 4) == 0, "application_name is '%s'", v);
	free(v);
	mk_db_release(p, c);
	expect_admin(
	    "1", "SELECT count(*) FROM pg_tables WHERE schemaname = '%s' AND tablename = 'here'",
	    schema);

	ck_assert_int_eq(mk_db_ping(p, 1000), 0);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_free_and_release_accept_null)
{
	mk_db_pool *p = mk_db_pool_new(dsn, NULL, 1, 1000);

	ck_assert_ptr_nonnull(p);
	mk_db_release(p, NULL);
	mk_db_release(NULL, NULL);
	mk_db_pool_free(p);
	mk_db_pool_free(NULL);
}
END_TEST

START_TEST(test_pool_new_rejects_an_invalid_schema_name_or_size)
{
	static const char *bad[] = {
	    "",
	    "Auth",
	    "1abc",
	    "a-b",
	    "a b",
	    "a;drop schema public",
	    "\"x\"",
	    "é",
	    "a234567890123456789012345678901234567890123456789012345678901234", /* 64 */
	};
	static const char *good[] = {
	    "auth", "_x", "a_1",
	    "a23456789012345678901234567890123456789012345678901234567890123", /* 63 */
	};
	mk_db_pool *p;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mk_db_pool_new(dsn, bad[i], 1, 1000) == NULL, "accepted '%s'",
		              bad[i]);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		p = mk_db_pool_new(dsn, good[i], 1, 1000);
		ck_assert_msg(p != NULL, "rejected '%s'", good[i]);
		mk_db_pool_free(p);
	}
	ck_assert_ptr_null(mk_db_pool_new(dsn, "auth", 0, 1000));
	ck_assert_ptr_null(mk_db_pool_new(NULL, "auth", 1, 1000));
}
END_TEST

START_TEST(test_acquire_waits_then_times_out_when_the_pool_is_exhausted)
{
	char err[256] = "";
	PGconn *held, *c;
	long long t0, ms;
	mk_db_pool *p;

	p = mk_db_pool_new(dsn, NULL, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	held = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(held != NULL, "acquire: %s", err);

	t0 = now_ms();
	c = mk_db_acquire(p, 200, err, sizeof(err));
	ms = now_ms() - t0;
	ck_assert_ptr_null(c);
	/* The wait asked for, not an endless one for the held connection. */
	ck_assert_msg(ms >= 190 && ms < 10000, "waited %lld ms", ms);
	ck_assert_msg(strstr(err, "200 ms") != NULL, "err is '%s'", err);

	/* Not waiting at all also works, and the held connection comes back. */
	ck_assert_ptr_null(mk_db_acquire(p, 0, err, sizeof(err)));
	mk_db_release(p, held);
	c = mk_db_acquire(p, 0, err, sizeof(err));
	ck_assert_ptr_eq(c, held);
	mk_db_release(p, c);
	mk_db_pool_free(p);
}
END_TEST

struct holder {
	mk_db_pool *p;
	PGconn *c;
};

static void *release_later(void *arg)
{
	struct holder *h = arg;
	struct timespec ts = {0, 100 * 1000000L};

	nanosleep(&ts, NULL);
	mk_db_release(h->p, h->c);
	return NULL;
}

START_TEST(test_a_waiting_acquire_gets_the_connection_released_meanwhile)
{
	struct holder h;
	char err[256] = "";
	pthread_t t;
	PGconn *c;

	h.p = mk_db_pool_new(dsn, NULL, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(h.p);
	h.c = mk_db_acquire(h.p, 1000, err, sizeof(err));
	ck_assert_msg(h.c != NULL, "acquire: %s", err);
	ck_assert_int_eq(pthread_create(&t, NULL, release_later, &h), 0);
	c = mk_db_acquire(h.p, 30000, err, sizeof(err));
	pthread_join(t, NULL);
	ck_assert_msg(c == h.c, "acquire: %s", err);
	mk_db_release(h.p, c);
	mk_db_pool_free(h.p);
}
END_TEST

START_TEST(test_a_connection_released_inside_a_transaction_is_not_reused_dirty)
{
	char schema[64], err[256] = "", *pid, *pid2;
	mk_db_pool *p;
	PGconn *c;

	new_schema(schema, sizeof(schema));
	create_schema(schema);
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);

	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	exec_ok(c, "CREATE TABLE t (a int)");
	pid = value(c, "SELECT pg_backend_pid()");
	exec_ok(c, "BEGIN");
	exec_ok(c, "INSERT INTO t VALUES (1)");
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INTRANS);
	mk_db_release(p, c);

	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	pid2 = value(c, "SELECT pg_backend_pid()");
	ck_assert_str_ne(pid, pid2);
	free(pid2);
	free(pid);
	pid = value(c, "SELECT count(*) FROM t");
	ck_assert_str_eq(pid, "0");
	free(pid);

	/* A failed transaction is no better. */
	exec_ok(c, "BEGIN");
	ck_assert_ptr_null(mk_db_exec(c, "SELECT 1/0", 0, NULL, err, sizeof(err), NULL));
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_INERROR);
	mk_db_release(p, c);
	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	ck_assert_int_eq(PQtransactionStatus(c), PQTRANS_IDLE);
	exec_ok(c, "SELECT 1");
	mk_db_release(p, c);

	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_a_statement_past_its_deadline_is_cancelled_and_a_discarded_connection_replaced)
{
	char err[256] = "", state[6] = "", *pid, *pid2;
	mk_db_pool *p = mk_db_pool_new(dsn, NULL, 1, CONNECT_MS);
	PGresult *r;
	int64_t t0;
	PGconn *c;

	ck_assert_ptr_nonnull(p);
	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	/* No statement_timeout: only the deadline can end it. */
	exec_ok(c, "SET statement_timeout = 0");
	t0 = mk_mono_ms();
	ck_assert_ptr_null(mk_db_exec_until(c, "SELECT pg_sleep(600)", mk_mono_ms() + 300, err,
	                                    sizeof(err), state));
	ck_assert_str_eq(state, "57014");
	ck_assert_int_ge(mk_mono_ms() - t0, 300);
	ck_assert_int_lt(mk_mono_ms() - t0, 60000);
	/* The connection answers again, and a statement within its deadline runs. */
	r = mk_db_exec_until(c, "SELECT 1", mk_mono_ms() + 30000, err, sizeof(err), state);
	ck_assert_msg(r != NULL, "%s", err);
	PQclear(r);
	pid = value(c, "SELECT pg_backend_pid()");
	mk_db_discard(p, c);
	c = mk_db_acquire(p, CONNECT_MS, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire after discard: %s", err);
	pid2 = value(c, "SELECT pg_backend_pid()");
	ck_assert_str_ne(pid, pid2);
	free(pid);
	free(pid2);
	mk_db_release(p, c);
	mk_db_pool_free(p);
}
END_TEST

START_TEST(test_an_idle_connection_whose_backend_died_is_reset_on_acquire)
{
	char err[256] = "", sql[128], *pid, *v;
	PGconn *a, *b, *c;
	mk_db_pool *p;

	p = mk_db_pool_new(dsn, NULL, 2, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	a = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(a != NULL, "acquire: %s", err);
	b = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(b != NULL, "acquire: %s", err);
	pid = value(a, "SELECT pg_backend_pid()");
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s, 30000)", pid);
	v = value(b, sql);
	ck_assert_str_eq(v, "t");
	free(v);
	mk_db_release(p, b);
	mk_db_release(p, a); /* looks healthy: nothing read from it since */

	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c == a, "acquire: %s", err);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	v = value(c, "SELECT pg_backend_pid()");
	ck_assert_str_ne(v, pid);
	free(v);
	free(pid);
	mk_db_release(p, c);
	mk_db_pool_free(p);
}
END_TEST

#define THREADS 8
#define ROUNDS  25

struct share {
	mk_db_pool *p;
	pthread_mutex_t mu;
	PGconn *held[THREADS];
	int failures;
	char failure[256];
};

struct worker {
	struct share *sh;
	int id;
};

static void note_failure(struct share *sh, const char *what)
{
	pthread_mutex_lock(&sh->mu);
	if (sh->failures++ == 0)
		snprintf(sh->failure, sizeof(sh->failure), "%s", what);
	pthread_mutex_unlock(&sh->mu);
}

static void *borrow_repeatedly(void *arg)
{
	struct worker *w = arg;
	struct share *sh = w->sh;
	const char *bad;
	char err[256];
	PGresult *r;
	PGconn *c;
	int i, j, n;

	for (i = 0; i < ROUNDS; i++) {
		c = mk_db_acquire(sh->p, 30000, err, sizeof(err));
		if (!c) {
			note_failure(sh, err);
			continue;
		}
		bad = NULL;
		pthread_mutex_lock(&sh->mu);
		for (j = 0, n = 1; j < THREADS; j++) {
			if (sh->held[j] == c)
				bad = "one connection held by two threads";
			n += sh->held[j] != NULL;
		}
		sh->held[w->id] = c;
		pthread_mutex_unlock(&sh->mu);
		if (n > 2)
			bad = "more connections out than the pool has";
		if (bad)
			note_failure(sh, bad);

		r = mk_db_exec(c, "SELECT pg_sleep(0.001)", 0, NULL, err, sizeof(err), NULL);
		if (!r)
			note_failure(sh, err);
		PQclear(r);

		pthread_mutex_lock(&sh->mu);
		sh->held[w->id] = NULL;
		pthread_mutex_unlock(&sh->mu);
		mk_db_release(sh->p, c);
	}
	return NULL;
}

START_TEST(test_concurrent_callers_never_share_a_connection)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct share sh;
	int i;

	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	sh.p = mk_db_pool_new(dsn, NULL, 2, CONNECT_MS);
	ck_assert_ptr_nonnull(sh.p);
	for (i = 0; i < THREADS; i++) {
		w[i].sh = &sh;
		w[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, borrow_repeatedly, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(sh.failures == 0, "%d failures, first: %s", sh.failures, sh.failure);
	mk_db_pool_free(sh.p);
	pthread_mutex_destroy(&sh.mu);
}
END_TEST

START_TEST(test_migrate_applies_each_migration_once_in_order_and_records_it)
{
	static const mk_migration m[] = {
	    {1, "001_init", "CREATE TABLE item (id int PRIMARY KEY, name text)"},
	    {2, "002_seed", "INSERT INTO item VALUES (1, 'a');\nINSERT INTO item VALUES (2, 'b');"},
	    {5, "005_price", "ALTER TABLE item ADD COLUMN price int NOT NULL DEFAULT 0"},
	    {6, "006_view", "CREATE VIEW cheap AS SELECT id FROM item WHERE price = 0"},
	};
	char schema[64], err[256] = "";
	mk_db_pool *p;

	new_schema(schema, sizeof(schema));
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);

	ck_assert_msg(mk_db_migrate(p, m, 3, err, sizeof(err)) == 3, "migrate: %s", err);
	expect_admin("1:001_init,2:002_seed,5:005_price",
	             "SELECT string_agg(version || ':' || name, ',' ORDER BY version) "
	             "FROM \"%s\".schema_migrations",
	             schema);
	expect_admin("2", "SELECT count(*) FROM \"%s\".item WHERE price = 0", schema);

	ck_assert_msg(mk_db_migrate(p, m, 3, err, sizeof(err)) == 0, "migrate again: %s", err);
	ck_assert_msg(mk_db_migrate(p, m, 4, err, sizeof(err)) == 1, "migrate 006: %s", err);
	/* Versions the list no longer knows are left alone. */
	ck_assert_msg(mk_db_migrate(p, m, 2, err, sizeof(err)) == 0, "migrate fewer: %s", err);
	ck_assert_msg(mk_db_migrate(p, NULL, 0, err, sizeof(err)) == 0, "migrate none: %s", err);
	expect_admin("4", "SELECT count(*) FROM \"%s\".schema_migrations", schema);
	expect_admin("2", "SELECT count(*) FROM \"%s\".item", schema);

	/* The advisory lock was given back: another session can take it. */
	expect_admin("t", "SELECT pg_try_advisory_lock(hashtext('mark.migrate.' || '%s'))", schema);
	ck_assert_int_eq(mk_db_ping(p, 1000), 0);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_a_failing_migration_rolls_back_only_itself_and_is_named)
{
	mk_migration m[] = {
	    {1, "001_a", "CREATE TABLE a (x int)"},
	    {2, "002_bad", "CREATE TABLE b (x int);\nINSERT INTO nope VALUES (1);"},
	    {3, "003_c", "CREATE TABLE c (x int)"},
	};
	char schema[64], err[256] = "";
	mk_db_pool *p;

	new_schema(schema, sizeof(schema));
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);

	ck_assert_int_eq(mk_db_migrate(p, m, 3, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "migration '002_bad': ") == err, "err is '%s'", err);
	ck_assert_msg(strstr(err, "\"nope\" does not exist") != NULL, "err is '%s'", err);
	ck_assert_msg(strchr(err, '\n') == NULL, "err is not one line: '%s'", err);
	expect_admin("1", "SELECT string_agg(version::text, ',') FROM \"%s\".schema_migrations",
	             schema);
	expect_admin("a",
	             "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables "
	             "WHERE schemaname = '%s' AND tablename <> 'schema_migrations'",
	             schema);

	/* The pool still works, and the fixed migration resumes where it stopped. */
	m[1].sql = "CREATE TABLE b (x int)";
	ck_assert_msg(mk_db_migrate(p, m, 3, err, sizeof(err)) == 2, "migrate: %s", err);
	expect_admin(
	    "1,2,3",
	    "SELECT string_agg(version::text, ',' ORDER BY version) FROM \"%s\".schema_migrations",
	    schema);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_a_migration_that_ends_its_own_transaction_is_rejected)
{
	static const mk_migration m[] = {
	    {1, "001_commits", "CREATE TABLE a (x int); COMMIT"},
	};
	char schema[64], err[256] = "";
	mk_db_pool *p;

	new_schema(schema, sizeof(schema));
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(mk_db_migrate(p, m, 1, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "migration '001_commits': ") == err, "err is '%s'", err);
	expect_admin("0", "SELECT count(*) FROM \"%s\".schema_migrations", schema);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

struct racer {
	const char *schema;
	const mk_migration *m;
	size_t n;
	pthread_barrier_t *start;
	int applied;
	char err[256];
};

static void *migrate_racer(void *arg)
{
	struct racer *r = arg;
	mk_db_pool *p;

	/* One pool each, as separate processes of one service would have. */
	p = mk_db_pool_new(dsn, r->schema, 1, CONNECT_MS);
	pthread_barrier_wait(r->start);
	r->applied = p ? mk_db_migrate(p, r->m, r->n, r->err, sizeof(r->err)) : -2;
	mk_db_pool_free(p);
	return NULL;
}

START_TEST(test_concurrent_migrate_applies_each_migration_exactly_once)
{
	static const mk_migration m[] = {
	    {1, "001_counter", "CREATE TABLE counter (n int)"},
	    {2, "002_one", "INSERT INTO counter VALUES (1); SELECT pg_sleep(0.05)"},
	    {3, "003_two", "INSERT INTO counter VALUES (2)"},
	};
	struct racer r[4];
	pthread_barrier_t start;
	pthread_t t[4];
	char schema[64];
	int i, total = 0;

	new_schema(schema, sizeof(schema));
	pthread_barrier_init(&start, NULL, 4);
	for (i = 0; i < 4; i++) {
		memset(&r[i], 0, sizeof(r[i]));
		r[i].schema = schema;
		r[i].m = m;
		r[i].n = 3;
		r[i].start = &start;
		ck_assert_int_eq(pthread_create(&t[i], NULL, migrate_racer, &r[i]), 0);
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (i = 0; i < 4; i++) {
		ck_assert_msg(r[i].applied >= 0, "racer %d: %d %s", i, r[i].applied, r[i].err);
		total += r[i].applied;
	}
	ck_assert_int_eq(total, 3);
	expect_admin("1,2", "SELECT string_agg(n::text, ',' ORDER BY n) FROM \"%s\".counter",
	             schema);
	expect_admin("3", "SELECT count(*) FROM \"%s\".schema_migrations", schema);
	drop_schema(schema);
}
END_TEST

START_TEST(test_migrate_detects_a_renamed_migration)
{
	static const mk_migration before[] = {{1, "001_init", "CREATE TABLE a (x int)"}};
	static const mk_migration after[] = {
	    {1, "001_start", "CREATE TABLE a (x int)"},
	    {2, "002_next", "CREATE TABLE b (x int)"},
	};
	static const mk_migration renumbered[] = {{3, "001_init", "CREATE TABLE a (x int)"}};
	char schema[64], err[256] = "";
	mk_db_pool *p;

	new_schema(schema, sizeof(schema));
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	ck_assert_msg(mk_db_migrate(p, before, 1, err, sizeof(err)) == 1, "migrate: %s", err);
	ck_assert_int_eq(mk_db_migrate(p, after, 2, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'001_start'") && strstr(err, "'001_init'"), "err is '%s'", err);
	/* Nothing after the mismatch ran. */
	expect_admin(NULL, "SELECT to_regclass('\"%s\".b')::text", schema);

	/* The same name under a new number is caught too. */
	ck_assert_int_eq(mk_db_migrate(p, renumbered, 1, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'001_init'") && strstr(err, "numbered 3"), "err is '%s'", err);
	expect_admin("1", "SELECT count(*) FROM \"%s\".schema_migrations", schema);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_migrate_rejects_unsorted_migrations_and_a_pool_without_schema)
{
	static const mk_migration m[] = {
	    {2, "002_b", "SELECT 1"},
	    {1, "001_a", "SELECT 1"},
	};
	char schema[64], err[256] = "";
	mk_db_pool *p;

	new_schema(schema, sizeof(schema));
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(mk_db_migrate(p, m, 2, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "'001_a'") != NULL, "err is '%s'", err);
	mk_db_pool_free(p);

	p = mk_db_pool_new(dsn, NULL, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	err[0] = '\0';
	ck_assert_int_eq(mk_db_migrate(p, m, 0, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "schema") != NULL, "err is '%s'", err);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

START_TEST(test_an_unreachable_database_gives_an_error_without_the_password)
{
	static const char *dsns[] = {
	    "host=127.0.0.1 port=1 user=mark dbname=mark password=" SECRET,
	    "postgresql://mark:" SECRET "@127.0.0.1:1/mark",
	    "host=127.0.0.1 port=1 password " SECRET,      /* unparsable */
	    "hostaddr=" SECRET " port=1 password=" SECRET, /* libpq quotes hostaddr */
	};
	static const mk_migration m[] = {{1, "001_a", "SELECT 1"}};
	char err[512];
	mk_db_pool *p;
	size_t i;

	for (i = 0; i < sizeof(dsns) / sizeof(dsns[0]); i++) {
		p = mk_db_pool_new(dsns[i], "auth", 1, 1000);
		ck_assert_ptr_nonnull(p);
		err[0] = '\0';
		ck_assert_ptr_null(mk_db_acquire(p, 1000, err, sizeof(err)));
		ck_assert_msg(err[0] != '\0', "dsn %zu: no message", i);
		ck_assert_msg(strstr(err, SECRET) == NULL, "dsn %zu: password in '%s'", i, err);
		ck_assert_msg(strstr(err, "cannot connect") == err, "dsn %zu: err is '%s'", i, err);
		ck_assert_int_eq(mk_db_ping(p, 1000), -1);
		err[0] = '\0';
		ck_assert_int_eq(mk_db_migrate(p, m, 1, err, sizeof(err)), -1);
		ck_assert_msg(err[0] && !strstr(err, SECRET), "dsn %zu: migrate err '%s'", i, err);
		/* A small err buffer cuts the message but never exposes the password. */
		ck_assert_ptr_null(mk_db_acquire(p, 1000, err, 40));
		ck_assert_msg(strstr(err, "s3cr") == NULL, "dsn %zu: '%s'", i, err);
		mk_db_pool_free(p);
	}
}
END_TEST

START_TEST(test_exec_reports_sqlstate_on_a_unique_violation)
{
	const char *params[] = {"7"};
	char schema[64], err[256], state[6];
	mk_db_pool *p;
	PGresult *r;
	PGconn *c;

	new_schema(schema, sizeof(schema));
	create_schema(schema);
	p = mk_db_pool_new(dsn, schema, 1, CONNECT_MS);
	ck_assert_ptr_nonnull(p);
	c = mk_db_acquire(p, 1000, err, sizeof(err));
	ck_assert_msg(c != NULL, "acquire: %s", err);
	exec_ok(c, "CREATE TABLE u (id int PRIMARY KEY)");

	r = mk_db_exec(c, "INSERT INTO u VALUES ($1)", 1, params, err, sizeof(err), state);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(PQcmdStatus(r), "INSERT 0 1");
	PQclear(r);
	memset(state, 'x', sizeof(state));
	r = mk_db_exec(c, "INSERT INTO u VALUES ($1)", 1, params, err, sizeof(err), state);
	ck_assert_ptr_null(r);
	ck_assert_str_eq(state, "23505");
	ck_assert_msg(strncmp(err, "duplicate key value", 19) == 0, "err is '%s'", err);
	ck_assert_msg(strchr(err, '\n') == NULL, "err is not one line: '%s'", err);

	ck_assert_ptr_null(mk_db_exec(c, "SELEC 1", 0, NULL, err, sizeof(err), state));
	ck_assert_str_eq(state, "42601");
	/* sqlstate and err may be left out. */
	ck_assert_ptr_null(mk_db_exec(c, "SELEC 1", 0, NULL, NULL, 0, NULL));
	ck_assert_ptr_null(mk_db_exec(c, "", 0, NULL, err, sizeof(err), state));
	ck_assert_str_eq(state, "");
	ck_assert_msg(strstr(err, "PGRES_EMPTY_QUERY") != NULL, "err is '%s'", err);

	mk_db_release(p, c);
	mk_db_pool_free(p);
	drop_schema(schema);
}
END_TEST

static Suite *db_suite(void)
{
	Suite *s = suite_create("mk_db");
	TCase *pool = tcase_create("pool"), *exec = tcase_create("exec"),
	      *migrate = tcase_create("migrate");

	tcase_set_timeout(pool, 60);
	tcase_add_test(pool,
	               test_acquire_exec_and_release_round_trip_with_the_schema_on_the_search_path);
	tcase_add_test(pool, test_free_and_release_accept_null);
	tcase_add_test(pool, test_pool_new_rejects_an_invalid_schema_name_or_size);
	tcase_add_test(pool, test_acquire_waits_then_times_out_when_the_pool_is_exhausted);
	tcase_add_test(pool, test_a_waiting_acquire_gets_the_connection_released_meanwhile);
	tcase_add_test(pool, test_a_connection_released_inside_a_transaction_is_not_reused_dirty);
	tcase_add_test(pool, test_an_idle_connection_whose_backend_died_is_reset_on_acquire);
	tcase_add_test(pool, test_concurrent_callers_never_share_a_connection);
	tcase_add_test(pool, test_an_unreachable_database_gives_an_error_without_the_password);
	suite_add_tcase(s, pool);

	tcase_set_timeout(exec, 60);
	tcase_add_test(exec, test_exec_reports_sqlstate_on_a_unique_violation);
	tcase_add_test(
	    exec,
	    test_a_statement_past_its_deadline_is_cancelled_and_a_discarded_connection_replaced);
	suite_add_tcase(s, exec);

	tcase_set_timeout(migrate, 60);
	tcase_add_test(migrate, test_migrate_applies_each_migration_once_in_order_and_records_it);
	tcase_add_test(migrate, test_a_failing_migration_rolls_back_only_itself_and_is_named);
	tcase_add_test(migrate, test_a_migration_that_ends_its_own_transaction_is_rejected);
	tcase_add_test(migrate, test_concurrent_migrate_applies_each_migration_exactly_once);
	tcase_add_test(migrate, test_migrate_detects_a_renamed_migration);
	tcase_add_test(migrate, test_migrate_rejects_unsorted_migrations_and_a_pool_without_schema);
	suite_add_tcase(s, migrate);
	return s;
}

/* Drop the schemas of this run that a failed test left behind. */
static void drop_leftover_schemas(void)
{
	PGresult *r;
	PGconn *c;
	char sql[256];
	int i;

	c = PQconnectdb(dsn);
	if (PQstatus(c) != CONNECTION_OK) {
		PQfinish(c);
		return;
	}
	PQsetNoticeProcessor(c, quiet_notice, NULL);
	snprintf(sql, sizeof(sql),
	         "SELECT nspname FROM pg_namespace WHERE nspname LIKE 't\\_%d\\_%%'",
	         (int)runner_pid);
	r = PQexec(c, sql);
	for (i = 0; PQresultStatus(r) == PGRES_TUPLES_OK && i < PQntuples(r); i++) {
		snprintf(sql, sizeof(sql), "DROP SCHEMA IF EXISTS \"%s\" CASCADE",
		         PQgetvalue(r, i, 0));
		PQclear(PQexec(c, sql));
	}
	PQclear(r);
	PQfinish(c);
}

int main(void)
{
	SRunner *sr;
	int failed;

	dsn = getenv("MARK_TEST_DATABASE_URL");
	if (!dsn || !*dsn) {
		fprintf(stderr, "db_test: MARK_TEST_DATABASE_URL is not set; start a Postgres with "
		                "'scripts/pg.sh start DIR PORT' and export the DSN it prints\n");
		return 1;
	}
	runner_pid = getpid();
	sr = srunner_create(db_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	drop_leftover_schemas();
	return failed ? 1 : 0;
}
