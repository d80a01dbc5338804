/*
 * llm_double_gen.c - the shorthand step keys: whole provider responses built
 * from a text and/or a list of tool calls, field for field as in the
 * contract's examples (§1.4, §1.5, §3.4, §3.5), so the official SDKs and our
 * clients parse them like the real thing.
 *
 *   openai_text         "Hello"                      (OpenAI dialect and Azure)
 *   openai_tool_calls   [{"id","name","arguments"}]  arguments: JSON text, or any
 *                                                    JSON value (then serialised)
 *   anthropic_text      "Hello"                      (Anthropic Messages)
 *   anthropic_tool_uses [{"id","name","input": {}}]
 *
 * Without "stream": true in the request the body is one JSON object; with it,
 * the SSE stream the provider sends: OpenAI - a role chunk, the content in
 * small pieces, per-index tool-call fragments whose arguments come in pieces,
 * the finish_reason chunk, a usage chunk (choices: []) when the request asked
 * stream_options.include_usage, then [DONE]; Anthropic - message_start, per
 * block start/deltas/stop (a ping after the first start; input_json_delta
 * fragments beginning with ""), message_delta with cumulative usage,
 * message_stop, and no [DONE]. Usage is always 11 prompt/input and 5
 * completion/output tokens. Pieces never split a UTF-8 character (the
 * fixtures in tests/data/llm/ do that on purpose).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_double.h"
#include "mk_json.h"
#include "mk_time.h"

#define PROMPT_TOKENS     11
#define COMPLETION_TOKENS 5
#define TEXT_PIECE        4 /* bytes per content delta (rounded up to whole characters) */
#define ARGS_PIECE        6 /* bytes per arguments / partial_json fragment */

int ld_gen_wanted(const cJSON *step)
{
	return cJSON_GetObjectItemCaseSensitive(step, "openai_text") ||
	       cJSON_GetObjectItemCaseSensitive(step, "openai_tool_calls") ||
	       cJSON_GetObjectItemCaseSensitive(step, "anthropic_text") ||
	       cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses");
}

/* Length of the piece of s[off..len) that starts at off: about max bytes, whole characters. */
static size_t piece(const char *s, size_t len, size_t off, size_t max)
{
	size_t n = len - off < max ? len - off : max;

	while (off + n < len && ((unsigned char)s[off + n] & 0xc0) == 0x80)
		n++;
	return n;
}

static cJSON *str_n(const char *s, size_t n)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.*s", (int)n, s);
	return cJSON_CreateString(buf);
}

static void emit(mk_buf *out, const char *event, const cJSON *data)
{
	char *s = mk_json_print(data);

	if (event)
		mk_buf_printf(out, "event: %s\n", event);
	mk_buf_printf(out, "data: %s\n\n", s ? s : "{}");
	cJSON_free(s);
}

/* The arguments of an openai_tool_calls entry as JSON text (malloc'd; NULL: no memory). */
static char *arguments_of(const cJSON *call)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(call, "arguments");
	char *printed, *s;

	if (cJSON_IsString(a))
		return strdup(a->valuestring);
	if (!a)
		return strdup("{}");
	printed = mk_json_print(a);
	s = printed ? strdup(printed) : NULL;
	cJSON_free(printed);
	return s;
}

/* ------------------------------------------------------------------ checks */

static int check_calls(const cJSON *calls, const char *key, const char *args_key,
                       int args_must_be_object, char *err, size_t errlen)
{
	const cJSON *c;
	int i = 0;

	if (!cJSON_IsArray(calls)) {
		snprintf(err, errlen, "%s is not an array", key);
		return -1;
	}
	cJSON_ArrayForEach(c, calls)
	{
		const char *id = mk_json_str(c, "id"), *name = mk_json_str(c, "name");
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(c, args_key);

		if (!id || !name || strlen(id) > 60 || strlen(name) > 60 ||
		    (args_must_be_object && !cJSON_IsObject(a))) {
			snprintf(err, errlen,
			         "%s[%d] needs \"id\", \"name\" (short strings) and %s", key, i,
			         args_must_be_object ? "an \"input\" object" : "\"arguments\"");
			return -1;
		}
		i++;
	}
	return 0;
}

