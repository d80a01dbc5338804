/*
 * feedback_usage_test.c - ratings of answers, artifacts and usage through
 * the gateway, with every service running: a user rates only the answers
 * of their own chats (rating again replaces the rating), fetches only their
 * own artifacts (active content as a sandboxed attachment), and sees their
 * own tokens and executions per day.
 *
 * Until the chat turn writes them, assistant messages are put straight into
 * llm's table, and code is run over NNG as the user, as llm will.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mt.h"
#include "mt_check.h"

static mt_stack st;
static char tok_a[2048], tok_b[2048], id_a[64], id_b[64];
static char stack_env[3][128];
static const char *extra_env[4];
static mk_rpc_client *exec_client;

/* One request as a user (tok NULL: none); body may be NULL. */
static long call(const char *tok, const char *method, const char *path, const char *body,
                 mt_resp *r)
{
	char auth[2100];
	const char *h[] = {auth, "Content-Type: application/json", NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok ? tok : "");
	mt_http(method, mt_url(&st, path), tok ? h : h + 1, body, body ? strlen(body) : 0, r);
	return r->status;
}

static void stack_up(void)
{
	char err[256], url[64];
	int wport = mt_free_port();

	/* The executor's worker port and sandbox uids of this run alone, so
	 * stacks of other test runs on this host cannot meet ours. */
	snprintf(stack_env[0], sizeof(stack_env[0]), "EXECUTOR_WORKER_LISTEN=tcp://127.0.0.1:%d",
	         wport);
	snprintf(stack_env[1], sizeof(stack_env[1]), "EXECUTOR_ROUTER_URL=tcp://127.0.0.1:%d",
	         wport);
	snprintf(stack_env[2], sizeof(stack_env[2]), "EXECUTOR_SANDBOX_UID_BASE=%d",
	         300000 + (int)(getpid() % 500) * 1000);
	for (int i = 0; i < 3; i++)
		extra_env[i] = stack_env[i];
	extra_env[3] = NULL;
	if (mt_stack_start(&st, extra_env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "alice", tok_a, sizeof(tok_a), id_a, sizeof(id_a)), 0);
	ck_assert_int_eq(mt_user(&st, "bob", tok_b, sizeof(tok_b), id_b, sizeof(id_b)), 0);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", st.port[MT_EXECUTOR]);
	exec_client = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(exec_client != NULL, "%s", err);
}

static void stack_down(void)
{
	mk_rpc_client_free(exec_client);
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* ------------------------------------------------------------------ llm's rows */

/* One row of a statement run straight on the test database; its first value, malloc'd. */
static char *sql1(const char *sql, int n, const char *const *p)
{
	PGconn *c = PQconnectdb(mt_dsn());
	PGresult *r;
	char *v;

	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1, "%s",
	              PQerrorMessage(c));
	v = strdup(PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
	return v;
}

static char *new_chat(const char *owner)
{
	const char *p[1] = {owner};

	return sql1("INSERT INTO chat.chats (owner_id, title) VALUES ($1, 'rated') RETURNING id", 1,
	            p);
}

/* A message of role in chat; usage is JSON text or NULL; made `age` ago (an interval). */
static char *new_message(const char *chat, const char *role, const char *usage, const char *age)
{
	const char *p[4] = {chat, role, usage, age ? age : "0 seconds"};

	return sql1("INSERT INTO chat.messages (chat_id, role, content, usage, created_at) VALUES "
	            "($1, $2, jsonb_build_array(jsonb_build_object('type', 'text', 'text', "
	            "'an answer')), $3::jsonb, now() - $4::interval) RETURNING id",
	            4, p);
}

static long feedback(const char *tok, const char *msg, const char *body, mt_resp *r)
{
	char path[256];

	snprintf(path, sizeof(path), "/api/v1/messages/%s/feedback", msg);
	return call(tok, "POST", path, body, r);
}

/* ------------------------------------------------------------------ feedback */

START_TEST(test_an_answer_is_rated_and_rating_again_replaces_the_rating)
{
	char *chat = new_chat(id_a), path[256];
	char *q = new_message(chat, "user", NULL, NULL);
	char *a = new_message(chat, "assistant", NULL, NULL);
	const cJSON *fb, *it, *found = NULL;
	mt_resp r;

	ck_assert_int_eq(feedback(tok_a, a, "{\"rating\":\"up\"}", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "message_id"), a);
	fb = cJSON_GetObjectItemCaseSensitive(r.json, "feedback");
	ck_assert_str_eq(mk_json_str(fb, "rating"), "up");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(fb, "comment")));
	ck_assert_ptr_nonnull(mk_json_str(fb, "at"));
	mt_resp_release(&r);

	ck_assert_int_eq(
	    feedback(tok_a, a, "{\"rating\":\"down\",\"comment\":\"the totals are off\"}", &r),
	    200);
	fb = cJSON_GetObjectItemCaseSensitive(r.json, "feedback");
	ck_assert_str_eq(mk_json_str(fb, "rating"), "down");
	ck_assert_str_eq(mk_json_str(fb, "comment"), "the totals are off");
	mt_resp_release(&r);

	/* The history shows the latest rating on the answer, none on the question. */
	snprintf(path, sizeof(path), "/api/v1/chats/%s/messages", chat);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(r.json, "items"))
	{
		if (strcmp(mk_json_str(it, "id"), a) == 0)
			found = it;
		else
			ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(it, "feedback")));
	}
	ck_assert_ptr_nonnull(found);
	fb = cJSON_GetObjectItemCaseSensitive(found, "feedback");
	ck_assert_str_eq(mk_json_str(fb, "rating"), "down");
	ck_assert_str_eq(mk_json_str(fb, "comment"), "the totals are off");
	mt_resp_release(&r);
	free(chat);
	free(q);
	free(a);
}
END_TEST

