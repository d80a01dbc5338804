/*
 * dt_double_http.c - the HTTP side of the Daytona double: civetweb set-up,
 * one entry handler that reads the body, classifies the route, records the
 * request, applies scripted faults, checks the bearer key and hands over
 * to the control plane, the toolbox or the /_double/ endpoints; the error
 * bodies of both faces and the control plane's rate-limit headers.
 *
 * Surfaces:
 *   /api/...                          the control plane (dt_double_api.c)
 *   /toolbox/{sandboxId}/...          the toolbox, as the proxy serves it
 *   /_double/...                      the double's own control endpoints
 *
 * Like the real proxy, the toolbox checks the bearer key first, then that
 * the sandbox exists and is started; only then does a route run.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "mt_serve.h"

static const char *const bucket_names[] = {"authenticated", "sandbox-create", "sandbox-lifecycle"};
static const long bucket_limits[] = {10000, 300, 10000}; /* Tier 1, per minute */

/* ------------------------------------------------------------------ helpers */

void dt_iso_time(int64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;
	char s[32];

	gmtime_r(&t, &tm);
	strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, len, "%s.%03dZ", s, (int)(ms % 1000));
}

char *dt_utf8(const char *s, size_t len)
{
	mk_buf b;
	size_t i = 0;

	mk_buf_init(&b, 0);
	while (i < len) {
		size_t ok = mk_utf8_valid_prefix((const unsigned char *)s + i, len - i);
		size_t nul = ok;
		const char *z = memchr(s + i, '\0', ok);

		if (z)
			nul = (size_t)(z - (s + i));
		mk_buf_append(&b, s + i, nul);
		i += nul;
		if (i < len) {
			mk_buf_puts(&b, "\xef\xbf\xbd"); /* U+FFFD, like Go's encoder */
			i++;
		}
	}
	if (!b.data)
		return strdup("");
	return mk_buf_steal(&b);
}

int dt_param(const dt_req *r, const char *name, char *buf, size_t len)
{
	return mt_serve_param(r->ri, name, buf, len);
}

/* ------------------------------------------------------------------ writing */

/* The rate-limit headers of r's bucket, counting this request. */
static void rate_headers(dt_req *r, mk_buf *h)
{
	dt_double *d = r->d;
	int64_t now = mk_mono_ms();
	long remaining, reset;
	int b = r->bucket;

	pthread_mutex_lock(&d->mu);
	if (d->rl_window == 0 || now - d->rl_window >= 60000) {
		d->rl_window = now;
		memset(d->rl_count, 0, sizeof(d->rl_count));
	}
	d->rl_count[b]++;
	remaining = bucket_limits[b] - d->rl_count[b];
	reset = (long)((d->rl_window + 60000 - now + 999) / 1000);
	pthread_mutex_unlock(&d->mu);
	mk_buf_printf(h,
	              "X-RateLimit-Limit-%s: %ld\r\nX-RateLimit-Remaining-%s: %ld\r\n"
	              "X-RateLimit-Reset-%s: %ld\r\n",
	              bucket_names[b], bucket_limits[b], bucket_names[b],
	              remaining > 0 ? remaining : 0, bucket_names[b], reset);
}

void dt_send(dt_req *r, int status, const char *ctype, const char *extra_headers, const void *body,
             size_t len)
{
	const char *text = mg_get_response_code_text(NULL, status);
	mk_buf h;

	mk_buf_init(&h, 0);
	mk_buf_printf(&h, "HTTP/1.1 %d %s\r\n", status, text ? text : "Unknown");
	if (ctype)
		mk_buf_printf(&h, "Content-Type: %s\r\n", ctype);
	mk_buf_printf(&h, "Content-Length: %zu\r\n", len);
	if (r->surface == DT_SURFACE_API && r->authed)
		rate_headers(r, &h);
	mk_buf_printf(&h, "%s\r\n", extra_headers ? extra_headers : "");
	mt_serve_write(r->conn, &h, body, len);
	mk_buf_release(&h);
}

void dt_send_json(dt_req *r, int status, const cJSON *body)
{
	char *s = mk_json_print(body);

	if (!s) {
		dt_send(r, 500, "text/plain", NULL, "daytona-double: out of memory", 29);
		return;
	}
	dt_send(r, status, "application/json; charset=utf-8", NULL, s, strlen(s));
	cJSON_free(s);
}

