/*
 * sbx_result.c - the host's own limits on a sandbox's result, and the
 * fields it adds (see sbx_result.h). Nothing the sandbox sends is trusted
 * to be within them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_b64.h"
#include "mk_json.h"
#include "sbx_result.h"

#define TEXT_MAX    (128 * 1024) /* an error's type and message, a value's type */
#define TABLE_NAMES (64 * 1024)  /* a table's name, columns and dtypes in a reply frame */
/* A cell of a table snippet in a reply frame: the driver's 1000 characters, JSON-escaped. */
#define CELL_FRAME   (6 * 1000 + 8)
#define FRAME_SLACK  (1 << 20) /* the rest of a reply frame */
#define CELL_MAX     4096      /* one table cell's text */
#define B64_ALPHABET "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="

/* Limits a driver may name; anything else from a sandbox is dropped. */
static const char *const driver_limits[] = {"cpu_time",  "memory", "file_size",
                                            "processes", "disk",   "open_files"};

size_t sbx_result_frame_max(const sbx_limits *L)
{
	long long b64 = 4 * (L->image_bytes / 3 + 1);
	long long table = L->table_rows * L->table_cols * CELL_FRAME + TABLE_NAMES;
	/* Text may grow six times when JSON-escaped (\u0001). */
	long long n = 6 * L->value_bytes + L->max_items * (L->figure_bytes + b64 + table) +
	              4 * (L->artifacts_total / 3 + 1) + L->max_items * 8192 + FRAME_SLACK +
	              6 * 3 * (long long)TEXT_MAX;

	return (size_t)n;
}

static void note(cJSON *notes, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void note(cJSON *notes, const char *fmt, ...)
{
	char buf[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	cJSON_AddItemToArray(notes, cJSON_CreateString(buf));
}

/* s cut to at most max bytes on a UTF-8 boundary, with a marker; a new string item. */
static cJSON *cut_text(const char *s, size_t max, int *cut)
{
	size_t len = strlen(s), keep;
	char *t;
	cJSON *v;

	*cut = len > max;
	if (!*cut)
		return cJSON_CreateString(s);
	keep = mk_utf8_valid_prefix((const unsigned char *)s, max);
	t = malloc(keep + 48);
	if (!t)
		return NULL;
	memcpy(t, s, keep);
	snprintf(t + keep, 48, "\n[cut at %zu bytes]", max);
	v = cJSON_CreateString(t);
	free(t);
	return v;
}

/* obj[name] as a string of at most max bytes, or removed when it is no string. */
static void hold_text(cJSON *obj, const char *name, size_t max, cJSON *notes, const char *what)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	int cut = 0;
	cJSON *t;

	if (!v)
		return;
	if (!cJSON_IsString(v)) {
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
		return;
	}
	if (strlen(v->valuestring) <= max)
		return;
	t = cut_text(v->valuestring, max, &cut);
	if (t)
		cJSON_ReplaceItemInObjectCaseSensitive(obj, name, t);
	else
		cJSON_DeleteItemFromObjectCaseSensitive(obj, name);
	note(notes, "%s was cut at %zu bytes", what, max);
}

/* Keep only the named members of obj. */
static void keep_only(cJSON *obj, const char *const *names, size_t n)
{
	cJSON *c = obj->child, *next;

	for (; c; c = next) {
		size_t i;

		next = c->next;
		for (i = 0; i < n && (!c->string || strcmp(c->string, names[i]) != 0); i++)
			;
		if (i == n)
			cJSON_Delete(cJSON_DetachItemViaPointer(obj, c));
	}
}

/* obj[name] as an array of at most max objects (created when missing or not an array). */
static cJSON *hold_list(cJSON *r, const char *name, long long max, cJSON *notes)
{
	cJSON *a = cJSON_GetObjectItemCaseSensitive(r, name), *c, *next;
	int n = 0, dropped = 0;

	if (!cJSON_IsArray(a)) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, name);
		a = cJSON_AddArrayToObject(r, name);
		return a;
	}
	for (c = a->child; c; c = next) {
		next = c->next;
		if (!cJSON_IsObject(c) || n >= max) {
			dropped += cJSON_IsObject(c);
			cJSON_Delete(cJSON_DetachItemViaPointer(a, c));
			continue;
		}
		n++;
	}
	if (dropped)
		note(notes, "%d more %s past the limit of %lld per run were left out", dropped,
		     name, max);
	return a;
}

