/*
 * openai_test.c - the OpenAI Chat Completions client (llm_openai.c over
 * llm_provider.c) against a scripted local server (llm_script.h).
 *
 * Each test scripts the replies, makes one call, and checks what came
 * back and what was sent: the exact request JSON, the path and headers.
 * Streams are written in small (often 1-byte) chunks. Every call also
 * checks that the API key never shows up in the error message. The
 * timeout tests talk to a peer that goes quiet instead (see quiet_start).
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "llm/llm_provider.h"
#include "llm_script.h"
#include "mk_buf.h"
#include "mk_httpc.h"
#include "mk_time.h"
#include "mt_check.h"

#define KEY "sk-test-SECRET123"

/* ---- helpers ------------------------------------------------------------ */

static llm_provider_cfg cfg(void)
{
	llm_provider_cfg c;

	memset(&c, 0, sizeof(c));
	c.kind = "openai";
	c.base_url = ls_base("/v1");
	c.api_key = KEY;
	c.model = "gpt-test";
	/* Far above what a reply here takes: only the tests about timeouts shorten them. */
	c.connect_timeout_ms = 10000;
	c.first_byte_timeout_ms = 30000;
	c.idle_timeout_ms = 30000;
	c.max_retries = 2;
	c.backoff_base_ms = 10;
	c.max_response = 1 << 20;
	return c;
}

static llm_provider *provider(const llm_provider_cfg *c)
{
	char err[256] = "";
	llm_provider *p = llm_provider_new(c, err, sizeof(err));

	ck_assert_msg(p != NULL, "llm_provider_new: %s", err);
	return p;
}

struct call {
	llm_response r;
	llm_status st;
	char err[512];
	mk_buf streamed; /* every on_text delta, concatenated */
	int ntext;
	int stop_after; /* on_text asks to stop at this delta (1-based); 0 never */
	int64_t ms;     /* how long the call took */
};

static int on_text(void *ud, const char *delta, size_t len)
{
	struct call *c = ud;

	ck_assert_uint_gt(len, 0);
	mk_buf_append(&c->streamed, delta, len);
	c->ntext++;
	return c->stop_after && c->ntext >= c->stop_after;
}

static llm_status run_with(const llm_provider_cfg *pc, const llm_request *req, struct call *c)
{
	llm_provider *p = provider(pc);
	llm_stream_cb cb = {.on_text = on_text, .ud = c};
	int64_t t0 = mk_mono_ms();

	mk_buf_init(&c->streamed, 0);
	c->st = p->ops->complete(p, req, &cb, &c->r, c->err, sizeof(c->err));
	c->ms = mk_mono_ms() - t0;
	llm_provider_free(p);
	ck_assert_ptr_nonnull(c->r.text);
	/* The key never appears in a message, whatever the server said. */
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
	llm_response_release(&c->r); /* twice is safe */
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
	"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"gpt-test-0613\","       \
	"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\","    \
	"\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"stop\"}],"                        \
	"\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3,\"total_tokens\":12}}"

/* One streamed chunk with a delta for choice 0. */
#define CHUNK(delta)                                                                               \
	"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"model\":\"gpt-test-0613\","   \
	"\"choices\":[{\"index\":0,\"delta\":" delta                                               \
	",\"finish_reason\":null}],\"usage\":null}\n\n"
#define FINISH(reason)                                                                             \
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"" reason  \
	"\"}]}\n\n"
#define USAGE(choices)                                                                             \
	"data: {\"id\":\"c1\"," choices "\"usage\":{\"prompt_tokens\":11,\"completion_tokens\":7," \
	"\"total_tokens\":18}}\n\n"
#define DONE "data: [DONE]\n\n"

/* ---- a peer that goes quiet ------------------------------------------------ */

#define QUIET_MS 60000 /* the longest the quiet peer stays quiet */

/*
 * A loopback peer that answers each connection with `head` (raw bytes: a
 * status line, headers and the start of a body, or nothing at all) and
 * then says nothing more until the client hangs up, the test ends, or
 * QUIET_MS pass. A client that waited for the rest instead of timing out
 * would take far longer than any bound here, however slow the machine.
 * One connection at a time; the timeouts it is for are not retried.
 */
static struct {
	int on, lfd, port, wake[2];
	const char *head;
	pthread_t th;
	char base[64];
} quiet;

/* Wait for fd to be readable; 0 when the test ends or the time is up first. */
static int quiet_wait(int fd, int64_t until)
{
	for (;;) {
		struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
		                      {.fd = quiet.wake[0], .events = POLLIN}};
		int64_t left = until - mk_mono_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(p, 2, left > 1000 ? 1000 : (int)left);
		if (n < 0 && errno != EINTR)
			return 0;
		if (n > 0)
			return !p[1].revents;
	}
}

static void *quiet_serve(void *arg)
{
	char buf[4096];

	(void)arg;
	while (quiet_wait(quiet.lfd, INT64_MAX)) {
		int fd = accept(quiet.lfd, NULL, NULL);
		int64_t until = mk_mono_ms() + QUIET_MS;

		if (fd < 0)
			continue;
		if (send(fd, quiet.head, strlen(quiet.head), MSG_NOSIGNAL) < 0)
			goto next;
		/* Take in what the client sends, say nothing, until it hangs up. */
		while (quiet_wait(fd, until) && read(fd, buf, sizeof(buf)) > 0)
			;
	next:
		close(fd);
	}
	return NULL;
}

/* Start the quiet peer; returns its base URL with path prefix. */
static const char *quiet_start(const char *head, const char *prefix)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);

	ck_assert(!quiet.on);
	quiet.head = head;
	quiet.lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(quiet.lfd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(quiet.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(quiet.lfd, 8), 0);
	ck_assert_int_eq(getsockname(quiet.lfd, (struct sockaddr *)&sa, &len), 0);
	quiet.port = ntohs(sa.sin_port);
	ck_assert_int_eq(pipe(quiet.wake), 0);
	ck_assert_int_eq(pthread_create(&quiet.th, NULL, quiet_serve, NULL), 0);
	quiet.on = 1;
	snprintf(quiet.base, sizeof(quiet.base), "http://127.0.0.1:%d%s", quiet.port, prefix);
	return quiet.base;
}

