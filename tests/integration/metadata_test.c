/*
 * metadata_test.c - the metadata service against a real Postgres
 * warehouse: the demo shop is loaded into a fresh database, the service
 * syncs it as the read-only role mark_reader, and its ops are called over
 * NNG. Ranked search and describe read the synced catalog; meta.query runs
 * only single read-only SELECTs (everything else is refused before the
 * warehouse and recorded), is capped in rows and time, and passes
 * Postgres's own message back for a bad query. Curated descriptions
 * survive a re-sync, and a column added between syncs is recorded.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

/*
 * Sized for a loaded host running the sanitizer build: one call, the
 * service's start (it syncs the catalog before it answers), one sys.ping
 * (a slower one only repeats) and a stop. Queries get a wide timeout; the
 * one test of the timeout gives its own query a short one.
 */
#define CALL_MS       120000
#define START_WAIT_MS 90000
#define PING_MS       10000
#define STOP_MS       60000
#define QUERY_TIMEOUT "METADATA_QUERY_TIMEOUT=60s"

static mt_proc svc;
static mk_rpc_client *client;
static char wh_db[64], cat_db[64];
static char wh_admin[512], wh_reader[512], cat_dsn[512];
static char listen_env[128], db_env[600], wh_env[600];
static const mk_caller caller = {"5b1f7c1e-2a44-4d8e-9a51-0f3c9a8e7b10", "user"};

static PGconn *connect_to(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	return c;
}

static void exec_ok(PGconn *c, const char *sql)
{
	PGresult *r = PQexec(c, sql);

	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
	              "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
}

/* The first value of a one-row query, malloc'd. */
static char *scalar(const char *dsn, const char *sql)
{
	PGconn *c = connect_to(dsn);
	PGresult *r = PQexec(c, sql);
	char *v;

	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s: %s", sql,
	              PQerrorMessage(c));
	v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

static mk_err call(mk_op op, const char *body_json, mk_rpc_result *res)
{
	cJSON *b = cJSON_Parse(body_json);

	ck_assert_ptr_nonnull(b);
	mk_rpc_call(client, op, "metadata-test", &caller, b, CALL_MS, res);
	cJSON_Delete(b);
	return res->err;
}

/* Wait until the service answers sys.ping. */
static void wait_answering(mt_proc *p)
{
	int64_t until = mk_mono_ms() + START_WAIT_MS;
	mk_rpc_result res;

	do {
		mk_err e = mk_rpc_call(client, MK_OP_SYS_PING, "ping", NULL, NULL, PING_MS, &res);

		mk_rpc_result_release(&res);
		if (e == MK_OK)
			return;
		ck_assert_msg(mt_proc_alive(p), "mark-metadata exited at start");
		mk_sleep_ms(50);
	} while (mk_mono_ms() < until);
	mt_proc_dump(p);
	ck_abort_msg("mark-metadata did not answer");
}

static void start_service_with(const char *kind_env, const char *timeout_env, mt_proc *p,
                               const char *name)
{
	const char *env[] = {listen_env, db_env, kind_env, wh_env, timeout_env, NULL};

	ck_assert_int_eq(mt_proc_start(p, name, "mark-metadata", env), 0);
	wait_answering(p);
}

static void start_service(const char *kind_env, mt_proc *p, const char *name)
{
	start_service_with(kind_env, QUERY_TIMEOUT, p, name);
}

