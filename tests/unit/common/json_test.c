/*
 * json_test.c - unit tests for common/mk_json.c: bounded parsing with a
 * located error message (line, column, byte), the nesting limit, and the
 * typed getters that tell "absent" from "wrong type".
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"

static cJSON *parse_str(const char *s, int max_depth, char *err, size_t errlen)
{
	return mk_json_parse(s, strlen(s), max_depth, err, errlen);
}

/* n arrays, one inside the other: "[[...]]". Caller frees. */
static char *nested_arrays(int n)
{
	char *s = malloc((size_t)n * 2 + 1);
	int i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n; i++) {
		s[i] = '[';
		s[n + i] = ']';
	}
	s[2 * n] = '\0';
	return s;
}

/* n objects, one inside the other: {"a":{"a":...{}}}. Caller frees. */
static char *nested_objects(int n)
{
	size_t cap = (size_t)n * 6 + 1, off = 0;
	char *s = malloc(cap);
	int i;

	ck_assert_ptr_nonnull(s);
	for (i = 0; i < n - 1; i++)
		off += (size_t)snprintf(s + off, cap - off, "{\"a\":");
	off += (size_t)snprintf(s + off, cap - off, "{}");
	for (i = 0; i < n - 1; i++)
		s[off++] = '}';
	s[off] = '\0';
	return s;
}

START_TEST(test_a_document_parses_and_keeps_its_values)
{
	const char *doc = "{\"s\":\"x\",\"n\":-3,\"a\":[1,2,{\"b\":null}],\"t\":true}";
	char err[128] = "";
	cJSON *v = parse_str(doc, MK_JSON_MAX_DEPTH, err, sizeof(err));
	char *out;

	ck_assert_msg(v != NULL, "%s", err);
	ck_assert_str_eq(mk_json_str(v, "s"), "x");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(v, "a")), 3);
	out = mk_json_print(v);
	ck_assert_str_eq(out, doc);
	free(out);
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_scalars_and_surrounding_white_space_are_accepted)
{
	static const char *const docs[] = {"1",      "\"s\"",   "null", "true", " \t\r\n[]\n\n",
	                                   "{}\r\n", "  -0.5  "};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(docs[i], MK_JSON_MAX_DEPTH, err, sizeof(err));

		ck_assert_msg(v != NULL, "'%s': %s", docs[i], err);
		cJSON_Delete(v);
	}
}
END_TEST

START_TEST(test_only_the_given_length_is_parsed)
{
	const char *data = "{\"a\":1}GARBAGE";
	char err[128] = "";
	cJSON *v = mk_json_parse(data, 7, MK_JSON_MAX_DEPTH, err, sizeof(err));

	ck_assert_msg(v != NULL, "%s", err);
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_a_syntax_error_names_its_line_and_column)
{
	static const struct {
		const char *doc, *where;
	} cases[] = {
	    {"[1,\n  2 x]", "line 2, column 5"},      {"{\n  \"a\" 1}", "line 2, column 7"},
	    {"\n\n  @", "line 3, column 3"},          {"{\"a\":1,}", "line 1, column 8"},
	    {"[1,\r\n\t\tnope]", "line 2, column 3"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(cases[i].doc, MK_JSON_MAX_DEPTH, err, sizeof(err));

		ck_assert_msg(v == NULL, "'%s' parsed", cases[i].doc);
		ck_assert_msg(strstr(err, cases[i].where), "'%s': '%s' lacks '%s'", cases[i].doc,
		              err, cases[i].where);
	}
}
END_TEST

START_TEST(test_the_error_also_gives_the_byte_offset)
{
	char err[128] = "";

	ck_assert_ptr_null(parse_str("[1,\n  2 x]", MK_JSON_MAX_DEPTH, err, sizeof(err)));
	ck_assert_msg(strstr(err, "byte 8"), "%s", err);
}
END_TEST

START_TEST(test_truncated_input_is_rejected_with_a_location)
{
	static const char *const docs[] = {"[1,2", "{\"a\":", "\"open", "[1,\n", "tru", "{"};
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(docs[i], MK_JSON_MAX_DEPTH, err, sizeof(err));

		ck_assert_msg(v == NULL, "'%s' parsed", docs[i]);
		ck_assert_msg(strstr(err, "line ") && strstr(err, "column "), "'%s': %s", docs[i],
		              err);
	}
}
END_TEST

