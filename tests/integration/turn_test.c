/*
 * turn_test.c - the chat turn end to end through the gateway: the LLM
 * double plays scripted model answers, the executor runs the code in real
 * sandboxes. A direct answer; pandas plus a Plotly chart whose figure JSON
 * reaches the client; code that fails and is corrected; a model 429 then
 * success; a second question that relies on the first turn's variables;
 * the step limit; the executor down mid-turn; no model configured; the
 * streamed events in order; another user's chat.
 *
 * turn_daytona_test.c runs some of these cases with the executor on the
 * Daytona backend (TURN_TEST_DAYTONA set, then this file included): up()
 * then also starts a Daytona double.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

/*
 * Sized for a loaded host running the sanitizer build: a process exiting,
 * one restarting until the stack is ready again, and a turn finishing
 * after its client left.
 */
#define STOP_MS       60000
#define READY_WAIT_MS 90000
#define TURN_WAIT_MS  120000

static mt_stack st;
static mt_double dbl;
static char wh_name[64];
static char base_env[160]; /* LLM_BASE_URL=<the double> */
static char tok_a[2048], tok_b[2048];

#ifdef TURN_TEST_DAYTONA
#include "mt_daytona.h"
static mt_daytona dt;
#endif

static void up(void)
{
	char err[512], base[128], *env[16], dsn[512];
	static char e1[600];
#ifdef TURN_TEST_DAYTONA
	static char dt_url[160];

	if (mt_daytona_start(&dt, "turn-daytona", "dtn-turn-key", NULL, NULL, err, sizeof(err)) !=
	    0) {
		fprintf(stderr, "the Daytona double did not start: %s\n", err);
		exit(1);
	}
	snprintf(dt_url, sizeof(dt_url), "DAYTONA_API_URL=%s", mt_daytona_url(&dt, "/api"));
	env[11] = "EXECUTOR_BACKEND=daytona";
	env[12] = dt_url;
	env[13] = "DAYTONA_API_KEY=dtn-turn-key";
	env[14] = NULL;
#endif

	if (mt_double_start(&dbl, "turn-double", "test-key", err, sizeof(err)) != 0) {
		fprintf(stderr, "the LLM double did not start: %s\n", err);
		exit(1);
	}
	snprintf(base, sizeof(base), "LLM_BASE_URL=%s/v1", dbl.base);
	snprintf(base_env, sizeof(base_env), "%s", base);
	env[0] = base_env;
	env[1] = "LLM_MODEL=mark-test-model";
	env[2] = "LLM_API_KEY=test-key";
	env[3] = "LLM_TURN_MAX_STEPS=3";
	env[4] = "LLM_MAX_RETRIES=2";
	env[5] = "EXECUTOR_POOL_SIZE=1";
	/* The demo warehouse, read through the metadata service as its read-only role. */
	snprintf(wh_name, sizeof(wh_name), "warehouse_turn_%d", (int)getpid());
	if (mt_warehouse_create(wh_name, "mark_reader", dsn, sizeof(dsn), err, sizeof(err)) != 0) {
		fprintf(stderr, "the demo warehouse was not created: %s\n", err);
		exit(1);
	}
	snprintf(e1, sizeof(e1), "METADATA_WAREHOUSE_DSN=%s", dsn);
	env[6] = "METADATA_WAREHOUSE_KIND=postgres";
	env[7] = e1;
	env[8] = "LLM_TURN_MAX_CALLS_PER_REPLY=2";
	/* A deleted chat's execution records go at once here (the default keeps them 30 days). */
	env[9] = "EXECUTOR_EXECUTION_RETENTION=0";
	env[10] = NULL;
#ifdef TURN_TEST_DAYTONA
	env[10] = "EXECUTOR_SANDBOX_START_TIMEOUT=60s";
#endif
	if (mt_stack_start(&st, (const char *const *)env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "alice", tok_a, sizeof(tok_a), NULL, 0), 0);
	ck_assert_int_eq(mt_user(&st, "bob", tok_b, sizeof(tok_b), NULL, 0), 0);
}

