/*
 * bq_double_catalog.c - the BigQuery double's catalog: the fixture file
 * (project, service account, datasets with their tables, schemas and
 * rows), its loading into Postgres (one schema per dataset, one table per
 * fixture table, nested and repeated columns as jsonb), and the datasets
 * and tables routes that describe it.
 *
 * Fixture shape (tests/data/bigquery/fixture.json):
 *   {"project","client_email","datasets":[{"id","location","description"?,
 *    "labels"?,"friendlyName"?,"tables":[{"id","type":"TABLE"|"VIEW",
 *    "description"?,"labels"?,"numBytes","timePartitioning"?,"clustering"?,
 *    "view"?:{"query","useLegacySql":false},"creationTime"?,
 *    "schema":{"fields":[TableFieldSchema...]},"rows":[[cell...]...]}]}]}
 * Datasets and tables are listed in id order (BigQuery lists them so).
 * A row holds one plain JSON value per top-level field in schema order:
 * INTEGER and NUMERIC as numbers or decimal strings (strings beyond 2^53),
 * FLOAT as a number or "NaN"/"Infinity"/"-Infinity", BYTES as base64,
 * TIMESTAMP/DATETIME/DATE/TIME as text, JSON as any value, RECORD as an
 * object (or an array in field order), REPEATED as an array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bq_double.h"
#include "mk_json.h"
#include "mk_log.h"

#define DEFAULT_CREATED  "1717200000000"
#define DEFAULT_MODIFIED "1717286400000"

/* ------------------------------------------------------------------ fixture */

static int plain_name(const char *s)
{
	size_t i;

	if (!s || !*s || strlen(s) > 128)
		return 0;
	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return 0;
	return 1;
}

/* The Postgres column type of a fixture field. */
static const char *pg_type(const cJSON *field)
{
	static const struct {
		const char *bq, *pg;
	} map[] = {
	    {"INTEGER", "bigint"},
	    {"INT64", "bigint"},
	    {"FLOAT", "double precision"},
	    {"FLOAT64", "double precision"},
	    {"NUMERIC", "numeric"},
	    {"BIGNUMERIC", "numeric"},
	    {"BOOLEAN", "boolean"},
	    {"BOOL", "boolean"},
	    {"STRING", "text"},
	    {"BYTES", "bytea"},
	    {"DATE", "date"},
	    {"TIME", "time"},
	    {"DATETIME", "timestamp"},
	    {"TIMESTAMP", "timestamptz"},
	    {"JSON", "jsonb"},
	    {"GEOGRAPHY", "text"},
	    {"RECORD", "jsonb"},
	    {"STRUCT", "jsonb"},
	};
	const char *type = mk_json_str(field, "type"), *mode = mk_json_str(field, "mode");
	size_t i;

	if (!type)
		return NULL;
	if (mode && strcmp(mode, "REPEATED") == 0)
		return "jsonb";
	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strcmp(type, map[i].bq) == 0)
			return map[i].pg;
	return NULL;
}

static int check_fields(const cJSON *fields, const char *where, char *err, size_t errlen)
{
	const cJSON *f;

	if (!cJSON_IsArray(fields) || cJSON_GetArraySize(fields) == 0) {
		mk_errf(err, errlen, "%s: 'fields' must be a non-empty array", where);
		return -1;
	}
	cJSON_ArrayForEach(f, fields)
	{
		const char *name = mk_json_str(f, "name"), *type = mk_json_str(f, "type");
		const char *mode = mk_json_str(f, "mode");
		char sub[256];

		if (!plain_name(name) || !pg_type(f)) {
			mk_errf(err, errlen, "%s: field '%s' needs a plain name and a known type",
			        where, name ? name : "(missing)");
			return -1;
		}
		if (mode && strcmp(mode, "NULLABLE") != 0 && strcmp(mode, "REQUIRED") != 0 &&
		    strcmp(mode, "REPEATED") != 0) {
			mk_errf(err, errlen, "%s: field '%s' has mode '%s'", where, name, mode);
			return -1;
		}
		if (strcmp(type, "RECORD") == 0 || strcmp(type, "STRUCT") == 0) {
			snprintf(sub, sizeof(sub), "%s.%s", where, name);
			if (check_fields(cJSON_GetObjectItemCaseSensitive(f, "fields"), sub, err,
			                 errlen) != 0)
				return -1;
		}
	}
	return 0;
}

