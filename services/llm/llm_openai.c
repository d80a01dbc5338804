/*
 * llm_openai.c - the OpenAI Chat Completions dialect (libllm, provider
 * layer): OpenAI itself, Azure OpenAI, and the servers that copy it
 * (Ollama, vLLM, llama.cpp, Gemini's compatible endpoint, OpenRouter,
 * Groq, LM Studio...).
 *
 * It builds the request (contract llm-api.md §1.2-1.3): the assistant's
 * tool calls are echoed with their arguments as a JSON *string*, each
 * result goes back as a "tool" message naming its call, tools carry their
 * JSON Schema as an object. It reads a whole reply (§1.4) and a streamed
 * one (§1.5) event by event, accepting the known deviations of compatible
 * servers: usage chunks with "choices" empty, null or absent; tool-call
 * fragments without "index", with "index" always 0, without "id", or a
 * whole call in one chunk; and an error event in the middle of a 200.
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

static llm_status add_message(cJSON *msgs, const llm_message *m, size_t i, char *err, size_t errlen)
{
	static const char *const roles[] = {
	    [LLM_ROLE_SYSTEM] = "system",
	    [LLM_ROLE_USER] = "user",
	    [LLM_ROLE_ASSISTANT] = "assistant",
	    [LLM_ROLE_TOOL] = "tool",
	};
	cJSON *o, *calls;

	if ((unsigned)m->role > LLM_ROLE_TOOL) {
		snprintf(err, errlen, "message %zu has an unknown role", i);
		return LLM_E_BAD_REQUEST;
	}
	o = cJSON_CreateObject();
	if (!o || !cJSON_AddItemToArray(msgs, o)) {
		cJSON_Delete(o);
		return llm_oom(err, errlen);
	}
	if (!cJSON_AddStringToObject(o, "role", roles[m->role]))
		return llm_oom(err, errlen);
	if (m->role == LLM_ROLE_TOOL) {
		if (!m->tool_call_id || !*m->tool_call_id) {
			snprintf(err, errlen, "message %zu: a tool result needs the id of its call",
			         i);
			return LLM_E_BAD_REQUEST;
		}
		if (!cJSON_AddStringToObject(o, "tool_call_id", m->tool_call_id))
			return llm_oom(err, errlen);
	}
	if (m->role != LLM_ROLE_ASSISTANT || m->ncalls == 0) {
		if (!cJSON_AddStringToObject(o, "content", m->content ? m->content : ""))
			return llm_oom(err, errlen);
		return LLM_OK;
	}

	/* The assistant turn that called tools, echoed as it came (§1.3). */
	if (!(m->content && *m->content ? cJSON_AddStringToObject(o, "content", m->content)
	                                : cJSON_AddNullToObject(o, "content")))
		return llm_oom(err, errlen);
	calls = cJSON_AddArrayToObject(o, "tool_calls");
	if (!calls)
		return llm_oom(err, errlen);
	for (size_t k = 0; k < m->ncalls; k++) {
		const llm_tool_call *tc = &m->calls[k];
		cJSON *c = cJSON_CreateObject(), *fn;

		if (!c || !cJSON_AddItemToArray(calls, c)) {
			cJSON_Delete(c);
			return llm_oom(err, errlen);
		}
		if (!tc->id || !*tc->id || !tc->name || !*tc->name) {
			snprintf(err, errlen, "message %zu: tool call %zu has no id or no name", i,
			         k);
			return LLM_E_BAD_REQUEST;
		}
		/* arguments is a JSON *string*, not an object (§7.1). */
		if (!cJSON_AddStringToObject(c, "id", tc->id) ||
		    !cJSON_AddStringToObject(c, "type", "function") ||
		    !(fn = cJSON_AddObjectToObject(c, "function")) ||
		    !cJSON_AddStringToObject(fn, "name", tc->name) ||
		    !cJSON_AddStringToObject(fn, "arguments",
		                             blank(tc->arguments) ? "{}" : tc->arguments))
			return llm_oom(err, errlen);
	}
	return LLM_OK;
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