#ifdef TURN_TEST_DAYTONA
/* Delete every chat of the user: their sandboxes go with them (a stopping executor keeps them). */
static void delete_chats(const char *tok)
{
	char auth[2100], path[160];
	const char *h[] = {auth, NULL};
	const cJSON *c;
	mt_resp r, d;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	mt_http("GET", mt_url(&st, "/api/v1/chats"), h, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(r.json, "items"))
	{
		snprintf(path, sizeof(path), "/api/v1/chats/%s", mk_json_str(c, "id"));
		mt_http("DELETE", mt_url(&st, path), h, NULL, 0, &d);
		ck_assert_int_eq(d.status, 204);
		mt_resp_release(&d);
	}
	mt_resp_release(&r);
}
#endif

static void down(void)
{
#ifdef TURN_TEST_DAYTONA
	delete_chats(tok_a);
	delete_chats(tok_b);
#endif
	ck_assert_int_eq(mt_stack_stop(&st), 0);
	ck_assert_int_eq(mt_double_stop(&dbl), 0);
	mt_warehouse_drop(wh_name);
#ifdef TURN_TEST_DAYTONA
	{
		/* Every sandbox the turns used is gone with the executor (deletes take a while). */
		int64_t until = mk_mono_ms() + STOP_MS;
		int n;

		do {
			cJSON *l = mt_daytona_sandboxes(&dt);

			n = l ? cJSON_GetArraySize(l) : -1;
			cJSON_Delete(l);
			if (n != 0)
				mk_sleep_ms(100);
		} while (n != 0 && mk_mono_ms() < until);
		ck_assert_int_eq(n, 0);
	}
	ck_assert_int_eq(mt_daytona_stop(&dt), 0);
#endif
}

static void scenario(const char *json)
{
	char err[512];

	ck_assert_msg(mt_double_scenario(&dbl, json, err, sizeof(err)) == 0, "%s", err);
}

/* One turn as JSON; returns the status, the body in r. */
static long turn(const char *tok, const char *body, mt_resp *r)
{
	char auth[2100];
	const char *h[] = {auth, "Content-Type: application/json", NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	mt_http("POST", mt_url(&st, "/api/v1/chat"), h, body, strlen(body), r);
	return r->status;
}

static const char *story(const mt_resp *r)
{
	return mk_json_str(r->json, "answer_story");
}

static const char *error_code(const mt_resp *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");

	return cJSON_IsObject(e) ? mk_json_str(e, "code") : NULL;
}

static int messages_in(const char *tok, const char *chat)
{
	char auth[2100], path[128];
	const char *h[] = {auth, NULL};
	mt_resp r;
	int n;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	snprintf(path, sizeof(path), "/api/v1/chats/%s/messages", chat);
	mt_http("GET", mt_url(&st, path), h, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "items"));
	mt_resp_release(&r);
	return n;
}

START_TEST(test_a_greeting_is_answered_directly_and_both_messages_are_saved)
{
	mt_resp r;

	scenario("{\"steps\":[{\"openai_text\":\"Hello! Ask me anything about your data.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Hi there, who are you?\"}", &r), 200);
	ck_assert_str_eq(story(&r), "Hello! Ask me anything about your data.");
	ck_assert_ptr_null(error_code(&r));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "steps")), 0);
	ck_assert_ptr_nonnull(mk_json_str(r.json, "message_id"));
	ck_assert_int_eq(messages_in(tok_a, mk_json_str(r.json, "chat_id")), 2);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_computation_with_a_plotly_chart_reaches_the_client)
{
	mt_resp r;
	const cJSON *viz, *steps;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"call_1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"import pandas as pd, plotly.express as px\\\\n"
	         "df = pd.DataFrame({'region': ['north', 'south'], 'sales': [3, 9]})\\\\n"
	         "print(df.sales.sum())\\\\npx.bar(df, x='region', y='sales')\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"Plotly figure\"},"
	         "\"openai_text\":\"Sales total 12; the south leads.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Total sales by region, as a chart\"}", &r),
	                 200);
	ck_assert_msg(error_code(&r) == NULL, "error %s: %s", error_code(&r), story(&r));
	ck_assert_str_eq(story(&r), "Sales total 12; the south leads.");
	steps = cJSON_GetObjectItemCaseSensitive(r.json, "steps");
	ck_assert_int_eq(cJSON_GetArraySize(steps), 1);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 0), "stdout"), "12\n");
	viz = cJSON_GetObjectItemCaseSensitive(r.json, "visualizations");
	ck_assert_int_eq(cJSON_GetArraySize(viz), 1);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(viz, 0), "data"));
	mt_resp_release(&r);
}
END_TEST

