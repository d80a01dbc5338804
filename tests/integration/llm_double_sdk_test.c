/*
 * llm_double_sdk_test.c - the LLM provider double (tests/doubles/llm) is
 * faithful: the official OpenAI and Anthropic SDKs, unchanged, parse what it
 * sends (tests/doubles/llm/sdk/sdk_check.mjs, run with Node), and it refuses
 * what the providers refuse, records what it received, and sends scripted
 * bytes exactly. No Postgres is needed.
 *
 * Needs node and npm on PATH; the SDKs are installed by `npm ci` in
 * tests/doubles/llm/sdk the first time (when node_modules is missing). A
 * missing node or npm fails the test: it is never skipped.
 *
 * Environment read: MARK_DOUBLES_DIR (the directory holding llm-double;
 * default: MARK_BIN_DIR/../tests/doubles when MARK_BIN_DIR is set, so the
 * sanitizer pass of `make test` uses the sanitizer build, else
 * build/tests/doubles), MARK_TEST_LOG_DIR (default build/test-logs).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define SDK_DIR     "tests/doubles/llm/sdk"
#define FIXTURE_DIR MT_DOUBLE_FIXTURE_DIR
#define API_KEY     "sk-test-key"

/* The double every test but the SDK one talks to, started with --api-key. */
static mt_double dbl;

static const char *const OPENAI_HDRS[] = {"Authorization: Bearer " API_KEY,
                                          "Content-Type: application/json", NULL};
static const char *const ANTHROPIC_HDRS[] = {"x-api-key: " API_KEY, "anthropic-version: 2023-06-01",
                                             "Content-Type: application/json", NULL};

/* ------------------------------------------------------------------ helpers */

static void double_start(mt_double *d, const char *name, const char *key)
{
	char err[512];

	ck_assert_msg(mt_double_start(d, name, key, err, sizeof(err)) == 0, "%s", err);
}

/* SIGTERM; the double must exit 0 (under ASan: without leaks). */
static void double_stop(mt_double *d)
{
	int st = mt_double_stop(d);

	ck_assert_msg(st == 0, "llm-double exited %d on SIGTERM, want 0", st);
}

static const char *url(const char *path)
{
	return mt_double_url(&dbl, path);
}

static void load_scenario_text(const char *json)
{
	char err[512];

	ck_assert_msg(mt_double_scenario(&dbl, json, err, sizeof(err)) == 0, "scenario refused: %s",
	              err);
}

/* Load tests/data/llm/<name>.json; returns it parsed (the caller deletes it). */
static cJSON *load_fixture(const char *name)
{
	char err[512];
	cJSON *root = NULL;

	ck_assert_msg(mt_double_fixture(&dbl, name, &root, err, sizeof(err)) == 0, "%s", err);
	return root;
}

static void reset(void)
{
	char err[512];

	ck_assert_msg(mt_double_reset(&dbl, err, sizeof(err)) == 0, "%s", err);
}

static void post(const char *path, const char *const *hdrs, const char *body, mt_resp *r)
{
	ck_assert_int_eq(mt_http("POST", url(path), hdrs, body, strlen(body), r), 0);
}

static const cJSON *error_of(const mt_resp *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");

	ck_assert_msg(cJSON_IsObject(e), "no error object in %s", r->body);
	return e;
}

/* An error reply: status, error.type, and a message containing `needle`. */
static void expect_error(const mt_resp *r, long status, const char *type, const char *needle)
{
	const cJSON *e = error_of(r);
	const char *msg = mk_json_str(e, "message");

	ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body);
	ck_assert_str_eq(mk_json_str(e, "type"), type);
	ck_assert_msg(msg && strstr(msg, needle), "message '%s' lacks '%s'", msg ? msg : "",
	              needle);
}

static void double_up(void)
{
	double_start(&dbl, "llm-double", API_KEY);
}

static void double_down(void)
{
	double_stop(&dbl);
}

/* ------------------------------------------------------------------ the SDKs */

START_TEST(test_the_official_sdks_parse_what_the_double_sends)
{
	static const char *const packages[] = {"openai", "@anthropic-ai/sdk", NULL};
	mt_double d;
	char err[512], env[128], *out = NULL;
	int st;

	ck_assert_msg(mt_sdk_ready(SDK_DIR, packages, "the LLM double's faithfulness test", 20, err,
	                           sizeof(err)) == 0,
	              "%s", err);
	double_start(&d, "llm-double-sdk", NULL);
	snprintf(env, sizeof(env), "BASE='%s'", d.base);
	st = mt_sdk_run(SDK_DIR, env, &d.p, &out);
	ck_assert_msg(st == 0, "sdk_check.mjs exited %d:\n%s", st, out);
	free(out);
	double_stop(&d);
}
END_TEST

/* ------------------------------------------------------------------ direct checks */

