/*
 * executor_test.c - the executor as its callers see it: real router and
 * worker processes, real bubblewrap sandboxes, a real Postgres. A run
 * returns what a notebook would show (output, value, tables, figures,
 * images, files); a chat's variables persist and no other chat or user
 * sees them; files put into a chat survive a reset; idle sessions end and
 * say why; the warm pool hands out ready sandboxes; a chat always reaches
 * the worker holding its session, and when that worker dies the next run
 * says so; every run is in the audit log.
 *
 * executor_daytona_test.c runs the same cases against the Daytona backend
 * (EXECUTOR_TEST_DAYTONA set, then this file included): up() then starts a
 * Daytona double and points the executor at it.
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_b64.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_exec.h"

/*
 * Sized for a loaded host running the sanitizer build: a run's wall clock
 * (EXECUTOR_TIMEOUT), how long a caller waits for a run, which may first
 * start a sandbox (EXECUTOR_SANDBOX_START_TIMEOUT) and then use all of its
 * wall clock, and how long it waits for any other call.
 */
#define RUN_TIMEOUT  "60s"
#define RUN_WAIT_MS  180000
#define CALL_WAIT_MS 120000
/* A process starting: migrations, the sandbox check with its preload, the worker's hello. */
#define START_WAIT_MS 120000

static mt_exec ex;
static char alice[64], bob[64];

#ifdef EXECUTOR_TEST_DAYTONA
#include "mt_daytona.h"
#define DT_KEY "dtn-test-key"
static mt_daytona dt;
static char dt_url_env[160];
#endif

/* The backend's settings, in every executor's (none for the local backend). */
#ifdef EXECUTOR_TEST_DAYTONA
#define BACKEND_ENV                                                                                \
	"EXECUTOR_BACKEND=daytona", "DAYTONA_API_KEY=" DT_KEY, "DAYTONA_START_TIMEOUT=120s",       \
	    "DAYTONA_WORKER_LEASE=8s", "DAYTONA_REAP_INTERVAL=1s", dt_url_env,
#else
#define BACKEND_ENV
#endif

/* The executor's settings (also for a restart). */
static const char *exec_env[] = {"EXECUTOR_POOL_SIZE=1", "EXECUTOR_TIMEOUT=" RUN_TIMEOUT,
                                 "EXECUTOR_SANDBOX_START_TIMEOUT=60s", "EXECUTOR_LOG_LEVEL=info",
                                 BACKEND_ENV NULL};

static void up(void)
{
	char err[512];

	snprintf(alice, sizeof(alice), "alice-%d", (int)getpid());
	snprintf(bob, sizeof(bob), "bob-%d", (int)getpid());
#ifdef EXECUTOR_TEST_DAYTONA
	if (mt_daytona_start(&dt, "daytona", DT_KEY, NULL, NULL, err, sizeof(err)) != 0) {
		fprintf(stderr, "the Daytona double did not start: %s\n", err);
		exit(1);
	}
	snprintf(dt_url_env, sizeof(dt_url_env), "DAYTONA_API_URL=%s", mt_daytona_url(&dt, "/api"));
#endif
	if (mt_exec_start(&ex, "exec", exec_env, START_WAIT_MS, err, sizeof(err)) != 0) {
		fprintf(stderr, "the executor did not start: %s\n", err);
		exit(1);
	}
}

static void down(void)
{
	ck_assert_int_eq(mt_exec_stop(&ex), 0);
#ifdef EXECUTOR_TEST_DAYTONA
	ck_assert_int_eq(mt_daytona_stop(&dt), 0);
#endif
}

#ifdef EXECUTOR_TEST_DAYTONA
static char chats_made[256][80]; /* every chat id made, to end them all at the end */
static int nchats;

/* The Daytona sandbox the chat's live session holds, from exec.sessions, into id; NULL if none. */
static const char *sandbox_of(const char *c, char *id, size_t len)
{
	PGconn *db = PQconnectdb(mt_dsn());
	const char *p[1] = {c};
	PGresult *q =
	    PQexecParams(db, "SELECT sandbox FROM exec.sessions WHERE chat_id = $1 AND live", 1,
	                 NULL, p, NULL, NULL, 0);
	const char *r = NULL;

	if (PQresultStatus(q) == PGRES_TUPLES_OK && PQntuples(q) == 1 && !PQgetisnull(q, 0, 0)) {
		snprintf(id, len, "%s", PQgetvalue(q, 0, 0));
		r = id;
	}
	PQclear(q);
	PQfinish(db);
	return r;
}

