/*
 * mk_metrics.c - the metrics registry and its text exposition (see
 * mk_metrics.h). The HTTP listener that serves it on a service's metrics
 * port is in mk_metrics_http.c.
 *
 * Cells: one per label combination (row-major: (a * n_b + b) * n_c + c), and for a histogram a
 * run of nbuckets + 2 cells per combination: the count of each bucket on
 * its own (not cumulative), the +Inf bucket, and the sum in microseconds.
 * Rendering adds the buckets up, so +Inf always equals _count.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_metrics.h"

const double mk_metric_latency_buckets[MK_METRIC_LATENCY_N] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

#define HOOKS_MAX 8

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t intern_mu = PTHREAD_MUTEX_INITIALIZER;
static mk_metric *reg_head, *reg_tail;
static struct {
	void (*fn)(void *ud);
	void *ud;
} hooks[HOOKS_MAX];

static size_t stride(const mk_metric *m)
{
	return m->type == MK_METRIC_HISTOGRAM ? (size_t)m->nbuckets + 2 : 1;
}

static size_t combos(const mk_metric *m)
{
	size_t n = 1;
	int i;

	for (i = 0; i < m->nlabels; i++)
		n *= (size_t)m->labels[i].n;
	return n;
}

int mk_metric_register(mk_metric *m)
{
	int rc = 0;

	pthread_mutex_lock(&reg_mu);
	if (!m->cells) {
		m->ncells = combos(m) * stride(m);
		m->cells = calloc(m->ncells, sizeof(*m->cells));
		if (!m->cells) {
			rc = -1;
		} else {
			m->next = NULL;
			if (reg_tail)
				reg_tail->next = m;
			else
				reg_head = m;
			reg_tail = m;
		}
	}
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

/* The first cell of labels a, b, c; NULL when unregistered or out of range. */
static _Atomic(int64_t) *cell(const mk_metric *m, int a, int b, int c)
{
	const int idx[MK_METRIC_LABELS_MAX] = {a, b, c};
	size_t i = 0;
	int k;

	if (!m->cells)
		return NULL;
	for (k = 0; k < m->nlabels; k++) {
		if (idx[k] < 0 || idx[k] >= m->labels[k].n)
			return NULL;
		i = i * (size_t)m->labels[k].n + (size_t)idx[k];
	}
	return m->cells + i * stride(m);
}

void mk_metric_add(mk_metric *m, int a, int b, int64_t v)
{
	mk_metric_add3(m, a, b, 0, v);
}

void mk_metric_add3(mk_metric *m, int a, int b, int c3, int64_t v)
{
	_Atomic(int64_t) *c = cell(m, a, b, c3);

	if (c)
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

void mk_metric_set(mk_metric *m, int a, int b, int64_t v)
{
	_Atomic(int64_t) *c = cell(m, a, b, 0);

	if (c)
		atomic_store_explicit(c, v, memory_order_relaxed);
}

int64_t mk_metric_get(const mk_metric *m, int a, int b)
{
	_Atomic(int64_t) *c = cell(m, a, b, 0);

	return c ? atomic_load_explicit(c, memory_order_relaxed) : 0;
}

void mk_metric_observe(mk_metric *m, int a, int b, double v)
{
	_Atomic(int64_t) *c = cell(m, a, b, 0);
	int i = 0;

	if (!c)
		return;
	if (isnan(v) || v < 0)
		v = 0;
	while (i < m->nbuckets && v > m->buckets[i])
		i++;
	atomic_fetch_add_explicit(&c[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&c[m->nbuckets + 1], (int64_t)(v * 1e6 + 0.5),
	                          memory_order_relaxed);
}

int mk_metric_intern(mk_metric_interned *l, const char *s)
{
	int i, n;

	pthread_mutex_lock(&intern_mu);
	n = atomic_load(&l->n);
	for (i = 0; i < n; i++)
		if (strcmp(l->values[i], s) == 0)
			break;
	if (i == n && n < MK_METRIC_INTERN_MAX) {
		snprintf(l->values[n], sizeof(l->values[n]), "%s",
		         n == MK_METRIC_INTERN_MAX - 1 ? "other" : s);
		atomic_store(&l->n, n + 1);
	}
	if (i >= MK_METRIC_INTERN_MAX)
		i = MK_METRIC_INTERN_MAX - 1;
	pthread_mutex_unlock(&intern_mu);
	return i;
}

int mk_metrics_hook(void (*fn)(void *ud), void *ud)
{
	int i, rc = -1;

	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < HOOKS_MAX && rc != 0; i++)
		if (!hooks[i].fn) {
			hooks[i].fn = fn;
			hooks[i].ud = ud;
			rc = 0;
		}
	pthread_mutex_unlock(&reg_mu);
	return rc;
}

void mk_metrics_unhook(void (*fn)(void *ud), void *ud)
{
	int i;

	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < HOOKS_MAX; i++)
		if (hooks[i].fn == fn && hooks[i].ud == ud) {
			hooks[i].fn = NULL;
			hooks[i].ud = NULL;
		}
	pthread_mutex_unlock(&reg_mu);
}

