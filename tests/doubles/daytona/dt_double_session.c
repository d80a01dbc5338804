/*
 * dt_double_session.c - the toolbox's sessions (contract §3.4): long-lived
 * shells whose state (working directory, exported variables) carries from
 * one command to the next.
 *
 *   POST   /process/session  {"sessionId"}                 201
 *   GET    /process/session                                [Session]
 *   GET    /process/session/{sid}                          {"sessionId","commands"}
 *   DELETE /process/session/{sid}                          204
 *   POST   /process/session/{sid}/exec  {"command","runAsync"?|"async"?}
 *          -> 200 {"cmdId","output","stdout","stderr","exitCode"}, or 202 {"cmdId"}
 *   GET    /process/session/{sid}/command/{cid}            {"id","command","exitCode"?}
 *   GET    /process/session/{sid}/command/{cid}/logs       JSON or text (below)
 *
 * As in the daemon, a session is one bash (here in its own bubblewrap)
 * reading commands from a pipe. Each command is saved as cmd.sh under
 * ~/.daytona/sessions/{sid}/{cid}/ and a block is written to the shell
 * that sources it with stdout and stderr going through two FIFOs whose
 * lines are labelled (\1\1\1 and \2\2\2) into output.log, then writes the
 * exit code to exit_code once the labels are flushed. Commands therefore
 * run one after the other in a session; an async one only answers early.
 *
 * The output format follows X-Daytona-SDK-Version like the daemon's: no
 * header -> combined text (labels removed; X-Daytona-Split-Output: true
 * asks for the split form); below 0.27.0 -> combined; below 0.167.0 ->
 * labelled text for the client to split; 0.167.0 and later -> logs as
 * {"output","stdout","stderr"} and exec with stdout and stderr filled.
 * Following logs (WebSocket) and command input are not served.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

#define SESSIONS_DIR DT_HOME "/.daytona/sessions"
#define POLL_MS      50

static const char out_label[] = "\x01\x01\x01", err_label[] = "\x02\x02\x02";

/* ------------------------------------------------------------------ registry */

void dt_session_reap(dt_sandbox *s)
{
	dt_session *se;

	for (se = s->sessions; se; se = se->next) {
		int st;

		if (se->pid > 0 && waitpid(se->pid, &st, WNOHANG) == se->pid) {
			dt_sandbox_dying(s, se->pid);
			se->pid = 0;
			if (se->in_fd >= 0)
				close(se->in_fd);
			se->in_fd = -1;
		}
	}
}

/*
 * Kill and reap the shell's bubblewrap and free se; the pid reaped (0: none),
 * for dt_sandbox_dying under d->mu, since its pid 1 may not have exited yet.
 */