static void hold_error(cJSON *r, cJSON *notes)
{
	static const char *const names[] = {"type", "message", "traceback"};
	cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

	if (!e || cJSON_IsNull(e))
		return;
	if (!cJSON_IsObject(e) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "type"))) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, "error");
		e = cJSON_AddObjectToObject(r, "error");
		cJSON_AddStringToObject(e, "type", "SandboxError");
		cJSON_AddStringToObject(e, "message",
		                        "the sandbox sent an error of no known shape");
		cJSON_AddStringToObject(e, "traceback", "");
		return;
	}
	keep_only(e, names, 3);
	hold_text(e, "type", 200, notes, "the error's type");
	hold_text(e, "message", TEXT_MAX, notes, "the error's message");
	hold_text(e, "traceback", TEXT_MAX, notes, "the traceback");
}

static void hold_value(cJSON *r, const sbx_limits *L, cJSON *notes)
{
	static const char *const names[] = {"type", "text"};
	cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "value");

	if (!v || cJSON_IsNull(v))
		return;
	if (!cJSON_IsObject(v) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(v, "text"))) {
		cJSON_ReplaceItemInObjectCaseSensitive(r, "value", cJSON_CreateNull());
		return;
	}
	keep_only(v, names, 2);
	hold_text(v, "type", 200, notes, "the value's type");
	hold_text(v, "text", (size_t)L->value_bytes, notes, "the value");
}

/* An array member cut to max items; 1 when it was cut. */
static int cut_array(cJSON *a, long long max)
{
	int cut = 0;

	while (cJSON_IsArray(a) && cJSON_GetArraySize(a) > max) {
		cJSON_DeleteItemFromArray(a, cJSON_GetArraySize(a) - 1);
		cut = 1;
	}
	return cut;
}

static void hold_tables(cJSON *r, const sbx_limits *L, cJSON *notes)
{
	cJSON *a = hold_list(r, "tables", L->max_items, notes), *t;

	cJSON_ArrayForEach(t, a)
	{
		cJSON *rows = cJSON_GetObjectItemCaseSensitive(t, "rows"), *row, *cell;
		int cut = 0;

		if (!cJSON_IsArray(rows)) {
			cJSON_DeleteItemFromObjectCaseSensitive(t, "rows");
			rows = cJSON_AddArrayToObject(t, "rows");
		}
		cut |= cut_array(rows, L->table_rows);
		cut |= cut_array(cJSON_GetObjectItemCaseSensitive(t, "columns"), L->table_cols);
		cut |= cut_array(cJSON_GetObjectItemCaseSensitive(t, "dtypes"), L->table_cols);
		cJSON_ArrayForEach(row, rows)
		{
			if (!cJSON_IsArray(row))
				continue;
			cut |= cut_array(row, L->table_cols);
			cJSON_ArrayForEach(cell, row)
			{
				cJSON *c;
				int c_cut = 0;

				if (!cJSON_IsString(cell) || strlen(cell->valuestring) <= CELL_MAX)
					continue;
				c = cut_text(cell->valuestring, CELL_MAX, &c_cut);
				if (c) {
					cJSON_ReplaceItemViaPointer(row, cell, c);
					cell = c;
				}
				cut = 1;
			}
		}
		if (cut) {
			cJSON_DeleteItemFromObjectCaseSensitive(t, "truncated");
			cJSON_AddBoolToObject(t, "truncated", 1);
		}
	}
}

static void hold_figures(cJSON *r, const sbx_limits *L, cJSON *notes)
{
	cJSON *a = hold_list(r, "figures", L->max_items, notes), *f, *next;

	for (f = a->child; f; f = next) {
		char *text;
		size_t n;

		next = f->next;
		if (cJSON_GetObjectItemCaseSensitive(f, "skipped"))
			continue;
		text = cJSON_PrintUnformatted(f);
		n = text ? strlen(text) : 0;
		free(text);
		if (text && n <= (size_t)L->figure_bytes)
			continue;
		{
			cJSON *s = cJSON_CreateObject();
			char why[120];

			snprintf(why, sizeof(why), "larger than %lld bytes", L->figure_bytes);
			cJSON_AddStringToObject(s, "skipped", why);
			cJSON_ReplaceItemViaPointer(a, f, s);
			note(notes, "a figure of %zu bytes is over the limit of %lld", n,
			     L->figure_bytes);
		}
	}
}