void dt_api_error(dt_req *r, int status, const char *fmt, ...)
{
	const char *text = mg_get_response_code_text(NULL, status);
	char msg[1536], ts[40];
	cJSON *o = cJSON_CreateObject();
	va_list ap;
	mk_buf url;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mk_utf8_clip(msg);
	dt_iso_time(mk_now_ms(), ts, sizeof(ts));
	/* Express's request.url: the path with its query. */
	mk_buf_init(&url, 0);
	mk_buf_printf(&url, "%s%s%s", r->ri->request_uri ? r->ri->request_uri : r->path,
	              r->ri->query_string ? "?" : "",
	              r->ri->query_string ? r->ri->query_string : "");
	cJSON_AddStringToObject(o, "path", url.data ? url.data : r->path);
	cJSON_AddStringToObject(o, "timestamp", ts);
	cJSON_AddNumberToObject(o, "statusCode", status);
	cJSON_AddStringToObject(o, "error", text ? text : "Error");
	cJSON_AddStringToObject(o, "message", msg);
	dt_send_json(r, status, o);
	mk_buf_release(&url);
	cJSON_Delete(o);
}

static void tb_error(dt_req *r, int status, const char *code, const char *source, const char *fmt,
                     va_list ap)
{
	char msg[1536], ts[40];
	cJSON *o = cJSON_CreateObject();

	vsnprintf(msg, sizeof(msg), fmt, ap);
	mk_utf8_clip(msg);
	dt_iso_time(mk_now_ms(), ts, sizeof(ts));
	cJSON_AddNumberToObject(o, "statusCode", status);
	cJSON_AddStringToObject(o, "message", msg);
	if (code)
		cJSON_AddStringToObject(o, "code", code);
	cJSON_AddStringToObject(o, "timestamp", ts);
	cJSON_AddStringToObject(o, "path", r->path);
	cJSON_AddStringToObject(o, "method", r->ri->request_method);
	cJSON_AddStringToObject(o, "source", source);
	dt_send_json(r, status, o);
	cJSON_Delete(o);
}

void dt_tb_error(dt_req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tb_error(r, status, code, "DAYTONA_DAEMON", fmt, ap);
	va_end(ap);
}

