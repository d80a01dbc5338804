/*
 * bq_double.h - a fake of Google's BigQuery REST API v2, its OAuth2 token
 * endpoint and the GCE metadata server, for offline tests of Mark's
 * warehouse clients (../shared/contracts/bigquery-api.md).
 *
 * One process on one port serves the three faces: POST /token (the JWT
 * bearer grant, RS256 checked against the test key's public half),
 * /computeMetadata/v1/... (the metadata server) and /bigquery/v2/...
 * (datasets, tables, jobs.query / getQueryResults / insert / get). The
 * catalog comes from a fixture file (tests/data/bigquery/fixture.json);
 * its tables are loaded into a Postgres database of their own, one schema
 * per dataset, and queries run there read-only after a small translation
 * of BigQuery table references. Results are encoded the way BigQuery
 * encodes cells. Scripted faults, a few behaviour knobs and the request
 * log live under /_double/.
 *
 * It is not a GoogleSQL engine: the SQL must also be valid for Postgres,
 * INFORMATION_SCHEMA, query parameters, DML and table writes are not
 * served.
 *
 * Files: main.c (command line, start, signals), bq_double_http.c (routing,
 * recording, faults, control endpoints, error bodies), bq_double_auth.c
 * (token endpoint, metadata server, bearer checks), bq_double_catalog.c
 * (fixture, loading into Postgres, datasets and tables routes),
 * bq_double_sql.c (translating and running a query, result schemas),
 * bq_double_cells.c (cell encoding), bq_double_jobs.c (the jobs routes).
 */
#ifndef BQ_DOUBLE_H
#define BQ_DOUBLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <openssl/evp.h>

#include "mk_buf.h"
#include "mk_db.h"

#define BQ_MAX_BODY     (8u << 20) /* largest request body */
#define BQ_MAX_JOBS     64         /* finished jobs kept for getQueryResults / jobs.get */
#define BQ_MAX_REQUESTS 500        /* request log entries kept */
#define BQ_MAX_TOKENS   4096       /* access tokens remembered */
#define BQ_MAX_REFS     32         /* table references per query */
#define BQ_MIN_BILLED   10485760LL /* BigQuery bills at least 10 MiB per query */
#define BQ_EXPIRES_IN   3599
#define BQ_STMT_TIMEOUT "15s"
#define BQ_DEFAULT_PAGE 100000 /* rows per page when the client sets no maxResults */
#define BQ_DEFAULT_LIST 1000   /* datasets or tables per page without maxResults */
#define BQ_POLL_HOLD_MS 200    /* longest an unfinished getQueryResults is held (timeoutMs) */

/* The knobs of POST /_double/config. */
typedef struct {
	long long expires_in;  /* of issued access tokens */
	int incomplete_polls;  /* jobComplete:false answers before the result */
	int strict_legacy_sql; /* useLegacySql missing or true -> invalidQuery */
	long long
	    max_page_size; /* rows per result page at most, whatever the client asks; 0: none */
} bq_config;

typedef struct {
	char token[40];
	int64_t exp_ms; /* wall clock */
} bq_token;

/* A finished (or failed) query job. Slot unused when id[0] == '\0'. */
typedef struct {
	char id[64];
	char project[128];
	char location[64];
	cJSON *config;   /* the job's "configuration" as echoed by jobs.get (owned) */
	PGresult *res;   /* the rows (owned); NULL for a failed or dry-run job */
	cJSON *fields;   /* result schema fields (owned) */
	long long bytes; /* totalBytesProcessed */
	int pending;     /* incomplete answers still to give */
	int dry;
	int64_t created_ms, ended_ms;
	int err_status; /* 0, or the HTTP status of the job's error */
	char err_reason[40];
	char err_message[1024];
	unsigned long seq; /* for eviction: the oldest goes first */
} bq_job;

/* The process's state, shared by civetweb's worker threads; mu guards the mutable parts. */
typedef struct {
	pthread_mutex_t mu;
	cJSON *fixture;           /* the catalog (owned, read-only once loaded) */
	const char *project;      /* fixture "project" (borrowed from fixture) */
	const char *client_email; /* fixture "client_email" */
	EVP_PKEY *pub;            /* the service account key's public half (owned) */
	mk_db_pool *db;
	bq_config cfg;
	cJSON *faults;   /* array of pending fault rules (owned) */
	cJSON *requests; /* request log (owned) */
	bq_token *tokens;
	size_t ntokens;
	unsigned long token_seq, job_seq, req_seq;
	bq_job jobs[BQ_MAX_JOBS];
	struct mg_context *http;
	int port;
	char base[48];      /* http://127.0.0.1:<port> */
	char token_url[64]; /* base + /token */
} bq_double;

