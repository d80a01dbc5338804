/*
 * bq_double_jobs.c - the BigQuery double's query jobs: jobs.query (POST
 * .../queries), jobs.getQueryResults (GET .../queries/{job}), jobs.insert
 * (POST .../jobs, query jobs only), jobs.get (GET .../jobs/{job}) and
 * jobs.cancel (POST .../jobs/{job}/cancel: a job still "running" fails
 * with reason stopped).
 *
 * A query runs at once (bq_double_sql.c); its rows are kept with the job
 * (the last BQ_MAX_JOBS jobs) and served in pages. The incomplete_polls
 * knob makes the first answers say jobComplete:false. jobs.query answers a
 * failing query with the HTTP error; jobs.insert records a failed job
 * (status.errorResult) whose getQueryResults is that error. A job in a
 * single region is found only with its location, as in BigQuery.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bq_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

/* What a query request asks for, from jobs.query's body or jobs.insert's configuration. */
typedef struct {
	const char *sql;
	const char *default_ds;
	const char *location;
	const char *job_id; /* jobs.insert's jobReference.jobId, or NULL */
	int legacy;         /* useLegacySql missing or true */
	int dry;
	int int64_ts;
	long long max_results; /* -1: not given */
	long long cap;         /* maximumBytesBilled, -1: not given */
} query_args;

/* ------------------------------------------------------------------ parsing */

/* An int64 given as a JSON string or number; -2 when absent, -1 when malformed. */
static long long int64_member(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	long long x;

	if (!v || cJSON_IsNull(v))
		return -2;
	if (cJSON_IsString(v))
		return bq_parse_count(v->valuestring);
	if (cJSON_IsNumber(v) && mk_json_as_int(v, &x) == 0 && x >= 0)
		return x;
	return -1;
}

/* Read the common query fields of q (the QueryRequest or JobConfigurationQuery); -1 after 400. */
static int parse_query(bq_req *r, const cJSON *q, query_args *a)
{
	const cJSON *legacy = cJSON_GetObjectItemCaseSensitive(q, "useLegacySql");
	const cJSON *dds = cJSON_GetObjectItemCaseSensitive(q, "defaultDataset");
	const cJSON *fo = cJSON_GetObjectItemCaseSensitive(q, "formatOptions");
	long long cap = int64_member(q, "maximumBytesBilled");

	a->sql = mk_json_str(q, "query");
	if (!a->sql || !*a->sql) {
		bq_send_error(r, 400, "invalid", "Required parameter is missing: query");
		return -1;
	}
	if (legacy && !cJSON_IsBool(legacy)) {
		bq_send_error(r, 400, "invalid", "Invalid value for useLegacySql: want a boolean");
		return -1;
	}
	a->legacy = !legacy || cJSON_IsTrue(legacy);
	if (cap == -1) {
		bq_send_error(r, 400, "invalid",
		              "Invalid value for maximumBytesBilled: want an int64 string");
		return -1;
	}
	a->cap = cap < 0 ? -1 : cap;
	if (dds) {
		const char *p = mk_json_str(dds, "projectId");

		a->default_ds = mk_json_str(dds, "datasetId");
		if (!a->default_ds) {
			bq_send_error(r, 400, "invalid", "defaultDataset.datasetId is required");
			return -1;
		}
		if (p && strcmp(p, r->d->project) != 0) {
			bq_send_error(r, 404, "notFound", "Not found: Dataset %s:%s", p,
			              a->default_ds);
			return -1;
		}
	}
	a->int64_ts = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fo, "useInt64Timestamp"));
	return 0;
}

/* ------------------------------------------------------------------ jobs */

/* The job id/project, or NULL. Call with d->mu held. */
static bq_job *find_job(bq_double *d, const char *project, const char *id)
{
	int i;

	for (i = 0; i < BQ_MAX_JOBS; i++)
		if (d->jobs[i].id[0] && strcmp(d->jobs[i].id, id) == 0 &&
		    strcmp(d->jobs[i].project, project) == 0)
			return &d->jobs[i];
	return NULL;
}

