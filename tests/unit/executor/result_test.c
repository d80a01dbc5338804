/*
 * result_test.c - the host holds a sandbox's result to its own limits
 * (sbx_result.c), whatever the sandbox sent: hostile shapes, sizes and
 * fields only the host may set.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor/sbx_result.h"
#include "mk_json.h"
#include "mt_check.h"

static const sbx_limits lim = {
    .table_rows = 3,
    .table_cols = 2,
    .value_bytes = 100,
    .figure_bytes = 200,
    .image_bytes = 6,
    .artifact_bytes = 9,
    .artifacts_total = 12,
    .max_items = 2,
};

static cJSON *held(const char *json)
{
	char err[120];
	cJSON *r = mk_json_parse(json, strlen(json), 0, err, sizeof(err));

	ck_assert_msg(r != NULL, "%s", err);
	sbx_result_enforce(r, &lim);
	return r;
}

static int count(const cJSON *r, const char *name)
{
	return cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r, name));
}

START_TEST(test_fields_only_the_host_sets_are_dropped)
{
	cJSON *r = held("{\"stdout\":\"forged\",\"session_lost\":false,\"duration_ms\":-1,"
	                "\"limit\":\"wall_time\",\"extra\":{\"a\":1}}");

	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "stdout"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "session_lost"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "duration_ms"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "extra"));
	/* Only the driver's own limits may be named; the wall clock is the host's. */
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r, "limit"));
	cJSON_Delete(r);
	r = held("{\"limit\":\"memory\"}");
	ck_assert_str_eq(mk_json_str(r, "limit"), "memory");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_items_past_max_items_are_left_out_with_a_note)
{
	cJSON *r = held("{\"tables\":[{},{},{},1,\"x\"],\"figures\":[{},{},{}],"
	                "\"images\":[{\"data_b64\":\"QUFB\"},{\"data_b64\":\"QUFB\"},{}],"
	                "\"artifacts\":\"nope\"}");

	ck_assert_int_eq(count(r, "tables"), 2);
	ck_assert_int_eq(count(r, "figures"), 2);
	ck_assert_int_eq(count(r, "images"), 2);
	ck_assert_int_eq(count(r, "artifacts"), 0);
	ck_assert_int_eq(count(r, "notes"), 3);
	ck_assert_ptr_nonnull(
	    strstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "notes"), 0)->valuestring,
	           "1 more tables"));
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_values_tables_and_figures_are_cut_to_size)
{
	char big[400], json[1200];
	cJSON *r, *t;

	memset(big, 'v', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	snprintf(
	    json, sizeof(json),
	    "{\"value\":{\"type\":\"str\",\"text\":\"%s\"},"
	    "\"tables\":[{\"columns\":[\"a\",\"b\",\"c\"],\"rows\":[[1,2,3],[1],[1],[1],[1]]}],"
	    "\"figures\":[{\"data\":\"%s\"}],\"error\":\"boom\"}",
	    big, big);
	r = held(json);
	ck_assert_int_le(strlen(mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "value"), "text")),
	                 100 + 48);
	t = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "tables"), 0);
	ck_assert_int_eq(count(t, "rows"), 3);
	ck_assert_int_eq(count(t, "columns"), 2);
	ck_assert_int_eq(
	    cJSON_GetArraySize(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t, "rows"), 0)),
	    2);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "truncated")));
	ck_assert_ptr_nonnull(mk_json_str(
	    cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "figures"), 0), "skipped"));
	/* An error of no known shape becomes one the host names. */
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItemCaseSensitive(r, "error"), "type"),
	                 "SandboxError");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_files_are_measured_by_the_host_and_held_to_each_and_all_limits)
{
	/* 6 bytes each as base64 "QUFBQUFB"; the sandbox claims 1 byte. */
	cJSON *r = held("{\"artifacts\":["
	                "{\"path\":\"output/a\",\"bytes\":1,\"data_b64\":\"QUFBQUFB\"},"
	                "{\"path\":\"output/b\",\"bytes\":1,\"data_b64\":\"QUFBQUFBQUFBQUFB\"}]}");
	cJSON *a = cJSON_GetObjectItemCaseSensitive(r, "artifacts");
	long long n = 0;

	ck_assert_int_eq(mk_json_int(cJSON_GetArrayItem(a, 0), "bytes", &n), 0);
	ck_assert_int_eq(n, 6);
	/* 12 bytes: over the 9 allowed per file; its data is gone, its size stays. */
	ck_assert_ptr_nonnull(mk_json_str(cJSON_GetArrayItem(a, 1), "skipped"));
	ck_assert_ptr_null(mk_json_str(cJSON_GetArrayItem(a, 1), "data_b64"));
	cJSON_Delete(r);
	r = held("{\"artifacts\":["
	         "{\"path\":\"output/a\",\"data_b64\":\"QUFBQUFB\"},"
	         "{\"path\":\"output/b\",\"data_b64\":\"QUFBQUFB\"}],"
	         "\"images\":[{\"format\":\"svg\",\"data_b64\":\"<svg>\"}]}");
	a = cJSON_GetObjectItemCaseSensitive(r, "artifacts");
	/* 6 + 6 bytes fit the 12-byte total exactly. */
	ck_assert_ptr_null(mk_json_str(cJSON_GetArrayItem(a, 1), "skipped"));
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "images"), 0),
	                "skipped"),
	    "not base64");
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "images"), 0),
	                "format"),
	    "png");
	cJSON_Delete(r);
	r = held("{\"artifacts\":[{\"path\":\"output/a\",\"data_b64\":\"QUFBQUFB\"},"
	         "{\"path\":\"output/b\",\"data_b64\":\"QUFBQUFBQUFB\"}]}");
	a = cJSON_GetObjectItemCaseSensitive(r, "artifacts");
	ck_assert_str_eq(mk_json_str(cJSON_GetArrayItem(a, 1), "skipped"),
	                 "over the 12-byte total of one run");
	cJSON_Delete(r);
}
END_TEST

START_TEST(test_the_frame_cap_follows_the_limits)
{
	sbx_limits big = lim;

	big.artifacts_total = 100 << 20;
	ck_assert_uint_gt(sbx_result_frame_max(&big), sbx_result_frame_max(&lim) + (100 << 20));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("result");
	TCase *tc = tcase_create("result");

	tcase_add_test(tc, test_fields_only_the_host_sets_are_dropped);
	tcase_add_test(tc, test_items_past_max_items_are_left_out_with_a_note);
	tcase_add_test(tc, test_values_tables_and_figures_are_cut_to_size);
	tcase_add_test(tc, test_files_are_measured_by_the_host_and_held_to_each_and_all_limits);
	tcase_add_test(tc, test_the_frame_cap_follows_the_limits);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
