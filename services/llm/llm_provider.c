/*
 * llm_provider.c - the common half of the model provider clients (libllm,
 * provider layer, over common/mk_httpc).
 *
 * What is the same for every dialect lives here: the client's settings
 * (checked and copied by llm_provider_new), the HTTP attempts and the
 * retry loop, the reading of a reply (a JSON body, or SSE fed to the
 * dialect event by event), the translation of every failure into an
 * llm_status with a message a user can act on, and the accumulation of a
 * reply's text, tool calls and usage. llm_openai.c and llm_anthropic.c
 * only build their requests and read their replies.
 *
 * Retries are done here, not by mk_httpc, because the decision needs the
 * error body: a 429 is retried unless it says the account is out of quota
 * (OpenAI `insufficient_quota`, Anthropic `enforced_spend_limit_reached`),
 * which no wait cures. Retried, up to max_retries times: connection
 * failures, 408, 409, 429 and 5xx/529 (a server's x-should-retry header
 * overrides), waiting as long as retry-after-ms / Retry-After says (a wait
 * over 60 s is not attempted) or backing off exponentially from
 * backoff_base_ms, capped at 8 s, with jitter. A completion is safe to
 * send again as long as nothing of its reply has arrived, so a stream is
 * never retried once a byte of it came. Timeouts are not retried either:
 * a model that did not answer within first_byte_timeout_ms would most
 * likely spend that long again. The request's deadline stops any attempt
 * from starting after it and any wait that would end past it; an attempt
 * under way runs on under its own timeouts (see llm_request).
 *
 * What a failed call leaves in *out: the text that arrived before the
 * failure (what a streaming receiver has already shown), no calls, no
 * token counts, the attempts made and the model. Release it all the same.
 *
 * Messages never hold the API key: it is not in any URL, mk_httpc keeps
 * header values out of its own messages, a provider's text is never quoted
 * for a 401 (it often quotes the key, masked or not), and every message is
 * scrubbed of the key as a last resort. Header lines are zeroed when freed.
 *
 * Thread-safe: a client is read-only once made; each call keeps its state
 * on its own stack.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <cjson/cJSON.h>

#include "llm_dialect.h"
#include "mk_httpc.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

#define DEFAULT_OPENAI_BASE    "https://api.openai.com/v1"
#define DEFAULT_ANTHROPIC_BASE "https://api.anthropic.com"
#define DEFAULT_BACKOFF_MS     500
#define BACKOFF_CAP_MS         8000
#define RETRY_AFTER_CAP_MS     60000
#define DEFAULT_MAX_RESPONSE   ((size_t)16 << 20)
#define MAX_CALLS              512
#define MAX_DETAIL             160 /* bytes of a provider's own message quoted in ours */

static const char *const status_codes[] = {
    [LLM_OK] = "ok",
    [LLM_E_NOT_CONFIGURED] = "model_not_configured",
    [LLM_E_AUTH] = "model_auth_failed",
    [LLM_E_QUOTA] = "model_quota_exceeded",
    [LLM_E_RATE_LIMITED] = "model_rate_limited",
    [LLM_E_BAD_REQUEST] = "model_bad_request",
    [LLM_E_UNAVAILABLE] = "model_unavailable",
    [LLM_E_TIMEOUT] = "model_timeout",
    [LLM_E_PROTOCOL] = "model_protocol_error",
    [LLM_E_ABORTED] = "model_aborted",
};

const char *llm_status_code(llm_status s)
{
	if ((size_t)s < sizeof(status_codes) / sizeof(status_codes[0]) && status_codes[s])
		return status_codes[s];
	return "model_error";
}

/* ---- responses ---------------------------------------------------------- */

static void calls_free(llm_tool_call *calls, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(calls[i].id);
		free(calls[i].name);
		free(calls[i].arguments);
	}
	free(calls);
}

void llm_response_release(llm_response *r)
{
	if (!r)
		return;
	free(r->text);
	calls_free(r->calls, r->ncalls);
	r->text = NULL;
	r->calls = NULL;
	r->ncalls = 0;
}

/* ---- messages ------------------------------------------------------------ */

