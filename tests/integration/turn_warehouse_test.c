/*
 * turn_warehouse_test.c - the model always knows the warehouse: with the
 * demo warehouse behind the metadata service, a question that matches no
 * table still gets the SQL tools and a system prompt naming the
 * warehouse, its dialect and its tables; a run_sql on a column or a table
 * that does not exist gets back the columns that do, or the closest table
 * names; without a warehouse, no SQL tool is offered. What the model was
 * sent is read from the LLM double's recorded requests.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define STOP_MS       60000
#define READY_WAIT_MS 90000

static mt_stack st;
static mt_double dbl;
static char wh_name[64];
static char tok[2048];

static void up(void)
{
	char err[512], dsn[512], *env[8];
	static char base[128], e1[600];

	if (mt_double_start(&dbl, "turn-wh-double", "test-key", err, sizeof(err)) != 0) {
		fprintf(stderr, "the LLM double did not start: %s\n", err);
		exit(1);
	}
	snprintf(base, sizeof(base), "LLM_BASE_URL=%s/v1", dbl.base);
	snprintf(wh_name, sizeof(wh_name), "warehouse_twh_%d", (int)getpid());
	if (mt_warehouse_create(wh_name, "mark_reader", dsn, sizeof(dsn), err, sizeof(err)) != 0) {
		fprintf(stderr, "the demo warehouse was not created: %s\n", err);
		exit(1);
	}
	snprintf(e1, sizeof(e1), "METADATA_WAREHOUSE_DSN=%s", dsn);
	env[0] = base;
	env[1] = "LLM_MODEL=mark-test-model";
	env[2] = "LLM_API_KEY=test-key";
	env[3] = "LLM_TURN_MAX_STEPS=3";
	env[4] = "METADATA_WAREHOUSE_KIND=postgres";
	env[5] = e1;
	env[6] = "EXECUTOR_POOL_SIZE=1";
	env[7] = NULL;
	if (mt_stack_start(&st, (const char *const *)env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "wendy", tok, sizeof(tok), NULL, 0), 0);
}

static void down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
	ck_assert_int_eq(mt_double_stop(&dbl), 0);
	mt_warehouse_drop(wh_name);
}

static void scenario(const char *json)
{
	char err[512];

	ck_assert_msg(mt_double_reset(&dbl, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(mt_double_scenario(&dbl, json, err, sizeof(err)) == 0, "%s", err);
}

static void ask(const char *question, const char *want_story)
{
	char auth[2100], body[512];
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	const cJSON *e;
	mt_resp r;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	snprintf(body, sizeof(body), "{\"message\":\"%s\"}", question);
	mt_http("POST", mt_url(&st, "/api/v1/chat"), h, body, strlen(body), &r);
	ck_assert_int_eq(r.status, 200);
	e = cJSON_GetObjectItemCaseSensitive(r.json, "error");
	ck_assert_msg(!cJSON_IsObject(e), "error %s: %s", mk_json_str(e, "code"),
	              mk_json_str(r.json, "answer_story"));
	ck_assert_str_eq(mk_json_str(r.json, "answer_story"), want_story);
	mt_resp_release(&r);
}

/* The body of the n-th model request (0 first, -1 last) since the scenario; the caller deletes
 * *all. */
static const cJSON *request(int n, cJSON **all)
{
	char err[512];
	int count;

	*all = mt_double_requests(&dbl, err, sizeof(err));
	ck_assert_msg(*all != NULL, "%s", err);
	count = cJSON_GetArraySize(*all);
	ck_assert_int_gt(count, 0);
	return cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(*all, n < 0 ? count - 1 : n),
	                                        "body");
}

/* Whether the request offers the tool. */
static int offers(const cJSON *body, const char *tool)
{
	const cJSON *t;

	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(body, "tools"))
	{
		const char *name =
		    mk_json_str(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");

		if (name && strcmp(name, tool) == 0)
			return 1;
	}
	return 0;
}

/* The content of the request's first message of role (NULL when none). */
static const char *message(const cJSON *body, const char *role)
{
	const cJSON *m;

	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(body, "messages"))
	{
		const char *r = mk_json_str(m, "role");

		if (r && strcmp(r, role) == 0)
			return mk_json_str(m, "content");
	}
	return NULL;
}

START_TEST(test_a_question_matching_no_table_still_gets_the_warehouse)
{
	cJSON *all;
	const cJSON *b;
	const char *sys;

	scenario("{\"steps\":[{\"openai_text\":\"You have five tables.\"}]}");
	ask("Which tables do I have?", "You have five tables.");
	b = request(0, &all);
	ck_assert(offers(b, "run_python"));
	ck_assert(offers(b, "run_sql"));
	ck_assert(offers(b, "search_tables"));
	ck_assert(offers(b, "describe_table"));
	sys = message(b, "system");
	ck_assert_ptr_nonnull(sys);
	ck_assert_msg(strstr(sys, "A data warehouse is connected (postgres)"), "%s", sys);
	ck_assert_msg(strstr(sys, "PostgreSQL"), "%s", sys);
	ck_assert_msg(strstr(sys, "Schemas: public (5 tables). 5 tables in all."), "%s", sys);
	/* Its description: the warehouse's comment, or one an admin curated in another test. */
	ck_assert_msg(strstr(sys, "- public.orders (~20000 rows): "), "%s", sys);
	ck_assert_msg(strstr(sys, "public.order_items"), "%s", sys);
	ck_assert_msg(strstr(sys, "public.customers"), "%s", sys);
	/* No table matched the question: no search hits on top. */
	ck_assert_msg(!strstr(sys, "relevant to the question"), "%s", sys);
	cJSON_Delete(all);
}
END_TEST

