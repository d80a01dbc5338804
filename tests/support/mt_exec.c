/*
 * mt_exec.c - test support: the executor's processes and calls to it (see
 * mt_exec.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt_exec.h"

/*
 * Sized for a loaded host running the sanitizer build: a process draining
 * and exiting (with its leak check), and one sys.ping while waiting for
 * workers (a ping that takes longer only repeats).
 */
#define STOP_TIMEOUT_MS 60000
#define PING_TIMEOUT_MS 10000
/* Largest reply accepted: an execution carries images and artifacts. */
#define MAX_MSG (64u << 20)

/* A setting the helper owns, as "K=V" into buf. */
static void setting(char *buf, size_t len, const char *name, const char *value)
{
	snprintf(buf, len, "%s=%s", name, value);
}

/*
 * Start one process of e: mode "all" (worker index -1) or an extra worker.
 * The helper's own settings come first (the first occurrence wins), then
 * the settings given to mt_exec_start, then more, then defaults.
 */
static int spawn(mt_exec *e, mt_proc *p, int widx, const char *const *more)
{
	char own[7][600], name[64], id[48], uid_base[24];
	const char *env[MT_EXEC_MAX_ENV * 2 + 8];
	int k = 0, i;

	snprintf(id, sizeof(id), "%s-w%d", e->name, widx + 1);
	setting(own[0], sizeof(own[0]), "EXECUTOR_MODE", widx < 0 ? "all" : "worker");
	setting(own[1], sizeof(own[1]), "EXECUTOR_LISTEN", e->url);
	setting(own[2], sizeof(own[2]), "EXECUTOR_WORKER_LISTEN", e->worker_url);
	setting(own[3], sizeof(own[3]), "EXECUTOR_ROUTER_URL", e->worker_url);
	setting(own[4], sizeof(own[4]), "EXECUTOR_WORKER_ID", id);
	setting(own[5], sizeof(own[5]), "EXECUTOR_DATABASE_URL", mt_dsn());
	/* Each process its own sandbox uids, as on separate hosts (a uid's process count is
	 * shared). */
	snprintf(uid_base, sizeof(uid_base), "%d", 200000 + 10000 * (widx + 1));
	setting(own[6], sizeof(own[6]), "EXECUTOR_SANDBOX_UID_BASE", uid_base);
	for (i = 0; i < 5; i++)
		env[k++] = own[i];
	for (i = 0; i < e->nenv; i++)
		env[k++] = e->env[i];
	for (i = 0; more && more[i] && i < MT_EXEC_MAX_ENV; i++)
		env[k++] = more[i];
	env[k++] = own[5];
	env[k++] = own[6];
	env[k] = NULL;
	if (widx < 0)
		snprintf(name, sizeof(name), "%s", e->name);
	else
		snprintf(name, sizeof(name), "%s-worker%d", e->name, widx + 1);
	return mt_proc_start(p, name, "mark-executor", env);
}

int mt_exec_workers(mt_exec *e, int timeout_ms)
{
	mk_rpc_result res;
	char rid[MK_RID_MAX + 1];
	long long n = -1;

	mk_rid_new(rid);
	if (mk_rpc_call(e->c, MK_OP_SYS_PING, rid, NULL, NULL, timeout_ms, &res) == MK_OK &&
	    mk_json_int(res.body, "workers", &n) != 0)
		n = -1;
	mk_rpc_result_release(&res);
	return (int)n;
}

/* Wait until n workers are connected while p runs. 0, or -1 with err. */
static int wait_for(mt_exec *e, const mt_proc *p, int n, int timeout_ms, char *err, size_t errlen)
{
	int64_t until = mk_mono_ms() + timeout_ms;
	int have = -1;

	do {
		if (!mt_proc_alive(p)) {
			mk_errf(err, errlen, "'%s' exited during start-up (log: %s)", p->name,
			        p->log);
			return -1;
		}
		have = mt_exec_workers(e, PING_TIMEOUT_MS);
		if (have >= n)
			return 0;
		mk_sleep_ms(100);
	} while (mk_mono_ms() < until);
	mk_errf(err, errlen, "'%s' reported %d of %d workers after %d ms (log: %s)", p->name, have,
	        n, timeout_ms, p->log);
	return -1;
}

int mt_exec_wait_workers(mt_exec *e, int n, int timeout_ms)
{
	char err[256];

	return wait_for(e, &e->p, n, timeout_ms, err, sizeof(err));
}

int mt_exec_start(mt_exec *e, const char *name, const char *const *env, int timeout_ms, char *err,
                  size_t errlen)
{
	int i;

	memset(e, 0, sizeof(*e));
	snprintf(e->name, sizeof(e->name), "%s", name);
	for (i = 0; env && env[i]; i++) {
		if (i == MT_EXEC_MAX_ENV) {
			mk_errf(err, errlen, "more than %d settings", MT_EXEC_MAX_ENV);
			return -1;
		}
		snprintf(e->env[i], sizeof(e->env[i]), "%s", env[i]);
	}
	e->nenv = i;
	e->port = mt_free_port();
	e->worker_port = mt_free_port();
	while (e->worker_port == e->port)
		e->worker_port = mt_free_port();
	snprintf(e->url, sizeof(e->url), "tcp://127.0.0.1:%d", e->port);
	snprintf(e->worker_url, sizeof(e->worker_url), "tcp://127.0.0.1:%d", e->worker_port);
	e->c = mk_rpc_client_new(e->url, MAX_MSG, mt_bus_key(), err, errlen);
	if (!e->c)
		return -1;
	if (spawn(e, &e->p, -1, NULL) != 0) {
		mk_errf(err, errlen, "cannot start '%s/mark-executor'", mt_bin_dir());
		goto fail;
	}
	if (wait_for(e, &e->p, 1, timeout_ms, err, errlen) != 0)
		goto fail;
	return 0;
fail:
	if (e->p.pid > 0) {
		mt_proc_stop(&e->p, SIGKILL, STOP_TIMEOUT_MS);
		mt_proc_dump(&e->p);
	}
	mk_rpc_client_free(e->c);
	e->c = NULL;
	return -1;
}