/* Upload a CSV through the API; returns its file id (caller frees). */
static char *upload_csv(const char *tok, const char *name, const char *csv)
{
	char auth[2100], body[4096];
	const char *h[] = {auth, "Content-Type: multipart/form-data; boundary=mark-test-boundary",
	                   NULL};
	mt_resp r;
	char *id;
	int n;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	n = snprintf(body, sizeof(body),
	             "--mark-test-boundary\r\nContent-Disposition: form-data; name=\"file\"; "
	             "filename=\"%s\"\r\nContent-Type: text/csv\r\n\r\n%s\r\n"
	             "--mark-test-boundary--\r\n",
	             name, csv);
	mt_http("POST", mt_url(&st, "/api/v1/files"), h, body, (size_t)n, &r);
	ck_assert_msg(r.status == 201, "upload: %ld %s", r.status, r.body);
	id = strdup(mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	return id;
}

START_TEST(test_a_question_about_an_uploaded_csv_is_answered_with_pandas_and_a_chart)
{
	char *id = upload_csv(tok_a, "shop.csv",
	                      "city,revenue\nOslo,120\nBergen,80\nOslo,30\nTromso,15\n");
	char body[256];
	const cJSON *viz, *steps;
	mt_resp r;

	/* The model sees the file described from inside the sandbox before it writes code. */
	scenario("{\"steps\":["
	         "{\"match\":{\"body_contains\":\"4 rows, 2 columns\"},"
	         "\"openai_tool_calls\":[{\"id\":\"u1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"import pandas as pd, plotly.express as px\\\\n"
	         "df = pd.read_csv('shop.csv')\\\\nby = df.groupby('city').revenue.sum()\\\\n"
	         "print(by.idxmax(), by.max())\\\\npx.bar(by.reset_index(), x='city', "
	         "y='revenue')\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"Oslo 150\"},"
	         "\"openai_text\":\"Oslo brings in the most revenue: 150.\"}]}");
	snprintf(body, sizeof(body),
	         "{\"message\":\"Which city brings the most revenue?\",\"attachments\":[\"%s\"]}",
	         id);
	ck_assert_int_eq(turn(tok_a, body, &r), 200);
	ck_assert_msg(error_code(&r) == NULL, "error %s: %s", error_code(&r), story(&r));
	ck_assert_str_eq(story(&r), "Oslo brings in the most revenue: 150.");
	steps = cJSON_GetObjectItemCaseSensitive(r.json, "steps");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 0), "stdout"), "Oslo 150\n");
	viz = cJSON_GetObjectItemCaseSensitive(r.json, "visualizations");
	ck_assert_int_eq(cJSON_GetArraySize(viz), 1);
	mt_resp_release(&r);
	/* Another user cannot attach it, and the refused turn leaves no chat behind. */
	ck_assert_int_eq(turn(tok_b, body, &r), 404);
	mt_resp_release(&r);
	{
		char auth[2100];
		const char *h[] = {auth, NULL};

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok_b);
		mt_http("GET", mt_url(&st, "/api/v1/chats"), h, NULL, 0, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_int_eq(
		    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "items")), 0);
		mt_resp_release(&r);
	}
	free(id);
}
END_TEST

