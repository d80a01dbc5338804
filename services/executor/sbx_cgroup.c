/*
 * sbx_cgroup.c - one control group per local sandbox (see sbx_cgroup.h).
 *
 * cgroup v2: the subtree is EXECUTOR_SANDBOX_CGROUP_PATH, or the cgroup the
 * executor runs in. A cgroup with processes cannot hand controllers to its
 * children, so an executor alone in its own cgroup first moves itself into
 * a leaf "executor" below it; sandboxes get "sbx-N" beside that leaf, with
 * memory.max, memory.swap.max = 0, memory.oom.group = 1, cpu.max and
 * pids.max.
 * cgroup v1 (root): below the executor's own group in each of the memory,
 * cpu and pids hierarchies, a "mark-executor-PID" group holds "sbx-N" with
 * memory.limit_in_bytes (and memsw, so no swap), cpu.cfs_quota_us and
 * pids.max.
 *
 * An OOM kill inside a sandbox's group stays inside it: the kernel picks a
 * victim among the group's processes only. The host learns of it from the
 * group's oom_kill count and stops the sandbox, reporting the memory limit.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_time.h"
#include "sbx_cgroup.h"

#define CG_ROOT     "/sys/fs/cgroup"
#define CPU_PERIOD  100000 /* microseconds */
#define RMDIR_TRIES 50     /* 10 ms apart: a group is busy a moment after its last exit */

static const char *const v1_ctrls[SBX_CG_CTRLS] = {"memory", "cpu", "pids"};

/* Format a path into buf; -1 when it does not fit. */
static int pathf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int pathf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

static int is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Read a small file into buf (NUL-terminated); bytes read, or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

/* Write text to dir/name; 0 or -errno. */
static int put(const char *dir, const char *name, const char *text)
{
	char path[SBX_CG_PATH + 64];
	size_t n = strlen(text);
	int fd, e = 0;

	pathf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, text, n) != (ssize_t)n)
		e = -errno;
	close(fd);
	return e;
}

static int putll(const char *dir, const char *name, long long v)
{
	char num[32];

	snprintf(num, sizeof(num), "%lld", v);
	return put(dir, name, num);
}

/* 1 when the space-separated list holds word. */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
		if ((p == list || p[-1] == ' ' || p[-1] == ',') &&
		    (p[n] == '\0' || p[n] == ' ' || p[n] == ',' || p[n] == '\n'))
			return 1;
	return 0;
}

/*
 * This process's line of /proc/self/cgroup for a v1 controller (or the v2
 * line when ctrl is ""): its controllers field and path.
 */
static int own_cgroup(const char *ctrl, char *ctrls, size_t clen, char *path, size_t plen)
{
	char buf[4096], *line, *save = NULL;

	if (read_small("/proc/self/cgroup", buf, sizeof(buf)) <= 0)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *c = strchr(line, ':'), *p = c ? strchr(c + 1, ':') : NULL;

		if (!p)
			continue;
		*p = '\0';
		if (*ctrl ? !has_word(c + 1, ctrl) : c[1] != '\0')
			continue;
		snprintf(ctrls, clen, "%s", c + 1);
		snprintf(path, plen, "%s", strcmp(p + 1, "/") == 0 ? "" : p + 1);
		return 0;
	}
	return -1;
}

/* The count on the "oom_kill N" line of a memory.events or memory.oom_control; -1 unknown. */
static long long oom_count(int fd)
{
	char buf[1024], *p;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	for (p = buf; (p = strstr(p, "oom_kill ")) != NULL; p++)
		if (p == buf || p[-1] == '\n')
			return strtoll(p + 9, NULL, 10);
	return -1;
}

/* ---- opening ---------------------------------------------------------------- */

