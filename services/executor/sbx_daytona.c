/*
 * sbx_daytona.c - the Daytona backend (libexecutor, sandbox layer): each
 * sandbox is a Daytona sandbox made from the configured snapshot, holding
 * the same Python driver as the local backend (SANDBOX.md).
 *
 * How a session lives in a Daytona sandbox: at creation the executor
 * uploads driver.py and relay.py (sandbox/relay.py, embedded like the
 * driver) to DTN_DIR through the toolbox's file endpoint and starts the
 * relay as a background command of a toolbox session. The relay starts the
 * driver (its fds 3 and 4 the control pipes, 1 and 2 pipes it reads) and
 * listens on a unix socket. Each call to the driver (ready, exec) is
 * one POST /process/execute whose command feeds one base64 request frame,
 * through a heredoc on the shell's stdin (no ARG_MAX limit), to a relay
 * client; that prints the reply frame and the run's stdout and stderr in
 * base64 on one line. The host decodes them with the shared codec
 * (sbx_frame.c) and holds them to its own limits (sbx_result.c), never to
 * sizes the sandbox claims; the HTTP response is capped too. The relay
 * kills the driver when the wall clock runs out, when the output is too
 * large, or when its client goes away (the execute's own timeout, a
 * backstop): then the session is lost, as in the local backend.
 *
 * Files do not go through the relay: uploads, files fetched and listed,
 * and a run's artifacts (the driver names them, the host fetches them)
 * move through the toolbox's file endpoints (sbx_daytona_files.c).
 *
 * Not here: the REST calls and their retries (sbx_daytona_api.c), the
 * files (sbx_daytona_files.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_b64.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"
#include "sbx_daytona_int.h"
#include "sbx_frame.h"
#include "sbx_result.h"

extern const char executor_driver_py[];
extern const size_t executor_driver_py_len;
extern const char executor_relay_py[];
extern const size_t executor_relay_py_len;

#define DTN_EXEC_MARGIN 30 /* s the execute's timeout exceeds the run's */
#define DTN_MARK        "MARK-RELAY "

/* ---- one exchange with the relay ------------------------------------------------ */

/* What one relay call gave: its status word, the reply frame (held by rx), the output. */
typedef struct {
	char status[16];
	sbx_frame_rx rx;
	sbx_stream out, err;
} relay_reply;

static void reply_init(relay_reply *r, size_t frame_max, const sbx_limits *L)
{
	memset(r, 0, sizeof(*r));
	sbx_frame_rx_init(&r->rx, frame_max);
	sbx_stream_init(&r->out, 1, L->stdout_bytes);
	sbx_stream_init(&r->err, 1, L->stderr_bytes);
}

static void reply_release(relay_reply *r)
{
	sbx_frame_rx_release(&r->rx);
	sbx_stream_release(&r->out);
	sbx_stream_release(&r->err);
}

/* The bytes of one base64 token ("-": none) of length n, or NULL with *bad set. */
static unsigned char *token_bytes(const char *t, size_t n, size_t *len, int *bad)
{
	unsigned char *d;

	*len = 0;
	if (n == 1 && t[0] == '-')
		return NULL;
	d = mk_b64_decode(t, n, len);
	if (!d)
		*bad = 1;
	return d;
}

