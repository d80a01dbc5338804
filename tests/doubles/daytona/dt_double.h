/*
 * dt_double.h - a fake of Daytona's sandbox service, for offline tests of
 * Mark's Daytona client (../shared/contracts/daytona-api.md).
 *
 * One process on one port serves the two faces of the contract: the
 * control plane under /api (create, list, get, start, stop, archive and
 * delete sandboxes, with the state changes, 409s and error bodies of the
 * real API) and the toolbox under /toolbox/{sandboxId}/... (commands, code,
 * sessions, files). Every toolbox URL a sandbox reports in toolboxProxyUrl
 * points back here. Code runs for real: each sandbox owns a host directory
 * (its /home/daytona and /tmp) and every command runs in a bubblewrap
 * sandbox over it, as uid 1000 ("daytona"), with /usr read-only and no
 * network. Scripted faults, timing knobs, a request log and the list of
 * live sandboxes are under /_double/.
 *
 * It is not Daytona: there are no images or snapshots to build (a snapshot
 * is a name from a list), no previews, no PTYs, no Git, no WebSockets (so
 * no Socket.IO events and no log following), and the processes of one
 * sandbox share its files but not one process tree.
 *
 * Files: main.c (command line, start, signals), dt_double_http.c (routing,
 * authentication, recording, faults, error bodies, rate-limit headers),
 * dt_double_control.c (the /_double/ endpoints), dt_double_sandbox.c
 * (the registry, the sandbox object, the state machine and its ticker),
 * dt_double_api.c (the control-plane routes), dt_double_proc.c (bubblewrap,
 * spawning, running and killing processes), dt_double_process.c (execute,
 * code-run), dt_double_session.c (sessions), dt_double_fs.c (paths inside
 * a sandbox, listing, stat, delete, mkdir), dt_double_transfer.c (uploads
 * and downloads).
 */
#ifndef DT_DOUBLE_H
#define DT_DOUBLE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "mk_buf.h"

#define DT_MAX_BODY       (64u << 20) /* largest request body (uploads included) */
#define DT_MAX_OUTPUT     (16u << 20) /* output kept of one command or log */
#define DT_MAX_REQUESTS   1000        /* request log entries kept */
#define DT_MAX_SANDBOXES  200         /* sandboxes not yet destroyed */
#define DT_MAX_RUNS       32          /* commands running at once in one sandbox */
#define DT_MAX_SESSIONS   32          /* sessions of one sandbox */
#define DT_MAX_COMMANDS   1000        /* commands remembered per session */
#define DT_MAX_ID         128         /* session ids and names */
#define DT_CREATE_WAIT_MS 30000       /* POST /sandbox and /start wait this long for "started" */
#define DT_TICK_MS        20          /* the state machine's pace */

#define DT_HOME     "/home/daytona" /* the sandbox user's home and working directory */
#define DT_SHELL    "/usr/bin/bash"
#define DT_ORG_ID   "7d5a3b52-9c1e-4f6a-8e0b-2f4d6c8a1b3e"
#define DT_VERSION  "0.190.0-double"   /* daemonVersion and GET /version */
#define DT_PATH_MAX 1024               /* path buffers (paths inside a sandbox are shorter) */
#define DT_ROOT_MAX 1024               /* the double's directory */
#define DT_DIR_MAX  (DT_ROOT_MAX + 64) /* a sandbox's directory, <root>/<id> */

/* Sandbox states (SandboxState); desired states use the same values. */
typedef enum {
	DT_CREATING,
	DT_PENDING_BUILD,
	DT_BUILDING_SNAPSHOT,
	DT_STARTING,
	DT_STARTED,
	DT_STOPPING,
	DT_STOPPED,
	DT_ARCHIVING,
	DT_ARCHIVED,
	DT_RESTORING,
	DT_DESTROYING,
	DT_DESTROYED,
	DT_ERROR,
	DT_BUILD_FAILED,
	DT_NSTATES
} dt_state;

/* The knobs of POST /_double/config (and of the command line). */
typedef struct {
	long long start_delay_ms; /* creating -> started, stopped -> started */
	long long stop_delay_ms;  /* stopping -> stopped, archiving, destroying */
	long long minute_ms;      /* how long the auto-stop/archive/delete "minute" lasts */
} dt_config;

