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
 * driver per warehouse kind behind meta_wh (meta_pg.c: Postgres).
 */
#ifndef METADATA_H
#define METADATA_H

#include <pthread.h>

#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
	char *warehouse_kind; /* "none" | "postgres" */
	char *warehouse_dsn;  /* secret */
	long long sync_interval_ms;
	long long query_timeout_ms;
	long long query_max_rows;
	long long search_budget;
	long long query_max_bytes; /* one meta.query reply's JSON, at most */
} metadata_config;

extern const mk_cfg_var metadata_config_vars[];
extern const size_t metadata_config_nvars;
extern const mk_svc_app metadata_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration metadata_migrations[];
extern const size_t metadata_migrations_count;

/* The one source a warehouse setting describes (catalog.sources.id). */
#define META_SOURCE_ID "warehouse"

/*
 * A warehouse driver: how the service reads the warehouse's structure and
 * runs a checked query on it. Tests may give their own.
 */
typedef struct {
	const char *kind; /* catalog.sources.kind */
	/*
	 * Read every table and column visible to the warehouse role, as two
	 * JSON arrays (malloc'd text, the caller frees):
	 *   tables:  [{schema_name, name, description, row_count, bytes}]
	 *   columns: [{schema_name, table_name, position, name, type, nullable, description}]
	 * Returns 0, or -1 with a message in err.
	 */
	int (*snapshot)(void *wh, char **tables, char **columns, char *err, size_t errlen);
	/*
	 * Run sql (already checked by meta_sql_check) read-only, within
	 * timeout_ms, keeping at most max_rows rows. On MK_OK *out is
	 * {columns, rows, truncated, bytes_processed} (the caller owns it);
	 * otherwise the error and a message (the warehouse's own, for a bad
	 * query) in err. Thread-safe.
	 */
	mk_err (*query)(void *wh, const char *sql, long long max_rows, long long timeout_ms,
	                cJSON **out, char *err, size_t errlen);
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
 * Read the warehouse and apply what it holds to the catalog: upsert
 * tables and columns (curated descriptions untouched), mark vanished
 * tables removed, record schema changes, rebuild search vectors. One
 * transaction; 0, or -1 with a message in err.
 */
int meta_catalog_sync(metadata *m, char *err, size_t errlen);

mk_err meta_search(META_HANDLER_ARGS);
mk_err meta_describe(META_HANDLER_ARGS);
mk_err meta_query(META_HANDLER_ARGS);

/*
 * Is sql exactly one read-only SELECT (or WITH ... SELECT)? Returns 0, or
 * -1 with the reason in err. Comments are ignored; string literals,
 * quoted identifiers and dollar quotes are skipped. On success the
 * statement, without a trailing ';', is written to out (outlen >=
 * strlen(sql) + 1).
 */
int meta_sql_check(const char *sql, char *out, size_t outlen, char *err, size_t errlen);

/* meta_sources.c: the catalog as the HTTP API shows it (meta.sources, meta.tables,
 * meta.table) and its admin ops (meta.annotate, meta.sync). */
mk_err meta_sources(META_HANDLER_ARGS);
mk_err meta_tables(META_HANDLER_ARGS);
mk_err meta_table(META_HANDLER_ARGS);
mk_err meta_annotate(META_HANDLER_ARGS);
mk_err meta_sync(META_HANDLER_ARGS);

/* A column of a result row as a JSON member: text or number, null when SQL NULL (meta_catalog.c).
 */
void meta_json_text(cJSON *o, const char *k, const PGresult *r, int row, int col);
void meta_json_num(cJSON *o, const char *k, const PGresult *r, int row, int col);

/* Split "schema.table" (schema "" when absent) into the buffers; 0, or -1 with err when too long.
 */
int meta_table_name(const char *name, char *schema, size_t slen, char *table, size_t tlen,
                    char *err, size_t errlen);

#endif