START_TEST(test_only_answers_of_ones_own_chats_can_be_rated)
{
	char *chat = new_chat(id_a);
	char *q = new_message(chat, "user", NULL, NULL);
	char *a = new_message(chat, "assistant", NULL, NULL);
	char long_comment[2100];
	int n;
	mt_resp r, m;

	ck_assert_int_eq(feedback(tok_a, q, "{\"rating\":\"up\"}", &r), 422);
	ck_assert_str_eq(mt_error_code(&r), "validation_failed");
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"), "user message"));
	mt_resp_release(&r);

	/* Bob cannot rate Alice's answer: 404 exactly like a missing message. */
	ck_assert_int_eq(feedback(tok_b, a, "{\"rating\":\"down\"}", &r), 404);
	ck_assert_int_eq(
	    feedback(tok_b, "00000000-0000-4000-8000-000000000000", "{\"rating\":\"down\"}", &m),
	    404);
	ck_assert_str_eq(mt_error_code(&r), "not_found");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"),
	                 mk_json_str(cJSON_GetObjectItem(m.json, "error"), "message"));
	mt_resp_release(&r);
	mt_resp_release(&m);
	ck_assert_int_eq(feedback(tok_a, "not-a-message", "{\"rating\":\"up\"}", &r), 404);
	mt_resp_release(&r);

	ck_assert_int_eq(feedback(tok_a, a, "{\"rating\":\"meh\"}", &r), 422);
	ck_assert_str_eq(mt_error_code(&r), "validation_failed");
	mt_resp_release(&r);
	ck_assert_int_eq(feedback(tok_a, a, "{\"rating\":1}", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(feedback(tok_a, a, "{}", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(feedback(tok_a, a, "{\"rating\":\"up\",\"stars\":5}", &r), 422);
	mt_resp_release(&r);
	/* 2001 characters: one too many. */
	n = snprintf(long_comment, sizeof(long_comment), "{\"rating\":\"up\",\"comment\":\"");
	memset(long_comment + n, 'x', 2001);
	snprintf(long_comment + n + 2001, sizeof(long_comment) - (size_t)n - 2001, "\"}");
	ck_assert_int_eq(feedback(tok_a, a, long_comment, &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(feedback(NULL, a, "{\"rating\":\"up\"}", &r), 401);
	mt_resp_release(&r);

	/* None of that rated it. */
	{
		const char *p[1] = {a};
		char *fb = sql1("SELECT coalesce(feedback::text, 'none') FROM chat.messages "
		                "WHERE id = $1",
		                1, p);

		ck_assert_str_eq(fb, "none");
		free(fb);
	}
	free(chat);
	free(q);
	free(a);
}
END_TEST

/* ------------------------------------------------------------------ artifacts */

/* exec.run over NNG as user; the execution (the caller deletes it). */
static cJSON *run_as(const char *user, const char *chat, const char *code)
{
	mk_caller caller;
	mk_rpc_result res;
	char rid[MK_RID_MAX + 1];
	cJSON *b = cJSON_CreateObject(), *out;

	memset(&caller, 0, sizeof(caller));
	snprintf(caller.user_id, sizeof(caller.user_id), "%s", user);
	snprintf(caller.role, sizeof(caller.role), "user");
	cJSON_AddStringToObject(b, "chat_id", chat);
	cJSON_AddStringToObject(b, "code", code);
	mk_rid_new(rid);
	mk_rpc_call(exec_client, MK_OP_EXEC_RUN, rid, &caller, b, 120000, &res);
	cJSON_Delete(b);
	ck_assert_msg(res.err == MK_OK, "exec.run: %s", res.msg);
	out = cJSON_Duplicate(res.body, 1);
	mk_rpc_result_release(&res);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(out, "error")));
	return out;
}

/* The artifact_id of the run's output file at path. */
static const char *artifact_at(const cJSON *run, const char *path)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(run, "artifacts"))
	{
		if (strcmp(mk_json_str(it, "path"), path) == 0)
			return mk_json_str(it, "artifact_id");
	}
	ck_abort_msg("no artifact at '%s'", path);
	return NULL;
}

static void assert_header(const mt_resp *r, const char *name, const char *want)
{
	char *v = mt_header(r, name);

	ck_assert_msg(v && strcmp(v, want) == 0, "%s: '%s', want '%s'", name, v ? v : "(none)",
	              want);
	free(v);
}

START_TEST(test_artifacts_are_served_to_their_owner_only_and_active_content_is_sandboxed)
{
	static const char html[] = "<html><body><script>alert(1)</script>hi</body></html>";
	char chat[64], path[128], code[1024], len[32];
	cJSON *run;
	const char *png_id, *html_id, *csv_id;
	mt_resp r, m;

	snprintf(chat, sizeof(chat), "fu-art-%d", (int)getpid());
	snprintf(code, sizeof(code),
	         "import matplotlib.pyplot as plt\n"
	         "open('output/report.html', 'w').write('%s')\n"
	         "open('output/data.csv', 'w').write('region,sales\\nnorth,10\\n')\n"
	         "plt.plot([1, 2, 3], [3, 1, 2])\n",
	         html);
	run = run_as(id_a, chat, code);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(run, "images")), 1);
	png_id = mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(run, "images"), 0),
	                     "artifact_id");
	html_id = artifact_at(run, "output/report.html");
	csv_id = artifact_at(run, "output/data.csv");

	/* The plot: PNG bytes, shown inline, cacheable by the browser only. */
	snprintf(path, sizeof(path), "/api/v1/artifacts/%s", png_id);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	ck_assert(r.len > 100 && memcmp(r.body, "\x89PNG", 4) == 0);
	assert_header(&r, "Content-Type", "image/png");
	snprintf(len, sizeof(len), "%zu", r.len);
	assert_header(&r, "Content-Length", len);
	assert_header(&r, "X-Content-Type-Options", "nosniff");
	assert_header(&r, "Cache-Control", "private, max-age=3600");
	assert_header(&r, "Content-Security-Policy", "sandbox");
	ck_assert_ptr_nonnull(strstr(r.headers, "X-Request-Id: "));
	mt_resp_release(&r);

	/* HTML that code wrote is never rendered on our origin. */
	snprintf(path, sizeof(path), "/api/v1/artifacts/%s", html_id);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	ck_assert_uint_eq(r.len, strlen(html));
	ck_assert(memcmp(r.body, html, r.len) == 0);
	assert_header(&r, "Content-Type", "text/html");
	assert_header(&r, "Content-Disposition", "attachment; filename=\"report.html\"");
	assert_header(&r, "Content-Security-Policy", "sandbox");
	assert_header(&r, "X-Content-Type-Options", "nosniff");
	mt_resp_release(&r);

	snprintf(path, sizeof(path), "/api/v1/artifacts/%s", csv_id);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	ck_assert_str_eq(r.body, "region,sales\nnorth,10\n");
	assert_header(&r, "Content-Type", "text/csv");
	assert_header(&r, "Content-Disposition", "inline; filename=\"data.csv\"");
	mt_resp_release(&r);

	/* Bob gets 404, as for an artifact that does not exist. */
	snprintf(path, sizeof(path), "/api/v1/artifacts/%s", png_id);
	ck_assert_int_eq(call(tok_b, "GET", path, NULL, &r), 404);
	ck_assert_int_eq(
	    call(tok_b, "GET", "/api/v1/artifacts/00000000-0000-4000-8000-000000000000", NULL, &m),
	    404);
	ck_assert_str_eq(mt_error_code(&r), "not_found");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"),
	                 mk_json_str(cJSON_GetObjectItem(m.json, "error"), "message"));
	mt_resp_release(&r);
	mt_resp_release(&m);
	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/artifacts/garbage", NULL, &r), 404);
	ck_assert_str_eq(mt_error_code(&r), "not_found");
	mt_resp_release(&r);
	ck_assert_int_eq(
	    call(tok_a, "GET",
	         "/api/v1/artifacts/"
	         "0123456789012345678901234567890123456789012345678901234567890123456789",
	         NULL, &r),
	    404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(NULL, "GET", path, NULL, &r), 401);
	mt_resp_release(&r);
	cJSON_Delete(run);
}
END_TEST

