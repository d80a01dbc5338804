/*
 * llm_client_double_test.c - our provider clients (services/llm,
 * llm_provider_new with kind "openai" and "anthropic") against the LLM
 * provider double (tests/doubles/llm) over real HTTP on loopback, driven by
 * the fixtures in tests/data/llm.
 *
 * Each test asserts what a user of the client would notice: the text (and
 * that streamed text is the same as the whole reply's), the token usage,
 * the tool calls with their arguments, the status and message of a failure
 * and how many attempts it took; and, from the double's record of what it
 * received (GET /_double/requests), that the request was what the
 * provider's API wants: the key headers, the model, the messages and the
 * tool results in each dialect's shape. No Postgres is needed.
 *
 * The unit tests (tests/unit/llm) check the same clients byte for byte
 * against a scripted server; here the other side is the double that the
 * official SDKs accept (llm_double_sdk_test.c).
 *
 * Environment read: as mt_double.h (MARK_DOUBLES_DIR, MARK_BIN_DIR,
 * MARK_TEST_LOG_DIR).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_provider.h"
#include "mk_buf.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

/* The only key the double accepts; no message may ever hold it. */
#define API_KEY         "sk-double-SECRET-4242"
#define WRONG_KEY       "sk-wrong-SECRET-9876"
#define OPENAI_MODEL    "gpt-4o-mini"
#define ANTHROPIC_MODEL "claude-haiku-4-5"
#define MAX_RETRIES     2

static mt_double dbl;

/* ------------------------------------------------------------------ the double */

static void double_up(void)
{
	char err[512];

	ck_assert_msg(mt_double_start(&dbl, "llm-double-client", API_KEY, err, sizeof(err)) == 0,
	              "%s", err);
}

/* The double must exit 0 on SIGTERM (under ASan: without leaks). */
static void double_down(void)
{
	int st = mt_double_stop(&dbl);

	ck_assert_msg(st == 0, "llm-double exited %d on SIGTERM, want 0", st);
}