START_TEST(test_sql_on_the_warehouse_then_python_on_its_result)
{
	const cJSON *steps, *tables;
	mt_resp r;

	/* The prompt names the relevant tables; the query's full result reaches Python as a file.
	 */
	scenario("{\"steps\":["
	         "{\"match\":{\"body_contains\":\"public.orders\"},"
	         "\"openai_tool_calls\":[{\"id\":\"q1\",\"name\":\"run_sql\",\"arguments\":"
	         "\"{\\\"sql\\\":\\\"SELECT channel, count(*) AS orders FROM orders GROUP BY "
	         "channel ORDER BY channel\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"query_1.csv\"},"
	         "\"openai_tool_calls\":[{\"id\":\"q2\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"import pandas as pd\\\\n"
	         "q = pd.read_csv('query_1.csv')\\\\nprint(len(q), int(q.orders.sum()))\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"3 20000\"},"
	         "\"openai_text\":\"Three channels share the 20000 orders.\"}]}");
	ck_assert_int_eq(
	    turn(tok_a, "{\"message\":\"How many orders came through each channel?\"}", &r), 200);
	ck_assert_msg(error_code(&r) == NULL, "error %s: %s", error_code(&r), story(&r));
	ck_assert_str_eq(story(&r), "Three channels share the 20000 orders.");
	steps = cJSON_GetObjectItemCaseSensitive(r.json, "steps");
	ck_assert_int_eq(cJSON_GetArraySize(steps), 2);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 0), "kind"), "sql");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 0), "file"), "query_1.csv");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 1), "stdout"), "3 20000\n");
	tables = cJSON_GetObjectItemCaseSensitive(r.json, "tables");
	ck_assert_int_ge(cJSON_GetArraySize(tables), 1);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_code_that_fails_is_corrected_from_its_traceback)
{
	mt_resp r;
	const cJSON *steps;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"c1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"d = {'a': 1}\\\\nd['b']\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"KeyError\"},"
	         "\"openai_tool_calls\":[{\"id\":\"c2\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"d.get('b', 0) + d['a']\\\"}\"}]},"
	         "{\"match\":{\"body_contains\":\"c2\"},\"openai_text\":\"The value is 1.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"What is b plus a?\"}", &r), 200);
	ck_assert_str_eq(story(&r), "The value is 1.");
	steps = cJSON_GetObjectItemCaseSensitive(r.json, "steps");
	ck_assert_int_eq(cJSON_GetArraySize(steps), 2);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(steps, 0), "error"),
	                "type"),
	    "KeyError");
	ck_assert(
	    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(steps, 1), "error")));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_rate_limited_model_is_retried_then_answers)
{
	mt_resp r;

	scenario("{\"steps\":[{\"status\":429,\"headers\":{\"retry-after-ms\":\"50\"},"
	         "\"json\":{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit\"}}},"
	         "{\"openai_text\":\"Answered after a pause.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Are you there?\"}", &r), 200);
	ck_assert_str_eq(story(&r), "Answered after a pause.");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_second_question_builds_on_the_first_turns_variables)
{
	mt_resp r;
	char body[256], chat[64];
	const cJSON *steps;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"t1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"answer = 6 * 7\\\"}\"}]},"
	         "{\"openai_text\":\"I stored it.\"},"
	         "{\"match\":{\"body_contains\":\"Remember the magic number\"},"
	         "\"openai_tool_calls\":[{\"id\":\"t2\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"print(answer)\\\"}\"}]},"
	         "{\"openai_text\":\"It is 42.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Remember the magic number\"}", &r), 200);
	snprintf(chat, sizeof(chat), "%s", mk_json_str(r.json, "chat_id"));
	mt_resp_release(&r);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"message\":\"What was it?\"}", chat);
	ck_assert_int_eq(turn(tok_a, body, &r), 200);
	ck_assert_str_eq(story(&r), "It is 42.");
	steps = cJSON_GetObjectItemCaseSensitive(r.json, "steps");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(steps, 0), "stdout"), "42\n");
	ck_assert_str_eq(mk_json_str(r.json, "chat_id"), chat);
	ck_assert_int_eq(messages_in(tok_a, chat), 4);
	mt_resp_release(&r);
	/* Another user cannot continue it. */
	ck_assert_int_eq(turn(tok_b, body, &r), 404);
	mt_resp_release(&r);
}
END_TEST

/* A tool call of the scenario: run_python printing its id. */
#define PY_CALL(id)                                                                                \
	"{\"id\":\"" id "\",\"name\":\"run_python\",\"arguments\":\"{\\\"code\\\":\\\"print('" id  \
	"')\\\"}\"}"

