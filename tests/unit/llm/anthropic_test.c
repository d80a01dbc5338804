/*
 * anthropic_test.c - the Anthropic Messages client (llm_anthropic.c over
 * llm_provider.c) against a scripted local server (llm_script.h).
 *
 * Each test scripts the replies, makes one call, and checks what came
 * back and what was sent: the exact request JSON, the path and headers.
 * Streams carry event: lines, pings and input_json_delta fragments, often
 * written one byte at a time. Every call also checks that the API key
 * never shows up in the error message.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_provider.h"
#include "llm_script.h"
#include "mk_buf.h"
#include "mk_time.h"
#include "mt_check.h"

#define KEY "sk-ant-test-SECRET123"

/* ---- helpers ------------------------------------------------------------ */

static llm_provider_cfg cfg(void)
{
	llm_provider_cfg c;

	memset(&c, 0, sizeof(c));
	c.kind = "anthropic";
	c.base_url = ls_base("");
	c.api_key = KEY;
	c.model = "claude-test";
	/* Far above what a reply here takes: no test here is about a timeout. */
	c.connect_timeout_ms = 10000;
	c.first_byte_timeout_ms = 30000;
	c.idle_timeout_ms = 30000;
	c.max_retries = 2;
	c.backoff_base_ms = 10;
	c.max_response = 1 << 20;
	return c;
}

struct call {
	llm_response r;
	llm_status st;
	char err[512];
	mk_buf streamed;
	int ntext;
	int64_t ms;
};

static int on_text(void *ud, const char *delta, size_t len)
{
	struct call *c = ud;

	ck_assert_uint_gt(len, 0);
	mk_buf_append(&c->streamed, delta, len);
	c->ntext++;
	return 0;
}

static llm_status run_with(const llm_provider_cfg *pc, const llm_request *req, struct call *c)
{
	char err[256] = "";
	llm_provider *p = llm_provider_new(pc, err, sizeof(err));
	llm_stream_cb cb = {.on_text = on_text, .ud = c};
	int64_t t0 = mk_mono_ms();

	ck_assert_msg(p != NULL, "llm_provider_new: %s", err);
	mk_buf_init(&c->streamed, 0);
	c->st = p->ops->complete(p, req, &cb, &c->r, c->err, sizeof(c->err));
	c->ms = mk_mono_ms() - t0;
	llm_provider_free(p);
	ck_assert_ptr_nonnull(c->r.text);
	ck_assert_msg(strstr(c->err, "SECRET123") == NULL, "key leaked: %s", c->err);
	if (c->st == LLM_OK)
		ck_assert_str_eq(c->err, "");
	else
		ck_assert_str_ne(c->err, "");
	return c->st;
}

static llm_status run(const llm_request *req, struct call *c)
{
	llm_provider_cfg pc = cfg();

	return run_with(&pc, req, c);
}

static void call_release(struct call *c)
{
	llm_response_release(&c->r);
	mk_buf_release(&c->streamed);
}

static const char *streamed(struct call *c)
{
	mk_buf_puts(&c->streamed, "");
	return c->streamed.data;
}

static const llm_message hello[] = {
    {.role = LLM_ROLE_SYSTEM, .content = "be brief"},
    {.role = LLM_ROLE_USER, .content = "hi"},
};

static llm_request simple(int stream)
{
	llm_request r;

	memset(&r, 0, sizeof(r));
	r.messages = hello;
	r.nmessages = 2;
	r.stream = stream;
	return r;
}

static void reply1(int status, const char *headers, const char *body)
{
	ls_reply r = {.status = status, .headers = headers, .body = body};

	ls_script(&r, 1);
}

static void stream1(const char *body, size_t chunk)
{
	ls_reply r = {.status = 200, .body = body, .chunk = chunk};

	ls_script(&r, 1);
}

#define TEXT_REPLY                                                                                 \
	"{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"                 \
	"\"claude-test-2025\",\"content\":[{\"type\":\"text\",\"text\":\"Hello!\"}],"              \
	"\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"      \
	"\"output_tokens\":3,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0}}"

