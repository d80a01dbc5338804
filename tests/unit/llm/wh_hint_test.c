/*
 * wh_hint_test.c - reading a failed run_sql so the model gets help: the
 * warehouse's message classified (PostgreSQL and BigQuery forms of an
 * unknown column, an unknown table, a syntax or function error), the
 * tables a query names, and the cleaning of catalog text.
 */
#include <string.h>

#include "llm/llm.h"
#include "mt_check.h"

START_TEST(test_postgres_messages_are_classified_with_the_name)
{
	char name[LLM_SQL_NAME_MAX];

	ck_assert_int_eq(llm_wh_sql_error("ERROR:  column \"colour\" does not exist\nLINE 1: ...",
	                                  name, sizeof(name)),
	                 LLM_SQL_UNKNOWN_COLUMN);
	ck_assert_str_eq(name, "colour");
	ck_assert_int_eq(llm_wh_sql_error("column o.colour does not exist", name, sizeof(name)),
	                 LLM_SQL_UNKNOWN_COLUMN);
	ck_assert_str_eq(name, "o.colour");
	ck_assert_int_eq(
	    llm_wh_sql_error("ERROR:  relation \"orderz\" does not exist", name, sizeof(name)),
	    LLM_SQL_UNKNOWN_TABLE);
	ck_assert_str_eq(name, "orderz");
	ck_assert_int_eq(llm_wh_sql_error("syntax error at or near \"FROM\"", name, sizeof(name)),
	                 LLM_SQL_DIALECT_POSTGRES);
	ck_assert_int_eq(
	    llm_wh_sql_error("function date_sub(date, integer) does not exist", name, sizeof(name)),
	    LLM_SQL_DIALECT_POSTGRES);
	ck_assert_int_eq(llm_wh_sql_error("division by zero", name, sizeof(name)), LLM_SQL_OTHER);
}
END_TEST

START_TEST(test_bigquery_messages_are_classified_with_the_name)
{
	char name[LLM_SQL_NAME_MAX];

	ck_assert_int_eq(llm_wh_sql_error("Unrecognized name: colour at [1:8]", name, sizeof(name)),
	                 LLM_SQL_UNKNOWN_COLUMN);
	ck_assert_str_eq(name, "colour");
	ck_assert_int_eq(
	    llm_wh_sql_error("Not found: Table proj-1:shop.orderz was not found in location US",
	                     name, sizeof(name)),
	    LLM_SQL_UNKNOWN_TABLE);
	ck_assert_str_eq(name, "shop.orderz");
	ck_assert_int_eq(
	    llm_wh_sql_error("Syntax error: Unexpected keyword FROM at [1:10]", name, sizeof(name)),
	    LLM_SQL_DIALECT_BIGQUERY);
	ck_assert_int_eq(
	    llm_wh_sql_error("Function not found: date_trunc_x at [1:8]", name, sizeof(name)),
	    LLM_SQL_DIALECT_BIGQUERY);
}
END_TEST

START_TEST(test_the_tables_a_query_names)
{
	char t[4][LLM_SQL_NAME_MAX];
	size_t n;

	n = llm_wh_sql_tables("SELECT o.id FROM public.orders o JOIN \"order_items\" i ON "
	                      "i.order_id = o.id WHERE o.status = 'from x' AND o.id IN "
	                      "(SELECT id FROM orders)",
	                      t, 4);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(t[0], "public.orders");
	ck_assert_str_eq(t[1], "order_items");
	ck_assert_str_eq(t[2], "orders");
	n = llm_wh_sql_tables("select * from `shop.orders`, unnest(items)", t, 4);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(t[0], "shop.orders");
	ck_assert_uint_eq(llm_wh_sql_tables("SELECT 1", t, 4), 0);
	ck_assert_uint_eq(llm_wh_sql_tables("SELECT * FROM a JOIN b ON 1=1 JOIN c", t, 2), 2);
}
END_TEST

START_TEST(test_catalog_text_is_cleaned_before_the_model_reads_it)
{
	mk_buf b;

	mk_buf_init(&b, 0);
	llm_wh_clean(&b, "a\nb\x1b", 100);
	ck_assert_str_eq(b.data, "a b ");
	mk_buf_reset(&b);
	llm_wh_text(&b, "a\nb\rc", 100);
	ck_assert_str_eq(b.data, "a\nb c");
	mk_buf_reset(&b);
	llm_wh_clean(&b, "abcdef", 4);
	ck_assert_str_eq(b.data, "abcd...");
	mk_buf_release(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("wh_hint");
	TCase *tc = tcase_create("wh_hint");

	tcase_add_test(tc, test_postgres_messages_are_classified_with_the_name);
	tcase_add_test(tc, test_bigquery_messages_are_classified_with_the_name);
	tcase_add_test(tc, test_the_tables_a_query_names);
	tcase_add_test(tc, test_catalog_text_is_cleaned_before_the_model_reads_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