/* Take the relay's line from the execute's output into r. 0, or -1 with err. */
static int parse_line(const char *outp, relay_reply *r, char *err, size_t errlen)
{
	const char *p = strstr(outp, DTN_MARK), *tok[4];
	size_t n[4], blen;
	unsigned char *bytes;
	int bad = 0;

	if (!p) {
		mk_errf(err, errlen, "the relay did not answer");
		return -1;
	}
	p += strlen(DTN_MARK);
	for (int i = 0; i < 4; i++) {
		while (*p == ' ')
			p++;
		tok[i] = p;
		n[i] = strcspn(p, " \r\n");
		p += n[i];
		if (n[i] == 0) {
			mk_errf(err, errlen, "the relay's answer is cut short");
			return -1;
		}
	}
	snprintf(r->status, sizeof(r->status), "%.*s", (int)(n[0] < 15 ? n[0] : 15), tok[0]);
	for (int i = 2; i < 4; i++) {
		bytes = token_bytes(tok[i], n[i], &blen, &bad);
		if (bytes)
			sbx_stream_add(i == 2 ? &r->out : &r->err, (const char *)bytes, blen);
		free(bytes);
	}
	bytes = token_bytes(tok[1], n[1], &blen, &bad);
	if (bytes) {
		size_t off = 0;
		char scratch[4096];

		while (off < blen) {
			void *dst;
			size_t room;
			int k = sbx_frame_rx_room(&r->rx, scratch, sizeof(scratch), &dst, &room,
			                          err, errlen);

			if (k == 1)
				break; /* trailing bytes after a whole frame are ignored */
			if (k < 0) {
				free(bytes);
				return -1;
			}
			if (room > blen - off)
				room = blen - off;
			memcpy(dst, bytes + off, room);
			if (sbx_frame_rx_took(&r->rx, room, err, errlen) != 0) {
				free(bytes);
				return -1;
			}
			off += room;
		}
		free(bytes);
	}
	if (bad) {
		mk_errf(err, errlen, "the relay's answer is not base64");
		return -1;
	}
	return 0;
}

/*
 * Send one frame (NULL: ask for the ready frame) through the relay and
 * read its answer into r. timeout_ms is the relay's wall clock for the
 * reply; retry: the call may be repeated after a bare 5xx. 0 with r filled
 * (r->status says how the relay fared), or -1 with err when the call
 * itself failed (*timed_out: the execute ran out).
 */