/* ------------------------------------------------------------------ OpenAI */

static void add_usage(cJSON *o)
{
	cJSON *u = cJSON_AddObjectToObject(o, "usage");

	cJSON_AddNumberToObject(u, "prompt_tokens", PROMPT_TOKENS);
	cJSON_AddNumberToObject(u, "completion_tokens", COMPLETION_TOKENS);
	cJSON_AddNumberToObject(u, "total_tokens", PROMPT_TOKENS + COMPLETION_TOKENS);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "prompt_tokens_details"),
	                        "cached_tokens", 0);
	cJSON_AddNumberToObject(cJSON_AddObjectToObject(u, "completion_tokens_details"),
	                        "reasoning_tokens", 0);
}

static cJSON *oa_head(const ld_req *r, const char *object)
{
	cJSON *o = cJSON_CreateObject();
	char id[48];

	snprintf(id, sizeof(id), "chatcmpl-double%06lu", r->seq);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "object", object);
	cJSON_AddNumberToObject(o, "created", (double)(mk_now_ms() / 1000));
	cJSON_AddStringToObject(o, "model", r->model);
	cJSON_AddStringToObject(o, "service_tier", "default");
	cJSON_AddStringToObject(o, "system_fingerprint", "fp_double");
	return o;
}

static void oa_json(const ld_req *r, const cJSON *step, mk_buf *out)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(step, "openai_text");
	const cJSON *calls = cJSON_GetObjectItemCaseSensitive(step, "openai_tool_calls"), *c;
	const char *finish = mk_json_str(step, "finish_reason");
	int ncalls = cJSON_GetArraySize(calls);
	cJSON *o = oa_head(r, "chat.completion"), *ch, *m, *tcs;
	char *s;

	ch = cJSON_CreateObject();
	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
	cJSON_AddNumberToObject(ch, "index", 0);
	m = cJSON_AddObjectToObject(ch, "message");
	cJSON_AddStringToObject(m, "role", "assistant");
	if (cJSON_IsString(text))
		cJSON_AddStringToObject(m, "content", text->valuestring);
	else
		cJSON_AddNullToObject(m, "content");
	cJSON_AddNullToObject(m, "refusal");
	if (ncalls > 0) {
		tcs = cJSON_AddArrayToObject(m, "tool_calls");
		cJSON_ArrayForEach(c, calls)
		{
			cJSON *tc = cJSON_CreateObject(), *fn;
			char *args = arguments_of(c);

			cJSON_AddStringToObject(tc, "id", mk_json_str(c, "id"));
			cJSON_AddStringToObject(tc, "type", "function");
			fn = cJSON_AddObjectToObject(tc, "function");
			cJSON_AddStringToObject(fn, "name", mk_json_str(c, "name"));
			cJSON_AddStringToObject(fn, "arguments", args ? args : "");
			free(args);
			cJSON_AddItemToArray(tcs, tc);
		}
	}
	cJSON_AddArrayToObject(m, "annotations");
	cJSON_AddNullToObject(ch, "logprobs");
	cJSON_AddStringToObject(ch, "finish_reason",
	                        finish       ? finish
	                        : ncalls > 0 ? "tool_calls"
	                                     : "stop");
	add_usage(o);
	s = mk_json_print(o);
	mk_buf_puts(out, s ? s : "{}");
	cJSON_free(s);
	cJSON_Delete(o);
}

/* One chunk with one choice whose delta is `delta` (taken) and finish_reason `finish`. */
static void oa_chunk(const ld_req *r, mk_buf *out, cJSON *delta, const char *finish)
{
	cJSON *o = oa_head(r, "chat.completion.chunk"), *ch = cJSON_CreateObject();

	cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
	cJSON_AddNumberToObject(ch, "index", 0);
	cJSON_AddItemToObject(ch, "delta", delta);
	cJSON_AddNullToObject(ch, "logprobs");
	if (finish)
		cJSON_AddStringToObject(ch, "finish_reason", finish);
	else
		cJSON_AddNullToObject(ch, "finish_reason");
	if (r->include_usage)
		cJSON_AddNullToObject(o, "usage");
	emit(out, NULL, o);
	cJSON_Delete(o);
}