static int v2_open(sbx_cg *cg, const char *path, char *err, size_t errlen)
{
	char own[SBX_CG_PATH], ctrls[64], have[256], f[SBX_CG_PATH + 32];
	const char *base = cg->dir[0];
	int e;

	if (access(CG_ROOT "/cgroup.controllers", F_OK) != 0) {
		mk_errf(err, errlen, "no cgroup v2 hierarchy at " CG_ROOT);
		return -1;
	}
	if (own_cgroup("", ctrls, sizeof(ctrls), own, sizeof(own)) != 0) {
		mk_errf(err, errlen, "cannot read this process's cgroup");
		return -1;
	}
	if ((path && *path ? pathf(cg->dir[0], sizeof(cg->dir[0]), "%s", path)
	                   : pathf(cg->dir[0], sizeof(cg->dir[0]), CG_ROOT "%s", own)) != 0 ||
	    pathf(f, sizeof(f), "%s/cgroup.controllers", base) != 0) {
		mk_errf(err, errlen, "the cgroup path is too long");
		return -1;
	}
	if (read_small(f, have, sizeof(have)) < 0 || !has_word(have, "memory")) {
		mk_errf(err, errlen, "cgroup %s has no memory controller to hand on", base);
		return -1;
	}
	e = put(base, "cgroup.subtree_control", "+memory");
	if (e == -EBUSY && strcmp(cg->dir[0] + strlen(CG_ROOT), own) == 0) {
		/* Alone in our cgroup: move into a leaf so the cgroup can have children. */
		pathf(f, sizeof(f), "%s/executor", base);
		if (mkdir(f, 0755) != 0 && errno != EEXIST) {
			mk_errf(err, errlen, "cannot make %s: %s", f, strerror(errno));
			return -1;
		}
		e = putll(f, "cgroup.procs", (long long)getpid());
		if (e == 0)
			e = put(base, "cgroup.subtree_control", "+memory");
	}
	if (e != 0) {
		mk_errf(err, errlen,
		        "cannot enable the memory controller below %s (%s); give the executor a "
		        "delegated cgroup of its own",
		        base, strerror(-e));
		return -1;
	}
	if (has_word(have, "cpu"))
		put(base, "cgroup.subtree_control", "+cpu");
	if (has_word(have, "pids"))
		put(base, "cgroup.subtree_control", "+pids");
	snprintf(cg->ctrl[0], sizeof(cg->ctrl[0]), "v2");
	cg->kind = SBX_CG_V2;
	return 0;
}

/*
 * Remove what executors that were killed left below parent: their
 * "mark-executor-<pid>" groups (pid gone) and the empty "sbx-N" ones in
 * them. A group with processes left is kept.
 */
static void sweep_stale(const char *parent)
{
	char dir[SBX_CG_PATH + 64], sub[SBX_CG_PATH + 128], proc[64];
	DIR *d = opendir(parent), *in;
	struct dirent *e, *f;

	while (d && (e = readdir(d)) != NULL) {
		long pid;

		if (strncmp(e->d_name, "mark-executor-", 14) != 0)
			continue;
		pid = strtol(e->d_name + 14, NULL, 10);
		snprintf(proc, sizeof(proc), "/proc/%ld", pid);
		if (pid <= 0 || access(proc, F_OK) == 0 ||
		    pathf(dir, sizeof(dir), "%s/%s", parent, e->d_name) != 0)
			continue;
		if ((in = opendir(dir)) != NULL) {
			while ((f = readdir(in)) != NULL)
				if (strncmp(f->d_name, "sbx-", 4) == 0 &&
				    pathf(sub, sizeof(sub), "%s/%s", dir, f->d_name) == 0)
					rmdir(sub);
			closedir(in);
		}
		rmdir(dir);
	}
	if (d)
		closedir(d);
}

static int v1_open(sbx_cg *cg, char *err, size_t errlen)
{
	char own[SBX_CG_PATH], ctrls[64], mount[SBX_CG_PATH];

	for (int i = 0; i < SBX_CG_CTRLS; i++) {
		cg->dir[i][0] = '\0';
		if (own_cgroup(v1_ctrls[i], ctrls, sizeof(ctrls), own, sizeof(own)) != 0)
			continue;
		pathf(mount, sizeof(mount), CG_ROOT "/%s", ctrls);
		if (!is_dir(mount))
			pathf(mount, sizeof(mount), CG_ROOT "/%s", v1_ctrls[i]);
		if (!is_dir(mount))
			continue;
		/* In a container the hierarchy may show from our own group down. */
		if (pathf(cg->dir[i], sizeof(cg->dir[i]), "%s%s", mount, own) != 0 ||
		    !is_dir(cg->dir[i]))
			own[0] = '\0';
		if (pathf(cg->dir[i], sizeof(cg->dir[i]), "%s%s", mount, own) == 0)
			sweep_stale(cg->dir[i]);
		if (pathf(cg->dir[i], sizeof(cg->dir[i]), "%s%s/mark-executor-%d", mount, own,
		          (int)getpid()) != 0) {
			cg->dir[i][0] = '\0';
			continue;
		}
		if (mkdir(cg->dir[i], 0755) != 0 && errno != EEXIST) {
			if (i == 0) {
				mk_errf(err, errlen, "cannot make %s: %s", cg->dir[i],
				        strerror(errno));
				cg->dir[i][0] = '\0';
				return -1;
			}
			cg->dir[i][0] = '\0';
			continue;
		}
		snprintf(cg->ctrl[i], sizeof(cg->ctrl[i]), "%s", v1_ctrls[i]);
	}
	if (!cg->dir[0][0]) {
		mk_errf(err, errlen, "no cgroup v1 memory controller");
		return -1;
	}
	cg->made_base = 1;
	cg->kind = SBX_CG_V1;
	return 0;
}

