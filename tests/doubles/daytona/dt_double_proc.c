/*
 * dt_double_proc.c - how the Daytona double runs code for real: one
 * bubblewrap sandbox per command or session shell, over the Daytona
 * sandbox's host directory.
 *
 * Each Daytona sandbox owns <root>/<id>/fs, whose home/daytona and tmp are
 * bound read-write as /home/daytona (the working directory) and /tmp;
 * /usr is bound read-only with the usual /bin, /lib symlinks, a few /etc
 * files, and a passwd naming uid 1000 "daytona". Every namespace is
 * unshared (so there is no network), capabilities are dropped, and the
 * shell runs as uid 1000 of its own user namespace (the files it writes
 * belong to the double on the host). The shape follows
 * services/executor/sbx_local.c, without its limits and seccomp: the
 * double runs trusted test code.
 *
 * The processes of one sandbox share its files, not a process tree: a
 * background job of /process/execute ends with its command (the pid
 * namespace goes with it), as does everything when a sandbox stops.
 *
 * Children are forked by the request thread: between fork and exec only
 * async-signal-safe calls. They get PR_SET_PDEATHSIG, and bubblewrap's
 * --die-with-parent does the same inside, so nothing outlives the double.
 *
 * Killing a sandbox's processes is one SIGKILL to the process group of its
 * bubblewrap. Each bubblewrap starts a session of its own (so no process
 * of the sandbox has a controlling terminal), and it is not given
 * --new-session: with it, the sandbox's pid 1 would call setsid() and, until
 * it sets its own --die-with-parent, belong to no group we kill and to no
 * parent that would take it along, and live on. In the group, it always
 * dies with the rest, and the pid namespace, every process of the sandbox,
 * with it. Once a killed bubblewrap is gone, its pid 1 is the double's child
 * (main.c makes the double a subreaper), so its end can be waited for.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_log.h"
#include "mk_time.h"

#define RM_MAX_DEPTH 256

/* /etc files the sandbox sees when the host has them. */
static const char *const etc_files[] = {
    "/etc/alternatives", "/etc/ld.so.cache", "/etc/localtime", "/etc/fonts",
    "/etc/matplotlibrc", "/etc/mime.types",  "/etc/ssl",       "/etc/shells",
};

/* The environment of every sandbox process, before the sandbox's own and the request's. */
static const char *const base_env[][2] = {
    {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
    {"HOME", DT_HOME},
    {"USER", "daytona"},
    {"LOGNAME", "daytona"},
    {"SHELL", DT_SHELL},
    {"LANG", "C.UTF-8"},
    {"MPLBACKEND", "Agg"},
    {"MPLCONFIGDIR", "/tmp/.matplotlib"},
    {"PYTHONDONTWRITEBYTECODE", "1"},
};

/* ------------------------------------------------------------------ argv */

typedef struct {
	char **v;
	size_t n, cap;
	int oom;
} argv_b;

static void add(argv_b *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **v = realloc(a->v, cap * sizeof(*v));

		if (!v) {
			a->oom = 1;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	a->v[a->n] = strdup(s);
	if (!a->v[a->n]) {
		a->oom = 1;
		return;
	}
	a->v[++a->n] = NULL;
}

static void add3(argv_b *a, const char *x, const char *y, const char *z)
{
	add(a, x);
	add(a, y);
	if (z)
		add(a, z);
}

void dt_argv_free(char **argv)
{
	size_t i;

	for (i = 0; argv && argv[i]; i++)
		free(argv[i]);
	free(argv);
}

/* --setenv for each string member of obj. */
static void add_envs(argv_b *a, const cJSON *obj)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, obj)
	{
		if (cJSON_IsString(e) && e->string)
			add3(a, "--setenv", e->string, e->valuestring);
	}
}