/* Forget what the double recorded and make json its scenario. */
static void scenario(const char *json)
{
	char err[512];

	ck_assert_msg(mt_double_reset(&dbl, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(mt_double_scenario(&dbl, json, err, sizeof(err)) == 0, "%s", err);
}

/* Forget what the double recorded and load tests/data/llm/<name>.json; returns it parsed. */
static cJSON *fixture(const char *name)
{
	char err[512];
	cJSON *fx = NULL;

	ck_assert_msg(mt_double_reset(&dbl, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(mt_double_fixture(&dbl, name, &fx, err, sizeof(err)) == 0, "%s", err);
	return fx;
}

static void load(const char *name)
{
	cJSON_Delete(fixture(name));
}

/* The requests the double received since the last load; exactly `want` of them. */
static cJSON *recorded(int want)
{
	char err[512];
	cJSON *reqs = mt_double_requests(&dbl, err, sizeof(err));

	ck_assert_msg(reqs != NULL, "%s", err);
	ck_assert_msg(cJSON_GetArraySize(reqs) == want, "the double received %d requests, want %d",
	              cJSON_GetArraySize(reqs), want);
	return reqs;
}

static const cJSON *at(const cJSON *arr, int i)
{
	const cJSON *v = cJSON_GetArrayItem(arr, i);

	ck_assert_msg(v != NULL, "no item %d", i);
	return v;
}

static const cJSON *get(const cJSON *obj, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static const char *header(const cJSON *rec, const char *name)
{
	return mk_json_str(get(rec, "headers"), name);
}

static const cJSON *body(const cJSON *rec)
{
	const cJSON *b = get(rec, "body");

	ck_assert_msg(cJSON_IsObject(b), "the recorded request has no JSON body");
	return b;
}

/* Whether JSON text `got` is the same JSON value as `want`. */
static int json_eq(const char *got, const char *want)
{
	char why[128];
	cJSON *g = got ? mk_json_parse(got, strlen(got), 0, why, sizeof(why)) : NULL;
	cJSON *w = mk_json_parse(want, strlen(want), 0, why, sizeof(why));
	int eq = g && w && cJSON_Compare(g, w, 1);

	cJSON_Delete(g);
	cJSON_Delete(w);
	return eq;
}

/* A JSON value (not text) equal to JSON text want. */
static int value_eq(const cJSON *got, const char *want)
{
	char *t = got ? mk_json_print(got) : NULL;
	int eq = t && json_eq(t, want);

	free(t);
	return eq;
}

/* ------------------------------------------------------------------ the client */

static llm_provider_cfg cfg(const char *kind)
{
	static char openai_base[96], anthropic_base[96];
	llm_provider_cfg c;
	int openai = strcmp(kind, "openai") == 0;

	snprintf(openai_base, sizeof(openai_base), "%s/v1", dbl.base);
	snprintf(anthropic_base, sizeof(anthropic_base), "%s", dbl.base);
	memset(&c, 0, sizeof(c));
	c.kind = kind;
	c.base_url = openai ? openai_base : anthropic_base;
	c.api_key = API_KEY;
	c.model = openai ? OPENAI_MODEL : ANTHROPIC_MODEL;
	/* Far above what a reply here takes: only the test about a timeout shortens one. */
	c.connect_timeout_ms = 10000;
	c.first_byte_timeout_ms = 30000;
	c.idle_timeout_ms = 30000;
	c.max_retries = MAX_RETRIES;
	c.backoff_base_ms = 20;
	c.max_response = 1 << 20;
	return c;
}

struct call {
	llm_response r;
	llm_status st;
	char err[512];
	mk_buf streamed; /* every on_text delta, concatenated */
	int ndeltas;
	int64_t ms; /* how long the call took */
};

static int on_text(void *ud, const char *delta, size_t len)
{
	struct call *c = ud;

	ck_assert_uint_gt(len, 0);
	ck_assert_int_eq(mk_buf_append(&c->streamed, delta, len), 0);
	c->ndeltas++;
	return 0;
}

static llm_status run_with(const llm_provider_cfg *pc, const llm_request *req, struct call *c)
{
	llm_stream_cb cb = {.on_text = on_text, .ud = c};
	char err[256] = "";
	llm_provider *p = llm_provider_new(pc, err, sizeof(err));
	int64_t t0;

	ck_assert_msg(p != NULL, "llm_provider_new: %s", err);
	memset(c, 0, sizeof(*c));
	mk_buf_init(&c->streamed, 0);
	t0 = mk_mono_ms();
	c->st = p->ops->complete(p, req, &cb, &c->r, c->err, sizeof(c->err));
	c->ms = mk_mono_ms() - t0;
	llm_provider_free(p);
	ck_assert_ptr_nonnull(c->r.text);
	ck_assert_msg(!strstr(c->err, API_KEY) && !strstr(c->err, "SECRET"), "a key leaked: %s",
	              c->err);
	if (c->st == LLM_OK)
		ck_assert_msg(c->err[0] == '\0', "ok, yet a message: %s", c->err);
	else
		ck_assert_msg(c->err[0] != '\0', "%s without a message", llm_status_code(c->st));
	return c->st;
}

static llm_status run(const char *kind, const llm_request *req, struct call *c)
{
	llm_provider_cfg pc = cfg(kind);

	return run_with(&pc, req, c);
}

static const char *streamed(const struct call *c)
{
	return c->streamed.data ? c->streamed.data : "";
}

static void call_release(struct call *c)
{
	llm_response_release(&c->r);
	mk_buf_release(&c->streamed);
}

/* An ok call: its status, as a message when not. */
#define ck_assert_ok(c)                                                                            \
	ck_assert_msg((c)->st == LLM_OK, "%s: %s", llm_status_code((c)->st), (c)->err)

#define ck_assert_status(c, want)                                                                  \
	ck_assert_msg((c)->st == (want), "%s (want %s): %s", llm_status_code((c)->st),             \
	              llm_status_code(want), (c)->err)

/* Call i is named `name` with arguments equal to JSON `args`, and has id `id` (NULL: any). */
static void assert_call(const llm_response *r, size_t i, const char *id, const char *name,
                        const char *args)
{
	const llm_tool_call *tc;

	ck_assert_msg(i < r->ncalls, "no call %zu (%zu calls)", i, r->ncalls);
	tc = &r->calls[i];
	ck_assert_ptr_nonnull(tc->id);
	ck_assert_msg(*tc->id, "call %zu has an empty id", i);
	if (id)
		ck_assert_str_eq(tc->id, id);
	ck_assert_str_eq(tc->name, name);
	ck_assert_msg(json_eq(tc->arguments, args), "call %zu arguments '%s', want %s", i,
	              tc->arguments, args);
}

/* ------------------------------------------------------------------ requests */

static const llm_message hello[] = {
    {.role = LLM_ROLE_SYSTEM, .content = "be brief"},
    {.role = LLM_ROLE_USER, .content = "hi"},
};

static const llm_tool tools[] = {
    {"run_python", "Run Python code and return its output",
     "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\"}},\"required\":"
     "[\"code\"]}"},
    {"run_sql", "Run a SQL query",
     "{\"type\":\"object\",\"properties\":{\"sql\":{\"type\":\"string\"}},\"required\":"
     "[\"sql\"]}"},
};

static llm_request request(const llm_message *m, size_t n, int with_tools, int stream)
{
	llm_request r;

	memset(&r, 0, sizeof(r));
	r.messages = m;
	r.nmessages = n;
	if (with_tools) {
		r.tools = tools;
		r.ntools = sizeof(tools) / sizeof(tools[0]);
	}
	r.stream = stream;
	return r;
}

/*
 * The next turn after a reply with tool calls: hello, the assistant's turn
 * as it came back (text and calls), and one result per call ("1", "2", ...).
 */
struct history {
	llm_message m[8];
	char results[4][24];
	size_t n;
};

static void history_after(struct history *h, const llm_response *r)
{
	ck_assert_uint_le(r->ncalls, 4);
	memset(h, 0, sizeof(*h));
	h->m[h->n++] = hello[0];
	h->m[h->n++] = hello[1];
	h->m[h->n++] = (llm_message){
	    .role = LLM_ROLE_ASSISTANT, .content = r->text, .calls = r->calls, .ncalls = r->ncalls};
	for (size_t i = 0; i < r->ncalls; i++) {
		snprintf(h->results[i], sizeof(h->results[i]), "%zu", i + 1);
		h->m[h->n++] = (llm_message){.role = LLM_ROLE_TOOL,
		                             .content = h->results[i],
		                             .tool_call_id = r->calls[i].id};
	}
}

/* ------------------------------------------------------------------ OpenAI: answers */

START_TEST(test_an_openai_answer_brings_its_text_usage_and_model_streamed_or_not)
{
	for (int stream = 0; stream <= 1; stream++) {
		llm_request req = request(hello, 2, 0, stream);
		const cJSON *rec, *b, *msgs;
		struct call c;
		cJSON *reqs;

		load("openai_text");
		run("openai", &req, &c);
		ck_assert_ok(&c);
		ck_assert_str_eq(c.r.text, "Hello there");
		if (stream) {
			ck_assert_str_eq(streamed(&c), "Hello there");
			ck_assert_int_gt(c.ndeltas, 1); /* it came in pieces */
		} else {
			ck_assert_int_eq(c.ndeltas, 0);
		}
		ck_assert_int_eq(c.r.prompt_tokens, 11);
		ck_assert_int_eq(c.r.completion_tokens, 5);
		ck_assert_int_eq(c.r.stop, LLM_STOP_END);
		ck_assert_uint_eq(c.r.ncalls, 0);
		ck_assert_int_eq(c.r.attempts, 1);
		ck_assert_str_eq(c.r.model, OPENAI_MODEL);
		call_release(&c);

		reqs = recorded(1);
		rec = at(reqs, 0);
		ck_assert_str_eq(mk_json_str(rec, "method"), "POST");
		ck_assert_str_eq(mk_json_str(rec, "path"), "/v1/chat/completions");
		ck_assert_str_eq(header(rec, "authorization"), "Bearer " API_KEY);
		ck_assert_str_eq(header(rec, "content-type"), "application/json");
		ck_assert_ptr_null(header(rec, "x-api-key"));
		b = body(rec);
		ck_assert_str_eq(mk_json_str(b, "model"), OPENAI_MODEL);
		msgs = get(b, "messages");
		ck_assert_int_eq(cJSON_GetArraySize(msgs), 2);
		ck_assert_str_eq(mk_json_str(at(msgs, 0), "role"), "system");
		ck_assert_str_eq(mk_json_str(at(msgs, 0), "content"), "be brief");
		ck_assert_str_eq(mk_json_str(at(msgs, 1), "role"), "user");
		ck_assert_str_eq(mk_json_str(at(msgs, 1), "content"), "hi");
		ck_assert_ptr_null(get(b, "tools"));
		if (stream) {
			ck_assert(cJSON_IsTrue(get(b, "stream")));
			ck_assert(cJSON_IsTrue(get(get(b, "stream_options"), "include_usage")));
			ck_assert_str_eq(header(rec, "accept"), "text/event-stream");
		} else {
			ck_assert(!cJSON_IsTrue(get(b, "stream")));
			ck_assert_ptr_null(get(b, "stream_options"));
		}
		cJSON_Delete(reqs);
	}
}
END_TEST

/* Check the second request of a tool round trip: the calls echoed, one tool message each. */
static void assert_openai_tool_turn(const cJSON *b, const char *const *ids,
                                    const char *const *names, const char *const *args, int n)
{
	const cJSON *msgs = get(b, "messages"), *asst, *calls;

	ck_assert_int_eq(cJSON_GetArraySize(msgs), 3 + n);
	asst = at(msgs, 2);
	ck_assert_str_eq(mk_json_str(asst, "role"), "assistant");
	ck_assert_msg(cJSON_IsNull(get(asst, "content")),
	              "an assistant turn with only calls has content null");
	calls = get(asst, "tool_calls");
	ck_assert_int_eq(cJSON_GetArraySize(calls), n);
	for (int i = 0; i < n; i++) {
		const cJSON *tc = at(calls, i), *fn = get(tc, "function"),
		            *a = get(fn, "arguments");
		const cJSON *tm = at(msgs, 3 + i);
		char want[8];

		ck_assert_str_eq(mk_json_str(tc, "id"), ids[i]);
		ck_assert_str_eq(mk_json_str(tc, "type"), "function");
		ck_assert_str_eq(mk_json_str(fn, "name"), names[i]);
		/* arguments is a JSON *string* (contract §1.3, §7.1) */
		ck_assert_msg(cJSON_IsString(a),
		              "tool_calls[%d].function.arguments is not a string", i);
		ck_assert_msg(json_eq(a->valuestring, args[i]), "arguments '%s', want %s",
		              a->valuestring, args[i]);
		snprintf(want, sizeof(want), "%d", i + 1);
		ck_assert_str_eq(mk_json_str(tm, "role"), "tool");
		ck_assert_str_eq(mk_json_str(tm, "tool_call_id"), ids[i]);
		ck_assert_str_eq(mk_json_str(tm, "content"), want);
	}
}

START_TEST(test_an_openai_tool_call_arrives_and_its_result_goes_back)
{
	static const char *const ids[] = {"call_1"}, *const names[] = {"run_python"},
	                         *const args[] = {"{\"code\":\"print(1)\"}"};

	for (int stream = 0; stream <= 1; stream++) {
		llm_request req = request(hello, 2, 1, stream), next;
		const cJSON *b, *t0;
		struct history h;
		struct call c, c2;
		cJSON *reqs;

		load("openai_tool_call");
		run("openai", &req, &c);
		ck_assert_ok(&c);
		ck_assert_uint_eq(c.r.ncalls, 1);
		assert_call(&c.r, 0, "call_1", "run_python", args[0]);
		ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
		ck_assert_str_eq(c.r.text, "");
		ck_assert_int_eq(c.r.prompt_tokens, 11);
		ck_assert_int_eq(c.r.completion_tokens, 5);

		history_after(&h, &c.r);
		next = request(h.m, h.n, 1, stream);
		run("openai", &next, &c2);
		ck_assert_ok(&c2);
		ck_assert_str_eq(c2.r.text, "It printed 1.");
		ck_assert_int_eq(c2.r.stop, LLM_STOP_END);
		ck_assert_uint_eq(c2.r.ncalls, 0);
		call_release(&c2);
		call_release(&c);

		reqs = recorded(2);
		b = body(at(reqs, 0));
		ck_assert_int_eq(cJSON_GetArraySize(get(b, "tools")), 2);
		t0 = at(get(b, "tools"), 0);
		ck_assert_str_eq(mk_json_str(t0, "type"), "function");
		ck_assert_str_eq(mk_json_str(get(t0, "function"), "name"), "run_python");
		ck_assert(value_eq(get(get(t0, "function"), "parameters"), tools[0].parameters));
		assert_openai_tool_turn(body(at(reqs, 1)), ids, names, args, 1);
		ck_assert_str_eq(header(at(reqs, 1), "authorization"), "Bearer " API_KEY);
		cJSON_Delete(reqs);
	}
}
END_TEST

START_TEST(test_openai_parallel_tool_calls_arrive_apart_and_both_results_go_back)
{
	static const char *const ids[] = {"call_1", "call_2"},
	                         *const names[] = {"run_python", "run_sql"},
	                         *const args[] = {"{\"code\":\"print(1)\"}",
	                                          "{\"sql\":\"select 1\"}"};

	for (int stream = 0; stream <= 1; stream++) {
		llm_request req = request(hello, 2, 1, stream), next;
		struct history h;
		struct call c, c2;
		cJSON *reqs;

		load("openai_parallel_tool_calls");
		run("openai", &req, &c);
		ck_assert_ok(&c);
		ck_assert_uint_eq(c.r.ncalls, 2);
		for (int i = 0; i < 2; i++)
			assert_call(&c.r, (size_t)i, ids[i], names[i], args[i]);
		ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);

		history_after(&h, &c.r);
		next = request(h.m, h.n, 1, stream);
		run("openai", &next, &c2);
		ck_assert_ok(&c2);
		ck_assert_str_eq(c2.r.text, "Both ran.");
		call_release(&c2);
		call_release(&c);

		reqs = recorded(2);
		assert_openai_tool_turn(body(at(reqs, 1)), ids, names, args, 2);
		cJSON_Delete(reqs);
	}
}
END_TEST

START_TEST(test_openai_empty_arguments_are_an_empty_object_and_a_cut_reply_says_length)
{
	for (int stream = 0; stream <= 1; stream++) {
		llm_request req = request(hello, 2, 1, stream);
		struct call c;

		load("openai_tool_call_empty_args");
		run("openai", &req, &c);
		ck_assert_ok(&c);
		ck_assert_uint_eq(c.r.ncalls, 1);
		ck_assert_str_eq(c.r.calls[0].name, "list_tables");
		ck_assert_str_eq(c.r.calls[0].arguments, "{}");
		ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
		call_release(&c);

		/* Cut by the token limit: the call is there with its arguments as they came. */
		load("openai_length");
		run("openai", &req, &c);
		ck_assert_ok(&c);
		ck_assert_int_eq(c.r.stop, LLM_STOP_LENGTH);
		ck_assert_uint_eq(c.r.ncalls, 1);
		ck_assert_str_eq(c.r.calls[0].name, "run_python");
		ck_assert_str_eq(c.r.calls[0].arguments, "{\"code\":\"print(\\\"a very long");
		call_release(&c);
	}
}
END_TEST

/* ------------------------------------------------------------------ OpenAI: streams */

/* The text a stream fixture carries: its openai_text, or its SSE's delta contents joined. */
static char *fixture_text(const cJSON *fx)
{
	const cJSON *step = at(get(fx, "steps"), 0), *s;
	const char *text = mk_json_str(step, "openai_text");
	mk_buf b;

	if (text)
		return strdup(text);
	mk_buf_init(&b, 0);
	cJSON_ArrayForEach(s, get(step, "sse"))
	{
		const char *line = s->valuestring;

		while (line && *line) {
			size_t n = strcspn(line, "\r\n");

			if (n > 6 && strncmp(line, "data: ", 6) == 0 &&
			    strncmp(line + 6, "[DONE]", 6) != 0) {
				char why[128];
				cJSON *ev = mk_json_parse(line + 6, n - 6, 0, why, sizeof(why));
				const char *piece = mk_json_str(
				    get(cJSON_GetArrayItem(get(ev, "choices"), 0), "delta"),
				    "content");

				ck_assert_msg(ev != NULL, "fixture event: %s", why);
				if (piece)
					mk_buf_puts(&b, piece);
				cJSON_Delete(ev);
			}
			line += n;
			line += strspn(line, "\r\n");
		}
	}
	return b.data ? mk_buf_steal(&b) : strdup("");
}

START_TEST(test_every_sliced_stream_gives_the_same_text_as_the_whole_reply)
{
	static const struct {
		const char *name;
		int usage; /* the stream brings a usage chunk */
	} cases[] = {
	    {"openai_stream_split_1", 1},
	    {"openai_stream_split_7", 1},
	    {"openai_stream_split_fib", 1},
	    {"openai_stream_utf8_split", 0},
	    {"openai_stream_crlf", 0},
	    {"openai_stream_keepalive", 0},
	    {"openai_stream_usage_choices_null", 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		llm_request sreq = request(hello, 2, 0, 1), wreq = request(hello, 2, 0, 0);
		cJSON *fx = fixture(cases[i].name), *sc, *steps, *step;
		char *want = fixture_text(fx), *json;
		struct call c, w;

		ck_assert_msg(*want, "%s: no text in the fixture", cases[i].name);
		run("openai", &sreq, &c);
		ck_assert_msg(c.st == LLM_OK, "%s: %s: %s", cases[i].name, llm_status_code(c.st),
		              c.err);
		ck_assert_msg(strcmp(c.r.text, want) == 0, "%s: text '%s', want '%s'",
		              cases[i].name, c.r.text, want);
		ck_assert_msg(strcmp(streamed(&c), want) == 0, "%s: streamed '%s', want '%s'",
		              cases[i].name, streamed(&c), want);
		ck_assert_int_eq(c.r.stop, LLM_STOP_END);
		ck_assert_int_eq(c.r.attempts, 1);
		if (cases[i].usage) {
			ck_assert_int_eq(c.r.prompt_tokens, 11);
			ck_assert_int_eq(c.r.completion_tokens, 5);
		}

		/* The same text as a whole reply. */
		sc = cJSON_CreateObject();
		cJSON_AddStringToObject(sc, "name", "whole");
		steps = cJSON_AddArrayToObject(sc, "steps");
		step = cJSON_CreateObject();
		cJSON_AddStringToObject(step, "openai_text", want);
		cJSON_AddItemToArray(steps, step);
		json = mk_json_print(sc);
		scenario(json);
		run("openai", &wreq, &w);
		ck_assert_ok(&w);
		ck_assert_msg(strcmp(w.r.text, streamed(&c)) == 0,
		              "%s: whole reply '%s', streamed '%s'", cases[i].name, w.r.text,
		              streamed(&c));
		call_release(&w);
		call_release(&c);
		free(json);
		cJSON_Delete(sc);
		free(want);
		cJSON_Delete(fx);
	}
}
END_TEST

START_TEST(test_each_quirk_of_streamed_tool_deltas_gives_whole_calls)
{
	static const char *const py = "{\"code\":\"print(1)\"}", *const sql =
	                                                             "{\"sql\":\"select 1\"}";
	static const struct {
		const char *name;
		int ncalls;
		const char *id[2]; /* NULL: made up by the client */
		const char *fn[2];
		const char *args[2];
	} cases[] = {
	    {"openai_stream_tool_no_index", 1, {"call_1"}, {"run_python"}, {NULL}},
	    {"openai_stream_tool_index_zero",
	     2,
	     {"call_1", "call_2"},
	     {"run_python", "run_sql"},
	     {NULL, NULL}},
	    {"openai_stream_tool_no_id", 1, {NULL}, {"run_python"}, {NULL}},
	    {"openai_stream_tool_whole", 1, {"call_1"}, {"run_python"}, {NULL}},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		llm_request req = request(hello, 2, 1, 1);
		struct call c;

		load(cases[i].name);
		run("openai", &req, &c);
		ck_assert_msg(c.st == LLM_OK, "%s: %s: %s", cases[i].name, llm_status_code(c.st),
		              c.err);
		ck_assert_msg(c.r.ncalls == (size_t)cases[i].ncalls, "%s: %zu calls, want %d",
		              cases[i].name, c.r.ncalls, cases[i].ncalls);
		for (int k = 0; k < cases[i].ncalls; k++)
			assert_call(&c.r, (size_t)k, cases[i].id[k], cases[i].fn[k],
			            strcmp(cases[i].fn[k], "run_sql") == 0 ? sql : py);
		ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
		ck_assert_str_eq(c.r.text, "");
		ck_assert_int_eq(c.ndeltas, 0);
		call_release(&c);
	}
}
END_TEST

START_TEST(test_a_stream_without_done_that_finished_is_whole)
{
	llm_request req = request(hello, 2, 0, 1);
	struct call c;

	load("openai_stream_no_done");
	run("openai", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello there");
	ck_assert_str_eq(streamed(&c), "Hello there");
	ck_assert_int_eq(c.r.stop, LLM_STOP_END);
	call_release(&c);
}
END_TEST

START_TEST(test_an_error_in_the_middle_of_a_stream_fails_the_call_keeping_what_was_shown)
{
	llm_request req = request(hello, 2, 0, 1);
	struct call c;
	cJSON *reqs;

	load("openai_stream_midstream_error");
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_UNAVAILABLE);
	ck_assert_str_eq(streamed(&c), "Hello");
	ck_assert_str_eq(c.r.text, "Hello");
	ck_assert_uint_eq(c.r.ncalls, 0);
	ck_assert_int_eq(c.r.attempts, 1); /* text was shown: never sent again */
	ck_assert_msg(strstr(c.err, "The server had an error"), "err: %s", c.err);
	call_release(&c);
	reqs = recorded(1);
	cJSON_Delete(reqs);
}
END_TEST

START_TEST(test_a_stream_cut_mid_chunk_fails_the_call)
{
	llm_request req = request(hello, 2, 0, 1);
	struct call c;
	cJSON *reqs;

	load("openai_stream_cut");
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_UNAVAILABLE);
	ck_assert_str_eq(streamed(&c), "Hello");
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_int_eq(c.r.prompt_tokens, 0);
	ck_assert_msg(strstr(c.err, "in the middle"), "err: %s", c.err);
	call_release(&c);
	reqs = recorded(1);
	cJSON_Delete(reqs);
}
END_TEST

/* ------------------------------------------------------------------ OpenAI: failures */

START_TEST(test_a_rate_limit_is_waited_out_as_retry_after_ms_says)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;
	cJSON *fx, *reqs;
	char *json;

	/* The fixture, with a Retry-After far longer than its retry-after-ms: 200. */
	fx = fixture("openai_429_rate_limit_then_ok");
	cJSON_ReplaceItemInObjectCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(
	        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(fx, "steps"), 0), "headers"),
	    "retry-after", cJSON_CreateString("30"));
	json = mk_json_print(fx);
	scenario(json);
	run("openai", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello after the rate limit");
	ck_assert_int_eq(c.r.attempts, 2);
	/* retry-after-ms: 200 wins over retry-after: 30 */
	ck_assert_msg(c.ms >= 190 && c.ms < 10000, "took %lld ms", (long long)c.ms);
	call_release(&c);
	reqs = recorded(2);
	cJSON_Delete(reqs);
	free(json);
	cJSON_Delete(fx);
}
END_TEST

START_TEST(test_an_exhausted_quota_is_not_retried)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;
	cJSON *reqs;

	load("openai_429_insufficient_quota");
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_QUOTA);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_msg(strstr(c.err, "quota"), "err: %s", c.err);
	call_release(&c);
	reqs = recorded(1);
	cJSON_Delete(reqs);
}
END_TEST

