/*
 * config.c - the auth service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "auth.h"

#define A(f)   offsetof(auth_config, f)
#define DAY_MS (24LL * 3600 * 1000)

const mk_cfg_var auth_config_vars[] = {
    MK_SVC_CFG_VARS("AUTH", auth_config, svc, "tcp://127.0.0.1:7101", "auth"),
    {"AUTH_JWT_PRIVATE_KEY_FILE", MK_CFG_STR, NULL, 1, 4096, 0, 1, NULL,
     "PEM file of the EC P-256 key that signs access tokens (`make run` creates one)",
     A(jwt_private_key_file)},
    {"AUTH_JWT_ISSUER", MK_CFG_STR, "mark", 1, 200, 0, 0, NULL, "`iss` of access tokens",
     A(jwt_issuer)},
    {"AUTH_JWT_AUDIENCE", MK_CFG_STR, "mark-api", 1, 200, 0, 0, NULL, "`aud` of access tokens",
     A(jwt_audience)},
    {"AUTH_ACCESS_TTL", MK_CFG_DURATION, "15m", 30000, DAY_MS, 0, 0, NULL,
     "lifetime of an access token", A(access_ttl_ms)},
    {"AUTH_REFRESH_TTL", MK_CFG_DURATION, "720h", 60000, 365 * DAY_MS, 0, 0, NULL,
     "lifetime of a refresh token", A(refresh_ttl_ms)},
    {"AUTH_ARGON2_OPSLIMIT", MK_CFG_INT, "2", 2, 64, 0, 0, NULL,
     "argon2id passes (2 = libsodium interactive, the minimum)", A(argon2_ops)},
    {"AUTH_ARGON2_MEMLIMIT", MK_CFG_SIZE, "64M", 64LL << 20, 4LL << 30, 0, 0, NULL,
     "argon2id memory per hash (64M = interactive, the minimum)", A(argon2_mem)},
    {"AUTH_HASH_CONCURRENCY", MK_CFG_INT, "2", 1, 256, 0, 0, NULL,
     "password hashes computed at once (each takes AUTH_ARGON2_MEMLIMIT)", A(hash_concurrency)},
    {"AUTH_SIGNIN_MAX_FAILURES", MK_CFG_INT, "5", 1, 1000, 0, 0, NULL,
     "failed sign-ins of one account from one address before a lockout", A(signin_max_failures)},
    {"AUTH_SIGNIN_ACCOUNT_MAX_FAILURES", MK_CFG_INT, "50", 1, 100000, 0, 0, NULL,
     "failed sign-ins of one account from all addresses before a lockout",
     A(signin_account_max_failures)},
    {"AUTH_SIGNIN_IP_MAX_FAILURES", MK_CFG_INT, "50", 1, 100000, 0, 0, NULL,
     "failed sign-ins from one address (any account) before a lockout", A(signin_ip_max_failures)},
    {"AUTH_SIGNIN_WINDOW", MK_CFG_DURATION, "15m", 1000, DAY_MS, 0, 0, NULL,
     "window in which failures are counted", A(signin_window_ms)},
    {"AUTH_SIGNIN_LOCKOUT", MK_CFG_DURATION, "1m", 1000, DAY_MS, 0, 0, NULL,
     "first lockout; each further one doubles", A(signin_lockout_ms)},
    {"AUTH_SIGNIN_LOCKOUT_MAX", MK_CFG_DURATION, "15m", 1000, DAY_MS, 0, 0, NULL, "longest lockout",
     A(signin_lockout_max_ms)},
};
const size_t auth_config_nvars = sizeof(auth_config_vars) / sizeof(auth_config_vars[0]);
