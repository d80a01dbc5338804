/*
 * llm_double_scenario.c - the script the double follows: loading and
 * checking a scenario, handing out its steps in order, matching a step
 * against the request, and turning a step into a response.
 *
 *   {"name": "...", "steps": [STEP, ...], "repeat_last": false}
 *
 * Each well-formed provider request takes the next step. After the last one
 * the last is served again when repeat_last is true, else the request gets a
 * 500 saying no step is left. A step whose `match` the request does not meet
 * (or whose openai_* / anthropic_* keys are for the other dialect) is not
 * consumed: the request gets a 500 naming the difference, with
 * x-should-retry: false (a client that retries anyway sees the same
 * complaint, and so does the test).
 *
 * STEP keys (all optional):
 *   match                {"path_suffix","stream","body_contains","has_tools","dialect","model"}
 *   status               HTTP status (default 200)
 *   headers              {"name": "value"} extra response headers; "connection: close"
 *                        closes the connection after the response
 *   json | text | sse    the body: a JSON value written as is; raw text (content_type,
 *                        default text/plain); SSE strings concatenated = the exact bytes
 *   content_type         overrides the body's Content-Type
 *   openai_text, openai_tool_calls, anthropic_text, anthropic_tool_uses
 *                        generated bodies (llm_double_gen.c); stream or not per the request;
 *                        finish_reason / stop_reason override the generated one
 *   split                slice size in bytes (0: one write) or an array of sizes, cycled
 *   first_byte_delay_ms, between_writes_ms
 *   close_after_bytes    cut the connection after that many body bytes (-1: never)
 *   comment              ignored
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "llm_double.h"
#include "mk_json.h"
#include "mk_log.h"

/* Largest scenario file read by --scenario. */
#define LD_MAX_SCENARIO (16u << 20)

static const char *const step_keys[] = {
    "match",
    "status",
    "headers",
    "json",
    "text",
    "sse",
    "content_type",
    "openai_text",
    "openai_tool_calls",
    "anthropic_text",
    "anthropic_tool_uses",
    "finish_reason",
    "stop_reason",
    "split",
    "first_byte_delay_ms",
    "between_writes_ms",
    "close_after_bytes",
    "comment",
    NULL,
};
static const char *const match_keys[] = {
    "path_suffix", "stream", "body_contains", "has_tools", "dialect", "model", NULL,
};

static int known(const char *const *keys, const char *k)
{
	for (; *keys; keys++)
		if (strcmp(*keys, k) == 0)
			return 1;
	return 0;
}

static int is_int(const cJSON *v, long long lo, long long hi)
{
	long long x;

	return mk_json_as_int(v, &x) == 0 && x >= lo && x <= hi;
}

