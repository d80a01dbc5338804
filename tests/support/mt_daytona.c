/*
 * mt_daytona.c - test support: the Daytona double as a process and its
 * control endpoints (see mt_daytona.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt_daytona.h"

int mt_daytona_start(mt_daytona *d, const char *name, const char *key, const char *root,
                     const char *const *extra, char *err, size_t errlen)
{
	const char *args[20] = {"--listen", "127.0.0.1:0"};
	int n = 2;

	if (key) {
		args[n++] = "--api-key";
		args[n++] = key;
	}
	if (root) {
		args[n++] = "--root";
		args[n++] = root;
	}
	while (extra && *extra && n < 19)
		args[n++] = *extra++;
	args[n] = NULL;
	return mt_double_spawn(d, "daytona-double", name, args, err, errlen);
}

int mt_daytona_faults(const mt_daytona *d, const char *json, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/faults", json, NULL, err, errlen);
}

int mt_daytona_config(const mt_daytona *d, const char *json, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/config", json, NULL, err, errlen);
}

int mt_daytona_reset(const mt_daytona *d)
{
	char err[512];

	return mt_double_control(d, "POST", "/_double/reset", "{}", NULL, err, sizeof(err));
}

cJSON *mt_daytona_sandboxes(const mt_daytona *d)
{
	char err[512];
	cJSON *list;
	mt_resp r;

	if (mt_double_control(d, "GET", "/_double/sandboxes", NULL, &r, err, sizeof(err)) != 0)
		return NULL;
	list = cJSON_IsArray(r.json) ? r.json : NULL;
	if (list)
		r.json = NULL; /* taken */
	mt_resp_release(&r);
	return list;
}

/* One request to url with the bearer key (may be NULL), JSON content type and extra headers. */
static int request(const char *key, const char *method, const char *url, const char *body,
                   const char *const *extra, mt_resp *r)
{
	const char *hdrs[8] = {NULL};
	char auth[256];
	int n = 0;

	if (key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		hdrs[n++] = auth;
	}
	if (body)
		hdrs[n++] = "Content-Type: application/json";
	while (extra && *extra && n < 7)
		hdrs[n++] = *extra++;
	return mt_http(method, url, hdrs, body, body ? strlen(body) : 0, r);
}

int mt_daytona_call(const mt_daytona *d, const char *key, const char *method, const char *path,
                    const char *body, mt_resp *r)
{
	return request(key, method, mt_double_url(d, path), body, NULL, r);
}

int mt_daytona_create(const mt_daytona *d, const char *key, const char *body, char *id, char *err,
                      size_t errlen)
{
	mt_resp r;
	const char *got;

	if (mt_daytona_call(d, key, "POST", "/api/sandbox", body ? body : "{}", &r) != 0) {
		snprintf(err, errlen, "POST /api/sandbox: no answer");
		mt_resp_release(&r);
		return -1;
	}
	got = mk_json_str(r.json, "id");
	if (r.status != 200 || !got) {
		snprintf(err, errlen, "POST /api/sandbox: HTTP %ld: %.300s", r.status,
		         r.body ? r.body : "");
		mt_resp_release(&r);
		return -1;
	}
	snprintf(id, 40, "%s", got);
	mt_resp_release(&r);
	return 0;
}

int mt_daytona_wait(const mt_daytona *d, const char *key, const char *id, const char *state,
                    int timeout_ms, char *err, size_t errlen)
{
	int64_t until = mk_mono_ms() + timeout_ms;
	char path[128], last[64] = "(no answer)";
	int gone = strcmp(state, "destroyed") == 0;

	snprintf(path, sizeof(path), "/api/sandbox/%s", id);
	for (;;) {
		mt_resp r;
		int done = 0;

		if (mt_daytona_call(d, key, "GET", path, NULL, &r) == 0) {
			const char *st = mk_json_str(r.json, "state");

			if (gone && r.status == 404)
				done = 1;
			else if (st)
				done = strcmp(st, state) == 0;
			snprintf(last, sizeof(last), "%s", r.status == 404 ? "404" : st ? st : "?");
		}
		mt_resp_release(&r);
		if (done)
			return 0;
		if (mk_mono_ms() > until) {
			snprintf(err, errlen, "sandbox %s: still %s after %d ms, want %s", id, last,
			         timeout_ms, state);
			return -1;
		}
		mk_sleep_ms(50);
	}
}

