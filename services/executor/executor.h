/*
 * executor.h - the executor service: sandboxes that run the model's Python,
 * the files put into a chat's workspace, and the artifacts code produces.
 *
 * libexecutor: everything of the service but main(). Owns the Postgres
 * schema "exec"; other services reach it only through its ops over NNG.
 *
 * One binary, three modes (EXECUTOR_MODE):
 *   router  requesters dial it (EXECUTOR_LISTEN); workers dial it
 *           (EXECUTOR_WORKER_LISTEN); it sends each chat's requests to the
 *           worker holding that chat's session. No database, no sandbox.
 *   worker  dials the router, holds sessions (one sandbox per chat, a warm
 *           pool), answers exec.* and records every execution.
 *   all     both in one process (the local default); more workers can
 *           still dial its router.
 *
 * Files: exec_router.c (the router), exec_worker.c (a worker's link to the
 * router), exec_sessions.c (sessions and the warm pool), exec_ops.c (the
 * exec.* handlers and their records), exec_uploads.c (the files users
 * upload, and attaching them to a chat), sbx.h (the sandbox interface, a
 * table of operations per backend, chosen in sbx.c) with the local backend
 * (bubblewrap: sbx_local.c and the files sbx_local_int.h names), and what
 * every backend shares: sbx_frame.c (the driver's frames, a run's output)
 * and sbx_result.c (the host's hold on a result).
 */
#ifndef EXECUTOR_H
#define EXECUTOR_H

#include "mk_svc.h"
#include "sbx.h"

typedef struct {
	mk_svc_cfg svc;
	char *mode;          /* all | router | worker */
	char *worker_listen; /* router: where workers dial */
	char *router_url;    /* worker: the router to dial */
	char *worker_id;     /* empty: <hostname>-<pid> */
	long long poll_ms;   /* router answers an idle poll after this */
	char *backend;       /* local | daytona */
	long long pool_size;
	long long max_sessions;
	long long user_max_sessions, user_max_runs;
	long long idle_timeout_ms;
	long long timeout_ms;     /* default per run */
	long long timeout_max_ms; /* longest run asked for */
	long long code_max;
	long long execution_retention_ms; /* records of a deleted chat kept this long */
	long long file_max;               /* one file put into a workspace */
	long long chat_files_max;         /* all kept files of one chat */
	/* local backend */
	char *bwrap;
	char *python;
	long long uid_base;
	int seccomp;
	char *preload;
	char *cgroup;      /* auto|v2|v1|off */
	char *cgroup_path; /* v2: the delegated subtree ("": the executor's own cgroup) */
	long long millicores;
	/* Daytona backend */
	char *dtn_api_url, *dtn_api_key, *dtn_snapshot, *dtn_target, *dtn_network_allow;
	char *dtn_deployment;
	long long dtn_cpu, dtn_memory_gb, dtn_disk_gb;
	long long dtn_auto_stop_ms, dtn_auto_archive_ms, dtn_auto_delete_ms;
	long long dtn_start_timeout_ms;
	long long dtn_reap_interval_ms, dtn_worker_lease_ms;
	/* limits (see sbx_limits) */
	long long memory, processes, open_files, file_size, workspace_size;
	long long cpu_ms, cpu_total_ms, start_timeout_ms;
	long long stdout_max, stderr_max, output_kill;
	long long table_rows, table_cols, value_max, figure_max, image_max;
	long long artifact_max, artifacts_total, max_items;
} executor_config;

extern const mk_cfg_var executor_config_vars[];
extern const size_t executor_config_nvars;
extern const mk_svc_app executor_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration executor_migrations[];
extern const size_t executor_migrations_count;

/* ------------------------------------------------------------------ router */

typedef struct exec_router exec_router;

/*
 * Listen for requesters on front_url and for workers on worker_url, and
 * route. poll_ms: how long a worker's poll waits for work before it is
 * answered with nothing. Every message on both sockets is sealed with key
 * (copied); one that is not is refused, so only a worker holding the key
 * can register and receive work. Returns 0 and *out, or -1 with err.
 */
int exec_router_start(const char *front_url, const char *worker_url, size_t max_msg,
                      long long poll_ms, const mk_seal_key *key, exec_router **out, char *err,
                      size_t errlen);