/* Append to a message already in err. */
static void say_more(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say_more(char *err, size_t errlen, const char *fmt, ...)
{
	size_t n;
	va_list ap;

	if (!err || errlen == 0)
		return;
	n = strnlen(err, errlen);
	if (n + 1 >= errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
}

/* Replace every occurrence of key in s (a message) by "[redacted]". */
static void redact(char *s, size_t cap, const char *key)
{
	static const char mark[] = "[redacted]";
	size_t klen = key ? strlen(key) : 0;
	char *hit, *from = s;

	if (klen < 4 || !s)
		return;
	while ((hit = strstr(from, key))) {
		size_t tail = strlen(hit + klen), at = (size_t)(hit - s);
		size_t room = cap - 1 - at; /* bytes from hit to the end of the buffer */
		size_t m = sizeof(mark) - 1 < room ? sizeof(mark) - 1 : room;

		if (m + tail > room)
			tail = room - m;
		memmove(hit + m, hit + klen, tail);
		memcpy(hit, mark, m);
		hit[m + tail] = '\0';
		from = hit + m;
	}
}

/*
 * Copy a provider's text into dst for quoting: control characters and runs
 * of white space become one space, at most MAX_DETAIL bytes, cut at a
 * character boundary with "..." when longer.
 */
static void quote(char *dst, size_t cap, const char *src, size_t len)
{
	size_t n = 0, lim = cap - 1 < MAX_DETAIL ? cap - 1 : MAX_DETAIL;
	int space = 1, cut = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (ch < 0x20 || ch == 0x7f || ch == ' ') {
			if (space)
				continue;
			ch = ' ';
			space = 1;
		} else {
			space = 0;
		}
		if (n >= lim) {
			cut = 1;
			break;
		}
		dst[n++] = (char)ch;
	}
	while (n > 0 && dst[n - 1] == ' ')
		n--;
	dst[n] = '\0';
	mk_utf8_clip(dst);
	if (cut) {
		n = strlen(dst);
		if (n > lim - 3)
			n = lim - 3;
		while (n > 0 && ((unsigned char)dst[n] & 0xc0) == 0x80)
			n--; /* not inside a character */
		memcpy(dst + n, "...", 4);
	}
}

/* A delay in seconds for messages: "0.3 s", "60 s". */
static void secs(char *dst, size_t cap, int ms)
{
	if (ms % 1000 == 0)
		snprintf(dst, cap, "%d s", ms / 1000);
	else
		snprintf(dst, cap, "%.1f s", ms / 1000.0);
}

/* ---- settings ------------------------------------------------------------- */

struct client {
	llm_provider p; /* first: the llm_provider * is the struct client * */
	llm_conf c;
};

static void free_secret(char *s)
{
	if (!s)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

static void client_free(llm_provider *p)
{
	struct client *cl = (struct client *)p;
	llm_conf *c;

	if (!cl)
		return;
	c = &cl->c;
	free(c->base_url);
	free_secret(c->api_key);
	free(c->model);
	free(c->azure_api_version);
	for (size_t i = 0; i < c->nheaders; i++)
		free_secret(c->headers[i]);
	free(c->headers);
	free(cl);
}

void llm_provider_free(llm_provider *p)
{
	if (p && p->ops && p->ops->free)
		p->ops->free(p);
}

/* Check an http(s) base URL, keep it without trailing '/', and note its host. */
static int set_base(llm_conf *c, const char *url, char *err, size_t errlen)
{
	const char *h, *he, *at;
	size_t skip, n;

	if (strncasecmp(url, "http://", 7) == 0) {
		skip = 7;
	} else if (strncasecmp(url, "https://", 8) == 0) {
		skip = 8;
	} else {
		mk_errf(err, errlen,
		        "malformed model provider base URL: it must start with "
		        "'http://' or 'https://'");
		return -1;
	}
	for (const char *p = url; *p; p++) {
		if ((unsigned char)*p <= ' ' || *p == 0x7f || *p == '?' || *p == '#') {
			mk_errf(err, errlen,
			        "malformed model provider base URL: white space, control "
			        "characters, '?' and '#' are not allowed");
			return -1;
		}
	}
	h = url + skip;
	he = h + strcspn(h, "/");
	/* Never keep userinfo ("user:password@") in the host used for messages. */
	at = memrchr(h, '@', (size_t)(he - h));
	if (at)
		h = at + 1;
	if (he == h || (size_t)(he - h) >= sizeof(c->host)) {
		mk_errf(err, errlen,
		        "malformed model provider base URL: no host, or too long a one");
		return -1;
	}
	memcpy(c->host, h, (size_t)(he - h));
	c->host[he - h] = '\0';
	n = strlen(url);
	while (n > skip && url[n - 1] == '/')
		n--;
	c->base_url = strndup(url, n);
	if (!c->base_url) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static int is_tchar(int ch)
{
	return ch > 0 && (isalnum(ch) || strchr("!#$%&'*+-.^_`|~", ch));
}

/*
 * Parse "Name: value" lines separated by '\n' or ';' (so a value cannot
 * hold ';'). Messages name a bad line by its position, never its text: a
 * header value may be a secret.
 */
static int set_headers(llm_conf *c, const char *spec, char *err, size_t errlen)
{
	const char *p = spec;
	size_t pos = 0;

	while (p && *p) {
		size_t n = strcspn(p, "\n;"), nlen;
		const char *s = p, *e = p + n, *colon, *v;
		char *line, **grown;

		p = *e ? e + 1 : e;
		pos++;
		while (s < e && (*s == ' ' || *s == '\t' || *s == '\r'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
			e--;
		if (s == e)
			continue;
		colon = memchr(s, ':', (size_t)(e - s));
		nlen = colon ? (size_t)(colon - s) : 0;
		for (size_t i = 0; i < nlen; i++)
			if (!is_tchar((unsigned char)s[i]))
				nlen = 0;
		if (nlen == 0) {
			mk_errf(
			    err, errlen,
			    "extra model provider header %zu is malformed (expected 'Name: value')",
			    pos);
			return -1;
		}
		for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
			;
		for (const char *q = v; q < e; q++) {
			if (((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
				mk_errf(
				    err, errlen,
				    "extra model provider header '%.*s' has a control character in "
				    "its value",
				    (int)nlen, s);
				return -1;
			}
		}
		line = malloc(nlen + 2 + (size_t)(e - v) + 1);
		grown = realloc(c->headers, (c->nheaders + 1) * sizeof(*grown));
		if (!line || !grown) {
			free(line);
			if (grown)
				c->headers = grown;
			mk_errf(err, errlen, "out of memory");
			return -1;
		}
		c->headers = grown;
		snprintf(line, nlen + 2 + (size_t)(e - v) + 1, "%.*s: %.*s", (int)nlen, s,
		         (int)(e - v), v);
		c->headers[c->nheaders++] = line;
	}
	return 0;
}

static llm_status complete(llm_provider *p, const llm_request *req, const llm_stream_cb *cb,
                           llm_response *out, char *err, size_t errlen);

static const llm_provider_ops client_ops = {
    .complete = complete,
    .free = client_free,
};

static char *dup_or_null(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

llm_provider *llm_provider_new(const llm_provider_cfg *cfg, char *err, size_t errlen)
{
	const llm_dialect *d;
	const char *base;
	struct client *cl;
	llm_conf *c;

	if (!cfg || !cfg->kind || !*cfg->kind) {
		mk_errf(err, errlen,
		        "no model provider kind set (expected 'openai' or 'anthropic')");
		return NULL;
	}
	if (strcmp(cfg->kind, "openai") == 0) {
		d = &llm_openai_dialect;
		base =
		    cfg->azure_api_version && *cfg->azure_api_version ? NULL : DEFAULT_OPENAI_BASE;
	} else if (strcmp(cfg->kind, "anthropic") == 0) {
		d = &llm_anthropic_dialect;
		base = DEFAULT_ANTHROPIC_BASE;
		if (cfg->azure_api_version && *cfg->azure_api_version) {
			mk_errf(err, errlen,
			        "an Azure API version applies to 'openai' providers only");
			return NULL;
		}
	} else {
		mk_errf(err, errlen,
		        "unknown model provider kind '%.40s' (expected 'openai' or "
		        "'anthropic')",
		        cfg->kind);
		return NULL;
	}
	if (!cfg->model || !*cfg->model) {
		mk_errf(err, errlen, "the '%s' model provider needs a model name", cfg->kind);
		return NULL;
	}
	if (cfg->base_url && *cfg->base_url)
		base = cfg->base_url;
	if (!base) {
		mk_errf(err, errlen, "the Azure form of the 'openai' provider needs a base URL");
		return NULL;
	}

	cl = calloc(1, sizeof(*cl));
	if (!cl) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	cl->p.ops = &client_ops;
	cl->p.impl = &cl->c;
	c = &cl->c;
	c->dialect = d;
	if (set_base(c, base, err, errlen) != 0 ||
	    set_headers(c, cfg->extra_headers, err, errlen) != 0)
		goto fail;
	c->api_key = dup_or_null(cfg->api_key);
	c->model = strdup(cfg->model);
	c->azure_api_version = dup_or_null(cfg->azure_api_version);
	if ((cfg->api_key && *cfg->api_key && !c->api_key) || !c->model ||
	    (cfg->azure_api_version && *cfg->azure_api_version && !c->azure_api_version)) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	c->connect_timeout_ms = cfg->connect_timeout_ms > 0 ? cfg->connect_timeout_ms : 0;
	c->first_byte_timeout_ms = cfg->first_byte_timeout_ms > 0 ? cfg->first_byte_timeout_ms : 0;
	c->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 0;
	c->max_retries = cfg->max_retries > 0 ? cfg->max_retries : 0;
	c->backoff_base_ms = cfg->backoff_base_ms > 0 ? cfg->backoff_base_ms : DEFAULT_BACKOFF_MS;
	c->max_response = cfg->max_response > 0 ? cfg->max_response : DEFAULT_MAX_RESPONSE;
	return &cl->p;
fail:
	client_free(&cl->p);
	return NULL;
}

/* ---- the request on the wire ------------------------------------------------ */

static void wire_init(llm_wire *w)
{
	memset(w, 0, sizeof(*w));
	mk_buf_init(&w->url, 64 << 10);
	mk_buf_init(&w->body, 0); /* bounded by the caller's limits on messages and tools */
}

static void wire_release(llm_wire *w)
{
	for (size_t i = 0; i < w->nheaders; i++)
		free_secret(w->headers[i]);
	free(w->headers);
	mk_buf_release(&w->url);
	mk_buf_release(&w->body);
}

/* Add a whole line; the list stays NULL-terminated. */
static int wire_line(llm_wire *w, const char *name, size_t nlen, const char *value)
{
	size_t len = nlen + 2 + strlen(value) + 1;
	char *line;

	if (w->nheaders + 2 > w->capheaders) {
		size_t cap = w->capheaders ? w->capheaders * 2 : 16;
		char **grown = realloc(w->headers, cap * sizeof(*grown));

		if (!grown)
			return -1;
		w->headers = grown;
		w->capheaders = cap;
	}
	line = malloc(len);
	if (!line)
		return -1;
	snprintf(line, len, "%.*s: %s", (int)nlen, name, value);
	w->headers[w->nheaders++] = line;
	w->headers[w->nheaders] = NULL;
	return 0;
}

int llm_wire_header(llm_wire *w, const llm_conf *c, const char *name, const char *value)
{
	size_t nlen = strlen(name);

	for (size_t i = 0; i < c->nheaders; i++)
		if (strncasecmp(c->headers[i], name, nlen) == 0 && c->headers[i][nlen] == ':')
			return 0; /* the configured one replaces ours */
	return wire_line(w, name, nlen, value);
}

int llm_wire_url(llm_wire *w, const char *part, int escape)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!escape)
		return mk_buf_puts(&w->url, part);
	for (const unsigned char *p = (const unsigned char *)part; *p; p++) {
		char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};

		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
			if (mk_buf_append(&w->url, p, 1) != 0)
				return -1;
		} else if (mk_buf_append(&w->url, enc, 3) != 0) {
			return -1;
		}
	}
	return 0;
}

/* ---- the reply being read ----------------------------------------------------- */

int llm_acc_fail(llm_acc *a, llm_status st, const char *fmt, ...)
{
	va_list ap;

	if (a->status != LLM_OK)
		return 1;
	a->status = st;
	va_start(ap, fmt);
	vsnprintf(a->err, sizeof(a->err), fmt, ap);
	va_end(ap);
	return 1;
}

int llm_acc_text(llm_acc *a, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (mk_buf_append(&a->text, s, n) != 0)
		return llm_acc_fail(a, LLM_E_PROTOCOL, "the reply's text exceeds %zu bytes",
		                    a->conf->max_response);
	if (a->cb && a->cb->on_text && a->cb->on_text(a->cb->ud, s, n) != 0) {
		a->aborted = 1;
		return 1;
	}
	return 0;
}

llm_acc_call *llm_acc_call_add(llm_acc *a, const char *id, long key)
{
	llm_acc_call *c;
	char made[32];

	if (a->ncalls >= MAX_CALLS) {
		llm_acc_fail(a, LLM_E_PROTOCOL, "the reply has more than %d tool calls", MAX_CALLS);
		return NULL;
	}
	if (a->ncalls == a->capcalls) {
		size_t cap = a->capcalls ? a->capcalls * 2 : 4;
		llm_acc_call *grown = realloc(a->calls, cap * sizeof(*grown));

		if (!grown) {
			llm_acc_fail(a, LLM_E_UNAVAILABLE, "out of memory reading the reply");
			return NULL;
		}
		a->calls = grown;
		a->capcalls = cap;
	}
	c = &a->calls[a->ncalls];
	memset(c, 0, sizeof(*c));
	mk_buf_init(&c->args, a->conf->max_response);
	c->key = key;
	if (!id || !*id) {
		snprintf(made, sizeof(made), "call_%zu", a->ncalls);
		id = made;
		c->synth_id = 1;
	}
	c->id = strdup(id);
	if (!c->id) {
		llm_acc_fail(a, LLM_E_UNAVAILABLE, "out of memory reading the reply");
		return NULL;
	}
	a->ncalls++;
	return c;
}

int llm_acc_call_name(llm_acc *a, llm_acc_call *c, const char *name)
{
	if (c->name || !name || !*name)
		return 0; /* the first name given stands */
	c->name = strdup(name);
	if (!c->name)
		return llm_acc_fail(a, LLM_E_UNAVAILABLE, "out of memory reading the reply");
	return 0;
}

int llm_acc_call_args(llm_acc *a, llm_acc_call *c, const char *s, size_t n)
{
	if (mk_buf_append(&c->args, s, n) != 0)
		return llm_acc_fail(a, LLM_E_PROTOCOL,
		                    "the arguments of tool call '%.64s' exceed %zu bytes", c->id,
		                    a->conf->max_response);
	return 0;
}

void llm_acc_model(llm_acc *a, const char *model)
{
	if (!model || !*model)
		return;
	snprintf(a->model, sizeof(a->model), "%s", model);
	mk_utf8_clip(a->model);
}

cJSON *llm_acc_json(llm_acc *a, const char *data, size_t len)
{
	char why[128];
	cJSON *v = mk_json_parse(data, len, MK_JSON_MAX_DEPTH, why, sizeof(why));

	if (!v)
		llm_acc_fail(a, LLM_E_PROTOCOL,
		             "the model provider sent an event that is not JSON (%s)", why);
	return v;
}

cJSON *llm_json_object(const char *text, char *err, size_t errlen)
{
	cJSON *v = mk_json_parse(text, strlen(text), MK_JSON_MAX_DEPTH, err, errlen);

	if (v && !cJSON_IsObject(v)) {
		cJSON_Delete(v);
		mk_errf(err, errlen, "not a JSON object");
		return NULL;
	}
	return v;
}

static void acc_init(llm_acc *a, const llm_conf *c, const llm_stream_cb *cb)
{
	memset(a, 0, sizeof(*a));
	a->conf = c;
	a->cb = cb;
	mk_buf_init(&a->text, c->max_response);
	for (size_t i = 0; i < sizeof(a->input_parts) / sizeof(a->input_parts[0]); i++)
		a->input_parts[i] = -1;
	a->stop = LLM_STOP_END;
	snprintf(a->model, sizeof(a->model), "%s", c->model);
	mk_utf8_clip(a->model);
}

static void acc_release(llm_acc *a)
{
	mk_buf_release(&a->text);
	for (size_t i = 0; i < a->ncalls; i++) {
		free(a->calls[i].id);
		free(a->calls[i].name);
		mk_buf_release(&a->calls[i].args);
	}
	free(a->calls);
	a->calls = NULL;
	a->ncalls = a->capcalls = 0;
}

static int blank(const char *s)
{
	for (; s && *s; s++)
		if (!isspace((unsigned char)*s))
			return 0;
	return 1;
}

/*
 * Hand what the reply produced to out, replacing an earlier attempt's.
 * On failure only the text stays: what was shown to the user while it
 * streamed. Calls are moved only from a complete reply.
 */
static void acc_finish(llm_acc *a, llm_status st, llm_response *out)
{
	llm_response_release(out);
	memcpy(out->model, a->model, sizeof(out->model));
	out->text = mk_buf_steal(&a->text);
	if (!out->text)
		out->text = strdup("");
	if (st != LLM_OK)
		return;
	out->prompt_tokens = a->prompt_tokens;
	out->completion_tokens = a->completion_tokens;
	if (a->ncalls > 0) {
		out->calls = calloc(a->ncalls, sizeof(*out->calls));
		for (size_t i = 0; out->calls && i < a->ncalls; i++) {
			llm_acc_call *c = &a->calls[i];
			llm_tool_call *t = &out->calls[out->ncalls++];

			t->id = c->id;
			c->id = NULL;
			t->name = c->name ? c->name : strdup("");
			c->name = NULL;
			t->arguments = blank(c->args.data) ? strdup("{}") : mk_buf_steal(&c->args);
		}
	}
	/* A cut or filtered reply says so even when it holds calls: their arguments may be cut. */
	if (a->filtered || a->stop == LLM_STOP_FILTERED)
		out->stop = LLM_STOP_FILTERED;
	else if (a->stop == LLM_STOP_LENGTH)
		out->stop = LLM_STOP_LENGTH;
	else if (out->ncalls > 0)
		out->stop = LLM_STOP_TOOL_CALLS;
	else
		out->stop = LLM_STOP_END;
}

/* ---- what a provider's error says ------------------------------------------- */

struct perr {
	char msg[MAX_DETAIL + 4];
	char type[64];   /* error.type, or Gemini's error.status */
	char code[64];   /* error.code, as text */
	char detail[64]; /* Anthropic's error.details.error_code */
};

static void field_text(char *dst, size_t cap, const cJSON *v)
{
	if (cJSON_IsString(v) && v->valuestring)
		quote(dst, cap, v->valuestring, strlen(v->valuestring));
	else if (cJSON_IsNumber(v))
		snprintf(dst, cap, "%.0f", v->valuedouble);
}

static const cJSON *member(const cJSON *o, const char *name)
{
	return cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, name) : NULL;
}

/* Read {"error":{...}}, [{"error":{...}}], {"error":"..."}, {"object":"error","message":...},
 * {"detail":...}. */
static int perr_json(const cJSON *root, struct perr *e)
{
	const cJSON *o = cJSON_IsArray(root) ? cJSON_GetArrayItem(root, 0) : root;
	const cJSON *er = member(o, "error"), *d;

	if (!cJSON_IsObject(o))
		return 0;
	if (cJSON_IsObject(er)) {
		field_text(e->msg, sizeof(e->msg), member(er, "message"));
		field_text(e->type, sizeof(e->type), member(er, "type"));
		if (!e->type[0])
			field_text(e->type, sizeof(e->type), member(er, "status"));
		field_text(e->code, sizeof(e->code), member(er, "code"));
		field_text(e->detail, sizeof(e->detail),
		           member(member(er, "details"), "error_code"));
		return 1;
	}
	if (cJSON_IsString(er)) {
		field_text(e->msg, sizeof(e->msg), er);
		field_text(e->type, sizeof(e->type), member(o, "type"));
		return 1;
	}
	field_text(e->msg, sizeof(e->msg), member(o, "message"));
	field_text(e->type, sizeof(e->type), member(o, "type"));
	field_text(e->code, sizeof(e->code), member(o, "code"));
	d = member(o, "detail"); /* FastAPI-style validation errors */
	if (!e->msg[0] && cJSON_IsString(d))
		field_text(e->msg, sizeof(e->msg), d);
	else if (!e->msg[0] && cJSON_IsArray(d))
		field_text(e->msg, sizeof(e->msg), member(cJSON_GetArrayItem(d, 0), "msg"));
	return e->msg[0] || e->type[0];
}

/* The text between <tag> and </tag>, case-insensitively; 0 when absent. */
static int html_inner(const char *s, size_t len, const char *tag, const char **in, size_t *inlen)
{
	char open[16], close[16];
	const char *p, *q;
	size_t ol, cl;

	ol = (size_t)snprintf(open, sizeof(open), "<%s", tag);
	cl = (size_t)snprintf(close, sizeof(close), "</%s>", tag);
	for (p = s; p + ol <= s + len; p++)
		if (strncasecmp(p, open, ol) == 0 && (p[ol] == '>' || p[ol] == ' '))
			break;
	if (p + ol > s + len)
		return 0;
	p = memchr(p, '>', (size_t)(s + len - p));
	if (!p)
		return 0;
	p++;
	for (q = p; q + cl <= s + len; q++)
		if (strncasecmp(q, close, cl) == 0)
			break;
	if (q + cl > s + len)
		return 0;
	*in = p;
	*inlen = (size_t)(q - p);
	return 1;
}

/* Any error body: JSON in its known shapes, an HTML page's title, or the first line. */
static void perr_body(const char *body, size_t len, struct perr *e)
{
	const char *s = body ? body : "", *in;
	size_t inlen;

	memset(e, 0, sizeof(*e));
	while (len > 0 && isspace((unsigned char)*s)) {
		s++;
		len--;
	}
	if (len == 0)
		return;
	if (*s == '{' || *s == '[') {
		char why[64];
		cJSON *root = mk_json_parse(s, len, MK_JSON_MAX_DEPTH, why, sizeof(why));
		int found = root && perr_json(root, e);

		cJSON_Delete(root);
		if (found)
			return;
	}
	if (*s == '<') {
		if (html_inner(s, len, "title", &in, &inlen) ||
		    html_inner(s, len, "h1", &in, &inlen))
			quote(e->msg, sizeof(e->msg), in, inlen);
		else
			snprintf(e->msg, sizeof(e->msg), "an HTML page");
		return;
	}
	quote(e->msg, sizeof(e->msg), s, strcspn(s, "\r\n") < len ? strcspn(s, "\r\n") : len);
}

static int is(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

static int out_of_quota(const struct perr *e)
{
	return is(e->code, "insufficient_quota") || is(e->type, "insufficient_quota") ||
	       is(e->detail, "enforced_spend_limit_reached") || is(e->type, "billing_error");
}

/* ": message" or " (type)" or nothing, for the end of our message. */
static void tail(char *dst, size_t cap, const struct perr *e)
{
	const char *tag = e->code[0] ? e->code : e->type;

	if (e->msg[0])
		snprintf(dst, cap, ": %s", e->msg);
	else if (tag[0])
		snprintf(dst, cap, " (%s)", tag);
	else
		dst[0] = '\0';
}

/* An HTTP error reply: its status, whether a retry may cure it, and a message. */
static llm_status http_error(long code, const struct perr *e, int *retry, char *err, size_t errlen)
{
	char t[MAX_DETAIL + 80];

	tail(t, sizeof(t), e);
	*retry = 0;
	if (code == 401) {
		/* The provider's text may quote the key (masked or not): name only its code. */
		const char *tag = e->code[0] ? e->code : e->type;

		mk_errf(err, errlen, "the model provider rejected the API key (HTTP 401%s%s)",
		        tag[0] ? " " : "", tag);
		return LLM_E_AUTH;
	}
	if (code == 403) {
		mk_errf(err, errlen, "the model provider rejected the API key (HTTP 403)%s", t);
		return LLM_E_AUTH;
	}
	if (code == 402 || (code == 429 && out_of_quota(e))) {
		mk_errf(err, errlen,
		        "the model provider account is out of credit or quota (HTTP %ld)%s", code,
		        t);
		return LLM_E_QUOTA;
	}
	if (code == 429) {
		*retry = 1;
		mk_errf(err, errlen, "rate limited by the model provider");
		return LLM_E_RATE_LIMITED;
	}
	if (code == 408) {
		*retry = 1;
		mk_errf(err, errlen, "the model provider timed out (HTTP 408)");
		return LLM_E_TIMEOUT;
	}
	if (code == 409 || code >= 500) {
		*retry = 1;
		mk_errf(err, errlen, "the model provider is unavailable (HTTP %ld)%s", code, t);
		return LLM_E_UNAVAILABLE;
	}
	if (code >= 400) {
		mk_errf(err, errlen, "the model provider rejected the request (HTTP %ld)%s", code,
		        t);
		return LLM_E_BAD_REQUEST;
	}
	mk_errf(err, errlen, "unexpected HTTP %ld from the model provider", code);
	return LLM_E_PROTOCOL;
}

static int any_is(const struct perr *e, const char *const *names)
{
	for (; *names; names++)
		if (is(e->type, *names) || is(e->code, *names))
			return 1;
	return 0;
}

/* An error reported inside a 2xx reply or a stream, by its type or code. */
static llm_status kind_status(const struct perr *e)
{
	static const char *const auth[] = {"authentication_error", "invalid_api_key",
	                                   "permission_error",     "PERMISSION_DENIED",
	                                   "UNAUTHENTICATED",      NULL};
	static const char *const rate[] = {"rate_limit_error", "rate_limit_exceeded",
	                                   "RESOURCE_EXHAUSTED", NULL};
	static const char *const bad[] = {"invalid_request_error",
	                                  "not_found_error",
	                                  "request_too_large",
	                                  "context_length_exceeded",
	                                  "INVALID_ARGUMENT",
	                                  "NOT_FOUND",
	                                  NULL};
	char *end;
	long code;

	if (out_of_quota(e))
		return LLM_E_QUOTA;
	if (any_is(e, auth))
		return LLM_E_AUTH;
	if (any_is(e, rate))
		return LLM_E_RATE_LIMITED;
	if (any_is(e, bad))
		return LLM_E_BAD_REQUEST;
	code = strtol(e->code, &end, 10); /* OpenRouter: {"error":{"code":502,...}} */
	if (e->code[0] && *end == '\0') {
		if (code == 401 || code == 403)
			return LLM_E_AUTH;
		if (code == 402)
			return LLM_E_QUOTA;
		if (code == 429)
			return LLM_E_RATE_LIMITED;
		if (code >= 400 && code < 500 && code != 408 && code != 409)
			return LLM_E_BAD_REQUEST;
	}
	return LLM_E_UNAVAILABLE;
}

int llm_acc_provider_error(llm_acc *a, const cJSON *root)
{
	struct perr e;
	const char *tag;

	memset(&e, 0, sizeof(e));
	perr_json(root, &e);
	tag = e.type[0] ? e.type : e.code;
	return llm_acc_fail(a, kind_status(&e), "the model provider reported an error%s%s%s: %s",
	                    tag[0] ? " (" : "", tag, tag[0] ? ")" : "",
	                    e.msg[0] ? e.msg : "no message");
}

/* ---- one attempt ----------------------------------------------------------------- */

enum { BODY_SNIFF, BODY_SSE, BODY_JSON };

struct attempt {
	const llm_conf *c;
	llm_acc a;
	llm_sse *sse;
	mk_buf raw; /* a streamed 2xx body that turned out to be JSON, not SSE */
	int mode;
	int streamed; /* bytes of a 2xx body went through on_data */
};

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
	struct attempt *t = ud;

	return t->c->dialect->event(&t->a, event, data, len) != 0;
}

/*
 * Bytes of a streamed 2xx reply. A server that ignores "stream": true
 * answers with one JSON document: the first non-blank byte tells which.
 */
static int on_data(void *ud, const char *data, size_t len)
{
	struct attempt *t = ud;
	int rc;

	t->streamed = 1;
	if (t->mode == BODY_SNIFF) {
		size_t i = 0;

		while (i < len && isspace((unsigned char)data[i]))
			i++;
		if (i < len) {
			t->mode = data[i] == '{' || data[i] == '[' ? BODY_JSON : BODY_SSE;
		} else if (mk_buf_append(&t->raw, data, len) == 0) {
			return 0;
		}
		if (t->mode == BODY_SSE && t->raw.len > 0) {
			rc = llm_sse_feed(t->sse, t->raw.data, t->raw.len);
			mk_buf_reset(&t->raw);
			if (rc != 0)
				return 1; /* blank lines: cannot fail, but be exact */
		}
	}
	if (t->mode != BODY_SSE) {
		if (mk_buf_append(&t->raw, data, len) != 0)
			return llm_acc_fail(&t->a, LLM_E_PROTOCOL,
			                    "the model provider's reply exceeds %zu bytes",
			                    t->c->max_response);
		return 0;
	}
	rc = llm_sse_feed(t->sse, data, len);
	if (rc < 0)
		llm_acc_fail(&t->a, LLM_E_PROTOCOL,
		             "an event from the model provider exceeds %zu bytes",
		             t->c->max_response);
	return rc != 0;
}

static llm_status acc_status(const llm_acc *a, char *err, size_t errlen)
{
	if (a->status != LLM_OK) {
		mk_errf(err, errlen, "%s", a->err);
		return a->status;
	}
	if (a->aborted) {
		mk_errf(err, errlen, "the receiver of the reply asked to stop it");
		return LLM_E_ABORTED;
	}
	return LLM_OK;
}

/* A whole JSON reply of status 2xx. */
static llm_status judge_json(struct attempt *t, const char *body, size_t len, char *err,
                             size_t errlen)
{
	char why[128];
	cJSON *root = mk_json_parse(body ? body : "", len, MK_JSON_MAX_DEPTH, why, sizeof(why));

	if (!root) {
		struct perr e;

		perr_body(body, len, &e);
		mk_errf(err, errlen, "the model provider's reply is not JSON (%s)%s%s", why,
		        e.msg[0] ? ": " : "", e.msg);
		return LLM_E_PROTOCOL;
	}
	if (cJSON_IsArray(root) || (member(root, "error") && !cJSON_IsNull(member(root, "error"))))
		llm_acc_provider_error(&t->a, root);
	else
		t->c->dialect->parse(&t->a, root);
	cJSON_Delete(root);
	return acc_status(&t->a, err, errlen);
}

/*
 * A transfer that failed: midway when part of the body had come, streamed
 * when part of it went to the receiver (then nothing is sent again).
 */
static llm_status transport_error(const llm_conf *c, const mk_httpc_resp *resp, int midway,
                                  int streamed, int *retry, char *err, size_t errlen)
{
	char n[32];

	*retry = 0;
	switch (resp->status) {
	case MK_HTTPC_TIMEOUT:
		/* A connect timeout (mk_httpc's own wording): the host is unreachable. */
		if (!midway && strncmp(resp->error, "connecting to ", 14) == 0)
			break;
		if (!midway && c->first_byte_timeout_ms > 0) {
			secs(n, sizeof(n), c->first_byte_timeout_ms);
			mk_errf(err, errlen, "no response from the model provider within %s", n);
		} else {
			secs(n, sizeof(n), c->idle_timeout_ms);
			mk_errf(err, errlen, "the model provider sent nothing for %s %s", n,
			        midway ? "in the middle of its reply" : "after the request");
		}
		return LLM_E_TIMEOUT;
	case MK_HTTPC_DEADLINE:
		mk_errf(err, errlen, "the deadline passed while waiting for the model provider");
		return LLM_E_TIMEOUT;
	case MK_HTTPC_TOO_LARGE:
		mk_errf(err, errlen, "the model provider's reply exceeds %zu bytes",
		        c->max_response);
		return LLM_E_PROTOCOL;
	case MK_HTTPC_ABORTED:
		mk_errf(err, errlen, "the reply from the model provider was abandoned");
		return LLM_E_ABORTED;
	case MK_HTTPC_CONNECT:
	case MK_HTTPC_NETWORK:
	case MK_HTTPC_OK: break;
	}
	*retry = !streamed;
	if (midway)
		mk_errf(err, errlen,
		        "the connection to the model provider broke in the middle of its "
		        "reply (%s)",
		        resp->error);
	else if (resp->status == MK_HTTPC_NETWORK)
		mk_errf(err, errlen, "the request to the model provider at '%s' failed (%s)",
		        c->host, resp->error);
	else
		mk_errf(err, errlen, "cannot reach the model provider at '%s' (%s)", c->host,
		        resp->error);
	return LLM_E_UNAVAILABLE;
}

/* A reply whose 2xx body went through on_data. Never retried. */
static llm_status judge_streamed(struct attempt *t, const mk_httpc_resp *resp, char *err,
                                 size_t errlen)
{
	llm_acc *a = &t->a;
	int retry;

	if (t->mode == BODY_JSON && resp->status == MK_HTTPC_OK)
		return judge_json(t, t->raw.data, t->raw.len, err, errlen);
	if (t->mode == BODY_SSE && resp->status == MK_HTTPC_OK && a->status == LLM_OK &&
	    !a->aborted && !a->done && llm_sse_finish(t->sse) < 0)
		llm_acc_fail(a, LLM_E_PROTOCOL,
		             "an event from the model provider exceeds %zu bytes",
		             t->c->max_response);
	if (a->status != LLM_OK || a->aborted)
		return acc_status(a, err, errlen);
	/* Cut after its finish reason (before usage or [DONE]): what arrived is whole. */
	if (a->done || a->stop_seen)
		return LLM_OK;
	if (resp->status == MK_HTTPC_OK || resp->status == MK_HTTPC_ABORTED) {
		mk_errf(err, errlen, "the stream from the model provider ended early");
		return LLM_E_PROTOCOL;
	}
	return transport_error(t->c, resp, 1, 1, &retry, err, errlen);
}

static llm_status judge(struct attempt *t, const llm_request *req, const mk_httpc_resp *resp,
                        int *retry, char *err, size_t errlen)
{
	long code = resp->http_status;
	struct perr e;

	*retry = 0;
	if (t->streamed)
		return judge_streamed(t, resp, err, errlen);
	if (resp->status != MK_HTTPC_OK)
		return transport_error(t->c, resp, resp->body.len > 0, 0, retry, err, errlen);
	if (code < 200 || code > 299) {
		perr_body(resp->body.data, resp->body.len, &e);
		return http_error(code, &e, retry, err, errlen);
	}
	if (req->stream) {
		mk_errf(err, errlen, "the model provider sent an empty reply");
		return LLM_E_PROTOCOL;
	}
	return judge_json(t, resp->body.data, resp->body.len, err, errlen);
}

struct outcome {
	int retry;
	int attempts;
	long retry_after_ms;
};

static llm_status attempt_once(const llm_conf *c, const llm_request *req, const llm_stream_cb *cb,
                               const llm_wire *w, llm_response *out, struct outcome *o, char *err,
                               size_t errlen)
{
	struct attempt t;
	mk_httpc_req hr;
	mk_httpc_resp resp;
	llm_status st;
	char *hint;

	memset(&t, 0, sizeof(t));
	t.c = c;
	acc_init(&t.a, c, req->stream ? cb : NULL);
	mk_buf_init(&t.raw, c->max_response);
	memset(o, 0, sizeof(*o));
	o->retry_after_ms = -1;
	if (req->stream) {
		t.sse = llm_sse_new(on_event, &t, c->max_response);
		if (!t.sse) {
			mk_errf(err, errlen, "out of memory");
			acc_finish(&t.a, LLM_E_UNAVAILABLE, out);
			acc_release(&t.a);
			return LLM_E_UNAVAILABLE;
		}
	}

	memset(&hr, 0, sizeof(hr));
	hr.method = "POST";
	hr.url = w->url.data;
	hr.headers = (const char *const *)w->headers;
	hr.body = w->body.data;
	hr.body_len = w->body.len;
	hr.connect_timeout_ms = c->connect_timeout_ms;
	hr.first_byte_timeout_ms = c->first_byte_timeout_ms;
	hr.idle_timeout_ms = c->idle_timeout_ms;
	hr.max_response = c->max_response;
	if (req->stream) {
		hr.on_data = on_data;
		hr.ud = &t;
	}
	mk_httpc_do(&hr, &resp);
	st = judge(&t, req, &resp, &o->retry, err, errlen);
	o->attempts = resp.attempts;
	o->retry_after_ms = resp.retry_after_ms;
	/* The server's own word on retrying wins (Stainless SDKs honour it too); quota never. */
	hint = mk_httpc_header(&resp, "x-should-retry");
	if (hint && st != LLM_OK && st != LLM_E_QUOTA && !t.streamed) {
		if (strcasecmp(hint, "true") == 0)
			o->retry = 1;
		else if (strcasecmp(hint, "false") == 0)
			o->retry = 0;
	}
	free(hint);
	acc_finish(&t.a, st, out);
	acc_release(&t.a);
	llm_sse_free(t.sse);
	mk_buf_release(&t.raw);
	mk_httpc_resp_release(&resp);
	return st;
}

/* Full jitter over the upper half of an exponential backoff. */
static int64_t backoff_ms(const llm_conf *c, int n)
{
	int64_t d = c->backoff_base_ms;
	uint64_t r;

	for (int i = 0; i < n && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (uint64_t)mk_mono_ms() * 0x9E3779B97F4A7C15ull;
	return d - d / 2 + (int64_t)(r % (uint64_t)(d / 2 + 1));
}

static llm_status complete(llm_provider *p, const llm_request *req, const llm_stream_cb *cb,
                           llm_response *out, char *err, size_t errlen)
{
	const llm_conf *c = p->impl;
	char spare[256];
	llm_status st;
	llm_wire w;
	int n;

	memset(out, 0, sizeof(*out));
	snprintf(out->model, sizeof(out->model), "%s", c->model);
	mk_utf8_clip(out->model);
	if (!err || errlen == 0) {
		err = spare;
		errlen = sizeof(spare);
	}
	err[0] = '\0';

	wire_init(&w);
	st = c->dialect->build(c, req, &w, err, errlen);
	for (size_t i = 0; st == LLM_OK && i < c->nheaders; i++) {
		const char *line = c->headers[i], *colon = strchr(line, ':');

		if (wire_line(&w, line, (size_t)(colon - line), colon + 2) != 0) {
			mk_errf(err, errlen, "out of memory");
			st = LLM_E_UNAVAILABLE;
		}
	}
	if (st != LLM_OK) {
		wire_release(&w);
		out->text = strdup("");
		return st;
	}

	for (n = 0;; n++) {
		struct outcome o;
		int64_t wait;

		if (req->deadline_mono_ms > 0 && mk_mono_ms() >= req->deadline_mono_ms) {
			if (n == 0) {
				mk_errf(err, errlen,
				        "the deadline passed before the model provider was "
				        "called");
				st = LLM_E_TIMEOUT;
				out->text = strdup("");
			} else {
				say_more(err, errlen, "; the deadline passed");
			}
			break;
		}
		st = attempt_once(c, req, cb, &w, out, &o, err, errlen);
		out->attempts += o.attempts;
		if (st == LLM_OK || !o.retry || n >= c->max_retries)
			break;
		if (o.retry_after_ms > RETRY_AFTER_CAP_MS) {
			say_more(err, errlen, "; it asks to wait %ld s", o.retry_after_ms / 1000);
			break;
		}
		wait = o.retry_after_ms >= 0 ? o.retry_after_ms : backoff_ms(c, n);
		if (req->deadline_mono_ms > 0 && mk_mono_ms() + wait >= req->deadline_mono_ms) {
			say_more(err, errlen, "; no time for another try before the deadline");
			break;
		}
		MK_WARN("LLM-RETRY", NULL, "%s model call failed (%s); retry %d of %d in %lld ms",
		        c->dialect->name, llm_status_code(st), n + 1, c->max_retries,
		        (long long)wait);
		mk_sleep_ms(wait);
	}
	if (st != LLM_OK && out->attempts > 1)
		say_more(err, errlen, "; retried %d time%s", out->attempts - 1,
		         out->attempts == 2 ? "" : "s");
	if (st == LLM_OK)
		err[0] = '\0'; /* an earlier attempt's failure is history */
	else
		redact(err, errlen, c->api_key);
	wire_release(&w);
	return st;
}

int llm_ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

llm_status llm_oom(char *err, size_t errlen)
{
	mk_errf(err, errlen, "out of memory building the model request");
	return LLM_E_UNAVAILABLE;
}

llm_status llm_wire_body(llm_wire *w, cJSON *root, char *err, size_t errlen)
{
	char *text = cJSON_PrintUnformatted(root);
	llm_status st = text && mk_buf_puts(&w->body, text) == 0 ? LLM_OK : llm_oom(err, errlen);

	cJSON_free(text);
	cJSON_Delete(root);
	return st;
}
