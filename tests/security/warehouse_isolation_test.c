/*
 * warehouse_isolation_test.c - the local stack's warehouse and its
 * Postgres under attack. The demo warehouse is made exactly as `make run`
 * makes it (scripts/warehouse.sh: a cluster of its own), a real metadata
 * service reads it as mark_reader, and the model's SQL tries to see Mark's
 * own database and roles, reach other databases, spill unbounded
 * temporary files and lift its limits. Every local cluster also refuses a
 * login without its password. Each attack gets a clear error or finds
 * nothing, and the service keeps answering.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define CALL_MS 120000 /* one query, on a loaded machine */

static char wh_dir[600], reader_dsn[1024], cat_db[64];
static mk_rpc_client *client;
static mt_proc svc;

/* The warehouse cluster, made by the script `make run` uses, with a small temp-file limit. */
static void warehouse_up(void)
{
	char cmd[1600], *out = NULL;
	int st, port = mt_free_port();

	/* Beside the bus key: in the tests' log directory. */
	snprintf(wh_dir, sizeof(wh_dir), "%s", mt_bus_key_file());
	snprintf(strrchr(wh_dir, '/'), sizeof(wh_dir) - (size_t)(strrchr(wh_dir, '/') - wh_dir),
	         "/warehouse-pg-%d", (int)getpid());
	snprintf(cmd, sizeof(cmd),
	         "rm -rf '%s' && WAREHOUSE_TEMP_FILE_LIMIT=2MB scripts/warehouse.sh '%s' %d 2>&1",
	         wh_dir, wh_dir, port);
	st = mt_sh(cmd, &out);
	ck_assert_msg(st == 0 && out && strstr(out, "postgresql://mark_reader:"),
	              "warehouse.sh failed (%d): %s", st, out ? out : "");
	snprintf(reader_dsn, sizeof(reader_dsn), "%s", strstr(out, "postgresql://mark_reader:"));
	reader_dsn[strcspn(reader_dsn, "\n")] = '\0';
	free(out);
}

static void warehouse_down(void)
{
	char cmd[1400], *out = NULL;

	snprintf(cmd, sizeof(cmd), "scripts/warehouse.sh stop '%s' && rm -rf '%s'", wh_dir, wh_dir);
	mt_sh(cmd, &out);
	free(out);
}

static void run_admin(const char *sql)
{
	char admin[512], err[512];

	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	ck_assert_msg(mt_sql(admin, sql, err, sizeof(err)) == 0, "%s: %s", sql, err);
}

