/*
 * dt_double_api.c - the control plane of the Daytona double (/api/...):
 * creating, listing, reading, starting, stopping, archiving and deleting
 * sandboxes, with the checks, messages and statuses of Daytona's API
 * server (contract §2, §4.1).
 *
 * Routes (all but /config need the bearer key):
 *   POST /api/sandbox                      GET /api/sandbox (cursor list)
 *   GET|DELETE /api/sandbox/{idOrName}
 *   POST /api/sandbox/{idOrName}/start|stop|archive|recover
 *   GET  /api/sandbox/{id}/toolbox-proxy-url
 *   PUT  /api/sandbox/{idOrName}/labels
 *   POST /api/sandbox/{idOrName}/autostop|autoarchive|autodelete/{minutes}
 *   POST /api/sandbox/{id}/last-activity   GET /api/config
 *
 * Like the real server, create and start wait (up to 30 s) for the
 * sandbox to start, and create then answers with the sandbox as it was
 * when it was made ("creating"): clients poll GET until "started".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

#define MAX_ARCHIVE_MIN 43200 /* 30 days */

/* ------------------------------------------------------------------ routing */

const char *dt_api_route(dt_req *r)
{
	const char *m = r->ri->request_method, *act;
	int get = strcmp(m, "GET") == 0, post = strcmp(m, "POST") == 0;

	if (r->nseg == 1 && strcmp(r->seg[0], "config") == 0 && get)
		return "config";
	if (r->nseg < 1 || strcmp(r->seg[0], "sandbox") != 0)
		return NULL;
	if (r->nseg == 1) {
		r->bucket = post ? 1 : 0;
		return post ? "sandbox.create" : get ? "sandbox.list" : NULL;
	}
	if (!*r->seg[1])
		return NULL;
	if (r->nseg == 2) {
		if (strcmp(m, "DELETE") == 0) {
			r->bucket = 2;
			return "sandbox.delete";
		}
		return get ? "sandbox.get" : NULL;
	}
	act = r->seg[2];
	if (r->nseg == 3 && post &&
	    (strcmp(act, "start") == 0 || strcmp(act, "stop") == 0 || strcmp(act, "archive") == 0 ||
	     strcmp(act, "recover") == 0)) {
		r->bucket = 2;
		return strcmp(act, "start") == 0     ? "sandbox.start"
		       : strcmp(act, "stop") == 0    ? "sandbox.stop"
		       : strcmp(act, "archive") == 0 ? "sandbox.archive"
		                                     : "sandbox.recover";
	}
	if (r->nseg == 3 && get && strcmp(act, "toolbox-proxy-url") == 0)
		return "sandbox.toolbox-proxy-url";
	if (r->nseg == 3 && strcmp(m, "PUT") == 0 && strcmp(act, "labels") == 0)
		return "sandbox.labels";
	if (r->nseg == 3 && post && strcmp(act, "last-activity") == 0)
		return "sandbox.last-activity";
	if (r->nseg == 4 && post && *r->seg[3])
		return strcmp(act, "autostop") == 0      ? "sandbox.autostop"
		       : strcmp(act, "autoarchive") == 0 ? "sandbox.autoarchive"
		       : strcmp(act, "autodelete") == 0  ? "sandbox.autodelete"
		                                         : NULL;
	return NULL;
}

/* ------------------------------------------------------------------ helpers */

static void not_found(dt_req *r, const char *what)
{
	dt_api_error(r, 404, "Sandbox with ID or name %s not found", what);
}

/*
 * Wait (d->mu held) until sandbox `id` has started or failed, for at most
 * ms; the sandbox afterwards (looked up again: it may be gone), or NULL.
 */
static dt_sandbox *wait_started(dt_double *d, const char *id, int64_t ms)
{
	int64_t until = mk_mono_ms() + ms;
	dt_sandbox *s;

	while ((s = dt_sandbox_by_id(d, id)) && s->state != DT_STARTED && s->state != DT_ERROR &&
	       s->state != DT_BUILD_FAILED && !d->stopping) {
		int64_t left = until - mk_mono_ms();
		struct timespec ts;

		if (left <= 0)
			break;
		if (left > 200)
			left = 200;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += left / 1000;
		ts.tv_nsec += (long)(left % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&d->cv, &d->mu, &ts);
	}
	return s;
}