int mt_daytona_started(const mt_daytona *d, const char *key, const char *body, int timeout_ms,
                       char *id, char *err, size_t errlen)
{
	if (mt_daytona_create(d, key, body, id, err, errlen) != 0)
		return -1;
	return mt_daytona_wait(d, key, id, "started", timeout_ms, err, errlen);
}

long mt_daytona_lifecycle(const mt_daytona *d, const char *key, const char *id, const char *action,
                          mt_resp *r)
{
	char path[256];
	mt_resp own;
	long st = -1;

	snprintf(path, sizeof(path), "/api/sandbox/%s%s%s", id, *action ? "/" : "", action);
	if (mt_daytona_call(d, key, *action ? "POST" : "DELETE", path, NULL, r ? r : &own) == 0)
		st = r ? r->status : own.status;
	if (!r)
		mt_resp_release(&own);
	return st;
}

int mt_daytona_processes(const char *dir)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	int n = 0;

	if (!proc)
		return -1;
	while ((e = readdir(proc))) {
		char path[300], err[128], *text;
		size_t len, i;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
		text = mt_read_file(path, &len, err, sizeof(err));
		if (!text)
			continue; /* gone meanwhile */
		for (i = 0; i + 1 < len; i++)
			if (text[i] == '\0')
				text[i] = ' ';
		n += strstr(text, dir) != NULL;
		free(text);
	}
	closedir(proc);
	return n;
}

int mt_daytona_tb(const mt_daytona *d, const char *key, const char *id, const char *method,
                  const char *sub, const char *body, const char *const *extra, mt_resp *r)
{
	char url[1024];

	snprintf(url, sizeof(url), "%s/toolbox/%s%s", d->base, id, sub);
	return request(key, method, url, body, extra, r);
}

int mt_daytona_run(const mt_daytona *d, const char *key, const char *id, const char *command,
                   long *code, char *out, size_t outlen, char *err, size_t errlen)
{
	cJSON *b = cJSON_CreateObject();
	char *body;
	mt_resp r;
	int rc = -1;

	memset(&r, 0, sizeof(r));
	cJSON_AddStringToObject(b, "command", command);
	body = cJSON_PrintUnformatted(b);
	cJSON_Delete(b);
	if (body && mt_daytona_tb(d, key, id, "POST", "/process/execute", body, NULL, &r) == 0 &&
	    r.status == 200 && mk_json_str(r.json, "result")) {
		*code = (long)cJSON_GetNumberValue(
		    cJSON_GetObjectItemCaseSensitive(r.json, "exitCode"));
		if (out)
			snprintf(out, outlen, "%s", mk_json_str(r.json, "result"));
		rc = 0;
	} else {
		snprintf(err, errlen, "execute '%s': HTTP %ld: %.300s", command, r.status,
		         r.body ? r.body : "");
	}
	mt_resp_release(&r);
	free(body);
	return rc;
}

int mt_daytona_live(const mt_daytona *d, int *processes)
{
	cJSON *all = mt_daytona_sandboxes(d), *s;
	int n = 0;

	*processes = 0;
	if (!all)
		return -1;
	cJSON_ArrayForEach(s, all)
	{
		*processes +=
		    (int)cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(s, "processes"));
		n++;
	}
	cJSON_Delete(all);
	return n;
}

