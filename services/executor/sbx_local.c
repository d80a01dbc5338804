/*
 * sbx_local.c - the local sandbox backend: one bubblewrap sandbox per
 * session, on this host (libexecutor, sandbox layer; implements sbx.h).
 *
 * A sandbox is a bwrap process tree. The outer bwrap stays in the host's
 * PID namespace and only waits; its child is the sandbox's init (PID 1 of
 * a new PID namespace), whose child runs the Python driver. The layout,
 * the descriptors and the frames spoken over fds 3 and 4 are those of
 * SANDBOX.md; the driver's source is embedded (executor_driver_py) and
 * handed in through a memfd.
 *
 * What this file enforces, and how:
 *   - resource limits: rlimits set in the forked child before bwrap runs,
 *     inherited by everything inside; when the executor is root each
 *     sandbox runs under its own host uid (uid_base + slot), which makes
 *     RLIMIT_NPROC a per-sandbox count and keeps sandboxes from signalling
 *     or reading each other;
 *   - all a sandbox holds: its own cgroup (sbx_cgroup.c), joined by the
 *     forked child first, caps memory of every kind, CPU and processes; an
 *     OOM kill inside it stops the sandbox. Without a cgroup, a watch adds
 *     up its processes' PSS and tmpfs files, and seccomp denies memfd and
 *     SysV shared memory;
 *   - the wall clock, output caps and frame sizes: here, while polling the
 *     sandbox's pipes; a sandbox that overruns is killed whole;
 *   - system calls: a classic BPF deny list handed to bwrap (--seccomp).
 * What it does not: decide which session gets which sandbox (the session
 * layer), or keep state across executor restarts (sandboxes die with it).
 *
 * Killing is exact: the host holds a pidfd of the sandbox's init; SIGKILL
 * to it makes the kernel kill every process of the PID namespace, and the
 * outer bwrap, which is our child, exits once that is done, so reaping it
 * means nothing of the sandbox is left. sbx_create forks from one
 * long-lived thread of the backend because PR_SET_PDEATHSIG (ours and
 * bwrap's --die-with-parent) fires when the forking *thread* exits: a
 * sandbox made from a short-lived worker thread would otherwise die with it.
 * When the driver dies by itself, bwrap exits before the init, which is
 * orphaned; sbx_local_new makes the executor process a child subreaper
 * (PR_SET_CHILD_SUBREAPER) so that such an init becomes our child and is
 * reaped here, not left to PID 1. Side effect: any other orphaned
 * descendant of the executor is reparented to it too (it starts none).
 *
 * Threads: sbx_create may run concurrently (slots and the spawn hand-off
 * are under the backend's mutex; every descriptor is close-on-exec so
 * concurrent spawns do not leak into each other). A sandbox is used by one
 * thread at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/filter.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "sbx.h"
#include "sbx_cgroup.h"
#include "sbx_frame.h"
#include "sbx_result.h"
#include "sbx_seccomp.h"

extern const char executor_driver_py[];
extern const size_t executor_driver_py_len;

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

#define SANDBOX_ID      1000  /* uid and gid inside every sandbox: "sandbox" */
#define MAX_SLOTS       1024  /* concurrent sandboxes with their own uid */
#define CALL_TIMEOUT_MS 30000 /* put, get, list */
#define EXIT_GRACE_MS   1000  /* after the driver hangs up: time for bwrap to report its exit */
#define KILL_WAIT_MS    5000  /* for a killed sandbox to be gone before the host insists */
#define INFO_MAX        2048  /* bwrap's --info-fd JSON */
#define START_ERR_KEEP  (64 << 10) /* stderr kept during start-up, for the failure message */
#define IOBUF           (64 << 10)

/* The sandbox's descriptors, as the forked child arranges them for bwrap. */
enum {
	FD_NULL,    /* 0: /dev/null */
	FD_OUT,     /* 1: stdout pipe */
	FD_ERR,     /* 2: stderr pipe */
	FD_CTL_IN,  /* 3: host -> driver */
	FD_CTL_OUT, /* 4: driver -> host */
	FD_INFO,    /* bwrap --info-fd: the sandbox init's pid (bwrap closes it) */
	FD_DRIVER,  /* --ro-bind-data: /mark/driver.py */
	FD_PASSWD,  /* --ro-bind-data: /etc/passwd */
	FD_GROUP,   /* --ro-bind-data: /etc/group */
	FD_SECCOMP, /* --seccomp: the BPF program */
	NFDS
};

static const char passwd_data[] = "sandbox:x:1000:1000:sandbox:/workspace:/usr/sbin/nologin\n"
                                  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
static const char group_data[] = "sandbox:x:1000:\nnogroup:x:65534:\n";

/* Files of /etc bound read-only when the host has them: what Python, numpy and matplotlib read. */
static const char *const etc_files[] = {"/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime",
                                        "/etc/matplotlibrc", "/etc/fonts",       NULL};

/* The whole environment of the driver (SANDBOX.md). */
static const char *const sandbox_env[][2] = {
    {"PATH", "/usr/bin:/bin"},
    {"HOME", "/workspace"},
    {"LANG", "C.UTF-8"},
    {"MPLBACKEND", "Agg"},
    {"MPLCONFIGDIR", "/tmp/matplotlib"},
    {"OPENBLAS_NUM_THREADS", "1"},
    {"OMP_NUM_THREADS", "1"},
    {"PYTHONDONTWRITEBYTECODE", "1"},
    {"PYTHONHASHSEED", "0"},
    {"XDG_CACHE_HOME", "/tmp/cache"},
};

typedef struct sbx_local sbx_local;
typedef struct sbx_local_box sbx_local_box;

/* One fork handed to the spawner thread. */
struct spawn {
	int fd[NFDS];         /* becomes the child's fd i; -1: closed */
	long long uid;        /* run as this uid and gid; -1: as the executor */
	const sbx_cg_box *cg; /* the sandbox's cgroup, joined first */
	pid_t parent;
	pid_t pid; /* out */
	int err;   /* out: errno of fork */
	int done;
};

struct sbx_local {
	sbx_backend base; /* ops: local_ops */
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

/* ---- small helpers -------------------------------------------------------- */

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* A sealed-enough memfd holding data, positioned at its start (bwrap reads it to the end). */
static int memfd_with(const char *name, const void *data, size_t len)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	const char *p = data;