/* Whether the double still has sandbox id (not destroyed). */
static int sandbox_exists(const char *id)
{
	cJSON *l = mt_daytona_sandboxes(&dt), *sb;
	int found = 0;

	ck_assert_ptr_nonnull(l);
	cJSON_ArrayForEach(sb, l)
	{
		found |= strcmp(mk_json_str(sb, "id"), id) == 0;
	}
	cJSON_Delete(l);
	return found;
}
#endif

/* A chat id unique to this run. */
static const char *chat(const char *tag)
{
	static char buf[8][80];
	static int i;
	char *b = buf[i++ % 8];

	snprintf(b, 80, "%s-%d-%d", tag, (int)getpid(), i);
#ifdef EXECUTOR_TEST_DAYTONA
	if (nchats < 256)
		snprintf(chats_made[nchats++], 80, "%s", b);
#endif
	return b;
}

static cJSON *run(const char *user, const char *c, const char *code)
{
	char msg[512] = "";
	mk_err e = MK_OK;
	cJSON *r = mt_exec_run(&ex, user, c, code, RUN_WAIT_MS, &e, msg, sizeof(msg));

	ck_assert_msg(r != NULL, "exec.run failed: %s %s", mk_err_code(e), msg);
	return r;
}

static const char *out_of(const cJSON *r)
{
	const char *s = mk_json_str(r, "stdout");

	return s ? s : "";
}

static const char *value_text(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "value");

	return cJSON_IsObject(v) ? mk_json_str(v, "text") : NULL;
}

static const char *error_type(const cJSON *r)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, "error");

	return cJSON_IsObject(v) ? mk_json_str(v, "type") : NULL;
}

static const cJSON *session_of(const cJSON *r)
{
	return cJSON_GetObjectItemCaseSensitive(r, "session");
}

static mk_err call(const char *user, mk_op op, const char *body, mk_rpc_result *res)
{
	return mt_exec_call(&ex, op, user, body, CALL_WAIT_MS, res);
}