static cJSON *tool_delta(int index, const char *id, const char *name, const char *args,
                         size_t args_len)
{
	cJSON *t = cJSON_CreateObject(), *fn;

	cJSON_AddNumberToObject(t, "index", index);
	if (id) {
		cJSON_AddStringToObject(t, "id", id);
		cJSON_AddStringToObject(t, "type", "function");
	}
	fn = cJSON_AddObjectToObject(t, "function");
	if (name)
		cJSON_AddStringToObject(fn, "name", name);
	cJSON_AddItemToObject(fn, "arguments", str_n(args, args_len));
	return t;
}

static void oa_stream(const ld_req *r, const cJSON *step, mk_buf *out)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(step, "openai_text");
	const cJSON *calls = cJSON_GetObjectItemCaseSensitive(step, "openai_tool_calls"), *c;
	const char *finish = mk_json_str(step, "finish_reason");
	int ncalls = cJSON_GetArraySize(calls), index = 0, role_sent = 0;
	cJSON *d;

	if (cJSON_IsString(text) || ncalls == 0) {
		const char *s = cJSON_IsString(text) ? text->valuestring : "";
		size_t len = strlen(s), off = 0, n;

		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "role", "assistant");
		cJSON_AddStringToObject(d, "content", "");
		cJSON_AddNullToObject(d, "refusal");
		oa_chunk(r, out, d, NULL);
		role_sent = 1;
		for (; off < len; off += n) {
			n = piece(s, len, off, TEXT_PIECE);
			d = cJSON_CreateObject();
			cJSON_AddItemToObject(d, "content", str_n(s + off, n));
			oa_chunk(r, out, d, NULL);
		}
	}
	cJSON_ArrayForEach(c, calls)
	{
		char *args = arguments_of(c);
		size_t len = args ? strlen(args) : 0, off = 0, n;

		d = cJSON_CreateObject();
		if (!role_sent) {
			cJSON_AddStringToObject(d, "role", "assistant");
			cJSON_AddNullToObject(d, "content");
			role_sent = 1;
		}
		cJSON_AddItemToArray(
		    cJSON_AddArrayToObject(d, "tool_calls"),
		    tool_delta(index, mk_json_str(c, "id"), mk_json_str(c, "name"), "", 0));
		oa_chunk(r, out, d, NULL);
		for (; off < len; off += n) {
			n = piece(args, len, off, ARGS_PIECE);
			d = cJSON_CreateObject();
			cJSON_AddItemToArray(cJSON_AddArrayToObject(d, "tool_calls"),
			                     tool_delta(index, NULL, NULL, args + off, n));
			oa_chunk(r, out, d, NULL);
		}
		free(args);
		index++;
	}
	oa_chunk(r, out, cJSON_CreateObject(),
	         finish       ? finish
	         : ncalls > 0 ? "tool_calls"
	                      : "stop");
	if (r->include_usage) {
		cJSON *o = oa_head(r, "chat.completion.chunk");

		cJSON_AddArrayToObject(o, "choices");
		add_usage(o);
		emit(out, NULL, o);
		cJSON_Delete(o);
	}
	mk_buf_puts(out, "data: [DONE]\n\n");
}

/* ------------------------------------------------------------------ Anthropic */

static cJSON *an_usage(int output_tokens, int full)
{
	cJSON *u = cJSON_CreateObject();

	cJSON_AddNumberToObject(u, "input_tokens", PROMPT_TOKENS);
	cJSON_AddNumberToObject(u, "cache_creation_input_tokens", 0);
	cJSON_AddNumberToObject(u, "cache_read_input_tokens", 0);
	cJSON_AddNumberToObject(u, "output_tokens", output_tokens);
	if (full)
		cJSON_AddStringToObject(u, "service_tier", "standard");
	return u;
}

