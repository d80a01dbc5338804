/*
 * sql_check_test.c - the SQL guard of meta.query: exactly one read-only
 * SELECT passes, with its trailing ';' removed; every other statement, a
 * second statement, a data-modifying WITH, SELECT ... INTO, row locks and
 * session-changing functions are refused, and nothing inside literals,
 * quoted identifiers, dollar quotes or comments is mistaken for a keyword.
 * BigQuery's dialect: backquoted names, backslash escapes in both kinds of
 * string, and '#' comments.
 */
#include <stdio.h>
#include <string.h>

#include "metadata/metadata.h"
#include "mt_check.h"

static int check(const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
	return meta_sql_check(sql, META_SQL_POSTGRES, out, outlen, err, errlen);
}

static int check_bq(const char *sql, char *out, size_t outlen, char *err, size_t errlen)
{
	return meta_sql_check(sql, META_SQL_BIGQUERY, out, outlen, err, errlen);
}

START_TEST(test_selects_and_with_selects_pass)
{
	static const char *const ok[] = {
	    "SELECT 1",
	    "select * from orders",
	    "  WITH t AS (SELECT id FROM orders) SELECT count(*) FROM t",
	    "(SELECT 1) UNION (SELECT 2)",
	    "SELECT 'DELETE FROM x; DROP TABLE y' AS s",
	    "SELECT \"update\", \"into\" FROM t",
	    "SELECT $$ INSERT INTO t $$",
	    "SELECT $tag$ ; DELETE $tag$",
	    "SELECT E'it\\'s; DELETE' AS s",
	    "SELECT 1 -- DELETE FROM orders; DROP\n",
	    "SELECT /* nested /* INSERT */ ; */ 1",
	    "SELECT updated_at, deleted, inserted_by FROM t",
	};
	char out[256], err[256];

	for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		ck_assert_msg(check(ok[i], out, sizeof(out), err, sizeof(err)) == 0,
		              "'%s' refused: %s", ok[i], err);
}
END_TEST

START_TEST(test_a_trailing_semicolon_is_removed)
{
	char out[64], err[128];

	ck_assert_int_eq(check("SELECT 1 ;  -- done\n", out, sizeof(out), err, sizeof(err)), 0);
	ck_assert_str_eq(out, "SELECT 1");
	ck_assert_int_eq(check("SELECT 1;;", out, sizeof(out), err, sizeof(err)), 0);
	ck_assert_str_eq(out, "SELECT 1");
}
END_TEST

START_TEST(test_everything_else_is_refused_with_a_reason)
{
	static const struct {
		const char *sql, *why;
	} bad[] = {
	    {"INSERT INTO t VALUES (1)", "only SELECT"},
	    {"UPDATE t SET a = 1", "only SELECT"},
	    {"DELETE FROM t", "only SELECT"},
	    {"DROP TABLE t", "only SELECT"},
	    {"TRUNCATE t", "only SELECT"},
	    {"VALUES (1)", "only SELECT"},
	    {"EXPLAIN ANALYZE SELECT 1", "only SELECT"},
	    {"SELECT 1; SELECT 2", "one statement"},
	    {"SELECT 1;/* x */ DELETE FROM t", "one statement"},
	    {"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "inside WITH"},
	    {"WITH x AS (UPDATE t SET a = 1 RETURNING *) SELECT 1", "inside WITH"},
	    {"WITH x AS (INSERT INTO t VALUES (1) RETURNING *) SELECT 1", "inside WITH"},
	    {"SELECT * INTO t2 FROM t", "INTO"},
	    {"SELECT * FROM t FOR UPDATE", "FOR UPDATE"},
	    {"SELECT * FROM t FOR NO KEY UPDATE", "FOR UPDATE"},
	    {"SELECT * FROM t FOR SHARE", "FOR UPDATE"},
	    {"SELECT * FROM t FOR KEY SHARE", "FOR UPDATE"},
	    {"SELECT set_config('statement_timeout', '0', false)", "set_config"},
	    {"SELECT pg_terminate_backend(1)", "pg_terminate_backend"},
	    {"", "empty"},
	    {"  -- nothing\n", "empty"},
	    {";", "empty"},
	    {"SELECT 'unterminated", "unterminated"},
	    {"SELECT /* open", "unterminated"},
	    {"SELECT $a$ open", "unterminated"},
	};
	char out[256], err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = '\0';
		ck_assert_msg(check(bad[i].sql, out, sizeof(out), err, sizeof(err)) == -1,
		              "'%s' passed", bad[i].sql);
		ck_assert_msg(strcasestr(err, bad[i].why) != NULL, "'%s': '%s' lacks '%s'",
		              bad[i].sql, err, bad[i].why);
	}
}
END_TEST