START_TEST(test_a_server_error_is_retried)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;

	load("openai_500_then_ok");
	run("openai", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello after the server error");
	ck_assert_int_eq(c.r.attempts, 2);
	call_release(&c);
}
END_TEST

START_TEST(test_a_gateway_html_page_is_retried_and_then_named_in_a_short_message)
{
	llm_request req = request(hello, 2, 0, 0);
	cJSON *fx, *sc, *steps, *reqs;
	struct call c;
	char *json;

	/* As the fixture has it: one 503 page, then an answer. */
	fx = fixture("openai_503_html");
	run("openai", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello after the gateway error");
	ck_assert_int_eq(c.r.attempts, 2);
	call_release(&c);

	/* The page every time: unavailable after the retries, quoting the title only. */
	sc = cJSON_CreateObject();
	cJSON_AddStringToObject(sc, "name", "openai_503_html_always");
	cJSON_AddTrueToObject(sc, "repeat_last");
	steps = cJSON_AddArrayToObject(sc, "steps");
	cJSON_AddItemToArray(steps, cJSON_Duplicate(at(get(fx, "steps"), 0), 1));
	json = mk_json_print(sc);
	scenario(json);
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_UNAVAILABLE);
	ck_assert_int_eq(c.r.attempts, MAX_RETRIES + 1);
	ck_assert_msg(strstr(c.err, "503") && strstr(c.err, "Service Temporarily Unavailable"),
	              "err: %s", c.err);
	ck_assert_msg(!strpbrk(c.err, "<>") && !strstr(c.err, "nginx"), "HTML in err: %s", c.err);
	ck_assert_msg(strlen(c.err) < 200, "a long message: %s", c.err);
	call_release(&c);
	reqs = recorded(MAX_RETRIES + 1);
	cJSON_Delete(reqs);
	free(json);
	cJSON_Delete(sc);
	cJSON_Delete(fx);
}
END_TEST