/* ------------------------------------------------------------------ exposition */

static const char *label_value(const mk_metric_label *l, int i)
{
	if (l->interned)
		return i < atomic_load(&l->interned->n) ? l->interned->values[i] : NULL;
	return l->value ? l->value(i) : NULL;
}

/* A label value, escaped as the format asks (backslash, quote, newline). */
static void put_value(mk_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			mk_buf_printf(b, "\\%c", *v);
		else if (*v == '\n')
			mk_buf_puts(b, "\\n");
		else
			mk_buf_append(b, v, 1);
	}
}

/* "{a="x",b="y"" (without the closing brace, so le= can follow); nothing without labels. */
static void put_labels(mk_buf *b, const mk_metric *m, const char *const *vals)
{
	int i;

	for (i = 0; i < m->nlabels; i++) {
		mk_buf_printf(b, "%s%s=\"", i ? "," : "{", m->labels[i].name);
		put_value(b, vals[i]);
		mk_buf_puts(b, "\"");
	}
}

static void put_sample(mk_buf *b, const mk_metric *m, const char *suffix, const char *const *vals,
                       const char *le, const char *value)
{
	mk_buf_printf(b, "%s%s", m->name, suffix);
	put_labels(b, m, vals);
	if (le)
		mk_buf_printf(b, "%sle=\"%s\"", m->nlabels ? "," : "{", le);
	mk_buf_printf(b, "%s %s\n", m->nlabels || le ? "}" : "", value);
}

static void render_combo(mk_buf *b, const mk_metric *m, const char *const *vals,
                         _Atomic(int64_t) *c)
{
	char v[48], le[32];
	int64_t cum = 0, x;
	int i;

	if (m->type != MK_METRIC_HISTOGRAM) {
		x = atomic_load_explicit(c, memory_order_relaxed);
		if (x == 0 && m->nlabels && m->type == MK_METRIC_COUNTER)
			return;
		snprintf(v, sizeof(v), "%lld", (long long)x);
		put_sample(b, m, "", vals, NULL, v);
		return;
	}
	for (i = 0; i <= m->nbuckets; i++)
		cum += atomic_load_explicit(&c[i], memory_order_relaxed);
	if (cum == 0 && m->nlabels)
		return;
	cum = 0;
	for (i = 0; i <= m->nbuckets; i++) {
		cum += atomic_load_explicit(&c[i], memory_order_relaxed);
		if (i < m->nbuckets)
			snprintf(le, sizeof(le), "%g", m->buckets[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		snprintf(v, sizeof(v), "%lld", (long long)cum);
		put_sample(b, m, "_bucket", vals, le, v);
	}
	x = atomic_load_explicit(&c[m->nbuckets + 1], memory_order_relaxed);
	snprintf(v, sizeof(v), "%lld.%06lld", (long long)(x / 1000000), (long long)(x % 1000000));
	put_sample(b, m, "_sum", vals, NULL, v);
	snprintf(v, sizeof(v), "%lld", (long long)cum);
	put_sample(b, m, "_count", vals, NULL, v);
}

/* Every label combination in order, skipping values that have none (NULL). */
static void render_labels(mk_buf *b, const mk_metric *m, int k, const char **vals, int *idx)
{
	int i;

	if (k == m->nlabels) {
		render_combo(b, m, vals, cell(m, idx[0], idx[1], idx[2]));
		return;
	}
	for (i = 0; i < m->labels[k].n; i++) {
		if (!(vals[k] = label_value(&m->labels[k], i)))
			continue;
		idx[k] = i;
		render_labels(b, m, k + 1, vals, idx);
	}
}

static void render_one(mk_buf *b, const mk_metric *m)
{
	static const char *const types[] = {"counter", "gauge", "histogram"};
	const char *vals[MK_METRIC_LABELS_MAX] = {NULL};
	int idx[MK_METRIC_LABELS_MAX] = {0};

	mk_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name, types[m->type]);
	render_labels(b, m, 0, vals, idx);
}

int mk_metrics_render(mk_buf *b)
{
	const mk_metric *m;
	int i;

	pthread_mutex_lock(&reg_mu);
	for (i = 0; i < HOOKS_MAX; i++)
		if (hooks[i].fn)
			hooks[i].fn(hooks[i].ud);
	for (m = reg_head; m; m = m->next)
		render_one(b, m);
	pthread_mutex_unlock(&reg_mu);
	return mk_buf_puts(b, "") == 0 && b->data ? 0 : -1;
}
