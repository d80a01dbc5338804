/*
 * run_script_test.c - the local stack as `make run` starts it
 * (scripts/run.sh, on free ports, in a run directory of its own): each
 * service gets only its own settings, a service killed with SIGKILL is
 * started again and the stack is ready once more, its Postgres keeps data
 * durably, and `make stop` ends everything.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define READY_MS 180000 /* two clusters made and the demo warehouse loaded, on a loaded host */

static char run_dir[600], base[64], cmd_env[4096];

static long pid_of(const char *svc)
{
	char path[700];
	FILE *f;
	long pid = -1;

	snprintf(path, sizeof(path), "%s/pids/%s.pid", run_dir, svc);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%ld", &pid) != 1)
			pid = -1;
		fclose(f);
	}
	return pid;
}

/* How many of a process's environment variables contain needle. */
static int environ_has(long pid, const char *needle)
{
	char path[64], buf[65536];
	FILE *f;
	size_t n, i, start = 0;
	int hits = 0;

	snprintf(path, sizeof(path), "/proc/%ld/environ", pid);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (i = 0; i <= n; i++)
		if (buf[i] == '\0') {
			hits += strstr(buf + start, needle) != NULL;
			start = i + 1;
		}
	return hits;
}

static void run_sh(const char *cmd, char **out)
{
	int st = mt_sh(cmd, out);

	ck_assert_msg(st == 0, "%s: exit %d: %s", cmd, st, *out);
}

START_TEST(test_make_run_gives_each_service_its_own_settings_and_restarts_a_killed_one)
{
	char cmd[8192], *out = NULL;
	long llm, executor, again;
	int64_t until;

	/* Started in the background; `timeout` ends it even if this test dies. */
	snprintf(cmd, sizeof(cmd),
	         "rm -rf '%s' && mkdir -p '%s' && (%s setsid timeout 900 scripts/run.sh "
	         ">'%s/run.out' 2>&1 &) ; echo started",
	         run_dir, run_dir, cmd_env, run_dir);
	run_sh(cmd, &out);
	free(out);
	/* Ready as run.sh itself says, so that it supervises from here on. */
	snprintf(cmd, sizeof(cmd),
	         "for i in $(seq 1 %d); do grep -q 'mark: ready at' '%s/run.out' && break; "
	         "sleep 0.1; done; cat '%s/run.out'",
	         READY_MS / 100, run_dir, run_dir);
	run_sh(cmd, &out);
	ck_assert_msg(strstr(out, "mark: ready at"), "%s", out);
	free(out);

	/* Settings: the shell's LLM_API_KEY reaches llm only. */
	llm = pid_of("llm");
	executor = pid_of("executor");
	ck_assert_int_gt(llm, 0);
	ck_assert_int_gt(executor, 0);
	ck_assert_int_eq(environ_has(llm, "sk-from-the-shell"), 1);
	ck_assert_int_eq(environ_has(executor, "sk-from-the-shell"), 0);
	ck_assert_int_eq(environ_has(pid_of("gateway"), "sk-from-the-shell"), 0);
	ck_assert_int_eq(environ_has(executor, "LLM_"), 0);

	/* Killed outright: started again, and the stack is ready again. */
	ck_assert_int_eq(kill((pid_t)llm, SIGKILL), 0);
	until = mk_mono_ms() + READY_MS;
	while (((again = pid_of("llm")) == llm || again <= 0) && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_msg(again != llm && again > 0, "llm was not restarted");
	ck_assert_int_eq(mt_wait_status(base, "/readyz", 200, READY_MS), 0);
	snprintf(cmd, sizeof(cmd), "cat '%s/run.out'", run_dir);
	run_sh(cmd, &out);
	ck_assert_msg(strstr(out, "llm exited") && strstr(out, "llm restarted"), "%s", out);
	free(out);

	/* Users' data is kept durably. */
	snprintf(
	    cmd, sizeof(cmd),
	    "/usr/lib/postgresql/15/bin/psql \"$(scripts/pg.sh dsn '%s/pg')\" -qtAc 'show fsync'",
	    run_dir);
	run_sh(cmd, &out);
	ck_assert_msg(strncmp(out, "on", 2) == 0, "fsync: %s", out);
	free(out);

	/* make stop: every service and both clusters end, and run.sh with them. */
	snprintf(cmd, sizeof(cmd),
	         "MARK_RUN_DIR='%s' scripts/stop.sh && for i in $(seq 1 600); do "
	         "grep -q 'services stopped' '%s/run.out' && break; sleep 0.1; done; "
	         "cat '%s/run.out'",
	         run_dir, run_dir, run_dir);
	run_sh(cmd, &out);
	ck_assert_msg(strstr(out, "mark: services stopped"), "%s", out);
	free(out);
	ck_assert_int_ne(kill((pid_t)again, 0), 0);
	ck_assert_int_ne(kill((pid_t)executor, 0), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("run_script");
	TCase *tc = tcase_create("run");
	int gw = mt_free_port();

	/* Every address of the stack on a free port, so it never meets another stack. */
	snprintf(run_dir, sizeof(run_dir), "%s", mt_bus_key_file());
	snprintf(strrchr(run_dir, '/'), sizeof(run_dir) - (size_t)(strrchr(run_dir, '/') - run_dir),
	         "/run-%d", (int)getpid());
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", gw);
	{
		int a = mt_free_port(), l = mt_free_port(), e = mt_free_port(), m = mt_free_port();
		int w = mt_free_port();

		snprintf(
		    cmd_env, sizeof(cmd_env),
		    "MARK_RUN_DIR='%s' MARK_PG_PORT=%d MARK_WAREHOUSE_PORT=%d "
		    "GATEWAY_LISTEN=127.0.0.1:%d AUTH_LISTEN=tcp://127.0.0.1:%d "
		    "LLM_LISTEN=tcp://127.0.0.1:%d EXECUTOR_LISTEN=tcp://127.0.0.1:%d "
		    "METADATA_LISTEN=tcp://127.0.0.1:%d EXECUTOR_WORKER_LISTEN=tcp://127.0.0.1:%d "
		    "EXECUTOR_ROUTER_URL=tcp://127.0.0.1:%d GATEWAY_AUTH_URL=tcp://127.0.0.1:%d "
		    "GATEWAY_LLM_URL=tcp://127.0.0.1:%d GATEWAY_EXECUTOR_URL=tcp://127.0.0.1:%d "
		    "GATEWAY_METADATA_URL=tcp://127.0.0.1:%d LLM_EXECUTOR_URL=tcp://127.0.0.1:%d "
		    "LLM_METADATA_URL=tcp://127.0.0.1:%d EXECUTOR_POOL_SIZE=0 "
		    "LLM_API_KEY=sk-from-the-shell",
		    run_dir, mt_free_port(), mt_free_port(), gw, a, l, e, m, w, w, a, l, e, m, e,
		    m);
	}
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc,
	               test_make_run_gives_each_service_its_own_settings_and_restarts_a_killed_one);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