/* The bytes of item's data_b64; -1 when it has none or it is not base64. */
static long long b64_bytes(const cJSON *item)
{
	const char *d = mk_json_str(item, "data_b64");
	size_t len;

	if (!d)
		return -1;
	len = strlen(d);
	if (len % 4 != 0 || strspn(d, B64_ALPHABET) != len)
		return -1;
	return (long long)mk_b64_decoded_len(d, len);
}

void sbx_result_skip(cJSON *item, long long bytes, const char *why)
{
	cJSON_DeleteItemFromObjectCaseSensitive(item, "data_b64");
	cJSON_DeleteItemFromObjectCaseSensitive(item, "bytes");
	cJSON_DeleteItemFromObjectCaseSensitive(item, "skipped");
	if (bytes >= 0)
		cJSON_AddNumberToObject(item, "bytes", (double)bytes);
	cJSON_AddStringToObject(item, "skipped", why);
}

static void hold_images(cJSON *r, const sbx_limits *L, cJSON *notes)
{
	static const char *const names[] = {"format", "bytes", "data_b64", "skipped"};
	cJSON *a = hold_list(r, "images", L->max_items, notes), *im;

	cJSON_ArrayForEach(im, a)
	{
		long long n = b64_bytes(im);
		char why[120];

		keep_only(im, names, 4);
		cJSON_DeleteItemFromObjectCaseSensitive(im, "format");
		cJSON_AddStringToObject(im, "format", "png");
		if (n < 0) {
			sbx_result_skip(im, -1, "not base64");
		} else if (n > L->image_bytes) {
			snprintf(why, sizeof(why), "larger than %lld bytes", L->image_bytes);
			sbx_result_skip(im, n, why);
			note(notes, "an image of %lld bytes is over the limit of %lld", n,
			     L->image_bytes);
		} else {
			cJSON_DeleteItemFromObjectCaseSensitive(im, "bytes");
			cJSON_DeleteItemFromObjectCaseSensitive(im, "skipped");
			cJSON_AddNumberToObject(im, "bytes", (double)n);
		}
	}
}

static void hold_artifacts(cJSON *r, const sbx_limits *L, cJSON *notes)
{
	static const char *const names[] = {"path", "bytes", "data_b64", "skipped"};
	cJSON *a = hold_list(r, "artifacts", L->max_items, notes), *f, *next;
	long long total = 0;

	for (f = a->child; f; f = next) {
		long long n = b64_bytes(f);
		const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(f, "bytes");
		long long said = cJSON_IsNumber(bytes) ? (long long)bytes->valuedouble : -1;
		char why[120];

		next = f->next;
		keep_only(f, names, 4);
		hold_text(f, "path", 1024, notes, "an artifact's path");
		if (!mk_json_str(f, "path")) {
			cJSON_Delete(cJSON_DetachItemViaPointer(a, f));
			continue;
		}
		if (n < 0) {
			if (!cJSON_GetObjectItemCaseSensitive(f, "data_b64") &&
			    mk_json_str(f, "skipped")) {
				hold_text(f, "skipped", 200, notes, "an artifact's reason");
				continue; /* skipped by the driver already */
			}
			sbx_result_skip(f, said, "not base64");
		} else if (n > L->artifact_bytes) {
			snprintf(why, sizeof(why), "larger than %lld bytes", L->artifact_bytes);
			sbx_result_skip(f, n, why);
			note(notes, "%s: %lld bytes is over the limit of %lld",
			     mk_json_str(f, "path"), n, L->artifact_bytes);
		} else if (total + n > L->artifacts_total) {
			snprintf(why, sizeof(why), "over the %lld-byte total of one run",
			         L->artifacts_total);
			sbx_result_skip(f, n, why);
			note(notes, "%s: over the %lld-byte total of a run's files",
			     mk_json_str(f, "path"), L->artifacts_total);
		} else {
			total += n;
			cJSON_DeleteItemFromObjectCaseSensitive(f, "bytes");
			cJSON_DeleteItemFromObjectCaseSensitive(f, "skipped");
			cJSON_AddNumberToObject(f, "bytes", (double)n);
		}
	}
}

