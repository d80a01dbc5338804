/*
 * auth.h - the auth service: accounts, sign-in, tokens.
 *
 * Owns the Postgres schema "auth" and the JWT private key: it alone signs
 * access tokens; the gateway verifies them with the public key. Passwords
 * are argon2id (libsodium); refresh tokens are random, stored only as
 * SHA-256 hashes, rotated on use, and a reused one revokes its family.
 *
 * lib auth: auth_service.c (life and dispatch), auth_users.c (sign-up,
 * sign-in, me), auth_tokens.c (issue, refresh, sign-out),
 * auth_password.c (hashing, email and password rules), auth_throttle.c
 * (failed sign-in limits), config.c.
 */
#ifndef AUTH_H
#define AUTH_H

#include <semaphore.h>

#include "mk_json.h"
#include "mk_jwt.h"
#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
	char *jwt_private_key_file;
	char *jwt_issuer;
	char *jwt_audience;
	long long access_ttl_ms;
	long long refresh_ttl_ms;
	long long argon2_ops;
	long long argon2_mem;
	long long hash_concurrency;
	long long signin_max_failures;
	long long signin_account_max_failures;
	long long signin_ip_max_failures;
	long long signin_window_ms;
	long long signin_lockout_ms;
	long long signin_lockout_max_ms;
} auth_config;

extern const mk_cfg_var auth_config_vars[];
extern const size_t auth_config_nvars;
extern const mk_svc_app auth_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration auth_migrations[];
extern const size_t auth_migrations_count;

typedef struct {
	mk_svc svc;
	mk_svc_def def;
	const auth_config *cfg;
	mk_jwt_key *key;
	sem_t hash_slots; /* bounds concurrent argon2 work (memory) */
	char *dummy_hash; /* verified against when the email is unknown */
} auth;

/* A handler's shared arguments. */
#define AUTH_HANDLER_ARGS auth *a, const mk_env *req, cJSON **reply, char *err, size_t errlen

mk_err auth_signup(AUTH_HANDLER_ARGS);
mk_err auth_signin(AUTH_HANDLER_ARGS);
mk_err auth_me(AUTH_HANDLER_ARGS);
mk_err auth_refresh(AUTH_HANDLER_ARGS);
mk_err auth_signout(AUTH_HANDLER_ARGS);

/* ---- auth_password.c */

/*
 * Normalise an email (trim white space, lower-case ASCII) into out and
 * check its shape. Returns 0, or -1 with the reason in err.
 */
int auth_email_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen);
/* Is the password acceptable (8+ characters, valid UTF-8, no NUL)? 0 or -1 with err. */
int auth_password_check(const char *pw, char *err, size_t errlen);
/*
 * Hash / verify under the concurrency bound, waiting until deadline_ms
 * (unix ms; 0 none) for a slot. hash returns a malloc'd argon2id string or
 * NULL (err set); verify returns 1 match, 0 mismatch, -1 no slot in time.
 */
char *auth_password_hash(auth *a, const char *pw, int64_t deadline_ms, char *err, size_t errlen);
int auth_password_verify(auth *a, const char *hash, const char *pw, int64_t deadline_ms);
/* Does this hash use weaker parameters than configured? */
int auth_password_needs_rehash(const auth *a, const char *hash);

/* ---- auth_admin.c */

/*
 * `mark-auth --grant-admin EMAIL` and `--revoke-admin EMAIL`: an operator
 * sets an account's role in the database (settings from the environment,
 * like the service), recorded in auth.role_changes. Returns the exit status.
 */
int auth_admin_cli(const char *flag, const char *email, auth_config *cfg);

/* ---- auth_throttle.c */

/*
 * Is a sign-in for (email, ip) allowed now? Returns 0, or the seconds to
 * wait (> 0), or -1 on a database error (err set).
 */
long auth_throttle_check(auth *a, PGconn *c, const char *email, const char *ip, char *err,
                         size_t errlen);
/* Record a failed sign-in. */
void auth_throttle_fail(auth *a, PGconn *c, const char *email, const char *ip);
/* Forget failures of (email, ip) after a successful sign-in. */
void auth_throttle_success(auth *a, PGconn *c, const char *email, const char *ip);

/* ---- auth_tokens.c */

/*
 * Issue an access token and a new refresh token (family NULL: a new
 * family) for a user, inside the caller's connection. Returns the reply
 * object, or NULL with err.
 */
cJSON *auth_tokens_issue(auth *a, PGconn *c, const char *user_id, const char *email,
                         const char *role, const char *family, char *err, size_t errlen);

#endif