/* The tool results the model was sent that say "Not run: ...", over every request. */
static int not_run_results(void)
{
	char err[512];
	cJSON *reqs = mt_double_requests(&dbl, err, sizeof(err));
	const cJSON *rq, *m;
	int n = 0;

	ck_assert_msg(reqs != NULL, "%s", err);
	rq = cJSON_GetArrayItem(reqs, cJSON_GetArraySize(reqs) - 1);
	cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(
	                          cJSON_GetObjectItemCaseSensitive(rq, "body"), "messages"))
	{
		const char *content = mk_json_str(m, "content");

		n += strcmp(mk_json_str(m, "role") ? mk_json_str(m, "role") : "", "tool") == 0 &&
		     content && strncmp(content, "Not run: ", 9) == 0;
	}
	cJSON_Delete(reqs);
	return n;
}

/*
 * Five calls in one reply: two run (the per-reply cap), three are answered
 * "not run". Three more in the next: one runs (the turn's third step), two
 * are answered. Then the model must answer without tools.
 */
// clang-format off
static const char five_then_three[] =
    "{\"steps\":["
    "{\"openai_tool_calls\":[" PY_CALL("a1") "," PY_CALL("a2") "," PY_CALL("a3") ","
        PY_CALL("a4") "," PY_CALL("a5") "]},"
    "{\"openai_tool_calls\":[" PY_CALL("b1") "," PY_CALL("b2") "," PY_CALL("b3") "]},"
    "{\"openai_text\":\"Done.\"}]}";
// clang-format on

/* Rows of exec.<table> for a chat. */
static long exec_rows(const char *table, const char *chat)
{
	char sql[160];
	const char *p[1] = {chat};
	PGconn *c = PQconnectdb(mt_dsn());
	PGresult *q;
	long n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM exec.%s WHERE chat_id = $1", table);
	q = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(q) == PGRES_TUPLES_OK, "%s", PQerrorMessage(c));
	n = strtol(PQgetvalue(q, 0, 0), NULL, 10);
	PQclear(q);
	PQfinish(c);
	return n;
}