START_TEST(test_trailing_garbage_after_the_value_is_rejected)
{
	static const struct {
		const char *doc, *where;
	} cases[] = {
	    {"{} x", "line 1, column 4"},         {"1 2", "line 1, column 3"},
	    {"{}{}", "line 1, column 3"},         {"[1]\n]", "line 2, column 1"},
	    {"\"a\"\n\n  ,", "line 3, column 3"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(cases[i].doc, MK_JSON_MAX_DEPTH, err, sizeof(err));

		ck_assert_msg(v == NULL, "'%s' parsed", cases[i].doc);
		ck_assert_msg(strstr(err, cases[i].where), "'%s': '%s' lacks '%s'", cases[i].doc,
		              err, cases[i].where);
	}
}
END_TEST

START_TEST(test_empty_input_is_rejected)
{
	char err[128] = "";

	ck_assert_ptr_null(mk_json_parse("", 0, MK_JSON_MAX_DEPTH, err, sizeof(err)));
	ck_assert_msg(strstr(err, "empty"), "%s", err);

	err[0] = '\0';
	ck_assert_ptr_null(mk_json_parse("   \n", 4, MK_JSON_MAX_DEPTH, err, sizeof(err)));
	ck_assert_msg(err[0] != '\0', "white space alone gave no message");
}
END_TEST

START_TEST(test_a_nul_byte_inside_the_input_is_rejected)
{
	static const char doc[] = "{\"a\":\"x\0y\"}";
	char err[128] = "";

	ck_assert_ptr_null(
	    mk_json_parse(doc, sizeof(doc) - 1, MK_JSON_MAX_DEPTH, err, sizeof(err)));
	ck_assert_msg(strstr(err, "NUL") && strstr(err, "byte 7"), "%s", err);

	/* A NUL just after a complete value is not white space either. */
	ck_assert_ptr_null(mk_json_parse("{}\0", 3, MK_JSON_MAX_DEPTH, err, sizeof(err)));
}
END_TEST

START_TEST(test_nesting_up_to_the_limit_is_accepted)
{
	char *arrays = nested_arrays(64), *objects = nested_objects(64);
	char err[128] = "";
	cJSON *v;

	v = parse_str(arrays, 64, err, sizeof(err));
	ck_assert_msg(v != NULL, "%s", err);
	ck_assert_int_eq(mk_json_depth(v), 64);
	cJSON_Delete(v);

	v = parse_str(objects, 64, err, sizeof(err));
	ck_assert_msg(v != NULL, "%s", err);
	ck_assert_int_eq(mk_json_depth(v), 64);
	cJSON_Delete(v);
	free(arrays);
	free(objects);
}
END_TEST

START_TEST(test_nesting_past_the_limit_is_rejected_naming_the_limit)
{
	char *arrays = nested_arrays(65), *objects = nested_objects(65);
	char err[128] = "";

	ck_assert_ptr_null(parse_str(arrays, 64, err, sizeof(err)));
	ck_assert_msg(strstr(err, "64"), "%s", err);
	err[0] = '\0';
	ck_assert_ptr_null(parse_str(objects, 64, err, sizeof(err)));
	ck_assert_msg(strstr(err, "64"), "%s", err);
	free(arrays);
	free(objects);
}
END_TEST

START_TEST(test_depth_counts_a_scalar_as_one_level)
{
	static const struct {
		const char *doc;
		int depth;
	} cases[] = {
	    {"1", 1}, {"[]", 1}, {"[1]", 2}, {"{\"a\":[1,[2]]}", 4}, {"[[],[[]]]", 3},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(cases[i].doc, 0, err, sizeof(err));

		ck_assert_msg(v != NULL, "%s", err);
		ck_assert_msg(mk_json_depth(v) == cases[i].depth, "'%s': depth %d, want %d",
		              cases[i].doc, mk_json_depth(v), cases[i].depth);
		cJSON_Delete(v);
	}
}
END_TEST

START_TEST(test_a_string_getter_tells_absent_and_wrong_type_from_present)
{
	char err[128] = "";
	cJSON *v = parse_str("{\"s\":\"text\",\"n\":5,\"z\":null,\"e\":\"\"}", 0, err, sizeof(err));

	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(mk_json_str(v, "s"), "text");
	ck_assert_str_eq(mk_json_str(v, "e"), "");
	ck_assert_ptr_null(mk_json_str(v, "missing"));
	ck_assert_ptr_null(mk_json_str(v, "n"));
	ck_assert_ptr_null(mk_json_str(v, "z"));
	ck_assert_ptr_null(mk_json_str(v, "S")); /* names are case-sensitive */
	ck_assert_ptr_null(mk_json_str(NULL, "s"));
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_an_int_getter_fails_on_absent_or_wrong_type_and_leaves_the_output)
{
	char err[128] = "";
	cJSON *v =
	    parse_str("{\"n\":7,\"s\":\"7\",\"b\":true,\"z\":null,\"a\":[7]}", 0, err, sizeof(err));
	static const char *const bad[] = {"missing", "s", "b", "z", "a", "N"};
	long long out;
	size_t i;

	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(mk_json_int(v, "n", &out), 0);
	ck_assert_int_eq(out, 7);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 12345;
		ck_assert_msg(mk_json_int(v, bad[i], &out) == -1, "'%s' accepted", bad[i]);
		ck_assert_int_eq(out, 12345);
	}
	cJSON_Delete(v);
}
END_TEST