static void setup(void)
{
	char admin[512], err[256], url[64];
	int port = mt_free_port();
	PGconn *c;

	snprintf(wh_db, sizeof(wh_db), "warehouse_%d", (int)getpid());
	snprintf(cat_db, sizeof(cat_db), "catalog_%d", (int)getpid());
	ck_assert_msg(
	    mt_warehouse_create(wh_db, "mark", wh_admin, sizeof(wh_admin), err, sizeof(err)) == 0,
	    "%s", err);
	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	c = connect_to(admin);
	{
		char q[160];

		snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s", cat_db);
		exec_ok(c, q);
		snprintf(q, sizeof(q), "CREATE DATABASE %s", cat_db);
		exec_ok(c, q);
	}
	PQfinish(c);
	mt_dsn_for("mark_reader", wh_db, wh_reader, sizeof(wh_reader));
	mt_dsn_for("mark", cat_db, cat_dsn, sizeof(cat_dsn));
	c = connect_to(wh_admin);
	/* A write hidden in a function the reader may call: only the read-only transaction stops
	 * it. */
	exec_ok(c, "CREATE FUNCTION public.touch_customer() RETURNS int LANGUAGE sql "
	           "SECURITY DEFINER AS $$ UPDATE customers SET city = 'Nowhere' WHERE id = 1 "
	           "RETURNING 1 $$");
	PQfinish(c);

	snprintf(listen_env, sizeof(listen_env), "METADATA_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(db_env, sizeof(db_env), "METADATA_DATABASE_URL=%s", cat_dsn);
	snprintf(wh_env, sizeof(wh_env), "METADATA_WAREHOUSE_DSN=%s", wh_reader);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	client = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(client != NULL, "%s", err);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");
}

static void teardown(void)
{
	char admin[512], q[160];
	PGconn *c;

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	mk_rpc_client_free(client);
	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	c = connect_to(admin);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", wh_db);
	exec_ok(c, q);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", cat_db);
	exec_ok(c, q);
	PQfinish(c);
}

/* ------------------------------------------------------------------ search, describe */

START_TEST(test_search_ranks_the_tables_a_question_is_about_first)
{
	mk_rpc_result res;
	const cJSON *tables, *t;
	const char *text;
	int i = 0;

	ck_assert_int_eq(call(MK_OP_META_SEARCH,
	                      "{\"question\":\"which customers ordered the most products\"}", &res),
	                 MK_OK);
	tables = cJSON_GetObjectItem(res.body, "tables");
	ck_assert_int_ge(cJSON_GetArraySize(tables), 3);
	cJSON_ArrayForEach(t, tables)
	{
		const char *name = mk_json_str(t, "table");

		if (i++ >= 3)
			break;
		ck_assert_msg(!strcmp(name, "public.orders") || !strcmp(name, "public.customers") ||
		                  !strcmp(name, "public.order_items"),
		              "unexpected table %s in the top 3", name);
		ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "score")));
	}
	text = mk_json_str(res.body, "text");
	ck_assert_ptr_nonnull(strstr(text, "Table public.orders"));
	ck_assert_ptr_nonnull(strstr(text, "customer_id integer not null"));
	ck_assert_ptr_nonnull(strstr(text, "quantity"));
	ck_assert_ptr_nonnull(strstr(text, "Customer who placed the order"));
	mk_rpc_result_release(&res);
}
END_TEST

/* The first of the tables search returns for question (caller frees). */
static char *first_table(const char *question)
{
	mk_rpc_result res;
	char body[256], *name;

	snprintf(body, sizeof(body), "{\"question\":\"%s\"}", question);
	ck_assert_int_eq(call(MK_OP_META_SEARCH, body, &res), MK_OK);
	name = strdup(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res.body, "tables"), 0), "table"));
	mk_rpc_result_release(&res);
	return name;
}

/*
 * Copies and rollups of a table share its words; the question is about the
 * base table unless it asks for the copy.
 */
START_TEST(test_search_prefers_a_base_table_to_its_copies_and_rollups_unless_asked)
{
	PGconn *c = connect_to(wh_admin);
	char *first;

	exec_ok(
	    c,
	    "CREATE TABLE orders_archive_2023 (LIKE orders); "
	    "COMMENT ON TABLE orders_archive_2023 IS 'Orders placed by customers, archived'; "
	    "CREATE TABLE stg_orders (LIKE orders); "
	    "COMMENT ON TABLE stg_orders IS 'Orders placed by customers, staged'; "
	    "CREATE TABLE order_daily_summary (LIKE orders); "
	    "COMMENT ON TABLE order_daily_summary IS 'Orders placed by customers per day'; "
	    "GRANT SELECT ON orders_archive_2023, stg_orders, order_daily_summary TO mark_reader");
	PQfinish(c);
	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");
	/* The sync at start runs beside serving: wait until the new tables are in. */
	for (int64_t until = mk_mono_ms() + 60000;;) {
		mk_rpc_result res;
		mk_err e = call(MK_OP_META_DESCRIBE, "{\"table\":\"order_daily_summary\"}", &res);

		mk_rpc_result_release(&res);
		if (e == MK_OK)
			break;
		ck_assert_msg(mk_mono_ms() < until, "the new tables were not synced");
		mk_sleep_ms(100);
	}

	first = first_table("how many orders did customers place");
	ck_assert_str_eq(first, "public.orders");
	free(first);
	first = first_table("show the archived orders of 2023");
	ck_assert_str_eq(first, "public.orders_archive_2023");
	free(first);
	first = first_table("the daily summary of orders");
	ck_assert_str_eq(first, "public.order_daily_summary");
	free(first);

	c = connect_to(wh_admin);
	exec_ok(c, "DROP TABLE orders_archive_2023, stg_orders, order_daily_summary");
	PQfinish(c);
}
END_TEST