void sbx_result_enforce(cJSON *r, const sbx_limits *L)
{
	static const char *const names[] = {"error",  "value",     "tables", "figures",
	                                    "images", "artifacts", "limit",  "dropped"};
	static const char *const kinds[] = {"tables", "figures", "images", "artifacts"};
	cJSON *notes = cJSON_CreateArray(), *limit, *dropped, *c;
	size_t i;

	if (!r || !notes) {
		cJSON_Delete(notes);
		return;
	}
	keep_only(r, names, sizeof(names) / sizeof(names[0]));
	hold_error(r, notes);
	hold_value(r, L, notes);
	hold_tables(r, L, notes);
	hold_figures(r, L, notes);
	hold_images(r, L, notes);
	hold_artifacts(r, L, notes);
	limit = cJSON_GetObjectItemCaseSensitive(r, "limit");
	for (i = 0; cJSON_IsString(limit) && i < sizeof(driver_limits) / sizeof(driver_limits[0]);
	     i++)
		if (strcmp(limit->valuestring, driver_limits[i]) == 0)
			break;
	if (limit &&
	    (!cJSON_IsString(limit) || i == sizeof(driver_limits) / sizeof(driver_limits[0])))
		cJSON_DeleteItemFromObjectCaseSensitive(r, "limit");
	/* What the driver itself left out, per kind: counts only. */
	dropped = cJSON_GetObjectItemCaseSensitive(r, "dropped");
	if (dropped && !cJSON_IsObject(dropped)) {
		cJSON_DeleteItemFromObjectCaseSensitive(r, "dropped");
	} else if (dropped) {
		int bad = 0;

		keep_only(dropped, kinds, 4);
		cJSON_ArrayForEach(c, dropped)
		{
			bad |= !cJSON_IsNumber(c);
		}
		if (bad)
			cJSON_DeleteItemFromObjectCaseSensitive(r, "dropped");
	}
	if (cJSON_GetArraySize(notes) > 0)
		cJSON_AddItemToObject(r, "notes", notes);
	else
		cJSON_Delete(notes);
}

/* ---- the host's fields ------------------------------------------------------ */

static void obj_set(cJSON *o, const char *name, cJSON *v)
{
	cJSON_DeleteItemFromObjectCaseSensitive(o, name);
	cJSON_AddItemToObject(o, name, v);
}

static void obj_default(cJSON *o, const char *name, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(o, name))
		cJSON_Delete(v);
	else
		cJSON_AddItemToObject(o, name, v);
}

cJSON *sbx_result_finish(cJSON *r, const sbx_stream *out, const sbx_stream *err, long long ms,
                         const char *limit, int lost)
{
	int cut;

	if (!r)
		return NULL;
	obj_default(r, "error", cJSON_CreateNull());
	obj_default(r, "value", cJSON_CreateNull());
	obj_default(r, "tables", cJSON_CreateArray());
	obj_default(r, "figures", cJSON_CreateArray());
	obj_default(r, "images", cJSON_CreateArray());
	obj_default(r, "artifacts", cJSON_CreateArray());
	obj_set(r, "stdout", sbx_stream_json(out, &cut));
	obj_set(r, "stdout_truncated", cJSON_CreateBool(cut));
	obj_set(r, "stderr", sbx_stream_json(err, &cut));
	obj_set(r, "stderr_truncated", cJSON_CreateBool(cut));
	obj_set(r, "duration_ms", cJSON_CreateNumber((double)ms));
	if (limit)
		obj_set(r, "limit", cJSON_CreateString(limit));
	else if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "limit")))
		obj_set(r, "limit", cJSON_CreateNull());
	obj_set(r, "session_lost", cJSON_CreateBool(lost));
	return r;
}

cJSON *sbx_result_host(const char *type, const char *msg, const sbx_stream *out,
                       const sbx_stream *err, long long ms, const char *limit, int lost)
{
	cJSON *r = cJSON_CreateObject(), *e = cJSON_CreateObject();

	if (!r || !e) {
		cJSON_Delete(r);
		cJSON_Delete(e);
		return NULL;
	}
	cJSON_AddStringToObject(e, "type", type);
	cJSON_AddStringToObject(e, "message", msg);
	cJSON_AddStringToObject(e, "traceback", "");
	cJSON_AddItemToObject(r, "error", e);
	return sbx_result_finish(r, out, err, ms, limit, lost);
}

const char *sbx_result_stop_text(const char *limit, long long timeout_ms, const sbx_limits *L,
                                 char *msg, size_t len)
{
	if (strcmp(limit, "output") == 0) {
		snprintf(
		    msg, len,
		    "the code wrote more than %lld bytes of output and was stopped; the session "
		    "was reset",
		    L->output_kill_bytes);
		return "OutputLimitError";
	}
	snprintf(msg, len,
	         "the code ran longer than %lld ms and was stopped; the session was reset",
	         timeout_ms);
	return "TimeoutError";
}
