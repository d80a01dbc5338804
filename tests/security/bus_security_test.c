/*
 * bus_security_test.c - the internal bus under attack: a process that can
 * reach the services' NNG ports but does not hold the deployment's bus key
 * tries to call an operation with a forged caller, to register as an
 * executor worker and receive users' code, and to hand a worker code to
 * run in the router's place. Each attempt gets a refusal and nothing else;
 * the same message sealed with the key succeeds, so each test can fail;
 * and the stack keeps serving its users.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

#define WAIT_MS 60000 /* a reply over loopback, on a loaded machine */

static mt_stack st;
static char tok[2048], uid[64];

static void stack_up(void)
{
	static const char *const env[] = {"EXECUTOR_POOL_SIZE=0", NULL};

	ck_assert_msg(mt_stack_start(&st, env) == 0, "the stack did not start");
	ck_assert_int_eq(mt_user(&st, "bus", tok, sizeof(tok), uid, sizeof(uid)), 0);
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* Send data as is on a new req0 socket dialled to port; the answer (caller frees). */
static char *raw_call(int port, const void *data, size_t len, size_t *outlen)
{
	char url[64], *buf = NULL;
	nng_socket sock;
	size_t n = 0;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	ck_assert_int_eq(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, WAIT_MS);
	ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
	ck_assert_int_eq(nng_send(sock, (void *)data, len, 0), 0);
	ck_assert_int_eq(nng_recv(sock, &buf, &n, NNG_FLAG_ALLOC), 0);
	nng_close(sock);
	*outlen = n;
	return buf;
}

/* A chat.list of the user, from a client sealing with key. */
static mk_err list_chats(const mk_seal_key *key, mk_rpc_result *res)
{
	char url[64], err[256];
	mk_caller who = {0};
	mk_rpc_client *c;
	int64_t until = mk_mono_ms() + WAIT_MS;
	mk_err e;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", st.port[MT_LLM]);
	snprintf(who.user_id, sizeof(who.user_id), "%s", uid);
	snprintf(who.role, sizeof(who.role), "user");
	c = mk_rpc_client_new(url, 1 << 20, key, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	for (;;) {
		e = mk_rpc_call(c, MK_OP_CHAT_LIST, "bus-test", &who, NULL, WAIT_MS, res);
		if (e != MK_E_UNAVAILABLE || mk_mono_ms() >= until)
			break;
		mk_rpc_result_release(res);
	}
	mk_rpc_client_free(c);
	return e;
}

START_TEST(test_a_forged_caller_without_the_bus_key_gets_a_refusal_and_no_data)
{
	char url[512], *req, *ans;
	mk_caller who = {0};
	mk_seal_key other;
	mk_rpc_result res;
	size_t n;
	mt_resp r;

	stack_up();
	snprintf(url, sizeof(url), "%s/api/v1/chats", st.base);
	{
		char auth[2100];
		const char *h[] = {auth, "Content-Type: application/json", NULL};

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		ck_assert_int_eq(mt_http("POST", url, h, "{\"title\":\"secret plans\"}", 24, &r),
		                 0);
		ck_assert_int_eq(r.status, 201);
		mt_resp_release(&r);
	}
	/* Unsealed, with the user's id as the caller: refused. */
	snprintf(who.user_id, sizeof(who.user_id), "%s", uid);
	snprintf(who.role, sizeof(who.role), "admin");
	req = mk_env_encode_request(MK_OP_CHAT_LIST, "forged", mk_now_ms() + WAIT_MS, &who, NULL);
	ans = raw_call(st.port[MT_LLM], req, strlen(req), &n);
	ck_assert_msg(mk_seal_is_refusal(ans, n), "answered: %.*s", (int)n, ans);
	ck_assert_ptr_null(memmem(ans, n, "secret plans", 12));
	nng_free(ans, n);
	free(req);
	/* Sealed with another deployment's key: refused, and the caller is told why. */
	mk_seal_key_from(&other, "not this deployment's key, long enough", 38);
	ck_assert_int_eq(list_chats(&other, &res), MK_E_INTERNAL);
	ck_assert_msg(strstr(res.msg, "bus key differs"), "%s", res.msg);
	ck_assert_ptr_null(res.body);
	mk_rpc_result_release(&res);
	/* Sealed with the key: the same request is served. */
	ck_assert_int_eq(list_chats(mt_bus_key(), &res), MK_OK);
	req = cJSON_PrintUnformatted(res.body);
	ck_assert_msg(strstr(req, "secret plans"), "%s", req);
	free(req);
	mk_rpc_result_release(&res);
	stack_down();
}
END_TEST

static int executor_workers(void)
{
	char url[512];
	cJSON *j;
	mt_resp r;
	long long n = -1;

	snprintf(url, sizeof(url), "%s/readyz", st.base);
	ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
	j = cJSON_Parse(r.body);
	mk_json_int(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "services"), "executor"), "workers",
	            &n);
	cJSON_Delete(j);
	mt_resp_release(&r);
	return (int)n;
}