START_TEST(test_a_refused_function_is_found_however_its_name_is_written)
{
	static const char *const refused[] = {
	    "SELECT \"set_config\"('statement_timeout', '0', true)",
	    "SELECT \"SET_CONFIG\"('statement_timeout', '0', true)",
	    "SELECT pg_catalog.set_config('statement_timeout', '0', true)",
	    "SELECT \"pg_catalog\".\"set_config\"('statement_timeout', '0', true)",
	    "SELECT U&\"\\0073et_config\"('statement_timeout', '0', true)",
	    "SELECT u&\"set\\005Fconfig\"('statement_timeout', '0', true)",
	    "SELECT U&\"\\+000073et_config\"('statement_timeout', '0', true)",
	    "SELECT U&\"!0073et_config\" UESCAPE '!' ('statement_timeout', '0', true)",
	    "SELECT pg_try_advisory_lock(1)",
	    "SELECT \"pg_advisory_lock_shared\"(1)",
	    "SELECT query_to_xml('select set_config(''a'', ''b'', false)', true, true, '')",
	    "SELECT cursor_to_xml('c', 1, true, true, '')",
	    "SELECT U&\"\\00ZZ\" FROM t",
	};
	char out[256], err[256];

	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++)
		ck_assert_msg(check(refused[i], out, sizeof(out), err, sizeof(err)) != 0,
		              "'%s' was accepted", refused[i]);
	ck_assert_int_ne(
	    check_bq("SELECT `set_config`('a', 'b', true)", out, sizeof(out), err, sizeof(err)), 0);
	/* Names that only look alike pass. */
	ck_assert_msg(check("SELECT U&\"d\\0061ta\", \"set_config_note\" FROM t", out, sizeof(out),
	                    err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_msg(check("SELECT U&'\\0041' AS a", out, sizeof(out), err, sizeof(err)) == 0,
	              "%s", err);
}
END_TEST

START_TEST(test_bigquery_dialect)
{
	static const char *const ok[] = {
	    "SELECT * FROM `my-proj.shop.orders` WHERE status = 'it\\'s; DELETE'",
	    "SELECT \"a \\\" ; DROP\" AS s FROM `shop.orders;x`",
	    "SELECT 1 # DELETE FROM t; DROP\n",
	    "SELECT `update` FROM `p`.shop.t",
	};
	static const char *const bad[] = {
	    "SELECT 1; DELETE FROM `shop.orders`",
	    "SELECT `open",
	    "INSERT INTO `shop.orders` VALUES (1)",
	    "SELECT 1 ;# ok\nDROP TABLE t",
	};
	char out[256], err[256];
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(*ok); i++)
		ck_assert_msg(check_bq(ok[i], out, sizeof(out), err, sizeof(err)) == 0,
		              "'%s' refused: %s", ok[i], err);
	for (i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ck_assert_msg(check_bq(bad[i], out, sizeof(out), err, sizeof(err)) == -1,
		              "'%s' passed", bad[i]);
	/* Postgres has no '#' comments or backquotes: the same text is read differently there. */
	ck_assert_int_eq(check("SELECT 1 # 2; DROP TABLE t", out, sizeof(out), err, sizeof(err)),
	                 -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("meta_sql_check");
	TCase *tc = tcase_create("sql_check");

	tcase_add_test(tc, test_selects_and_with_selects_pass);
	tcase_add_test(tc, test_a_trailing_semicolon_is_removed);
	tcase_add_test(tc, test_everything_else_is_refused_with_a_reason);
	tcase_add_test(tc, test_a_refused_function_is_found_however_its_name_is_written);
	tcase_add_test(tc, test_bigquery_dialect);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
