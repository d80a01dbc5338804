/*
 * llm_double_http.c - the HTTP side of the LLM double: civetweb set-up, one
 * entry handler that reads the body, records provider requests, routes to
 * the dialect checks and the scenario, the /_double/ control endpoints, and
 * the writer that sends a response in scripted slices.
 *
 * Routes:
 *   POST /v1/messages                                    Anthropic Messages
 *   POST /openai/deployments/{dep}/chat/completions      Azure classic
 *   POST <any prefix>/chat/completions                   OpenAI dialect
 *   POST /_double/scenario   GET /_double/requests   POST /_double/reset
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "llm_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "mt_serve.h"

/* ------------------------------------------------------------------ writing */

static const char *reason(int status)
{
	const char *s;

	if (status == 529)
		return "Overloaded"; /* Anthropic's own status, unknown to civetweb */
	s = mg_get_response_code_text(NULL, status);
	return s ? s : "Unknown";
}

/* Whether raw header lines already name header `name`. */
static int has_header(const char *lines, const char *name)
{
	size_t n = strlen(name);
	const char *p = lines;

	while (p && *p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':')
			return 1;
		p = strstr(p, "\r\n");
		p = p ? p + 2 : NULL;
	}
	return 0;
}

/* mg_write all of buf; 0, or -1 when the client has gone. */
static int put(ld_req *r, const void *buf, size_t len)
{
	return len == 0 || mg_write(r->conn, buf, len) == (int)len ? 0 : -1;
}

void ld_send(ld_req *r, int status, const char *ctype, const char *extra_headers, const char *body,
             size_t len, int chunked, const ld_pace *pace)
{
	static const int whole = 0;
	const int *sizes = pace && pace->sizes && pace->nsizes > 0 ? pace->sizes : &whole;
	int nsizes = pace && pace->sizes && pace->nsizes > 0 ? pace->nsizes : 1;
	long limit = pace ? pace->close_after_bytes : -1;
	size_t off = 0, i = 0;
	int cut = 0;
	mk_buf h;

	if (pace && pace->first_byte_delay_ms > 0)
		mk_sleep_ms(pace->first_byte_delay_ms);
	mk_buf_init(&h, 0);
	mk_buf_printf(&h, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), ctype);
	if (chunked)
		mk_buf_puts(&h, "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
	else
		mk_buf_printf(&h, "Content-Length: %zu\r\n", len);
	if (r->dialect == LD_ANTHROPIC && !has_header(extra_headers, "request-id"))
		mk_buf_printf(&h, "request-id: req_double_%06lu\r\n", r->seq);
	else if (r->dialect != LD_ANTHROPIC && !has_header(extra_headers, "x-request-id"))
		mk_buf_printf(&h, "x-request-id: req_double_%06lu\r\n", r->seq);
	mk_buf_printf(&h, "%s\r\n", extra_headers ? extra_headers : "");
	if (!h.data || put(r, h.data, h.len) != 0) {
		cut = 1;
		goto out;
	}

	while (off < len) {
		size_t n = sizes[i % (size_t)nsizes] > 0 ? (size_t)sizes[i % (size_t)nsizes] : len;
		size_t send_n;
		char frame[24];

		if (n > len - off)
			n = len - off;
		send_n = n;
		if (limit >= 0 && off + n > (size_t)limit) {
			/* A chunk that announces n bytes but brings fewer: cut mid-chunk. */
			send_n = (size_t)limit - off;
			cut = 1;
		}
		if (send_n > 0) {
			if (i > 0 && pace && pace->between_writes_ms > 0)
				mk_sleep_ms(pace->between_writes_ms);
			mk_buf_reset(&h);
			if (chunked) {
				snprintf(frame, sizeof(frame), "%zx\r\n", n);
				mk_buf_puts(&h, frame);
			}
			mk_buf_append(&h, body + off, send_n);
			if (chunked && send_n == n)
				mk_buf_puts(&h, "\r\n");
			if (put(r, h.data, h.len) != 0) {
				cut = 1;
				break;
			}
		}
		off += n;
		i++;
		if (cut)
			break;
	}
	/* close_after_bytes at or past the end: all bytes, but never the end of the stream. */
	if (limit >= 0)
		cut = 1;
	if (!cut && chunked && put(r, "0\r\n\r\n", 5) != 0)
		cut = 1;
out:
	if (cut || (pace && pace->close))
		mg_disable_connection_keep_alive(r->conn);
	mk_buf_release(&h);
}

void ld_send_json(ld_req *r, int status, const cJSON *body, const char *extra_headers)
{
	char *s = mk_json_print(body);

	if (!s) {
		ld_send(r, 500, "text/plain", extra_headers, "llm-double: out of memory", 25, 0,
		        NULL);
		return;
	}
	ld_send(r, status, "application/json", extra_headers, s, strlen(s), 0, NULL);
	cJSON_free(s);
}

