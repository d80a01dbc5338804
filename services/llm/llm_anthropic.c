/*
 * llm_anthropic.c - the Anthropic Messages dialect (libllm, provider layer).
 *
 * It builds the request (contract llm-api.md §3.2-3.3): system messages
 * become the top-level "system"; an assistant's tool calls become tool_use
 * blocks whose input is a JSON *object*; tool results go back as
 * tool_result blocks in one user message, first, before any text; turns of
 * the same role are merged into one message; max_tokens is always sent. It
 * reads a whole reply (§3.4) and a streamed one (§3.5): typed events,
 * pings, input_json_delta fragments joined per block and parsed when the
 * block stops, cumulative usage in message_delta, message_stop as the end
 * (there is no [DONE]), and an error event after a 200.
 *
 * Here only what differs between dialects; the HTTP, the retries, the
 * error statuses and the accumulation are in llm_provider.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "llm_dialect.h"
#include "mk_json.h"
#include "mk_log.h"

#define API_VERSION        "2023-06-01"
#define DEFAULT_MAX_TOKENS 4096

/* ---- the request ---------------------------------------------------------- */

static const cJSON *member(const cJSON *o, const char *name)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

static int blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
			return 0;
	return 1;
}

/* {"type":"object","properties":{}}: the schema of a tool without parameters. */
static cJSON *empty_schema(void)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddStringToObject(o, "type", "object") ||
	    !cJSON_AddObjectToObject(o, "properties")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* The messages being built: consecutive blocks of one role share a message. */
struct conv {
	cJSON *msgs;
	cJSON *content; /* the last message's blocks */
	int user;       /* the last message's role: 1 user, 0 assistant, -1 none */
};

static cJSON *block(struct conv *cv, int user, const char *type)
{
	cJSON *b;

	if (!cv->content || cv->user != user) {
		cJSON *m = cJSON_CreateObject();

		if (!m || !cJSON_AddItemToArray(cv->msgs, m)) {
			cJSON_Delete(m);
			return NULL;
		}
		if (!cJSON_AddStringToObject(m, "role", user ? "user" : "assistant") ||
		    !(cv->content = cJSON_AddArrayToObject(m, "content")))
			return NULL;
		cv->user = user;
	}
	b = cJSON_CreateObject();
	if (!b || !cJSON_AddItemToArray(cv->content, b)) {
		cJSON_Delete(b);
		return NULL;
	}
	return cJSON_AddStringToObject(b, "type", type) ? b : NULL;
}

/* A call's arguments as the object tool_use.input must be: {} when empty or not an object. */
static cJSON *input_of(const llm_tool_call *tc)
{
	char why[128];
	cJSON *v;

	if (blank(tc->arguments))
		return cJSON_CreateObject();
	v = llm_json_object(tc->arguments, why, sizeof(why));
	if (v)
		return v;
	/* The model wrote them; the provider would refuse the whole history over them. */
	MK_WARN("LLM-ARGS-INVALID", NULL,
	        "arguments of tool call '%.64s' are not a JSON object (%s); sent as {}", tc->id,
	        why);
	return cJSON_CreateObject();
}

