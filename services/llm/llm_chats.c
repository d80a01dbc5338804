/*
 * llm_chats.c - chats and messages: the chat.* ops, appending messages and
 * loading history for the model.
 *
 * Every op acts for the caller in the envelope, who must own the chat: a
 * chat of someone else's answers not_found exactly like one that does not
 * exist. Pages are cursor-based (opaque base64url strings): chats newest
 * activity first, messages in conversation order.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "llm.h"
#include "mk_buf.h"
#include "mk_log.h"
#include "mk_time.h"

#define CHAT_COLS                                                                                  \
	"id, title, to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), " \
	"to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "            \
	"(extract(epoch FROM updated_at) * 1000000)::bigint"

#define MSG_COLS                                                                                   \
	"m.id, m.chat_id, m.role, m.content, m.attachments, m.steps, m.usage, m.error, "           \
	"m.feedback, "                                                                             \
	"to_char(m.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), m.seq"

int llm_uuid_valid(const char *s)
{
	static const int dash[] = {8, 13, 18, 23};
	size_t i, d = 0;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (d < 4 && (int)i == dash[d]) {
			if (s[i] != '-')
				return 0;
			d++;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

int llm_tokens_estimate(const char *text)
{
	size_t n = text ? strlen(text) : 0;

	return (int)(n / 4 + 1);
}

static PGconn *conn(llm *l, const mk_env *req, char *err, size_t errlen)
{
	return mk_svc_db_acquire(&l->svc, req, err, errlen);
}

static mk_err need_caller(const mk_env *req, char *err, size_t errlen)
{
	if (req->caller.user_id[0])
		return MK_OK;
	snprintf(err, errlen, "no authenticated caller");
	return MK_E_UNAUTHENTICATED;
}

/* Clean a title: trimmed, no control characters, 1..max characters. */
static int clean_title(const char *in, long long max, char *out, size_t outlen, char *err,
                       size_t errlen)
{
	size_t n, chars = 0, i;

	while (isspace((unsigned char)*in))
		in++;
	n = strlen(in);
	while (n && isspace((unsigned char)in[n - 1]))
		n--;
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch < 0x20 || ch == 0x7f) {
			snprintf(err, errlen, "title contains a control character");
			return -1;
		}
		chars += (ch & 0xc0) != 0x80;
	}
	if (chars == 0 || (long long)chars > max || n >= outlen) {
		snprintf(err, errlen, "title must be 1 to %lld characters", max);
		return -1;
	}
	memcpy(out, in, n);
	out[n] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ cursors */

static void cursor_encode(const char *plain, char *out, size_t outlen)
{
	sodium_bin2base64(out, outlen, (const unsigned char *)plain, strlen(plain),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

/* Decode a cursor into plain text; -1 when it is not one of ours. */
static int cursor_decode(const char *cur, char *out, size_t outlen)
{
	size_t n = 0;

	if (sodium_base642bin((unsigned char *)out, outlen - 1, cur, strlen(cur), NULL, &n, NULL,
	                      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
		return -1;
	out[n] = '\0';
	return memchr(out, '\0', n) ? -1 : 0;
}

/* "<micros>|<uuid>" of a chat page. */
static int chat_cursor_parse(const char *cur, char micros[24], char id[37])
{
	char plain[96], *bar;

	if (cursor_decode(cur, plain, sizeof(plain)) != 0 || !(bar = strchr(plain, '|')))
		return -1;
	*bar = '\0';
	if (!*plain || strlen(plain) >= 24 || strspn(plain, "0123456789") != strlen(plain) ||
	    !llm_uuid_valid(bar + 1))
		return -1;
	snprintf(micros, 24, "%s", plain);
	snprintf(id, 37, "%s", bar + 1);
	return 0;
}

static long long page_limit(llm *l, const mk_env *req)
{
	long long n;

	return mk_json_int(req->body, "limit", &n) == 0 ? n : l->cfg->page_default;
}

/* ------------------------------------------------------------------ chats */

static cJSON *chat_json(const PGresult *r, int row)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, 0));
	cJSON_AddStringToObject(o, "title", PQgetvalue(r, row, 1));
	cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 2));
	cJSON_AddStringToObject(o, "updated_at", PQgetvalue(r, row, 3));
	return o;
}

