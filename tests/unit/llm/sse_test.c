/*
 * sse_test.c - unit tests for services/llm/llm_sse.c.
 *
 * Recorded streams (OpenAI text and tool calls, Anthropic tool use with
 * pings, CRLF and CR line ends, comments, multi-line data, UTF-8 text) are
 * fed whole, split in two at every byte position, and one byte at a time;
 * each way must yield exactly the expected events. Events are recorded as
 * "name\x1fdata\x1e" so that a data value holding '\n' stays unambiguous.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm_provider.h"
#include "mk_buf.h"
#include "mt_check.h"

/* ---- recording ---------------------------------------------------------- */

struct rec {
	mk_buf out;
	int n;
	int stop_at; /* ask to stop at this event (1-based); 0 never */
};

static int record(void *ud, const char *event, const char *data, size_t len)
{
	struct rec *r = ud;

	ck_assert_ptr_nonnull(event);
	ck_assert_ptr_nonnull(data);
	ck_assert_int_eq(data[len], '\0');
	ck_assert_uint_eq(strlen(data), len);
	mk_buf_puts(&r->out, event);
	mk_buf_puts(&r->out, "\x1f");
	mk_buf_append(&r->out, data, len);
	mk_buf_puts(&r->out, "\x1e");
	r->n++;
	return r->stop_at && r->n >= r->stop_at;
}

static void rec_init(struct rec *r)
{
	memset(r, 0, sizeof(*r));
	mk_buf_init(&r->out, 0);
}

/* Feed `in` as slices cut at the given offsets (ascending, within len), then finish. */
static char *run_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t max)
{
	struct rec r;
	llm_sse *s;
	size_t at = 0;

	rec_init(&r);
	s = llm_sse_new(record, &r, max);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i <= ncuts; i++) {
		size_t end = i < ncuts ? cuts[i] : len;

		ck_assert_int_eq(llm_sse_feed(s, in + at, end - at), 0);
		at = end;
	}
	ck_assert_int_eq(llm_sse_finish(s), 0);
	llm_sse_free(s);
	mk_buf_puts(&r.out, ""); /* never NULL */
	return mk_buf_steal(&r.out);
}

static char *run_bytewise(const char *in, size_t len, size_t max)
{
	struct rec r;
	llm_sse *s;

	rec_init(&r);
	s = llm_sse_new(record, &r, max);
	ck_assert_ptr_nonnull(s);
	for (size_t i = 0; i < len; i++)
		ck_assert_int_eq(llm_sse_feed(s, in + i, 1), 0);
	ck_assert_int_eq(llm_sse_finish(s), 0);
	llm_sse_free(s);
	mk_buf_puts(&r.out, "");
	return mk_buf_steal(&r.out);
}

/* The expected record of a NULL-terminated list of name, data pairs. */
static char *expect(const char *const *pairs)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	mk_buf_puts(&b, "");
	for (size_t i = 0; pairs[i]; i += 2) {
		mk_buf_puts(&b, pairs[i]);
		mk_buf_puts(&b, "\x1f");
		mk_buf_puts(&b, pairs[i + 1]);
		mk_buf_puts(&b, "\x1e");
	}
	return mk_buf_steal(&b);
}

/* Whole, every two-way split, and byte by byte must all give `pairs`. */
static void check_every_split(const char *in, const char *const *pairs)
{
	size_t len = strlen(in);
	char *want = expect(pairs), *got;

	got = run_cuts(in, len, NULL, 0, 4096);
	ck_assert_str_eq(got, want);
	free(got);
	for (size_t k = 0; k <= len; k++) {
		got = run_cuts(in, len, &k, 1, 4096);
		if (strcmp(got, want) != 0)
			ck_abort_msg("split at byte %zu of %zu: got '%s', want '%s'", k, len, got,
			             want);
		free(got);
	}
	got = run_bytewise(in, len, 4096);
	ck_assert_str_eq(got, want);
	free(got);
	free(want);
}

/* ---- recorded streams ----------------------------------------------------- */

#define OA_TEXT                                                                                    \
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","        \
	"\"content\":\"\"},\"finish_reason\":null}]}\n\n"                                          \
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"          \
	"\"finish_reason\":null}]}\n\n"                                                            \
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"           \
	"\"finish_reason\":null}]}\n\n"                                                            \
	"data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":"           \
	"\"stop\"}]}\n\n"                                                                          \
	"data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"                      \
	"\"completion_tokens\":2,\"total_tokens\":11}}\n\n"                                        \
	"data: [DONE]\n\n"

