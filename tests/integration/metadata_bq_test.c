/*
 * metadata_bq_test.c - the metadata service with a BigQuery warehouse: the
 * BigQuery double (tests/doubles/bigquery, its fixture datasets answered by
 * a Postgres database behind it) stands in for Google, and mark-metadata
 * runs as a real process against it, authenticating with a
 * service-account key file (or the metadata server) and called over NNG.
 *
 * Asserted: the sync reads every dataset and every page of every list into
 * the catalog, nested RECORD fields included, with partitioning and
 * clustering; queries are decoded by schema (big integers exact, nested
 * and repeated values, NULLs, timestamps); the dry run refuses what would
 * scan past the byte cap before any job runs; jobs run with
 * useLegacySql false, maximumBytesBilled and the job's location when
 * polled; failures are told apart by reason (a 403 rate limit and a 502
 * page are retried, an expired token is renewed once, accessDenied and
 * bytesBilledLimitExceeded are not retried); a job past the timeout is
 * cancelled; every query is recorded with its bytes.
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
#include "mt_bq.h"
#include "mt_check.h"

/*
 * Sized for a loaded host running the sanitizer build: one call, the
 * service's start (it syncs the catalog before it answers), one sys.ping
 * (a slower one only repeats) and a stop. Queries get a wide timeout (with
 * retries and their pauses inside it); the one test of the timeout gives
 * its own query a short one.
 */
#define CALL_MS       120000
#define START_WAIT_MS 90000
#define PING_MS       10000
#define STOP_MS       60000

static mt_bq bq;
static mt_proc svc;
static mk_rpc_client *client;
static char bq_db[64], cat_db[64], bq_dsn[512], cat_dsn[512], key_path[256];
static char listen_env[128], db_env[600], key_env[300], api_env[200], md_env[120];
static const mk_caller caller = {"5b1f7c1e-2a44-4d8e-9a51-0f3c9a8e7b10", "user"};

static void admin_exec(const char *sql)
{
	char admin[512];
	PGconn *c;
	PGresult *r;

	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	c = PQconnectdb(admin);
	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* The first value of a one-row query on the catalog database, malloc'd. */
static char *catalog_scalar(const char *sql)
{
	PGconn *c = PQconnectdb(cat_dsn);
	PGresult *r;
	char *v;

	ck_assert_msg(PQstatus(c) == CONNECTION_OK, "%s", PQerrorMessage(c));
	r = PQexec(c, sql);
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
	mk_rpc_call(client, op, "metadata-bq-test", &caller, b, CALL_MS, res);
	cJSON_Delete(b);
	return res->err;
}

/* Start mark-metadata with the common settings plus extra (NULL-terminated, up to 6). */
static void start_service(const char *name, const char *const *extra)
{
	const char *defaults[] = {listen_env, db_env, "METADATA_WAREHOUSE_KIND=bigquery", api_env,
	                          "METADATA_QUERY_TIMEOUT=60s"};
	const char *env[16];
	int64_t until = mk_mono_ms() + START_WAIT_MS;
	mk_rpc_result res;
	int i, n = 0;

	/* The extras first: the first of two settings of a name is the one read. */
	for (i = 0; extra && extra[i] && n < 10; i++)
		env[n++] = extra[i];
	for (i = 0; i < 5; i++)
		env[n++] = defaults[i];
	env[n] = NULL;
	ck_assert_int_eq(mt_proc_start(&svc, name, "mark-metadata", env), 0);
	do {
		mk_err e = mk_rpc_call(client, MK_OP_SYS_PING, "ping", NULL, NULL, PING_MS, &res);

		mk_rpc_result_release(&res);
		if (e == MK_OK)
			return;
		if (!mt_proc_alive(&svc)) {
			mt_proc_dump(&svc);
			ck_abort_msg("mark-metadata exited at start");
		}
		mk_sleep_ms(50);
	} while (mk_mono_ms() < until);
	mt_proc_dump(&svc);
	ck_abort_msg("mark-metadata did not answer");
}

static void start_with_key(const char *name)
{
	const char *extra[] = {key_env, NULL};

	start_service(name, extra);
}

static void stop_service(void)
{
	if (svc.pid > 0)
		ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, STOP_MS), 0);
	svc.pid = 0;
}