static llm_status add_message(struct conv *cv, const llm_message *m, size_t i, char *err,
                              size_t errlen)
{
	cJSON *b;

	switch (m->role) {
	case LLM_ROLE_SYSTEM: return LLM_OK; /* gathered into "system" */
	case LLM_ROLE_USER:
	case LLM_ROLE_ASSISTANT:
		/* Empty text blocks are refused; a turn with nothing in it is left out. */
		if (m->content && *m->content) {
			b = block(cv, m->role == LLM_ROLE_USER, "text");
			if (!b || !cJSON_AddStringToObject(b, "text", m->content))
				return llm_oom(err, errlen);
		}
		for (size_t k = 0; m->role == LLM_ROLE_ASSISTANT && k < m->ncalls; k++) {
			const llm_tool_call *tc = &m->calls[k];
			cJSON *in;

			if (!tc->id || !*tc->id || !tc->name || !*tc->name) {
				snprintf(err, errlen,
				         "message %zu: tool call %zu has no id or no name", i, k);
				return LLM_E_BAD_REQUEST;
			}
			b = block(cv, 0, "tool_use");
			in = b ? input_of(tc) : NULL;
			if (!in || !cJSON_AddStringToObject(b, "id", tc->id) ||
			    !cJSON_AddStringToObject(b, "name", tc->name) ||
			    !cJSON_AddItemToObject(b, "input", in)) {
				cJSON_Delete(in);
				return llm_oom(err, errlen);
			}
		}
		return LLM_OK;
	case LLM_ROLE_TOOL:
		if (!m->tool_call_id || !*m->tool_call_id) {
			snprintf(err, errlen, "message %zu: a tool result needs the id of its call",
			         i);
			return LLM_E_BAD_REQUEST;
		}
		/* Results follow the assistant turn, so they open the user message: first (§3.3).
		 */
		b = block(cv, 1, "tool_result");
		if (!b || !cJSON_AddStringToObject(b, "tool_use_id", m->tool_call_id) ||
		    (m->content && *m->content &&
		     !cJSON_AddStringToObject(b, "content", m->content)) ||
		    (m->is_error && !cJSON_AddTrueToObject(b, "is_error")))
			return llm_oom(err, errlen);
		return LLM_OK;
	}
	snprintf(err, errlen, "message %zu has an unknown role", i);
	return LLM_E_BAD_REQUEST;
}

/* A message that is one text block is sent in the short form: "content": "text". */
static int shorten(cJSON *msgs)
{
	cJSON *m;

	cJSON_ArrayForEach(m, msgs)
	{
		cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *s;
		const cJSON *b = cJSON_GetArrayItem(content, 0);
		const char *type = mk_json_str(b, "type"), *text = mk_json_str(b, "text");

		if (cJSON_GetArraySize(content) != 1 || !type || strcmp(type, "text") != 0 || !text)
			continue;
		s = cJSON_CreateString(text);
		if (!s || !cJSON_ReplaceItemInObjectCaseSensitive(m, "content", s)) {
			cJSON_Delete(s);
			return -1;
		}
	}
	return 0;
}

static llm_status add_system(cJSON *root, const llm_request *req, char *err, size_t errlen)
{
	mk_buf sys;
	int bad = 0;

	mk_buf_init(&sys, 0);
	for (size_t i = 0; i < req->nmessages; i++) {
		const llm_message *m = &req->messages[i];

		if (m->role != LLM_ROLE_SYSTEM || !m->content || !*m->content)
			continue;
		if (sys.len > 0)
			bad |= mk_buf_puts(&sys, "\n\n");
		bad |= mk_buf_puts(&sys, m->content);
	}
	if (!bad && sys.len > 0 && !cJSON_AddStringToObject(root, "system", sys.data))
		bad = 1;
	mk_buf_release(&sys);
	return bad ? llm_oom(err, errlen) : LLM_OK;
}

