/*
 * daytona_double_test.c - the Daytona double (tests/doubles/daytona) keeps
 * the control-plane contract of ../shared/contracts/daytona-api.md as a
 * client sees it on the wire: the key is checked on both surfaces with each
 * surface's error body, sandboxes move through their states with the API's
 * 400s and 409s, deleting frees the name and the files, auto-stop counts
 * idle minutes, scripted faults look like the real ones (rate-limit
 * headers included), and nothing outlives the double. The toolbox is in
 * daytona_double_toolbox_test.c; daytona_double_sdk_test.c shows the
 * official SDK agrees. No Postgres is needed.
 *
 * Environment read: MARK_DOUBLES_DIR (default: MARK_BIN_DIR/../tests/doubles
 * when MARK_BIN_DIR is set, else build/tests/doubles), MARK_TEST_LOG_DIR
 * (default build/test-logs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_daytona.h"

#define KEY     "dtn_double_test_key"
#define WAIT_MS 90000 /* for any state: a sanitizer build on a loaded machine is slow */

static mt_daytona dbl;
static char root[128];

/* ------------------------------------------------------------------ helpers */

/* One control-plane request with the key; *r must be released. */
static void call(const char *method, const char *path, const char *body, mt_resp *r)
{
	ck_assert_msg(mt_daytona_call(&dbl, KEY, method, path, body, r) == 0, "%s %s: no answer",
	              method, path);
}

/* A toolbox request for sandbox id, with extra headers (may be NULL). */
static void tb(const char *id, const char *method, const char *sub, const char *body,
               const char *const *extra, mt_resp *r)
{
	ck_assert_msg(mt_daytona_tb(&dbl, KEY, id, method, sub, body, extra, r) == 0,
	              "%s %s: no answer", method, sub);
}

static void control(const char *method, const char *path, const char *body)
{
	char err[512];

	ck_assert_msg(mt_double_control(&dbl, method, path, body, NULL, err, sizeof(err)) == 0,
	              "%s", err);
}

