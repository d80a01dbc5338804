/*
 * mk_svc_backend.c - start-up and shutdown of the backend services (those
 * with a database and an RPC server): open the pool, apply migrations,
 * serve, stop within the grace. Apart from mk_svc.c so that a process
 * without a database (the gateway) links no libpq.
 */
#include <stdio.h>
#include <string.h>

#include "mk_log.h"
#include "mk_metrics.h"
#include "mk_svc.h"
#include "mk_time.h"

/* sys.ping adds the database's state, so /readyz can tell a service
 * that answers but cannot reach Postgres, and what the service adds of itself. */
static void ping_db(void *ud, cJSON *reply)
{
	mk_svc *svc = ud;

	if (svc->db)
		cJSON_AddStringToObject(reply, "db", mk_db_ping(svc->db, 500) == 0 ? "ok" : "down");
	if (svc->def && svc->def->ping)
		svc->def->ping(svc->def->ud, reply);
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

int mk_svc_migrate(const mk_svc_def *def, const mk_svc_cfg *cfg, char *err, size_t errlen)
{
	mk_svc svc;
	int rc;

	memset(&svc, 0, sizeof(svc));
	rc = mk_svc_open_db(&svc, def, cfg, err, errlen);
	mk_db_pool_free(svc.db);
	return rc;
}

const mk_seal_key *mk_svc_key(mk_svc *svc, const char *service, char *err, size_t errlen)
{
	char setting[64];

	if (svc->key_loaded)
		return &svc->key;
	mk_svc_key_setting(service, setting, sizeof(setting));
	if (mk_seal_key_load(&svc->key, svc->cfg->bus_key_file, setting, err, errlen) != 0)
		return NULL;
	svc->key_loaded = 1;
	return &svc->key;
}

int mk_svc_serve(mk_svc *svc, const mk_svc_def *def, char *err, size_t errlen)
{
	const mk_seal_key *key = mk_svc_key(svc, def->name, err, errlen);
	mk_rpc_server_opts o = {
	    .service = def->name,
	    .url = svc->cfg->listen,
	    .workers = (int)svc->cfg->workers,
	    .max_msg = (size_t)svc->cfg->max_msg,
	    .key = key,
	    .handler = def->handler,
	    .ud = def->ud,
	    .ping = svc->db || def->ping ? ping_db : NULL,
	    .ping_ud = svc,
	};

	svc->def = def;
	if (!key || mk_svc_metrics_start(svc, err, errlen) != 0 ||
	    mk_rpc_server_start(&o, &svc->rpc, err, errlen) != 0)
		return -1;
	MK_INFO("SVC-LISTEN", NULL, "serving on %s with %lld workers", svc->cfg->listen,
	        svc->cfg->workers);
	return 0;
}

/* /healthz: the process serves until it starts stopping. */
static int healthz(void *ud, char *why, size_t len)
{
	mk_svc *svc = ud;

	if (atomic_load(&svc->stopping)) {
		snprintf(why, len, "stopping");
		return -1;
	}
	return 0;
}

int mk_svc_metrics_start(mk_svc *svc, char *err, size_t errlen)
{
	if (!svc->cfg || !svc->cfg->metrics_listen || !svc->cfg->metrics_listen[0] || svc->metrics)
		return 0;
	svc->metrics = mk_metrics_http_start(svc->cfg->metrics_listen, healthz, svc, err, errlen);
	return svc->metrics ? 0 : -1;
}

void mk_svc_stop(mk_svc *svc)
{
	int left;

	atomic_store(&svc->stopping, 1);
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
	mk_metrics_http_stop(svc->metrics);
	svc->metrics = NULL;
}

PGconn *mk_svc_db_acquire(mk_svc *svc, const mk_env *req, char *err, size_t errlen)
{
	int64_t left = req->deadline_ms ? req->deadline_ms - mk_now_ms() : 5000;

	return mk_db_acquire(svc->db, left < 1 ? 1 : left > 5000 ? 5000 : (int)left, err, errlen);
}
