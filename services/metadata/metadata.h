/*
 * metadata.h - the metadata service: the warehouse catalog and guarded read-only queries.
 *
 * libmetadata: everything of the service but main(). Owns the Postgres schema
 * "catalog"; other services reach it only through its ops over NNG.
 */
#ifndef METADATA_H
#define METADATA_H

#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
} metadata_config;

extern const mk_cfg_var metadata_config_vars[];
extern const size_t metadata_config_nvars;
extern const mk_svc_app metadata_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration metadata_migrations[];
extern const size_t metadata_migrations_count;

#endif
