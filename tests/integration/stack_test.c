/*
 * stack_test.c - the suite as a whole: five real processes on loopback
 * against the real Postgres, driven over real HTTP and NNG.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

/*
 * Sized for a loaded host running the sanitizer build: a process starting
 * (and the gateway reconnecting to it), one NNG reply, a process exiting.
 */
#define READY_WAIT_MS 90000
#define REPLY_MS      30000
#define STOP_MS       60000

static mt_stack st;

static void stack_up(void)
{
	if (mt_stack_start(&st, NULL) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

START_TEST(test_readyz_lists_five_ready_services)
{
	const char *names[] = {"gateway", "auth", "llm", "executor", "metadata"};
	const cJSON *svcs;
	mt_resp r;
	size_t i;

	ck_assert_int_eq(mt_http("GET", mt_url(&st, "/readyz"), NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	svcs = cJSON_GetObjectItemCaseSensitive(r.json, "services");
	ck_assert_int_eq(cJSON_GetArraySize(svcs), 5);
	for (i = 0; i < 5; i++) {
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(svcs, names[i]);

		long long replicas = -1;

		ck_assert_msg(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "ready")),
		              "%s not ready", names[i]);
		/* One process of each behind the gateway: one replica connected. */
		if (i > 0) {
			ck_assert_int_eq(mk_json_int(s, "replicas", &replicas), 0);
			ck_assert_int_eq(replicas, 1);
		}
	}
	/* How the work is spread: an array per executor worker, a count of llm turns. */
	ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(svcs, "executor"), "jobs_by_worker")));
	ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(svcs, "llm"), "turns_last_hour")));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_readyz_says_how_sandboxes_are_held)
{
	const char *iso;
	mt_resp r;

	ck_assert_int_eq(mt_http("GET", mt_url(&st, "/readyz"), NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	iso = mk_json_str(cJSON_GetObjectItemCaseSensitive(
	                      cJSON_GetObjectItemCaseSensitive(r.json, "services"), "executor"),
	                  "isolation");
	ck_assert_ptr_nonnull(iso);
	ck_assert_msg(strcmp(iso, "cgroup-v2") == 0 || strcmp(iso, "cgroup-v1") == 0 ||
	                  strcmp(iso, "off") == 0,
	              "isolation '%s'", iso);
	/* Root with a writable cgroup memory hierarchy (these machines): a cgroup each. */
	if (geteuid() == 0 && access("/sys/fs/cgroup/memory/memory.limit_in_bytes", W_OK) == 0)
		ck_assert_msg(strncmp(iso, "cgroup-", 7) == 0, "isolation '%s'", iso);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_healthz_answers_and_creates_a_request_id)
{
	mt_resp r;
	char *rid;

	mt_http("GET", mt_url(&st, "/healthz"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "status"), "ok");
	rid = mt_header(&r, "X-Request-Id");
	ck_assert_ptr_nonnull(rid);
	ck_assert_uint_eq(strlen(rid), 32);
	free(rid);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_given_request_id_is_returned_and_a_bad_one_replaced)
{
	const char *good[] = {"X-Request-Id: trace-42.a:b", NULL};
	const char *bad[] = {"X-Request-Id: has spaces and / slashes", NULL};
	mt_resp r;
	char *rid;

	mt_http("GET", mt_url(&st, "/nope"), good, NULL, 0, &r);
	rid = mt_header(&r, "X-Request-Id");
	ck_assert_str_eq(rid, "trace-42.a:b");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "request_id"),
	                 "trace-42.a:b");
	free(rid);
	mt_resp_release(&r);

	mt_http("GET", mt_url(&st, "/healthz"), bad, NULL, 0, &r);
	rid = mt_header(&r, "X-Request-Id");
	ck_assert_uint_eq(strlen(rid), 32);
	free(rid);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_an_unknown_route_is_404_with_the_json_error_shape)
{
	const cJSON *e;
	mt_resp r;

	mt_http("GET", mt_url(&st, "/api/v1/nothing-here"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 404);
	e = cJSON_GetObjectItemCaseSensitive(r.json, "error");
	ck_assert_str_eq(mk_json_str(e, "code"), "not_found");
	ck_assert_ptr_nonnull(mk_json_str(e, "message"));
	ck_assert_ptr_nonnull(mk_json_str(e, "request_id"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_wrong_method_is_405_naming_the_allowed_ones)
{
	mt_resp r;
	char *allow;

	mt_http("DELETE", mt_url(&st, "/readyz"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 405);
	ck_assert_str_eq(mt_error_code(&r), "method_not_allowed");
	allow = mt_header(&r, "Allow");
	ck_assert_str_eq(allow, "GET");
	free(allow);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_killed_service_makes_readyz_503_naming_it_until_restarted)
{
	const cJSON *llm, *auth;
	mt_resp r;

	ck_assert_int_eq(mt_proc_stop(&st.p[MT_LLM], SIGKILL, STOP_MS), 128 + SIGKILL);
	mt_http("GET", mt_url(&st, "/readyz"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 503);
	ck_assert_str_eq(mt_error_code(&r), "unavailable");
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"), "llm"));
	llm = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "services"), "llm");
	auth = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "services"), "auth");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(llm, "ready")));
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(auth, "ready")));
	mt_resp_release(&r);

	/* Only llm restarts; the gateway reconnects by itself. */
	ck_assert_int_eq(mt_stack_start_one(&st, MT_LLM, NULL), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

/*
 * Send raw bytes to a service's NNG socket; the parsed reply, or NULL when
 * nothing listens there or no reply came.
 */
static cJSON *raw_try(int port, const char *msg)
{
	nng_socket s;
	nng_msg *m = NULL;
	char url[64];
	cJSON *reply = NULL;

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
	ck_assert_int_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, REPLY_MS);
	/* Sealed with the bus key, as every message between the services is. */
	ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
	ck_assert_int_eq(nng_msg_append(m, msg, strlen(msg)), 0);
	ck_assert_int_eq(mk_seal_msg(mt_bus_key(), MK_SEAL_REQUEST, m), 0);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_sendmsg(s, m, 0) == 0) {
		m = NULL;
		if (nng_recvmsg(s, &m, 0) == 0 && mk_seal_open(mt_bus_key(), MK_SEAL_REPLY, m) == 0)
			reply = cJSON_ParseWithLength(nng_msg_body(m), nng_msg_len(m));
	}
	if (m)
		nng_msg_free(m);
	nng_close(s);
	return reply;
}