/* Stop the quiet peer, if it runs (every test's teardown). */
static void quiet_stop(void)
{
	if (!quiet.on)
		return;
	ck_assert_int_eq(write(quiet.wake[1], "x", 1), 1);
	pthread_join(quiet.th, NULL);
	close(quiet.lfd);
	close(quiet.wake[0]);
	close(quiet.wake[1]);
	quiet.on = 0;
}

/* ---- plain replies -------------------------------------------------------- */

START_TEST(a_text_reply_comes_back_with_its_usage_and_model)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Hello!");
	ck_assert_uint_eq(c.r.ncalls, 0);
	ck_assert_int_eq(c.r.stop, LLM_STOP_END);
	ck_assert_int_eq(c.r.prompt_tokens, 9);
	ck_assert_int_eq(c.r.completion_tokens, 3);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_str_eq(c.r.model, "gpt-test-0613");
	ck_assert_int_eq(c.ntext, 0); /* not streaming: no on_text */

	ck_assert_str_eq(ls.method, "POST");
	ck_assert_str_eq(ls.uri, "/v1/chat/completions");
	ck_assert_str_eq(ls.body,
	                 "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"system\","
	                 "\"content\":\"be brief\"},{\"role\":\"user\",\"content\":\"hi\"}]}");
	ck_assert_str_eq(ls_header("Authorization"), "Bearer " KEY);
	ck_assert_str_eq(ls_header("Content-Type"), "application/json");
	ck_assert_ptr_null(ls_header("Expect"));
	ck_assert_ptr_null(ls_header("api-key"));
	call_release(&c);
}
END_TEST

START_TEST(max_tokens_and_temperature_are_sent_only_when_set)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, NULL, TEXT_REPLY);
	req.max_tokens = 100;
	req.has_temperature = 1;
	req.temperature = 0.5;
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_ptr_nonnull(strstr(ls.body, ",\"max_tokens\":100,\"temperature\":0.5}"));
	ck_assert_ptr_null(strstr(ls.body, "max_completion_tokens"));
	call_release(&c);

	req.max_tokens = 0;
	req.has_temperature = 0;
	req.temperature = 0.7; /* ignored without has_temperature */
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_ptr_null(strstr(ls.body, "max_tokens"));
	ck_assert_ptr_null(strstr(ls.body, "temperature"));
	ck_assert_ptr_null(strstr(ls.body, "stream"));
	call_release(&c);
}
END_TEST

START_TEST(without_an_api_key_no_authorization_header_is_sent)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};

	pc.api_key = NULL;
	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_OK);
	ck_assert_ptr_null(ls_header("Authorization"));
	call_release(&c);
}
END_TEST

/* ---- tools ------------------------------------------------------------------ */

static const llm_tool_call past_calls[] = {
    {.id = "call_1", .name = "get_weather", .arguments = "{\"city\":\"Paris\"}"},
    {.id = "call_2", .name = "get_time", .arguments = ""},
};

static const llm_message round_trip[] = {
    {.role = LLM_ROLE_SYSTEM, .content = "be brief"},
    {.role = LLM_ROLE_USER, .content = "weather and time?"},
    {.role = LLM_ROLE_ASSISTANT, .content = NULL, .calls = past_calls, .ncalls = 2},
    {.role = LLM_ROLE_TOOL, .tool_call_id = "call_1", .content = "18C"},
    {.role = LLM_ROLE_TOOL, .tool_call_id = "call_2", .content = "no clock", .is_error = 1},
};

static const llm_tool tools[] = {
    {.name = "get_weather",
     .description = "Weather now",
     .parameters = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}},"
                   " \"required\": [\"city\"]}"},
    {.name = "get_time", .description = NULL, .parameters = NULL},
};

static llm_request tool_request(const char *choice)
{
	llm_request r;

	memset(&r, 0, sizeof(r));
	r.messages = round_trip;
	r.nmessages = 5;
	r.tools = tools;
	r.ntools = 2;
	r.tool_choice = choice;
	return r;
}

START_TEST(a_tool_round_trip_sends_calls_with_string_arguments_and_results_by_id)
{
	llm_request req = tool_request("auto");
	struct call c = {0};

	/* finish_reason "stop" with tool_calls: the calls decide (§1.4). */
	reply1(200, NULL,
	       "{\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
	       "\"content\":null,\"tool_calls\":[{\"id\":\"call_9\",\"type\":\"function\","
	       "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}"
	       "\"}}]},"
	       "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":"
	       "17}}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(
	    ls.body,
	    "{\"model\":\"gpt-test\",\"messages\":["
	    "{\"role\":\"system\",\"content\":\"be brief\"},"
	    "{\"role\":\"user\",\"content\":\"weather and time?\"},"
	    "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
	    "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	    "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
	    "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_time\","
	    "\"arguments\":\"{}\"}}]},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
	    "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":\"no clock\"}],"
	    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	    "\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\",\"properties\":"
	    "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
	    "{\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"parameters\":"
	    "{\"type\":\"object\",\"properties\":{}}}}],"
	    "\"tool_choice\":\"auto\"}");
	ck_assert_str_eq(c.r.text, "");
	ck_assert_uint_eq(c.r.ncalls, 1);
	ck_assert_str_eq(c.r.calls[0].id, "call_9");
	ck_assert_str_eq(c.r.calls[0].name, "get_weather");
	ck_assert_str_eq(c.r.calls[0].arguments, "{\"city\":\"Rome\"}");
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	ck_assert_int_eq(c.r.prompt_tokens, 82);
	ck_assert_int_eq(c.r.completion_tokens, 17);
	call_release(&c);
}
END_TEST