static int relay_call(dtn_box *s, const unsigned char *frame, size_t len, long long timeout_ms,
                      int retry, size_t frame_max, relay_reply *r, int *timed_out, char *err,
                      size_t errlen)
{
	const sbx_limits *L = &s->b->lim;
	char *b64 = frame ? mk_b64_encode(frame, len) : NULL, *out = NULL;
	mk_buf cmd;
	size_t resp_max;
	int code = 0, rc;

	*timed_out = 0;
	if (frame && !b64) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	mk_buf_init(&cmd, 0);
	rc = mk_buf_printf(&cmd,
	                   "python3 -I " DTN_DIR "/relay.py call " DTN_DIR " <<'MARK_RELAY_EOF'\n"
	                   "{\"timeout_ms\":%lld,\"connect_ms\":%lld,\"out_max\":%lld,"
	                   "\"kill_max\":%lld,\"frame_max\":%zu}\n",
	                   timeout_ms, s->b->lim.start_timeout_ms,
	                   L->stdout_bytes > L->stderr_bytes ? L->stdout_bytes : L->stderr_bytes,
	                   L->output_kill_bytes, frame_max);
	if (rc == 0 && b64)
		rc = mk_buf_puts(&cmd, b64);
	if (rc == 0)
		rc = mk_buf_puts(&cmd, "\nMARK_RELAY_EOF\n");
	free(b64);
	if (rc != 0 || mk_buf_append(&cmd, "", 1) != 0) {
		mk_buf_release(&cmd);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	/* Everything the relay may print, in base64, and the JSON around it. */
	resp_max = (frame_max + (size_t)L->stdout_bytes + (size_t)L->stderr_bytes) / 3 * 4 + 65536;
	rc = dtn_execute(&s->b->api, s->tb, cmd.data, timeout_ms / 1000 + DTN_EXEC_MARGIN, retry,
	                 resp_max, mk_mono_ms() + timeout_ms + DTN_EXEC_MARGIN * 1000, &out, &code,
	                 timed_out, err, errlen);
	mk_buf_release(&cmd);
	if (rc == 0)
		rc = parse_line(out, r, err, errlen);
	free(out);
	return rc;
}

/* A frame that is not an execution, and its reply of type want (or NULL with err). */
static cJSON *request(dtn_box *s, unsigned char *frame, size_t len, const char *want,
                      size_t frame_max, char *err, size_t errlen)
{
	relay_reply r;
	cJSON *reply = NULL;
	int to;

	reply_init(&r, frame_max, &s->b->lim);
	/* ready, put, get, list: doing one twice is harmless, so a bare 502 is retried. */
	if (relay_call(s, frame, len, DTN_CALL_MS, 1, frame_max, &r, &to, err, errlen) != 0)
		goto out;
	if (strcmp(r.status, "ok") != 0) {
		mk_errf(err, errlen, "the sandbox's session %s",
		        strcmp(r.status, "timeout") == 0 ? "did not answer in time" : "ended");
		s->dead = 1;
		goto out;
	}
	reply = sbx_frame_rx_json(&r.rx, err, errlen);
	if (reply && strcmp(mk_json_str(reply, "t"), want) != 0) {
		const char *m = mk_json_str(reply, "message");

		mk_errf(err, errlen, "%s", m ? m : "the sandbox answered out of turn");
		cJSON_Delete(reply);
		reply = NULL;
	}
out:
	free(frame);
	reply_release(&r);
	return reply;
}

/* ---- the operations -------------------------------------------------------------- */

static int box_start(dtn_box *s, int64_t deadline, char *err, size_t errlen);

/* Whether Daytona has stopped (or archived) the sandbox: then its processes are gone. */
static int box_stopped(dtn_box *s)
{
	char err[300];
	cJSON *sb =
	    dtn_sandbox_get(&s->b->api, s->id, mk_mono_ms() + DTN_CTRL_MS, NULL, err, sizeof(err));
	const char *st = sb ? mk_json_str(sb, "state") : NULL;
	int stopped = st && (strcmp(st, "stopped") == 0 || strcmp(st, "stopping") == 0 ||
	                     strcmp(st, "archived") == 0 || strcmp(st, "archiving") == 0);

	cJSON_Delete(sb);
	return stopped;
}

/*
 * Start a sandbox Daytona stopped (auto-stop) again, and its relay and
 * driver: its files are kept, its Python state is not (the next result
 * says so). 0, or -1 with err.
 */
static int box_restart(dtn_box *s, char *err, size_t errlen)
{
	int64_t deadline = mk_mono_ms() + s->b->lim.start_timeout_ms;

	if (dtn_sandbox_wait_started(&s->b->api, s->id, deadline, s->tb, sizeof(s->tb), err,
	                             errlen) != 0 ||
	    box_start(s, deadline, err, errlen) != 0)
		return -1;
	s->dead = 0;
	s->restarted = 1;
	MK_INFO("EXEC-DAYTONA-RESTART", NULL,
	        "sandbox %s had been stopped: started again, its Python state is gone", s->id);
	return 0;
}

static cJSON *dtn_exec(sbx *base, const char *code, long long timeout_ms)
{
	dtn_box *s = (dtn_box *)base;
	const sbx_limits *L = &s->b->lim;
	size_t fmax =
	    sbx_result_frame_max(L) < SBX_FRAME_MAX ? sbx_result_frame_max(L) : SBX_FRAME_MAX;
	const char *type = NULL, *limit = NULL;
	char msg[400], why[300];
	cJSON *reply = NULL, *res = NULL;
	unsigned char *f;
	relay_reply r;
	long long id, rid;
	int64_t t0 = mk_mono_ms();
	size_t n;
	int to = 0, rc;

	reply_init(&r, fmax, L);
	if (!code)
		code = "";
	if (mk_utf8_valid_prefix((const unsigned char *)code, strlen(code)) != strlen(code)) {
		res = sbx_result_host("ValueError", "the code is not valid UTF-8 and was not run",
		                      &r.out, &r.err, 0, NULL, 0);
		goto out;
	}
	if (s->dead) {
		res = sbx_result_host("SandboxExited",
		                      "the sandbox is no longer running; the session was reset",
		                      &r.out, &r.err, 0, NULL, 1);
		goto out;
	}
	id = ++s->next_id;
	f = sbx_frame_exec(id, code, L, 0, &n);
	if (!f) {
		res = sbx_result_host("MemoryError", "the code is too large to send to the sandbox",
		                      &r.out, &r.err, 0, NULL, 0);
		goto out;
	}
	/* An execution is not repeated: its code may have run... */
	rc = relay_call(s, f, n, timeout_ms > 0 ? timeout_ms : 1, 0, fmax, &r, &to, why,
	                sizeof(why));
	/* ... unless the sandbox was stopped (idle) since the last run: then it never got there. */
	if (rc != 0 && !to && box_stopped(s) && box_restart(s, why, sizeof(why)) == 0) {
		reply_release(&r);
		reply_init(&r, fmax, L);
		rc = relay_call(s, f, n, timeout_ms > 0 ? timeout_ms : 1, 0, fmax, &r, &to, why,
		                sizeof(why));
	}
	if (rc != 0) {
		free(f);
		if (to) {
			limit = "wall_time";
			type = sbx_result_stop_text(limit, timeout_ms, L, msg, sizeof(msg));
		} else {
			type = "SandboxError";
			snprintf(msg, sizeof(msg),
			         "the sandbox could not be reached (%s); the session was reset",
			         why);
		}
		goto lost;
	}
	free(f);
	if (strcmp(r.status, "ok") == 0) {
		reply = sbx_frame_rx_json(&r.rx, why, sizeof(why));
		if (reply && strcmp(mk_json_str(reply, "t"), "done") == 0 &&
		    mk_json_int(reply, "id", &rid) == 0 && rid == id &&
		    cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(reply, "result"))) {
			res = cJSON_DetachItemFromObjectCaseSensitive(reply, "result");
			dtn_fetch_artifacts(s, res, mk_mono_ms() + DTN_CALL_MS);
			sbx_result_enforce(res, L);
			res = sbx_result_finish(res, &r.out, &r.err, mk_mono_ms() - t0, NULL, 0);
			cJSON_Delete(reply);
			goto out;
		}
		if (reply)
			snprintf(why, sizeof(why), "a '%.20s' reply to an execution",
			         mk_json_str(reply, "t"));
		cJSON_Delete(reply);
		snprintf(r.status, sizeof(r.status), "bad");
	}
	if (strcmp(r.status, "timeout") == 0 || strcmp(r.status, "gone") == 0 ||
	    strcmp(r.status, "output") == 0) {
		limit = strcmp(r.status, "output") == 0 ? "output" : "wall_time";
		type = sbx_result_stop_text(limit, timeout_ms, L, msg, sizeof(msg));
	} else if (strcmp(r.status, "exited") == 0) {
		type = "SandboxExited";
		snprintf(msg, sizeof(msg),
		         "the Python session ended while running the code; the session was reset");
	} else {
		type = "SandboxError";
		snprintf(
		    msg, sizeof(msg),
		    "the sandbox broke the protocol (%s) and was stopped; the session was reset",
		    strcmp(r.status, "bad") == 0 ? "an oversize or malformed reply" : r.status);
	}
lost:
	s->dead = 1;
	res = sbx_result_host(type, msg, &r.out, &r.err, mk_mono_ms() - t0, limit, 1);
	MK_INFO("EXEC-SBX-LOST", NULL, "daytona sandbox %s lost during an execution: %s", s->id,
	        type);
out:
	reply_release(&r);
	if (res && s->restarted) {
		cJSON_AddStringToObject(res, "session_reset", "sandbox_stopped");
		s->restarted = 0;
	}
	return res;
}

