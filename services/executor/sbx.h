/*
 * sbx.h - one sandbox holding one Python session, behind one interface.
 *
 * A backend creates sandboxes; a sandbox runs code (keeping the session's
 * state between runs, like a notebook), takes and gives files in its
 * workspace, and dies with sbx_destroy. The rest of the executor (sessions,
 * the warm pool, the audit log) does not know which backend is in use.
 *
 * Inside every sandbox runs the same Python driver (sandbox/driver.py,
 * embedded in the binary); the host speaks to it in length-prefixed JSON
 * frames, described in services/executor/SANDBOX.md.
 *
 * A sandbox is used by one thread at a time (the session layer serialises
 * the calls of one chat); different sandboxes may be used concurrently.
 *
 * Each backend is a table of operations (sbx_backend_ops, at the end of
 * this file); the functions below dispatch through it (sbx.c), and
 * sbx_backend_new picks the backend by its name (EXECUTOR_BACKEND).
 */
#ifndef SBX_H
#define SBX_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "mk_buf.h"

/* Limits applied to every sandbox of a backend. 0 means "no limit" only where noted. */
typedef struct {
	/* per sandbox */
	long long memory_bytes;     /* address space of each process (RLIMIT_AS), and all the
	                               sandbox holds together (its cgroup, or the memory watch) */
	long long processes;        /* processes/threads in the sandbox (RLIMIT_NPROC, pids.max) */
	long long millicores;       /* CPU share, in thousandths of a core (cgroup); 0: none */
	long long open_files;       /* RLIMIT_NOFILE */
	long long file_size_bytes;  /* largest file a process may write (RLIMIT_FSIZE) */
	long long workspace_bytes;  /* size of the /workspace tmpfs (also /tmp's) */
	long long cpu_total_s;      /* CPU seconds over the sandbox's life (hard RLIMIT_CPU) */
	long long start_timeout_ms; /* how long start-up (imports included) may take */
	/* per execution */
	long long cpu_s;             /* CPU seconds of one execution */
	long long stdout_bytes;      /* stdout kept; more is cut with a marker */
	long long stderr_bytes;      /* the same for stderr */
	long long output_kill_bytes; /* total output after which the execution is stopped */
	long long table_rows;        /* rows in a table snippet */
	long long table_cols;        /* columns in a table snippet */
	long long value_bytes;       /* repr of the final expression, cut past this */
	long long figure_bytes;      /* largest Plotly figure JSON returned */
	long long image_bytes;       /* largest matplotlib PNG returned */
	long long artifact_bytes;    /* largest output file returned */
	long long artifacts_total;   /* all output files of one execution together */
	long long max_items; /* tables, figures, images, artifacts: at most this many each */
} sbx_limits;

/* The local (bubblewrap) backend's settings. */
typedef struct {
	const char *bwrap;   /* path of bwrap */
	const char *python;  /* the interpreter inside, e.g. /usr/bin/python3 */
	long long uid_base;  /* sandboxes run as uid_base + slot when the executor is root; -1: as
	                        the executor */
	int seccomp;         /* install the seccomp filter */
	const char *preload; /* comma-separated modules imported at start ("pandas,numpy,plotly") */
	const char *cgroup;  /* "auto", "v2", "v1" or "off": a cgroup per sandbox */
	const char *cgroup_path; /* cgroup v2: the delegated subtree; NULL: the executor's own */
} sbx_local_opts;

/* The Daytona backend's settings (see config.c, DAYTONA_*). */
typedef struct {
	const char *api_url;               /* control plane, e.g. https://app.daytona.io/api */
	const char *api_key;               /* secret: sent only to the API and the toolbox */
	const char *snapshot;              /* "" : the organisation's default */
	const char *target;                /* region; "": the organisation's default */
	long long cpu, memory_gb, disk_gb; /* 0: the snapshot's */
	long long auto_stop_min, auto_archive_min, auto_delete_min; /* -1: Daytona's default */
	const char *network_allow; /* CIDRs; "": no network at all */
	const char *deployment;    /* the mark-deployment label of every sandbox */
	const char *worker;        /* the mark-worker label of the sandboxes this process makes */
	const char *preload;       /* modules the driver imports at start */
	long long python_ready_ms; /* how long the driver may take to be ready */
} sbx_daytona_opts;