/* Whether every value of obj is a string (obj absent is fine). */
static int string_map(const cJSON *obj)
{
	const cJSON *e;

	if (!obj)
		return 1;
	if (!cJSON_IsObject(obj))
		return 0;
	cJSON_ArrayForEach(e, obj) if (!cJSON_IsString(e)) return 0;
	return 1;
}

/* Whether name is in the comma-separated list. */
static int in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && strncmp(p, name, n) == 0)
			return 1;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}

/* Check a networkAllowList; 0, or -1 with the server's message in err. */
static int check_networks(const char *list, char *err, size_t errlen)
{
	char item[64];
	const char *p = list;
	int n = 0;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		unsigned a, b, c, e, prefix;
		char tail;

		snprintf(item, sizeof(item), "%.*s", (int)(len < 63 ? len : 63), p);
		p = comma ? comma + 1 : NULL;
		if (!item[0])
			continue;
		if (++n > 10) {
			mk_errf(err, errlen,
			        "Network allow list cannot contain more than 10 networks");
			return -1;
		}
		if (!strchr(item, '/')) {
			mk_errf(err, errlen,
			        "Invalid network format: \"%s\". Missing CIDR prefix length (e.g., "
			        "/24)",
			        item);
			return -1;
		}
		if (sscanf(item, "%u.%u.%u.%u/%u%c", &a, &b, &c, &e, &prefix, &tail) != 5 ||
		    a > 255 || b > 255 || c > 255 || e > 255) {
			mk_errf(
			    err, errlen,
			    "Invalid IP address: \"%.*s\" in network \"%s\". Must be a valid IPv4 "
			    "address",
			    (int)(strchr(item, '/') - item), item, item);
			return -1;
		}
		if (prefix > 32) {
			mk_errf(err, errlen,
			        "Invalid CIDR prefix length: %s. Prefix must be between 0 and 32",
			        item);
			return -1;
		}
	}
	return 0;
}

/* An optional integer member; 0 (absent: *out untouched), or -1 when it is not an integer. */
static int opt_int(const cJSON *o, const char *name, long long *out)
{
	if (!cJSON_GetObjectItemCaseSensitive(o, name) ||
	    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, name)))
		return 0;
	return mk_json_int(o, name, out);
}

/* ------------------------------------------------------------------ create */

