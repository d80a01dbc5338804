/*
 * executor_daytona_test.c - the executor with EXECUTOR_BACKEND=daytona,
 * against the Daytona double (real processes, real Postgres, code run for
 * real in the double's bubblewrap): the cases of executor_test.c (results,
 * state between runs, isolation, errors, limits), then what the Daytona
 * contract warns about (409 during a transition, 429 with a bucketed retry
 * header, bare 502s, empty error bodies, a slow start), each either
 * recovered from or answered with a clear error; and at the end no
 * sandbox the tests made is left.
 */
#define EXECUTOR_TEST_DAYTONA 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "executor_test.c"
#pragma GCC diagnostic pop

/* Count the live sandboxes of the double (GET /_double/sandboxes). */
static int live_sandboxes(void)
{
	cJSON *l = mt_daytona_sandboxes(&dt);
	int n = l ? cJSON_GetArraySize(l) : -1;

	cJSON_Delete(l);
	return n;
}

static void faults(const char *json)
{
	char err[256];

	ck_assert_msg(mt_daytona_faults(&dt, json, err, sizeof(err)) == 0, "faults: %s", err);
}

/* A new chat's first run, with faults on the way; it must give the value 2. */
static void new_chat_runs_despite(const char *json)
{
	const char *c = chat("fault");
	mk_rpc_result res;
	char body[128];
	cJSON *r;

	faults(json);
	r = run(alice, c, "1 + 1");
	ck_assert_msg(value_text(r) && strcmp(value_text(r), "2") == 0, "faults %s: %s", json,
	              mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "error"), "message"));
	cJSON_Delete(r);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_RESET, body, &res), MK_OK);
	mk_rpc_result_release(&res);
}

START_TEST(test_a_sandbox_is_made_despite_409s_429s_502s_400s_and_empty_bodies)
{
	new_chat_runs_despite("{\"rules\":[{\"route\":\"sandbox.create\",\"status\":429,"
	                      "\"times\":2,\"retry_after\":1}]}");
	new_chat_runs_despite("{\"rules\":[{\"route\":\"sandbox.get\",\"status\":502,"
	                      "\"times\":2,\"empty_body\":true}]}");
	new_chat_runs_despite("{\"rules\":[{\"route\":\"sandbox.delete\",\"status\":409,"
	                      "\"times\":2}]}");
	new_chat_runs_despite(
	    "{\"rules\":[{\"route\":\"files.upload\",\"status\":400,"
	    "\"times\":1,\"message\":\"bad request: failed to resolve container IP "
	    "after 3 attempts. Is the Sandbox started?\"}]}");
	new_chat_runs_despite("{\"rules\":[{\"route\":\"files.upload\",\"status\":502,"
	                      "\"times\":1,\"empty_body\":true}]}");
}
END_TEST

START_TEST(test_a_slow_start_is_waited_for)
{
	char err[256];

	ck_assert(mt_daytona_config(&dt, "{\"start_delay_ms\":3000}", err, sizeof(err)) == 0);
	new_chat_runs_despite("{\"rules\":[]}");
	ck_assert(mt_daytona_config(&dt, "{\"start_delay_ms\":0}", err, sizeof(err)) == 0);
}
END_TEST

START_TEST(test_a_failing_execute_is_a_clear_error_and_the_next_run_starts_over)
{
	const char *c = chat("bare502");
	cJSON *r;

	cJSON_Delete(run(alice, c, "x = 1"));
	faults("{\"rules\":[{\"route\":\"process.execute\",\"status\":502,\"times\":1,"
	       "\"empty_body\":true}]}");
	r = run(alice, c, "x");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "session_lost")));
	ck_assert_str_eq(error_type(r), "SandboxError");
	ck_assert_ptr_nonnull(
	    strstr(mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "error"), "message"), "502"));
	cJSON_Delete(r);
	r = run(alice, c, "x");
	ck_assert_str_eq(error_type(r), "NameError");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	cJSON_Delete(r);
}
END_TEST

/* How many requests of the double's log (since its last reset) went to route. */
static int requests_to(const char *route, const char *query_has)
{
	mt_resp resp;
	cJSON *log, *q;
	int n = 0;

	ck_assert_int_eq(mt_daytona_call(&dt, NULL, "GET", "/_double/requests", NULL, &resp), 0);
	ck_assert_int_eq(resp.status, 200);
	log = resp.json;
	resp.json = NULL;
	mt_resp_release(&resp);
	ck_assert_ptr_nonnull(log);
	cJSON_ArrayForEach(q, log)
	{
		const char *query = mk_json_str(q, "query");

		n += strcmp(mk_json_str(q, "route"), route) == 0 &&
		     (!query_has || (query && strstr(query, query_has)));
	}
	cJSON_Delete(log);
	return n;
}