static cJSON *an_message(const ld_req *r, const char *stop_reason, int output_tokens)
{
	cJSON *o = cJSON_CreateObject();
	char id[48];

	snprintf(id, sizeof(id), "msg_double%06lu", r->seq);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "type", "message");
	cJSON_AddStringToObject(o, "role", "assistant");
	cJSON_AddStringToObject(o, "model", r->model);
	cJSON_AddArrayToObject(o, "content");
	if (stop_reason)
		cJSON_AddStringToObject(o, "stop_reason", stop_reason);
	else
		cJSON_AddNullToObject(o, "stop_reason");
	cJSON_AddNullToObject(o, "stop_sequence");
	cJSON_AddItemToObject(o, "usage", an_usage(output_tokens, 1));
	return o;
}

static void an_json(const ld_req *r, const cJSON *step, mk_buf *out)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text");
	const cJSON *uses = cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses"), *u;
	const char *stop = mk_json_str(step, "stop_reason");
	int nuses = cJSON_GetArraySize(uses);
	cJSON *o = an_message(r,
	                      stop        ? stop
	                      : nuses > 0 ? "tool_use"
	                                  : "end_turn",
	                      COMPLETION_TOKENS);
	cJSON *content = cJSON_GetObjectItemCaseSensitive(o, "content"), *b;
	char *s;

	if (cJSON_IsString(text)) {
		b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "type", "text");
		cJSON_AddStringToObject(b, "text", text->valuestring);
		cJSON_AddItemToArray(content, b);
	}
	cJSON_ArrayForEach(u, uses)
	{
		b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "type", "tool_use");
		cJSON_AddStringToObject(b, "id", mk_json_str(u, "id"));
		cJSON_AddStringToObject(b, "name", mk_json_str(u, "name"));
		cJSON_AddItemToObject(
		    b, "input", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(u, "input"), 1));
		cJSON_AddItemToArray(content, b);
	}
	s = mk_json_print(o);
	mk_buf_puts(out, s ? s : "{}");
	cJSON_free(s);
	cJSON_Delete(o);
}

/* {"type": type, "index": index} plus, when given, key: value (taken). */
static void an_event(mk_buf *out, const char *type, int index, const char *key, cJSON *value)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddNumberToObject(o, "index", index);
	if (key)
		cJSON_AddItemToObject(o, key, value);
	emit(out, type, o);
	cJSON_Delete(o);
}

static cJSON *an_delta(const char *type, const char *key, const char *s, size_t n)
{
	cJSON *d = cJSON_CreateObject();

	cJSON_AddStringToObject(d, "type", type);
	cJSON_AddItemToObject(d, key, str_n(s, n));
	return d;
}

