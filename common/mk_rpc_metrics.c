/*
 * mk_rpc_metrics.c - the RPC layer's metrics (see mk_rpc_metrics.h):
 *
 *   mark_rpc_client_calls_total{op,code}            calls made, by outcome
 *   mark_rpc_client_call_duration_seconds{op}       their latency
 *   mark_rpc_client_connections{target}             pipes up per address dialled
 *   mark_rpc_server_requests_total{op,code}         requests served, by outcome
 *   mark_rpc_server_request_duration_seconds{op}    time spent serving them
 *   mark_rpc_server_workers_busy                    server workers on a request now
 */
#include <pthread.h>
#include <time.h>

#include "mk_metrics.h"
#include "mk_rpc_metrics.h"

static const char *op_value(int i)
{
	return i < MK_OP__COUNT ? mk_op_name((mk_op)i) : "unknown";
}

static const char *code_value(int i)
{
	return mk_err_code((mk_err)i);
}

#define OP_LABEL                                                                                   \
	{                                                                                          \
		.name = "op", .n = MK_OP__COUNT + 1, .value = op_value                             \
	}
#define CODE_LABEL                                                                                 \
	{                                                                                          \
		.name = "code", .n = MK_ERR__COUNT, .value = code_value                            \
	}

static mk_metric calls = {.name = "mark_rpc_client_calls_total",
                          .help = "calls made to other services, by op and outcome code",
                          .type = MK_METRIC_COUNTER,
                          .nlabels = 2,
                          .labels = {OP_LABEL, CODE_LABEL}};
static mk_metric call_time = {.name = "mark_rpc_client_call_duration_seconds",
                              .help = "latency of calls made to other services, by op",
                              .type = MK_METRIC_HISTOGRAM,
                              .nlabels = 1,
                              .labels = {OP_LABEL},
                              .buckets = mk_metric_latency_buckets,
                              .nbuckets = MK_METRIC_LATENCY_N};
static mk_metric_interned targets;
static mk_metric connections = {
    .name = "mark_rpc_client_connections",
    .help = "connections up to the replicas behind each address this process calls",
    .type = MK_METRIC_GAUGE,
    .nlabels = 1,
    .labels = {{.name = "target", .n = MK_METRIC_INTERN_MAX, .interned = &targets}}};
static mk_metric served = {.name = "mark_rpc_server_requests_total",
                           .help = "requests served to other services, by op and outcome code",
                           .type = MK_METRIC_COUNTER,
                           .nlabels = 2,
                           .labels = {OP_LABEL, CODE_LABEL}};
static mk_metric serve_time = {.name = "mark_rpc_server_request_duration_seconds",
                               .help = "time spent serving requests, by op",
                               .type = MK_METRIC_HISTOGRAM,
                               .nlabels = 1,
                               .labels = {OP_LABEL},
                               .buckets = mk_metric_latency_buckets,
                               .nbuckets = MK_METRIC_LATENCY_N};
static mk_metric busy_workers = {.name = "mark_rpc_server_workers_busy",
                                 .help = "RPC server workers busy with a request",
                                 .type = MK_METRIC_GAUGE};

static pthread_once_t client_once = PTHREAD_ONCE_INIT, server_once = PTHREAD_ONCE_INIT;

static void init_client(void)
{
	mk_metric_register(&calls);
	mk_metric_register(&call_time);
	mk_metric_register(&connections);
}

static void init_server(void)
{
	mk_metric_register(&served);
	mk_metric_register(&serve_time);
	mk_metric_register(&busy_workers);
}

void mk_rpc_metrics_init_client(void)
{
	pthread_once(&client_once, init_client);
}

void mk_rpc_metrics_init_server(void)
{
	pthread_once(&server_once, init_server);
}

double mk_rpc_metrics_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void mk_rpc_metrics_called(mk_op op, mk_err e, double seconds)
{
	mk_metric_add(&calls, (int)op, (int)e, 1);
	mk_metric_observe(&call_time, (int)op, 0, seconds);
}

void mk_rpc_metrics_served(mk_op op, mk_err e, double seconds)
{
	mk_metric_add(&served, (int)op, (int)e, 1);
	mk_metric_observe(&serve_time, (int)op, 0, seconds);
}

int mk_rpc_metrics_target(const char *url)
{
	return mk_metric_intern(&targets, url);
}

void mk_rpc_metrics_connections(int target, int delta)
{
	mk_metric_add(&connections, target, 0, delta);
}

void mk_rpc_metrics_busy(int busy)
{
	mk_metric_set(&busy_workers, 0, 0, busy);
}
