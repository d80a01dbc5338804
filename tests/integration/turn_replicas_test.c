/*
 * turn_replicas_test.c - a streamed chat turn and the llm replicas: its
 * events can be read from a replica other than the one running it; when
 * the running replica is killed mid-turn, the turn ends with a clear story
 * (error turn_lost) and the question stays saved; and a client resumes a
 * stream through the gateway with Last-Event-ID.
 *
 * The stack's llm is replica A (the gateway's); a second mark-llm on the
 * same database is replica B, called directly over NNG.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define WAIT_MS 120000 /* a turn, a lost replica's detection, on a loaded machine */

static mt_stack st;
static mt_double dbl;
static mt_proc replica_b;
static mk_rpc_client *to_a, *to_b;
static char tok[2048];
static mk_caller me;

static mk_rpc_client *client_for(int port)
{
	char url[64], err[256];
	mk_rpc_client *c;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	c = mk_rpc_client_new(url, 16 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

static void up(void)
{
	static char base[160], b_listen[64], b_db[600], b_exec[64], b_meta[64];
	const char *env[] = {base,
	                     "LLM_MODEL=mark-test-model",
	                     "LLM_API_KEY=test-key",
	                     "LLM_TURN_LOST_AFTER=10s",
	                     "EXECUTOR_POOL_SIZE=0",
	                     NULL};
	const char *benv[] = {b_listen,
	                      b_db,
	                      b_exec,
	                      b_meta,
	                      base,
	                      "LLM_MODEL=mark-test-model",
	                      "LLM_API_KEY=test-key",
	                      "LLM_TURN_LOST_AFTER=10s",
	                      NULL};
	char err[512], id[64];
	int port = mt_free_port();
	int64_t until;

	if (mt_double_start(&dbl, "replicas-double", "test-key", err, sizeof(err)) != 0) {
		fprintf(stderr, "the LLM double did not start: %s\n", err);
		exit(1);
	}
	snprintf(base, sizeof(base), "LLM_BASE_URL=%s/v1", dbl.base);
	ck_assert_msg(mt_stack_start(&st, env) == 0, "the stack did not start");
	ck_assert_int_eq(mt_user(&st, "replicas", tok, sizeof(tok), id, sizeof(id)), 0);
	snprintf(me.user_id, sizeof(me.user_id), "%s", id);
	snprintf(me.role, sizeof(me.role), "user");
	snprintf(b_listen, sizeof(b_listen), "LLM_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(b_db, sizeof(b_db), "LLM_DATABASE_URL=%s", mt_dsn());
	snprintf(b_exec, sizeof(b_exec), "LLM_EXECUTOR_URL=tcp://127.0.0.1:%d",
	         st.port[MT_EXECUTOR]);
	snprintf(b_meta, sizeof(b_meta), "LLM_METADATA_URL=tcp://127.0.0.1:%d",
	         st.port[MT_METADATA]);
	ck_assert_int_eq(mt_proc_start(&replica_b, "llm-replica-b", "mark-llm", benv), 0);
	to_a = client_for(st.port[MT_LLM]);
	to_b = client_for(port);
	for (until = mk_mono_ms() + WAIT_MS;; mk_sleep_ms(50)) {
		mk_rpc_result res;
		mk_err e = mk_rpc_call(to_b, MK_OP_SYS_PING, "ping", NULL, NULL, 5000, &res);

		mk_rpc_result_release(&res);
		if (e == MK_OK)
			break;
		ck_assert_msg(mt_proc_alive(&replica_b) && mk_mono_ms() < until,
		              "replica B did not answer");
	}
}

static void down(void)
{
	mk_rpc_client_free(to_a);
	mk_rpc_client_free(to_b);
	ck_assert_int_eq(mt_proc_stop(&replica_b, SIGTERM, WAIT_MS), 0);
	ck_assert_int_eq(mt_stack_stop(&st), 0);
	ck_assert_int_eq(mt_double_stop(&dbl), 0);
}

static void scenario(const char *json)
{
	char err[512];

	ck_assert_msg(mt_double_scenario(&dbl, json, err, sizeof(err)) == 0, "%s", err);
}

/* Start a streamed turn on c; its id into turn_id, its chat into chat_id. */
static void start_turn(mk_rpc_client *c, const char *question, char *turn_id, char *chat_id)
{
	cJSON *b = cJSON_CreateObject();
	mk_rpc_result res;

	cJSON_AddStringToObject(b, "message", question);
	cJSON_AddBoolToObject(b, "stream", 1);
	ck_assert_int_eq(mk_rpc_call(c, MK_OP_CHAT_TURN, "replicas", &me, b, WAIT_MS, &res), MK_OK);
	snprintf(turn_id, 37, "%s", mk_json_str(res.body, "turn_id"));
	snprintf(chat_id, 37, "%s", mk_json_str(res.body, "chat_id"));
	mk_rpc_result_release(&res);
	cJSON_Delete(b);
}

/* Poll c for the turn's events until done (or until one named stop_at has come): all of them. */
static cJSON *read_events(mk_rpc_client *c, const char *turn_id, const char *stop_at)
{
	cJSON *all = cJSON_CreateArray();
	long long after = 0;
	int64_t until = mk_mono_ms() + WAIT_MS;

	for (;;) {
		cJSON *b = cJSON_CreateObject();
		const cJSON *e;
		mk_rpc_result res;
		int done, stop = 0;

		cJSON_AddStringToObject(b, "turn_id", turn_id);
		cJSON_AddNumberToObject(b, "after", (double)after);
		cJSON_AddNumberToObject(b, "wait_ms", 5000);
		ck_assert_int_eq(
		    mk_rpc_call(c, MK_OP_CHAT_TURN_EVENTS, "replicas", &me, b, 30000, &res), MK_OK);
		cJSON_Delete(b);
		cJSON_ArrayForEach(e, cJSON_GetObjectItem(res.body, "events"))
		{
			mk_json_int(e, "seq", &after);
			stop |= stop_at && strcmp(mk_json_str(e, "event"), stop_at) == 0;
			cJSON_AddItemToArray(all, cJSON_Duplicate(e, 1));
		}
		done = cJSON_IsTrue(cJSON_GetObjectItem(res.body, "done"));
		mk_rpc_result_release(&res);
		if (done || stop)
			return all;
		ck_assert_msg(mk_mono_ms() < until, "the turn's events did not end");
	}
}

static const cJSON *last_event(const cJSON *events)
{
	return cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1);
}

START_TEST(test_a_turns_events_are_read_from_a_replica_that_does_not_run_it)
{
	char turn_id[37], chat_id[37];
	cJSON *events;
	const cJSON *fin;

	up();
	scenario("{\"steps\":[{\"openai_text\":\"Hello from replica A.\"}]}");
	start_turn(to_a, "Who answers?", turn_id, chat_id);
	events = read_events(to_b, turn_id, NULL);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(events, 0), "event"), "turn_started");
	fin = last_event(events);
	ck_assert_str_eq(mk_json_str(fin, "event"), "final");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(fin, "data"), "answer_story"),
	                 "Hello from replica A.");
	/* Numbered 1..n with no gap, as on the replica that ran it. */
	for (int i = 0; i < cJSON_GetArraySize(events); i++) {
		long long seq = 0;

		mk_json_int(cJSON_GetArrayItem(events, i), "seq", &seq);
		ck_assert_int_eq(seq, i + 1);
	}
	cJSON_Delete(events);
	/* A turn on B too: either replica's ping counts the turns of both, from the shared table.
	 */
	start_turn(to_b, "And who now?", turn_id, chat_id);
	cJSON_Delete(read_events(to_a, turn_id, NULL));
	{
		mk_rpc_result res;
		const cJSON *t, *by;
		long long total = 0;

		ck_assert_int_eq(
		    mk_rpc_call(to_a, MK_OP_SYS_PING, "replicas", NULL, NULL, 30000, &res), MK_OK);
		t = cJSON_GetObjectItemCaseSensitive(res.body, "turns_last_hour");
		by = cJSON_GetObjectItemCaseSensitive(t, "by_replica");
		mk_json_int(t, "total", &total);
		ck_assert_int_ge(cJSON_GetArraySize(by), 2);
		ck_assert_int_ge(total, 2);
		mk_rpc_result_release(&res);
	}
	/* Someone else's turn id: not found, as one that does not exist. */
	{
		mk_caller other = me;
		cJSON *b = cJSON_CreateObject();
		mk_rpc_result res;

		snprintf(other.user_id, sizeof(other.user_id),
		         "00000000-0000-4000-8000-0000000000ff");
		cJSON_AddStringToObject(b, "turn_id", turn_id);
		ck_assert_int_eq(
		    mk_rpc_call(to_b, MK_OP_CHAT_TURN_EVENTS, "replicas", &other, b, 30000, &res),
		    MK_E_NOT_FOUND);
		mk_rpc_result_release(&res);
		cJSON_Delete(b);
	}
	down();
}
END_TEST

