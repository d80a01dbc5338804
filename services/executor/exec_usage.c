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
	static const char *const fields[] = {"executions", "execution_seconds", NULL};

	/* days = 1 is today (UTC) alone; each more adds the day before. */
	return mk_svc_usage_days(
	    c, req,
	    "SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
	    "count(*), round(coalesce(sum(extract(epoch FROM ended_at - "
	    "started_at)), 0)::numeric, 3) FROM executions WHERE user_id = $1 "
	    "AND started_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - "
	    "($2::int - 1) * interval '1 day') AT TIME ZONE 'UTC' "
	    "GROUP BY day ORDER BY day DESC",
	    fields, reply, err, errlen);
}