START_TEST(test_deleting_a_chat_deletes_its_sandbox_files_artifacts_and_records)
{
	char auth[2100], path[160], chat[64], art[160];
	const char *h[] = {auth, NULL};
	const cJSON *a;
	mt_resp r;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"w1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"open('output/kept.csv', "
	         "'w').write('a\\\\\\\\n1\\\\\\\\n')\\\"}\"}]},"
	         "{\"openai_text\":\"Saved.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Save a file\"}", &r), 200);
	ck_assert_msg(error_code(&r) == NULL, "error %s: %s", error_code(&r), story(&r));
	snprintf(chat, sizeof(chat), "%s", mk_json_str(r.json, "chat_id"));
	a = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "artifacts"), 0);
	ck_assert_msg(a != NULL, "no artifact");
	snprintf(art, sizeof(art), "/api/v1/artifacts/%s", mk_json_str(a, "id"));
	mt_resp_release(&r);
	ck_assert_int_ge(exec_rows("artifacts", chat), 1);
	ck_assert_int_eq(exec_rows("sessions", chat), 1);
	ck_assert_int_ge(exec_rows("executions", chat), 1);

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok_a);
	snprintf(path, sizeof(path), "/api/v1/chats/%s", chat);
	mt_http("DELETE", mt_url(&st, path), h, NULL, 0, &r);
	ck_assert_msg(r.status == 204 || r.status == 200, "delete: %ld", r.status);
	mt_resp_release(&r);
	ck_assert_int_eq(exec_rows("artifacts", chat), 0);
	ck_assert_int_eq(exec_rows("files", chat), 0);
	ck_assert_int_eq(exec_rows("sessions", chat), 0);
	/* EXECUTOR_EXECUTION_RETENTION is 0 in this suite: the records went too. */
	ck_assert_int_eq(exec_rows("executions", chat), 0);
	mt_http("GET", mt_url(&st, art), h, NULL, 0, &r);
	ck_assert_int_eq(r.status, 404);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_every_tool_call_counts_and_a_reply_runs_only_what_is_left)
{
	mt_resp r;

	scenario(five_then_three);
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Run them all\"}", &r), 200);
	ck_assert_str_eq(error_code(&r), "turn_step_limit");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "steps")), 3);
	ck_assert_str_eq(story(&r), "Done.");
	ck_assert_int_eq(not_run_results(), 5);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_the_step_limit_ends_the_turn_with_an_answer)
{
	mt_resp r;

	scenario("{\"repeat_last\":true,\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"loop\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"print('again')\\\"}\"}]}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Keep going forever\"}", &r), 200);
	ck_assert_str_eq(error_code(&r), "turn_step_limit");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "steps")), 3);
	ck_assert_ptr_nonnull(story(&r));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_the_turn_streams_its_events_in_order)
{
	char auth[2100];
	const char *h[] = {auth, "Content-Type: application/json", "Accept: text/event-stream",
	                   NULL};
	const char *body = "{\"message\":\"Stream me a computation\"}";
	const char *order[] = {"event: turn_started", "event: tool_call", "event: tool_result",
	                       "event: answer_delta", "event: final"};
	const char *p;
	mt_resp r;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"s1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"print(2 + 2)\\\"}\"}]},"
	         "{\"openai_text\":\"Four, as computed.\"}]}");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok_a);
	mt_http("POST", mt_url(&st, "/api/v1/chat"), h, body, strlen(body), &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.headers, "text/event-stream"));
	p = r.body;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		p = strstr(p, order[i]);
		ck_assert_msg(p != NULL, "no '%s' in order in:\n%s", order[i], r.body);
	}
	ck_assert_ptr_nonnull(strstr(p, "Four, as computed."));
	ck_assert_ptr_nonnull(strstr(r.body, "\"stdout\":\"4\\n\""));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_client_that_leaves_mid_stream_does_not_stop_the_turn)
{
	char req[4096], buf[8192], chat[64] = "";
	const char *body = "{\"message\":\"Answer slowly please\"}";
	struct sockaddr_in a = {.sin_family = AF_INET};
	size_t got = 0;
	int64_t until;
	int fd, n = 0;
	char *p;

	/* The model takes seconds to answer: the client is gone by then, even on a loaded host. */
	scenario("{\"steps\":[{\"first_byte_delay_ms\":5000,\"openai_text\":\"Slow but sure.\"}]}");
	fd = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_port = htons((unsigned short)st.port[MT_GATEWAY]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	snprintf(req, sizeof(req),
	         "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
	         "Accept: text/event-stream\r\nContent-Type: application/json\r\n"
	         "Content-Length: %zu\r\n\r\n%s",
	         tok_a, strlen(body), body);
	ck_assert(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
	while (got < sizeof(buf) - 1 && !strstr(buf, "\"chat_id\":\"")) {
		ssize_t k = read(fd, buf + got, sizeof(buf) - 1 - got);

		if (k <= 0)
			break;
		got += (size_t)k;
		buf[got] = '\0';
	}
	close(fd);
	p = strstr(buf, "\"chat_id\":\"");
	ck_assert_ptr_nonnull(p);
	snprintf(chat, sizeof(chat), "%.36s", p + 11);
	/* The turn finishes and is saved all the same. */
	until = mk_mono_ms() + TURN_WAIT_MS;
	while ((n = messages_in(tok_a, chat)) < 2 && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_int_eq(n, 2);
}
END_TEST

START_TEST(test_with_the_executor_down_the_turn_answers_clearly_and_saves_both_messages)
{
	mt_resp r;

	scenario("{\"steps\":["
	         "{\"openai_tool_calls\":[{\"id\":\"x1\",\"name\":\"run_python\",\"arguments\":"
	         "\"{\\\"code\\\":\\\"print(1)\\\"}\"}]}]}");
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_EXECUTOR], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Run something\"}", &r), 200);
	ck_assert_str_eq(error_code(&r), "executor_unavailable");
	ck_assert_ptr_nonnull(strstr(story(&r), "sandbox"));
	ck_assert_int_eq(messages_in(tok_a, mk_json_str(r.json, "chat_id")), 2);
	mt_resp_release(&r);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_EXECUTOR, NULL), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

