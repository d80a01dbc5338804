/*
 * daytona_double_toolbox_test.c - the Daytona double's toolbox
 * (tests/doubles/daytona) keeps the contract of
 * ../shared/contracts/daytona-api.md §3: it refuses a sandbox that is not
 * started, runs code for real as the sandbox user, isolated from the host,
 * the network and other sandboxes, kills a run at its timeout, pipes
 * code-run through Python and lifts chart lines into artifacts, keeps
 * shell state in sessions and answers in the format the SDK version asks
 * for, keeps files inside their sandbox, and ends a sandbox's processes
 * when it stops. No Postgres is needed.
 *
 * Environment read: MARK_DOUBLES_DIR (default: MARK_BIN_DIR/../tests/doubles
 * when MARK_BIN_DIR is set, else build/tests/doubles), MARK_TEST_LOG_DIR
 * (default build/test-logs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_daytona.h"

#define KEY     "dtn_double_toolbox_test_key"
#define WAIT_MS 90000 /* for any state: a sanitizer build on a loaded machine is slow */

static mt_daytona dbl;
static char root[128];

/* ------------------------------------------------------------------ helpers */

/* A toolbox request for sandbox id, with extra headers (may be NULL). */
static void tb(const char *id, const char *method, const char *sub, const char *body,
               const char *const *extra, mt_resp *r)
{
	ck_assert_msg(mt_daytona_tb(&dbl, KEY, id, method, sub, body, extra, r) == 0,
	              "%s %s: no answer", method, sub);
}

static void knobs(const char *json)
{
	char err[512];

	ck_assert_msg(mt_daytona_config(&dbl, json, err, sizeof(err)) == 0, "%s", err);
}

/* Create a sandbox (body NULL: {}) and wait until it has started; its id into id. */
static void started(const char *body, char *id)
{
	char err[512];

	ck_assert_msg(mt_daytona_started(&dbl, KEY, body, WAIT_MS, id, err, sizeof(err)) == 0, "%s",
	              err);
}

static void wait_state(const char *id, const char *state)
{
	char err[512];

	ck_assert_msg(mt_daytona_wait(&dbl, KEY, id, state, WAIT_MS, err, sizeof(err)) == 0, "%s",
	              err);
}

/* POST /api/sandbox/{id}/<action> ("": DELETE it): the status, the answer in *r unless NULL. */
static long lifecycle(const char *id, const char *action, mt_resp *r)
{
	long st = mt_daytona_lifecycle(&dbl, KEY, id, action, r);

	ck_assert_msg(st >= 0, "sandbox %s '%s': no answer", id, action);
	return st;
}

static void tb_error(const mt_resp *r, long status, const char *code, const char *needle,
                     const char *source)
{
	char why[512];

	ck_assert_msg(mt_daytona_tb_error(r, status, code, needle, source, why, sizeof(why)) == 0,
	              "%s", why);
}

/* Run command in sandbox id; its exit code, and its output into out (when not NULL). */
static long run(const char *id, const char *command, char *out, size_t outlen)
{
	char err[512];
	long code = -1;

	ck_assert_msg(
	    mt_daytona_run(&dbl, KEY, id, command, &code, out, outlen, err, sizeof(err)) == 0, "%s",
	    err);
	return code;
}

/* The double's count of live sandboxes, and of their processes into *procs. */
static int live(int *procs)
{
	int n = mt_daytona_live(&dbl, procs);

	ck_assert_int_ge(n, 0);
	return n;
}

/* Start from nothing: knobs, faults and log reset, every sandbox gone. */
static void fresh(void)
{
	char err[512];

	ck_assert_msg(mt_daytona_clear(&dbl, WAIT_MS, err, sizeof(err)) == 0, "%s", err);
}

static void double_up(void)
{
	char err[512];

	snprintf(root, sizeof(root), "/tmp/%s-%d", "mark-daytona-toolbox-test", (int)getpid());
	ck_assert_msg(mt_daytona_start(&dbl, "daytona-double-toolbox", KEY, root, NULL, err,
	                               sizeof(err)) == 0,
	              "%s", err);
}

/* Stop the double: it exits 0, and no process of its sandboxes, nor their files, is left. */
static void double_down(void)
{
	char err[512];

	ck_assert_msg(mt_daytona_stop_clean(&dbl, root, err, sizeof(err)) == 0, "%s", err);
}