START_TEST(test_search_stays_within_its_budget)
{
	mk_rpc_result res;

	ck_assert_int_eq(call(MK_OP_META_SEARCH,
	                      "{\"question\":\"which customers ordered the most products\","
	                      "\"budget\":400}",
	                      &res),
	                 MK_OK);
	ck_assert_int_le(strlen(mk_json_str(res.body, "text")), 400);
	ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "tables")), 1);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_describe_gives_columns_with_types_and_comments)
{
	mk_rpc_result res;
	const cJSON *t, *col, *found = NULL;

	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"public.order_items\"}", &res),
	                 MK_OK);
	t = cJSON_GetObjectItem(res.body, "table");
	ck_assert_str_eq(mk_json_str(t, "table"), "public.order_items");
	ck_assert_ptr_nonnull(strstr(mk_json_str(t, "description"), "Lines of an order"));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(t, "columns")), 6);
	cJSON_ArrayForEach(
	    col, cJSON_GetObjectItem(t, "columns")) if (!strcmp(mk_json_str(col, "name"),
	                                                        "unit_price")) found = col;
	ck_assert_ptr_nonnull(found);
	ck_assert_str_eq(mk_json_str(found, "type"), "numeric(10,2)");
	ck_assert_ptr_nonnull(strstr(mk_json_str(found, "description"), "Price of one unit"));
	ck_assert_ptr_nonnull(strstr(mk_json_str(res.body, "text"), "unit_price numeric(10,2)"));
	mk_rpc_result_release(&res);
	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"public.nothing\"}", &res),
	                 MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
}
END_TEST

/* ------------------------------------------------------------------ query */

