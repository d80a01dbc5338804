/*
 * bq_double_http.c - the HTTP side of the BigQuery double: civetweb set-up,
 * one entry handler that reads the body, classifies the route, records the
 * request, applies scripted faults and hands over to the token endpoint,
 * the metadata server or the BigQuery routes; the /_double/ control
 * endpoints; and the error bodies Google sends.
 *
 * Routes:
 *   POST /token                                  OAuth2 JWT bearer grant
 *   GET  /computeMetadata/v1/...                 metadata server
 *   GET  /bigquery/v2/projects/{p}/datasets[/{d}[/tables[/{t}]]]
 *   POST /bigquery/v2/projects/{p}/queries       GET .../queries/{job}
 *   POST /bigquery/v2/projects/{p}/jobs          GET .../jobs/{job}   POST .../jobs/{job}/cancel
 *   POST /_double/faults  POST /_double/config  GET /_double/requests  POST /_double/reset
 *
 * Fault rules: {"route","times","status","reason"?,"message"?,"html"?,
 * "skip"?}: after `skip` matching requests pass, the next `times` get the
 * error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bq_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mt_serve.h"

static const char *const routes[] = {
    "datasets.list", "datasets.get",         "tables.list", "tables.get",
    "jobs.query",    "jobs.getQueryResults", "jobs.insert", "jobs.get",
    "token",         "metadata.token",       "metadata",    "any",
};

/* ------------------------------------------------------------------ writing */

const char *bq_status_text(int status)
{
	switch (status) {
	case 400: return "INVALID_ARGUMENT";
	case 401: return "UNAUTHENTICATED";
	case 403: return "PERMISSION_DENIED";
	case 404: return "NOT_FOUND";
	case 409: return "ALREADY_EXISTS";
	case 412: return "FAILED_PRECONDITION";
	case 429: return "RESOURCE_EXHAUSTED";
	case 499: return "CANCELLED";
	case 501: return "NOT_IMPLEMENTED";
	case 503: return "UNAVAILABLE";
	case 504: return "DEADLINE_EXCEEDED";
	default: return status >= 500 ? "INTERNAL" : "UNKNOWN";
	}
}

void bq_send(bq_req *r, int status, const char *ctype, const char *extra_headers, const char *body,
             size_t len)
{
	const char *text = mg_get_response_code_text(NULL, status);
	mk_buf h;

	mk_buf_init(&h, 0);
	mk_buf_printf(&h,
	              "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	              "Vary: Origin, X-Origin, Referer\r\n%s\r\n",
	              status, text ? text : "Unknown", ctype, len,
	              extra_headers ? extra_headers : "");
	mt_serve_write(r->conn, &h, body, len);
	mk_buf_release(&h);
}

void bq_send_json(bq_req *r, int status, const cJSON *body, const char *extra_headers)
{
	char *s = mk_json_print(body);

	if (!s) {
		bq_send(r, 500, "text/plain", NULL, "bigquery-double: out of memory", 30);
		return;
	}
	bq_send(r, status, "application/json; charset=UTF-8", extra_headers, s, strlen(s));
	cJSON_free(s);
}

/* The Google error body for status/reason/message. */
static cJSON *google_error(int status, const char *reason, const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e, *errs, *one;

	e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddNumberToObject(e, "code", status);
	cJSON_AddStringToObject(e, "message", msg);
	errs = cJSON_AddArrayToObject(e, "errors");
	one = cJSON_CreateObject();
	cJSON_AddStringToObject(one, "message", msg);
	cJSON_AddStringToObject(one, "domain", "global");
	cJSON_AddStringToObject(one, "reason", reason);
	if (strcmp(reason, "authError") == 0) {
		cJSON_AddStringToObject(one, "location", "Authorization");
		cJSON_AddStringToObject(one, "locationType", "header");
	}
	cJSON_AddItemToArray(errs, one);
	cJSON_AddStringToObject(e, "status", bq_status_text(status));
	return o;
}

void bq_send_error(bq_req *r, int status, const char *reason, const char *fmt, ...)
{
	char msg[1536];
	cJSON *o;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mk_utf8_clip(msg);
	o = google_error(status, reason, msg);
	bq_send_json(r, status, o,
	             status == 401
	                 ? "WWW-Authenticate: Bearer realm=\"https://accounts.google.com/\", "
	                   "error=\"invalid_token\"\r\n"
	                 : NULL);
	cJSON_Delete(o);
}

