/*
 * metadata.h - the metadata service: the warehouse catalog and guarded read-only queries.
 *
 * libmetadata: everything of the service but main(). Owns the Postgres schema
 * "catalog"; other services reach it only through its ops over NNG. It is
 * the only holder of the warehouse's credentials.
 *
 * Layers: metadata_service.c (process life, dispatch, the sync loop),
 * meta_catalog.c (the catalog: applying a sync, search, describe),
 * meta_query.c (the SQL guard, meta.query and its audit log) and one
 * driver per warehouse kind behind meta_wh (meta_pg.c: Postgres;
 * meta_bq.c: BigQuery, with Google tokens from meta_gauth.c).
 */
#ifndef METADATA_H
#define METADATA_H

#include <pthread.h>
#include <stdint.h>

#include "mk_buf.h"
#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
	char *warehouse_kind; /* "none" | "postgres" | "bigquery" */
	char *warehouse_dsn;  /* secret */
	char *bq_project;     /* NULL: the key file's, or the metadata server's */
	char *bq_datasets;    /* comma-separated; NULL: every dataset of the project */
	char *bq_key_file;    /* NULL: the metadata server */
	char *bq_api_url;
	char *bq_location; /* NULL: BigQuery picks from the tables */
	char *gce_metadata_host;
	long long bq_max_bytes_billed;
	long long sync_interval_ms;
	long long query_timeout_ms;
	long long query_max_rows;
	long long search_budget;
	long long query_max_bytes; /* one meta.query reply's JSON, at most */
	long long overview_budget; /* characters of meta.overview's text */
	long long overview_tables; /* tables meta.overview lists at most */
} metadata_config;

extern const mk_cfg_var metadata_config_vars[];
extern const size_t metadata_config_nvars;
extern const mk_svc_app metadata_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration metadata_migrations[];
extern const size_t metadata_migrations_count;

/* The one source a warehouse setting describes (catalog.sources.id). */
#define META_SOURCE_ID "warehouse"

/* The SQL dialect meta_sql_check reads. */
typedef enum { META_SQL_POSTGRES, META_SQL_BIGQUERY } meta_sql_dialect;

/* Bytes a text cell of a query reply keeps at most (longer ones are cut). */
#define META_CELL_MAX_BYTES (64 * 1024)

/* One query for a driver. */
typedef struct {
	const char *sql;
	const char *user_id; /* who asks (for the warehouse's own job labels) */
	long long max_rows, max_bytes, timeout_ms;
} meta_wh_query;

/*
 * A warehouse driver: how the service reads the warehouse's structure and
 * runs a checked query on it. Tests may give their own.
 */
typedef struct {
	const char *kind; /* catalog.sources.kind */
	meta_sql_dialect dialect;
	/*
	 * Read every table and column visible to the warehouse role, as two
	 * JSON arrays (malloc'd text, the caller frees):
	 *   tables:  [{schema_name, name, description, row_count, bytes, kind,
	 *              partitioning, clustering, labels}]
	 *   columns: [{schema_name, table_name, position, name, type, mode, nullable,
	 *              description}]
	 * A nested field is a column of its own named by its dotted path
	 * ("items.sku"), right after its parent. Absent members are NULL.
	 * Returns 0, or -1 with a message in err.
	 */
	int (*snapshot)(void *wh, char **tables, char **columns, char *err, size_t errlen);
	/*
	 * Run q->sql (already checked by meta_sql_check) read-only, within
	 * q->timeout_ms, keeping at most q->max_rows rows and about
	 * q->max_bytes of cell text (a driver stops reading there; the reply
	 * is cut exactly later). On MK_OK *out is {columns, rows, truncated,
	 * bytes_processed} (the caller owns it); otherwise the error and a
	 * message (the warehouse's own, for a bad query) in err. Either way
	 * *bytes is what the warehouse processed or would have (0 when it
	 * does not say). Thread-safe.
	 */
	mk_err (*query)(void *wh, const meta_wh_query *q, cJSON **out, long long *bytes, char *err,
	                size_t errlen);
	void (*free)(void *wh);
} meta_wh_ops;

typedef struct {
	mk_svc svc;
	mk_svc_def def;
	const metadata_config *cfg;
	const meta_wh_ops *wh_ops; /* NULL: no warehouse configured */
	void *wh;
	pthread_mutex_t sync_lock; /* one sync at a time in this process */
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	int stopping;
	int sync_started;
	pthread_t sync_thread;
} metadata;

#define META_HANDLER_ARGS metadata *m, const mk_env *req, cJSON **reply, char *err, size_t errlen

/* The Postgres driver: dsn is copied. NULL on allocation failure. */
void *meta_pg_new(const char *dsn);
extern const meta_wh_ops meta_pg_ops;

/*
 * The BigQuery driver (meta_bq.c): REST API v2 with a token from the key
 * file or the metadata server. Reads the key file now; reaches nothing
 * until the first sync or query. NULL with err on a bad setting.
 */
