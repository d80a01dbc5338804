/*
 * sbx_local_run.c - requests to a local sandbox's driver (libexecutor,
 * sandbox layer; part of the local backend, see sbx_local_int.h): the wait
 * for its ready frame, an execution, and files in and out.
 *
 * Every request goes through one loop over the sandbox's descriptors: it
 * writes the request frame and reads the reply (sbx_frame.h) while it
 * reads stdout and stderr, and holds the run to the wall clock, the output
 * caps, the reply's size and the sandbox's memory; it notices the
 * sandbox's end. A sandbox that overruns or breaks the protocol is stopped
 * whole (sbx_stop.c) and the result or the error says why (SANDBOX.md).
 * Results are held to the host's limits and completed in sbx_result.c.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/evp.h>

#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "sbx_frame.h"
#include "sbx_local_int.h"
#include "sbx_result.h"

#define CALL_TIMEOUT_MS 30000 /* put, get, list */
#define EXIT_GRACE_MS   1000  /* after the driver hangs up: time for bwrap to report its exit */
#define START_ERR_KEEP  (64 << 10) /* stderr kept during start-up, for the failure message */

/* ---- the exchange ----------------------------------------------------------- */

/* One request to the driver and its reply, with the output read meanwhile. */
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

/* How xfer_run ended. */
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
		if (x->watch_memory && mk_mono_ms() >= s->mem_check && sbx_local_memory_over(s))
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

/* ---- an execution ----------------------------------------------------------- */

/* Empty the output pipes of what earlier code left there (a thread still printing, say). */
static void drain_stale(sbx_local_box *s)
{
	sbx_stream dummy;

	sbx_stream_init(&dummy, 0, 0);
	pump(s, s->out_fd, &dummy, 64);
	sbx_stream_init(&dummy, 0, 0);
	pump(s, s->err_fd, &dummy, 64);
}

cJSON *sbx_local_exec(sbx *base, const char *code, long long timeout_ms)
{
	sbx_local_box *s = (sbx_local_box *)base;
	const sbx_limits *L = &s->b->lim;
	char msg[300], how[160];
	const char *limit = NULL, *type;
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
	x.req = sbx_frame_exec(id, code, L, 1, &x.req_len);
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

	sbx_local_stop(s, rc == X_EXITED ? EXIT_GRACE_MS : 0);
	switch (rc) {
	case X_TIMEOUT:
	case X_OUTPUT:
		limit = rc == X_TIMEOUT ? "wall_time" : "output";
		type = sbx_result_stop_text(limit, timeout_ms, L, msg, sizeof(msg));
		break;
	case X_MEMORY:
		type = "MemoryError";
		limit = "memory";
		snprintf(msg, sizeof(msg),
		         "the sandbox's processes together used more than %lld bytes of memory and "
		         "were stopped; the session was reset",
		         L->memory_bytes);
		break;
	case X_EXITED:
		pump(s, s->out_fd, &x.out, 64);
		pump(s, s->err_fd, &x.err, 64);
		type = "SandboxExited";
		sbx_local_death_text(s, how, sizeof(how), &limit);
		snprintf(
		    msg, sizeof(msg),
		    "the Python session ended while running the code (%s); the session was reset",
		    how);
		break;
	default:
		type = "SandboxError";
		snprintf(
		    msg, sizeof(msg),
		    "the sandbox broke the protocol (%s) and was stopped; the session was reset",
		    x.why);
		break;
	}
	res = sbx_result_host(type, msg, &x.out, &x.err, mk_mono_ms() - t0, limit, 1);
	MK_INFO("EXEC-SBX-LOST", NULL, "sandbox %d lost during an execution: %s", (int)s->pid,
	        rc == X_TIMEOUT  ? "wall-clock timeout"
	        : rc == X_OUTPUT ? "output limit"
	        : rc == X_MEMORY ? "memory limit"
	        : rc == X_EXITED ? how
	                         : x.why);
	xfer_release(&x);
	return res;
}

/* ---- files ------------------------------------------------------------------ */

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

int sbx_local_put(sbx *base, const char *path, const void *data, size_t len, char *err,
                  size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	unsigned char *f;
	cJSON *reply;
	long long id;
	size_t n;

	if (sbx_put_request_ok(path, len, s->dead, err, errlen) != 0)
		return -1;
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

int sbx_local_get(sbx *base, const char *path, mk_buf *out, char *err, size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	size_t frame_max = SBX_FRAME_MAX, room, n;
	unsigned char *f;
	cJSON *req, *reply;
	long long id;
	int oversize, dn;

	if (sbx_file_request_ok(path, s->dead, err, errlen) != 0)
		return -1;
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
	dn = sbx_frame_file(reply, path, room, out, err, errlen);
	cJSON_Delete(reply);
	return dn;
}

cJSON *sbx_local_list(sbx *base, char *err, size_t errlen)
{
	sbx_local_box *s = (sbx_local_box *)base;
	cJSON *req, *reply;
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
	return sbx_frame_files(reply, err, errlen);
}

/* ---- start-up --------------------------------------------------------------- */

int sbx_local_ready(sbx_local_box *s, char *err, size_t errlen)
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
