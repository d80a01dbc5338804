/*
 * exec_usage.c - exec.usage: how much code the caller ran, per UTC day:
 * the number of executions and their wall-clock seconds, from the audit
 * log in exec.executions.
 *
 * The request names no chat, so the router may send it to any worker; it
 * reads only Postgres, which every worker shares.
 */
#include <stdio.h>
#include <stdlib.h>

#include "executor.h"
#include "mk_json.h"

mk_err exec_usage_op(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen)
{
	long long days = 30;
	char d[24];
	const char *p[2] = {req->caller.user_id, d};
	cJSON *arr;
	PGresult *r;
	int i;

	mk_json_int(req->body, "days", &days);
	snprintf(d, sizeof(d), "%lld", days);
	/* days = 1 is today (UTC) alone; each more adds the day before. */
	r = mk_db_exec_prep(c,
	                    "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
	                    "count(*), round(coalesce(sum(extract(epoch FROM ended_at - "
	                    "started_at)), 0)::numeric, 3) FROM executions WHERE user_id = $1 "
	                    "AND started_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - "
	                    "($2::int - 1) * interval '1 day') AT TIME ZONE 'UTC' "
	                    "GROUP BY day ORDER BY day DESC",
	                    2, p, err, errlen, NULL);
	if (!r)
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	arr = *reply ? cJSON_AddArrayToObject(*reply, "days") : NULL;
	for (i = 0; arr && i < PQntuples(r); i++) {
		cJSON *o = cJSON_CreateObject();

		cJSON_AddStringToObject(o, "date", PQgetvalue(r, i, 0));
		cJSON_AddNumberToObject(o, "executions", strtod(PQgetvalue(r, i, 1), NULL));
		cJSON_AddNumberToObject(o, "execution_seconds", strtod(PQgetvalue(r, i, 2), NULL));
		cJSON_AddItemToArray(arr, o);
	}
	PQclear(r);
	return arr ? MK_OK : MK_E_INTERNAL;
}