START_TEST(parallel_tool_calls_in_one_reply_all_come_back)
{
	llm_request req = tool_request(NULL);
	struct call c = {0};

	reply1(
	    200, NULL,
	    "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Checking."
	    "\","
	    "\"tool_calls\":[{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":"
	    "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_b\","
	    "\"type\":\"function\",\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]},"
	    "\"finish_reason\":\"tool_calls\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_ptr_null(strstr(ls.body, "tool_choice")); /* NULL: the default */
	ck_assert_str_eq(c.r.text, "Checking.");
	ck_assert_uint_eq(c.r.ncalls, 2);
	ck_assert_str_eq(c.r.calls[0].id, "call_a");
	ck_assert_str_eq(c.r.calls[1].id, "call_b");
	ck_assert_str_eq(c.r.calls[1].name, "get_time");
	ck_assert_str_eq(c.r.calls[1].arguments, "{}"); /* "" for no arguments */
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	ck_assert_str_eq(c.r.model, "gpt-test"); /* the reply named none */
	call_release(&c);
}
END_TEST

START_TEST(tool_choice_maps_to_the_openai_forms)
{
	static const char *const choices[][2] = {
	    {"none", "\"tool_choice\":\"none\""},
	    {"required", "\"tool_choice\":\"required\""},
	    {"get_time",
	     "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}"},
	};

	for (size_t i = 0; i < 3; i++) {
		llm_request req = tool_request(choices[i][0]);
		struct call c = {0};

		reply1(200, NULL, TEXT_REPLY);
		ck_assert_int_eq(run(&req, &c), LLM_OK);
		ck_assert_msg(strstr(ls.body, choices[i][1]) != NULL, "%s: %s", choices[i][0],
		              ls.body);
		call_release(&c);
	}
}
END_TEST

START_TEST(a_bad_tool_setup_fails_before_anything_is_sent)
{
	llm_request req = tool_request("no_such_tool");
	llm_tool bad = {.name = "broken", .parameters = "{\"type\": "};
	llm_message orphan = {.role = LLM_ROLE_TOOL, .content = "x"};
	struct call c = {0};

	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err, "the tool choice 'no_such_tool' is not one of the tools");
	call_release(&c);

	req = tool_request(NULL);
	req.tools = &bad;
	req.ntools = 1;
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(
	    strstr(c.err, "the parameters of tool 'broken' are not a JSON object"));
	call_release(&c);

	req = simple(0);
	req.messages = &orphan;
	req.nmessages = 1;
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err, "message 0: a tool result needs the id of its call");
	ck_assert_int_eq(c.r.attempts, 0);
	call_release(&c);
	ck_assert_int_eq(ls_hits(), 0);
}
END_TEST

START_TEST(finish_reasons_length_and_content_filter_and_a_refusal_are_reported)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, NULL,
	       "{\"choices\":[{\"index\":0,\"message\":{\"content\":\"Once upon\"},"
	       "\"finish_reason\":\"length\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_LENGTH);
	ck_assert_str_eq(c.r.text, "Once upon");
	call_release(&c);

	/* Truncated arguments: length wins over the calls. */
	reply1(
	    200, NULL,
	    "{\"choices\":[{\"index\":0,\"message\":{\"content\":null,\"tool_calls\":[{\"id\":"
	    "\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\"}}]},"
	    "\"finish_reason\":\"length\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_LENGTH);
	ck_assert_uint_eq(c.r.ncalls, 1);
	call_release(&c);

	reply1(200, NULL,
	       "{\"choices\":[{\"index\":0,\"message\":{\"content\":null},"
	       "\"finish_reason\":\"content_filter\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_FILTERED);
	ck_assert_str_eq(c.r.text, "");
	call_release(&c);

	reply1(200, NULL,
	       "{\"choices\":[{\"index\":0,\"message\":{\"content\":null,\"refusal\":"
	       "\"I can't help with that.\"},\"finish_reason\":\"stop\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.stop, LLM_STOP_FILTERED);
	ck_assert_str_eq(c.r.text, "I can't help with that.");
	call_release(&c);
}
END_TEST

/* ---- streaming ---------------------------------------------------------------- */

START_TEST(streamed_text_in_one_byte_writes_arrives_whole_and_in_order)
{
	static const char body[] =
	    ": keep-alive\n\n" CHUNK("{\"role\":\"assistant\",\"content\":\"\"}")
	        CHUNK("{\"content\":\"Gr\xc3\xbc\xc3\x9f\"}")
	            CHUNK("{\"content\":\"e \xf0\x9f\x98\x80\"}")
	                CHUNK("{\"content\":\" \\ud83d\\ude00 \xe6\x97\xa5\xe6\x9c\xac\"}")
	                    FINISH("stop") USAGE("\"choices\":[],") DONE;
	llm_request req = simple(1);
	ls_reply r = {.status = 200, .body = body, .chunk = 1, .gap_ms = 1};
	struct call c = {0};

	ls_script(&r, 1);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Gr\xc3\xbc\xc3\x9f"
	                           "e \xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac");
	ck_assert_str_eq(streamed(&c), c.r.text);
	ck_assert_int_eq(c.ntext, 3); /* one call per non-empty delta, never a split character */
	ck_assert_int_eq(c.r.stop, LLM_STOP_END);
	ck_assert_int_eq(c.r.prompt_tokens, 11);
	ck_assert_int_eq(c.r.completion_tokens, 7);
	ck_assert_str_eq(c.r.model, "gpt-test-0613");

	ck_assert_ptr_nonnull(
	    strstr(ls.body, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}"));
	ck_assert_str_eq(ls_header("Accept"), "text/event-stream");
	call_release(&c);
}
END_TEST

START_TEST(crlf_streams_and_streams_in_one_piece_read_the_same)
{
	static const char body[] =
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}\r\n\r\n"
	    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},\"finish_reason\":"
	    "\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n";
	llm_request req = simple(1);

	for (size_t chunk = 1; chunk <= sizeof(body); chunk *= 3) {
		struct call c = {0};

		stream1(body, chunk);
		ck_assert_int_eq(run(&req, &c), LLM_OK);
		ck_assert_str_eq(c.r.text, "ab");
		call_release(&c);
	}
}
END_TEST

