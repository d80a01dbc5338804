/*
 * metrics_test.c - unit tests for common/mk_metrics.c: counters, gauges
 * and histograms by label, the text exposition checked strictly by
 * tests/support/mt_prom.c, label escaping, interned labels, scrape hooks,
 * and many threads adding at once (no update lost).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_metrics.h"
#include "mt_check.h"
#include "mt_prom.h"

static const char *color(int i)
{
	static const char *const v[] = {"red", "green", "say \"hi\"\\\n"};

	return v[i];
}

static const char *shape(int i)
{
	return i == 0 ? "round" : "square";
}

static mk_metric things = {.name = "mt_things_total",
                           .help = "things seen",
                           .type = MK_METRIC_COUNTER,
                           .nlabels = 2,
                           .labels = {{.name = "color", .n = 3, .value = color},
                                      {.name = "shape", .n = 2, .value = shape}}};
static mk_metric level = {.name = "mt_level", .help = "a level", .type = MK_METRIC_GAUGE};
static mk_metric colors = {.name = "mt_colors",
                           .help = "per color",
                           .type = MK_METRIC_GAUGE,
                           .nlabels = 1,
                           .labels = {{.name = "color", .n = 3, .value = color}}};
static const double bk[] = {0.1, 1, 10};
static mk_metric lat = {.name = "mt_latency_seconds",
                        .help = "how long",
                        .type = MK_METRIC_HISTOGRAM,
                        .nlabels = 1,
                        .labels = {{.name = "shape", .n = 2, .value = shape}},
                        .buckets = bk,
                        .nbuckets = 3};
static mk_metric_interned peers_v;
static mk_metric peers = {
    .name = "mt_peers",
    .help = "peers by address",
    .type = MK_METRIC_GAUGE,
    .nlabels = 1,
    .labels = {{.name = "addr", .n = MK_METRIC_INTERN_MAX, .interned = &peers_v}}};

static char *render(void)
{
	mk_buf b;
	char err[512] = "", *s;

	mk_buf_init(&b, 0);
	ck_assert_int_eq(mk_metrics_render(&b), 0);
	s = mk_buf_steal(&b);
	if (mt_prom_check(s, err, sizeof(err)) != 0)
		ck_abort_msg("invalid exposition: %s\n%s", err, s);
	return s;
}

static void setup(void)
{
	ck_assert_int_eq(mk_metric_register(&things), 0);
	ck_assert_int_eq(mk_metric_register(&level), 0);
	ck_assert_int_eq(mk_metric_register(&colors), 0);
	ck_assert_int_eq(mk_metric_register(&lat), 0);
	ck_assert_int_eq(mk_metric_register(&peers), 0);
}

START_TEST(test_a_counter_counts_by_its_labels_and_hides_unseen_combinations)
{
	char *s;
	int64_t before = mk_metric_get(&things, 1, 0);

	mk_metric_add(&things, 1, 0, 2);
	mk_metric_add(&things, 1, 0, 3);
	ck_assert_int_eq(mk_metric_get(&things, 1, 0), before + 5);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "# HELP mt_things_total things seen\n"
	                                "# TYPE mt_things_total counter\n"));
	ck_assert(mt_prom_value(s, "mt_things_total", "color=\"green\",shape=\"round\"") ==
	          (double)(before + 5));
	ck_assert_ptr_null(strstr(s, "mt_things_total{color=\"red\",shape=\"square\"}"));
	free(s);
}
END_TEST

START_TEST(test_out_of_range_labels_are_ignored)
{
	int64_t t = mk_metric_get(&things, 0, 0);

	mk_metric_add(&things, 3, 0, 1);
	mk_metric_add(&things, 0, 2, 1);
	mk_metric_add(&things, -1, 0, 1);
	ck_assert_int_eq(mk_metric_get(&things, 0, 0), t);
}
END_TEST

START_TEST(test_gauges_are_set_and_shown_even_at_zero)
{
	char *s;

	mk_metric_set(&level, 0, 0, 7);
	mk_metric_add(&level, 0, 0, -9);
	mk_metric_set(&colors, 0, 0, 0);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "\nmt_level -2\n"));
	ck_assert_ptr_nonnull(strstr(s, "\nmt_colors{color=\"red\"} 0\n"));
	free(s);
}
END_TEST

START_TEST(test_label_values_are_escaped)
{
	char *s;

	mk_metric_set(&colors, 2, 0, 4);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "\nmt_colors{color=\"say \\\"hi\\\"\\\\\\n\"} 4\n"));
	free(s);
}
END_TEST

START_TEST(test_a_histogram_is_cumulative_and_its_inf_bucket_is_its_count)
{
	char *s;

	mk_metric_observe(&lat, 1, 0, 0.05); /* <= 0.1 */
	mk_metric_observe(&lat, 1, 0, 0.1);  /* le is inclusive */
	mk_metric_observe(&lat, 1, 0, 5);    /* <= 10 */
	mk_metric_observe(&lat, 1, 0, 99);   /* +Inf only */
	s = render();
	ck_assert(mt_prom_value(s, "mt_latency_seconds_bucket", "shape=\"square\",le=\"0.1\"") ==
	          2);
	ck_assert(mt_prom_value(s, "mt_latency_seconds_bucket", "shape=\"square\",le=\"1\"") == 2);
	ck_assert(mt_prom_value(s, "mt_latency_seconds_bucket", "shape=\"square\",le=\"10\"") == 3);
	ck_assert(mt_prom_value(s, "mt_latency_seconds_bucket", "shape=\"square\",le=\"+Inf\"") ==
	          4);
	ck_assert(mt_prom_value(s, "mt_latency_seconds_count", "shape=\"square\"") == 4);
	ck_assert_ptr_nonnull(strstr(s, "mt_latency_seconds_sum{shape=\"square\"} 104.150000\n"));
	ck_assert_ptr_null(strstr(s, "shape=\"round\",le"));
	free(s);
}
END_TEST