START_TEST(test_a_replica_killed_mid_turn_ends_it_with_a_clear_story_and_the_question_stays)
{
	char turn_id[37], chat_id[37];
	cJSON *events, *b;
	const cJSON *fin, *msgs, *last;
	mk_rpc_result res;
	int n;

	up();
	/* The model answers only after a minute: the turn is under way when A dies. */
	scenario("{\"steps\":[{\"first_byte_delay_ms\":60000,\"openai_text\":\"Too late.\"}]}");
	start_turn(to_a, "What were sales in March?", turn_id, chat_id);
	cJSON_Delete(read_events(to_b, turn_id, "turn_started"));
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_LLM], SIGKILL, WAIT_MS), 128 + SIGKILL);

	events = read_events(to_b, turn_id, NULL);
	fin = last_event(events);
	ck_assert_str_eq(mk_json_str(fin, "event"), "final");
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetObjectItem(cJSON_GetObjectItem(fin, "data"), "error"), "code"),
	    "turn_lost");
	ck_assert_ptr_nonnull(strstr(mk_json_str(cJSON_GetObjectItem(fin, "data"), "answer_story"),
	                             "question is saved"));
	cJSON_Delete(events);

	/* The chat holds the question and the story. */
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "chat_id", chat_id);
	ck_assert_int_eq(mk_rpc_call(to_b, MK_OP_CHAT_MESSAGES, "replicas", &me, b, 30000, &res),
	                 MK_OK);
	cJSON_Delete(b);
	msgs = cJSON_GetObjectItem(res.body, "items");
	n = cJSON_GetArraySize(msgs);
	ck_assert_int_ge(n, 2);
	{
		char *all = cJSON_PrintUnformatted(msgs);

		ck_assert_msg(strstr(all, "What were sales in March?"), "%s", all);
		free(all);
	}
	last = cJSON_GetArrayItem(msgs, n - 1);
	ck_assert_str_eq(mk_json_str(last, "role"), "assistant");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(last, "error"), "code"), "turn_lost");
	mk_rpc_result_release(&res);

	/* A restarted A serves again. */
	ck_assert_int_eq(mt_stack_start_one(&st, MT_LLM, NULL), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, WAIT_MS), 0);
	down();
}
END_TEST

