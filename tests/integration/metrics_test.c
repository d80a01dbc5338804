/*
 * metrics_test.c - the metrics of a running stack: the gateway's
 * GET /metrics and the llm's and auth's metrics ports answer the
 * Prometheus text format (checked strictly by tests/support/mt_prom.c),
 * and their counts move with the requests made: a route's requests by
 * pattern and status, the RPC calls by op on both ends, the database pool,
 * and a chat turn's model calls, tokens, execution and sandbox on the
 * llm's and the executor's ports (the LLM double answers), and a warehouse
 * query on the metadata service's.
 * Only counts are asserted, never timings.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_rpc.h"

#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"
#include "mt_prom.h"

static mt_stack st;
static mt_double dbl;
static char tok[2048];
static char llm_metrics[64], auth_metrics[64], exec_metrics[64], meta_metrics[64];
static char wh_name[64];

static void stack_up(void)
{
	static char llm_env[64], auth_env[64], exec_env[64], meta_env[64], base_env[160],
	    wh_env[600];
	const char *env[] = {llm_env,
	                     auth_env,
	                     exec_env,
	                     meta_env,
	                     base_env,
	                     wh_env,
	                     "METADATA_WAREHOUSE_KIND=postgres",
	                     "LLM_MODEL=mark-test-model",
	                     "LLM_API_KEY=test-key",
	                     "LLM_PROVIDER=openai",
	                     "EXECUTOR_POOL_SIZE=1",
	                     NULL};
	int lp = mt_free_port(), ap = mt_free_port(), ep = mt_free_port(), mp = mt_free_port();
	char err[512], dsn[512];

	if (mt_double_start(&dbl, "metrics-double", "test-key", err, sizeof(err)) != 0) {
		fprintf(stderr, "the LLM double did not start: %s\n", err);
		exit(1);
	}
	snprintf(base_env, sizeof(base_env), "LLM_BASE_URL=%s/v1", dbl.base);
	snprintf(llm_env, sizeof(llm_env), "LLM_METRICS_LISTEN=127.0.0.1:%d", lp);
	snprintf(auth_env, sizeof(auth_env), "AUTH_METRICS_LISTEN=127.0.0.1:%d", ap);
	snprintf(exec_env, sizeof(exec_env), "EXECUTOR_METRICS_LISTEN=127.0.0.1:%d", ep);
	snprintf(llm_metrics, sizeof(llm_metrics), "http://127.0.0.1:%d", lp);
	snprintf(auth_metrics, sizeof(auth_metrics), "http://127.0.0.1:%d", ap);
	snprintf(exec_metrics, sizeof(exec_metrics), "http://127.0.0.1:%d", ep);
	snprintf(meta_env, sizeof(meta_env), "METADATA_METRICS_LISTEN=127.0.0.1:%d", mp);
	snprintf(meta_metrics, sizeof(meta_metrics), "http://127.0.0.1:%d", mp);
	snprintf(wh_name, sizeof(wh_name), "warehouse_metrics_%d", (int)getpid());
	if (mt_warehouse_create(wh_name, "mark_reader", dsn, sizeof(dsn), err, sizeof(err)) != 0) {
		fprintf(stderr, "the demo warehouse was not created: %s\n", err);
		exit(1);
	}
	snprintf(wh_env, sizeof(wh_env), "METADATA_WAREHOUSE_DSN=%s", dsn);
	if (mt_stack_start(&st, env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "metrics", tok, sizeof(tok), NULL, 0), 0);
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
	ck_assert_int_eq(mt_double_stop(&dbl), 0);
	mt_warehouse_drop(wh_name);
}

/* GET url/metrics, checked strictly; the text (malloc'd). */
static char *scrape(const char *base)
{
	char url[128], err[512] = "", *ct, *text;
	mt_resp r;

	snprintf(url, sizeof(url), "%s/metrics", base);
	ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ct = mt_header(&r, "Content-Type");
	ck_assert_ptr_nonnull(ct);
	ck_assert_msg(strncmp(ct, "text/plain; version=0.0.4", 25) == 0, "Content-Type '%s'", ct);
	free(ct);
	ck_assert_ptr_nonnull(r.body);
	if (mt_prom_check(r.body, err, sizeof(err)) != 0)
		ck_abort_msg("%s/metrics is not valid exposition: %s", base, err);
	text = strdup(r.body);
	mt_resp_release(&r);
	return text;
}

static long get(const char *path)
{
	char auth[2100];
	const char *h[] = {auth, NULL};
	mt_resp r;
	long status;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	ck_assert_int_eq(mt_http("GET", mt_url(&st, path), h, NULL, 0, &r), 0);
	status = r.status;
	mt_resp_release(&r);
	return status;
}

#define CHATS_200 "method=\"GET\",route=\"/api/v1/chats\",status=\"200\""

