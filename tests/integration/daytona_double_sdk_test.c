/*
 * daytona_double_sdk_test.c - the Daytona double (tests/doubles/daytona) is
 * faithful as Daytona's own SDK sees it: the official @daytonaio/sdk for
 * Node.js, unchanged, creates a sandbox, runs Python with codeRun and a
 * shell command with executeCommand, uploads and downloads files, drives a
 * session, stops, archives, starts and deletes the sandbox, and meets the
 * double's errors and scripted faults as its own error classes
 * (tests/doubles/daytona/sdk/sdk_check.mjs, run with Node). Afterwards no
 * sandbox, process or file of the run is left. No Postgres is needed.
 *
 * Needs node and npm on PATH; the SDK is installed by `npm ci` in
 * tests/doubles/daytona/sdk the first time (when node_modules is missing).
 * A missing node or npm fails the test: it is never skipped. The double
 * needs bubblewrap (/usr/bin/bwrap) and python3 with pandas.
 *
 * Environment read: MARK_DOUBLES_DIR (default: MARK_BIN_DIR/../tests/doubles
 * when MARK_BIN_DIR is set, else build/tests/doubles), MARK_TEST_LOG_DIR
 * (default build/test-logs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_daytona.h"

#define SDK_DIR "tests/doubles/daytona/sdk"
#define API_KEY "dtn_double_sdk_check_key"

/* ------------------------------------------------------------------ the test */

START_TEST(test_the_official_sdk_drives_the_double_and_leaves_nothing_behind)
{
	static const char *const packages[] = {"@daytonaio/sdk", NULL};
	char err[512], env[256], root[128], *out = NULL;
	mt_daytona d;
	cJSON *left;
	int st;

	ck_assert_msg(mt_sdk_ready(SDK_DIR, packages, "the Daytona double's faithfulness test", 20,
	                           err, sizeof(err)) == 0,
	              "%s", err);
	snprintf(root, sizeof(root), "/tmp/mark-daytona-sdk-%d", (int)getpid());
	ck_assert_msg(
	    mt_daytona_start(&d, "daytona-double-sdk", API_KEY, root, NULL, err, sizeof(err)) == 0,
	    "%s", err);
	snprintf(env, sizeof(env), "DAYTONA_DOUBLE_URL='%s' DAYTONA_API_KEY='" API_KEY "'", d.base);
	st = mt_sdk_run(SDK_DIR, env, &d.p, &out);
	ck_assert_msg(st == 0, "sdk_check.mjs exited %d:\n%s", st, out);
	ck_assert_msg(mt_sdk_passed(out, 12, err, sizeof(err)) >= 0, "%s:\n%s", err, out);
	free(out);

	/* The check deleted what it made: the double holds no sandbox and runs nothing. */
	left = mt_daytona_sandboxes(&d);
	ck_assert_msg(cJSON_IsArray(left) && cJSON_GetArraySize(left) == 0,
	              "sandboxes left behind: %s", left ? cJSON_PrintUnformatted(left) : "(none)");
	cJSON_Delete(left);
	ck_assert_int_eq(mt_daytona_processes(root), 1); /* the double itself names root */
	ck_assert_msg(mt_daytona_stop_clean(&d, root, err, sizeof(err)) == 0, "%s", err);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("daytona_double_sdk");
	TCase *tc = tcase_create("sdk");

	/* npm ci the first time, then ~13 checks that start and stop sandboxes. */
	tcase_set_timeout(tc, 900);
	tcase_add_test(tc, test_the_official_sdk_drives_the_double_and_leaves_nothing_behind);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