/* Check one step; 0, or -1 with err naming step i. */
static int check_step(const cJSON *s, int i, char *err, size_t errlen)
{
	const cJSON *v, *x;
	int bodies = 0;

	if (!cJSON_IsObject(s)) {
		snprintf(err, errlen, "steps[%d] is not an object", i);
		return -1;
	}
	cJSON_ArrayForEach(v, s)
	{
		if (!known(step_keys, v->string)) {
			snprintf(err, errlen, "steps[%d]: unknown key '%s'", i, v->string);
			return -1;
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "match"))) {
		if (!cJSON_IsObject(v)) {
			snprintf(err, errlen, "steps[%d].match is not an object", i);
			return -1;
		}
		cJSON_ArrayForEach(x, v)
		{
			int ok = known(match_keys, x->string);
			int want_bool = ok && (strcmp(x->string, "stream") == 0 ||
			                       strcmp(x->string, "has_tools") == 0);

			if (!ok || (want_bool ? !cJSON_IsBool(x) : !cJSON_IsString(x))) {
				snprintf(err, errlen, "steps[%d].match: %s '%s'", i,
				         ok ? "wrong type for" : "unknown key", x->string);
				return -1;
			}
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "status")) && !is_int(v, 100, 599)) {
		snprintf(err, errlen, "steps[%d].status is not an HTTP status", i);
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "headers"))) {
		if (!cJSON_IsObject(v)) {
			snprintf(err, errlen, "steps[%d].headers is not an object", i);
			return -1;
		}
		cJSON_ArrayForEach(x, v)
		{
			if (!cJSON_IsString(x) || strpbrk(x->valuestring, "\r\n") ||
			    strpbrk(x->string, "\r\n: ")) {
				snprintf(err, errlen,
				         "steps[%d].headers['%s'] is not a header line", i,
				         x->string);
				return -1;
			}
		}
	}
	bodies += cJSON_GetObjectItemCaseSensitive(s, "json") != NULL;
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "text"))) {
		bodies++;
		if (!cJSON_IsString(v)) {
			snprintf(err, errlen, "steps[%d].text is not a string", i);
			return -1;
		}
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "sse"))) {
		bodies++;
		if (!cJSON_IsArray(v) && !cJSON_IsString(v)) {
			snprintf(err, errlen, "steps[%d].sse is not an array of strings", i);
			return -1;
		}
		cJSON_ArrayForEach(x, (cJSON_IsArray(v) ? v : NULL))
		{
			if (!cJSON_IsString(x)) {
				snprintf(err, errlen, "steps[%d].sse has a non-string", i);
				return -1;
			}
		}
	}
	if (ld_gen_wanted(s)) {
		char gerr[200];

		bodies++;
		if (ld_gen_check(s, gerr, sizeof(gerr)) != 0) {
			snprintf(err, errlen, "steps[%d]: %s", i, gerr);
			return -1;
		}
	}
	if (bodies > 1) {
		snprintf(err, errlen,
		         "steps[%d] has more than one body (json, text, sse, openai_*/anthropic_*)",
		         i);
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(s, "split"))) {
		int ok = is_int(v, 0, 1 << 30);

		if (cJSON_IsArray(v) && cJSON_GetArraySize(v) > 0) {
			ok = 1;
			cJSON_ArrayForEach(x, v) ok = ok && is_int(x, 1, 1 << 30);
		}
		if (!ok) {
			snprintf(err, errlen,
			         "steps[%d].split is not a size or a non-empty array of sizes", i);
			return -1;
		}
	}
	if (((v = cJSON_GetObjectItemCaseSensitive(s, "first_byte_delay_ms")) &&
	     !is_int(v, 0, 600000)) ||
	    ((v = cJSON_GetObjectItemCaseSensitive(s, "between_writes_ms")) &&
	     !is_int(v, 0, 600000)) ||
	    ((v = cJSON_GetObjectItemCaseSensitive(s, "close_after_bytes")) &&
	     !is_int(v, -1, 1LL << 40))) {
		snprintf(err, errlen, "steps[%d].%s is out of range", i, v->string);
		return -1;
	}
	{
		static const char *const strs[] = {"content_type", "finish_reason", "stop_reason",
		                                   "comment", NULL};
		const char *const *k;

		for (k = strs; *k; k++) {
			if ((v = cJSON_GetObjectItemCaseSensitive(s, *k)) && !cJSON_IsString(v)) {
				snprintf(err, errlen, "steps[%d].%s is not a string", i, *k);
				return -1;
			}
		}
	}
	return 0;
}

int ld_scenario_set(ld_double *d, cJSON *root, char *err, size_t errlen)
{
	const cJSON *steps = cJSON_GetObjectItemCaseSensitive(root, "steps"), *s, *v;
	cJSON *old;
	int i = 0;

	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "not an object");
		return -1;
	}
	cJSON_ArrayForEach(v, root)
	{
		if (strcmp(v->string, "name") != 0 && strcmp(v->string, "steps") != 0 &&
		    strcmp(v->string, "repeat_last") != 0 && strcmp(v->string, "comment") != 0) {
			snprintf(err, errlen, "unknown key '%s' (have name, steps, repeat_last)",
			         v->string);
			return -1;
		}
	}
	if (!cJSON_IsArray(steps)) {
		snprintf(err, errlen, "'steps' is not an array");
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "repeat_last")) && !cJSON_IsBool(v)) {
		snprintf(err, errlen, "'repeat_last' is not a boolean");
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(root, "name")) && !cJSON_IsString(v)) {
		snprintf(err, errlen, "'name' is not a string");
		return -1;
	}
	cJSON_ArrayForEach(s, steps)
	{
		if (check_step(s, i++, err, errlen) != 0)
			return -1;
	}
	pthread_mutex_lock(&d->mu);
	old = d->scenario;
	d->scenario = root;
	d->pos = 0;
	pthread_mutex_unlock(&d->mu);
	cJSON_Delete(old);
	return 0;
}