START_TEST(test_a_run_shows_output_value_tables_figures_images_and_files)
{
	const char *c = chat("show");
	cJSON *r = run(alice, c,
	               "import pandas as pd, plotly.express as px\n"
	               "import matplotlib.pyplot as plt\n"
	               "print('hello from the sandbox')\n"
	               "df = pd.DataFrame({'region': ['north', 'south', 'east'], 'sales': [10, 20, "
	               "30]})\n"
	               "display(df)\n"
	               "px.bar(df, x='region', y='sales').show()\n"
	               "plt.plot([1, 2, 3], [3, 1, 2])\n"
	               "df.to_csv('output/sales.csv', index=False)\n"
	               "df.sales.sum() * 2\n");
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(r, "tables");
	const cJSON *figs = cJSON_GetObjectItemCaseSensitive(r, "figures");
	const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(r, "images");
	const cJSON *arts = cJSON_GetObjectItemCaseSensitive(r, "artifacts");
	const cJSON *t0, *cols;
	long long total;
	char body[256];
	mk_rpc_result res;
	size_t n;
	unsigned char *png;

	ck_assert_str_eq(out_of(r), "hello from the sandbox\n");
	ck_assert_str_eq(value_text(r), "120");
	ck_assert_ptr_null(error_type(r));
	ck_assert_ptr_nonnull(mk_json_str(r, "execution_id"));
	ck_assert_int_eq(cJSON_GetArraySize(tables), 1);
	t0 = cJSON_GetArrayItem(tables, 0);
	cols = cJSON_GetObjectItemCaseSensitive(t0, "columns");
	ck_assert_str_eq(cJSON_GetArrayItem(cols, 0)->valuestring, "region");
	ck_assert(mk_json_int(t0, "total_rows", &total) == 0 && total == 3);
	ck_assert_int_eq(cJSON_GetArraySize(figs), 1);
	ck_assert_ptr_nonnull(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(figs, 0), "data"));
	ck_assert_int_eq(cJSON_GetArraySize(imgs), 1);
	ck_assert_int_eq(cJSON_GetArraySize(arts), 1);
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(arts, 0), "path"), "output/sales.csv");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(arts, 0), "mime"), "text/csv");

	/* The image is an artifact its owner can fetch: a real PNG. */
	snprintf(body, sizeof(body), "{\"artifact_id\":\"%s\"}",
	         mk_json_str(cJSON_GetArrayItem(imgs, 0), "artifact_id"));
	ck_assert_int_eq(call(alice, MK_OP_EXEC_ARTIFACT, body, &res), MK_OK);
	ck_assert_str_eq(mk_json_str(res.body, "mime"), "image/png");
	png = mk_b64_decode(mk_json_str(res.body, "data_b64"),
	                    strlen(mk_json_str(res.body, "data_b64")), &n);
	ck_assert(png && n > 100 && memcmp(png, "\x89PNG", 4) == 0);
	free(png);
	mk_rpc_result_release(&res);
	/* ... and nobody else can. */
	ck_assert_int_eq(call(bob, MK_OP_EXEC_ARTIFACT, body, &res), MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_a_failing_run_returns_its_traceback_and_the_session_goes_on)
{
	const char *c = chat("fail");
	cJSON *r = run(alice, c, "rows = [1, 2, 3]\ntotal = sum(rows)\ntotal / 0\n");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(r, "error");
	const char *tb = mk_json_str(err, "traceback");

	ck_assert_str_eq(error_type(r), "ZeroDivisionError");
	ck_assert_ptr_nonnull(tb);
	ck_assert_ptr_nonnull(strstr(tb, "total / 0"));
	ck_assert_ptr_null(strstr(tb, "driver.py"));
	cJSON_Delete(r);
	r = run(alice, c, "total + 1");
	ck_assert_str_eq(value_text(r), "7");
	cJSON_Delete(r);
	r = run(alice, c, "def broken(:\n  pass");
	ck_assert_str_eq(error_type(r), "SyntaxError");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_variables_persist_in_a_chat_and_no_other_chat_or_user_sees_them)
{
	const char *a = chat("mine"), *b = chat("other");
	mk_rpc_result res;
	char body[256];
	cJSON *r;

	r = run(alice, a, "import numpy as np\nsecret = np.arange(10).sum()");
	cJSON_Delete(r);
	r = run(alice, a, "int(secret) + 1");
	ck_assert_str_eq(value_text(r), "46");
	cJSON_Delete(r);
	/* Another chat of the same user: a separate session. */
	r = run(alice, b, "secret");
	ck_assert_str_eq(error_type(r), "NameError");
	cJSON_Delete(r);
	/* Another user cannot use, list or reset the chat at all. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"code\":\"secret\"}", a);
	ck_assert_int_eq(call(bob, MK_OP_EXEC_RUN, body, &res), MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", a);
	ck_assert_int_eq(call(bob, MK_OP_EXEC_LIST, body, &res), MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(call(bob, MK_OP_EXEC_RESET, body, &res), MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
	/* And without a caller, nothing runs. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"code\":\"1\"}", a);
	ck_assert_int_eq(call(NULL, MK_OP_EXEC_RUN, body, &res), MK_E_UNAUTHENTICATED);
	mk_rpc_result_release(&res);
}
END_TEST

START_TEST(test_files_put_into_a_chat_are_read_listed_fetched_and_survive_a_reset)
{
	const char *c = chat("files");
	const char *csv = "city,people\nOslo,700000\nBergen,290000\n";
	char *b64 = mk_b64_encode(csv, strlen(csv));
	char body[512];
	mk_rpc_result res;
	const cJSON *files, *s;
	cJSON *r;
	int found = 0, i;

	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"data/cities.csv\",\"data_b64\":\"%s\"}", c, b64);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_PUT, body, &res), MK_OK);
	mk_rpc_result_release(&res);
	r = run(alice, c,
	        "import pandas as pd\ncities = "
	        "pd.read_csv('data/cities.csv')\nint(cities.people.sum())");
	ck_assert_str_eq(value_text(r), "990000");
	cJSON_Delete(r);

	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_LIST, body, &res), MK_OK);
	files = cJSON_GetObjectItemCaseSensitive(res.body, "files");
	for (i = 0; i < cJSON_GetArraySize(files); i++)
		found += strcmp(mk_json_str(cJSON_GetArrayItem(files, i), "path"),
		                "data/cities.csv") == 0;
	ck_assert_int_eq(found, 1);
	mk_rpc_result_release(&res);

	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"data/cities.csv\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_GET, body, &res), MK_OK);
	ck_assert_str_eq(mk_json_str(res.body, "data_b64"), b64);
	mk_rpc_result_release(&res);

	/* After a reset the variables are gone, the file is not, and the run says why. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RESET, body, &res), MK_OK);
	mk_rpc_result_release(&res);
	r = run(alice, c,
	        "import os\nprint('cities' in globals(), os.path.exists('data/cities.csv'))");
	ck_assert_str_eq(out_of(r), "False True\n");
	s = session_of(r);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "reset")));
	ck_assert_str_eq(mk_json_str(s, "reason"), "reset");
	cJSON_Delete(r);
	free(b64);
}
END_TEST

START_TEST(test_bad_paths_parquet_and_oversized_code_are_refused_before_any_work)
{
	const char *c = chat("refuse");
	static const char *const bad[] = {"../escape.csv", "/etc/passwd", "a/../../b", "",
	                                  "a//b",          "dir/./x"};
	char body[512];
	mk_rpc_result res;
	size_t i;
	char *big;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mk_err e;

		snprintf(body, sizeof(body),
		         "{\"chat_id\":\"%s\",\"path\":\"%s\",\"data_b64\":\"eA==\"}", c, bad[i]);
		e = call(alice, MK_OP_EXEC_PUT, body, &res);
		ck_assert_msg(e == MK_E_VALIDATION, "path '%s' gave %s", bad[i], mk_err_code(e));
		mk_rpc_result_release(&res);
	}
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"x.csv\",\"data_b64\":\"not base64!\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_PUT, body, &res), MK_E_VALIDATION);
	mk_rpc_result_release(&res);
	/* This sandbox has no pyarrow: a Parquet file is refused with a clear reason. */
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"t.parquet\",\"data_b64\":\"UEFSMQ==\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_PUT, body, &res), MK_E_UNSUPPORTED_MEDIA);
	ck_assert_ptr_nonnull(strstr(res.msg, "not supported by this sandbox"));
	mk_rpc_result_release(&res);
	snprintf(body, sizeof(body), "{\"chat_id\":\"bad id!\",\"code\":\"1\"}");
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RUN, body, &res), MK_E_VALIDATION);
	mk_rpc_result_release(&res);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"code\":\"1\",\"timeout_ms\":3600000}",
	         c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RUN, body, &res), MK_E_VALIDATION);
	mk_rpc_result_release(&res);
	/* Code over EXECUTOR_CODE_MAX (256K by default). */
	big = malloc(300 * 1024 + 128);
	i = (size_t)snprintf(big, 128, "{\"chat_id\":\"%s\",\"code\":\"", c);
	memset(big + i, '#', 300 * 1024);
	strcpy(big + i + 300 * 1024, "\"}");
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RUN, big, &res), MK_E_TOO_LARGE);
	mk_rpc_result_release(&res);
	free(big);
}
END_TEST

