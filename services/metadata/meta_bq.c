/*
 * meta_bq.c - the BigQuery warehouse driver: REST API v2 over libcurl.
 *
 * Structure: datasets.list (or the configured datasets), tables.list per
 * dataset (every page) and tables.get per table for what a list leaves
 * out: schema (nested RECORD fields become dotted columns), description,
 * row count, bytes, partitioning, clustering and labels.
 *
 * A query: a dry run first, refused when it is not a SELECT or when its
 * estimate is above METADATA_BIGQUERY_MAX_BYTES_BILLED (the message names
 * both numbers); then jobs.query with useLegacySql false, that cap as
 * maximumBytesBilled, a server-side job timeout and a request id (so a
 * retried POST runs one job); jobs.getQueryResults until the job is
 * complete (passing its location) and for each further page until the row
 * or byte cap. A query still running at the deadline is cancelled.
 * Cells are decoded by walking the schema with each row (RECORD as
 * objects, REPEATED as arrays); INT64 and NUMERIC values a double cannot
 * hold stay strings; TIMESTAMP comes as integer microseconds and becomes
 * ISO 8601 UTC text.
 *
 * Errors are classified by their reason, not their HTTP status: a 401
 * (authError) refreshes the token and retries once; rateLimitExceeded
 * (a 403), backendError, internalError, other 5xx and network errors are
 * retried with exponential backoff and jitter within the deadline; the
 * rest fail at once with BigQuery's own message.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "metadata.h"
#include "mk_buf.h"
#include "mk_httpc.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

#define BQ_SCOPE        "https://www.googleapis.com/auth/bigquery"
#define ATTEMPTS        5
#define CALL_TIMEOUT_MS 60000
#define SYNC_TIMEOUT_MS (15 * 60 * 1000)
/* Rows one result page holds at most (BigQuery also caps a page at ~10 MB). */
#define PAGE_ROWS  10000
#define JSON_DEPTH 128

typedef struct {
	meta_gauth *auth;
	char api[512];
	char location[64];
	long long max_bytes_billed;
	char *datasets; /* comma-separated, or NULL */
	pthread_mutex_t lock;
	char *project; /* resolved on first use when not configured */
} bq_wh;

/* An API error: HTTP status, the first error's reason, the message. */
typedef struct {
	long status;
	char reason[64];
	char message[512];
} bq_fail;

void *meta_bq_new(const metadata_config *cfg, char *err, size_t errlen)
{
	bq_wh *w = calloc(1, sizeof(*w));
	size_t n;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&w->lock, NULL);
	snprintf(w->api, sizeof(w->api), "%s", cfg->bq_api_url);
	n = strlen(w->api);
	while (n > 0 && w->api[n - 1] == '/')
		w->api[--n] = '\0';
	snprintf(w->location, sizeof(w->location), "%s", cfg->bq_location ? cfg->bq_location : "");
	w->max_bytes_billed = cfg->bq_max_bytes_billed;
	if (cfg->bq_datasets && *cfg->bq_datasets)
		w->datasets = strdup(cfg->bq_datasets);
	if (!(w->auth = meta_gauth_new(cfg->bq_key_file, cfg->gce_metadata_host, BQ_SCOPE, err,
	                               errlen))) {
		meta_bq_ops.free(w);
		return NULL;
	}
	if (cfg->bq_project && *cfg->bq_project)
		w->project = strdup(cfg->bq_project);
	else if (meta_gauth_key_project(w->auth))
		w->project = strdup(meta_gauth_key_project(w->auth));
	return w;
}

static void bq_free(void *p)
{
	bq_wh *w = p;

	if (!w)
		return;
	meta_gauth_free(w->auth);
	free(w->datasets);
	free(w->project);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* The project id into out: configured, the key's, or the metadata server's. 0, or -1. */
static int project_of(bq_wh *w, int64_t deadline, char *out, size_t outlen, char *err,
                      size_t errlen)
{
	pthread_mutex_lock(&w->lock);
	if (!w->project)
		w->project = meta_gauth_md_project(w->auth, deadline, err, errlen);
	if (w->project)
		snprintf(out, outlen, "%s", w->project);
	pthread_mutex_unlock(&w->lock);
	return w->project ? 0 : -1;
}

/* Append s percent-escaped as one path segment or query value. */
static void esc(mk_buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
			mk_buf_append(b, s, 1);
		else
			mk_buf_printf(b, "%%%02X", c);
	}
}

/* ------------------------------------------------------------------ calls */

static int is_reason(const bq_fail *f, const char *r)
{
	return strcmp(f->reason, r) == 0;
}

static int retryable(const bq_fail *f)
{
	if (is_reason(f, "rateLimitExceeded") || is_reason(f, "backendError") ||
	    is_reason(f, "internalError"))
		return 1;
	/* A 5xx with no reason (a proxy's page) is transient; a named one is not. */
	return f->status >= 500 && !f->reason[0];
}

