/*
 * executor.h - the executor service: sandboxes that run the model's Python, uploads and artifacts.
 *
 * libexecutor: everything of the service but main(). Owns the Postgres schema
 * "exec"; other services reach it only through its ops over NNG.
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
} executor_config;

extern const mk_cfg_var executor_config_vars[];
extern const size_t executor_config_nvars;
extern const mk_svc_app executor_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration executor_migrations[];
extern const size_t executor_migrations_count;

#endif
