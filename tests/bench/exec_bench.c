/*
 * exec_bench.c - what running the model's code costs, against the real
 * executor (local bubblewrap sandboxes): the latency of one execution of
 * print(1) and of a pandas group-by over 100k rows (the frame built in the
 * same run) as the first run of a new chat, cold (no warm pool: a sandbox
 * starts and preloads pandas for it) and warm (a ready sandbox is taken from
 * the pool), and in a live session; then executions per second with 1, 2
 * and 4 worker processes, each with two callers per worker on chats of
 * their own. Beside them, the physical limit measured in the same run: a
 * round trip of print(1) through a pipe to a live Python (no sandbox, no
 * executor), and the ratios the targets are set on. Prints its figures; it
 * asserts nothing about speed.
 *
 * Environment read: MARK_BENCH_SECONDS (length of each load run, default
 * 10), MARK_BENCH_EXEC_SAMPLES (latency samples per case, default 20), and
 * mt.h's.
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_json.h"
#include "mk_time.h"
#include "mt_exec.h"

#define CALL_TIMEOUT_MS 120000
#define WARM_POOL       4
#define MAX_CALLERS     8
#define MAX_SAMPLES     100000

static const char print_py[] = "print(1)";
static const char groupby_py[] =
    "import pandas as pd, numpy as np\n"
    "df = pd.DataFrame({'k': np.random.randint(0, 100, 100000), 'v': np.random.rand(100000)})\n"
    "df.groupby('k').v.mean()";

static const char *const cases[][2] = {{"print(1)", print_py},
                                       {"pandas group-by 100k", groupby_py}};

static char user[37];
static int chat_seq;

typedef struct {
	double *ms;
	int n, cap;
	int failed;
} samples;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static long env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	return *end || n <= 0 ? def : n;
}

static void add(samples *s, double ms)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->ms = realloc(s->ms, (size_t)s->cap * sizeof(double));
		if (!s->ms)
			abort();
	}
	s->ms[s->n++] = ms;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (nearest rank) of s; sorts s. */
static double pct(samples *s, double p)
{
	int i;

	if (s->n == 0)
		return 0;
	qsort(s->ms, (size_t)s->n, sizeof(double), cmp_double);
	i = (int)(p / 100.0 * s->n + 0.999999) - 1;
	return s->ms[i < 0 ? 0 : i >= s->n ? s->n - 1 : i];
}

static void new_chat(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "bench-%s-%d-%d", what, (int)getpid(), ++chat_seq);
}

/* One run; 0 when it answered and the code ran without an error, else -1. */
static int run_once(mt_exec *e, const char *chat, const char *code)
{
	char msg[300];
	cJSON *x = mt_exec_run(e, user, chat, code, CALL_TIMEOUT_MS, NULL, msg, sizeof(msg));
	int ok = x && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(x, "error")) &&
	         (code != print_py ||
	          strcmp(mk_json_str(x, "stdout") ? mk_json_str(x, "stdout") : "", "1\n") == 0);

	if (!x)
		fprintf(stderr, "exec.run: %s\n", msg);
	cJSON_Delete(x);
	return ok ? 0 : -1;
}

static void destroy(mt_exec *e, const char *chat)
{
	char body[160];
	mk_rpc_result res;

	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", chat);
	mt_exec_call(e, MK_OP_EXEC_DESTROY, user, body, 30000, &res);
	mk_rpc_result_release(&res);
}

static void print_latency(const char *code_label, const char *how, samples *s)
{
	printf("%-22s %-26s p50 %8.2f ms  p99 %8.2f ms  (n=%d%s)\n", code_label, how, pct(s, 50),
	       pct(s, 99), s->n, s->failed ? ", some failed" : "");
	fflush(stdout);
}

/* The first run of n new chats, each destroyed after; pause_ms between them. */
static void first_runs(mt_exec *e, const char *code, int n, int pause_ms, samples *s)
{
	char chat[96];
	int i;

	for (i = 0; i < n; i++) {
		double t0 = now_ms();

		new_chat(chat, sizeof(chat), "first");
		if (run_once(e, chat, code) == 0)
			add(s, now_ms() - t0);
		else
			s->failed++;
		destroy(e, chat);
		if (pause_ms)
			mk_sleep_ms(pause_ms);
	}
}

