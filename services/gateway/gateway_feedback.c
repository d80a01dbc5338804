/*
 * gateway_feedback.c - POST /api/v1/messages/{id}/feedback: a user's
 * rating of one of Mark's answers, forwarded to llm (chat.feedback) with
 * the verified caller. The body's fields are checked by llm's dispatcher
 * against proto/fields.def; llm checks the rating and the message's owner.
 */
#include "gateway.h"

void gw_messages_feedback(gw_req *r)
{
	cJSON *b = cJSON_Duplicate(r->json, 1);

	if (!b) {
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		return;
	}
	/* The path names the message; a message_id in the body cannot override it. */
	cJSON_DeleteItemFromObjectCaseSensitive(b, "message_id");
	cJSON_AddStringToObject(b, "message_id", r->params[0]);
	gw_forward(r, GW_LLM, MK_OP_CHAT_FEEDBACK, b, 200);
	cJSON_Delete(b);
}