START_TEST(test_a_missing_or_wrong_key_is_401_in_each_providers_shape)
{
	static const char *const wrong_openai[] = {"Authorization: Bearer sk-wrong-key-123456",
	                                           NULL};
	static const char *const no_key_anthropic[] = {"anthropic-version: 2023-06-01", NULL};
	static const char *const wrong_anthropic[] = {"x-api-key: nope",
	                                              "anthropic-version: 2023-06-01", NULL};
	static const char *const azure_key[] = {"api-key: " API_KEY, NULL};
	const char *chat =
	    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"hi\"}]}";
	const char *msgs = "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":[{"
	                   "\"role\":\"user\",\"content\":\"hi\"}]}";
	mt_resp r;

	reset();
	post("/v1/chat/completions", NULL, chat, &r);
	expect_error(&r, 401, "invalid_request_error", "API key");
	ck_assert_str_eq(mt_error_code(&r), "invalid_api_key");
	mt_resp_release(&r);

	post("/v1/chat/completions", wrong_openai, chat, &r);
	expect_error(&r, 401, "invalid_request_error", "Incorrect API key provided");
	ck_assert_msg(!strstr(r.body, "sk-wrong-key-123456"), "the key is masked: %s", r.body);
	mt_resp_release(&r);

	post("/v1/messages", no_key_anthropic, msgs, &r);
	ck_assert_int_eq(r.status, 401);
	ck_assert_str_eq(mk_json_str(r.json, "type"), "error");
	ck_assert_str_eq(mk_json_str(error_of(&r), "type"), "authentication_error");
	ck_assert_ptr_nonnull(mk_json_str(r.json, "request_id"));
	mt_resp_release(&r);

	post("/v1/messages", wrong_anthropic, msgs, &r);
	ck_assert_int_eq(r.status, 401);
	ck_assert_str_eq(mk_json_str(error_of(&r), "type"), "authentication_error");
	mt_resp_release(&r);

	/* Azure classic: api-key, and api-version is required. */
	post("/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", OPENAI_HDRS, chat,
	     &r);
	ck_assert_int_eq(r.status, 401);
	mt_resp_release(&r);
	post("/openai/deployments/gpt4o/chat/completions", azure_key, chat, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_ptr_nonnull(strstr(r.body, "api-version"));
	mt_resp_release(&r);

	/* The right key gets past the door: no scenario is loaded, so the double says so. */
	load_scenario_text("{\"name\":\"empty\",\"steps\":[]}");
	post("/v1/chat/completions", OPENAI_HDRS, chat, &r);
	expect_error(&r, 500, "server_error", "no scripted step left");
	mt_resp_release(&r);
	post("/v1/messages", ANTHROPIC_HDRS, msgs, &r);
	expect_error(&r, 500, "api_error", "no scripted step left");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_anthropic_refuses_what_the_messages_api_refuses)
{
	static const char *const no_version[] = {"x-api-key: " API_KEY, NULL};
	const char *ok =
	    "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":[{\"role\":"
	    "\"user\",\"content\":\"hi\"}]}";
	mt_resp r;

	reset();
	post("/v1/messages", ANTHROPIC_HDRS,
	     "{\"model\":\"claude-haiku-4-5\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]"
	     "}",
	     &r);
	expect_error(&r, 400, "invalid_request_error", "max_tokens");
	ck_assert_str_eq(mk_json_str(r.json, "type"), "error");
	mt_resp_release(&r);

	post("/v1/messages", no_version, ok, &r);
	expect_error(&r, 400, "invalid_request_error", "anthropic-version");
	mt_resp_release(&r);

	post("/v1/messages", ANTHROPIC_HDRS,
	     "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":[{\"role\":\"system\","
	     "\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]}",
	     &r);
	expect_error(&r, 400, "invalid_request_error", "system");
	mt_resp_release(&r);

	/* A tool_use whose result is missing from the next user message. */
	post("/v1/messages", ANTHROPIC_HDRS,
	     "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":["
	     "{\"role\":\"user\",\"content\":\"hi\"},"
	     "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
	     "\"name\":\"run_python\",\"input\":{\"code\":\"1\"}}]},"
	     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"go on\"}]}]}",
	     &r);
	expect_error(&r, 400, "invalid_request_error", "toolu_1");
	mt_resp_release(&r);

	/* tool_use.input sent as a string (the OpenAI habit). */
	post(
	    "/v1/messages", ANTHROPIC_HDRS,
	    "{\"model\":\"claude-haiku-4-5\",\"max_tokens\":64,\"messages\":["
	    "{\"role\":\"user\",\"content\":\"hi\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"toolu_1\","
	    "\"name\":\"run_python\",\"input\":\"{}\"}]},"
	    "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
	    "\"content\":\"1\"}]}]}",
	    &r);
	expect_error(&r, 400, "invalid_request_error", "dictionary");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_openai_refuses_what_chat_completions_refuses)
{
	static const struct {
		const char *body, *param, *needle;
	} cases[] = {
	    {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", NULL, "model"},
	    {"{\"model\":\"m\",\"messages\":[]}", "messages", "empty array"},
	    {"{\"model\":\"m\"}", "messages", "messages"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	     "\"tool\",\"tool_call_id\":\"call_9\",\"content\":\"1\"}]}",
	     "messages.[1].role", "preceeding message with 'tool_calls'"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	     "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":{\"a\":1}}}]},{\"role\":"
	     "\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"1\"}]}",
	     "messages[1].tool_calls[0].function.arguments", "expected a string"},
	    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":"
	     "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
	     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}},{\"id\":\"call_2\","
	     "\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"{}\"}}]},{"
	     "\"role\":"
	     "\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"1\"}]}",
	     "messages.[1].role", "call_2"},
	    {"not json", NULL, "could not parse the JSON body"},
	};
	size_t i;
	mt_resp r;

	reset();
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const cJSON *e;

		post("/v1/chat/completions", OPENAI_HDRS, cases[i].body, &r);
		expect_error(&r, 400, "invalid_request_error", cases[i].needle);
		e = error_of(&r);
		if (cases[i].param)
			ck_assert_str_eq(mk_json_str(e, "param"), cases[i].param);
		else
			ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(e, "param")));
		ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(e, "code"));
		mt_resp_release(&r);
	}
}
END_TEST

START_TEST(test_the_double_records_each_request_with_its_body_and_headers)
{
	const char *body =
	    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"count the rows\"}],\"stream\":false}";
	const cJSON *rec, *b;
	mt_resp r;

	reset();
	load_scenario_text("{\"name\":\"one\",\"steps\":[{\"openai_text\":\"42 rows\"}]}");
	post("/api/v1/chat/completions?trace=1", OPENAI_HDRS, body, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "object"), "chat.completion");
	mt_resp_release(&r);

	ck_assert_int_eq(mt_http("GET", url("/_double/requests"), NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(r.json), 1);
	rec = cJSON_GetArrayItem(r.json, 0);
	ck_assert_str_eq(mk_json_str(rec, "method"), "POST");
	ck_assert_str_eq(mk_json_str(rec, "path"), "/api/v1/chat/completions");
	ck_assert_str_eq(mk_json_str(rec, "query"), "trace=1");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(rec, "headers"), "authorization"),
	                 "Bearer " API_KEY);
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(rec, "headers"), "content-type"),
	                 "application/json");
	b = cJSON_GetObjectItemCaseSensitive(rec, "body");
	ck_assert_str_eq(mk_json_str(b, "model"), "gpt-4o-mini");
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(b, "messages"), 0), "content"),
	    "count the rows");
	mt_resp_release(&r);

	/* A body that is not JSON is kept as text. */
	post("/v1/chat/completions", OPENAI_HDRS, "model=x", &r);
	ck_assert_int_eq(r.status, 400);
	mt_resp_release(&r);
	ck_assert_int_eq(mt_http("GET", url("/_double/requests"), NULL, NULL, 0, &r), 0);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(r.json, 1), "body"), "model=x");
	mt_resp_release(&r);

	reset();
	ck_assert_int_eq(mt_http("GET", url("/_double/requests"), NULL, NULL, 0, &r), 0);
	ck_assert_str_eq(r.body, "[]");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_every_fixture_is_a_scenario_the_double_accepts)
{
	DIR *dir = opendir(FIXTURE_DIR);
	struct dirent *e;
	int n = 0;

	ck_assert_msg(dir != NULL, "cannot open " FIXTURE_DIR " (run from the repository root)");
	while ((e = readdir(dir))) {
		size_t len = strlen(e->d_name);
		char name[256];

		if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 5), e->d_name);
		cJSON_Delete(load_fixture(name));
		n++;
	}
	closedir(dir);
	ck_assert_int_ge(n, 30);

	/* And a scenario with a typo is refused, naming it. */
	{
		const char *bad = "{\"steps\":[{\"openai_text\":\"x\",\"splitt\":3}]}";
		mt_resp r;

		ck_assert_int_eq(
		    mt_http("POST", url("/_double/scenario"), NULL, bad, strlen(bad), &r), 0);
		ck_assert_int_eq(r.status, 400);
		ck_assert_ptr_nonnull(strstr(r.body, "splitt"));
		mt_resp_release(&r);
	}
}
END_TEST