void ld_send_error(ld_req *r, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...)
{
	char msg[1024], rid[40];
	cJSON *o = cJSON_CreateObject(), *e;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mk_utf8_clip(msg);
	if (r->dialect == LD_ANTHROPIC) {
		snprintf(rid, sizeof(rid), "req_double_%06lu", r->seq);
		cJSON_AddStringToObject(o, "type", "error");
		e = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(e, "type", type);
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddStringToObject(o, "request_id", rid);
	} else if (r->dialect == LD_AZURE) {
		/* Azure's own shape: a code string and a message. */
		e = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(e, "code", code ? code : type);
		cJSON_AddStringToObject(e, "message", msg);
		if (param)
			cJSON_AddStringToObject(e, "param", param);
	} else {
		e = cJSON_AddObjectToObject(o, "error");
		cJSON_AddStringToObject(e, "message", msg);
		cJSON_AddStringToObject(e, "type", type);
		if (param)
			cJSON_AddStringToObject(e, "param", param);
		else
			cJSON_AddNullToObject(e, "param");
		if (code)
			cJSON_AddStringToObject(e, "code", code);
		else
			cJSON_AddNullToObject(e, "code");
	}
	/* The double's own complaints must not be retried by SDKs (they would repeat). */
	ld_send_json(r, status, o, status >= 500 ? "x-should-retry: false\r\n" : NULL);
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ reading */

/* The recorded form of r: {"method","path","query","headers","body"}. */
static cJSON *record_of(const ld_req *r)
{
	cJSON *o = cJSON_CreateObject(), *h;
	int i;

	mt_serve_record_line(o, r->ri, r->path);
	h = cJSON_AddObjectToObject(o, "headers");
	for (i = 0; i < r->ri->num_headers; i++) {
		char name[128];
		const char *v = r->ri->http_headers[i].value ? r->ri->http_headers[i].value : "";
		cJSON *old;

		mt_serve_header_key(r->ri->http_headers[i].name, name, sizeof(name));
		old = cJSON_GetObjectItemCaseSensitive(h, name);
		if (old && cJSON_IsString(old)) {
			/* A repeated header: join the values as HTTP allows. */
			mk_buf j;

			mk_buf_init(&j, 0);
			mk_buf_printf(&j, "%s, %s", old->valuestring, v);
			cJSON_ReplaceItemInObjectCaseSensitive(
			    h, name, cJSON_CreateString(j.data ? j.data : ""));
			mk_buf_release(&j);
		} else {
			cJSON_AddStringToObject(h, name, v);
		}
	}
	if (r->json)
		cJSON_AddItemToObject(o, "body", cJSON_Duplicate(r->json, 1));
	else if (r->body_len > 0)
		cJSON_AddStringToObject(o, "body", r->body);
	else
		cJSON_AddNullToObject(o, "body");
	return o;
}

/* ------------------------------------------------------------------ control */

static void control(ld_req *r)
{
	const char *m = r->ri->request_method, *p = r->path + strlen("/_double");
	char err[512];
	cJSON *o;

	if (strcmp(p, "/scenario") == 0 && strcmp(m, "POST") == 0) {
		cJSON *root = mk_json_parse(r->body, r->body_len, 0, err, sizeof(err));
		int nsteps = 0;

		if (!root) {
			ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
			              "llm-double: the scenario is not JSON: %s", err);
			return;
		}
		nsteps = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "steps"));
		o = cJSON_CreateObject();
		if (mk_json_str(root, "name"))
			cJSON_AddStringToObject(o, "name", mk_json_str(root, "name"));
		if (ld_scenario_set(r->d, root, err, sizeof(err)) != 0) {
			cJSON_Delete(root);
			cJSON_Delete(o);
			ld_send_error(r, 400, "invalid_request_error", NULL, NULL,
			              "llm-double: bad scenario: %s", err);
			return;
		}
		cJSON_AddBoolToObject(o, "ok", 1);
		cJSON_AddNumberToObject(o, "steps", nsteps);
		ld_send_json(r, 200, o, NULL);
		cJSON_Delete(o);
		MK_INFO("LLMD-SCENARIO", NULL, "scenario loaded (%d steps)", nsteps);
		return;
	}
	if (strcmp(p, "/requests") == 0 && strcmp(m, "GET") == 0) {
		char *s = mt_serve_print_log(&r->d->mu, &r->d->requests);

		if (!s) {
			ld_send_error(r, 500, "server_error", NULL, NULL,
			              "llm-double: out of memory");
			return;
		}
		ld_send(r, 200, "application/json", NULL, s, strlen(s), 0, NULL);
		cJSON_free(s);
		return;
	}
	if (strcmp(p, "/reset") == 0 && strcmp(m, "POST") == 0) {
		cJSON *fresh = cJSON_CreateArray();

		pthread_mutex_lock(&r->d->mu);
		if (fresh) {
			cJSON_Delete(r->d->requests);
			r->d->requests = fresh;
		}
		r->d->pos = 0;
		pthread_mutex_unlock(&r->d->mu);
		o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", fresh != NULL);
		ld_send_json(r, fresh ? 200 : 500, o, NULL);
		cJSON_Delete(o);
		return;
	}
	ld_send_error(r, 404, "invalid_request_error", NULL, NULL,
	              "llm-double: no control endpoint %s %s (have POST /_double/scenario, GET "
	              "/_double/requests, POST /_double/reset)",
	              m, r->path);
}