/* Check the create body and build the sandbox's spec; NULL with r answered. */
static cJSON *create_spec(dt_req *r, const cJSON *b)
{
	const cJSON *build = cJSON_GetObjectItemCaseSensitive(b, "buildInfo");
	const char *snapshot = mk_json_str(b, "snapshot");
	long long stop = 15, archive = 10080, del = -1, res[4] = {0, 0, 0, 0};
	static const char *const res_names[] = {"cpu", "gpu", "memory", "disk"};
	static const char *const strs[] = {"name",   "snapshot",         "user",
	                                   "target", "networkAllowList", "domainAllowList"};
	char err[512];
	cJSON *spec;
	size_t i;

	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(b, strs[i]);

		if (v && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
			dt_api_error(r, 400, "%s must be a string", strs[i]);
			return NULL;
		}
	}
	if (!string_map(cJSON_GetObjectItemCaseSensitive(b, "env")) ||
	    !string_map(cJSON_GetObjectItemCaseSensitive(b, "labels"))) {
		dt_api_error(r, 400, "%s must be an object of strings",
		             string_map(cJSON_GetObjectItemCaseSensitive(b, "env")) ? "labels"
		                                                                    : "env");
		return NULL;
	}
	for (i = 0; i < 4; i++) {
		if (opt_int(b, res_names[i], &res[i]) != 0 || res[i] < 0) {
			dt_api_error(r, 400, "%s must not be less than 0", res_names[i]);
			return NULL;
		}
	}
	if (opt_int(b, "autoStopInterval", &stop) != 0 || stop < 0) {
		dt_api_error(r, 400, "autoStopInterval must not be less than 0");
		return NULL;
	}
	if (opt_int(b, "autoArchiveInterval", &archive) != 0 || archive < 0) {
		dt_api_error(r, 400, "autoArchiveInterval must not be less than 0");
		return NULL;
	}
	if (opt_int(b, "autoDeleteInterval", &del) != 0) {
		dt_api_error(r, 400, "autoDeleteInterval must be an integer number");
		return NULL;
	}
	if (archive == 0 || archive > MAX_ARCHIVE_MIN)
		archive = MAX_ARCHIVE_MIN;
	if (build && !cJSON_IsNull(build)) {
		if (!mk_json_str(build, "dockerfileContent")) {
			dt_api_error(r, 400, "buildInfo.dockerfileContent must be a string");
			return NULL;
		}
		if (snapshot) {
			dt_api_error(r, 400,
			             "Cannot specify a snapshot when using a build info entry");
			return NULL;
		}
	} else {
		const cJSON *gt = cJSON_GetObjectItemCaseSensitive(b, "gpuType");

		build = NULL;
		if (res[0] || res[1] || res[2] || res[3]) {
			dt_api_error(r, 400,
			             "Cannot specify Sandbox resources when using a snapshot");
			return NULL;
		}
		if (cJSON_GetArraySize(gt) > 0) {
			dt_api_error(
			    r, 400,
			    "Cannot specify GPU type when creating sandbox from snapshot. GPU "
			    "type is inherited from snapshot.");
			return NULL;
		}
		if (!snapshot)
			snapshot = "daytona-small";
		if (!in_list(r->d->snapshots, snapshot)) {
			dt_api_error(r, 400,
			             "Snapshot %s not found. Did you add it through the Daytona "
			             "Dashboard?",
			             snapshot);
			return NULL;
		}
	}
	if (check_networks(mk_json_str(b, "networkAllowList"), err, sizeof(err)) != 0) {
		dt_api_error(r, 400, "%s", err);
		return NULL;
	}
	spec = cJSON_CreateObject();
	if (snapshot)
		cJSON_AddStringToObject(spec, "snapshot", snapshot);
	cJSON_AddStringToObject(spec, "user",
	                        mk_json_str(b, "user") ? mk_json_str(b, "user") : "daytona");
	cJSON_AddItemToObject(spec, "env",
	                      cJSON_GetObjectItemCaseSensitive(b, "env")
	                          ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(b, "env"), 1)
	                          : cJSON_CreateObject());
	cJSON_AddItemToObject(
	    spec, "labels",
	    cJSON_GetObjectItemCaseSensitive(b, "labels")
	        ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(b, "labels"), 1)
	        : cJSON_CreateObject());
	cJSON_AddBoolToObject(spec, "public",
	                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "public")));
	cJSON_AddBoolToObject(spec, "networkBlockAll",
	                      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "networkBlockAll")));
	if (mk_json_str(b, "networkAllowList"))
		cJSON_AddStringToObject(spec, "networkAllowList",
		                        mk_json_str(b, "networkAllowList"));
	if (mk_json_str(b, "domainAllowList"))
		cJSON_AddStringToObject(spec, "domainAllowList", mk_json_str(b, "domainAllowList"));
	cJSON_AddStringToObject(spec, "target",
	                        mk_json_str(b, "target") ? mk_json_str(b, "target") : "us");
	/* A snapshot's resources (daytona-small), or a build's own (defaults 1/0/1/3). */
	cJSON_AddNumberToObject(spec, "cpu", build && res[0] ? (double)res[0] : 1);
	cJSON_AddNumberToObject(spec, "gpu", build ? (double)res[1] : 0);
	cJSON_AddNumberToObject(spec, "memory", build && res[2] ? (double)res[2] : 1);
	cJSON_AddNumberToObject(spec, "disk", build && res[3] ? (double)res[3] : 3);
	cJSON_AddNumberToObject(spec, "autoStopInterval", (double)stop);
	cJSON_AddNumberToObject(spec, "autoArchiveInterval", (double)archive);
	cJSON_AddNumberToObject(spec, "autoDeleteInterval", (double)del);
	cJSON_AddItemToObject(
	    spec, "volumes",
	    cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(b, "volumes"))
	        ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(b, "volumes"), 1)
	        : cJSON_CreateArray());
	if (build)
		cJSON_AddItemToObject(spec, "buildInfo", cJSON_Duplicate(build, 1));
	return spec;
}