static void job_clear(bq_job *j)
{
	PQclear(j->res);
	cJSON_Delete(j->fields);
	cJSON_Delete(j->config);
	memset(j, 0, sizeof(*j));
}

/* A free slot, or the oldest job's, cleared. Call with d->mu held. */
static bq_job *new_job(bq_double *d)
{
	bq_job *best = &d->jobs[0];
	int i;

	for (i = 0; i < BQ_MAX_JOBS; i++) {
		if (!d->jobs[i].id[0]) {
			best = &d->jobs[i];
			break;
		}
		if (d->jobs[i].seq < best->seq)
			best = &d->jobs[i];
	}
	job_clear(best);
	best->seq = ++d->job_seq;
	return best;
}

void bq_jobs_release(bq_double *d)
{
	int i;

	for (i = 0; i < BQ_MAX_JOBS; i++)
		job_clear(&d->jobs[i]);
}

static void job_ref(cJSON *o, const char *project, const char *id, const char *location)
{
	cJSON *ref = cJSON_AddObjectToObject(o, "jobReference");

	cJSON_AddStringToObject(ref, "projectId", project);
	if (id)
		cJSON_AddStringToObject(ref, "jobId", id);
	cJSON_AddStringToObject(ref, "location", location);
}

static void add_int64(cJSON *o, const char *name, long long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", v);
	cJSON_AddStringToObject(o, name, num);
}

static void hex_token(const char *job, long long offset, char *out, size_t len)
{
	char raw[128];
	size_t i, o = 0;

	snprintf(raw, sizeof(raw), "%lld:%s", offset, job);
	for (i = 0; raw[i] && o + 3 < len; i++, o += 2)
		snprintf(out + o, len - o, "%02x", (unsigned char)raw[i]);
	out[o] = '\0';
}

/* The offset a pageToken of job names; -1 when it is not one of its tokens. */
static long long token_offset(const char *job, const char *tok)
{
	char raw[128], *colon;
	size_t n = strlen(tok), i;
	unsigned int byte;

	if (n % 2 || n / 2 >= sizeof(raw))
		return -1;
	for (i = 0; i < n / 2; i++) {
		if (sscanf(tok + 2 * i, "%2x", &byte) != 1)
			return -1;
		raw[i] = (char)byte;
	}
	raw[n / 2] = '\0';
	colon = strchr(raw, ':');
	if (!colon || strcmp(colon + 1, job) != 0)
		return -1;
	*colon = '\0';
	return bq_parse_count(raw);
}

/*
 * schema, totalRows, rows (when any) and pageToken (when more) of j from
 * start; cap is the max_page_size knob (0: none). Call with d->mu held.
 */
static void add_page(cJSON *o, const bq_job *j, long long start, long long max, long long cap,
                     int int64_ts)
{
	long long total = PQntuples(j->res), i;
	cJSON *schema = cJSON_AddObjectToObject(o, "schema"), *rows = NULL;

	if (cap > 0 && max > cap)
		max = cap;
	cJSON_AddItemToObject(schema, "fields", cJSON_Duplicate(j->fields, 1));
	add_int64(o, "totalRows", total);
	for (i = start; i < total && i - start < max; i++) {
		if (!rows)
			rows = cJSON_AddArrayToObject(o, "rows");
		cJSON_AddItemToArray(rows, bq_cells_row(j->res, (int)i, j->fields, int64_ts));
	}
	if (i < total) {
		char tok[300];

		hex_token(j->id, i, tok, sizeof(tok));
		cJSON_AddStringToObject(o, "pageToken", tok);
	}
}