	if (fd < 0)
		return -1;
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		p += w;
		len -= (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* "SIGKILL" for 9. */
static const char *sig_name(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "signal %d", sig);
	return buf;
}

/* A path the driver may be asked for: relative, inside /workspace, no "..". */
static int path_ok(const char *path)
{
	const char *p = path;

	if (!path || !*path || *path == '/' || strlen(path) > 4096)
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

/* ---- the command line and the child --------------------------------------- */

static int arg_add(sbx_local *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int arg_add(sbx_local *b, const char *fmt, ...)
{
	va_list ap;
	char buf[512];
	int n;

	if (b->argc + 2 > b->argv_cap) {
		size_t cap = b->argv_cap ? b->argv_cap * 2 : 64;
		char **v = realloc(b->argv, cap * sizeof(*v));

		if (!v)
			return -1;
		b->argv = v;
		b->argv_cap = cap;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	b->argv[b->argc] = strdup(buf);
	if (!b->argv[b->argc])
		return -1;
	b->argv[++b->argc] = NULL;
	return 0;
}

/* The bwrap command line. Descriptor numbers are fixed (the enum above), so it is built once. */
/* A sandbox's writable places: each a tmpfs of the workspace's size. */
static const char *const tmpfs_mounts[] = {"/workspace", "/tmp", "/dev/shm"};

static int argv_build(sbx_local *b)
{
	const sbx_limits *L = &b->lim;
	int r = 0;

	r |= arg_add(b, "%s", b->bwrap);
	/* --unshare-all only tries a user namespace; --disable-userns needs a sure one. */
	r |= arg_add(b, "--unshare-all");
	r |= arg_add(b, "--unshare-user");
	r |= arg_add(b, "--disable-userns");
	r |= arg_add(b, "--die-with-parent");
	r |= arg_add(b, "--new-session");
	/* A root executor's bwrap would otherwise hand its capabilities to the sandbox. */
	r |= arg_add(b, "--cap-drop");
	r |= arg_add(b, "ALL");
	r |= arg_add(b, "--uid");
	r |= arg_add(b, "%d", SANDBOX_ID);
	r |= arg_add(b, "--gid");
	r |= arg_add(b, "%d", SANDBOX_ID);
	r |= arg_add(b, "--hostname");
	r |= arg_add(b, "sandbox");
	r |= arg_add(b, "--ro-bind");
	r |= arg_add(b, "/usr");
	r |= arg_add(b, "/usr");
	r |= arg_add(b, "--symlink");
	r |= arg_add(b, "usr/bin");
	r |= arg_add(b, "/bin");
	r |= arg_add(b, "--symlink");
	r |= arg_add(b, "usr/lib");
	r |= arg_add(b, "/lib");
	r |= arg_add(b, "--symlink");
	r |= arg_add(b, "usr/lib64");
	r |= arg_add(b, "/lib64");
	r |= arg_add(b, "--symlink");
	r |= arg_add(b, "usr/sbin");
	r |= arg_add(b, "/sbin");
	for (int i = 0; etc_files[i]; i++) {
		r |= arg_add(b, "--ro-bind-try");
		r |= arg_add(b, "%s", etc_files[i]);
		r |= arg_add(b, "%s", etc_files[i]);
	}
	r |= arg_add(b, "--ro-bind-data");
	r |= arg_add(b, "%d", FD_PASSWD);
	r |= arg_add(b, "/etc/passwd");
	r |= arg_add(b, "--ro-bind-data");
	r |= arg_add(b, "%d", FD_GROUP);
	r |= arg_add(b, "/etc/group");
	r |= arg_add(b, "--proc");
	r |= arg_add(b, "/proc");
	r |= arg_add(b, "--dev");
	r |= arg_add(b, "/dev");
	/*
	 * Every writable place is a tmpfs with a size: --size applies to the
	 * --tmpfs after it. /dev itself is a tmpfs without one, so it is made
	 * read-only once /dev/shm is mounted on it; / is read-only too.
	 */
	for (size_t i = 0; i < sizeof(tmpfs_mounts) / sizeof(tmpfs_mounts[0]); i++) {
		if (L->workspace_bytes > 0) {
			r |= arg_add(b, "--size");
			r |= arg_add(b, "%lld", L->workspace_bytes);
		}
		r |= arg_add(b, "--tmpfs");
		r |= arg_add(b, "%s", tmpfs_mounts[i]);
	}
	r |= arg_add(b, "--dir");
	r |= arg_add(b, "/workspace/output");
	r |= arg_add(b, "--ro-bind-data");
	r |= arg_add(b, "%d", FD_DRIVER);
	r |= arg_add(b, "/mark/driver.py");
	r |= arg_add(b, "--remount-ro");
	r |= arg_add(b, "/dev");
	r |= arg_add(b, "--remount-ro");
	r |= arg_add(b, "/");
	r |= arg_add(b, "--info-fd");
	r |= arg_add(b, "%d", FD_INFO);
	if (b->seccomp) {
		r |= arg_add(b, "--seccomp");
		r |= arg_add(b, "%d", FD_SECCOMP);
	}
	r |= arg_add(b, "--chdir");
	r |= arg_add(b, "/workspace");
	r |= arg_add(b, "--clearenv");
	for (size_t i = 0; i < sizeof(sandbox_env) / sizeof(sandbox_env[0]); i++) {
		r |= arg_add(b, "--setenv");
		r |= arg_add(b, "%s", sandbox_env[i][0]);
		r |= arg_add(b, "%s", sandbox_env[i][1]);
	}
	r |= arg_add(b, "--");
	r |= arg_add(b, "%s", b->python);
	r |= arg_add(b, "-I");
	r |= arg_add(b, "/mark/driver.py");
	r |= arg_add(b, "%s", b->preload);
	return r ? -1 : 0;
}

static void rlim_add(sbx_local *b, int res, long long v)
{
	if (v <= 0)
		return;
	b->rlim[b->nrlim].res = res;
	b->rlim[b->nrlim].rl.rlim_cur = (rlim_t)v;
	b->rlim[b->nrlim].rl.rlim_max = (rlim_t)v;
	b->nrlim++;
}

/* Write "mark-sandbox: <what> failed (errno N)" to fd 2 and exit; async-signal-safe. */
static void __attribute__((noreturn)) child_fail(const char *what, int e)
{
	char msg[200], num[16];
	size_t n = 0, k = 0;
	const char *parts[] = {"mark-sandbox: ", what, " failed (errno ", NULL, ")\n"};

	do {
		num[k++] = (char)('0' + e % 10);
		e /= 10;
	} while (e > 0 && k < sizeof(num));
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (!parts[i]) {
			while (k > 0 && n < sizeof(msg))
				msg[n++] = num[--k];
			continue;
		}
		for (const char *p = parts[i]; *p && n < sizeof(msg); p++)
			msg[n++] = *p;
	}
	if (write(2, msg, n) < 0) {
		/* nothing more can be said */
	}
	_exit(127);
}

/*
 * Between fork and exec: only async-signal-safe calls (the executor has
 * other threads; one of them may hold malloc's lock). Raw system calls for
 * the identity change, since glibc's setuid would try to reach threads
 * this process does not have.
 */
static void __attribute__((noreturn)) child_run(const sbx_local *b, const struct spawn *j)
{
	int tmp[NFDS];
	struct sigaction dfl;
	sigset_t none;
	int e;

	/* Into the sandbox's cgroup before anything else (its descriptors are above NFDS). */
	if (j->cg && (e = sbx_cg_box_join(j->cg, getpid())) != 0)
		child_fail("joining the sandbox's cgroup", -e);
	/* Move the descriptors out of 0..NFDS-1 first, so no dup2 overwrites a source. */
	for (int i = 0; i < NFDS; i++) {
		tmp[i] = -1;
		if (j->fd[i] >= 0 && (tmp[i] = fcntl(j->fd[i], F_DUPFD_CLOEXEC, NFDS)) < 0)
			child_fail("fcntl", errno);
	}
	for (int i = 0; i < NFDS; i++) {
		if (tmp[i] < 0)
			close(i);
		else if (dup2(tmp[i], i) < 0) /* the copy is not close-on-exec */
			child_fail("dup2", errno);
	}
	if (syscall(SYS_close_range, NFDS, ~0U, 0) != 0) {
		struct rlimit nofile;

		if (getrlimit(RLIMIT_NOFILE, &nofile) != 0)
			child_fail("getrlimit", errno);
		for (rlim_t fd = NFDS; fd < nofile.rlim_cur && fd < 65536; fd++)
			close((int)fd);
	}
	for (int i = 0; i < b->nrlim; i++)
		if (setrlimit(b->rlim[i].res, &b->rlim[i].rl) != 0)
			child_fail("setrlimit", errno);
	if (j->uid >= 0) {
		if (syscall(SYS_setgroups, 0, NULL) != 0)
			child_fail("setgroups", errno);
		if (syscall(SYS_setgid, (gid_t)j->uid) != 0)
			child_fail("setgid", errno);
		if (syscall(SYS_setuid, (uid_t)j->uid) != 0)
			child_fail("setuid", errno);
	}
	/* After the identity change, which would clear it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
		child_fail("prctl", errno);
	if (getppid() != j->parent)
		_exit(127);
	/* Ignored signals stay ignored across exec, and the mask stays: start clean. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	execve(b->bwrap, b->argv, b->envp);
	child_fail("execve of bwrap", errno);
}

/* The backend's one forking thread (see the top of the file for why). */
static void *spawner_main(void *arg)
{
	sbx_local *b = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		struct spawn *j;

		while (!b->job && !b->stop)
			pthread_cond_wait(&b->cv, &b->mu);
		if (!b->job)
			break;
		j = b->job;
		pthread_mutex_unlock(&b->mu);
		j->pid = fork();
		if (j->pid == 0)
			child_run(b, j);
		j->err = j->pid < 0 ? errno : 0;
		pthread_mutex_lock(&b->mu);
		j->done = 1;
		b->job = NULL;
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static int spawn(sbx_local *b, struct spawn *j)
{
	j->parent = getpid();
	pthread_mutex_lock(&b->mu);
	while (b->job)
		pthread_cond_wait(&b->cv, &b->mu);
	b->job = j;
	pthread_cond_broadcast(&b->cv);
	while (!j->done)
		pthread_cond_wait(&b->cv, &b->mu);
	pthread_mutex_unlock(&b->mu);
	errno = j->err;
	return j->err ? -1 : 0;
}

static int slot_take(sbx_local *b)
{
	int slot = -1;

	pthread_mutex_lock(&b->mu);
	for (int i = 0; i < MAX_SLOTS; i++) {
		if (!b->slot_used[i]) {
			b->slot_used[i] = 1;
			slot = i;
			break;
		}
	}
	pthread_mutex_unlock(&b->mu);
	return slot;
}

static void slot_give(sbx_local *b, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&b->mu);
	b->slot_used[slot] = 0;
	pthread_mutex_unlock(&b->mu);
}

/* ---- process life ------------------------------------------------------- */

/* Wait up to ms for a pidfd to report its process's exit; 1 when it did. */
static int pidfd_wait(int fd, int ms)
{
	int64_t end = mk_mono_ms() + ms;

	if (fd < 0)
		return 0;
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int64_t left = end - mk_mono_ms();
		int r = poll(&p, 1, left > 0 ? (int)left : 0);

		if (r > 0)
			return 1;
		if (r == 0 || (r < 0 && errno != EINTR))
			return 0;
	}
}

static long long cpu_ms_of(const struct rusage *ru)
{
	return (long long)(ru->ru_utime.tv_sec + ru->ru_stime.tv_sec) * 1000 +
	       (ru->ru_utime.tv_usec + ru->ru_stime.tv_usec) / 1000;
}

/* Wait for bwrap. Its rusage counts the init and the driver when it reaped them itself. */
static void reap(sbx_local_box *s)
{
	struct rusage ru;
	int st;

	if (s->reaped || s->pid <= 0)
		return;
	for (;;) {
		pid_t r = wait4(s->pid, &st, 0, &ru);

		if (r == s->pid) {
			s->status = st;
			s->cpu_ms = cpu_ms_of(&ru);
			break;
		}
		if (r < 0 && errno == EINTR)
			continue;
		s->status = -1; /* e.g. SIGCHLD ignored by the process: the kernel reaped it */
		break;
	}
	s->reaped = 1;
}

/*
 * Stop the sandbox for good: give bwrap grace_ms to exit by itself (so its
 * status tells how the driver died), then SIGKILL the sandbox's init, which
 * kills every process of its PID namespace, and reap bwrap. On return
 * nothing of the sandbox runs.
 */
static void sandbox_stop(sbx_local_box *s, int grace_ms)
{
	s->dead = 1;
	if (s->pid <= 0 || s->reaped)
		goto init;
	if (grace_ms > 0 && pidfd_wait(s->pidfd, grace_ms))
		goto init;
	s->killed = 1;
	if (s->init_fd >= 0)
		syscall(SYS_pidfd_send_signal, s->init_fd, SIGKILL, NULL, 0);
	if (!pidfd_wait(s->pidfd, KILL_WAIT_MS)) {
		MK_WARN("EXEC-SBX-KILL", NULL, "sandbox %d did not stop after SIGKILL to its init",
		        (int)s->pid);
		kill(s->pid, SIGKILL);
	}
init:
	reap(s);
	/*
	 * bwrap also exits on its own when the driver dies, before the init;
	 * then the init, no longer our grandchild, is killed here and waited
	 * for, so the uid slot is free of processes when it is given back.
	 */
	if (s->init_fd >= 0) {
		struct rusage ru;
		siginfo_t si;

		syscall(SYS_pidfd_send_signal, s->init_fd, SIGKILL, NULL, 0);
		if (!pidfd_wait(s->init_fd, KILL_WAIT_MS))
			MK_WARN("EXEC-SBX-KILL", NULL, "sandbox init of %d is still running",
			        (int)s->pid);
		/*
		 * Orphaned, it became our child (we are a subreaper): reap it (else
		 * ECHILD). The raw waitid also gives its rusage, which counts the
		 * driver it reaped: how the CPU limit is told from other kills.
		 */
		memset(&si, 0, sizeof(si));
		if (syscall(SYS_waitid, P_PIDFD, s->init_fd, &si, WEXITED | WNOHANG, &ru) == 0 &&
		    si.si_pid != 0 && cpu_ms_of(&ru) > s->cpu_ms)
			s->cpu_ms = cpu_ms_of(&ru);
		close_fd(&s->init_fd);
	}
}

/* The parent pid of a process, from /proc; -1 when it is gone. */
static pid_t ppid_of(pid_t pid)
{
	char path[64], buf[512], *p;
	int fd, ppid;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* the command name may hold anything, ')' included */
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

/* bwrap's --info-fd JSON arrived (complete or not): take a pidfd of the sandbox's init. */
static void info_take(sbx_local_box *s)
{
	char e[64];
	cJSON *j;
	long long pid;
	int fd;

	if (s->init_fd >= 0 || !memchr(s->info, '}', s->info_len))
		return;
	j = mk_json_parse(s->info, s->info_len, 4, e, sizeof(e));
	if (!j)
		return;
	if (mk_json_int(j, "child-pid", &pid) == 0 && pid > 1 && pid <= INT_MAX) {
		fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
		/*
		 * The pid is trusted only if, once we hold a pidfd (which cannot
		 * be recycled), the process is still bwrap's child: otherwise
		 * the init is gone already and its pid may be someone else's.
		 */
		if (fd >= 0 && ppid_of((pid_t)pid) == s->pid) {
			s->init_fd = fd;
			s->init_pid = (pid_t)pid;
		} else if (fd >= 0)
			close(fd);
	}
	cJSON_Delete(j);
	close_fd(&s->info_fd);
}

/* ---- talking to the driver ------------------------------------------------ */

typedef struct {
	/* the request: one whole frame, header included */
	unsigned char *req;
	size_t req_len, req_off;
	sbx_frame_rx rx; /* the reply */
	/* output read meanwhile */
	sbx_stream out, err;
	long long kill_bytes; /* stop once out + err pass this; 0: never */
	int watch_memory;     /* check the whole sandbox's memory meanwhile */
	char why[160];        /* what broke, for X_BAD */
} xfer;

enum { X_REPLY, X_TIMEOUT, X_EXITED, X_BAD, X_OUTPUT, X_MEMORY };

static void xfer_init(xfer *x, int keep, const sbx_limits *L, size_t frame_max)
{
	memset(x, 0, sizeof(*x));
	sbx_frame_rx_init(&x->rx, frame_max);
	sbx_stream_init(&x->out, keep, keep ? L->stdout_bytes : 0);
	sbx_stream_init(&x->err, keep, keep ? L->stderr_bytes : 0);
	x->kill_bytes = keep ? L->output_kill_bytes : 0;
}

static void xfer_release(xfer *x)
{
	free(x->req);
	x->req = NULL;
	sbx_frame_rx_release(&x->rx);
	sbx_stream_release(&x->out);
	sbx_stream_release(&x->err);
}

/* Read what a pipe holds now (at most a few buffers, so the clock is checked). */
static void pump(sbx_local_box *s, int fd, sbx_stream *st, int rounds)
{
	sbx_stream_read_fd(st, fd, s->iobuf, sizeof(s->iobuf), rounds);
}

/* ---- the whole sandbox's memory ------------------------------------------- */

/* How often the memory of a sandbox's processes is added up while code runs. */
#define MEM_CHECK_MS 100

/* Proportional set size (bytes) of one process, from smaps_rollup; 0 when unreadable. */
static long long pss_of(const char *pid)
{
	char path[300], buf[4096];
	long long kb = 0;
	ssize_t n;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/smaps_rollup", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nPss:");
	if (p)
		sscanf(p + 5, "%lld", &kb);
	return kb * 1024;
}

/*
 * The memory of every process in the sandbox together (each process's
 * proportional share, so pages shared after a fork count once): the
 * per-process address-space limit alone would let N processes hold N times
 * the limit. Processes are found by their PID namespace, the sandbox's own.
 * -1 when the sandbox's init is not known yet.
 */
static long long sandbox_memory(sbx_local_box *s)
{
	char path[300];
	struct stat ns, st;
	struct dirent *d;
	long long total = 0;
	DIR *dir;

	if (s->init_pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/ns/pid", (int)s->init_pid);
	if (stat(path, &ns) != 0)
		return -1;
	dir = opendir("/proc");
	if (!dir)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] < '1' || d->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/pid", d->d_name);
		if (stat(path, &st) == 0 && st.st_ino == ns.st_ino && st.st_dev == ns.st_dev)
			total += pss_of(d->d_name);
	}
	closedir(dir);
	/* Files in the sandbox's tmpfs mounts are memory the host holds for it too. */
	for (size_t i = 0; i < sizeof(tmpfs_mounts) / sizeof(tmpfs_mounts[0]); i++) {
		struct statvfs v;

		snprintf(path, sizeof(path), "/proc/%d/root%s", (int)s->init_pid, tmpfs_mounts[i]);
		if (statvfs(path, &v) == 0)
			total += (long long)(v.f_blocks - v.f_bfree) * (long long)v.f_frsize;
	}
	return total;
}

/*
 * 1 when the sandbox holds more than the memory limit: with a cgroup, when
 * the kernel had to OOM-kill inside it; without one, when its processes
 * and tmpfs files together hold more than the limit.
 */
static int memory_over(sbx_local_box *s)
{
	long long limit = s->b->lim.memory_bytes, used;

	if (s->b->cg.kind != SBX_CG_OFF)
		return sbx_cg_box_oom(&s->cg);
	if (limit <= 0)
		return 0;
	s->mem_check = mk_mono_ms() + MEM_CHECK_MS;
	used = sandbox_memory(s);
	return used > limit;
}

/*
 * Send x->req (if any) and wait for one reply frame, reading stdout and
 * stderr meanwhile, until the deadline. Also takes bwrap's info while it
 * is due (start-up).
 */
static int xfer_run(sbx_local_box *s, xfer *x, int64_t deadline)
{
	for (;;) {
		struct pollfd p[6];
		int n = 0, iw = -1, ir, io = -1, ie = -1, ii = -1, ip, r;
		int64_t left = deadline - mk_mono_ms();

		if (left <= 0)
			return X_TIMEOUT;
		if (x->req_off < x->req_len) {
			iw = n;
			p[n++] = (struct pollfd){s->ctl_w, POLLOUT, 0};
		}
		ir = n;
		p[n++] = (struct pollfd){s->ctl_r, POLLIN, 0};
		if (!x->out.closed) {
			io = n;
			p[n++] = (struct pollfd){s->out_fd, POLLIN, 0};
		}
		if (!x->err.closed) {
			ie = n;
			p[n++] = (struct pollfd){s->err_fd, POLLIN, 0};
		}
		if (s->info_fd >= 0) {
			ii = n;
			p[n++] = (struct pollfd){s->info_fd, POLLIN, 0};
		}
		ip = n;
		p[n++] = (struct pollfd){s->pidfd, POLLIN, 0};
		if (x->watch_memory && left > MEM_CHECK_MS)
			left = MEM_CHECK_MS;
		r = poll(p, (nfds_t)n, left > INT_MAX ? INT_MAX : (int)left);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			snprintf(x->why, sizeof(x->why), "poll: %s", strerror(errno));
			return X_BAD;
		}
		if (io >= 0 && p[io].revents)
			pump(s, s->out_fd, &x->out, 16);
		if (ie >= 0 && p[ie].revents)
			pump(s, s->err_fd, &x->err, 16);
		if (x->kill_bytes > 0 && x->out.total + x->err.total > x->kill_bytes)
			return X_OUTPUT;
		if (x->watch_memory && mk_mono_ms() >= s->mem_check && memory_over(s))
			return X_MEMORY;
		if (ii >= 0 && p[ii].revents) {
			ssize_t k = read(s->info_fd, s->info + s->info_len,
			                 sizeof(s->info) - 1 - s->info_len);

			if (k > 0) {
				s->info_len += (size_t)k;
				info_take(s); /* closes info_fd once it has the pid */
			} else if (k == 0 || (errno != EINTR && errno != EAGAIN)) {
				close_fd(&s->info_fd);
			}
			if (s->info_fd >= 0 && s->info_len == sizeof(s->info) - 1)
				close_fd(&s->info_fd);
		}
		if (iw >= 0 && p[iw].revents) {
			ssize_t w = sbx_write_nosigpipe(s->ctl_w, x->req + x->req_off,
			                                x->req_len - x->req_off);

			if (w > 0)
				x->req_off += (size_t)w;
			else if (w < 0 && errno != EINTR && errno != EAGAIN)
				return X_EXITED;
		}
		if (p[ir].revents || p[ip].revents) {
			int f = sbx_frame_read_fd(&x->rx, s->ctl_r, s->iobuf, sizeof(s->iobuf),
			                          x->why, sizeof(x->why));

			if (f == 1)
				return X_REPLY;
			if (f == -2)
				return X_BAD;
			if (f == -1 || p[ip].revents) {
				pump(s, s->out_fd, &x->out, 16);
				pump(s, s->err_fd, &x->err, 16);
				return X_EXITED;
			}
		}
	}
}

/* How the sandbox ended, for a message ("exit code 3", "killed by SIGSEGV"); *limit if it was one.
 */
static void death_text(sbx_local_box *s, char *buf, size_t len, const char **limit)
{
	long long cpu_total = s->b->lim.cpu_total_s;
	int st = s->status, sig = 0;
	char name[32];

	*limit = NULL;
	if (s->killed) {
		snprintf(buf, len, "it closed its control channel and was stopped");
		return;
	}
	if (!s->reaped || st < 0) {
		snprintf(buf, len, "its exit status is unknown");
		return;
	}
	/* bwrap exits with the driver's status, 128+N when a signal N killed it. */
	if (WIFSIGNALED(st))
		sig = WTERMSIG(st);
	else if (WIFEXITED(st) && WEXITSTATUS(st) > 128 && WEXITSTATUS(st) < 128 + NSIG)
		sig = WEXITSTATUS(st) - 128;
	if (!sig) {
		snprintf(buf, len, "exit code %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
		return;
	}
	sig_name(sig, name, sizeof(name));
	/*
	 * The kernel's CPU limit sends SIGXCPU (which the driver turns into an
	 * exception, unless the code undid that) and SIGKILL at the hard limit.
	 * A SIGKILL may also come from the OOM killer or the code itself: it
	 * is the CPU limit when the sandbox's processes used that much CPU
	 * (unknown CPU: assumed so).
	 */
	if (cpu_total > 0 &&
	    (sig == SIGXCPU ||
	     (sig == SIGKILL && (s->cpu_ms < 0 || s->cpu_ms + 1000 >= cpu_total * 1000)))) {
		*limit = "cpu_time";
		snprintf(buf, len, "killed by %s at its CPU time limit of %lld s", name, cpu_total);
		return;
	}
	snprintf(buf, len, "killed by %s", name);
}

/* Empty the output pipes of what earlier code left there (a thread still printing, say). */
static void drain_stale(sbx_local_box *s)
{
	sbx_stream dummy;

	sbx_stream_init(&dummy, 0, 0);
	pump(s, s->out_fd, &dummy, 64);
	sbx_stream_init(&dummy, 0, 0);
	pump(s, s->err_fd, &dummy, 64);
}

static cJSON *local_exec(sbx *base, const char *code, long long timeout_ms)
{
	sbx_local_box *s = (sbx_local_box *)base;
	const sbx_limits *L = &s->b->lim;
	char msg[300], how[160];
	const char *limit = NULL;
	cJSON *reply = NULL, *res = NULL;
	long long id;
	int64_t t0;
	int rc;
	xfer x;

	/* A reply larger than the limits allow is read and dropped, never held. */
	xfer_init(&x, 1, L,
	          sbx_result_frame_max(L) < SBX_FRAME_MAX ? sbx_result_frame_max(L)
	                                                  : SBX_FRAME_MAX);
	if (!code)
		code = "";
	if (mk_utf8_valid_prefix((const unsigned char *)code, strlen(code)) != strlen(code)) {
		res = sbx_result_host("ValueError", "the code is not valid UTF-8 and was not run",
		                      &x.out, &x.err, 0, NULL, 0);
		xfer_release(&x);
		return res;
	}
	if (s->dead) {
		res = sbx_result_host("SandboxExited",
		                      "the sandbox is no longer running; the session was reset",
		                      &x.out, &x.err, 0, NULL, 1);
		xfer_release(&x);
		return res;
	}
	drain_stale(s);
	id = ++s->next_id;
	x.req = sbx_frame_exec(id, code, L, &x.req_len);
	if (!x.req) {
		res = sbx_result_host("MemoryError", "the code is too large to send to the sandbox",
		                      &x.out, &x.err, 0, NULL, 0);
		xfer_release(&x);
		return res;
	}

	t0 = mk_mono_ms();
	x.watch_memory = 1;
	s->mem_check = t0 + MEM_CHECK_MS;
	for (;;) {
		long long rid;

		rc = xfer_run(s, &x, t0 + (timeout_ms > 0 ? timeout_ms : 1));
		/* A driver killed by the kernel for the sandbox's memory. */
		if (rc == X_EXITED && s->b->cg.kind != SBX_CG_OFF && sbx_cg_box_oom(&s->cg))
			rc = X_MEMORY;
		if (rc != X_REPLY)
			break;
		reply = sbx_frame_rx_json(&x.rx, x.why, sizeof(x.why));
		if (reply && mk_json_int(reply, "id", &rid) == 0 && rid < id) {
			/*
			 * An earlier request's reply, late: code that wrote a reply of
			 * its own on the control channel left the driver's behind. It is
			 * dropped; only this request's id is taken.
			 */
			cJSON_Delete(reply);
			reply = NULL;
			sbx_frame_rx_next(&x.rx);
			continue;
		}
		if (!reply) {
			rc = X_BAD;
		} else if (strcmp(mk_json_str(reply, "t"), "done") != 0 ||
		           mk_json_int(reply, "id", &rid) != 0 || rid != id ||
		           !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(reply, "result"))) {
			snprintf(x.why, sizeof(x.why), "a '%.20s' reply to an execution",
			         mk_json_str(reply, "t"));
			rc = X_BAD;
		} else {
			res = cJSON_DetachItemFromObjectCaseSensitive(reply, "result");
			sbx_result_enforce(res, L);
		}
		cJSON_Delete(reply);
		break;
	}
	if (rc == X_REPLY) {
		/* What the code printed before the reply is in the pipes already. */
		pump(s, s->out_fd, &x.out, 64);
		pump(s, s->err_fd, &x.err, 64);
		res = sbx_result_finish(res, &x.out, &x.err, mk_mono_ms() - t0, NULL, 0);
		xfer_release(&x);
		return res;
	}

	switch (rc) {
	case X_TIMEOUT:
		sandbox_stop(s, 0);
		snprintf(msg, sizeof(msg),
		         "the code ran longer than %lld ms and was stopped; the session was reset",
		         timeout_ms);
		res = sbx_result_host("TimeoutError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "wall_time", 1);
		break;
	case X_OUTPUT:
		sandbox_stop(s, 0);
		snprintf(
		    msg, sizeof(msg),
		    "the code wrote more than %lld bytes of output and was stopped; the session "
		    "was reset",
		    L->output_kill_bytes);
		res = sbx_result_host("OutputLimitError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "output", 1);
		break;
	case X_MEMORY:
		sandbox_stop(s, 0);
		snprintf(msg, sizeof(msg),
		         "the sandbox's processes together used more than %lld bytes of memory and "
		         "were stopped; the session was reset",
		         L->memory_bytes);
		res = sbx_result_host("MemoryError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "memory", 1);
		break;
	case X_EXITED:
		sandbox_stop(s, EXIT_GRACE_MS);
		pump(s, s->out_fd, &x.out, 64);
		pump(s, s->err_fd, &x.err, 64);
		death_text(s, how, sizeof(how), &limit);
		snprintf(
		    msg, sizeof(msg),
		    "the Python session ended while running the code (%s); the session was reset",
		    how);
		res = sbx_result_host("SandboxExited", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      limit, 1);
		break;
	default:
		sandbox_stop(s, 0);
		snprintf(
		    msg, sizeof(msg),
		    "the sandbox broke the protocol (%s) and was stopped; the session was reset",
		    x.why);
		res = sbx_result_host("SandboxError", msg, &x.out, &x.err, mk_mono_ms() - t0, NULL,
		                      1);
		break;
	}
	MK_INFO("EXEC-SBX-LOST", NULL, "sandbox %d lost during an execution: %s", (int)s->pid,
	        rc == X_TIMEOUT  ? "wall-clock timeout"
	        : rc == X_OUTPUT ? "output limit"
	        : rc == X_MEMORY ? "memory limit"
	        : rc == X_EXITED ? how
	                         : x.why);
	xfer_release(&x);
	return res;
}

/*
 * One request that is not an execution: send, wait at most
 * CALL_TIMEOUT_MS for the reply of type `want` (a sandbox that does not
 * give it is stopped). The reply, or NULL with err. *oversize is set
 * instead when the reply was larger than frame_max (then NULL, no err, the
 * session intact).
 */
static cJSON *call(sbx_local_box *s, const char *op, unsigned char *frame, size_t len, long long id,
                   const char *want, size_t frame_max, int *oversize, char *err, size_t errlen)
{
	cJSON *reply = NULL;
	long long rid;
	xfer x;
	int rc;

	xfer_init(&x, 0, &s->b->lim, frame_max);
	x.req = frame;
	x.req_len = len;
	if (oversize)
		*oversize = 0;
	rc = xfer_run(s, &x, mk_mono_ms() + CALL_TIMEOUT_MS);
	if (rc == X_REPLY && x.rx.oversize && oversize) {
		*oversize = 1;
		xfer_release(&x);
		return NULL;
	}
	if (rc == X_REPLY && !x.rx.oversize &&
	    (reply = sbx_frame_rx_json(&x.rx, x.why, sizeof(x.why)))) {
		const char *t = mk_json_str(reply, "t");

		if (mk_json_int(reply, "id", &rid) != 0 || rid != id) {
			snprintf(x.why, sizeof(x.why), "a reply to another request");
		} else if (strcmp(t, "error") == 0) {
			const char *m = mk_json_str(reply, "message");

			mk_errf(err, errlen, "sandbox refused '%s': %s", op,
			        m ? m : "no reason given");
			cJSON_Delete(reply);
			xfer_release(&x);
			return NULL;
		} else if (strcmp(t, want) == 0) {
			xfer_release(&x);
			return reply;
		} else {
			snprintf(x.why, sizeof(x.why), "a '%.20s' reply to '%s'", t, op);
		}
		cJSON_Delete(reply);
		reply = NULL;
	} else if (rc == X_REPLY && x.rx.oversize) {
		snprintf(x.why, sizeof(x.why), "a reply of %zu bytes", x.rx.body_len);
	}
	sandbox_stop(s, 0);
	if (rc == X_TIMEOUT)
		mk_errf(err, errlen, "sandbox did not answer '%s' within %d s and was stopped", op,
		        CALL_TIMEOUT_MS / 1000);
	else if (rc == X_EXITED)
		mk_errf(err, errlen, "sandbox ended during '%s'", op);
	else
		mk_errf(err, errlen, "sandbox broke the protocol during '%s' (%s) and was stopped",
		        op, x.why);
	MK_INFO("EXEC-SBX-LOST", NULL, "sandbox %d lost during '%s'", (int)s->pid, op);
	xfer_release(&x);
	return NULL;
}

static int local_put(sbx *base, const char *path, const void *data, size_t len, char *err,
                     size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	unsigned char *f;
	cJSON *reply;
	long long id;
	size_t n;

	if (!path_ok(path)) {
		mk_errf(err, errlen, "path '%s' is not inside the workspace", path ? path : "");
		return -1;
	}
	if (s->dead) {
		mk_errf(err, errlen, "sandbox is no longer running");
		return -1;
	}
	if (len > sbx_frame_put_max(path)) {
		mk_errf(err, errlen, "file '%s' is too large for the sandbox (%zu bytes)", path,
		        len);
		return -1;
	}
	id = ++s->next_id;
	f = sbx_frame_put(id, path, data, len, &n);
	if (!f) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	reply = call(s, "put", f, n, id, "ok", 1 << 16, NULL, err, errlen);
	if (!reply)
		return -1;
	cJSON_Delete(reply);
	return 0;
}

static int local_get(sbx *base, const char *path, mk_buf *out, char *err, size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	size_t frame_max = SBX_FRAME_MAX, room, b64len, n;
	unsigned char *f, *data;
	const char *b64;
	cJSON *req, *reply;
	long long id, bytes;
	int oversize, dn;

	if (!path_ok(path)) {
		mk_errf(err, errlen, "path '%s' is not inside the workspace", path ? path : "");
		return -1;
	}
	if (s->dead) {
		mk_errf(err, errlen, "sandbox is no longer running");
		return -1;
	}
	room = out->max ? out->max - out->len : SIZE_MAX;
	if (room < (SBX_FRAME_MAX - 4096) / 4 * 3)
		frame_max = room / 3 * 4 + 4096 + strlen(path) * 6;
	id = ++s->next_id;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "t", "get");
	cJSON_AddNumberToObject(req, "id", (double)id);
	cJSON_AddStringToObject(req, "path", path);
	f = sbx_frame_encode(req, &n);
	cJSON_Delete(req);
	if (!f) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	reply = call(s, "get", f, n, id, "file", frame_max, &oversize, err, errlen);
	if (oversize) {
		mk_errf(err, errlen, "file '%s' is larger than the %zu bytes allowed", path, room);
		return -1;
	}
	if (!reply)
		return -1;
	b64 = mk_json_str(reply, "data_b64");
	if (!b64 || mk_json_int(reply, "bytes", &bytes) != 0 || bytes < 0 ||
	    (b64len = strlen(b64)) % 4 != 0 || b64len > INT_MAX) {
		mk_errf(err, errlen, "sandbox sent a malformed file for '%s'", path);
		cJSON_Delete(reply);
		return -1;
	}
	if ((unsigned long long)bytes > room) {
		mk_errf(err, errlen, "file '%s' is larger than the %zu bytes allowed", path, room);
		cJSON_Delete(reply);
		return -1;
	}
	data = malloc(b64len / 4 * 3 + 1);
	dn = data ? EVP_DecodeBlock(data, (const unsigned char *)b64, (int)b64len) : -1;
	/* EVP_DecodeBlock counts the padding's zero bytes too. */
	if (dn >= 0 && b64len >= 1 && b64[b64len - 1] == '=')
		dn--;
	if (dn >= 0 && b64len >= 2 && b64[b64len - 2] == '=')
		dn--;
	if (dn < 0 || dn != bytes || mk_buf_append(out, data, (size_t)dn) != 0) {
		mk_errf(err, errlen, "sandbox sent a malformed file for '%s'", path);
		free(data);
		cJSON_Delete(reply);
		return -1;
	}
	free(data);
	cJSON_Delete(reply);
	return 0;
}

static cJSON *local_list(sbx *base, char *err, size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	cJSON *req, *reply, *files;
	unsigned char *f;
	long long id;
	size_t n;

	if (s->dead) {
		mk_errf(err, errlen, "sandbox is no longer running");
		return NULL;
	}
	id = ++s->next_id;
	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "t", "list");
	cJSON_AddNumberToObject(req, "id", (double)id);
	f = sbx_frame_encode(req, &n);
	cJSON_Delete(req);
	if (!f) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	reply = call(s, "list", f, n, id, "files", 16 << 20, NULL, err, errlen);
	if (!reply)
		return NULL;
	files = cJSON_DetachItemFromObjectCaseSensitive(reply, "files");
	cJSON_Delete(reply);
	if (!cJSON_IsArray(files)) {
		cJSON_Delete(files);
		mk_errf(err, errlen, "sandbox sent a malformed file list");
		return NULL;
	}
	return files;
}

static int local_alive(sbx *base)
{
	sbx_local_box *s = (sbx_local_box *)base;
	int st;

	if (s->dead)
		return 0;
	if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
		s->status = st;
		s->reaped = 1;
		s->dead = 1;
		return 0;
	}
	/* Processes left running after a run may still grow. */
	if (memory_over(s)) {
		MK_INFO("EXEC-SBX-LOST", NULL, "sandbox %d stopped between runs: memory limit",
		        (int)s->pid);
		sandbox_stop(s, 0);
		return 0;
	}
	return 1;
}

static void box_free(sbx_local_box *s)
{
	if (!s)
		return;
	if (s->pid > 0)
		sandbox_stop(s, 0);
	close_fd(&s->pidfd);
	close_fd(&s->init_fd);
	close_fd(&s->out_fd);
	close_fd(&s->err_fd);
	close_fd(&s->ctl_w);
	close_fd(&s->ctl_r);
	close_fd(&s->info_fd);
	sbx_cg_box_free(&s->cg);
	slot_give(s->b, s->slot);
	free(s);
}

/* ---- start-up --------------------------------------------------------------- */

/* Wait for the driver's ready frame. 0, or -1 with err (the sandbox is then stopped). */
static int wait_ready(sbx_local_box *s, char *err, size_t errlen)
{
	const sbx_limits *L = &s->b->lim;
	long long ms = L->start_timeout_ms > 0 ? L->start_timeout_ms : 60000;
	char detail[SBX_STREAM_TAIL + 64], how[160];
	const char *limit, *t, *py;
	cJSON *ready = NULL;
	xfer x;
	int rc;

	xfer_init(&x, 0, L, 1 << 16);
	/* Keep stderr (not stdout): it says why a start failed. */
	sbx_stream_init(&x.err, 1, START_ERR_KEEP);
	rc = xfer_run(s, &x, mk_mono_ms() + ms);
	if (rc == X_REPLY && (ready = sbx_frame_rx_json(&x.rx, x.why, sizeof(x.why)))) {
		t = mk_json_str(ready, "t");
		if (strcmp(t, "ready") == 0) {
			py = mk_json_str(ready, "python");
			snprintf(s->python, sizeof(s->python), "%s", py ? py : "?");
			if (mk_json_bool(ready, "parquet", &s->parquet) != 0)
				s->parquet = 0;
			cJSON_Delete(ready);
			if (s->init_fd < 0) {
				/* bwrap reports before the driver can even start; be sure anyway.
				 */
				mk_errf(err, errlen,
				        "sandbox started but bwrap did not report its init");
				sandbox_stop(s, 0);
				xfer_release(&x);
				return -1;
			}
			xfer_release(&x);
			return 0;
		}
		snprintf(x.why, sizeof(x.why), "a '%.20s' frame before 'ready'", t);
		cJSON_Delete(ready);
		rc = X_BAD;
	}
	if (rc == X_REPLY)
		rc = X_BAD;
	sandbox_stop(s, rc == X_EXITED ? EXIT_GRACE_MS : 0);
	pump(s, s->err_fd, &x.err, 64);
	sbx_stream_tail(&x.err, detail, sizeof(detail));
	if (rc == X_TIMEOUT) {
		mk_errf(err, errlen, "sandbox was not ready within %lld ms (preload '%s')%s%s", ms,
		        s->b->preload, *detail ? ": " : "", detail);
	} else if (rc == X_EXITED) {
		death_text(s, how, sizeof(how), &limit);
		mk_errf(err, errlen, "sandbox exited during start-up (%s)%s%s", how,
		        *detail ? ": " : "", detail);
	} else {
		mk_errf(err, errlen, "sandbox broke the protocol during start-up (%s)%s%s", x.why,
		        *detail ? ": " : "", detail);
	}
	xfer_release(&x);
	return -1;
}

static sbx_local_box *box_new(sbx_local *b, char *err, size_t errlen)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, cin[2] = {-1, -1}, cout[2] = {-1, -1};
	int info[2] = {-1, -1}, devnull = -1, drv = -1, pw = -1, gr = -1, bpf = -1;
	struct spawn j;
	sbx_local_box *s;