/* An exec.get of path in chat c: its data_b64 (into out), or the error. */
static mk_err get_file(const char *c, const char *path, char *out, size_t len)
{
	mk_rpc_result res;
	char body[256];
	mk_err e;

	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"%s\"}", c, path);
	e = call(alice, MK_OP_EXEC_GET, body, &res);
	snprintf(out, len, "%s", e == MK_OK ? mk_json_str(res.body, "data_b64") : res.msg);
	mk_rpc_result_release(&res);
	return e;
}

START_TEST(test_files_and_artifacts_move_through_the_toolbox_file_endpoints)
{
	const char *c = chat("tbfiles");
	mk_rpc_result res;
	char body[512], got[256];
	const cJSON *art, *files;
	cJSON *r;
	int i, found = 0;

	cJSON_Delete(run(alice, c, "x = 1"));
	ck_assert_int_eq(mt_daytona_reset(&dt), 0);
	/* In: an upload lands in the workspace, by upload-v2. */
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"in/t.csv\",\"data_b64\":\"YSxiCjEsMgo=\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_PUT, body, &res), MK_OK);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(
	    requests_to("files.upload", "path=%2Fhome%2Fdaytona%2Fworkspace%2Fin%2Ft.csv"), 1);
	/* The run sees it, and its output file comes back as an artifact, by download. */
	r = run(alice, c,
	        "import pandas as pd\n"
	        "pd.read_csv('in/t.csv').assign(c=3).to_csv('output/o.csv', index=False)\n"
	        "open('w.txt', 'w').write('written')");
	ck_assert_ptr_null(error_type(r));
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, "artifacts")), 1);
	art = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "artifacts"), 0);
	ck_assert_str_eq(mk_json_str(art, "path"), "output/o.csv");
	snprintf(body, sizeof(body), "{\"artifact_id\":\"%s\"}", mk_json_str(art, "artifact_id"));
	cJSON_Delete(r);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_ARTIFACT, body, &res), MK_OK);
	ck_assert_str_eq(mk_json_str(res.body, "data_b64"), "YSxiLGMKMSwyLDMK"); /* a,b,c 1,2,3 */
	mk_rpc_result_release(&res);
	ck_assert_int_eq(
	    requests_to("files.download", "path=%2Fhome%2Fdaytona%2Fworkspace%2Foutput%2Fo.csv"),
	    1);
	/* Out: a file the code wrote, by download; the listing, by the file list. */
	ck_assert_int_eq(get_file(c, "w.txt", got, sizeof(got)), MK_OK);
	ck_assert_str_eq(got, "d3JpdHRlbg==");
	ck_assert_int_eq(requests_to("files.download", "w.txt"), 1);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_LIST, body, &res), MK_OK);
	files = cJSON_GetObjectItemCaseSensitive(res.body, "files");
	for (i = 0; i < cJSON_GetArraySize(files); i++) {
		const cJSON *f = cJSON_GetArrayItem(files, i);

		/* The driver's order: the workspace's own files before those of in/ and output/. */
		if (i == 0)
			ck_assert_str_eq(mk_json_str(f, "path"), "w.txt");
		found += strcmp(mk_json_str(f, "path"), "in/t.csv") == 0 ||
		         strcmp(mk_json_str(f, "path"), "output/o.csv") == 0;
	}
	ck_assert_int_eq(found, 2);
	mk_rpc_result_release(&res);
	ck_assert_int_eq(requests_to("files.list", "workspace"), 1);
	/* None of it went through the driver: the run was the only command. */
	ck_assert_int_eq(requests_to("process.execute", NULL), 1);
}
END_TEST