/* Workers connected now. */
int exec_router_workers(exec_router *r);
/* Stop: requests still waiting get shutting_down. NULL ok. */
void exec_router_free(exec_router *r);

/* ------------------------------------------------------------------ worker link */

typedef struct exec_link exec_link;

/* What a worker tells the router about itself. */
typedef struct {
	/* Append the chat ids this worker holds sessions for (strings) to arr. */
	void (*chats)(void *ud, cJSON *arr);
	/* Sessions held now. */
	int (*sessions)(void *ud);
	void *ud;
	const char *isolation; /* how its sandboxes are held (sbx_caps.isolation), in the hello */
} exec_link_state;

/*
 * Dial router_url and serve requests with `concurrency` polls in flight;
 * each request is answered by mk_rpc_dispatch(opts). Every message both
 * ways is sealed with opts->key; work that is not is never run. Returns 0
 * and *out, or -1 with err.
 */
int exec_link_start(const char *router_url, const char *worker_id, int concurrency,
                    long long poll_ms, const mk_rpc_server_opts *opts, const exec_link_state *st,
                    exec_link **out, char *err, size_t errlen);
/*
 * Say goodbye (the router sends no more work), let requests in hand finish
 * within grace_ms, close. Returns the number of requests still running
 * then (l is then not freed: the process is about to exit). NULL ok.
 */
int exec_link_free(exec_link *l, int grace_ms);

/* ------------------------------------------------------------------ orphans (exec_orphans.c) */

typedef struct exec_orphans exec_orphans;

/* Note in exec.workers that worker_id is alive now. 0, or -1 with err. */
int exec_worker_beat(mk_db_pool *db, const char *worker_id, char *err, size_t errlen);
/*
 * Delete the deployment's sandboxes whose worker has not been heard from
 * for lease_ms and that no live chat session names (see exec_orphans.c).
 * The number deleted, or -1 with err.
 */
int exec_orphans_reap(sbx_backend *b, mk_db_pool *db, long long lease_ms, char *err, size_t errlen);
/*
 * Start a thread that notes this worker alive every lease_ms / 4 and
 * reaps orphans now and every interval_ms (0: only now). b and db are
 * borrowed and must outlive it. NULL with err.
 */
exec_orphans *exec_orphans_start(sbx_backend *b, mk_db_pool *db, const char *worker_id,
                                 long long lease_ms, long long interval_ms, char *err,
                                 size_t errlen);
/* Stop the thread and remove the worker from exec.workers. NULL ok. */
void exec_orphans_stop(exec_orphans *o);

/* ------------------------------------------------------------------ sessions */

typedef struct exec_sessions exec_sessions;
typedef struct exec_session exec_session;

typedef struct {
	sbx_backend *backend;
	mk_db_pool *db;
	const char *worker_id;
	int pool_size;
	int max_sessions;
	int user_max_sessions; /* one user's sessions on this worker; past it their own LRU goes */
	int user_max_runs;     /* one user's runs at once on this worker; past it, rate_limited */
	long long idle_timeout_ms;
} exec_sessions_opts;

/* Start the session table, the warm pool's filler and the idle reaper. NULL with err. */
exec_sessions *exec_sessions_new(const exec_sessions_opts *o, char *err, size_t errlen);
/* Destroy every sandbox (their sessions end with reason "shutdown"). NULL ok. */
void exec_sessions_free(exec_sessions *ss);

/* How the session a request runs in came to be. */
typedef struct {
	int generation;
	int started;     /* a sandbox was started (or taken from the pool) for this request */
	int warm;        /* ... taken from the warm pool */
	int reset;       /* earlier state of this chat is gone */
	char reason[32]; /* why, when reset */
} exec_session_info;

/*
 * The chat's session, locked for the caller, creating it (from the pool, or
 * a fresh sandbox) when needed; kept files are put into a new workspace.
 * Waits for the chat's running request until deadline_ms (mk_mono_ms clock).
 * owner_id must match the chat's owner (else MK_E_NOT_FOUND). Returns
 * MK_OK and *out, or an error with err. Release with exec_session_release.
 */
mk_err exec_session_acquire(exec_sessions *ss, const char *chat_id, const char *owner_id,
                            int64_t deadline_ms, exec_session **out, exec_session_info *info,
                            char *err, size_t errlen);