static const char *const oa_text_events[] = {
    "",
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
    "\"content\":\"\"},\"finish_reason\":null}]}",
    "",
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},"
    "\"finish_reason\":null}]}",
    "",
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
    "\"finish_reason\":null}]}",
    "",
    "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    "",
    "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,"
    "\"completion_tokens\":2,\"total_tokens\":11}}",
    "",
    "[DONE]",
    NULL,
};

#define OA_TOOLS                                                                                   \
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"     \
	"\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":"       \
	"{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n"           \
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"                \
	"\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}\n\n"                \
	"data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"                \
	"\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}\n\n"  \
	"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"    \
	"data: [DONE]\n\n"

static const char *const oa_tools_events[] = {
    "",
    "{\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,"
    "\"tool_calls\":[{\"index\":0,\"id\":\"call_a\",\"type\":\"function\",\"function\":"
    "{\"name\":\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}",
    "",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\"{\\\"ci\"}}]},\"finish_reason\":null}]}",
    "",
    "{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
    "\"function\":{\"arguments\":\"ty\\\":\\\"Paris\\\"}\"}}]},\"finish_reason\":null}]}",
    "",
    "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
    "",
    "[DONE]",
    NULL,
};

#define AN_TOOL_USE                                                                                \
	"event: message_start\n"                                                                   \
	"data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":"               \
	"{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"                                          \
	"event: ping\n"                                                                            \
	"data: {\"type\": \"ping\"}\n\n"                                                           \
	"event: content_block_start\n"                                                             \
	"data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"         \
	"\"tool_use\",\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{}}}\n\n"            \
	"event: content_block_delta\n"                                                             \
	"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"                 \
	"\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n"                   \
	"event: ping\n"                                                                            \
	"data: {\"type\": \"ping\"}\n\n"                                                           \
	"event: content_block_stop\n"                                                              \
	"data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"                                  \
	"event: message_stop\n"                                                                    \
	"data: {\"type\":\"message_stop\"}\n\n"

static const char *const an_tool_use_events[] = {
    "message_start",
    "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":"
    "{\"input_tokens\":25,\"output_tokens\":1}}}",
    "ping",
    "{\"type\": \"ping\"}",
    "content_block_start",
    "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
    "{\"type\":\"tool_use\",\"id\":\"toolu_01A\",\"name\":"
    "\"get_weather\",\"input\":{}}}",
    "content_block_delta",
    "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}",
    "ping",
    "{\"type\": \"ping\"}",
    "content_block_stop",
    "{\"type\":\"content_block_stop\",\"index\":0}",
    "message_stop",
    "{\"type\":\"message_stop\"}",
    NULL,
};

/* ---- tests -------------------------------------------------------------- */

START_TEST(an_openai_text_stream_gives_the_same_events_however_it_is_split)
{
	check_every_split(OA_TEXT, oa_text_events);
}
END_TEST

START_TEST(an_openai_tool_call_stream_gives_the_same_events_however_it_is_split)
{
	check_every_split(OA_TOOLS, oa_tools_events);
}
END_TEST

START_TEST(an_anthropic_stream_with_pings_gives_the_same_events_however_it_is_split)
{
	check_every_split(AN_TOOL_USE, an_tool_use_events);
}
END_TEST

START_TEST(crlf_line_ends_give_the_same_events_however_they_are_split)
{
	static const char *const want[] = {"message_start", "{\"a\":1}", "", "second", "", "", "x",
	                                   "last",          NULL};

	/* A split between '\r' and '\n' must not make a phantom blank line. */
	check_every_split("event: message_start\r\ndata: {\"a\":1}\r\n\r\n"
	                  "data: second\r\n\r\n"
	                  "data:\r\n\r\n"
	                  "event: x\r\ndata: last\r\n\r\n",
	                  want);
}
END_TEST

START_TEST(lone_cr_line_ends_are_line_ends)
{
	static const char *const want[] = {"e", "one", "", "two", NULL};

	check_every_split("event: e\rdata: one\r\rdata: two\r\r", want);
}
END_TEST

START_TEST(mixed_line_ends_in_one_stream_are_all_understood)
{
	static const char *const want[] = {"", "a\nb\nc", "", "d", NULL};

	check_every_split("data: a\r\ndata: b\rdata: c\n\r\ndata: d\n\r", want);
}
END_TEST

START_TEST(comments_and_keep_alives_are_ignored)
{
	static const char *const want[] = {"", "{\"x\":1}", "", "{\"y\":2}", NULL};

	check_every_split(": OPENROUTER PROCESSING\n\n"
	                  ": keep-alive\n"
	                  "data: {\"x\":1}\n"
	                  ":comment inside an event\n\n"
	                  ":\n\n"
	                  "data: {\"y\":2}\n\n",
	                  want);
}
END_TEST

START_TEST(multi_line_data_is_joined_with_newlines)
{
	static const char *const want[] = {"", "first\nsecond\n\nfourth", "", "\n", NULL};

	check_every_split("data: first\ndata: second\ndata\ndata: fourth\n\n"
	                  "data:\ndata:\n\n",
	                  want);
}
END_TEST

START_TEST(utf8_text_passes_through_byte_for_byte)
{
	static const char *const want[] = {
	    "",
	    "{\"delta\":{\"content\":\"na\xc3\xafve \xe2\x82\xac\xf0\x9f\x98\x80 \xe6\x97\xa5\"}}",
	    "\xc3\xa9v\xc3\xa9nement", "\xe2\x9c\x93", NULL};

	/* Splits land inside each multi-byte character; none may be altered. */
	check_every_split(
	    "data: {\"delta\":{\"content\":\"na\xc3\xafve \xe2\x82\xac\xf0\x9f\x98\x80 "
	    "\xe6\x97\xa5\"}}\n\n"
	    "event: \xc3\xa9v\xc3\xa9nement\ndata: \xe2\x9c\x93\n\n",
	    want);
}
END_TEST

START_TEST(exactly_one_space_after_the_colon_is_removed)
{
	static const char *const want[] = {"", " two spaces", "", "none", "", "", NULL};

	check_every_split("data:  two spaces\n\ndata:none\n\ndata: \n\n", want);
}
END_TEST

START_TEST(id_retry_and_unknown_fields_dispatch_nothing_by_themselves)
{
	static const char *const want[] = {"", "kept", NULL};

	check_every_split("id: 7\nretry: 3000\n\n"
	                  "foo: bar\nid\n\n"
	                  "\n\n\n"
	                  "id: 8\nfoo: bar\ndata: kept\nretry: x\n\n",
	                  want);
}
END_TEST

START_TEST(an_event_name_without_data_is_dispatched_with_empty_data)
{
	static const char *const want[] = {"ping", "", NULL};

	check_every_split("event: ping\n\n", want);
}
END_TEST

START_TEST(the_last_event_needs_no_blank_line_or_final_newline)
{
	static const char *const want1[] = {"", "a", "done", "{\"b\":2}", NULL};
	static const char *const want2[] = {"", "a", "", "tail", NULL};

	check_every_split("data: a\n\nevent: done\ndata: {\"b\":2}\n", want1);
	check_every_split("data: a\n\ndata: tail", want2);
}
END_TEST

START_TEST(a_byte_order_mark_at_the_start_is_skipped)
{
	static const char *const want[] = {"start", "x", NULL};

	check_every_split("\xEF\xBB\xBF"
	                  "event: start\ndata: x\n\n",
	                  want);
}
END_TEST

START_TEST(an_event_over_the_cap_fails_the_feed_and_stays_failed)
{
	struct rec r;
	llm_sse *s;

	rec_init(&r);
	s = llm_sse_new(record, &r, 16);
	ck_assert_int_eq(llm_sse_feed(s, "data: short\n\n", 13), 0);
	ck_assert_int_eq(r.n, 1);
	/* Two lines, each under the cap, whose data together is over it. */
	ck_assert_int_eq(llm_sse_feed(s, "data: 0123456789\n", 17), 0);
	ck_assert_int_eq(llm_sse_feed(s, "data: 0123456789\n", 17), -1);
	ck_assert_int_eq(llm_sse_feed(s, "\n", 1), -1);
	ck_assert_int_eq(llm_sse_finish(s), -1);
	ck_assert_int_eq(r.n, 1);
	llm_sse_free(s);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(a_line_over_the_cap_fails_even_before_it_ends)
{
	struct rec r;
	llm_sse *s;
	char big[64];

	rec_init(&r);
	s = llm_sse_new(record, &r, 32);
	memset(big, 'x', sizeof(big));
	ck_assert_int_eq(llm_sse_feed(s, "data: ", 6), 0);
	ck_assert_int_eq(llm_sse_feed(s, big, sizeof(big)), -1);
	ck_assert_int_eq(r.n, 0);
	llm_sse_free(s);
	mk_buf_release(&r.out);

	/* Comments count too: a flood of keep-alive text without a newline is refused. */
	rec_init(&r);
	s = llm_sse_new(record, &r, 32);
	ck_assert_int_eq(llm_sse_feed(s, ":", 1), 0);
	ck_assert_int_eq(llm_sse_feed(s, big, sizeof(big)), -1);
	llm_sse_free(s);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(an_event_whose_name_and_data_together_exceed_the_cap_fails)
{
	struct rec r;
	llm_sse *s;

	rec_init(&r);
	s = llm_sse_new(record, &r, 16);
	/* Each line fits; the event (8 bytes of name, 9 of data) does not. */
	ck_assert_int_eq(llm_sse_feed(s, "event: abcdefgh\ndata: 012345678\n", 32), 0);
	ck_assert_int_eq(llm_sse_feed(s, "\n", 1), -1);
	ck_assert_int_eq(r.n, 0);
	llm_sse_free(s);
	mk_buf_release(&r.out);

	rec_init(&r);
	s = llm_sse_new(record, &r, 16);
	ck_assert_int_eq(llm_sse_feed(s, "event: 0123456789abcdef!\n", 25), -1);
	llm_sse_free(s);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(a_callback_asking_to_stop_stops_the_feed_for_good)
{
	struct rec r;
	llm_sse *s;
	const char *in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";

	rec_init(&r);
	r.stop_at = 2;
	s = llm_sse_new(record, &r, 0);
	ck_assert_int_eq(llm_sse_feed(s, in, strlen(in)), 1);
	ck_assert_int_eq(r.n, 2);
	ck_assert_int_eq(llm_sse_feed(s, in, strlen(in)), 1);
	ck_assert_int_eq(llm_sse_finish(s), 1);
	ck_assert_int_eq(r.n, 2);
	llm_sse_free(s);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(a_stop_asked_by_the_pending_event_at_finish_is_reported)
{
	struct rec r;
	llm_sse *s;

	rec_init(&r);
	r.stop_at = 1;
	s = llm_sse_new(record, &r, 0);
	ck_assert_int_eq(llm_sse_feed(s, "data: x", 7), 0);
	ck_assert_int_eq(r.n, 0);
	ck_assert_int_eq(llm_sse_finish(s), 1);
	ck_assert_int_eq(r.n, 1);
	llm_sse_free(s);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(feeding_after_finish_is_ignored)
{
	struct rec r;
	llm_sse *s;

	rec_init(&r);
	s = llm_sse_new(record, &r, 0);
	ck_assert_int_eq(llm_sse_finish(s), 0);
	ck_assert_int_eq(llm_sse_feed(s, "data: late\n\n", 12), 1);
	ck_assert_int_eq(r.n, 0);
	llm_sse_free(s);
	llm_sse_free(NULL);
	mk_buf_release(&r.out);
}
END_TEST

START_TEST(an_empty_stream_gives_no_events)
{
	static const char *const want[] = {NULL};

	check_every_split("", want);
	check_every_split("\n\n\r\n:\n", want);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("llm_sse");
	TCase *t = tcase_create("parse");

	tcase_add_test(t, an_openai_text_stream_gives_the_same_events_however_it_is_split);
	tcase_add_test(t, an_openai_tool_call_stream_gives_the_same_events_however_it_is_split);
	tcase_add_test(t, an_anthropic_stream_with_pings_gives_the_same_events_however_it_is_split);
	tcase_add_test(t, crlf_line_ends_give_the_same_events_however_they_are_split);
	tcase_add_test(t, lone_cr_line_ends_are_line_ends);
	tcase_add_test(t, mixed_line_ends_in_one_stream_are_all_understood);
	tcase_add_test(t, comments_and_keep_alives_are_ignored);
	tcase_add_test(t, multi_line_data_is_joined_with_newlines);
	tcase_add_test(t, utf8_text_passes_through_byte_for_byte);
	tcase_add_test(t, exactly_one_space_after_the_colon_is_removed);
	tcase_add_test(t, id_retry_and_unknown_fields_dispatch_nothing_by_themselves);
	tcase_add_test(t, an_event_name_without_data_is_dispatched_with_empty_data);
	tcase_add_test(t, the_last_event_needs_no_blank_line_or_final_newline);
	tcase_add_test(t, a_byte_order_mark_at_the_start_is_skipped);
	tcase_add_test(t, an_event_over_the_cap_fails_the_feed_and_stays_failed);
	tcase_add_test(t, a_line_over_the_cap_fails_even_before_it_ends);
	tcase_add_test(t, an_event_whose_name_and_data_together_exceed_the_cap_fails);
	tcase_add_test(t, a_callback_asking_to_stop_stops_the_feed_for_good);
	tcase_add_test(t, a_stop_asked_by_the_pending_event_at_finish_is_reported);
	tcase_add_test(t, feeding_after_finish_is_ignored);
	tcase_add_test(t, an_empty_stream_gives_no_events);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
