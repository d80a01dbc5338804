/*
 * sbx_daytona_files.c - the files of a Daytona sandbox (libexecutor,
 * sandbox layer; part of the Daytona backend): uploads and query results
 * go into its workspace, and files and a run's artifacts come out, through
 * the toolbox's file endpoints (upload-v2, download, list), not through
 * the driver.
 *
 * The rules are the local backend's: paths relative to the workspace
 * (/home/daytona/workspace here, the driver's MARK_WORKSPACE), no "..",
 * nothing absolute (checked here before any call); the same largest put;
 * a file fetched is held to the room the caller gives, an artifact to
 * EXECUTOR_ARTIFACT_MAX and the run's total, all counted on the bytes
 * that arrive, never taken from a size the sandbox states. Listing shows
 * the regular files under the workspace in the driver's order (a
 * directory's files before its subdirectories', names in byte order), at
 * most as many as the driver lists.
 *
 * What differs: the toolbox follows symlinks, where the driver refuses
 * those that lead out of the workspace. Inside a Daytona sandbox that can
 * reach only the sandbox's own files, which the chat's code reads and
 * writes anyway; nothing of the host or of another chat is there.
 *
 * Not here: the REST calls and their retries (sbx_daytona_api.c), the
 * sessions (sbx_daytona.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mk_b64.h"
#include "mk_json.h"
#include "mk_time.h"
#include "sbx_daytona_int.h"
#include "sbx_result.h"
#include "sbx_frame.h"

#define LIST_MAX   1000                             /* files listed, as the driver's list */
#define LIST_DEPTH 32                               /* directory levels asked for */
#define LIST_BYTES (8 << 20)                        /* largest listing answer */
#define GET_MAX    ((SBX_FRAME_MAX - 4096) / 4 * 3) /* the driver's largest get */

/* The absolute path of a workspace path (checked by sbx_path_ok), malloc'd, or NULL. */
static char *ws_path(const char *path, char *err, size_t errlen)
{
	size_t n = sizeof(DTN_WS) + strlen(path) + 1;
	char *p = malloc(n);

	if (!p)
		mk_errf(err, errlen, "out of memory");
	else
		snprintf(p, n, "%s/%s", DTN_WS, path);
	return p;
}

int dtn_put(sbx *base, const char *path, const void *data, size_t len, char *err, size_t errlen)
{
	dtn_box *s = (dtn_box *)base;
	char *abs;
	int rc;

	if (sbx_put_request_ok(path, len, s->dead, err, errlen) != 0)
		return -1;
	if (!(abs = ws_path(path, err, errlen)))
		return -1;
	/* upload-v2 makes the parent directories and replaces a file that is there. */
	rc = dtn_upload(&s->b->api, s->tb, abs, data, len, mk_mono_ms() + DTN_CALL_MS, err, errlen);
	free(abs);
	return rc;
}

int dtn_get(sbx *base, const char *path, mk_buf *out, char *err, size_t errlen)
{
	dtn_box *s = (dtn_box *)base;
	size_t room = out->max ? out->max - out->len : GET_MAX;
	char why[300], *abs;
	int rc;

	if (sbx_file_request_ok(path, s->dead, err, errlen) != 0)
		return -1;
	if (room > GET_MAX)
		room = GET_MAX;
	if (!(abs = ws_path(path, err, errlen)))
		return -1;
	rc = dtn_download(&s->b->api, s->tb, abs, room, mk_mono_ms() + DTN_CALL_MS, out, why,
	                  sizeof(why));
	free(abs);
	if (rc == -2)
		mk_errf(err, errlen, "file '%s' is larger than the %zu bytes allowed", path, room);
	else if (rc == -3)
		mk_errf(err, errlen, "no such file '%s'", path);
	else if (rc != 0)
		mk_errf(err, errlen, "cannot read '%s': %s", path, why);
	return rc == 0 ? 0 : -1;
}

/* ---- listing --------------------------------------------------------------------- */