static pid_t session_free(dt_session *se)
{
	pid_t pid = se->pid;

	if (pid > 0) {
		dt_proc_kill(pid);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (se->in_fd >= 0)
		close(se->in_fd);
	cJSON_Delete(se->commands);
	free(se);
	return pid;
}

void dt_session_drop_all(dt_sandbox *s)
{
	while (s->sessions) {
		dt_session *se = s->sessions;

		s->sessions = se->next;
		dt_sandbox_dying(s, session_free(se));
	}
}

static dt_session *session_find(dt_sandbox *s, const char *id)
{
	dt_session *se;

	for (se = s->sessions; se; se = se->next)
		if (strcmp(se->id, id) == 0)
			return se;
	return NULL;
}

/* ------------------------------------------------------------------ output formats */

typedef struct {
	int combined;   /* labels removed, stdout and stderr together */
	int skip_demux; /* no stdout/stderr split by the server */
} out_mode;

/* "a.b.c" compared with major.minor.patch; -1, 0, 1, or 2 when s is not a version. */
static int version_cmp(const char *s, int major, int minor, int patch)
{
	int v[3] = {0, 0, 0}, want[3] = {major, minor, patch}, i;

	if (*s == 'v')
		s++;
	if (sscanf(s, "%d.%d.%d", &v[0], &v[1], &v[2]) != 3)
		return 2;
	for (i = 0; i < 3; i++)
		if (v[i] != want[i])
			return v[i] < want[i] ? -1 : 1;
	return 0;
}

static out_mode mode_of(const dt_req *r)
{
	const char *v = mg_get_header(r->conn, "X-Daytona-SDK-Version");
	const char *split = mg_get_header(r->conn, "X-Daytona-Split-Output");
	out_mode m = {0, 0};
	int c27, c167;

	if (!v || !*v) {
		m.combined = !(split && strcmp(split, "true") == 0);
		m.skip_demux = 1;
		return m;
	}
	if (strstr(v, "dev"))
		return m;
	c27 = version_cmp(v, 0, 27, 0);
	c167 = version_cmp(v, 0, 167, 0);
	m.combined = c27 == -1;
	m.skip_demux = c167 != 0 && c167 != 1;
	return m;
}

/* data with the labels removed (strip) or split into out and err (demux). */
static void strip_labels(const char *data, size_t len, mk_buf *all, mk_buf *out, mk_buf *err)
{
	mk_buf *to = NULL;
	size_t i = 0;

	while (i < len) {
		if (i + 3 <= len &&
		    (memcmp(data + i, out_label, 3) == 0 || memcmp(data + i, err_label, 3) == 0)) {
			to = data[i] == out_label[0] ? out : err;
			i += 3;
			continue;
		}
		if (all)
			mk_buf_append(all, data + i, 1);
		if (to)
			mk_buf_append(to, data + i, 1);
		i++;
	}
}

/* A command's output.log as read, and its text with the labels removed (all) or split. */
typedef struct {
	mk_buf log, all, out, err;
} cmd_output;

/* Read and split the output of command cid of session sid; 0, or -1 when there is none. */
static int output_read(const dt_sandbox *s, const char *sid, const char *cid, cmd_output *o)
{
	char path[DT_PATH_MAX];

	mk_buf_init(&o->log, 0);
	mk_buf_init(&o->all, 0);
	mk_buf_init(&o->out, 0);
	mk_buf_init(&o->err, 0);
	snprintf(path, sizeof(path), SESSIONS_DIR "/%s/%s/output.log", sid, cid);
	if (dt_fs_read(s, path, DT_MAX_OUTPUT, &o->log) != 0)
		return -1;
	strip_labels(o->log.data, o->log.len, &o->all, &o->out, &o->err);
	return 0;
}

/* Free what output_read kept; safe after it failed. */
static void output_release(cmd_output *o)
{
	mk_buf_release(&o->log);
	mk_buf_release(&o->all);
	mk_buf_release(&o->out);
	mk_buf_release(&o->err);
}

/* A JSON string member from bytes (made valid UTF-8). */
static void add_text(cJSON *o, const char *name, const char *data, size_t len)
{
	char *t = dt_utf8(data ? data : "", data ? len : 0);

	cJSON_AddStringToObject(o, name, t ? t : "");
	free(t);
}

/* ------------------------------------------------------------------ commands */

/* The exit code in a command's exit_code file; 0 when there is one, -1 while it runs. */
static int exit_code_of(const dt_sandbox *s, const char *sid, const char *cid, int *code)
{
	char path[DT_PATH_MAX], *end;
	mk_buf b;
	long v;
	int rc = -1;

	snprintf(path, sizeof(path), SESSIONS_DIR "/%s/%s/exit_code", sid, cid);
	mk_buf_init(&b, 64);
	if (dt_fs_read(s, path, 32, &b) == 0 && b.len > 0) {
		v = strtol(b.data, &end, 10);
		if (end != b.data && (*end == '\n' || *end == '\0')) {
			*code = (int)v;
			rc = 0;
		}
	}
	mk_buf_release(&b);
	return rc;
}

/* Refresh the exitCode of a session's commands from their files; under d->mu. */
static void refresh(const dt_sandbox *s, dt_session *se)
{
	cJSON *c;

	cJSON_ArrayForEach(c, se->commands)
	{
		int code;

		if (!cJSON_GetObjectItemCaseSensitive(c, "exitCode") &&
		    exit_code_of(s, se->id, mk_json_str(c, "id"), &code) == 0)
			cJSON_AddNumberToObject(c, "exitCode", code);
	}
}

static cJSON *session_json(const dt_sandbox *s, dt_session *se)
{
	cJSON *o = cJSON_CreateObject();

	refresh(s, se);
	cJSON_AddStringToObject(o, "sessionId", se->id);
	cJSON_AddItemToObject(o, "commands", cJSON_Duplicate(se->commands, 1));
	return o;
}

/* `'` + s with every ' escaped + `'`, for the shell. */
static void shell_quote(mk_buf *b, const char *s)
{
	mk_buf_puts(b, "'");
	for (; *s; s++) {
		if (*s == '\'')
			mk_buf_puts(b, "'\\''");
		else
			mk_buf_append(b, s, 1);
	}
	mk_buf_puts(b, "'");
}

/* The block the session shell runs for the command saved in dir. */
static void wrapper(mk_buf *b, const char *dir)
{
	mk_buf_puts(b, "{\n__dtn_d=");
	shell_quote(b, dir);
	mk_buf_puts(
	    b,
	    "\nrm -f \"$__dtn_d/o.pipe\" \"$__dtn_d/e.pipe\"\n"
	    "if mkfifo \"$__dtn_d/o.pipe\" \"$__dtn_d/e.pipe\"; then\n"
	    "( while IFS= read -r __dtn_l || [ -n \"$__dtn_l\" ]; do printf '\\001\\001\\001%s\\n' "
	    "\"$__dtn_l\"; done < \"$__dtn_d/o.pipe\" >> \"$__dtn_d/output.log\" ) &\n"
	    "__dtn_po=$!\n"
	    "( while IFS= read -r __dtn_l || [ -n \"$__dtn_l\" ]; do printf '\\002\\002\\002%s\\n' "
	    "\"$__dtn_l\"; done < \"$__dtn_d/e.pipe\" >> \"$__dtn_d/output.log\" ) &\n"
	    "__dtn_pe=$!\n"
	    "{ . \"$__dtn_d/cmd.sh\"; } < /dev/null > \"$__dtn_d/o.pipe\" 2> \"$__dtn_d/e.pipe\"\n"
	    "__dtn_x=$?\n"
	    "wait \"$__dtn_po\" \"$__dtn_pe\"\n"
	    "else __dtn_x=1; fi\n"
	    "rm -f \"$__dtn_d/o.pipe\" \"$__dtn_d/e.pipe\"\n"
	    "echo \"$__dtn_x\" > \"$__dtn_d/exit_code.tmp\" && mv \"$__dtn_d/exit_code.tmp\" "
	    "\"$__dtn_d/exit_code\"\n"
	    "}\n");
}

/* ------------------------------------------------------------------ routes */

/* Whether id can name a session directory. */
static int id_ok(const char *id)
{
	return id && *id && strlen(id) <= DT_MAX_ID && !strchr(id, '/') && strcmp(id, ".") != 0 &&
	       strcmp(id, "..") != 0;
}

static void create(dt_req *r)
{
	dt_double *d = r->d;
	dt_sandbox *s = r->sbx;
	const char *id = mk_json_str(r->json, "sessionId");
	char dir[DT_PATH_MAX], **argv = NULL;
	dt_session *se;
	int in[2] = {-1, -1}, n = 0, exists, spawning;
	pid_t pid = -1;

	if (!id || !*id) {
		dt_tb_error(
		    r, 400, "INVALID_REQUEST_BODY",
		    "invalid body request: Key: 'CreateSessionRequest.SessionId' Error:Field "
		    "validation for 'SessionId' failed on the 'required' tag");
		return;
	}
	if (strcmp(id, "entrypoint") == 0) {
		dt_tb_error(r, 400, "BAD_REQUEST",
		            "bad request: provided session ID is reserved and cannot be "
		            "created/overridden");
		return;
	}
	if (!id_ok(id)) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: invalid session ID '%s'", id);
		return;
	}
	snprintf(dir, sizeof(dir), SESSIONS_DIR "/%s", id);
	pthread_mutex_lock(&d->mu);
	exists = session_find(s, id) != NULL;
	for (se = s->sessions; se; se = se->next)
		n++;
	if (!exists && n < DT_MAX_SESSIONS)
		argv = dt_proc_argv(d, s, NULL, NULL);
	/* A stop waits for this shell until it is in sessions or gone. */
	if (argv)
		s->spawning++;
	pthread_mutex_unlock(&d->mu);
	if (exists || n >= DT_MAX_SESSIONS) {
		dt_tb_error(r, exists ? 409 : 400, exists ? "CONFLICT" : "BAD_REQUEST",
		            exists ? "conflict: session already exists"
		                   : "bad request: too many sessions (%d)",
		            DT_MAX_SESSIONS);
		return;
	}
	spawning = argv != NULL;
	if (argv && dt_fs_mkdirs(s, dir, 0755) == 0 && pipe2(in, O_CLOEXEC) == 0)
		pid = dt_proc_spawn(d, argv, in[0], -1);
	dt_argv_free(argv);
	if (in[0] >= 0)
		close(in[0]);
	se = pid > 0 ? calloc(1, sizeof(*se)) : NULL;
	if (se)
		se->commands = cJSON_CreateArray();
	if (!se || !se->commands) {
		int e = pid > 0 ? ENOMEM : errno;

		if (pid > 0) {
			dt_proc_kill(pid);
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		if (in[1] >= 0)
			close(in[1]);
		free(se);
		pthread_mutex_lock(&d->mu);
		dt_sandbox_dying(s, pid);
		s->spawning -= spawning;
		pthread_mutex_unlock(&d->mu);
		dt_tb_error(r, 500, "INTERNAL_SERVER_ERROR",
		            "failed to start the session shell: %s", strerror(e));
		return;
	}
	snprintf(se->id, sizeof(se->id), "%s", id);
	se->pid = pid;
	se->in_fd = in[1];
	pthread_mutex_lock(&d->mu);
	if (session_find(s, id) || s->state != DT_STARTED || d->stopping) {
		exists = session_find(s, id) != NULL;
		pthread_mutex_unlock(&d->mu);
		pid = session_free(se);
		pthread_mutex_lock(&d->mu);
		dt_sandbox_dying(s, pid);
		s->spawning--;
		pthread_mutex_unlock(&d->mu);
		if (exists)
			dt_tb_error(r, 409, "CONFLICT", "conflict: session already exists");
		else
			dt_send(r, 502, NULL, NULL, "", 0);
		return;
	}
	se->next = s->sessions;
	s->sessions = se;
	s->spawning--;
	pthread_mutex_unlock(&d->mu);
	MK_INFO("DTD-SESSION", NULL, "sandbox %s: session '%s' started", s->id, id);
	dt_send(r, 201, NULL, NULL, "", 0);
}

/* Write the block for command cid to the session's shell; 0, or -1 with r answered. */
static int submit(dt_req *r, const char *sid, const char *cid, const char *command)
{
	dt_double *d = r->d;
	char dir[DT_PATH_MAX], path[DT_PATH_MAX + 16];
	dt_session *se;
	cJSON *c;
	mk_buf b;
	int fd = -1, ok = 0;

	snprintf(dir, sizeof(dir), SESSIONS_DIR "/%s/%s", sid, cid);
	snprintf(path, sizeof(path), "%s/cmd.sh", dir);
	if (dt_fs_mkdirs(r->sbx, dir, 0755) != 0 ||
	    dt_fs_write(r->sbx, path, command, strlen(command)) != 0) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: failed to write command file: %s",
		            strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/output.log", dir);
	dt_fs_write(r->sbx, path, "", 0);
	mk_buf_init(&b, 0);
	wrapper(&b, dir);
	pthread_mutex_lock(&d->mu);
	se = session_find(r->sbx, sid);
	if (se && se->in_fd >= 0 && (c = cJSON_CreateObject())) {
		cJSON_AddStringToObject(c, "id", cid);
		cJSON_AddStringToObject(c, "command", command);
		cJSON_AddItemToArray(se->commands, c);
		while (cJSON_GetArraySize(se->commands) > DT_MAX_COMMANDS)
			cJSON_DeleteItemFromArray(se->commands, 0);
		fd = dup(se->in_fd);
	}
	pthread_mutex_unlock(&d->mu);
	/*
	 * Outside the lock: a shell busy with an earlier command reads later.
	 * The block is under PIPE_BUF, so concurrent writes do not interleave.
	 */
	if (fd >= 0) {
		ok = b.data && write(fd, b.data, b.len) == (ssize_t)b.len;
		close(fd);
	}
	mk_buf_release(&b);
	if (!se) {
		dt_tb_error(r, 404, "NOT_FOUND", "not found: session not found");
		return -1;
	}
	if (!ok) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: failed to write command: %s",
		            fd < 0 ? "the session has ended" : strerror(errno));
		return -1;
	}
	return 0;
}