START_TEST(test_search_hits_come_on_top_of_the_overview)
{
	cJSON *all;
	const char *sys;

	scenario("{\"steps\":[{\"openai_text\":\"Shipping costs are in orders.\"}]}");
	ask("What is the average shipping cost of orders?", "Shipping costs are in orders.");
	sys = message(request(0, &all), "system");
	ck_assert_msg(strstr(sys, "5 tables in all."), "%s", sys);
	ck_assert_msg(
	    strstr(sys, "Tables that may be relevant to the question:\nTable public.orders"), "%s",
	    sys);
	cJSON_Delete(all);
}
END_TEST

START_TEST(test_an_unknown_column_gets_the_columns_that_exist)
{
	cJSON *all;
	const char *tool;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"q1\",\"name\":\"run_sql\",\"arguments\":"
	         "\"{\\\"sql\\\":\\\"SELECT colour, count(*) FROM orders GROUP BY colour\\\"}\"}]},"
	         "{\"openai_text\":\"Orders have no colour.\"}]}");
	ask("How many orders per colour?", "Orders have no colour.");
	tool = message(request(-1, &all), "tool");
	ck_assert_ptr_nonnull(tool);
	ck_assert_msg(strstr(tool, "colour"), "%s", tool);
	ck_assert_msg(strstr(tool, "Columns of public.orders: id (integer), customer_id (integer), "
	                           "ordered_at"),
	              "%s", tool);
	ck_assert_msg(strstr(tool, "channel (text), shipping_cost"), "%s", tool);
	cJSON_Delete(all);
}
END_TEST

START_TEST(test_an_unknown_table_gets_the_closest_names)
{
	cJSON *all;
	const char *tool;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"q1\",\"name\":\"run_sql\",\"arguments\":"
	         "\"{\\\"sql\\\":\\\"SELECT count(*) FROM public.orderz\\\"}\"}]},"
	         "{\"openai_text\":\"It is called orders.\"}]}");
	ask("How many orders are there?", "It is called orders.");
	tool = message(request(-1, &all), "tool");
	ck_assert_ptr_nonnull(tool);
	ck_assert_msg(strstr(tool, "Closest tables in the catalog: public.orders"), "%s", tool);
	cJSON_Delete(all);
}
END_TEST

START_TEST(test_a_syntax_error_gets_the_dialects_hint)
{
	cJSON *all;
	const char *tool;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"q1\",\"name\":\"run_sql\",\"arguments\":"
	         "\"{\\\"sql\\\":\\\"SELECT DATE_SUB(ordered_at, INTERVAL 7 DAY) AS d FROM "
	         "orders\\\"}\"}]},"
	         "{\"openai_text\":\"Fixed.\"}]}");
	ask("Orders a week before?", "Fixed.");
	tool = message(request(-1, &all), "tool");
	ck_assert_ptr_nonnull(tool);
	ck_assert_msg(strstr(tool, "PostgreSQL hints:"), "%s", tool);
	ck_assert_msg(strstr(tool, "date_trunc('month', d)"), "%s", tool);
	cJSON_Delete(all);
}
END_TEST

/* Last: the metadata service is restarted without a warehouse. */
START_TEST(test_without_a_warehouse_no_sql_tool_is_offered)
{
	const char *env[] = {"METADATA_WAREHOUSE_KIND=none", NULL};
	cJSON *all;
	const cJSON *b;
	const char *sys;

	ck_assert_int_eq(mt_proc_stop(&st.p[MT_METADATA], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_METADATA, env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
	scenario("{\"steps\":[{\"openai_text\":\"No warehouse here.\"}]}");
	ask("Which tables do I have?", "No warehouse here.");
	b = request(0, &all);
	ck_assert(offers(b, "run_python"));
	ck_assert(!offers(b, "run_sql"));
	ck_assert(!offers(b, "search_tables"));
	ck_assert(!offers(b, "describe_table"));
	sys = message(b, "system");
	ck_assert_ptr_nonnull(sys);
	ck_assert_msg(!strstr(sys, "warehouse is connected"), "%s", sys);
	ck_assert_msg(!strstr(sys, "Schemas:"), "%s", sys);
	cJSON_Delete(all);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("turn_warehouse");
	TCase *tc = tcase_create("turn_warehouse");

	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, up, down);
	tcase_add_test(tc, test_a_question_matching_no_table_still_gets_the_warehouse);
	tcase_add_test(tc, test_search_hits_come_on_top_of_the_overview);
	tcase_add_test(tc, test_an_unknown_column_gets_the_columns_that_exist);
	tcase_add_test(tc, test_an_unknown_table_gets_the_closest_names);
	tcase_add_test(tc, test_a_syntax_error_gets_the_dialects_hint);
	tcase_add_test(tc, test_without_a_warehouse_no_sql_tool_is_offered);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