static void create(dt_req *r)
{
	dt_double *d = r->d;
	cJSON *empty = NULL, *spec, *at_insert;
	const cJSON *b = r->json;
	const char *name;
	char err[256], id[40];
	dt_sandbox *s;
	int build;

	if (r->body_len > 0 && !r->json) {
		dt_api_error(r, 400, "Unexpected token in JSON body");
		return;
	}
	if (!b)
		b = empty = cJSON_CreateObject();
	if (!cJSON_IsObject(b)) {
		dt_api_error(r, 400, "the body must be a JSON object");
		return;
	}
	spec = create_spec(r, b);
	name = mk_json_str(b, "name");
	build = spec && cJSON_GetObjectItemCaseSensitive(spec, "buildInfo") != NULL;
	if (!spec) {
		cJSON_Delete(empty);
		return;
	}
	pthread_mutex_lock(&d->mu);
	if (name && *name && dt_sandbox_find(d, name)) {
		pthread_mutex_unlock(&d->mu);
		dt_api_error(r, 409, "Sandbox with name %s already exists", name);
		goto out;
	}
	s = dt_sandbox_new(d, err, sizeof(err));
	if (!s) {
		pthread_mutex_unlock(&d->mu);
		dt_api_error(r, 400, "%s", err);
		goto out;
	}
	cJSON_Delete(s->spec);
	s->spec = spec;
	spec = NULL;
	if (name && *name) {
		free(s->name);
		s->name = strdup(name);
	}
	dt_sandbox_set(d, s, build ? DT_PENDING_BUILD : DT_CREATING, DT_STARTED,
	               d->cfg.start_delay_ms);
	snprintf(id, sizeof(id), "%s", s->id);
	at_insert = dt_sandbox_json(d, s, 0);
	MK_INFO("DTD-CREATE", NULL, "sandbox %s (%s) created", s->id, s->name);
	/* A build answers at once; a snapshot's sandbox is waited for (the answer stays as made).
	 */
	if (!build) {
		s = wait_started(d, id, DT_CREATE_WAIT_MS);
		if (s && (s->state == DT_ERROR || s->state == DT_BUILD_FAILED)) {
			char reason[512];

			snprintf(reason, sizeof(reason), "%s",
			         s->error_reason ? s->error_reason : "unknown");
			pthread_mutex_unlock(&d->mu);
			dt_api_error(r, 400, "Sandbox failed to start: %s", reason);
			cJSON_Delete(at_insert);
			goto out;
		}
	}
	pthread_mutex_unlock(&d->mu);
	dt_send_json(r, 200, at_insert);
	cJSON_Delete(at_insert);
out:
	cJSON_Delete(spec);
	cJSON_Delete(empty);
}

/* ------------------------------------------------------------------ list */

/* Whether every pair of want is among s's labels. */
static int labels_match(const dt_sandbox *s, const cJSON *want)
{
	const cJSON *labels = cJSON_GetObjectItemCaseSensitive(s->spec, "labels"), *w;

	cJSON_ArrayForEach(w, want)
	{
		const char *have = mk_json_str(labels, w->string);

		if (!cJSON_IsString(w) || !have || strcmp(have, w->valuestring) != 0)
			return 0;
	}
	return 1;
}

/* Whether s's state is one of the `states` query parameters (none: all). */
static int state_match(const dt_req *r, const dt_sandbox *s)
{
	const char *q = r->ri->query_string;
	char v[64];
	int i, any = 0;

	for (i = 0; q && i < 64; i++) {
		if (mg_get_var2(q, strlen(q), "states", v, sizeof(v), (size_t)i) < 0 &&
		    mg_get_var2(q, strlen(q), "states[]", v, sizeof(v), (size_t)i) < 0)
			break;
		any = 1;
		if (strcmp(v, dt_state_name(s->state)) == 0)
			return 1;
	}
	return !any;
}

