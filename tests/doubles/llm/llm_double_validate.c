/*
 * llm_double_validate.c - what the real providers refuse before any model
 * runs: missing or wrong keys (401), missing headers and query parameters,
 * and malformed bodies (400), each answered with that provider's error body
 * and wording (contract §1.3, §1.6, §2 Azure, §3.1-3.3, §3.6, §6).
 *
 * The checks are those a client of ours can get wrong; the double does not
 * try to reproduce every rule of every API.
 */
#include <stdio.h>
#include <string.h>

#include "llm_double.h"
#include "mk_json.h"

static const char *header(const ld_req *r, const char *name)
{
	return mg_get_header(r->conn, name);
}

/* A key shown the way OpenAI shows it in its 401 message: sk-ab...wxyz. */
static void mask(const char *key, char *out, size_t outlen)
{
	size_t n = strlen(key);

	if (n <= 8)
		snprintf(out, outlen, "%.*s***", n > 2 ? 2 : (int)n, key);
	else
		snprintf(out, outlen, "%.5s...%s", key, key + n - 4);
}

/* ------------------------------------------------------------------ auth */

static int auth_openai(ld_req *r)
{
	const char *bearer = header(r, "Authorization"), *apikey = header(r, "api-key");
	const char *key = NULL;
	char shown[64];

	if (!r->d->api_key)
		return 0; /* like Ollama, vLLM and llama.cpp started without a key */
	if (bearer && strncmp(bearer, "Bearer ", 7) == 0)
		key = bearer + 7;
	else if (apikey && strncmp(r->path, "/openai/", 8) == 0)
		key = apikey; /* Azure's v1 API takes api-key as well as Bearer */
	if (!key) {
		ld_send_error(r, 401, "invalid_request_error", "invalid_api_key", NULL,
		              "You didn't provide an API key. You need to provide your API key in "
		              "an Authorization header using Bearer auth (i.e. Authorization: "
		              "Bearer YOUR_KEY).");
		return -1;
	}
	if (strcmp(key, r->d->api_key) != 0) {
		mask(key, shown, sizeof(shown));
		ld_send_error(r, 401, "invalid_request_error", "invalid_api_key", NULL,
		              "Incorrect API key provided: %s. You can find your API key at "
		              "https://platform.openai.com/account/api-keys.",
		              shown);
		return -1;
	}
	return 0;
}

/* Whether query string q has name=<non-empty value>. */
static int query_has(const char *q, const char *name)
{
	size_t n = strlen(name);

	while (q && *q) {
		if (strncmp(q, name, n) == 0 && q[n] == '=' && q[n + 1] && q[n + 1] != '&')
			return 1;
		q = strchr(q, '&');
		q = q ? q + 1 : NULL;
	}
	return 0;
}

static int auth_azure(ld_req *r)
{
	const char *key = header(r, "api-key"), *q = r->ri->query_string;

	if (!key || (r->d->api_key && strcmp(key, r->d->api_key) != 0)) {
		ld_send_error(
		    r, 401, "invalid_request_error", "401", NULL,
		    "Access denied due to invalid subscription key or wrong API endpoint. "
		    "Make sure to provide a valid key for an active subscription and use a "
		    "correct regional API endpoint for your resource.");
		return -1;
	}
	if (!query_has(q, "api-version")) {
		ld_send_error(r, 400, "invalid_request_error", "MissingApiVersionParameter", NULL,
		              "The api-version query parameter (?api-version=) is required for all "
		              "requests.");
		return -1;
	}
	return 0;
}

/*
 * Anthropic: x-api-key (contract §3.1), or Authorization: Bearer, which the
 * official SDKs from 1.0 (API version 2026-10-21) send for an API key.
 */
