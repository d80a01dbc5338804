/*
 * closest_test.c - the catalog names offered for a table the model got
 * wrong (meta_closest_names): by spelling of the bare name, containment
 * counting, the asked schema preferred, names sharing nothing left out;
 * and the cleaning of catalog text put in prompts (meta_text_clean).
 */
#include <string.h>

#include "metadata/metadata.h"
#include "mt_check.h"

static const char *const names[] = {
    "public.categories", "public.customers", "public.order_items",
    "public.orders",     "public.products",  "archive.orders_2019",
};
#define N (sizeof(names) / sizeof(names[0]))

START_TEST(test_a_misspelt_table_gets_the_nearest_names_first)
{
	size_t out[3], n = meta_closest_names("public.orderz", names, N, 3, out);

	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[out[0]], "public.orders");
	n = meta_closest_names("customer", names, N, 1, out);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[out[0]], "public.customers");
	n = meta_closest_names("items", names, N, 1, out);
	ck_assert_str_eq(names[out[0]], "public.order_items");
}
END_TEST

START_TEST(test_the_asked_schema_wins_a_tie_and_unrelated_names_are_left_out)
{
	size_t out[6], n;

	n = meta_closest_names("archive.orders", names, N, 2, out);
	ck_assert_uint_eq(n, 2);
	/* orders is nearer by spelling; the archive copy is named next. */
	ck_assert_str_eq(names[out[0]], "public.orders");
	ck_assert_str_eq(names[out[1]], "archive.orders_2019");
	n = meta_closest_names("zzzzzzzzzzzzzzzz", names, N, 6, out);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(meta_closest_names("orders", names, 0, 3, out), 0);
	ck_assert_uint_eq(meta_closest_names("orders", names, N, 0, out), 0);
}
END_TEST

START_TEST(test_catalog_text_is_cut_and_loses_its_control_characters)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	meta_text_clean(&b, "Orders\n\x1b[31mIGNORE\tall\x7f", 100);
	ck_assert_str_eq(b.data, "Orders  [31mIGNORE all ");
	mk_buf_reset(&b);
	meta_text_clean(&b, "abcdef", 3);
	mk_buf_puts(&b, "");
	ck_assert_str_eq(b.data, "abc...");
	mk_buf_reset(&b);
	/* "é" is two bytes: a cut in its middle keeps it out whole. */
	meta_text_clean(&b, "ab\xc3\xa9", 3);
	ck_assert_str_eq(b.data, "ab...");
	mk_buf_release(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("closest");
	TCase *tc = tcase_create("closest");

	tcase_add_test(tc, test_a_misspelt_table_gets_the_nearest_names_first);
	tcase_add_test(tc, test_the_asked_schema_wins_a_tie_and_unrelated_names_are_left_out);
	tcase_add_test(tc, test_catalog_text_is_cut_and_loses_its_control_characters);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