static void knobs(const char *json)
{
	control("POST", "/_double/config", json);
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

static void api_error(const mt_resp *r, long status, const char *reason, const char *message)
{
	char why[512];

	ck_assert_msg(mt_daytona_api_error(r, status, reason, message, why, sizeof(why)) == 0, "%s",
	              why);
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

/* Start from nothing: knobs, faults and log reset, every sandbox gone. */
static void fresh(void)
{
	char err[512];

	ck_assert_msg(mt_daytona_clear(&dbl, WAIT_MS, err, sizeof(err)) == 0, "%s", err);
}

static void double_up(void)
{
	char err[512];

	snprintf(root, sizeof(root), "/tmp/%s-%d", "mark-daytona-test", (int)getpid());
	ck_assert_msg(mt_daytona_start(&dbl, "daytona-double", KEY, root, NULL, err, sizeof(err)) ==
	                  0,
	              "%s", err);
}

/* Stop the double: it exits 0, and no process of its sandboxes, nor their files, is left. */
static void double_down(void)
{
	char err[512];

	ck_assert_msg(mt_daytona_stop_clean(&dbl, root, err, sizeof(err)) == 0, "%s", err);
}

/* ------------------------------------------------------------------ the control plane */

START_TEST(test_a_missing_or_wrong_key_is_401_in_each_surfaces_shape)
{
	mt_resp r;

	fresh();
	ck_assert_int_eq(mt_daytona_call(&dbl, NULL, "GET", "/api/sandbox", NULL, &r), 0);
	api_error(&r, 401, "Unauthorized", "Unauthorized");
	ck_assert_str_eq(mk_json_str(r.json, "path"), "/api/sandbox");
	mt_resp_release(&r);
	ck_assert_int_eq(mt_daytona_call(&dbl, "dtn_wrong", "GET", "/api/sandbox", NULL, &r), 0);
	api_error(&r, 401, "Unauthorized", "Unauthorized");
	mt_resp_release(&r);
	/* The public configuration needs no key, and names the toolbox. */
	ck_assert_int_eq(mt_daytona_call(&dbl, NULL, "GET", "/api/config", NULL, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "proxyToolboxUrl"), mt_daytona_url(&dbl, "/toolbox"));
	mt_resp_release(&r);
	call("GET", "/api/nothing-here", NULL, &r);
	api_error(&r, 404, "Not Found", "Cannot GET /api/nothing-here");
	mt_resp_release(&r);

	ck_assert_int_eq(mt_daytona_call(&dbl, NULL, "POST", "/toolbox/x/process/execute",
	                                 "{\"command\":\"true\"}", &r),
	                 0);
	tb_error(&r, 401, "UNAUTHORIZED", "unauthorized: missing authentication", "DAYTONA_PROXY");
	mt_resp_release(&r);
	ck_assert_int_eq(mt_daytona_call(&dbl, "dtn_wrong", "GET", "/toolbox/x/files", NULL, &r),
	                 0);
	tb_error(&r, 401, "UNAUTHORIZED", "Bearer token is invalid", "DAYTONA_PROXY");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_sandbox_is_creating_until_the_start_delay_and_echoes_its_settings)
{
	char id[40], path[128], *h;
	mt_resp r;

	fresh();
	knobs("{\"start_delay_ms\":1000}");
	call("POST", "/api/sandbox",
	     "{\"name\":\"echo-me\",\"labels\":{\"team\":\"mark\"},\"env\":{\"A\":\"1\"},"
	     "\"autoStopInterval\":0,\"autoArchiveInterval\":0,\"autoDeleteInterval\":30,"
	     "\"networkBlockAll\":true,\"networkAllowList\":\"10.1.0.0/16\",\"public\":true}",
	     &r);
	ck_assert_msg(r.status == 200, "%s", r.body);
	/* The answer is the sandbox as it was made; clients poll for "started". */
	ck_assert_str_eq(mk_json_str(r.json, "state"), "creating");
	ck_assert_str_eq(mk_json_str(r.json, "desiredState"), "started");
	ck_assert_str_eq(mk_json_str(r.json, "name"), "echo-me");
	ck_assert_str_eq(mk_json_str(r.json, "snapshot"), "daytona-small");
	ck_assert_str_eq(mk_json_str(r.json, "toolboxProxyUrl"), mt_daytona_url(&dbl, "/toolbox"));
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "labels"), "team"), "mark");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "env"), "A"), "1");
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "autoStopInterval")), 0);
	/* 0 means the longest archive interval: 30 days. */
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "autoArchiveInterval")),
	                 43200);
	ck_assert_int_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(r.json, "autoDeleteInterval")),
	                 30);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(r.json, "networkBlockAll")));
	ck_assert_str_eq(mk_json_str(r.json, "networkAllowList"), "10.1.0.0/16");
	h = mt_header(&r, "X-RateLimit-Limit-sandbox-create");
	ck_assert_str_eq(h, "300");
	free(h);
	snprintf(id, sizeof(id), "%s", mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	wait_state(id, "started");

	call("GET", "/api/sandbox/echo-me", NULL, &r); /* by name too */
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "id"), id);
	h = mt_header(&r, "X-RateLimit-Remaining-authenticated");
	ck_assert_ptr_nonnull(h);
	free(h);
	mt_resp_release(&r);
	snprintf(path, sizeof(path), "/api/sandbox/%s/toolbox-proxy-url", id);
	call("GET", path, NULL, &r);
	ck_assert_str_eq(mk_json_str(r.json, "url"), mt_daytona_url(&dbl, "/toolbox"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_create_refuses_what_the_api_refuses)
{
	static const struct {
		const char *body, *message;
		long status;
	} cases[] = {
	    {"{\"snapshot\":\"nope\"}",
	     "Snapshot nope not found. Did you add it through the Daytona Dashboard?", 400},
	    {"{\"cpu\":2}", "Cannot specify Sandbox resources when using a snapshot", 400},
	    {"{\"autoStopInterval\":-1}", "autoStopInterval must not be less than 0", 400},
	    {"{\"networkAllowList\":\"10.0.0.1\"}",
	     "Invalid network format: \"10.0.0.1\". Missing CIDR prefix length (e.g., /24)", 400},
	    {"{\"snapshot\":\"daytona-small\",\"buildInfo\":{\"dockerfileContent\":\"FROM x\"}}",
	     "Cannot specify a snapshot when using a build info entry", 400},
	    {"{\"name\":\"taken\"}", "Sandbox with name taken already exists", 409},
	};
	char id[40];
	size_t i;
	mt_resp r;

	fresh();
	started("{\"name\":\"taken\"}", id);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		call("POST", "/api/sandbox", cases[i].body, &r);
		api_error(&r, cases[i].status, cases[i].status == 409 ? "Conflict" : "Bad Request",
		          cases[i].message);
		mt_resp_release(&r);
	}
}
END_TEST