START_TEST(test_file_calls_are_retried_after_bare_502s_and_say_what_failed)
{
	const char *c = chat("files502");
	mk_rpc_result res;
	char body[256], got[512];
	const cJSON *art;
	cJSON *r;

	cJSON_Delete(run(alice, c, "open('kept.txt', 'w').write('x')"));
	/* Each file call passes a bare 502, and a 400 while the sandbox is not reachable. */
	faults("{\"rules\":[{\"route\":\"files.download\",\"status\":502,\"times\":1},"
	       "{\"route\":\"files.list\",\"status\":502,\"times\":1},"
	       "{\"route\":\"files.upload\",\"status\":502,\"times\":1},"
	       "{\"route\":\"files.upload\",\"status\":400,\"times\":1,\"message\":\"bad request: "
	       "failed to resolve container IP after 3 attempts. Is the Sandbox started?\"}]}");
	ck_assert_int_eq(get_file(c, "kept.txt", got, sizeof(got)), MK_OK);
	ck_assert_str_eq(got, "eA==");
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_LIST, body, &res), MK_OK);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.body, "live")));
	mk_rpc_result_release(&res);
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"up.txt\",\"data_b64\":\"eQ==\"}", c);
	ck_assert_int_eq(call(alice, MK_OP_EXEC_PUT, body, &res), MK_OK);
	mk_rpc_result_release(&res);
	r = run(alice, c, "open('up.txt').read()");
	ck_assert_str_eq(value_text(r), "'y'");
	cJSON_Delete(r);
	/* An error with an empty body is not passed over: the file comes out with the reason. */
	faults("{\"rules\":[{\"route\":\"files.download\",\"status\":500,\"times\":1,"
	       "\"empty_body\":true}]}");
	r = run(alice, c, "open('output/a.txt', 'w').write('a')");
	art = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "artifacts"), 0);
	ck_assert_str_eq(mk_json_str(art, "path"), "output/a.txt");
	ck_assert_ptr_null(mk_json_str(art, "data_b64"));
	ck_assert_msg(strstr(mk_json_str(art, "skipped"), "500") &&
	                  strstr(mk_json_str(art, "skipped"), "empty body"),
	              "%s", mk_json_str(art, "skipped"));
	cJSON_Delete(r);
	/* A file the code wrote, whose download fails so, is a clear error too. */
	faults("{\"rules\":[{\"route\":\"files.download\",\"status\":404,\"times\":1,"
	       "\"empty_body\":true}]}");
	ck_assert_int_eq(get_file(c, "kept.txt", got, sizeof(got)), MK_E_NOT_FOUND);
	ck_assert_msg(strstr(got, "kept.txt") != NULL, "%s", got);
}
END_TEST

START_TEST(test_an_output_file_is_held_to_its_limit_whatever_size_the_sandbox_states)
{
	const char *c = chat("liar");
	const cJSON *art;
	cJSON *r;

	/* The code makes the driver say each output file has 1 byte, then writes 21 MB. */
	r = run(alice, c,
	        "import sys\n"
	        "g = sys._getframe(1).f_globals\n"
	        "real = g['scan_output']\n"
	        "g['scan_output'] = lambda: {p: (1, s[1]) for p, s in real().items()}\n"
	        "with open('output/big.bin', 'wb') as f:\n"
	        "    f.write(b'x' * (21 << 20))\n");
	ck_assert_msg(error_type(r) == NULL, "%s", error_type(r));
	art = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "artifacts"), 0);
	ck_assert_str_eq(mk_json_str(art, "path"), "output/big.bin");
	ck_assert_ptr_null(mk_json_str(art, "data_b64"));
	ck_assert_ptr_null(mk_json_str(art, "artifact_id"));
	ck_assert_str_eq(mk_json_str(art, "skipped"), "larger than 20971520 bytes");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_a_sandbox_that_breaks_is_a_clear_error_and_the_next_run_starts_over)
{
	const char *c = chat("broken");
	char path[160], id[64];
	mt_resp resp;
	cJSON *r, *l, *sb;
	const cJSON *labels = NULL;

	cJSON_Delete(run(alice, c, "y = 1"));
	/* The chat's sandbox, as the executor's schema names it, is labelled with the chat... */
	ck_assert_ptr_nonnull(sandbox_of(c, id, sizeof(id)));
	l = mt_daytona_sandboxes(&dt);
	cJSON_ArrayForEach(sb, l)
	{
		if (strcmp(mk_json_str(sb, "id"), id) == 0)
			labels = cJSON_GetObjectItemCaseSensitive(sb, "labels");
	}
	ck_assert_str_eq(mk_json_str(labels, "mark-chat"), c);
	ck_assert_str_eq(mk_json_str(labels, "mark-user"), alice);
	ck_assert_str_eq(mk_json_str(labels, "mark-deployment"), "mark");
	cJSON_Delete(l);
	/* ... and breaks. */
	snprintf(path, sizeof(path), "/_double/sandboxes/%s/state", id);
	ck_assert_int_eq(mt_daytona_call(&dt, NULL, "POST", path, "{\"state\":\"error\"}", &resp),
	                 0);
	ck_assert_int_eq(resp.status, 200);
	mt_resp_release(&resp);
	r = run(alice, c, "y");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "session_lost")) ||
	          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	ck_assert_str_eq(error_type(r), "SandboxError");
	cJSON_Delete(r);
	r = run(alice, c, "y");
	ck_assert_str_eq(error_type(r), "NameError");
	cJSON_Delete(r);
}
END_TEST