static int check_table(const cJSON *t, const char *ds, char *err, size_t errlen)
{
	const char *id = mk_json_str(t, "id"), *type = mk_json_str(t, "type");
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(t, "schema");
	const cJSON *rows = cJSON_GetObjectItemCaseSensitive(t, "rows"), *row;
	char where[300];
	int nfields;

	if (!plain_name(id) || !type || (strcmp(type, "TABLE") != 0 && strcmp(type, "VIEW") != 0)) {
		mk_errf(err, errlen,
		        "dataset '%s': a table needs a plain id and type TABLE or VIEW", ds);
		return -1;
	}
	snprintf(where, sizeof(where), "table %s.%s", ds, id);
	if (check_fields(cJSON_GetObjectItemCaseSensitive(schema, "fields"), where, err, errlen) !=
	    0)
		return -1;
	if (strcmp(type, "VIEW") == 0 &&
	    !mk_json_str(cJSON_GetObjectItemCaseSensitive(t, "view"), "query")) {
		mk_errf(err, errlen, "%s: a VIEW needs view.query", where);
		return -1;
	}
	nfields = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(schema, "fields"));
	if (rows && !cJSON_IsArray(rows)) {
		mk_errf(err, errlen, "%s: 'rows' must be an array", where);
		return -1;
	}
	cJSON_ArrayForEach(row, rows)
	{
		if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != nfields) {
			mk_errf(err, errlen, "%s: every row must be an array of %d values", where,
			        nfields);
			return -1;
		}
	}
	return 0;
}

int bq_catalog_load(bq_double *d, const char *file, char *err, size_t errlen)
{
	FILE *f = fopen(file, "rb");
	char why[256], *text = NULL;
	const char *prev = "", *prevt;
	const cJSON *ds, *t;
	cJSON *root = NULL;
	long n;

	if (!f) {
		mk_errf(err, errlen, "cannot open fixture '%s'", file);
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0 ||
	    !(text = malloc((size_t)n + 1)) || fread(text, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(text);
		mk_errf(err, errlen, "cannot read fixture '%s'", file);
		return -1;
	}
	fclose(f);
	root = mk_json_parse(text, (size_t)n, MK_JSON_MAX_DEPTH, why, sizeof(why));
	free(text);
	if (!root) {
		mk_errf(err, errlen, "fixture '%s': %s", file, why);
		return -1;
	}
	if (!mk_json_str(root, "project") || !mk_json_str(root, "client_email") ||
	    !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "datasets"))) {
		mk_errf(err, errlen, "fixture '%s': want project, client_email and datasets", file);
		goto bad;
	}
	cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(root, "datasets"))
	{
		const char *id = mk_json_str(ds, "id");
		const cJSON *tables = cJSON_GetObjectItemCaseSensitive(ds, "tables");

		if (!plain_name(id) || !mk_json_str(ds, "location") ||
		    (tables && !cJSON_IsArray(tables))) {
			mk_errf(err, errlen,
			        "fixture '%s': a dataset needs a plain id, a location "
			        "and a tables array",
			        file);
			goto bad;
		}
		if (strcmp(prev, id) >= 0) {
			mk_errf(err, errlen, "fixture '%s': datasets must be in id order ('%s')",
			        file, id);
			goto bad;
		}
		prev = id;
		prevt = "";
		cJSON_ArrayForEach(t, tables)
		{
			if (check_table(t, id, err, errlen) != 0)
				goto bad;
			if (strcmp(prevt, mk_json_str(t, "id")) >= 0) {
				mk_errf(err, errlen, "dataset '%s': tables must be in id order",
				        id);
				goto bad;
			}
			prevt = mk_json_str(t, "id");
		}
	}
	d->fixture = root;
	d->project = mk_json_str(root, "project");
	d->client_email = mk_json_str(root, "client_email");
	return 0;
bad:
	cJSON_Delete(root);
	return -1;
}

const cJSON *bq_catalog_dataset(const bq_double *d, const char *id)
{
	const cJSON *ds;

	cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(d->fixture, "datasets"))
	{
		if (strcmp(mk_json_str(ds, "id"), id) == 0)
			return ds;
	}
	return NULL;
}

const cJSON *bq_catalog_table(const cJSON *dataset, const char *id)
{
	const cJSON *t;

	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(dataset, "tables"))
	{
		if (strcmp(mk_json_str(t, "id"), id) == 0)
			return t;
	}
	return NULL;
}