static void setup(void)
{
	char err[512], url[64], q[200];
	int port = mt_free_port();

	snprintf(bq_db, sizeof(bq_db), "bqdouble_%d", (int)getpid());
	snprintf(cat_db, sizeof(cat_db), "bqcatalog_%d", (int)getpid());
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", bq_db);
	admin_exec(q);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", bq_db);
	admin_exec(q);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", cat_db);
	admin_exec(q);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", cat_db);
	admin_exec(q);
	mt_dsn_for("mark", bq_db, bq_dsn, sizeof(bq_dsn));
	mt_dsn_for("mark", cat_db, cat_dsn, sizeof(cat_dsn));
	ck_assert_msg(mt_bq_start(&bq, "bigquery-double", bq_dsn, err, sizeof(err)) == 0, "%s",
	              err);
	snprintf(key_path, sizeof(key_path), "/tmp/mark-bq-key-%d.json", (int)getpid());
	ck_assert_msg(mt_bq_write_key_file(&bq, key_path, err, sizeof(err)) == 0, "%s", err);
	snprintf(listen_env, sizeof(listen_env), "METADATA_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(db_env, sizeof(db_env), "METADATA_DATABASE_URL=%s", cat_dsn);
	snprintf(key_env, sizeof(key_env), "METADATA_BIGQUERY_KEY_FILE=%s", key_path);
	snprintf(api_env, sizeof(api_env), "METADATA_BIGQUERY_API_URL=%s",
	         mt_bq_url(&bq, "/bigquery/v2"));
	snprintf(md_env, sizeof(md_env), "GCE_METADATA_HOST=127.0.0.1:%d", bq.port);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	client = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(client != NULL, "%s", err);
	svc.pid = 0;
}

static void teardown(void)
{
	char q[200];

	stop_service();
	mk_rpc_client_free(client);
	ck_assert_int_eq(mt_bq_stop(&bq), 0);
	unlink(key_path);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", bq_db);
	admin_exec(q);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", cat_db);
	admin_exec(q);
}

/* How many requests of the double's log since the last reset went to route. */
static int count_route(const char *route)
{
	cJSON *log = mt_bq_requests(&bq), *r;
	int n = 0;

	ck_assert_ptr_nonnull(log);
	cJSON_ArrayForEach(r, log)
	{
		const char *rt = mk_json_str(r, "route");

		if (rt && strcmp(rt, route) == 0)
			n++;
	}
	cJSON_Delete(log);
	return n;
}

/* The body of the last request to route (a copy the caller deletes), or NULL. */
static cJSON *last_body(const char *route)
{
	cJSON *log = mt_bq_requests(&bq), *r, *out = NULL;

	ck_assert_ptr_nonnull(log);
	cJSON_ArrayForEach(r, log)
	{
		const char *rt = mk_json_str(r, "route");

		if (rt && strcmp(rt, route) == 0) {
			cJSON_Delete(out);
			out = cJSON_Duplicate(cJSON_GetObjectItem(r, "body"), 1);
		}
	}
	cJSON_Delete(log);
	return out;
}

static void faults(const char *json)
{
	char err[256];

	ck_assert_msg(mt_bq_faults(&bq, json, err, sizeof(err)) == 0, "%s", err);
}

static void bq_config(const char *json)
{
	char err[256];

	ck_assert_msg(mt_bq_config(&bq, json, err, sizeof(err)) == 0, "%s", err);
}

/* A query that must succeed; its reply body (the caller releases res). */
static const cJSON *query_ok(const char *sql, mk_rpc_result *res)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "sql", sql);
	mk_rpc_call(client, MK_OP_META_QUERY, "metadata-bq-test", &caller, b, CALL_MS, res);
	cJSON_Delete(b);
	ck_assert_msg(res->err == MK_OK, "'%s' failed: %s", sql, res->msg);
	return res->body;
}

