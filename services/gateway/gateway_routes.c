/*
 * gateway_routes.c - the gateway's route table and the handlers that are
 * the gateway's own (health, readiness, the OpenAPI description). Routes
 * owned by a service forward to it with gw_forward. docs/openapi.yaml
 * describes exactly these routes (tests/integration/openapi_test.c).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "mk_time.h"

const char *const gw_service_names[GW_NSERVICES] = {"auth", "llm", "executor", "metadata"};

static void healthz(gw_req *r)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "status", "ok");
	gw_reply_json(r, 200, o, NULL);
	cJSON_Delete(o);
}

/*
 * The description is built into the binary, so it changes only with the
 * binary: a client may keep it an hour.
 */
static void openapi(gw_req *r)
{
	gw_reply_bytes(r, 200, "application/json", gateway_openapi_json, gateway_openapi_json_len,
	               "public, max-age=3600", NULL);
}

typedef struct {
	gw_req *r;
	int svc;
	mk_rpc_result res;
	long long ms;
} ping_job;

static void *ping_one(void *arg)
{
	ping_job *j = arg;
	int64_t t0 = mk_mono_ms();

	mk_rpc_call(j->r->gw->svc[j->svc], MK_OP_SYS_PING, j->r->rid, NULL, NULL,
	            (int)j->r->gw->cfg->ready_timeout_ms, &j->res);
	j->ms = mk_mono_ms() - t0;
	return NULL;
}

static void add_copy(cJSON *to, const cJSON *from, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, key);

	if (v)
		cJSON_AddItemToObject(to, key, cJSON_Duplicate(v, 1));
}

/*
 * Ping every downstream service at once; ready when each answers and, for
 * those with a database, reports it reachable. The answer lists all five
 * processes; a 503 names the ones that are not ready.
 */
static void readyz(gw_req *r)
{
	ping_job jobs[GW_NSERVICES];
	pthread_t th[GW_NSERVICES];
	int started[GW_NSERVICES];
	char failed[256] = "", msg[320];
	cJSON *o = cJSON_CreateObject(), *svcs = cJSON_AddObjectToObject(o, "services"), *s;
	int i;

	s = cJSON_AddObjectToObject(svcs, "gateway");
	cJSON_AddBoolToObject(s, "ready", 1);
	for (i = 0; i < GW_NSERVICES; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].r = r;
		jobs[i].svc = i;
		started[i] = pthread_create(&th[i], NULL, ping_one, &jobs[i]) == 0;
		if (!started[i])
			ping_one(&jobs[i]);
	}
	for (i = 0; i < GW_NSERVICES; i++) {
		const char *db;
		int ok;

		if (started[i])
			pthread_join(th[i], NULL);
		db = jobs[i].res.err == MK_OK
		         ? cJSON_GetStringValue(
		               cJSON_GetObjectItemCaseSensitive(jobs[i].res.body, "db"))
		         : NULL;
		ok = jobs[i].res.err == MK_OK && (!db || strcmp(db, "ok") == 0) &&
		     !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(jobs[i].res.body, "ready"));
		s = cJSON_AddObjectToObject(svcs, gw_service_names[i]);
		cJSON_AddBoolToObject(s, "ready", ok);
		cJSON_AddNumberToObject(s, "ms", (double)jobs[i].ms);
		/* Connections to the service's replicas (every address its name resolves to). */
		cJSON_AddNumberToObject(s, "replicas", mk_rpc_client_peers(r->gw->svc[i]));
		if (db)
			cJSON_AddStringToObject(s, "db", db);
		if (jobs[i].res.err ==
		    MK_OK) { /* what a service adds of itself, e.g. executor workers */
			const cJSON *w =
			    cJSON_GetObjectItemCaseSensitive(jobs[i].res.body, "workers");

			const char *iso = cJSON_GetStringValue(
			    cJSON_GetObjectItemCaseSensitive(jobs[i].res.body, "isolation"));

			if (cJSON_IsNumber(w))
				cJSON_AddNumberToObject(s, "workers", w->valuedouble);
			if (iso) /* how the executor's workers hold their sandboxes */
				cJSON_AddStringToObject(s, "isolation", iso);
			/* how the work was spread: over the executor's workers, the llm replicas */
			add_copy(s, jobs[i].res.body, "jobs_by_worker");
			add_copy(s, jobs[i].res.body, "turns_last_hour");
		}
		if (jobs[i].res.err != MK_OK)
			cJSON_AddStringToObject(s, "error", jobs[i].res.msg);
		if (!ok)
			snprintf(failed + strlen(failed), sizeof(failed) - strlen(failed), "%s%s",
			         failed[0] ? ", " : "", gw_service_names[i]);
		mk_rpc_result_release(&jobs[i].res);
	}
	if (failed[0]) {
		snprintf(msg, sizeof(msg), "not ready: %s", failed);
		cJSON_AddStringToObject(o, "status", "unavailable");
		gw_reply_error_ex(r, MK_E_UNAVAILABLE, msg, NULL, o);
	} else {
		cJSON_AddStringToObject(o, "status", "ready");
		gw_reply_json(r, 200, o, NULL);
	}
	cJSON_Delete(o);
}