/*
 * The floor of a live-session run: print(1) sent to a live Python through
 * a pipe and its output read back, n times (no sandbox, executor or RPC).
 */
static void pipe_runs(int n, samples *s)
{
	static const char loop[] = "import sys\n"
	                           "for line in sys.stdin:\n"
	                           "    exec(line)\n"
	                           "    sys.stdout.write('\\x00')\n"
	                           "    sys.stdout.flush()\n";
	int in[2], out[2];
	pid_t pid;
	char c;

	if (pipe(in) != 0 || pipe(out) != 0)
		return;
	pid = fork();
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execl("/usr/bin/python3", "python3", "-u", "-c", loop, (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	for (int i = 0; i <= n && pid > 0; i++) {
		double t0 = now_ms();

		if (write(in[1], "print(1)\n", 9) != 9)
			break;
		/* "1\n" then the marker */
		while (read(out[0], &c, 1) == 1 && c != '\0')
			;
		if (i > 0) /* the first one starts the interpreter's caches */
			add(s, now_ms() - t0);
	}
	close(in[1]);
	close(out[0]);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

/* n runs in one live session (its first run not counted). */
static void live_runs(mt_exec *e, const char *code, int n, samples *s)
{
	char chat[96];
	int i;

	new_chat(chat, sizeof(chat), "live");
	run_once(e, chat, code);
	for (i = 0; i < n; i++) {
		double t0 = now_ms();

		if (run_once(e, chat, code) == 0)
			add(s, now_ms() - t0);
		else
			s->failed++;
	}
	destroy(e, chat);
}

/* ------------------------------------------------------------------ throughput */

typedef struct {
	mt_exec *e;
	const char *code;
	char chat[2][96];
	double until;
	samples lat;
	long done;
} caller;

static void *caller_main(void *p)
{
	caller *c = p;
	long k = 0;

	while (now_ms() < c->until) {
		double t0 = now_ms();

		if (run_once(c->e, c->chat[k++ % 2], c->code) == 0) {
			add(&c->lat, now_ms() - t0);
			c->done++;
		} else {
			c->lat.failed++;
		}
	}
	return NULL;
}

static void *warm_up(void *p)
{
	caller *c = p;

	run_once(c->e, c->chat[0], c->code);
	run_once(c->e, c->chat[1], c->code);
	return NULL;
}

/* Callers = workers x 2, each on two chats of its own, for secs seconds. */
static void throughput(mt_exec *e, int workers, const char *label, const char *code, int secs)
{
	caller c[MAX_CALLERS];
	pthread_t t[MAX_CALLERS];
	samples all = {0};
	int n = workers * 2, i, j;
	long done = 0;
	double t0;

	memset(c, 0, sizeof(c));
	for (i = 0; i < n; i++) {
		c[i].e = e;
		c[i].code = code;
		new_chat(c[i].chat[0], sizeof(c[i].chat[0]), "load");
		new_chat(c[i].chat[1], sizeof(c[i].chat[1]), "load");
	}
	/* Every chat's session started before the clock runs. */
	for (i = 0; i < n; i++)
		pthread_create(&t[i], NULL, warm_up, &c[i]);
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	t0 = now_ms();
	for (i = 0; i < n; i++) {
		c[i].until = t0 + secs * 1000.0;
		pthread_create(&t[i], NULL, caller_main, &c[i]);
	}
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	t0 = now_ms() - t0;
	for (i = 0; i < n; i++) {
		done += c[i].done;
		all.failed += c[i].lat.failed;
		for (j = 0; j < c[i].lat.n; j++)
			add(&all, c[i].lat.ms[j]);
		free(c[i].lat.ms);
		destroy(e, c[i].chat[0]);
		destroy(e, c[i].chat[1]);
	}
	printf("%-22s workers=%d callers=%-2d %8.1f exec/s  p50 %8.1f ms  p99 %8.1f ms%s\n", label,
	       workers, n, done / (t0 / 1000.0), pct(&all, 50), pct(&all, 99),
	       all.failed ? "  (some failed)" : "");
	fflush(stdout);
	free(all.ms);
}

/* ------------------------------------------------------------------ main */

static int start(mt_exec *e, const char *name, int pool)
{
	char pool_env[40], err[512];
	const char *env[] = {pool_env, "EXECUTOR_LOG_LEVEL=warn", "EXECUTOR_MAX_SESSIONS=32", NULL};

	snprintf(pool_env, sizeof(pool_env), "EXECUTOR_POOL_SIZE=%d", pool);
	if (mt_exec_start(e, name, env, 60000, err, sizeof(err)) != 0) {
		fprintf(stderr, "exec bench: %s\n", err);
		return -1;
	}
	return 0;
}

int main(void)
{
	int secs = (int)env_long("MARK_BENCH_SECONDS", 10);
	int n = (int)env_long("MARK_BENCH_EXEC_SAMPLES", 20);
	samples cold[2] = {{0}}, warm[2] = {{0}}, live[2] = {{0}}, floor_s = {0};
	char err[512];
	int pause_ms, i, w;
	mt_exec e;

	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	snprintf(user, sizeof(user), "00000000-0000-4000-8000-%012d", (int)getpid());
	printf("== exec: one execution as the first run of a new chat, and in a live session\n");
	fflush(stdout);
	if (start(&e, "executor-bench-cold", 0) != 0)
		return 1;
	for (i = 0; i < 2; i++)
		first_runs(&e, cases[i][1], n, 0, &cold[i]);
	if (mt_exec_stop(&e) != 0)
		return 1;
	/* Long enough after a take for the pool to have started a replacement. */
	pause_ms = (int)(1.5 * pct(&cold[0], 50));
	if (pause_ms < 1000)
		pause_ms = 1000;
	if (start(&e, "executor-bench-warm", WARM_POOL) != 0)
		return 1;
	mk_sleep_ms(WARM_POOL * (pause_ms + 500));
	for (i = 0; i < 2; i++) {
		first_runs(&e, cases[i][1], n, pause_ms, &warm[i]);
		live_runs(&e, cases[i][1], n, &live[i]);
	}
	pipe_runs(n * 10, &floor_s);
	for (i = 0; i < 2; i++) {
		print_latency(cases[i][0], "cold (no pool)", &cold[i]);
		print_latency(cases[i][0], "warm (pool of 4)", &warm[i]);
		print_latency(cases[i][0], "live session", &live[i]);
	}
	print_latency("print(1)", "pipe to a live Python", &floor_s);
	{
		double c = pct(&cold[0], 50), w0 = pct(&warm[0], 50), l = pct(&live[0], 50),
		       f = pct(&floor_s, 50);

		printf(
		    "== exec: print(1) ratios, p50 (targets: live <= cold/100, warm <= cold/30)\n");
		printf("live session / cold start    %8.4f  (1/%.0f; target <= 0.0100, %s)\n",
		       c > 0 ? l / c : 0, l > 0 ? c / l : 0,
		       c > 0 && l / c <= 0.01 ? "met" : "not met");
		printf("warm first run / cold start  %8.4f  (1/%.0f; target <= 0.0333, %s)\n",
		       c > 0 ? w0 / c : 0, w0 > 0 ? c / w0 : 0,
		       c > 0 && w0 / c <= 1.0 / 30 ? "met" : "not met");
		printf("live session / pipe floor    %8.1fx (what the executor, the RPC and the "
		       "sandbox "
		       "add to a round trip)\n",
		       f > 0 ? l / f : 0);
	}

	printf("== exec: executions per second, %d s each (this machine has %ld cores; the workers "
	       "share them, so past that more workers cannot add throughput)\n",
	       secs, sysconf(_SC_NPROCESSORS_ONLN));
	fflush(stdout);
	for (w = 1; w <= 4; w *= 2) {
		while (e.nworker + 1 < w)
			if (mt_exec_worker_start(&e, NULL, 60000, err, sizeof(err)) < 0) {
				fprintf(stderr, "exec bench: %s\n", err);
				mt_exec_stop(&e);
				return 1;
			}
		/* Let the new workers fill their pools before the load. */
		if (w > 1)
			mk_sleep_ms(WARM_POOL * (pause_ms + 500));
		for (i = 0; i < 2; i++)
			throughput(&e, w, cases[i][0], cases[i][1], secs);
	}
	for (i = 0; i < 2; i++) {
		free(cold[i].ms);
		free(warm[i].ms);
		free(live[i].ms);
	}
	free(floor_s.ms);
	return mt_exec_stop(&e) != 0;
}