void bq_send_oauth_error(bq_req *r, int status, const char *error, const char *description)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "error", error);
	cJSON_AddStringToObject(o, "error_description", description);
	bq_send_json(r, status, o, "Cache-Control: no-cache, no-store, max-age=0\r\n");
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ reading */

int bq_param(const bq_req *r, const char *name, char *buf, size_t len)
{
	return mt_serve_param(r->ri, name, buf, len);
}

long long bq_parse_count(const char *s)
{
	long long v = 0;

	if (!s || !*s)
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (1LL << 58))
			return -1;
		v = v * 10 + (*s - '0');
	}
	return v;
}

/* Split the path after /bigquery/v2/ into r->seg; -1 when there are too many segments. */
static int split_path(bq_req *r, const char *rest)
{
	return mt_serve_split_path(rest, r->seg, (int)(sizeof(r->seg) / sizeof(r->seg[0])),
	                           &r->nseg);
}

/* The BigQuery route of r (segments after /bigquery/v2/), or NULL. */
static const char *bq_route(bq_req *r)
{
	const char *m = r->ri->request_method;
	int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0, i;

	if (r->nseg < 3 || strcmp(r->seg[0], "projects") != 0)
		return NULL;
	for (i = 0; i < r->nseg; i++)
		if (!*r->seg[i])
			return NULL;
	if (strcmp(r->seg[2], "datasets") == 0 && get) {
		if (r->nseg == 3)
			return "datasets.list";
		if (r->nseg == 4)
			return "datasets.get";
		if (r->nseg >= 5 && strcmp(r->seg[4], "tables") == 0)
			return r->nseg == 5 ? "tables.list" : r->nseg == 6 ? "tables.get" : NULL;
		return NULL;
	}
	if (strcmp(r->seg[2], "queries") == 0) {
		if (r->nseg == 3 && post)
			return "jobs.query";
		if (r->nseg == 4 && get)
			return "jobs.getQueryResults";
	}
	if (strcmp(r->seg[2], "jobs") == 0) {
		if (r->nseg == 3 && post)
			return "jobs.insert";
		if (r->nseg == 4 && get)
			return "jobs.get";
		if (r->nseg == 5 && post && strcmp(r->seg[4], "cancel") == 0)
			return "jobs.cancel";
	}
	return NULL;
}

static void classify(bq_req *r)
{
	static const char api[] = "/bigquery/v2/", md[] = "/computeMetadata/";
	const char *p = r->path;

	if (strcmp(p, "/token") == 0) {
		r->route = "token";
	} else if (strncmp(p, md, sizeof(md) - 1) == 0 || strcmp(p, "/") == 0 ||
	           strcmp(p, "/computeMetadata") == 0) {
		r->route =
		    strcmp(p, "/computeMetadata/v1/instance/service-accounts/default/token") == 0
		        ? "metadata.token"
		        : "metadata";
	} else if (strncmp(p, api, sizeof(api) - 1) == 0) {
		if (split_path(r, p + sizeof(api) - 1) == 0)
			r->route = bq_route(r);
	}
}

/* The recorded form of r: {"route","method","path","query","authorization","body"}. */
static cJSON *record_of(const bq_req *r)
{
	const char *auth = mg_get_header(r->conn, "Authorization");
	cJSON *o = cJSON_CreateObject();

	if (r->route)
		cJSON_AddStringToObject(o, "route", r->route);
	else
		cJSON_AddNullToObject(o, "route");
	mt_serve_record_line(o, r->ri, r->path);
	if (auth)
		cJSON_AddStringToObject(o, "authorization", auth);
	else
		cJSON_AddNullToObject(o, "authorization");
	if (r->json)
		cJSON_AddItemToObject(o, "body", cJSON_Duplicate(r->json, 1));
	else if (r->body_len > 0 &&
	         mk_utf8_valid_prefix((const unsigned char *)r->body, r->body_len) == r->body_len)
		cJSON_AddStringToObject(o, "body", r->body);
	else
		cJSON_AddNullToObject(o, "body");
	return o;
}

/* ------------------------------------------------------------------ faults */

static int known_route(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strcmp(s, routes[i]) == 0)
			return 1;
	return 0;
}

