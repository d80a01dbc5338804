/*
 * mt_daytona.c - test support: the Daytona double as a process and its
 * control endpoints (see mt_daytona.h).
 */
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

int mt_daytona_call(const mt_daytona *d, const char *key, const char *method, const char *path,
                    const char *body, mt_resp *r)
{
	char auth[256];
	const char *hdrs[3] = {NULL, NULL, NULL};
	int n = 0;

	if (key) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
		hdrs[n++] = auth;
	}
	if (body)
		hdrs[n++] = "Content-Type: application/json";
	return mt_http(method, mt_double_url(d, path), hdrs, body, body ? strlen(body) : 0, r);
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