void dt_proxy_error(dt_req *r, int status, const char *code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tb_error(r, status, code, "DAYTONA_PROXY", fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ reading */

/* Split rest into r->seg; -1 when there are too many segments. */
static int split_path(dt_req *r, const char *rest)
{
	return mt_serve_split_path(rest, r->seg, (int)(sizeof(r->seg) / sizeof(r->seg[0])),
	                           &r->nseg);
}

/* The toolbox route of r->sub with r->seg[1..], or NULL. */
static const char *toolbox_route(dt_req *r)
{
	static const struct {
		const char *method, *path, *route;
	} fixed[] = {
	    {"POST", "/process/execute", "process.execute"},
	    {"POST", "/process/code-run", "process.code-run"},
	    {"POST", "/process/session", "session.create"},
	    {"GET", "/process/session", "session.list"},
	    {"GET", "/files", "files.list"},
	    {"DELETE", "/files", "files.delete"},
	    {"GET", "/files/info", "files.info"},
	    {"POST", "/files/folder", "files.folder"},
	    {"GET", "/files/download", "files.download"},
	    {"POST", "/files/bulk-download", "files.bulk-download"},
	    {"POST", "/files/bulk-upload", "files.bulk-upload"},
	    {"POST", "/files/upload-v2", "files.upload"},
	    {"POST", "/files/upload", "files.upload-legacy"},
	    {"GET", "/work-dir", "info.work-dir"},
	    {"GET", "/user-home-dir", "info.user-home-dir"},
	    {"GET", "/version", "info.version"},
	};
	const char *m = r->ri->request_method;
	size_t i;

	for (i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (strcmp(m, fixed[i].method) == 0 && strcmp(r->sub, fixed[i].path) == 0)
			return fixed[i].route;
	/* /process/session/{sid}[/exec | /command/{cid}[/logs]] */
	if (r->nseg < 4 || strcmp(r->seg[1], "process") != 0 || strcmp(r->seg[2], "session") != 0 ||
	    !*r->seg[3])
		return NULL;
	if (r->nseg == 4)
		return strcmp(m, "GET") == 0      ? "session.get"
		       : strcmp(m, "DELETE") == 0 ? "session.delete"
		                                  : NULL;
	if (r->nseg == 5 && strcmp(r->seg[4], "exec") == 0 && strcmp(m, "POST") == 0)
		return "session.exec";
	if (r->nseg >= 6 && strcmp(r->seg[4], "command") == 0 && *r->seg[5] &&
	    strcmp(m, "GET") == 0) {
		if (r->nseg == 6)
			return "session.command";
		if (r->nseg == 7 && strcmp(r->seg[6], "logs") == 0)
			return "session.logs";
	}
	return NULL;
}

static void classify(dt_req *r)
{
	static const char api[] = "/api/", tb[] = "/toolbox/";
	const char *p = r->path;

	if (strncmp(p, "/_double/", 9) == 0) {
		r->surface = DT_SURFACE_CONTROL;
	} else if (strncmp(p, tb, sizeof(tb) - 1) == 0) {
		const char *slash = strchr(p + sizeof(tb) - 1, '/');

		r->surface = DT_SURFACE_TOOLBOX;
		r->sub = slash ? slash : "/";
		if (split_path(r, p + sizeof(tb) - 1) == 0 && r->nseg >= 1 && *r->seg[0])
			r->route = toolbox_route(r);
	} else {
		r->surface = DT_SURFACE_API;
		if (strncmp(p, api, sizeof(api) - 1) == 0 &&
		    split_path(r, p + sizeof(api) - 1) == 0)
			r->route = dt_api_route(r);
	}
}

/* The recorded form of r: {"surface","route","method","path","query","headers","body"}. */
static cJSON *record_of(const dt_req *r)
{
	static const char *const surfaces[] = {"api", "toolbox", "control"};
	cJSON *o = cJSON_CreateObject(), *h;
	int i;

	cJSON_AddStringToObject(o, "surface", surfaces[r->surface]);
	if (r->route)
		cJSON_AddStringToObject(o, "route", r->route);
	else
		cJSON_AddNullToObject(o, "route");
	mt_serve_record_line(o, r->ri, r->path);
	h = cJSON_AddObjectToObject(o, "headers");
	for (i = 0; i < r->ri->num_headers; i++) {
		char name[128];

		mt_serve_header_key(r->ri->http_headers[i].name, name, sizeof(name));
		if (!cJSON_GetObjectItemCaseSensitive(h, name))
			cJSON_AddStringToObject(
			    h, name,
			    r->ri->http_headers[i].value ? r->ri->http_headers[i].value : "");
	}
	if (r->json)
		cJSON_AddItemToObject(o, "body", cJSON_Duplicate(r->json, 1));
	else if (r->body_len > 0 && r->body_len <= 65536 &&
	         mk_utf8_valid_prefix((const unsigned char *)r->body, r->body_len) == r->body_len &&
	         !memchr(r->body, '\0', r->body_len))
		cJSON_AddStringToObject(o, "body", r->body);
	else
		cJSON_AddNullToObject(o, "body");
	cJSON_AddNumberToObject(o, "body_bytes", (double)r->body_len);
	return o;
}

/* ------------------------------------------------------------------ auth */

/* The bearer token of r, or NULL. */
static const char *bearer(const dt_req *r)
{
	const char *a = mg_get_header(r->conn, "Authorization");

	if (!a || strncasecmp(a, "Bearer ", 7) != 0)
		return NULL;
	a += 7;
	while (*a == ' ')
		a++;
	return *a ? a : NULL;
}

static int key_ok(const dt_req *r)
{
	const char *k = bearer(r);

	return k && (!r->d->api_key || strcmp(k, r->d->api_key) == 0);
}

/*
 * The proxy's checks before a toolbox route: the key, the sandbox (by id),
 * and that it is started. Takes a reference on success (r->sbx); 0, or -1
 * when r has been answered.
 */
static int toolbox_gate(dt_req *r)
{
	dt_double *d = r->d;
	dt_sandbox *s;
	dt_state st = DT_STARTED;

	if (!bearer(r)) {
		dt_proxy_error(
		    r, 401, "UNAUTHORIZED",
		    "unauthorized: missing authentication: provide a preview access token "
		    "(via header, query parameter, or cookie) or use an API key or JWT");
		return -1;
	}
	if (!key_ok(r)) {
		dt_proxy_error(r, 401, "UNAUTHORIZED",
		               "unauthorized: authentication failed: Bearer token is invalid");
		return -1;
	}
	pthread_mutex_lock(&d->mu);
	s = dt_sandbox_by_id(d, r->seg[0]);
	if (s) {
		st = s->state;
		if (st == DT_STARTED) {
			s->refs++;
			s->activity = mk_now_ms();
			r->sbx = s;
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (!s) {
		dt_proxy_error(r, 404, "NOT_FOUND", "not found: sandbox %s not found", r->seg[0]);
		return -1;
	}
	if (st == DT_ARCHIVED || st == DT_ARCHIVING) {
		dt_proxy_error(r, 404, "NOT_FOUND", "not found: sandbox container not found: %s",
		               r->seg[0]);
		return -1;
	}
	if (st != DT_STARTED) {
		dt_proxy_error(
		    r, 400, "BAD_REQUEST",
		    "bad request: failed to resolve container IP after 3 attempts: sandbox "
		    "%s is %s. Is the Sandbox started?",
		    r->seg[0], dt_state_name(st));
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ routing */

static void serve_toolbox(dt_req *r)
{
	if (r->nseg < 1 || !*r->seg[0]) {
		dt_send(r, 404, "text/plain", NULL, "404 page not found", 18);
		return;
	}
	if (toolbox_gate(r) != 0)
		return;
	if (!r->route)
		dt_send(r, 404, "text/plain", NULL, "404 page not found", 18);
	else if (strncmp(r->route, "process.", 8) == 0)
		dt_process_serve(r);
	else if (strncmp(r->route, "session.", 8) == 0)
		dt_session_serve(r);
	else
		dt_fs_serve(r);
}

static void serve_api(dt_req *r)
{
	/* The public configuration needs no key; everything else does. */
	if (!(r->route && strcmp(r->route, "config") == 0) && !key_ok(r)) {
		dt_api_error(r, 401, "Unauthorized");
		return;
	}
	r->authed = 1;
	if (!r->route) {
		dt_api_error(r, 404, "Cannot %s %s", r->ri->request_method, r->path);
		return;
	}
	dt_api_serve(r);
}

static int on_request(struct mg_connection *conn, void *ud)
{
	const char *ct;
	char err[256];
	dt_req r;
	int rc, i;

	memset(&r, 0, sizeof(r));
	r.d = ud;
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	r.path = r.ri->local_uri ? r.ri->local_uri : "/";

	mt_serve_continue(conn);
	classify(&r);
	rc = mt_serve_read_body(conn, DT_MAX_BODY, &r.body, &r.body_len);
	if (rc != 0) {
		if (r.surface == DT_SURFACE_TOOLBOX)
			dt_tb_error(&r, rc > 0 ? 413 : 400, "BAD_REQUEST",
			            rc > 0 ? "request body over %u bytes"
			                   : "cannot read the request body (%u)",
			            DT_MAX_BODY);
		else
			dt_api_error(&r, rc > 0 ? 413 : 400,
			             rc > 0 ? "request entity too large (over %u bytes)"
			                    : "cannot read the request body (%u)",
			             DT_MAX_BODY);
		goto out;
	}
	ct = mg_get_header(conn, "Content-Type");
	if (r.body_len > 0 && (!ct || strncasecmp(ct, "multipart/", 10) != 0) &&
	    (!ct || !strstr(ct, "octet-stream")))
		r.json = mk_json_parse(r.body, r.body_len, MK_JSON_MAX_DEPTH, err, sizeof(err));
	if (r.surface == DT_SURFACE_CONTROL) {
		dt_control_serve(&r);
		goto out;
	}
	mt_serve_record(&r.d->mu, &r.d->requests, record_of(&r), DT_MAX_REQUESTS);
	MK_INFO("DTD-REQ", NULL, "%s %s%s%s -> %s", r.ri->request_method, r.path,
	        r.ri->query_string ? "?" : "", r.ri->query_string ? r.ri->query_string : "",
	        r.route ? r.route : "(no route)");
	if (dt_fault(&r))
		goto out;
	if (r.surface == DT_SURFACE_TOOLBOX)
		serve_toolbox(&r);
	else
		serve_api(&r);
out:
	if (r.sbx) {
		pthread_mutex_lock(&r.d->mu);
		dt_sandbox_unref(r.d, r.sbx);
		pthread_mutex_unlock(&r.d->mu);
	}
	for (i = 0; i < r.nseg; i++)
		free(r.seg[i]);
	cJSON_Delete(r.json);
	free(r.body);
	return 200; /* only civetweb's access log sees this */
}

int dt_http_start(dt_double *d, const char *listen, char *err, size_t errlen)
{
	char host[64];
	const char *colon = strrchr(listen, ':');
	size_t n = colon ? (size_t)(colon - listen) : 0;

	d->http = mt_serve_start(listen, on_request, d, "DTD-HTTP", &d->port, err, errlen);
	if (!d->http)
		return -1;
	snprintf(host, sizeof(host), "%.*s", (int)n, listen);
	if (n == 0 || strcmp(host, "0.0.0.0") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	snprintf(d->base, sizeof(d->base), "http://%s:%d", host, d->port);
	snprintf(d->toolbox_url, sizeof(d->toolbox_url), "%s/toolbox", d->base);
	return 0;
}

void dt_http_stop(dt_double *d)
{
	mt_serve_stop(&d->http);
}