const gw_route gw_routes[] = {
    {"GET", "/healthz", healthz, 0},
    {"GET", "/readyz", readyz, 0},
    {"GET", "/openapi.json", openapi, 0},
    {"GET", "/metrics", gw_metrics_get, 0},
    {"POST", "/auth/signup", gw_auth_signup, GW_R_JSON},
    {"POST", "/auth/signin", gw_auth_signin, GW_R_BODY},
    {"POST", "/auth/refresh", gw_auth_refresh, GW_R_BODY},
    {"POST", "/auth/signout", gw_auth_signout, GW_R_JSON},
    {"GET", "/auth/me", gw_auth_me, GW_R_AUTH},
    {"POST", "/api/v1/chats", gw_chats_create, GW_R_AUTH | GW_R_JSON},
    {"GET", "/api/v1/chats", gw_chats_list, GW_R_AUTH},
    {"GET", "/api/v1/chats/{}", gw_chats_get, GW_R_AUTH},
    {"PATCH", "/api/v1/chats/{}", gw_chats_update, GW_R_AUTH | GW_R_JSON},
    {"DELETE", "/api/v1/chats/{}", gw_chats_delete, GW_R_AUTH},
    {"GET", "/api/v1/chats/{}/messages", gw_chats_messages, GW_R_AUTH},
    {"POST", "/api/v1/chat", gw_chat_turn, GW_R_AUTH | GW_R_JSON},
    {"GET", "/api/v1/chat/turns/{}/events", gw_chat_turn_events, GW_R_AUTH},
    {"POST", "/api/v1/messages/{}/feedback", gw_messages_feedback, GW_R_AUTH | GW_R_JSON},
    {"GET", "/api/v1/artifacts/{}", gw_artifacts_get, GW_R_AUTH},
    {"GET", "/api/v1/usage", gw_usage_get, GW_R_AUTH},
    {"POST", "/api/v1/files", gw_files_upload, GW_R_AUTH},
    {"GET", "/api/v1/files", gw_files_list, GW_R_AUTH},
    {"GET", "/api/v1/files/{}", gw_files_get, GW_R_AUTH},
    {"DELETE", "/api/v1/files/{}", gw_files_delete, GW_R_AUTH},
    {"GET", "/api/v1/datasources", gw_datasources_list, GW_R_AUTH},
    {"GET", "/api/v1/datasources/{}/tables", gw_datasources_tables, GW_R_AUTH},
    {"GET", "/api/v1/datasources/{}/tables/{}", gw_datasources_table, GW_R_AUTH},
    {"PATCH", "/api/v1/datasources/{}/tables/{}", gw_datasources_annotate, GW_R_AUTH | GW_R_JSON},
    {"POST", "/api/v1/datasources/{}/sync", gw_datasources_sync, GW_R_AUTH},
};
const size_t gw_nroutes = sizeof(gw_routes) / sizeof(gw_routes[0]);

int gw_routes_print(FILE *out)
{
	size_t i;

	for (i = 0; i < gw_nroutes; i++)
		if (fprintf(out, "%s %s\n", gw_routes[i].method, gw_routes[i].pattern) < 0)
			return -1;
	return fflush(out) == 0 ? 0 : -1;
}