mk_err llm_chat_create(LLM_HANDLER_ARGS)
{
	const char *t = mk_json_str(req->body, "title");
	char title[4096];
	const char *p[2] = {req->caller.user_id, title};
	PGresult *r;
	PGconn *c;
	mk_err e;

	if ((e = need_caller(req, err, errlen)) != MK_OK)
		return e;
	if (!t || !*t)
		snprintf(title, sizeof(title), "New chat");
	else if (clean_title(t, l->cfg->title_max, title, sizeof(title), err, errlen) != 0)
		return MK_E_VALIDATION;
	if (!(c = conn(l, req, err, errlen)))
		return MK_E_DB;
	r = mk_db_exec_prep(
	    c, "INSERT INTO chats (owner_id, title) VALUES ($1, $2) RETURNING " CHAT_COLS, 2, p,
	    err, errlen, NULL);
	mk_db_release(l->svc.db, c);
	if (!r)
		return MK_E_DB;
	*reply = chat_json(r, 0);
	PQclear(r);
	return MK_OK;
}

mk_err llm_chat_list(LLM_HANDLER_ARGS)
{
	const char *cur = mk_json_str(req->body, "cursor");
	char micros[24], id[37], lim[24], next[160], plain[96];
	const char *p[4] = {req->caller.user_id, NULL, NULL, lim};
	long long limit = page_limit(l, req);
	cJSON *items;
	PGresult *r;
	PGconn *c;
	mk_err e;
	int i, n;

	if ((e = need_caller(req, err, errlen)) != MK_OK)
		return e;
	if (cur && *cur) {
		if (chat_cursor_parse(cur, micros, id) != 0) {
			snprintf(err, errlen, "invalid cursor");
			return MK_E_VALIDATION;
		}
		p[1] = micros;
		p[2] = id;
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	if (!(c = conn(l, req, err, errlen)))
		return MK_E_DB;
	/* One row more than the page tells whether another page follows. */
	r = mk_db_exec_prep(
	    c,
	    "SELECT " CHAT_COLS " FROM chats WHERE owner_id = $1 AND ($2::bigint IS NULL OR "
	    "(updated_at, id) < (timestamptz 'epoch' + $2::bigint * interval '1 microsecond', "
	    "$3::uuid)) ORDER BY updated_at DESC, id DESC LIMIT $4::int",
	    4, p, err, errlen, NULL);
	mk_db_release(l->svc.db, c);
	if (!r)
		return MK_E_DB;
	n = PQntuples(r);
	*reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(*reply, "items");
	for (i = 0; i < n && i < limit; i++)
		cJSON_AddItemToArray(items, chat_json(r, i));
	if (n > limit) {
		snprintf(plain, sizeof(plain), "%s|%s", PQgetvalue(r, (int)limit - 1, 4),
		         PQgetvalue(r, (int)limit - 1, 0));
		cursor_encode(plain, next, sizeof(next));
		cJSON_AddStringToObject(*reply, "next_cursor", next);
	} else {
		cJSON_AddNullToObject(*reply, "next_cursor");
	}
	PQclear(r);
	return MK_OK;
}

/* The chat_id of the body when it is well-formed; else not_found, like a missing chat. */
static mk_err chat_id_of(const mk_env *req, const char **id, char *err, size_t errlen)
{
	*id = mk_json_str(req->body, "chat_id");
	if (*id && llm_uuid_valid(*id))
		return need_caller(req, err, errlen);
	snprintf(err, errlen, "chat not found");
	return MK_E_NOT_FOUND;
}

/* Run a statement returning one chat row of the caller's, or not_found. */
static mk_err one_chat(llm *l, const mk_env *req, const char *sql, int n, const char *const *p,
                       cJSON **reply, char *err, size_t errlen)
{
	PGresult *r;
	PGconn *c;

	if (!(c = conn(l, req, err, errlen)))
		return MK_E_DB;
	r = mk_db_exec_prep(c, sql, n, p, err, errlen, NULL);
	mk_db_release(l->svc.db, c);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		snprintf(err, errlen, "chat not found");
		return MK_E_NOT_FOUND;
	}
	if (reply)
		*reply = chat_json(r, 0);
	PQclear(r);
	return MK_OK;
}