/* Store a finished query as a job (takes res's rows and fields). Call with d->mu held. */
static bq_job *store_job(bq_double *d, const char *project, const char *id, bq_result *res,
                         const cJSON *config)
{
	bq_job *j = new_job(d);
	int64_t now = mk_now_ms();

	if (id)
		snprintf(j->id, sizeof(j->id), "%s", id);
	else
		snprintf(j->id, sizeof(j->id), "job_%lx%04lx_double", (unsigned long)now,
		         j->seq & 0xffff);
	snprintf(j->project, sizeof(j->project), "%s", project);
	snprintf(j->location, sizeof(j->location), "%s", res->location);
	j->res = res->res;
	j->fields = res->fields;
	res->res = NULL;
	res->fields = NULL;
	j->bytes = res->bytes;
	j->config = cJSON_Duplicate(config, 1);
	j->pending = d->cfg.incomplete_polls;
	j->created_ms = now;
	j->ended_ms = now + 1;
	j->err_status = res->err_status;
	snprintf(j->err_reason, sizeof(j->err_reason), "%s", res->err_reason);
	snprintf(j->err_message, sizeof(j->err_message), "%s", res->err_message);
	return j;
}

static const char *legacy_message =
    "bigquery-double runs GoogleSQL only: set \"useLegacySql\": false (jobs.query and jobs.insert "
    "default to legacy SQL, which treats backtick names and standard functions as errors)";

/* ------------------------------------------------------------------ jobs.query */

