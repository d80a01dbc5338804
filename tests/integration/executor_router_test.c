/*
 * executor_router_test.c - the executor's router and workers as separate
 * processes: a restarted router learns from each worker's hello which
 * chats it holds, so their sessions survive the router; a worker that stops
 * on SIGTERM says goodbye and exits 0, and the router stops counting it;
 * with no worker at all, a request is answered `unavailable` at once.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

/*
 * Sized for a loaded host running the sanitizer build: one sys.ping (a
 * slower one only repeats), waiting for the router to count workers, a
 * process draining and exiting, and a run, which starts a sandbox cold (no
 * pool here) and may use all of the default 30 s EXECUTOR_TIMEOUT.
 */
#define PING_MS         10000
#define WORKERS_WAIT_MS 120000
#define STOP_MS         60000
#define RUN_WAIT_MS     150000

static char url[64], wurl[64], user[64];
static char env_listen[128], env_wlisten[128], env_rurl[128], env_db[1024];
static mt_proc router, w1, w2;
static mk_rpc_client *cli;

static void start_router(void)
{
	const char *env[] = {"EXECUTOR_MODE=router", env_listen, env_wlisten, NULL};

	ck_assert_int_eq(mt_proc_start(&router, "router", "mark-executor", env), 0);
}

static void start_worker(mt_proc *p, const char *id)
{
	char wid[64];
	const char *env[] = {"EXECUTOR_MODE=worker", env_rurl, env_db, wid,
	                     "EXECUTOR_POOL_SIZE=0", NULL};

	snprintf(wid, sizeof(wid), "EXECUTOR_WORKER_ID=%s", id);
	ck_assert_int_eq(mt_proc_start(p, id, "mark-executor", env), 0);
}

/* Workers the router counts, or -1 when it does not answer. */
static int workers(void)
{
	mk_rpc_result r;
	long long n = -1;
	char rid[MK_RID_MAX + 1];

	mk_rid_new(rid);
	if (mk_rpc_call(cli, MK_OP_SYS_PING, rid, NULL, NULL, PING_MS, &r) == MK_OK)
		mk_json_int(r.body, "workers", &n);
	mk_rpc_result_release(&r);
	return (int)n;
}

static void wait_workers(int n)
{
	int64_t until = mk_mono_ms() + WORKERS_WAIT_MS;
	int have;

	while ((have = workers()) != n && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_int_eq(have, n);
}

static cJSON *run(const char *chat, const char *code, mk_err *e)
{
	mk_caller who = {.role = "user"};
	cJSON *body = cJSON_CreateObject(), *out = NULL;
	char rid[MK_RID_MAX + 1];
	mk_rpc_result r;

	snprintf(who.user_id, sizeof(who.user_id), "%s", user);
	cJSON_AddStringToObject(body, "chat_id", chat);
	cJSON_AddStringToObject(body, "code", code);
	mk_rid_new(rid);
	*e = mk_rpc_call(cli, MK_OP_EXEC_RUN, rid, &who, body, RUN_WAIT_MS, &r);
	if (*e == MK_OK)
		out = cJSON_Duplicate(r.body, 1);
	mk_rpc_result_release(&r);
	cJSON_Delete(body);
	return out;
}

static void setup(void)
{
	char err[256];
	int p1 = mt_free_port(), p2 = mt_free_port();

	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", p1);
	snprintf(wurl, sizeof(wurl), "tcp://127.0.0.1:%d", p2);
	snprintf(env_listen, sizeof(env_listen), "EXECUTOR_LISTEN=%s", url);
	snprintf(env_wlisten, sizeof(env_wlisten), "EXECUTOR_WORKER_LISTEN=%s", wurl);
	snprintf(env_rurl, sizeof(env_rurl), "EXECUTOR_ROUTER_URL=%s", wurl);
	snprintf(env_db, sizeof(env_db), "EXECUTOR_DATABASE_URL=%s", mt_dsn());
	snprintf(user, sizeof(user), "router-user-%d", (int)getpid());
	cli = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_ptr_nonnull(cli);
}

static void teardown(void)
{
	mk_rpc_client_free(cli);
}

START_TEST(test_without_workers_a_request_is_unavailable_at_once)
{
	mk_err e;
	int64_t t0;
	cJSON *r;

	start_router();
	wait_workers(0);
	t0 = mk_mono_ms();
	r = run("nobody-home", "1", &e);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(e, MK_E_UNAVAILABLE);
	/* Answered, not held until the request's deadline (RUN_WAIT_MS). */
	ck_assert_int_lt(mk_mono_ms() - t0, 30000);
	ck_assert_int_eq(mt_proc_stop(&router, SIGTERM, STOP_MS), 0);
}
END_TEST

START_TEST(test_sessions_survive_a_router_restart_and_workers_leave_cleanly)
{
	char chats[3][64];
	mk_err e;
	cJSON *r;
	int i;

	start_router();
	start_worker(&w1, "rt-w1");
	wait_workers(1);
	for (i = 0; i < 3; i++) {
		snprintf(chats[i], sizeof(chats[i]), "rt-%d-%d", (int)getpid(), i);
		r = run(chats[i], "kept = 41", &e);
		ck_assert_msg(r != NULL, "run failed: %s", mk_err_code(e));
		cJSON_Delete(r);
	}
	/* A second, idle worker: without the hello, the chats would go to it. */
	start_worker(&w2, "rt-w2");
	wait_workers(2);

	kill(router.pid, SIGKILL);
	mt_proc_stop(&router, SIGKILL, STOP_MS);
	start_router();
	wait_workers(2);
	for (i = 0; i < 3; i++) {
		r = run(chats[i], "kept + 1", &e);
		ck_assert_msg(r != NULL, "run failed: %s", mk_err_code(e));
		ck_assert_str_eq(mk_json_str(r, "worker_id"), "rt-w1");
		ck_assert_str_eq(mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "value"), "text"),
		                 "42");
		cJSON_Delete(r);
	}
	/* The router tells how it spread the work: w1 took all three, w2 none. */
	{
		mk_rpc_result pr;
		const cJSON *by;
		char rid[MK_RID_MAX + 1];

		mk_rid_new(rid);
		ck_assert_int_eq(mk_rpc_call(cli, MK_OP_SYS_PING, rid, NULL, NULL, PING_MS, &pr),
		                 MK_OK);
		by = cJSON_GetObjectItemCaseSensitive(pr.body, "jobs_by_worker");
		ck_assert_int_eq(cJSON_GetArraySize(by), 2);
		ck_assert_int_eq(
		    cJSON_GetArrayItem(by, 0)->valueint + cJSON_GetArrayItem(by, 1)->valueint, 3);
		ck_assert(cJSON_GetArrayItem(by, 0)->valueint == 0 ||
		          cJSON_GetArrayItem(by, 1)->valueint == 0);
		mk_rpc_result_release(&pr);
	}
	/* SIGTERM: the worker says goodbye, the router stops counting it, it exits 0. */
	ck_assert_int_eq(mt_proc_stop(&w2, SIGTERM, STOP_MS), 0);
	wait_workers(1);
	ck_assert_int_eq(mt_proc_stop(&w1, SIGTERM, STOP_MS), 0);
	wait_workers(0);
	ck_assert_int_eq(mt_proc_stop(&router, SIGTERM, STOP_MS), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("executor_router");
	TCase *tc = tcase_create("executor_router");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_without_workers_a_request_is_unavailable_at_once);
	tcase_add_test(tc, test_sessions_survive_a_router_restart_and_workers_leave_cleanly);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