static llm_status add_tools(cJSON *root, const llm_request *req, char *err, size_t errlen)
{
	cJSON *tools = cJSON_AddArrayToObject(root, "tools"), *tc;
	const char *choice = req->tool_choice, *type = NULL;

	if (!tools)
		return llm_oom(err, errlen);
	for (size_t i = 0; i < req->ntools; i++) {
		const llm_tool *t = &req->tools[i];
		cJSON *o = cJSON_CreateObject(), *schema;
		char why[128];

		if (!o || !cJSON_AddItemToArray(tools, o)) {
			cJSON_Delete(o);
			return llm_oom(err, errlen);
		}
		if (!t->name || !*t->name) {
			snprintf(err, errlen, "tool %zu has no name", i);
			return LLM_E_BAD_REQUEST;
		}
		schema = blank(t->parameters) ? empty_schema()
		                              : llm_json_object(t->parameters, why, sizeof(why));
		if (!schema && !blank(t->parameters)) {
			snprintf(err, errlen,
			         "the parameters of tool '%.64s' are not a JSON object (%s)",
			         t->name, why);
			return LLM_E_BAD_REQUEST;
		}
		/* input_schema, not parameters; no {"type":"function"} wrapper. */
		if (!schema || !cJSON_AddStringToObject(o, "name", t->name) ||
		    (t->description &&
		     !cJSON_AddStringToObject(o, "description", t->description)) ||
		    !cJSON_AddItemToObject(o, "input_schema", schema)) {
			cJSON_Delete(schema);
			return llm_oom(err, errlen);
		}
	}
	if (!choice || !*choice)
		return LLM_OK; /* the default with tools: auto */
	if (strcmp(choice, "auto") == 0)
		type = "auto";
	else if (strcmp(choice, "required") == 0)
		type = "any";
	else if (strcmp(choice, "none") == 0)
		type = "none";
	for (size_t i = 0; !type && i < req->ntools; i++)
		if (req->tools[i].name && strcmp(req->tools[i].name, choice) == 0)
			type = "tool";
	if (!type) {
		snprintf(err, errlen, "the tool choice '%.64s' is not one of the tools", choice);
		return LLM_E_BAD_REQUEST;
	}
	tc = cJSON_AddObjectToObject(root, "tool_choice");
	if (!tc || !cJSON_AddStringToObject(tc, "type", type) ||
	    (strcmp(type, "tool") == 0 && !cJSON_AddStringToObject(tc, "name", choice)))
		return llm_oom(err, errlen);
	return LLM_OK;
}

static llm_status add_body(const llm_conf *c, const llm_request *req, llm_wire *w, char *err,
                           size_t errlen)
{
	cJSON *root = cJSON_CreateObject();
	struct conv cv = {.user = -1};
	llm_status st = LLM_OK;

	/* max_tokens is required (§3.2): the most common 400 of all. */
	if (!root || !cJSON_AddStringToObject(root, "model", c->model) ||
	    !cJSON_AddNumberToObject(root, "max_tokens",
	                             req->max_tokens > 0 ? req->max_tokens : DEFAULT_MAX_TOKENS)) {
		st = llm_oom(err, errlen);
		goto out;
	}
	st = add_system(root, req, err, errlen);
	if (st == LLM_OK && !(cv.msgs = cJSON_AddArrayToObject(root, "messages")))
		st = llm_oom(err, errlen);
	for (size_t i = 0; st == LLM_OK && i < req->nmessages; i++)
		st = add_message(&cv, &req->messages[i], i, err, errlen);
	if (st == LLM_OK && shorten(cv.msgs) != 0)
		st = llm_oom(err, errlen);
	if (st == LLM_OK && req->ntools > 0)
		st = add_tools(root, req, err, errlen);
	if (st != LLM_OK)
		goto out;
	if ((req->has_temperature &&
	     !cJSON_AddNumberToObject(root, "temperature", req->temperature)) ||
	    (req->stream && !cJSON_AddTrueToObject(root, "stream"))) {
		st = llm_oom(err, errlen);
		goto out;
	}
	return llm_wire_body(w, root, err, errlen);
out:
	cJSON_Delete(root);
	return st;
}

static llm_status build(const llm_conf *c, const llm_request *req, llm_wire *w, char *err,
                        size_t errlen)
{
	llm_status st = add_body(c, req, w, err, errlen);
	int bad = 0;

	if (st != LLM_OK)
		return st;
	/* A base that already ends with /v1 is not given a second one. */
	bad |= llm_wire_url(w, c->base_url, 0);
	bad |= llm_wire_url(w, llm_ends_with(c->base_url, "/v1") ? "/messages" : "/v1/messages", 0);
	bad |= llm_wire_header(w, c, "Content-Type", "application/json");
	bad |= llm_wire_header(w, c, "anthropic-version", API_VERSION);
	if (req->stream)
		bad |= llm_wire_header(w, c, "Accept", "text/event-stream");
	if (c->api_key)
		bad |= llm_wire_header(w, c, "x-api-key", c->api_key);
	return bad ? llm_oom(err, errlen) : LLM_OK;
}