START_TEST(test_a_prompts_directory_replaces_the_built_in_system_prompt)
{
	char dir[128], path[160], env0[200];
	const char *env[] = {env0, base_env, "LLM_MODEL=mark-test-model", "LLM_API_KEY=test-key",
	                     NULL};
	FILE *f;
	mt_resp r;

	snprintf(dir, sizeof(dir), "%s/prompts-%d",
	         getenv("MARK_TEST_LOG_DIR") ? getenv("MARK_TEST_LOG_DIR") : "build/test-logs",
	         (int)getpid());
	mkdir(dir, 0755);
	snprintf(path, sizeof(path), "%s/system.md", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs("You are Mark, speaking like a pirate (prompt marker 7f3a).\n", f);
	fclose(f);
	snprintf(env0, sizeof(env0), "LLM_PROMPTS_DIR=%s", dir);
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_LLM], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_LLM, env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
	scenario("{\"steps\":[{\"match\":{\"body_contains\":\"prompt marker 7f3a\"},"
	         "\"openai_text\":\"Arr, hello.\"}]}");
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"Hello?\"}", &r), 200);
	ck_assert_str_eq(story(&r), "Arr, hello.");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_without_a_model_the_turn_explains_how_to_configure_one)
{
	const char *env[] = {"LLM_MODEL=", NULL};
	mt_resp r;

	ck_assert_int_eq(mt_proc_stop(&st.p[MT_LLM], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_LLM, env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
	ck_assert_int_eq(turn(tok_a, "{\"message\":\"How many rows?\"}", &r), 200);
	ck_assert_str_eq(error_code(&r), "model_not_configured");
	ck_assert_ptr_nonnull(strstr(story(&r), "LLM_MODEL"));
	ck_assert_int_eq(messages_in(tok_a, mk_json_str(r.json, "chat_id")), 2);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_bad_turn_requests_are_refused)
{
	mt_resp r;

	ck_assert_int_eq(turn(tok_a, "{\"message\":\"\"}", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(turn(tok_a, "{\"question\":\"hi\"}", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(turn(tok_a,
	                      "{\"chat_id\":\"00000000-0000-4000-8000-000000000000\",\"message\":"
	                      "\"hi\"}",
	                      &r),
	                 404);
	mt_resp_release(&r);
	ck_assert_int_eq(turn("not-a-token", "{\"message\":\"hi\"}", &r), 401);
	mt_resp_release(&r);
}
END_TEST

#ifndef TURN_TEST_DAYTONA
static Suite *suite(void)
{
	Suite *s = suite_create("turn");
	TCase *tc = tcase_create("turn");

	tcase_add_unchecked_fixture(tc, up, down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_a_greeting_is_answered_directly_and_both_messages_are_saved);
	tcase_add_test(tc, test_a_computation_with_a_plotly_chart_reaches_the_client);
	tcase_add_test(tc,
	               test_a_question_about_an_uploaded_csv_is_answered_with_pandas_and_a_chart);
	tcase_add_test(tc, test_sql_on_the_warehouse_then_python_on_its_result);
	tcase_add_test(tc, test_code_that_fails_is_corrected_from_its_traceback);
	tcase_add_test(tc, test_a_rate_limited_model_is_retried_then_answers);
	tcase_add_test(tc, test_a_second_question_builds_on_the_first_turns_variables);
	tcase_add_test(tc, test_the_step_limit_ends_the_turn_with_an_answer);
	tcase_add_test(tc, test_every_tool_call_counts_and_a_reply_runs_only_what_is_left);
	tcase_add_test(tc, test_deleting_a_chat_deletes_its_sandbox_files_artifacts_and_records);
	tcase_add_test(tc, test_the_turn_streams_its_events_in_order);
	tcase_add_test(tc, test_bad_turn_requests_are_refused);
	tcase_add_test(tc, test_a_client_that_leaves_mid_stream_does_not_stop_the_turn);
	tcase_add_test(
	    tc, test_with_the_executor_down_the_turn_answers_clearly_and_saves_both_messages);
	tcase_add_test(tc, test_a_prompts_directory_replaces_the_built_in_system_prompt);
	tcase_add_test(tc, test_without_a_model_the_turn_explains_how_to_configure_one);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
#endif
