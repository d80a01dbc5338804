/*
 * executor_service.c - the executor process's life in each of its modes:
 * a router (no database, no sandboxes), a worker (database, sandbox
 * backend, sessions, a link to the router), or both in one process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "executor.h"
#include "mk_log.h"

typedef struct {
	const executor_config *cfg;
	mk_svc svc;
	exec_router *router;
	sbx_backend *backend;
	exec_sessions *sessions;
	exec_orphans *orphans;
	exec_link *link;
	exec_ops ops;
	char worker_id[65];
} executor_ctx;

static int link_sessions(void *ud)
{
	return exec_sessions_count(ud);
}

static void link_chats(void *ud, cJSON *arr)
{
	exec_sessions_chats(ud, arr);
}

static void ping_worker(void *ud, cJSON *reply)
{
	executor_ctx *c = ud;

	cJSON_AddStringToObject(reply, "mode", "worker");
	cJSON_AddStringToObject(reply, "worker_id", c->worker_id);
	cJSON_AddStringToObject(reply, "db", mk_db_ping(c->svc.db, 500) == 0 ? "ok" : "down");
	cJSON_AddNumberToObject(reply, "sessions", exec_sessions_count(c->sessions));
}

static int start_worker(executor_ctx *c, char *err, size_t errlen)
{
	const executor_config *cfg = c->cfg;
	mk_svc_def def = {
	    .name = "executor",
	    .schema = "exec",
	    .migrations = executor_migrations,
	    .nmigrations = executor_migrations_count,
	};
	sbx_local_opts lo = {
	    .bwrap = cfg->bwrap,
	    .python = cfg->python,
	    .uid_base = cfg->uid_base,
	    .seccomp = cfg->seccomp,
	    .preload = cfg->preload,
	    .cgroup = cfg->cgroup,
	    .cgroup_path = cfg->cgroup_path && *cfg->cgroup_path ? cfg->cgroup_path : NULL,
	};
	sbx_daytona_opts dto = {
	    .api_url = cfg->dtn_api_url,
	    .api_key = cfg->dtn_api_key,
	    .snapshot = cfg->dtn_snapshot,
	    .target = cfg->dtn_target,
	    .cpu = cfg->dtn_cpu,
	    .memory_gb = cfg->dtn_memory_gb,
	    .disk_gb = cfg->dtn_disk_gb,
	    .auto_stop_min = (cfg->dtn_auto_stop_ms + 59999) / 60000,
	    .auto_archive_min = (cfg->dtn_auto_archive_ms + 59999) / 60000,
	    .auto_delete_min =
	        cfg->dtn_auto_delete_ms == 0 ? 0 : (cfg->dtn_auto_delete_ms + 59999) / 60000,
	    .network_allow = cfg->dtn_network_allow,
	    .deployment = cfg->dtn_deployment,
	    .worker = c->worker_id,
	    .preload = cfg->preload,
	};
	sbx_limits lim = {
	    .memory_bytes = cfg->memory,
	    .processes = cfg->processes,
	    .millicores = cfg->millicores,
	    .open_files = cfg->open_files,
	    .file_size_bytes = cfg->file_size,
	    .workspace_bytes = cfg->workspace_size,
	    .cpu_total_s = (cfg->cpu_total_ms + 999) / 1000,
	    .start_timeout_ms = strcmp(cfg->backend, "daytona") == 0 ? cfg->dtn_start_timeout_ms
	                                                             : cfg->start_timeout_ms,
	    .cpu_s = (cfg->cpu_ms + 999) / 1000,
	    .stdout_bytes = cfg->stdout_max,
	    .stderr_bytes = cfg->stderr_max,
	    .output_kill_bytes = cfg->output_kill,
	    .table_rows = cfg->table_rows,
	    .table_cols = cfg->table_cols,
	    .value_bytes = cfg->value_max,
	    .figure_bytes = cfg->figure_max,
	    .image_bytes = cfg->image_max,
	    .artifact_bytes = cfg->artifact_max,
	    .artifacts_total = cfg->artifacts_total,
	    .max_items = cfg->max_items,
	};
	exec_sessions_opts so;
	mk_rpc_server_opts ro;
	exec_link_state st;

	if (cfg->worker_id && cfg->worker_id[0]) {
		snprintf(c->worker_id, sizeof(c->worker_id), "%s", cfg->worker_id);
	} else {
		char host[48] = "worker";

		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		snprintf(c->worker_id, sizeof(c->worker_id), "%s-%d", host, (int)getpid());
	}
	if (mk_svc_open_db(&c->svc, &def, &cfg->svc, err, errlen) != 0)
		return -1;
	{
		PGconn *db = mk_db_acquire(c->svc.db, 10000, err, errlen);
		int n =
		    db ? exec_purge_executions(db, cfg->execution_retention_ms, err, errlen) : -1;

		if (db)
			mk_db_release(c->svc.db, db);
		if (n < 0)
			MK_WARN("EXEC-PURGE", NULL, "cannot purge old execution records: %s", err);
		else if (n > 0)
			MK_INFO("EXEC-PURGE", NULL, "%d execution records of deleted chats purged",
			        n);
		err[0] = '\0';
	}
	/* Alive before its first sandbox, so that no other worker takes that for an orphan. */
	if (exec_worker_beat(c->svc.db, c->worker_id, err, errlen) != 0)
		return -1;
	c->backend = sbx_backend_new(cfg->backend, &lo, &dto, &lim, err, errlen);
	if (!c->backend)
		return -1;
	MK_INFO("EXEC-BACKEND", NULL, "sandbox backend '%s' ready (parquet: %s, isolation: %s)",
	        sbx_backend_name(c->backend), sbx_backend_caps(c->backend).parquet ? "yes" : "no",
	        sbx_backend_caps(c->backend).isolation);
	so = (exec_sessions_opts){
	    .backend = c->backend,
	    .db = c->svc.db,
	    .worker_id = c->worker_id,
	    .pool_size = (int)cfg->pool_size,
	    .max_sessions = (int)cfg->max_sessions,
	    .user_max_sessions = (int)cfg->user_max_sessions,
	    .user_max_runs = (int)cfg->user_max_runs,
	    .idle_timeout_ms = cfg->idle_timeout_ms,
	};
	c->sessions = exec_sessions_new(&so, err, errlen);
	if (!c->sessions)
		return -1;
	c->orphans =
	    exec_orphans_start(c->backend, c->svc.db, c->worker_id, cfg->dtn_worker_lease_ms,
	                       cfg->dtn_reap_interval_ms, err, errlen);
	if (!c->orphans)
		return -1;
	c->ops = (exec_ops){
	    .cfg = cfg,
	    .svc = &c->svc,
	    .sessions = c->sessions,
	    .caps = sbx_backend_caps(c->backend),
	    .worker_id = c->worker_id,
	};
	ro = (mk_rpc_server_opts){
	    .service = "executor",
	    .url = cfg->router_url,
	    .workers = (int)cfg->svc.workers,
	    .max_msg = (size_t)cfg->svc.max_msg,
	    .key = &c->svc.key,
	    .handler = exec_ops_handle,
	    .ud = &c->ops,
	    .ping = ping_worker,
	    .ping_ud = c,
	};
	st = (exec_link_state){.chats = link_chats,
	                       .sessions = link_sessions,
	                       .ud = c->sessions,
	                       .isolation = sbx_backend_caps(c->backend).isolation};
	return exec_link_start(cfg->router_url, c->worker_id, (int)cfg->svc.workers, cfg->poll_ms,
	                       &ro, &st, &c->link, err, errlen);
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const executor_config *cfg = cfgp;
	executor_ctx *c = calloc(1, sizeof(*c));
	int router = strcmp(cfg->mode, "worker") != 0;
	int worker = strcmp(cfg->mode, "router") != 0;
	const mk_seal_key *key;

	*out = c;
	if (!c) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	c->cfg = cfg;
	c->svc.cfg = &cfg->svc;
	if (!(key = mk_svc_key(&c->svc, "executor", err, errlen)) ||
	    mk_svc_metrics_start(&c->svc, err, errlen) != 0)
		return -1;
	if (router &&
	    exec_router_start(cfg->svc.listen, cfg->worker_listen, (size_t)cfg->svc.max_msg,
	                      cfg->poll_ms, key, &c->router, err, errlen) != 0)
		return -1;
	if (router && exec_metrics_router(c->router) != 0) {
		mk_errf(err, errlen, "cannot set up the router's metrics");
		return -1;
	}
	if (worker && start_worker(c, err, errlen) != 0)
		return -1;
	return 0;
}