#define EV(name, json) "event: " name "\ndata: " json "\n\n"
#define MSG_START(usage)                                                                           \
	EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":"  \
	                    "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"         \
	                    "\"claude-test-2025\",\"stop_reason\":null,\"stop_sequence\":null,"    \
	                    "\"usage\":" usage "}}")
#define PING EV("ping", "{\"type\": \"ping\"}")
#define TEXT_START(i)                                                                              \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" #i                \
	                          ",\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
#define TEXT_DELTA(i, t)                                                                           \
	EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" #i                \
	                          ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}")
#define TOOL_START(i, id, name)                                                                    \
	EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":" #i                \
	                          ",\"content_block\":{\"type\":\"tool_use\",\"id\":\"" id         \
	                          "\",\"name\":\"" name "\",\"input\":{}}}")
#define JSON_DELTA(i, j)                                                                           \
	EV("content_block_delta",                                                                  \
	   "{\"type\":\"content_block_delta\",\"index\":" #i                                       \
	   ",\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"" j "\"}}")
#define BLOCK_STOP(i) EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" #i "}")
#define MSG_DELTA(reason, usage)                                                                   \
	EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" reason     \
	                    "\",\"stop_sequence\":null},\"usage\":" usage "}")
#define MSG_STOP EV("message_stop", "{\"type\":\"message_stop\"}")

/* ---- requests ------------------------------------------------------------ */

START_TEST(a_text_reply_comes_back_with_usage_and_the_system_prompt_goes_on_top)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, "request-id: req_1\r\n", TEXT_REPLY);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Hello!");
	ck_assert_int_eq(c.r.stop, LLM_STOP_END);
	ck_assert_int_eq(c.r.prompt_tokens, 12);
	ck_assert_int_eq(c.r.completion_tokens, 3);
	ck_assert_str_eq(c.r.model, "claude-test-2025");
	ck_assert_int_eq(c.r.attempts, 1);

	ck_assert_str_eq(ls.uri, "/v1/messages");
	ck_assert_str_eq(ls.body,
	                 "{\"model\":\"claude-test\",\"max_tokens\":4096,\"system\":"
	                 "\"be brief\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
	ck_assert_str_eq(ls_header("x-api-key"), KEY);
	ck_assert_str_eq(ls_header("anthropic-version"), "2023-06-01");
	ck_assert_str_eq(ls_header("content-type"), "application/json");
	ck_assert_ptr_null(ls_header("Authorization"));
	call_release(&c);
}
END_TEST

START_TEST(a_base_url_ending_in_v1_is_not_given_another)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};

	pc.base_url = ls_base("/v1/");
	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_OK);
	ck_assert_str_eq(ls.uri, "/v1/messages");
	call_release(&c);
}
END_TEST

START_TEST(max_tokens_and_temperature_are_sent_as_given)
{
	llm_request req = simple(1);
	struct call c = {0};

	req.max_tokens = 300;
	req.has_temperature = 1;
	req.temperature = 0.25;
	stream1(MSG_START("{\"input_tokens\":1,\"output_tokens\":1}")
	            MSG_DELTA("end_turn", "{\"output_tokens\":1}") MSG_STOP,
	        64);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_ptr_nonnull(strstr(ls.body, "\"max_tokens\":300,"));
	ck_assert_ptr_nonnull(strstr(ls.body, ",\"temperature\":0.25,\"stream\":true}"));
	ck_assert_str_eq(ls_header("Accept"), "text/event-stream");
	call_release(&c);
}
END_TEST

static const llm_tool_call past_calls[] = {
    {.id = "toolu_1", .name = "get_weather", .arguments = "{\"city\": \"Paris\"}"},
    {.id = "toolu_2", .name = "get_time", .arguments = ""},
};