	s = calloc(1, sizeof(*s));
	if (!s) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	s->base.b = &b->base;
	s->b = b;
	s->pidfd = s->init_fd = s->out_fd = s->err_fd = s->ctl_w = s->ctl_r = s->info_fd = -1;
	s->slot = -1;
	s->status = -1;
	s->cpu_ms = -1;
	if (sbx_cg_box_make(&b->cg, &s->cg, b->lim.memory_bytes, b->lim.millicores,
	                    b->lim.processes, err, errlen) != 0)
		goto fail;
	if (b->own_uids && (s->slot = slot_take(b)) < 0) {
		mk_errf(err, errlen, "all %d sandbox uids are in use", MAX_SLOTS);
		goto fail;
	}
	if (pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC) || pipe2(cin, O_CLOEXEC) ||
	    pipe2(cout, O_CLOEXEC) || pipe2(info, O_CLOEXEC)) {
		mk_errf(err, errlen, "cannot make the sandbox's pipes: %s", strerror(errno));
		goto fail;
	}
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	drv = memfd_with("mark-driver", executor_driver_py, executor_driver_py_len);
	pw = memfd_with("mark-passwd", passwd_data, sizeof(passwd_data) - 1);
	gr = memfd_with("mark-group", group_data, sizeof(group_data) - 1);
	if (b->seccomp)
		bpf = memfd_with("mark-seccomp", b->bpf, b->bpf_len * sizeof(b->bpf[0]));
	if (devnull < 0 || drv < 0 || pw < 0 || gr < 0 || (b->seccomp && bpf < 0)) {
		mk_errf(err, errlen, "cannot prepare the sandbox's files: %s", strerror(errno));
		goto fail;
	}

	memset(&j, 0, sizeof(j));
	j.fd[FD_NULL] = devnull;
	j.fd[FD_OUT] = out[1];
	j.fd[FD_ERR] = errp[1];
	j.fd[FD_CTL_IN] = cin[0];
	j.fd[FD_CTL_OUT] = cout[1];
	j.fd[FD_INFO] = info[1];
	j.fd[FD_DRIVER] = drv;
	j.fd[FD_PASSWD] = pw;
	j.fd[FD_GROUP] = gr;
	j.fd[FD_SECCOMP] = bpf;
	j.uid = s->slot >= 0 ? b->uid_base + s->slot : -1;
	j.cg = &s->cg;
	if (spawn(b, &j) != 0) {
		mk_errf(err, errlen, "cannot start the sandbox: fork: %s", strerror(errno));
		goto fail;
	}
	sbx_cg_box_close_join(&s->cg);
	s->pid = j.pid;
	/* Our child, not yet waited for: its pid cannot be recycled, so this pidfd is exact. */
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (s->pidfd < 0) {
		mk_errf(err, errlen,
		        "cannot watch the sandbox (pidfd_open: %s; Linux 5.3 or later "
		        "is needed)",
		        strerror(errno));
		kill(s->pid, SIGKILL);
		reap(s);
		goto fail;
	}
	s->out_fd = out[0];
	s->err_fd = errp[0];
	s->ctl_w = cin[1];
	s->ctl_r = cout[0];
	s->info_fd = info[0];
	out[0] = errp[0] = cin[1] = cout[0] = info[0] = -1;
	close_fd(&out[1]);
	close_fd(&errp[1]);
	close_fd(&cin[0]);
	close_fd(&cout[1]);
	close_fd(&info[1]);
	close_fd(&devnull);
	close_fd(&drv);
	close_fd(&pw);
	close_fd(&gr);
	close_fd(&bpf);
	if (set_nonblock(s->out_fd) || set_nonblock(s->err_fd) || set_nonblock(s->ctl_w) ||
	    set_nonblock(s->ctl_r) || set_nonblock(s->info_fd)) {
		mk_errf(err, errlen, "cannot set up the sandbox's pipes: %s", strerror(errno));
		box_free(s);
		return NULL;
	}
	if (wait_ready(s, err, errlen) != 0) {
		box_free(s);
		return NULL;
	}
	return s;

fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&out[i]);
		close_fd(&errp[i]);
		close_fd(&cin[i]);
		close_fd(&cout[i]);
		close_fd(&info[i]);
	}
	close_fd(&devnull);
	close_fd(&drv);
	close_fd(&pw);
	close_fd(&gr);
	close_fd(&bpf);
	box_free(s);
	return NULL;
}

static sbx *local_create(sbx_backend *base, char *err, size_t errlen)
{
	sbx_local_box *s = box_new((sbx_local *)base, err, errlen);

	return s ? &s->base : NULL;
}

static void local_destroy(sbx *base)
{
	box_free((sbx_local_box *)base);
}

/* ---- the backend ------------------------------------------------------------ */

static sbx_caps local_caps(const sbx_backend *base)
{
	return ((const sbx_local *)base)->caps;
}

static void backend_free(sbx_local *b)
{
	if (!b)
		return;
	if (b->spawner_started) {
		pthread_mutex_lock(&b->mu);
		b->stop = 1;
		pthread_cond_broadcast(&b->cv);
		pthread_mutex_unlock(&b->mu);
		pthread_join(b->spawner, NULL);
	}
	if (b->sync_made) {
		pthread_cond_destroy(&b->cv);
		pthread_mutex_destroy(&b->mu);
	}
	for (size_t i = 0; i < b->argc; i++)
		free(b->argv[i]);
	free(b->argv);
	free(b->envp[0]);
	free(b->bpf);
	sbx_cg_close(&b->cg);
	free(b->bwrap);
	free(b->python);
	free(b->preload);
	free(b);
}