/* ------------------------------------------------------------------ routing */

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Classify r->path; 0 when it is a provider route. */
static int route(ld_req *r)
{
	static const char azure[] = "/openai/deployments/";
	const char *p = r->path;

	if (strcmp(p, "/v1/messages") == 0) {
		r->dialect = LD_ANTHROPIC;
		return 0;
	}
	r->dialect = LD_OPENAI;
	if (strncmp(p, azure, sizeof(azure) - 1) == 0) {
		const char *dep = p + sizeof(azure) - 1, *slash = strchr(dep, '/');

		if (slash && slash > dep && strcmp(slash, "/chat/completions") == 0 &&
		    (size_t)(slash - dep) < sizeof(r->deployment)) {
			memcpy(r->deployment, dep, (size_t)(slash - dep));
			r->deployment[slash - dep] = '\0';
			r->dialect = LD_AZURE;
			return 0;
		}
	}
	return ends_with(p, "/chat/completions") ? 0 : -1;
}

static int on_request(struct mg_connection *conn, void *ud)
{
	ld_req r;
	char err[256];
	int rc;

	memset(&r, 0, sizeof(r));
	r.d = ud;
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	r.path = r.ri->local_uri ? r.ri->local_uri : "/";
	r.dialect = LD_OPENAI;
	r.model = "";
	pthread_mutex_lock(&r.d->mu);
	r.seq = ++r.d->seq;
	pthread_mutex_unlock(&r.d->mu);

	mt_serve_continue(conn); /* contract §5.10 */
	rc = mt_serve_read_body(conn, LD_MAX_BODY, &r.body, &r.body_len);
	if (rc != 0) {
		ld_send_error(&r, rc > 0 ? 413 : 400, "invalid_request_error", NULL, NULL,
		              rc > 0 ? "llm-double: request body over %u bytes"
		                     : "llm-double: cannot read the request body (%u)",
		              LD_MAX_BODY);
		return rc > 0 ? 413 : 400;
	}
	if (strncmp(r.path, "/_double/", 9) == 0) {
		control(&r);
		goto out;
	}

	rc = route(&r);
	r.json = r.body_len > 0 ? mk_json_parse(r.body, r.body_len, 0, err, sizeof(err)) : NULL;
	if (r.json) {
		const cJSON *so = cJSON_GetObjectItemCaseSensitive(r.json, "stream_options");

		r.stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r.json, "stream"));
		r.include_usage =
		    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so, "include_usage"));
		if (mk_json_str(r.json, "model"))
			r.model = mk_json_str(r.json, "model");
	}
	if (r.dialect == LD_AZURE)
		r.model = r.deployment;
	mt_serve_record(&r.d->mu, &r.d->requests, record_of(&r), 0);
	MK_INFO("LLMD-REQ", NULL, "%s %s%s%s (%zu bytes%s)", r.ri->request_method, r.path,
	        r.ri->query_string ? "?" : "", r.ri->query_string ? r.ri->query_string : "",
	        r.body_len, r.stream ? ", stream" : "");

	if (rc != 0) {
		ld_send_error(&r, 404, "invalid_request_error", NULL, NULL, "Invalid URL (%s %s)",
		              r.ri->request_method, r.path);
		goto out;
	}
	if (strcmp(r.ri->request_method, "POST") != 0) {
		ld_send_error(&r, 405, "invalid_request_error", NULL, NULL,
		              "Method %s not allowed for %s (POST only)", r.ri->request_method,
		              r.path);
		goto out;
	}
	if (ld_check_auth(&r) == 0 && ld_check_body(&r) == 0)
		ld_scenario_serve(&r);
out:
	cJSON_Delete(r.json);
	free(r.body);
	return 200; /* only civetweb's access log sees this */
}

int ld_http_start(ld_double *d, const char *listen, char *err, size_t errlen)
{
	d->http = mt_serve_start(listen, on_request, d, "LLMD-HTTP", &d->port, err, errlen);
	return d->http ? 0 : -1;
}

void ld_http_stop(ld_double *d)
{
	mt_serve_stop(&d->http);
}