mk_err llm_chat_get(LLM_HANDLER_ARGS)
{
	const char *id;
	mk_err e = chat_id_of(req, &id, err, errlen);
	const char *p[2] = {id, req->caller.user_id};

	if (e != MK_OK)
		return e;
	return one_chat(l, req, "SELECT " CHAT_COLS " FROM chats WHERE id = $1 AND owner_id = $2",
	                2, p, reply, err, errlen);
}

mk_err llm_chat_update(LLM_HANDLER_ARGS)
{
	char title[4096];
	const char *id;
	mk_err e = chat_id_of(req, &id, err, errlen);
	const char *p[3] = {id, req->caller.user_id, title};

	if (e != MK_OK)
		return e;
	if (clean_title(mk_json_str(req->body, "title"), l->cfg->title_max, title, sizeof(title),
	                err, errlen) != 0)
		return MK_E_VALIDATION;
	return one_chat(
	    l, req,
	    "UPDATE chats SET title = $3, updated_at = now() WHERE id = $1 AND owner_id = $2 "
	    "RETURNING " CHAT_COLS,
	    3, p, reply, err, errlen);
}

mk_err llm_chat_delete(LLM_HANDLER_ARGS)
{
	const char *id;
	mk_err e = chat_id_of(req, &id, err, errlen);
	const char *p[2] = {id, req->caller.user_id};

	cJSON *body;
	mk_rpc_result res;

	(void)reply;
	if (e != MK_OK)
		return e;
	e = one_chat(l, req, "SELECT " CHAT_COLS " FROM chats WHERE id = $1 AND owner_id = $2", 2,
	             p, NULL, err, errlen);
	if (e != MK_OK)
		return e;
	/*
	 * What belongs to the chat goes first: its sandbox, its file copies and
	 * its artifacts (the executor keeps its execution records for
	 * EXECUTOR_EXECUTION_RETENTION). A chat that never ran code has none.
	 * If they cannot go now, nothing is deleted, so nothing is left behind.
	 */
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "chat_id", id);
	mk_rpc_call(l->executor, MK_OP_EXEC_DESTROY, req->rid, &req->caller, body, 30000, &res);
	cJSON_Delete(body);
	e = res.err;
	mk_rpc_result_release(&res);
	if (e != MK_OK && e != MK_E_NOT_FOUND) {
		mk_errf(err, errlen,
		        "the chat's files and sandbox cannot be deleted just now (%s); nothing was "
		        "deleted, try again",
		        mk_err_code(e));
		return MK_E_UNAVAILABLE;
	}
	/* Messages go with the chat (ON DELETE CASCADE). */
	return one_chat(l, req,
	                "DELETE FROM chats WHERE id = $1 AND owner_id = $2 RETURNING " CHAT_COLS, 2,
	                p, NULL, err, errlen);
}

/* ------------------------------------------------------------------ messages */

static void add_json_col(cJSON *o, const char *name, const PGresult *r, int row, int col)
{
	cJSON *v =
	    PQgetisnull(r, row, col)
	        ? NULL
	        : cJSON_ParseWithLength(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));

	cJSON_AddItemToObject(o, name, v ? v : cJSON_CreateNull());
}

static cJSON *message_json(const PGresult *r, int row)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddStringToObject(o, "id", PQgetvalue(r, row, 0));
	cJSON_AddStringToObject(o, "chat_id", PQgetvalue(r, row, 1));
	cJSON_AddStringToObject(o, "role", PQgetvalue(r, row, 2));
	add_json_col(o, "content", r, row, 3);
	add_json_col(o, "attachments", r, row, 4);
	add_json_col(o, "steps", r, row, 5);
	add_json_col(o, "usage", r, row, 6);
	add_json_col(o, "error", r, row, 7);
	add_json_col(o, "feedback", r, row, 8);
	cJSON_AddStringToObject(o, "created_at", PQgetvalue(r, row, 9));
	return o;
}