/* ------------------------------------------------------------------ seeding */

static int is_record(const cJSON *field)
{
	const char *type = mk_json_str(field, "type");

	return type && (strcmp(type, "RECORD") == 0 || strcmp(type, "STRUCT") == 0);
}

static int is_repeated(const cJSON *field)
{
	const char *mode = mk_json_str(field, "mode");

	return mode && strcmp(mode, "REPEATED") == 0;
}

static cJSON *to_stored(const cJSON *field, const cJSON *v, int elem);

/* A RECORD value (object, or array in field order) as an object keyed by field name. */
static cJSON *record_stored(const cJSON *field, const cJSON *v)
{
	const cJSON *sub, *fields = cJSON_GetObjectItemCaseSensitive(field, "fields");
	cJSON *o = cJSON_CreateObject();
	int i = 0;

	cJSON_ArrayForEach(sub, fields)
	{
		const char *name = mk_json_str(sub, "name");
		const cJSON *x = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i)
		                                  : cJSON_GetObjectItemCaseSensitive(v, name);

		cJSON_AddItemToObject(o, name, to_stored(sub, x, 0));
		i++;
	}
	return o;
}

/* The jsonb form of a nested value (elem: v is one element of a REPEATED field). */
static cJSON *to_stored(const cJSON *field, const cJSON *v, int elem)
{
	const cJSON *x;
	cJSON *a;

	if (!v || cJSON_IsNull(v))
		return cJSON_CreateNull();
	if (is_repeated(field) && !elem) {
		a = cJSON_CreateArray();
		cJSON_ArrayForEach(x, v)
		{
			cJSON_AddItemToArray(a, to_stored(field, x, 1));
		}
		return a;
	}
	if (is_record(field))
		return record_stored(field, v);
	return cJSON_Duplicate(v, 1);
}

/* The text parameter for a top-level value, malloc'd; NULL for SQL NULL (*oom set on failure). */
static char *param_of(const cJSON *field, const cJSON *v, int *oom)
{
	const char *type = mk_json_str(field, "type");
	char num[64];
	char *s;

	if (!v || cJSON_IsNull(v))
		return NULL;
	if (is_repeated(field) || is_record(field) || strcmp(type, "JSON") == 0) {
		cJSON *j = is_repeated(field) || is_record(field) ? to_stored(field, v, 0)
		                                                  : cJSON_Duplicate(v, 1);

		s = j ? mk_json_print(j) : NULL;
		cJSON_Delete(j);
	} else if (cJSON_IsString(v)) {
		s = strdup(v->valuestring);
	} else if (cJSON_IsBool(v)) {
		s = strdup(cJSON_IsTrue(v) ? "true" : "false");
	} else if (cJSON_IsNumber(v)) {
		if (v->valuedouble == (double)(long long)v->valuedouble)
			snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
		else
			snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		s = strdup(num);
	} else {
		s = mk_json_print(v);
	}
	if (!s)
		*oom = 1;
	return s;
}