/* The reply's error for a failure that is not retried (or ran out of tries). */
static mk_err classify(const bq_fail *f)
{
	if (is_reason(f, "invalidQuery") || is_reason(f, "invalid") || is_reason(f, "notFound") ||
	    is_reason(f, "bytesBilledLimitExceeded") || is_reason(f, "responseTooLarge") ||
	    is_reason(f, "resourcesExceeded") || is_reason(f, "billingTierLimitExceeded"))
		return MK_E_VALIDATION;
	if (is_reason(f, "accessDenied"))
		return MK_E_FORBIDDEN;
	if (is_reason(f, "rateLimitExceeded") || is_reason(f, "quotaExceeded"))
		return MK_E_RATE_LIMITED;
	if (f->status == 400 || f->status == 404)
		return MK_E_VALIDATION;
	return MK_E_UNAVAILABLE;
}

/* Read a non-2xx reply into f. */
static void read_fail(const mk_httpc_resp *r, bq_fail *f)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
	const cJSON *e = cJSON_GetObjectItem(j, "error");
	const char *reason =
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "errors"), 0), "reason");
	const char *msg = mk_json_str(e, "message");

	f->status = r->http_status;
	snprintf(f->reason, sizeof(f->reason), "%s", reason ? reason : "");
	if (msg && *msg)
		snprintf(f->message, sizeof(f->message), "%s", msg);
	else
		snprintf(f->message, sizeof(f->message), "BigQuery answered HTTP %ld%s",
		         r->http_status, cJSON_IsObject(e) ? "" : " without an error description");
	cJSON_Delete(j);
}

/* Sleep before retry n (0-based): 250 ms doubling to 8 s, with jitter, never past deadline. */
static void backoff(int n, int64_t deadline)
{
	long long ms = 250LL << (n < 5 ? n : 5);
	unsigned int r = 0;
	struct timespec ts;

	if (ms > 8000)
		ms = 8000;
	if (getrandom(&r, sizeof(r), 0) == sizeof(r))
		ms = ms / 2 + (long long)(r % (unsigned)(ms / 2 + 1));
	if (deadline && mk_mono_ms() + ms > deadline)
		ms = deadline - mk_mono_ms();
	if (ms <= 0)
		return;
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	nanosleep(&ts, NULL);
}

/*
 * One API call (path relative to the API root; body NULL for a GET). On
 * MK_OK *out is the parsed reply. Otherwise err holds the message and f
 * (when not NULL) the last failure.
 */
static mk_err bq_call(bq_wh *w, const char *method, const char *path, const cJSON *body,
                      int64_t deadline, cJSON **out, bq_fail *f, char *err, size_t errlen)
{
	char tok[4200], auth[4300], url[4096], stale[4200] = "";
	const char *hdrs[] = {auth, "Content-Type: application/json", "Accept: application/json",
	                      NULL};
	char *text = body ? cJSON_PrintUnformatted(body) : NULL;
	bq_fail last = {0, "", ""};
	int attempt, refreshed = 0, tries = 0;
	mk_err e = MK_E_UNAVAILABLE;

	*out = NULL;
	if (body && !text) {
		snprintf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	snprintf(url, sizeof(url), "%s/%s", w->api, path);
	for (attempt = 0; attempt < ATTEMPTS + 1; attempt++) {
		int64_t left = deadline - mk_mono_ms();
		mk_httpc_resp r;
		mk_httpc_req q;

		if (left <= 0) {
			snprintf(err, errlen, "BigQuery did not answer in time%s%s",
			         last.message[0] ? ": " : "", last.message);
			e = MK_E_DEADLINE;
			break;
		}
		if (meta_gauth_token(w->auth, stale[0] ? stale : NULL, deadline, tok, sizeof(tok),
		                     err, errlen) != 0) {
			e = MK_E_UNAVAILABLE;
			break;
		}
		stale[0] = '\0';
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		memset(&q, 0, sizeof(q));
		q.method = method;
		q.url = url;
		q.headers = hdrs;
		q.body = text;
		q.body_len = text ? strlen(text) : 0;
		q.connect_timeout_ms = 10000;
		q.total_timeout_ms = (int)(left < CALL_TIMEOUT_MS ? left : CALL_TIMEOUT_MS);
		q.max_response = 64 * 1024 * 1024;
		q.deadline_mono_ms = deadline;
		mk_httpc_do(&q, &r);
		if (r.status == MK_HTTPC_OK && r.http_status >= 200 && r.http_status < 300) {
			char jerr[128];

			*out = mk_json_parse(r.body.data ? r.body.data : "", r.body.len, JSON_DEPTH,
			                     jerr, sizeof(jerr));
			mk_httpc_resp_release(&r);
			if (*out) {
				e = MK_OK;
			} else {
				snprintf(err, errlen, "BigQuery answered with malformed JSON: %s",
				         jerr);
				e = MK_E_UNAVAILABLE;
			}
			break;
		}
		if (r.status != MK_HTTPC_OK) {
			last.status = 0;
			last.reason[0] = '\0';
			snprintf(last.message, sizeof(last.message), "BigQuery is unreachable: %s",
			         r.error);
		} else {
			read_fail(&r, &last);
		}
		mk_httpc_resp_release(&r);
		if ((last.status == 401 || is_reason(&last, "authError")) && !refreshed) {
			/* An expired or revoked token: a new one, and one more try. */
			refreshed = 1;
			snprintf(stale, sizeof(stale), "%s", tok);
			continue;
		}
		if ((last.status == 0 || retryable(&last)) && tries < ATTEMPTS - 1) {
			backoff(tries++, deadline);
			continue;
		}
		snprintf(err, errlen, "%s", last.message);
		e = last.status == 0 ? MK_E_UNAVAILABLE : classify(&last);
		break;
	}
	if (attempt == ATTEMPTS + 1) {
		snprintf(err, errlen, "%s", last.message);
		e = classify(&last);
	}
	if (f)
		*f = last;
	free(text);
	return e;
}

/* GET every page of a list (path without query) and append the items under key to into. */
static mk_err list_all(bq_wh *w, const char *path, const char *key, int64_t deadline, cJSON *into,
                       bq_fail *f, char *err, size_t errlen)
{
	char *token = NULL;
	mk_err e = MK_OK;

	do {
		cJSON *page = NULL, *items, *it;
		const char *next;
		mk_buf p;

		mk_buf_init(&p, 0);
		mk_buf_printf(&p, "%s?maxResults=1000&prettyPrint=false", path);
		if (token) {
			mk_buf_puts(&p, "&pageToken=");
			esc(&p, token);
		}
		e = bq_call(w, "GET", p.data, NULL, deadline, &page, f, err, errlen);
		mk_buf_release(&p);
		free(token);
		token = NULL;
		if (e != MK_OK)
			break;
		items = cJSON_GetObjectItem(page, key); /* absent when empty */
		while (items && (it = items->child)) {
			cJSON_DetachItemViaPointer(items, it);
			cJSON_AddItemToArray(into, it);
		}
		next = mk_json_str(page, "nextPageToken");
		if (next && *next && !(token = strdup(next))) {
			snprintf(err, errlen, "out of memory");
			e = MK_E_INTERNAL;
		}
		cJSON_Delete(page);
	} while (token);
	return e;
}

/* ------------------------------------------------------------------ snapshot */

/* A JSON member holding an int64 string (or number) as a number; NULL when absent. */
static cJSON *int64_num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItem(o, k);

	if (cJSON_IsString(v))
		return cJSON_CreateNumber((double)strtoll(v->valuestring, NULL, 10));
	if (cJSON_IsNumber(v))
		return cJSON_CreateNumber(v->valuedouble);
	return cJSON_CreateNull();
}