/* Wait for command cid to finish; 0 with *code, or -1 with r answered. */
static int wait_done(dt_req *r, const char *sid, const char *cid, int *code)
{
	dt_double *d = r->d;

	for (;;) {
		dt_session *se;
		int alive, up;

		if (exit_code_of(r->sbx, sid, cid, code) == 0)
			return 0;
		pthread_mutex_lock(&d->mu);
		se = session_find(r->sbx, sid);
		alive = se && se->pid > 0;
		up = r->sbx->state == DT_STARTED && !d->stopping;
		pthread_mutex_unlock(&d->mu);
		if (!up) {
			dt_send(r, 502, NULL, NULL, "", 0);
			return -1;
		}
		if (!alive && exit_code_of(r->sbx, sid, cid, code) != 0) {
			dt_tb_error(r, 400, "BAD_REQUEST", "bad request: session cancelled");
			return -1;
		}
		if (!alive)
			return 0;
		mk_sleep_ms(POLL_MS);
	}
}

static void exec_cmd(dt_req *r, const char *sid)
{
	const cJSON *b = r->json;
	const char *cmd = mk_json_str(b, "command"), *p;
	char cid[40];
	int async = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "runAsync")) ||
	            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "async"));
	out_mode m = mode_of(r);
	cmd_output output;
	cJSON *o;
	int code = 0;

	if (strcmp(sid, "entrypoint") == 0) {
		dt_tb_error(r, 400, "BAD_REQUEST",
		            "bad request: can't execute command in entrypoint session");
		return;
	}
	if (!cJSON_IsObject(b) || !cmd) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: invalid request body");
		return;
	}
	for (p = cmd; *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'; p++)
		;
	if (!*p) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: command cannot be empty");
		return;
	}
	dt_uuid4(cid);
	if (submit(r, sid, cid, cmd) != 0)
		return;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "cmdId", cid);
	if (async) {
		dt_send_json(r, 202, o);
		cJSON_Delete(o);
		return;
	}
	if (wait_done(r, sid, cid, &code) != 0) {
		cJSON_Delete(o);
		return;
	}
	output_read(r->sbx, sid, cid, &output); /* none yet: empty */
	if (m.combined)
		add_text(o, "output", output.all.data, output.all.len);
	else
		add_text(o, "output", output.log.data, output.log.len);
	if (m.combined || m.skip_demux) {
		cJSON_AddNullToObject(o, "stdout");
		cJSON_AddNullToObject(o, "stderr");
	} else {
		add_text(o, "stdout", output.out.data, output.out.len);
		add_text(o, "stderr", output.err.data, output.err.len);
	}
	cJSON_AddNumberToObject(o, "exitCode", code);
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
	output_release(&output);
}