START_TEST(test_a_route_counts_its_requests_by_pattern_and_status)
{
	char *a, *b;
	int i;

	a = scrape(st.base);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(get("/api/v1/chats"), 200);
	ck_assert_int_eq(get("/api/v1/chats/no-such-chat"), 404);
	ck_assert_int_eq(get("/no/such/route"), 404);
	b = scrape(st.base);
	ck_assert(mt_prom_value(b, "mark_http_requests_total", CHATS_200) ==
	          mt_prom_value(a, "mark_http_requests_total", CHATS_200) + 3);
	ck_assert(mt_prom_value(b, "mark_http_request_duration_seconds_count",
	                        "method=\"GET\",route=\"/api/v1/chats\"") ==
	          mt_prom_value(a, "mark_http_request_duration_seconds_count",
	                        "method=\"GET\",route=\"/api/v1/chats\"") +
	              3);
	/* the pattern, never the raw path */
	ck_assert(mt_prom_value(b, "mark_http_requests_total",
	                        "route=\"/api/v1/chats/{}\",status=\"404\"") >= 1);
	ck_assert_ptr_null(strstr(b, "no-such-chat"));
	ck_assert(mt_prom_value(b, "mark_http_requests_total",
	                        "route=\"unmatched\",status=\"404\"") >= 1);
	ck_assert_ptr_null(strstr(b, "/no/such/route"));
	/* the scrape itself is in flight while it renders */
	ck_assert(mt_prom_value(b, "mark_http_requests_in_flight", "") >= 1);
	ck_assert(mt_prom_value(b, "mark_rpc_replicas_connected", "service=\"llm\"") >= 1);
	free(a);
	free(b);
}
END_TEST

START_TEST(test_rpc_calls_appear_by_op_at_the_caller_and_at_the_service)
{
	char *ga, *gb, *la, *lb;

	ga = scrape(st.base);
	la = scrape(llm_metrics);
	ck_assert_int_eq(get("/api/v1/chats"), 200);
	ck_assert_int_eq(get("/api/v1/chats"), 200);
	gb = scrape(st.base);
	lb = scrape(llm_metrics);
	ck_assert(
	    mt_prom_value(gb, "mark_rpc_client_calls_total", "op=\"chat.list\",code=\"ok\"") ==
	    mt_prom_value(ga, "mark_rpc_client_calls_total", "op=\"chat.list\",code=\"ok\"") + 2);
	ck_assert(mt_prom_value(gb, "mark_rpc_client_call_duration_seconds_count",
	                        "op=\"chat.list\"") >= 2);
	ck_assert(
	    mt_prom_value(lb, "mark_rpc_server_requests_total", "op=\"chat.list\",code=\"ok\"") ==
	    mt_prom_value(la, "mark_rpc_server_requests_total", "op=\"chat.list\",code=\"ok\"") +
	        2);
	ck_assert(mt_prom_value(lb, "mark_rpc_server_request_duration_seconds_count",
	                        "op=\"chat.list\"") >= 2);
	/* a chat that is not there is an error code, counted as such */
	ck_assert_int_eq(get("/api/v1/chats/00000000-0000-0000-0000-000000000000"), 404);
	free(lb);
	lb = scrape(llm_metrics);
	ck_assert(mt_prom_value(lb, "mark_rpc_server_requests_total",
	                        "op=\"chat.get\",code=\"not_found\"") >= 1);
	free(ga);
	free(gb);
	free(la);
	free(lb);
}
END_TEST

START_TEST(test_a_service_port_shows_its_database_pool_and_answers_healthz)
{
	char url[128], *t;
	mt_resp r;

	t = scrape(llm_metrics);
	ck_assert(mt_prom_value(t, "mark_db_pool_size", "pool=\"chat\"") >= 1);
	ck_assert_ptr_nonnull(strstr(t, "mark_db_pool_connections{pool=\"chat\",state=\"idle\"} "));
	ck_assert_ptr_nonnull(strstr(t, "# TYPE mark_db_pool_waits_total counter\n"));
	free(t);
	/* auth served the sign-up and sign-in of the test's user */
	t = scrape(auth_metrics);
	ck_assert(mt_prom_value(t, "mark_rpc_server_requests_total",
	                        "op=\"auth.signin\",code=\"ok\"") >= 1);
	ck_assert(mt_prom_value(t, "mark_db_pool_size", "pool=\"auth\"") >= 1);
	free(t);
	snprintf(url, sizeof(url), "%s/healthz", llm_metrics);
	ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, "ok\n");
	mt_resp_release(&r);
	snprintf(url, sizeof(url), "%s/other", llm_metrics);
	ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 404);
	mt_resp_release(&r);
}
END_TEST

#define OPENAI_OK "provider=\"openai\",outcome=\"ok\""

