/*
 * mk_svc.c - the process life every service shares (see mk_svc.h): the
 * command line, config, logging, signals, --ping. The backend services'
 * database and RPC start-up is in mk_svc_backend.c.
 */
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "mk_json.h"
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

/* --ping: ask the running service at its own address whether it is up
 * and its database reachable (for container health checks). */
static int ping_self(const char *service, const char *url, const char *key_file)
{
	char err[512], rid[MK_RID_MAX + 1], setting[64];
	mk_rpc_client *c = NULL;
	mk_rpc_result res;
	mk_seal_key key;
	const char *db;
	int rc;

	mk_svc_key_setting(service, setting, sizeof(setting));
	if (mk_seal_key_load(&key, key_file, setting, err, sizeof(err)) == 0)
		c = mk_rpc_client_new(url, 1 << 20, &key, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	mk_rid_new(rid);
	mk_rpc_call(c, MK_OP_SYS_PING, rid, NULL, NULL, 3000, &res);
	db = res.err == MK_OK ? cJSON_GetStringValue(cJSON_GetObjectItem(res.body, "db")) : NULL;
	rc = res.err == MK_OK && (!db || strcmp(db, "ok") == 0) ? 0 : 1;
	/* A service may also say it is up but not ready (an executor router without workers). */
	if (rc == 0 && cJSON_IsFalse(cJSON_GetObjectItem(res.body, "ready")))
		rc = 2;
	printf("%s\n", res.err != MK_OK ? res.msg
	               : rc == 1        ? "database unreachable"
	               : rc == 2        ? "not ready"
	                                : "ok");
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
	return rc;
}

void mk_svc_key_setting(const char *service, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; service[i] && i + 1 < outlen; i++)
		out[i] =
		    (char)(service[i] >= 'a' && service[i] <= 'z' ? service[i] - 32 : service[i]);
	out[i] = '\0';
	snprintf(out + i, outlen - i, "_BUS_KEY_FILE");
}

/* Logging at the level and in the format the loaded config names (info, text by default). */
static void log_init(const mk_svc_app *app, const void *cfg)
{
	const char *level = *(char *const *)((const char *)cfg + app->log_level_offset),
	           *format = *(char *const *)((const char *)cfg + app->log_format_offset);
	mk_log_level lvl = MK_LOG_INFO;
	mk_log_format fmt = MK_LOG_TEXT;

	if (level)
		mk_log_level_parse(level, &lvl);
	if (format)
		mk_log_format_parse(format, &fmt);
	mk_log_set_format(fmt);
	mk_log_init(app->name, lvl);
}

int mk_svc_main(int argc, char **argv, const mk_svc_app *app, void *cfg)
{
	char err[1024] = "";
	void *ctx = NULL;
	int rc;

	if (argc == 2 && strcmp(argv[1], "--ping") == 0 && app->listen_offset) {
		rc = mk_cfg_main(1, argv, app->name, app->vars, *app->nvars, cfg);
		if (rc >= 0)
			return rc;
		rc = ping_self(app->name, *(char **)((char *)cfg + app->listen_offset),
		               *(char **)((char *)cfg + app->bus_key_offset));
		mk_cfg_release(app->vars, *app->nvars, cfg);
		return rc;
	}
	if (argc == 2 && strcmp(argv[1], "--migrate") == 0 && app->migrate) {
		rc = mk_cfg_main(1, argv, app->name, app->vars, *app->nvars, cfg);
		if (rc >= 0)
			return rc;
		log_init(app, cfg);
		rc = app->migrate(cfg, err, sizeof(err)) == 0 ? 0 : 1;
		if (rc)
			MK_ERROR("SVC-MIGRATE-FAIL", NULL, "%s", err);
		mk_cfg_release(app->vars, *app->nvars, cfg);
		return rc;
	}
	rc = mk_cfg_main(argc, argv, app->name, app->vars, *app->nvars, cfg);
	if (rc >= 0)
		return rc;
	log_init(app, cfg);
	mk_cfg_log(app->vars, *app->nvars, cfg);
	mk_svc_block_signals();
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
	MK_INFO("SVC-STOPPED", NULL, "%s stopped", app->name);
	mk_cfg_release(app->vars, *app->nvars, cfg);
	return rc;
}

mk_err mk_svc_usage_days(PGconn *c, const mk_env *req, const char *sql, const char *const *fields,
                         cJSON **reply, char *err, size_t errlen)
{
	long long days = 30;
	char d[24];
	const char *p[2] = {req->caller.user_id, d};
	cJSON *arr;
	PGresult *r;
	int i, k;

	if (!req->caller.user_id[0]) {
		snprintf(err, errlen, "no authenticated caller");
		return MK_E_UNAUTHENTICATED;
	}
	mk_json_int(req->body, "days", &days);
	snprintf(d, sizeof(d), "%lld", days);
	if (!(r = mk_db_exec_prep(c, sql, 2, p, err, errlen, NULL)))
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	arr = *reply ? cJSON_AddArrayToObject(*reply, "days") : NULL;
	for (i = 0; arr && i < PQntuples(r); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "date", PQgetvalue(r, i, 0));
		for (k = 0; fields[k] && k + 1 < PQnfields(r); k++)
			cJSON_AddNumberToObject(o, fields[k],
			                        strtod(PQgetvalue(r, i, k + 1), NULL));
		cJSON_AddItemToArray(arr, o);
	}
	PQclear(r);
	return arr ? MK_OK : MK_E_INTERNAL;
}