/* ------------------------------------------------------------------ usage */

static const cJSON *day_of(const cJSON *usage, int i)
{
	return cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(usage, "days"), i);
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	ck_assert_msg(cJSON_IsNumber(v), "'%s' is not a number", name);
	return v->valuedouble;
}

START_TEST(test_usage_shows_the_callers_tokens_and_executions_per_day)
{
	char *chat = new_chat(id_a), today[16], past[16], echat[64];
	char *m1 = new_message(chat, "assistant",
	                       "{\"prompt_tokens\":100,\"completion_tokens\":20}", NULL);
	char *m2 =
	    new_message(chat, "assistant", "{\"prompt_tokens\":5,\"completion_tokens\":7}", NULL);
	char *m3 = new_message(chat, "assistant",
	                       "{\"prompt_tokens\":1000,\"completion_tokens\":1}", "3 days");
	/* A user message's usage is not the model's: not counted. */
	char *m4 =
	    new_message(chat, "user", "{\"prompt_tokens\":999,\"completion_tokens\":999}", NULL);
	time_t now = time(NULL), then = now - 3 * 86400;
	struct tm tm;
	const cJSON *d0, *d1, *tot;
	mt_resp r;

	strftime(today, sizeof(today), "%Y-%m-%d", gmtime_r(&now, &tm));
	strftime(past, sizeof(past), "%Y-%m-%d", gmtime_r(&then, &tm));
	snprintf(echat, sizeof(echat), "fu-usage-%d", (int)getpid());
	/* Warehouse queries: the bytes of those that ran (a refused one scanned nothing). */
	{
		const char *q[1] = {id_a};

		free(
		    sql1("WITH i AS (INSERT INTO catalog.queries (user_id, sql, status, bytes, at) "
		         "VALUES "
		         "($1, 'SELECT 1', 'ok', 1000, now()), ($1, 'SELECT 2', 'ok', 234, now()), "
		         "($1, 'SELECT 3', 'rejected', 999, now()), "
		         "($1, 'SELECT 4', 'ok', 5, now() - interval '3 days') RETURNING 1) "
		         "SELECT count(*) FROM i",
		         1, q));
	}
	cJSON_Delete(run_as(id_a, echat, "x = 1\n"));
	cJSON_Delete(run_as(id_a, echat, "import time\ntime.sleep(0.2)\nx + 1\n"));

	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/usage", NULL, &r), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "days")), 2);
	d0 = day_of(r.json, 0);
	d1 = day_of(r.json, 1);
	ck_assert_str_eq(mk_json_str(d0, "date"), today);
	ck_assert_int_eq((long)num(d0, "prompt_tokens"), 105);
	ck_assert_int_eq((long)num(d0, "completion_tokens"), 27);
	ck_assert_int_ge((long)num(d0, "executions"), 2);
	ck_assert(num(d0, "execution_seconds") >= 0.2);
	ck_assert_int_eq((long)num(d0, "warehouse_bytes"), 1234);
	ck_assert_int_eq((long)num(d0, "warehouse_queries"), 3);
	ck_assert_str_eq(mk_json_str(d1, "date"), past);
	ck_assert_int_eq((long)num(d1, "prompt_tokens"), 1000);
	ck_assert_int_eq((long)num(d1, "executions"), 0);
	ck_assert_int_eq((long)num(d1, "warehouse_bytes"), 5);
	tot = cJSON_GetObjectItemCaseSensitive(r.json, "totals");
	ck_assert_int_eq((long)num(tot, "prompt_tokens"), 1105);
	ck_assert_int_eq((long)num(tot, "completion_tokens"), 28);
	ck_assert_int_eq((long)num(tot, "executions"), (long)num(d0, "executions"));
	ck_assert_int_eq((long)num(tot, "warehouse_bytes"), 1239);
	mt_resp_release(&r);

	/* days=1 is today alone. */
	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/usage?days=1", NULL, &r), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "days")), 1);
	ck_assert_int_eq(
	    (long)num(cJSON_GetObjectItemCaseSensitive(r.json, "totals"), "prompt_tokens"), 105);
	mt_resp_release(&r);

	/* Bob has done nothing. */
	ck_assert_int_eq(call(tok_b, "GET", "/api/v1/usage?days=366", NULL, &r), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r.json, "days")), 0);
	tot = cJSON_GetObjectItemCaseSensitive(r.json, "totals");
	ck_assert_int_eq((long)num(tot, "prompt_tokens"), 0);
	ck_assert_int_eq((long)num(tot, "executions"), 0);
	mt_resp_release(&r);

	free(chat);
	free(m1);
	free(m2);
	free(m3);
	free(m4);
}
END_TEST