/* Stream the given tool-call deltas, then finish; check the calls that come back. */
static void check_tool_stream(const char *body, size_t n, const char *const *want)
{
	llm_request req = tool_request(NULL);
	struct call c = {0};

	req.stream = 1;
	stream1(body, 7);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_uint_eq(c.r.ncalls, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_str_eq(c.r.calls[i].id, want[3 * i]);
		ck_assert_str_eq(c.r.calls[i].name, want[3 * i + 1]);
		ck_assert_str_eq(c.r.calls[i].arguments, want[3 * i + 2]);
	}
	ck_assert_int_eq(c.r.stop, LLM_STOP_TOOL_CALLS);
	call_release(&c);
}

START_TEST(streamed_tool_call_fragments_are_joined_per_index)
{
	static const char *const want[] = {"call_a", "get_weather", "{\"city\":\"Paris\"}",
	                                   "call_b", "get_time",    "{}"};

	check_tool_stream(
	    CHUNK("{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":"
	          "\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
	          "\"arguments\":\"\"}}]}")
	        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"ci\"}}]}")
	            CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
	                  "\"ty\\\":\\\"Paris\\\"}\"}}]}")
	                CHUNK(
	                    "{\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\","
	                    "\"function\":{\"name\":\"get_time\",\"arguments\":\"\"}}]}")
	                    CHUNK("{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}"
	                          "\"}}]}") FINISH("tool_calls") DONE,
	    2, want);
}
END_TEST

START_TEST(streamed_fragments_without_index_continue_the_open_call)
{
	static const char *const want[] = {"call_a", "get_weather", "{\"city\":\"Paris\"}",
	                                   "call_b", "get_time",    "{}"};

	/* Gemini's compatible endpoint and old Ollama omit index. */
	check_tool_stream(
	    CHUNK("{\"tool_calls\":[{\"id\":\"call_a\",\"type\":\"function\",\"function\":"
	          "{\"name\":\"get_weather\",\"arguments\":\"{\\\"ci\"}}]}")
	        CHUNK("{\"tool_calls\":[{\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]}")
	            CHUNK("{\"tool_calls\":[{\"id\":\"call_b\",\"type\":\"function\",\"function\":"
	                  "{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}") FINISH("tool_calls")
	                DONE,
	    2, want);
}
END_TEST

START_TEST(a_new_id_on_index_zero_starts_a_new_call)
{
	static const char *const want[] = {"call_a", "get_weather", "{\"city\":\"Paris\"}",
	                                   "call_b", "get_time",    "{}"};

	/* Ollama: index 0 for every parallel call, each with its own id. */
	check_tool_stream(
	    CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\","
	          "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\"}}]}")
	        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"function\":"
	              "{\"arguments\":\"\\\"Paris\\\"}\"}}]}")
	            CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_b\",\"type\":\"function\","
	                  "\"function\":{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}")
	                FINISH("tool_calls") DONE,
	    2, want);
}
END_TEST

START_TEST(a_first_fragment_without_id_gets_a_made_up_one)
{
	static const char *const want[] = {"call_0", "get_weather", "{\"city\":\"Paris\"}"};

	check_tool_stream(
	    CHUNK("{\"tool_calls\":[{\"index\":0,\"type\":\"function\",\"function\":{\"name\":"
	          "\"get_weather\",\"arguments\":\"\"}}]}")
	        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
	              "\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}") FINISH("stop") DONE,
	    1, want);
}
END_TEST

START_TEST(whole_calls_in_single_chunks_are_each_a_call)
{
	static const char *const want[] = {"call_0", "get_weather", "{\"city\":\"Paris\"}",
	                                   "call_1", "get_time",    "{}"};

	/* Local servers: a whole call per chunk, index 0, sometimes no id at all. */
	check_tool_stream(
	    CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"get_weather\","
	          "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]}")
	        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"get_time\","
	              "\"arguments\":{}}}]}") FINISH("tool_calls") DONE,
	    2, want);
}
END_TEST

START_TEST(the_usage_chunk_is_read_whether_choices_is_empty_null_or_absent)
{
	static const char *const variants[] = {"\"choices\":[],", "\"choices\":null,", ""};

	for (size_t i = 0; i < 3; i++) {
		char body[1024];
		llm_request req = simple(1);
		struct call c = {0};

		snprintf(body, sizeof(body),
		         CHUNK("{\"content\":\"hi\"}")
		             FINISH("stop") "data: {\"id\":\"c1\",%s\"usage\":{\"prompt_tokens\":5,"
		                            "\"completion_tokens\":1,\"total_tokens\":6}}\n\n" DONE,
		         variants[i]);
		stream1(body, 5);
		ck_assert_int_eq(run(&req, &c), LLM_OK);
		ck_assert_str_eq(c.r.text, "hi");
		ck_assert_int_eq(c.r.prompt_tokens, 5);
		ck_assert_int_eq(c.r.completion_tokens, 1);
		call_release(&c);
	}
}
END_TEST

START_TEST(a_stream_without_done_is_whole_after_its_finish_reason)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1(CHUNK("{\"content\":\"all\"}") FINISH("stop"), 4);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "all");
	call_release(&c);

	/* Not even a blank line after the last event: still dispatched at the end. */
	stream1(CHUNK("{\"content\":\"all\"}") "data: {\"choices\":[{\"index\":0,\"delta\":{},"
	                                       "\"finish_reason\":\"stop\"}]}",
	        4);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "all");
	call_release(&c);
}
END_TEST

