/*
 * gateway_usage.c - GET /api/v1/usage?days=N: the caller's consumption per
 * UTC day, newest first, only days with activity, and the totals.
 *
 * Two services keep the records: llm the model tokens (chat.usage), the
 * executor the executions (exec.usage). Both are asked at once and their
 * days merged by date; when either cannot answer, neither half is shown
 * (503 when a service is down). Warehouse bytes stay 0 until the metadata
 * service records queries.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "mk_json.h"

#define USAGE_DAYS_DEFAULT 30
#define USAGE_DAYS_MAX     366

typedef struct {
	gw_req *r;
	int svc;
	mk_op op;
	const cJSON *body;
	mk_rpc_result res;
} usage_call;

static void *call_one(void *arg)
{
	usage_call *u = arg;

	mk_rpc_call(u->r->gw->svc[u->svc], u->op, u->r->rid, &u->r->caller, u->body,
	            (int)u->r->gw->cfg->rpc_timeout_ms, &u->res);
	return NULL;
}

/* ?days= as 1..366 (default 30); answers 422 and returns -1 when it is not. */
static int days_query(gw_req *r, long *days)
{
	const char *q = r->ri->query_string;
	char v[32], *end;
	long n;
	int rc;

	*days = USAGE_DAYS_DEFAULT;
	if (!q)
		return 0;
	rc = mg_get_var(q, strlen(q), "days", v, sizeof(v));
	if (rc == -1)
		return 0;
	n = rc > 0 ? strtol(v, &end, 10) : 0;
	if (rc <= 0 || *end || strlen(v) != (size_t)rc || n < 1 || n > USAGE_DAYS_MAX) {
		gw_reply_error(r, MK_E_VALIDATION, "days must be a whole number from 1 to 366");
		return -1;
	}
	*days = n;
	return 0;
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *const usage_fields[] = {"prompt_tokens", "completion_tokens", "executions",
                                           "execution_seconds", "warehouse_bytes"};
#define NFIELDS (sizeof(usage_fields) / sizeof(usage_fields[0]))

/* One day of the answer: every field, taken from the llm day and the executor day (each may be
 * NULL); adds them to tot. */
static cJSON *day_json(const char *date, const cJSON *a, const cJSON *b, double tot[NFIELDS])
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "date", date);
	for (size_t i = 0; i < NFIELDS; i++) {
		double v = num(a, usage_fields[i]) + num(b, usage_fields[i]);

		cJSON_AddNumberToObject(o, usage_fields[i], v);
		tot[i] += v;
	}
	return o;
}

/* Merge two lists of days, each newest first, into out (newest first, one entry a date). */
static void merge(const cJSON *la, const cJSON *lb, cJSON *out, double tot[NFIELDS])
{
	const cJSON *a = la ? la->child : NULL, *b = lb ? lb->child : NULL;

	while (a || b) {
		const char *da = a ? mk_json_str(a, "date") : NULL;
		const char *db = b ? mk_json_str(b, "date") : NULL;
		int c;

		if (a && !da) { /* a day without a date is not a day */
			a = a->next;
			continue;
		}
		if (b && !db) {
			b = b->next;
			continue;
		}
		c = !da ? -1 : !db ? 1 : strcmp(da, db);
		if (c == 0) {
			cJSON_AddItemToArray(out, day_json(da, a, b, tot));
			a = a->next;
			b = b->next;
		} else if (c > 0) {
			cJSON_AddItemToArray(out, day_json(da, a, NULL, tot));
			a = a->next;
		} else {
			cJSON_AddItemToArray(out, day_json(db, NULL, b, tot));
			b = b->next;
		}
	}
}

void gw_usage_get(gw_req *r)
{
	usage_call calls[2] = {
	    {.r = r, .svc = GW_LLM, .op = MK_OP_CHAT_USAGE},
	    {.r = r, .svc = GW_EXECUTOR, .op = MK_OP_EXEC_USAGE},
	};
	double tot[NFIELDS] = {0};
	cJSON *body, *out = NULL, *days, *totals;
	pthread_t th;
	int threaded;
	long n;

	if (days_query(r, &n) != 0)
		return;
	body = cJSON_CreateObject();
	if (!body || !cJSON_AddNumberToObject(body, "days", (double)n)) {
		cJSON_Delete(body);
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		return;
	}
	calls[0].body = calls[1].body = body;
	threaded = pthread_create(&th, NULL, call_one, &calls[1]) == 0;
	call_one(&calls[0]);
	if (threaded)
		pthread_join(th, NULL);
	else
		call_one(&calls[1]);
	for (int i = 0; i < 2; i++) {
		char msg[160];

		if (calls[i].res.err == MK_OK)
			continue;
		if (calls[i].res.err == MK_E_UNAVAILABLE) {
			snprintf(msg, sizeof(msg),
			         "usage cannot be counted: service '%s' is unavailable",
			         gw_service_names[calls[i].svc]);
			gw_reply_error(r, MK_E_UNAVAILABLE, msg);
		} else {
			gw_reply_rpc_error(r, &calls[i].res);
		}
		goto out;
	}
	out = cJSON_CreateObject();
	days = out ? cJSON_AddArrayToObject(out, "days") : NULL;
	if (days)
		merge(cJSON_GetObjectItemCaseSensitive(calls[0].res.body, "days"),
		      cJSON_GetObjectItemCaseSensitive(calls[1].res.body, "days"), days, tot);
	totals = days ? cJSON_AddObjectToObject(out, "totals") : NULL;
	if (!totals) {
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		goto out;
	}
	for (size_t i = 0; i < NFIELDS; i++)
		cJSON_AddNumberToObject(totals, usage_fields[i], tot[i]);
	gw_reply_json(r, 200, out, NULL);
out:
	cJSON_Delete(out);
	cJSON_Delete(body);
	mk_rpc_result_release(&calls[0].res);
	mk_rpc_result_release(&calls[1].res);
}
