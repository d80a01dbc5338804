/*
 * migrate_test.c - `mark-<service> --migrate`, the migration step a
 * deployment runs before the services (the Kubernetes init containers):
 * each backend brings its own schema of an empty database up to date and
 * exits 0, a second run finds nothing to do, and an unreachable database is
 * a clear failure, not a hang.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mt.h"
#include "mt_check.h"

static const struct {
	const char *service, *prefix, *schema;
} backends[] = {
    {"auth", "AUTH", "auth"},
    {"llm", "LLM", "chat"},
    {"metadata", "METADATA", "catalog"},
    {"executor", "EXECUTOR", "exec"},
};

static char db[64], dsn[600], key_priv[300], key_pub[300];

/* The superuser of the test DSN (postgresql://USER[:pw]@...). */
static void superuser(char *out, size_t outlen)
{
	const char *u = strstr(mt_dsn(), "://");

	snprintf(out, outlen, "%.*s", (int)strcspn(u + 3, ":@"), u + 3);
}

static void setup(void)
{
	char err[512], sql[128], who[128];

	snprintf(db, sizeof(db), "mark_migrate_%d", (int)getpid());
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
	mt_sql(mt_dsn(), sql, err, sizeof(err));
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	ck_assert_msg(mt_sql(mt_dsn(), sql, err, sizeof(err)) == 0, "%s", err);
	superuser(who, sizeof(who));
	mt_dsn_for(who, db, dsn, sizeof(dsn));
	snprintf(key_priv, sizeof(key_priv), "/tmp/mt-migrate-%d-private.pem", (int)getpid());
	snprintf(key_pub, sizeof(key_pub), "/tmp/mt-migrate-%d-public.pem", (int)getpid());
	ck_assert_int_eq(mt_keygen(key_priv, key_pub), 0);
}

static void teardown(void)
{
	char err[512], sql[160];

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db);
	mt_sql(mt_dsn(), sql, err, sizeof(err));
	unlink(key_priv);
	unlink(key_pub);
}

/* Run mark-<service> --migrate against url; its exit status, its output in *out. */
static int migrate(int i, const char *url, const char *wait, char **out)
{
	char bin[64], env_db[700], env_key[400], env_wait[64];
	const char *argv[] = {"--migrate", NULL};
	const char *env[] = {env_db, env_key, env_wait, NULL};

	snprintf(bin, sizeof(bin), "mark-%s", backends[i].service);
	snprintf(env_db, sizeof(env_db), "%s_DATABASE_URL=%s", backends[i].prefix, url);
	snprintf(env_key, sizeof(env_key), "AUTH_JWT_PRIVATE_KEY_FILE=%s", key_priv);
	snprintf(env_wait, sizeof(env_wait), "%s_DB_WAIT=%s", backends[i].prefix, wait);
	return mt_run(bin, argv, env, out);
}

START_TEST(test_each_backend_migrates_its_own_schema_once_and_exits)
{
	for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
		char *out, sql[300], err[512];

		ck_assert_msg(migrate((int)i, dsn, "30s", &out) == 0, "%s: %s", backends[i].service,
		              out);
		ck_assert_msg(strstr(out, "SVC-MIGRATED"), "%s: %s", backends[i].service, out);
		ck_assert_msg(!strstr(out, " 0 migration(s) applied"), "%s: %s",
		              backends[i].service, out);
		free(out);
		/* The schema is there, with its migrations recorded. */
		snprintf(sql, sizeof(sql),
		         "DO $$ BEGIN IF (SELECT count(*) FROM %s.schema_migrations) = 0 THEN "
		         "RAISE 'no migration recorded'; END IF; END $$",
		         backends[i].schema);
		ck_assert_msg(mt_sql(dsn, sql, err, sizeof(err)) == 0, "%s: %s",
		              backends[i].service, err);
		/* Again: nothing left to apply, still success. */
		ck_assert_int_eq(migrate((int)i, dsn, "30s", &out), 0);
		ck_assert_msg(strstr(out, " 0 migration(s) applied"), "%s: %s", backends[i].service,
		              out);
		free(out);
	}
}
END_TEST

/* <P>_LOG_FORMAT=json: every line the process writes is a JSON object naming its event. */
START_TEST(test_with_log_format_json_every_line_is_a_json_event)
{
	char bin[] = "mark-metadata", env_db[700], *out, *line, *save = NULL;
	const char *argv[] = {"--migrate", NULL};
	const char *env[] = {env_db, "METADATA_LOG_FORMAT=json", NULL};
	int lines = 0, migrated = 0;

	snprintf(env_db, sizeof(env_db), "METADATA_DATABASE_URL=%s", dsn);
	ck_assert_int_eq(mt_run(bin, argv, env, &out), 0);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *o = cJSON_Parse(line);

		ck_assert_msg(o != NULL, "not JSON: %s", line);
		ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(o, "service")),
		                 "metadata");
		migrated += strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(o, "event")),
		                   "SVC-MIGRATED") == 0;
		cJSON_Delete(o);
		lines++;
	}
	ck_assert_int_ge(lines, 1);
	ck_assert_int_eq(migrated, 1);
	free(out);
}
END_TEST

START_TEST(test_an_unreachable_database_fails_clearly_after_the_wait)
{
	char url[128], *out;

	snprintf(url, sizeof(url), "postgresql://nobody:x@127.0.0.1:%d/none", mt_free_port());
	ck_assert_int_eq(migrate(1, url, "1s", &out), 1);
	ck_assert_msg(strstr(out, "SVC-MIGRATE-FAIL"), "%s", out);
	free(out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("migrate");
	TCase *tc = tcase_create("migrate");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, test_each_backend_migrates_its_own_schema_once_and_exits);
	tcase_add_test(tc, test_an_unreachable_database_fails_clearly_after_the_wait);
	tcase_add_test(tc, test_with_log_format_json_every_line_is_a_json_event);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