char **dt_proc_argv(const dt_double *d, const dt_sandbox *s, const char *cwd, const cJSON *envs)
{
	argv_b a = {0};
	char path[DT_DIR_MAX + 32];
	size_t i;

	add(&a, d->bwrap);
	add(&a, "--unshare-all"); /* user, ipc, pid, net, uts, cgroup */
	add(&a, "--unshare-user");
	add3(&a, "--uid", "1000", NULL);
	add3(&a, "--gid", "1000", NULL);
	add(&a, "--die-with-parent");
	add3(&a, "--cap-drop", "ALL", NULL);
	add3(&a, "--hostname", s->id, NULL);
	add3(&a, "--ro-bind", "/usr", "/usr");
	add3(&a, "--symlink", "usr/bin", "/bin");
	add3(&a, "--symlink", "usr/lib", "/lib");
	add3(&a, "--symlink", "usr/lib64", "/lib64");
	add3(&a, "--symlink", "usr/sbin", "/sbin");
	for (i = 0; i < sizeof(etc_files) / sizeof(etc_files[0]); i++)
		add3(&a, "--ro-bind-try", etc_files[i], etc_files[i]);
	snprintf(path, sizeof(path), "%s/etc/passwd", d->root);
	add3(&a, "--ro-bind", path, "/etc/passwd");
	snprintf(path, sizeof(path), "%s/etc/group", d->root);
	add3(&a, "--ro-bind", path, "/etc/group");
	add3(&a, "--proc", "/proc", NULL);
	add3(&a, "--dev", "/dev", NULL);
	snprintf(path, sizeof(path), "%s/fs/home/daytona", s->dir);
	add3(&a, "--bind", path, DT_HOME);
	snprintf(path, sizeof(path), "%s/fs/tmp", s->dir);
	add3(&a, "--bind", path, "/tmp");
	add3(&a, "--chdir", cwd && *cwd ? cwd : DT_HOME, NULL);
	add(&a, "--clearenv");
	for (i = 0; i < sizeof(base_env) / sizeof(base_env[0]); i++)
		add3(&a, "--setenv", base_env[i][0], base_env[i][1]);
	add3(&a, "--setenv", "HOSTNAME", s->id);
	add_envs(&a, cJSON_GetObjectItemCaseSensitive(s->spec, "env"));
	add_envs(&a, envs);
	add(&a, "--");
	add(&a, DT_SHELL);
	if (a.oom) {
		dt_argv_free(a.v);
		return NULL;
	}
	return a.v;
}

/* ------------------------------------------------------------------ spawning */

pid_t dt_proc_spawn(const dt_double *d, char *const *argv, int in_fd, int out_fd)
{
	static char *const envp[] = {"PATH=/usr/bin:/bin", NULL};
	pid_t parent = getpid(), pid;
	int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC), e;

	if (null_fd < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		struct sigaction dfl;
		sigset_t none;
		int a, b, sig;

		/* Move the two sources above 2 first, so no dup2 overwrites the other. */
		a = fcntl(in_fd >= 0 ? in_fd : null_fd, F_DUPFD_CLOEXEC, 10);
		b = fcntl(out_fd >= 0 ? out_fd : null_fd, F_DUPFD_CLOEXEC, 10);
		if (a < 0 || b < 0 || dup2(a, 0) < 0 || dup2(b, 1) < 0 || dup2(b, 2) < 0)
			_exit(126);
		syscall(SYS_close_range, 3U, ~0U, 0U);
		if (setsid() < 0)
			_exit(126);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || getppid() != parent)
			_exit(126);
		/* The double blocks its stop signals and ignores SIGPIPE: start clean. */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		for (sig = 1; sig < NSIG; sig++)
			sigaction(sig, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execve(d->bwrap, argv, envp);
		_exit(127);
	}
	e = errno;
	close(null_fd);
	errno = e;
	return pid;
}

void dt_proc_kill(pid_t pid)
{
	/*
	 * The group first: it holds bubblewrap's second process (the sandbox's
	 * pid 1) from its clone to its end, and that end takes the whole pid
	 * namespace along. The pid itself too, in case it is not yet the
	 * group's leader (killed between fork and setsid).
	 */
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
}

int dt_proc_group_gone(pid_t pgid)
{
	for (;;) {
		siginfo_t si;

		memset(&si, 0, sizeof(si));
		if (waitid(P_PGID, (id_t)pgid, &si, WEXITED | WNOHANG) != 0) {
			if (errno == EINTR)
				continue;
			return errno == ECHILD;
		}
		if (si.si_pid == 0)
			return 0; /* some of it still runs (or is being killed) */
	}
}

/* ------------------------------------------------------------------ one command */

/*
 * Take a free run slot of s; its index, or -1. Under d->mu. -1 in a slot
 * marks a command starting or ending: not one to kill, but still of s.
 */
static int slot_take(dt_sandbox *s)
{
	int i;

	for (i = 0; i < DT_MAX_RUNS; i++) {
		if (s->runs[i] == 0) {
			s->runs[i] = -1;
			return i;
		}
	}
	return -1;
}