START_TEST(test_a_join_answers_typed_columns_and_rows)
{
	mk_rpc_result res;
	const cJSON *cols, *rows, *first;

	ck_assert_int_eq(
	    call(MK_OP_META_QUERY,
	         "{\"sql\":\"-- units per country\\nSELECT c.country, count(DISTINCT o.id) AS "
	         "orders, sum(oi.quantity) AS units, min(o.ordered_at) AS first_order, "
	         "bool_or(c.marketing_opt_in) AS any_opt_in FROM orders o JOIN customers c ON c.id "
	         "= "
	         "o.customer_id JOIN order_items oi ON oi.order_id = o.id GROUP BY c.country ORDER "
	         "BY c.country;\"}",
	         &res),
	    MK_OK);
	cols = cJSON_GetObjectItem(res.body, "columns");
	ck_assert_int_eq(cJSON_GetArraySize(cols), 5);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 0), "name"), "country");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 0), "type"), "text");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 1), "type"), "int");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 2), "type"), "int");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 3), "type"), "timestamptz");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, 4), "type"), "bool");
	rows = cJSON_GetObjectItem(res.body, "rows");
	ck_assert_int_eq(cJSON_GetArraySize(rows), 8);
	first = cJSON_GetArrayItem(rows, 0);
	ck_assert_str_eq(cJSON_GetArrayItem(first, 0)->valuestring, "DE");
	ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(first, 1)));
	ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(first, 2)));
	ck_assert(cJSON_IsString(cJSON_GetArrayItem(first, 3)));
	ck_assert(cJSON_IsBool(cJSON_GetArrayItem(first, 4)));
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(res.body, "truncated")));
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(res.body, "duration_ms")));
	ck_assert_int_eq(cJSON_GetObjectItem(res.body, "bytes_processed")->valueint, 0);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_values_keep_their_json_types)
{
	mk_rpc_result res;
	const cJSON *row;

	ck_assert_int_eq(
	    call(MK_OP_META_QUERY,
	         "{\"sql\":\"SELECT unit_price, NULL::text AS nothing, "
	         "12345678901234567890::numeric AS big, 9007199254740993::bigint AS "
	         "bigint, launched_on, '{\\\"a\\\":1}'::jsonb AS j FROM products WHERE "
	         "id = 2\"}",
	         &res),
	    MK_OK);
	row = cJSON_GetArrayItem(cJSON_GetObjectItem(res.body, "rows"), 0);
	ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(row, 0)));
	ck_assert(cJSON_IsNull(cJSON_GetArrayItem(row, 1)));
	ck_assert_str_eq(cJSON_GetArrayItem(row, 2)->valuestring, "12345678901234567890");
	ck_assert_str_eq(cJSON_GetArrayItem(row, 3)->valuestring, "9007199254740993");
	ck_assert(cJSON_IsString(cJSON_GetArrayItem(row, 4)));
	ck_assert_int_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(row, 5), "a")->valueint, 1);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(res.body, "columns"), 4), "type"),
	    "date");
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_max_rows_truncates)
{
	mk_rpc_result res;

	ck_assert_int_eq(call(MK_OP_META_QUERY,
	                      "{\"sql\":\"SELECT id FROM customers ORDER BY id\",\"max_rows\":5}",
	                      &res),
	                 MK_OK);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "rows")), 5);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(res.body, "truncated")));
	mk_rpc_result_release(&res);
	ck_assert_int_eq(
	    call(MK_OP_META_QUERY, "{\"sql\":\"SELECT id FROM categories\",\"max_rows\":12}", &res),
	    MK_OK);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "rows")), 12);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(res.body, "truncated")));
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_anything_but_one_select_is_refused_before_the_warehouse)
{
	static const char *const bad[] = {
	    "INSERT INTO categories VALUES (99, 'x', 'y')",
	    "UPDATE customers SET city = 'x'",
	    "DELETE FROM orders",
	    "DROP TABLE orders",
	    "SELECT 1; SELECT 2",
	    "SELECT 1; DELETE FROM orders",
	    "WITH x AS (DELETE FROM order_items RETURNING *) SELECT count(*) FROM x",
	    "SELECT * INTO copy_of_orders FROM orders",
	    "SELECT * FROM orders FOR UPDATE",
	    "SELECT * FROM orders FOR SHARE",
	    "select set_config('statement_timeout', '0', false)",
	    "/* SELECT */ TRUNCATE orders",
	    "",
	};
	char body[512], q[256], *n, *orders;
	mk_rpc_result res;
	size_t i, nbad = sizeof(bad) / sizeof(*bad);

	for (i = 0; i < nbad; i++) {
		cJSON *b = cJSON_CreateObject();

		cJSON_AddStringToObject(b, "sql", bad[i]);
		mk_rpc_call(client, MK_OP_META_QUERY, "metadata-test", &caller, b, CALL_MS, &res);
		cJSON_Delete(b);
		ck_assert_msg(res.err == MK_E_VALIDATION, "'%s' answered %s", bad[i],
		              mk_err_code(res.err));
		mk_rpc_result_release(&res);
	}
	/* Each one (but the empty one, refused by the field check) is recorded as refused. */
	snprintf(
	    q, sizeof(q),
	    "SELECT count(*) FROM catalog.queries WHERE status = 'rejected' AND user_id = '%s' "
	    "AND error IS NOT NULL",
	    caller.user_id);
	n = scalar(cat_dsn, q);
	ck_assert_int_ge(strtol(n, NULL, 10), (long)nbad - 1);
	free(n);
	n = scalar(cat_dsn, "SELECT error FROM catalog.queries WHERE sql = 'SELECT 1; SELECT 2'");
	ck_assert_ptr_nonnull(strstr(n, "one statement"));
	free(n);
	orders = scalar(wh_admin, "SELECT count(*) FROM orders");
	ck_assert_str_eq(orders, "20000");
	free(orders);
	snprintf(body, sizeof(body), "%s", "{\"sql\":\"SELECT 'DELETE FROM orders; --' AS s\"}");
	ck_assert_int_eq(call(MK_OP_META_QUERY, body, &res), MK_OK);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_a_write_hidden_in_a_function_is_stopped_by_the_read_only_transaction)
{
	mk_rpc_result res;
	char *city;

	ck_assert_int_eq(call(MK_OP_META_QUERY, "{\"sql\":\"SELECT touch_customer()\"}", &res),
	                 MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "read-only transaction") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	city = scalar(wh_admin, "SELECT city FROM customers WHERE id = 1");
	ck_assert_str_ne(city, "Nowhere");
	free(city);
	city = scalar(cat_dsn, "SELECT status FROM catalog.queries WHERE sql = 'SELECT "
	                       "touch_customer()' ORDER BY id DESC LIMIT 1");
	ck_assert_str_eq(city, "error");
	free(city);
}
END_TEST