static void add_str_or_null(cJSON *o, const char *k, const char *v)
{
	if (v && *v)
		cJSON_AddStringToObject(o, k, v);
	else
		cJSON_AddNullToObject(o, k);
}

/* "DAY on order_date", "integer range on n", ... or NULL. */
static void partitioning(const cJSON *t, cJSON *o)
{
	const cJSON *tp = cJSON_GetObjectItem(t, "timePartitioning");
	const cJSON *rp = cJSON_GetObjectItem(t, "rangePartitioning");
	int required = 0;
	char buf[256] = "";

	mk_json_bool(t, "requirePartitionFilter", &required);
	if (cJSON_IsObject(tp)) {
		const char *f = mk_json_str(tp, "field");

		snprintf(buf, sizeof(buf), "%s on %s",
		         mk_json_str(tp, "type") ? mk_json_str(tp, "type") : "DAY",
		         f && *f ? f : "_PARTITIONTIME (ingestion time)");
		if (!required)
			mk_json_bool(tp, "requirePartitionFilter", &required);
	} else if (cJSON_IsObject(rp)) {
		snprintf(buf, sizeof(buf), "integer range on %s",
		         mk_json_str(rp, "field") ? mk_json_str(rp, "field") : "?");
	}
	if (buf[0] && required)
		snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf),
		         "; queries must filter on it");
	add_str_or_null(o, "partitioning", buf);
}

static void clustering(const cJSON *t, cJSON *o)
{
	const cJSON *f;
	mk_buf b;

	mk_buf_init(&b, 0);
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(cJSON_GetObjectItem(t, "clustering"), "fields"))
	{
		if (cJSON_IsString(f))
			mk_buf_printf(&b, "%s%s", b.len ? ", " : "", f->valuestring);
	}
	add_str_or_null(o, "clustering", b.data);
	mk_buf_release(&b);
}