typedef struct sbx_backend sbx_backend;
typedef struct sbx sbx;

/* Capabilities of a backend, for callers that must refuse what it cannot do. */
typedef struct {
	int parquet;           /* pyarrow is importable inside */
	const char *isolation; /* how sandboxes are held: "cgroup-v2", "cgroup-v1", "off" or
	                          "daytona" */
} sbx_caps;

/*
 * The backend named kind ("local" or "daytona"), with its settings (those
 * of that backend; the other may be NULL) and the limits of its sandboxes;
 * the settings are copied. NULL with err on failure, an unknown kind
 * included.
 */
sbx_backend *sbx_backend_new(const char *kind, const sbx_local_opts *local,
                             const sbx_daytona_opts *daytona, const sbx_limits *lim, char *err,
                             size_t errlen);
/*
 * The local backend (sbx_local.c). Checks that bwrap and the interpreter
 * work (it starts one sandbox and stops it) and fills caps. NULL with err
 * on failure.
 */
sbx_backend *sbx_local_new(const sbx_local_opts *o, const sbx_limits *lim, char *err,
                           size_t errlen);
/*
 * The Daytona backend (sbx_daytona.c). Checks the API, the key and the
 * snapshot by starting one sandbox (it fills caps from its driver) and
 * deleting it. NULL with err on failure. (Sandboxes left behind by
 * workers that died are found with sbx_leftovers.)
 */
sbx_backend *sbx_daytona_new(const sbx_daytona_opts *o, const sbx_limits *lim, char *err,
                             size_t errlen);
void sbx_backend_free(sbx_backend *b); /* NULL ok; sandboxes must be destroyed first */
const char *sbx_backend_name(const sbx_backend *b);
sbx_caps sbx_backend_caps(const sbx_backend *b);

/*
 * Start a sandbox and wait (at most limits.start_timeout_ms) until its
 * session has imported the preload modules and is ready. Blocking; safe to
 * call from several threads. NULL with err on failure.
 */
sbx *sbx_create(sbx_backend *b, char *err, size_t errlen);

/*
 * Run code in the session, at most timeout_ms of wall-clock time. Returns
 * a new JSON object (the caller frees it), never NULL unless out of memory:
 *   stdout, stderr          strings, each cut at its limit with a marker line
 *   stdout_truncated, stderr_truncated   booleans
 *   error                   null | {type, message, traceback}
 *   value                   null | {type, text}   the final expression, as a notebook shows it
 *   tables                  [{name, columns, dtypes, rows, total_rows, truncated}]
 *   figures                 [Plotly figure JSON]
 *   images                  [{format:"png", data_b64, bytes}]
 *   artifacts               [{path, bytes, data_b64}|{path, bytes, skipped}]
 *   duration_ms             number
 *   limit                   null | "wall_time" | "cpu_time" | "memory" | "output" |
 *                           "file_size" | "processes" | "disk" | "open_files"
 *   session_lost            true when the sandbox died or was killed during the run
 *                           (then sbx_alive is 0 and the caller must destroy it)
 *   session_reset           (only when so) why the session had to be started again
 *                           before this run, its earlier Python state gone:
 *                           "sandbox_stopped" (Daytona stopped the sandbox; its files
 *                           are kept)
 * Code that fails is not an error of this call: its exception is in "error".
 */
cJSON *sbx_exec(sbx *s, const char *code, long long timeout_ms);