START_TEST(test_a_slow_query_is_cancelled_at_the_timeout)
{
	mk_rpc_result res;
	int64_t t0, took;
	mk_err e;

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service_with("METADATA_WAREHOUSE_KIND=postgres", "METADATA_QUERY_TIMEOUT=1s", &svc,
	                   "metadata-timeout");
	/* The query would sleep far past the call's own deadline: the second must end it. */
	t0 = mk_mono_ms();
	ck_assert_int_eq(call(MK_OP_META_QUERY, "{\"sql\":\"SELECT pg_sleep(600)\"}", &res),
	                 MK_E_DEADLINE);
	took = mk_mono_ms() - t0;
	ck_assert_msg(strstr(res.msg, "longer than 1000 ms (METADATA_QUERY_TIMEOUT)") != NULL, "%s",
	              res.msg);
	ck_assert_msg(took >= 1000 && took < CALL_MS / 4, "took %lld ms", (long long)took);
	mk_rpc_result_release(&res);
	/*
	 * A query that lifts its own statement_timeout in its first rows (a
	 * quoted name is still the function) and sleeps in the next FETCH:
	 * the deadline holds from outside the session.
	 */
	t0 = mk_mono_ms();
	e = call(MK_OP_META_QUERY,
	         "{\"sql\":\"SELECT \\\"set_config\\\"('statement_timeout', '0', true) AS s, "
	         "pg_sleep(CASE WHEN g > 1000 THEN 600 ELSE 0 END) FROM generate_series(1, 2000) "
	         "AS g\"}",
	         &res);
	took = mk_mono_ms() - t0;
	ck_assert_msg(e == MK_E_DEADLINE || e == MK_E_VALIDATION, "%s: %s", mk_err_code(e),
	              res.msg);
	if (e == MK_E_DEADLINE)
		ck_assert_msg(took >= 1000 && took < CALL_MS / 4, "took %lld ms", (long long)took);
	mk_rpc_result_release(&res);
	/*
	 * Each FETCH of a thousand rows stays under the statement timeout
	 * (half a second); all ten together take five: the deadline is the
	 * whole query's.
	 */
	t0 = mk_mono_ms();
	ck_assert_int_eq(
	    call(MK_OP_META_QUERY,
	         "{\"sql\":\"SELECT pg_sleep(0.0005) FROM generate_series(1, 10000)\"}", &res),
	    MK_E_DEADLINE);
	took = mk_mono_ms() - t0;
	ck_assert_msg(strstr(res.msg, "longer than 1000 ms (METADATA_QUERY_TIMEOUT)") != NULL, "%s",
	              res.msg);
	ck_assert_msg(took >= 1000 && took < CALL_MS / 4, "took %lld ms", (long long)took);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");
}
END_TEST