static const llm_message round_trip[] = {
    {.role = LLM_ROLE_SYSTEM, .content = "be brief"},
    {.role = LLM_ROLE_USER, .content = "weather and time?"},
    {.role = LLM_ROLE_ASSISTANT, .content = "Let me check.", .calls = past_calls, .ncalls = 2},
    {.role = LLM_ROLE_TOOL, .tool_call_id = "toolu_1", .content = "18C"},
    {.role = LLM_ROLE_TOOL, .tool_call_id = "toolu_2", .content = "no clock", .is_error = 1},
    {.role = LLM_ROLE_USER, .content = "and tomorrow?"},
    {.role = LLM_ROLE_SYSTEM, .content = "answer in French"},
};

static const llm_tool tools[] = {
    {.name = "get_weather",
     .description = "Weather now",
     .parameters = "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
                   "\"required\":[\"city\"]}"},
    {.name = "get_time", .description = NULL, .parameters = ""},
};

static llm_request tool_request(const char *choice)
{
	llm_request r;

	memset(&r, 0, sizeof(r));
	r.messages = round_trip;
	r.nmessages = 7;
	r.tools = tools;
	r.ntools = 2;
	r.tool_choice = choice;
	return r;
}

START_TEST(a_tool_round_trip_sends_input_objects_and_results_first_in_one_user_turn)
{
	llm_request req = tool_request("auto");
	struct call c = {0};

	reply1(
	    200, NULL,
	    "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\","
	    "\"content\":[{\"type\":\"text\",\"text\":\"Checking again.\"},{\"type\":\"tool_use\","
	    "\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"city\":\"Rome\"}}],"
	    "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":412,"
	    "\"output_tokens\":57,\"cache_creation_input_tokens\":100,"
	    "\"cache_read_input_tokens\":20}}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(
	    ls.body,
	    "{\"model\":\"claude-test\",\"max_tokens\":4096,"
	    "\"system\":\"be brief\\n\\nanswer in French\",\"messages\":["
	    "{\"role\":\"user\",\"content\":\"weather and time?\"},"
	    "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Let me check.\"},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":"
	    "{\"city\":\"Paris\"}},"
	    "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"get_time\",\"input\":{}}]},"
	    "{\"role\":\"user\",\"content\":["
	    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\",\"content\":\"18C\"},"
	    "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"content\":\"no clock\","
	    "\"is_error\":true},"
	    "{\"type\":\"text\",\"text\":\"and tomorrow?\"}]}],"
	    "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather now\",\"input_schema\":"
	    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
	    "\"required\":[\"city\"]}},"
	    "{\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],"
	    "\"tool_choice\":{\"type\":\"auto\"}}");
	ck_assert_str_eq(c.r.text, "Checking again.");
	ck_assert_uint_eq(c.r.ncalls, 1);
	ck_assert_str_eq(c.r.calls[0].id, "toolu_01A");
	ck_assert_str_eq(c.r.calls[0].name, "get_weather");
	ck_assert_str_eq(c.r.calls[0].arguments, "{\"city\":\"Rome\"}");
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	ck_assert_int_eq(c.r.prompt_tokens, 532); /* input + cache creation + cache read */
	ck_assert_int_eq(c.r.completion_tokens, 57);
	call_release(&c);
}
END_TEST

START_TEST(tool_choice_maps_to_the_anthropic_forms)
{
	static const char *const choices[][2] = {
	    {"required", "\"tool_choice\":{\"type\":\"any\"}"},
	    {"none", "\"tool_choice\":{\"type\":\"none\"}"},
	    {"get_time", "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\"}"},
	};
	struct call c = {0};
	llm_request req;

	for (size_t i = 0; i < 3; i++) {
		req = tool_request(choices[i][0]);
		reply1(200, NULL, TEXT_REPLY);
		ck_assert_int_eq(run(&req, &c), LLM_OK);
		ck_assert_msg(strstr(ls.body, choices[i][1]) != NULL, "%s: %s", choices[i][0],
		              ls.body);
		call_release(&c);
	}
	req = tool_request(NULL);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_ptr_null(strstr(ls.body, "tool_choice"));
	call_release(&c);
	req = tool_request("nope");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	call_release(&c);
}
END_TEST