int mt_exec_worker_start(mt_exec *e, const char *const *env, int timeout_ms, char *err,
                         size_t errlen)
{
	int i = e->nworker, live = 1, j;
	mt_proc *p;

	if (i == MT_EXEC_MAX_WORKERS) {
		mk_errf(err, errlen, "more than %d extra workers", MT_EXEC_MAX_WORKERS);
		return -1;
	}
	for (j = 0; j < e->nworker; j++)
		live += e->worker[j].pid > 0;
	p = &e->worker[i];
	if (spawn(e, p, i, env) != 0) {
		mk_errf(err, errlen, "cannot start '%s/mark-executor'", mt_bin_dir());
		return -1;
	}
	e->nworker++;
	if (wait_for(e, p, live + 1, timeout_ms, err, errlen) != 0) {
		mt_proc_stop(p, SIGKILL, STOP_TIMEOUT_MS);
		mt_proc_dump(p);
		return -1;
	}
	return i;
}

int mt_exec_worker_stop(mt_exec *e, int i, int sig, int timeout_ms)
{
	if (i < 0 || i >= e->nworker)
		return -1;
	return mt_proc_stop(&e->worker[i], sig, timeout_ms);
}

int mt_exec_stop(mt_exec *e)
{
	int bad = 0, i, rc;

	/* Workers first, as an operator would drain them before the router. */
	for (i = 0; i <= e->nworker; i++) {
		mt_proc *p = i < e->nworker ? &e->worker[i] : &e->p;

		if (p->pid <= 0)
			continue;
		rc = mt_proc_stop(p, SIGTERM, STOP_TIMEOUT_MS);
		if (rc != 0) {
			fprintf(stderr, "%s exited with %d\n", p->name, rc);
			mt_proc_dump(p);
			bad++;
		}
	}
	mk_rpc_client_free(e->c);
	e->c = NULL;
	return bad;
}

static mk_err call_json(mt_exec *e, mk_op op, const char *user_id, const cJSON *body,
                        int timeout_ms, mk_rpc_result *res)
{
	mk_caller caller;
	char rid[MK_RID_MAX + 1];

	memset(&caller, 0, sizeof(caller));
	if (user_id) {
		snprintf(caller.user_id, sizeof(caller.user_id), "%s", user_id);
		snprintf(caller.role, sizeof(caller.role), "user");
	}
	mk_rid_new(rid);
	return mk_rpc_call(e->c, op, rid, user_id ? &caller : NULL, body, timeout_ms, res);
}

mk_err mt_exec_call(mt_exec *e, mk_op op, const char *user_id, const char *body_json,
                    int timeout_ms, mk_rpc_result *res)
{
	char perr[128];
	cJSON *body = NULL;
	mk_err rc;

	if (body_json) {
		body = mk_json_parse(body_json, strlen(body_json), 0, perr, sizeof(perr));
		if (!body) {
			memset(res, 0, sizeof(*res));
			res->err = MK_E_INVALID_JSON;
			snprintf(res->msg, sizeof(res->msg), "test body: %s", perr);
			return res->err;
		}
	}
	rc = call_json(e, op, user_id, body, timeout_ms, res);
	cJSON_Delete(body);
	return rc;
}

cJSON *mt_exec_run_for(mt_exec *e, const char *user, const char *chat, const char *code,
                       long long run_timeout_ms, int timeout_ms, mk_err *err, char *msg,
                       size_t msglen)
{
	cJSON *body = cJSON_CreateObject(), *out = NULL;
	mk_rpc_result res;

	memset(&res, 0, sizeof(res));
	res.err = MK_E_INTERNAL;
	snprintf(res.msg, sizeof(res.msg), "out of memory");
	if (body && cJSON_AddStringToObject(body, "chat_id", chat) &&
	    cJSON_AddStringToObject(body, "code", code) &&
	    (run_timeout_ms <= 0 ||
	     cJSON_AddNumberToObject(body, "timeout_ms", (double)run_timeout_ms))) {
		call_json(e, MK_OP_EXEC_RUN, user, body, timeout_ms, &res);
		if (res.err == MK_OK)
			out = cJSON_DetachItemViaPointer(res.root, (cJSON *)res.body);
	}
	if (!out) {
		if (err)
			*err = res.err == MK_OK ? MK_E_INTERNAL : res.err;
		if (msg && msglen)
			snprintf(msg, msglen, "%s: %s", mk_err_code(res.err), res.msg);
	}
	mk_rpc_result_release(&res);
	cJSON_Delete(body);
	return out;
}

cJSON *mt_exec_run(mt_exec *e, const char *user, const char *chat, const char *code, int timeout_ms,
                   mk_err *err, char *msg, size_t msglen)
{
	return mt_exec_run_for(e, user, chat, code, 0, timeout_ms, err, msg, msglen);
}