static int by_created(const void *a, const void *b)
{
	const dt_sandbox *x = *(dt_sandbox *const *)a, *y = *(dt_sandbox *const *)b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void list(dt_req *r)
{
	dt_double *d = r->d;
	char v[2048], idp[128] = "", namep[256] = "";
	long long limit = 100, cursor = 0;
	cJSON *want = NULL, *o, *items;
	dt_sandbox *s, **all = NULL;
	size_t n = 0, i;
	int asc = 0;

	if (dt_param(r, "limit", v, sizeof(v))) {
		char *end;

		limit = strtoll(v, &end, 10);
		if (*end || limit < 1 || limit > 200) {
			dt_api_error(r, 400, "limit must be an integer between 1 and 200");
			return;
		}
	}
	if (dt_param(r, "cursor", v, sizeof(v)) && *v) {
		char *end;

		cursor = strtoll(v, &end, 10);
		if (*end || cursor < 0) {
			dt_api_error(r, 400, "Invalid cursor");
			return;
		}
	}
	if (dt_param(r, "labels", v, sizeof(v)) && *v) {
		want = cJSON_Parse(v);
		if (!cJSON_IsObject(want)) {
			cJSON_Delete(want);
			dt_api_error(r, 400, "Invalid labels JSON format");
			return;
		}
	}
	dt_param(r, "id", idp, sizeof(idp));
	dt_param(r, "name", namep, sizeof(namep));
	asc = dt_param(r, "order", v, sizeof(v)) && strcmp(v, "asc") == 0;
	o = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(o, "items");
	pthread_mutex_lock(&d->mu);
	for (s = d->sandboxes; s; s = s->next)
		n++;
	all = calloc(n ? n : 1, sizeof(*all));
	n = 0;
	for (s = d->sandboxes; all && s; s = s->next)
		if (s->state != DT_DESTROYED && labels_match(s, want) && state_match(r, s) &&
		    strncmp(s->id, idp, strlen(idp)) == 0 &&
		    strncmp(s->name, namep, strlen(namep)) == 0)
			all[n++] = s;
	qsort(all, n, sizeof(*all), by_created);
	for (i = (size_t)cursor; all && i < n && i < (size_t)(cursor + limit); i++)
		cJSON_AddItemToArray(items, dt_sandbox_json(d, all[asc ? i : n - 1 - i], 1));
	pthread_mutex_unlock(&d->mu);
	if ((size_t)(cursor + limit) < n) {
		snprintf(v, sizeof(v), "%lld", cursor + limit);
		cJSON_AddStringToObject(o, "nextCursor", v);
	} else {
		cJSON_AddNullToObject(o, "nextCursor");
	}
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
	cJSON_Delete(want);
	free(all);
}

/* ------------------------------------------------------------------ lifecycle */

static int errored(const dt_sandbox *s)
{
	return s->state == DT_ERROR || s->state == DT_BUILD_FAILED;
}

/*
 * One lifecycle call on sandbox seg[1], under d->mu: the sandbox to answer
 * with (then 0), or -1 with the error status and message set.
 */
static int lifecycle(dt_req *r, dt_sandbox *s, int *status, char *msg, size_t msglen)
{
	dt_double *d = r->d;
	const char *route = r->route;

	if (strcmp(route, "sandbox.delete") == 0) {
		if (s->pending && s->state != DT_PENDING_BUILD)
			goto in_progress;
		dt_sandbox_soft_delete(d, s);
		return 0;
	}
	if (strcmp(route, "sandbox.recover") == 0) {
		if (!errored(s)) {
			*status = 400;
			mk_errf(msg, msglen, "Sandbox must be in error state to recover");
			return -1;
		}
		free(s->error_reason);
		s->error_reason = NULL;
		dt_sandbox_set(d, s, DT_STOPPED, DT_STARTED, 0);
		return 0;
	}
	if (strcmp(route, "sandbox.start") == 0 && s->state == DT_STARTED &&
	    s->desired == DT_STARTED)
		return 0;
	if (errored(s)) {
		*status = 400;
		mk_errf(msg, msglen, "Sandbox is in an errored state");
		return -1;
	}
	if (strcmp(route, "sandbox.start") == 0) {
		if (s->state != s->desired &&
		    !(s->desired == DT_ARCHIVED &&
		      (s->state == DT_STOPPED || s->state == DT_ARCHIVING)))
			goto in_progress;
		if (s->state != DT_STOPPED && s->state != DT_ARCHIVED && s->state != DT_ARCHIVING) {
			*status = 400;
			mk_errf(msg, msglen, "Sandbox is not in valid state");
			return -1;
		}
		dt_sandbox_set(d, s, s->state, DT_STARTED, 0);
		return 0;
	}
	if (s->state != s->desired || s->pending)
		goto in_progress;
	if (strcmp(route, "sandbox.stop") == 0) {
		if (s->state != DT_STARTED) {
			*status = 400;
			mk_errf(msg, msglen, "Sandbox is not in a stoppable state");
			return -1;
		}
		if (dt_sandbox_ephemeral(s))
			dt_sandbox_soft_delete(d, s);
		else
			dt_sandbox_set(d, s, DT_STARTED, DT_STOPPED, 0);
		return 0;
	}
	/* archive */
	if (s->state != DT_STOPPED) {
		*status = 400;
		mk_errf(msg, msglen, "Sandbox is not stopped");
		return -1;
	}
	if (dt_sandbox_ephemeral(s)) {
		*status = 400;
		mk_errf(msg, msglen, "Ephemeral sandboxes cannot be archived");
		return -1;
	}
	dt_sandbox_set(d, s, DT_ARCHIVING, DT_ARCHIVED, d->cfg.stop_delay_ms);
	return 0;
in_progress:
	*status = 409;
	mk_errf(msg, msglen, "Sandbox state change in progress");
	return -1;
}

static void lifecycle_serve(dt_req *r)
{
	dt_double *d = r->d;
	char msg[256], id[40];
	dt_sandbox *s;
	cJSON *out;
	int status = 0;

	pthread_mutex_lock(&d->mu);
	s = dt_sandbox_find(d, r->seg[1]);
	if (!s) {
		pthread_mutex_unlock(&d->mu);
		not_found(r, r->seg[1]);
		return;
	}
	if (lifecycle(r, s, &status, msg, sizeof(msg)) != 0) {
		pthread_mutex_unlock(&d->mu);
		dt_api_error(r, status, "%s", msg);
		return;
	}
	MK_INFO("DTD-LIFECYCLE", NULL, "%s %s: %s -> %s", r->route, s->id, dt_state_name(s->state),
	        dt_state_name(s->desired));
	/* start and recover wait like the server does, unless an archive must be restored. */
	if ((strcmp(r->route, "sandbox.start") == 0 || strcmp(r->route, "sandbox.recover") == 0) &&
	    s->state != DT_STARTED && s->state != DT_ARCHIVED && s->state != DT_ARCHIVING) {
		snprintf(id, sizeof(id), "%s", s->id);
		s = wait_started(d, id, DT_CREATE_WAIT_MS);
		if (s && errored(s)) {
			snprintf(msg, sizeof(msg), "Sandbox failed to start: %s",
			         s->error_reason ? s->error_reason : "unknown");
			pthread_mutex_unlock(&d->mu);
			dt_api_error(r, 400, "%s", msg);
			return;
		}
		if (!s) {
			pthread_mutex_unlock(&d->mu);
			not_found(r, id);
			return;
		}
	}
	out = dt_sandbox_json(d, s, 0);
	pthread_mutex_unlock(&d->mu);
	dt_send_json(r, 200, out);
	cJSON_Delete(out);
}

/* ------------------------------------------------------------------ small routes */

/*
 * PUT labels, the interval setters and last-activity, under d->mu (s
 * found): the answer's status and body (NULL: empty), or 400 with msg.
 */
static cJSON *settings(dt_req *r, dt_sandbox *s, int *status, char *msg, size_t msglen)
{
	const char *route = r->route + strlen("sandbox.");
	const char *field = strcmp(route, "autostop") == 0      ? "autoStopInterval"
	                    : strcmp(route, "autoarchive") == 0 ? "autoArchiveInterval"
	                                                        : "autoDeleteInterval";
	char *end;
	long long v;

	*status = 200;
	if (strcmp(route, "last-activity") == 0) {
		s->activity = mk_now_ms();
		*status = 201;
		return NULL;
	}
	if (strcmp(route, "labels") == 0) {
		const cJSON *labels = cJSON_GetObjectItemCaseSensitive(r->json, "labels");
		cJSON *o;

		if (!cJSON_IsObject(labels) || !string_map(labels)) {
			*status = 400;
			mk_errf(msg, msglen, "labels must be an object of strings");
			return NULL;
		}
		cJSON_ReplaceItemInObjectCaseSensitive(s->spec, "labels",
		                                       cJSON_Duplicate(labels, 1));
		s->updated = mk_now_ms();
		o = cJSON_CreateObject();
		cJSON_AddItemToObject(o, "labels", cJSON_Duplicate(labels, 1));
		return o;
	}
	v = strtoll(r->seg[3], &end, 10);
	if (*end || (v < 0 && strcmp(route, "autodelete") != 0)) {
		*status = 400;
		mk_errf(msg, msglen, "Validation failed (numeric string is expected)");
		return NULL;
	}
	if (strcmp(route, "autoarchive") == 0 && (v == 0 || v > MAX_ARCHIVE_MIN))
		v = MAX_ARCHIVE_MIN;
	cJSON_ReplaceItemInObjectCaseSensitive(s->spec, field, cJSON_CreateNumber((double)v));
	s->updated = mk_now_ms();
	return dt_sandbox_json(r->d, s, 0);
}

static void config(dt_req *r)
{
	cJSON *o = cJSON_CreateObject(), *oidc, *rl;

	cJSON_AddStringToObject(o, "version", DT_VERSION);
	oidc = cJSON_AddObjectToObject(o, "oidc");
	cJSON_AddStringToObject(oidc, "issuer", "http://127.0.0.1/oidc");
	cJSON_AddStringToObject(oidc, "clientId", "daytona-double");
	cJSON_AddStringToObject(oidc, "audience", "daytona-double");
	cJSON_AddBoolToObject(o, "linkedAccountsEnabled", 0);
	cJSON_AddObjectToObject(o, "announcements");
	cJSON_AddStringToObject(o, "proxyTemplateUrl", "http://{{PORT}}-{{sandboxId}}.invalid");
	cJSON_AddStringToObject(o, "proxyToolboxUrl", r->d->toolbox_url);
	cJSON_AddStringToObject(o, "defaultSnapshot", "daytona-small");
	cJSON_AddStringToObject(o, "dashboardUrl", r->d->base);
	cJSON_AddNumberToObject(o, "maxAutoArchiveInterval", MAX_ARCHIVE_MIN);
	cJSON_AddBoolToObject(o, "maintananceMode", 0);
	cJSON_AddStringToObject(o, "environment", "double");
	rl = cJSON_AddObjectToObject(o, "rateLimit");
	cJSON_AddNumberToObject(rl, "authenticated", 10000);
	cJSON_AddNumberToObject(rl, "sandboxCreate", 300);
	cJSON_AddNumberToObject(rl, "sandboxLifecycle", 10000);
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

void dt_api_serve(dt_req *r)
{
	dt_double *d = r->d;
	const char *route = r->route;
	cJSON *out = NULL;
	char msg[256];
	dt_sandbox *s;
	int status = 200;

	if (strcmp(route, "config") == 0) {
		config(r);
		return;
	}
	if (strcmp(route, "sandbox.create") == 0) {
		create(r);
		return;
	}
	if (strcmp(route, "sandbox.list") == 0) {
		list(r);
		return;
	}
	if (strcmp(route, "sandbox.delete") == 0 || strcmp(route, "sandbox.start") == 0 ||
	    strcmp(route, "sandbox.stop") == 0 || strcmp(route, "sandbox.archive") == 0 ||
	    strcmp(route, "sandbox.recover") == 0) {
		lifecycle_serve(r);
		return;
	}
	pthread_mutex_lock(&d->mu);
	s = strcmp(route, "sandbox.toolbox-proxy-url") == 0 ||
	            strcmp(route, "sandbox.last-activity") == 0
	        ? dt_sandbox_by_id(d, r->seg[1])
	        : dt_sandbox_find(d, r->seg[1]);
	if (!s) {
		pthread_mutex_unlock(&d->mu);
		if (strcmp(route, "sandbox.toolbox-proxy-url") == 0 ||
		    strcmp(route, "sandbox.last-activity") == 0)
			dt_api_error(r, 404, "Sandbox with ID %s not found", r->seg[1]);
		else
			not_found(r, r->seg[1]);
		return;
	}
	if (strcmp(route, "sandbox.get") == 0) {
		out = dt_sandbox_json(d, s, 0);
	} else if (strcmp(route, "sandbox.toolbox-proxy-url") == 0) {
		out = cJSON_CreateObject();
		cJSON_AddStringToObject(out, "url", d->toolbox_url);
	} else {
		out = settings(r, s, &status, msg, sizeof(msg));
	}
	pthread_mutex_unlock(&d->mu);
	if (status == 400)
		dt_api_error(r, 400, "%s", msg);
	else if (!out)
		dt_send(r, status, NULL, NULL, "", 0);
	else
		dt_send_json(r, status, out);
	cJSON_Delete(out);
}