/* Move input and output until the shell closes its output or the time is up. */
static void pump(int in_w, int out_r, const char *input, size_t input_len, int64_t deadline,
                 pid_t pid, dt_run *run)
{
	size_t sent = 0;
	char chunk[16384];

	if (input_len == 0 && in_w >= 0) {
		close(in_w);
		in_w = -1;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = out_r, .events = POLLIN},
		                      {.fd = in_w, .events = POLLOUT}};
		int wait_ms = 200, n;

		if (deadline && !run->timed_out) {
			int64_t left = deadline - mk_mono_ms();

			if (left <= 0) {
				run->timed_out = 1;
				dt_proc_kill(pid); /* ours until we reap it: no pid reuse */
			} else if (left < wait_ms) {
				wait_ms = (int)left;
			}
		}
		n = poll(p, in_w >= 0 ? 2 : 1, wait_ms);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (in_w >= 0 && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(in_w, input + sent, input_len - sent);

			if (w > 0)
				sent += (size_t)w;
			if (w < 0 && errno != EAGAIN && errno != EINTR)
				sent = input_len; /* the shell is gone; stop feeding it */
			if (sent == input_len) {
				close(in_w);
				in_w = -1;
			}
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(out_r, chunk, sizeof(chunk));

			if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
				break;
			if (r > 0 && run->out.len < DT_MAX_OUTPUT) {
				size_t keep = (size_t)r;

				if (keep > DT_MAX_OUTPUT - run->out.len)
					keep = DT_MAX_OUTPUT - run->out.len;
				mk_buf_append(&run->out, chunk, keep);
			}
		}
	}
	if (in_w >= 0)
		close(in_w);
}

int dt_proc_run(dt_double *d, dt_sandbox *s, const char *cwd, const cJSON *envs, const char *input,
                size_t input_len, long long timeout_s, dt_run *run, char *err, size_t errlen)
{
	int in[2] = {-1, -1}, out[2] = {-1, -1}, slot, st = 0, stopped;
	int64_t started;
	char **argv;
	pid_t pid;

	memset(run, 0, sizeof(*run));
	mk_buf_init(&run->out, 0);
	run->exit_code = -1;
	pthread_mutex_lock(&d->mu);
	slot = slot_take(s);
	argv = slot >= 0 ? dt_proc_argv(d, s, cwd, envs) : NULL;
	if (slot >= 0 && !argv)
		s->runs[slot] = 0;
	pthread_mutex_unlock(&d->mu);
	if (slot < 0 || !argv) {
		mk_errf(err, errlen, slot < 0 ? "too many commands running (%d)" : "out of memory",
		        DT_MAX_RUNS);
		return -1;
	}
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		mk_errf(err, errlen, "pipe: %s", strerror(errno));
		pid = -1;
	} else {
		pid = dt_proc_spawn(d, argv, in[0], out[1]);
		if (pid < 0)
			mk_errf(err, errlen, "fork: %s", strerror(errno));
	}
	dt_argv_free(argv);
	pthread_mutex_lock(&d->mu);
	s->runs[slot] = pid > 0 ? pid : 0;
	/* A stop that came while it was being forked did not see it. */
	if (pid > 0 && (s->state != DT_STARTED || d->stopping))
		dt_proc_kill(pid);
	pthread_mutex_unlock(&d->mu);
	if (in[0] >= 0)
		close(in[0]);
	if (out[1] >= 0)
		close(out[1]);
	if (pid < 0) {
		if (in[1] >= 0)
			close(in[1]);
		if (out[0] >= 0)
			close(out[0]);
		return -1;
	}
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	started = mk_mono_ms();
	pump(in[1], out[0], input, input_len, timeout_s > 0 ? started + timeout_s * 1000 : 0, pid,
	     run);
	close(out[0]);
	/*
	 * Output closed, but the shell may linger (or have closed it itself):
	 * wait for it to exit without reaping, so that it stays in the
	 * sandbox's list, where a stop can kill it, until it is a zombie.
	 */
	for (;;) {
		siginfo_t si;
		int64_t deadline_now = mk_mono_ms();

		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 ||
		    si.si_pid == pid)
			break;
		if (timeout_s > 0 && !run->timed_out &&
		    deadline_now >= started + timeout_s * 1000) {
			run->timed_out = 1;
			dt_proc_kill(pid);
		}
		mk_sleep_ms(20);
	}
	/* Not to be killed once reaped (its pid could be another's), but still of s. */
	pthread_mutex_lock(&d->mu);
	s->runs[slot] = -1;
	stopped = s->state != DT_STARTED || d->stopping;
	pthread_mutex_unlock(&d->mu);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	/* Killed (stop or timeout), it may leave its pid 1 exiting: s waits for it. */
	pthread_mutex_lock(&d->mu);
	dt_sandbox_dying(s, pid);
	s->runs[slot] = 0;
	pthread_mutex_unlock(&d->mu);
	if (WIFEXITED(st))
		run->exit_code = WEXITSTATUS(st);
	else if (WIFSIGNALED(st))
		run->exit_code = 128 + WTERMSIG(st);
	/* bubblewrap reports its sandbox's SIGKILL as 137, its own as the signal. */
	run->killed = stopped && !run->timed_out &&
	              (run->exit_code == 137 || (WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL));
	return 0;
}