/* Each field of fields (and, depth first, its nested fields) as a column. */
static void add_fields(cJSON *cols, const char *ds, const char *table, const cJSON *fields,
                       const char *prefix, int *pos)
{
	const cJSON *f;

	cJSON_ArrayForEach(f, fields)
	{
		const char *name = mk_json_str(f, "name"), *type = mk_json_str(f, "type");
		const char *mode = mk_json_str(f, "mode");
		cJSON *c;
		mk_buf path, t;

		if (!name || !type)
			continue;
		if (!mode || !*mode)
			mode = "NULLABLE";
		mk_buf_init(&path, 0);
		mk_buf_init(&t, 0);
		mk_buf_printf(&path, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", name);
		if (strcmp(mode, "REPEATED") == 0)
			mk_buf_printf(&t, "ARRAY<%s>", type);
		else
			mk_buf_puts(&t, type);
		c = cJSON_CreateObject();
		cJSON_AddStringToObject(c, "schema_name", ds);
		cJSON_AddStringToObject(c, "table_name", table);
		cJSON_AddNumberToObject(c, "position", ++*pos);
		cJSON_AddStringToObject(c, "name", path.data);
		cJSON_AddStringToObject(c, "type", t.data);
		cJSON_AddStringToObject(c, "mode", mode);
		cJSON_AddBoolToObject(c, "nullable", strcmp(mode, "REQUIRED") != 0);
		add_str_or_null(c, "description", mk_json_str(f, "description"));
		cJSON_AddItemToArray(cols, c);
		if (cJSON_GetArraySize(cJSON_GetObjectItem(f, "fields")) > 0)
			add_fields(cols, ds, table, cJSON_GetObjectItem(f, "fields"), path.data,
			           pos);
		mk_buf_release(&path);
		mk_buf_release(&t);
	}
}

/* tables.get of one table into the snapshot's arrays. */
static mk_err snap_table(bq_wh *w, const char *project, const char *ds, const char *table,
                         int64_t deadline, cJSON *tables, cJSON *cols, bq_fail *f, char *err,
                         size_t errlen)
{
	cJSON *t = NULL, *o, *labels;
	mk_buf p;
	mk_err e;
	int pos = 0;

	mk_buf_init(&p, 0);
	mk_buf_puts(&p, "projects/");
	esc(&p, project);
	mk_buf_puts(&p, "/datasets/");
	esc(&p, ds);
	mk_buf_puts(&p, "/tables/");
	esc(&p, table);
	mk_buf_puts(&p, "?prettyPrint=false");
	e = bq_call(w, "GET", p.data, NULL, deadline, &t, f, err, errlen);
	mk_buf_release(&p);
	if (e != MK_OK)
		return e;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "schema_name", ds);
	cJSON_AddStringToObject(o, "name", table);
	add_str_or_null(o, "description", mk_json_str(t, "description"));
	cJSON_AddItemToObject(o, "row_count", int64_num(t, "numRows"));
	cJSON_AddItemToObject(o, "bytes", int64_num(t, "numBytes"));
	add_str_or_null(o, "kind", mk_json_str(t, "type"));
	partitioning(t, o);
	clustering(t, o);
	labels = cJSON_GetObjectItem(t, "labels");
	cJSON_AddItemToObject(
	    o, "labels", cJSON_IsObject(labels) ? cJSON_Duplicate(labels, 1) : cJSON_CreateNull());
	cJSON_AddItemToArray(tables, o);
	add_fields(cols, ds, table, cJSON_GetObjectItem(cJSON_GetObjectItem(t, "schema"), "fields"),
	           NULL, &pos);
	cJSON_Delete(t);
	return MK_OK;
}

/* The datasets to read: configured, or every one datasets.list shows. */
static mk_err dataset_ids(bq_wh *w, const char *project, int64_t deadline, cJSON *ids, char *err,
                          size_t errlen)
{
	cJSON *all, *d;
	mk_buf p;
	mk_err e;

	if (w->datasets) {
		char *copy = strdup(w->datasets), *save = NULL, *tok;

		if (!copy) {
			snprintf(err, errlen, "out of memory");
			return MK_E_INTERNAL;
		}
		for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
			cJSON_AddItemToArray(ids, cJSON_CreateString(tok));
		free(copy);
		return MK_OK;
	}
	all = cJSON_CreateArray();
	mk_buf_init(&p, 0);
	mk_buf_puts(&p, "projects/");
	esc(&p, project);
	mk_buf_puts(&p, "/datasets");
	e = list_all(w, p.data, "datasets", deadline, all, NULL, err, errlen);
	mk_buf_release(&p);
	cJSON_ArrayForEach(d, all)
	{
		const char *id =
		    mk_json_str(cJSON_GetObjectItem(d, "datasetReference"), "datasetId");

		if (id)
			cJSON_AddItemToArray(ids, cJSON_CreateString(id));
	}
	cJSON_Delete(all);
	return e;
}

/*
 * A dataset or table that vanished since it was listed, or that the
 * account may not read, is left out of the sync (with a warning) rather
 * than failing it.
 */
static int skippable(const bq_fail *f, const char *what, const char *name, const char *err)
{
	if (!is_reason(f, "notFound") && !is_reason(f, "accessDenied"))
		return 0;
	MK_WARN("META-BQ-SKIP", NULL, "BigQuery %s %s is left out of the catalog: %s", what, name,
	        err);
	return 1;
}