START_TEST(a_stream_that_ends_before_its_finish_reason_is_a_protocol_error)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1(CHUNK("{\"content\":\"half a\"}"), 4);
	ck_assert_int_eq(run(&req, &c), LLM_E_PROTOCOL);
	ck_assert_str_eq(c.err, "the stream from the model provider ended early");
	ck_assert_str_eq(c.r.text, "half a"); /* what the user already saw */
	ck_assert_uint_eq(c.r.ncalls, 0);
	ck_assert_int_eq(c.r.attempts, 1); /* bytes arrived: never sent again */
	call_release(&c);

	/* Cut in the middle of the chunked body: the connection broke. */
	{
		ls_reply r = {
		    .status = 200, .body = CHUNK("{\"content\":\"x\"}"), .chunk = 8, .cut = 1};

		ls_script(&r, 1);
	}
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(c.err, "broke in the middle of its reply"));
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);
}
END_TEST

START_TEST(an_error_event_in_the_middle_of_a_stream_fails_the_call)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1(
	    CHUNK("{\"content\":\"Hel\"}") "data: {\"error\":{\"message\":\"The server had an "
	                                   "error while processing your request.\",\"type\":"
	                                   "\"server_error\",\"param\":null,\"code\":null}}\n\n",
	    3);
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_str_eq(c.err, "the model provider reported an error (server_error): The server "
	                        "had an error while processing your request.");
	ck_assert_str_eq(c.r.text, "Hel");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	/* "event: error" with OpenRouter's numeric code. */
	stream1(CHUNK("{\"content\":\"a\"}") "event: error\ndata: {\"error\":{\"code\":429,"
	                                     "\"message\":\"Rate limit exceeded upstream\"}}\n\n",
	        3);
	ck_assert_int_eq(run(&req, &c), LLM_E_RATE_LIMITED);
	ck_assert_ptr_nonnull(strstr(c.err, "Rate limit exceeded upstream"));
	call_release(&c);
}
END_TEST

START_TEST(a_server_that_ignores_stream_true_is_read_as_a_whole_reply)
{
	llm_request req = simple(1);
	struct call c = {0};

	stream1("\n" TEXT_REPLY, 10);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_str_eq(c.r.text, "Hello!");
	ck_assert_str_eq(streamed(&c), "Hello!"); /* the receiver still sees the text */
	call_release(&c);
}
END_TEST

START_TEST(on_text_asking_to_stop_aborts_the_call)
{
	llm_request req = simple(1);
	struct call c = {.stop_after = 2};

	stream1(CHUNK("{\"content\":\"one\"}") CHUNK("{\"content\":\"two\"}")
	            CHUNK("{\"content\":\"three\"}") FINISH("stop") DONE,
	        1000);
	ck_assert_int_eq(run(&req, &c), LLM_E_ABORTED);
	ck_assert_int_eq(c.ntext, 2);
	ck_assert_str_eq(c.r.text, "onetwo");
	call_release(&c);
}
END_TEST

START_TEST(a_non_json_reply_is_a_protocol_error)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, NULL, "<html><title>Captive portal</title></html>");
	ck_assert_int_eq(run(&req, &c), LLM_E_PROTOCOL);
	ck_assert_ptr_nonnull(strstr(c.err, "the model provider's reply is not JSON"));
	ck_assert_ptr_nonnull(strstr(c.err, "Captive portal"));
	call_release(&c);

	reply1(200, NULL, "{\"object\":\"chat.completion\",\"choices\":[]}");
	ck_assert_int_eq(run(&req, &c), LLM_E_PROTOCOL);
	ck_assert_str_eq(c.err, "the model provider's reply has no choices");
	call_release(&c);
}
END_TEST

/* ---- errors and retries ---------------------------------------------------------- */

#define RATE_LIMIT_BODY                                                                            \
	"{\"error\":{\"message\":\"Rate limit reached for requests\",\"type\":\"requests\","       \
	"\"param\":null,\"code\":\"rate_limit_exceeded\"}}"

START_TEST(a_429_with_retry_after_ms_is_retried_after_that_wait)
{
	ls_reply r[] = {
	    {.status = 429, .headers = "retry-after-ms: 200\r\n", .body = RATE_LIMIT_BODY},
	    {.status = 200, .body = TEXT_REPLY},
	};
	llm_request req = simple(0);
	struct call c = {0};

	ls_script(r, 2);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.attempts, 2);
	ck_assert_int_eq(ls_hits(), 2);
	ck_assert_int_ge(c.ms, 190);
	ck_assert_str_eq(c.r.text, "Hello!");
	call_release(&c);
}
END_TEST

START_TEST(a_429_for_insufficient_quota_is_not_retried)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(429, "retry-after: 1\r\n",
	       "{\"error\":{\"message\":\"You exceeded your current quota, please check your plan "
	       "and billing details.\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":"
	       "\"insufficient_quota\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_QUOTA);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_int_eq(ls_hits(), 1);
	ck_assert_str_eq(c.err,
	                 "the model provider account is out of credit or quota (HTTP 429): "
	                 "You exceeded your current quota, please check your plan and billing "
	                 "details.");
	call_release(&c);
}
END_TEST

START_TEST(a_429_that_persists_ends_as_rate_limited_after_the_retries)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(429, NULL, RATE_LIMIT_BODY);
	ck_assert_int_eq(run(&req, &c), LLM_E_RATE_LIMITED);
	ck_assert_int_eq(c.r.attempts, 3);
	ck_assert_str_eq(c.err, "rate limited by the model provider; retried 2 times");
	call_release(&c);
}
END_TEST

START_TEST(a_retry_after_beyond_a_minute_is_not_waited_for)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(429, "retry-after: 120\r\n", RATE_LIMIT_BODY);
	ck_assert_int_eq(run(&req, &c), LLM_E_RATE_LIMITED);
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_str_eq(c.err, "rate limited by the model provider; it asks to wait 120 s");
	ck_assert_int_lt(c.ms, 10000); /* not a minute or two */
	call_release(&c);
}
END_TEST

START_TEST(a_500_then_a_200_succeeds_on_the_second_attempt)
{
	ls_reply r[] = {
	    {.status = 500, .body = "{\"error\":{\"message\":\"oops\",\"type\":\"server_error\"}}"},
	    {.status = 200, .body = TEXT_REPLY},
	};
	llm_request req = simple(1); /* an error status is retried even when streaming */
	struct call c = {0};

	ls_script(r, 2);
	ck_assert_int_eq(run(&req, &c), LLM_OK);
	ck_assert_int_eq(c.r.attempts, 2);
	ck_assert_str_eq(c.r.text, "Hello!");
	call_release(&c);
}
END_TEST

