/*
 * sbx_daytona_api.c - the Daytona REST calls of the Daytona backend, over
 * mk_httpc (libexecutor, sandbox layer; see sbx_daytona_api.h). Retries
 * are done here, not by mk_httpc, because Daytona's retry hints
 * (Retry-After-<bucket>) and its 409s are its own.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mk_httpc.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "sbx_daytona_api.h"

#define CTRL_MAX    (1 << 20) /* largest control-plane response */
#define BACKOFF_MIN 100       /* ms; doubles up to BACKOFF_MAX */
#define BACKOFF_MAX 2000
#define RETRY_MAX   30000 /* never wait longer than this for one retry hint */
#define LIST_PAGES  50    /* pages of 200 sandboxes listed at most */

int dtn_client_init(dtn_client *c, const char *api_url, const char *key)
{
	size_t n = strlen(api_url), k = strlen(key) + 32;

	memset(c, 0, sizeof(*c));
	while (n > 0 && api_url[n - 1] == '/')
		n--;
	c->api_url = strndup(api_url, n);
	c->auth = malloc(k);
	if (!c->api_url || !c->auth) {
		dtn_client_release(c);
		return -1;
	}
	snprintf(c->auth, k, "Authorization: Bearer %s", key);
	return 0;
}

void dtn_client_release(dtn_client *c)
{
	if (c->auth) {
		volatile char *p = c->auth;

		while (*p)
			*p++ = '\0';
	}
	free(c->auth);
	free(c->api_url);
	c->auth = c->api_url = NULL;
}

/* How long a 429 asks us to wait: Retry-After-<bucket> or Retry-After, in ms; -1: no hint. */
static long retry_hint(const char *headers)
{
	const char *p = headers;

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);

		if (n > 11 && strncasecmp(p, "retry-after", 11) == 0) {
			const char *c = memchr(p, ':', n);
			char v[32];
			size_t vl;

			if (c) {
				c++;
				while (*c == ' ')
					c++;
				vl = (size_t)(p + n - c);
				while (vl > 0 && (c[vl - 1] == '\r' || c[vl - 1] == ' '))
					vl--;
				if (vl >= sizeof(v))
					vl = sizeof(v) - 1;
				memcpy(v, c, vl);
				v[vl] = '\0';
				if (mk_httpc_parse_retry_after(v, mk_now_ms()) >= 0)
					return mk_httpc_parse_retry_after(v, mk_now_ms());
			}
		}
		p = eol ? eol + 1 : NULL;
	}
	return -1;
}

/* The server's words for an error body: its "message", else the body cut, else "empty body". */
static void error_words(const mk_buf *b, char *out, size_t len)
{
	cJSON *j = b->len ? cJSON_ParseWithLength(b->data, b->len) : NULL;
	const char *m = j ? mk_json_str(j, "message") : NULL;

	if (m)
		snprintf(out, len, "%s", m);
	else if (b->len)
		snprintf(out, len, "%.*s", (int)(b->len > 200 ? 200 : b->len), b->data);
	else
		snprintf(out, len, "empty body");
	cJSON_Delete(j);
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
}

/* The path of url, for messages ("/sandbox/<id>/start"): no host, no query. */
static void path_of(const char *url, char *out, size_t len)
{
	const char *p = strstr(url, "://");

	p = p ? strchr(p + 3, '/') : NULL;
	snprintf(out, len, "%.*s", p ? (int)strcspn(p, "?") : 1, p ? p : "/");
}

/*
 * One call, retried per flags until deadline (dtn_call's contract), the
 * 2xx body moved into *resp when resp is set. -2 with err when the
 * response passed max_resp (never retried: the same answer would come).
 */