static void logs(dt_req *r, const char *sid, const char *cid)
{
	out_mode m = mode_of(r);
	char v[16] = "";
	const char *upgrade = mg_get_header(r->conn, "Upgrade");
	cmd_output output;

	if ((dt_param(r, "follow", v, sizeof(v)) && strcmp(v, "true") == 0) ||
	    (upgrade && strcasecmp(upgrade, "websocket") == 0)) {
		dt_tb_error(
		    r, 400, "BAD_REQUEST",
		    "bad request: following logs over WebSocket is not served by the double");
		return;
	}
	if (output_read(r->sbx, sid, cid, &output) != 0) {
		output_release(&output);
		dt_tb_error(r, 404, "NOT_FOUND",
		            "not found: open " SESSIONS_DIR
		            "/%s/%s/output.log: no such file or directory",
		            sid, cid);
		return;
	}
	if (m.combined) {
		dt_send(r, 200, "text/plain; charset=utf-8", NULL,
		        output.all.data ? output.all.data : "", output.all.len);
	} else if (m.skip_demux) {
		dt_send(r, 200, "text/plain; charset=utf-8", NULL,
		        output.log.data ? output.log.data : "", output.log.len);
	} else {
		cJSON *o = cJSON_CreateObject();

		add_text(o, "output", output.log.data, output.log.len);
		add_text(o, "stdout", output.out.data, output.out.len);
		add_text(o, "stderr", output.err.data, output.err.len);
		dt_send_json(r, 200, o);
		cJSON_Delete(o);
	}
	output_release(&output);
}