/* One request being served (lives on a worker thread's stack). */
typedef struct {
	bq_double *d;
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *path;
	const char *route; /* "datasets.list", ..., "token", "metadata", NULL: unknown */
	char *body;        /* NUL-terminated, owned */
	size_t body_len;
	cJSON *json;  /* the parsed body, or NULL (owned) */
	char *seg[8]; /* the path segments after /bigquery/v2/, decoded (owned) */
	int nseg;
} bq_req;

/* The result of running (or describing) a query. */
typedef struct {
	PGresult *res;   /* rows; NULL for a dry run or on error (owned) */
	cJSON *fields;   /* result schema fields (owned) */
	long long bytes; /* bytes-processed estimate */
	char stype[32];  /* statementType as BigQuery reads the text: SELECT, DELETE, SCRIPT, ... */
	char location[64];
	int err_status; /* 0 on success */
	char err_reason[40];
	char err_message[1024];
} bq_result;

/* ---- bq_double_http.c */

int bq_http_start(bq_double *d, const char *listen, char *err, size_t errlen);
void bq_http_stop(bq_double *d); /* waits for in-flight requests; safe twice */

/* Send a whole response; extra_headers are raw "Name: value\r\n" lines or NULL. */
void bq_send(bq_req *r, int status, const char *ctype, const char *extra_headers, const char *body,
             size_t len);
void bq_send_json(bq_req *r, int status, const cJSON *body, const char *extra_headers);
/* Google's API error shape: {"error":{code,message,errors:[{message,domain,reason}],status}}. */
void bq_send_error(bq_req *r, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The OAuth2 token endpoint's error shape. */
void bq_send_oauth_error(bq_req *r, int status, const char *error, const char *description);
/* A query parameter, decoded, into buf; 1 when present, 0 when absent. */
int bq_param(const bq_req *r, const char *name, char *buf, size_t len);
/* Parse an unsigned count (query parameter or JSON string/number); -1 when malformed. */
long long bq_parse_count(const char *s);
/* Google's status text for an HTTP status ("NOT_FOUND"). */
const char *bq_status_text(int status);

/* ---- bq_double_auth.c */

int bq_auth_load_key(bq_double *d, const char *pem_file, char *err, size_t errlen);
void bq_auth_token(bq_req *r);    /* POST /token */
void bq_auth_metadata(bq_req *r); /* /computeMetadata/... */
/* Check Authorization: Bearer; answers 401 itself and returns -1, or 0. */
int bq_auth_check(bq_req *r);

/* ---- bq_double_catalog.c */

/* Parse and check the fixture; the catalog becomes d->fixture. 0, or -1 with err. */
int bq_catalog_load(bq_double *d, const char *file, char *err, size_t errlen);
/* Create one schema per dataset and load the tables into Postgres. 0, or -1 with err. */
int bq_catalog_seed(bq_double *d, char *err, size_t errlen);
const cJSON *bq_catalog_dataset(const bq_double *d, const char *id);
const cJSON *bq_catalog_table(const cJSON *dataset, const char *id);
void bq_catalog_serve(bq_req *r); /* datasets.list/get, tables.list/get */

/* ---- bq_double_sql.c */

/* sql with BigQuery table references turned into Postgres ones, malloc'd; NULL when out of memory.
 */
char *bq_sql_translate(const bq_double *d, const char *sql, const char *default_ds);

/*
 * Translate sql, check locations and the bytes estimate, and run it (or,
 * for a dry run, only describe it) read-only on Postgres. default_ds may be
 * NULL, location NULL (the datasets' own), cap -1 (no maximumBytesBilled).
 * Fills *out; out->err_status says whether it failed. Release with
 * bq_result_release.
 */
void bq_sql_run(bq_double *d, const char *sql, const char *default_ds, const char *location,
                int dry, long long cap, bq_result *out);
void bq_result_release(bq_result *res);

/* ---- bq_double_cells.c */

/* Row i of res as {"f":[{"v":...},...]} against fields. */
cJSON *bq_cells_row(const PGresult *res, int row, const cJSON *fields, int int64_ts);
/* Java's Double.toString of x (BigQuery's FLOAT and TIMESTAMP text). */
void bq_cells_java_double(double x, char *out, size_t len);

/* ---- bq_double_jobs.c */

/* jobs.query, jobs.getQueryResults, jobs.insert, jobs.get, jobs.cancel */
void bq_jobs_serve(bq_req *r);
void bq_jobs_release(bq_double *d);

#endif
