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
#include "mk_time.h"

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

static void relay(gw_req *r, const char *turn_id, long long after)
{
	/* How long polls may fail for want of an llm replica before the client is told. */
	int64_t retry_until = mk_mono_ms() + 60000;

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
		/* The replica polled went away: another one (or its restart) serves the events. */
		if ((res.err == MK_E_UNAVAILABLE || res.err == MK_E_WORKER_LOST) &&
		    mk_mono_ms() < retry_until) {
			mk_rpc_result_release(&res);
			if (mg_send_chunk(r->conn, ": keep-alive\n\n", 14) < 0)
				return;
			mk_sleep_ms(500);
			continue;
		}
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

static void stream(gw_req *r, const char *turn_id, long long after);

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
	stream(r, mk_json_str(res.body, "turn_id"), 0);
	mk_rpc_result_release(&res);
}

/*
 * GET /api/v1/chat/turns/{id}/events: a streamed turn's events again, from
 * any llm replica, after the event named by Last-Event-ID (or ?after=N;
 * none: from the start), ending with `final`. A client whose stream broke
 * resumes it here.
 */
void gw_chat_turn_events(gw_req *r)
{
	const char *last = mg_get_header(r->conn, "Last-Event-ID");
	char q[32] = "";
	long long after = 0;
	const char *v = last;

	if (!v && r->ri->query_string &&
	    mg_get_var(r->ri->query_string, strlen(r->ri->query_string), "after", q, sizeof(q)) > 0)
		v = q;
	if (v && *v) {
		char *end;

		after = strtoll(v, &end, 10);
		if (*end || after < 0 || after > 1000000) {
			gw_reply_error(r, MK_E_VALIDATION,
			               "Last-Event-ID (or after) must be the number of an event");
			return;
		}
	}
	/* A turn that is not the caller's, or none: the first poll says so, before any stream. */
	{
		cJSON *body = cJSON_CreateObject();
		mk_rpc_result res;

		cJSON_AddStringToObject(body, "turn_id", r->params[0]);
		cJSON_AddNumberToObject(body, "after", (double)after);
		cJSON_AddNumberToObject(body, "wait_ms", 0);
		mk_rpc_call(r->gw->svc[GW_LLM], MK_OP_CHAT_TURN_EVENTS, r->rid, &r->caller, body,
		            (int)r->gw->cfg->rpc_timeout_ms, &res);
		cJSON_Delete(body);
		if (res.err != MK_OK) {
			gw_reply_rpc_error(r, &res);
			mk_rpc_result_release(&res);
			return;
		}
		mk_rpc_result_release(&res);
	}
	stream(r, r->params[0], after);
}

static void stream(gw_req *r, const char *turn_id, long long after)
{
	mg_response_header_start(r->conn, 200);
	mg_response_header_add(r->conn, "Content-Type", "text/event-stream; charset=utf-8", -1);
	mg_response_header_add(r->conn, "Cache-Control", "no-cache", -1);
	mg_response_header_add(r->conn, "X-Accel-Buffering", "no", -1);
	mg_response_header_add(r->conn, "X-Request-Id", r->rid, -1);
	mg_response_header_add(r->conn, "Transfer-Encoding", "chunked", -1);
	mg_response_header_send(r->conn);
	r->status = 200;
	relay(r, turn_id, after);
	mg_send_chunk(r->conn, "", 0);
}