/* ---- the reply -------------------------------------------------------------- */

/* Counts are totals so far, also in message_delta (§3.5): set, never add. */
static void usage(llm_acc *a, const cJSON *u)
{
	static const char *const input[3] = {"input_tokens", "cache_creation_input_tokens",
	                                     "cache_read_input_tokens"};
	long long v;
	int seen = 0;

	if (!cJSON_IsObject(u))
		return;
	for (int i = 0; i < 3; i++) {
		if (mk_json_int(u, input[i], &v) == 0) {
			a->input_parts[i] = (long)v;
			seen = 1;
		}
	}
	if (seen) {
		a->prompt_tokens = 0;
		for (int i = 0; i < 3; i++)
			if (a->input_parts[i] > 0)
				a->prompt_tokens += a->input_parts[i];
	}
	if (mk_json_int(u, "output_tokens", &v) == 0)
		a->completion_tokens = (long)v;
}

static void stop_reason(llm_acc *a, const char *r)
{
	if (!r)
		return;
	a->stop_seen = 1;
	if (strcmp(r, "max_tokens") == 0 || strcmp(r, "model_context_window_exceeded") == 0)
		a->stop = LLM_STOP_LENGTH;
	else if (strcmp(r, "refusal") == 0)
		a->stop = LLM_STOP_FILTERED;
	/* end_turn, stop_sequence, tool_use, pause_turn: the calls present decide. */
}

static int tool_use(llm_acc *a, const cJSON *b, long key, int whole)
{
	llm_acc_call *c = llm_acc_call_add(a, mk_json_str(b, "id"), key);
	const cJSON *in = member(b, "input");
	char *t;
	int rc;

	if (!c || llm_acc_call_name(a, c, mk_json_str(b, "name")) != 0)
		return 1;
	/* In a stream, input is a placeholder {}: the real one comes in deltas. */
	if (!whole || !cJSON_IsObject(in))
		return 0;
	t = mk_json_print(in);
	if (!t)
		return llm_acc_fail(a, LLM_E_UNAVAILABLE, "out of memory reading the reply");
	rc = llm_acc_call_args(a, c, t, strlen(t));
	free(t);
	return rc;
}

static int parse(llm_acc *a, const cJSON *root)
{
	const cJSON *content = member(root, "content"), *b;
	long i = 0;

	llm_acc_model(a, mk_json_str(root, "model"));
	usage(a, member(root, "usage"));
	if (!cJSON_IsArray(content)) {
		llm_acc_fail(a, LLM_E_PROTOCOL, "the model provider's reply has no content");
		return -1;
	}
	cJSON_ArrayForEach(b, content)
	{
		const char *type = mk_json_str(b, "type"), *text = mk_json_str(b, "text");
		int rc = 0;

		if (type && strcmp(type, "text") == 0 && text)
			rc = llm_acc_text(a, text, strlen(text));
		else if (type && strcmp(type, "tool_use") == 0)
			rc = tool_use(a, b, i, 1);
		/* thinking, redacted_thinking, server tools: not ours to pass on */
		if (rc != 0)
			return -1;
		i++;
	}
	stop_reason(a, mk_json_str(root, "stop_reason"));
	return a->status == LLM_OK ? 0 : -1;
}

static llm_acc_call *by_key(llm_acc *a, long key)
{
	for (size_t i = a->ncalls; i-- > 0;)
		if (a->calls[i].key == key)
			return &a->calls[i];
	return NULL;
}