static long call_raw(const dtn_client *c, const char *method, const char *url, const char *ctype,
                     const char *body, size_t len, int flags, size_t max_resp, int64_t deadline,
                     mk_buf *resp, char *err, size_t errlen)
{
	char ct[96], what[160];
	const char *hdrs[4] = {c->auth, "X-Daytona-Source: mark-executor", NULL, NULL};
	int64_t backoff = BACKOFF_MIN;

	path_of(url, what, sizeof(what));
	if (ctype) {
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
		hdrs[2] = ct;
	}
	for (;;) {
		mk_httpc_req rq = {
		    .method = method,
		    .url = url,
		    .headers = hdrs,
		    .body = body,
		    .body_len = len,
		    .connect_timeout_ms = 10000,
		    .max_response = max_resp ? max_resp : CTRL_MAX,
		    .deadline_mono_ms = deadline,
		};
		mk_httpc_resp rs;
		int64_t left = deadline - mk_mono_ms(), wait = backoff;
		long st;
		int again;
		char words[256];

		if (left <= 0) {
			mk_errf(err, errlen, "daytona: %s %s timed out", method, what);
			return -1;
		}
		rq.total_timeout_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
		mk_httpc_do(&rq, &rs);
		st = rs.http_status;
		if (rs.status != MK_HTTPC_OK) {
			again = (flags & DTN_IDEMPOTENT) && rs.status != MK_HTTPC_TOO_LARGE &&
			        rs.status != MK_HTTPC_DEADLINE;
			mk_errf(err, errlen, "daytona: %s %s: %s", method, what, rs.error);
			if (rs.status == MK_HTTPC_TOO_LARGE) {
				mk_httpc_resp_release(&rs);
				return -2;
			}
		} else if (st >= 200 && st < 300) {
			if (resp) {
				*resp = rs.body;
				mk_buf_init(&rs.body, 0);
			}
			mk_httpc_resp_release(&rs);
			return st;
		} else {
			error_words(&rs.body, words, sizeof(words));
			mk_errf(err, errlen, "daytona: %s %s answered %ld: %s", method, what, st,
			        words);
			/*
			 * The toolbox says 400 "... Is the Sandbox started?" in the moments a
			 * sandbox's container is not reachable (contract §4.2): a passing state
			 * for a call that may be repeated.
			 */
			again =
			    st == 429 || (st == 409 && (flags & DTN_RETRY_409)) ||
			    ((st == 502 || st == 503 || st == 504) && (flags & DTN_IDEMPOTENT)) ||
			    (st == 400 && (flags & DTN_IDEMPOTENT) &&
			     strstr(words, "Is the Sandbox started?"));
			if (st == 429) {
				long h = retry_hint(rs.headers);

				if (h >= 0)
					wait = h > RETRY_MAX ? RETRY_MAX : h;
			}
			if (!again) {
				mk_httpc_resp_release(&rs);
				return st > 0 ? -st : -1;
			}
		}
		mk_httpc_resp_release(&rs);
		if (!again || mk_mono_ms() + wait >= deadline)
			return -1;
		MK_DEBUG("EXEC-DAYTONA-RETRY", NULL, "%s; again in %lld ms", err, (long long)wait);
		mk_sleep_ms(wait);
		backoff = backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : backoff * 2;
	}
}

long dtn_call(const dtn_client *c, const char *method, const char *url, const char *ctype,
              const char *body, size_t len, int flags, size_t max_resp, int64_t deadline,
              char **out, char *err, size_t errlen)
{
	mk_buf b;
	long st;

	mk_buf_init(&b, 0);
	st = call_raw(c, method, url, ctype, body, len, flags, max_resp, deadline, out ? &b : NULL,
	              err, errlen);
	if (st >= 0 && out) {
		if (mk_buf_append(&b, "", 1) != 0) {
			mk_buf_release(&b);
			mk_errf(err, errlen, "out of memory");
			return -1;
		}
		*out = mk_buf_steal(&b);
	}
	mk_buf_release(&b);
	return st;
}

/* A JSON answer of call, or NULL with err. */
static cJSON *call_json(const dtn_client *c, const char *method, const char *url, const cJSON *body,
                        int flags, int64_t deadline, long *status, char *err, size_t errlen)
{
	char *b = body ? mk_json_print(body) : NULL, *out = NULL;
	long st;
	cJSON *j;

	if (body && !b) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	st = dtn_call(c, method, url, body ? "application/json" : NULL, b, b ? strlen(b) : 0, flags,
	              0, deadline, &out, err, errlen);
	free(b);
	if (status)
		*status = st;
	if (st < 0)
		return NULL;
	/* 201 and 204 may come without a body. */
	j = *out ? mk_json_parse(out, strlen(out), 64, err, errlen) : cJSON_CreateObject();
	free(out);
	return j;
}

cJSON *dtn_sandbox_create(const dtn_client *c, const cJSON *body, int64_t deadline, char *err,
                          size_t errlen)
{
	char url[512];
	cJSON *s;

	snprintf(url, sizeof(url), "%s/sandbox", c->api_url);
	/* 429 is retried; a create is not repeated after a 5xx (it may have happened). */
	s = call_json(c, "POST", url, body, 0, deadline, NULL, err, errlen);
	if (s && !mk_json_str(s, "id")) {
		mk_errf(err, errlen, "daytona: the created sandbox has no id");
		cJSON_Delete(s);
		return NULL;
	}
	return s;
}