START_TEST(invalid_call_arguments_are_sent_as_an_empty_object)
{
	static const llm_tool_call bad = {.id = "toolu_9", .name = "f", .arguments = "{\"a\": tru"};
	static const llm_tool_call arr = {.id = "toolu_8", .name = "f", .arguments = "[1,2]"};
	const llm_message msgs[] = {
	    {.role = LLM_ROLE_USER, .content = "go"},
	    {.role = LLM_ROLE_ASSISTANT, .calls = &bad, .ncalls = 1},
	    {.role = LLM_ROLE_TOOL, .tool_call_id = "toolu_9", .content = ""},
	    {.role = LLM_ROLE_ASSISTANT, .content = ""}, /* empty: left out */
	    {.role = LLM_ROLE_ASSISTANT, .calls = &arr, .ncalls = 1},
	    {.role = LLM_ROLE_TOOL, .tool_call_id = "toolu_8", .content = "ok"},
	};
	llm_request req = simple(0);
	struct call c = {0};

	req.messages = msgs;
	req.nmessages = 6;
	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(
	    ls.body, "{\"model\":\"claude-test\",\"max_tokens\":4096,\"messages\":["
	             "{\"role\":\"user\",\"content\":\"go\"},"
	             "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	             "\"toolu_9\",\"name\":\"f\",\"input\":{}}]},"
	             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
	             "\"toolu_9\"}]},"
	             "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":"
	             "\"toolu_8\",\"name\":\"f\",\"input\":{}}]},"
	             "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
	             "\"toolu_8\",\"content\":\"ok\"}]}]}");
	call_release(&c);
}
END_TEST

START_TEST(stop_reasons_max_tokens_and_refusal_are_reported)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(
	    200, NULL,
	    "{\"type\":\"message\",\"content\":[{\"type\":\"text\",\"text\":\"Once\"}],"
	    "\"stop_reason\":\"max_tokens\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_LENGTH);
	call_release(&c);

	reply1(200, NULL,
	       "{\"type\":\"message\",\"content\":[],\"stop_reason\":\"refusal\",\"usage\":"
	       "{\"input_tokens\":1,\"output_tokens\":0}}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_FILTERED);
	ck_assert_str_eq(c.r.text, "");
	call_release(&c);
}
END_TEST

/* ---- streaming ------------------------------------------------------------ */

START_TEST(a_streamed_text_reply_with_pings_arrives_whole_one_byte_at_a_time)
{
	static const char body[] =
	    MSG_START("{\"input_tokens\":25,\"output_tokens\":1,\"cache_read_input_tokens\":5}")
	        TEXT_START(0) PING TEXT_DELTA(0, "Gr\xc3\xbc\xc3\x9f")
	            PING TEXT_DELTA(0, "e \xf0\x9f\x98\x80 \xe6\x97\xa5") BLOCK_STOP(0)
	                MSG_DELTA("end_turn", "{\"output_tokens\":15}") MSG_STOP;
	llm_request req = simple(1);
	ls_reply r = {.status = 200, .body = body, .chunk = 1, .gap_ms = 1};
	struct call c = {0};

	ls_script(&r, 1);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Gr\xc3\xbc\xc3\x9f"
	                           "e \xf0\x9f\x98\x80 \xe6\x97\xa5");
	ck_assert_str_eq(streamed(&c), c.r.text);
	ck_assert_int_eq(c.ntext, 2);
	ck_assert_int_eq(c.r.stop, LLM_STOP_END);
	ck_assert_int_eq(c.r.prompt_tokens, 30);
	ck_assert_int_eq(c.r.completion_tokens, 15);
	ck_assert_str_eq(c.r.model, "claude-test-2025");
	call_release(&c);
}
END_TEST

