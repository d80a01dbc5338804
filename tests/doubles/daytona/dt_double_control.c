/*
 * dt_double_control.c - the Daytona double's own endpoints under /_double/
 * (never recorded, never faulted, no key) and the scripted faults they set.
 *
 *   POST   /_double/faults     {"rules":[rule...]}  appended, served in order
 *   POST   /_double/config     {"start_delay_ms"?,"stop_delay_ms"?,"minute_ms"?}; steps
 *                              under way end no later than the new delay from now
 *   GET    /_double/requests   the request log: [{"surface","route","method","path",
 *                              "query","headers","body","body_bytes"}]
 *   POST   /_double/reset      forget faults and the log; knobs back to the command line's
 *   GET    /_double/sandboxes  every sandbox not yet destroyed: [{"id","name","state",
 *                              "desiredState","labels","processes","sessions"}]
 *   DELETE /_double/sandboxes  delete them all (as DELETE /api/sandbox/{id} would)
 *   POST   /_double/sandboxes/{id}/state  {"state":"error"|"build_failed",
 *                              "errorReason"?}: a sandbox fails
 *
 * A rule: {"route", "status"?, "times"? (1), "skip"? (0), "empty_body"?,
 * "message"?, "retry_after"? (1), "delay_ms"?, "close"?}. route is a route
 * name ("sandbox.create", "process.execute", ...), a group ("sandbox",
 * "process", "session", "files", "info"), a surface ("api", "toolbox") or
 * "any". After `skip` matching requests pass, the next `times` get the
 * fault: wait delay_ms, then either close the connection without an answer
 * (close), or answer status (400..599) in the surface's error shape, or
 * with no body at all (empty_body; the default for 502, as proxies send
 * it). A 429 from the API carries the bucket's X-RateLimit-* headers and
 * Retry-After-<bucket>: retry_after. A rule with delay_ms and no status
 * only slows the request down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "mt_serve.h"

static const char *const routes[] = {
    "config",
    "sandbox.create",
    "sandbox.list",
    "sandbox.get",
    "sandbox.delete",
    "sandbox.start",
    "sandbox.stop",
    "sandbox.archive",
    "sandbox.recover",
    "sandbox.labels",
    "sandbox.autostop",
    "sandbox.autoarchive",
    "sandbox.autodelete",
    "sandbox.last-activity",
    "sandbox.toolbox-proxy-url",
    "process.execute",
    "process.code-run",
    "session.create",
    "session.list",
    "session.get",
    "session.delete",
    "session.exec",
    "session.command",
    "session.logs",
    "files.list",
    "files.delete",
    "files.info",
    "files.folder",
    "files.download",
    "files.bulk-download",
    "files.bulk-upload",
    "files.upload",
    "files.upload-legacy",
    "info.work-dir",
    "info.user-home-dir",
    "info.version",
    "sandbox",
    "process",
    "session",
    "files",
    "info",
    "api",
    "toolbox",
    "any",
};

static const char *const bucket_names[] = {"authenticated", "sandbox-create", "sandbox-lifecycle"};

/* ------------------------------------------------------------------ answers */