START_TEST(test_a_run_over_its_time_is_stopped_and_the_next_run_says_the_session_was_reset)
{
	const char *c = chat("slow");
	char msg[256];
	mk_err e;
	cJSON *r;

	cJSON_Delete(run(alice, c, "x = 1"));
	r = mt_exec_run_for(&ex, alice, c, "while True:\n    pass", 1000, CALL_WAIT_MS, &e, msg,
	                    sizeof(msg));
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(mk_json_str(r, "limit"), "wall_time");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "session_lost")));
	cJSON_Delete(r);
	r = run(alice, c, "x");
	ck_assert_str_eq(error_type(r), "NameError");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	ck_assert_str_eq(mk_json_str(session_of(r), "reason"), "wall_time");
	cJSON_Delete(r);
}
END_TEST

/*
 * A run in a new chat, whose session is ended right after (so that the
 * chats of this test hold no sandbox); 1 when the sandbox was a warm one.
 */
static int new_chat_was_warm(void)
{
	const char *c = chat("warm");
	cJSON *r = run(alice, c, "import sys\n'pandas' in sys.modules");
	mk_rpc_result res;
	char body[128];
	int warm;

	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "started")));
	/* Warm or cold, the sandbox has the preloaded modules. */
	ck_assert_str_eq(value_text(r), "True");
	warm = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "warm"));
	cJSON_Delete(r);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RESET, body, &res), MK_OK);
	mk_rpc_result_release(&res);
	return warm;
}

