/*
 * form_test.c - the gateway's readers of what clients send (gateway_form.c,
 * gateway_multipart.c), fed well-formed, malformed and hostile input: form
 * fields of the OAuth2 password form, the multipart boundary, the parts of
 * an upload and their Content-Disposition, and the file name kept.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gateway.h"
#include "mt_check.h"

/* ---- application/x-www-form-urlencoded */

START_TEST(form_fields_are_decoded_with_escapes_and_plus_as_space)
{
	const char *body = "grant_type=password&username=ann%40example.com&password=a+b%2Bc%25";
	char out[64];

	ck_assert_int_eq(gw_form_get(body, strlen(body), "username", out, sizeof(out)), 1);
	ck_assert_str_eq(out, "ann@example.com");
	ck_assert_int_eq(gw_form_get(body, strlen(body), "password", out, sizeof(out)), 1);
	ck_assert_str_eq(out, "a b+c%");
	ck_assert_int_eq(gw_form_get(body, strlen(body), "scope", out, sizeof(out)), 0);
	/* A field without '=' is present and empty. */
	ck_assert_int_eq(gw_form_get("a&b=1", 5, "a", out, sizeof(out)), 1);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(malformed_or_ambiguous_form_fields_are_refused)
{
	char out[8];
	const char *cases[] = {
	    "username=%4",           /* escape cut short */
	    "username=%zz",          /* not hex */
	    "username=a%00b",        /* NUL inside */
	    "username=a&username=b", /* repeated: which one? */
	    "username=123456789",    /* longer than out */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(
		    gw_form_get(cases[i], strlen(cases[i]), "username", out, sizeof(out)) == -1,
		    "accepted '%s'", cases[i]);
	/* Only len bytes are read: a value past them is not seen. */
	ck_assert_int_eq(gw_form_get("x=1&username=2", 3, "username", out, sizeof(out)), 0);
}
END_TEST

START_TEST(hex_digits_in_either_case)
{
	ck_assert_int_eq(gw_hexval('0'), 0);
	ck_assert_int_eq(gw_hexval('9'), 9);
	ck_assert_int_eq(gw_hexval('a'), 10);
	ck_assert_int_eq(gw_hexval('F'), 15);
	ck_assert_int_eq(gw_hexval('g'), -1);
	ck_assert_int_eq(gw_hexval(0), -1);
	ck_assert_int_eq(gw_hexval(0xC3), -1);
}
END_TEST

/* ---- multipart/form-data */

START_TEST(the_boundary_is_read_quoted_or_not_and_bad_ones_refused)
{
	char b[80];

	ck_assert_int_eq(
	    gw_multipart_boundary("multipart/form-data; boundary=abc123", b, sizeof(b)), 0);
	ck_assert_str_eq(b, "abc123");
	ck_assert_int_eq(
	    gw_multipart_boundary("multipart/form-data; charset=utf-8; boundary=\"a b:c\"", b,
	                          sizeof(b)),
	    0);
	ck_assert_str_eq(b, "a b:c");
	ck_assert_int_eq(gw_multipart_boundary("multipart/form-data", b, sizeof(b)), -1);
	ck_assert_int_eq(gw_multipart_boundary("multipart/form-data; boundary=", b, sizeof(b)), -1);
	ck_assert_int_eq(
	    gw_multipart_boundary("multipart/form-data; boundary=\"open", b, sizeof(b)), -1);
	{
		/* RFC 2046: at most 70 characters. */
		char ct[200];

		snprintf(ct, sizeof(ct), "multipart/form-data; boundary=%0*d", 71, 0);
		ck_assert_int_eq(gw_multipart_boundary(ct, b, sizeof(b)), -1);
	}
}
END_TEST

#define CRLF "\r\n"

START_TEST(a_body_splits_into_its_parts_with_names_filenames_and_bytes)
{
	const char body[] =
	    "preamble" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=\"file\"; "
	    "filename=\"C:\\\\data\\\\sales.csv\"" CRLF "Content-Type: text/csv" CRLF CRLF
	    "a,b" CRLF "1,2" CRLF "--XyZ" CRLF "Content-Disposition: form-data; name=name" CRLF CRLF
	    "q3" CRLF "--XyZ--" CRLF;
	gw_form_part parts[4];
	char err[200];
	int n = gw_multipart_parse(body, sizeof(body) - 1, "XyZ", parts, 4, err, sizeof(err));

	ck_assert_msg(n == 2, "%d: %s", n, err);
	ck_assert_str_eq(parts[0].name, "file");
	ck_assert_int_eq(parts[0].has_filename, 1);
	ck_assert_str_eq(gw_multipart_base_name(parts[0].filename), "sales.csv");
	ck_assert_int_eq(parts[0].len, 8);
	ck_assert_int_eq(memcmp(parts[0].data, "a,b" CRLF "1,2", 8), 0);
	ck_assert_str_eq(parts[1].name, "name");
	ck_assert_int_eq(parts[1].has_filename, 0);
	ck_assert_int_eq(parts[1].len, 2);
}
END_TEST

START_TEST(an_rfc5987_filename_is_decoded)
{
	const char body[] =
	    "--b" CRLF
	    "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''r%C3%A9gion.csv" CRLF
	        CRLF "x" CRLF "--b--";
	gw_form_part p[1];
	char err[200];

	ck_assert_int_eq(gw_multipart_parse(body, sizeof(body) - 1, "b", p, 1, err, sizeof(err)),
	                 1);
	ck_assert_str_eq(p[0].filename, "r\xc3\xa9gion.csv");
}
END_TEST

START_TEST(hostile_bodies_are_refused_with_a_reason)
{
	static const struct {
		const char *body, *why;
	} cases[] = {
	    {"no boundary at all", "no boundary"},
	    {"--b" CRLF "Content-Disposition: form-data; name=\"f\"" CRLF CRLF "never closed",
	     "ends before"},
	    {"--b" CRLF "Content-Type: text/plain" CRLF CRLF "x" CRLF "--b--", "no form-data name"},
	    {"--b" CRLF "Content-Disposition: form-data; name=\"unclosed" CRLF CRLF "x" CRLF
	     "--b--",
	     "malformed"},
	    {"--b" CRLF "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%00" CRLF CRLF
	     "x" CRLF "--b--",
	     "malformed"},
	    {"--b" CRLF "Content-Disposition: form-data; name=\"f\"" CRLF /* headers never end */,
	     "ends before"},
	    {"--b" CRLF "Content-Disposition: form-data; name=\"a\"" CRLF CRLF "1" CRLF "--b" CRLF
	     "Content-Disposition: form-data; name=\"b\"" CRLF CRLF "2" CRLF "--b" CRLF
	     "Content-Disposition: form-data; name=\"c\"" CRLF CRLF "3" CRLF "--b--",
	     "more than 2 parts"},
	};
	gw_form_part parts[2];
	char err[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(gw_multipart_parse(cases[i].body, strlen(cases[i].body), "b", parts,
		                                 2, err, sizeof(err)) == -1,
		              "case %zu accepted", i);
		ck_assert_msg(strstr(err, cases[i].why), "case %zu: '%s' does not say '%s'", i, err,
		              cases[i].why);
	}
}
END_TEST

START_TEST(a_part_header_block_too_long_is_not_searched_past_its_cap)
{
	/* 20 KB of header bytes without a blank line, then a valid-looking end. */
	size_t n = 20000;
	char *body = malloc(n + 200);
	gw_form_part p[1];
	char err[200];
	int len;

	len = snprintf(body, 200, "--b" CRLF "X-Pad: ");
	memset(body + len, 'a', n);
	len += (int)n;
	len +=
	    snprintf(body + len, 200,
	             CRLF "Content-Disposition: form-data; name=\"f\"" CRLF CRLF "x" CRLF "--b--");
	ck_assert_int_eq(gw_multipart_parse(body, (size_t)len, "b", p, 1, err, sizeof(err)), -1);
	free(body);
}
END_TEST

START_TEST(the_kept_file_name_is_the_last_path_part)
{
	ck_assert_str_eq(gw_multipart_base_name("report.xlsx"), "report.xlsx");
	ck_assert_str_eq(gw_multipart_base_name("/home/ann/report.xlsx"), "report.xlsx");
	ck_assert_str_eq(gw_multipart_base_name("C:\\Users\\ann\\report.xlsx"), "report.xlsx");
	ck_assert_str_eq(gw_multipart_base_name("dir/"), "");
	ck_assert_str_eq(gw_multipart_base_name("../../etc/passwd"), "passwd");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("gateway_form");
	TCase *form = tcase_create("form");
	TCase *mp = tcase_create("multipart");

	tcase_add_test(form, form_fields_are_decoded_with_escapes_and_plus_as_space);
	tcase_add_test(form, malformed_or_ambiguous_form_fields_are_refused);
	tcase_add_test(form, hex_digits_in_either_case);
	tcase_add_test(mp, the_boundary_is_read_quoted_or_not_and_bad_ones_refused);
	tcase_add_test(mp, a_body_splits_into_its_parts_with_names_filenames_and_bytes);
	tcase_add_test(mp, an_rfc5987_filename_is_decoded);
	tcase_add_test(mp, hostile_bodies_are_refused_with_a_reason);
	tcase_add_test(mp, a_part_header_block_too_long_is_not_searched_past_its_cap);
	tcase_add_test(mp, the_kept_file_name_is_the_last_path_part);
	suite_add_tcase(s, form);
	suite_add_tcase(s, mp);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