START_TEST(test_the_list_filters_by_labels_and_states_and_pages_with_a_cursor)
{
	char a[40], b[40], c[40], *cursor;
	mt_resp r;

	fresh();
	started("{\"labels\":{\"k\":\"v\"}}", a);
	started("{\"labels\":{\"k\":\"v\",\"x\":\"y\"}}", b);
	started("{\"labels\":{\"k\":\"w\"}}", c);
	call("GET", "/api/sandbox?labels=%7B%22k%22%3A%22v%22%7D&limit=1", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 1);
	/* Newest first. */
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "items"), 0), "id"), b);
	cursor = strdup(mk_json_str(r.json, "nextCursor"));
	mt_resp_release(&r);
	{
		char path[256];

		snprintf(path, sizeof(path),
		         "/api/sandbox?labels=%%7B%%22k%%22%%3A%%22v%%22%%7D&limit=1&cursor=%s",
		         cursor);
		call("GET", path, NULL, &r);
	}
	free(cursor);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "items"), 0), "id"), a);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(r.json, "nextCursor")));
	/* List items leave out env. */
	ck_assert_ptr_null(cJSON_GetObjectItem(
	    cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "items"), 0), "env"));
	mt_resp_release(&r);

	ck_assert_int_eq(lifecycle(c, "stop", NULL), 200);
	wait_state(c, "stopped");
	call("GET", "/api/sandbox?states=stopped", NULL, &r);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 1);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItem(r.json, "items"), 0), "id"), c);
	mt_resp_release(&r);
	call("GET", "/api/sandbox?labels=notjson", NULL, &r);
	api_error(&r, 400, "Bad Request", "Invalid labels JSON format");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_transitions_clash_with_409_and_converge)
{
	char id[40];
	mt_resp r;

	fresh();
	started(NULL, id);
	ck_assert_int_eq(lifecycle(id, "start", &r), 200); /* started already: answered at once */
	ck_assert_str_eq(mk_json_str(r.json, "state"), "started");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "archive", &r), 400);
	api_error(&r, 400, "Bad Request", "Sandbox is not stopped");
	mt_resp_release(&r);

	knobs("{\"stop_delay_ms\":3600000}");
	ck_assert_int_eq(lifecycle(id, "stop", &r), 200);
	/* Stop answers at once: still started, on its way to stopped. */
	ck_assert_str_eq(mk_json_str(r.json, "state"), "started");
	ck_assert_str_eq(mk_json_str(r.json, "desiredState"), "stopped");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "stop", &r), 409);
	api_error(&r, 409, "Conflict", "Sandbox state change in progress");
	mt_resp_release(&r);
	wait_state(id, "stopping");
	ck_assert_int_eq(lifecycle(id, "start", &r), 409);
	api_error(&r, 409, "Conflict", "Sandbox state change in progress");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "", NULL), 409);
	ck_assert_int_eq(lifecycle(id, "archive", NULL), 409);

	knobs("{\"stop_delay_ms\":0}"); /* the stop under way ends now */
	wait_state(id, "stopped");
	ck_assert_int_eq(lifecycle(id, "stop", &r), 400);
	api_error(&r, 400, "Bad Request", "Sandbox is not in a stoppable state");
	mt_resp_release(&r);
	/* Start waits for the sandbox: it answers started. */
	ck_assert_int_eq(lifecycle(id, "start", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "state"), "started");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_an_archived_sandbox_restores_on_start_and_keeps_its_files)
{
	char id[40], out[256];
	mt_resp r;

	fresh();
	started(NULL, id);
	ck_assert_int_eq(run(id, "echo kept > note.txt", NULL, 0), 0);
	ck_assert_int_eq(lifecycle(id, "stop", NULL), 200);
	wait_state(id, "stopped");
	ck_assert_int_eq(lifecycle(id, "archive", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "desiredState"), "archived");
	mt_resp_release(&r);
	wait_state(id, "archived");
	/* Start does not wait for a restore: archived, wanting started. */
	ck_assert_int_eq(lifecycle(id, "start", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "state"), "archived");
	ck_assert_str_eq(mk_json_str(r.json, "desiredState"), "started");
	mt_resp_release(&r);
	wait_state(id, "started");
	ck_assert_int_eq(run(id, "cat note.txt", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "kept\n");
}
END_TEST

START_TEST(test_delete_renames_then_forgets_the_sandbox_and_removes_its_files)
{
	char id[40], again[40], dir[256];
	struct stat st;
	mt_resp r;

	fresh();
	started("{\"name\":\"doomed\"}", id);
	ck_assert_int_eq(run(id, "echo x > f", NULL, 0), 0);
	snprintf(dir, sizeof(dir), "%s/%s/fs/home/daytona/f", root, id);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(lifecycle(id, "", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "desiredState"), "destroyed");
	ck_assert_msg(strncmp(mk_json_str(r.json, "name"), "DESTROYED_doomed_", 17) == 0, "%s",
	              mk_json_str(r.json, "name"));
	mt_resp_release(&r);
	wait_state(id, "destroyed");
	{
		char path[128];

		snprintf(path, sizeof(path), "/api/sandbox/%s", id);
		call("GET", path, NULL, &r);
		snprintf(path, sizeof(path), "Sandbox with ID or name %s not found", id);
		api_error(&r, 404, "Not Found", path);
		mt_resp_release(&r);
	}
	snprintf(dir, sizeof(dir), "%s/%s", root, id);
	for (int64_t until = mk_mono_ms() + WAIT_MS; stat(dir, &st) == 0;) {
		ck_assert_msg(mk_mono_ms() < until, "%s is never removed", dir);
		mk_sleep_ms(50);
	}
	started("{\"name\":\"doomed\"}", again); /* the name is free again */
	ck_assert_str_ne(again, id);
}
END_TEST

START_TEST(test_a_failed_sandbox_is_reported_refused_and_recovered)
{
	char id[40], path[128];
	mt_resp r;

	fresh();
	started(NULL, id);
	snprintf(path, sizeof(path), "/_double/sandboxes/%s/state", id);
	control("POST", path, "{\"state\":\"error\",\"errorReason\":\"disk full\"}");
	snprintf(path, sizeof(path), "/api/sandbox/%s", id);
	call("GET", path, NULL, &r);
	ck_assert_str_eq(mk_json_str(r.json, "state"), "error");
	ck_assert_str_eq(mk_json_str(r.json, "errorReason"), "disk full");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "stop", &r), 400);
	api_error(&r, 400, "Bad Request", "Sandbox is in an errored state");
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "start", NULL), 400);
	ck_assert_int_eq(lifecycle(id, "recover", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "state"), "started");
	ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "errorReason"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_auto_stop_counts_idle_minutes_and_an_ephemeral_sandbox_goes)
{
	char keep[40], eph[40];

	fresh();
	knobs("{\"minute_ms\":200}");
	started("{\"autoStopInterval\":1}", keep);
	started("{\"autoStopInterval\":1,\"autoDeleteInterval\":0}", eph);
	wait_state(keep, "stopped"); /* nobody touched it for a "minute" */
	wait_state(eph, "destroyed");
}
END_TEST