START_TEST(test_the_warm_pool_hands_a_new_chat_a_ready_sandbox)
{
	int i;

	/*
	 * The pool holds one: each chat given it leaves the filler to start
	 * the next. A chat that comes while the filler is still at it starts
	 * cold (how long a start takes depends on the host), so new chats are
	 * tried until one gets the pool's sandbox, three times over.
	 */
	for (i = 0; i < 3; i++) {
		int64_t until = mk_mono_ms() + 120000;
		int warm;

		while (!(warm = new_chat_was_warm()) && mk_mono_ms() < until)
			sleep(1);
		ck_assert_msg(warm, "chat %d of 3: no warm sandbox within 120 s", i + 1);
	}
}
END_TEST

START_TEST(test_every_run_is_in_the_audit_log)
{
	const char *c = chat("audit");
	PGconn *db = PQconnectdb(mt_dsn());
	const char *p[1] = {c};
	PGresult *q;

	cJSON_Delete(run(alice, c, "print('audited')"));
	cJSON_Delete(run(alice, c, "1/0"));
	ck_assert_int_eq(PQstatus(db), CONNECTION_OK);
	q = PQexecParams(db,
	                 "SELECT user_id, code, status, coalesce(error_type, ''), stdout_bytes, "
	                 "ended_at >= started_at FROM exec.executions WHERE chat_id = $1 "
	                 "ORDER BY started_at",
	                 1, NULL, p, NULL, NULL, 0);
	ck_assert_int_eq(PQresultStatus(q), PGRES_TUPLES_OK);
	ck_assert_int_eq(PQntuples(q), 2);
	ck_assert_str_eq(PQgetvalue(q, 0, 0), alice);
	ck_assert_str_eq(PQgetvalue(q, 0, 1), "print('audited')");
	ck_assert_str_eq(PQgetvalue(q, 0, 2), "ok");
	ck_assert_str_eq(PQgetvalue(q, 0, 4), "8");
	ck_assert_str_eq(PQgetvalue(q, 0, 5), "t");
	ck_assert_str_eq(PQgetvalue(q, 1, 2), "error");
	ck_assert_str_eq(PQgetvalue(q, 1, 3), "ZeroDivisionError");
	PQclear(q);
	PQfinish(db);
}
END_TEST

/*
 * Wait (up to 60 s) until the executor records chat's session as ended;
 * its end_reason, or "" when it did not end (into reason, len bytes).
 */
static void wait_session_end(const char *c, char *reason, size_t len)
{
	PGconn *db = PQconnectdb(mt_dsn());
	const char *p[1] = {c};
	int64_t until = mk_mono_ms() + 60000;

	ck_assert_int_eq(PQstatus(db), CONNECTION_OK);
	reason[0] = '\0';
	do {
		PGresult *q = PQexecParams(db,
		                           "SELECT coalesce(end_reason, '') FROM exec.sessions "
		                           "WHERE chat_id = $1 AND NOT live",
		                           1, NULL, p, NULL, NULL, 0);

		ck_assert_int_eq(PQresultStatus(q), PGRES_TUPLES_OK);
		if (PQntuples(q) == 1)
			snprintf(reason, len, "%s", PQgetvalue(q, 0, 0));
		PQclear(q);
		if (!reason[0])
			mk_sleep_ms(100);
	} while (!reason[0] && mk_mono_ms() < until);
	PQfinish(db);
}