void *meta_bq_new(const metadata_config *cfg, char *err, size_t errlen);
extern const meta_wh_ops meta_bq_ops;

/*
 * Google access tokens (meta_gauth.c). key_file NULL or "": the metadata
 * server at md_host ("host[:port]"). NULL with err when the key file is
 * unreadable or not a service-account key with an RSA private key.
 */
typedef struct meta_gauth meta_gauth;
meta_gauth *meta_gauth_new(const char *key_file, const char *md_host, const char *scope, char *err,
                           size_t errlen);
void meta_gauth_free(meta_gauth *g);
/* The key file's project_id; NULL when none (or no key file). */
const char *meta_gauth_key_project(const meta_gauth *g);
/*
 * A current access token into out. stale: a token the API just refused
 * (it is dropped and a new one fetched), or NULL. deadline: mk_mono_ms()
 * value past which no request starts (0: none). 0, or -1 with err.
 */
int meta_gauth_token(meta_gauth *g, const char *stale, int64_t deadline, char *out, size_t outlen,
                     char *err, size_t errlen);
/* The project id the metadata server reports (malloc'd), or NULL with err. */
char *meta_gauth_md_project(meta_gauth *g, int64_t deadline, char *err, size_t errlen);

/*
 * Read the warehouse and apply what it holds to the catalog: upsert
 * tables and columns (curated descriptions untouched), mark vanished
 * tables removed, record schema changes, rebuild search vectors. One
 * transaction; 0, or -1 with a message in err.
 */
int meta_catalog_sync(metadata *m, char *err, size_t errlen);

mk_err meta_search(META_HANDLER_ARGS);
mk_err meta_describe(META_HANDLER_ARGS);
mk_err meta_query(META_HANDLER_ARGS);
/* meta_metrics.c: warehouse queries, bytes, rows and time by warehouse kind (names there). */
void meta_metrics_init(void);
void meta_metrics_query(const char *kind, int ok, long long rows, long long bytes, double seconds);
/* meta.usage: the bytes the caller's queries scanned, per UTC day (meta_query.c). */
mk_err meta_usage(META_HANDLER_ARGS);

/*
 * Is sql exactly one read-only SELECT (or WITH ... SELECT)? Returns 0, or
 * -1 with the reason in err. Comments are ignored; string literals,
 * quoted identifiers and dollar quotes (Postgres) or backquoted names,
 * backslash escapes and '#' comments (BigQuery) are skipped. On success
 * the statement, without a trailing ';', is written to out (outlen >=
 * strlen(sql) + 1).
 */
int meta_sql_check(const char *sql, meta_sql_dialect d, char *out, size_t outlen, char *err,
                   size_t errlen);

/* meta_overview.c: meta.overview, the warehouse at a glance for every turn. */
mk_err meta_overview(META_HANDLER_ARGS);
/* The SQL dialect as the model is told it (a warehouse is configured). */
const char *meta_dialect_text(const metadata *m);
/*
 * Append s to b, cut at max bytes (at a UTF-8 boundary, "..." added) and
 * with control characters replaced by spaces: catalog text comes from the
 * warehouse and goes into prompts.
 */
void meta_text_clean(mk_buf *b, const char *s, size_t max);
/*
 * The k candidates (at most) whose names are closest to name by spelling:
 * edit distance of the bare names (after the last '.'), case-insensitive,
 * halved when one contains the other; ties by name. Candidates sharing
 * nothing with name are left out. Their indexes go to out (room for k),
 * best first; returns how many.
 */
size_t meta_closest_names(const char *name, const char *const *cands, size_t n, size_t k,
                          size_t *out);

/* meta_sources.c: the catalog as the HTTP API shows it (meta.sources, meta.tables,
 * meta.table) and its admin ops (meta.annotate, meta.sync). */
mk_err meta_sources(META_HANDLER_ARGS);
mk_err meta_tables(META_HANDLER_ARGS);
mk_err meta_table(META_HANDLER_ARGS);
mk_err meta_annotate(META_HANDLER_ARGS);
mk_err meta_sync(META_HANDLER_ARGS);

/*
 * Whether decimal text (an integer or NUMERIC value as the warehouse sends
 * it) is exactly a double: at most 15 significant digits, no exponent, no
 * NaN. Such values go out as JSON numbers, others as strings (meta_pg.c).
 */
int meta_exact_decimal(const char *s);

/* A column of a result row as a JSON member: text or number, null when SQL NULL (meta_catalog.c).
 */
void meta_json_text(cJSON *o, const char *k, const PGresult *r, int row, int col);
void meta_json_num(cJSON *o, const char *k, const PGresult *r, int row, int col);

/* Split "schema.table" (schema "" when absent) into the buffers; 0, or -1 with err when too long.
 */
int meta_table_name(const char *name, char *schema, size_t slen, char *table, size_t tlen,
                    char *err, size_t errlen);

#endif