START_TEST(test_an_int_must_be_integral_and_exactly_representable)
{
	static const struct {
		const char *doc;
		int ok;
		long long want;
	} cases[] = {
	    {"{\"n\":9007199254740992}", 1, 9007199254740992LL},
	    {"{\"n\":-9007199254740992}", 1, -9007199254740992LL},
	    {"{\"n\":-3}", 1, -3},
	    {"{\"n\":0}", 1, 0},
	    {"{\"n\":2.0}", 1, 2},
	    {"{\"n\":1e3}", 1, 1000},
	    {"{\"n\":1.5}", 0, 0},
	    {"{\"n\":-0.25}", 0, 0},
	    {"{\"n\":1e300}", 0, 0},
	    {"{\"n\":-1e300}", 0, 0},
	    {"{\"n\":9007199254740994}", 0, 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[128] = "";
		cJSON *v = parse_str(cases[i].doc, 0, err, sizeof(err));
		long long out = 12345;
		int rc;

		ck_assert_msg(v != NULL, "%s", err);
		rc = mk_json_int(v, "n", &out);
		if (cases[i].ok) {
			ck_assert_msg(rc == 0, "%s rejected", cases[i].doc);
			ck_assert_msg(out == cases[i].want, "%s: got %lld", cases[i].doc, out);
		} else {
			ck_assert_msg(rc == -1, "%s accepted as %lld", cases[i].doc, out);
			ck_assert_int_eq(out, 12345);
		}
		ck_assert_int_eq(mk_json_as_int(cJSON_GetObjectItemCaseSensitive(v, "n"), &out),
		                 rc);
		cJSON_Delete(v);
	}
}
END_TEST

START_TEST(test_a_bool_getter_accepts_only_true_and_false)
{
	char err[128] = "";
	cJSON *v = parse_str("{\"t\":true,\"f\":false,\"one\":1,\"s\":\"true\",\"z\":null}", 0, err,
	                     sizeof(err));
	static const char *const bad[] = {"missing", "one", "s", "z"};
	size_t i;
	int out;

	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(mk_json_bool(v, "t", &out), 0);
	ck_assert_int_eq(out, 1);
	ck_assert_int_eq(mk_json_bool(v, "f", &out), 0);
	ck_assert_int_eq(out, 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = 7;
		ck_assert_msg(mk_json_bool(v, bad[i], &out) == -1, "'%s' accepted", bad[i]);
		ck_assert_int_eq(out, 7);
	}
	cJSON_Delete(v);
}
END_TEST

static Suite *json_suite(void)
{
	Suite *s = suite_create("mk_json");
	TCase *parse = tcase_create("parse"), *get = tcase_create("get");

	tcase_add_test(parse, test_a_document_parses_and_keeps_its_values);
	tcase_add_test(parse, test_scalars_and_surrounding_white_space_are_accepted);
	tcase_add_test(parse, test_only_the_given_length_is_parsed);
	tcase_add_test(parse, test_a_syntax_error_names_its_line_and_column);
	tcase_add_test(parse, test_the_error_also_gives_the_byte_offset);
	tcase_add_test(parse, test_truncated_input_is_rejected_with_a_location);
	tcase_add_test(parse, test_trailing_garbage_after_the_value_is_rejected);
	tcase_add_test(parse, test_empty_input_is_rejected);
	tcase_add_test(parse, test_a_nul_byte_inside_the_input_is_rejected);
	tcase_add_test(parse, test_nesting_up_to_the_limit_is_accepted);
	tcase_add_test(parse, test_nesting_past_the_limit_is_rejected_naming_the_limit);
	tcase_add_test(parse, test_depth_counts_a_scalar_as_one_level);
	suite_add_tcase(s, parse);

	tcase_add_test(get, test_a_string_getter_tells_absent_and_wrong_type_from_present);
	tcase_add_test(get, test_an_int_getter_fails_on_absent_or_wrong_type_and_leaves_the_output);
	tcase_add_test(get, test_an_int_must_be_integral_and_exactly_representable);
	tcase_add_test(get, test_a_bool_getter_accepts_only_true_and_false);
	suite_add_tcase(s, get);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(json_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