/* ------------------------------------------------------------------ faults and the end */

START_TEST(test_faults_answer_in_each_surfaces_shape_and_run_out)
{
	char id[40], path[128], *h, err[512];
	mt_resp r;

	fresh();
	started(NULL, id);
	snprintf(path, sizeof(path), "/api/sandbox/%s", id);
	control("POST", "/_double/faults",
	        "{\"rules\":[{\"route\":\"sandbox.get\",\"status\":409,\"times\":2},"
	        "{\"route\":\"sandbox.list\",\"status\":429,\"retry_after\":3},"
	        "{\"route\":\"sandbox.stop\",\"status\":429},"
	        "{\"route\":\"process.execute\",\"status\":502},"
	        "{\"route\":\"files\",\"status\":500,\"message\":\"disk on fire\"},"
	        "{\"route\":\"toolbox\",\"status\":400,\"empty_body\":true,\"skip\":1}]}");
	call("GET", path, NULL, &r);
	api_error(&r, 409, "Conflict", "Sandbox state change in progress");
	mt_resp_release(&r);
	call("GET", path, NULL, &r);
	ck_assert_int_eq(r.status, 409);
	mt_resp_release(&r);
	call("GET", path, NULL, &r); /* times ran out */
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);

	call("GET", "/api/sandbox", NULL, &r);
	api_error(&r, 429, "Too Many Requests", "ThrottlerException: Too Many Requests");
	h = mt_header(&r, "Retry-After-authenticated");
	ck_assert_str_eq(h, "3");
	free(h);
	h = mt_header(&r, "X-RateLimit-Remaining-authenticated");
	ck_assert_str_eq(h, "0");
	free(h);
	mt_resp_release(&r);
	ck_assert_int_eq(lifecycle(id, "stop", &r), 429); /* its own bucket */
	h = mt_header(&r, "X-RateLimit-Limit-sandbox-lifecycle");
	ck_assert_str_eq(h, "10000");
	free(h);
	mt_resp_release(&r);

	tb(id, "POST", "/process/execute", "{\"command\":\"true\"}", NULL, &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_int_eq((long)r.len, 0); /* a bare 502, as proxies send it */
	mt_resp_release(&r);
	tb(id, "GET", "/files", NULL, NULL, &r);
	tb_error(&r, 500, "INTERNAL_SERVER_ERROR", "disk on fire", "DAYTONA_PROXY");
	mt_resp_release(&r);
	tb(id, "GET", "/files", NULL, NULL, &r); /* skipped by the last rule */
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	tb(id, "GET", "/files", NULL, NULL, &r);
	ck_assert_int_eq(r.status, 400);
	ck_assert_int_eq((long)r.len, 0);
	mt_resp_release(&r);

	/* A dropped connection, then all is well. */
	control("POST", "/_double/faults",
	        "{\"rules\":[{\"route\":\"sandbox.get\",\"close\":true}]}");
	ck_assert_int_eq(mt_daytona_call(&dbl, KEY, "GET", path, NULL, &r), -1);
	mt_resp_release(&r);
	call("GET", path, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	/* A rule the double cannot serve is refused, naming the problem. */
	ck_assert_int_eq(mt_daytona_faults(&dbl,
	                                   "{\"rules\":[{\"route\":\"sandbox.crate\","
	                                   "\"status\":500}]}",
	                                   err, sizeof(err)),
	                 -1);
	ck_assert_msg(strstr(err, "sandbox.crate"), "%s", err);
}
END_TEST

START_TEST(test_sigterm_ends_every_sandbox_process_and_removes_their_files)
{
	char dir[160], err[512], id[40], cmd[256];
	mt_daytona d;
	mt_resp r;

	snprintf(dir, sizeof(dir), "/tmp/mark-daytona-stop-%d", (int)getpid());
	ck_assert_msg(
	    mt_daytona_start(&d, "daytona-double-stop", KEY, dir, NULL, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_msg(mt_daytona_started(&d, KEY, NULL, WAIT_MS, id, err, sizeof(err)) == 0, "%s",
	              err);
	snprintf(cmd, sizeof(cmd), "/toolbox/%s/process/session", id);
	ck_assert_int_eq(mt_daytona_call(&d, KEY, "POST", cmd, "{\"sessionId\":\"z\"}", &r), 0);
	ck_assert_int_eq(r.status, 201);
	mt_resp_release(&r);
	snprintf(cmd, sizeof(cmd), "/toolbox/%s/process/session/z/exec", id);
	ck_assert_int_eq(mt_daytona_call(&d, KEY, "POST", cmd,
	                                 "{\"command\":\"sleep 600\",\"runAsync\":true}", &r),
	                 0);
	ck_assert_int_eq(r.status, 202);
	mt_resp_release(&r);
	/* It exits 0, nothing runs over its directory any more, and only its etc is left. */
	ck_assert_msg(mt_daytona_stop_clean(&d, dir, err, sizeof(err)) == 0, "%s", err);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("daytona_double");
	TCase *tc = tcase_create("control plane");
	TCase *end = tcase_create("end");

	tcase_add_unchecked_fixture(tc, double_up, double_down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_a_missing_or_wrong_key_is_401_in_each_surfaces_shape);
	tcase_add_test(tc,
	               test_a_sandbox_is_creating_until_the_start_delay_and_echoes_its_settings);
	tcase_add_test(tc, test_create_refuses_what_the_api_refuses);
	tcase_add_test(tc, test_the_list_filters_by_labels_and_states_and_pages_with_a_cursor);
	tcase_add_test(tc, test_transitions_clash_with_409_and_converge);
	tcase_add_test(tc, test_an_archived_sandbox_restores_on_start_and_keeps_its_files);
	tcase_add_test(tc, test_delete_renames_then_forgets_the_sandbox_and_removes_its_files);
	tcase_add_test(tc, test_a_failed_sandbox_is_reported_refused_and_recovered);
	tcase_add_test(tc, test_auto_stop_counts_idle_minutes_and_an_ephemeral_sandbox_goes);
	tcase_add_test(tc, test_faults_answer_in_each_surfaces_shape_and_run_out);
	suite_add_tcase(s, tc);

	tcase_set_timeout(end, 300);
	tcase_add_test(end, test_sigterm_ends_every_sandbox_process_and_removes_their_files);
	suite_add_tcase(s, end);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