/* RFC 3339 time (modifiedAt) in ms since the epoch; 0 when it is not one. */
static long long rfc3339_ms(const char *t)
{
	struct tm tm;
	long long ms = 0, scale = 100;
	int y, mo, d, h, mi, sec, n = 0, oh, om;
	const char *p;

	if (!t || sscanf(t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 ||
	    n == 0)
		return 0;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	p = t + n;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
			ms += (*p - '0') * scale;
	ms += (long long)timegm(&tm) * 1000;
	if ((*p == '+' || *p == '-') && sscanf(p + 1, "%2d:%2d", &oh, &om) == 2)
		ms -= (*p == '+' ? 1 : -1) * (oh * 60LL + om) * 60000;
	return ms;
}

/*
 * The driver's walk order: where two paths first differ, a file of that
 * directory comes before anything in a subdirectory, else names compare
 * bytewise.
 */
static int walk_order(const void *pa, const void *pb)
{
	const char *a = mk_json_str(*(cJSON *const *)pa, "path");
	const char *b = mk_json_str(*(cJSON *const *)pb, "path");

	for (;;) {
		size_t na = strcspn(a, "/"), nb = strcspn(b, "/");
		int da = a[na] == '/', db = b[nb] == '/', c;

		if (na != nb || memcmp(a, b, na) != 0 || da != db) {
			if (da != db)
				return da - db;
			c = memcmp(a, b, na < nb ? na : nb);
			return c ? c : (na > nb) - (na < nb);
		}
		if (!da)
			return 0;
		a += na + 1;
		b += nb + 1;
	}
}

/* An entry of the toolbox's list as {path, bytes, modified_ms}, or NULL when not a regular file. */
static cJSON *entry(const cJSON *fi)
{
	const char *path = mk_json_str(fi, "path"), *mode = mk_json_str(fi, "mode");
	const cJSON *dir = cJSON_GetObjectItemCaseSensitive(fi, "isDir");
	long long size;
	cJSON *o;

	/* Daemons before path in FileInfo ignore depth too: their names are the top level's. */
	if (!path)
		path = mk_json_str(fi, "name");
	else if (strncmp(path, DTN_WS "/", sizeof(DTN_WS)) == 0)
		path += sizeof(DTN_WS);
	else
		return NULL;
	if (!path || !sbx_path_ok(path) || cJSON_IsTrue(dir) || (mode && mode[0] != '-') ||
	    mk_json_int(fi, "size", &size) != 0 || size < 0)
		return NULL;
	o = cJSON_CreateObject();
	if (o && (!cJSON_AddStringToObject(o, "path", path) ||
	          !cJSON_AddNumberToObject(o, "bytes", (double)size) ||
	          !cJSON_AddNumberToObject(o, "modified_ms",
	                                   (double)rfc3339_ms(mk_json_str(fi, "modifiedAt"))))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

cJSON *dtn_list(sbx *base, char *err, size_t errlen)
{
	dtn_box *s = (dtn_box *)base;
	cJSON *all, *fi, *files = NULL, **v = NULL;
	size_t n = 0, i;

	if (s->dead) {
		mk_errf(err, errlen, "sandbox is no longer running");
		return NULL;
	}
	all = dtn_files(&s->b->api, s->tb, DTN_WS, LIST_DEPTH, LIST_BYTES,
	                mk_mono_ms() + DTN_CALL_MS, err, errlen);
	if (!all)
		return NULL;
	v = calloc((size_t)cJSON_GetArraySize(all) + 1, sizeof(*v));
	files = cJSON_CreateArray();
	if (!v || !files) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	cJSON_ArrayForEach(fi, all)
	{
		if ((v[n] = entry(fi)))
			n++;
	}
	qsort(v, n, sizeof(*v), walk_order);
	for (i = 0; i < n; i++) {
		if (i < LIST_MAX)
			cJSON_AddItemToArray(files, v[i]);
		else
			cJSON_Delete(v[i]);
	}
	free(v);
	cJSON_Delete(all);
	return files;
fail:
	for (i = 0; v && i < n; i++)
		cJSON_Delete(v[i]);
	free(v);
	cJSON_Delete(files);
	cJSON_Delete(all);
	return NULL;
}

/* ---- artifacts -------------------------------------------------------------------- */

void dtn_fetch_artifacts(dtn_box *s, cJSON *res, int64_t deadline)
{
	const sbx_limits *L = &s->b->lim;
	cJSON *arts = cJSON_GetObjectItemCaseSensitive(res, "artifacts"), *f;
	long long total = 0, count = 0;
	char why[300], msg[360];

	if (!cJSON_IsArray(arts))
		return;
	cJSON_ArrayForEach(f, arts)
	{
		const char *path = mk_json_str(f, "path");
		char *abs, *b64;
		mk_buf b;
		int rc;

		if (!cJSON_IsObject(f) || !path || cJSON_GetObjectItemCaseSensitive(f, "skipped") ||
		    cJSON_GetObjectItemCaseSensitive(f, "data_b64"))
			continue; /* the result's hold (sbx_result.c) sees to these */
		if (++count > L->max_items)
			break; /* dropped by the hold, not worth fetching */
		if (!sbx_path_ok(path) || strncmp(path, "output/", 7) != 0) {
			sbx_result_skip(f, -1, "not a file of the workspace's output");
			continue;
		}
		if (mk_mono_ms() >= deadline) {
			sbx_result_skip(f, -1, "not fetched in time");
			continue;
		}
		if (!(abs = ws_path(path, why, sizeof(why)))) {
			sbx_result_skip(f, -1, why);
			continue;
		}
		mk_buf_init(&b, 0);
		rc = dtn_download(&s->b->api, s->tb, abs, (size_t)L->artifact_bytes, deadline, &b,
		                  why, sizeof(why));
		free(abs);
		if (rc == -2) {
			snprintf(msg, sizeof(msg), "larger than %lld bytes", L->artifact_bytes);
			sbx_result_skip(f, -1, msg);
		} else if (rc != 0) {
			snprintf(msg, sizeof(msg), "unreadable: %s",
			         rc == -3 ? "no such file" : why);
			sbx_result_skip(f, -1, msg);
		} else if (total + (long long)b.len > L->artifacts_total) {
			snprintf(msg, sizeof(msg), "over the %lld-byte total of one run",
			         L->artifacts_total);
			sbx_result_skip(f, (long long)b.len, msg);
		} else if (!(b64 = mk_b64_encode(b.data ? b.data : "", b.len))) {
			sbx_result_skip(f, (long long)b.len, "out of memory");
		} else {
			total += (long long)b.len;
			cJSON_DeleteItemFromObjectCaseSensitive(f, "bytes");
			cJSON_AddNumberToObject(f, "bytes", (double)b.len);
			cJSON_AddStringToObject(f, "data_b64", b64);
			free(b64);
		}
		mk_buf_release(&b);
	}
}