static int auth_anthropic(ld_req *r)
{
	const char *key = header(r, "x-api-key"), *bearer = header(r, "Authorization");

	if ((!key || !*key) && bearer && strncmp(bearer, "Bearer ", 7) == 0)
		key = bearer + 7;
	if (!key || !*key) {
		ld_send_error(r, 401, "authentication_error", NULL, NULL,
		              "x-api-key header is required");
		return -1;
	}
	if (r->d->api_key && strcmp(key, r->d->api_key) != 0) {
		ld_send_error(r, 401, "authentication_error", NULL, NULL, "invalid x-api-key");
		return -1;
	}
	if (!header(r, "anthropic-version")) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              "anthropic-version: header is required");
		return -1;
	}
	return 0;
}

int ld_check_auth(ld_req *r)
{
	switch (r->dialect) {
	case LD_AZURE: return auth_azure(r);
	case LD_ANTHROPIC: return auth_anthropic(r);
	case LD_OPENAI: break;
	}
	return auth_openai(r);
}

/* ------------------------------------------------------------------ OpenAI */

static int valid_tool_name(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
		      (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '-'))
			return 0;
	return n >= 1 && n <= 64;
}

/* The first id of calls (an assistant's tool_calls) that no tool message answered, or NULL. */
static const char *unanswered(const cJSON *calls, const unsigned char *answered)
{
	const cJSON *c;
	int j = 0;

	cJSON_ArrayForEach(c, calls)
	{
		if (!answered[j++])
			return mk_json_str(c, "id") ? mk_json_str(c, "id") : "";
	}
	return NULL;
}

static int check_tools_openai(ld_req *r, const cJSON *tools)
{
	const cJSON *t;
	int i = 0;

	if (!tools)
		return 0;
	if (!cJSON_IsArray(tools) || cJSON_GetArraySize(tools) > 128) {
		ld_send_error(r, 400, "invalid_request_error",
		              cJSON_IsArray(tools) ? "array_above_max_length" : "invalid_type",
		              "tools", "Invalid 'tools': expected an array of at most 128 tools.");
		return -1;
	}
	cJSON_ArrayForEach(t, tools)
	{
		const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
		const char *name = mk_json_str(fn, "name");
		char param[64];

		snprintf(param, sizeof(param), "tools[%d].function.name", i);
		if (!mk_json_str(t, "type") || strcmp(mk_json_str(t, "type"), "function") != 0 ||
		    !cJSON_IsObject(fn)) {
			ld_send_error(r, 400, "invalid_request_error", "missing_required_parameter",
			              param, "Missing required parameter: '%s'.", param);
			return -1;
		}
		if (!name || !valid_tool_name(name)) {
			ld_send_error(
			    r, 400, "invalid_request_error", "invalid_value", param,
			    "Invalid '%s': string does not match pattern. Expected a string "
			    "that matches the pattern '^[a-zA-Z0-9_-]+$'.",
			    param);
			return -1;
		}
		i++;
	}
	return 0;
}

