/*
 * llm_usage.c - chat.usage: the caller's model tokens per UTC day, summed
 * from the usage recorded on the assistant messages of their chats.
 *
 * Only chats that still exist count: deleting a chat deletes its messages
 * and with them their usage. Executions and warehouse bytes are other
 * services' records; the gateway merges them in.
 */
#include <stdio.h>
#include <stdlib.h>

#include "llm.h"
#include "mk_buf.h"

/*
 * Tokens per UTC day of the caller's ($1) answers over the last $2 days
 * (1 is today alone). A usage member that is absent or not a number
 * counts 0, so one odd row cannot fail the whole report.
 */
static const char usage_sql[] =
    "SELECT to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
    "coalesce(sum(CASE WHEN jsonb_typeof(m.usage->'prompt_tokens') = 'number' "
    "THEN floor((m.usage->>'prompt_tokens')::numeric) END), 0)::bigint, "
    "coalesce(sum(CASE WHEN jsonb_typeof(m.usage->'completion_tokens') = 'number' "
    "THEN floor((m.usage->>'completion_tokens')::numeric) END), 0)::bigint "
    "FROM messages m JOIN chats c ON c.id = m.chat_id "
    "WHERE c.owner_id = $1::uuid AND m.role = 'assistant' AND m.usage IS NOT NULL "
    "AND m.created_at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - "
    "($2::int - 1) * interval '1 day') AT TIME ZONE 'UTC' "
    "GROUP BY day ORDER BY day DESC";

mk_err llm_chat_usage(LLM_HANDLER_ARGS)
{
	static const char *const fields[] = {"prompt_tokens", "completion_tokens", NULL};
	PGconn *c = req->caller.user_id[0] ? mk_svc_db_acquire(&l->svc, req, err, errlen) : NULL;
	mk_err e;

	if (req->caller.user_id[0] && !c)
		return MK_E_DB;
	e = mk_svc_usage_days(c, req, usage_sql, fields, reply, err, errlen);
	if (c)
		mk_db_release(l->svc.db, c);
	return e;
}
