/*
 * gateway_turn.c - POST /api/v1/chat: one chat turn. A plain request waits
 * for the turn and answers its MarkResponse. With `Accept:
 * text/event-stream` the turn runs in llm on its own and the gateway relays
 * its events as Server-Sent Events while they happen (long-polling
 * chat.turn_events), ending with `final`. A client that goes away stops
 * only the relay: the turn completes and is saved.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "mk_buf.h"
#include "mk_json.h"

/* How long one events poll may wait in llm. */
#define EVENTS_WAIT_MS 15000

/* One SSE event in one chunk; -1 when the client is gone. */
static int send_event(gw_req *r, long long seq, const char *name, const cJSON *data)
{
	char *json = data ? mk_json_print(data) : NULL;
	mk_buf b;
	int rc;

	mk_buf_init(&b, 0);
	if (seq > 0)
		mk_buf_printf(&b, "id: %lld\n", seq);
	mk_buf_printf(&b, "event: %s\ndata: %s\n\n", name, json ? json : "{}");
	free(json);
	rc = b.data ? mg_send_chunk(r->conn, b.data, (unsigned)b.len) : -1;
	mk_buf_release(&b);
	return rc < 0 ? -1 : 0;
}

static void relay(gw_req *r, const char *turn_id)
{
	long long after = 0;

	for (;;) {
		cJSON *body = cJSON_CreateObject();
		mk_rpc_result res;
		const cJSON *e;
		int done;

		cJSON_AddStringToObject(body, "turn_id", turn_id);
		cJSON_AddNumberToObject(body, "after", (double)after);
		cJSON_AddNumberToObject(body, "wait_ms", EVENTS_WAIT_MS);
		mk_rpc_call(r->gw->svc[GW_LLM], MK_OP_CHAT_TURN_EVENTS, r->rid, &r->caller, body,
		            EVENTS_WAIT_MS + 5000, &res);
		cJSON_Delete(body);
		if (res.err != MK_OK) {
			cJSON *d = cJSON_CreateObject();

			cJSON_AddStringToObject(d, "code", mk_err_code(res.err));
			cJSON_AddStringToObject(d, "message", res.msg);
			send_event(r, 0, "error", d);
			cJSON_Delete(d);
			mk_rpc_result_release(&res);
			return;
		}
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(res.body, "events"))
		{
			long long seq = 0;

			mk_json_int(e, "seq", &seq);
			if (send_event(r, seq, mk_json_str(e, "event"),
			               cJSON_GetObjectItemCaseSensitive(e, "data")) != 0) {
				mk_rpc_result_release(&res);
				return; /* the client left; the turn goes on in llm */
			}
			after = seq;
		}
		done = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.body, "done"));
		if (!done &&
		    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(res.body, "events")) == 0 &&
		    mg_send_chunk(r->conn, ": keep-alive\n\n", 14) < 0) {
			mk_rpc_result_release(&res);
			return;
		}
		mk_rpc_result_release(&res);
		if (done)
			return;
	}
}

void gw_chat_turn(gw_req *r)
{
	const char *accept = mg_get_header(r->conn, "Accept");
	int sse = accept && strstr(accept, "text/event-stream") != NULL;
	cJSON *body = cJSON_Duplicate(r->json, 1);
	mk_rpc_result res;

	/* Streaming is the transport's choice, not a field clients set. */
	cJSON_DeleteItemFromObjectCaseSensitive(body, "stream");
	if (!sse) {
		mk_rpc_call_raw(r->gw->svc[GW_LLM], MK_OP_CHAT_TURN, r->rid, &r->caller, body,
		                (int)r->gw->cfg->turn_timeout_ms, &res);
		if (res.err == MK_OK)
			gw_reply_bytes(r, 200, "application/json", res.raw_body, res.raw_len, NULL,
			               NULL);
		else
			gw_reply_rpc_error(r, &res);
		mk_rpc_result_release(&res);
		cJSON_Delete(body);
		return;
	}
	cJSON_AddBoolToObject(body, "stream", 1);
	mk_rpc_call(r->gw->svc[GW_LLM], MK_OP_CHAT_TURN, r->rid, &r->caller, body,
	            (int)r->gw->cfg->rpc_timeout_ms, &res);
	cJSON_Delete(body);
	if (res.err != MK_OK) {
		gw_reply_rpc_error(r, &res);
		mk_rpc_result_release(&res);
		return;
	}
	mg_response_header_start(r->conn, 200);
	mg_response_header_add(r->conn, "Content-Type", "text/event-stream; charset=utf-8", -1);
	mg_response_header_add(r->conn, "Cache-Control", "no-cache", -1);
	mg_response_header_add(r->conn, "X-Accel-Buffering", "no", -1);
	mg_response_header_add(r->conn, "X-Request-Id", r->rid, -1);
	mg_response_header_add(r->conn, "Transfer-Encoding", "chunked", -1);
	mg_response_header_send(r->conn);
	r->status = 200;
	relay(r, mk_json_str(res.body, "turn_id"));
	mg_send_chunk(r->conn, "", 0);
	mk_rpc_result_release(&res);
}