static void an_stream(const ld_req *r, const cJSON *step, mk_buf *out)
{
	const cJSON *text = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text");
	const cJSON *uses = cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses"), *u;
	const char *stop = mk_json_str(step, "stop_reason");
	int nuses = cJSON_GetArraySize(uses), index = 0;
	cJSON *o, *b, *d;

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "message_start");
	cJSON_AddItemToObject(o, "message", an_message(r, NULL, 1));
	emit(out, "message_start", o);
	cJSON_Delete(o);

	if (cJSON_IsString(text) || nuses == 0) {
		const char *s = cJSON_IsString(text) ? text->valuestring : "";
		size_t len = strlen(s), off = 0, n;

		b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "type", "text");
		cJSON_AddStringToObject(b, "text", "");
		an_event(out, "content_block_start", index, "content_block", b);
		mk_buf_puts(out, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
		for (; off < len; off += n) {
			n = piece(s, len, off, TEXT_PIECE);
			an_event(out, "content_block_delta", index, "delta",
			         an_delta("text_delta", "text", s + off, n));
		}
		an_event(out, "content_block_stop", index, NULL, NULL);
		index++;
	}
	cJSON_ArrayForEach(u, uses)
	{
		char *json = mk_json_print(cJSON_GetObjectItemCaseSensitive(u, "input"));
		size_t len = json ? strlen(json) : 0, off = 0, n;

		b = cJSON_CreateObject();
		cJSON_AddStringToObject(b, "type", "tool_use");
		cJSON_AddStringToObject(b, "id", mk_json_str(u, "id"));
		cJSON_AddStringToObject(b, "name", mk_json_str(u, "name"));
		cJSON_AddObjectToObject(b, "input");
		an_event(out, "content_block_start", index, "content_block", b);
		if (index == 0)
			mk_buf_puts(out, "event: ping\ndata: {\"type\": \"ping\"}\n\n");
		an_event(out, "content_block_delta", index, "delta",
		         an_delta("input_json_delta", "partial_json", "", 0));
		for (; off < len; off += n) {
			n = piece(json, len, off, ARGS_PIECE);
			an_event(out, "content_block_delta", index, "delta",
			         an_delta("input_json_delta", "partial_json", json + off, n));
		}
		an_event(out, "content_block_stop", index, NULL, NULL);
		cJSON_free(json);
		index++;
	}

	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "message_delta");
	d = cJSON_AddObjectToObject(o, "delta");
	cJSON_AddStringToObject(d, "stop_reason",
	                        stop        ? stop
	                        : nuses > 0 ? "tool_use"
	                                    : "end_turn");
	cJSON_AddNullToObject(d, "stop_sequence");
	/* Cumulative: the final totals, not increments over message_start's. */
	cJSON_AddItemToObject(o, "usage", an_usage(COMPLETION_TOKENS, 0));
	emit(out, "message_delta", o);
	cJSON_Delete(o);
	mk_buf_puts(out, "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
}

/* ------------------------------------------------------------------ entry */

int ld_gen_check(const cJSON *step, char *err, size_t errlen)
{
	const cJSON *v;
	int oa = cJSON_GetObjectItemCaseSensitive(step, "openai_text") ||
	         cJSON_GetObjectItemCaseSensitive(step, "openai_tool_calls");
	int an = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text") ||
	         cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses");

	if (oa && an) {
		snprintf(err, errlen, "mixes openai_* and anthropic_* keys");
		return -1;
	}
	if (((v = cJSON_GetObjectItemCaseSensitive(step, "openai_text")) && !cJSON_IsString(v)) ||
	    ((v = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text")) &&
	     !cJSON_IsString(v))) {
		snprintf(err, errlen, "%s is not a string", v->string);
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(step, "openai_tool_calls")) &&
	    check_calls(v, "openai_tool_calls", "arguments", 0, err, errlen) != 0)
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses")) &&
	    check_calls(v, "anthropic_tool_uses", "input", 1, err, errlen) != 0)
		return -1;
	return 0;
}

int ld_gen_fits(const ld_req *r, const cJSON *step, char *why, size_t whylen)
{
	int an = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text") ||
	         cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses");

	if (!ld_gen_wanted(step) || an == (r->dialect == LD_ANTHROPIC))
		return 0;
	snprintf(why, whylen, "%s (it has %s keys), the request is %s (POST %s)",
	         an ? "an Anthropic Messages request" : "an OpenAI Chat Completions request",
	         an ? "anthropic_*" : "openai_*",
	         r->dialect == LD_ANTHROPIC ? "Anthropic Messages" : "OpenAI Chat Completions",
	         r->path);
	return -1;
}

int ld_gen_body(const ld_req *r, const cJSON *step, mk_buf *out, char *err, size_t errlen)
{
	int an = cJSON_GetObjectItemCaseSensitive(step, "anthropic_text") ||
	         cJSON_GetObjectItemCaseSensitive(step, "anthropic_tool_uses");

	if (ld_gen_fits(r, step, err, errlen) != 0)
		return -1;
	if (an)
		(r->stream ? an_stream : an_json)(r, step, out);
	else
		(r->stream ? oa_stream : oa_json)(r, step, out);
	return 0;
}