static mk_err query_err(const char *sql, mk_rpc_result *res)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "sql", sql);
	mk_rpc_call(client, MK_OP_META_QUERY, "metadata-bq-test", &caller, b, CALL_MS, res);
	cJSON_Delete(b);
	return res->err;
}

/* ------------------------------------------------------------------ catalog */

START_TEST(test_a_sync_reads_every_page_and_nested_fields_into_the_catalog)
{
	mk_rpc_result res;
	const char *text;
	char *n;

	/* Pages of two: every list must be followed to its end. */
	bq_config("{\"max_page_size\":2}");
	start_with_key("metadata-bq-sync");
	n = catalog_scalar("SELECT count(*) FROM catalog.tables WHERE schema_name = 'wide'");
	ck_assert_str_eq(n, "7");
	free(n);
	n = catalog_scalar("SELECT string_agg(DISTINCT schema_name, ',' ORDER BY schema_name) "
	                   "FROM catalog.tables");
	ck_assert_str_eq(n, "eu_sales,shop,wide");
	free(n);
	ck_assert_int_gt(count_route("tables.list"), 4);
	ck_assert_int_gt(count_route("token"), 0);

	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"shop.events\"}", &res), MK_OK);
	text = mk_json_str(res.body, "text");
	ck_assert_ptr_nonnull(strstr(text, "items ARRAY<RECORD>"));
	ck_assert_ptr_nonnull(strstr(text, "items.tags ARRAY<STRING>"));
	ck_assert_ptr_nonnull(strstr(text, "items.price.amount NUMERIC"));
	ck_assert_ptr_nonnull(strstr(text, "device.os STRING"));
	mk_rpc_result_release(&res);

	ck_assert_int_eq(call(MK_OP_META_DESCRIBE, "{\"table\":\"shop.orders\"}", &res), MK_OK);
	text = mk_json_str(res.body, "text");
	ck_assert_msg(strstr(text, "partitioned by DAY on order_date") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "clustered by customer_id") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "id INTEGER not null") != NULL, "%s", text);
	mk_rpc_result_release(&res);

	/* The model is told the dialect along with the tables. */
	ck_assert_int_eq(call(MK_OP_META_SEARCH, "{\"question\":\"orders by customer\"}", &res),
	                 MK_OK);
	ck_assert_ptr_nonnull(strstr(mk_json_str(res.body, "dialect"), "BigQuery"));
	ck_assert_ptr_nonnull(strstr(mk_json_str(res.body, "text"), "shop.orders"));
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_a_vanished_dataset_or_table_is_left_out_of_the_sync)
{
	const char *extra[] = {key_env, "METADATA_BIGQUERY_DATASETS=shop, nope", NULL};
	char *n;

	/* The first table listed is gone by the time it is read. */
	faults("{\"rules\":[{\"route\":\"tables.get\",\"times\":1,\"status\":404,"
	       "\"reason\":\"notFound\",\"message\":\"Not found: Table "
	       "mark-test:shop.customer_totals\"}]}");
	start_service("metadata-bq-vanished", extra);
	n = catalog_scalar("SELECT string_agg(name, ',' ORDER BY name) FROM catalog.tables");
	ck_assert_str_eq(n, "customers,events,orders,page_views");
	free(n);
	ck_assert_int_eq(count_route("datasets.list"), 0);
}
END_TEST

START_TEST(test_the_metadata_server_gives_the_token_and_the_project)
{
	const char *extra[] = {md_env, NULL};
	char *n;

	start_service("metadata-bq-mds", extra);
	n = catalog_scalar("SELECT count(*) FROM catalog.tables WHERE schema_name = 'shop'");
	ck_assert_int_ge(atoi(n), 3);
	free(n);
	ck_assert_int_gt(count_route("metadata.token"), 0);
	ck_assert_int_eq(count_route("token"), 0);
}
END_TEST

