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
#include "sbx_frame.h"
#include "sbx_local_int.h"
#include "sbx_result.h"
#include "sbx_seccomp.h"

#define CALL_TIMEOUT_MS 30000 /* put, get, list */
#define EXIT_GRACE_MS   1000  /* after the driver hangs up: time for bwrap to report its exit */
#define START_ERR_KEEP  (64 << 10) /* stderr kept during start-up, for the failure message */

/* ---- small helpers -------------------------------------------------------- */

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
	for (size_t i = 0; i < SBX_LOCAL_NTMPFS; i++) {
		struct statvfs v;

		snprintf(path, sizeof(path), "/proc/%d/root%s", (int)s->init_pid,
		         sbx_local_tmpfs[i]);
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
		if (ii >= 0 && p[ii].revents)
			sbx_local_info_read(s); /* closes info_fd once it has the pid */
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
		sbx_local_stop(s, 0);
		snprintf(msg, sizeof(msg),
		         "the code ran longer than %lld ms and was stopped; the session was reset",
		         timeout_ms);
		res = sbx_result_host("TimeoutError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "wall_time", 1);
		break;
	case X_OUTPUT:
		sbx_local_stop(s, 0);
		snprintf(
		    msg, sizeof(msg),
		    "the code wrote more than %lld bytes of output and was stopped; the session "
		    "was reset",
		    L->output_kill_bytes);
		res = sbx_result_host("OutputLimitError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "output", 1);
		break;
	case X_MEMORY:
		sbx_local_stop(s, 0);
		snprintf(msg, sizeof(msg),
		         "the sandbox's processes together used more than %lld bytes of memory and "
		         "were stopped; the session was reset",
		         L->memory_bytes);
		res = sbx_result_host("MemoryError", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      "memory", 1);
		break;
	case X_EXITED:
		sbx_local_stop(s, EXIT_GRACE_MS);
		pump(s, s->out_fd, &x.out, 64);
		pump(s, s->err_fd, &x.err, 64);
		sbx_local_death_text(s, how, sizeof(how), &limit);
		snprintf(
		    msg, sizeof(msg),
		    "the Python session ended while running the code (%s); the session was reset",
		    how);
		res = sbx_result_host("SandboxExited", msg, &x.out, &x.err, mk_mono_ms() - t0,
		                      limit, 1);
		break;
	default:
		sbx_local_stop(s, 0);
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
	sbx_local_stop(s, 0);
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
				sbx_local_stop(s, 0);
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
	sbx_local_stop(s, rc == X_EXITED ? EXIT_GRACE_MS : 0);
	pump(s, s->err_fd, &x.err, 64);
	sbx_stream_tail(&x.err, detail, sizeof(detail));
	if (rc == X_TIMEOUT) {
		mk_errf(err, errlen, "sandbox was not ready within %lld ms (preload '%s')%s%s", ms,
		        s->b->preload, *detail ? ": " : "", detail);
	} else if (rc == X_EXITED) {
		sbx_local_death_text(s, how, sizeof(how), &limit);
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
	    sbx_local_start(s, err, errlen) != 0 || wait_ready(s, err, errlen) != 0) {
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