/* The SSE events of body: count, and the first event's data in first (caller frees). */
static int sse_events(const char *body, cJSON **first)
{
	const char *p = body;
	int n = 0;

	*first = NULL;
	while ((p = strstr(p, "event: ")) != NULL) {
		const char *data = strstr(p, "data: ");

		if (n == 0 && data)
			*first = cJSON_ParseWithLength(data + 6, strcspn(data + 6, "\n"));
		n++;
		p += 7;
	}
	return n;
}

START_TEST(test_a_client_resumes_a_stream_with_last_event_id)
{
	char auth[2100], url[512], last_id[64];
	const char *h[] = {auth, "Content-Type: application/json", "Accept: text/event-stream",
	                   NULL};
	const char *hr[] = {auth, last_id, NULL};
	cJSON *first;
	const char *turn_id;
	mt_resp r, again;
	int n, m;

	up();
	scenario("{\"steps\":[{\"openai_text\":\"A story worth resuming.\"}]}");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	snprintf(url, sizeof(url), "%s/api/v1/chat", st.base);
	ck_assert_int_eq(mt_http("POST", url, h, "{\"message\":\"Tell me\"}", 21, &r), 0);
	ck_assert_int_eq(r.status, 200);
	n = sse_events(r.body, &first);
	ck_assert_int_ge(n, 3);
	turn_id = mk_json_str(first, "turn_id");
	ck_assert_ptr_nonnull(turn_id);
	/* After event 1: every event but the first, ending with the same final. */
	snprintf(last_id, sizeof(last_id), "Last-Event-ID: 1");
	snprintf(url, sizeof(url), "%s/api/v1/chat/turns/%s/events", st.base, turn_id);
	ck_assert_int_eq(mt_http("GET", url, hr, NULL, 0, &again), 0);
	ck_assert_int_eq(again.status, 200);
	{
		cJSON *f2;

		m = sse_events(again.body, &f2);
		cJSON_Delete(f2);
	}
	ck_assert_int_eq(m, n - 1);
	ck_assert_ptr_nonnull(strstr(again.body, "id: 2\n"));
	ck_assert_ptr_null(strstr(again.body, "id: 1\n"));
	ck_assert_ptr_nonnull(strstr(again.body, "event: final"));
	ck_assert_ptr_nonnull(strstr(again.body, "A story worth resuming."));
	mt_resp_release(&again);
	/* A bad Last-Event-ID, and a turn that is not there. */
	snprintf(last_id, sizeof(last_id), "Last-Event-ID: soon");
	ck_assert_int_eq(mt_http("GET", url, hr, NULL, 0, &again), 0);
	ck_assert_int_eq(again.status, 422);
	mt_resp_release(&again);
	snprintf(url, sizeof(url), "%s/api/v1/chat/turns/%s/events", st.base,
	         "00000000-0000-4000-8000-000000000000");
	snprintf(last_id, sizeof(last_id), "Last-Event-ID: 0");
	ck_assert_int_eq(mt_http("GET", url, hr, NULL, 0, &again), 0);
	ck_assert_int_eq(again.status, 404);
	mt_resp_release(&again);
	cJSON_Delete(first);
	mt_resp_release(&r);
	down();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("turn_replicas");
	TCase *tc = tcase_create("replicas");

	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_a_turns_events_are_read_from_a_replica_that_does_not_run_it);
	tcase_add_test(
	    tc, test_a_replica_killed_mid_turn_ends_it_with_a_clear_story_and_the_question_stays);
	tcase_add_test(tc, test_a_client_resumes_a_stream_with_last_event_id);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