static int bq_snapshot(void *p, char **tables_out, char **cols_out, char *err, size_t errlen)
{
	bq_wh *w = p;
	int64_t deadline = mk_mono_ms() + SYNC_TIMEOUT_MS;
	cJSON *ids = cJSON_CreateArray(), *tables = cJSON_CreateArray(),
	      *cols = cJSON_CreateArray();
	const cJSON *ds;
	char project[256];
	bq_fail f = {0, "", ""};
	mk_err e = MK_OK;

	if (project_of(w, deadline, project, sizeof(project), err, errlen) != 0)
		e = MK_E_UNAVAILABLE;
	if (e == MK_OK)
		e = dataset_ids(w, project, deadline, ids, err, errlen);
	cJSON_ArrayForEach(ds, ids)
	{
		cJSON *list = cJSON_CreateArray();
		const cJSON *t;
		mk_buf path;

		if (e != MK_OK) {
			cJSON_Delete(list);
			break;
		}
		mk_buf_init(&path, 0);
		mk_buf_puts(&path, "projects/");
		esc(&path, project);
		mk_buf_puts(&path, "/datasets/");
		esc(&path, ds->valuestring);
		mk_buf_puts(&path, "/tables");
		e = list_all(w, path.data, "tables", deadline, list, &f, err, errlen);
		mk_buf_release(&path);
		if (e != MK_OK && skippable(&f, "dataset", ds->valuestring, err)) {
			e = MK_OK;
			cJSON_Delete(list);
			continue;
		}
		cJSON_ArrayForEach(t, list)
		{
			const char *id =
			    mk_json_str(cJSON_GetObjectItem(t, "tableReference"), "tableId");

			if (e != MK_OK)
				break;
			if (id)
				e = snap_table(w, project, ds->valuestring, id, deadline, tables,
				               cols, &f, err, errlen);
			if (e != MK_OK && skippable(&f, "table", id, err))
				e = MK_OK;
		}
		cJSON_Delete(list);
	}
	cJSON_Delete(ids);
	if (e == MK_OK) {
		*tables_out = cJSON_PrintUnformatted(tables);
		*cols_out = cJSON_PrintUnformatted(cols);
		if (!*tables_out || !*cols_out) {
			free(*tables_out);
			free(*cols_out);
			snprintf(err, errlen, "out of memory");
			e = MK_E_INTERNAL;
		}
	}
	cJSON_Delete(tables);
	cJSON_Delete(cols);
	return e == MK_OK ? 0 : -1;
}

/* ------------------------------------------------------------------ cells */

/* Microseconds since the epoch as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z". */
static cJSON *iso_timestamp(long long us)
{
	time_t secs = (time_t)(us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000));
	long frac = (long)(us - (long long)secs * 1000000);
	char buf[64], *p;
	struct tm tm;

	if (!gmtime_r(&secs, &tm))
		return cJSON_CreateNull();
	p = buf + strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	if (frac)
		p += snprintf(p, 16, ".%06ld", frac);
	snprintf(p, 2, "Z");
	return cJSON_CreateString(buf);
}

static cJSON *scalar(const char *type, const char *v)
{
	if (!strcmp(type, "INTEGER") || !strcmp(type, "INT64") || !strcmp(type, "NUMERIC") ||
	    !strcmp(type, "BIGNUMERIC"))
		return meta_exact_decimal(v) ? cJSON_CreateNumber(strtod(v, NULL))
		                             : cJSON_CreateString(v);
	if (!strcmp(type, "FLOAT") || !strcmp(type, "FLOAT64")) {
		char *end;
		double d;

		errno = 0;
		d = strtod(v, &end);
		return *end || errno || !isfinite(d) ? cJSON_CreateString(v)
		                                     : cJSON_CreateNumber(d);
	}
	if (!strcmp(type, "BOOLEAN") || !strcmp(type, "BOOL"))
		return cJSON_CreateBool(strcmp(v, "true") == 0);
	if (!strcmp(type, "TIMESTAMP")) {
		/* Integer microseconds (useInt64Timestamp), or float seconds in E-notation. */
		if (strpbrk(v, ".eE"))
			return iso_timestamp(llround(strtod(v, NULL) * 1e6));
		return iso_timestamp(strtoll(v, NULL, 10));
	}
	if (!strcmp(type, "JSON")) {
		cJSON *j = cJSON_Parse(v);

		return j ? j : cJSON_CreateString(v);
	}
	return cJSON_CreateString(v); /* STRING, BYTES (base64), DATE, TIME, DATETIME, ... */
}

/* One cell's v against its schema field; elem: v is an element of a REPEATED field. */
static cJSON *cell(const cJSON *field, const cJSON *v, int elem)
{
	const char *type = mk_json_str(field, "type"), *mode = mk_json_str(field, "mode");

	if (!type)
		type = "STRING";
	if (!elem && mode && strcmp(mode, "REPEATED") == 0) {
		cJSON *arr = cJSON_CreateArray();
		const cJSON *x;

		cJSON_ArrayForEach(x, v) /* [{"v": elem}, ...]; null or [] when empty */
		    cJSON_AddItemToArray(arr, cell(field, cJSON_GetObjectItem(x, "v"), 1));
		return arr;
	}
	if (!v || cJSON_IsNull(v))
		return cJSON_CreateNull();
	if (!strcmp(type, "RECORD") || !strcmp(type, "STRUCT")) {
		const cJSON *sub = cJSON_GetObjectItem(field, "fields"), *f, *x;
		cJSON *o = cJSON_CreateObject();

		x = cJSON_GetObjectItem(v, "f") ? cJSON_GetObjectItem(v, "f")->child : NULL;
		cJSON_ArrayForEach(f, sub)
		{
			cJSON_AddItemToObject(o,
			                      mk_json_str(f, "name") ? mk_json_str(f, "name") : "",
			                      cell(f, x ? cJSON_GetObjectItem(x, "v") : NULL, 0));
			x = x ? x->next : NULL;
		}
		return o;
	}
	if (!cJSON_IsString(v))
		return cJSON_Duplicate(v, 1);
	return scalar(type, v->valuestring);
}