static int exec_ok(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *res = mk_db_exec(c, sql, 0, NULL, err, errlen, NULL);

	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

static int seed_table(PGconn *c, const char *ds, const cJSON *t, char *err, size_t errlen)
{
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(
	                cJSON_GetObjectItemCaseSensitive(t, "schema"), "fields"),
	            *f, *row;
	const char *tid = mk_json_str(t, "id");
	int nf = cJSON_GetArraySize(fields), i, rc = -1;
	char **params = calloc((size_t)nf + 1, sizeof(char *));
	mk_buf q;

	mk_buf_init(&q, 0);
	if (!params)
		goto out;
	mk_buf_printf(&q, "CREATE TABLE \"%s\".\"%s\" (", ds, tid);
	i = 0;
	cJSON_ArrayForEach(f, fields)
	{
		const char *mode = mk_json_str(f, "mode");

		mk_buf_printf(&q, "%s\"%s\" %s%s", i++ ? ", " : "", mk_json_str(f, "name"),
		              pg_type(f), mode && strcmp(mode, "REQUIRED") == 0 ? " NOT NULL" : "");
	}
	mk_buf_puts(&q, ")");
	if (!q.data || exec_ok(c, q.data, err, errlen) != 0)
		goto out;
	mk_buf_reset(&q);
	mk_buf_printf(&q, "INSERT INTO \"%s\".\"%s\" VALUES (", ds, tid);
	i = 0;
	cJSON_ArrayForEach(f, fields)
	{
		const char *type = mk_json_str(f, "type");

		i++;
		if (strcmp(type, "BYTES") == 0 && !is_repeated(f))
			mk_buf_printf(&q, "%sdecode($%d, 'base64')", i > 1 ? ", " : "", i);
		else
			mk_buf_printf(&q, "%s$%d::%s", i > 1 ? ", " : "", i, pg_type(f));
	}
	mk_buf_puts(&q, ")");
	if (!q.data)
		goto out;
	cJSON_ArrayForEach(row, cJSON_GetObjectItemCaseSensitive(t, "rows"))
	{
		PGresult *res;
		int oom = 0;

		i = 0;
		cJSON_ArrayForEach(f, fields)
		{
			params[i] = param_of(f, cJSON_GetArrayItem(row, i), &oom);
			i++;
		}
		res =
		    oom ? NULL
		        : mk_db_exec(c, q.data, nf, (const char *const *)params, err, errlen, NULL);
		for (i = 0; i < nf; i++) {
			free(params[i]);
			params[i] = NULL;
		}
		if (!res) {
			if (oom)
				mk_errf(err, errlen, "out of memory");
			goto out;
		}
		PQclear(res);
	}
	rc = 0;
out:
	if (rc != 0 && err)
		MK_ERROR("BQD-SEED", NULL, "table %s.%s: %s", ds, tid, err);
	free(params);
	mk_buf_release(&q);
	return rc;
}

int bq_catalog_seed(bq_double *d, char *err, size_t errlen)
{
	const cJSON *ds, *t;
	PGconn *c = mk_db_acquire(d->db, 30000, err, errlen);
	char q[512];
	int rc = -1;

	if (!c)
		return -1;
	if (exec_ok(c, "BEGIN", err, errlen) != 0)
		goto out;
	cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(d->fixture, "datasets"))
	{
		const char *id = mk_json_str(ds, "id");

		snprintf(q, sizeof(q), "DROP SCHEMA IF EXISTS \"%s\" CASCADE", id);
		if (exec_ok(c, q, err, errlen) != 0)
			goto out;
		snprintf(q, sizeof(q), "CREATE SCHEMA \"%s\"", id);
		if (exec_ok(c, q, err, errlen) != 0)
			goto out;
		cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(ds, "tables"))
		{
			if (strcmp(mk_json_str(t, "type"), "TABLE") == 0 &&
			    seed_table(c, id, t, err, errlen) != 0)
				goto out;
		}
	}
	/* Views last: they may read any table. */
	cJSON_ArrayForEach(ds, cJSON_GetObjectItemCaseSensitive(d->fixture, "datasets"))
	{
		cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(ds, "tables"))
		{
			const char *vq =
			    mk_json_str(cJSON_GetObjectItemCaseSensitive(t, "view"), "query");
			char *sql;
			mk_buf b;
			int ok;

			if (strcmp(mk_json_str(t, "type"), "VIEW") != 0)
				continue;
			sql = bq_sql_translate(d, vq, mk_json_str(ds, "id"));
			mk_buf_init(&b, 0);
			mk_buf_printf(&b, "CREATE VIEW \"%s\".\"%s\" AS %s", mk_json_str(ds, "id"),
			              mk_json_str(t, "id"), sql ? sql : "");
			ok = sql && b.data && exec_ok(c, b.data, err, errlen) == 0;
			free(sql);
			mk_buf_release(&b);
			if (!ok)
				goto out;
		}
	}
	rc = exec_ok(c, "COMMIT", err, errlen);
out:
	if (rc != 0) {
		PGresult *res = PQexec(c, "ROLLBACK");

		PQclear(res);
	}
	mk_db_release(d->db, c);
	return rc;
}

/* ------------------------------------------------------------------ routes */

static void etag_of(const char *s, char *out, size_t len)
{
	unsigned long long h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	snprintf(out, len, "%016llx", h);
}

static void copy_key(cJSON *to, const cJSON *from, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);

	if (v)
		cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, 1));
}

static const char *str_or(const cJSON *o, const char *key, const char *dflt)
{
	const char *s = mk_json_str(o, key);

	return s ? s : dflt;
}

