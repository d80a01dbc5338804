/*
 * llm_feedback.c - chat.feedback: a user's rating of one of Mark's answers,
 * kept in the message's feedback column.
 *
 * Only assistant messages of the caller's own chats can be rated; a
 * message of someone else's chat answers not_found exactly like one that
 * does not exist. Rating again replaces the earlier rating and comment.
 */
#include <stdio.h>
#include <string.h>

#include "llm.h"
#include "mk_buf.h"

#define FEEDBACK_COMMENT_MAX 2000 /* characters (code points) */

/* Code points of a valid UTF-8 string (the dispatcher has checked it). */
static size_t utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xc0) != 0x80;
	return n;
}

mk_err llm_chat_feedback(LLM_HANDLER_ARGS)
{
	const char *id = mk_json_str(req->body, "message_id");
	const char *rating = mk_json_str(req->body, "rating");
	const char *comment = mk_json_str(req->body, "comment");
	const char *p[4] = {id, req->caller.user_id, rating, comment};
	const char *role;
	PGresult *r;
	PGconn *c;

	if (!req->caller.user_id[0]) {
		mk_errf(err, errlen, "no authenticated caller");
		return MK_E_UNAUTHENTICATED;
	}
	if (!id || !llm_uuid_valid(id)) {
		mk_errf(err, errlen, "message not found");
		return MK_E_NOT_FOUND;
	}
	if (!rating || (strcmp(rating, "up") != 0 && strcmp(rating, "down") != 0)) {
		mk_errf(err, errlen, "rating must be 'up' or 'down'");
		return MK_E_VALIDATION;
	}
	if (comment && utf8_chars(comment) > FEEDBACK_COMMENT_MAX) {
		mk_errf(err, errlen, "comment must be at most %d characters", FEEDBACK_COMMENT_MAX);
		return MK_E_VALIDATION;
	}
	if (!(c = mk_svc_db_acquire(&l->svc, req, err, errlen)))
		return MK_E_DB;
	/* The owner check, the role check and the update in one statement: no
	 * row means not found; a row without feedback is not an answer. */
	r = mk_db_exec_prep(
	    c,
	    "WITH m AS (SELECT m.id, m.role FROM messages m JOIN chats c ON c.id = m.chat_id "
	    "WHERE m.id = $1::uuid AND c.owner_id = $2::uuid), "
	    "u AS (UPDATE messages SET feedback = jsonb_build_object('rating', $3::text, "
	    "'comment', $4::text, 'at', to_char(now() AT TIME ZONE 'UTC', "
	    "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')) FROM m WHERE messages.id = m.id AND "
	    "m.role = 'assistant' RETURNING messages.feedback) "
	    "SELECT m.id, m.role, (SELECT feedback FROM u) FROM m",
	    4, p, err, errlen, NULL);
	mk_db_release(l->svc.db, c);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		mk_errf(err, errlen, "message not found");
		return MK_E_NOT_FOUND;
	}
	role = PQgetvalue(r, 0, 1);
	if (strcmp(role, "assistant") != 0 || PQgetisnull(r, 0, 2)) {
		mk_errf(err, errlen, "message '%s' is a %s message: only answers can be rated", id,
		        role);
		PQclear(r);
		return MK_E_VALIDATION;
	}
	*reply = cJSON_CreateObject();
	if (*reply) {
		cJSON *fb =
		    cJSON_ParseWithLength(PQgetvalue(r, 0, 2), (size_t)PQgetlength(r, 0, 2));

		cJSON_AddStringToObject(*reply, "message_id", PQgetvalue(r, 0, 0));
		cJSON_AddItemToObject(*reply, "feedback", fb ? fb : cJSON_CreateNull());
	}
	PQclear(r);
	return *reply ? MK_OK : MK_E_INTERNAL;
}