/* Roughly the bytes v takes as JSON text: enough to stop reading pages past the reply's cap. */
static size_t approx_size(const cJSON *v)
{
	const cJSON *c;
	size_t n = 4;

	if (cJSON_IsString(v))
		return strnlen(v->valuestring, META_CELL_MAX_BYTES) + 3;
	cJSON_ArrayForEach(c, v) n += approx_size(c) + (c->string ? strlen(c->string) + 4 : 1);
	return n;
}

/* The wire's short type name of a result field (as the Postgres driver names them). */
static const char *short_type(const cJSON *field)
{
	static const char *const map[][2] = {
	    {"INTEGER", "int"},        {"INT64", "int"},
	    {"FLOAT", "float"},        {"FLOAT64", "float"},
	    {"NUMERIC", "numeric"},    {"BIGNUMERIC", "numeric"},
	    {"BOOLEAN", "bool"},       {"BOOL", "bool"},
	    {"STRING", "text"},        {"BYTES", "bytes"},
	    {"DATE", "date"},          {"TIME", "time"},
	    {"DATETIME", "timestamp"}, {"TIMESTAMP", "timestamptz"},
	    {"JSON", "json"},          {"RECORD", "record"},
	    {"STRUCT", "record"},      {"GEOGRAPHY", "text"},
	};
	const char *type = mk_json_str(field, "type"), *mode = mk_json_str(field, "mode");
	size_t i;

	if (mode && strcmp(mode, "REPEATED") == 0)
		return "array";
	for (i = 0; type && i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(type, map[i][0]) == 0)
			return map[i][1];
	return "other";
}

/* ------------------------------------------------------------------ query */

/* The request body shared by the dry run and the job. */
static cJSON *query_body(const bq_wh *w, const char *sql)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "query", sql);
	cJSON_AddBoolToObject(b, "useLegacySql", 0);
	if (w->location[0])
		cJSON_AddStringToObject(b, "location", w->location);
	return b;
}

static void human_bytes(long long n, char *buf, size_t len)
{
	static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
	double v = (double)n;
	int u = 0;

	while (v >= 1024 && u < 5) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lld bytes", n);
	else
		snprintf(buf, len, "%.1f %s (%lld bytes)", v, unit[u], n);
}

/*
 * The dry run, as a job (jobs.insert with dryRun): refuse what BigQuery
 * does not read as one SELECT (statistics.query.statementType; a SCRIPT of
 * several statements included), or what would scan more than the cap. The
 * guard's lexer is only a first filter: BigQuery's own reading decides.
 */
static mk_err dry_run(bq_wh *w, const char *project, const char *sql, int64_t deadline,
                      long long *bytes, char *err, size_t errlen)
{
	cJSON *body = cJSON_CreateObject(), *cfg, *qc, *ref, *r = NULL;
	const cJSON *stats;
	const char *stype;
	long long est = 0;
	mk_buf p;
	mk_err e;

	cfg = cJSON_AddObjectToObject(body, "configuration");
	cJSON_AddBoolToObject(cfg, "dryRun", 1);
	qc = cJSON_AddObjectToObject(cfg, "query");
	cJSON_AddStringToObject(qc, "query", sql);
	cJSON_AddBoolToObject(qc, "useLegacySql", 0);
	ref = cJSON_AddObjectToObject(body, "jobReference");
	cJSON_AddStringToObject(ref, "projectId", project);
	if (w->location[0])
		cJSON_AddStringToObject(ref, "location", w->location);
	mk_buf_init(&p, 0);
	mk_buf_puts(&p, "projects/");
	esc(&p, project);
	mk_buf_puts(&p, "/jobs?prettyPrint=false");
	e = bq_call(w, "POST", p.data, body, deadline, &r, NULL, err, errlen);
	mk_buf_release(&p);
	cJSON_Delete(body);
	if (e != MK_OK)
		return e;
	stats = cJSON_GetObjectItemCaseSensitive(r, "statistics");
	if (mk_json_str(stats, "totalBytesProcessed"))
		est = strtoll(mk_json_str(stats, "totalBytesProcessed"), NULL, 10);
	*bytes = est;
	stype = mk_json_str(cJSON_GetObjectItemCaseSensitive(stats, "query"), "statementType");
	if (!stype || strcmp(stype, "SELECT") != 0) {
		snprintf(err, errlen, "only SELECT queries are allowed; BigQuery reads this as %s",
		         stype ? stype : "an unknown kind of statement");
		e = MK_E_VALIDATION;
	} else if (est > w->max_bytes_billed) {
		char a[64], b[64];

		human_bytes(est, a, sizeof(a));
		human_bytes(w->max_bytes_billed, b, sizeof(b));
		snprintf(err, errlen,
		         "the query would scan %s, more than the limit of %s "
		         "(METADATA_BIGQUERY_MAX_BYTES_BILLED); select fewer columns or filter on "
		         "the partition column",
		         a, b);
		e = MK_E_VALIDATION;
	}
	cJSON_Delete(r);
	return e;
}