START_TEST(test_nothing_of_a_query_survives_on_its_pooled_connection)
{
	/* Session-level: neither the rollback nor the end of the statement lets go of it. */
	static const char *const lockers[] = {
	    "{\"sql\":\"SELECT pg_advisory_lock(424242)\"}",
	    "{\"sql\":\"SELECT \\\"pg_advisory_lock\\\"(424242)\"}",
	};
	mk_rpc_result res;
	char *held;
	int ran = 0;

	for (size_t i = 0; i < sizeof(lockers) / sizeof(lockers[0]); i++) {
		mk_err e = call(MK_OP_META_QUERY, lockers[i], &res);

		ck_assert_msg(e == MK_OK || e == MK_E_VALIDATION, "%s: %s", mk_err_code(e),
		              res.msg);
		ran += e == MK_OK;
		mk_rpc_result_release(&res);
	}
	held = scalar(wh_admin, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
	                        "objid = 424242 AND granted");
	ck_assert_msg(strcmp(held, "0") == 0, "%s advisory locks outlived %d queries", held, ran);
	free(held);
}
END_TEST

START_TEST(test_a_bad_column_answers_postgres_message)
{
	mk_rpc_result res;
	char *st;

	ck_assert_int_eq(call(MK_OP_META_QUERY, "{\"sql\":\"SELECT revenue FROM orders\"}", &res),
	                 MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "column \"revenue\" does not exist") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	st = scalar(cat_dsn, "SELECT status || ':' || error FROM catalog.queries WHERE sql = "
	                     "'SELECT revenue FROM orders'");
	ck_assert_ptr_nonnull(strstr(st, "error:"));
	free(st);
}
END_TEST

START_TEST(test_a_query_needs_a_caller)
{
	mk_rpc_result res;
	cJSON *b = cJSON_Parse("{\"sql\":\"SELECT 1\"}");

	mk_rpc_call(client, MK_OP_META_QUERY, "metadata-test", NULL, b, CALL_MS, &res);
	cJSON_Delete(b);
	ck_assert_int_eq(res.err, MK_E_UNAUTHENTICATED);
	mk_rpc_result_release(&res);
}
END_TEST

/* ------------------------------------------------------------------ re-sync */

START_TEST(test_a_resync_keeps_curated_descriptions_and_records_schema_changes)
{
	mk_rpc_result res;
	PGconn *c;
	char *v;

	c = connect_to(cat_dsn);
	exec_ok(c, "UPDATE catalog.tables SET description_curated = 'Curated: one row per "
	           "checkout.' WHERE name = 'orders'");
	exec_ok(c, "UPDATE catalog.columns SET description_curated = 'Curated status.' WHERE "
	           "name = 'status'");
	PQfinish(c);
	c = connect_to(wh_admin);
	exec_ok(c, "ALTER TABLE orders ADD COLUMN coupon_code text");
	exec_ok(c, "COMMENT ON TABLE orders IS 'A new synced comment.'");
	PQfinish(c);

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");

	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"orders\"}", &res), MK_OK);
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(res.body, "table"), "description"),
	                 "Curated: one row per checkout.");
	ck_assert_ptr_nonnull(strstr(mk_json_str(res.body, "text"), "coupon_code text"));
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(res.body, "text"), "status text not null: Curated status."));
	mk_rpc_result_release(&res);
	v = scalar(cat_dsn, "SELECT description || '|' || description_curated FROM catalog.tables "
	                    "WHERE name = 'orders'");
	ck_assert_str_eq(v, "A new synced comment.|Curated: one row per checkout.");
	free(v);
	v = scalar(cat_dsn, "SELECT string_agg(change || ' ' || column_name || ' ' || "
	                    "coalesce(new_type, ''), ',') FROM catalog.schema_changes");
	ck_assert_str_eq(v, "added coupon_code text");
	free(v);
}
END_TEST

START_TEST(test_without_a_warehouse_search_is_empty_and_query_unavailable)
{
	mk_rpc_result res;

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=none", &svc, "metadata-none");
	ck_assert_int_eq(call(MK_OP_META_SEARCH, "{\"question\":\"orders per day\"}", &res), MK_OK);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "tables")), 0);
	ck_assert_ptr_nonnull(strstr(mk_json_str(res.body, "text"), "No data warehouse"));
	mk_rpc_result_release(&res);
	ck_assert_int_eq(call(MK_OP_META_QUERY, "{\"sql\":\"SELECT 1\"}", &res), MK_E_UNAVAILABLE);
	ck_assert_str_eq(res.msg, "no warehouse is configured");
	mk_rpc_result_release(&res);
	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"public.orders\"}", &res),
	                 MK_E_UNAVAILABLE);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");
}
END_TEST