/* Check one rule of POST /_double/faults; 0, or -1 with err. */
static int check_rule(const cJSON *rule, char *err, size_t errlen)
{
	const char *route = mk_json_str(rule, "route");
	long long times, status;
	const cJSON *html = cJSON_GetObjectItemCaseSensitive(rule, "html");

	if (!cJSON_IsObject(rule)) {
		mk_errf(err, errlen, "a rule is not an object");
		return -1;
	}
	if (!route || !known_route(route)) {
		mk_errf(err, errlen,
		        "rule route '%s' is not one of datasets.list, datasets.get, "
		        "tables.list, tables.get, jobs.query, jobs.getQueryResults, "
		        "jobs.insert, jobs.get, token, metadata.token, metadata, any",
		        route ? route : "(missing)");
		return -1;
	}
	if (mk_json_int(rule, "times", &times) != 0 || times < 1 || times > 1000000) {
		mk_errf(err, errlen, "rule for '%s': 'times' must be an integer 1..1000000", route);
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(rule, "skip") &&
	    (mk_json_int(rule, "skip", &times) != 0 || times < 0)) {
		mk_errf(err, errlen, "rule for '%s': 'skip' must be an integer >= 0", route);
		return -1;
	}
	if (mk_json_int(rule, "status", &status) != 0 || status < 400 || status > 599) {
		mk_errf(err, errlen, "rule for '%s': 'status' must be an integer 400..599", route);
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(rule, "reason") && !mk_json_str(rule, "reason")) {
		mk_errf(err, errlen, "rule for '%s': 'reason' must be a string", route);
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(rule, "message") && !mk_json_str(rule, "message")) {
		mk_errf(err, errlen, "rule for '%s': 'message' must be a string", route);
		return -1;
	}
	if (html && !cJSON_IsBool(html)) {
		mk_errf(err, errlen, "rule for '%s': 'html' must be a boolean", route);
		return -1;
	}
	return 0;
}

static const char *default_reason(int status)
{
	switch (status) {
	case 400: return "invalid";
	case 401: return "authError";
	case 403: return "rateLimitExceeded";
	case 404: return "notFound";
	case 409: return "duplicate";
	case 501: return "notImplemented";
	case 503: return "backendError";
	default: return status >= 500 ? "internalError" : "invalid";
	}
}

static const char *default_message(const char *reason)
{
	if (strcmp(reason, "rateLimitExceeded") == 0)
		return "Exceeded rate limits: too many api requests per user per method for this "
		       "user_method. For more information, see "
		       "https://cloud.google.com/bigquery/docs/troubleshoot-quotas";
	if (strcmp(reason, "backendError") == 0)
		return "Error encountered during execution. Retrying may solve the problem.";
	if (strcmp(reason, "quotaExceeded") == 0)
		return "Quota exceeded: Your project exceeded quota for free query bytes scanned.";
	if (strcmp(reason, "accessDenied") == 0)
		return "Access Denied: Project mark-test: User does not have bigquery.jobs.create "
		       "permission in project mark-test.";
	if (strcmp(reason, "internalError") == 0)
		return "An internal error occurred and the request could not be completed.";
	return "The service is currently unavailable.";
}

/* Serve the next matching fault, if any; 1 when r has been answered. */
static int fault(bq_req *r)
{
	cJSON *rule, *hit = NULL;
	int status = 0, html = 0;
	char reason[64] = "", msg[1024] = "";

	if (!r->route)
		return 0;
	pthread_mutex_lock(&r->d->mu);
	cJSON_ArrayForEach(rule, r->d->faults)
	{
		const char *route = mk_json_str(rule, "route");

		long long skip = 0;

		if (strcmp(route, "any") != 0 && strcmp(route, r->route) != 0)
			continue;
		/* "skip": let that many matching requests through first. */
		if (mk_json_int(rule, "skip", &skip) == 0 && skip > 0) {
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(rule, "skip"),
			                     (double)(skip - 1));
			break;
		}
		hit = rule;
		break;
	}
	if (hit) {
		long long times = 0, st = 500;
		int h = 0;

		mk_json_int(hit, "times", &times);
		mk_json_int(hit, "status", &st);
		status = (int)st;
		if (mk_json_bool(hit, "html", &h) == 0)
			html = h;
		snprintf(reason, sizeof(reason), "%s",
		         mk_json_str(hit, "reason") ? mk_json_str(hit, "reason")
		                                    : default_reason(status));
		snprintf(msg, sizeof(msg), "%s",
		         mk_json_str(hit, "message") ? mk_json_str(hit, "message")
		                                     : default_message(reason));
		if (times <= 1)
			cJSON_Delete(cJSON_DetachItemViaPointer(r->d->faults, hit));
		else
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(hit, "times"),
			                     (double)(times - 1));
	}
	pthread_mutex_unlock(&r->d->mu);
	if (!status)
		return 0;
	MK_INFO("BQD-FAULT", NULL, "%s: scripted %d %s", r->route, status, reason);
	if (html) {
		char page[1400];
		const char *text = mg_get_response_code_text(NULL, status);
		int n =
		    snprintf(page, sizeof(page),
		             "<!DOCTYPE html>\n<html lang=en>\n<meta charset=utf-8>\n<title>Error "
		             "%d (%s)!!1</title>\n<p><b>%d.</b> <ins>That's an error.</ins>\n<p>%s "
		             "<ins>That's all we know.</ins>\n",
		             status, text ? text : "Error", status, msg);

		bq_send(r, status, "text/html; charset=UTF-8", NULL, page,
		        n > 0 && (size_t)n < sizeof(page) ? (size_t)n : strlen(page));
	} else if (strcmp(r->route, "token") == 0) {
		bq_send_oauth_error(r, status, reason, msg);
	} else if (strncmp(r->route, "metadata", 8) == 0) {
		bq_send(r, status, "text/plain; charset=utf-8", "Metadata-Flavor: Google\r\n", msg,
		        strlen(msg));
	} else {
		bq_send_error(r, status, reason, "%s", msg);
	}
	return 1;
}

