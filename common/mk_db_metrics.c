/*
 * mk_db_metrics.c - the database pool's metrics (used by mk_db.c only), by
 * pool (its schema; "other" for a pool without one, e.g. a warehouse):
 *
 *   mark_db_pool_connections{pool,state}   connections in_use and idle
 *   mark_db_pool_size{pool}                connections at most
 *   mark_db_pool_waits_total{pool}         acquires that found none free and waited
 *   mark_db_pool_wait_timeouts_total{pool} waits that ended without a connection
 *   mark_db_pool_wait_seconds{pool}        how long those waits took
 */
#include <pthread.h>

#include "mk_db_metrics.h"
#include "mk_metrics.h"

static mk_metric_interned pools;

static const char *state_value(int i)
{
	return i == 0 ? "in_use" : "idle";
}

#define POOL_LABEL                                                                                 \
	{                                                                                          \
		.name = "pool", .n = MK_METRIC_INTERN_MAX, .interned = &pools                      \
	}

static mk_metric conns = {.name = "mark_db_pool_connections",
                          .help = "database connections of the pool, in use and idle",
                          .type = MK_METRIC_GAUGE,
                          .nlabels = 2,
                          .labels = {POOL_LABEL, {.name = "state", .n = 2, .value = state_value}}};
static mk_metric size = {.name = "mark_db_pool_size",
                         .help = "database connections the pool opens at most",
                         .type = MK_METRIC_GAUGE,
                         .nlabels = 1,
                         .labels = {POOL_LABEL}};
static mk_metric waits = {.name = "mark_db_pool_waits_total",
                          .help = "acquires that found no connection free and waited",
                          .type = MK_METRIC_COUNTER,
                          .nlabels = 1,
                          .labels = {POOL_LABEL}};
static mk_metric timeouts = {.name = "mark_db_pool_wait_timeouts_total",
                             .help = "waits for a connection that ended without one",
                             .type = MK_METRIC_COUNTER,
                             .nlabels = 1,
                             .labels = {POOL_LABEL}};
static mk_metric wait_time = {.name = "mark_db_pool_wait_seconds",
                              .help = "how long acquires waited for a free connection",
                              .type = MK_METRIC_HISTOGRAM,
                              .nlabels = 1,
                              .labels = {POOL_LABEL},
                              .buckets = mk_metric_latency_buckets,
                              .nbuckets = MK_METRIC_LATENCY_N};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	mk_metric_register(&conns);
	mk_metric_register(&size);
	mk_metric_register(&waits);
	mk_metric_register(&timeouts);
	mk_metric_register(&wait_time);
}

int mk_db_metrics_pool(const char *schema, int n)
{
	int i;

	pthread_once(&once, init);
	i = mk_metric_intern(&pools, schema ? schema : "other");
	mk_metric_add(&size, i, 0, n);
	return i;
}

void mk_db_metrics_pool_gone(int pool, int n)
{
	mk_metric_add(&size, pool, 0, -n);
}

void mk_db_metrics_move(int pool, int from_busy, int from_idle, int to_busy, int to_idle)
{
	if (to_busy != from_busy)
		mk_metric_add(&conns, pool, 0, to_busy - from_busy);
	if (to_idle != from_idle)
		mk_metric_add(&conns, pool, 1, to_idle - from_idle);
}

void mk_db_metrics_waited(int pool, double seconds, int got)
{
	mk_metric_add(&waits, pool, 0, 1);
	if (!got)
		mk_metric_add(&timeouts, pool, 0, 1);
	mk_metric_observe(&wait_time, pool, 0, seconds);
}