/*
 * Files in the workspace, by path relative to /workspace (no "..", not
 * absolute, no escape through symlinks). Each returns 0, or -1 with err.
 */
int sbx_put(sbx *s, const char *path, const void *data, size_t len, char *err, size_t errlen);
/* out must be initialised by the caller (its ceiling bounds the file). */
int sbx_get(sbx *s, const char *path, mk_buf *out, char *err, size_t errlen);
/* A new JSON array of {path, bytes, modified_ms}, or NULL with err. */
cJSON *sbx_list(sbx *s, char *err, size_t errlen);

/*
 * Sandboxes that outlive their worker (Daytona): the sandbox's name for
 * sbx_attach, owned by s; NULL when the backend cannot re-attach (local).
 */
const char *sbx_ref(sbx *s);
/*
 * The sandbox named ref (by sbx_ref, maybe in another process), its
 * session still running: started again when needed, and asked for its
 * ready frame. NULL with err when it is gone, its session is gone (then
 * it is deleted) or the backend cannot re-attach.
 */
sbx *sbx_attach(sbx_backend *b, const char *ref, char *err, size_t errlen);
/* Tell the backend whose sandbox s now is (Daytona: its labels); best effort, nothing else. */
void sbx_label(sbx *s, const char *chat_id, const char *owner_id);
/* Delete the sandbox named ref (by sbx_ref) that nobody holds; nothing for other backends. */
void sbx_drop(sbx_backend *b, const char *ref);
/*
 * The sandboxes of this deployment that outlive their workers (Daytona),
 * to find orphans: a new array of {ref, worker, started} (worker: the
 * worker that made or last took the sandbox, "" when unknown; started: it
 * runs, or is on its way to). An empty array for backends whose sandboxes
 * die with their worker (local); NULL with err when they cannot be listed.
 */
cJSON *sbx_leftovers(sbx_backend *b, char *err, size_t errlen);
/* Free s but leave the sandbox and its session running, for sbx_attach; destroys when it cannot. */
void sbx_detach(sbx *s);

/* 1 while the sandbox's processes run and its session answers. */
int sbx_alive(sbx *s);
/* Kill every process of the sandbox, free its workspace, free s. NULL ok. */
void sbx_destroy(sbx *s);

/*
 * ---- writing a backend ----
 *
 * A backend's own struct begins with a struct sbx_backend whose ops point
 * at its table, and each of its sandboxes begins with a struct sbx naming
 * that backend; the backend casts them back to its own types. Each
 * operation has the contract of the public function of the same name
 * above, which calls it (NULL sandboxes and backends are handled there,
 * never passed on).
 */
typedef struct {
	const char *name; /* "local": sbx_backend_name */
	sbx *(*create)(sbx_backend *b, char *err, size_t errlen);
	cJSON *(*exec)(sbx *s, const char *code, long long timeout_ms);
	int (*put)(sbx *s, const char *path, const void *data, size_t len, char *err,
	           size_t errlen);
	int (*get)(sbx *s, const char *path, mk_buf *out, char *err, size_t errlen);
	cJSON *(*list)(sbx *s, char *err, size_t errlen);
	int (*alive)(sbx *s);
	void (*destroy)(sbx *s);
	/* optional (NULL: no re-attaching) */
	const char *(*ref)(sbx *s);
	sbx *(*attach)(sbx_backend *b, const char *ref, char *err, size_t errlen);
	void (*detach)(sbx *s);
	void (*drop)(sbx_backend *b, const char *ref);
	void (*label)(sbx *s, const char *chat_id, const char *owner_id);
	cJSON *(*leftovers)(sbx_backend *b, char *err, size_t errlen);
	sbx_caps (*caps)(const sbx_backend *b);
	void (*free)(sbx_backend *b);
} sbx_backend_ops;

struct sbx_backend {
	const sbx_backend_ops *ops;
};

struct sbx {
	sbx_backend *b; /* the backend that made it */
};

#endif