/* The same, where a reply must come. */
static cJSON *raw_call(int port, const char *msg)
{
	cJSON *reply = raw_try(port, msg);

	ck_assert_msg(reply != NULL, "no JSON reply from port %d to %s", port, msg);
	return reply;
}

static void expect_error(int port, const char *msg, const char *code)
{
	cJSON *r = raw_call(port, msg);
	const cJSON *e = cJSON_GetObjectItem(r, "error");

	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(r, "ok")));
	ck_assert_msg(strcmp(mk_json_str(e, "code"), code) == 0, "sent %s: got %s, want %s", msg,
	              mk_json_str(e, "code"), code);
	cJSON_Delete(r);
}

START_TEST(test_services_reject_malformed_envelopes_and_keep_serving)
{
	char passed[256];
	int i;

	snprintf(passed, sizeof(passed),
	         "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"t1\",\"deadline\":%lld}",
	         (long long)(mk_now_ms() - 1000));
	for (i = MT_AUTH; i <= MT_METADATA; i++) {
		int port = st.port[i];

		expect_error(port, "this is not json", "bad_request");
		expect_error(port, "[1,2,3]", "bad_request");
		expect_error(port, "{\"v\":2,\"op\":\"sys.ping\",\"id\":\"t1\"}",
		             "unknown_version");
		expect_error(port, "{\"v\":1,\"op\":\"chat.tunr\",\"id\":\"t1\"}", "unknown_op");
		expect_error(port, "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"bad id\"}",
		             "bad_request");
		expect_error(port, "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"t1\",\"body\":[]}",
		             "validation_failed");
		expect_error(port, "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"t1\",\"body\":{\"x\":1}}",
		             "validation_failed");
		expect_error(port, passed, "deadline_exceeded");
	}
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

START_TEST(test_check_config_reports_every_problem_at_once)
{
	const char *env[] = {"AUTH_WORKERS=0", "AUTH_MAX_MESSAGE=lots", "AUTH_LOG_LEVEL=loud",
	                     NULL};
	const char *args[] = {"--check-config", NULL};
	char *out = NULL;

	ck_assert_int_eq(mt_run("mark-auth", args, env, &out), 1);
	ck_assert_ptr_nonnull(strstr(out, "AUTH_WORKERS"));
	ck_assert_ptr_nonnull(strstr(out, "AUTH_MAX_MESSAGE"));
	ck_assert_ptr_nonnull(strstr(out, "AUTH_LOG_LEVEL"));
	free(out);

	{
		char key[300];
		const char *ok_env[] = {key, NULL};

		snprintf(key, sizeof(key), "AUTH_JWT_PRIVATE_KEY_FILE=%s", st.key_priv);
		ck_assert_int_eq(mt_run("mark-auth", args, ok_env, &out), 0);
		free(out);
	}
}
END_TEST

START_TEST(test_a_database_password_is_never_logged)
{
	const char *env[] = {
	    "METADATA_DATABASE_URL=postgresql://mark:pw-never-logged@127.0.0.1:1/x",
	    "METADATA_DB_WAIT=0", NULL};
	char *out = NULL;

	ck_assert_int_ne(mt_run("mark-metadata", NULL, env, &out), 0);
	ck_assert_ptr_null(strstr(out, "pw-never-logged"));
	ck_assert_ptr_nonnull(strstr(out, "METADATA_DATABASE_URL=(set)"));
	free(out);
}
END_TEST

START_TEST(test_a_quiet_log_level_still_serves_until_sigterm)
{
	char listen[64], dsn[600];
	const char *env[] = {"LLM_LOG_LEVEL=error", listen, dsn, NULL};
	mt_proc p;
	int port = mt_free_port();
	int64_t until;
	cJSON *reply = NULL;

	snprintf(listen, sizeof(listen), "LLM_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(dsn, sizeof(dsn), "LLM_DATABASE_URL=%s", mt_dsn());
	ck_assert_int_eq(mt_proc_start(&p, "quiet-llm", "mark-llm", env), 0);
	/* Pinged until it listens: how long start-up takes depends on the host. */
	until = mk_mono_ms() + READY_WAIT_MS;
	while (!reply && mt_proc_alive(&p) && mk_mono_ms() < until) {
		reply = raw_try(port, "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"q\"}");
		if (!reply)
			mk_sleep_ms(100);
	}
	ck_assert_msg(reply != NULL, "mark-llm with LLM_LOG_LEVEL=error did not answer a ping");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(reply, "ok")));
	cJSON_Delete(reply);
	ck_assert_int_eq(mt_proc_stop(&p, SIGTERM, STOP_MS), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("stack");
	TCase *tc = tcase_create("stack");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_readyz_lists_five_ready_services);
	tcase_add_test(tc, test_readyz_says_how_sandboxes_are_held);
	tcase_add_test(tc, test_healthz_answers_and_creates_a_request_id);
	tcase_add_test(tc, test_a_given_request_id_is_returned_and_a_bad_one_replaced);
	tcase_add_test(tc, test_an_unknown_route_is_404_with_the_json_error_shape);
	tcase_add_test(tc, test_a_wrong_method_is_405_naming_the_allowed_ones);
	tcase_add_test(tc, test_a_killed_service_makes_readyz_503_naming_it_until_restarted);
	tcase_add_test(tc, test_services_reject_malformed_envelopes_and_keep_serving);
	tcase_add_test(tc, test_check_config_reports_every_problem_at_once);
	tcase_add_test(tc, test_a_database_password_is_never_logged);
	tcase_add_test(tc, test_a_quiet_log_level_still_serves_until_sigterm);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