START_TEST(test_an_idle_session_ends_and_the_next_run_says_why)
{
	const char *env[] = {"EXECUTOR_POOL_SIZE=0", "EXECUTOR_IDLE_TIMEOUT=500ms",
	                     BACKEND_ENV NULL};
	mt_exec e2;
	char err[512], msg[256], reason[64];
	const char *c = chat("idle");
	mk_err e;
	cJSON *r;

	ck_assert_msg(mt_exec_start(&e2, "exec-idle", env, START_WAIT_MS, err, sizeof(err)) == 0,
	              "%s", err);
	r = mt_exec_run(&e2, alice, c, "x = 5", RUN_WAIT_MS, &e, msg, sizeof(msg));
	ck_assert_msg(r != NULL, "%s", msg);
	/* No pool: this chat's sandbox was started cold. */
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(session_of(r), "warm")));
	cJSON_Delete(r);
#ifdef EXECUTOR_TEST_DAYTONA
	char id[64];

	ck_assert_ptr_nonnull(sandbox_of(c, id, sizeof(id)));
#endif
	/* Left alone past its 500 ms, the session ends by itself. */
	wait_session_end(c, reason, sizeof(reason));
	ck_assert_str_eq(reason, "idle_timeout");
#ifdef EXECUTOR_TEST_DAYTONA
	/* ... and its Daytona sandbox is deleted with it. */
	{
		int64_t until = mk_mono_ms() + CALL_WAIT_MS;

		while (sandbox_exists(id) && mk_mono_ms() < until)
			mk_sleep_ms(100);
		ck_assert_msg(!sandbox_exists(id), "the idle chat's sandbox %s is still there", id);
	}
#endif
	r = mt_exec_run(&e2, alice, c, "x", RUN_WAIT_MS, &e, msg, sizeof(msg));
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(error_type(r), "NameError");
	ck_assert_str_eq(mk_json_str(session_of(r), "reason"), "idle_timeout");
	cJSON_Delete(r);
	ck_assert_int_eq(mt_exec_stop(&e2), 0);
}
END_TEST

/* A run on executor x that must be answered; its value's text checked when want is not NULL. */
static void run_on(mt_exec *x, const char *user, const char *c, const char *code, const char *want)
{
	char msg[256];
	mk_err e;
	cJSON *r = mt_exec_run(x, user, c, code, RUN_WAIT_MS, &e, msg, sizeof(msg));

	ck_assert_msg(r != NULL, "%s", msg);
	if (want)
		ck_assert_str_eq(value_text(r), want);
	cJSON_Delete(r);
}

/* chat's session was ended to make room (as the executor records it). */
static void assert_evicted(const char *c)
{
	char reason[64];

	wait_session_end(c, reason, sizeof(reason));
	ck_assert_str_eq(reason, "evicted");
}

START_TEST(test_room_for_a_new_chat_comes_from_the_user_holding_the_most)
{
	const char *env[] = {"EXECUTOR_POOL_SIZE=0", "EXECUTOR_MAX_SESSIONS=3", BACKEND_ENV NULL};
	const char *b1 = chat("fair-b1"), *a1 = chat("fair-a1"), *a2 = chat("fair-a2");
	const char *c1 = chat("fair-c1");
	const char *const order[][2] = {{bob, b1}, {alice, a1}, {alice, a2}};
	char err[512], carol[64];
	mt_exec e3;

	snprintf(carol, sizeof(carol), "carol-%d", (int)getpid());
	ck_assert_msg(mt_exec_start(&e3, "exec-fair", env, START_WAIT_MS, err, sizeof(err)) == 0,
	              "%s", err);
	/* Bob's chat is the least recently used of all; Alice holds two. */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		run_on(&e3, order[i][0], order[i][1], "x = 7", NULL);
	run_on(&e3, carol, c1, "x = 7", NULL);
	/* Alice's oldest made the room; Bob's one chat kept its state. */
	assert_evicted(a1);
	run_on(&e3, bob, b1, "x", "7");
	ck_assert_int_eq(mt_exec_stop(&e3), 0);
}
END_TEST

/* 1 when a process on this host runs with exactly this command line (len bytes, NULs included). */
static int command_runs(const char *cmdline, size_t len)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	while (d && !found && (de = readdir(d))) {
		char path[300], buf[256];
		size_t n;
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		if (!(f = fopen(path, "rb")))
			continue;
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		found = n == len && memcmp(buf, cmdline, len) == 0;
	}
	if (d)
		closedir(d);
	return found;
}

/* A process to kill once a command line shows on the host (or after a minute regardless). */
struct killer {
	pid_t pid;
	char cmdline[48];
	size_t len;
};

