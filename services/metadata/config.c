/*
 * config.c - the metadata service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "metadata.h"

#define X(f) offsetof(metadata_config, f)

const mk_cfg_var metadata_config_vars[] = {
    MK_SVC_CFG_VARS("METADATA", metadata_config, svc, "tcp://127.0.0.1:7104", "catalog"),
    {"METADATA_WAREHOUSE_KIND", MK_CFG_ENUM, "none", 0, 0, 0, 0, "none|postgres|bigquery",
     "the warehouse: `none`, `postgres` (read through information_schema and comments) or "
     "`bigquery` (REST API v2)",
     X(warehouse_kind)},
    {"METADATA_WAREHOUSE_DSN", MK_CFG_STR, NULL, 0, 4096, 1, 0, NULL,
     "postgres: connection URI of a read-only role on the warehouse", X(warehouse_dsn)},
    {"METADATA_BIGQUERY_PROJECT", MK_CFG_STR, NULL, 0, 256, 0, 0, NULL,
     "bigquery: the project whose datasets are read and where query jobs run (default: the "
     "key file's `project_id`, else the metadata server's project)",
     X(bq_project)},
    {"METADATA_BIGQUERY_DATASETS", MK_CFG_STR, NULL, 0, 8192, 0, 0, NULL,
     "bigquery: comma-separated datasets to catalog (default: every dataset of the project)",
     X(bq_datasets)},
    {"METADATA_BIGQUERY_KEY_FILE", MK_CFG_STR, NULL, 0, 4096, 0, 0, NULL,
     "bigquery: path of a service-account key file (JSON); unset: tokens from the GCE/GKE "
     "metadata server",
     X(bq_key_file)},
    {"METADATA_BIGQUERY_API_URL", MK_CFG_STR, "https://bigquery.googleapis.com/bigquery/v2", 8,
     1024, 0, 0, NULL, "bigquery: the REST API root", X(bq_api_url)},
    {"METADATA_BIGQUERY_LOCATION", MK_CFG_STR, NULL, 0, 63, 0, 0, NULL,
     "bigquery: location query jobs run in (`US`, `EU`, `europe-west2`, ...; default: where "
     "the tables are)",
     X(bq_location)},
    {"METADATA_BIGQUERY_MAX_BYTES_BILLED", MK_CFG_SIZE, "1G", 10485760, 1LL << 50, 0, 0, NULL,
     "bigquery: bytes one query may scan; a dry run's larger estimate is refused before the "
     "job, which runs with this `maximumBytesBilled` (BigQuery bills 10 MiB at least)",
     X(bq_max_bytes_billed)},
    {"GCE_METADATA_HOST", MK_CFG_STR, "metadata.google.internal", 1, 255, 0, 0, NULL,
     "bigquery without a key file: the metadata server (`host[:port]`)", X(gce_metadata_host)},
    {"METADATA_SYNC_INTERVAL", MK_CFG_DURATION, "10m", 1000, 604800000, 0, 0, NULL,
     "how often the catalog is synced from the warehouse (also once at start)",
     X(sync_interval_ms)},
    {"METADATA_QUERY_TIMEOUT", MK_CFG_DURATION, "30s", 10, 3600000, 0, 0, NULL,
     "longest run of one warehouse query, all its fetches included (cancelled past it)",
     X(query_timeout_ms)},
    {"METADATA_QUERY_MAX_ROWS", MK_CFG_INT, "10000", 1, 1000000, 0, 0, NULL,
     "rows one query returns at most (a request may ask for fewer)", X(query_max_rows)},
    {"METADATA_SEARCH_BUDGET", MK_CFG_INT, "4000", 200, 1000000, 0, 0, NULL,
     "characters of table descriptions meta.search returns when the request sets none",
     X(search_budget)},
    {"METADATA_QUERY_MAX_BYTES", MK_CFG_SIZE, "16M", 4096, 1LL << 30, 0, 0, NULL,
     "bytes of JSON one meta.query reply holds at most: rows past it are left out",
     X(query_max_bytes)},
    {"METADATA_OVERVIEW_BUDGET", MK_CFG_INT, "3000", 200, 1000000, 0, 0, NULL,
     "characters of the warehouse overview (schemas, table count, most used tables) put in "
     "every turn's prompt",
     X(overview_budget)},
    {"METADATA_OVERVIEW_TABLES", MK_CFG_INT, "25", 1, 1000, 0, 0, NULL,
     "tables the warehouse overview lists at most (the most used first, then the largest)",
     X(overview_tables)},
};
const size_t metadata_config_nvars = sizeof(metadata_config_vars) / sizeof(metadata_config_vars[0]);