/* The concatenated "sse" strings of a fixture's first step. */
static char *scripted_bytes(const cJSON *fixture, size_t *len)
{
	const cJSON *sse = cJSON_GetObjectItem(
	                cJSON_GetArrayItem(cJSON_GetObjectItem(fixture, "steps"), 0), "sse"),
	            *s;
	mk_buf b;

	mk_buf_init(&b, 0);
	cJSON_ArrayForEach(s, sse) mk_buf_puts(&b, s->valuestring);
	*len = b.len;
	return mk_buf_steal(&b);
}

START_TEST(test_a_sliced_stream_arrives_byte_for_byte_and_a_cut_one_short)
{
	const char *req = "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
	                  "\"user\",\"content\":\"hi\"}]}";
	const char *names[] = {"openai_stream_crlf", "openai_stream_utf8_split",
	                       "openai_stream_keepalive"};
	cJSON *fx;
	size_t len, i;
	char *want, *ctype;
	long long cut;
	mt_resp r;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		fx = load_fixture(names[i]);
		want = scripted_bytes(fx, &len);
		post("/v1/chat/completions", OPENAI_HDRS, req, &r);
		ck_assert_int_eq(r.status, 200);
		ctype = mt_header(&r, "Content-Type");
		ck_assert_ptr_nonnull(strstr(ctype, "text/event-stream"));
		ck_assert_msg(r.len == len && memcmp(r.body, want, len) == 0,
		              "%s: got %zu bytes, want %zu", names[i], r.len, len);
		free(ctype);
		free(want);
		cJSON_Delete(fx);
		mt_resp_release(&r);
	}

	/* close_after_bytes: the transfer fails after exactly that many body bytes. */
	fx = load_fixture("openai_stream_cut");
	ck_assert_int_eq(mk_json_int(cJSON_GetArrayItem(cJSON_GetObjectItem(fx, "steps"), 0),
	                             "close_after_bytes", &cut),
	                 0);
	ck_assert_int_eq(
	    mt_http("POST", url("/v1/chat/completions"), OPENAI_HDRS, req, strlen(req), &r), -1);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq((long long)r.len, cut);
	ck_assert_ptr_null(strstr(r.body, "[DONE]"));
	mt_resp_release(&r);
	cJSON_Delete(fx);
}
END_TEST