/* The start-up failure of the first sandbox, in words an operator can act on. */
static void explain_start(const char *what, char *err, size_t errlen)
{
	if (strstr(what, "namespace") || strstr(what, "uid map") || strstr(what, "setting up uid"))
		mk_errf(err, errlen, "bubblewrap cannot create a user namespace: %s", what);
	else
		mk_errf(err, errlen, "the local sandbox does not work: %s", what);
}

static void local_free(sbx_backend *base)
{
	backend_free((sbx_local *)base);
}

static const sbx_backend_ops local_ops = {
    .name = "local",
    .create = local_create,
    .exec = local_exec,
    .put = local_put,
    .get = local_get,
    .list = local_list,
    .alive = local_alive,
    .destroy = local_destroy,
    .caps = local_caps,
    .free = local_free,
};

sbx_backend *sbx_local_new(const sbx_local_opts *o, const sbx_limits *lim, char *err, size_t errlen)
{
	char why[1024];
	sbx_local *b;
	sbx_local_box *s;

	if (!o || !lim || !o->bwrap || !o->python) {
		mk_errf(err, errlen, "local sandbox: bwrap and python paths are required");
		return NULL;
	}
	if (o->bwrap[0] != '/' || access(o->bwrap, X_OK) != 0) {
		mk_errf(err, errlen, "bwrap '%s' is not an executable absolute path", o->bwrap);
		return NULL;
	}
	/* /usr is all of the host the sandbox sees. */
	if (strncmp(o->python, "/usr/", 5) != 0 || strstr(o->python, "/../") ||
	    access(o->python, X_OK) != 0) {
		mk_errf(err, errlen, "python '%s' is not an executable under /usr", o->python);
		return NULL;
	}
	if (o->preload && strspn(o->preload, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                                     "0123456789_.,") != strlen(o->preload)) {
		mk_errf(err, errlen, "preload '%s' is not a comma-separated list of modules",
		        o->preload);
		return NULL;
	}
	if (o->uid_base >= 0 && (o->uid_base < 1000 || o->uid_base > 2000000000LL)) {
		mk_errf(err, errlen, "sandbox uid base %lld is not between 1000 and 2000000000",
		        o->uid_base);
		return NULL;
	}
	b = calloc(1, sizeof(*b));
	if (!b) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	b->base.ops = &local_ops;
	b->lim = *lim;
	b->uid_base = o->uid_base;
	b->own_uids = o->uid_base >= 0 && geteuid() == 0;
	b->seccomp = o->seccomp != 0;
	b->bwrap = strdup(o->bwrap);
	b->python = strdup(o->python);
	b->preload = strdup(o->preload ? o->preload : "");
	b->envp[0] = strdup("PATH=/usr/bin:/bin");
	if (!b->bwrap || !b->python || !b->preload || !b->envp[0]) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	if (sbx_cg_open(&b->cg, o->cgroup ? o->cgroup : "auto", o->cgroup_path, why, sizeof(why)) !=
	    0) {
		mk_errf(err, errlen, "sandbox cgroup: %s", why);
		goto fail;
	}
	b->caps.isolation = sbx_cg_mode(&b->cg);
	if (b->cg.kind == SBX_CG_OFF && !b->seccomp)
		MK_WARN("EXEC-SBX-MEMORY", NULL,
		        "no cgroup and no seccomp: memfd and SysV shared memory escape the memory "
		        "limit");
	if (b->seccomp && sbx_seccomp_build(b->cg.kind == SBX_CG_OFF, &b->bpf, &b->bpf_len) != 0) {
		mk_errf(err, errlen, "no seccomp filter for this architecture; turn seccomp off");
		goto fail;
	}
	if (argv_build(b) != 0) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	rlim_add(b, RLIMIT_AS, lim->memory_bytes);
	rlim_add(b, RLIMIT_NPROC, lim->processes);
	rlim_add(b, RLIMIT_NOFILE, lim->open_files);
	rlim_add(b, RLIMIT_FSIZE, lim->file_size_bytes);
	rlim_add(b, RLIMIT_CPU, lim->cpu_total_s);
	b->rlim[b->nrlim].res = RLIMIT_CORE;
	b->rlim[b->nrlim].rl.rlim_cur = b->rlim[b->nrlim].rl.rlim_max = 0;
	b->nrlim++;
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	if (pthread_cond_init(&b->cv, NULL) != 0) {
		pthread_mutex_destroy(&b->mu);
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	b->sync_made = 1;
	if (pthread_create(&b->spawner, NULL, spawner_main, b) != 0) {
		mk_errf(err, errlen, "cannot start the sandbox spawner thread");
		goto fail;
	}
	b->spawner_started = 1;
	/*
	 * When the driver dies on its own, bwrap exits before the sandbox's
	 * init, which is then orphaned: as a subreaper the executor gets it
	 * and reaps it (sandbox_stop) instead of leaving that to PID 1.
	 */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		MK_WARN("EXEC-SBX-REAPER", NULL, "cannot become a subreaper: %s", strerror(errno));

	s = box_new(b, why, sizeof(why));
	if (!s) {
		explain_start(why, err, errlen);
		goto fail;
	}
	b->caps.parquet = s->parquet;
	snprintf(b->python_version, sizeof(b->python_version), "%s", s->python);
	box_free(s);
	MK_INFO("EXEC-SBX-READY", NULL,
	        "local sandboxes work: python %s, parquet %s, %s, seccomp %s", b->python_version,
	        b->caps.parquet ? "yes" : "no",
	        b->own_uids ? "a uid per sandbox" : "sandboxes share the executor's uid",
	        b->seccomp ? "on" : "off");
	if (b->cg.kind != SBX_CG_OFF)
		MK_INFO("EXEC-SBX-LIMITS", NULL,
		        "sandbox limits: %s, a cgroup per sandbox under %s (memory %lld bytes, "
		        "tmpfs and shared memory included, no swap; CPU %lld/1000 of a core; %lld "
		        "processes)",
		        sbx_cg_mode(&b->cg), b->cg.dir[0], b->lim.memory_bytes, b->lim.millicores,
		        b->lim.processes);
	else
		MK_WARN(
		    "EXEC-SBX-LIMITS", NULL,
		    "sandbox limits: no cgroup (%s); memory is watched every %d ms (processes "
		    "and tmpfs files), memfd and SysV shared memory are denied, and there is no "
		    "CPU share",
		    b->cg.why, MEM_CHECK_MS);
	return &b->base;

fail:
	backend_free(b);
	return NULL;
}
