/*
 * buf_test.c - unit tests for common/mk_buf.c: appending, the ceiling, NUL
 * termination, steal, reset and release. Run under AddressSanitizer to see
 * that nothing leaks or reads uninitialised bytes past the terminator.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_buf.h"

START_TEST(test_a_new_buffer_is_empty_and_holds_no_memory)
{
	mk_buf b;

	mk_buf_init(&b, 100);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 100);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_append_puts_and_printf_accumulate_in_order)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	ck_assert_int_eq(mk_buf_append(&b, "ab", 2), 0);
	ck_assert_int_eq(mk_buf_puts(&b, "cd"), 0);
	ck_assert_int_eq(mk_buf_printf(&b, "-%d-%s-%03u", 42, "x", 7u), 0);
	ck_assert_int_eq(mk_buf_puts(&b, ""), 0);
	ck_assert_int_eq(mk_buf_printf(&b, "%s", ""), 0);
	ck_assert_str_eq(b.data, "abcd-42-x-007");
	ck_assert_uint_eq(b.len, strlen("abcd-42-x-007"));
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_the_data_is_nul_terminated_after_every_append)
{
	static const char bytes[] = {'x', 'y', 'z'}; /* no terminator of its own */
	mk_buf b;
	int i;

	mk_buf_init(&b, 0);
	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(mk_buf_append(&b, bytes, sizeof(bytes)), 0);
		ck_assert_int_eq(b.data[b.len], '\0');
		ck_assert_uint_eq(strlen(b.data), b.len);
		ck_assert_uint_gt(b.cap, b.len);
	}
	mk_buf_release(&b);

	mk_buf_init(&b, 0);
	ck_assert_int_eq(mk_buf_append(&b, "", 0), 0);
	ck_assert_ptr_nonnull(b.data);
	ck_assert_str_eq(b.data, "");
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_binary_data_with_nul_bytes_is_kept_whole)
{
	static const char bytes[] = {'a', '\0', 'b', '\0'};
	mk_buf b;

	mk_buf_init(&b, 0);
	ck_assert_int_eq(mk_buf_append(&b, bytes, sizeof(bytes)), 0);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_int_eq(memcmp(b.data, bytes, 4), 0);
	ck_assert_int_eq(b.data[4], '\0');
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_an_append_up_to_the_ceiling_succeeds)
{
	mk_buf b;

	mk_buf_init(&b, 8);
	ck_assert_int_eq(mk_buf_puts(&b, "1234"), 0);
	ck_assert_int_eq(mk_buf_printf(&b, "%s", "5678"), 0);
	ck_assert_str_eq(b.data, "12345678");
	ck_assert_int_eq(mk_buf_append(&b, "", 0), 0);
	ck_assert_uint_eq(b.len, 8);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_an_append_past_the_ceiling_fails_and_leaves_the_buffer_unchanged)
{
	mk_buf b;
	size_t cap;

	mk_buf_init(&b, 8);
	ck_assert_int_eq(mk_buf_puts(&b, "12345"), 0);
	cap = b.cap;

	ck_assert_int_eq(mk_buf_append(&b, "6789", 4), -1);
	ck_assert_int_eq(mk_buf_puts(&b, "6789"), -1);
	ck_assert_int_eq(mk_buf_printf(&b, "%d", 6789), -1);
	ck_assert_int_eq(mk_buf_printf(&b, "%s", "a string far longer than the ceiling"), -1);
	ck_assert_uint_eq(b.len, 5);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_str_eq(b.data, "12345");

	/* A failed append does not spend the room that is left. */
	ck_assert_int_eq(mk_buf_puts(&b, "678"), 0);
	ck_assert_str_eq(b.data, "12345678");
	ck_assert_int_eq(mk_buf_puts(&b, "9"), -1);
	ck_assert_str_eq(b.data, "12345678");
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_a_first_append_past_the_ceiling_allocates_nothing)
{
	mk_buf b;

	mk_buf_init(&b, 4);
	ck_assert_int_eq(mk_buf_puts(&b, "12345"), -1);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_a_length_that_would_overflow_is_refused)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	ck_assert_int_eq(mk_buf_puts(&b, "abc"), 0);
	ck_assert_int_eq(mk_buf_append(&b, "x", SIZE_MAX), -1);
	ck_assert_int_eq(mk_buf_append(&b, "x", SIZE_MAX - 3), -1);
	ck_assert_str_eq(b.data, "abc");
	ck_assert_uint_eq(b.len, 3);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_steal_hands_over_the_data_and_leaves_the_buffer_empty)
{
	mk_buf b;
	char *s;

	mk_buf_init(&b, 64);
	ck_assert_int_eq(mk_buf_puts(&b, "hello"), 0);
	s = mk_buf_steal(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "hello");
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 64);

	/* The buffer is usable again and owns nothing of the stolen string. */
	ck_assert_int_eq(mk_buf_puts(&b, "again"), 0);
	ck_assert_str_eq(b.data, "again");
	ck_assert_str_eq(s, "hello");
	free(s);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_steal_from_an_empty_buffer_gives_an_empty_string)
{
	mk_buf b;
	char *s;

	mk_buf_init(&b, 0);
	s = mk_buf_steal(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);

	/* Emptied by reset: the same. */
	ck_assert_int_eq(mk_buf_puts(&b, "abc"), 0);
	mk_buf_reset(&b);
	s = mk_buf_steal(&b);
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(s, "");
	free(s);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_reset_empties_the_buffer_but_keeps_its_memory)
{
	mk_buf b;
	char *data;
	size_t cap;

	mk_buf_init(&b, 16);
	ck_assert_int_eq(mk_buf_puts(&b, "0123456789abcdef"), 0);
	data = b.data;
	cap = b.cap;
	mk_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_ptr_eq(b.data, data);
	ck_assert_uint_eq(b.cap, cap);
	ck_assert_str_eq(b.data, "");
	/* The whole ceiling is available again. */
	ck_assert_int_eq(mk_buf_puts(&b, "fedcba9876543210"), 0);
	ck_assert_str_eq(b.data, "fedcba9876543210");
	mk_buf_release(&b);

	mk_buf_init(&b, 0);
	mk_buf_reset(&b); /* on a buffer that never allocated */
	ck_assert_ptr_null(b.data);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_release_twice_is_safe_and_keeps_the_ceiling)
{
	mk_buf b;

	mk_buf_init(&b, 32);
	ck_assert_int_eq(mk_buf_puts(&b, "some data"), 0);
	mk_buf_release(&b);
	ck_assert_ptr_null(b.data);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
	ck_assert_uint_eq(b.max, 32);
	mk_buf_release(&b);
	ck_assert_ptr_null(b.data);

	/* Still usable, still capped. */
	ck_assert_int_eq(mk_buf_puts(&b, "0123456789012345678901234567890123"), -1);
	ck_assert_int_eq(mk_buf_puts(&b, "ok"), 0);
	ck_assert_str_eq(b.data, "ok");
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_large_growth_keeps_every_byte)
{
	enum { CHUNK = 1000, CHUNKS = 4096 };
	char chunk[CHUNK];
	mk_buf b;
	size_t i, j;
	char *big;

	mk_buf_init(&b, 0);
	for (i = 0; i < CHUNKS; i++) {
		memset(chunk, 'a' + (int)(i % 26), sizeof(chunk));
		ck_assert_int_eq(mk_buf_append(&b, chunk, sizeof(chunk)), 0);
	}
	ck_assert_uint_eq(b.len, (size_t)CHUNK * CHUNKS);
	ck_assert_int_eq(b.data[b.len], '\0');
	for (i = 0; i < CHUNKS; i++)
		for (j = 0; j < CHUNK; j += 97)
			ck_assert_int_eq(b.data[i * CHUNK + j], 'a' + (int)(i % 26));
	mk_buf_release(&b);

	/* One append far larger than the first allocation. */
	big = malloc(16u << 20);
	ck_assert_ptr_nonnull(big);
	memset(big, 'z', 16u << 20);
	mk_buf_init(&b, 16u << 20);
	ck_assert_int_eq(mk_buf_puts(&b, "<"), 0);
	ck_assert_int_eq(mk_buf_append(&b, big, (16u << 20) - 1), 0);
	ck_assert_int_eq(mk_buf_append(&b, ">", 1), -1); /* exactly at the ceiling now */
	ck_assert_uint_eq(b.len, 16u << 20);
	ck_assert_int_eq(b.data[0], '<');
	ck_assert_int_eq(b.data[b.len - 1], 'z');
	ck_assert_int_eq(b.data[b.len], '\0');
	free(big);
	mk_buf_release(&b);
}
END_TEST