START_TEST(test_a_step_that_does_not_match_is_a_500_that_names_it_and_is_not_consumed)
{
	const char *plain =
	    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
	    "\"hi\"}]}";
	const char *streamed = "{\"model\":\"gpt-4o-mini\",\"stream\":true,\"messages\":[{\"role\":"
	                       "\"user\",\"content\":\"hi\"}]}";
	char *retry;
	mt_resp r;

	load_scenario_text("{\"name\":\"m\",\"steps\":[{\"match\":{\"stream\":true},"
	                   "\"openai_text\":\"streamed\"}]}");
	post("/v1/chat/completions", OPENAI_HDRS, plain, &r);
	expect_error(&r, 500, "server_error", "step 1 of scenario 'm' expects stream true");
	retry = mt_header(&r, "x-should-retry");
	ck_assert_str_eq(retry, "false");
	free(retry);
	mt_resp_release(&r);

	post("/v1/chat/completions", OPENAI_HDRS, streamed, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "data: [DONE]"));
	mt_resp_release(&r);

	post("/v1/chat/completions", OPENAI_HDRS, streamed, &r);
	expect_error(&r, 500, "server_error", "no scripted step left");
	mt_resp_release(&r);

	/* An Azure deployment stands for the model. */
	load_scenario_text("{\"steps\":[{\"match\":{\"dialect\":\"azure\",\"model\":\"my-gpt\"},"
	                   "\"openai_text\":\"hi from azure\"}]}");
	{
		static const char *const azure[] = {"api-key: " API_KEY, NULL};

		post("/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21", azure,
		     plain, &r);
	}
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "model"), "my-gpt");
	mt_resp_release(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llm_double");
	TCase *sdk = tcase_create("sdk");
	TCase *tc = tcase_create("direct");

	/* npm ci the first time, then ~20 checks with retries and pauses. */
	tcase_set_timeout(sdk, 600);
	tcase_add_test(sdk, test_the_official_sdks_parse_what_the_double_sends);
	suite_add_tcase(s, sdk);

	tcase_add_unchecked_fixture(tc, double_up, double_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_missing_or_wrong_key_is_401_in_each_providers_shape);
	tcase_add_test(tc, test_anthropic_refuses_what_the_messages_api_refuses);
	tcase_add_test(tc, test_openai_refuses_what_chat_completions_refuses);
	tcase_add_test(tc, test_the_double_records_each_request_with_its_body_and_headers);
	tcase_add_test(tc, test_every_fixture_is_a_scenario_the_double_accepts);
	tcase_add_test(tc, test_a_sliced_stream_arrives_byte_for_byte_and_a_cut_one_short);
	tcase_add_test(tc,
	               test_a_step_that_does_not_match_is_a_500_that_names_it_and_is_not_consumed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