START_TEST(test_a_turn_counts_its_model_calls_tokens_execution_and_sandbox)
{
	char auth[2100], err[512], *la, *lb, *ea, *eb;
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	const char *body = "{\"message\":\"What is one?\"}";
	mt_resp r;

	ck_assert_msg(mt_double_scenario(&dbl,
	                                 "{\"steps\":[{\"openai_tool_calls\":[{\"id\":\"c1\","
	                                 "\"name\":\"run_python\",\"arguments\":"
	                                 "\"{\\\"code\\\":\\\"print(1)\\\"}\"}]},"
	                                 "{\"openai_text\":\"One.\"}]}",
	                                 err, sizeof(err)) == 0,
	              "%s", err);
	la = scrape(llm_metrics);
	ea = scrape(exec_metrics);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	ck_assert_int_eq(mt_http("POST", mt_url(&st, "/api/v1/chat"), h, body, strlen(body), &r),
	                 0);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	lb = scrape(llm_metrics);
	eb = scrape(exec_metrics);
	ck_assert(mt_prom_value(lb, "mark_llm_calls_total", OPENAI_OK) ==
	          mt_prom_value(la, "mark_llm_calls_total", OPENAI_OK) + 2);
	ck_assert(mt_prom_value(lb, "mark_llm_tokens_total", "type=\"prompt\"") >
	          mt_prom_value(la, "mark_llm_tokens_total", "type=\"prompt\""));
	ck_assert(mt_prom_value(lb, "mark_llm_tokens_total", "type=\"completion\"") >
	          mt_prom_value(la, "mark_llm_tokens_total", "type=\"completion\""));
	ck_assert(mt_prom_value(lb, "mark_rpc_client_calls_total", "op=\"exec.run\",code=\"ok\"") ==
	          mt_prom_value(la, "mark_rpc_client_calls_total", "op=\"exec.run\",code=\"ok\"") +
	              1);
	ck_assert(mt_prom_value(eb, "mark_exec_runs_total", "outcome=\"ok\"") ==
	          mt_prom_value(ea, "mark_exec_runs_total", "outcome=\"ok\"") + 1);
	ck_assert(mt_prom_value(eb, "mark_exec_run_duration_seconds_count", "") ==
	          mt_prom_value(ea, "mark_exec_run_duration_seconds_count", "") + 1);
	/* a new chat: its session got a sandbox, warm or cold */
	ck_assert(mt_prom_value(eb, "mark_exec_sandbox_starts_total", "") ==
	          mt_prom_value(ea, "mark_exec_sandbox_starts_total", "") + 1);
	ck_assert(mt_prom_value(eb, "mark_exec_sandbox_pool_target", "") == 1);
	ck_assert(mt_prom_value(eb, "mark_exec_router_workers", "") >= 1);
	free(la);
	free(lb);
	free(ea);
	free(eb);
}
END_TEST

START_TEST(test_a_warehouse_query_counts_its_rows_and_time)
{
	char url[64], err[512], *a, *b;
	mk_caller caller = {.user_id = "00000000-0000-0000-0000-00000000c0de", .role = "user"};
	cJSON *body = cJSON_Parse("{\"sql\":\"SELECT 1 AS one UNION ALL SELECT 2\"}");
	mk_rpc_client *c;
	mk_rpc_result res;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", st.port[MT_METADATA]);
	c = mk_rpc_client_new(url, 1 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	a = scrape(meta_metrics);
	ck_assert_int_eq(
	    mk_rpc_call(c, MK_OP_META_QUERY, "metrics-test", &caller, body, 30000, &res), MK_OK);
	mk_rpc_result_release(&res);
	b = scrape(meta_metrics);
	ck_assert(mt_prom_value(b, "mark_warehouse_queries_total",
	                        "warehouse=\"postgres\",outcome=\"ok\"") ==
	          mt_prom_value(a, "mark_warehouse_queries_total",
	                        "warehouse=\"postgres\",outcome=\"ok\"") +
	              1);
	ck_assert(
	    mt_prom_value(b, "mark_warehouse_rows_returned_total", "warehouse=\"postgres\"") ==
	    mt_prom_value(a, "mark_warehouse_rows_returned_total", "warehouse=\"postgres\"") + 2);
	ck_assert(mt_prom_value(b, "mark_warehouse_query_duration_seconds_count",
	                        "warehouse=\"postgres\"") ==
	          mt_prom_value(a, "mark_warehouse_query_duration_seconds_count",
	                        "warehouse=\"postgres\"") +
	              1);
	free(a);
	free(b);
	cJSON_Delete(body);
	mk_rpc_client_free(c);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("stack");

	tcase_set_timeout(tc, 300);
	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_add_test(tc, test_a_route_counts_its_requests_by_pattern_and_status);
	tcase_add_test(tc, test_rpc_calls_appear_by_op_at_the_caller_and_at_the_service);
	tcase_add_test(tc, test_a_service_port_shows_its_database_pool_and_answers_healthz);
	tcase_add_test(tc, test_a_turn_counts_its_model_calls_tokens_execution_and_sandbox);
	tcase_add_test(tc, test_a_warehouse_query_counts_its_rows_and_time);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
