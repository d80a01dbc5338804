/*
 * gateway_http.c - the HTTP side of the gateway: civetweb set-up, one entry
 * handler that gives each request an id, routes it (404/405), reads and
 * caps its body (413), parses JSON (400), and the reply helpers that every
 * answer goes through, so every error has the same JSON shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gateway.h"
#include "mk_buf.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

/* ------------------------------------------------------------------ replies */

static const char *reason(int status)
{
	const char *s;

	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 422: return "Unprocessable Content";
	case 429: return "Too Many Requests";
	case 503: return "Service Unavailable";
	}
	s = mg_get_response_code_text(NULL, status);
	return s ? s : "Unknown";
}

static void send_raw(gw_req *r, int status, const char *ctype, const char *body, size_t len,
                     const char *extra_headers)
{
	gw_reply_bytes(r, status, ctype, body, len, NULL, extra_headers);
}

void gw_reply_json(gw_req *r, int status, const cJSON *body, const char *extra_headers)
{
	char *s = body ? mk_json_print(body) : NULL;

	if (body && !s) {
		send_raw(r, 500, "application/json", "{}", 2, NULL);
		return;
	}
	send_raw(r, status, "application/json", s ? s : "{}", s ? strlen(s) : 2, extra_headers);
	cJSON_free(s);
}

void gw_reply_bytes(gw_req *r, int status, const char *ctype, const void *data, size_t len,
                    const char *cache_control, const char *extra_headers)
{
	mk_buf h;

	mk_buf_init(&h, 0);
	mk_buf_printf(&h,
	              "HTTP/1.1 %d %s\r\n"
	              "Content-Type: %s\r\n"
	              "Content-Length: %zu\r\n"
	              "X-Request-Id: %s\r\n"
	              "Cache-Control: %s\r\n"
	              "X-Content-Type-Options: nosniff\r\n"
	              "%s\r\n",
	              status, reason(status), ctype, len, r->rid,
	              cache_control ? cache_control : "no-store",
	              extra_headers ? extra_headers : "");
	/* Headers and body apart: a large body is not copied once more. */
	if (h.data && mg_write(r->conn, h.data, h.len) > 0 && len > 0)
		mg_write(r->conn, data, len);
	mk_buf_release(&h);
	r->status = status;
}

void gw_reply_error_ex(gw_req *r, mk_err e, const char *msg, const char *extra_headers,
                       const cJSON *extra)
{
	cJSON *o = extra ? cJSON_Duplicate(extra, 1) : cJSON_CreateObject();
	cJSON *er = o ? cJSON_AddObjectToObject(o, "error") : NULL;

	char text[512];

	snprintf(text, sizeof(text), "%s", msg && *msg ? msg : mk_err_message(e));
	mk_utf8_clip(text);
	if (er) {
		cJSON_AddStringToObject(er, "code", mk_err_code(e));
		cJSON_AddStringToObject(er, "message", text);
		cJSON_AddStringToObject(er, "request_id", r->rid);
	}
	gw_reply_json(r, mk_err_status(e), o, extra_headers);
	cJSON_Delete(o);
}

void gw_reply_error(gw_req *r, mk_err e, const char *msg)
{
	gw_reply_error_ex(r, e, msg, NULL, NULL);
}

void gw_reply_empty(gw_req *r, int status)
{
	char h[256];
	int n;

	n = snprintf(h, sizeof(h),
	             "HTTP/1.1 %d %s\r\nX-Request-Id: %s\r\nCache-Control: no-store\r\n\r\n",
	             status, reason(status), r->rid);
	mg_write(r->conn, h, (size_t)n);
	r->status = status;
}

void gw_forward(gw_req *r, int svc, mk_op op, const cJSON *body, int ok_status)
{
	mk_rpc_result res;

	mk_rpc_call_raw(r->gw->svc[svc], op, r->rid, r->caller.user_id[0] ? &r->caller : NULL, body,
	                (int)r->gw->cfg->rpc_timeout_ms, &res);
	if (res.err == MK_OK) {
		if (ok_status == 204)
			gw_reply_empty(r, 204);
		else if (res.raw_body)
			send_raw(r, ok_status, "application/json", res.raw_body, res.raw_len, NULL);
		else
			gw_reply_json(r, ok_status, res.body, NULL);
	} else {
		gw_reply_rpc_error(r, &res);
	}
	mk_rpc_result_release(&res);
}

void gw_reply_rpc_error(gw_req *r, const mk_rpc_result *res)
{
	char hdr[128] = "";
	long long after;

	if (mk_json_int(res->error, "retry_after", &after) == 0 && after > 0)
		snprintf(hdr, sizeof(hdr), "Retry-After: %lld\r\n", after);
	else if (mk_err_status(res->err) == 401)
		snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer realm=\"mark\"\r\n");
	gw_reply_error_ex(r, res->err, res->msg, hdr[0] ? hdr : NULL, NULL);
}

