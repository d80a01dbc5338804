/*
 * auth.h - the auth service: accounts, sign-in and tokens.
 *
 * libauth: everything of the service but main(). Owns the Postgres schema
 * "auth"; other services reach it only through its ops over NNG.
 */
#ifndef AUTH_H
#define AUTH_H

#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
} auth_config;

extern const mk_cfg_var auth_config_vars[];
extern const size_t auth_config_nvars;
extern const mk_svc_app auth_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration auth_migrations[];
extern const size_t auth_migrations_count;

#endif