START_TEST(streamed_tool_input_fragments_are_joined_per_block_and_parsed_at_its_stop)
{
	static const char body[] = MSG_START(
	    "{\"input_tokens\":25,\"output_tokens\":1,\"cache_creation_input_tokens\":10}")
	    TEXT_START(0) TEXT_DELTA(0, "Let me check.") BLOCK_STOP(0)
	        TOOL_START(1, "toolu_01A", "get_weather") JSON_DELTA(1, "")
	            PING JSON_DELTA(1, "{\\\"city\\\": \\\"Par")
	                TOOL_START(2, "toolu_01B", "get_time") JSON_DELTA(1, "is\\\"}")
	                    BLOCK_STOP(1) BLOCK_STOP(2)
	                        MSG_DELTA("tool_use", "{\"input_tokens\":26,\"output_tokens\":57}")
	                            MSG_STOP;
	llm_request req = tool_request(NULL);
	struct call c = {0};

	req.stream = 1;
	stream1(body, 5);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Let me check.");
	ck_assert_uint_eq(c.r.ncalls, 2);
	ck_assert_str_eq(c.r.calls[0].id, "toolu_01A");
	ck_assert_str_eq(c.r.calls[0].name, "get_weather");
	ck_assert_str_eq(c.r.calls[0].arguments, "{\"city\":\"Paris\"}");
	ck_assert_str_eq(c.r.calls[1].id, "toolu_01B");
	ck_assert_str_eq(c.r.calls[1].arguments, "{}"); /* no fragments: no arguments */
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	/* message_delta's counts are totals: input 26 replaces 25, cache creation stays. */
	ck_assert_int_eq(c.r.prompt_tokens, 36);
	ck_assert_int_eq(c.r.completion_tokens, 57);
	call_release(&c);
}
END_TEST

START_TEST(an_error_event_after_partial_text_fails_the_call)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1(MSG_START("{\"input_tokens\":1,\"output_tokens\":1}") TEXT_START(0)
	            TEXT_DELTA(0, "Part")
	                EV("error", "{\"type\":\"error\",\"error\":{\"type\":"
	                            "\"overloaded_error\",\"message\":\"Overloaded\"}}"),
	        6);
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_str_eq(c.err,
	                 "the model provider reported an error (overloaded_error): Overloaded");
	ck_assert_str_eq(c.r.text, "Part");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);
}
END_TEST

START_TEST(a_stream_without_message_stop_needs_its_stop_reason)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1(MSG_START("{\"input_tokens\":1,\"output_tokens\":1}") TEXT_START(0)
	            TEXT_DELTA(0, "Done") BLOCK_STOP(0)
	                MSG_DELTA("end_turn", "{\"output_tokens\":2}"),
	        9);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Done");
	call_release(&c);

	stream1(MSG_START("{\"input_tokens\":1,\"output_tokens\":1}") TEXT_START(0)
	            TEXT_DELTA(0, "Do"),
	        9);
	ck_assert_int_eq(run(&req, &c), LLM_E_PROTOCOL);
	ck_assert_str_eq(c.err, "the stream from the model provider ended early");
	ck_assert_str_eq(c.r.text, "Do");
	call_release(&c);
}
END_TEST

/* ---- errors and retries ------------------------------------------------------ */

START_TEST(a_529_overloaded_then_success_is_retried)
{
	ls_reply r[] = {
	    {.status = 529,
	     .body = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
	             "\"Overloaded\"},\"request_id\":\"req_1\"}"},
	    {.status = 200, .body = TEXT_REPLY},
	};
	llm_request req = simple(0);
	struct call c = {0};

	ls_script(r, 2);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.attempts, 2);
	ck_assert_str_eq(c.r.text, "Hello!");
	call_release(&c);

	reply1(529, NULL, r[0].body);
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_str_eq(c.err,
	                 "the model provider is unavailable (HTTP 529): Overloaded; retried 2 "
	                 "times");
	call_release(&c);
}
END_TEST