static void setup(void)
{
	char q[200], cat_dsn[512], url[64], err[256];
	char listen_env[96], db_env[600], wh_env[1100];
	const char *env[] = {listen_env, db_env, "METADATA_WAREHOUSE_KIND=postgres", wh_env, NULL};
	int port = mt_free_port();
	int64_t until;
	mk_rpc_result res;

	warehouse_up();
	snprintf(cat_db, sizeof(cat_db), "catalog_iso_%d", (int)getpid());
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s", cat_db);
	run_admin(q);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", cat_db);
	run_admin(q);
	mt_dsn_for("mark", cat_db, cat_dsn, sizeof(cat_dsn));
	snprintf(listen_env, sizeof(listen_env), "METADATA_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(db_env, sizeof(db_env), "METADATA_DATABASE_URL=%s", cat_dsn);
	snprintf(wh_env, sizeof(wh_env), "METADATA_WAREHOUSE_DSN=%s", reader_dsn);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	client = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(client != NULL, "%s", err);
	ck_assert_int_eq(mt_proc_start(&svc, "metadata-isolation", "mark-metadata", env), 0);
	for (until = mk_mono_ms() + CALL_MS;; mk_sleep_ms(50)) {
		mk_err e = mk_rpc_call(client, MK_OP_SYS_PING, "ping", NULL, NULL, 5000, &res);

		mk_rpc_result_release(&res);
		if (e == MK_OK)
			break;
		ck_assert_msg(mt_proc_alive(&svc) && mk_mono_ms() < until,
		              "mark-metadata did not answer");
	}
}

static void teardown(void)
{
	char q[200];

	ck_assert_int_eq(mt_proc_stop(&svc, SIGTERM, CALL_MS), 0);
	mk_rpc_client_free(client);
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", cat_db);
	run_admin(q);
	warehouse_down();
}

/* The model's SQL through the metadata service; the reply's text (caller frees) and error. */
static mk_err query(const char *sql, char **text, char *msg, size_t msglen)
{
	mk_caller who = {0};
	cJSON *b = cJSON_CreateObject();
	mk_rpc_result res;
	mk_err e;

	snprintf(who.user_id, sizeof(who.user_id), "00000000-0000-4000-8000-00000000000a");
	snprintf(who.role, sizeof(who.role), "user");
	cJSON_AddStringToObject(b, "sql", sql);
	e = mk_rpc_call(client, MK_OP_META_QUERY, "isolation", &who, b, CALL_MS, &res);
	cJSON_Delete(b);
	*text = e == MK_OK ? cJSON_PrintUnformatted(res.body) : NULL;
	snprintf(msg, msglen, "%s", res.msg);
	mk_rpc_result_release(&res);
	return e;
}

START_TEST(test_the_warehouse_role_sees_no_database_or_role_of_mark)
{
	char *t, msg[256];

	ck_assert_int_eq(query("SELECT datname FROM pg_database ORDER BY 1", &t, msg, sizeof(msg)),
	                 MK_OK);
	ck_assert_msg(strstr(t, "\"warehouse\"") && !strstr(t, "\"mark\""), "%s", t);
	free(t);
	ck_assert_int_eq(query("SELECT rolname, rolsuper FROM pg_roles WHERE rolname NOT LIKE "
	                       "'pg\\_%' ORDER BY 1",
	                       &t, msg, sizeof(msg)),
	                 MK_OK);
	/* Only the warehouse's own admin and reader; none of Mark's roles. */
	ck_assert_msg(strstr(t, "mark_reader") && strstr(t, "warehouse_admin") &&
	                  !strstr(t, "[\"mark\""),
	              "%s", t);
	free(t);
	/* And the shop is there to be read. */
	ck_assert_int_eq(query("SELECT count(*) AS n FROM categories", &t, msg, sizeof(msg)),
	                 MK_OK);
	free(t);
}
END_TEST

START_TEST(test_a_query_spilling_past_the_temp_file_limit_fails_clearly)
{
	char *t = NULL, msg[256];
	mk_err e;

	/* A sort far past work_mem (16MB) spills; the role's 2MB of temp files stop it. */
	e = query("SELECT g FROM generate_series(1, 3000000) g ORDER BY g DESC LIMIT 1", &t, msg,
	          sizeof(msg));
	ck_assert_msg(e != MK_OK, "the sort ran: %s", t ? t : "");
	ck_assert_msg(strstr(msg, "temp_file_limit"), "%s: %s", mk_err_code(e), msg);
	/* The limit is the role's, and the role cannot lift it. */
	e = query(
	    "SELECT current_setting('temp_file_limit') AS l, current_setting('work_mem') AS w", &t,
	    msg, sizeof(msg));
	ck_assert_msg(e == MK_OK && strstr(t, "2MB") && strstr(t, "16MB"), "%s %s", t ? t : "",
	              msg);
	free(t);
	/* The service still answers. */
	ck_assert_int_eq(query("SELECT 1 AS one", &t, msg, sizeof(msg)), MK_OK);
	free(t);
}
END_TEST

static int login_fails(const char *dsn)
{
	PGconn *c = PQconnectdb(dsn);
	int failed = PQstatus(c) != CONNECTION_OK &&
	             strstr(PQerrorMessage(c), "password") != NULL; /* asked for one */

	if (!failed)
		fprintf(stderr, "%s: %s\n", dsn, PQerrorMessage(c));
	PQfinish(c);
	return failed;
}

/* dsn with its password taken out. */
static void without_password(const char *dsn, char *out, size_t outlen)
{
	const char *u = strstr(dsn, "://"), *at = strchr(dsn, '@');
	size_t n = strcspn(u + 3, ":@");

	snprintf(out, outlen, "%.*s%s", (int)(u + 3 + n - dsn), dsn, at);
}

START_TEST(test_no_local_cluster_lets_anyone_in_without_a_password)
{
	const char *at = strchr(reader_dsn, '@'), *pw = strchr(reader_dsn + 13, ':') + 1;
	char dsn[1024], host[128], pass[128];
	PGconn *c;

	/* host:port, and the reader's password, from postgresql://mark_reader:PW@HOST:PORT/db */
	snprintf(host, sizeof(host), "%.*s", (int)(strrchr(reader_dsn, '/') - at - 1), at + 1);
	snprintf(pass, sizeof(pass), "%.*s", (int)(at - pw), pw);
	/* Mark's own database (as `make run` and `make test` start it), as its superuser. */
	without_password(mt_dsn(), dsn, sizeof(dsn));
	ck_assert(login_fails(dsn));
	/* The warehouse cluster: as its admin, as the reader, and with a wrong password. */
	snprintf(dsn, sizeof(dsn), "postgresql://warehouse_admin@%s/warehouse", host);
	ck_assert(login_fails(dsn));
	snprintf(dsn, sizeof(dsn), "postgresql://mark_reader@%s/warehouse", host);
	ck_assert(login_fails(dsn));
	snprintf(dsn, sizeof(dsn), "postgresql://mark_reader:wrong-%s@%s/warehouse", pass, host);
	ck_assert(login_fails(dsn));
	/* The reader may not connect to the cluster's other databases either. */
	snprintf(dsn, sizeof(dsn), "postgresql://mark_reader:%s@%s/postgres", pass, host);
	c = PQconnectdb(dsn);
	ck_assert(PQstatus(c) != CONNECTION_OK);
	ck_assert_msg(strstr(PQerrorMessage(c), "CONNECT privilege"), "%s", PQerrorMessage(c));
	PQfinish(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("warehouse_isolation");
	TCase *tc = tcase_create("isolation");

	tcase_set_timeout(tc, 600);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_the_warehouse_role_sees_no_database_or_role_of_mark);
	tcase_add_test(tc, test_a_query_spilling_past_the_temp_file_limit_fails_clearly);
	tcase_add_test(tc, test_no_local_cluster_lets_anyone_in_without_a_password);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