START_TEST(a_503_html_page_is_unavailable_with_a_short_message)
{
	llm_request req = simple(0);
	ls_reply r = {.status = 503,
	              .ctype = "text/html",
	              .body =
	                  "<!DOCTYPE html>\n<html><head><title>503 Service Temporarily "
	                  "Unavailable</title></head>\n<body><center><h1>503 Service Temporarily "
	                  "Unavailable</h1></center><hr><center>nginx</center></body></html>"};
	struct call c = {0};

	ls_script(&r, 1);
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_str_eq(c.err, "the model provider is unavailable (HTTP 503): 503 Service "
	                        "Temporarily Unavailable; retried 2 times");
	ck_assert_int_eq(c.r.attempts, 3);
	call_release(&c);
}
END_TEST

START_TEST(x_should_retry_false_stops_the_retries)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(500, "x-should-retry: false\r\n", "{\"error\":{\"message\":\"no\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_UNAVAILABLE);
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);
}
END_TEST

START_TEST(gemini_array_errors_and_vllm_flat_errors_are_understood)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(
	    400, NULL,
	    "[{\"error\":{\"code\":400,\"message\":\"Invalid JSON payload received. Unknown name "
	    "\\\"foo\\\": Cannot find field.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[]}}]");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err, "the model provider rejected the request (HTTP 400): Invalid JSON "
	                        "payload received. Unknown name \"foo\": Cannot find field.");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	reply1(
	    404, NULL,
	    "{\"object\":\"error\",\"message\":\"The model `gpt-test` does not exist.\",\"type\":"
	    "\"NotFoundError\",\"param\":null,\"code\":404}");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err, "the model provider rejected the request (HTTP 404): The model "
	                        "`gpt-test` does not exist.");
	call_release(&c);

	reply1(422, NULL,
	       "{\"detail\":[{\"loc\":[\"body\",\"messages\"],\"msg\":\"field required\","
	       "\"type\":\"value_error.missing\"}]}");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err,
	                 "the model provider rejected the request (HTTP 422): field required");
	call_release(&c);

	reply1(400, NULL,
	       "{\"error\":{\"message\":\"This model's maximum context length is 8192 tokens.\","
	       "\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":"
	       "\"context_length_exceeded\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_ptr_nonnull(strstr(c.err, "maximum context length is 8192 tokens"));
	call_release(&c);
}
END_TEST

START_TEST(a_401_is_an_auth_failure_that_never_shows_the_key)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(401, NULL,
	       "{\"error\":{\"message\":\"Incorrect API key provided: " KEY ". You can find your "
	       "API key at https://platform.openai.com/account/api-keys.\",\"type\":"
	       "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_AUTH);
	ck_assert_str_eq(c.err,
	                 "the model provider rejected the API key (HTTP 401 invalid_api_key)");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	reply1(403, NULL,
	       "{\"error\":{\"message\":\"Country, region, or territory not supported\",\"type\":"
	       "\"request_forbidden\",\"code\":\"unsupported_country_region_territory\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_AUTH);
	ck_assert_ptr_nonnull(strstr(c.err, "Country, region, or territory not supported"));
	call_release(&c);
}
END_TEST

START_TEST(a_key_echoed_in_any_provider_message_is_redacted)
{
	llm_request req = simple(1);
	struct call c = {0};

	reply1(400, NULL, "{\"error\":{\"message\":\"header Bearer " KEY " is odd\"}}");
	ck_assert_int_eq(run(&req, &c), LLM_E_BAD_REQUEST);
	ck_assert_str_eq(c.err, "the model provider rejected the request (HTTP 400): header Bearer "
	                        "[redacted] is odd");
	call_release(&c);

	stream1(CHUNK("{\"content\":\"a\"}") "data: {\"error\":{\"message\":\"key " KEY "\"}}\n\n",
	        9);
	ck_assert_int_ne(run(&req, &c), LLM_OK);
	ck_assert_ptr_nonnull(strstr(c.err, "key [redacted]"));
	call_release(&c);
}
END_TEST

START_TEST(an_unreachable_provider_is_unavailable_after_the_retries)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};
	char base[64], want[128];
	int port = ls_unused_port();

	snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", port);
	pc.base_url = base;
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_UNAVAILABLE);
	snprintf(want, sizeof(want), "cannot reach the model provider at '127.0.0.1:%d'", port);
	ck_assert_msg(strncmp(c.err, want, strlen(want)) == 0, "%s", c.err);
	ck_assert_ptr_nonnull(strstr(c.err, "retried 2 times"));
	ck_assert_int_eq(c.r.attempts, 3);
	call_release(&c);
}
END_TEST

START_TEST(a_reply_over_max_response_is_refused)
{
	static const char body[] =
	    CHUNK("{\"content\":\"0123456789012345678901234567890123456789\"}")
	        CHUNK("{\"content\":\"0123456789012345678901234567890123456789\"}")
	            CHUNK("{\"content\":\"0123456789012345678901234567890123456789\"}")
	                FINISH("stop") DONE;
	llm_provider_cfg pc = cfg();
	llm_request req = simple(1);
	struct call c = {0};

	pc.max_response = 300;
	stream1(body, 64);
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_PROTOCOL);
	ck_assert_str_eq(c.err, "the model provider's reply exceeds 300 bytes");
	ck_assert_int_eq(c.r.attempts, 1);
	call_release(&c);

	req.stream = 0;
	reply1(200, NULL, TEXT_REPLY TEXT_REPLY);
	pc.max_response = 100;
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_PROTOCOL);
	ck_assert_str_eq(c.err, "the model provider's reply exceeds 100 bytes");
	call_release(&c);
}
END_TEST

