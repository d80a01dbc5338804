/*
 * sbx_local_int.h - what the files of the local backend share, and nobody
 * else (libexecutor, sandbox layer; the executor sees only sbx.h): the
 * backend's and a sandbox's structs, and the calls between its files.
 *
 *   sbx_local.c     the backend: its settings checked, the table of
 *                   operations, a sandbox made and freed, its liveness,
 *                   the memory watch
 *   sbx_local_run.c requests to the driver: ready, exec, put, get, list
 *   sbx_spawn.c     the bwrap command line and rlimits, the spawner
 *                   thread, uid slots, starting a sandbox's processes
 *   sbx_stop.c      the sandbox's init, stopping and reaping a sandbox,
 *                   and how it ended
 * and modules of their own: sbx_cgroup.h (a cgroup per sandbox),
 * sbx_seccomp.h (the system-call filter), sbx_frame.h and sbx_result.h
 * (the driver's frames and results, shared with other backends).
 *
 * Threads: as sbx.h; what several threads share in a backend (slots, the
 * spawn hand-off) is under its mutex.
 */
#ifndef SBX_LOCAL_INT_H
#define SBX_LOCAL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <unistd.h>

#include <linux/filter.h>

#include "sbx.h"
#include "sbx_cgroup.h"

/* System calls and constants older headers lack. */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

#define MAX_SLOTS        1024 /* concurrent sandboxes with their own uid */
#define MEM_CHECK_MS     100  /* how often a running sandbox's memory is checked */
#define INFO_MAX         2048 /* bwrap's --info-fd JSON */
#define IOBUF            (64 << 10)
#define SBX_LOCAL_NTMPFS 3 /* /workspace, /tmp, /dev/shm */

typedef struct sbx_local sbx_local;
typedef struct sbx_local_box sbx_local_box;

struct spawn; /* one fork handed to the spawner thread (sbx_spawn.c) */

struct sbx_local {
	sbx_backend base; /* ops: the local table (sbx_local.c) */
	char *bwrap, *python, *preload;
	long long uid_base;
	int own_uids; /* root and uid_base set: a uid per sandbox */
	int seccomp;
	sbx_limits lim;
	sbx_caps caps;
	sbx_cg cg; /* one cgroup per sandbox, or off */
	char python_version[32];

	char **argv; /* the bwrap command line: the same for every sandbox */
	size_t argc, argv_cap;
	char *envp[2];
	struct {
		int res;
		struct rlimit rl;
	} rlim[8];
	int nrlim;
	struct sock_filter *bpf;
	size_t bpf_len;

	pthread_mutex_t mu; /* guards slot_used, job, stop */
	pthread_cond_t cv;
	unsigned char slot_used[MAX_SLOTS];
	struct spawn *job;
	int stop;
	pthread_t spawner;
	int spawner_started;
	int sync_made;
};

struct sbx_local_box {
	sbx base; /* base.b is &b->base */
	sbx_local *b;
	pid_t pid;         /* the outer bwrap, our child */
	int pidfd;         /* of pid */
	int init_fd;       /* pidfd of the sandbox's init; -1 until known */
	pid_t init_pid;    /* its pid, once init_fd is held */
	int64_t mem_check; /* next whole-sandbox memory check (mk_mono_ms) */
	int out_fd;        /* host ends, non-blocking */
	int err_fd;
	int ctl_w;
	int ctl_r;
	int info_fd; /* until bwrap has told the init's pid */
	int slot;    /* -1: none */
	int dead;    /* killed, exited, or broke the protocol */
	int reaped;
	int status;       /* of pid, once reaped; -1 unknown */
	int killed;       /* the host had to kill it (it did not end by itself) */
	long long cpu_ms; /* CPU time of its processes, once reaped; -1 unknown */
	long long next_id;
	char info[INFO_MAX];
	size_t info_len;
	char python[32];
	int parquet;
	sbx_cg_box cg;
	char iobuf[IOBUF];
};

static inline void sbx_local_close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* ---- sbx_local.c */

/*
 * 1 when the sandbox holds more than the memory limit: with a cgroup, when
 * the kernel had to OOM-kill inside it; without one, when its processes
 * and tmpfs files together hold more than the limit (then the next check
 * is due MEM_CHECK_MS later, in s->mem_check).
 */
int sbx_local_memory_over(sbx_local_box *s);

/* ---- sbx_local_run.c: the operations of sbx.h that talk to the driver */

/* Wait for the driver's ready frame. 0, or -1 with err (the sandbox is then stopped). */
int sbx_local_ready(sbx_local_box *s, char *err, size_t errlen);
cJSON *sbx_local_exec(sbx *s, const char *code, long long timeout_ms);
int sbx_local_put(sbx *s, const char *path, const void *data, size_t len, char *err, size_t errlen);
int sbx_local_get(sbx *s, const char *path, mk_buf *out, char *err, size_t errlen);
cJSON *sbx_local_list(sbx *s, char *err, size_t errlen);

/* ---- sbx_spawn.c */

/* A sandbox's writable places, each a tmpfs of the workspace's size (bwrap --tmpfs). */
extern const char *const sbx_local_tmpfs[SBX_LOCAL_NTMPFS];

/*
 * Build b's bwrap command line (from its paths, seccomp flag and limits)
 * and rlimits, and start its spawner thread. 0, or -1 with err; either way
 * sbx_local_spawn_release undoes what was done.
 */
int sbx_local_spawn_init(sbx_local *b, char *err, size_t errlen);
void sbx_local_spawn_release(sbx_local *b);

/*
 * Start s's processes: a uid slot (when the backend has its own uids),
 * pipes, the forked child in s's cgroup (made already), bwrap, a pidfd of
 * it. 0 with s's host ends set, non-blocking; or -1 with err, what s holds
 * then (a slot, a reaped pid) left to the caller's sbx_local_stop and free.
 */
int sbx_local_start(sbx_local_box *s, char *err, size_t errlen);

void sbx_local_slot_give(sbx_local *b, int slot); /* slot -1: none */

/* ---- sbx_stop.c */

/*
 * bwrap's --info-fd is readable: read it, and once its JSON is whole take
 * a pidfd of the sandbox's init (trusted only while it is bwrap's child)
 * and close the descriptor.
 */
void sbx_local_info_read(sbx_local_box *s);

/*
 * Stop the sandbox for good: give bwrap grace_ms to exit by itself (so its
 * status tells how the driver died), then SIGKILL the sandbox's init, which
 * kills every process of its PID namespace, and reap bwrap. On return
 * nothing of the sandbox runs; s->dead is set.
 */
void sbx_local_stop(sbx_local_box *s, int grace_ms);

/* Wait for bwrap (once). Its rusage counts the init and the driver when it reaped them itself. */
void sbx_local_reap(sbx_local_box *s);

/*
 * How the stopped sandbox ended, for a message ("exit code 3", "killed by
 * SIGSEGV"); *limit is "cpu_time" when that limit ended it, else NULL.
 */
void sbx_local_death_text(const sbx_local_box *s, char *buf, size_t len, const char **limit);

#endif