/*
 * A tool_use block stopped: its joined partial_json is the input. Empty
 * means {} (left to llm_provider.c); valid JSON is reprinted compactly, as
 * a whole reply's is; anything else is kept as it came, for the agent to
 * refuse like any malformed arguments (a reply cut by max_tokens ends so).
 */
static int block_stop(llm_acc *a, long key)
{
	llm_acc_call *c = by_key(a, key);
	char why[64], *t;
	cJSON *v;
	int rc;

	if (!c || blank(c->args.data))
		return 0;
	v = mk_json_parse(c->args.data, c->args.len, MK_JSON_MAX_DEPTH, why, sizeof(why));
	t = v ? mk_json_print(v) : NULL;
	cJSON_Delete(v);
	if (!t)
		return 0;
	mk_buf_reset(&c->args);
	rc = llm_acc_call_args(a, c, t, strlen(t));
	free(t);
	return rc;
}

static int delta(llm_acc *a, const cJSON *root, long key)
{
	const cJSON *d = member(root, "delta");
	const char *type = mk_json_str(d, "type"), *s;
	llm_acc_call *c;

	if (!type)
		return 0;
	if (strcmp(type, "text_delta") == 0) {
		s = mk_json_str(d, "text");
		return s ? llm_acc_text(a, s, strlen(s)) : 0;
	}
	if (strcmp(type, "input_json_delta") == 0) {
		s = mk_json_str(d, "partial_json");
		c = by_key(a, key);
		if (!c)
			return llm_acc_fail(a, LLM_E_PROTOCOL,
			                    "the model provider sent input for block %ld, which is "
			                    "not a tool call",
			                    key);
		return s ? llm_acc_call_args(a, c, s, strlen(s)) : 0;
	}
	return 0; /* thinking_delta, signature_delta, citations_delta */
}

static int event(llm_acc *a, const char *name, const char *data, size_t len)
{
	cJSON *root = llm_acc_json(a, data, len);
	const cJSON *b;
	const char *type;
	long long idx = -1;
	int rc = 0;

	if (!root)
		return 1;
	/* The data's own "type" is authoritative; the event line is a fallback. */
	type = mk_json_str(root, "type");
	if (!type)
		type = name;
	mk_json_int(root, "index", &idx);
	if (strcmp(type, "error") == 0 || strcmp(name, "error") == 0) {
		rc = llm_acc_provider_error(a, root);
	} else if (strcmp(type, "message_start") == 0) {
		llm_acc_model(a, mk_json_str(member(root, "message"), "model"));
		usage(a, member(member(root, "message"), "usage"));
	} else if (strcmp(type, "content_block_start") == 0) {
		const char *btype;

		b = member(root, "content_block");
		btype = mk_json_str(b, "type");
		if (btype && strcmp(btype, "tool_use") == 0)
			rc = tool_use(a, b, (long)idx, 0);
		else if (btype && strcmp(btype, "text") == 0 && mk_json_str(b, "text"))
			rc =
			    llm_acc_text(a, mk_json_str(b, "text"), strlen(mk_json_str(b, "text")));
	} else if (strcmp(type, "content_block_delta") == 0) {
		rc = delta(a, root, (long)idx);
	} else if (strcmp(type, "content_block_stop") == 0) {
		rc = block_stop(a, (long)idx);
	} else if (strcmp(type, "message_delta") == 0) {
		stop_reason(a, mk_json_str(member(root, "delta"), "stop_reason"));
		usage(a, member(root, "usage"));
	} else if (strcmp(type, "message_stop") == 0) {
		a->done = 1;
		rc = 1;
	}
	/* ping and unknown events: nothing */
	cJSON_Delete(root);
	return rc != 0 || a->status != LLM_OK;
}

const llm_dialect llm_anthropic_dialect = {
    .name = "anthropic",
    .build = build,
    .parse = parse,
    .event = event,
};