static void *call_thread(void *arg)
{
	const llm_provider *p = arg;
	int ok = 0;

	for (int i = 0; i < 5; i++) {
		llm_request req = simple(i % 2);
		llm_response r;
		char err[256];

		if (p->ops->complete((llm_provider *)p, &req, NULL, &r, err, sizeof(err)) ==
		        LLM_OK &&
		    strcmp(r.text, "Hello!") == 0)
			ok++;
		llm_response_release(&r);
	}
	return (void *)(intptr_t)ok;
}

START_TEST(one_client_serves_calls_from_several_threads_at_once)
{
	llm_provider_cfg pc = cfg();
	llm_provider *p = provider(&pc);
	pthread_t th[4];

	/* A JSON reply to a streaming request is read whole too: one script for both kinds. */
	stream1(TEXT_REPLY, 16);
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, call_thread, p), 0);
	for (int i = 0; i < 4; i++) {
		void *ok;

		ck_assert_int_eq(pthread_join(th[i], &ok), 0);
		ck_assert_int_eq((int)(intptr_t)ok, 5);
	}
	ck_assert_int_eq(ls_hits(), 20);
	llm_provider_free(p);
}
END_TEST

/* ---- timeouts and deadlines ------------------------------------------------------- */

START_TEST(a_first_byte_later_than_the_first_byte_timeout_is_a_timeout)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(1);
	struct call c = {0};

	pc.base_url = quiet_start("", "/v1"); /* not a byte */
	pc.first_byte_timeout_ms = 300;
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_TIMEOUT);
	ck_assert_str_eq(c.err, "no response from the model provider within 0.3 s");
	ck_assert_int_eq(c.r.attempts, 1); /* a slow model is not asked again */
	ck_assert_int_ge(c.ms, 290);
	ck_assert_int_lt(c.ms, 10000);
	call_release(&c);
}
END_TEST

START_TEST(a_stream_that_goes_quiet_midway_times_out)
{
	static const char first[] = CHUNK("{\"content\":\"first\"}");
	char head[512];
	llm_provider_cfg pc = cfg();
	llm_request req = simple(1);
	struct call c = {0};

	/* The headers and the first event, then nothing. */
	snprintf(head, sizeof(head),
	         "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	         "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n",
	         strlen(first), first);
	pc.base_url = quiet_start(head, "/v1");
	pc.idle_timeout_ms = 300;
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_TIMEOUT);
	ck_assert_str_eq(c.err,
	                 "the model provider sent nothing for 0.3 s in the middle of its reply");
	ck_assert_str_eq(c.r.text, "first");
	ck_assert_int_eq(c.r.attempts, 1);
	ck_assert_int_ge(c.ms, 290);
	ck_assert_int_lt(c.ms, 10000);
	call_release(&c);
}
END_TEST

START_TEST(retries_stop_at_the_deadline)
{
	/* A retry is welcome at once, then only in 30 s: past the deadline. */
	ls_reply r[] = {
	    {.status = 503, .body = "busy"},
	    {.status = 503, .headers = "retry-after: 30\r\n", .body = "busy"},
	};
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};

	ls_script(r, 2);
	pc.max_retries = 10;
	req.deadline_mono_ms = mk_mono_ms() + 20000;
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_E_UNAVAILABLE);
	ck_assert_int_eq(c.r.attempts, 2);
	/* Given up at once: no wait for the retry, nor until the deadline. */
	ck_assert_int_lt(c.ms, 10000);
	ck_assert_ptr_nonnull(
	    strstr(c.err, "(HTTP 503): busy; no time for another try before the deadline"));
	call_release(&c);
}
END_TEST

START_TEST(a_passed_deadline_sends_nothing)
{
	llm_request req = simple(0);
	struct call c = {0};

	reply1(200, NULL, TEXT_REPLY);
	req.deadline_mono_ms = mk_mono_ms() - 1;
	ck_assert_int_eq(run(&req, &c), LLM_E_TIMEOUT);
	ck_assert_str_eq(c.err, "the deadline passed before the model provider was called");
	ck_assert_int_eq(c.r.attempts, 0);
	ck_assert_int_eq(ls_hits(), 0);
	call_release(&c);
}
END_TEST

/* ---- settings ----------------------------------------------------------------------- */

START_TEST(the_azure_form_uses_the_deployment_path_api_version_and_api_key_header)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};

	pc.base_url = ls_base("/");
	pc.model = "my dep";
	pc.azure_api_version = "2024-10-21";
	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_OK);
	/* Sent as my%20dep (curl refuses a raw space); the server decodes it. */
	ck_assert_str_eq(ls.uri,
	                 "/openai/deployments/my dep/chat/completions?api-version=2024-10-21");
	ck_assert_str_eq(ls_header("api-key"), KEY);
	ck_assert_ptr_null(ls_header("Authorization"));
	call_release(&c);

	pc.base_url = ls_base("/openai"); /* not doubled */
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_OK);
	ck_assert_str_eq(ls.uri,
	                 "/openai/deployments/my dep/chat/completions?api-version=2024-10-21");
	call_release(&c);
}
END_TEST

START_TEST(extra_headers_are_sent_and_may_replace_ours)
{
	llm_provider_cfg pc = cfg();
	llm_request req = simple(0);
	struct call c = {0};

	pc.extra_headers =
	    "OpenAI-Organization: org-1; X-Title:  Mark \n\nAuthorization: Bearer other";
	reply1(200, NULL, TEXT_REPLY);
	ck_assert_int_eq(run_with(&pc, &req, &c), LLM_OK);
	ck_assert_str_eq(ls_header("OpenAI-Organization"), "org-1");
	ck_assert_str_eq(ls_header("X-Title"), "Mark");
	ck_assert_str_eq(ls_header("Authorization"), "Bearer other");
	ck_assert_ptr_null(strstr(ls.headers, KEY));
	call_release(&c);
}
END_TEST