static void reply(dt_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reply(dt_req *r, int status, const char *fmt, ...)
{
	char msg[1024];
	cJSON *o = cJSON_CreateObject();
	va_list ap;

	if (status == 200) {
		cJSON_AddBoolToObject(o, "ok", 1);
	} else {
		va_start(ap, fmt);
		vsnprintf(msg, sizeof(msg), fmt, ap);
		va_end(ap);
		cJSON_AddStringToObject(o, "error", msg);
	}
	dt_send_json(r, status, o);
	cJSON_Delete(o);
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

/* Whether a rule for `want` applies to r. */
static int matches(const dt_req *r, const char *want)
{
	size_t n = strlen(want);

	if (strcmp(want, "any") == 0)
		return 1;
	if (strcmp(want, "api") == 0)
		return r->surface == DT_SURFACE_API;
	if (strcmp(want, "toolbox") == 0)
		return r->surface == DT_SURFACE_TOOLBOX;
	return r->route && (strcmp(r->route, want) == 0 ||
	                    (strncmp(r->route, want, n) == 0 && r->route[n] == '.'));
}

/* Check one rule of POST /_double/faults; 0, or -1 with err. */
static int check_rule(const cJSON *rule, char *err, size_t errlen)
{
	static const char *const bools[] = {"empty_body", "close"};
	static const char *const counts[] = {"times", "skip", "retry_after", "delay_ms"};
	const char *route = mk_json_str(rule, "route");
	long long v;
	size_t i;

	if (!cJSON_IsObject(rule)) {
		mk_errf(err, errlen, "a rule is not an object");
		return -1;
	}
	if (!route || !known_route(route)) {
		mk_errf(
		    err, errlen,
		    "rule route '%s' is not a route name (sandbox.create, process.execute, ...), a "
		    "group (sandbox, process, session, files, info), api, toolbox or any",
		    route ? route : "(missing)");
		return -1;
	}
	for (i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		if (cJSON_GetObjectItemCaseSensitive(rule, counts[i]) &&
		    (mk_json_int(rule, counts[i], &v) != 0 || v < 0 || v > 1000000)) {
			mk_errf(err, errlen, "rule for '%s': '%s' must be an integer 0..1000000",
			        route, counts[i]);
			return -1;
		}
	}
	for (i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		if (cJSON_GetObjectItemCaseSensitive(rule, bools[i]) &&
		    !cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(rule, bools[i]))) {
			mk_errf(err, errlen, "rule for '%s': '%s' must be a boolean", route,
			        bools[i]);
			return -1;
		}
	}
	if (cJSON_GetObjectItemCaseSensitive(rule, "status")) {
		if (mk_json_int(rule, "status", &v) != 0 || v < 400 || v > 599) {
			mk_errf(err, errlen, "rule for '%s': 'status' must be an integer 400..599",
			        route);
			return -1;
		}
	} else if (!cJSON_GetObjectItemCaseSensitive(rule, "delay_ms") &&
	           !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rule, "close"))) {
		mk_errf(err, errlen, "rule for '%s': give 'status', 'close' or 'delay_ms'", route);
		return -1;
	}
	if (cJSON_GetObjectItemCaseSensitive(rule, "message") && !mk_json_str(rule, "message")) {
		mk_errf(err, errlen, "rule for '%s': 'message' must be a string", route);
		return -1;
	}
	return 0;
}

static const char *default_message(int status)
{
	switch (status) {
	case 409: return "Sandbox state change in progress";
	case 429: return "ThrottlerException: Too Many Requests";
	case 500: return "An unexpected error occurred.";
	case 503: return "Service Unavailable";
	default: return mg_get_response_code_text(NULL, status);
	}
}

static const char *daemon_code(int status)
{
	switch (status) {
	case 400: return "BAD_REQUEST";
	case 401: return "UNAUTHORIZED";
	case 403: return "FORBIDDEN";
	case 404: return "NOT_FOUND";
	case 408: return "REQUEST_TIMEOUT";
	case 409: return "CONFLICT";
	case 410: return "GONE";
	case 422: return "UNPROCESSABLE_ENTITY";
	case 500: return "INTERNAL_SERVER_ERROR";
	default: return NULL;
	}
}

/* The fault a rule describes. */
typedef struct {
	int status, empty, close;
	long long retry_after, delay_ms;
	char message[1024];
} fault_t;

/* Take the next matching rule (d->mu held); 1 when one applies, with *f filled. */
static int take(dt_req *r, fault_t *f)
{
	cJSON *rule;

	cJSON_ArrayForEach(rule, r->d->faults)
	{
		long long skip = 0, times = 1, v;
		int b;

		if (!matches(r, mk_json_str(rule, "route")))
			continue;
		if (mk_json_int(rule, "skip", &skip) == 0 && skip > 0) {
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(rule, "skip"),
			                     (double)(skip - 1));
			return 0;
		}
		memset(f, 0, sizeof(*f));
		f->retry_after = 1;
		if (mk_json_int(rule, "status", &v) == 0)
			f->status = (int)v;
		f->empty = f->status == 502;
		if (mk_json_bool(rule, "empty_body", &b) == 0)
			f->empty = b;
		if (mk_json_bool(rule, "close", &b) == 0)
			f->close = b;
		mk_json_int(rule, "retry_after", &f->retry_after);
		mk_json_int(rule, "delay_ms", &f->delay_ms);
		snprintf(f->message, sizeof(f->message), "%s",
		         mk_json_str(rule, "message") ? mk_json_str(rule, "message")
		         : f->status                  ? default_message(f->status)
		                                      : "");
		mk_json_int(rule, "times", &times);
		if (times <= 1)
			cJSON_Delete(cJSON_DetachItemViaPointer(r->d->faults, rule));
		else
			cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(rule, "times"),
			                     (double)(times - 1));
		return 1;
	}
	return 0;
}