/* maxResults as a page size, within the max_page_size knob; -1 after answering 400. */
static long long page_size(bq_req *r)
{
	char v[32];
	long long n = BQ_DEFAULT_LIST, cap;

	if (bq_param(r, "maxResults", v, sizeof(v))) {
		n = bq_parse_count(v);
		if (n < 0) {
			bq_send_error(r, 400, "invalid", "Invalid value for maxResults: %s", v);
			return -1;
		}
		if (n == 0)
			n = BQ_DEFAULT_LIST;
	}
	pthread_mutex_lock(&r->d->mu);
	cap = r->d->cfg.max_page_size;
	pthread_mutex_unlock(&r->d->mu);
	return cap > 0 && n > cap ? cap : n;
}

/* Index of the first item of the page (pageToken is the id of that item); -1 after 400. */
static int page_start(bq_req *r, const cJSON *items)
{
	const cJSON *it;
	char tok[256];
	int i = 0;

	if (!bq_param(r, "pageToken", tok, sizeof(tok)) || !*tok)
		return 0;
	cJSON_ArrayForEach(it, items)
	{
		if (strcmp(mk_json_str(it, "id"), tok) == 0)
			return i;
		i++;
	}
	bq_send_error(r, 400, "invalid", "Invalid page token: %s", tok);
	return -1;
}

static void dataset_ref(cJSON *o, const char *project, const char *ds)
{
	cJSON *ref = cJSON_AddObjectToObject(o, "datasetReference");

	cJSON_AddStringToObject(ref, "datasetId", ds);
	cJSON_AddStringToObject(ref, "projectId", project);
}

static void table_ref(cJSON *o, const char *project, const char *ds, const char *t)
{
	cJSON *ref = cJSON_AddObjectToObject(o, "tableReference");

	cJSON_AddStringToObject(ref, "projectId", project);
	cJSON_AddStringToObject(ref, "datasetId", ds);
	cJSON_AddStringToObject(ref, "tableId", t);
}