/* ------------------------------------------------------------------ control */

static void reply_ok(bq_req *r)
{
	bq_send(r, 200, "application/json", NULL, "{\"ok\":true}", 11);
}

static void control_faults(bq_req *r)
{
	char err[512];
	int n =
	    mt_serve_add_faults(r->json, check_rule, &r->d->mu, &r->d->faults, err, sizeof(err));

	if (n < 0) {
		bq_send_error(r, 400, "invalid", "bigquery-double: %s", err);
		return;
	}
	MK_INFO("BQD-FAULTS", NULL, "%d fault rule(s) added", n);
	reply_ok(r);
}

static void control_config(bq_req *r)
{
	const cJSON *j = r->json;
	long long exp = -1, polls = -1, page = -1;
	int strict = -1;

	if (!cJSON_IsObject(j)) {
		bq_send_error(r, 400, "invalid",
		              "bigquery-double: the config is not a JSON object");
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(j, "expires_in") &&
	    (mk_json_int(j, "expires_in", &exp) != 0 || exp < 0 || exp > 86400)) {
		bq_send_error(r, 400, "invalid", "bigquery-double: 'expires_in' must be 0..86400");
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(j, "incomplete_polls") &&
	    (mk_json_int(j, "incomplete_polls", &polls) != 0 || polls < 0 || polls > 1000000)) {
		bq_send_error(r, 400, "invalid",
		              "bigquery-double: 'incomplete_polls' must be 0..1000000");
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(j, "max_page_size") &&
	    (mk_json_int(j, "max_page_size", &page) != 0 || page < 0 || page > 1000000)) {
		bq_send_error(r, 400, "invalid",
		              "bigquery-double: 'max_page_size' must be 0 (none)..1000000");
		return;
	}
	if (cJSON_GetObjectItemCaseSensitive(j, "strict_legacy_sql") &&
	    mk_json_bool(j, "strict_legacy_sql", &strict) != 0) {
		bq_send_error(r, 400, "invalid",
		              "bigquery-double: 'strict_legacy_sql' must be a boolean");
		return;
	}
	pthread_mutex_lock(&r->d->mu);
	if (exp >= 0)
		r->d->cfg.expires_in = exp;
	if (polls >= 0)
		r->d->cfg.incomplete_polls = (int)polls;
	if (strict >= 0)
		r->d->cfg.strict_legacy_sql = strict;
	if (page >= 0)
		r->d->cfg.max_page_size = page;
	pthread_mutex_unlock(&r->d->mu);
	reply_ok(r);
}

