/*
 * meta_metrics.c - the metadata service's own metrics, by warehouse kind
 * (METADATA_WAREHOUSE_KIND: postgres, bigquery):
 *
 *   mark_warehouse_queries_total{warehouse,outcome}  meta.query runs: ok or error
 *   mark_warehouse_bytes_processed_total{warehouse}  bytes the warehouse says it
 *                                                    processed (Postgres says 0)
 *   mark_warehouse_rows_returned_total{warehouse}    rows handed back
 *   mark_warehouse_query_duration_seconds{warehouse} how long queries took
 *
 * Queries the SQL guard refuses never reach the warehouse and are not
 * counted here (they are in mark_rpc_server_requests_total by code).
 */
#include <pthread.h>
#include <string.h>

#include "metadata.h"
#include "mk_metrics.h"

static const char *const kinds[] = {"postgres", "bigquery", "other"};
#define NKINDS 3

static const char *kind_value(int i)
{
	return kinds[i];
}

static const char *outcome_value(int i)
{
	return i == 0 ? "ok" : "error";
}

#define KIND_LABEL                                                                                 \
	{                                                                                          \
		.name = "warehouse", .n = NKINDS, .value = kind_value                              \
	}

static mk_metric queries = {
    .name = "mark_warehouse_queries_total",
    .help = "warehouse queries run, by warehouse kind and outcome",
    .type = MK_METRIC_COUNTER,
    .nlabels = 2,
    .labels = {KIND_LABEL, {.name = "outcome", .n = 2, .value = outcome_value}}};
static mk_metric bytes = {.name = "mark_warehouse_bytes_processed_total",
                          .help = "bytes the warehouse reports its queries processed",
                          .type = MK_METRIC_COUNTER,
                          .nlabels = 1,
                          .labels = {KIND_LABEL}};
static mk_metric rows = {.name = "mark_warehouse_rows_returned_total",
                         .help = "rows warehouse queries returned",
                         .type = MK_METRIC_COUNTER,
                         .nlabels = 1,
                         .labels = {KIND_LABEL}};
static mk_metric query_time = {.name = "mark_warehouse_query_duration_seconds",
                               .help = "how long warehouse queries took",
                               .type = MK_METRIC_HISTOGRAM,
                               .nlabels = 1,
                               .labels = {KIND_LABEL},
                               .buckets = mk_metric_latency_buckets,
                               .nbuckets = MK_METRIC_LATENCY_N};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	mk_metric_register(&queries);
	mk_metric_register(&bytes);
	mk_metric_register(&rows);
	mk_metric_register(&query_time);
}

void meta_metrics_init(void)
{
	pthread_once(&once, init);
}

void meta_metrics_query(const char *kind, int ok, long long nrows, long long nbytes, double seconds)
{
	int k = NKINDS - 1, i;

	for (i = 0; kind && i < NKINDS - 1; i++)
		if (strcmp(kind, kinds[i]) == 0)
			k = i;
	mk_metric_add(&queries, k, ok ? 0 : 1, 1);
	if (nbytes > 0)
		mk_metric_add(&bytes, k, 0, nbytes);
	if (nrows > 0)
		mk_metric_add(&rows, k, 0, nrows);
	mk_metric_observe(&query_time, k, 0, seconds);
}