static llm_status add_tools(cJSON *root, const llm_request *req, char *err, size_t errlen)
{
	cJSON *tools = cJSON_AddArrayToObject(root, "tools");
	const char *choice = req->tool_choice;

	if (!tools)
		return llm_oom(err, errlen);
	for (size_t i = 0; i < req->ntools; i++) {
		const llm_tool *t = &req->tools[i];
		cJSON *o = cJSON_CreateObject(), *fn, *params;
		char why[128];

		if (!o || !cJSON_AddItemToArray(tools, o)) {
			cJSON_Delete(o);
			return llm_oom(err, errlen);
		}
		if (!t->name || !*t->name) {
			snprintf(err, errlen, "tool %zu has no name", i);
			return LLM_E_BAD_REQUEST;
		}
		params = blank(t->parameters) ? empty_schema()
		                              : llm_json_object(t->parameters, why, sizeof(why));
		if (!params && !blank(t->parameters)) {
			snprintf(err, errlen,
			         "the parameters of tool '%.64s' are not a JSON object (%s)",
			         t->name, why);
			return LLM_E_BAD_REQUEST;
		}
		if (!params || !cJSON_AddStringToObject(o, "type", "function") ||
		    !(fn = cJSON_AddObjectToObject(o, "function")) ||
		    !cJSON_AddStringToObject(fn, "name", t->name) ||
		    (t->description &&
		     !cJSON_AddStringToObject(fn, "description", t->description)) ||
		    !cJSON_AddItemToObject(fn, "parameters", params)) {
			cJSON_Delete(params);
			return llm_oom(err, errlen);
		}
	}
	if (!choice || !*choice)
		return LLM_OK; /* the default with tools: "auto" */
	if (strcmp(choice, "auto") == 0 || strcmp(choice, "none") == 0 ||
	    strcmp(choice, "required") == 0) {
		if (!cJSON_AddStringToObject(root, "tool_choice", choice))
			return llm_oom(err, errlen);
		return LLM_OK;
	}
	for (size_t i = 0; i < req->ntools; i++) {
		if (req->tools[i].name && strcmp(req->tools[i].name, choice) == 0) {
			cJSON *tc = cJSON_AddObjectToObject(root, "tool_choice"), *fn;

			if (!tc || !cJSON_AddStringToObject(tc, "type", "function") ||
			    !(fn = cJSON_AddObjectToObject(tc, "function")) ||
			    !cJSON_AddStringToObject(fn, "name", choice))
				return llm_oom(err, errlen);
			return LLM_OK;
		}
	}
	snprintf(err, errlen, "the tool choice '%.64s' is not one of the tools", choice);
	return LLM_E_BAD_REQUEST;
}