cJSON *dtn_sandbox_get(const dtn_client *c, const char *id, int64_t deadline, int *gone, char *err,
                       size_t errlen)
{
	char url[512];
	long st = 0;
	cJSON *s;

	snprintf(url, sizeof(url), "%s/sandbox/%s", c->api_url, id);
	s = call_json(c, "GET", url, NULL, DTN_IDEMPOTENT, deadline, &st, err, errlen);
	if (gone)
		*gone = st == -404;
	return s;
}

int dtn_sandbox_wait_started(const dtn_client *c, const char *id, int64_t deadline, char *tb,
                             size_t tblen, char *err, size_t errlen)
{
	int64_t pause = BACKOFF_MIN;

	for (;;) {
		cJSON *s = dtn_sandbox_get(c, id, deadline, NULL, err, errlen);
		const char *st = s ? mk_json_str(s, "state") : NULL;
		char url[512], last[32];
		int resting;

		if (!s)
			return -1;
		if (!st) {
			cJSON_Delete(s);
			mk_errf(err, errlen, "daytona: sandbox '%s' has no state", id);
			return -1;
		}
		if (strcmp(st, "started") == 0) {
			const char *u = mk_json_str(s, "toolboxProxyUrl");
			cJSON *p = NULL;

			if (!u || !*u) {
				snprintf(url, sizeof(url), "%s/sandbox/%s/toolbox-proxy-url",
				         c->api_url, id);
				p = call_json(c, "GET", url, NULL, DTN_IDEMPOTENT, deadline, NULL,
				              err, errlen);
				u = p ? mk_json_str(p, "url") : NULL;
			}
			if (u)
				snprintf(tb, tblen, "%s%s%s", u, u[strlen(u) - 1] == '/' ? "" : "/",
				         id);
			else if (p)
				mk_errf(err, errlen, "daytona: sandbox '%s' has no toolbox URL",
				        id);
			cJSON_Delete(p);
			cJSON_Delete(s);
			return u ? 0 : -1;
		}
		if (strcmp(st, "error") == 0 || strcmp(st, "build_failed") == 0) {
			const char *why = mk_json_str(s, "errorReason");

			mk_errf(err, errlen, "daytona: sandbox '%s' is in state '%s'%s%s", id, st,
			        why ? ": " : "", why ? why : "");
			cJSON_Delete(s);
			return -1;
		}
		if (strcmp(st, "destroyed") == 0 || strcmp(st, "destroying") == 0) {
			mk_errf(err, errlen, "daytona: sandbox '%s' is %s", id, st);
			cJSON_Delete(s);
			return -1;
		}
		resting = strcmp(st, "stopped") == 0 || strcmp(st, "archived") == 0;
		snprintf(last, sizeof(last), "%s", st);
		cJSON_Delete(s); /* st is gone with it */
		if (resting) {
			char *o = NULL;

			snprintf(url, sizeof(url), "%s/sandbox/%s/start", c->api_url, id);
			if (dtn_call(c, "POST", url, NULL, NULL, 0, DTN_RETRY_409 | DTN_IDEMPOTENT,
			             0, deadline, &o, err, errlen) < 0)
				return -1;
			free(o);
		}
		if (mk_mono_ms() + pause >= deadline) {
			mk_errf(err, errlen,
			        "daytona: sandbox '%s' not started in time (state '%s')", id, last);
			return -1;
		}
		mk_sleep_ms(pause);
		pause = pause * 2 > BACKOFF_MAX / 2 ? BACKOFF_MAX / 2 : pause * 2;
	}
}

int dtn_sandbox_labels(const dtn_client *c, const char *id, const cJSON *labels, int64_t deadline,
                       char *err, size_t errlen)
{
	cJSON *b = cJSON_CreateObject(), *r = NULL;
	char url[512];

	if (!b || !cJSON_AddItemToObject(b, "labels", cJSON_Duplicate(labels, 1))) {
		cJSON_Delete(b);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	snprintf(url, sizeof(url), "%s/sandbox/%s/labels", c->api_url, id);
	r = call_json(c, "PUT", url, b, DTN_IDEMPOTENT | DTN_RETRY_409, deadline, NULL, err,
	              errlen);
	cJSON_Delete(b);
	cJSON_Delete(r);
	return r ? 0 : -1;
}

int dtn_sandbox_delete(const dtn_client *c, const char *id, int64_t deadline, char *err,
                       size_t errlen)
{
	char url[512];
	long st;

	snprintf(url, sizeof(url), "%s/sandbox/%s", c->api_url, id);
	st = dtn_call(c, "DELETE", url, NULL, NULL, 0, DTN_IDEMPOTENT | DTN_RETRY_409, 0, deadline,
	              NULL, err, errlen);
	return st >= 0 || st == -404 ? 0 : -1;
}

/* s percent-encoded into out (for a query value). */
static void query_escape(const char *s, char *out, size_t len)
{
	size_t o = 0;

	for (; *s && o + 4 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, len - o, "%%%02X", ch);
	}
	out[o] = '\0';
}

