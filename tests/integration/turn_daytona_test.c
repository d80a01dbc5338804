/*
 * turn_daytona_test.c - chat turns end to end with the executor on the
 * Daytona backend, against the Daytona double and the LLM double: a pandas
 * result with a Plotly figure, a CSV upload analysed in the sandbox, state
 * kept between turns, code corrected from its traceback; at the end no
 * sandbox is left.
 */
#define TURN_TEST_DAYTONA 1
/* The cases not run here are about other services; they are the same on either backend. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-variable"
#include "turn_test.c"
#pragma GCC diagnostic pop

START_TEST(test_readyz_says_the_executor_holds_its_sandboxes_in_daytona)
{
	mt_resp r;

	ck_assert_int_eq(mt_http("GET", mt_url(&st, "/readyz"), NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(
	    mk_json_str(cJSON_GetObjectItemCaseSensitive(
	                    cJSON_GetObjectItemCaseSensitive(r.json, "services"), "executor"),
	                "isolation"),
	    "daytona");
	mt_resp_release(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("turn_daytona");
	TCase *tc = tcase_create("turn_daytona");

	tcase_add_unchecked_fixture(tc, up, down);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_readyz_says_the_executor_holds_its_sandboxes_in_daytona);
	tcase_add_test(tc, test_a_computation_with_a_plotly_chart_reaches_the_client);
	tcase_add_test(tc,
	               test_a_question_about_an_uploaded_csv_is_answered_with_pandas_and_a_chart);
	tcase_add_test(tc, test_a_second_question_builds_on_the_first_turns_variables);
	tcase_add_test(tc, test_code_that_fails_is_corrected_from_its_traceback);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