static int dtn_alive(sbx *base)
{
	return !((dtn_box *)base)->dead;
}

static void dtn_destroy(sbx *base)
{
	dtn_box *s = (dtn_box *)base;
	char err[300];

	if (s->id[0] &&
	    dtn_sandbox_delete(&s->b->api, s->id, mk_mono_ms() + DTN_CTRL_MS, err, sizeof(err)))
		MK_WARN("EXEC-DAYTONA-DELETE", NULL, "cannot delete sandbox %s: %s", s->id, err);
	free(s);
}

/* ---- a sandbox made ---------------------------------------------------------------- */

/* The body of POST /sandbox. */
static cJSON *create_body(const dtn_backend *b)
{
	cJSON *o = cJSON_CreateObject(), *labels = cJSON_AddObjectToObject(o, "labels");

	if (!labels)
		goto fail;
	if (*b->snapshot && !cJSON_AddStringToObject(o, "snapshot", b->snapshot))
		goto fail;
	if (*b->target && !cJSON_AddStringToObject(o, "target", b->target))
		goto fail;
	if (!cJSON_AddStringToObject(labels, "mark-deployment", b->deployment) ||
	    !cJSON_AddStringToObject(labels, DTN_LABEL_WK, b->worker))
		goto fail;
	if (*b->network_allow ? !cJSON_AddStringToObject(o, "networkAllowList", b->network_allow)
	                      : !cJSON_AddTrueToObject(o, "networkBlockAll"))
		goto fail;
	/* Resources are refused with a snapshot (it sets them): sent only when configured. */
	if ((b->cpu > 0 && !cJSON_AddNumberToObject(o, "cpu", (double)b->cpu)) ||
	    (b->memory_gb > 0 && !cJSON_AddNumberToObject(o, "memory", (double)b->memory_gb)) ||
	    (b->disk_gb > 0 && !cJSON_AddNumberToObject(o, "disk", (double)b->disk_gb)))
		goto fail;
	if ((b->auto_stop >= 0 &&
	     !cJSON_AddNumberToObject(o, "autoStopInterval", (double)b->auto_stop)) ||
	    (b->auto_archive >= 0 &&
	     !cJSON_AddNumberToObject(o, "autoArchiveInterval", (double)b->auto_archive)) ||
	    (b->auto_delete >= 0 &&
	     !cJSON_AddNumberToObject(o, "autoDeleteInterval", (double)b->auto_delete)))
		goto fail;
	return o;
fail:
	cJSON_Delete(o);
	return NULL;
}

