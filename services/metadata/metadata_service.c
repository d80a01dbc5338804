/*
 * metadata_service.c - the metadata process's life: open its database, apply its
 * migrations, connect the warehouse driver, sync the catalog at start and
 * then every METADATA_SYNC_INTERVAL on a thread of its own, serve its ops
 * over NNG, stop gracefully.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metadata.h"
#include "mk_log.h"
#include "mk_time.h"

static mk_err handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	metadata *m = ud;

	switch (req->op) {
	case MK_OP_META_SEARCH: return meta_search(m, req, reply, err, errlen);
	case MK_OP_META_DESCRIBE: return meta_describe(m, req, reply, err, errlen);
	case MK_OP_META_QUERY: return meta_query(m, req, reply, err, errlen);
	case MK_OP_META_SOURCES: return meta_sources(m, req, reply, err, errlen);
	case MK_OP_META_TABLES: return meta_tables(m, req, reply, err, errlen);
	case MK_OP_META_TABLE: return meta_table(m, req, reply, err, errlen);
	case MK_OP_META_ANNOTATE: return meta_annotate(m, req, reply, err, errlen);
	case MK_OP_META_SYNC: return meta_sync(m, req, reply, err, errlen);
	case MK_OP_META_USAGE: return meta_usage(m, req, reply, err, errlen);
	case MK_OP_META_OVERVIEW: return meta_overview(m, req, reply, err, errlen);
	default:
		snprintf(err, errlen, "operation '%s' is not served by 'metadata'",
		         mk_op_name(req->op));
		return MK_E_UNKNOWN_OP;
	}
}

static void sync_once(metadata *m)
{
	char err[512];
	int64_t t0 = mk_mono_ms();

	if (meta_catalog_sync(m, err, sizeof(err)) != 0)
		MK_WARN("META-SYNC-FAIL", NULL, "catalog sync failed: %s", err);
	else
		MK_INFO("META-SYNC", NULL, "catalog synced in %lld ms",
		        (long long)(mk_mono_ms() - t0));
}

/* Sync every interval until stop. */
static void *sync_loop(void *p)
{
	metadata *m = p;

	pthread_mutex_lock(&m->stop_lock);
	while (!m->stopping) {
		struct timespec ts;
		int64_t at = mk_now_ms() + m->cfg->sync_interval_ms;
		int rc = 0;

		ts.tv_sec = (time_t)(at / 1000);
		ts.tv_nsec = (long)(at % 1000) * 1000000L;
		while (!m->stopping && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&m->stop_cond, &m->stop_lock, &ts);
		if (m->stopping)
			break;
		pthread_mutex_unlock(&m->stop_lock);
		sync_once(m);
		pthread_mutex_lock(&m->stop_lock);
	}
	pthread_mutex_unlock(&m->stop_lock);
	return NULL;
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const metadata_config *cfg = cfgp;
	metadata *m = calloc(1, sizeof(*m));

	*out = m;
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->cfg = cfg;
	pthread_mutex_init(&m->sync_lock, NULL);
	pthread_mutex_init(&m->stop_lock, NULL);
	pthread_cond_init(&m->stop_cond, NULL);
	m->def = (mk_svc_def){
	    .name = "metadata",
	    .schema = "catalog",
	    .migrations = metadata_migrations,
	    .nmigrations = metadata_migrations_count,
	    .handler = handle,
	    .ud = m,
	};
	if (strcmp(cfg->warehouse_kind, "postgres") == 0) {
		if (!cfg->warehouse_dsn || !*cfg->warehouse_dsn) {
			snprintf(
			    err, errlen,
			    "METADATA_WAREHOUSE_DSN is required when METADATA_WAREHOUSE_KIND is "
			    "'postgres'");
			return -1;
		}
		if (!(m->wh = meta_pg_new(cfg->warehouse_dsn))) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		m->wh_ops = &meta_pg_ops;
	} else if (strcmp(cfg->warehouse_kind, "bigquery") == 0) {
		if (!(m->wh = meta_bq_new(cfg, err, errlen)))
			return -1;
		m->wh_ops = &meta_bq_ops;
	}
	if (mk_svc_open_db(&m->svc, &m->def, &cfg->svc, err, errlen) != 0)
		return -1;
	if (m->wh_ops) {
		/*
		 * The first sync runs before serving, so the catalog is fresh
		 * when the first question comes; a warehouse that is down only
		 * delays it to the next interval.
		 */
		sync_once(m);
		if (pthread_create(&m->sync_thread, NULL, sync_loop, m) != 0) {
			snprintf(err, errlen, "cannot start the sync thread");
			return -1;
		}
		m->sync_started = 1;
	}
	meta_metrics_init();
	return mk_svc_serve(&m->svc, &m->def, err, errlen);
}

static void stop(void *p)
{
	metadata *m = p;

	if (!m)
		return;
	if (m->sync_started) {
		pthread_mutex_lock(&m->stop_lock);
		m->stopping = 1;
		pthread_cond_broadcast(&m->stop_cond);
		pthread_mutex_unlock(&m->stop_lock);
		pthread_join(m->sync_thread, NULL);
	}
	mk_svc_stop(&m->svc);
	if (m->wh_ops)
		m->wh_ops->free(m->wh);
	pthread_mutex_destroy(&m->sync_lock);
	pthread_mutex_destroy(&m->stop_lock);
	pthread_cond_destroy(&m->stop_cond);
	free(m);
}

/* --migrate: schema 'catalog' only, then exit. */
static int migrate(const void *cfgp, char *err, size_t errlen)
{
	const mk_svc_def def = {
	    .name = "metadata",
	    .schema = "catalog",
	    .migrations = metadata_migrations,
	    .nmigrations = metadata_migrations_count,
	};

	return mk_svc_migrate(&def, &((const metadata_config *)cfgp)->svc, err, errlen);
}

const mk_svc_app metadata_app = {
    .name = "metadata",
    .vars = metadata_config_vars,
    .nvars = &metadata_config_nvars,
    .log_level_offset = offsetof(metadata_config, svc.log_level),
    .log_format_offset = offsetof(metadata_config, svc.log_format),
    .listen_offset = offsetof(metadata_config, svc.listen),
    .bus_key_offset = offsetof(metadata_config, svc.bus_key_file),
    .start = start,
    .stop = stop,
    .migrate = migrate,
};