static llm_status add_body(const llm_conf *c, const llm_request *req, llm_wire *w, char *err,
                           size_t errlen)
{
	cJSON *root = cJSON_CreateObject(), *msgs, *so;
	llm_status st = LLM_OK;

	/* Azure ignores "model" (the deployment in the path decides); sending it is harmless. */
	if (!root || !cJSON_AddStringToObject(root, "model", c->model) ||
	    !(msgs = cJSON_AddArrayToObject(root, "messages"))) {
		st = llm_oom(err, errlen);
		goto out;
	}
	for (size_t i = 0; st == LLM_OK && i < req->nmessages; i++)
		st = add_message(msgs, &req->messages[i], i, err, errlen);
	if (st == LLM_OK && req->ntools > 0)
		st = add_tools(root, req, err, errlen);
	if (st != LLM_OK)
		goto out;
	/*
	 * max_tokens, not max_completion_tokens: every compatible server
	 * (Ollama, vLLM, llama.cpp, Groq, Gemini, OpenRouter) knows max_tokens
	 * and few know the newer name. OpenAI's reasoning models (o-series,
	 * gpt-5) reject max_tokens, so configure no limit (0) for them: then
	 * it is not sent at all.
	 */
	if ((req->max_tokens > 0 &&
	     !cJSON_AddNumberToObject(root, "max_tokens", req->max_tokens)) ||
	    (req->has_temperature &&
	     !cJSON_AddNumberToObject(root, "temperature", req->temperature))) {
		st = llm_oom(err, errlen);
		goto out;
	}
	if (req->stream) {
		/* include_usage: a last chunk with "choices": [] carries the usage (§1.5). */
		if (!cJSON_AddTrueToObject(root, "stream") ||
		    !(so = cJSON_AddObjectToObject(root, "stream_options")) ||
		    !cJSON_AddTrueToObject(so, "include_usage")) {
			st = llm_oom(err, errlen);
			goto out;
		}
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
	bad |= llm_wire_url(w, c->base_url, 0);
	if (c->azure_api_version) {
		/* {resource}/openai/deployments/{deployment}/chat/completions?api-version=... */
		if (!llm_ends_with(c->base_url, "/openai"))
			bad |= llm_wire_url(w, "/openai", 0);
		bad |= llm_wire_url(w, "/deployments/", 0);
		bad |= llm_wire_url(w, c->model, 1);
		bad |= llm_wire_url(w, "/chat/completions?api-version=", 0);
		bad |= llm_wire_url(w, c->azure_api_version, 1);
	} else {
		bad |= llm_wire_url(w, "/chat/completions", 0);
	}
	bad |= llm_wire_header(w, c, "Content-Type", "application/json");
	if (req->stream)
		bad |= llm_wire_header(w, c, "Accept", "text/event-stream");
	if (c->api_key && c->azure_api_version) {
		bad |= llm_wire_header(w, c, "api-key", c->api_key);
	} else if (c->api_key) {
		size_t n = strlen(c->api_key) + 8;
		char *bearer = malloc(n);

		if (bearer) {
			snprintf(bearer, n, "Bearer %s", c->api_key);
			bad |= llm_wire_header(w, c, "Authorization", bearer);
			explicit_bzero(bearer, n);
		}
		bad |= !bearer;
		free(bearer);
	}
	return bad ? llm_oom(err, errlen) : LLM_OK;
}

/* ---- the reply -------------------------------------------------------------- */

static void usage(llm_acc *a, const cJSON *u)
{
	long long v;

	if (!cJSON_IsObject(u))
		return;
	if (mk_json_int(u, "prompt_tokens", &v) == 0)
		a->prompt_tokens = (long)v;
	if (mk_json_int(u, "completion_tokens", &v) == 0)
		a->completion_tokens = (long)v;
}

static void finish(llm_acc *a, const char *reason)
{
	if (!reason)
		return;
	a->stop_seen = 1;
	if (strcmp(reason, "length") == 0)
		a->stop = LLM_STOP_LENGTH;
	else if (strcmp(reason, "content_filter") == 0)
		a->stop = LLM_STOP_FILTERED;
	/* "stop", "tool_calls", "function_call", others: the calls present decide. */
}

/* content: a string, null, or (some servers) an array of text parts. */
static int content(llm_acc *a, const cJSON *v)
{
	const cJSON *part, *parts = cJSON_IsArray(v) ? v : NULL;

	if (cJSON_IsString(v))
		return llm_acc_text(a, v->valuestring, strlen(v->valuestring));
	cJSON_ArrayForEach(part, parts)
	{
		const char *t = mk_json_str(part, "text");

		if (t && llm_acc_text(a, t, strlen(t)) != 0)
			return 1;
	}
	return 0;
}

static int refusal(llm_acc *a, const cJSON *v)
{
	if (!cJSON_IsString(v) || !*v->valuestring)
		return 0;
	a->filtered = 1;
	return llm_acc_text(a, v->valuestring, strlen(v->valuestring));
}

/* Arguments come as a string; some servers send an object instead. */
static int arguments(llm_acc *a, llm_acc_call *c, const cJSON *v)
{
	char *t;
	int rc;

	if (cJSON_IsString(v))
		return llm_acc_call_args(a, c, v->valuestring, strlen(v->valuestring));
	if (!cJSON_IsObject(v))
		return 0;
	t = mk_json_print(v);
	if (!t)
		return llm_acc_fail(a, LLM_E_UNAVAILABLE, "out of memory reading the reply");
	rc = llm_acc_call_args(a, c, t, strlen(t));
	free(t);
	return rc;
}

static llm_acc_call *by_id(llm_acc *a, const char *id)
{
	for (size_t i = a->ncalls; i-- > 0;)
		if (strcmp(a->calls[i].id, id) == 0)
			return &a->calls[i];
	return NULL;
}

static llm_acc_call *by_key(llm_acc *a, long key)
{
	for (size_t i = a->ncalls; i-- > 0;)
		if (a->calls[i].key == key)
			return &a->calls[i];
	return NULL;
}

/*
 * One element of delta.tool_calls. Which call it continues (§1.5):
 *   - the call with its id, when it names one already seen;
 *   - else the last call with its index: but a new id on that index opens
 *     a new call (Ollama sends index 0 for every call), unless that call's
 *     id was made up here and nothing of it has come yet (the id came
 *     late: take it);
 *   - with neither index nor id: the last call (Gemini, old Ollama);
 *   - and a fragment without id that names a function, landing on a call
 *     that has its name and arguments already, is the next whole call
 *     (Ollama: index 0, no id, one call per chunk).
 * Anything else opens a new call; one without id gets "call_<n>".
 */
static int fragment(llm_acc *a, const cJSON *f)
{
	const cJSON *fn = member(f, "function");
	const char *id = mk_json_str(f, "id"), *name = mk_json_str(fn, "name");
	long long idx;
	int has_idx = mk_json_int(f, "index", &idx) == 0;
	llm_acc_call *c = NULL;

	if (id && !*id)
		id = NULL;
	if (id)
		c = by_id(a, id);
	if (!c && has_idx) {
		c = by_key(a, (long)idx);
		if (c && id) {
			if (c->synth_id && c->args.len == 0) {
				char *real = strdup(id);

				if (!real)
					return llm_acc_fail(a, LLM_E_UNAVAILABLE,
					                    "out of memory reading the reply");
				free(c->id);
				c->id = real;
				c->synth_id = 0;
			} else {
				c = NULL;
			}
		}
	} else if (!c && !id && a->ncalls > 0) {
		c = &a->calls[a->ncalls - 1];
	}
	if (c && !id && name && *name && c->name && c->args.len > 0)
		c = NULL;
	if (!c && !(c = llm_acc_call_add(a, id, has_idx ? (long)idx : -1)))
		return 1;
	if (llm_acc_call_name(a, c, name) != 0)
		return 1;
	return arguments(a, c, member(fn, "arguments"));
}

/* Legacy function_call: one call, whole or in fragments without index or id. */
static int function_call(llm_acc *a, const cJSON *fc)
{
	llm_acc_call *c;

	if (!cJSON_IsObject(fc))
		return 0;
	c = a->ncalls > 0 ? &a->calls[a->ncalls - 1] : llm_acc_call_add(a, NULL, 0);
	if (!c || llm_acc_call_name(a, c, mk_json_str(fc, "name")) != 0)
		return 1;
	return arguments(a, c, member(fc, "arguments"));
}

/* A message (whole reply) or a delta (stream): the same fields. */
static int message(llm_acc *a, const cJSON *m)
{
	const cJSON *f, *calls = member(m, "tool_calls");

	if (content(a, member(m, "content")) != 0 || refusal(a, member(m, "refusal")) != 0)
		return 1;
	if (!cJSON_IsArray(calls))
		calls = NULL;
	cJSON_ArrayForEach(f, calls)
	{
		if (fragment(a, f) != 0)
			return 1;
	}
	return function_call(a, member(m, "function_call"));
}

static int parse(llm_acc *a, const cJSON *root)
{
	const cJSON *choices = member(root, "choices");
	const cJSON *ch = cJSON_IsArray(choices) ? cJSON_GetArrayItem(choices, 0) : NULL;

	llm_acc_model(a, mk_json_str(root, "model"));
	usage(a, member(root, "usage"));
	if (!cJSON_IsObject(ch)) {
		llm_acc_fail(a, LLM_E_PROTOCOL, "the model provider's reply has no choices");
		return -1;
	}
	if (message(a, member(ch, "message")) != 0)
		return -1;
	finish(a, mk_json_str(ch, "finish_reason"));
	return a->status == LLM_OK ? 0 : -1;
}

static int event(llm_acc *a, const char *name, const char *data, size_t len)
{
	const cJSON *ch, *choices, *er;
	cJSON *root;
	int rc = 0;

	if (len >= 6 && memcmp(data, "[DONE]", 6) == 0) {
		a->done = 1;
		return 1;
	}
	root = llm_acc_json(a, data, len);
	if (!root)
		return 1;
	er = member(root, "error");
	if (strcmp(name, "error") == 0 || (er && !cJSON_IsNull(er)) || cJSON_IsArray(root)) {
		llm_acc_provider_error(a, root);
		cJSON_Delete(root);
		return 1;
	}
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return llm_acc_fail(a, LLM_E_PROTOCOL,
		                    "the model provider sent an event that is not a JSON object");
	}
	llm_acc_model(a, mk_json_str(root, "model"));
	usage(a, member(root, "usage"));
	/* The usage chunk has "choices": [], null, or none at all (vLLM). */
	choices = member(root, "choices");
	if (!cJSON_IsArray(choices))
		choices = NULL;
	cJSON_ArrayForEach(ch, choices)
	{
		long long idx;

		if (mk_json_int(ch, "index", &idx) == 0 && idx != 0)
			continue; /* only the first choice is asked for */
		rc = message(a, member(ch, "delta"));
		if (rc != 0)
			break;
		finish(a, mk_json_str(ch, "finish_reason"));
	}
	cJSON_Delete(root);
	return rc != 0 || a->status != LLM_OK;
}

const llm_dialect llm_openai_dialect = {
    .name = "openai",
    .build = build,
    .parse = parse,
    .event = event,
};