START_TEST(test_a_bad_key_file_stops_the_start_with_a_clear_message)
{
	const char *argv[] = {NULL};
	const char *env[] = {listen_env, db_env, "METADATA_WAREHOUSE_KIND=bigquery",
	                     "METADATA_BIGQUERY_KEY_FILE=/nonexistent/key.json", NULL};
	char *out = NULL;
	int st = mt_run("mark-metadata", argv, env, &out);

	ck_assert_int_ne(st, 0);
	ck_assert_msg(strstr(out, "/nonexistent/key.json") != NULL, "%s", out);
	free(out);
}
END_TEST

/* ------------------------------------------------------------------ queries */

START_TEST(test_a_query_is_decoded_by_its_schema)
{
	mk_rpc_result res;
	const cJSON *body, *rows, *row;
	cJSON *job;
	char *n;

	start_with_key("metadata-bq-query");
	body = query_ok("SELECT id, customer_id, order_date, status, total FROM shop.orders "
	                "ORDER BY id",
	                &res);
	rows = cJSON_GetObjectItem(body, "rows");
	ck_assert_int_ge(cJSON_GetArraySize(rows), 10);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "columns"), 0), "type"),
	    "int");
	row = cJSON_GetArrayItem(rows, 0);
	ck_assert(cJSON_IsNumber(cJSON_GetArrayItem(row, 0)));
	ck_assert(cJSON_IsString(cJSON_GetArrayItem(row, 2))); /* DATE as text */
	/* The largest id is past 2^53: it stays an exact string. */
	row = cJSON_GetArrayItem(rows, cJSON_GetArraySize(rows) - 1);
	ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetArrayItem(row, 0)), "9007199254740993");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(body, "truncated")));
	ck_assert_int_gt(
	    (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(body, "bytes_processed")), 0);
	mk_rpc_result_release(&res);

	/* The job was asked for GoogleSQL, with the byte cap as a string. */
	job = last_body("jobs.query");
	ck_assert_ptr_nonnull(job);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(job, "useLegacySql")));
	ck_assert_str_eq(mk_json_str(job, "maximumBytesBilled"), "1073741824");
	ck_assert_ptr_nonnull(mk_json_str(job, "requestId"));
	cJSON_Delete(job);
	/* A dry run (a dry-run job) came first; the audit has the bytes. */
	ck_assert_int_eq(count_route("jobs.insert"), 1);
	ck_assert_int_eq(count_route("jobs.query"), 1);
	n = catalog_scalar("SELECT status || ' ' || (bytes > 0)::text FROM catalog.queries "
	                   "ORDER BY id DESC LIMIT 1");
	ck_assert_str_eq(n, "ok true");
	free(n);
	/* The caller's usage counts the scanned bytes. */
	ck_assert_int_eq(call(MK_OP_META_USAGE, "{\"days\":1}", &res), MK_OK);
	ck_assert_int_gt(
	    (long long)cJSON_GetNumberValue(cJSON_GetObjectItem(
	        cJSON_GetArrayItem(cJSON_GetObjectItem(res.body, "days"), 0), "warehouse_bytes")),
	    0);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_nested_and_repeated_values_become_objects_and_arrays)
{
	mk_rpc_result res;
	const cJSON *body, *rows, *row, *cols, *c;
	int i_items = -1, i_device = -1, i_at = -1, i = 0, saw_empty = 0, saw_null_device = 0;

	start_with_key("metadata-bq-nested");
	body = query_ok("SELECT * FROM shop.events ORDER BY event_id", &res);
	cols = cJSON_GetObjectItem(body, "columns");
	cJSON_ArrayForEach(c, cols)
	{
		if (!strcmp(mk_json_str(c, "name"), "items"))
			i_items = i;
		if (!strcmp(mk_json_str(c, "name"), "device"))
			i_device = i;
		if (!strcmp(mk_json_str(c, "name"), "occurred_at"))
			i_at = i;
		i++;
	}
	ck_assert_int_ge(i_items, 0);
	ck_assert_int_ge(i_device, 0);
	ck_assert_int_ge(i_at, 0);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, i_items), "type"), "array");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(cols, i_device), "type"), "record");
	rows = cJSON_GetObjectItem(body, "rows");
	ck_assert_int_ge(cJSON_GetArraySize(rows), 2);
	cJSON_ArrayForEach(row, rows)
	{
		const cJSON *items = cJSON_GetArrayItem(row, i_items);
		const cJSON *device = cJSON_GetArrayItem(row, i_device);
		const cJSON *at = cJSON_GetArrayItem(row, i_at);

		ck_assert(cJSON_IsArray(items));
		if (cJSON_GetArraySize(items) == 0)
			saw_empty = 1;
		else {
			const cJSON *it = cJSON_GetArrayItem(items, 0);

			ck_assert(cJSON_IsObject(it));
			ck_assert(cJSON_IsArray(cJSON_GetObjectItem(it, "tags")));
			ck_assert_ptr_nonnull(cJSON_GetObjectItem(it, "price"));
		}
		if (cJSON_IsNull(device))
			saw_null_device = 1;
		else
			ck_assert(cJSON_IsObject(device));
		if (!cJSON_IsNull(at)) {
			const char *s = cJSON_GetStringValue(at);

			ck_assert_ptr_nonnull(s);
			ck_assert_msg(strlen(s) >= 20 && s[4] == '-' && s[10] == 'T' &&
			                  s[strlen(s) - 1] == 'Z',
			              "timestamp '%s' is not ISO 8601 UTC", s);
		}
	}
	ck_assert(saw_empty);
	ck_assert(saw_null_device);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_rows_are_read_page_by_page_up_to_the_cap)
{
	mk_rpc_result res;
	const cJSON *body;
	cJSON *b = cJSON_CreateObject();

	bq_config("{\"max_page_size\":3}");
	start_with_key("metadata-bq-pages");
	body = query_ok("SELECT id FROM shop.orders ORDER BY id", &res);
	ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItem(body, "rows")), 10);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(body, "truncated")));
	mk_rpc_result_release(&res);
	ck_assert_int_ge(count_route("jobs.getQueryResults"), 3);

	cJSON_AddStringToObject(b, "sql", "SELECT id FROM shop.orders ORDER BY id");
	cJSON_AddNumberToObject(b, "max_rows", 4);
	mk_rpc_call(client, MK_OP_META_QUERY, "metadata-bq-test", &caller, b, CALL_MS, &res);
	cJSON_Delete(b);
	ck_assert_int_eq(res.err, MK_OK);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(res.body, "rows")), 4);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(res.body, "truncated")));
	ck_assert_str_eq(mk_json_str(res.body, "truncated_reason"), "rows");
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_a_query_over_the_byte_cap_is_refused_by_the_dry_run)
{
	const char *extra[] = {key_env, "METADATA_BIGQUERY_MAX_BYTES_BILLED=10M", NULL};
	mk_rpc_result res;
	cJSON *dry;
	char *n;

	start_service("metadata-bq-cap", extra);
	mt_bq_reset(&bq);
	ck_assert_int_eq(query_err("SELECT * FROM shop.page_views", &res), MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "10.0 MiB (10485760 bytes)") != NULL, "%s", res.msg);
	ck_assert_msg(strstr(res.msg, "would scan") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	/* Only the dry run reached BigQuery. */
	ck_assert_int_eq(count_route("jobs.insert"), 1);
	ck_assert_int_eq(count_route("jobs.query"), 0);
	dry = last_body("jobs.insert");
	ck_assert(
	    cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(dry, "configuration"), "dryRun")));
	cJSON_Delete(dry);
	n = catalog_scalar("SELECT status || ' ' || (bytes > 10485760)::text FROM catalog.queries "
	                   "ORDER BY id DESC LIMIT 1");
	ck_assert_str_eq(n, "error true");
	free(n);
}
END_TEST