START_TEST(test_a_gemini_error_array_gives_its_message)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;

	load("openai_gemini_array_error");
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_BAD_REQUEST);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_msg(strstr(c.err, "Invalid JSON payload received. Unknown name \"store\""),
	              "err: %s", c.err);
	call_release(&c);
}
END_TEST

START_TEST(test_no_first_byte_within_the_timeout_is_a_timeout)
{
	llm_provider_cfg pc = cfg("openai");
	llm_request req = request(hello, 2, 0, 0);
	char err[512], base[96], *json;
	mt_double slow;
	struct call c;
	cJSON *fx;
	int rc;

	/*
	 * A double of its own, killed at the end: the fixture's pause, made a
	 * minute long, would hold up the shared double's orderly stop.
	 */
	rc = mt_double_start(&slow, "llm-double-slow", API_KEY, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	rc = mt_double_fixture(&slow, "openai_slow_first_byte", &fx, err, sizeof(err));
	ck_assert_msg(rc == 0, "%s", err);
	cJSON_ReplaceItemInObjectCaseSensitive(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(fx, "steps"), 0),
	    "first_byte_delay_ms", cJSON_CreateNumber(60000));
	json = mk_json_print(fx);
	ck_assert_msg(mt_double_scenario(&slow, json, err, sizeof(err)) == 0, "%s", err);
	snprintf(base, sizeof(base), "%s/v1", slow.base);
	pc.base_url = base;
	pc.first_byte_timeout_ms = 500;
	run_with(&pc, &req, &c);
	ck_assert_status(&c, LLM_E_TIMEOUT);
	ck_assert_int_eq(c.r.attempts, 1);
	/* Soon after the timeout, not at the answer a minute later. */
	ck_assert_msg(c.ms >= 450 && c.ms < 10000, "took %lld ms", (long long)c.ms);
	call_release(&c);
	free(json);
	cJSON_Delete(fx);
	mt_proc_stop(&slow.p, SIGKILL, 30000);
}
END_TEST

