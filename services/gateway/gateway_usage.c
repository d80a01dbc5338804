/*
 * gateway_usage.c - GET /api/v1/usage?days=N: the caller's consumption per
 * UTC day, newest first, only days with activity, and the totals.
 *
 * Three services keep the records: llm the model tokens (chat.usage), the
 * executor the executions (exec.usage), metadata the warehouse queries and
 * the bytes they scanned (meta.usage). All are asked at once and their
 * days merged by date; when one cannot answer, nothing is shown (503 when
 * a service is down).
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

static const char *const usage_fields[] = {"prompt_tokens",     "completion_tokens",
                                           "executions",        "execution_seconds",
                                           "warehouse_queries", "warehouse_bytes"};
#define NFIELDS (sizeof(usage_fields) / sizeof(usage_fields[0]))
#define NCALLS  3

/* One day of the answer: every field, summed over the services' entries of that date (NULL
 * where a service has none); adds them to tot. */
static cJSON *day_json(const char *date, const cJSON *const e[NCALLS], double tot[NFIELDS])
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "date", date);
	for (size_t i = 0; i < NFIELDS; i++) {
		double v = 0;

		for (int k = 0; k < NCALLS; k++)
			v += num(e[k], usage_fields[i]);
		cJSON_AddNumberToObject(o, usage_fields[i], v);
		tot[i] += v;
	}
	return o;
}

/* Merge the services' lists of days, each newest first, into out (newest first, one entry a
 * date). */
static void merge(const cJSON *const lists[NCALLS], cJSON *out, double tot[NFIELDS])
{
	const cJSON *head[NCALLS];
	int k;

	for (k = 0; k < NCALLS; k++)
		head[k] = lists[k] ? lists[k]->child : NULL;
	for (;;) {
		const cJSON *at[NCALLS] = {NULL};
		const char *newest = NULL;

		for (k = 0; k < NCALLS; k++) {
			while (head[k] && !mk_json_str(head[k], "date")) /* no date, no day */
				head[k] = head[k]->next;
			if (head[k] &&
			    (!newest || strcmp(mk_json_str(head[k], "date"), newest) > 0))
				newest = mk_json_str(head[k], "date");
		}
		if (!newest)
			break;
		for (k = 0; k < NCALLS; k++)
			if (head[k] && strcmp(mk_json_str(head[k], "date"), newest) == 0)
				at[k] = head[k];
		cJSON_AddItemToArray(out, day_json(newest, at, tot));
		for (k = 0; k < NCALLS; k++)
			if (at[k])
				head[k] = head[k]->next;
	}
}

void gw_usage_get(gw_req *r)
{
	usage_call calls[NCALLS] = {
	    {.r = r, .svc = GW_LLM, .op = MK_OP_CHAT_USAGE},
	    {.r = r, .svc = GW_EXECUTOR, .op = MK_OP_EXEC_USAGE},
	    {.r = r, .svc = GW_METADATA, .op = MK_OP_META_USAGE},
	};
	const cJSON *lists[NCALLS];
	double tot[NFIELDS] = {0};
	cJSON *body, *out = NULL, *days, *totals;
	pthread_t th[NCALLS];
	int threaded[NCALLS] = {0}, i;
	long n;

	if (days_query(r, &n) != 0)
		return;
	body = cJSON_CreateObject();
	if (!body || !cJSON_AddNumberToObject(body, "days", (double)n)) {
		cJSON_Delete(body);
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		return;
	}
	for (i = 0; i < NCALLS; i++)
		calls[i].body = body;
	/* All at once: the first on this thread, the others on their own. */
	for (i = 1; i < NCALLS; i++)
		threaded[i] = pthread_create(&th[i], NULL, call_one, &calls[i]) == 0;
	call_one(&calls[0]);
	for (i = 1; i < NCALLS; i++) {
		if (threaded[i])
			pthread_join(th[i], NULL);
		else
			call_one(&calls[i]);
	}
	for (i = 0; i < NCALLS; i++) {
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
	for (i = 0; i < NCALLS; i++)
		lists[i] = cJSON_GetObjectItemCaseSensitive(calls[i].res.body, "days");
	if (days)
		merge(lists, days, tot);
	totals = days ? cJSON_AddObjectToObject(out, "totals") : NULL;
	if (!totals) {
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		goto out;
	}
	for (i = 0; i < (int)NFIELDS; i++)
		cJSON_AddNumberToObject(totals, usage_fields[i], tot[i]);
	gw_reply_json(r, 200, out, NULL);
out:
	cJSON_Delete(out);
	cJSON_Delete(body);
	for (i = 0; i < NCALLS; i++)
		mk_rpc_result_release(&calls[i].res);
}
