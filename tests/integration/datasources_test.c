/*
 * datasources_test.c - the warehouse catalog through the gateway: the demo
 * shop is loaded into a fresh database read by the stack's metadata
 * service; any user lists the source, pages its tables and reads one with
 * its columns; an admin (granted by mark-auth --grant-admin) curates table and column
 * descriptions, which survive a sync on demand and clear back to the
 * synced ones; a plain user may not change the catalog.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"

static mt_stack st;
static char wh_db[64];
static char tok_admin[2048], tok_user[2048];

static void stack_up(void)
{
	char dsn[512], err[256], kind[] = "METADATA_WAREHOUSE_KIND=postgres";
	static char dsn_env[600];
	const char *env[3];

	snprintf(wh_db, sizeof(wh_db), "warehouse_ds_%d", (int)getpid());
	if (mt_warehouse_create(wh_db, "mark_reader", dsn, sizeof(dsn), err, sizeof(err)) != 0) {
		fprintf(stderr, "cannot create the warehouse: %s\n", err);
		exit(1);
	}
	snprintf(dsn_env, sizeof(dsn_env), "METADATA_WAREHOUSE_DSN=%s", dsn);
	env[0] = kind;
	env[1] = dsn_env;
	env[2] = NULL;
	if (mt_stack_start(&st, env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		mt_warehouse_drop(wh_db);
		exit(1);
	}
	ck_assert_int_eq(mt_admin(&st, "ada", tok_admin, sizeof(tok_admin)), 0);
	ck_assert_int_eq(mt_user(&st, "bob", tok_user, sizeof(tok_user), NULL, 0), 0);
}

static void stack_down(void)
{
	int bad = mt_stack_stop(&st);

	mt_warehouse_drop(wh_db);
	ck_assert_int_eq(bad, 0);
}

/* One request as a user (tok NULL: none); body may be NULL. */
static long call(const char *tok, const char *method, const char *path, const char *body,
                 mt_resp *r)
{
	char auth[2100];
	const char *h[] = {"Content-Type: application/json", auth, NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
	if (!tok)
		h[1] = NULL;
	mt_http(method, mt_url(&st, path), h, body, body ? strlen(body) : 0, r);
	return r->status;
}

/* The column `name` of a table object, or NULL. */
static const cJSON *column(const cJSON *table, const char *name)
{
	const cJSON *c;

	cJSON_ArrayForEach(c, cJSON_GetObjectItem(table, "columns"))
	{
		if (strcmp(mk_json_str(c, "name"), name) == 0)
			return c;
	}
	return NULL;
}

START_TEST(test_the_warehouse_is_listed_with_its_tables)
{
	const cJSON *items, *s, *t;
	int found = 0;
	mt_resp r;

	ck_assert_int_eq(call(tok_user, "GET", "/api/v1/datasources", NULL, &r), 200);
	items = cJSON_GetObjectItem(r.json, "items");
	ck_assert_int_eq(cJSON_GetArraySize(items), 1);
	s = cJSON_GetArrayItem(items, 0);
	ck_assert_str_eq(mk_json_str(s, "id"), "warehouse");
	ck_assert_str_eq(mk_json_str(s, "kind"), "postgres");
	ck_assert_int_ge((int)cJSON_GetObjectItem(s, "tables")->valuedouble, 5);
	ck_assert_ptr_nonnull(mk_json_str(s, "last_synced_at"));
	mt_resp_release(&r);

	ck_assert_int_eq(call(tok_user, "GET", "/api/v1/datasources/warehouse/tables", NULL, &r),
	                 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(r.json, "items"))
	{
		if (strcmp(mk_json_str(t, "table"), "public.orders") == 0) {
			found = 1;
			ck_assert_ptr_nonnull(mk_json_str(t, "last_synced_at"));
			ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "row_count")));
			ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(t, "bytes")));
		}
	}
	ck_assert(found);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "next_cursor")));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_tables_page_by_cursor_without_gaps_or_repeats)
{
	char path[512], all[4096] = "", seen[4096] = "";
	const cJSON *t;
	int pages = 0;
	mt_resp r;

	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables?limit=100", NULL, &r), 200);
	cJSON_ArrayForEach(t, cJSON_GetObjectItem(r.json, "items"))
	{
		strcat(all, mk_json_str(t, "table"));
		strcat(all, " ");
	}
	mt_resp_release(&r);
	snprintf(path, sizeof(path), "/api/v1/datasources/warehouse/tables?limit=2");
	for (;;) {
		const char *next;

		ck_assert_int_eq(call(tok_user, "GET", path, NULL, &r), 200);
		ck_assert_int_le(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 2);
		cJSON_ArrayForEach(t, cJSON_GetObjectItem(r.json, "items"))
		{
			strcat(seen, mk_json_str(t, "table"));
			strcat(seen, " ");
		}
		pages++;
		next = mk_json_str(r.json, "next_cursor");
		if (!next) {
			mt_resp_release(&r);
			break;
		}
		snprintf(path, sizeof(path),
		         "/api/v1/datasources/warehouse/tables?limit=2&cursor=%s", next);
		mt_resp_release(&r);
		ck_assert_int_lt(pages, 50);
	}
	ck_assert_int_ge(pages, 3);
	ck_assert_str_eq(seen, all);
}
END_TEST