START_TEST(test_a_truncated_json_reply_is_a_protocol_error)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;

	load("openai_malformed_json_200");
	run("openai", &req, &c);
	ck_assert_status(&c, LLM_E_PROTOCOL);
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);
}
END_TEST

/* ------------------------------------------------------------------ Anthropic */

START_TEST(test_an_anthropic_answer_brings_its_text_and_usage_streamed_or_not)
{
	for (int stream = 0; stream <= 1; stream++) {
		llm_request req = request(hello, 2, 0, stream);
		const cJSON *rec, *b, *msgs, *m;
		struct call c;
		cJSON *reqs;

		req.max_tokens = stream ? 256 : 0; /* 0: the default, which must still be sent */
		load("anthropic_text");
		run("anthropic", &req, &c);
		ck_assert_ok(&c);
		ck_assert_str_eq(c.r.text, "Hello there");
		ck_assert_str_eq(streamed(&c), stream ? "Hello there" : "");
		ck_assert_int_eq(c.r.prompt_tokens, 11);
		ck_assert_int_eq(c.r.completion_tokens, 5);
		ck_assert_int_eq(c.r.stop, LLM_STOP_END);
		ck_assert_int_eq(c.r.attempts, 1);
		ck_assert_str_eq(c.r.model, ANTHROPIC_MODEL);
		call_release(&c);

		reqs = recorded(1);
		rec = at(reqs, 0);
		ck_assert_str_eq(mk_json_str(rec, "path"), "/v1/messages");
		ck_assert_str_eq(header(rec, "x-api-key"), API_KEY);
		ck_assert_str_eq(header(rec, "anthropic-version"), "2023-06-01");
		ck_assert_ptr_null(header(rec, "authorization"));
		b = body(rec);
		ck_assert_str_eq(mk_json_str(b, "model"), ANTHROPIC_MODEL);
		ck_assert_msg(cJSON_IsNumber(get(b, "max_tokens")), "no max_tokens");
		if (stream)
			ck_assert_int_eq(get(b, "max_tokens")->valueint, 256);
		else
			ck_assert_int_gt(get(b, "max_tokens")->valueint, 0);
		ck_assert_str_eq(mk_json_str(b, "system"), "be brief");
		msgs = get(b, "messages");
		ck_assert_int_eq(cJSON_GetArraySize(msgs), 1);
		cJSON_ArrayForEach(m, msgs) ck_assert_str_ne(mk_json_str(m, "role"), "system");
		ck_assert_str_eq(mk_json_str(at(msgs, 0), "role"), "user");
		ck_assert_str_eq(mk_json_str(at(msgs, 0), "content"), "hi");
		if (stream) {
			ck_assert(cJSON_IsTrue(get(b, "stream")));
			ck_assert_str_eq(header(rec, "accept"), "text/event-stream");
		}
		cJSON_Delete(reqs);
	}
}
END_TEST