static int check_openai(ld_req *r)
{
	const cJSON *msgs, *m, *calls = NULL;
	unsigned char answered[256];
	int i = 0, calls_at = -1;
	char param[96];

	if (!cJSON_IsObject(r->json)) {
		ld_send_error(
		    r, 400, "invalid_request_error", NULL, NULL,
		    "We could not parse the JSON body of your request. (HINT: This likely "
		    "means you aren't using your HTTP library correctly. The OpenAI API "
		    "expects a JSON payload, but what was sent was not valid JSON.)");
		return -1;
	}
	if (r->dialect != LD_AZURE && !mk_json_str(r->json, "model")) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              "you must provide a model parameter");
		return -1;
	}
	msgs = cJSON_GetObjectItemCaseSensitive(r->json, "messages");
	if (!cJSON_IsArray(msgs)) {
		ld_send_error(r, 400, "invalid_request_error",
		              msgs ? "invalid_type" : "missing_required_parameter", "messages",
		              msgs ? "Invalid type for 'messages': expected an array."
		                   : "Missing required parameter: 'messages'.");
		return -1;
	}
	if (cJSON_GetArraySize(msgs) == 0) {
		ld_send_error(
		    r, 400, "invalid_request_error", "empty_array", "messages",
		    "Invalid 'messages': empty array. Expected an array with minimum length "
		    "1, but got an empty array instead.");
		return -1;
	}
	cJSON_ArrayForEach(m, msgs)
	{
		const char *role = mk_json_str(m, "role");
		const cJSON *tc = cJSON_GetObjectItemCaseSensitive(m, "tool_calls");

		if (!role || !(strcmp(role, "system") == 0 || strcmp(role, "developer") == 0 ||
		               strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0 ||
		               strcmp(role, "tool") == 0 || strcmp(role, "function") == 0)) {
			snprintf(param, sizeof(param), "messages[%d].role", i);
			ld_send_error(r, 400, "invalid_request_error", "invalid_value", param,
			              "Invalid value: '%s'. Supported values are: 'system', "
			              "'assistant', 'user', 'function', 'tool', and 'developer'.",
			              role ? role : "");
			return -1;
		}
		if (strcmp(role, "tool") == 0) {
			const char *id = mk_json_str(m, "tool_call_id");
			const cJSON *c;
			int j = 0, found = -1;

			if (!id) {
				snprintf(param, sizeof(param), "messages[%d].tool_call_id", i);
				ld_send_error(r, 400, "invalid_request_error",
				              "missing_required_parameter", param,
				              "Missing required parameter: '%s'.", param);
				return -1;
			}
			cJSON_ArrayForEach(c, calls)
			{
				if (found < 0 && mk_json_str(c, "id") &&
				    strcmp(mk_json_str(c, "id"), id) == 0)
					found = j;
				j++;
			}
			if (found < 0) {
				snprintf(param, sizeof(param), "messages.[%d].role", i);
				ld_send_error(
				    r, 400, "invalid_request_error", NULL, param,
				    "Invalid parameter: messages with role 'tool' must be a "
				    "response to a preceeding message with 'tool_calls'.");
				return -1;
			}
			answered[found] = 1;
			i++;
			continue;
		}
		if (calls && unanswered(calls, answered)) {
			snprintf(param, sizeof(param), "messages.[%d].role", calls_at);
			ld_send_error(
			    r, 400, "invalid_request_error", NULL, param,
			    "An assistant message with 'tool_calls' must be followed by tool "
			    "messages responding to each 'tool_call_id'. The following "
			    "tool_call_ids did not have response messages: %s",
			    unanswered(calls, answered));
			return -1;
		}
		calls = NULL;
		if (strcmp(role, "assistant") == 0 && tc && !cJSON_IsNull(tc)) {
			const cJSON *c;
			int j = 0;

			if (!cJSON_IsArray(tc) || cJSON_GetArraySize(tc) > (int)sizeof(answered)) {
				snprintf(param, sizeof(param), "messages[%d].tool_calls", i);
				ld_send_error(r, 400, "invalid_request_error", "invalid_type",
				              param, "Invalid type for '%s': expected an array.",
				              param);
				return -1;
			}
			cJSON_ArrayForEach(c, tc)
			{
				const cJSON *fn = cJSON_GetObjectItemCaseSensitive(c, "function");
				const cJSON *args =
				    cJSON_GetObjectItemCaseSensitive(fn, "arguments");

				if (!mk_json_str(c, "id") || !mk_json_str(fn, "name")) {
					snprintf(param, sizeof(param),
					         "messages[%d].tool_calls[%d].%s", i, j,
					         mk_json_str(c, "id") ? "function.name" : "id");
					ld_send_error(r, 400, "invalid_request_error",
					              "missing_required_parameter", param,
					              "Missing required parameter: '%s'.", param);
					return -1;
				}
				if (!cJSON_IsString(args)) {
					snprintf(param, sizeof(param),
					         "messages[%d].tool_calls[%d].function.arguments",
					         i, j);
					ld_send_error(
					    r, 400, "invalid_request_error", "invalid_type", param,
					    "Invalid type for '%s': expected a string, but got %s "
					    "instead.",
					    param,
					    !args                  ? "nothing"
					    : cJSON_IsObject(args) ? "an object"
					                           : "another type");
					return -1;
				}
				j++;
			}
			if (j > 0) {
				calls = tc;
				calls_at = i;
				memset(answered, 0, sizeof(answered));
			}
		}
		i++;
	}
	if (calls && unanswered(calls, answered)) {
		snprintf(param, sizeof(param), "messages.[%d].role", calls_at);
		ld_send_error(r, 400, "invalid_request_error", NULL, param,
		              "An assistant message with 'tool_calls' must be followed by tool "
		              "messages responding to each 'tool_call_id'. The following "
		              "tool_call_ids did not have response messages: %s",
		              unanswered(calls, answered));
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(r->json, "stream_options") &&
	    !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r->json, "stream_options")) &&
	    !r->stream) {
		ld_send_error(r, 400, "invalid_request_error", "invalid_value", "stream_options",
		              "The 'stream_options' parameter is only allowed when 'stream' is "
		              "enabled.");
		return -1;
	}
	return check_tools_openai(r, cJSON_GetObjectItemCaseSensitive(r->json, "tools"));
}

