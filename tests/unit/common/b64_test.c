/*
 * b64_test.c - unit tests for common/mk_b64.c: the RFC 4648 test vectors
 * both ways, binary bytes round trip, and text that is not base64 refused.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "mk_b64.h"
#include "mt_check.h"

static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const coded[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};

START_TEST(test_the_rfc_vectors_encode_and_decode)
{
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		char *e = mk_b64_encode(plain[i], strlen(plain[i]));
		size_t n = 99;
		unsigned char *d = mk_b64_decode(coded[i], strlen(coded[i]), &n);

		ck_assert_str_eq(e, coded[i]);
		ck_assert_ptr_nonnull(d);
		ck_assert_uint_eq(n, strlen(plain[i]));
		ck_assert_mem_eq(d, plain[i], n);
		ck_assert_uint_eq(mk_b64_decoded_len(coded[i], strlen(coded[i])), n);
		free(e);
		free(d);
	}
}
END_TEST

START_TEST(test_every_byte_value_round_trips)
{
	unsigned char in[777];
	unsigned char *out;
	char *e;
	size_t n;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	e = mk_b64_encode(in, sizeof(in));
	out = mk_b64_decode(e, strlen(e), &n);
	ck_assert_uint_eq(n, sizeof(in));
	ck_assert_mem_eq(out, in, n);
	free(e);
	free(out);
}
END_TEST

START_TEST(test_text_that_is_not_base64_is_refused)
{
	static const char *const bad[] = {"Zg=",  "Z===", "Zg==Zg==", "Zm9v\n",
	                                  "Zm 9", "Zm9*", "=Zm9"};
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mk_b64_decode(bad[i], strlen(bad[i]), &n) == NULL, "'%s' accepted",
		              bad[i]);
}
END_TEST

START_TEST(test_base64url_has_no_padding_and_the_url_alphabet)
{
	static const unsigned char in[] = {0xfb, 0xff, 0xbf, 0x00, 0x10};
	static const char *const bad[] = {"+_8", "_/8", "Zg==", "Z", "Zm9v*"};
	unsigned char *out;
	char *e = mk_b64url_encode(in, sizeof(in));
	size_t n, i;

	ck_assert_str_eq(e, "-_-_ABA"); /* standard: "+/+/ABA=" */
	out = mk_b64url_decode(e, strlen(e), &n);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(n, sizeof(in));
	ck_assert_mem_eq(out, in, n);
	free(e);
	free(out);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mk_b64url_decode(bad[i], strlen(bad[i]), &n) == NULL, "'%s' decoded",
		              bad[i]);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("b64");
	TCase *tc = tcase_create("b64");

	tcase_add_test(tc, test_the_rfc_vectors_encode_and_decode);
	tcase_add_test(tc, test_every_byte_value_round_trips);
	tcase_add_test(tc, test_text_that_is_not_base64_is_refused);
	tcase_add_test(tc, test_base64url_has_no_padding_and_the_url_alphabet);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
