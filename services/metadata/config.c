/*
 * config.c - the metadata service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "metadata.h"

#define X(f) offsetof(metadata_config, f)

const mk_cfg_var metadata_config_vars[] = {
    MK_SVC_CFG_VARS("METADATA", metadata_config, svc, "tcp://127.0.0.1:7104", "catalog"),
    {"METADATA_WAREHOUSE_KIND", MK_CFG_ENUM, "none", 0, 0, 0, 0, "none|postgres",
     "the warehouse: `none`, or `postgres` (read through information_schema and comments)",
     X(warehouse_kind)},
    {"METADATA_WAREHOUSE_DSN", MK_CFG_STR, NULL, 0, 4096, 1, 0, NULL,
     "postgres: connection URI of a read-only role on the warehouse", X(warehouse_dsn)},
    {"METADATA_SYNC_INTERVAL", MK_CFG_DURATION, "10m", 1000, 604800000, 0, 0, NULL,
     "how often the catalog is synced from the warehouse (also once at start)",
     X(sync_interval_ms)},
    {"METADATA_QUERY_TIMEOUT", MK_CFG_DURATION, "30s", 10, 3600000, 0, 0, NULL,
     "longest run of one warehouse query (statement_timeout)", X(query_timeout_ms)},
    {"METADATA_QUERY_MAX_ROWS", MK_CFG_INT, "10000", 1, 1000000, 0, 0, NULL,
     "rows one query returns at most (a request may ask for fewer)", X(query_max_rows)},
    {"METADATA_SEARCH_BUDGET", MK_CFG_INT, "4000", 200, 1000000, 0, 0, NULL,
     "characters of table descriptions meta.search returns when the request sets none",
     X(search_budget)},
    {"METADATA_QUERY_MAX_BYTES", MK_CFG_SIZE, "16M", 4096, 1LL << 30, 0, 0, NULL,
     "bytes of JSON one meta.query reply holds at most: rows past it are left out",
     X(query_max_bytes)},
};
const size_t metadata_config_nvars = sizeof(metadata_config_vars) / sizeof(metadata_config_vars[0]);