/* Best effort: ask BigQuery to stop a job that ran past its deadline. */
static void cancel_job(bq_wh *w, const char *project, const char *job, const char *loc)
{
	cJSON *r = NULL;
	char err[256];
	mk_buf p;

	mk_buf_init(&p, 0);
	mk_buf_puts(&p, "projects/");
	esc(&p, project);
	mk_buf_puts(&p, "/jobs/");
	esc(&p, job);
	mk_buf_puts(&p, "/cancel?prettyPrint=false");
	if (loc && *loc) {
		mk_buf_puts(&p, "&location=");
		esc(&p, loc);
	}
	if (bq_call(w, "POST", p.data, NULL, mk_mono_ms() + 5000, &r, NULL, err, sizeof(err)) !=
	    MK_OK)
		MK_WARN("META-BQ-CANCEL", NULL, "cannot cancel BigQuery job %s: %s", job, err);
	mk_buf_release(&p);
	cJSON_Delete(r);
}

/* A getQueryResults path for the job, with pageToken when not NULL. */
static char *results_path(const char *project, const char *job, const char *loc, const char *page,
                          long long max_results, long long wait_ms)
{
	mk_buf p;

	mk_buf_init(&p, 0);
	mk_buf_puts(&p, "projects/");
	esc(&p, project);
	mk_buf_puts(&p, "/queries/");
	esc(&p, job);
	mk_buf_printf(&p,
	              "?prettyPrint=false&formatOptions.useInt64Timestamp=true&maxResults=%lld"
	              "&timeoutMs=%lld",
	              max_results, wait_ms);
	if (loc && *loc) {
		mk_buf_puts(&p, "&location=");
		esc(&p, loc);
	}
	if (page) {
		mk_buf_puts(&p, "&pageToken=");
		esc(&p, page);
	}
	return mk_buf_steal(&p);
}

/* A label value BigQuery accepts: lower case letters, digits, '-' and '_', at most 63. */
static void label_value(const char *s, char *out, size_t outlen)
{
	size_t n = 0;

	for (; s && *s && n + 1 < outlen && n < 63; s++) {
		unsigned char c = (unsigned char)tolower((unsigned char)*s);

		out[n++] = (char)(isalnum(c) || c == '-' || c == '_' ? c : '_');
	}
	out[n] = '\0';
}