START_TEST(test_interned_labels_keep_their_index_and_overflow_into_other)
{
	char name[32], *s;
	int i, a = mk_metric_intern(&peers_v, "tcp://a:1");

	ck_assert_int_eq(mk_metric_intern(&peers_v, "tcp://a:1"), a);
	ck_assert_int_ne(mk_metric_intern(&peers_v, "tcp://b:1"), a);
	for (i = 0; i < 2 * MK_METRIC_INTERN_MAX; i++) {
		snprintf(name, sizeof(name), "tcp://n%d:1", i);
		ck_assert_int_lt(mk_metric_intern(&peers_v, name), MK_METRIC_INTERN_MAX);
	}
	mk_metric_add(&peers, a, 0, 2);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "\nmt_peers{addr=\"tcp://a:1\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(s, "\nmt_peers{addr=\"other\"} 0\n"));
	free(s);
}
END_TEST

static void hook(void *ud)
{
	mk_metric_set(&level, 0, 0, *(int *)ud);
}

START_TEST(test_a_hook_sets_gauges_before_each_render_until_unhooked)
{
	int v = 41;
	char *s;

	ck_assert_int_eq(mk_metrics_hook(hook, &v), 0);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "\nmt_level 41\n"));
	free(s);
	mk_metrics_unhook(hook, &v);
	mk_metric_set(&level, 0, 0, 1);
	s = render();
	ck_assert_ptr_nonnull(strstr(s, "\nmt_level 1\n"));
	free(s);
}
END_TEST

static void *adder(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 100000; i++) {
		mk_metric_add(&things, 0, 1, 1);
		mk_metric_observe(&lat, 0, 0, 0.5);
	}
	return NULL;
}

START_TEST(test_concurrent_adds_lose_nothing)
{
	pthread_t th[4];
	int64_t before = mk_metric_get(&things, 0, 1);
	char *s;
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, adder, NULL), 0);
	for (i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	ck_assert_int_eq(mk_metric_get(&things, 0, 1), before + 400000);
	s = render();
	ck_assert(mt_prom_value(s, "mt_latency_seconds_count", "shape=\"round\"") == 400000);
	free(s);
}
END_TEST

START_TEST(test_the_checker_refuses_malformed_expositions)
{
	static const char *const bad[] = {
	    "x_total 1\n",                              /* no TYPE */
	    "# TYPE x counter\nx 1\n",                  /* counter without _total */
	    "# TYPE x_total counter\nx_total{a=b} 1\n", /* unquoted */
	    "# TYPE x_total counter\nx_total one\n",    /* not a number */
	    "# TYPE x gauge\nx 1",                      /* no final newline */
	    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count "
	    "1\n", /* not cumulative */
	    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count "
	    "3\n",                                                            /* +Inf != count */
	    "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n", /* no +Inf */
	};
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mt_prom_check(bad[i], err, sizeof(err)) != 0, "accepted: %s", bad[i]);
	ck_assert_int_eq(
	    mt_prom_check("# HELP g a g\n# TYPE g gauge\ng{a=\"x\\\"\"} -1.5\n", err, sizeof(err)),
	    0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_a_counter_counts_by_its_labels_and_hides_unseen_combinations);
	tcase_add_test(tc, test_out_of_range_labels_are_ignored);
	tcase_add_test(tc, test_gauges_are_set_and_shown_even_at_zero);
	tcase_add_test(tc, test_label_values_are_escaped);
	tcase_add_test(tc, test_a_histogram_is_cumulative_and_its_inf_bucket_is_its_count);
	tcase_add_test(tc, test_interned_labels_keep_their_index_and_overflow_into_other);
	tcase_add_test(tc, test_a_hook_sets_gauges_before_each_render_until_unhooked);
	tcase_add_test(tc, test_concurrent_adds_lose_nothing);
	tcase_add_test(tc, test_the_checker_refuses_malformed_expositions);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