static void *kill_when_running(void *arg)
{
	struct killer *k = arg;
	int64_t until = mk_mono_ms() + 60000;

	while (!command_runs(k->cmdline, k->len) && mk_mono_ms() < until)
		mk_sleep_ms(50);
	kill(k->pid, SIGKILL);
	return NULL;
}

/* Runs in new chats until one lands on worker `want`; returns that chat. */
static const char *chat_on(const char *want)
{
	for (int i = 0; i < 12; i++) {
		const char *c = chat("spread");
		cJSON *r = run(alice, c, "state = 'kept'");
		int hit = strcmp(mk_json_str(r, "worker_id"), want) == 0;

		cJSON_Delete(r);
		if (hit)
			return c;
	}
	return NULL;
}

/* A run on an executor, from a thread of its own. */
struct bg_run {
	mt_exec *x;
	const char *user, *chat, *code;
	cJSON *r;
};

static void *bg_run_main(void *arg)
{
	struct bg_run *b = arg;
	char msg[256];
	mk_err e;

	b->r = mt_exec_run(b->x, b->user, b->chat, b->code, RUN_WAIT_MS, &e, msg, sizeof(msg));
	return NULL;
}

START_TEST(test_one_user_is_held_to_their_own_sessions_and_runs_at_once)
{
	const char *env[] = {"EXECUTOR_POOL_SIZE=0", "EXECUTOR_USER_MAX_SESSIONS=2",
	                     "EXECUTOR_USER_MAX_RUNS=1", BACKEND_ENV NULL};
	const char *b1 = chat("own-b1"), *s1 = chat("own-s1"), *s2 = chat("own-s2");
	const char *s3 = chat("own-s3");
	const char *const order[][2] = {{bob, b1}, {alice, s1}, {alice, s2}, {alice, s3}};
	char err[512], msg[256], code[160], cmd[48], marker[32];
	struct bg_run slow;
	pthread_t th;
	int64_t until;
	size_t cmdlen;
	mt_exec e4;
	mk_err e;
	cJSON *r;

	ck_assert_msg(mt_exec_start(&e4, "exec-own", env, START_WAIT_MS, err, sizeof(err)) == 0,
	              "%s", err);
	/* Bob's chat is the oldest, but Alice's third session makes room from her own. */
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		run_on(&e4, order[i][0], order[i][1], "x = 3", NULL);
	assert_evicted(s1);
	run_on(&e4, bob, b1, "x", "3");

	/* One run of Alice's at a time: while one sleeps, her next is refused; Bob's runs. */
	snprintf(marker, sizeof(marker), "8.%d", (int)getpid());
	snprintf(code, sizeof(code), "import subprocess\nsubprocess.run(['sleep', '%s'])", marker);
	cmdlen = (size_t)snprintf(cmd, sizeof(cmd), "sleep%c%s", '\0', marker) + 1;
	slow = (struct bg_run){.x = &e4, .user = alice, .chat = s2, .code = code};
	ck_assert_int_eq(pthread_create(&th, NULL, bg_run_main, &slow), 0);
	until = mk_mono_ms() + 60000;
	while (!command_runs(cmd, cmdlen) && mk_mono_ms() < until)
		mk_sleep_ms(50);
	ck_assert_msg(command_runs(cmd, cmdlen), "the slow run did not start");
	r = mt_exec_run(&e4, alice, s3, "1", RUN_WAIT_MS, &e, msg, sizeof(msg));
	ck_assert_msg(r == NULL && e == MK_E_RATE_LIMITED, "got %s: %s", mk_err_code(e), msg);
	ck_assert_msg(strstr(msg, "runs of this user are going at once") != NULL, "%s", msg);
	run_on(&e4, bob, b1, "x", "3");
	pthread_join(th, NULL);
	ck_assert_ptr_nonnull(slow.r);
	cJSON_Delete(slow.r);
	/* Once it ended, her next run goes. */
	run_on(&e4, alice, s3, "x", "3");
	ck_assert_int_eq(mt_exec_stop(&e4), 0);
}
END_TEST