/* ------------------------------------------------------------------ routing */

/*
 * Match path against pattern; {} matches one non-empty segment, copied into
 * r->params. Returns 1 on a match.
 */
static int match(const char *pattern, const char *path, gw_req *r)
{
	size_t used = 0, np = 0;

	while (*pattern && *path) {
		if (pattern[0] == '{' && pattern[1] == '}') {
			size_t n = strcspn(path, "/");

			if (n == 0 || np == sizeof(r->params) / sizeof(r->params[0]) ||
			    used + n + 1 > sizeof(r->pbuf))
				return 0;
			memcpy(r->pbuf + used, path, n);
			r->pbuf[used + n] = '\0';
			r->params[np++] = r->pbuf + used;
			used += n + 1;
			path += n;
			pattern += 2;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

/*
 * Read the whole body, at most max bytes, within one request timeout.
 * Returns 0, 1 too large, 2 the body stopped short of its Content-Length
 * (the client went quiet or away), -1 a read error.
 */
int gw_read_body(gw_req *r, size_t max)
{
	long long cl = r->ri->content_length;
	int64_t until = mk_mono_ms() + r->gw->cfg->request_timeout_ms;
	mk_buf b;
	char chunk[16384];
	int n, rc = 0;

	if (cl > (long long)max)
		return 1;
	mk_buf_init(&b, max);
	for (;;) {
		/* mg_read waits up to the request timeout for data; 0 is end or silence. */
		n = mg_read(r->conn, chunk, sizeof(chunk));
		if (n < 0) {
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		if (mk_buf_append(&b, chunk, (size_t)n) != 0) {
			rc = 1;
			break;
		}
		if (mk_mono_ms() > until) {
			rc = 2;
			break;
		}
	}
	if (rc == 0 && cl >= 0 && (long long)b.len < cl)
		rc = 2;
	if (rc != 0) {
		mk_buf_release(&b);
		return rc;
	}
	r->body_len = b.len;
	r->body = b.data ? mk_buf_steal(&b) : strdup("");
	mk_buf_release(&b);
	return r->body ? 0 : -1;
}

int gw_read_body_or_reply(gw_req *r, size_t max, const char *too_large)
{
	int rc = gw_read_body(r, max);

	/* On failure the rest of the body is unread: the connection cannot be reused. */
	if (rc == 1)
		gw_reply_error_ex(r, MK_E_TOO_LARGE, too_large, "Connection: close\r\n", NULL);
	else if (rc == 2)
		gw_reply_error_ex(r, MK_E_REQUEST_TIMEOUT,
		                  "the request body stopped before its Content-Length",
		                  "Connection: close\r\n", NULL);
	else if (rc < 0)
		gw_reply_error_ex(r, MK_E_BAD_REQUEST, "could not read the request body",
		                  "Connection: close\r\n", NULL);
	return rc == 0 ? 0 : -1;
}

static void serve(gw_req *r)
{
	const char *path = r->ri->local_uri ? r->ri->local_uri : "/";
	const char *method = r->ri->request_method;
	const gw_route *rt = NULL;
	char allow[128] = "", hdr[160], perr[160], msg[256];
	size_t i;

	for (i = 0; i < gw_nroutes; i++) {
		if (!match(gw_routes[i].pattern, path, r))
			continue;
		if (strcmp(gw_routes[i].method, method) == 0) {
			rt = &gw_routes[i];
			r->route = (int)i;
			break;
		}
		if (!strstr(allow, gw_routes[i].method))
			snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
			         allow[0] ? ", " : "", gw_routes[i].method);
	}
	if (!rt && allow[0]) {
		snprintf(hdr, sizeof(hdr), "Allow: %s\r\n", allow);
		snprintf(msg, sizeof(msg),
		         "method '%.16s' is not allowed on this route (allowed: %s)", method,
		         allow);
		gw_reply_error_ex(r, MK_E_METHOD_NOT_ALLOWED, msg, hdr, NULL);
		return;
	}
	if (!rt) {
		snprintf(msg, sizeof(msg), "no route '%.200s'", path);
		gw_reply_error(r, MK_E_NOT_FOUND, msg);
		return;
	}
	if ((rt->flags & GW_R_AUTH) && gw_auth_guard(r) != 0)
		return;
	if (rt->flags & (GW_R_BODY | GW_R_JSON)) {
		snprintf(msg, sizeof(msg), "request body exceeds GATEWAY_MAX_BODY (%lld bytes)",
		         r->gw->cfg->max_body);
		if (gw_read_body_or_reply(r, (size_t)r->gw->cfg->max_body, msg) != 0)
			return;
	}
	if ((rt->flags & GW_R_JSON) && r->body_len == 0) {
		r->json = cJSON_CreateObject(); /* no body is an empty object */
	} else if (rt->flags & GW_R_JSON) {
		r->json =
		    mk_json_parse(r->body, r->body_len, MK_JSON_MAX_DEPTH, perr, sizeof(perr));
		if (!r->json) {
			snprintf(msg, sizeof(msg), "invalid JSON: %s", perr);
			gw_reply_error(r, MK_E_INVALID_JSON, msg);
			return;
		}
		if (!cJSON_IsObject(r->json)) {
			gw_reply_error(r, MK_E_VALIDATION,
			               "the request body must be a JSON object");
			return;
		}
	}
	rt->handler(r);
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	gw_req r;
	const char *rid;
	int64_t t0 = mk_mono_ms();
	struct timespec ts0, ts1;

	clock_gettime(CLOCK_MONOTONIC, &ts0);
	gw_metrics_begin();
	memset(&r, 0, sizeof(r));
	r.route = -1;
	r.gw = cbdata;
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	rid = mg_get_header(conn, "X-Request-Id");
	if (rid && mk_rid_valid(rid))
		snprintf(r.rid, sizeof(r.rid), "%s", rid);
	else
		mk_rid_new(r.rid);
	serve(&r);
	if (!r.status) /* a handler that forgot to answer is a bug; never leave the client hanging
	                */
		gw_reply_error(&r, MK_E_INTERNAL, NULL);
	clock_gettime(CLOCK_MONOTONIC, &ts1);
	gw_metrics_end(&r, (double)(ts1.tv_sec - ts0.tv_sec) + (ts1.tv_nsec - ts0.tv_nsec) / 1e9);
	MK_DEBUG("GW-ACCESS", r.rid, "%s %s %d %lld ms", r.ri->request_method,
	         r.ri->local_uri ? r.ri->local_uri : "", r.status, (long long)(mk_mono_ms() - t0));
	cJSON_Delete(r.json);
	free(r.body);
	return r.status;
}

/* Errors civetweb raises itself (malformed request line, headers too big)
 * get the same JSON shape as ours. */
static int on_http_error(struct mg_connection *conn, int status, const char *errmsg)
{
	gw_req r;
	mk_err e = MK_E_BAD_REQUEST;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.conn = conn;
	mk_rid_new(r.rid);
	for (i = 0; i < MK_ERR__COUNT; i++)
		if (mk_err_status((mk_err)i) == status) {
			e = (mk_err)i;
			break;
		}
	gw_reply_error_ex(&r, e, errmsg, "Connection: close\r\n", NULL);
	return 0;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	MK_WARN("GW-HTTP", NULL, "%s", message);
	return 1;
}

int gw_http_start(gateway *gw, char *err, size_t errlen)
{
	struct mg_callbacks cb;
	struct mg_server_port ports[4];
	char threads[24], timeout[24];
	const char *opts[] = {
	    "listening_ports",
	    gw->cfg->listen,
	    "num_threads",
	    threads,
	    "request_timeout_ms",
	    timeout,
	    "enable_keep_alive",
	    "yes",
	    "keep_alive_timeout_ms",
	    "30000",
	    "tcp_nodelay",
	    "1",
	    "listen_backlog",
	    "1024",
	    NULL,
	};
	int n;

	if (gw_metrics_start(gw, err, errlen) != 0)
		return -1;
	snprintf(threads, sizeof(threads), "%lld", gw->cfg->threads);
	snprintf(timeout, sizeof(timeout), "%lld", gw->cfg->request_timeout_ms);
	memset(&cb, 0, sizeof(cb));
	cb.http_error = on_http_error;
	cb.log_message = on_log_message;
	mg_init_library(0);
	gw->http = mg_start(&cb, gw, opts);
	if (!gw->http) {
		snprintf(err, errlen, "cannot serve HTTP on '%s' (address in use or invalid)",
		         gw->cfg->listen);
		return -1;
	}
	mg_set_request_handler(gw->http, "/", on_request, gw);
	n = mg_get_server_ports(gw->http, 4, ports);
	gw->port = n > 0 ? ports[0].port : 0;
	MK_INFO("GW-LISTEN", NULL, "serving HTTP on %s (port %d)", gw->cfg->listen, gw->port);
	return 0;
}

void gw_http_stop(gateway *gw)
{
	if (gw->http) {
		mg_stop(gw->http); /* waits for in-flight requests */
		gw->http = NULL;
		mg_exit_library();
	}
}
