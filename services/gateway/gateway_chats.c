/*
 * gateway_chats.c - the /api/v1/chats routes: chat lifecycle and history,
 * forwarded to llm with the verified caller. Path ids and query values are
 * put into the op's body here; the body's own fields are checked by llm's
 * dispatcher against proto/fields.def.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "mk_json.h"

/*
 * Copy the page query (?limit=&cursor=) into body. Answers 422 and returns
 * -1 when limit is not a whole number in 1..100 or the cursor is too long.
 */
int gw_page_query(gw_req *r, cJSON *body)
{
	const char *q = r->ri->query_string;
	char v[256], *end;
	long n;
	int rc;

	if (!q)
		return 0;
	rc = mg_get_var(q, strlen(q), "limit", v, sizeof(v));
	if (rc >= 0) {
		n = strtol(v, &end, 10);
		if (rc == 0 || *end || strlen(v) != (size_t)rc || n < 1 || n > 100) {
			gw_reply_error(r, MK_E_VALIDATION,
			               "limit must be a whole number from 1 to 100");
			return -1;
		}
		cJSON_AddNumberToObject(body, "limit", (double)n);
	} else if (rc == -2) {
		gw_reply_error(r, MK_E_VALIDATION, "limit must be a whole number from 1 to 100");
		return -1;
	}
	rc = mg_get_var(q, strlen(q), "cursor", v, sizeof(v));
	/* -2: too long; a decoded %00 would silently cut the value short. */
	if (rc == -2 || (rc > 0 && strlen(v) != (size_t)rc)) {
		gw_reply_error(r, MK_E_VALIDATION, "invalid cursor");
		return -1;
	}
	if (rc > 0)
		cJSON_AddStringToObject(body, "cursor", v);
	return 0;
}

/* A body holding the {id} of the path as chat_id, plus the request's own fields. */
static cJSON *with_chat_id(gw_req *r)
{
	cJSON *b = r->json ? cJSON_Duplicate(r->json, 1) : cJSON_CreateObject();

	cJSON_DeleteItemFromObjectCaseSensitive(b, "chat_id");
	cJSON_AddStringToObject(b, "chat_id", r->params[0]);
	return b;
}

void gw_chats_create(gw_req *r)
{
	gw_forward(r, GW_LLM, MK_OP_CHAT_CREATE, r->json, 201);
}

void gw_chats_list(gw_req *r)
{
	cJSON *b = cJSON_CreateObject();

	if (gw_page_query(r, b) == 0)
		gw_forward(r, GW_LLM, MK_OP_CHAT_LIST, b, 200);
	cJSON_Delete(b);
}

void gw_chats_get(gw_req *r)
{
	cJSON *b = with_chat_id(r);

	gw_forward(r, GW_LLM, MK_OP_CHAT_GET, b, 200);
	cJSON_Delete(b);
}

void gw_chats_update(gw_req *r)
{
	cJSON *b = with_chat_id(r);

	gw_forward(r, GW_LLM, MK_OP_CHAT_UPDATE, b, 200);
	cJSON_Delete(b);
}

void gw_chats_delete(gw_req *r)
{
	cJSON *b = with_chat_id(r);

	gw_forward(r, GW_LLM, MK_OP_CHAT_DELETE, b, 204);
	cJSON_Delete(b);
}

void gw_chats_messages(gw_req *r)
{
	cJSON *b = with_chat_id(r);

	if (gw_page_query(r, b) == 0)
		gw_forward(r, GW_LLM, MK_OP_CHAT_MESSAGES, b, 200);
	cJSON_Delete(b);
}