mk_err llm_chat_messages(LLM_HANDLER_ARGS)
{
	const char *cur = mk_json_str(req->body, "cursor");
	char after[32] = "0", lim[24], next[96];
	const char *id;
	mk_err e = chat_id_of(req, &id, err, errlen);
	const char *p[4] = {id, req->caller.user_id, after, lim};
	long long limit = page_limit(l, req);
	cJSON *items;
	PGresult *r;
	PGconn *c;
	int i, n;

	if (e != MK_OK)
		return e;
	if (cur && *cur &&
	    (cursor_decode(cur, after, sizeof(after)) != 0 || !*after ||
	     strspn(after, "0123456789") != strlen(after) || strlen(after) > 18)) {
		snprintf(err, errlen, "invalid cursor");
		return MK_E_VALIDATION;
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	if (!(c = conn(l, req, err, errlen)))
		return MK_E_DB;
	/* The owner check and the page in one statement: no rows and no chat
	 * row means not found; a chat with no messages gives one NULL row. */
	r = mk_db_exec_prep(
	    c,
	    "SELECT " MSG_COLS " FROM chats c LEFT JOIN LATERAL (SELECT * FROM messages "
	    "WHERE chat_id = c.id AND seq > $3::bigint ORDER BY seq LIMIT $4::int) m ON true "
	    "WHERE c.id = $1 AND c.owner_id = $2 ORDER BY m.seq",
	    4, p, err, errlen, NULL);
	mk_db_release(l->svc.db, c);
	if (!r)
		return MK_E_DB;
	n = PQntuples(r);
	if (n == 0) {
		PQclear(r);
		snprintf(err, errlen, "chat not found");
		return MK_E_NOT_FOUND;
	}
	if (PQgetisnull(r, 0, 0))
		n = 0;
	*reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(*reply, "items");
	for (i = 0; i < n && i < limit; i++)
		cJSON_AddItemToArray(items, message_json(r, i));
	if (n > limit) {
		cursor_encode(PQgetvalue(r, (int)limit - 1, 10), next, sizeof(next));
		cJSON_AddStringToObject(*reply, "next_cursor", next);
	} else {
		cJSON_AddNullToObject(*reply, "next_cursor");
	}
	PQclear(r);
	return MK_OK;
}

int llm_message_add(PGconn *c, const char *chat_id, const char *role, const char *content,
                    const char *attachments, const char *steps, const char *usage,
                    const char *error, int tokens, char id_out[37], char *err, size_t errlen)
{
	char tok[16];
	const char *p[8] = {
	    chat_id, role, content ? content : "[]", attachments ? attachments : "[]", steps, usage,
	    error,   tok};
	PGresult *r;

	snprintf(tok, sizeof(tok), "%d", tokens);
	r = mk_db_exec_prep(
	    c,
	    "WITH m AS (INSERT INTO messages (chat_id, role, content, attachments, steps, "
	    "usage, error, tokens) VALUES ($1, $2, $3::jsonb, $4::jsonb, $5::jsonb, "
	    "$6::jsonb, $7::jsonb, $8::int) RETURNING id, chat_id) "
	    "UPDATE chats SET updated_at = now() FROM m WHERE chats.id = m.chat_id "
	    "RETURNING m.id",
	    8, p, err, errlen, NULL);
	if (!r)
		return -1;
	if (PQntuples(r) != 1) {
		PQclear(r);
		snprintf(err, errlen, "chat not found");
		return -1;
	}
	snprintf(id_out, 37, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

cJSON *llm_history(PGconn *c, const char *chat_id, long budget, char *err, size_t errlen)
{
	char b[24];
	const char *p[2] = {chat_id, b};
	cJSON *out;
	PGresult *r;
	int i;

	snprintf(b, sizeof(b), "%ld", budget);
	/* Newest first, keep while the running total fits (the newest always
	 * does), then give them oldest first. */
	r = mk_db_exec_prep(
	    c,
	    "SELECT id, role, content, steps, tokens FROM (SELECT *, sum(tokens) OVER "
	    "(ORDER BY seq DESC) AS running, row_number() OVER (ORDER BY seq DESC) AS rn "
	    "FROM messages WHERE chat_id = $1) h WHERE running <= $2::bigint OR rn = 1 "
	    "ORDER BY seq",
	    2, p, err, errlen, NULL);
	if (!r)
		return NULL;
	out = cJSON_CreateArray();
	for (i = 0; i < PQntuples(r); i++) {
		cJSON *m = cJSON_CreateObject();

		cJSON_AddStringToObject(m, "id", PQgetvalue(r, i, 0));
		cJSON_AddStringToObject(m, "role", PQgetvalue(r, i, 1));
		add_json_col(m, "content", r, i, 2);
		add_json_col(m, "steps", r, i, 3);
		cJSON_AddNumberToObject(m, "tokens", atof(PQgetvalue(r, i, 4)));
		cJSON_AddItemToArray(out, m);
	}
	PQclear(r);
	return out;
}