START_TEST(test_bad_usage_periods_are_422)
{
	const char *bad[] = {
	    "/api/v1/usage?days=0", "/api/v1/usage?days=367", "/api/v1/usage?days=ten",
	    "/api/v1/usage?days=",  "/api/v1/usage?days=-1",  "/api/v1/usage?days=7x"};
	mt_resp r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(call(tok_a, "GET", bad[i], NULL, &r) == 422, "%s: %ld", bad[i],
		              r.status);
		ck_assert_str_eq(mt_error_code(&r), "validation_failed");
		mt_resp_release(&r);
	}
	ck_assert_int_eq(call(NULL, "GET", "/api/v1/usage", NULL, &r), 401);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_usage_is_503_while_a_service_is_down)
{
	mt_resp r;

	/* A minute to exit and a minute and a half to be back: a loaded host may need them. */
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_LLM], SIGTERM, 60000), 0);
	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/usage", NULL, &r), 503);
	ck_assert_str_eq(mt_error_code(&r), "unavailable");
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"), "'llm'"));
	ck_assert_ptr_nonnull(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "request_id"));
	mt_resp_release(&r);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_LLM, extra_env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, 90000), 0);
	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/usage", NULL, &r), 200);
	mt_resp_release(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("feedback_usage");
	TCase *tc = tcase_create("feedback_usage");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_an_answer_is_rated_and_rating_again_replaces_the_rating);
	tcase_add_test(tc, test_only_answers_of_ones_own_chats_can_be_rated);
	tcase_add_test(
	    tc, test_artifacts_are_served_to_their_owner_only_and_active_content_is_sandboxed);
	tcase_add_test(tc, test_usage_shows_the_callers_tokens_and_executions_per_day);
	tcase_add_test(tc, test_bad_usage_periods_are_422);
	tcase_add_test(tc, test_usage_is_503_while_a_service_is_down);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
