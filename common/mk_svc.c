/*
 * mk_svc.c - start-up and shutdown shared by the backend services (see
 * mk_svc.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "mk_httpc.h"
#include "mk_log.h"
#include "mk_svc.h"
#include "mk_time.h"

static sigset_t stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	return set;
}

void mk_svc_block_signals(void)
{
	sigset_t set = stop_signals();

	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int mk_svc_wait(void)
{
	sigset_t set = stop_signals();
	int sig = 0;

	while (sigwait(&set, &sig) != 0)
		;
	return sig;
}

/* sys.ping adds the database's state, so /readyz can tell a service
 * that answers but cannot reach Postgres. */
static void ping_db(void *ud, cJSON *reply)
{
	mk_svc *svc = ud;

	cJSON_AddStringToObject(reply, "db", mk_db_ping(svc->db, 500) == 0 ? "ok" : "down");
}

int mk_svc_open_db(mk_svc *svc, const mk_svc_def *def, const mk_svc_cfg *cfg, char *err,
                   size_t errlen)
{
	int64_t until = mk_mono_ms() + cfg->db_wait_ms;
	int applied;

	svc->cfg = cfg;
	if (!def->schema)
		return 0;
	svc->db = mk_db_pool_new(cfg->database_url, def->schema, (int)cfg->db_pool, 5000);
	if (!svc->db) {
		snprintf(err, errlen, "cannot create the database pool (schema '%s')", def->schema);
		return -1;
	}
	for (;;) {
		applied = mk_db_migrate(svc->db, def->migrations, def->nmigrations, err, errlen);
		if (applied >= 0)
			break;
		/* Only a database that is not up yet is worth waiting for. */
		if (mk_db_ping(svc->db, 1000) == 0 || mk_mono_ms() >= until)
			return -1;
		MK_WARN("SVC-DB-WAIT", NULL, "database not reachable yet, retrying: %s", err);
		mk_sleep_ms(500);
	}
	MK_INFO("SVC-MIGRATED", NULL, "schema '%s': %d migration(s) applied, %zu known",
	        def->schema, applied, def->nmigrations);
	return 0;
}

int mk_svc_serve(mk_svc *svc, const mk_svc_def *def, char *err, size_t errlen)
{
	mk_rpc_server_opts o = {
	    .service = def->name,
	    .url = svc->cfg->listen,
	    .workers = (int)svc->cfg->workers,
	    .max_msg = (size_t)svc->cfg->max_msg,
	    .handler = def->handler,
	    .ud = def->ud,
	    .ping = svc->db ? ping_db : NULL,
	    .ping_ud = svc,
	};

	if (mk_rpc_server_start(&o, &svc->rpc, err, errlen) != 0)
		return -1;
	MK_INFO("SVC-LISTEN", NULL, "serving on %s with %lld workers", svc->cfg->listen,
	        svc->cfg->workers);
	return 0;
}

void mk_svc_stop(mk_svc *svc)
{
	int left;

	if (svc->rpc) {
		left = mk_rpc_server_stop(svc->rpc, svc->cfg ? (int)svc->cfg->grace_ms : 0);
		if (left) {
			/* Exiting now bounds shutdown; those handlers hold pool connections. */
			MK_WARN("SVC-STOP-ABANDON", NULL,
			        "%d request(s) still running after the grace; exiting without them",
			        left);
			return;
		}
		mk_rpc_server_free(svc->rpc);
		svc->rpc = NULL;
	}
	mk_db_pool_free(svc->db);
	svc->db = NULL;
}

/* --ping: ask the running service at its own address whether it is up
 * and its database reachable (for container health checks). */
static int ping_self(const char *url)
{
	char err[256], rid[MK_RID_MAX + 1];
	mk_rpc_client *c = mk_rpc_client_new(url, 1 << 20, err, sizeof(err));
	mk_rpc_result res;
	const char *db;
	int rc;

	if (!c) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	mk_rid_new(rid);
	mk_rpc_call(c, MK_OP_SYS_PING, rid, NULL, NULL, 3000, &res);
	db = res.err == MK_OK ? cJSON_GetStringValue(cJSON_GetObjectItem(res.body, "db")) : NULL;
	rc = res.err == MK_OK && (!db || strcmp(db, "ok") == 0) ? 0 : 1;
	printf("%s\n", res.err != MK_OK ? res.msg : rc ? "database unreachable" : "ok");
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
	return rc;
}

int mk_svc_main(int argc, char **argv, const mk_svc_app *app, void *cfg)
{
	const char *level;
	mk_log_level lvl = MK_LOG_INFO;
	char err[1024] = "";
	void *ctx = NULL;
	int rc;

	if (argc == 2 && strcmp(argv[1], "--ping") == 0 && app->listen_offset) {
		rc = mk_cfg_main(1, argv, app->name, app->vars, *app->nvars, cfg);
		if (rc >= 0)
			return rc;
		rc = ping_self(*(char **)((char *)cfg + app->listen_offset));
		mk_cfg_release(app->vars, *app->nvars, cfg);
		return rc;
	}
	rc = mk_cfg_main(argc, argv, app->name, app->vars, *app->nvars, cfg);
	if (rc >= 0)
		return rc;
	level = *(char **)((char *)cfg + app->log_level_offset);
	if (level)
		mk_log_level_parse(level, &lvl);
	mk_log_init(app->name, lvl);
	mk_cfg_log(app->vars, *app->nvars, cfg);
	mk_svc_block_signals();
	mk_httpc_global_init(); /* before any thread: libcurl's global state */
	if (app->start(cfg, &ctx, err, sizeof(err)) != 0) {
		MK_ERROR("SVC-START-FAIL", NULL, "%s", err);
		rc = 1;
	} else {
		int sig;

		MK_INFO("SVC-READY", NULL, "%s is up", app->name);
		/* Not inside MK_INFO: its arguments are not evaluated below the level. */
		sig = mk_svc_wait();
		MK_INFO("SVC-STOPPING", NULL, "stopping on signal %d", sig);
		rc = 0;
	}
	app->stop(ctx);
	mk_httpc_global_cleanup();
	MK_INFO("SVC-STOPPED", NULL, "%s stopped", app->name);
	mk_cfg_release(app->vars, *app->nvars, cfg);
	return rc;
}
