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

/* ------------------------------------------------------------------ helpers */

/*
 * Every line of out is "ok <name>" but the last, "sdk_check: N of N checks
 * passed (...)"; returns N, which must be at least min.
 */
static int all_ok(const char *out, int min)
{
	const char *line = out, *nl;
	int oks = 0, passed = -1, total = -2;

	for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
		nl = strchr(line, '\n');
		if (strncmp(line, "ok ", 3) == 0)
			oks++;
		else if (sscanf(line, "sdk_check: %d of %d checks passed", &passed, &total) == 2)
			ck_assert_msg(!nl || !nl[1], "the summary is the last line:\n%s", out);
		else if (line != nl)
			ck_abort_msg("not an ok line: '%.*s'\n%s",
			             nl ? (int)(nl - line) : (int)strlen(line), line, out);
	}
	ck_assert_msg(passed == total && oks == total, "%d ok lines, summary %d of %d:\n%s", oks,
	              passed, total, out);
	ck_assert_msg(oks >= min, "only %d checks ran, want at least %d:\n%s", oks, min, out);
	return oks;
}

/* The names in directory dir, sorted, space-separated (malloc'd). */
static char *dir_names(const char *dir)
{
	char cmd[512], *out = NULL;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' 2>&1 | tr '\\n' ' '", dir);
	ck_assert_int_eq(mt_sh(cmd, &out), 0);
	return out;
}

/* ------------------------------------------------------------------ the test */

START_TEST(test_the_official_sdk_drives_the_double_and_leaves_nothing_behind)
{
	char err[512], cmd[1024], root[128], *out = NULL;
	mt_daytona d;
	cJSON *left;
	int st;

	st = mt_sh("command -v node && command -v npm && node --version 2>&1", &out);
	ck_assert_msg(st == 0,
	              "node and npm are required by the Daytona double's faithfulness test "
	              "(Node.js 20 or later; e.g. apt-get install nodejs npm): %s",
	              out);
	free(out);
	if (access(SDK_DIR "/node_modules/@daytonaio/sdk/package.json", F_OK) != 0) {
		printf("installing the SDK: (cd " SDK_DIR " && npm ci --no-audit --no-fund)\n");
		fflush(stdout);
		st = mt_sh("cd " SDK_DIR " && npm ci --no-audit --no-fund 2>&1", &out);
		ck_assert_msg(st == 0, "npm ci in " SDK_DIR " failed (exit %d):\n%s", st, out);
		free(out);
	}

	snprintf(root, sizeof(root), "/tmp/mark-daytona-sdk-%d", (int)getpid());
	ck_assert_msg(
	    mt_daytona_start(&d, "daytona-double-sdk", API_KEY, root, NULL, err, sizeof(err)) == 0,
	    "%s", err);
	snprintf(cmd, sizeof(cmd),
	         "DAYTONA_DOUBLE_URL='%s' DAYTONA_API_KEY='" API_KEY "' node " SDK_DIR
	         "/sdk_check.mjs 2>&1",
	         d.base);
	st = mt_sh(cmd, &out);
	printf("%s", out); /* one line per check, for the test log */
	fflush(stdout);
	if (st != 0)
		mt_proc_dump(&d.p);
	ck_assert_msg(st == 0, "sdk_check.mjs exited %d:\n%s", st, out);
	all_ok(out, 12);
	free(out);

	/* The check deleted what it made: the double holds no sandbox and runs nothing. */
	left = mt_daytona_sandboxes(&d);
	ck_assert_msg(cJSON_IsArray(left) && cJSON_GetArraySize(left) == 0,
	              "sandboxes left behind: %s", left ? cJSON_PrintUnformatted(left) : "(none)");
	cJSON_Delete(left);
	ck_assert_int_eq(mt_daytona_processes(root), 1); /* the double itself names root */

	st = mt_daytona_stop(&d);
	ck_assert_msg(st == 0, "daytona-double exited %d on SIGTERM, want 0", st);
	ck_assert_int_eq(mt_daytona_processes(root), 0);
	out = dir_names(root);
	ck_assert_msg(strcmp(out, "etc ") == 0, "%s holds more than etc: %s", root, out);
	free(out);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(mt_sh(cmd, &out), 0);
	free(out);
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