START_TEST(a_429_with_retry_after_is_retried_after_that_wait)
{
	ls_reply r[] = {
	    {.status = 429,
	     .headers = "retry-after: 1\r\n",
	     .body = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
	             "\"Number of request tokens has exceeded your per-minute rate limit\"}}"},
	    {.status = 200, .body = TEXT_REPLY},
	};
	llm_request req = simple(0);
	struct call c = {0};

	ls_script(r, 2);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.attempts, 2);
	ck_assert_int_ge(c.ms, 950);
	call_release(&c);
}
END_TEST

START_TEST(a_429_for_the_spend_limit_is_not_retried)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(
	    429, "retry-after: 1\r\n",
	    "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"You have "
	    "reached your monthly spend limit.\",\"details\":{\"error_code\":"
	    "\"enforced_spend_limit_reached\"}},\"request_id\":\"req_2\"}");
	ck_assert_int_eq(run(&req, &c), LLM_E_QUOTA);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_int_eq(ls_hits(), 1);
	ck_assert_ptr_nonnull(strstr(c.err, "monthly spend limit"));
	call_release(&c);
}
END_TEST

START_TEST(auth_billing_and_size_errors_map_to_their_statuses)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(401, NULL,
	       "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
	       "\"invalid x-api-key " KEY "\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_AUTH);
	ck_assert_str_eq(c.err, "the model provider rejected the API key (HTTP 401 "
	                        "authentication_error)");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	reply1(402, NULL,
	       "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":"
	       "\"Your credit balance is too low.\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_QUOTA);
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	{
		ls_reply r = {
		    .status = 413, .ctype = "text/plain", .body = "request entity too large\n"};

		ls_script(&r, 1);
	}
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err,
	                 "the model provider rejected the request (HTTP 413): request entity "
	                 "too large");
	call_release(&c);

	reply1(404, NULL,
	       "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: "
	       "claude-test\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(c.err, "model: claude-test"));
	call_release(&c);
}
END_TEST

START_TEST(an_azure_api_version_is_refused_for_anthropic)
{
	llm_provider_cfg pc = cfg();
	char err[256];

	pc.azure_api_version = "2024-10-21";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_str_eq(err, "an Azure API version applies to 'openai' providers only");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llm_anthropic");
	TCase *t = tcase_create("loopback");

	tcase_add_unchecked_fixture(t, ls_start, ls_stop);
	tcase_add_checked_fixture(t, ls_reset, NULL);
	tcase_add_test(t, a_text_reply_comes_back_with_usage_and_the_system_prompt_goes_on_top);
	tcase_add_test(t, a_base_url_ending_in_v1_is_not_given_another);
	tcase_add_test(t, max_tokens_and_temperature_are_sent_as_given);
	tcase_add_test(t, a_tool_round_trip_sends_input_objects_and_results_first_in_one_user_turn);
	tcase_add_test(t, tool_choice_maps_to_the_anthropic_forms);
	tcase_add_test(t, invalid_call_arguments_are_sent_as_an_empty_object);
	tcase_add_test(t, stop_reasons_max_tokens_and_refusal_are_reported);
	tcase_add_test(t, a_streamed_text_reply_with_pings_arrives_whole_one_byte_at_a_time);
	tcase_add_test(t,
	               streamed_tool_input_fragments_are_joined_per_block_and_parsed_at_its_stop);
	tcase_add_test(t, an_error_event_after_partial_text_fails_the_call);
	tcase_add_test(t, a_stream_without_message_stop_needs_its_stop_reason);
	tcase_add_test(t, a_529_overloaded_then_success_is_retried);
	tcase_add_test(t, a_429_with_retry_after_is_retried_after_that_wait);
	tcase_add_test(t, a_429_for_the_spend_limit_is_not_retried);
	tcase_add_test(t, auth_billing_and_size_errors_map_to_their_statuses);
	tcase_add_test(t, an_azure_api_version_is_refused_for_anthropic);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