START_TEST(test_an_anthropic_tool_use_arrives_and_its_result_goes_back_in_a_user_message)
{
	static const char *const args = "{\"code\":\"print(1)\"}";
	llm_request req = request(hello, 2, 1, 0), next;
	const cJSON *b, *t0, *msgs, *asst, *blocks, *use, *res;
	struct history h;
	struct call c, c2;
	cJSON *reqs;

	load("anthropic_tool_use");
	run("anthropic", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Let me check.");
	ck_assert_uint_eq(c.r.ncalls, 1);
	assert_call(&c.r, 0, "toolu_1", "run_python", args);
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);

	history_after(&h, &c.r);
	next = request(h.m, h.n, 1, 0);
	run("anthropic", &next, &c2);
	ck_assert_ok(&c2);
	ck_assert_str_eq(c2.r.text, "It printed 1.");
	ck_assert_int_eq(c2.r.stop, LLM_STOP_END);
	call_release(&c2);
	call_release(&c);

	reqs = recorded(2);
	b = body(at(reqs, 0));
	t0 = at(get(b, "tools"), 0);
	ck_assert_str_eq(mk_json_str(t0, "name"), "run_python");
	ck_assert(value_eq(get(t0, "input_schema"), tools[0].parameters));
	ck_assert_ptr_null(get(t0, "type")); /* no {"type":"function"} wrapper */

	b = body(at(reqs, 1));
	ck_assert_str_eq(mk_json_str(b, "system"), "be brief");
	ck_assert_msg(cJSON_IsNumber(get(b, "max_tokens")), "no max_tokens");
	ck_assert_str_eq(header(at(reqs, 1), "anthropic-version"), "2023-06-01");
	ck_assert_str_eq(header(at(reqs, 1), "x-api-key"), API_KEY);
	msgs = get(b, "messages");
	ck_assert_int_eq(cJSON_GetArraySize(msgs), 3);
	ck_assert_str_eq(mk_json_str(at(msgs, 0), "role"), "user");
	asst = at(msgs, 1);
	ck_assert_str_eq(mk_json_str(asst, "role"), "assistant");
	blocks = get(asst, "content");
	ck_assert_int_eq(cJSON_GetArraySize(blocks), 2);
	ck_assert_str_eq(mk_json_str(at(blocks, 0), "type"), "text");
	ck_assert_str_eq(mk_json_str(at(blocks, 0), "text"), "Let me check.");
	use = at(blocks, 1);
	ck_assert_str_eq(mk_json_str(use, "type"), "tool_use");
	ck_assert_str_eq(mk_json_str(use, "id"), "toolu_1");
	ck_assert_str_eq(mk_json_str(use, "name"), "run_python");
	/* input is a JSON *object* (contract §3.2, §7.1) */
	ck_assert_msg(cJSON_IsObject(get(use, "input")), "tool_use.input is not an object");
	ck_assert(value_eq(get(use, "input"), args));
	ck_assert_str_eq(mk_json_str(at(msgs, 2), "role"), "user");
	res = at(get(at(msgs, 2), "content"), 0);
	ck_assert_str_eq(mk_json_str(res, "type"), "tool_result");
	ck_assert_str_eq(mk_json_str(res, "tool_use_id"), "toolu_1");
	ck_assert_str_eq(mk_json_str(res, "content"), "1");
	cJSON_Delete(reqs);
}
END_TEST