cJSON *dtn_sandbox_list(const dtn_client *c, const char *key, const char *value, int64_t deadline,
                        char *err, size_t errlen)
{
	cJSON *want = cJSON_CreateObject(), *page = NULL, *all = cJSON_CreateArray(), *items;
	char *w = NULL, q[512], cursor[64] = "", url[1024];

	if (!want || !all || !cJSON_AddStringToObject(want, key, value) ||
	    !(w = mk_json_print(want))) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	query_escape(w, q, sizeof(q));
	for (int pages = 0; pages < LIST_PAGES; pages++) {
		const char *next;

		snprintf(url, sizeof(url), "%s/sandbox?labels=%s&limit=200%s%s", c->api_url, q,
		         cursor[0] ? "&cursor=" : "", cursor);
		page = call_json(c, "GET", url, NULL, DTN_IDEMPOTENT, deadline, NULL, err, errlen);
		if (!page)
			goto fail;
		/* The newest API pages ({items, nextCursor}); older ones answer a bare array. */
		items =
		    cJSON_IsArray(page) ? page : cJSON_GetObjectItemCaseSensitive(page, "items");
		while (cJSON_IsArray(items) && items->child) {
			cJSON *s = cJSON_DetachItemViaPointer(items, items->child);

			if (mk_json_str(s, "id"))
				cJSON_AddItemToArray(all, s);
			else
				cJSON_Delete(s);
		}
		next = cJSON_IsArray(page) ? NULL : mk_json_str(page, "nextCursor");
		if (!next || !*next || strlen(next) >= sizeof(cursor) / 3) {
			cJSON_Delete(page);
			break;
		}
		query_escape(next, cursor, sizeof(cursor));
		cJSON_Delete(page);
	}
	cJSON_Delete(want);
	free(w);
	return all;
fail:
	cJSON_Delete(want);
	cJSON_Delete(all);
	free(w);
	return NULL;
}

