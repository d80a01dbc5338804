/*
 * turn_bench.c - a chat turn's own overhead: POST /api/v1/chat against the
 * real stack, the LLM double answering at once, the model asking for one
 * trivial run_python (print(1)) and then answering. What the turn takes
 * beyond the code's own time (the step's duration_ms, as the executor
 * measured it) is Mark's: the gateway, the llm service and its two model
 * calls over HTTP, the executor's round trip, and the writes of the
 * question, the answer and the execution record. The double answers
 * instantly, so model time is nil. Turns run one after another, in one
 * chat (a live session) and each in a new chat (a sandbox from the warm
 * pool). Prints its figures; it asserts nothing about speed.
 *
 * Environment read: MARK_BENCH_TURNS (turns per case, default 50), and
 * mt.h's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mt.h"
#include "mt_double.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	int i;

	if (n == 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp);
	i = (int)(p / 100.0 * (n - 1) + 0.5);
	return v[i];
}

/* A scenario of n turns: each a run_python of print(1), then an answer. */
static char *scenario(int n)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	mk_buf_append(&b, "{\"steps\":[", 10);
	for (int i = 0; i < n; i++) {
		char step[400];
		int k =
		    snprintf(step, sizeof(step),
		             "%s{\"openai_tool_calls\":[{\"id\":\"c%d\",\"name\":\"run_python\","
		             "\"arguments\":\"{\\\"code\\\":\\\"print(1)\\\"}\"}]},"
		             "{\"openai_text\":\"One.\"}",
		             i ? "," : "", i);

		mk_buf_append(&b, step, (size_t)k);
	}
	mk_buf_append(&b, "]}", 2);
	return mk_buf_steal(&b);
}

/* n turns; chat_id NULL: each in a new chat. Fills total[] and overhead[] (ms); returns done. */
static int turns(const mt_stack *st, const mt_double *dbl, const char *tok, int n,
                 const char *chat_id, double *total, double *overhead)
{
	char auth[2100], body[256], err[256], *sc = scenario(n);
	const char *h[] = {auth, "Content-Type: application/json", NULL};
	int done = 0;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	if (mt_double_scenario(dbl, sc, err, sizeof(err)) != 0) {
		fprintf(stderr, "turn bench: scenario: %s\n", err);
		free(sc);
		return 0;
	}
	free(sc);
	for (int i = 0; i < n; i++) {
		mt_resp r;
		double t0, t1, code_ms = 0;
		const cJSON *step;

		if (chat_id)
			snprintf(body, sizeof(body),
			         "{\"message\":\"Once more\",\"chat_id\":\"%s\"}", chat_id);
		else
			snprintf(body, sizeof(body), "{\"message\":\"One, please\"}");
		t0 = now_ms();
		if (mt_http("POST", mt_url(st, "/api/v1/chat"), h, body, strlen(body), &r) != 0)
			continue;
		t1 = now_ms();
		step = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r.json, "steps"), 0);
		if (r.status == 200 && step &&
		    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r.json, "error"))) {
			const cJSON *d = cJSON_GetObjectItemCaseSensitive(step, "duration_ms");

			code_ms = cJSON_IsNumber(d) ? d->valuedouble : 0;
			total[done] = t1 - t0;
			overhead[done] = t1 - t0 - code_ms;
			done++;
		}
		mt_resp_release(&r);
	}
	return done;
}

static void report(const char *label, double *total, double *overhead, int n, int want)
{
	printf("%-34s turn p50 %7.1f ms  p99 %7.1f ms   overhead p50 %7.1f ms  p99 %7.1f ms  "
	       "(n=%d of %d)\n",
	       label, pct(total, n, 50), pct(total, n, 99), pct(overhead, n, 50),
	       pct(overhead, n, 99), n, want);
}

int main(void)
{
	const char *tn = getenv("MARK_BENCH_TURNS");
	int n = tn && atoi(tn) > 0 ? atoi(tn) : 50, got;
	char err[512], base[128], tok[2048], chat_id[64] = "";
	const char *env[] = {base,
	                     "LLM_MODEL=bench-model",
	                     "LLM_API_KEY=bench-key",
	                     "EXECUTOR_POOL_SIZE=4",
	                     "GATEWAY_LOG_LEVEL=warn",
	                     "LLM_LOG_LEVEL=warn",
	                     "EXECUTOR_LOG_LEVEL=warn",
	                     NULL};
	double *total = calloc((size_t)n + 1, sizeof(double)),
	       *over = calloc((size_t)n + 1, sizeof(double));
	mt_double dbl;
	mt_stack st;

	if (!total || !over ||
	    mt_double_start(&dbl, "turn-bench-double", "bench-key", err, sizeof(err)) != 0) {
		fprintf(stderr, "turn bench: the LLM double did not start: %s\n", err);
		return 1;
	}
	snprintf(base, sizeof(base), "LLM_BASE_URL=%s/v1", dbl.base);
	if (mt_stack_start(&st, env) != 0 || mt_user(&st, "turnbench", tok, sizeof(tok), NULL, 0)) {
		fprintf(stderr, "turn bench: the stack did not start\n");
		mt_double_stop(&dbl);
		return 1;
	}
	printf("== turn: POST /api/v1/chat, the LLM double answering at once, one run_python of "
	       "print(1); overhead = the turn less the code's own time\n");
	/* The first turn makes the chat and its session; not counted. */
	{
		mt_resp r;
		char auth[2100], *sc = scenario(1);
		const char *h[] = {auth, "Content-Type: application/json", NULL};

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		mt_double_scenario(&dbl, sc, err, sizeof(err));
		free(sc);
		if (mt_http("POST", mt_url(&st, "/api/v1/chat"), h, "{\"message\":\"Start\"}", 19,
		            &r) == 0 &&
		    mk_json_str(r.json, "chat_id"))
			snprintf(chat_id, sizeof(chat_id), "%s", mk_json_str(r.json, "chat_id"));
		mt_resp_release(&r);
	}
	got = turns(&st, &dbl, tok, n, chat_id[0] ? chat_id : NULL, total, over);
	report("one chat (a live session)", total, over, got, n);
	got = turns(&st, &dbl, tok, n / 5 > 0 ? n / 5 : 1, NULL, total, over);
	report("a new chat each (warm pool of 4)", total, over, got, n / 5 > 0 ? n / 5 : 1);
	mt_stack_stop(&st);
	mt_double_stop(&dbl);
	free(total);
	free(over);
	return 0;
}