int mt_daytona_clear(const mt_daytona *d, int timeout_ms, char *err, size_t errlen)
{
	int64_t until = mk_mono_ms() + timeout_ms;
	int n, procs;

	if (mt_daytona_reset(d) != 0 ||
	    mt_double_control(d, "DELETE", "/_double/sandboxes", NULL, NULL, err, errlen) != 0) {
		snprintf(err, errlen, "the double does not answer its control endpoints");
		return -1;
	}
	while ((n = mt_daytona_live(d, &procs)) != 0) {
		if (n < 0 || mk_mono_ms() > until) {
			snprintf(err, errlen, "%d sandbox(es) never destroyed", n);
			return -1;
		}
		mk_sleep_ms(50);
	}
	return 0;
}

/* Check one member of an error body; 0, or -1 with why. */
static int member(const mt_resp *r, const char *name, const char *want, char *why, size_t whylen)
{
	const char *got = mk_json_str(r->json, name);

	if (got && (!want || strcmp(got, want) == 0))
		return 0;
	snprintf(why, whylen, "'%s' is '%s', want '%s': %.300s", name, got ? got : "(none)",
	         want ? want : "(any)", r->body ? r->body : "");
	return -1;
}

static int status_is(const mt_resp *r, long status, char *why, size_t whylen)
{
	const cJSON *sc = cJSON_GetObjectItemCaseSensitive(r->json, "statusCode");

	if (r->status == status && cJSON_IsNumber(sc) && (long)sc->valuedouble == status)
		return 0;
	snprintf(why, whylen, "HTTP %ld, want %ld: %.300s", r->status, status,
	         r->body ? r->body : "");
	return -1;
}

int mt_daytona_api_error(const mt_resp *r, long status, const char *reason, const char *message,
                         char *why, size_t whylen)
{
	const char *ts = mk_json_str(r->json, "timestamp");

	if (status_is(r, status, why, whylen) != 0 ||
	    member(r, "error", reason, why, whylen) != 0 ||
	    member(r, "message", message, why, whylen) != 0 ||
	    member(r, "path", NULL, why, whylen) != 0)
		return -1;
	if (!ts || strlen(ts) != 24 || ts[10] != 'T' || ts[23] != 'Z') {
		snprintf(why, whylen, "timestamp '%s' is not ISO-8601 UTC", ts ? ts : "(none)");
		return -1;
	}
	return 0;
}

int mt_daytona_tb_error(const mt_resp *r, long status, const char *code, const char *needle,
                        const char *source, char *why, size_t whylen)
{
	const char *msg = mk_json_str(r->json, "message");

	if (status_is(r, status, why, whylen) != 0 || member(r, "code", code, why, whylen) != 0 ||
	    member(r, "source", source, why, whylen) != 0 ||
	    member(r, "timestamp", NULL, why, whylen) != 0 ||
	    member(r, "method", NULL, why, whylen) != 0 ||
	    member(r, "path", NULL, why, whylen) != 0)
		return -1;
	if (!msg || !strstr(msg, needle)) {
		snprintf(why, whylen, "message '%s' lacks '%s'", msg ? msg : "(none)", needle);
		return -1;
	}
	return 0;
}

int mt_daytona_stop_clean(mt_daytona *d, const char *root, char *err, size_t errlen)
{
	char cmd[256], *out = NULL;
	int st = mt_daytona_stop(d), procs;

	if (st != 0) {
		snprintf(err, errlen, "daytona-double exited %d on SIGTERM, want 0", st);
		return -1;
	}
	if ((procs = mt_daytona_processes(root)) != 0) {
		snprintf(err, errlen, "%d process(es) still name %s", procs, root);
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>&1", root);
	st = mt_sh(cmd, &out);
	if (st != 0 || !out || strcmp(out, "etc\n") != 0) {
		snprintf(err, errlen, "%s holds more than etc (ls exit %d): %s", root, st,
		         out ? out : "");
		free(out);
		return -1;
	}
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' 2>&1", root);
	st = mt_sh(cmd, &out);
	if (st != 0)
		snprintf(err, errlen, "cannot remove %s: %s", root, out ? out : "");
	free(out);
	return st == 0 ? 0 : -1;
}