/* ------------------------------------------------------------------ the tests */

START_TEST(test_the_toolbox_refuses_a_sandbox_until_it_has_started)
{
	char id[40], err[512];
	mt_resp r;

	fresh();
	/* A build answers at once, long before it is up. */
	knobs("{\"start_delay_ms\":3600000}");
	ck_assert_msg(mt_daytona_create(
	                  &dbl, KEY, "{\"buildInfo\":{\"dockerfileContent\":\"FROM python:3.12\"}}",
	                  id, err, sizeof(err)) == 0,
	              "%s", err);
	tb(id, "POST", "/process/execute", "{\"command\":\"true\"}", NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "Is the Sandbox started?", "DAYTONA_PROXY");
	mt_resp_release(&r);
	knobs("{\"start_delay_ms\":0}");
	wait_state(id, "started");
	ck_assert_int_eq(run(id, "true", NULL, 0), 0);

	ck_assert_int_eq(lifecycle(id, "stop", NULL), 200);
	wait_state(id, "stopped");
	tb(id, "GET", "/files", NULL, NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "Is the Sandbox started?", "DAYTONA_PROXY");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "archive", NULL), 200);
	wait_state(id, "archived");
	tb(id, "GET", "/files", NULL, NULL, &r);
	tb_error(&r, 404, "NOT_FOUND", "sandbox container not found", "DAYTONA_PROXY");
	mt_resp_release(&r);
	tb("00000000-0000-4000-8000-000000000000", "GET", "/files", NULL, NULL, &r);
	tb_error(&r, 404, "NOT_FOUND", "not found", "DAYTONA_PROXY");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_code_runs_for_real_isolated_from_the_host_and_other_sandboxes)
{
	char a[40], b[40], out[4096];
	mt_resp r;
	int procs;

	fresh();
	started("{\"env\":{\"FROM_CREATE\":\"yes\"}}", a);
	started(NULL, b);
	ck_assert_int_eq(
	    run(a, "id -u; id -un; pwd; hostname; echo $HOME $FROM_CREATE", out, sizeof(out)), 0);
	{
		char want[256];

		snprintf(want, sizeof(want),
		         "1000\ndaytona\n/home/daytona\n%s\n/home/daytona yes\n", a);
		ck_assert_str_eq(out, want);
	}
	ck_assert_int_eq(run(a, "echo s > secret; echo t > /tmp/t", NULL, 0), 0);
	ck_assert_int_ne(run(b, "cat /home/daytona/secret /tmp/t", NULL, 0), 0);
	ck_assert_int_ne(run(a, "touch /usr/x", out, sizeof(out)), 0);
	ck_assert_msg(strstr(out, "Read-only file system"), "%s", out);
	ck_assert_int_eq(
	    run(a, "test -e /etc/shadow || test -e /root || echo hidden", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "hidden\n");
	ck_assert_int_eq(
	    run(a,
	        "python3 -c 'import socket; socket.create_connection((\"1.1.1.1\", 53), "
	        "timeout=3)' 2>/dev/null || echo offline",
	        out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "offline\n");

	/* A timeout is 408, and the run is killed with its children. */
	tb(a, "POST", "/process/execute", "{\"command\":\"sleep 300 & sleep 300\",\"timeout\":1}",
	   NULL, &r);
	tb_error(&r, 408, "REQUEST_TIMEOUT", "command execution timeout", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	for (int64_t until = mk_mono_ms() + WAIT_MS; live(&procs) >= 0 && procs > 0;) {
		ck_assert_msg(mk_mono_ms() < until, "%d processes are left", procs);
		mk_sleep_ms(50);
	}
	tb(a, "POST", "/process/execute", "{\"command\":\"  \"}", NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "command cannot be empty", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(a, "POST", "/process/execute", "{\"command\":\"env\",\"envs\":{\"1X\":\"v\"}}", NULL,
	   &r);
	tb_error(&r, 400, "BAD_REQUEST", "invalid environment variable name: '1X'",
	         "DAYTONA_DAEMON");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_code_run_pipes_python_and_lifts_chart_lines_into_artifacts)
{
	char id[40];
	const cJSON *charts;
	mt_resp r;

	fresh();
	started(NULL, id);
	tb(id, "POST", "/process/code-run",
	   "{\"language\":\"python\",\"argv\":[\"a\",\"b\"],\"envs\":{\"E\":\"e\"},\"code\":"
	   "\"import os, sys, json\\nprint(sys.argv[1:], os.environ['E'])\\n"
	   "print('dtn_artifact_k39fd2:' + json.dumps({'type': 'chart', 'value': {'type': 'bar', "
	   "'title': 't', 'elements': []}}))\\nprint('after')\\n\"}",
	   NULL, &r);
	ck_assert_msg(r.status == 200, "%s", r.body);
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "exitCode")), 0);
	ck_assert_str_eq(mk_json_str(r.json, "result"), "['a', 'b'] e\nafter\n");
	charts = cJSON_GetObjectItem(cJSON_GetObjectItem(r.json, "artifacts"), "charts");
	ck_assert_int_eq(cJSON_GetArraySize(charts), 1);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(charts, 0), "title"), "t");
	mt_resp_release(&r);
	tb(id, "POST", "/process/code-run", "{\"language\":\"cobol\",\"code\":\"x\"}", NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "unsupported language: cobol", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "POST", "/process/code-run", "{\"language\":\"python\"}", NULL, &r);
	tb_error(&r, 400, "INVALID_REQUEST_BODY", "invalid body request", "DAYTONA_DAEMON");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_sessions_keep_shell_state_and_answer_in_the_format_the_sdk_version_asks)
{
	static const char *const v0218[] = {"X-Daytona-SDK-Version: 0.218.0", NULL};
	static const char *const v0100[] = {"X-Daytona-SDK-Version: 0.100.0", NULL};
	static const char *const split[] = {"X-Daytona-Split-Output: true", NULL};
	const char *cmd = "{\"command\":\"echo a; echo b >&2\"}";
	char id[40], path[256], cid[64];
	mt_resp r;

	fresh();
	started(NULL, id);
	tb(id, "POST", "/process/session", "{\"sessionId\":\"s\"}", NULL, &r);
	ck_assert_int_eq(r.status, 201);
	mt_resp_release(&r);
	tb(id, "POST", "/process/session", "{\"sessionId\":\"s\"}", NULL, &r);
	tb_error(&r, 409, "CONFLICT", "session already exists", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "POST", "/process/session/s/exec", "{\"command\":\"cd /tmp; export V=7\"}", NULL,
	   &r);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	/* No version: one combined text, no split. */
	tb(id, "POST", "/process/session/s/exec", "{\"command\":\"echo $V; pwd\"}", NULL, &r);
	ck_assert_str_eq(mk_json_str(r.json, "output"), "7\n/tmp\n");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "stdout")));
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "exitCode")), 0);
	mt_resp_release(&r);
	/* 0.218.0: split on the server; the output keeps the stream labels. */
	tb(id, "POST", "/process/session/s/exec", cmd, v0218, &r);
	ck_assert_str_eq(mk_json_str(r.json, "stdout"), "a\n");
	ck_assert_str_eq(mk_json_str(r.json, "stderr"), "b\n");
	ck_assert_ptr_nonnull(strstr(mk_json_str(r.json, "output"), "\x01\x01\x01"
	                                                            "a\n"));
	snprintf(cid, sizeof(cid), "%s", mk_json_str(r.json, "cmdId"));
	mt_resp_release(&r);
	/* 0.100.0, or no version but split output asked: labelled, split by the client. */
	tb(id, "POST", "/process/session/s/exec", cmd, v0100, &r);
	ck_assert_ptr_nonnull(strstr(mk_json_str(r.json, "output"), "\x02\x02\x02"
	                                                            "b\n"));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "stderr")));
	mt_resp_release(&r);
	tb(id, "POST", "/process/session/s/exec", cmd, split, &r);
	ck_assert_ptr_nonnull(strstr(mk_json_str(r.json, "output"), "\x01\x01\x01"));
	mt_resp_release(&r);

	snprintf(path, sizeof(path), "/process/session/s/command/%s/logs", cid);
	tb(id, "GET", path, NULL, v0218, &r);
	ck_assert_str_eq(mk_json_str(r.json, "stdout"), "a\n");
	ck_assert_str_eq(mk_json_str(r.json, "stderr"), "b\n");
	mt_resp_release(&r);
	tb(id, "GET", path, NULL, NULL, &r);
	ck_assert_ptr_null(r.json);
	ck_assert_msg(strcmp(r.body, "a\nb\n") == 0 || strcmp(r.body, "b\na\n") == 0, "%s", r.body);
	mt_resp_release(&r);

	/* Async: 202 at once, no exit code while it runs; deleting the session ends it. */
	tb(id, "POST", "/process/session/s/exec", "{\"command\":\"sleep 600\",\"runAsync\":true}",
	   NULL, &r);
	ck_assert_int_eq(r.status, 202);
	snprintf(path, sizeof(path), "/process/session/s/command/%s", mk_json_str(r.json, "cmdId"));
	mt_resp_release(&r);
	tb(id, "GET", path, NULL, NULL, &r);
	ck_assert_str_eq(mk_json_str(r.json, "command"), "sleep 600");
	ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "exitCode"));
	mt_resp_release(&r);
	tb(id, "DELETE", "/process/session/s", NULL, NULL, &r);
	ck_assert_int_eq(r.status, 204);
	mt_resp_release(&r);
	tb(id, "POST", "/process/session/s/exec", cmd, NULL, &r);
	tb_error(&r, 404, "NOT_FOUND", "session not found", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "POST", "/process/session/entrypoint/exec", cmd, NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "entrypoint", "DAYTONA_DAEMON");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_files_stay_inside_their_sandbox)
{
	char id[40];
	mt_resp r;

	fresh();
	started(NULL, id);
	ck_assert_int_eq(
	    run(id, "ln -s /etc/passwd pw; ln -s / up; mkdir d; echo x > d/f", NULL, 0), 0);
	/* Symlinks resolve inside the sandbox's tree, never the double's. */
	tb(id, "GET", "/files/download?path=pw", NULL, NULL, &r);
	tb_error(&r, 404, "FILE_NOT_FOUND", "file not found: pw", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "GET", "/files?path=/home/daytona/up", NULL, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(r.json), 2); /* home and tmp */
	mt_resp_release(&r);
	tb(id, "POST", "/files/bulk-download", "{\"paths\":[\"d/f\",\"d\",\"nope\"]}", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_nonnull(strstr(r.body, "name=\"file\"; filename=\"d/f\""));
	ck_assert_ptr_nonnull(strstr(r.body, "INVALID_FILE_PATH"));
	ck_assert_ptr_nonnull(strstr(r.body, "FILE_NOT_FOUND"));
	mt_resp_release(&r);
	tb(id, "DELETE", "/files?path=d", NULL, NULL, &r);
	tb_error(&r, 400, "BAD_REQUEST", "without recursive flag", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "DELETE", "/files?path=/home/daytona", NULL, NULL, &r);
	tb_error(&r, 403, "FILE_ACCESS_DENIED", "permission denied", "DAYTONA_DAEMON");
	mt_resp_release(&r);
	tb(id, "DELETE", "/files?path=d&recursive=true", NULL, NULL, &r);
	ck_assert_int_eq(r.status, 204);
	mt_resp_release(&r);
	ck_assert_int_ne(run(id, "test -e d", NULL, 0), 0);
}
END_TEST

/* Both single-file uploads: upload-v2 (multipart or raw) and the older /files/upload. */
START_TEST(test_single_file_uploads_land_where_asked)
{
	static const char mp[] = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
	                         "filename=\"x\"\r\n\r\nmultipart bytes\r\n--XyZ--\r\n";
	const char *multipart[] = {"Authorization: Bearer " KEY,
	                           "Content-Type: multipart/form-data; boundary=XyZ", NULL};
	const char *raw[] = {"Authorization: Bearer " KEY, "Content-Type: application/octet-stream",
	                     NULL};
	char id[40], url[512], out[256];
	mt_resp r;

	fresh();
	started(NULL, id);
	snprintf(url, sizeof(url), "%s/toolbox/%s/files/upload-v2?path=up/one.txt", dbl.base, id);
	ck_assert_int_eq(mt_http("POST", url, multipart, mp, sizeof(mp) - 1, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "path"), "/home/daytona/up/one.txt");
	ck_assert_str_eq(mk_json_str(r.json, "name"), "one.txt");
	mt_resp_release(&r);
	snprintf(url, sizeof(url), "%s/toolbox/%s/files/upload-v2?path=/tmp/two.txt", dbl.base, id);
	ck_assert_int_eq(mt_http("POST", url, raw, "raw bytes", 9, &r), 0);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	snprintf(url, sizeof(url), "%s/toolbox/%s/files/upload?path=three.txt", dbl.base, id);
	ck_assert_int_eq(mt_http("POST", url, multipart, mp, sizeof(mp) - 1, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq((long)r.len, 0);
	mt_resp_release(&r);
	ck_assert_int_eq(run(id, "cat up/one.txt; echo; cat /tmp/two.txt; echo; cat three.txt", out,
	                     sizeof(out)),
	                 0);
	ck_assert_str_eq(out, "multipart bytes\nraw bytes\nmultipart bytes");
}
END_TEST

START_TEST(test_stopping_ends_every_process_of_the_sandbox)
{
	char id[40];
	mt_resp r;
	int procs;

	fresh();
	started(NULL, id);
	tb(id, "POST", "/process/session", "{\"sessionId\":\"bg\"}", NULL, &r);
	mt_resp_release(&r);
	tb(id, "POST", "/process/session/bg/exec", "{\"command\":\"sleep 600\",\"runAsync\":true}",
	   NULL, &r);
	ck_assert_int_eq(r.status, 202);
	mt_resp_release(&r);
	ck_assert_int_eq(live(&procs), 1);
	ck_assert_int_eq(procs, 1);
	ck_assert_int_eq(lifecycle(id, "stop", NULL), 200);
	wait_state(id, "stopped");
	ck_assert_int_eq(live(&procs), 1);
	ck_assert_int_eq(procs, 0);
	ck_assert_int_eq(lifecycle(id, "start", NULL), 200);
	tb(id, "GET", "/process/session", NULL, NULL, &r);
	ck_assert_str_eq(r.body, "[]"); /* sessions do not survive a stop */
	mt_resp_release(&r);
}
END_TEST

/* Bubblewrap's second process misses --die-with-parent while it is being set up. */
START_TEST(test_a_sandbox_stopped_while_its_shells_start_leaves_no_process)
{
	char id[40];
	mt_resp r;
	int i, procs;

	fresh();
	started(NULL, id);
	for (i = 0; i < 8; i++) {
		tb(id, "POST", "/process/session", "{\"sessionId\":\"race\"}", NULL, &r);
		ck_assert_int_eq(r.status, 201);
		mt_resp_release(&r);
		tb(id, "POST", "/process/session/race/exec",
		   "{\"command\":\"sleep 600\",\"runAsync\":true}", NULL, &r);
		mt_resp_release(&r);
		ck_assert_int_eq(lifecycle(id, "stop", NULL), 200);
		wait_state(id, "stopped");
		ck_assert_int_eq(lifecycle(id, "start", NULL), 200);
		wait_state(id, "started");
	}
	ck_assert_int_eq(live(&procs), 1);
	ck_assert_int_eq(procs, 0);
	/* Only the double itself names its directory: no orphaned sandbox process. */
	ck_assert_int_eq(mt_daytona_processes(root), 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("daytona_double_toolbox");
	TCase *tc = tcase_create("toolbox");

	tcase_add_unchecked_fixture(tc, double_up, double_down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_the_toolbox_refuses_a_sandbox_until_it_has_started);
	tcase_add_test(tc, test_code_runs_for_real_isolated_from_the_host_and_other_sandboxes);
	tcase_add_test(tc, test_code_run_pipes_python_and_lifts_chart_lines_into_artifacts);
	tcase_add_test(
	    tc, test_sessions_keep_shell_state_and_answer_in_the_format_the_sdk_version_asks);
	tcase_add_test(tc, test_files_stay_inside_their_sandbox);
	tcase_add_test(tc, test_single_file_uploads_land_where_asked);
	tcase_add_test(tc, test_stopping_ends_every_process_of_the_sandbox);
	tcase_add_test(tc, test_a_sandbox_stopped_while_its_shells_start_leaves_no_process);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