static void control(bq_req *r)
{
	const char *m = r->ri->request_method, *p = r->path + strlen("/_double");
	int post = strcmp(m, "POST") == 0;

	if (post && (strcmp(p, "/faults") == 0 || strcmp(p, "/config") == 0) && !r->json) {
		bq_send_error(r, 400, "invalid", "bigquery-double: the body is not JSON");
		return;
	}
	if (post && strcmp(p, "/faults") == 0) {
		control_faults(r);
	} else if (post && strcmp(p, "/config") == 0) {
		control_config(r);
	} else if (strcmp(m, "GET") == 0 && strcmp(p, "/requests") == 0) {
		char *s = mt_serve_print_log(&r->d->mu, &r->d->requests);

		if (!s) {
			bq_send_error(r, 500, "internalError", "bigquery-double: out of memory");
			return;
		}
		bq_send(r, 200, "application/json", NULL, s, strlen(s));
		cJSON_free(s);
	} else if (post && strcmp(p, "/reset") == 0) {
		cJSON *reqs = cJSON_CreateArray(), *faults = cJSON_CreateArray();

		if (!reqs || !faults) {
			cJSON_Delete(reqs);
			cJSON_Delete(faults);
			bq_send_error(r, 500, "internalError", "bigquery-double: out of memory");
			return;
		}
		pthread_mutex_lock(&r->d->mu);
		cJSON_Delete(r->d->requests);
		cJSON_Delete(r->d->faults);
		r->d->requests = reqs;
		r->d->faults = faults;
		r->d->cfg.expires_in = BQ_EXPIRES_IN;
		r->d->cfg.incomplete_polls = 0;
		r->d->cfg.strict_legacy_sql = 1;
		r->d->cfg.max_page_size = 0;
		pthread_mutex_unlock(&r->d->mu);
		reply_ok(r);
	} else {
		bq_send_error(
		    r, 404, "notFound",
		    "bigquery-double: no control endpoint %s %s (have POST /_double/faults, "
		    "POST /_double/config, GET /_double/requests, POST /_double/reset)",
		    m, r->path);
	}
}

/* ------------------------------------------------------------------ routing */

static int on_request(struct mg_connection *conn, void *ud)
{
	char err[256];
	bq_req r;
	int rc, i;

	memset(&r, 0, sizeof(r));
	r.d = ud;
	r.conn = conn;
	r.ri = mg_get_request_info(conn);
	r.path = r.ri->local_uri ? r.ri->local_uri : "/";

	mt_serve_continue(conn);
	rc = mt_serve_read_body(conn, BQ_MAX_BODY, &r.body, &r.body_len);
	if (rc != 0) {
		bq_send_error(&r, rc > 0 ? 413 : 400, "invalid",
		              rc > 0 ? "Request body over %u bytes"
		                     : "bigquery-double: cannot read the request body (%u)",
		              BQ_MAX_BODY);
		free(r.body);
		return rc > 0 ? 413 : 400;
	}
	if (r.body_len > 0) {
		const char *ct = mg_get_header(conn, "Content-Type");

		if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0)
			r.json =
			    mk_json_parse(r.body, r.body_len, MK_JSON_MAX_DEPTH, err, sizeof(err));
	}
	if (strncmp(r.path, "/_double/", 9) == 0) {
		control(&r);
		goto out;
	}
	classify(&r);
	mt_serve_record(&r.d->mu, &r.d->requests, record_of(&r), BQ_MAX_REQUESTS);
	MK_INFO("BQD-REQ", NULL, "%s %s%s%s -> %s", r.ri->request_method, r.path,
	        r.ri->query_string ? "?" : "", r.ri->query_string ? r.ri->query_string : "",
	        r.route ? r.route : "(no route)");
	if (fault(&r))
		goto out;
	if (!r.route) {
		bq_send_error(&r, 404, "notFound", "Not found: URL %s %s", r.ri->request_method,
		              r.path);
	} else if (strcmp(r.route, "token") == 0) {
		bq_auth_token(&r);
	} else if (strncmp(r.route, "metadata", 8) == 0) {
		bq_auth_metadata(&r);
	} else if (r.body_len > 0 && !r.json) {
		if (bq_auth_check(&r) == 0)
			bq_send_error(&r, 400, "parseError", "Parse Error: the body is not JSON");
	} else if (bq_auth_check(&r) == 0) {
		if (strncmp(r.route, "jobs.", 5) == 0)
			bq_jobs_serve(&r);
		else
			bq_catalog_serve(&r);
	}
out:
	for (i = 0; i < r.nseg; i++)
		free(r.seg[i]);
	cJSON_Delete(r.json);
	free(r.body);
	return 200; /* only civetweb's access log sees this */
}

int bq_http_start(bq_double *d, const char *listen, char *err, size_t errlen)
{
	d->http = mt_serve_start(listen, on_request, d, "BQD-HTTP", &d->port, err, errlen);
	if (!d->http)
		return -1;
	snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d", d->port);
	snprintf(d->token_url, sizeof(d->token_url), "%s/token", d->base);
	return 0;
}

void bq_http_stop(bq_double *d)
{
	mt_serve_stop(&d->http);
}