static void jobs_query(bq_req *r)
{
	query_args a;
	bq_result res;
	long long mr = int64_member(r->json, "maxResults");
	cJSON *o, *config, *q;
	char id[64];
	bq_job *j;
	int strict;

	memset(&a, 0, sizeof(a));
	if (!cJSON_IsObject(r->json)) {
		bq_send_error(r, 400, "invalid", "Required parameter is missing: query");
		return;
	}
	if (parse_query(r, r->json, &a) != 0)
		return;
	if (mr == -1) {
		bq_send_error(r, 400, "invalid", "Invalid value for maxResults");
		return;
	}
	a.max_results = mr < 0 ? BQ_DEFAULT_PAGE : mr;
	a.dry = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r->json, "dryRun"));
	a.location = mk_json_str(r->json, "location");
	pthread_mutex_lock(&r->d->mu);
	strict = r->d->cfg.strict_legacy_sql;
	pthread_mutex_unlock(&r->d->mu);
	if (strict && a.legacy) {
		bq_send_error(r, 400, "invalidQuery", "%s", legacy_message);
		return;
	}
	bq_sql_run(r->d, a.sql, a.default_ds, a.location, a.dry, a.cap, &res);
	if (res.err_status) {
		bq_send_error(r, res.err_status, res.err_reason, "%s", res.err_message);
		bq_result_release(&res);
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#queryResponse");
	if (a.dry) {
		cJSON *schema;

		job_ref(o, r->seg[1], NULL, res.location);
		schema = cJSON_AddObjectToObject(o, "schema");
		cJSON_AddItemToObject(schema, "fields", res.fields);
		res.fields = NULL;
		add_int64(o, "totalBytesProcessed", res.bytes);
		cJSON_AddBoolToObject(o, "jobComplete", 1);
		cJSON_AddBoolToObject(o, "cacheHit", 0);
		bq_result_release(&res);
		bq_send_json(r, 200, o, NULL);
		cJSON_Delete(o);
		return;
	}
	config = cJSON_CreateObject();
	q = cJSON_AddObjectToObject(config, "query");
	cJSON_AddStringToObject(q, "query", a.sql);
	cJSON_AddBoolToObject(q, "useLegacySql", a.legacy);
	pthread_mutex_lock(&r->d->mu);
	j = store_job(r->d, r->seg[1], NULL, &res, config);
	snprintf(id, sizeof(id), "%s", j->id);
	job_ref(o, j->project, j->id, j->location);
	if (j->pending > 0) {
		j->pending--;
		cJSON_AddBoolToObject(o, "jobComplete", 0);
	} else {
		add_page(o, j, 0, a.max_results, r->d->cfg.max_page_size, a.int64_ts);
		add_int64(o, "totalBytesProcessed", j->bytes);
		cJSON_AddBoolToObject(o, "jobComplete", 1);
		cJSON_AddBoolToObject(o, "cacheHit", 0);
		cJSON_AddStringToObject(o, "queryId", j->id);
	}
	pthread_mutex_unlock(&r->d->mu);
	MK_INFO("BQD-QUERY", NULL, "jobs.query: job %s in %s", id, res.location);
	bq_result_release(&res);
	cJSON_Delete(config);
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ lookups */

/*
 * The job of a getQueryResults / jobs.get request, with d->mu held on
 * success; NULL (and the 404 sent, mu released) when there is none in the
 * requested location.
 */
static bq_job *lookup(bq_req *r)
{
	char loc[64] = "", where[64];
	int has_loc = bq_param(r, "location", loc, sizeof(loc)) && *loc;
	bq_job *j;

	pthread_mutex_lock(&r->d->mu);
	j = find_job(r->d, r->seg[1], r->seg[3]);
	if (j && (has_loc ? strcasecmp(loc, j->location) == 0
	                  : strcmp(j->location, "US") == 0 || strcmp(j->location, "EU") == 0))
		return j;
	/* A job in a single region named without (or with another) location: its region shows. */
	snprintf(where, sizeof(where), "%s", j ? j->location : has_loc ? loc : "US");
	pthread_mutex_unlock(&r->d->mu);
	bq_send_error(r, 404, "notFound", "Not found: Job %s:%s.%s", r->seg[1], where, r->seg[3]);
	return NULL;
}

static void jobs_get_query_results(bq_req *r)
{
	char v[320], etag[40];
	long long start = 0, max = BQ_DEFAULT_PAGE, hold = BQ_POLL_HOLD_MS;
	int int64_ts = 0, status = 0, incomplete = 0;
	char reason[40], msg[1024];
	bq_job *j;
	cJSON *o;

	if (bq_param(r, "maxResults", v, sizeof(v))) {
		max = bq_parse_count(v);
		if (max < 0) {
			bq_send_error(r, 400, "invalid", "Invalid value for maxResults: %s", v);
			return;
		}
	}
	if (bq_param(r, "formatOptions.useInt64Timestamp", v, sizeof(v)))
		int64_ts = strcmp(v, "true") == 0;
	if (bq_param(r, "timeoutMs", v, sizeof(v)) && bq_parse_count(v) >= 0 &&
	    bq_parse_count(v) < hold)
		hold = bq_parse_count(v);
	j = lookup(r);
	if (!j)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#getQueryResultsResponse");
	snprintf(etag, sizeof(etag), "%08lx", j->seq);
	cJSON_AddStringToObject(o, "etag", etag);
	job_ref(o, j->project, j->id, j->location);
	if (j->pending > 0) {
		j->pending--;
		incomplete = 1;
		cJSON_AddBoolToObject(o, "jobComplete", 0);
	} else if (j->err_status) {
		status = j->err_status;
		snprintf(reason, sizeof(reason), "%s", j->err_reason);
		snprintf(msg, sizeof(msg), "%s", j->err_message);
	} else {
		if (bq_param(r, "pageToken", v, sizeof(v)) && *v) {
			start = token_offset(j->id, v);
			if (start < 0)
				status = 400;
			snprintf(reason, sizeof(reason), "invalid");
			snprintf(msg, sizeof(msg), "Invalid page token: %s", v);
		} else if (bq_param(r, "startIndex", v, sizeof(v))) {
			start = bq_parse_count(v);
			if (start < 0)
				status = 400;
			snprintf(reason, sizeof(reason), "invalid");
			snprintf(msg, sizeof(msg), "Invalid value for startIndex: %s", v);
		}
		if (!status) {
			add_page(o, j, start, max, r->d->cfg.max_page_size, int64_ts);
			add_int64(o, "totalBytesProcessed", j->bytes);
			cJSON_AddBoolToObject(o, "jobComplete", 1);
			cJSON_AddBoolToObject(o, "cacheHit", 0);
		}
	}
	pthread_mutex_unlock(&r->d->mu);
	/* BigQuery holds an unfinished job's call up to timeoutMs; a client must not spin. */
	if (incomplete && hold > 0)
		mk_sleep_ms(hold);
	if (status)
		bq_send_error(r, status, reason, "%s", msg);
	else
		bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ jobs.insert / get */

/* The Job resource of j (d->mu held); dry-run jobs pass j NULL and res. */
static cJSON *job_resource(bq_req *r, const bq_job *j, const cJSON *config, const char *id,
                           const bq_result *res, int running)
{
	const char *project = j ? j->project : r->seg[1];
	const char *location = j ? j->location : res->location;
	long long bytes = j ? j->bytes : res->bytes;
	int64_t created = j ? j->created_ms : mk_now_ms();
	int err = j ? j->err_status : 0;
	cJSON *o = cJSON_CreateObject(), *stats, *qs, *status, *cfg;
	char full[300], link[600], etag[40];

	snprintf(full, sizeof(full), "%s:%s.%s", project, location, id ? id : "");
	snprintf(link, sizeof(link), "%s/bigquery/v2/projects/%s/jobs/%s?location=%s", r->d->base,
	         project, id ? id : "", location);
	snprintf(etag, sizeof(etag), "%08lx", j ? j->seq : 0UL);
	cJSON_AddStringToObject(o, "kind", "bigquery#job");
	cJSON_AddStringToObject(o, "etag", etag);
	if (id) {
		cJSON_AddStringToObject(o, "id", full);
		cJSON_AddStringToObject(o, "selfLink", link);
	}
	cJSON_AddStringToObject(o, "user_email", r->d->client_email);
	cfg = cJSON_Duplicate(config, 1);
	if (!cJSON_GetObjectItemCaseSensitive(cfg, "jobType"))
		cJSON_AddStringToObject(cfg, "jobType", "QUERY");
	cJSON_AddItemToObject(o, "configuration", cfg);
	job_ref(o, project, id, location);
	stats = cJSON_AddObjectToObject(o, "statistics");
	add_int64(stats, "creationTime", created);
	if (!j || !running) {
		add_int64(stats, "startTime", created);
		add_int64(stats, "endTime", created + 1);
	} else {
		add_int64(stats, "startTime", created);
	}
	if (!err && !running)
		add_int64(stats, "totalBytesProcessed", bytes);
	qs = cJSON_AddObjectToObject(stats, "query");
	if (!err && !running) {
		add_int64(qs, "totalBytesProcessed", bytes);
		if (j)
			add_int64(qs, "totalBytesBilled",
			          bytes > BQ_MIN_BILLED ? bytes : BQ_MIN_BILLED);
		cJSON_AddBoolToObject(qs, "cacheHit", 0);
		cJSON_AddStringToObject(qs, "statementType",
		                        !j && res && res->stype[0] ? res->stype : "SELECT");
		if (!j) {
			cJSON *schema = cJSON_AddObjectToObject(qs, "schema");

			cJSON_AddItemToObject(schema, "fields", cJSON_Duplicate(res->fields, 1));
		}
	}
	status = cJSON_AddObjectToObject(o, "status");
	if (err) {
		cJSON *e = cJSON_CreateObject(), *errs;

		cJSON_AddStringToObject(e, "reason", j->err_reason);
		cJSON_AddStringToObject(e, "location", "query");
		cJSON_AddStringToObject(e, "message", j->err_message);
		errs = cJSON_AddArrayToObject(status, "errors");
		cJSON_AddItemToArray(errs, cJSON_Duplicate(e, 1));
		cJSON_AddItemToObject(status, "errorResult", e);
	}
	cJSON_AddStringToObject(status, "state", running ? "RUNNING" : "DONE");
	return o;
}

static void jobs_insert(bq_req *r)
{
	const cJSON *config = cJSON_GetObjectItemCaseSensitive(r->json, "configuration");
	const cJSON *q = cJSON_GetObjectItemCaseSensitive(config, "query");
	const cJSON *jref = cJSON_GetObjectItemCaseSensitive(r->json, "jobReference");
	query_args a;
	bq_result res;
	cJSON *o;
	bq_job *j;
	int strict, running = 0;

	memset(&a, 0, sizeof(a));
	memset(&res, 0, sizeof(res));
	if (!cJSON_IsObject(q)) {
		bq_send_error(r, 400, "invalid",
		              "bigquery-double serves query jobs only: want configuration.query");
		return;
	}
	if (parse_query(r, q, &a) != 0)
		return;
	a.dry = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(config, "dryRun"));
	a.job_id = mk_json_str(jref, "jobId");
	a.location = mk_json_str(jref, "location");
	if (a.job_id && (!*a.job_id || strlen(a.job_id) > 60)) {
		bq_send_error(r, 400, "invalid", "Invalid job ID \"%s\"", a.job_id);
		return;
	}
	pthread_mutex_lock(&r->d->mu);
	strict = r->d->cfg.strict_legacy_sql;
	if (a.job_id && find_job(r->d, r->seg[1], a.job_id)) {
		pthread_mutex_unlock(&r->d->mu);
		bq_send_error(r, 409, "duplicate", "Already Exists: Job %s:%s.%s", r->seg[1],
		              a.location ? a.location : "US", a.job_id);
		return;
	}
	pthread_mutex_unlock(&r->d->mu);
	if (strict && a.legacy) {
		res.err_status = 400;
		snprintf(res.err_reason, sizeof(res.err_reason), "invalidQuery");
		snprintf(res.err_message, sizeof(res.err_message), "%s", legacy_message);
		snprintf(res.location, sizeof(res.location), "%s", a.location ? a.location : "US");
	} else {
		bq_sql_run(r->d, a.sql, a.default_ds, a.location, a.dry, a.cap, &res);
	}
	if (a.dry) {
		if (res.err_status)
			bq_send_error(r, res.err_status, res.err_reason, "%s", res.err_message);
		else {
			o = job_resource(r, NULL, config, a.job_id, &res, 0);
			bq_send_json(r, 200, o, NULL);
			cJSON_Delete(o);
		}
		bq_result_release(&res);
		return;
	}
	pthread_mutex_lock(&r->d->mu);
	j = store_job(r->d, r->seg[1], a.job_id, &res, config);
	if (j->pending > 0 && !j->err_status) {
		j->pending--;
		running = 1;
	}
	o = job_resource(r, j, config, j->id, NULL, running);
	pthread_mutex_unlock(&r->d->mu);
	bq_result_release(&res);
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

static void jobs_get(bq_req *r)
{
	bq_job *j = lookup(r);
	cJSON *o;
	int running = 0;

	if (!j)
		return;
	if (j->pending > 0 && !j->err_status) {
		j->pending--;
		running = 1;
	}
	o = job_resource(r, j, j->config, j->id, NULL, running);
	pthread_mutex_unlock(&r->d->mu);
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

static void jobs_cancel(bq_req *r)
{
	bq_job *j = lookup(r);
	cJSON *o;

	if (!j)
		return;
	if (j->pending > 0 && !j->err_status) {
		j->pending = 0;
		j->err_status = 400;
		snprintf(j->err_reason, sizeof(j->err_reason), "stopped");
		snprintf(j->err_message, sizeof(j->err_message),
		         "Job execution was cancelled: User requested cancellation");
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#jobCancelResponse");
	cJSON_AddItemToObject(o, "job", job_resource(r, j, j->config, j->id, NULL, 0));
	pthread_mutex_unlock(&r->d->mu);
	MK_INFO("BQD-CANCEL", NULL, "job %s cancelled", r->seg[3]);
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

void bq_jobs_serve(bq_req *r)
{
	if (strcmp(r->route, "jobs.query") == 0)
		jobs_query(r);
	else if (strcmp(r->route, "jobs.getQueryResults") == 0)
		jobs_get_query_results(r);
	else if (strcmp(r->route, "jobs.insert") == 0)
		jobs_insert(r);
	else if (strcmp(r->route, "jobs.cancel") == 0)
		jobs_cancel(r);
	else
		jobs_get(r);
}