/* A group made and removed again: the mode works end to end. */
static int probe(sbx_cg *cg, char *err, size_t errlen)
{
	sbx_cg_box box;

	if (sbx_cg_box_make(cg, &box, 64LL << 20, 1000, 64, err, errlen) != 0)
		return -1;
	sbx_cg_box_free(&box);
	return 0;
}

int sbx_cg_open(sbx_cg *cg, const char *want, const char *path, char *err, size_t errlen)
{
	char e2[300] = "", e1[300] = "";

	memset(cg, 0, sizeof(*cg));
	if (!want || strcmp(want, "off") == 0) {
		mk_errf(cg->why, sizeof(cg->why), "turned off by setting");
		return 0;
	}
	if (strcmp(want, "v1") != 0) {
		if (v2_open(cg, path, e2, sizeof(e2)) == 0 && probe(cg, e2, sizeof(e2)) == 0)
			return 0;
		sbx_cg_close(cg);
		if (strcmp(want, "v2") == 0) {
			mk_errf(err, errlen, "cgroup v2: %s", e2);
			return -1;
		}
	}
	if (geteuid() != 0)
		snprintf(e1, sizeof(e1), "cgroup v1 needs root");
	else if (v1_open(cg, e1, sizeof(e1)) == 0 && probe(cg, e1, sizeof(e1)) == 0)
		return 0;
	sbx_cg_close(cg);
	if (strcmp(want, "v1") == 0) {
		mk_errf(err, errlen, "cgroup v1: %s", e1);
		return -1;
	}
	mk_errf(cg->why, sizeof(cg->why), "cgroup v2: %s; cgroup v1: %s", e2, e1);
	return 0;
}

const char *sbx_cg_mode(const sbx_cg *cg)
{
	return cg->kind == SBX_CG_V2 ? "cgroup-v2" : cg->kind == SBX_CG_V1 ? "cgroup-v1" : "off";
}

void sbx_cg_close(sbx_cg *cg)
{
	char why[sizeof(cg->why)];

	if (cg->made_base)
		for (int i = 0; i < SBX_CG_CTRLS; i++)
			if (cg->dir[i][0])
				rmdir(cg->dir[i]);
	memcpy(why, cg->why, sizeof(why));
	memset(cg, 0, sizeof(*cg));
	memcpy(cg->why, why, sizeof(why));
}

/* ---- a sandbox's group -------------------------------------------------------- */

static int limits_v2(const char *d, long long memory, long long millicores, long long pids)
{
	int e = 0;

	if (memory > 0) {
		e = putll(d, "memory.max", memory);
		put(d, "memory.swap.max", "0"); /* absent without swap */
		put(d, "memory.oom.group", "1");
	}
	if (!e && millicores > 0) {
		char v[48];

		snprintf(v, sizeof(v), "%lld %d", millicores * CPU_PERIOD / 1000, CPU_PERIOD);
		e = put(d, "cpu.max", v);
		e = e == -ENOENT ? 0 : e; /* no cpu controller here */
	}
	if (!e && pids > 0) {
		e = putll(d, "pids.max", pids);
		e = e == -ENOENT ? 0 : e;
	}
	return e;
}

static int limits_v1(const char *ctrl, const char *d, long long memory, long long millicores,
                     long long pids)
{
	int e = 0;

	if (strcmp(ctrl, "memory") == 0 && memory > 0) {
		put(d, "memory.swappiness", "0");
		e = putll(d, "memory.limit_in_bytes", memory);
		if (!e) {
			e = putll(d, "memory.memsw.limit_in_bytes", memory);
			e = e == -ENOENT ? 0 : e; /* no swap accounting: no swap to limit */
		}
	} else if (strcmp(ctrl, "cpu") == 0 && millicores > 0) {
		e = putll(d, "cpu.cfs_period_us", CPU_PERIOD);
		if (!e)
			e = putll(d, "cpu.cfs_quota_us", millicores * CPU_PERIOD / 1000);
	} else if (strcmp(ctrl, "pids") == 0 && pids > 0) {
		e = putll(d, "pids.max", pids);
	}
	return e;
}