/* ------------------------------------------------------------------ Anthropic */

/* Whether block list `content` holds a tool_result for id. */
static int has_result(const cJSON *content, const char *id)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, content)
	{
		const char *t = mk_json_str(b, "type"), *u = mk_json_str(b, "tool_use_id");

		if (t && strcmp(t, "tool_result") == 0 && u && strcmp(u, id) == 0)
			return 1;
	}
	return 0;
}

static int has_use(const cJSON *content, const char *id)
{
	const cJSON *b;

	cJSON_ArrayForEach(b, content)
	{
		const char *t = mk_json_str(b, "type"), *u = mk_json_str(b, "id");

		if (t && strcmp(t, "tool_use") == 0 && u && strcmp(u, id) == 0)
			return 1;
	}
	return 0;
}

static int check_anthropic(ld_req *r)
{
	const cJSON *msgs, *m, *prev = NULL, *tools, *t;
	const char *version = header(r, "anthropic-version");
	long long mt;
	int i = 0;
	/* API version 2026-10-21 added system messages; 2023-06-01 refuses them. */
	int system_ok = version && strcmp(version, "2026-10-21") >= 0;

	if (!cJSON_IsObject(r->json)) {
		ld_send_error(
		    r, 400, "invalid_request_error", NULL, NULL,
		    "There was an issue with your request body: it is not a JSON object.");
		return -1;
	}
	if (!mk_json_str(r->json, "model")) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL, "model: Field required");
		return -1;
	}
	if (!cJSON_GetObjectItemCaseSensitive(r->json, "max_tokens")) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              "max_tokens: Field required");
		return -1;
	}
	if (mk_json_int(r->json, "max_tokens", &mt) != 0 || mt < 1) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              "max_tokens: Input should be a valid integer greater than 0");
		return -1;
	}
	msgs = cJSON_GetObjectItemCaseSensitive(r->json, "messages");
	if (!cJSON_IsArray(msgs)) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              msgs ? "messages: Input should be a valid list"
		                   : "messages: Field required");
		return -1;
	}
	if (cJSON_GetArraySize(msgs) == 0) {
		ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
		              "messages: at least one message is required");
		return -1;
	}
	cJSON_ArrayForEach(m, msgs)
	{
		const char *role = mk_json_str(m, "role");
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *b;
		int k = 0;

		if (role && strcmp(role, "system") == 0 && system_ok) {
			prev = m;
			i++;
			continue;
		}
		if (role && strcmp(role, "system") == 0) {
			ld_send_error(
			    r, 400, "invalid_request_error", NULL, NULL,
			    "messages: Unexpected role \"system\". The Messages API accepts a "
			    "top-level `system` parameter, not \"system\" as an input message "
			    "role.");
			return -1;
		}
		if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
			ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
			              "messages.%d.role: Input should be 'user' or 'assistant'", i);
			return -1;
		}
		if (!cJSON_IsString(content) && !cJSON_IsArray(content)) {
			ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
			              "messages.%d.content: Input should be a valid list or string",
			              i);
			return -1;
		}
		cJSON_ArrayForEach(b, (cJSON_IsArray(content) ? content : NULL))
		{
			const char *type = mk_json_str(b, "type"), *id;

			if (!type) {
				ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
				              "messages.%d.content.%d.type: Field required", i, k);
				return -1;
			}
			if (strcmp(type, "tool_use") == 0) {
				if (strcmp(role, "assistant") != 0 || !mk_json_str(b, "id") ||
				    !mk_json_str(b, "name")) {
					ld_send_error(
					    r, 400, "invalid_request_error", NULL, NULL,
					    "messages.%d.content.%d: a `tool_use` block needs "
					    "`id` and `name` and belongs to an assistant turn",
					    i, k);
					return -1;
				}
				if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(b, "input"))) {
					ld_send_error(
					    r, 400, "invalid_request_error", NULL, NULL,
					    "messages.%d.content.%d.tool_use.input: Input "
					    "should be a valid dictionary",
					    i, k);
					return -1;
				}
			}
			id = mk_json_str(b, "tool_use_id");
			if (strcmp(type, "tool_result") == 0 &&
			    (!id || !prev || strcmp(mk_json_str(prev, "role"), "assistant") != 0 ||
			     !has_use(cJSON_GetObjectItemCaseSensitive(prev, "content"), id))) {
				ld_send_error(
				    r, 400, "invalid_request_error", NULL, NULL,
				    "messages.%d.content.%d: unexpected `tool_use_id` found in "
				    "`tool_result` blocks: %s. Each `tool_result` block must "
				    "have a corresponding `tool_use` block in the previous "
				    "message.",
				    i, k, id ? id : "");
				return -1;
			}
			k++;
		}
		prev = m;
		i++;
	}
	/* Every tool_use needs its tool_result in the very next (user) message. */
	i = 0;
	cJSON_ArrayForEach(m, msgs)
	{
		const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content"), *b;
		const cJSON *next = m->next;
		const cJSON *ncontent = cJSON_GetObjectItemCaseSensitive(next, "content");
		int next_user = next && mk_json_str(next, "role") &&
		                strcmp(mk_json_str(next, "role"), "user") == 0;
		mk_buf missing;

		mk_buf_init(&missing, 4096);
		cJSON_ArrayForEach(b, (cJSON_IsArray(content) ? content : NULL))
		{
			const char *type = mk_json_str(b, "type"), *id = mk_json_str(b, "id");

			if (strcmp(type, "tool_use") == 0 &&
			    (!next_user || !cJSON_IsArray(ncontent) || !has_result(ncontent, id)))
				mk_buf_printf(&missing, "%s%s", missing.len ? ", " : "", id);
		}
		if (missing.len) {
			ld_send_error(
			    r, 400, "invalid_request_error", NULL, NULL,
			    "messages.%d: `tool_use` ids were found without `tool_result` "
			    "blocks immediately after: %s. Each `tool_use` block must have a "
			    "corresponding `tool_result` block in the next message.",
			    i, missing.data);
			mk_buf_release(&missing);
			return -1;
		}
		mk_buf_release(&missing);
		i++;
	}
	tools = cJSON_GetObjectItemCaseSensitive(r->json, "tools");
	i = 0;
	cJSON_ArrayForEach(t, (cJSON_IsArray(tools) ? tools : NULL))
	{
		const char *type = mk_json_str(t, "type");

		/* Server tools (web_search_..., bash_...) carry a type and no schema. */
		if (!type || strcmp(type, "custom") == 0) {
			if (!mk_json_str(t, "name")) {
				ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
				              "tools.%d.custom.name: Field required", i);
				return -1;
			}
			if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(t, "input_schema"))) {
				ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
				              "tools.%d.custom.input_schema: Field required", i);
				return -1;
			}
		} else if (strcmp(type, "function") == 0) {
			ld_send_error(
			    r, 400, "invalid_request_error", NULL, NULL,
			    "tools.%d: Input tag 'function' found using 'type' does not match "
			    "any of the expected tags: 'custom', 'bash_20250124', ...",
			    i);
			return -1;
		}
		i++;
	}
	return 0;
}

int ld_check_body(ld_req *r)
{
	return r->dialect == LD_ANTHROPIC ? check_anthropic(r) : check_openai(r);
}