/* Put the driver and the relay in a started sandbox, start the relay, wait for ready. */
static int box_start(dtn_box *s, int64_t deadline, char *err, size_t errlen)
{
	const dtn_backend *b = s->b;
	mk_buf cmd;
	cJSON *ready;
	unsigned char *none = NULL;
	char *out = NULL;
	int rc, code = 0, to = 0;

	if (dtn_upload(&b->api, s->tb, DTN_DIR "/driver.py", executor_driver_py,
	               executor_driver_py_len, deadline, err, errlen) != 0 ||
	    dtn_upload(&b->api, s->tb, DTN_DIR "/relay.py", executor_relay_py,
	               executor_relay_py_len, deadline, err, errlen) != 0)
		return -1;
	/*
	 * A sandbox started again keeps the socket of its old relay: gone
	 * before the new relay starts, so the wait for ready does not meet it.
	 */
	if (dtn_execute(&b->api, s->tb, "rm -f " DTN_DIR "/relay.sock", 30, 1, 1 << 16, deadline,
	                &out, &code, &to, err, errlen) != 0)
		return -1;
	free(out);
	mk_buf_init(&cmd, 0);
	/* The preload list holds module names and commas only (sbx_daytona_new). */
	rc = mk_buf_printf(
	    &cmd,
	    "mkdir -p /home/daytona/workspace/output && cd /home/daytona/workspace && "
	    "exec python3 -I " DTN_DIR "/relay.py serve " DTN_DIR " '%s' >" DTN_DIR
	    "/relay.log 2>&1",
	    b->preload);
	if (rc != 0 || mk_buf_append(&cmd, "", 1) != 0) {
		mk_buf_release(&cmd);
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	rc = dtn_background(&b->api, s->tb, "mark-relay", cmd.data, deadline, err, errlen);
	mk_buf_release(&cmd);
	if (rc != 0)
		return -1;
	ready = request(s, none, 0, "ready", 1 << 16, err, errlen);
	if (!ready)
		return -1;
	if (mk_json_bool(ready, "parquet", &s->parquet) != 0)
		s->parquet = 0;
	cJSON_Delete(ready);
	return 0;
}

static sbx *dtn_create(sbx_backend *base, char *err, size_t errlen)
{
	dtn_backend *b = (dtn_backend *)base;
	int64_t deadline = mk_mono_ms() + b->lim.start_timeout_ms;
	dtn_box *s = calloc(1, sizeof(*s));
	cJSON *body = create_body(b), *sb = NULL;

	if (!s || !body) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	s->base.b = base;
	s->b = b;
	sb = dtn_sandbox_create(&b->api, body, deadline, err, errlen);
	if (!sb)
		goto fail;
	snprintf(s->id, sizeof(s->id), "%s", mk_json_str(sb, "id"));
	if (dtn_sandbox_wait_started(&b->api, s->id, deadline, s->tb, sizeof(s->tb), err, errlen) !=
	        0 ||
	    box_start(s, deadline, err, errlen) != 0)
		goto fail;
	cJSON_Delete(body);
	cJSON_Delete(sb);
	MK_DEBUG("EXEC-DAYTONA-CREATE", NULL, "sandbox %s ready", s->id);
	return &s->base;
fail:
	cJSON_Delete(body);
	cJSON_Delete(sb);
	if (s)
		dtn_destroy(&s->base);
	return NULL;
}

static const char *dtn_ref(sbx *base)
{
	return ((dtn_box *)base)->id;
}

static void dtn_detach(sbx *base)
{
	free(base);
}

/* The labels of a chat's sandbox: the deployment's, the worker's, the chat's and its owner's. */
static void dtn_label(sbx *base, const char *chat_id, const char *owner_id)
{
	dtn_box *s = (dtn_box *)base;
	cJSON *l = cJSON_CreateObject();
	char err[300];

	if (l && cJSON_AddStringToObject(l, "mark-deployment", s->b->deployment) &&
	    cJSON_AddStringToObject(l, DTN_LABEL_WK, s->b->worker) &&
	    cJSON_AddStringToObject(l, "mark-chat", chat_id) &&
	    cJSON_AddStringToObject(l, "mark-user", owner_id) &&
	    dtn_sandbox_labels(&s->b->api, s->id, l, mk_mono_ms() + DTN_CTRL_MS, err,
	                       sizeof(err)) != 0)
		MK_WARN("EXEC-DAYTONA-LABELS", NULL, "cannot label sandbox %s: %s", s->id, err);
	cJSON_Delete(l);
}

static void dtn_drop(sbx_backend *base, const char *ref)
{
	char err[300];

	if (dtn_sandbox_delete(&((dtn_backend *)base)->api, ref, mk_mono_ms() + DTN_CTRL_MS, err,
	                       sizeof(err)) != 0)
		MK_WARN("EXEC-DAYTONA-DELETE", NULL, "cannot delete sandbox %s: %s", ref, err);
}

static sbx *dtn_attach(sbx_backend *base, const char *ref, char *err, size_t errlen)
{
	dtn_backend *b = (dtn_backend *)base;
	int64_t deadline = mk_mono_ms() + b->lim.start_timeout_ms;
	dtn_box *s = calloc(1, sizeof(*s));
	unsigned char *none = NULL;
	cJSON *ready;

	if (!s) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	s->base.b = base;
	s->b = b;
	snprintf(s->id, sizeof(s->id), "%s", ref);
	if (dtn_sandbox_wait_started(&b->api, s->id, deadline, s->tb, sizeof(s->tb), err, errlen) !=
	    0) {
		dtn_destroy(&s->base);
		return NULL;
	}
	/*
	 * A sandbox Daytona stopped meanwhile (and wait_started started again)
	 * has lost its processes: its relay and driver start anew, its files
	 * stay, and the next result says the Python state is gone.
	 */
	if (!(ready = request(s, none, 0, "ready", 1 << 16, err, errlen))) {
		if (box_start(s, deadline, err, errlen) != 0 ||
		    !(ready = request(s, none, 0, "ready", 1 << 16, err, errlen))) {
			dtn_destroy(&s->base);
			return NULL;
		}
		s->dead = 0;
		s->restarted = 1;
		MK_INFO("EXEC-DAYTONA-RESTART", NULL,
		        "sandbox %s had been stopped: started again, its Python state is gone",
		        s->id);
	}
	if (mk_json_bool(ready, "parquet", &s->parquet) != 0)
		s->parquet = 0;
	cJSON_Delete(ready);
	return &s->base;
}

/* ---- the backend -------------------------------------------------------------------- */

static sbx_caps dtn_caps(const sbx_backend *base)
{
	return ((const dtn_backend *)base)->caps;
}

static void dtn_free(sbx_backend *base)
{
	dtn_backend *b = (dtn_backend *)base;

	dtn_client_release(&b->api);
	free(b->snapshot);
	free(b->target);
	free(b->network_allow);
	free(b->deployment);
	free(b->worker);
	free(b->preload);
	free(b);
}

/* The deployment's sandboxes as {ref, worker, started}, for the orphan reaper. */
static cJSON *dtn_leftovers(sbx_backend *base, char *err, size_t errlen)
{
	dtn_backend *b = (dtn_backend *)base;
	cJSON *all = dtn_sandbox_list(&b->api, "mark-deployment", b->deployment,
	                              mk_mono_ms() + DTN_CTRL_MS, err, errlen),
	      *out = cJSON_CreateArray(), *sb;

	if (!all || !out) {
		cJSON_Delete(all);
		cJSON_Delete(out);
		return NULL;
	}
	cJSON_ArrayForEach(sb, all)
	{
		const char *st = mk_json_str(sb, "state"), *id = mk_json_str(sb, "id");
		const char *wk =
		    mk_json_str(cJSON_GetObjectItemCaseSensitive(sb, "labels"), DTN_LABEL_WK);
		cJSON *o;

		/* One on its way out is none of the reaper's business. */
		if (!id || (st && (strcmp(st, "destroyed") == 0 || strcmp(st, "destroying") == 0)))
			continue;
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "ref", id);
		cJSON_AddStringToObject(o, "worker", wk ? wk : "");
		cJSON_AddBoolToObject(o, "started",
		                      !st || strcmp(st, "started") == 0 ||
		                          strcmp(st, "starting") == 0 ||
		                          strcmp(st, "creating") == 0);
		cJSON_AddItemToArray(out, o);
	}
	cJSON_Delete(all);
	return out;
}