/* GET a session, a command, or the list; DELETE a session. Lookups under d->mu. */
static void lookup(dt_req *r, const char *sid, const char *cid)
{
	dt_double *d = r->d;
	cJSON *o = NULL, *c;
	dt_session *se = NULL;
	int found = 0;

	pthread_mutex_lock(&d->mu);
	if (!sid) {
		o = cJSON_CreateArray();
		for (se = r->sbx->sessions; se; se = se->next)
			cJSON_AddItemToArray(o, session_json(r->sbx, se));
		found = 1;
	} else if ((se = session_find(r->sbx, sid))) {
		found = 1;
		if (!cid) {
			o = session_json(r->sbx, se);
		} else {
			refresh(r->sbx, se);
			found = 0;
			cJSON_ArrayForEach(c, se->commands)
			{
				if (strcmp(mk_json_str(c, "id"), cid) == 0) {
					o = cJSON_Duplicate(c, 1);
					found = 1;
					break;
				}
			}
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (!found)
		dt_tb_error(r, 404, "NOT_FOUND", "not found: %s not found",
		            se ? "command" : "session");
	else
		dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

static void delete (dt_req *r, const char *sid)
{
	dt_double *d = r->d;
	dt_session **pp, *se = NULL;
	char dir[DT_PATH_MAX], leaf[DT_PATH_MAX];
	int pfd;
	pid_t pid;

	if (strcmp(sid, "entrypoint") == 0) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: can't delete entrypoint session");
		return;
	}
	pthread_mutex_lock(&d->mu);
	for (pp = &r->sbx->sessions; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, sid) == 0) {
			se = *pp;
			*pp = se->next;
			break;
		}
	}
	pthread_mutex_unlock(&d->mu);
	if (!se) {
		dt_tb_error(r, 404, "NOT_FOUND", "not found: session not found");
		return;
	}
	pid = session_free(se);
	pthread_mutex_lock(&d->mu);
	dt_sandbox_dying(r->sbx, pid);
	pthread_mutex_unlock(&d->mu);
	snprintf(dir, sizeof(dir), SESSIONS_DIR "/%s", sid);
	pfd = dt_fs_parent(r->sbx, dir, 0, leaf, sizeof(leaf));
	if (pfd >= 0) {
		dt_rm_tree(pfd, leaf);
		close(pfd);
	}
	dt_send(r, 204, NULL, NULL, "", 0);
}

void dt_session_serve(dt_req *r)
{
	const char *route = r->route, *sid = r->nseg > 3 ? r->seg[3] : NULL;
	const char *cid = r->nseg > 5 ? r->seg[5] : NULL;

	if (strcmp(route, "session.create") == 0)
		create(r);
	else if (strcmp(route, "session.list") == 0)
		lookup(r, NULL, NULL);
	else if (strcmp(route, "session.get") == 0)
		lookup(r, sid, NULL);
	else if (strcmp(route, "session.command") == 0)
		lookup(r, sid, cid);
	else if (strcmp(route, "session.delete") == 0)
		delete (r, sid);
	else if (strcmp(route, "session.exec") == 0)
		exec_cmd(r, sid);
	else
		logs(r, sid, cid);
}
