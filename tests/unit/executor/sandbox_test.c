/*
 * sandbox_test.c - the local sandbox backend (services/executor/sbx_local.c
 * and the files it is made of) with real bubblewrap and the real embedded
 * driver.
 *
 * Each test makes its own backend (one per forked test process: the
 * backend's spawner thread does not survive a fork). Its limits are small
 * where a test means to reach them (memory, output, processes, files) and
 * wide where none should be reached by accident: a test that waits for
 * one limit gives every other one a wide margin, so that a slow or loaded
 * host (a sanitizer build beside other jobs) changes how long a test
 * takes, never which limit it meets. Checked: a session's
 * output and state; the wall clock, output caps, memory, CPU, process,
 * file size and disk limits; isolation (no network, no host files, no host
 * environment, no other sandbox's files or processes, the seccomp deny
 * list); files in and out; that nothing of a sandbox is left after
 * sbx_destroy; concurrent creation; a sandbox outliving the thread that
 * made it.
 *
 * When run as root (as CI does) sandboxes get their own uids from
 * UID_BASE; the checks that need that are skipped otherwise. A host where
 * bubblewrap cannot make a user namespace fails every test: the
 * executor cannot work there.
 */
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <grp.h>
#include <signal.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "executor/sbx.h"
#include "mk_buf.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt_check.h"

#define BWRAP    "/usr/bin/bwrap"
#define PYTHON   "/usr/bin/python3"
#define UID_BASE 61000
/* Wall clock of code that finishes at once: far more than a loaded host needs. */
#define RUN_MS 60000
/* How late a stop at a limit may come on a loaded host; well under what the code would run. */
#define LATE_MS 15000

static sbx_backend *B;

static sbx_limits limits(void)
{
	sbx_limits l;

	memset(&l, 0, sizeof(l));
	l.memory_bytes = 512LL << 20;
	l.processes = 64;
	l.open_files = 256;
	l.file_size_bytes = 16 << 20;
	l.workspace_bytes = 32 << 20;
	/* CPU: wide, so that only the tests about CPU time (with their own backends) meet it. */
	l.cpu_total_s = 120;
	l.start_timeout_ms = 60000;
	l.cpu_s = 60;
	l.stdout_bytes = 10000;
	l.stderr_bytes = 10000;
	l.output_kill_bytes = 1 << 20;
	l.table_rows = 20;
	l.table_cols = 20;
	l.value_bytes = 10000;
	l.figure_bytes = 1 << 20;
	l.image_bytes = 1 << 20;
	l.artifact_bytes = 1 << 20;
	l.artifacts_total = 4 << 20;
	l.max_items = 10;
	return l;
}

static sbx_local_opts opts(const char *preload)
{
	sbx_local_opts o;

	memset(&o, 0, sizeof(o));
	o.bwrap = BWRAP;
	o.python = PYTHON;
	o.uid_base = geteuid() == 0 ? UID_BASE : -1;
	o.seccomp = 1;
	o.preload = preload;
	return o;
}

static sbx_backend *backend(const char *preload, const sbx_limits *l)
{
	sbx_local_opts o = opts(preload);
	char err[1024] = "";
	sbx_backend *b = sbx_local_new(&o, l, err, sizeof(err));

	ck_assert_msg(b != NULL, "sbx_local_new: %s", err);
	return b;
}

static void setup(void)
{
	sbx_limits l = limits();

	B = backend("", &l);
}

static void teardown(void)
{
	sbx_backend_free(B);
	B = NULL;
}

static sbx *box(sbx_backend *b)
{
	char err[1024] = "";
	sbx *s = sbx_create(b, err, sizeof(err));

	ck_assert_msg(s != NULL, "sbx_create: %s", err);
	return s;
}

static const char *str(const cJSON *o, const char *name)
{
	const char *v = mk_json_str(o, name);

	ck_assert_msg(v != NULL, "no string '%s'", name);
	return v;
}

static int flag(const cJSON *o, const char *name)
{
	int v = -1;

	ck_assert_msg(mk_json_bool(o, name, &v) == 0, "no bool '%s'", name);
	return v;
}

/* The result's limit, or "" when null. */
static const char *limit_of(const cJSON *r)
{
	const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "limit");

	ck_assert_msg(l && (cJSON_IsNull(l) || cJSON_IsString(l)), "no limit field");
	return cJSON_IsString(l) ? l->valuestring : "";
}

/* error.type, or "" when error is null. */
static const char *error_type(const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

	ck_assert_msg(e != NULL, "no error field");
	return cJSON_IsObject(e) ? str(e, "type") : "";
}

static const char *error_message(const cJSON *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r, "error");

	return cJSON_IsObject(e) ? str(e, "message") : "";
}

static cJSON *run(sbx *s, const char *code, long long timeout_ms)
{
	cJSON *r = sbx_exec(s, code, timeout_ms);

	ck_assert_ptr_nonnull(r);
	return r;
}

/* Run code that must succeed; returns its stdout (malloc'd). */
static char *run_ok(sbx *s, const char *code)
{
	cJSON *r = run(s, code, RUN_MS);
	char *out;

	ck_assert_msg(strcmp(error_type(r), "") == 0, "code failed: %s: %s", error_type(r),
	              error_message(r));
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	out = strdup(str(r, "stdout"));
	cJSON_Delete(r);
	return out;
}

static void expect_stdout(sbx *s, const char *code, const char *want)
{
	char *out = run_ok(s, code);

	ck_assert_str_eq(out, want);
	free(out);
}