int sbx_cg_box_make(sbx_cg *cg, sbx_cg_box *box, long long memory, long long millicores,
                    long long pids, char *err, size_t errlen)
{
	unsigned long long n = __atomic_add_fetch(&cg->next, 1, __ATOMIC_RELAXED);
	char f[SBX_CG_PATH + 32];

	memset(box, 0, sizeof(*box));
	box->events_fd = -1;
	box->oom_base = -1;
	for (int i = 0; i < SBX_CG_CTRLS; i++)
		box->procs_fd[i] = -1;
	if (cg->kind == SBX_CG_OFF)
		return 0;
	for (int i = 0; i < SBX_CG_CTRLS; i++) {
		int e;

		if (!cg->dir[i][0])
			continue;
		if (pathf(box->dir[i], sizeof(box->dir[i]), "%s/sbx-%llu", cg->dir[i], n) != 0 ||
		    mkdir(box->dir[i], 0755) != 0) {
			mk_errf(err, errlen, "cannot make cgroup %s: %s", box->dir[i],
			        strerror(errno));
			box->dir[i][0] = '\0';
			goto fail;
		}
		e = cg->kind == SBX_CG_V2
		        ? limits_v2(box->dir[i], memory, millicores, pids)
		        : limits_v1(cg->ctrl[i], box->dir[i], memory, millicores, pids);
		if (e != 0) {
			mk_errf(err, errlen, "cannot set the limits of cgroup %s: %s", box->dir[i],
			        strerror(-e));
			goto fail;
		}
		pathf(f, sizeof(f), "%s/cgroup.procs", box->dir[i]);
		box->procs_fd[i] = open(f, O_WRONLY | O_CLOEXEC);
		if (box->procs_fd[i] < 0) {
			mk_errf(err, errlen, "cannot open %s: %s", f, strerror(errno));
			goto fail;
		}
	}
	pathf(f, sizeof(f), "%s/%s", box->dir[0],
	      cg->kind == SBX_CG_V2 ? "memory.events" : "memory.oom_control");
	box->events_fd = open(f, O_RDONLY | O_CLOEXEC);
	box->oom_base = oom_count(box->events_fd);
	if (box->oom_base < 0) {
		mk_errf(err, errlen, "cannot read the OOM kills of cgroup %s", box->dir[0]);
		goto fail;
	}
	return 0;
fail:
	sbx_cg_box_free(box);
	return -1;
}

int sbx_cg_box_join(const sbx_cg_box *box, pid_t self)
{
	char num[24];
	size_t n = sizeof(num);
	unsigned long v = (unsigned long)self;

	/* By hand: snprintf is not async-signal-safe. */
	do {
		num[--n] = (char)('0' + v % 10);
		v /= 10;
	} while (v && n > 0);
	for (int i = 0; i < SBX_CG_CTRLS; i++)
		if (box->procs_fd[i] >= 0 &&
		    write(box->procs_fd[i], num + n, sizeof(num) - n) != (ssize_t)(sizeof(num) - n))
			return -errno;
	return 0;
}

void sbx_cg_box_close_join(sbx_cg_box *box)
{
	for (int i = 0; i < SBX_CG_CTRLS; i++) {
		if (box->procs_fd[i] >= 0)
			close(box->procs_fd[i]);
		box->procs_fd[i] = -1;
	}
}

int sbx_cg_box_oom(const sbx_cg_box *box)
{
	long long n = oom_count(box->events_fd);

	return box->oom_base >= 0 && n > box->oom_base;
}

void sbx_cg_box_free(sbx_cg_box *box)
{
	sbx_cg_box_close_join(box);
	if (box->events_fd >= 0)
		close(box->events_fd);
	box->events_fd = -1;
	for (int i = 0; i < SBX_CG_CTRLS; i++) {
		if (!box->dir[i][0])
			continue;
		for (int k = 0; rmdir(box->dir[i]) != 0 && errno == EBUSY && k < RMDIR_TRIES; k++)
			mk_sleep_ms(10);
		box->dir[i][0] = '\0';
	}
}
