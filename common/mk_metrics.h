/*
 * mk_metrics.h - a small process-wide metrics registry and its Prometheus
 * text exposition (format 0.0.4).
 *
 * A metric is a static mk_metric that its owning module defines (name,
 * help, type, at most three labels, histogram buckets) and registers once,
 * off the hot path: registration allocates one flat array of atomic cells,
 * one per label combination. Recording is then an atomic add on one cell:
 * no lock, no allocation. A label's values are a fixed list known at
 * registration (an op table, a route table, HTTP status classes), or
 * interned at start-up with mk_metric_intern (service addresses).
 *
 * Counters and histograms with labels are written only for the label
 * combinations seen at least once; gauges and unlabelled metrics always.
 * Histogram sums are kept in microseconds and written in seconds.
 *
 * This module does no I/O: mk_metrics_render writes the text into a
 * buffer, which the gateway's /metrics and each service's metrics port
 * (mk_metrics_http_start) serve.
 */
#ifndef MK_METRICS_H
#define MK_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "mk_buf.h"

#define MK_METRIC_LABELS_MAX  3
#define MK_METRIC_BUCKETS_MAX 16
/* Values an interned label holds at most; later ones share the last, "other". */
#define MK_METRIC_INTERN_MAX 32

typedef enum { MK_METRIC_COUNTER, MK_METRIC_GAUGE, MK_METRIC_HISTOGRAM } mk_metric_type;

/* Values interned at run time (mk_metric_intern), e.g. the addresses a client dials. */
typedef struct {
	char values[MK_METRIC_INTERN_MAX][128];
	atomic_int n;
} mk_metric_interned;

typedef struct {
	const char *name; /* lower_snake */
	int n;            /* how many values; for an interned label, MK_METRIC_INTERN_MAX */
	/* The value with index i (0 <= i < n), or NULL to skip it; or ... */
	const char *(*value)(int i);
	mk_metric_interned *interned; /* ... values interned at run time */
} mk_metric_label;

typedef struct mk_metric {
	const char *name; /* "mark_http_requests_total" */
	const char *help;
	mk_metric_type type;
	int nlabels;
	mk_metric_label labels[MK_METRIC_LABELS_MAX];
	const double *buckets; /* histograms: upper bounds, ascending, without +Inf */
	int nbuckets;
	/* private, set by mk_metric_register */
	_Atomic(int64_t) *cells;
	size_t ncells;
	struct mk_metric *next;
} mk_metric;

/* Latency buckets in seconds, 1 ms to 60 s (MK_METRIC_LATENCY_N of them). */
extern const double mk_metric_latency_buckets[];
#define MK_METRIC_LATENCY_N 15

/*
 * Add m to the process registry, once (later calls do nothing). Thread-safe.
 * Returns 0, or -1 when out of memory (m then records nothing). m must live
 * as long as the process (a static).
 */
int mk_metric_register(mk_metric *m);

/* Counter or gauge: add v (may be negative for a gauge) to the cell of labels a, b. */
void mk_metric_add(mk_metric *m, int a, int b, int64_t v);
/* The same for a metric with three labels. */
void mk_metric_add3(mk_metric *m, int a, int b, int c, int64_t v);
/* Gauge: set the cell of labels a, b to v. */
void mk_metric_set(mk_metric *m, int a, int b, int64_t v);
/* Histogram: count one observation of v (seconds or another base unit). */
void mk_metric_observe(mk_metric *m, int a, int b, double v);
/* The current value of a counter's or gauge's cell (tests, health answers). */
int64_t mk_metric_get(const mk_metric *m, int a, int b);

/*
 * The index of value s in an interned label, adding it when new. Not for the
 * hot path (takes a lock and compares strings): call it at start-up.
 */
int mk_metric_intern(mk_metric_interned *l, const char *s);

/*
 * Called before each render, to set gauges read from elsewhere (a pool's
 * size). At most 8 hooks; returns 0 or -1 when full. mk_metrics_unhook
 * removes one (the same fn and ud) and waits for a render in progress.
 */
int mk_metrics_hook(void (*fn)(void *ud), void *ud);
void mk_metrics_unhook(void (*fn)(void *ud), void *ud);

/* Append every registered metric to b in the text format. 0, or -1 out of memory. */
int mk_metrics_render(mk_buf *b);

/* The Content-Type of the text format. */
#define MK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/*
 * A service's metrics and health port: a small HTTP listener on addr
 * (host:port; port 0 picks one) answering GET /metrics and GET /healthz.
 * health may be NULL (always healthy); otherwise it returns 0 when healthy
 * and may write a short reason. Returns the listener or NULL with err.
 * mk_metrics_http_port gives the port bound; mk_metrics_http_stop stops
 * and frees (NULL is fine).
 */
typedef struct mk_metrics_http mk_metrics_http;
mk_metrics_http *mk_metrics_http_start(const char *addr, int (*health)(void *ud, char *why, size_t),
                                       void *ud, char *err, size_t errlen);
int mk_metrics_http_port(const mk_metrics_http *h);
void mk_metrics_http_stop(mk_metrics_http *h);

#endif
