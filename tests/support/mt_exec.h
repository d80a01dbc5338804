/*
 * mt_exec.h - test support: the executor (mark-executor) as real processes
 * on loopback, and calls to it over NNG as an authenticated user.
 *
 * mt_exec_start runs one process in mode "all" (the router and its first
 * worker) on two free ports: EXECUTOR_LISTEN, which requesters dial, and
 * EXECUTOR_WORKER_LISTEN, which workers dial. Extra worker processes (mode
 * "worker") dial the same router and take the same extra settings. The
 * executor is ready when sys.ping reports at least one connected worker.
 *
 * Nothing here asserts: calls return 0 (or a value) on success and -1 (or
 * NULL) with a message, and the test decides. This file is part of
 * libmktest, which benchmarks link without Check. Calls may be made from
 * several threads at once; starting and stopping processes may not.
 *
 * Environment read: through mt.h (MARK_TEST_DATABASE_URL, MARK_BIN_DIR,
 * MARK_TEST_LOG_DIR).
 */
#ifndef MT_EXEC_H
#define MT_EXEC_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "mk_rpc.h"
#include "mt.h"

/* Extra worker processes one executor may have, and extra settings kept for them. */
#define MT_EXEC_MAX_WORKERS 8
#define MT_EXEC_MAX_ENV     48

typedef struct {
	mt_proc p;                           /* the "all" process: router and first worker */
	mt_proc worker[MT_EXEC_MAX_WORKERS]; /* extra workers; pid 0 once stopped */
	int nworker;                         /* worker slots used so far */
	int port, worker_port;               /* EXECUTOR_LISTEN, EXECUTOR_WORKER_LISTEN */
	char url[64], worker_url[64];        /* tcp://127.0.0.1:<port> */
	char name[32];                       /* log name prefix */
	char env[MT_EXEC_MAX_ENV][512];      /* the extra settings given to mt_exec_start */
	int nenv;
	mk_rpc_client *c;
} mt_exec;

/*
 * Start the "all" process with the current environment plus env ("K=V",
 * NULL-terminated, may be NULL; at most MT_EXEC_MAX_ENV entries), named
 * `name` in the logs, and wait up to timeout_ms until sys.ping reports a
 * worker. The helper sets EXECUTOR_MODE, EXECUTOR_LISTEN,
 * EXECUTOR_WORKER_LISTEN, EXECUTOR_ROUTER_URL and EXECUTOR_WORKER_ID (env
 * cannot override them), and defaults EXECUTOR_DATABASE_URL to mt_dsn() and
 * EXECUTOR_SANDBOX_UID_BASE to a range of each process's own (200000 +
 * 10000 per process), so workers on one host do not share sandbox uids.
 * Returns 0, or -1 with err (the process, if it started, is killed and its
 * log's tail printed on stderr).
 */
int mt_exec_start(mt_exec *e, const char *name, const char *const *env, int timeout_ms, char *err,
                  size_t errlen);

/*
 * SIGTERM every extra worker, then the "all" process, waiting up to 60 s
 * each, and free the client. Returns the number of processes that did not
 * exit 0 (their logs' tails are printed on stderr).
 */
int mt_exec_stop(mt_exec *e);

/*
 * Start one extra worker with mt_exec_start's settings plus env (may be
 * NULL), and wait up to timeout_ms until the router counts it. Returns the
 * worker's index in e->worker, or -1 with err.
 */
int mt_exec_worker_start(mt_exec *e, const char *const *env, int timeout_ms, char *err,
                         size_t errlen);
/* Stop extra worker i with sig, waiting up to timeout_ms; as mt_proc_stop. */
int mt_exec_worker_stop(mt_exec *e, int i, int sig, int timeout_ms);

/* The workers the router reports connected ("workers" of sys.ping), or -1 when it does not answer.
 */
int mt_exec_workers(mt_exec *e, int timeout_ms);
/* Wait up to timeout_ms until at least n workers are connected. 0 when they are. */
int mt_exec_wait_workers(mt_exec *e, int n, int timeout_ms);

/*
 * Call op as user_id (role "user"; NULL: no caller) with body_json, a JSON
 * object's text (NULL for {}), waiting at most timeout_ms. Always fills
 * *res (release it with mk_rpc_result_release) and returns res->err; a
 * body that is not JSON gives MK_E_INVALID_JSON without a call.
 */
mk_err mt_exec_call(mt_exec *e, mk_op op, const char *user_id, const char *body_json,
                    int timeout_ms, mk_rpc_result *res);

/*
 * exec.run of code in chat as user, without a timeout_ms of its own (the
 * executor's EXECUTOR_TIMEOUT applies), waiting at most timeout_ms for the
 * reply. Returns the reply's body (an execution; the caller deletes it), or
 * NULL with the error in *err (may be NULL) and its message in msg (may be
 * NULL).
 */
cJSON *mt_exec_run(mt_exec *e, const char *user, const char *chat, const char *code, int timeout_ms,
                   mk_err *err, char *msg, size_t msglen);

/* The same with the run's own timeout_ms in the request (run_timeout_ms > 0). */
cJSON *mt_exec_run_for(mt_exec *e, const char *user, const char *chat, const char *code,
                       long long run_timeout_ms, int timeout_ms, mk_err *err, char *msg,
                       size_t msglen);

#endif