static mk_err bq_query(void *p, const meta_wh_query *q, cJSON **out, long long *bytes, char *err,
                       size_t errlen)
{
	bq_wh *w = p;
	int64_t deadline = mk_mono_ms() + q->timeout_ms;
	long long page_rows = q->max_rows + 1 < PAGE_ROWS ? q->max_rows + 1 : PAGE_ROWS;
	long long kept = 0, seen_bytes = 0, total = -1;
	char project[256], job[256] = "", loc[64] = "", reqid[40], user[64];
	unsigned char rnd[16];
	cJSON *body, *r = NULL, *res = NULL, *cols, *rows, *schema = NULL, *labels;
	const cJSON *f;
	char *path = NULL;
	int complete, more = 0;
	mk_buf qp;
	mk_err e;
	size_t i;

	*bytes = 0;
	*out = NULL;
	if (project_of(w, deadline, project, sizeof(project), err, errlen) != 0)
		return MK_E_UNAVAILABLE;
	if ((e = dry_run(w, project, q->sql, deadline, bytes, err, errlen)) != MK_OK)
		return e;
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		snprintf(err, errlen, "no randomness for the request id");
		return MK_E_INTERNAL;
	}
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(reqid + 2 * i, 3, "%02x", rnd[i]);
	body = query_body(w, q->sql);
	snprintf(user, sizeof(user), "%lld", w->max_bytes_billed);
	cJSON_AddStringToObject(body, "maximumBytesBilled", user);
	snprintf(user, sizeof(user), "%lld", q->timeout_ms);
	cJSON_AddStringToObject(body, "jobTimeoutMs", user);
	cJSON_AddNumberToObject(body, "timeoutMs", q->timeout_ms < 10000 ? q->timeout_ms : 10000);
	cJSON_AddNumberToObject(body, "maxResults", (double)page_rows);
	cJSON_AddStringToObject(body, "requestId", reqid);
	cJSON_AddBoolToObject(cJSON_AddObjectToObject(body, "formatOptions"), "useInt64Timestamp",
	                      1);
	labels = cJSON_AddObjectToObject(body, "labels");
	cJSON_AddStringToObject(labels, "mark_service", "metadata");
	label_value(q->user_id, user, sizeof(user));
	if (user[0])
		cJSON_AddStringToObject(labels, "mark_user", user);
	mk_buf_init(&qp, 0);
	mk_buf_puts(&qp, "projects/");
	esc(&qp, project);
	mk_buf_puts(&qp, "/queries?prettyPrint=false");
	e = bq_call(w, "POST", qp.data, body, deadline, &r, NULL, err, errlen);
	mk_buf_release(&qp);
	cJSON_Delete(body);
	if (e != MK_OK)
		return e;
	res = cJSON_CreateObject();
	cols = cJSON_AddArrayToObject(res, "columns");
	rows = cJSON_AddArrayToObject(res, "rows");
	for (;;) {
		const cJSON *ref = cJSON_GetObjectItem(r, "jobReference"), *row;
		const char *tok;

		if (mk_json_str(ref, "jobId"))
			snprintf(job, sizeof(job), "%s", mk_json_str(ref, "jobId"));
		if (mk_json_str(ref, "location"))
			snprintf(loc, sizeof(loc), "%s", mk_json_str(ref, "location"));
		complete = 0;
		mk_json_bool(r, "jobComplete", &complete);
		if (complete) {
			if (!schema && cJSON_GetObjectItem(r, "schema"))
				schema = cJSON_Duplicate(cJSON_GetObjectItem(r, "schema"), 1);
			if (mk_json_str(r, "totalBytesProcessed"))
				*bytes = strtoll(mk_json_str(r, "totalBytesProcessed"), NULL, 10);
			if (mk_json_str(r, "totalRows"))
				total = strtoll(mk_json_str(r, "totalRows"), NULL, 10);
			cJSON_ArrayForEach(row, cJSON_GetObjectItem(r, "rows"))
			{
				const cJSON *x = cJSON_GetObjectItem(row, "f")
				                     ? cJSON_GetObjectItem(row, "f")->child
				                     : NULL;
				cJSON *out_row;

				if (kept >= q->max_rows || seen_bytes > q->max_bytes) {
					more = 1;
					break;
				}
				out_row = cJSON_CreateArray();
				cJSON_ArrayForEach(f, cJSON_GetObjectItem(schema, "fields"))
				{
					cJSON_AddItemToArray(
					    out_row,
					    cell(f, x ? cJSON_GetObjectItem(x, "v") : NULL, 0));
					x = x ? x->next : NULL;
				}
				cJSON_AddItemToArray(rows, out_row);
				seen_bytes += (long long)approx_size(out_row);
				kept++;
			}
		}
		tok = mk_json_str(r, "pageToken");
		if (complete && (!tok || !*tok || more || kept >= q->max_rows))
			break;
		if (!job[0]) {
			snprintf(err, errlen, "BigQuery answered without a job to poll");
			e = MK_E_UNAVAILABLE;
			break;
		}
		{
			long long wait = deadline - mk_mono_ms();

			if (wait <= 0) {
				snprintf(
				    err, errlen,
				    "the query ran longer than %lld ms (METADATA_QUERY_TIMEOUT) "
				    "and was cancelled",
				    q->timeout_ms);
				cancel_job(w, project, job, loc);
				e = MK_E_DEADLINE;
				break;
			}
			path = results_path(project, job, loc, complete ? tok : NULL, page_rows,
			                    wait < 10000 ? wait : 10000);
		}
		cJSON_Delete(r);
		r = NULL;
		e = bq_call(w, "GET", path, NULL, deadline, &r, NULL, err, errlen);
		free(path);
		path = NULL;
		if (e == MK_E_DEADLINE) {
			snprintf(
			    err, errlen,
			    "the query ran longer than %lld ms (METADATA_QUERY_TIMEOUT) and was "
			    "cancelled",
			    q->timeout_ms);
			cancel_job(w, project, job, loc);
		}
		if (e != MK_OK)
			break;
	}
	cJSON_Delete(r);
	if (e != MK_OK) {
		cJSON_Delete(res);
		cJSON_Delete(schema);
		return e;
	}
	cJSON_ArrayForEach(f, cJSON_GetObjectItem(schema, "fields"))
	{
		cJSON *c = cJSON_CreateObject();

		cJSON_AddStringToObject(c, "name",
		                        mk_json_str(f, "name") ? mk_json_str(f, "name") : "");
		cJSON_AddStringToObject(c, "type", short_type(f));
		cJSON_AddItemToArray(cols, c);
	}
	cJSON_Delete(schema);
	cJSON_AddBoolToObject(res, "truncated", more || (total >= 0 && kept < total));
	if (more && seen_bytes > q->max_bytes)
		cJSON_AddStringToObject(res, "truncated_reason", "bytes");
	cJSON_AddNumberToObject(res, "bytes_processed", (double)*bytes);
	*out = res;
	return MK_OK;
}

const meta_wh_ops meta_bq_ops = {
    .kind = "bigquery",
    .dialect = META_SQL_BIGQUERY,
    .snapshot = bq_snapshot,
    .query = bq_query,
    .free = bq_free,
};
