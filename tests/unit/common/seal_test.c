/*
 * seal_test.c - unit tests for common/mk_seal.c: a sealed message opens
 * with the same key and kind only; any change to its bytes, its kind or
 * the key is refused; key files are checked.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "mk_seal.h"
#include "mt_check.h"

static const char secret[] = "0123456789abcdef0123456789abcdef-a-test-secret";

static nng_msg *sealed(const mk_seal_key *k, mk_seal_kind kind, const char *text)
{
	nng_msg *m;

	ck_assert_int_eq(nng_msg_alloc(&m, 0), 0);
	ck_assert_int_eq(nng_msg_append(m, text, strlen(text)), 0);
	ck_assert_int_eq(mk_seal_msg(k, kind, m), 0);
	ck_assert_uint_eq(nng_msg_len(m), strlen(text) + MK_SEAL_LEN);
	return m;
}

START_TEST(test_a_sealed_message_opens_to_its_bytes)
{
	mk_seal_key k;
	nng_msg *m;

	mk_seal_key_from(&k, secret, sizeof(secret) - 1);
	m = sealed(&k, MK_SEAL_REQUEST, "{\"op\":\"sys.ping\"}");
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_REQUEST, m), 0);
	ck_assert_uint_eq(nng_msg_len(m), 17);
	ck_assert_mem_eq(nng_msg_body(m), "{\"op\":\"sys.ping\"}", 17);
	nng_msg_free(m);
}
END_TEST

START_TEST(test_another_key_another_kind_or_a_changed_byte_is_refused)
{
	mk_seal_key k, other;
	nng_msg *m;
	size_t i, len;

	mk_seal_key_from(&k, secret, sizeof(secret) - 1);
	mk_seal_key_from(&other, secret, sizeof(secret) - 2);
	m = sealed(&k, MK_SEAL_REQUEST, "hello, service");
	ck_assert_int_eq(mk_seal_open(&other, MK_SEAL_REQUEST, m), -1);
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_REPLY, m), -1);
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_WORKER, m), -1);
	/* Refused messages are left as they were. */
	ck_assert_uint_eq(nng_msg_len(m), 14 + MK_SEAL_LEN);
	len = nng_msg_len(m);
	for (i = 0; i < len; i++) {
		unsigned char *p = nng_msg_body(m);

		p[i] ^= 0x20;
		ck_assert_msg(mk_seal_open(&k, MK_SEAL_REQUEST, m) == -1, "byte %zu changed", i);
		p[i] ^= 0x20;
	}
	/* Cut short, or nothing but the bytes: refused. */
	ck_assert_int_eq(nng_msg_chop(m, 1), 0);
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_REQUEST, m), -1);
	nng_msg_clear(m);
	ck_assert_int_eq(nng_msg_append(m, "hello, service", 14), 0);
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_REQUEST, m), -1);
	nng_msg_clear(m);
	ck_assert_int_eq(mk_seal_open(&k, MK_SEAL_REQUEST, m), -1);
	nng_msg_free(m);
}
END_TEST

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(test_key_files_are_checked_and_a_trailing_newline_does_not_count)
{
	char path[] = "/tmp/mark-seal-test-XXXXXX", err[512];
	mk_seal_key a, b;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	write_file(path, "too short\n");
	ck_assert_int_eq(mk_seal_key_load(&a, path, "X_BUS_KEY_FILE", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "X_BUS_KEY_FILE") && strstr(err, "32"), "%s", err);
	write_file(path, "0123456789abcdef0123456789abcdef-a-test-secret\n");
	ck_assert_int_eq(mk_seal_key_load(&a, path, "X_BUS_KEY_FILE", err, sizeof(err)), 0);
	mk_seal_key_from(&b, secret, sizeof(secret) - 1);
	ck_assert_mem_eq(a.k, b.k, sizeof(a.k));
	unlink(path);
	ck_assert_int_eq(mk_seal_key_load(&a, path, "X_BUS_KEY_FILE", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "cannot open"), "%s", err);
	ck_assert_int_eq(mk_seal_key_load(&a, NULL, "X_BUS_KEY_FILE", err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "X_BUS_KEY_FILE is not set"), "%s", err);
}
END_TEST

START_TEST(test_a_refusal_is_recognised_and_nothing_else_is)
{
	ck_assert(mk_seal_is_refusal(MK_SEAL_REFUSAL, strlen(MK_SEAL_REFUSAL)));
	ck_assert(!mk_seal_is_refusal(MK_SEAL_REFUSAL, strlen(MK_SEAL_REFUSAL) - 1));
	ck_assert(!mk_seal_is_refusal("MKS1!", 5));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");

	tcase_add_test(tc, test_a_sealed_message_opens_to_its_bytes);
	tcase_add_test(tc, test_another_key_another_kind_or_a_changed_byte_is_refused);
	tcase_add_test(tc, test_key_files_are_checked_and_a_trailing_newline_does_not_count);
	tcase_add_test(tc, test_a_refusal_is_recognised_and_nothing_else_is);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