START_TEST(test_what_bigquery_reads_as_a_script_is_refused_by_the_dry_run)
{
	/*
	 * The guard reads r'\' as a string still open, so it sees one SELECT;
	 * BigQuery reads a raw string ending there, then a second statement.
	 * BigQuery's reading decides: the dry run says SCRIPT, and nothing runs.
	 */
	mk_rpc_result res;

	start_with_key("metadata-bq-script");
	mt_bq_reset(&bq);
	ck_assert_int_eq(query_err("SELECT r'\\'; SELECT 2 AS sneaky; SELECT '", &res),
	                 MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "BigQuery reads this as SCRIPT") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(count_route("jobs.insert"), 1);
	ck_assert_int_eq(count_route("jobs.query"), 0);
}
END_TEST

START_TEST(test_a_job_in_another_location_is_polled_there)
{
	mk_rpc_result res;
	const cJSON *body;
	cJSON *log, *r;
	int polls = 0;

	bq_config("{\"incomplete_polls\":2}");
	start_with_key("metadata-bq-location");
	mt_bq_reset(&bq);
	bq_config("{\"incomplete_polls\":2}");
	body = query_ok("SELECT * FROM eu_sales.invoices", &res);
	ck_assert_int_ge(cJSON_GetArraySize(cJSON_GetObjectItem(body, "rows")), 1);
	mk_rpc_result_release(&res);
	log = mt_bq_requests(&bq);
	cJSON_ArrayForEach(r, log)
	{
		if (strcmp(mk_json_str(r, "route"), "jobs.getQueryResults") == 0) {
			polls++;
			ck_assert_msg(strstr(mk_json_str(r, "query"), "location=europe-west2") !=
			                  NULL,
			              "getQueryResults without the job's location: %s",
			              mk_json_str(r, "query"));
		}
	}
	cJSON_Delete(log);
	ck_assert_int_ge(polls, 2);
}
END_TEST