int dtn_execute(const dtn_client *c, const char *tb, const char *command, long long timeout_s,
                int retry, size_t max_resp, int64_t deadline, char **out, int *code, int *timed_out,
                char *err, size_t errlen)
{
	cJSON *b = cJSON_CreateObject(), *r = NULL;
	char url[1024], *body = NULL, *resp = NULL;
	long long ec = -1;
	long st;
	int rc = -1;

	*timed_out = 0;
	if (!b || !cJSON_AddStringToObject(b, "command", command) ||
	    !cJSON_AddNumberToObject(b, "timeout", (double)timeout_s) ||
	    !(body = mk_json_print(b))) {
		mk_errf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/process/execute", tb);
	st = dtn_call(c, "POST", url, "application/json", body, strlen(body),
	              retry ? DTN_IDEMPOTENT : 0, max_resp, deadline, &resp, err, errlen);
	if (st == -408) {
		*timed_out = 1;
		goto out;
	}
	if (st < 0)
		goto out;
	r = mk_json_parse(resp, strlen(resp), 8, err, errlen);
	if (!r || mk_json_int(r, "exitCode", &ec) != 0 || !mk_json_str(r, "result")) {
		if (r)
			mk_errf(err, errlen,
			        "daytona: execute answered without exitCode and result");
		goto out;
	}
	*out = strdup(mk_json_str(r, "result"));
	if (!*out) {
		mk_errf(err, errlen, "out of memory");
		goto out;
	}
	*code = (int)ec;
	rc = 0;
out:
	cJSON_Delete(b);
	cJSON_Delete(r);
	free(body);
	free(resp);
	return rc;
}

int dtn_background(const dtn_client *c, const char *tb, const char *sid, const char *command,
                   int64_t deadline, char *err, size_t errlen)
{
	cJSON *b = cJSON_CreateObject(), *r = NULL;
	char url[1024];
	long st = -1;

	if (!b || !cJSON_AddStringToObject(b, "sessionId", sid)) {
		mk_errf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(url, sizeof(url), "%s/process/session", tb);
	r = call_json(c, "POST", url, b, 0, deadline, &st, err, errlen);
	if (st < 0 && st != -409) /* 409: the session exists (a retried start) */
		goto out;
	cJSON_Delete(r);
	cJSON_Delete(b);
	r = NULL;
	b = cJSON_CreateObject();
	if (!b || !cJSON_AddStringToObject(b, "command", command) ||
	    !cJSON_AddTrueToObject(b, "runAsync")) {
		mk_errf(err, errlen, "out of memory");
		st = -1;
		goto out;
	}
	snprintf(url, sizeof(url), "%s/process/session/%s/exec", tb, sid);
	r = call_json(c, "POST", url, b, 0, deadline, &st, err, errlen);
out:
	cJSON_Delete(b);
	cJSON_Delete(r);
	return st >= 0 ? 0 : -1;
}

/* "{tb}{route}?path=<path escaped>{tail}", malloc'd; NULL with err when out of memory. */
static char *file_url(const char *tb, const char *route, const char *path, const char *tail,
                      char *err, size_t errlen)
{
	size_t n = strlen(tb) + strlen(route) + strlen(path) * 3 + strlen(tail) + 16;
	char *u = malloc(n);
	int o;

	if (!u) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	o = snprintf(u, n, "%s%s?path=", tb, route);
	query_escape(path, u + o, n - (size_t)o - strlen(tail));
	snprintf(u + strlen(u), n - strlen(u), "%s", tail);
	return u;
}

int dtn_upload(const dtn_client *c, const char *tb, const char *path, const void *data, size_t len,
               int64_t deadline, char *err, size_t errlen)
{
	char *url = file_url(tb, "/files/upload-v2", path, "", err, errlen), *o = NULL;
	long st;

	if (!url)
		return -1;
	/* Writing the same bytes twice is harmless: idempotent. */
	st = dtn_call(c, "POST", url, "application/octet-stream", data, len, DTN_IDEMPOTENT, 0,
	              deadline, &o, err, errlen);
	free(o);
	free(url);
	return st >= 0 ? 0 : -1;
}

int dtn_download(const dtn_client *c, const char *tb, const char *path, size_t max,
                 int64_t deadline, mk_buf *out, char *err, size_t errlen)
{
	char *url = file_url(tb, "/files/download", path, "", err, errlen);
	mk_buf b;
	long st;

	if (!url)
		return -1;
	mk_buf_init(&b, 0);
	/* max + 1: a file of exactly max bytes fits; mk_httpc stops reading past it. */
	st = call_raw(c, "GET", url, NULL, NULL, 0, DTN_IDEMPOTENT, max + 1, deadline, &b, err,
	              errlen);
	if (st >= 0 && b.len > max)
		st = -2;
	if (st == -2)
		mk_errf(err, errlen, "larger than %zu bytes", max);
	if (st >= 0 && mk_buf_append(out, b.data ? b.data : "", b.len) != 0) {
		mk_errf(err, errlen, "out of memory");
		st = -1;
	}
	mk_buf_release(&b);
	free(url);
	return st >= 0 ? 0 : st == -2 ? -2 : st == -404 ? -3 : -1;
}

cJSON *dtn_files(const dtn_client *c, const char *tb, const char *dir, int depth, size_t max,
                 int64_t deadline, char *err, size_t errlen)
{
	char tail[32], *url;
	mk_buf b;
	cJSON *j = NULL;
	long st;

	snprintf(tail, sizeof(tail), "&depth=%d", depth);
	if (!(url = file_url(tb, "/files", dir, tail, err, errlen)))
		return NULL;
	mk_buf_init(&b, 0);
	st = call_raw(c, "GET", url, NULL, NULL, 0, DTN_IDEMPOTENT, max, deadline, &b, err, errlen);
	if (st == -2)
		mk_errf(err, errlen, "daytona: the file list is larger than %zu bytes", max);
	else if (st >= 0 && b.len == 0)
		mk_errf(err, errlen, "daytona: GET /files answered an empty body");
	else if (st >= 0 && (j = mk_json_parse(b.data, b.len, 8, err, errlen)) &&
	         !cJSON_IsArray(j)) {
		mk_errf(err, errlen, "daytona: GET /files answered something not a list");
		cJSON_Delete(j);
		j = NULL;
	}
	mk_buf_release(&b);
	free(url);
	return j;
}