/* One session: a long-lived shell in the sandbox fed through its stdin. */
typedef struct dt_session {
	char id[DT_MAX_ID + 1];
	pid_t pid;       /* the shell's bubblewrap; 0 once it has been reaped */
	int in_fd;       /* our end of its stdin; -1 once closed */
	cJSON *commands; /* [{"id","command","exitCode"?}] (owned) */
	unsigned long seq;
	struct dt_session *next;
} dt_session;

typedef struct dt_sandbox {
	char id[40]; /* UUID v4 */
	char *name;  /* malloc'd; rewritten on delete */
	cJSON *spec; /* the echoed create fields (owned) */
	dt_state state, desired;
	int pending;        /* a lifecycle change is under way */
	char *error_reason; /* malloc'd or NULL */
	int64_t due;        /* mk_mono_ms at which the current step ends; 0: none */
	int64_t created, updated, activity, rested; /* wall ms; rested: entered stopped */
	char dir[DT_DIR_MAX];                       /* host directory <root>/<id> */
	int fs_fd; /* O_PATH of <dir>/fs, the sandbox's "/" for the files routes */
	dt_session *sessions;
	pid_t runs[DT_MAX_RUNS]; /* bubblewraps of commands running now (0: free slot) */
	/*
	 * Process groups of killed bubblewraps, reaped by their owners, whose
	 * other processes (the sandbox's pid 1, handed to the double as their
	 * subreaper) may not have exited yet; the ticker reaps them.
	 */
	pid_t dying[DT_MAX_RUNS + DT_MAX_SESSIONS];
	int spawning;            /* session shells being started, not yet in sessions */
	int refs;                /* toolbox requests holding it */
	unsigned long seq;       /* creation order */
	struct dt_sandbox *next;
} dt_sandbox;

/* The process's state, shared by civetweb's threads and the ticker; mu guards it all. */
typedef struct {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* broadcast on every state change */
	dt_sandbox *sandboxes;
	unsigned long seq;
	cJSON *faults;          /* pending fault rules (owned) */
	cJSON *requests;        /* the request log (owned) */
	dt_config cfg;          /* current knobs */
	dt_config cfg0;         /* the command line's, for reset */
	const char *api_key;    /* NULL: any bearer token is accepted (borrowed from argv) */
	const char *bwrap;      /* borrowed from argv */
	const char *snapshots;  /* comma-separated names that exist (borrowed) */
	char root[DT_ROOT_MAX]; /* the double's own directory */
	int own_root;           /* made by the double: removed at exit */
	int stopping;
	int ticker_started;
	pthread_t ticker;
	int64_t rl_window; /* rate limits: the current minute (mk_mono_ms), counts per bucket */
	long rl_count[3];
	struct mg_context *http;
	int port;
	char base[96];         /* http://<host>:<port> */
	char toolbox_url[112]; /* base + /toolbox */
} dt_double;

enum { DT_SURFACE_API, DT_SURFACE_TOOLBOX, DT_SURFACE_CONTROL };

/* One request being served (lives on a worker thread's stack). */
typedef struct {
	dt_double *d;
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	const char *path;  /* local URI */
	const char *route; /* "sandbox.create", "process.execute", ...; NULL: no route */
	int surface;
	char *body; /* NUL-terminated, owned */
	size_t body_len;
	cJSON *json;  /* the parsed body, or NULL (owned) */
	char *seg[8]; /* path segments after /api/ or /toolbox/, decoded (owned) */
	int nseg;
	const char *sub; /* toolbox: the path after /toolbox/{id} */
	dt_sandbox *sbx; /* toolbox: the sandbox, with a reference held */
	int bucket;      /* api: the rate-limit bucket (0 authenticated, 1 create, 2 lifecycle) */
	int authed;      /* api: the key was accepted (rate-limit headers are sent) */
} dt_req;

/* ---- dt_double_http.c */

int dt_http_start(dt_double *d, const char *listen, char *err, size_t errlen);
void dt_http_stop(dt_double *d); /* waits for in-flight requests; safe twice */

/* Send a whole response; extra_headers are raw "Name: value\r\n" lines or NULL. */
void dt_send(dt_req *r, int status, const char *ctype, const char *extra_headers, const void *body,
             size_t len);