START_TEST(test_printf_of_a_long_formatted_string_grows_the_buffer)
{
	mk_buf b;
	int i;

	mk_buf_init(&b, 0);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(mk_buf_printf(&b, "%04d:%-60s|", i, "field"), 0);
	ck_assert_uint_eq(b.len, 1000u * 66);
	ck_assert_int_eq(strncmp(b.data + 999 * 66, "0999:field", 10), 0);
	ck_assert_int_eq(b.data[b.len - 1], '|');
	ck_assert_int_eq(b.data[b.len], '\0');
	mk_buf_release(&b);
}
END_TEST

static Suite *buf_suite(void)
{
	Suite *s = suite_create("mk_buf");
	TCase *tc = tcase_create("buf");

	tcase_add_test(tc, test_a_new_buffer_is_empty_and_holds_no_memory);
	tcase_add_test(tc, test_append_puts_and_printf_accumulate_in_order);
	tcase_add_test(tc, test_the_data_is_nul_terminated_after_every_append);
	tcase_add_test(tc, test_binary_data_with_nul_bytes_is_kept_whole);
	tcase_add_test(tc, test_an_append_up_to_the_ceiling_succeeds);
	tcase_add_test(tc, test_an_append_past_the_ceiling_fails_and_leaves_the_buffer_unchanged);
	tcase_add_test(tc, test_a_first_append_past_the_ceiling_allocates_nothing);
	tcase_add_test(tc, test_a_length_that_would_overflow_is_refused);
	tcase_add_test(tc, test_steal_hands_over_the_data_and_leaves_the_buffer_empty);
	tcase_add_test(tc, test_steal_from_an_empty_buffer_gives_an_empty_string);
	tcase_add_test(tc, test_reset_empties_the_buffer_but_keeps_its_memory);
	tcase_add_test(tc, test_release_twice_is_safe_and_keeps_the_ceiling);
	tcase_add_test(tc, test_large_growth_keeps_every_byte);
	tcase_add_test(tc, test_printf_of_a_long_formatted_string_grows_the_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(buf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