int dt_fault(dt_req *r)
{
	char headers[512] = "";
	fault_t f;
	int hit;

	pthread_mutex_lock(&r->d->mu);
	hit = take(r, &f);
	pthread_mutex_unlock(&r->d->mu);
	if (!hit)
		return 0;
	MK_INFO("DTD-FAULT", NULL, "%s: scripted %d%s%s", r->route ? r->route : r->path, f.status,
	        f.close ? " close" : "", f.empty ? " empty" : "");
	if (f.delay_ms > 0)
		mk_sleep_ms(f.delay_ms);
	if (f.close) {
		mg_disable_connection_keep_alive(r->conn);
		return 1;
	}
	if (!f.status)
		return 0;
	if (f.status == 429 && r->surface == DT_SURFACE_API) {
		const char *b = bucket_names[r->bucket];

		snprintf(headers, sizeof(headers),
		         "X-RateLimit-Limit-%s: %d\r\nX-RateLimit-Remaining-%s: 0\r\n"
		         "X-RateLimit-Reset-%s: %lld\r\nRetry-After-%s: %lld\r\n",
		         b, r->bucket == 1 ? 300 : 10000, b, b, f.retry_after, b, f.retry_after);
	} else if (f.status == 429) {
		snprintf(headers, sizeof(headers), "Retry-After: %lld\r\n", f.retry_after);
	}
	r->authed = 0; /* the rule's headers, not the counters' */
	if (f.empty) {
		dt_send(r, f.status, NULL, headers, "", 0);
	} else if (r->surface == DT_SURFACE_TOOLBOX) {
		dt_proxy_error(r, f.status, daemon_code(f.status), "%s", f.message);
	} else {
		/* dt_api_error has no header hook: build the same body here. */
		char ts[40];
		cJSON *o = cJSON_CreateObject();
		char *s;

		dt_iso_time(mk_now_ms(), ts, sizeof(ts));
		cJSON_AddStringToObject(o, "path",
		                        r->ri->request_uri ? r->ri->request_uri : r->path);
		cJSON_AddStringToObject(o, "timestamp", ts);
		cJSON_AddNumberToObject(o, "statusCode", f.status);
		cJSON_AddStringToObject(o, "error", mg_get_response_code_text(NULL, f.status));
		cJSON_AddStringToObject(o, "message", f.message);
		s = mk_json_print(o);
		dt_send(r, f.status, "application/json; charset=utf-8", headers, s ? s : "{}",
		        s ? strlen(s) : 2);
		cJSON_free(s);
		cJSON_Delete(o);
	}
	return 1;
}

/* ------------------------------------------------------------------ endpoints */

static void control_faults(dt_req *r)
{
	char err[512];
	int n =
	    mt_serve_add_faults(r->json, check_rule, &r->d->mu, &r->d->faults, err, sizeof(err));

	if (n < 0) {
		reply(r, 400, "%s", err);
		return;
	}
	MK_INFO("DTD-FAULTS", NULL, "%d fault rule(s) added", n);
	reply(r, 200, "ok");
}

static void control_config(dt_req *r)
{
	static const char *const names[] = {"start_delay_ms", "stop_delay_ms", "minute_ms"};
	long long v[3] = {-1, -1, -1};
	size_t i;

	if (!cJSON_IsObject(r->json)) {
		reply(r, 400, "the config is not a JSON object");
		return;
	}
	for (i = 0; i < 3; i++) {
		if (cJSON_GetObjectItemCaseSensitive(r->json, names[i]) &&
		    (mk_json_int(r->json, names[i], &v[i]) != 0 || v[i] < (i == 2 ? 1 : 0) ||
		     v[i] > 3600000)) {
			reply(r, 400, "'%s' must be an integer %d..3600000", names[i],
			      i == 2 ? 1 : 0);
			return;
		}
	}
	pthread_mutex_lock(&r->d->mu);
	if (v[0] >= 0)
		r->d->cfg.start_delay_ms = v[0];
	if (v[1] >= 0)
		r->d->cfg.stop_delay_ms = v[1];
	if (v[2] >= 0)
		r->d->cfg.minute_ms = v[2];
	dt_sandbox_rebase(r->d);
	pthread_mutex_unlock(&r->d->mu);
	reply(r, 200, "ok");
}

static void control_sandboxes(dt_req *r)
{
	cJSON *a = cJSON_CreateArray();
	dt_sandbox *s;

	pthread_mutex_lock(&r->d->mu);
	for (s = r->d->sandboxes; s; s = s->next) {
		cJSON *o;
		dt_session *se;
		int procs = 0, sessions = 0, i;

		if (s->state == DT_DESTROYED)
			continue;
		for (i = 0; i < DT_MAX_RUNS; i++)
			procs += s->runs[i] != 0;
		for (se = s->sessions; se; se = se->next) {
			sessions++;
			procs += se->pid > 0;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", s->id);
		cJSON_AddStringToObject(o, "name", s->name);
		cJSON_AddStringToObject(o, "state", dt_state_name(s->state));
		cJSON_AddStringToObject(o, "desiredState", dt_state_name(s->desired));
		cJSON_AddItemToObject(
		    o, "labels",
		    cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(s->spec, "labels"), 1));
		cJSON_AddNumberToObject(o, "processes", procs);
		cJSON_AddNumberToObject(o, "sessions", sessions);
		cJSON_AddItemToArray(a, o);
	}
	pthread_mutex_unlock(&r->d->mu);
	dt_send_json(r, 200, a);
	cJSON_Delete(a);
}