START_TEST(test_a_chat_stays_on_its_worker_and_a_dead_workers_chats_start_over)
{
	char err[512], w1[64], msg[256], body[512], marker[32];
	const char *c, *slow;
	struct killer k;
	pthread_t killer;
	int idx;
	mk_err e;
	cJSON *r;
	mk_rpc_result res;

	idx = mt_exec_worker_start(&ex, NULL, START_WAIT_MS, err, sizeof(err));
	ck_assert_msg(idx >= 0, "%s", err);
	snprintf(w1, sizeof(w1), "%s-w%d", ex.name, idx + 1);
	c = chat_on(w1);
	ck_assert_msg(c != NULL, "no new chat went to the second worker");
	/* The chat keeps reaching the worker that holds its state. */
	for (int i = 0; i < 4; i++) {
		r = run(alice, c, "state");
		ck_assert_str_eq(mk_json_str(r, "worker_id"), w1);
		ck_assert_str_eq(value_text(r), "'kept'");
		cJSON_Delete(r);
	}
	/*
	 * A run in flight when its worker dies gets a clear error, not a hang.
	 * The run starts a `sleep` with an argument of this test's own, which
	 * shows on the host when the run is under way; then the worker is
	 * killed.
	 */
	slow = chat_on(w1);
	ck_assert_ptr_nonnull(slow);
	snprintf(marker, sizeof(marker), "300.%d", (int)getpid());
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"code\":\"import subprocess, time\\n"
	         "subprocess.Popen(['sleep', '%s'])\\ntime.sleep(300)\"}",
	         slow, marker);
	k.pid = ex.worker[idx].pid;
	k.len = (size_t)snprintf(k.cmdline, sizeof(k.cmdline), "sleep%c%s", '\0', marker) + 1;
	ck_assert_int_eq(pthread_create(&killer, NULL, kill_when_running, &k), 0);
	e = call(alice, MK_OP_EXEC_RUN, body, &res);
	pthread_join(killer, NULL);
	ck_assert_msg(e == MK_E_WORKER_LOST, "got %s", mk_err_code(e));
	mk_rpc_result_release(&res);
	mt_exec_worker_stop(&ex, idx, SIGKILL, 60000);
	/* The chat's next run lands on the surviving worker and says what happened. */
	r = mt_exec_run(&ex, alice, c, "state", RUN_WAIT_MS, &e, msg, sizeof(msg));
	ck_assert_msg(r != NULL, "%s", msg);
	ck_assert_str_ne(mk_json_str(r, "worker_id"), w1);
#ifdef EXECUTOR_TEST_DAYTONA
	/* Its Daytona sandbox outlived the worker: taken over, state and all. */
	ck_assert_str_eq(value_text(r), "'kept'");
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
#else
	ck_assert_str_eq(error_type(r), "NameError");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	ck_assert_str_eq(mk_json_str(session_of(r), "reason"), "worker_lost");
#endif
	cJSON_Delete(r);
}
END_TEST

#ifndef EXECUTOR_TEST_DAYTONA
static Suite *suite(void)
{
	Suite *s = suite_create("executor");
	TCase *tc = tcase_create("executor");

	tcase_add_unchecked_fixture(tc, up, down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_a_run_shows_output_value_tables_figures_images_and_files);
	tcase_add_test(tc, test_a_failing_run_returns_its_traceback_and_the_session_goes_on);
	tcase_add_test(tc, test_variables_persist_in_a_chat_and_no_other_chat_or_user_sees_them);
	tcase_add_test(tc, test_files_put_into_a_chat_are_read_listed_fetched_and_survive_a_reset);
	tcase_add_test(tc, test_bad_paths_parquet_and_oversized_code_are_refused_before_any_work);
	tcase_add_test(
	    tc, test_a_run_over_its_time_is_stopped_and_the_next_run_says_the_session_was_reset);
	tcase_add_test(tc, test_the_warm_pool_hands_a_new_chat_a_ready_sandbox);
	tcase_add_test(tc, test_every_run_is_in_the_audit_log);
	tcase_add_test(tc, test_an_idle_session_ends_and_the_next_run_says_why);
	tcase_add_test(tc, test_room_for_a_new_chat_comes_from_the_user_holding_the_most);
	tcase_add_test(tc, test_one_user_is_held_to_their_own_sessions_and_runs_at_once);
	tcase_add_test(tc, test_a_chat_stays_on_its_worker_and_a_dead_workers_chats_start_over);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
#endif