/* ------------------------------------------------------------------ directories */

static int mkdir_mode(const char *path, mode_t mode, char *err, size_t errlen)
{
	if (mkdir(path, mode) != 0 && errno != EEXIST) {
		mk_errf(err, errlen, "cannot make '%s': %s", path, strerror(errno));
		return -1;
	}
	chmod(path, mode); /* past the umask */
	return 0;
}

static int write_file(const char *path, const char *text, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	int bad;

	if (!f) {
		mk_errf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		return -1;
	}
	bad = fputs(text, f) < 0;
	if (fclose(f) != 0 || bad) {
		mk_errf(err, errlen, "cannot write '%s'", path);
		return -1;
	}
	return 0;
}

int dt_proc_init(dt_double *d, const char *root, char *err, size_t errlen)
{
	char path[DT_DIR_MAX + 32];

	if (root) {
		if (strlen(root) >= sizeof(d->root) || root[0] != '/') {
			mk_errf(err, errlen, "--root must be an absolute path under %zu bytes",
			        sizeof(d->root));
			return -1;
		}
		if (mkdir(root, 0755) != 0 && errno != EEXIST) {
			mk_errf(err, errlen, "cannot make '%s': %s", root, strerror(errno));
			return -1;
		}
		snprintf(d->root, sizeof(d->root), "%s", root);
	} else {
		snprintf(d->root, sizeof(d->root), "/tmp/daytona-double-XXXXXX");
		if (!mkdtemp(d->root)) {
			mk_errf(err, errlen, "cannot make a directory under /tmp: %s",
			        strerror(errno));
			d->root[0] = '\0';
			return -1;
		}
		d->own_root = 1;
		chmod(d->root, 0755);
	}
	snprintf(path, sizeof(path), "%s/etc", d->root);
	if (mkdir_mode(path, 0755, err, errlen) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/etc/passwd", d->root);
	if (write_file(path,
	               "root:x:0:0:root:/root:/usr/sbin/nologin\n"
	               "daytona:x:1000:1000:daytona:" DT_HOME ":" DT_SHELL "\n"
	               "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
	               err, errlen) != 0)
		return -1;
	snprintf(path, sizeof(path), "%s/etc/group", d->root);
	return write_file(path, "root:x:0:\ndaytona:x:1000:\nnogroup:x:65534:\n", err, errlen);
}

void dt_proc_fini(dt_double *d)
{
	if (d->own_root && d->root[0])
		dt_rm_tree(AT_FDCWD, d->root);
}

int dt_proc_mkdirs(const dt_double *d, dt_sandbox *s, char *err, size_t errlen)
{
	static const struct {
		const char *sub;
		mode_t mode;
	} dirs[] = {{"", 0755},
	            {"/fs", 0755},
	            {"/fs/home", 0755},
	            {"/fs/home/daytona", 0755},
	            {"/fs/tmp", 01777}};
	char path[DT_DIR_MAX + 32];
	size_t i;

	(void)d;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", s->dir, dirs[i].sub);
		if (mkdir_mode(path, dirs[i].mode, err, errlen) != 0)
			return -1;
	}
	snprintf(path, sizeof(path), "%s/fs", s->dir);
	s->fs_fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (s->fs_fd < 0) {
		mk_errf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void rm_tree(int parent, const char *name, int depth)
{
	DIR *dp;
	struct dirent *e;
	int fd;

	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return;
	if (depth >= RM_MAX_DEPTH)
		return;
	fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			rm_tree(dirfd(dp), e->d_name, depth + 1);
	closedir(dp);
	unlinkat(parent, name, AT_REMOVEDIR);
}

void dt_rm_tree(int parent, const char *name)
{
	rm_tree(parent, name, 0);
}

void dt_proc_rmdirs(dt_sandbox *s)
{
	if (s->fs_fd >= 0) {
		close(s->fs_fd);
		s->fs_fd = -1;
	}
	if (s->dir[0])
		dt_rm_tree(AT_FDCWD, s->dir);
}