int ld_scenario_load(ld_double *d, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	char chunk[8192], perr[256];
	size_t n;
	mk_buf b;
	cJSON *root;

	if (!f) {
		snprintf(err, errlen, "cannot open it");
		return -1;
	}
	mk_buf_init(&b, LD_MAX_SCENARIO);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (mk_buf_append(&b, chunk, n) != 0) {
			fclose(f);
			mk_buf_release(&b);
			snprintf(err, errlen, "larger than %u bytes", LD_MAX_SCENARIO);
			return -1;
		}
	}
	fclose(f);
	root = mk_json_parse(b.data ? b.data : "", b.len, 0, perr, sizeof(perr));
	mk_buf_release(&b);
	if (!root) {
		snprintf(err, errlen, "not JSON: %s", perr);
		return -1;
	}
	if (ld_scenario_set(d, root, err, errlen) != 0) {
		cJSON_Delete(root);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ match */

static const char *dialect_name(ld_dialect d)
{
	switch (d) {
	case LD_AZURE: return "azure";
	case LD_ANTHROPIC: return "anthropic";
	case LD_OPENAI: break;
	}
	return "openai";
}

/* 0 when r meets step's match, else -1 with why. */
static int match(const ld_req *r, const cJSON *step, char *why, size_t whylen)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(step, "match"), *v;
	const cJSON *tools = cJSON_GetObjectItemCaseSensitive(r->json, "tools");
	int has_tools = cJSON_IsArray(tools) && cJSON_GetArraySize(tools) > 0;
	size_t pl = strlen(r->path);

	if (ld_gen_fits(r, step, why, whylen) != 0)
		return -1;
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "path_suffix")) &&
	    (strlen(v->valuestring) > pl ||
	     strcmp(r->path + pl - strlen(v->valuestring), v->valuestring) != 0)) {
		snprintf(why, whylen, "path ending in '%s', the request's path is '%s'",
		         v->valuestring, r->path);
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "stream")) && cJSON_IsTrue(v) != r->stream) {
		snprintf(why, whylen, "stream %s, the request has stream %s",
		         cJSON_IsTrue(v) ? "true" : "false", r->stream ? "true" : "false");
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "body_contains")) &&
	    !strstr(r->body, v->valuestring)) {
		snprintf(why, whylen, "a body containing '%s', the request's body does not",
		         v->valuestring);
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "has_tools")) &&
	    cJSON_IsTrue(v) != has_tools) {
		snprintf(why, whylen, "%s, the request has %s",
		         cJSON_IsTrue(v) ? "tools" : "no tools", has_tools ? "tools" : "none");
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "dialect")) &&
	    strcmp(v->valuestring, dialect_name(r->dialect)) != 0) {
		snprintf(why, whylen, "dialect '%s', the request is '%s'", v->valuestring,
		         dialect_name(r->dialect));
		return -1;
	}
	if ((v = cJSON_GetObjectItemCaseSensitive(m, "model")) &&
	    strcmp(v->valuestring, r->model) != 0) {
		snprintf(why, whylen, "model '%s', the request has '%s'", v->valuestring, r->model);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ serving */

static long num(const cJSON *step, const char *name, long dflt)
{
	long long v;

	return mk_json_int(step, name, &v) == 0 ? (long)v : dflt;
}

static void serve_step(ld_req *r, const cJSON *step)
{
	const cJSON *hdrs = cJSON_GetObjectItemCaseSensitive(step, "headers"), *h, *v;
	const cJSON *split = cJSON_GetObjectItemCaseSensitive(step, "split");
	const char *ctype = mk_json_str(step, "content_type");
	int status = (int)num(step, "status", 200), chunked = 0, sizes[256], n = 0;
	char err[256];
	mk_buf head, body;
	ld_pace pace;
	char *js = NULL;

	memset(&pace, 0, sizeof(pace));
	mk_buf_init(&head, 0);
	mk_buf_init(&body, 0);
	cJSON_ArrayForEach(h, hdrs)
	{
		mk_buf_printf(&head, "%s: %s\r\n", h->string, h->valuestring);
		if (strcasecmp(h->string, "connection") == 0 &&
		    strcasecmp(h->valuestring, "close") == 0)
			pace.close = 1;
	}
	if (cJSON_IsArray(split)) {
		cJSON_ArrayForEach(v, split)
		{
			if (n < (int)(sizeof(sizes) / sizeof(sizes[0])))
				sizes[n++] = v->valueint;
		}
	} else if (split) {
		sizes[n++] = split->valueint;
	}
	pace.sizes = n ? sizes : NULL;
	pace.nsizes = n;
	pace.first_byte_delay_ms = num(step, "first_byte_delay_ms", 0);
	pace.between_writes_ms = num(step, "between_writes_ms", 0);
	pace.close_after_bytes = num(step, "close_after_bytes", -1);

	if ((v = cJSON_GetObjectItemCaseSensitive(step, "json"))) {
		js = mk_json_print(v);
		if (js)
			mk_buf_puts(&body, js);
		ctype = ctype ? ctype : "application/json";
	} else if ((v = cJSON_GetObjectItemCaseSensitive(step, "text"))) {
		mk_buf_puts(&body, v->valuestring);
		ctype = ctype ? ctype : "text/plain; charset=utf-8";
	} else if ((v = cJSON_GetObjectItemCaseSensitive(step, "sse"))) {
		if (cJSON_IsString(v))
			mk_buf_puts(&body, v->valuestring);
		cJSON_ArrayForEach(h, (cJSON_IsArray(v) ? v : NULL))
		    mk_buf_puts(&body, h->valuestring);
		ctype = ctype ? ctype : "text/event-stream; charset=utf-8";
		chunked = 1;
	} else if (ld_gen_wanted(step)) {
		if (ld_gen_body(r, step, &body, err, sizeof(err)) != 0) {
			ld_send_error(r, 500,
			              r->dialect == LD_ANTHROPIC ? "api_error" : "server_error",
			              NULL, NULL, "llm-double: %s", err);
			goto out;
		}
		chunked = r->stream;
		ctype = ctype       ? ctype
		        : r->stream ? "text/event-stream; charset=utf-8"
		                    : "application/json";
	} else {
		ctype = ctype ? ctype : "application/json";
	}
	ld_send(r, status, ctype, head.data, body.data ? body.data : "", body.len, chunked, &pace);
out:
	cJSON_free(js);
	mk_buf_release(&head);
	mk_buf_release(&body);
}

void ld_scenario_serve(ld_req *r)
{
	ld_double *d = r->d;
	const cJSON *steps;
	cJSON *step = NULL;
	char name[128] = "", why[512];
	int n, idx = -1, bad = 0;

	pthread_mutex_lock(&d->mu);
	steps = cJSON_GetObjectItemCaseSensitive(d->scenario, "steps");
	n = cJSON_GetArraySize(steps);
	if (mk_json_str(d->scenario, "name"))
		snprintf(name, sizeof(name), "%s", mk_json_str(d->scenario, "name"));
	if (d->pos < n)
		idx = d->pos;
	else if (n > 0 &&
	         cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d->scenario, "repeat_last")))
		idx = n - 1;
	if (idx >= 0) {
		/* A copy, so that a scenario replaced meanwhile cannot pull it away. */
		step = cJSON_Duplicate(cJSON_GetArrayItem(steps, idx), 1);
		bad = !step || match(r, step, why, sizeof(why)) != 0;
		if (!bad && d->pos < n)
			d->pos++;
	}
	pthread_mutex_unlock(&d->mu);

	if (idx < 0) {
		MK_WARN("LLMD-NO-STEP", NULL, "%s %s: no step left in scenario '%s' (%d steps)",
		        r->ri->request_method, r->path, name, n);
		ld_send_error(r, 500, r->dialect == LD_ANTHROPIC ? "api_error" : "server_error",
		              NULL, NULL,
		              "llm-double: no scripted step left for this request (scenario "
		              "'%s' has %d steps)",
		              name, n);
		return;
	}
	if (bad) {
		MK_WARN("LLMD-MISMATCH", NULL, "step %d of scenario '%s' expects %s", idx + 1, name,
		        step ? why : "memory");
		ld_send_error(r, 500, r->dialect == LD_ANTHROPIC ? "api_error" : "server_error",
		              NULL, NULL, "llm-double: step %d of scenario '%s' expects %s",
		              idx + 1, name, step ? why : "memory");
		cJSON_Delete(step);
		return;
	}
	MK_INFO("LLMD-STEP", NULL, "serving step %d of scenario '%s'", idx + 1, name);
	serve_step(r, step);
	cJSON_Delete(step);
}
