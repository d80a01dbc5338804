/*
 * gateway_metrics.c - the gateway's own metrics (requests by method, route
 * pattern and status, latency by route, requests in flight, replicas
 * connected per service) and GET /metrics, which writes every metric of
 * the process (these, the RPC client's, ...) in the Prometheus text format.
 *
 * The route label is the pattern from the route table ("/api/v1/chats/{}"),
 * never the raw path, so the number of series stays fixed; requests that
 * match no route count under route "unmatched".
 */
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "mk_metrics.h"

static const char *const methods[] = {"GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "other"};
#define NMETHODS ((int)(sizeof(methods) / sizeof(methods[0])))

/* The statuses the gateway answers; any other counts as "other". */
static const int statuses[] = {200, 201, 202, 204, 206, 301, 302, 304, 400, 401, 403, 404, 405,
                               408, 409, 410, 413, 415, 422, 429, 500, 501, 502, 503, 504};
#define NSTATUSES ((int)(sizeof(statuses) / sizeof(statuses[0])))
static const char *const status_names[] = {
    "200", "201", "202", "204", "206", "301", "302", "304", "400", "401", "403", "404", "405",
    "408", "409", "410", "413", "415", "422", "429", "500", "501", "502", "503", "504", "other"};

/* Routes: the table's patterns by index, then "unmatched". At most GW_ROUTES_MAX. */
#define GW_ROUTES_MAX 64

static const char *method_value(int i)
{
	return methods[i];
}

static const char *status_value(int i)
{
	return status_names[i];
}

static const char *route_value(int i)
{
	if ((size_t)i < gw_nroutes)
		return gw_routes[i].pattern;
	return (size_t)i == gw_nroutes ? "unmatched" : NULL;
}

static const char *service_value(int i)
{
	return gw_service_names[i];
}

static mk_metric requests = {
    .name = "mark_http_requests_total",
    .help = "HTTP requests answered, by method, route pattern and status",
    .type = MK_METRIC_COUNTER,
    .nlabels = 3,
    .labels = {{.name = "method", .n = NMETHODS, .value = method_value},
               {.name = "route", .n = GW_ROUTES_MAX, .value = route_value},
               {.name = "status", .n = NSTATUSES + 1, .value = status_value}}};
static mk_metric latency = {
    .name = "mark_http_request_duration_seconds",
    .help = "time from a request's arrival to its answer, by method and route pattern",
    .type = MK_METRIC_HISTOGRAM,
    .nlabels = 2,
    .labels = {{.name = "method", .n = NMETHODS, .value = method_value},
               {.name = "route", .n = GW_ROUTES_MAX, .value = route_value}},
    .buckets = mk_metric_latency_buckets,
    .nbuckets = MK_METRIC_LATENCY_N};
static mk_metric in_flight = {.name = "mark_http_requests_in_flight",
                              .help = "HTTP requests being served",
                              .type = MK_METRIC_GAUGE};
static mk_metric replicas = {
    .name = "mark_rpc_replicas_connected",
    .help = "connections from the gateway to each service's replicas",
    .type = MK_METRIC_GAUGE,
    .nlabels = 1,
    .labels = {{.name = "service", .n = GW_NSERVICES, .value = service_value}}};

static void set_replicas(void *ud)
{
	gateway *gw = ud;
	int i;

	for (i = 0; i < GW_NSERVICES; i++)
		mk_metric_set(&replicas, i, 0, gw->svc[i] ? mk_rpc_client_peers(gw->svc[i]) : 0);
}

int gw_metrics_start(gateway *gw, char *err, size_t errlen)
{
	if (gw_nroutes >= GW_ROUTES_MAX) {
		snprintf(err, errlen, "more routes than the metrics hold (%d)", GW_ROUTES_MAX);
		return -1;
	}
	if (mk_metric_register(&requests) != 0 || mk_metric_register(&latency) != 0 ||
	    mk_metric_register(&in_flight) != 0 || mk_metric_register(&replicas) != 0 ||
	    mk_metrics_hook(set_replicas, gw) != 0) {
		snprintf(err, errlen, "cannot set up the metrics");
		return -1;
	}
	return 0;
}

void gw_metrics_stop(gateway *gw)
{
	mk_metrics_unhook(set_replicas, gw);
}

static int method_index(const char *m)
{
	int i;

	for (i = 0; i < NMETHODS - 1; i++)
		if (strcmp(methods[i], m) == 0)
			return i;
	return NMETHODS - 1;
}

static int status_index(int status)
{
	int i;

	for (i = 0; i < NSTATUSES; i++)
		if (statuses[i] == status)
			return i;
	return NSTATUSES;
}

void gw_metrics_begin(void)
{
	mk_metric_add(&in_flight, 0, 0, 1);
}

void gw_metrics_end(const gw_req *r, double seconds)
{
	int m = method_index(r->ri->request_method ? r->ri->request_method : "");
	int route = r->route >= 0 ? r->route : (int)gw_nroutes;

	mk_metric_add(&in_flight, 0, 0, -1);
	mk_metric_add3(&requests, m, route, status_index(r->status), 1);
	mk_metric_observe(&latency, m, route, seconds);
}

void gw_metrics_get(gw_req *r)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	if (mk_metrics_render(&b) != 0) {
		mk_buf_release(&b);
		gw_reply_error(r, MK_E_INTERNAL, "cannot render the metrics");
		return;
	}
	gw_reply_bytes(r, 200, MK_METRICS_CONTENT_TYPE, b.data, b.len, NULL, NULL);
	mk_buf_release(&b);
}