/* ------------------------------------------------------------------ failures */

START_TEST(test_rate_limits_and_bad_gateways_are_retried)
{
	mk_rpc_result res;

	start_with_key("metadata-bq-retry");
	mt_bq_reset(&bq);
	faults("{\"rules\":[{\"route\":\"jobs.insert\",\"times\":2,\"status\":403,"
	       "\"reason\":\"rateLimitExceeded\",\"message\":\"Exceeded rate limits\"},"
	       "{\"route\":\"jobs.getQueryResults\",\"times\":1,\"status\":502,\"html\":true}]}");
	bq_config("{\"incomplete_polls\":1}");
	query_ok("SELECT count(*) AS n FROM shop.customers", &res);
	mk_rpc_result_release(&res);
	/* Two refused tries of the dry run, then the dry run and the job. */
	ck_assert_int_eq(count_route("jobs.insert"), 3);
	ck_assert_int_eq(count_route("jobs.query"), 1);
}
END_TEST

START_TEST(test_an_expired_token_is_renewed_once)
{
	mk_rpc_result res;
	int before;

	start_with_key("metadata-bq-401");
	mt_bq_reset(&bq);
	before = count_route("token");
	faults("{\"rules\":[{\"route\":\"jobs.query\",\"times\":1,\"status\":401,"
	       "\"reason\":\"authError\",\"message\":\"Request had invalid authentication "
	       "credentials.\"}]}");
	query_ok("SELECT 1 AS one", &res);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(count_route("token"), before + 1);

	/* Refused again after the renewal: no third try, a clear error. */
	mt_bq_reset(&bq);
	faults("{\"rules\":[{\"route\":\"jobs.query\",\"times\":5,\"status\":401,"
	       "\"reason\":\"authError\",\"message\":\"Request had invalid authentication "
	       "credentials.\"}]}");
	ck_assert_int_eq(query_err("SELECT 1 AS one", &res), MK_E_UNAVAILABLE);
	ck_assert_msg(strstr(res.msg, "invalid authentication") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(count_route("jobs.query"), 2);
}
END_TEST

START_TEST(test_errors_that_retrying_cannot_fix_fail_at_once)
{
	mk_rpc_result res;

	start_with_key("metadata-bq-fatal");
	mt_bq_reset(&bq);
	faults("{\"rules\":[{\"route\":\"jobs.query\",\"times\":1,\"status\":403,"
	       "\"reason\":\"accessDenied\",\"message\":\"Access Denied: Table "
	       "mark-test:shop.customers: User does not have permission\"}]}");
	ck_assert_int_eq(query_err("SELECT * FROM shop.customers", &res), MK_E_FORBIDDEN);
	ck_assert_msg(strstr(res.msg, "Access Denied") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(count_route("jobs.query"), 1);

	/* The job (after the dry run) exceeds the bytes billed: BigQuery's message, no retry. */
	mt_bq_reset(&bq);
	faults("{\"rules\":[{\"route\":\"jobs.query\",\"times\":1,\"status\":400,"
	       "\"reason\":\"bytesBilledLimitExceeded\",\"message\":\"Query exceeded limit for "
	       "bytes billed: 1073741824. 2147483648 or higher required.\"}]}");
	ck_assert_int_eq(query_err("SELECT * FROM shop.customers", &res), MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "2147483648 or higher required") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(count_route("jobs.query"), 1);

	ck_assert_int_eq(query_err("SELECT * FROM shop.nope", &res), MK_E_VALIDATION);
	ck_assert_msg(strstr(res.msg, "Not found") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);

	ck_assert_int_eq(query_err("SELECT nope FROM shop.customers", &res), MK_E_VALIDATION);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(query_err("DELETE FROM shop.customers", &res), MK_E_VALIDATION);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_a_job_past_the_timeout_is_cancelled)
{
	/* Seconds, so that the job is surely made (after a dry run) before the timeout. */
	const char *extra[] = {key_env, "METADATA_QUERY_TIMEOUT=5s", NULL};
	mk_rpc_result res;
	int64_t t0, took;

	start_service("metadata-bq-timeout", extra);
	mt_bq_reset(&bq);
	/* A job that never completes: only the timeout can end the query. */
	bq_config("{\"incomplete_polls\":100000}");
	t0 = mk_mono_ms();
	ck_assert_int_eq(query_err("SELECT * FROM shop.customers", &res), MK_E_DEADLINE);
	took = mk_mono_ms() - t0;
	ck_assert_msg(strstr(res.msg, "longer than 5000 ms") != NULL, "%s", res.msg);
	ck_assert_msg(strstr(res.msg, "cancelled") != NULL, "%s", res.msg);
	mk_rpc_result_release(&res);
	/* At its 5 s: not held until the call's own deadline. */
	ck_assert_msg(took >= 5000 && took < CALL_MS / 4, "took %lld ms", (long long)took);
	ck_assert_int_eq(count_route("jobs.cancel"), 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metadata_bq");
	TCase *tc = tcase_create("bigquery");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_sync_reads_every_page_and_nested_fields_into_the_catalog);
	tcase_add_test(tc, test_a_vanished_dataset_or_table_is_left_out_of_the_sync);
	tcase_add_test(tc, test_the_metadata_server_gives_the_token_and_the_project);
	tcase_add_test(tc, test_a_bad_key_file_stops_the_start_with_a_clear_message);
	tcase_add_test(tc, test_a_query_is_decoded_by_its_schema);
	tcase_add_test(tc, test_nested_and_repeated_values_become_objects_and_arrays);
	tcase_add_test(tc, test_rows_are_read_page_by_page_up_to_the_cap);
	tcase_add_test(tc, test_a_query_over_the_byte_cap_is_refused_by_the_dry_run);
	tcase_add_test(tc, test_what_bigquery_reads_as_a_script_is_refused_by_the_dry_run);
	tcase_add_test(tc, test_a_job_in_another_location_is_polled_there);
	tcase_add_test(tc, test_rate_limits_and_bad_gateways_are_retried);
	tcase_add_test(tc, test_an_expired_token_is_renewed_once);
	tcase_add_test(tc, test_errors_that_retrying_cannot_fix_fail_at_once);
	tcase_add_test(tc, test_a_job_past_the_timeout_is_cancelled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