START_TEST(test_one_table_is_described_with_its_columns)
{
	const cJSON *t, *c;
	mt_resp r;

	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables/public.orders", NULL, &r),
	    200);
	t = cJSON_GetObjectItem(r.json, "table");
	ck_assert_str_eq(mk_json_str(t, "table"), "public.orders");
	ck_assert_str_eq(mk_json_str(t, "schema"), "public");
	ck_assert_str_eq(mk_json_str(t, "name"), "orders");
	c = column(t, "status");
	ck_assert_ptr_nonnull(c);
	ck_assert_str_eq(mk_json_str(c, "type"), "text");
	ck_assert_ptr_nonnull(strstr(mk_json_str(r.json, "text"), "Table public.orders"));
	mt_resp_release(&r);
	/* A bare name is looked up in public first. */
	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables/orders", NULL, &r), 200);
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "table"), "table"),
	                 "public.orders");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_an_admin_curates_descriptions_that_survive_a_sync)
{
	const char *path = "/api/v1/datasources/warehouse/tables/public.orders";
	const cJSON *t, *c;
	mt_resp r;

	/* Clearing gives back the warehouse's own comments. */
	ck_assert_int_eq(call(tok_admin, "PATCH", path, "{\"description\":\"\"}", &r), 200);
	mt_resp_release(&r);
	ck_assert_int_eq(
	    call(tok_admin, "PATCH", path, "{\"column\":\"status\",\"description\":\"\"}", &r),
	    200);
	t = cJSON_GetObjectItem(r.json, "table");
	ck_assert_ptr_nonnull(strstr(mk_json_str(t, "description"), "one row per checkout"));
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(column(t, "status"), "description"), "Fulfilment"));
	mt_resp_release(&r);

	ck_assert_int_eq(
	    call(tok_admin, "PATCH", path, "{\"description\":\"Every checkout, curated.\"}", &r),
	    200);
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "table"), "description"),
	                 "Every checkout, curated.");
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_admin, "PATCH", path,
	                      "{\"column\":\"status\",\"description\":\"Where the order is now.\"}",
	                      &r),
	                 200);
	mt_resp_release(&r);

	ck_assert_int_eq(call(tok_admin, "POST", "/api/v1/datasources/warehouse/sync", NULL, &r),
	                 200);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "synced")));
	ck_assert_int_ge((int)cJSON_GetObjectItem(r.json, "tables")->valuedouble, 5);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(r.json, "changes")));
	mt_resp_release(&r);

	ck_assert_int_eq(call(tok_user, "GET", path, NULL, &r), 200);
	t = cJSON_GetObjectItem(r.json, "table");
	ck_assert_str_eq(mk_json_str(t, "description"), "Every checkout, curated.");
	c = column(t, "status");
	ck_assert_str_eq(mk_json_str(c, "description"), "Where the order is now.");
	mt_resp_release(&r);
	/* The list shows the curated text too. */
	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables?limit=100", NULL, &r), 200);
	ck_assert_ptr_nonnull(strstr(r.body, "Every checkout, curated."));
	mt_resp_release(&r);

	/* A column the table lacks. */
	ck_assert_int_eq(
	    call(tok_admin, "PATCH", path, "{\"column\":\"nope\",\"description\":\"x\"}", &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_admin, "PATCH", path, "{\"title\":\"x\"}", &r), 422);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_plain_user_may_not_change_the_catalog)
{
	const char *path = "/api/v1/datasources/warehouse/tables/public.orders";
	mt_resp r;

	ck_assert_int_eq(call(tok_user, "PATCH", path, "{\"description\":\"mine\"}", &r), 403);
	ck_assert_str_eq(mt_error_code(&r), "forbidden");
	mt_resp_release(&r);
	ck_assert_int_eq(
	    call(tok_user, "PATCH", path, "{\"column\":\"status\",\"description\":\"mine\"}", &r),
	    403);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_user, "POST", "/api/v1/datasources/warehouse/sync", NULL, &r),
	                 403);
	ck_assert_str_eq(mt_error_code(&r), "forbidden");
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_user, "GET", path, NULL, &r), 200);
	ck_assert_str_ne(mk_json_str(cJSON_GetObjectItem(r.json, "table"), "description"), "mine");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_unknown_sources_and_tables_are_404)
{
	mt_resp r;

	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables/public.nope", NULL, &r),
	    404);
	ck_assert_str_eq(mt_error_code(&r), "not_found");
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_admin, "PATCH", "/api/v1/datasources/warehouse/tables/nope",
	                      "{\"description\":\"x\"}", &r),
	                 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_user, "GET", "/api/v1/datasources/other/tables", NULL, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/other/tables/public.orders", NULL, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_admin, "POST", "/api/v1/datasources/other/sync", NULL, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(
	    call(tok_user, "GET", "/api/v1/datasources/warehouse/tables?cursor=nodot", NULL, &r),
	    422);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_datasource_routes_need_a_valid_token)
{
	static const char *const paths[][2] = {
	    {"GET", "/api/v1/datasources"},
	    {"GET", "/api/v1/datasources/warehouse/tables"},
	    {"GET", "/api/v1/datasources/warehouse/tables/public.orders"},
	    {"PATCH", "/api/v1/datasources/warehouse/tables/public.orders"},
	    {"POST", "/api/v1/datasources/warehouse/sync"},
	};
	size_t i;
	mt_resp r;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		ck_assert_msg(call(NULL, paths[i][0], paths[i][1], "{\"description\":\"x\"}", &r) ==
		                  401,
		              "%s %s: %ld", paths[i][0], paths[i][1], r.status);
		mt_resp_release(&r);
	}
	ck_assert_int_eq(call("not.a.token", "GET", "/api/v1/datasources", NULL, &r), 401);
	mt_resp_release(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("datasources");
	TCase *tc = tcase_create("datasources");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_the_warehouse_is_listed_with_its_tables);
	tcase_add_test(tc, test_tables_page_by_cursor_without_gaps_or_repeats);
	tcase_add_test(tc, test_one_table_is_described_with_its_columns);
	tcase_add_test(tc, test_an_admin_curates_descriptions_that_survive_a_sync);
	tcase_add_test(tc, test_a_plain_user_may_not_change_the_catalog);
	tcase_add_test(tc, test_unknown_sources_and_tables_are_404);
	tcase_add_test(tc, test_datasource_routes_need_a_valid_token);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