/* The session's sandbox (valid while acquired). */
sbx *exec_session_sbx(exec_session *s);
/* The session's sandbox generation (1 for a chat's first). */
int exec_session_generation(const exec_session *s);
/*
 * Give the session back. end_reason NULL keeps it; otherwise the sandbox is
 * destroyed and the chat's record ends with that reason ("wall_time",
 * "crashed", "reset").
 */
void exec_session_release(exec_sessions *ss, exec_session *s, const char *end_reason);
/* The live session of a chat, if any, acquired; NULL when none (nothing is started). */
exec_session *exec_session_peek(exec_sessions *ss, const char *chat_id, int64_t deadline_ms);
/* End the chat's session now (reset or destroy): sandbox gone, record ended with reason. */
mk_err exec_session_end(exec_sessions *ss, const char *chat_id, const char *owner_id,
                        const char *reason, int64_t deadline_ms, char *err, size_t errlen);
int exec_sessions_count(exec_sessions *ss);
void exec_sessions_chats(exec_sessions *ss, cJSON *arr);

/* ---- exec_metrics.c: executions, limits hit, the warm pool (names there) */
void exec_metrics_init(int pool_size);
/* An execution ended: outcome ok|error|limit|lost, the limit hit or NULL, its time. */
void exec_metrics_run(const char *outcome, const char *limit, double seconds);
/* A new session got a sandbox from the warm pool (warm) or started one. */
void exec_metrics_sandbox_start(int warm);
/* Sandboxes ready in the pool now (called under the sessions' lock). */
void exec_metrics_pool(int ready);
/* Count r's usable workers at each scrape (0, or -1 when the hooks are full); stop before
 * freeing r. */
int exec_metrics_router(exec_router *r);
void exec_metrics_router_stop(exec_router *r);

/* ------------------------------------------------------------------ ops */

typedef struct {
	const executor_config *cfg;
	mk_svc *svc;
	exec_sessions *sessions;
	sbx_caps caps;
	const char *worker_id;
} exec_ops;

/* The exec.* handler (an mk_rpc_handler with ud = exec_ops). */
mk_err exec_ops_handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen);

/*
 * exec.usage (exec_usage.c): the caller's executions per UTC day over the
 * body's `days`, on connection c (borrowed). *reply is the caller's.
 */
mk_err exec_usage_op(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen);

/* ---- shared by the exec.* handlers (exec_ops.c); each runs on a request's thread */

/* Is p a workspace path: relative, no "..", no empty or "." parts, no control bytes? */
int exec_path_ok(const char *p);
/*
 * Run sql on c with n text parameters, where lens[i] > 0 marks parameter i
 * as binary (bytea; lens may be NULL); binary_result asks for binary
 * columns. Returns the result (the caller PQclears it), or NULL with err.
 */
PGresult *exec_bin(PGconn *c, const char *sql, int n, const char *const *vals, const int *lens,
                   int binary_result, char *err, size_t errlen);
/*
 * MK_OK when this worker's sandboxes read Parquet; otherwise
 * MK_E_UNSUPPORTED_MEDIA with the reason in err (the one refusal every op
 * that takes a Parquet file gives).
 */
mk_err exec_parquet_check(const exec_ops *x, char *err, size_t errlen);
/*
 * Delete the execution records of deleted chats (no session row) that
 * ended more than retention_ms ago, a batch at a time. The number deleted,
 * or -1 with err.
 */
int exec_purge_executions(PGconn *c, long long retention_ms, char *err, size_t errlen);
/*
 * Keep len bytes of data (borrowed) as the chat's file at path (checked by
 * the caller with exec_path_ok): the chat becomes the caller's if new,
 * EXECUTOR_FILE_MAX and EXECUTOR_CHAT_FILES_MAX are enforced, a file at the
 * same path is replaced, and a live session gets it at once. MK_OK, or
 * not_found / too_large / validation_failed / database_error with err.
 */
mk_err exec_file_keep(exec_ops *x, const mk_env *req, PGconn *c, const char *chat, const char *path,
                      const void *data, size_t len, char *err, size_t errlen);

/*
 * The upload ops (exec_uploads.c): exec.upload, exec.uploads,
 * exec.upload_get, exec.upload_delete and exec.attach, for the caller, on
 * connection c (borrowed). *reply is the caller's.
 */
mk_err exec_uploads_op(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                       size_t errlen);

#endif