START_TEST(test_a_process_without_the_bus_key_cannot_register_as_an_executor_worker)
{
	static const char hello[] = "MKW1 H rogue 0 off\n";
	mk_seal_key other;
	nng_msg *m;
	char *ans;
	size_t n;

	stack_up();
	ck_assert_int_eq(executor_workers(), 1);
	ans = raw_call(st.worker_port, hello, strlen(hello), &n);
	ck_assert_msg(mk_seal_is_refusal(ans, n), "answered: %.*s", (int)n, ans);
	nng_free(ans, n);
	/* Sealed with another key: refused too. */
	mk_seal_key_from(&other, "not this deployment's key, long enough", 38);
	ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
	ck_assert_int_eq(nng_msg_append(m, hello, strlen(hello)), 0);
	ck_assert_int_eq(mk_seal_msg(&other, MK_SEAL_WORKER, m), 0);
	ans = raw_call(st.worker_port, nng_msg_body(m), nng_msg_len(m), &n);
	ck_assert_msg(mk_seal_is_refusal(ans, n), "answered: %.*s", (int)n, ans);
	nng_free(ans, n);
	nng_msg_free(m);
	ck_assert_int_eq(executor_workers(), 1);
	/* Sealed with the key, the same hello registers a worker while it stays connected. */
	{
		char url[64];
		nng_socket sock;
		int64_t until = mk_mono_ms() + WAIT_MS;

		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", st.worker_port);
		ck_assert_int_eq(nng_req0_open(&sock), 0);
		ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
		ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
		ck_assert_int_eq(nng_msg_append(m, hello, strlen(hello)), 0);
		ck_assert_int_eq(mk_seal_msg(mt_bus_key(), MK_SEAL_WORKER, m), 0);
		ck_assert_int_eq(nng_sendmsg(sock, m, 0), 0);
		while (executor_workers() != 2 && mk_mono_ms() < until)
			mk_sleep_ms(50);
		ck_assert_int_eq(executor_workers(), 2);
		nng_close(sock);
	}
	stack_down();
}
END_TEST

/* The next message a worker sends to our fake router, opened with the key; NULL on none. */
static nng_msg *worker_message(nng_socket sock)
{
	nng_msg *m;

	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, WAIT_MS);
	if (nng_recvmsg(sock, &m, 0) != 0)
		return NULL;
	ck_assert_msg(mk_seal_open(mt_bus_key(), MK_SEAL_WORKER, m) == 0,
	              "a worker's message is not sealed with the bus key");
	return m;
}

/* Answer the worker's message m with "J id\n" + a sys.ping request, sealed with key or not. */
static void send_job(nng_socket sock, nng_msg *m, unsigned id, const mk_seal_key *key)
{
	char line[32],
	    *req = mk_env_encode_request(MK_OP_SYS_PING, "job", mk_now_ms() + WAIT_MS, NULL, NULL);

	nng_msg_clear(m);
	snprintf(line, sizeof(line), "J %u\n", id);
	ck_assert_int_eq(nng_msg_append(m, line, strlen(line)), 0);
	ck_assert_int_eq(nng_msg_append(m, req, strlen(req)), 0);
	if (key)
		ck_assert_int_eq(mk_seal_msg(key, MK_SEAL_ROUTER, m), 0);
	ck_assert_int_eq(nng_sendmsg(sock, m, 0), 0);
	free(req);
}