/*
 * The double's sandboxes labelled with worker w: how many, and into
 * *unnamed how many of them no live chat session names.
 */
static int sandboxes_of(const char *w, int *unnamed)
{
	PGconn *db = PQconnectdb(mt_dsn());
	PGresult *q = PQexec(db, "SELECT sandbox FROM exec.sessions WHERE live AND sandbox IS "
	                         "NOT NULL");
	cJSON *l = mt_daytona_sandboxes(&dt), *sb;
	int n = 0;

	ck_assert_int_eq(PQresultStatus(q), PGRES_TUPLES_OK);
	ck_assert_ptr_nonnull(l);
	*unnamed = 0;
	cJSON_ArrayForEach(sb, l)
	{
		const char *wk =
		    mk_json_str(cJSON_GetObjectItemCaseSensitive(sb, "labels"), "mark-worker");
		int named = 0;

		if (!wk || strcmp(wk, w) != 0)
			continue;
		for (int i = 0; i < PQntuples(q); i++)
			named |= strcmp(PQgetvalue(q, i, 0), mk_json_str(sb, "id")) == 0;
		n++;
		*unnamed += !named;
	}
	cJSON_Delete(l);
	PQclear(q);
	PQfinish(db);
	return n;
}

/* The mark-worker label of the double's sandbox id ("" when it is gone). */
static const char *worker_of(const char *id)
{
	static char w[64];
	cJSON *l = mt_daytona_sandboxes(&dt), *sb;

	w[0] = '\0';
	cJSON_ArrayForEach(sb, l)
	{
		const char *wk =
		    mk_json_str(cJSON_GetObjectItemCaseSensitive(sb, "labels"), "mark-worker");

		if (strcmp(mk_json_str(sb, "id"), id) == 0)
			snprintf(w, sizeof(w), "%s", wk ? wk : "");
	}
	cJSON_Delete(l);
	return w;
}

