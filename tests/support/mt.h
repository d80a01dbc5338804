/*
 * mt.h - test support: real processes, real HTTP, the private Postgres.
 *
 * Processes started here get PR_SET_PDEATHSIG, so they die with the test
 * process even when it crashes, and every one still running at exit is
 * killed; tests also stop them explicitly and check the exit status (under
 * sanitizers a leak makes a service exit non-zero, which fails the test).
 *
 * Environment read: MARK_TEST_DATABASE_URL (required for tests that need
 * Postgres), MARK_BIN_DIR (default build/bin), MARK_TEST_LOG_DIR (default
 * build/test-logs).
 */
#ifndef MT_H
#define MT_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "mk_seal.h"

typedef struct {
	pid_t pid;
	char name[32];
	char log[512];
} mt_proc;

/* The DSN of the test database; aborts the test run with a clear message when unset. */
const char *mt_dsn(void);
const char *mt_bin_dir(void);
/*
 * The bus key file every process a test starts is given (as each
 * service's <SERVICE>_BUS_KEY_FILE, unless the test's env sets one), and
 * the key, for the test's own NNG clients. Made once under the log
 * directory.
 */
const char *mt_bus_key_file(void);
const mk_seal_key *mt_bus_key(void);
/* A free loopback TCP port, below the ephemeral range, never the same one twice. */
int mt_free_port(void);

/*
 * Start bin_dir/<binary> with the current environment plus env ("K=V",
 * NULL-terminated, may be NULL), output appended to a log file named after
 * `name`. Returns 0.
 */
int mt_proc_start(mt_proc *p, const char *name, const char *binary, const char *const *env);
/* Send sig and wait up to timeout_ms; returns the exit status, 128+signal, or -1 on timeout (then
 * SIGKILLed). */
int mt_proc_stop(mt_proc *p, int sig, int timeout_ms);
int mt_proc_alive(const mt_proc *p);
/* Print the last lines of the process's log to stderr (for failing tests). */
void mt_proc_dump(const mt_proc *p);
/* Run a binary to completion with extra env and args; output into *out (malloc'd). Returns exit
 * status. */
int mt_run(const char *binary, const char *const *argv, const char *const *env, char **out);

typedef struct {
	long status;
	char *body;
	size_t len;
	char *headers; /* raw response headers */
	cJSON *json;   /* parsed body when it is JSON, else NULL */
} mt_resp;

/*
 * One HTTP request with libcurl. headers: NULL-terminated "Name: value"
 * list or NULL. Returns 0 when a response arrived (given up after 6
 * minutes, past the gateway's own limits).
 */
int mt_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t len, mt_resp *out);
/* Header value (case-insensitive), malloc'd, or NULL. */
char *mt_header(const mt_resp *r, const char *name);
/* error.code of a JSON error body, or "" */
const char *mt_error_code(const mt_resp *r);
void mt_resp_release(mt_resp *r);

/* Write a new EC P-256 key pair as PEM files (private: PKCS#8). 0 on success. */
int mt_keygen(const char *priv_path, const char *pub_path);

/* The whole suite on free loopback ports, with a fresh token key pair. */
enum { MT_AUTH, MT_LLM, MT_EXECUTOR, MT_METADATA, MT_GATEWAY, MT_NPROCS };
typedef struct {
	mt_proc p[MT_NPROCS];
	int port[MT_NPROCS]; /* NNG ports of the four services; HTTP port of the gateway */
	int worker_port;     /* the executor router's worker address */
	char env[MT_NPROCS][8][512];
	char base[64];                    /* http://127.0.0.1:<port> */
	char key_priv[200], key_pub[200]; /* the token key pair's files */
} mt_stack;

extern const char *const mt_proc_names[MT_NPROCS];

/*
 * Sign up a user of the stack named after tag (unique to this process) and
 * sign in: the access token into tok, the user id into id (may be NULL).
 * 0, or -1 when either step failed.
 */
int mt_user(const mt_stack *s, const char *tag, char *tok, size_t toklen, char *id, size_t idlen);
/* mt_user, made an admin by the operator's command (mark-auth --grant-admin) and signed in again.
 */
int mt_admin(const mt_stack *s, const char *tag, char *tok, size_t toklen);

/*
 * A fresh database `name` in the test Postgres holding the demo warehouse
 * (services/metadata/demo/warehouse.sql, read from the repository root).
 * dsn: a DSN for `name` as user (e.g. "mark_reader", the read-only role the
 * demo creates, or "mark"). 0, or -1 with err.
 */
int mt_warehouse_create(const char *name, const char *user, char *dsn, size_t dsnlen, char *err,
                        size_t errlen);
/* Run sql on dsn (its notices are not printed); 0, or -1 with err. */
int mt_sql(const char *dsn, const char *sql, char *err, size_t errlen);
/* The password a test role other than the superuser logs in with (set by who creates it). */
void mt_role_password(const char *user, char *out, size_t outlen);
/* mt_dsn() with its user (and so its password) and database replaced. */
void mt_dsn_for(const char *user, const char *db, char *out, size_t outlen);
/* Drop a database made by mt_warehouse_create (connections are cut). */
void mt_warehouse_drop(const char *name);

/*
 * Start every process (extra env applies to all) and wait (up to 2
 * minutes) until /readyz is 200. The gateway's /readyz waits 10 s for each
 * ping (GATEWAY_READY_TIMEOUT; extra_env may set another). 0 on success.
 */
int mt_stack_start(mt_stack *s, const char *const *extra_env);
/* (Re)start one process of the stack with its original settings. */
int mt_stack_start_one(mt_stack *s, int which, const char *const *extra_env);
/* Stop all with SIGTERM (up to a minute each); returns the number that did not exit 0. */
int mt_stack_stop(mt_stack *s);
/* Wait until GET path answers `status` (up to timeout_ms, plus one request). 0 when it did. */
int mt_wait_status(const char *base, const char *path, long status, int timeout_ms);
/* Build base + path into a static per-call buffer (valid until the next call on this thread). */
const char *mt_url(const mt_stack *s, const char *path);

#endif