static void control_delete_all(dt_req *r)
{
	dt_sandbox *s;
	int n = 0;

	pthread_mutex_lock(&r->d->mu);
	for (s = r->d->sandboxes; s; s = s->next) {
		if (s->state == DT_DESTROYED || s->desired == DT_DESTROYED)
			continue;
		dt_sandbox_soft_delete(r->d, s);
		n++;
	}
	pthread_mutex_unlock(&r->d->mu);
	MK_INFO("DTD-DELETE-ALL", NULL, "%d sandbox(es) deleted", n);
	reply(r, 200, "ok");
}

static void control_fail(dt_req *r, const char *id)
{
	const char *state = mk_json_str(r->json, "state"),
	           *why = mk_json_str(r->json, "errorReason");
	dt_state st = DT_ERROR;
	dt_sandbox *s;
	char *reason;

	if (!state || (strcmp(state, "error") != 0 && strcmp(state, "build_failed") != 0)) {
		reply(r, 400, "want {\"state\":\"error\"|\"build_failed\",\"errorReason\"?}");
		return;
	}
	if (strcmp(state, "build_failed") == 0)
		st = DT_BUILD_FAILED;
	reason = strdup(why ? why : "the double was told to fail this sandbox");
	pthread_mutex_lock(&r->d->mu);
	s = dt_sandbox_by_id(r->d, id);
	if (s && reason) {
		dt_sandbox_kill(s);
		dt_session_drop_all(s);
		free(s->error_reason);
		s->error_reason = reason;
		reason = NULL;
		dt_sandbox_set(r->d, s, st, s->desired == DT_DESTROYED ? DT_DESTROYED : DT_STARTED,
		               -1);
	}
	pthread_mutex_unlock(&r->d->mu);
	free(reason);
	if (!s)
		reply(r, 404, "no sandbox %s", id);
	else
		reply(r, 200, "ok");
}

void dt_control_serve(dt_req *r)
{
	const char *m = r->ri->request_method, *p = r->path + strlen("/_double");
	int post = strcmp(m, "POST") == 0;
	static const char prefix[] = "/sandboxes/", suffix[] = "/state";

	if (post && r->body_len > 0 && !r->json) {
		reply(r, 400, "the body is not JSON");
	} else if (post && strcmp(p, "/faults") == 0) {
		control_faults(r);
	} else if (post && strcmp(p, "/config") == 0) {
		control_config(r);
	} else if (strcmp(m, "GET") == 0 && strcmp(p, "/requests") == 0) {
		char *s = mt_serve_print_log(&r->d->mu, &r->d->requests);

		dt_send(r, s ? 200 : 500, "application/json", NULL, s ? s : "[]",
		        s ? strlen(s) : 2);
		cJSON_free(s);
	} else if (post && strcmp(p, "/reset") == 0) {
		cJSON *reqs = cJSON_CreateArray(), *faults = cJSON_CreateArray();

		pthread_mutex_lock(&r->d->mu);
		if (reqs && faults) {
			cJSON_Delete(r->d->requests);
			cJSON_Delete(r->d->faults);
			r->d->requests = reqs;
			r->d->faults = faults;
			reqs = faults = NULL;
		}
		r->d->cfg = r->d->cfg0;
		dt_sandbox_rebase(r->d);
		pthread_mutex_unlock(&r->d->mu);
		cJSON_Delete(reqs);
		cJSON_Delete(faults);
		reply(r, 200, "ok");
	} else if (strcmp(m, "GET") == 0 && strcmp(p, "/sandboxes") == 0) {
		control_sandboxes(r);
	} else if (strcmp(m, "DELETE") == 0 && strcmp(p, "/sandboxes") == 0) {
		control_delete_all(r);
	} else if (post && strncmp(p, prefix, sizeof(prefix) - 1) == 0 && strlen(p) > 17 &&
	           strcmp(p + strlen(p) - 6, suffix) == 0) {
		char id[64];

		snprintf(id, sizeof(id), "%.*s", (int)(strlen(p) - 6 - (sizeof(prefix) - 1)),
		         p + sizeof(prefix) - 1);
		control_fail(r, id);
	} else {
		reply(r, 404,
		      "no control endpoint %s %s (have POST /_double/faults, POST /_double/config, "
		      "GET "
		      "/_double/requests, POST /_double/reset, GET|DELETE /_double/sandboxes, POST "
		      "/_double/sandboxes/{id}/state)",
		      m, r->path);
	}
}
