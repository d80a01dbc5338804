/*
 * sbx_local.c - the local sandbox backend: one bubblewrap sandbox per
 * session, on this host (libexecutor, sandbox layer; implements sbx.h
 * through its table of operations).
 *
 * A sandbox is a bwrap process tree. The outer bwrap stays in the host's
 * PID namespace and only waits; its child is the sandbox's init (PID 1 of
 * a new PID namespace), whose child runs the Python driver. The layout,
 * the descriptors and the frames spoken over fds 3 and 4 are those of
 * SANDBOX.md; the driver's source is embedded (executor_driver_py) and
 * handed in through a memfd.
 *
 * What the backend enforces, and where:
 *   - resource limits: rlimits set in the forked child before bwrap runs,
 *     inherited by everything inside; when the executor is root each
 *     sandbox runs under its own host uid (uid_base + slot), which makes
 *     RLIMIT_NPROC a per-sandbox count and keeps sandboxes from signalling
 *     or reading each other (sbx_spawn.c);
 *   - all a sandbox holds: its own cgroup (sbx_cgroup.c), joined by the
 *     forked child first, caps memory of every kind, CPU and processes; an
 *     OOM kill inside it stops the sandbox. Without a cgroup, a watch adds
 *     up its processes' PSS and tmpfs files (here), and seccomp denies
 *     memfd and SysV shared memory;
 *   - the wall clock, output caps and frame sizes: here, while polling the
 *     sandbox's pipes; a sandbox that overruns is killed whole (sbx_stop.c);
 *   - system calls: a classic BPF deny list handed to bwrap (sbx_seccomp.c).
 * What it does not: decide which session gets which sandbox (the session
 * layer), or keep state across executor restarts (sandboxes die with it).
 *
 * sbx_local_new makes the executor process a child subreaper
 * (PR_SET_CHILD_SUBREAPER) so that a sandbox's init orphaned by bwrap
 * becomes our child and is reaped (sbx_stop.c), not left to PID 1. Side
 * effect: any other orphaned descendant of the executor is reparented to
 * it too (it starts none).
 *
 * Threads: sbx_create may run concurrently (sbx_spawn.c); a sandbox is
 * used by one thread at a time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_log.h"
#include "mk_time.h"
#include "sbx_local_int.h"
#include "sbx_seccomp.h"

/* ---- the whole sandbox's memory ------------------------------------------- */

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
	for (size_t i = 0; i < SBX_LOCAL_NTMPFS; i++) {
		struct statvfs v;

		snprintf(path, sizeof(path), "/proc/%d/root%s", (int)s->init_pid,
		         sbx_local_tmpfs[i]);
		if (statvfs(path, &v) == 0)
			total += (long long)(v.f_blocks - v.f_bfree) * (long long)v.f_frsize;
	}
	return total;
}

int sbx_local_memory_over(sbx_local_box *s)
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

/* ---- a sandbox ------------------------------------------------------------- */

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
	if (sbx_local_memory_over(s)) {
		MK_INFO("EXEC-SBX-LOST", NULL, "sandbox %d stopped between runs: memory limit",
		        (int)s->pid);
		sbx_local_stop(s, 0);
		return 0;
	}
	return 1;
}

static void box_free(sbx_local_box *s)
{
	if (!s)
		return;
	if (s->pid > 0)
		sbx_local_stop(s, 0);
	sbx_local_close_fd(&s->pidfd);
	sbx_local_close_fd(&s->init_fd);
	sbx_local_close_fd(&s->out_fd);
	sbx_local_close_fd(&s->err_fd);
	sbx_local_close_fd(&s->ctl_w);
	sbx_local_close_fd(&s->ctl_r);
	sbx_local_close_fd(&s->info_fd);
	sbx_cg_box_free(&s->cg);
	sbx_local_slot_give(s->b, s->slot);
	free(s);
}

static sbx_local_box *box_new(sbx_local *b, char *err, size_t errlen)
{
	sbx_local_box *s = calloc(1, sizeof(*s));

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
	                    b->lim.processes, err, errlen) != 0 ||
	    sbx_local_start(s, err, errlen) != 0 || sbx_local_ready(s, err, errlen) != 0) {
		box_free(s);
		return NULL;
	}
	return s;
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
	sbx_local_spawn_release(b);
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
    .exec = sbx_local_exec,
    .put = sbx_local_put,
    .get = sbx_local_get,
    .list = sbx_local_list,
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
	if (!b->bwrap || !b->python || !b->preload) {
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
	if (sbx_local_spawn_init(b, err, errlen) != 0)
		goto fail;
	/*
	 * When the driver dies on its own, bwrap exits before the sandbox's
	 * init, which is then orphaned: as a subreaper the executor gets it
	 * and reaps it (sbx_stop.c) instead of leaving that to PID 1.
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