START_TEST(test_a_killed_workers_sandboxes_are_deleted_but_those_chats_hold_are_taken_over)
{
	char err[512], w[64], id[64], msg[256];
	const char *c;
	int idx, unnamed = 0;
	int64_t until;
	mk_err e;
	cJSON *r;

	idx = mt_exec_worker_start(&ex, NULL, START_WAIT_MS, err, sizeof(err));
	ck_assert_msg(idx >= 0, "%s", err);
	snprintf(w, sizeof(w), "%s-w%d", ex.name, idx + 1);
	c = chat_on(w);
	ck_assert_msg(c != NULL, "no new chat went to the second worker");
	ck_assert_ptr_nonnull(sandbox_of(c, id, sizeof(id)));
	/* The worker holds the chat's sandbox and, once its pool is filled, one no chat names. */
	until = mk_mono_ms() + CALL_WAIT_MS;
	while ((sandboxes_of(w, &unnamed), unnamed) == 0 && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_int_gt(unnamed, 0);
	/* Killed, it says goodbye to nobody: its sandboxes run on... */
	mt_exec_worker_stop(&ex, idx, SIGKILL, 60000);
	/* ... until a live worker finds them orphaned (its lease run out): all go but the chat's.
	 */
	until = mk_mono_ms() + CALL_WAIT_MS;
	while ((sandboxes_of(w, &unnamed), unnamed) > 0 && mk_mono_ms() < until)
		mk_sleep_ms(200);
	ck_assert_int_eq(unnamed, 0);
	ck_assert_str_eq(worker_of(id), w);
	/* The chat's next run takes its sandbox over, state and all, and labels it its own. */
	r = mt_exec_run(&ex, alice, c, "state", RUN_WAIT_MS, &e, msg, sizeof(msg));
	ck_assert_msg(r != NULL, "%s", msg);
	ck_assert_str_eq(value_text(r), "'kept'");
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	cJSON_Delete(r);
	ck_assert_str_ne(worker_of(id), w);
}
END_TEST

/* Stop the sandbox as Daytona's auto-stop does, and wait until it has stopped. */
static void daytona_stops(const char *id)
{
	char err[256];

	ck_assert_int_eq(mt_daytona_lifecycle(&dt, DT_KEY, id, "stop", NULL), 200);
	ck_assert_msg(mt_daytona_wait(&dt, DT_KEY, id, "stopped", CALL_WAIT_MS, err, sizeof(err)) ==
	                  0,
	              "%s", err);
}

/* A run in chat c after its sandbox was stopped: it goes, says the state is gone, files stay. */
static void runs_on_after_a_stop(const char *c, const char *id)
{
	char again[64];
	cJSON *r = run(alice, c, "x");

	ck_assert_str_eq(error_type(r), "NameError");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	ck_assert_str_eq(mk_json_str(session_of(r), "reason"), "sandbox_stopped");
	cJSON_Delete(r);
	r = run(alice, c, "x = 6\nopen('w.txt').read()");
	ck_assert_str_eq(value_text(r), "'kept'");
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	cJSON_Delete(r);
	/* The same sandbox, started again. */
	ck_assert_ptr_nonnull(sandbox_of(c, again, sizeof(again)));
	ck_assert_str_eq(again, id);
}

START_TEST(test_a_sandbox_daytona_stopped_is_started_again_and_the_run_says_its_state_is_gone)
{
	const char *c = chat("autostop");
	char id[64], err[512];
	cJSON *r;

	cJSON_Delete(run(alice, c, "x = 5\nopen('w.txt', 'w').write('kept')"));
	ck_assert_ptr_nonnull(sandbox_of(c, id, sizeof(id)));
	/* Stopped while its worker holds the chat. */
	daytona_stops(id);
	runs_on_after_a_stop(c, id);
	/* Stopped while no worker holds it: the next worker takes it over and starts it. */
	ck_assert_int_eq(mt_exec_stop(&ex), 0);
	daytona_stops(id);
	ck_assert_msg(mt_exec_start(&ex, "exec", exec_env, START_WAIT_MS, err, sizeof(err)) == 0,
	              "%s", err);
	runs_on_after_a_stop(c, id);
	r = run(alice, c, "x + 1");
	ck_assert_str_eq(value_text(r), "7");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_the_api_key_never_reaches_a_sandbox)
{
	cJSON *r =
	    run(alice, chat("secret"),
	        "import os\n"
	        "seen = repr(dict(os.environ))\n"
	        "for d, _, fs in os.walk('/home/daytona'):\n"
	        "    for f in fs:\n"
	        "        if os.path.isfile(os.path.join(d, f)):\n"
	        "            seen += open(os.path.join(d, f), 'rb').read().decode('latin-1')\n"
	        "for p in os.listdir('/proc'):\n"
	        "    for f in ('cmdline', 'environ'):\n"
	        "        try:\n"
	        "            seen += open(f'/proc/{p}/{f}', 'rb').read().decode('latin-1')\n"
	        "        except OSError:\n"
	        "            pass\n"
	        "('" DT_KEY "' in seen, len(seen) > 0)");

	ck_assert_msg(error_type(r) == NULL, "%s: %s", error_type(r),
	              mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "error"), "message"));
	ck_assert_str_eq(value_text(r), "(False, True)");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_a_restarted_executor_takes_a_chat_over_with_its_variables)
{
	const char *c = chat("restart");
	char err[512];
	cJSON *r;

	cJSON_Delete(run(alice, c, "kept = 41"));
	/* Stopped, its sessions' sandboxes stay (and their sessions in the schema). */
	ck_assert_int_eq(mt_exec_stop(&ex), 0);
	ck_assert_int_gt(live_sandboxes(), 0);
	ck_assert_msg(mt_exec_start(&ex, "exec-again", exec_env, START_WAIT_MS, err, sizeof(err)) ==
	                  0,
	              "%s", err);
	r = run(alice, c, "kept + 1");
	ck_assert_str_eq(value_text(r), "42");
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "reset")));
	ck_assert(!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(session_of(r), "started")));
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_no_sandbox_is_left_once_every_chat_ends_and_the_executor_stops)
{
	mk_rpc_result res;
	char body[256];
	int64_t until;

	char carol[64];

	snprintf(carol, sizeof(carol), "carol-%d", (int)getpid());
	ck_assert_int_gt(live_sandboxes(), 0); /* the warm pool's, at least */
	for (int i = 0; i < nchats; i++) {
		snprintf(body, sizeof(body), "{\"chat_id\":\"%.79s\"}", chats_made[i]);
		call(alice, MK_OP_EXEC_RESET, body, &res);
		mk_rpc_result_release(&res);
		call(bob, MK_OP_EXEC_RESET, body, &res);
		mk_rpc_result_release(&res);
		call(carol, MK_OP_EXEC_RESET, body, &res);
		mk_rpc_result_release(&res);
	}
	/* Once killed workers' orphans are reaped, only the running worker's pool is left... */
	until = mk_mono_ms() + CALL_WAIT_MS;
	while (live_sandboxes() > 1 && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_int_eq(live_sandboxes(), 1);
	/* ... and it goes with its worker. */
	ck_assert_int_eq(mt_exec_stop(&ex), 0);
	until = mk_mono_ms() + CALL_WAIT_MS;
	while (live_sandboxes() != 0 && mk_mono_ms() < until)
		mk_sleep_ms(100);
	ck_assert_int_eq(live_sandboxes(), 0);
	ck_assert_int_eq(mt_daytona_stop(&dt), 0);
}
END_TEST

static void up_daytona(void)
{
	up();
}

static Suite *suite(void)
{
	Suite *s = suite_create("executor_daytona");
	TCase *tc = tcase_create("executor_daytona");

	tcase_add_unchecked_fixture(tc, up_daytona, NULL);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_a_run_shows_output_value_tables_figures_images_and_files);
	tcase_add_test(tc, test_a_failing_run_returns_its_traceback_and_the_session_goes_on);
	tcase_add_test(tc, test_variables_persist_in_a_chat_and_no_other_chat_or_user_sees_them);
	tcase_add_test(tc, test_files_put_into_a_chat_are_read_listed_fetched_and_survive_a_reset);
	tcase_add_test(tc, test_bad_paths_parquet_and_oversized_code_are_refused_before_any_work);
	tcase_add_test(
	    tc, test_a_run_over_its_time_is_stopped_and_the_next_run_says_the_session_was_reset);
	tcase_add_test(tc, test_the_warm_pool_hands_a_new_chat_a_ready_sandbox);
	tcase_add_test(tc, test_every_run_is_in_the_audit_log);
	tcase_add_test(tc, test_a_sandbox_is_made_despite_409s_429s_502s_400s_and_empty_bodies);
	tcase_add_test(tc, test_a_slow_start_is_waited_for);
	tcase_add_test(tc, test_a_failing_execute_is_a_clear_error_and_the_next_run_starts_over);
	tcase_add_test(tc, test_files_and_artifacts_move_through_the_toolbox_file_endpoints);
	tcase_add_test(tc, test_file_calls_are_retried_after_bare_502s_and_say_what_failed);
	tcase_add_test(tc,
	               test_an_output_file_is_held_to_its_limit_whatever_size_the_sandbox_states);
	tcase_add_test(tc,
	               test_a_sandbox_that_breaks_is_a_clear_error_and_the_next_run_starts_over);
	tcase_add_test(tc, test_an_idle_session_ends_and_the_next_run_says_why);
	tcase_add_test(tc, test_room_for_a_new_chat_comes_from_the_user_holding_the_most);
	tcase_add_test(tc, test_one_user_is_held_to_their_own_sessions_and_runs_at_once);
	tcase_add_test(tc, test_a_chat_stays_on_its_worker_and_a_dead_workers_chats_start_over);
	tcase_add_test(
	    tc, test_a_sandbox_daytona_stopped_is_started_again_and_the_run_says_its_state_is_gone);
	tcase_add_test(tc, test_the_api_key_never_reaches_a_sandbox);
	tcase_add_test(
	    tc, test_a_killed_workers_sandboxes_are_deleted_but_those_chats_hold_are_taken_over);
	tcase_add_test(tc, test_a_restarted_executor_takes_a_chat_over_with_its_variables);
	tcase_add_test(tc, test_no_sandbox_is_left_once_every_chat_ends_and_the_executor_stops);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