START_TEST(test_a_worker_runs_no_work_from_a_router_without_the_bus_key)
{
	char url[64], env_url[96], env_db[1024];
	const char *env[] = {env_url,
	                     env_db,
	                     "EXECUTOR_MODE=worker",
	                     "EXECUTOR_WORKERS=1",
	                     "EXECUTOR_POOL_SIZE=0",
	                     "EXECUTOR_SHUTDOWN_GRACE=5s",
	                     NULL};
	int port = mt_free_port();
	nng_socket sock;
	mt_proc w;
	nng_msg *m;
	int replies = 0, i;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	snprintf(env_url, sizeof(env_url), "EXECUTOR_ROUTER_URL=%s", url);
	snprintf(env_db, sizeof(env_db), "EXECUTOR_DATABASE_URL=%s", mt_dsn());
	ck_assert_int_eq(nng_rep0_open(&sock), 0);
	ck_assert_int_eq(nng_listen(sock, url, NULL, 0), 0);
	ck_assert_int_eq(mt_proc_start(&w, "worker-fake-router", "mark-executor", env), 0);
	/* Unsealed jobs, then one sealed with another key: none is run or answered. */
	for (i = 0; i < 3; i++) {
		mk_seal_key other;

		m = worker_message(sock);
		ck_assert_msg(m != NULL, "the worker sent nothing");
		replies += nng_msg_len(m) > 7 && memcmp(nng_msg_body(m), "MKW1 R ", 7) == 0;
		mk_seal_key_from(&other, "not this deployment's key, long enough", 38);
		send_job(sock, m, 100 + (unsigned)i, i == 2 ? &other : NULL);
	}
	m = worker_message(sock);
	ck_assert_msg(m != NULL, "the worker stopped polling");
	replies += nng_msg_len(m) > 7 && memcmp(nng_msg_body(m), "MKW1 R ", 7) == 0;
	ck_assert_int_eq(replies, 0);
	/* A sealed job is run and answered: its reply is the worker's next message. */
	send_job(sock, m, 7, mt_bus_key());
	m = worker_message(sock);
	ck_assert_msg(m != NULL, "no reply to the sealed job");
	ck_assert_msg(nng_msg_len(m) > 7 && memcmp(nng_msg_body(m), "MKW1 R ", 7) == 0 &&
	                  strstr((char *)nng_msg_body(m), " 7\n{") &&
	                  strstr((char *)nng_msg_body(m), "\"ok\":true"),
	              "%.*s", (int)nng_msg_len(m), (char *)nng_msg_body(m));
	nng_msg_free(m);
	nng_close(sock);
	ck_assert_int_eq(mt_proc_stop(&w, 15, 60000), 0);
}
END_TEST

START_TEST(test_a_service_with_another_bus_key_shows_in_readyz_as_refusing)
{
	char other[600], url[512];
	const char *env[] = {other, NULL};
	FILE *f;
	mt_resp r;

	stack_up();
	snprintf(other, sizeof(other), "METADATA_BUS_KEY_FILE=%s.other", mt_bus_key_file());
	f = fopen(strchr(other, '=') + 1, "w");
	ck_assert_ptr_nonnull(f);
	fputs("another deployment's bus key, 32 bytes or more\n", f);
	fclose(f);
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_METADATA], 15, 60000), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_METADATA, env), 0);
	snprintf(url, sizeof(url), "%s/readyz", st.base);
	/* Until the new process listens, the reason is "no connection"; then the refusal. */
	for (int64_t until = mk_mono_ms() + WAIT_MS;;) {
		ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
		if (strstr(r.body, "bus key differs") || mk_mono_ms() >= until)
			break;
		mt_resp_release(&r);
		mk_sleep_ms(100);
	}
	ck_assert_int_eq(r.status, 503);
	ck_assert_msg(strstr(r.body, "bus key differs") && strstr(r.body, "not ready: metadata"),
	              "%s", r.body);
	mt_resp_release(&r);
	stack_down();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("bus_security");
	TCase *tc = tcase_create("bus");

	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_a_forged_caller_without_the_bus_key_gets_a_refusal_and_no_data);
	tcase_add_test(tc,
	               test_a_process_without_the_bus_key_cannot_register_as_an_executor_worker);
	tcase_add_test(tc, test_a_worker_runs_no_work_from_a_router_without_the_bus_key);
	tcase_add_test(tc, test_a_service_with_another_bus_key_shows_in_readyz_as_refusing);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