static const sbx_backend_ops daytona_ops = {
    .name = "daytona",
    .create = dtn_create,
    .exec = dtn_exec,
    .put = dtn_put,
    .get = dtn_get,
    .list = dtn_list,
    .alive = dtn_alive,
    .destroy = dtn_destroy,
    .ref = dtn_ref,
    .attach = dtn_attach,
    .detach = dtn_detach,
    .drop = dtn_drop,
    .label = dtn_label,
    .leftovers = dtn_leftovers,
    .caps = dtn_caps,
    .free = dtn_free,
};

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

sbx_backend *sbx_daytona_new(const sbx_daytona_opts *o, const sbx_limits *lim, char *err,
                             size_t errlen)
{
	dtn_backend *b = calloc(1, sizeof(*b));
	sbx *probe;

	if (!b || dtn_client_init(&b->api, o->api_url, o->api_key ? o->api_key : "") != 0 ||
	    !(b->snapshot = dup_or_empty(o->snapshot)) || !(b->target = dup_or_empty(o->target)) ||
	    !(b->network_allow = dup_or_empty(o->network_allow)) ||
	    !(b->deployment = dup_or_empty(o->deployment)) ||
	    !(b->worker = dup_or_empty(o->worker)) || !(b->preload = dup_or_empty(o->preload))) {
		mk_errf(err, errlen, "out of memory");
		if (b)
			dtn_free(&b->base);
		return NULL;
	}
	b->base.ops = &daytona_ops;
	b->cpu = o->cpu;
	b->memory_gb = o->memory_gb;
	b->disk_gb = o->disk_gb;
	b->auto_stop = o->auto_stop_min;
	b->auto_archive = o->auto_archive_min;
	b->auto_delete = o->auto_delete_min;
	b->lim = *lim;
	if (b->lim.start_timeout_ms <= 0)
		b->lim.start_timeout_ms = 120000;
	b->caps.isolation = "daytona";
	if (strspn(b->preload,
	           "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.,") !=
	    strlen(b->preload)) {
		mk_errf(err, errlen, "preload '%s' is not a list of module names", b->preload);
		dtn_free(&b->base);
		return NULL;
	}
	probe = dtn_create(&b->base, err, errlen);
	if (!probe) {
		dtn_free(&b->base);
		return NULL;
	}
	b->caps.parquet = ((dtn_box *)probe)->parquet;
	dtn_destroy(probe);
	return &b->base;
}