static void datasets_list(bq_req *r)
{
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(r->d->fixture, "datasets");
	long long size = page_size(r);
	int start = size < 0 ? -1 : page_start(r, all), i, n = cJSON_GetArraySize(all);
	char etag[32], id[300];
	cJSON *o, *arr = NULL;

	if (start < 0)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#datasetList");
	etag_of("datasets", etag, sizeof(etag));
	cJSON_AddStringToObject(o, "etag", etag);
	for (i = start; i < n && i - start < size; i++) {
		const cJSON *ds = cJSON_GetArrayItem(all, i);
		cJSON *item = cJSON_CreateObject();

		if (!arr)
			arr = cJSON_AddArrayToObject(o, "datasets");
		cJSON_AddStringToObject(item, "kind", "bigquery#dataset");
		snprintf(id, sizeof(id), "%s:%s", r->d->project, mk_json_str(ds, "id"));
		cJSON_AddStringToObject(item, "id", id);
		dataset_ref(item, r->d->project, mk_json_str(ds, "id"));
		copy_key(item, ds, "labels");
		copy_key(item, ds, "friendlyName");
		cJSON_AddStringToObject(item, "location", mk_json_str(ds, "location"));
		cJSON_AddStringToObject(item, "type", "DEFAULT");
		cJSON_AddItemToArray(arr, item);
	}
	if (i < n)
		cJSON_AddStringToObject(o, "nextPageToken",
		                        mk_json_str(cJSON_GetArrayItem(all, i), "id"));
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

static void dataset_get(bq_req *r, const cJSON *ds)
{
	cJSON *o = cJSON_CreateObject();
	char etag[32], id[300], link[600];

	snprintf(id, sizeof(id), "%s:%s", r->d->project, mk_json_str(ds, "id"));
	snprintf(link, sizeof(link), "%s/bigquery/v2/projects/%s/datasets/%s", r->d->base,
	         r->d->project, mk_json_str(ds, "id"));
	etag_of(id, etag, sizeof(etag));
	cJSON_AddStringToObject(o, "kind", "bigquery#dataset");
	cJSON_AddStringToObject(o, "etag", etag);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "selfLink", link);
	dataset_ref(o, r->d->project, mk_json_str(ds, "id"));
	copy_key(o, ds, "friendlyName");
	copy_key(o, ds, "description");
	copy_key(o, ds, "labels");
	copy_key(o, ds, "defaultTableExpirationMs");
	cJSON_AddStringToObject(o, "creationTime", str_or(ds, "creationTime", DEFAULT_CREATED));
	cJSON_AddStringToObject(o, "lastModifiedTime",
	                        str_or(ds, "lastModifiedTime", DEFAULT_MODIFIED));
	cJSON_AddStringToObject(o, "location", mk_json_str(ds, "location"));
	cJSON_AddStringToObject(o, "type", "DEFAULT");
	cJSON_AddStringToObject(o, "maxTimeTravelHours", "168");
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

static void tables_list(bq_req *r, const cJSON *ds)
{
	const cJSON *all = cJSON_GetObjectItemCaseSensitive(ds, "tables");
	const char *dsid = mk_json_str(ds, "id");
	long long size = page_size(r);
	int start = size < 0 ? -1 : page_start(r, all), i, n = cJSON_GetArraySize(all);
	char etag[32], id[400];
	cJSON *o, *arr = NULL;

	if (start < 0)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#tableList");
	etag_of(dsid, etag, sizeof(etag));
	cJSON_AddStringToObject(o, "etag", etag);
	for (i = start; i < n && i - start < size; i++) {
		const cJSON *t = cJSON_GetArrayItem(all, i);
		const char *type = mk_json_str(t, "type");
		cJSON *item = cJSON_CreateObject();

		if (!arr)
			arr = cJSON_AddArrayToObject(o, "tables");
		cJSON_AddStringToObject(item, "kind", "bigquery#table");
		snprintf(id, sizeof(id), "%s:%s.%s", r->d->project, dsid, mk_json_str(t, "id"));
		cJSON_AddStringToObject(item, "id", id);
		table_ref(item, r->d->project, dsid, mk_json_str(t, "id"));
		cJSON_AddStringToObject(item, "type", type);
		copy_key(item, t, "friendlyName");
		copy_key(item, t, "labels");
		copy_key(item, t, "timePartitioning");
		copy_key(item, t, "clustering");
		copy_key(item, t, "expirationTime");
		if (strcmp(type, "VIEW") == 0) {
			cJSON *v = cJSON_AddObjectToObject(item, "view");

			cJSON_AddBoolToObject(v, "useLegacySql", 0);
		}
		cJSON_AddStringToObject(item, "creationTime",
		                        str_or(t, "creationTime", DEFAULT_CREATED));
		cJSON_AddItemToArray(arr, item);
	}
	if (i < n)
		cJSON_AddStringToObject(o, "nextPageToken",
		                        mk_json_str(cJSON_GetArrayItem(all, i), "id"));
	cJSON_AddNumberToObject(o, "totalItems", n);
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

/* Whether name is listed in the comma-separated selectedFields value. */
static int selected(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (*p) {
		const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);

		while (*p == ' ')
			p++;
		if ((size_t)(end - p) >= n && strncmp(p, name, n) == 0 &&
		    (p + n == end || p[n] == '.' || p[n] == ' '))
			return 1;
		p = comma ? comma + 1 : end;
	}
	return 0;
}

static void table_get(bq_req *r, const cJSON *ds, const cJSON *t)
{
	const char *dsid = mk_json_str(ds, "id"), *tid = mk_json_str(t, "id");
	const cJSON *fields = cJSON_GetObjectItemCaseSensitive(
	                cJSON_GetObjectItemCaseSensitive(t, "schema"), "fields"),
	            *f;
	char etag[32], id[400], link[700], view[40] = "", sel[1024] = "", num[32];
	int basic, has_sel = bq_param(r, "selectedFields", sel, sizeof(sel)) && *sel;
	cJSON *o, *schema, *out_fields;
	int is_view = strcmp(mk_json_str(t, "type"), "VIEW") == 0;

	bq_param(r, "view", view, sizeof(view));
	if (*view && strcmp(view, "BASIC") != 0 && strcmp(view, "STORAGE_STATS") != 0 &&
	    strcmp(view, "FULL") != 0 && strcmp(view, "TABLE_METADATA_VIEW_UNSPECIFIED") != 0) {
		bq_send_error(r, 400, "invalid", "Invalid value at 'view' (%s)", view);
		return;
	}
	basic = strcmp(view, "BASIC") == 0;
	if (has_sel) {
		/* Every selected top-level name must exist. */
		const char *p = sel;

		while (*p) {
			const char *comma = strchr(p, ','), *end = comma ? comma : p + strlen(p);
			char name[256];
			size_t n;
			int found = 0;

			while (*p == ' ')
				p++;
			n = strcspn(p, ".,");
			if (n >= sizeof(name))
				n = sizeof(name) - 1;
			memcpy(name, p, n);
			name[n] = '\0';
			cJSON_ArrayForEach(f, fields)
			{
				found |= strcmp(mk_json_str(f, "name"), name) == 0;
			}
			if (!found && n > 0) {
				bq_send_error(
				    r, 400, "invalid",
				    "Field %s in selected fields not found in the schema of "
				    "%s:%s.%s",
				    name, r->d->project, dsid, tid);
				return;
			}
			p = comma ? comma + 1 : end;
		}
	}
	snprintf(id, sizeof(id), "%s:%s.%s", r->d->project, dsid, tid);
	snprintf(link, sizeof(link), "%s/bigquery/v2/projects/%s/datasets/%s/tables/%s", r->d->base,
	         r->d->project, dsid, tid);
	etag_of(id, etag, sizeof(etag));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "kind", "bigquery#table");
	cJSON_AddStringToObject(o, "etag", etag);
	cJSON_AddStringToObject(o, "id", id);
	cJSON_AddStringToObject(o, "selfLink", link);
	table_ref(o, r->d->project, dsid, tid);
	copy_key(o, t, "friendlyName");
	copy_key(o, t, "description");
	copy_key(o, t, "labels");
	schema = cJSON_AddObjectToObject(o, "schema");
	out_fields = cJSON_AddArrayToObject(schema, "fields");
	cJSON_ArrayForEach(f, fields)
	{
		if (!has_sel || selected(sel, mk_json_str(f, "name")))
			cJSON_AddItemToArray(out_fields, cJSON_Duplicate(f, 1));
	}
	copy_key(o, t, "timePartitioning");
	copy_key(o, t, "rangePartitioning");
	copy_key(o, t, "clustering");
	copy_key(o, t, "requirePartitionFilter");
	copy_key(o, t, "expirationTime");
	if (!basic) {
		long long bytes = 0;

		mk_json_int(t, "numBytes", &bytes);
		if (mk_json_str(t, "numBytes"))
			bytes = bq_parse_count(mk_json_str(t, "numBytes"));
		snprintf(num, sizeof(num), "%lld", is_view ? 0LL : bytes);
		cJSON_AddStringToObject(o, "numBytes", num);
		cJSON_AddStringToObject(o, "numLongTermBytes", "0");
		snprintf(num, sizeof(num), "%d",
		         is_view ? 0
		                 : cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "rows")));
		cJSON_AddStringToObject(o, "numRows", num);
		cJSON_AddStringToObject(o, "lastModifiedTime",
		                        str_or(t, "lastModifiedTime", DEFAULT_MODIFIED));
	}
	cJSON_AddStringToObject(o, "creationTime", str_or(t, "creationTime", DEFAULT_CREATED));
	cJSON_AddStringToObject(o, "type", mk_json_str(t, "type"));
	if (is_view) {
		cJSON *v = cJSON_AddObjectToObject(o, "view");

		cJSON_AddStringToObject(
		    v, "query", mk_json_str(cJSON_GetObjectItemCaseSensitive(t, "view"), "query"));
		cJSON_AddBoolToObject(v, "useLegacySql", 0);
	}
	cJSON_AddStringToObject(o, "location", mk_json_str(ds, "location"));
	bq_send_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

void bq_catalog_serve(bq_req *r)
{
	const cJSON *ds, *t;

	if (strcmp(r->seg[1], r->d->project) != 0) {
		bq_send_error(r, 404, "notFound", "Not found: Project %s", r->seg[1]);
		return;
	}
	if (strcmp(r->route, "datasets.list") == 0) {
		datasets_list(r);
		return;
	}
	ds = bq_catalog_dataset(r->d, r->seg[3]);
	if (!ds) {
		bq_send_error(r, 404, "notFound", "Not found: Dataset %s:%s", r->d->project,
		              r->seg[3]);
		return;
	}
	if (strcmp(r->route, "datasets.get") == 0) {
		dataset_get(r, ds);
	} else if (strcmp(r->route, "tables.list") == 0) {
		tables_list(r, ds);
	} else {
		t = bq_catalog_table(ds, r->seg[5]);
		if (!t)
			bq_send_error(r, 404, "notFound",
			              "Not found: Table %s:%s.%s was not found in location %s",
			              r->d->project, r->seg[3], r->seg[5],
			              mk_json_str(ds, "location"));
		else
			table_get(r, ds, t);
	}
}