void dt_send_json(dt_req *r, int status, const cJSON *body);
/* The control plane's error: {"path","timestamp","statusCode","error","message"}. */
void dt_api_error(dt_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The toolbox's error: {"statusCode","message","code","timestamp","path","method","source"}.
 * code may be NULL (left out); source is DAYTONA_DAEMON, or DAYTONA_PROXY for proxy errors.
 */
void dt_tb_error(dt_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void dt_proxy_error(dt_req *r, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A query parameter, decoded, into buf; 1 when present, 0 when absent. */
int dt_param(const dt_req *r, const char *name, char *buf, size_t len);
/* ISO-8601 UTC with milliseconds ("2026-01-02T03:04:05.678Z") of wall ms. */
void dt_iso_time(int64_t ms, char *out, size_t len);
/* s as valid UTF-8 (invalid bytes and NULs become U+FFFD), malloc'd; NULL when out of memory. */
char *dt_utf8(const char *s, size_t len);

/* ---- dt_double_control.c */

/* The /_double/ endpoints. */
void dt_control_serve(dt_req *r);
/* Serve the next fault rule matching r, if any; 1 when r has been answered. */
int dt_fault(dt_req *r);

/* ---- dt_double_sandbox.c */

const char *dt_state_name(dt_state s);
/* A random UUID v4 into out (at least 37 bytes). */
void dt_uuid4(char *out);
/* Start and stop the ticker that moves sandboxes through their states. */
int dt_sandbox_start(dt_double *d, char *err, size_t errlen);
/* Kill every sandbox process and wake every waiter (first step of stopping). */
void dt_sandbox_halt(dt_double *d);
/* After the server has stopped: reap, remove the directories, free. */
void dt_sandbox_release(dt_double *d);

/* Lookups, under d->mu: by id, or by id or name; destroyed sandboxes are not found. */
dt_sandbox *dt_sandbox_by_id(dt_double *d, const char *id);
dt_sandbox *dt_sandbox_find(dt_double *d, const char *id_or_name);
/*
 * A new sandbox (state and spec set by the caller), its host directories
 * made and linked into the registry; under d->mu. NULL with err.
 */
dt_sandbox *dt_sandbox_new(dt_double *d, char *err, size_t errlen);
/* The API's Sandbox object (list: the SandboxListItem subset); under d->mu. */
cJSON *dt_sandbox_json(const dt_double *d, const dt_sandbox *s, int list_item);
/* Set state and desired state, the time the step ends, and wake waiters; under d->mu. */
void dt_sandbox_set(dt_double *d, dt_sandbox *s, dt_state state, dt_state desired,
                    long long step_ms);
/* Delete: the name is rewritten (freed for reuse) and the sandbox goes; under d->mu. */
void dt_sandbox_soft_delete(dt_double *d, dt_sandbox *s);
/* SIGKILL every process of s (sessions and running commands); under d->mu. */
void dt_sandbox_kill(dt_sandbox *s);
/*
 * Hand s the process group of a killed bubblewrap that its owner has
 * reaped, for the ticker to reap what is left of it; under d->mu.
 */
void dt_sandbox_dying(dt_sandbox *s, pid_t pgid);
/* Whether no process of s is left (none running, none killed but not yet reaped); under d->mu. */
int dt_sandbox_quiet(dt_sandbox *s);
/* After a change of the delays: steps under way end no later than the new delay from now. */
void dt_sandbox_rebase(dt_double *d);
/* Whether the sandbox is ephemeral (autoDeleteInterval 0). */
int dt_sandbox_ephemeral(const dt_sandbox *s);
/* Drop a reference taken by a toolbox request; under d->mu. */
void dt_sandbox_unref(dt_double *d, dt_sandbox *s);

/* ---- dt_double_api.c */

/* Route /api/... : the route name of r (r->seg set), or NULL. */
const char *dt_api_route(dt_req *r);
void dt_api_serve(dt_req *r);

/* ---- dt_double_proc.c */

/*
 * The argv of a bubblewrap sandbox over s running DT_SHELL with cwd
 * (NULL: DT_HOME) and the sandbox's environment plus envs (a JSON object
 * or NULL); malloc'd, NULL-terminated, freed with dt_argv_free. Under
 * d->mu (it reads s->spec). NULL when out of memory.
 */
char **dt_proc_argv(const dt_double *d, const dt_sandbox *s, const char *cwd, const cJSON *envs);
void dt_argv_free(char **argv);
/*
 * Fork and exec argv (a bubblewrap) with stdin from in_fd and stdout and
 * stderr to out_fd (either may be -1: /dev/null), in a session and process
 * group of its own that the sandbox's pid 1 never leaves; it is killed
 * when the double dies. The pid, or -1 with errno set.
 */
pid_t dt_proc_spawn(const dt_double *d, char *const *argv, int in_fd, int out_fd);

/*
 * SIGKILL a process from dt_proc_spawn and its group (all of its sandbox).
 * Only for a child not yet reaped, so that the pid is still its own.
 */
void dt_proc_kill(pid_t pid);
/*
 * Reap what is left of the process group of a killed bubblewrap, after its
 * owner has reaped the bubblewrap itself (the rest are the double's
 * children then, as their subreaper). 1 when nothing of it is left, 0
 * while some of it has not exited yet; never blocks.
 */
int dt_proc_group_gone(pid_t pgid);

/* How a command run ended. */
typedef struct {
	int exit_code; /* -1 when it did not start or was killed */
	int timed_out;
	int killed; /* by a stop or delete of its sandbox */
	mk_buf out; /* stdout and stderr, combined, at most DT_MAX_OUTPUT bytes */
} dt_run;

/*
 * Run DT_SHELL in s with `input` written to its stdin (the way the daemon
 * hands a shell its command), collecting its output; timeout_s > 0 kills it
 * after that many seconds. The request's sandbox reference keeps s alive.
 * Fills *run (release run->out); 0, or -1 with err when it could not start.
 */
int dt_proc_run(dt_double *d, dt_sandbox *s, const char *cwd, const cJSON *envs, const char *input,
                size_t input_len, long long timeout_s, dt_run *run, char *err, size_t errlen);

/*
 * The double's directory: root, or a new one under $TMPDIR (or /tmp) when
 * NULL, with the passwd and group files every sandbox sees. 0, or -1 with
 * err. dt_proc_fini removes it when the double made it.
 */
int dt_proc_init(dt_double *d, const char *root, char *err, size_t errlen);
void dt_proc_fini(dt_double *d);
/* Make and remove a sandbox's host directories (dir set); 0, or -1 with err. */
int dt_proc_mkdirs(const dt_double *d, dt_sandbox *s, char *err, size_t errlen);
void dt_proc_rmdirs(dt_sandbox *s);
/* Remove a directory tree (not following symlinks); best effort. */
void dt_rm_tree(int parent, const char *name);

/* ---- dt_double_process.c */

void dt_process_serve(dt_req *r); /* process.execute, process.code-run */
/*
 * out without its chart marker lines (malloc'd, its length in *outlen);
 * *charts gets their values (an array, or NULL when there are none).
 */
char *dt_artifacts_parse(const char *out, size_t len, size_t *outlen, cJSON **charts);

/* ---- dt_double_session.c */

void dt_session_serve(dt_req *r); /* session.* */
/* Reap session shells that have exited; under d->mu. */
void dt_session_reap(dt_sandbox *s);
/* Kill and forget every session of s (their directories stay); under d->mu. */
void dt_session_drop_all(dt_sandbox *s);

/* ---- dt_double_fs.c */

/*
 * Resolve path (absolute, or relative to DT_HOME) inside sandbox s: an
 * O_PATH descriptor of its parent directory (symlinks resolved inside the
 * sandbox, never out of it) and the last component into leaf. Missing
 * parents are created (0755) when mkparents. -1 with errno set.
 */
int dt_fs_parent(const dt_sandbox *s, const char *path, int mkparents, char *leaf, size_t leaflen);
/* Open path in s with flags (O_CREAT mode 0644); -1 with errno set. */
int dt_fs_open(const dt_sandbox *s, const char *path, int flags);
/* The absolute form of path inside the sandbox (relative to DT_HOME), lexically cleaned. */
void dt_fs_abs(const char *path, char *out, size_t len);
/* Read a whole file of s (at most max bytes) into out; 0, or -1 with errno. */
int dt_fs_read(const dt_sandbox *s, const char *path, size_t max, mk_buf *out);
/* Write a whole file of s (parents made, an existing file replaced); 0, or -1 with errno. */
int dt_fs_write(const dt_sandbox *s, const char *path, const void *data, size_t len);
/* mkdir -p path in s, new directories with mode; 0, or -1 with errno. */
int dt_fs_mkdirs(const dt_sandbox *s, const char *path, unsigned mode);
void dt_fs_serve(dt_req *r); /* files.list, files.info, files.delete, files.folder, info.* */

/* ---- dt_double_transfer.c */

void dt_transfer_serve(dt_req *r); /* files.download, -upload, bulk-download, bulk-upload */

#endif
