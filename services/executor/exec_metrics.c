/*
 * exec_metrics.c - the executor worker's own metrics:
 *
 *   mark_exec_runs_total{outcome}                executions: ok, error (the code
 *                                                raised), limit, lost (sandbox died)
 *   mark_exec_limits_hit_total{limit}            executions stopped by a limit
 *                                                (wall_time, cpu_time, memory, output, ...)
 *   mark_exec_run_duration_seconds               time inside the sandbox per execution
 *   mark_exec_sandbox_starts_total{source}       sandboxes a new session got: warm
 *                                                (from the pool) or cold (started then);
 *                                                the pool's hit rate is warm / (warm + cold)
 *   mark_exec_sandbox_pool_ready                 sandboxes ready in the warm pool
 *   mark_exec_sandbox_pool_target                the pool's configured size
 *   mark_exec_router_workers                     workers connected to the router and
 *                                                usable (router only)
 */
#include <pthread.h>
#include <string.h>

#include "executor.h"
#include "mk_metrics.h"

static const char *const outcomes[] = {"ok", "error", "limit", "lost"};
static const char *const limits[] = {"wall_time", "cpu_time",   "memory", "file_size", "processes",
                                     "disk",      "open_files", "output", "other"};
#define NOUTCOMES ((int)(sizeof(outcomes) / sizeof(outcomes[0])))
#define NLIMITS   ((int)(sizeof(limits) / sizeof(limits[0])))

static const char *outcome_value(int i)
{
	return outcomes[i];
}

static const char *limit_value(int i)
{
	return limits[i];
}

static const char *source_value(int i)
{
	return i == 0 ? "warm" : "cold";
}

static mk_metric runs = {.name = "mark_exec_runs_total",
                         .help = "executions by outcome: ok, error, limit, lost",
                         .type = MK_METRIC_COUNTER,
                         .nlabels = 1,
                         .labels = {{.name = "outcome", .n = NOUTCOMES, .value = outcome_value}}};
static mk_metric limit_hits = {.name = "mark_exec_limits_hit_total",
                               .help = "executions stopped by a limit, by the limit",
                               .type = MK_METRIC_COUNTER,
                               .nlabels = 1,
                               .labels = {{.name = "limit", .n = NLIMITS, .value = limit_value}}};
static mk_metric run_time = {.name = "mark_exec_run_duration_seconds",
                             .help = "time an execution spent in its sandbox",
                             .type = MK_METRIC_HISTOGRAM,
                             .buckets = mk_metric_latency_buckets,
                             .nbuckets = MK_METRIC_LATENCY_N};
static mk_metric starts = {.name = "mark_exec_sandbox_starts_total",
                           .help = "sandboxes given to new sessions: warm from the pool, or cold",
                           .type = MK_METRIC_COUNTER,
                           .nlabels = 1,
                           .labels = {{.name = "source", .n = 2, .value = source_value}}};
static mk_metric pool_ready = {.name = "mark_exec_sandbox_pool_ready",
                               .help = "sandboxes ready in the warm pool",
                               .type = MK_METRIC_GAUGE};
static mk_metric pool_target = {.name = "mark_exec_sandbox_pool_target",
                                .help = "sandboxes the warm pool keeps ready (EXECUTOR_POOL_SIZE)",
                                .type = MK_METRIC_GAUGE};

static mk_metric router_workers = {.name = "mark_exec_router_workers",
                                   .help = "workers connected to the router and usable",
                                   .type = MK_METRIC_GAUGE};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	mk_metric_register(&runs);
	mk_metric_register(&limit_hits);
	mk_metric_register(&run_time);
	mk_metric_register(&starts);
	mk_metric_register(&pool_ready);
	mk_metric_register(&pool_target);
}

static void count_workers(void *ud)
{
	mk_metric_set(&router_workers, 0, 0, exec_router_workers(ud));
}

int exec_metrics_router(exec_router *r)
{
	if (mk_metric_register(&router_workers) != 0)
		return -1;
	return mk_metrics_hook(count_workers, r);
}

void exec_metrics_router_stop(exec_router *r)
{
	mk_metrics_unhook(count_workers, r);
}

void exec_metrics_init(int pool_size)
{
	pthread_once(&once, init);
	mk_metric_set(&pool_target, 0, 0, pool_size);
}

void exec_metrics_run(const char *outcome, const char *limit, double seconds)
{
	int i;

	for (i = 0; i < NOUTCOMES; i++)
		if (strcmp(outcome, outcomes[i]) == 0)
			mk_metric_add(&runs, i, 0, 1);
	if (limit) {
		for (i = 0; i < NLIMITS - 1 && strcmp(limit, limits[i]) != 0; i++)
			;
		mk_metric_add(&limit_hits, i, 0, 1);
	}
	mk_metric_observe(&run_time, 0, 0, seconds);
}

void exec_metrics_sandbox_start(int warm)
{
	mk_metric_add(&starts, warm ? 0 : 1, 0, 1);
}

void exec_metrics_pool(int ready)
{
	mk_metric_set(&pool_ready, 0, 0, ready);
}