static void stop(void *p)
{
	executor_ctx *c = p;
	int grace;

	if (!c)
		return;
	grace = c->cfg ? (int)c->cfg->svc.grace_ms : 0;
	atomic_store(&c->svc.stopping, 1); /* /healthz: 503 from now on */
	/* Workers first: their goodbye reaches the router while it still runs. */
	if (exec_link_free(c->link, grace) > 0) {
		MK_WARN("SVC-STOP-ABANDON", NULL,
		        "runs still going after the grace; exiting without them");
		exec_metrics_router_stop(c->router);
		exec_router_free(c->router);
		return;
	}
	exec_sessions_free(c->sessions);
	exec_orphans_stop(c->orphans);
	sbx_backend_free(c->backend);
	exec_metrics_router_stop(c->router);
	exec_router_free(c->router);
	mk_svc_stop(&c->svc);
	free(c);
}

/* --migrate: schema 'exec' only, then exit. */
static int migrate(const void *cfgp, char *err, size_t errlen)
{
	const mk_svc_def def = {
	    .name = "executor",
	    .schema = "exec",
	    .migrations = executor_migrations,
	    .nmigrations = executor_migrations_count,
	};

	return mk_svc_migrate(&def, &((const executor_config *)cfgp)->svc, err, errlen);
}

const mk_svc_app executor_app = {
    .name = "executor",
    .vars = executor_config_vars,
    .nvars = &executor_config_nvars,
    .log_level_offset = offsetof(executor_config, svc.log_level),
    .log_format_offset = offsetof(executor_config, svc.log_format),
    .listen_offset = offsetof(executor_config, svc.listen),
    .bus_key_offset = offsetof(executor_config, svc.bus_key_file),
    .start = start,
    .stop = stop,
    .migrate = migrate,
};
