/*
 * sbx_spawn.c - the processes of a local sandbox, started (libexecutor,
 * sandbox layer; part of the local backend, see sbx_local_int.h): the
 * bwrap command line and the rlimits, built once per backend; the one
 * long-lived thread that forks every sandbox; uid slots; and one start,
 * from the descriptors to a running bwrap the host holds a pidfd of.
 *
 * The command line, the descriptors the child hands bwrap and the order
 * of its steps (cgroup, descriptors, rlimits, identity, death signal,
 * exec) are those of SANDBOX.md. All sandboxes are forked by the spawner
 * thread because PR_SET_PDEATHSIG (ours and bwrap's --die-with-parent)
 * fires when the forking *thread* exits: a sandbox made from a short-lived
 * worker thread would otherwise die with it. What it does not: wait for
 * the driver (sbx_local.c) or stop a sandbox (sbx_stop.c).
 *
 * Threads: sbx_local_start may run concurrently (slots and the spawn
 * hand-off are under the backend's mutex; every descriptor is
 * close-on-exec so concurrent spawns do not leak into each other).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mk_buf.h"
#include "sbx_local_int.h"

extern const char executor_driver_py[];
extern const size_t executor_driver_py_len;

#define SANDBOX_ID 1000 /* uid and gid inside every sandbox: "sandbox" */

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

/* A sandbox's writable places: each a tmpfs of the workspace's size. */
const char *const sbx_local_tmpfs[SBX_LOCAL_NTMPFS] = {"/workspace", "/tmp", "/dev/shm"};

/* The bwrap command line. Descriptor numbers are fixed (the enum above), so it is built once. */
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
	for (size_t i = 0; i < SBX_LOCAL_NTMPFS; i++) {
		if (L->workspace_bytes > 0) {
			r |= arg_add(b, "--size");
			r |= arg_add(b, "%lld", L->workspace_bytes);
		}
		r |= arg_add(b, "--tmpfs");
		r |= arg_add(b, "%s", sbx_local_tmpfs[i]);
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
	/* The process limit the driver sets on itself first, when it is not set here (below). */
	r |= arg_add(b, "%lld", b->own_uids ? 0LL : L->processes);
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

void sbx_local_slot_give(sbx_local *b, int slot)
{
	if (slot < 0)
		return;
	pthread_mutex_lock(&b->mu);
	b->slot_used[slot] = 0;
	pthread_mutex_unlock(&b->mu);
}

int sbx_local_spawn_init(sbx_local *b, char *err, size_t errlen)
{
	const sbx_limits *lim = &b->lim;

	b->envp[0] = strdup("PATH=/usr/bin:/bin");
	if (!b->envp[0] || argv_build(b) != 0) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	rlim_add(b, RLIMIT_AS, lim->memory_bytes);
	/*
	 * RLIMIT_NPROC counts the tasks of a uid. With a host uid of its own
	 * (a root executor) that is the sandbox's tasks: set it here. Without,
	 * the sandbox shares the executor's uid, and with it every task of that
	 * uid on the host (in containers: every service running as that uid),
	 * so a limit set here would refuse the sandbox's start. The kernel
	 * counts tasks per user namespace too, and checks a namespace's parent
	 * against the limit in force when the namespace was made: the driver
	 * sets the limit on itself as its first act (argv, above), inside the
	 * sandbox's own user namespace, where only its tasks count. Its hard
	 * limit cannot be raised there again (that takes CAP_SYS_RESOURCE on
	 * the host), so the code it runs is held to it as from outside.
	 */
	if (b->own_uids)
		rlim_add(b, RLIMIT_NPROC, lim->processes);
	rlim_add(b, RLIMIT_NOFILE, lim->open_files);
	rlim_add(b, RLIMIT_FSIZE, lim->file_size_bytes);
	rlim_add(b, RLIMIT_CPU, lim->cpu_total_s);
	b->rlim[b->nrlim].res = RLIMIT_CORE;
	b->rlim[b->nrlim].rl.rlim_cur = b->rlim[b->nrlim].rl.rlim_max = 0;
	b->nrlim++;
	if (pthread_mutex_init(&b->mu, NULL) != 0) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	if (pthread_cond_init(&b->cv, NULL) != 0) {
		pthread_mutex_destroy(&b->mu);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	b->sync_made = 1;
	if (pthread_create(&b->spawner, NULL, spawner_main, b) != 0) {
		mk_errf(err, errlen, "cannot start the sandbox spawner thread");
		return -1;
	}
	b->spawner_started = 1;
	return 0;
}

void sbx_local_spawn_release(sbx_local *b)
{
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
}

/* ---- one start -------------------------------------------------------------- */

int sbx_local_start(sbx_local_box *s, char *err, size_t errlen)
{
	int out[2] = {-1, -1}, errp[2] = {-1, -1}, cin[2] = {-1, -1}, cout[2] = {-1, -1};
	int info[2] = {-1, -1}, devnull = -1, drv = -1, pw = -1, gr = -1, bpf = -1;
	sbx_local *b = s->b;
	struct spawn j;

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
		sbx_local_reap(s);
		goto fail;
	}
	s->out_fd = out[0];
	s->err_fd = errp[0];
	s->ctl_w = cin[1];
	s->ctl_r = cout[0];
	s->info_fd = info[0];
	out[0] = errp[0] = cin[1] = cout[0] = info[0] = -1;
	sbx_local_close_fd(&out[1]);
	sbx_local_close_fd(&errp[1]);
	sbx_local_close_fd(&cin[0]);
	sbx_local_close_fd(&cout[1]);
	sbx_local_close_fd(&info[1]);
	sbx_local_close_fd(&devnull);
	sbx_local_close_fd(&drv);
	sbx_local_close_fd(&pw);
	sbx_local_close_fd(&gr);
	sbx_local_close_fd(&bpf);
	if (set_nonblock(s->out_fd) || set_nonblock(s->err_fd) || set_nonblock(s->ctl_w) ||
	    set_nonblock(s->ctl_r) || set_nonblock(s->info_fd)) {
		mk_errf(err, errlen, "cannot set up the sandbox's pipes: %s", strerror(errno));
		return -1;
	}
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		sbx_local_close_fd(&out[i]);
		sbx_local_close_fd(&errp[i]);
		sbx_local_close_fd(&cin[i]);
		sbx_local_close_fd(&cout[i]);
		sbx_local_close_fd(&info[i]);
	}
	sbx_local_close_fd(&devnull);
	sbx_local_close_fd(&drv);
	sbx_local_close_fd(&pw);
	sbx_local_close_fd(&gr);
	sbx_local_close_fd(&bpf);
	return -1;
}