START_TEST(bad_settings_are_refused_without_echoing_secrets)
{
	llm_provider_cfg pc = cfg();
	char err[256];

	pc.kind = "gemini";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_str_eq(err,
	                 "unknown model provider kind 'gemini' (expected 'openai' or 'anthropic')");
	pc = cfg();
	pc.base_url = "ftp://x/v1";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "malformed model provider base URL"));
	pc.base_url = "https://user:pw@host/v1?key=SECRET123";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_ptr_null(strstr(err, "SECRET123"));
	pc.base_url = "http:///v1";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	pc = cfg();
	pc.extra_headers = "X-Ok: 1; Bearer SECRET123";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_str_eq(err,
	                 "extra model provider header 2 is malformed (expected 'Name: value')");
	pc = cfg();
	pc.model = "";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_str_eq(err, "the 'openai' model provider needs a model name");
	pc = cfg();
	pc.base_url = NULL;
	pc.azure_api_version = "2024-10-21";
	ck_assert_ptr_null(llm_provider_new(&pc, err, sizeof(err)));
	ck_assert_ptr_null(llm_provider_new(NULL, err, sizeof(err)));
	llm_provider_free(NULL);
}
END_TEST

START_TEST(every_status_has_a_stable_wire_name)
{
	ck_assert_str_eq(llm_status_code(LLM_OK), "ok");
	ck_assert_str_eq(llm_status_code(LLM_E_AUTH), "model_auth_failed");
	ck_assert_str_eq(llm_status_code(LLM_E_QUOTA), "model_quota_exceeded");
	ck_assert_str_eq(llm_status_code(LLM_E_RATE_LIMITED), "model_rate_limited");
	ck_assert_str_eq(llm_status_code(LLM_E_TIMEOUT), "model_timeout");
	for (int s = LLM_OK; s <= LLM_E_ABORTED; s++)
		ck_assert_str_ne(llm_status_code((llm_status)s), "model_error");
	ck_assert_str_eq(llm_status_code((llm_status)99), "model_error");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llm_openai");
	TCase *t = tcase_create("loopback");
	TCase *pure = tcase_create("pure");

	tcase_add_unchecked_fixture(t, ls_start, ls_stop);
	tcase_add_checked_fixture(t, ls_reset, quiet_stop);
	tcase_add_test(t, a_text_reply_comes_back_with_its_usage_and_model);
	tcase_add_test(t, max_tokens_and_temperature_are_sent_only_when_set);
	tcase_add_test(t, without_an_api_key_no_authorization_header_is_sent);
	tcase_add_test(t, a_tool_round_trip_sends_calls_with_string_arguments_and_results_by_id);
	tcase_add_test(t, parallel_tool_calls_in_one_reply_all_come_back);
	tcase_add_test(t, tool_choice_maps_to_the_openai_forms);
	tcase_add_test(t, a_bad_tool_setup_fails_before_anything_is_sent);
	tcase_add_test(t, finish_reasons_length_and_content_filter_and_a_refusal_are_reported);
	tcase_add_test(t, streamed_text_in_one_byte_writes_arrives_whole_and_in_order);
	tcase_add_test(t, crlf_streams_and_streams_in_one_piece_read_the_same);
	tcase_add_test(t, streamed_tool_call_fragments_are_joined_per_index);
	tcase_add_test(t, streamed_fragments_without_index_continue_the_open_call);
	tcase_add_test(t, a_new_id_on_index_zero_starts_a_new_call);
	tcase_add_test(t, a_first_fragment_without_id_gets_a_made_up_one);
	tcase_add_test(t, whole_calls_in_single_chunks_are_each_a_call);
	tcase_add_test(t, the_usage_chunk_is_read_whether_choices_is_empty_null_or_absent);
	tcase_add_test(t, a_stream_without_done_is_whole_after_its_finish_reason);
	tcase_add_test(t, a_stream_that_ends_before_its_finish_reason_is_a_protocol_error);
	tcase_add_test(t, an_error_event_in_the_middle_of_a_stream_fails_the_call);
	tcase_add_test(t, a_server_that_ignores_stream_true_is_read_as_a_whole_reply);
	tcase_add_test(t, on_text_asking_to_stop_aborts_the_call);
	tcase_add_test(t, a_non_json_reply_is_a_protocol_error);
	tcase_add_test(t, a_429_with_retry_after_ms_is_retried_after_that_wait);
	tcase_add_test(t, a_429_for_insufficient_quota_is_not_retried);
	tcase_add_test(t, a_429_that_persists_ends_as_rate_limited_after_the_retries);
	tcase_add_test(t, a_retry_after_beyond_a_minute_is_not_waited_for);
	tcase_add_test(t, a_500_then_a_200_succeeds_on_the_second_attempt);
	tcase_add_test(t, a_503_html_page_is_unavailable_with_a_short_message);
	tcase_add_test(t, x_should_retry_false_stops_the_retries);
	tcase_add_test(t, gemini_array_errors_and_vllm_flat_errors_are_understood);
	tcase_add_test(t, a_401_is_an_auth_failure_that_never_shows_the_key);
	tcase_add_test(t, a_key_echoed_in_any_provider_message_is_redacted);
	tcase_add_test(t, an_unreachable_provider_is_unavailable_after_the_retries);
	tcase_add_test(t, a_reply_over_max_response_is_refused);
	tcase_add_test(t, one_client_serves_calls_from_several_threads_at_once);
	tcase_add_test(t, a_first_byte_later_than_the_first_byte_timeout_is_a_timeout);
	tcase_add_test(t, a_stream_that_goes_quiet_midway_times_out);
	tcase_add_test(t, retries_stop_at_the_deadline);
	tcase_add_test(t, a_passed_deadline_sends_nothing);
	tcase_add_test(t, the_azure_form_uses_the_deployment_path_api_version_and_api_key_header);
	tcase_add_test(t, extra_headers_are_sent_and_may_replace_ours);
	suite_add_tcase(s, t);

	tcase_add_test(pure, bad_settings_are_refused_without_echoing_secrets);
	tcase_add_test(pure, every_status_has_a_stable_wire_name);
	suite_add_tcase(s, pure);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