START_TEST(test_a_streamed_anthropic_tool_use_gives_its_whole_input)
{
	llm_request req = request(hello, 2, 1, 1);
	struct call c;

	load("anthropic_stream_tool_use");
	run("anthropic", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Let me check.");
	ck_assert_str_eq(streamed(&c), "Let me check.");
	ck_assert_uint_eq(c.r.ncalls, 1);
	assert_call(&c.r, 0, "toolu_1", "run_python", "{\"code\":\"print(1)\"}");
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	ck_assert_int_eq(c.r.prompt_tokens, 11);
	ck_assert_int_eq(c.r.completion_tokens, 5);
	call_release(&c);
}
END_TEST

START_TEST(test_an_anthropic_error_event_after_partial_output_fails_the_call)
{
	llm_request req = request(hello, 2, 0, 1);
	struct call c;

	load("anthropic_stream_error_after_partial");
	run("anthropic", &req, &c);
	ck_assert_status(&c, LLM_E_UNAVAILABLE);
	ck_assert_str_eq(streamed(&c), "Hello");
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_msg(strstr(c.err, "Overloaded"), "err: %s", c.err);
	call_release(&c);
}
END_TEST

START_TEST(test_an_anthropic_overload_is_retried)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;

	load("anthropic_529_then_ok");
	run("anthropic", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello after the overload");
	ck_assert_int_eq(c.r.attempts, 2);
	call_release(&c);
}
END_TEST

START_TEST(test_an_anthropic_rate_limit_is_waited_out_as_retry_after_says)
{
	llm_request req = request(hello, 2, 0, 0);
	struct call c;

	load("anthropic_429_retry_after_then_ok");
	run("anthropic", &req, &c);
	ck_assert_ok(&c);
	ck_assert_str_eq(c.r.text, "Hello after the rate limit");
	ck_assert_int_eq(c.r.attempts, 2);
	ck_assert_msg(c.ms >= 950, "retry-after: 1, yet it took %lld ms", (long long)c.ms);
	call_release(&c);
}
END_TEST

/* ------------------------------------------------------------------ keys */

START_TEST(test_a_wrong_key_is_an_auth_failure_that_never_shows_the_key)
{
	static const char *const kinds[] = {"openai", "anthropic"};

	for (size_t i = 0; i < 2; i++) {
		for (int nokey = 0; nokey <= 1; nokey++) {
			llm_provider_cfg pc = cfg(kinds[i]);
			llm_request req = request(hello, 2, 0, 0);
			struct call c;
			cJSON *reqs;
			const char *sent;

			pc.api_key = nokey ? NULL : WRONG_KEY;
			load(i == 0 ? "openai_text" : "anthropic_text");
			run_with(&pc, &req, &c);
			ck_assert_msg(c.st == LLM_E_AUTH, "%s %s: %s (want %s): %s", kinds[i],
			              nokey ? "no key" : "wrong key", llm_status_code(c.st),
			              llm_status_code(LLM_E_AUTH), c.err);
			ck_assert_int_eq(c.r.attempts, 1);
			ck_assert_msg(strstr(c.err, "API key"), "err: %s", c.err);
			/* Neither the key nor the provider's masked form of it ("sk-wr...9876"). */
			ck_assert_msg(!strstr(c.err, WRONG_KEY) && !strstr(c.err, "9876") &&
			                  !strstr(c.err, "sk-wr"),
			              "the key shows: %s", c.err);
			call_release(&c);

			reqs = recorded(1);
			sent = header(at(reqs, 0), i == 0 ? "authorization" : "x-api-key");
			if (nokey)
				ck_assert_ptr_null(sent);
			else
				ck_assert_str_eq(sent, i == 0 ? "Bearer " WRONG_KEY : WRONG_KEY);
			cJSON_Delete(reqs);
		}
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llm_client_double");
	TCase *tc = tcase_create("clients");

	/* One double for all: each test loads its scenario and reads only its own requests. */
	tcase_add_unchecked_fixture(tc, double_up, double_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_no_first_byte_within_the_timeout_is_a_timeout);
	tcase_add_test(tc, test_an_openai_answer_brings_its_text_usage_and_model_streamed_or_not);
	tcase_add_test(tc, test_an_openai_tool_call_arrives_and_its_result_goes_back);
	tcase_add_test(tc, test_openai_parallel_tool_calls_arrive_apart_and_both_results_go_back);
	tcase_add_test(tc,
	               test_openai_empty_arguments_are_an_empty_object_and_a_cut_reply_says_length);
	tcase_add_test(tc, test_every_sliced_stream_gives_the_same_text_as_the_whole_reply);
	tcase_add_test(tc, test_each_quirk_of_streamed_tool_deltas_gives_whole_calls);
	tcase_add_test(tc, test_a_stream_without_done_that_finished_is_whole);
	tcase_add_test(
	    tc, test_an_error_in_the_middle_of_a_stream_fails_the_call_keeping_what_was_shown);
	tcase_add_test(tc, test_a_stream_cut_mid_chunk_fails_the_call);
	tcase_add_test(tc, test_a_rate_limit_is_waited_out_as_retry_after_ms_says);
	tcase_add_test(tc, test_an_exhausted_quota_is_not_retried);
	tcase_add_test(tc, test_a_server_error_is_retried);
	tcase_add_test(tc, test_a_gateway_html_page_is_retried_and_then_named_in_a_short_message);
	tcase_add_test(tc, test_a_gemini_error_array_gives_its_message);
	tcase_add_test(tc, test_a_truncated_json_reply_is_a_protocol_error);
	tcase_add_test(tc, test_an_anthropic_answer_brings_its_text_and_usage_streamed_or_not);
	tcase_add_test(
	    tc, test_an_anthropic_tool_use_arrives_and_its_result_goes_back_in_a_user_message);
	tcase_add_test(tc, test_a_streamed_anthropic_tool_use_gives_its_whole_input);
	tcase_add_test(tc, test_an_anthropic_error_event_after_partial_output_fails_the_call);
	tcase_add_test(tc, test_an_anthropic_overload_is_retried);
	tcase_add_test(tc, test_an_anthropic_rate_limit_is_waited_out_as_retry_after_says);
	tcase_add_test(tc, test_a_wrong_key_is_an_auth_failure_that_never_shows_the_key);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