/* ------------------------------------------------------------------ reply size */

START_TEST(test_a_big_reply_is_cut_by_bytes_and_long_text_is_capped)
{
	const char *env[] = {listen_env, db_env,        "METADATA_WAREHOUSE_KIND=postgres",
	                     wh_env,     QUERY_TIMEOUT, "METADATA_QUERY_MAX_BYTES=1M",
	                     NULL};
	const cJSON *rows, *row;
	mk_rpc_result res;
	char *printed;
	int n;

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_proc_start(&svc, "metadata-1m", "mark-metadata", env), 0);
	wait_answering(&svc);
	ck_assert_int_eq(call(MK_OP_META_QUERY,
	                      "{\"sql\":\"SELECT n, repeat('x', 100000) AS big "
	                      "FROM generate_series(1, 500) n\"}",
	                      &res),
	                 MK_OK);
	rows = cJSON_GetObjectItem(res.body, "rows");
	n = cJSON_GetArraySize(rows);
	ck_assert_int_ge(n, 1);
	ck_assert_int_lt(n, 500);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(res.body, "truncated")));
	ck_assert_str_eq(mk_json_str(res.body, "truncated_reason"), "bytes");
	cJSON_ArrayForEach(row, rows)
	{
		const char *big = cJSON_GetStringValue(cJSON_GetArrayItem(row, 1));
		size_t len = strlen(big);

		ck_assert_int_le(len, 64 * 1024);
		ck_assert_int_gt(len, 60 * 1024);
		ck_assert_str_eq(big + len - 3, "\xe2\x80\xa6");
	}
	printed = cJSON_PrintUnformatted(res.body);
	ck_assert_int_le(strlen(printed), 1 << 20);
	/* Cut by bytes, not rows: the rows that fit nearly fill the budget. */
	ck_assert_int_ge(strlen(printed), (1 << 20) - 2 * 64 * 1024);
	free(printed);
	mk_rpc_result_release(&res);

	/* A max_rows cut says so. */
	ck_assert_int_eq(call(MK_OP_META_QUERY,
	                      "{\"sql\":\"SELECT n FROM generate_series(1, 50) n\","
	                      "\"max_rows\":10}",
	                      &res),
	                 MK_OK);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "rows")), 10);
	ck_assert_str_eq(mk_json_str(res.body, "truncated_reason"), "rows");
	mk_rpc_result_release(&res);
	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	start_service("METADATA_WAREHOUSE_KIND=postgres", &svc, "metadata");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metadata");
	TCase *tc = tcase_create("metadata");

	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_search_ranks_the_tables_a_question_is_about_first);
	tcase_add_test(tc, test_search_stays_within_its_budget);
	tcase_add_test(tc, test_search_prefers_a_base_table_to_its_copies_and_rollups_unless_asked);
	tcase_add_test(tc, test_describe_gives_columns_with_types_and_comments);
	tcase_add_test(tc, test_a_join_answers_typed_columns_and_rows);
	tcase_add_test(tc, test_values_keep_their_json_types);
	tcase_add_test(tc, test_max_rows_truncates);
	tcase_add_test(tc, test_anything_but_one_select_is_refused_before_the_warehouse);
	tcase_add_test(tc,
	               test_a_write_hidden_in_a_function_is_stopped_by_the_read_only_transaction);
	tcase_add_test(tc, test_a_slow_query_is_cancelled_at_the_timeout);
	tcase_add_test(tc, test_nothing_of_a_query_survives_on_its_pooled_connection);
	tcase_add_test(tc, test_a_bad_column_answers_postgres_message);
	tcase_add_test(tc, test_a_query_needs_a_caller);
	tcase_add_test(tc, test_a_resync_keeps_curated_descriptions_and_records_schema_changes);
	tcase_add_test(tc, test_without_a_warehouse_search_is_empty_and_query_unavailable);
	tcase_add_test(tc, test_a_big_reply_is_cut_by_bytes_and_long_text_is_capped);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