/* pids of processes whose parent is us and whose command is bwrap. */
static int bwrap_children(pid_t *pids, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) && n < max) {
		char path[300], buf[512], *p;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		p = strrchr(buf, ')');
		if (p && strstr(buf, "(bwrap)") && sscanf(p + 1, " %*c %d", &ppid) == 1 &&
		    ppid == getpid())
			pids[n++] = (pid_t)strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return n;
}

/* The real uid of a process, or -1 when it is gone. */
static long uid_of(pid_t pid)
{
	char path[64], line[256];
	long uid = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	if (!(f = fopen(path, "r")))
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Uid: %ld", &uid) == 1)
			break;
	fclose(f);
	return uid;
}

/* Processes running under the sandbox uids (only meaningful as root). */
static int processes_of_sandbox_uids(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		long uid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		uid = uid_of((pid_t)strtol(e->d_name, NULL, 10));
		if (uid >= UID_BASE && uid < UID_BASE + 1024)
			n++;
	}
	closedir(d);
	return n;
}

/* ---- a session ------------------------------------------------------------ */

START_TEST(print_one_gives_one_and_a_newline_on_stdout)
{
	sbx *s = box(B);
	cJSON *r = run(s, "print(1)", RUN_MS);

	ck_assert_str_eq(str(r, "stdout"), "1\n");
	ck_assert_str_eq(str(r, "stderr"), "");
	ck_assert_str_eq(error_type(r), "");
	ck_assert_str_eq(limit_of(r), "");
	ck_assert_int_eq(flag(r, "stdout_truncated"), 0);
	ck_assert_int_eq(flag(r, "stderr_truncated"), 0);
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(r, "duration_ms")));
	ck_assert(cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(r, "tables")));
	ck_assert_int_eq(sbx_alive(s), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(variables_persist_from_one_execution_to_the_next)
{
	sbx *s = box(B);
	cJSON *r;

	expect_stdout(s, "x = 41\nimport sys", "");
	expect_stdout(s, "print(x + 1, file=sys.stdout)", "42\n");
	r = run(s, "x * 2", RUN_MS);
	ck_assert_str_eq(str(cJSON_GetObjectItemCaseSensitive(r, "value"), "text"), "82");
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(an_exception_is_the_codes_error_and_the_session_stays)
{
	sbx *s = box(B);
	cJSON *r = run(s, "print('before')\n{}['missing']", RUN_MS);

	ck_assert_str_eq(error_type(r), "KeyError");
	ck_assert_str_eq(str(r, "stdout"), "before\n");
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	cJSON_Delete(r);
	expect_stdout(s, "print('after')", "after\n");
	sbx_destroy(s);
}
END_TEST

START_TEST(stdout_and_stderr_arrive_separately_and_in_full)
{
	sbx *s = box(B);
	cJSON *r = run(s,
	               "import sys, os\n"
	               "print('out')\n"
	               "print('err', file=sys.stderr)\n"
	               "os.system('echo from-a-child; echo child-err >&2')\n",
	               RUN_MS);

	ck_assert_str_eq(str(r, "stdout"), "out\nfrom-a-child\n");
	ck_assert_str_eq(str(r, "stderr"), "err\nchild-err\n");
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(invalid_utf8_and_nul_in_output_become_replacement_characters)
{
	sbx *s = box(B);
	cJSON *r = run(s, "import os\nos.write(1, b'a\\xff\\x00b\\n')", RUN_MS);

	ck_assert_str_eq(str(r, "stdout"), "a\xef\xbf\xbd\xef\xbf\xbd"
	                                   "b\n");
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

/* ---- limits ------------------------------------------------------------------ */

START_TEST(a_busy_loop_is_stopped_at_the_wall_clock_limit_and_the_session_lost)
{
	sbx *s = box(B);
	int64_t t0 = mk_mono_ms();
	cJSON *r = run(s, "print('started', flush=True)\nwhile True: pass", 1000);
	int64_t took = mk_mono_ms() - t0;

	/* Stopped at its second, not sooner, and not much later (CPU and memory are wide). */
	ck_assert_msg(took >= 1000 && took < 1000 + LATE_MS, "took %lld ms", (long long)took);
	ck_assert_str_eq(limit_of(r), "wall_time");
	ck_assert_str_eq(error_type(r), "TimeoutError");
	ck_assert_ptr_nonnull(strstr(error_message(r), "longer than 1000 ms"));
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	ck_assert_str_eq(str(r, "stdout"), "started\n");
	ck_assert_int_eq(sbx_alive(s), 0);
	cJSON_Delete(r);
	/* A lost sandbox answers without running anything. */
	r = run(s, "print(1)", RUN_MS);
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_sleeping_execution_is_stopped_at_the_wall_clock_limit_too)
{
	sbx *s = box(B);
	int64_t t0 = mk_mono_ms();
	cJSON *r = run(s, "import time\ntime.sleep(60)", 800);
	int64_t took = mk_mono_ms() - t0;

	/* At its 800 ms: long before the minute the code sleeps. */
	ck_assert_msg(took >= 800 && took < 800 + LATE_MS, "took %lld ms", (long long)took);
	ck_assert_str_eq(limit_of(r), "wall_time");
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(stdout_past_its_limit_is_cut_with_a_marker_and_the_session_stays)
{
	sbx *s = box(B);
	cJSON *r = run(s, "print('x' * 25000)", RUN_MS);
	const char *out = str(r, "stdout");

	ck_assert_int_eq(flag(r, "stdout_truncated"), 1);
	ck_assert_int_eq(strspn(out, "x"), 10000);
	ck_assert_str_eq(out + 10000, "\n[output cut: 15001 more bytes not shown]\n");
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	ck_assert_str_eq(limit_of(r), "");
	cJSON_Delete(r);
	expect_stdout(s, "print('next')", "next\n");
	sbx_destroy(s);
}
END_TEST

START_TEST(stderr_past_its_limit_is_cut_the_same_way)
{
	sbx *s = box(B);
	cJSON *r = run(s, "import sys\nsys.stderr.write('e' * 12345)", RUN_MS);

	ck_assert_int_eq(flag(r, "stderr_truncated"), 1);
	ck_assert_int_eq(flag(r, "stdout_truncated"), 0);
	ck_assert_ptr_nonnull(strstr(str(r, "stderr"), "[output cut: 2345 more bytes not shown]"));
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(endless_output_is_stopped_at_the_kill_threshold)
{
	sbx *s = box(B);
	int64_t t0 = mk_mono_ms();
	/* A wall clock of a minute: the output limit, not the clock, must stop it. */
	cJSON *r = run(s, "while True:\n    print('y' * 10000)", 60000);
	int64_t took = mk_mono_ms() - t0;

	ck_assert_msg(took < 30000, "took %lld ms", (long long)took);
	ck_assert_str_eq(limit_of(r), "output");
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	ck_assert_int_eq(flag(r, "stdout_truncated"), 1);
	ck_assert_int_eq(sbx_alive(s), 0);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_large_allocation_fails_with_memory_and_the_session_stays)
{
	sbx *s = box(B);
	cJSON *r = run(s, "b = bytearray(3 << 30)", RUN_MS);

	ck_assert_str_eq(error_type(r), "MemoryError");
	ck_assert_str_eq(limit_of(r), "memory");
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	cJSON_Delete(r);
	expect_stdout(s, "print('still here')", "still here\n");
	sbx_destroy(s);
}
END_TEST

START_TEST(a_growing_memory_bomb_ends_in_memory_or_a_clean_reset)
{
	sbx *s = box(B);
	/*
	 * Touching 512 MiB can take seconds on a loaded host: a wall clock of a
	 * minute (and CPU seconds to match) leaves the memory limit to end it.
	 */
	cJSON *r = run(s, "a = []\nwhile True:\n    a.append(bytearray(10 << 20))", 60000);

	if (flag(r, "session_lost")) {
		ck_assert_str_ne(limit_of(r), "wall_time");
		ck_assert_int_eq(sbx_alive(s), 0);
	} else {
		ck_assert_str_eq(limit_of(r), "memory");
		cJSON_Delete(r);
		r = NULL;
		expect_stdout(s, "a = None\nprint('ok')", "ok\n");
	}
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(an_execution_past_its_cpu_seconds_gets_cpu_time)
{
	sbx_limits l = limits();
	sbx_backend *b;
	cJSON *r;
	sbx *s;

	l.cpu_s = 1;
	b = backend("", &l);
	s = box(b);
	/* A wall clock far past the CPU second: on a busy host CPU time runs slower. */
	r = run(s, "while True: pass", 60000);
	ck_assert_str_eq(limit_of(r), "cpu_time");
	ck_assert_int_eq(flag(r, "session_lost"), 0);
	cJSON_Delete(r);
	expect_stdout(s, "print('again')", "again\n");
	sbx_destroy(s);
	sbx_backend_free(b);
}
END_TEST

/* Forks until refused; prints whether it stayed under 64 and the errno that stopped it. */
static const char fork_until_refused[] = "import os, time\n"
                                         "pids, err = [], None\n"
                                         "for i in range(500):\n"
                                         "    try:\n"
                                         "        pid = os.fork()\n"
                                         "    except OSError as e:\n"
                                         "        err = e.errno\n"
                                         "        break\n"
                                         "    if pid == 0:\n"
                                         "        time.sleep(30)\n"
                                         "        os._exit(0)\n"
                                         "    pids.append(pid)\n"
                                         "for p in pids:\n"
                                         "    os.kill(p, 9)\n"
                                         "    os.waitpid(p, 0)\n"
                                         "print(len(pids) < 64, err)\n";

START_TEST(forking_stops_at_the_process_limit)
{
	sbx *s = box(B);
	char *out = run_ok(s, fork_until_refused);

	ck_assert_str_eq(out, "True 11\n"); /* EAGAIN */
	free(out);
	expect_stdout(s, "print('fine')", "fine\n");
	sbx_destroy(s);
}
END_TEST

START_TEST(a_fork_bomb_is_contained_and_leaves_nothing_behind)
{
	sbx *s = box(B), *t;
	cJSON *r = run(s,
	               "import os\n"
	               "while True:\n"
	               "    try:\n"
	               "        os.fork()\n"
	               "    except OSError:\n"
	               "        pass\n",
	               1500);

	ck_assert_int_eq(flag(r, "session_lost"), 1);
	ck_assert_str_eq(limit_of(r), "wall_time");
	cJSON_Delete(r);
	sbx_destroy(s);
	if (geteuid() == 0)
		ck_assert_int_eq(processes_of_sandbox_uids(), 0);
	t = box(B);
	expect_stdout(t, "print('host fine')", "host fine\n");
	sbx_destroy(t);
}
END_TEST

START_TEST(files_past_the_size_limit_and_a_full_workspace_fail_inside)
{
	sbx *s = box(B);
	char *out = run_ok(s, "import errno\n"
	                      "def w(path, n):\n"
	                      "    try:\n"
	                      "        with open(path, 'wb') as f:\n"
	                      "            for i in range(n):\n"
	                      "                f.write(b'z' * (1 << 20))\n"
	                      "        return 'ok'\n"
	                      "    except OSError as e:\n"
	                      "        return errno.errorcode[e.errno]\n"
	                      "r = w('big', 20)\n"
	                      "import os\n"
	                      "os.remove('big')\n"
	                      "print(r, w('a', 15), w('b', 15), w('c', 15))\n");

	ck_assert_str_eq(out, "EFBIG ok ok ENOSPC\n");
	free(out);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_session_that_exits_is_reported_with_its_exit_code)
{
	sbx *s = box(B);
	cJSON *r = run(s, "print('bye', flush=True)\nimport os\nos._exit(3)", RUN_MS);

	ck_assert_str_eq(error_type(r), "SandboxExited");
	ck_assert_ptr_nonnull(strstr(error_message(r), "exit code 3"));
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	ck_assert_str_eq(str(r, "stdout"), "bye\n");
	ck_assert_int_eq(sbx_alive(s), 0);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_session_killed_by_a_signal_names_the_signal)
{
	sbx *s = box(B);
	cJSON *r = run(s, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", RUN_MS);

	ck_assert_str_eq(error_type(r), "SandboxExited");
	ck_assert_ptr_nonnull(strstr(error_message(r), "killed by SIGSEGV"));
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_session_past_its_total_cpu_seconds_is_killed_and_says_cpu_time)
{
	sbx_limits l = limits();
	sbx_backend *b;
	cJSON *r;
	sbx *s;

	l.cpu_total_s = 2;
	l.cpu_s = 10;
	b = backend("", &l);
	s = box(b);
	r = run(s, "while True: pass", 60000);
	ck_assert_str_eq(error_type(r), "SandboxExited");
	ck_assert_str_eq(limit_of(r), "cpu_time");
	ck_assert_ptr_nonnull(strstr(error_message(r), "CPU time limit of 2 s"));
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
	sbx_backend_free(b);
}
END_TEST

START_TEST(a_session_that_kills_itself_is_not_taken_for_the_cpu_limit)
{
	sbx *s = box(B);
	cJSON *r = run(s, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", RUN_MS);

	ck_assert_str_eq(error_type(r), "SandboxExited");
	ck_assert_ptr_nonnull(strstr(error_message(r), "killed by SIGKILL"));
	ck_assert_str_eq(limit_of(r), "");
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_session_that_closes_its_control_channel_is_stopped)
{
	sbx *s = box(B);
	int64_t t0 = mk_mono_ms();
	/* Neither the code's five-minute sleep nor the minute's wall clock may be waited for. */
	cJSON *r = run(s, "import os, time\nos.close(4)\ntime.sleep(300)", 60000);
	int64_t took = mk_mono_ms() - t0;

	ck_assert_msg(took < 30000, "took %lld ms", (long long)took);
	ck_assert_str_eq(error_type(r), "SandboxExited");
	ck_assert_ptr_nonnull(strstr(error_message(r), "closed its control channel"));
	ck_assert_int_eq(flag(r, "session_lost"), 1);
	cJSON_Delete(r);
	sbx_destroy(s);
}
END_TEST

/* ---- isolation ----------------------------------------------------------------- */

START_TEST(there_is_no_network_to_the_host_or_beyond)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	char code[1024];
	sbx *s;
	char *out;

	/* A port that listens on the host's loopback, so "refused" means another loopback. */
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&a, &alen), 0);
	/* Both connects fail at once; their timeout only bounds a hang. */
	snprintf(code, sizeof(code),
	         "import socket, errno\n"
	         "def conn(host, port):\n"
	         "    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
	         "    s.settimeout(10)\n"
	         "    try:\n"
	         "        s.connect((host, port))\n"
	         "        return 'connected'\n"
	         "    except OSError as e:\n"
	         "        return errno.errorcode.get(e.errno, str(e))\n"
	         "print(conn('127.0.0.1', %d), conn('1.1.1.1', 53))\n"
	         "print(sorted(n for _, n in socket.if_nameindex()))\n",
	         ntohs(a.sin_port));
	s = box(B);
	out = run_ok(s, code);
	ck_assert_str_eq(out, "ECONNREFUSED ENETUNREACH\n['lo']\n");
	free(out);
	sbx_destroy(s);
	close(lfd);
}
END_TEST

START_TEST(host_files_are_not_there_and_the_system_is_read_only)
{
	sbx *s = box(B);
	char *out = run_ok(s, "import os\n"
	                      "for p in ['/etc/shadow', '/root', '/home', '/var', '/run', '/sys',\n"
	                      "          '/etc/hosts', '/etc/resolv.conf']:\n"
	                      "    print(p, os.path.exists(p))\n"
	                      "print(sorted(os.listdir('/etc')))\n"
	                      "for p in ['/x', '/usr/x', '/etc/x', '/dev/x', '/mark/x']:\n"
	                      "    try:\n"
	                      "        open(p, 'w')\n"
	                      "        print(p, 'written')\n"
	                      "    except OSError as e:\n"
	                      "        print(p, e.strerror)\n"
	                      "import pwd, getpass\n"
	                      "print(getpass.getuser(), os.getuid(), os.getcwd())\n");

	ck_assert_str_eq(out, "/etc/shadow False\n/root False\n/home False\n/var False\n"
	                      "/run False\n/sys False\n/etc/hosts False\n/etc/resolv.conf False\n"
	                      "['alternatives', 'fonts', 'group', 'ld.so.cache', 'localtime', "
	                      "'matplotlibrc', 'passwd']\n"
	                      "/x Read-only file system\n/usr/x Read-only file system\n"
	                      "/etc/x Read-only file system\n/dev/x Read-only file system\n"
	                      "/mark/x Read-only file system\n"
	                      "sandbox 1000 /workspace\n");
	free(out);
	sbx_destroy(s);
}
END_TEST

START_TEST(the_environment_holds_only_the_sandboxs_variables)
{
	sbx *s;
	char *out;

	setenv("MARK_TEST_CANARY", "secret-canary", 1);
	s = box(B);
	out = run_ok(s, "import os\n"
	                "print(sorted(os.environ))\n"
	                "print('secret-canary' in open('/proc/self/environ').read())\n");
	ck_assert_str_eq(out, "['HOME', 'LANG', 'MPLBACKEND', 'MPLCONFIGDIR', 'OMP_NUM_THREADS', "
	                      "'OPENBLAS_NUM_THREADS', 'PATH', 'PWD', 'PYTHONDONTWRITEBYTECODE', "
	                      "'PYTHONHASHSEED', 'XDG_CACHE_HOME']\nFalse\n");
	free(out);
	unsetenv("MARK_TEST_CANARY");
	sbx_destroy(s);
}
END_TEST

START_TEST(two_sandboxes_see_neither_each_others_files_nor_processes)
{
	sbx *a = box(B), *b = box(B);
	pid_t pids[4];
	char *out;

	expect_stdout(a,
	              "open('secret.txt', 'w').write('a')\nimport time\n"
	              "import subprocess\np = subprocess.Popen(['sleep', '30'])",
	              "");
	out = run_ok(b, "import os\n"
	                "print(os.path.exists('/workspace/secret.txt'), os.listdir('/workspace'))\n"
	                "print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))\n");
	ck_assert_str_eq(out, "False ['output']\n[1, 2]\n");
	free(out);
	if (geteuid() == 0) {
		ck_assert_int_eq(bwrap_children(pids, 4), 2);
		ck_assert_int_ge(uid_of(pids[0]), UID_BASE);
		ck_assert_int_ge(uid_of(pids[1]), UID_BASE);
		ck_assert_int_ne(uid_of(pids[0]), uid_of(pids[1]));
	}
	sbx_destroy(a);
	sbx_destroy(b);
}
END_TEST

START_TEST(denied_system_calls_fail_with_eperm)
{
	sbx *s = box(B);
	char *out = run_ok(s, "import ctypes, os\n"
	                      "libc = ctypes.CDLL(None, use_errno=True)\n"
	                      "def call(nr, *args):\n"
	                      "    r = libc.syscall(nr, *args)\n"
	                      "    return (r, ctypes.get_errno()) if r == -1 else (r, 0)\n"
	                      "import platform\n"
	                      "x86 = platform.machine() == 'x86_64'\n"
	                      "nr = {'ptrace': 101, 'personality': 135, 'unshare': 272,\n"
	                      "      'bpf': 321, 'getpid': 39} if x86 else\\\n"
	                      "     {'ptrace': 117, 'personality': 92, 'unshare': 97,\n"
	                      "      'bpf': 280, 'getpid': 172}\n"
	                      "print(call(nr['ptrace'], 0, 0, 0, 0))\n"
	                      "print(call(nr['personality'], 0xffffffff))\n"
	                      "print(call(nr['unshare'], 0x20000))\n"
	                      "print(call(nr['bpf'], 0, 0, 0))\n"
	                      "print(call(nr['getpid']) == (os.getpid(), 0))\n"
	                      "print(call(0x40000000 + 39) if x86 else (-1, 1))\n");

	ck_assert_str_eq(out, "(-1, 1)\n(-1, 1)\n(-1, 1)\n(-1, 1)\nTrue\n(-1, 1)\n");
	free(out);
	sbx_destroy(s);
}
END_TEST

START_TEST(only_fds_0_to_4_are_open_inside)
{
	sbx *s = box(B);
	char *out = run_ok(s, "import os\n"
	                      "print(sorted(int(f) for f in os.listdir('/proc/self/fd'))[:-1])\n");

	/* The last one is listdir's own. */
	ck_assert_str_eq(out, "[0, 1, 2, 3, 4]\n");
	free(out);
	sbx_destroy(s);
}
END_TEST

/* ---- files --------------------------------------------------------------------- */

START_TEST(files_go_in_and_come_out_byte_for_byte)
{
	sbx *s = box(B);
	unsigned char data[256 * 100];
	char err[512] = "";
	cJSON *files, *f;
	mk_buf out;
	int found = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7);
	ck_assert_msg(sbx_put(s, "data/blob.bin", data, sizeof(data), err, sizeof(err)) == 0, "%s",
	              err);
	ck_assert_int_eq(sbx_put(s, "empty", "", 0, err, sizeof(err)), 0);
	mk_buf_init(&out, 1 << 20);
	ck_assert_msg(sbx_get(s, "data/blob.bin", &out, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(out.len, sizeof(data));
	ck_assert_int_eq(memcmp(out.data, data, sizeof(data)), 0);
	mk_buf_reset(&out);
	ck_assert_int_eq(sbx_get(s, "empty", &out, err, sizeof(err)), 0);
	ck_assert_uint_eq(out.len, 0);
	expect_stdout(s, "print(len(open('data/blob.bin', 'rb').read()))", "25600\n");

	files = sbx_list(s, err, sizeof(err));
	ck_assert_msg(files != NULL, "%s", err);
	cJSON_ArrayForEach(f, files)
	{
		long long bytes;

		if (strcmp(str(f, "path"), "data/blob.bin") == 0) {
			ck_assert_int_eq(mk_json_int(f, "bytes", &bytes), 0);
			ck_assert_int_eq(bytes, (long long)sizeof(data));
			found = 1;
		}
	}
	ck_assert(found);
	cJSON_Delete(files);
	mk_buf_release(&out);
	sbx_destroy(s);
}
END_TEST

START_TEST(paths_outside_the_workspace_are_refused_and_the_session_stays)
{
	sbx *s = box(B);
	char err[512] = "";
	mk_buf out;

	ck_assert_int_eq(sbx_put(s, "../x", "a", 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "../x"));
	ck_assert_int_eq(sbx_put(s, "/etc/x", "a", 1, err, sizeof(err)), -1);
	ck_assert_int_eq(sbx_put(s, "a/../../x", "a", 1, err, sizeof(err)), -1);
	mk_buf_init(&out, 1 << 20);
	ck_assert_int_eq(sbx_get(s, "../etc/passwd", &out, err, sizeof(err)), -1);
	/* The driver refuses a symlink out of the workspace. */
	expect_stdout(s, "import os\nos.symlink('/etc', 'link')", "");
	err[0] = '\0';
	ck_assert_int_eq(sbx_get(s, "link/passwd", &out, err, sizeof(err)), -1);
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(sbx_get(s, "no-such-file", &out, err, sizeof(err)), -1);
	ck_assert_int_eq(sbx_alive(s), 1);
	expect_stdout(s, "print('alive')", "alive\n");
	mk_buf_release(&out);
	sbx_destroy(s);
}
END_TEST

START_TEST(a_file_larger_than_the_callers_buffer_is_refused_and_the_session_stays)
{
	sbx *s = box(B);
	char err[512] = "";
	mk_buf out;

	expect_stdout(s, "open('big', 'wb').write(b'q' * 300000)", "");
	mk_buf_init(&out, 1000);
	ck_assert_int_eq(sbx_get(s, "big", &out, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "larger than"));
	ck_assert_uint_eq(out.len, 0);
	ck_assert_int_eq(sbx_alive(s), 1);
	expect_stdout(s, "print('alive')", "alive\n");
	mk_buf_release(&out);
	sbx_destroy(s);
}
END_TEST

/* ---- life ------------------------------------------------------------------------ */

START_TEST(destroy_leaves_no_process_behind)
{
	sbx *s = box(B);
	pid_t pids[4];
	char path[64];

	expect_stdout(s, "import subprocess\np = subprocess.Popen(['sleep', '60'])", "");
	ck_assert_int_eq(bwrap_children(pids, 4), 1);
	sbx_destroy(s);
	snprintf(path, sizeof(path), "/proc/%d", (int)pids[0]);
	ck_assert_int_ne(access(path, F_OK), 0);
	ck_assert_int_eq(bwrap_children(pids, 4), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(processes_of_sandbox_uids(), 0);
}
END_TEST

struct maker {
	sbx_backend *b;
	sbx *s;
	char err[512];
};

static void *make_one(void *arg)
{
	struct maker *m = arg;

	m->s = sbx_create(m->b, m->err, sizeof(m->err));
	return NULL;
}

START_TEST(sandboxes_made_at_once_from_threads_that_end_all_work)
{
	struct maker m[3];
	pthread_t t[3];

	for (int i = 0; i < 3; i++) {
		memset(&m[i], 0, sizeof(m[i]));
		m[i].b = B;
		ck_assert_int_eq(pthread_create(&t[i], NULL, make_one, &m[i]), 0);
	}
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_msg(m[i].s != NULL, "sbx_create: %s", m[i].err);
	}
	/* The threads that made them are gone; the sandboxes are not. */
	mk_sleep_ms(200);
	for (int i = 0; i < 3; i++) {
		char code[64], want[16];

		snprintf(code, sizeof(code), "n = %d\nprint(n)", i);
		snprintf(want, sizeof(want), "%d\n", i);
		ck_assert_int_eq(sbx_alive(m[i].s), 1);
		expect_stdout(m[i].s, code, want);
	}
	for (int i = 0; i < 3; i++)
		sbx_destroy(m[i].s);
}
END_TEST

START_TEST(the_analysis_libraries_work_under_the_filter_and_limits)
{
	sbx_limits l = limits();
	sbx_backend *b;
	int64_t t0;
	sbx *s;
	char *out;

	b = backend("pandas,numpy", &l);
	t0 = mk_mono_ms();
	s = box(b);
	fprintf(stderr, "sandbox with pandas and numpy ready in %lld ms\n",
	        (long long)(mk_mono_ms() - t0));
	out = run_ok(s, "import numpy as np, pandas as pd\n"
	                "import matplotlib\n"
	                "import matplotlib.pyplot as plt\n"
	                "df = pd.DataFrame({'a': np.arange(5), 'b': np.ones(5)})\n"
	                "plt.plot(df['a'], df['b'])\n"
	                "plt.savefig('output/p.png')\n"
	                "plt.close('all')\n"
	                "print(int(df['a'].sum()), float(np.linalg.inv(np.eye(2))[0][0]),\n"
	                "      matplotlib.get_backend())\n");
	ck_assert_str_eq(out, "10 1.0 agg\n");
	free(out);
	sbx_destroy(s);
	sbx_backend_free(b);
}
END_TEST

START_TEST(a_backend_with_a_bad_path_fails_with_a_clear_message)
{
	sbx_limits l = limits();
	sbx_local_opts o = opts("");
	char err[512] = "";

	o.bwrap = "/nonexistent/bwrap";
	ck_assert_ptr_null(sbx_local_new(&o, &l, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/bwrap"));
	o = opts("");
	o.python = "/opt/python3";
	ck_assert_ptr_null(sbx_local_new(&o, &l, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "under /usr"));
	o = opts("os; import x");
	ck_assert_ptr_null(sbx_local_new(&o, &l, err, sizeof(err)));
}
END_TEST

START_TEST(an_unknown_backend_kind_is_refused_with_its_name)
{
	sbx_limits l = limits();
	sbx_local_opts o = opts("");
	char err[512] = "";

	ck_assert_ptr_null(sbx_backend_new("nimbus", &o, NULL, &l, err, sizeof(err)));
	ck_assert_str_eq(err, "unknown sandbox backend 'nimbus'");
	ck_assert_str_eq(sbx_backend_name(B), "local");
}
END_TEST

/* This process's group in the cgroup v1 memory hierarchy, as a directory; 0 when there is none. */
static int memory_cgroup(char *dir, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/self/cgroup", "r");
	int found = 0;

	while (f && !found && fgets(line, sizeof(line), f)) {
		char *p = strstr(line, ":memory:");

		if (p) {
			p[strcspn(p, "\n")] = '\0';
			snprintf(dir, len, "/sys/fs/cgroup/memory%s", p + 8);
			found = access(dir, W_OK) == 0;
		}
	}
	if (f)
		fclose(f);
	return found;
}

START_TEST(groups_a_killed_executor_left_behind_are_removed)
{
	char parent[300], stale[400], sub[420];
	sbx_limits l = limits();
	sbx_backend *b;

	if (geteuid() != 0 || !memory_cgroup(parent, sizeof(parent))) {
		fprintf(stderr, "  no writable cgroup v1 memory hierarchy: nothing to sweep\n");
		return;
	}
	/* pid_max is at most 2^22: no process has this pid. */
	snprintf(stale, sizeof(stale), "%s/mark-executor-999999999", parent);
	snprintf(sub, sizeof(sub), "%s/sbx-1", stale);
	ck_assert_int_eq(mkdir(stale, 0755), 0);
	ck_assert_int_eq(mkdir(sub, 0755), 0);
	b = backend("", &l);
	ck_assert_msg(access(stale, F_OK) != 0, "%s is still there", stale);
	sbx_backend_free(b);
}
END_TEST

/* The model's code trying to lift the process limit the driver set (it may not). */
static const char raise_nproc[] =
    "import resource\n"
    "try:\n"
    "    resource.setrlimit(resource.RLIMIT_NPROC, (100000, 100000))\n"
    "    print('raised')\n"
    "except (ValueError, OSError):\n"
    "    print('refused')\n";

#define NOBODY   65534
#define SLEEPERS 80 /* more processes of the executor's uid than a sandbox may have */

/*
 * The body of the next test, in a child that became uid NOBODY: an executor
 * as in a container. Plain exits, no ck_assert: 0 when all held, else
 * which step failed (said on stderr).
 */
static int as_unprivileged_executor(void)
{
	sbx_limits l = limits();
	sbx_local_opts o = opts("");
	pid_t sleepers[SLEEPERS];
	char err[1024] = "";
	sbx_backend *b = NULL;
	sbx *s = NULL;
	cJSON *r;
	int n, rc = 0;

	if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
		perror("  becoming nobody");
		return 2;
	}
	for (n = 0; n < SLEEPERS; n++) {
		pid_t p = fork();

		if (p == 0) {
			pause();
			_exit(0);
		}
		if (p < 0)
			break;
		sleepers[n] = p;
	}
	if (n < SLEEPERS) {
		rc = 3;
		goto out;
	}
	o.uid_base = -1;
	o.cgroup = "off";
	if (!(b = sbx_local_new(&o, &l, err, sizeof(err)))) {
		fprintf(stderr, "  sbx_local_new as uid %d: %s\n", NOBODY, err);
		rc = 4;
	} else if (!(s = sbx_create(b, err, sizeof(err)))) {
		fprintf(stderr, "  sbx_create as uid %d with %d processes of it: %s\n", NOBODY,
		        SLEEPERS, err);
		rc = 5;
	} else if (!(r = sbx_exec(s, raise_nproc, RUN_MS)) ||
	           strcmp(mk_json_str(r, "stdout") ? mk_json_str(r, "stdout") : "", "refused\n") !=
	               0) {
		/* The code tried to lift the limit the driver set on it. */
		fprintf(stderr, "  raising RLIMIT_NPROC printed '%s'\n",
		        r && mk_json_str(r, "stdout") ? mk_json_str(r, "stdout") : "(nothing)");
		cJSON_Delete(r);
		rc = 8;
	} else if ((cJSON_Delete(r), !(r = sbx_exec(s, fork_until_refused, RUN_MS)))) {
		rc = 6;
	} else {
		const char *out = mk_json_str(r, "stdout");

		if (!out || strcmp(out, "True 11\n") != 0) { /* EAGAIN */
			fprintf(stderr, "  the fork loop printed '%s'\n", out ? out : "(nothing)");
			rc = 7;
		}
		cJSON_Delete(r);
	}
out:
	while (n-- > 0) {
		kill(sleepers[n], SIGKILL);
		waitpid(sleepers[n], NULL, 0);
	}
	if (s)
		sbx_destroy(s);
	sbx_backend_free(b);
	return rc;
}

/*
 * An executor that is not root (every container) shares its uid with its
 * other processes, and in a container with every service of that uid: a
 * sandbox still starts when that uid runs more processes than a sandbox
 * may, and the sandbox's own processes stop at the limit.
 */
START_TEST(an_unprivileged_executor_limits_each_sandboxs_processes_not_its_uids)
{
	pid_t pid;
	int st = 0;

	if (geteuid() != 0) {
		fprintf(stderr, "  not root: cannot run an executor as another uid\n");
		return;
	}
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(as_unprivileged_executor());
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	              "as uid %d: step %d failed (stderr says which)", NOBODY,
	              WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *session = tcase_create("session");
	TCase *lim = tcase_create("limits");
	TCase *iso = tcase_create("isolation");
	TCase *files = tcase_create("files");
	TCase *life = tcase_create("life");
	TCase *unpriv = tcase_create("unprivileged");
	TCase *all[] = {session, lim, iso, files, life};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_add_checked_fixture(all[i], setup, teardown);
		/* Far past the longest test on a loaded host. */
		tcase_set_timeout(all[i], 300);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(session, print_one_gives_one_and_a_newline_on_stdout);
	tcase_add_test(session, variables_persist_from_one_execution_to_the_next);
	tcase_add_test(session, an_exception_is_the_codes_error_and_the_session_stays);
	tcase_add_test(session, stdout_and_stderr_arrive_separately_and_in_full);
	tcase_add_test(session, invalid_utf8_and_nul_in_output_become_replacement_characters);

	tcase_add_test(lim, a_busy_loop_is_stopped_at_the_wall_clock_limit_and_the_session_lost);
	tcase_add_test(lim, a_sleeping_execution_is_stopped_at_the_wall_clock_limit_too);
	tcase_add_test(lim, stdout_past_its_limit_is_cut_with_a_marker_and_the_session_stays);
	tcase_add_test(lim, stderr_past_its_limit_is_cut_the_same_way);
	tcase_add_test(lim, endless_output_is_stopped_at_the_kill_threshold);
	tcase_add_test(lim, a_large_allocation_fails_with_memory_and_the_session_stays);
	tcase_add_test(lim, a_growing_memory_bomb_ends_in_memory_or_a_clean_reset);
	tcase_add_test(lim, an_execution_past_its_cpu_seconds_gets_cpu_time);
	tcase_add_test(lim, forking_stops_at_the_process_limit);
	tcase_add_test(lim, a_fork_bomb_is_contained_and_leaves_nothing_behind);
	tcase_add_test(lim, files_past_the_size_limit_and_a_full_workspace_fail_inside);
	tcase_add_test(lim, a_session_that_exits_is_reported_with_its_exit_code);
	tcase_add_test(lim, a_session_killed_by_a_signal_names_the_signal);
	tcase_add_test(lim, a_session_past_its_total_cpu_seconds_is_killed_and_says_cpu_time);
	tcase_add_test(lim, a_session_that_kills_itself_is_not_taken_for_the_cpu_limit);
	tcase_add_test(lim, a_session_that_closes_its_control_channel_is_stopped);

	tcase_add_test(iso, there_is_no_network_to_the_host_or_beyond);
	tcase_add_test(iso, host_files_are_not_there_and_the_system_is_read_only);
	tcase_add_test(iso, the_environment_holds_only_the_sandboxs_variables);
	tcase_add_test(iso, two_sandboxes_see_neither_each_others_files_nor_processes);
	tcase_add_test(iso, denied_system_calls_fail_with_eperm);
	tcase_add_test(iso, only_fds_0_to_4_are_open_inside);

	tcase_add_test(files, files_go_in_and_come_out_byte_for_byte);
	tcase_add_test(files, paths_outside_the_workspace_are_refused_and_the_session_stays);
	tcase_add_test(files,
	               a_file_larger_than_the_callers_buffer_is_refused_and_the_session_stays);

	tcase_add_test(life, destroy_leaves_no_process_behind);
	tcase_add_test(life, groups_a_killed_executor_left_behind_are_removed);
	tcase_add_test(life, sandboxes_made_at_once_from_threads_that_end_all_work);
	tcase_add_test(life, the_analysis_libraries_work_under_the_filter_and_limits);
	tcase_add_test(life, a_backend_with_a_bad_path_fails_with_a_clear_message);
	tcase_add_test(life, an_unknown_backend_kind_is_refused_with_its_name);

	/* No fixture: the test forks before any backend (and its threads) exists. */
	tcase_set_timeout(unpriv, 300);
	suite_add_tcase(s, unpriv);
	tcase_add_test(unpriv,
	               an_unprivileged_executor_limits_each_sandboxs_processes_not_its_uids);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
