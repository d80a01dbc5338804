/*
 * cfg_test.c - unit tests for common/mk_cfg.c.
 *
 * mk_cfg_load is driven through its getter hook with a small name -> value
 * table, over a test config that has one variable of every type plus a
 * secret and a required string. mk_cfg_main reads the real environment, so
 * its tests set MKT_CFG_* variables (each test runs in its own forked
 * process; they are unset again anyway). Leaks are caught by running this
 * binary under AddressSanitizer.
 */
#include <check.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_cfg.h"
#include "mk_log.h"

struct tcfg {
	char *name;
	long long port;
	int debug;
	long long max_body;
	long long timeout_ms;
	char *level;
	char *api_key;
	char *db_url;
};

#define V_NAME     "MKT_CFG_NAME"
#define V_PORT     "MKT_CFG_PORT"
#define V_DEBUG    "MKT_CFG_DEBUG"
#define V_MAX_BODY "MKT_CFG_MAX_BODY"
#define V_TIMEOUT  "MKT_CFG_TIMEOUT"
#define V_LEVEL    "MKT_CFG_LEVEL"
#define V_API_KEY  "MKT_CFG_API_KEY"
#define V_DB_URL   "MKT_CFG_DB_URL"

#define DB_URL "postgres://127.0.0.1/mark"
#define SECRET "sk-live-0123456789abcdef0123456789abcdef" /* 40 bytes: over the 32 allowed */

#define C(f) offsetof(struct tcfg, f)

static const mk_cfg_var vars[] = {
    {V_NAME, MK_CFG_STR, "mark", 1, 16, 0, 0, NULL, "service name", C(name)},
    {V_PORT, MK_CFG_INT, "8080", 1, 65535, 0, 0, NULL, "port to listen on", C(port)},
    {V_DEBUG, MK_CFG_BOOL, "false", 0, 0, 0, 0, NULL, "debug mode", C(debug)},
    {V_MAX_BODY, MK_CFG_SIZE, "1M", 1024, 4LL << 30, 0, 0, NULL, "largest request body",
     C(max_body)},
    {V_TIMEOUT, MK_CFG_DURATION, "30s", 100, 24LL * 3600 * 1000, 0, 0, NULL, "request timeout",
     C(timeout_ms)},
    {V_LEVEL, MK_CFG_ENUM, "info", 0, 0, 0, 0, "debug|info|warn|error", "log level", C(level)},
    {V_API_KEY, MK_CFG_STR, NULL, 0, 32, 1, 0, NULL, "provider API key (secret)", C(api_key)},
    {V_DB_URL, MK_CFG_STR, NULL, 1, 256, 0, 1, NULL, "database URL", C(db_url)},
};
#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* The test's "environment": name -> value pairs ending with {NULL, NULL}. */
typedef struct {
	const char *name, *value;
} kv;

static const char *table_get(const char *name, void *ud)
{
	const kv *t = ud;

	for (; t->name; t++)
		if (strcmp(t->name, name) == 0)
			return t->value;
	return NULL;
}

/* Sentinels, so a test can tell "left alone" from "set to the default". */
static void poison(struct tcfg *c)
{
	memset(c, 0, sizeof(*c));
	c->port = -1;
	c->debug = -1;
	c->max_body = -1;
	c->timeout_ms = -1;
}

static int load(const kv *env, struct tcfg *c, char **errors)
{
	poison(c);
	return mk_cfg_load(vars, NVARS, c, table_get, (void *)env, errors);
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; s && *s; s++)
		n += *s == '\n';
	return n;
}

/* Load {DB_URL, name=value}, expect success, and hand back the config (caller releases). */
static void load_one_ok(const char *name, const char *value, struct tcfg *c)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {name, value}, {NULL, NULL}};
	char *errors = NULL;
	int rc = load(env, c, &errors);

	ck_assert_msg(rc == 0, "%s=%s: rc %d: %s", name, value, rc, errors ? errors : "");
	ck_assert_ptr_null(errors);
}

/* Load {DB_URL, name=value}, expect exactly one problem, return its text (caller frees). */
static char *load_one_bad(const char *name, const char *value, struct tcfg *c)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {name, value}, {NULL, NULL}};
	char *errors = NULL;
	int rc = load(env, c, &errors);

	ck_assert_msg(rc == 1, "%s=%s: expected 1 problem, got %d: %s", name, value, rc,
	              errors ? errors : "(none)");
	ck_assert_ptr_nonnull(errors);
	ck_assert_int_eq(count_lines(errors), 1);
	ck_assert_msg(strncmp(errors, name, strlen(name)) == 0, "'%s' does not start with %s",
	              errors, name);
	return errors;
}

START_TEST(test_defaults_are_applied_to_every_variable_left_unset)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {NULL, NULL}};
	struct tcfg c;
	char *errors = (char *)"untouched";

	ck_assert_int_eq(load(env, &c, &errors), 0);
	ck_assert_ptr_null(errors);
	ck_assert_str_eq(c.name, "mark");
	ck_assert_int_eq(c.port, 8080);
	ck_assert_int_eq(c.debug, 0);
	ck_assert_int_eq(c.max_body, 1024 * 1024);
	ck_assert_int_eq(c.timeout_ms, 30000);
	ck_assert_str_eq(c.level, "info");
	ck_assert_ptr_null(c.api_key); /* no default: empty */
	ck_assert_str_eq(c.db_url, DB_URL);
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_an_empty_value_counts_as_unset_and_takes_the_default)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {V_PORT, ""}, {V_NAME, ""}, {NULL, NULL}};
	struct tcfg c;
	char *errors = NULL;

	ck_assert_int_eq(load(env, &c, &errors), 0);
	ck_assert_int_eq(c.port, 8080);
	ck_assert_str_eq(c.name, "mark");
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_every_type_parses_its_documented_forms)
{
	static const struct {
		const char *name, *value;
		long long want;
	} cases[] = {
	    {V_PORT, "1", 1},
	    {V_PORT, "65535", 65535},
	    {V_MAX_BODY, "4096", 4096},
	    {V_MAX_BODY, "64K", 64LL * 1024},
	    {V_MAX_BODY, "64k", 64LL * 1024},
	    {V_MAX_BODY, "2M", 2LL * 1024 * 1024},
	    {V_MAX_BODY, "1G", 1LL << 30},
	    {V_MAX_BODY, "1GiB", 1LL << 30},
	    {V_MAX_BODY, "2MB", 2LL * 1024 * 1024},
	    {V_TIMEOUT, "250", 250},
	    {V_TIMEOUT, "250ms", 250},
	    {V_TIMEOUT, "3s", 3000},
	    {V_TIMEOUT, "2m", 120000},
	    {V_TIMEOUT, "1h", 3600000},
	    {V_DEBUG, "true", 1},
	    {V_DEBUG, "0", 0},
	    {V_DEBUG, "yes", 1},
	    {V_DEBUG, "off", 0},
	    {V_DEBUG, "1", 1},
	    {V_DEBUG, "FALSE", 0},
	    {V_DEBUG, "On", 1},
	    {V_DEBUG, "no", 0},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tcfg c;
		long long got;

		load_one_ok(cases[i].name, cases[i].value, &c);
		if (strcmp(cases[i].name, V_PORT) == 0)
			got = c.port;
		else if (strcmp(cases[i].name, V_MAX_BODY) == 0)
			got = c.max_body;
		else if (strcmp(cases[i].name, V_TIMEOUT) == 0)
			got = c.timeout_ms;
		else
			got = c.debug;
		ck_assert_msg(got == cases[i].want, "%s=%s: got %lld, want %lld", cases[i].name,
		              cases[i].value, got, cases[i].want);
		mk_cfg_release(vars, NVARS, &c);
	}
}
END_TEST

START_TEST(test_strings_and_enums_are_copied_into_the_config)
{
	const kv env[] = {{V_DB_URL, DB_URL},
	                  {V_NAME, "gateway"},
	                  {V_LEVEL, "warn"},
	                  {V_API_KEY, "k-123"},
	                  {NULL, NULL}};
	struct tcfg c;
	char *errors = NULL;

	ck_assert_int_eq(load(env, &c, &errors), 0);
	ck_assert_str_eq(c.name, "gateway");
	ck_assert_ptr_ne(c.name, env[1].value); /* a copy, not the getter's pointer */
	ck_assert_str_eq(c.level, "warn");
	ck_assert_str_eq(c.api_key, "k-123");
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_a_value_out_of_bounds_is_reported_with_the_variable_and_the_bound)
{
	static const struct {
		const char *name, *value, *want[3];
	} cases[] = {
	    {V_PORT, "70000", {"70000", "above the maximum", "65535"}},
	    {V_PORT, "0", {"0", "below the minimum", "1"}},
	    {V_PORT, "-5", {"-5", "below the minimum", "1"}},
	    {V_MAX_BODY, "512", {"512", "below the minimum", "1024"}},
	    {V_MAX_BODY, "5G", {"5368709120", "above the maximum", "4294967296"}},
	    {V_TIMEOUT, "50ms", {"50", "below the minimum", "100"}},
	    {V_TIMEOUT, "25h", {"90000000", "above the maximum", "86400000"}},
	    {V_NAME, "a-name-that-is-too-long", {"length 23", "1", "16"}},
	};
	size_t i, j;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tcfg c;
		char *errors = load_one_bad(cases[i].name, cases[i].value, &c);

		for (j = 0; j < 3; j++)
			ck_assert_msg(strstr(errors, cases[i].want[j]), "%s=%s: '%s' lacks '%s'",
			              cases[i].name, cases[i].value, errors, cases[i].want[j]);
		free(errors);
		mk_cfg_release(vars, NVARS, &c);
	}
}
END_TEST

START_TEST(test_a_default_outside_its_bounds_is_reported_as_the_default)
{
	static const mk_cfg_var bad_def[] = {
	    {"MKT_CFG_WORKERS", MK_CFG_INT, "0", 1, 8, 0, 0, NULL, "workers", 0},
	};
	const kv env[] = {{NULL, NULL}};
	long long workers = -1;
	char *errors = NULL;

	ck_assert_int_eq(mk_cfg_load(bad_def, 1, &workers, table_get, (void *)env, &errors), 1);
	ck_assert_msg(strstr(errors, "MKT_CFG_WORKERS") && strstr(errors, "default 0") &&
	                  strstr(errors, "minimum 1"),
	              "%s", errors);
	ck_assert_int_eq(workers, -1);
	free(errors);
}
END_TEST

START_TEST(test_all_problems_are_reported_at_once)
{
	const kv env[] = {{V_DB_URL, DB_URL},
	                  {V_PORT, "99999"},
	                  {V_DEBUG, "maybe"},
	                  {V_TIMEOUT, "soon"},
	                  {NULL, NULL}};
	struct tcfg c;
	char *errors = NULL;

	ck_assert_int_eq(load(env, &c, &errors), 3);
	ck_assert_ptr_nonnull(errors);
	ck_assert_int_eq(count_lines(errors), 3);
	ck_assert_ptr_nonnull(strstr(errors, V_PORT));
	ck_assert_ptr_nonnull(strstr(errors, V_DEBUG));
	ck_assert_ptr_nonnull(strstr(errors, V_TIMEOUT));
	/* The good variables around them were still loaded. */
	ck_assert_str_eq(c.db_url, DB_URL);
	ck_assert_int_eq(c.max_body, 1024 * 1024);
	free(errors);
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_a_malformed_value_is_reported_not_replaced_by_its_default)
{
	static const struct {
		const char *name, *value;
	} cases[] = {
	    {V_PORT, "80x"},
	    {V_PORT, "x80"},
	    {V_PORT, "0x50"},
	    {V_PORT, "8e3"},
	    {V_PORT, " 80"},
	    {V_PORT, "80 "},
	    {V_PORT, "80-"},
	    {V_PORT, "8-0"},
	    {V_PORT, "-"},
	    {V_PORT, "8080.0"},
	    {V_PORT, "99999999999999999999"},
	    {V_DEBUG, "2"},
	    {V_DEBUG, "maybe"},
	    {V_DEBUG, "truee"},
	    {V_MAX_BODY, "12Q"},
	    {V_MAX_BODY, "K"},
	    {V_MAX_BODY, "64KiBs"},
	    {V_MAX_BODY, "1.5M"},
	    {V_MAX_BODY, "64 K"},
	    {V_MAX_BODY, "1T"},
	    {V_TIMEOUT, "1d"},
	    {V_TIMEOUT, "3 s"},
	    {V_TIMEOUT, "s"},
	    {V_TIMEOUT, "1.5s"},
	    {V_TIMEOUT, "3sec"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tcfg c;
		char *errors = load_one_bad(cases[i].name, cases[i].value, &c);
		char quoted[64];

		snprintf(quoted, sizeof(quoted), "'%s'", cases[i].value);
		ck_assert_msg(strstr(errors, quoted), "%s=%s: '%s' does not quote the value",
		              cases[i].name, cases[i].value, errors);
		/* The slot keeps the sentinel: no fallback to 8080, false, 1M or 30s. */
		ck_assert_int_eq(c.port, strcmp(cases[i].name, V_PORT) == 0 ? -1 : 8080);
		ck_assert_int_eq(c.debug, strcmp(cases[i].name, V_DEBUG) == 0 ? -1 : 0);
		ck_assert_int_eq(c.max_body,
		                 strcmp(cases[i].name, V_MAX_BODY) == 0 ? -1 : 1024 * 1024);
		ck_assert_int_eq(c.timeout_ms, strcmp(cases[i].name, V_TIMEOUT) == 0 ? -1 : 30000);
		free(errors);
		mk_cfg_release(vars, NVARS, &c);
	}
}
END_TEST

START_TEST(test_a_required_variable_left_unset_is_an_error)
{
	const kv unset[] = {{NULL, NULL}};
	const kv empty[] = {{V_DB_URL, ""}, {NULL, NULL}};
	const kv *envs[] = {unset, empty};
	size_t i;

	for (i = 0; i < 2; i++) {
		struct tcfg c;
		char *errors = NULL;

		ck_assert_int_eq(load(envs[i], &c, &errors), 1);
		ck_assert_msg(strstr(errors, V_DB_URL ": required but not set"), "%s", errors);
		/* The help line says what the variable is for. */
		ck_assert_ptr_nonnull(strstr(errors, "database URL"));
		ck_assert_ptr_null(c.db_url);
		free(errors);
		mk_cfg_release(vars, NVARS, &c);
	}
}
END_TEST

START_TEST(test_an_enum_rejects_a_word_not_among_its_choices)
{
	static const char *const bad[] = {"verbose", "inf", "infox", "info|warn", "debug|"};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tcfg c;
		char *errors = load_one_bad(V_LEVEL, bad[i], &c);

		ck_assert_msg(strstr(errors, bad[i]) && strstr(errors, "debug|info|warn|error"),
		              "%s", errors);
		ck_assert_ptr_null(c.level);
		free(errors);
		mk_cfg_release(vars, NVARS, &c);
	}
}
END_TEST

START_TEST(test_a_secret_never_appears_in_the_error_text)
{
	static const mk_cfg_var secret_enum[] = {
	    {"MKT_CFG_SECRET_MODE", MK_CFG_ENUM, NULL, 0, 0, 1, 0, "a|b", "secret mode", 0},
	};
	const kv env[] = {{V_DB_URL, DB_URL}, {"MKT_CFG_SECRET_MODE", SECRET}, {NULL, NULL}};
	struct tcfg c;
	char *mode = NULL;
	char *errors = load_one_bad(V_API_KEY, SECRET, &c);

	ck_assert_ptr_nonnull(strstr(errors, V_API_KEY));
	ck_assert_msg(!strstr(errors, SECRET) && !strstr(errors, "sk-live"), "secret leaked: %s",
	              errors);
	ck_assert_ptr_null(c.api_key);
	free(errors);
	mk_cfg_release(vars, NVARS, &c);

	/* The same for a secret that fails the type check rather than the length. */
	ck_assert_int_eq(mk_cfg_load(secret_enum, 1, &mode, table_get, (void *)env, &errors), 1);
	ck_assert_msg(!strstr(errors, "sk-live"), "secret leaked: %s", errors);
	free(errors);
	mk_cfg_release(secret_enum, 1, &mode);
}
END_TEST

START_TEST(test_the_effective_config_log_masks_secrets)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {V_API_KEY, "k-live-42"}, {NULL, NULL}};
	char out[4096] = "";
	struct tcfg c;
	char *errors = NULL;
	FILE *f = tmpfile();
	int saved = dup(2);
	size_t n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(load(env, &c, &errors), 0);
	mk_log_init("cfgtest", MK_LOG_INFO);
	ck_assert_int_ne(dup2(fileno(f), 2), -1);
	mk_cfg_log(vars, NVARS, &c);
	ck_assert_int_ne(dup2(saved, 2), -1);
	close(saved);
	rewind(f);
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	fclose(f);
	ck_assert_msg(strstr(out, V_API_KEY "=(set)"), "%s", out);
	ck_assert_msg(strstr(out, V_PORT "=8080"), "%s", out);
	ck_assert_msg(!strstr(out, "k-live-42"), "secret leaked: %s", out);
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_release_frees_every_string_and_is_safe_to_repeat)
{
	const kv env[] = {{V_DB_URL, DB_URL},
	                  {V_NAME, "gateway"},
	                  {V_LEVEL, "debug"},
	                  {V_API_KEY, "k-123"},
	                  {NULL, NULL}};
	struct tcfg c;
	char *errors = NULL;

	ck_assert_int_eq(load(env, &c, &errors), 0);
	mk_cfg_release(vars, NVARS, &c);
	ck_assert_ptr_null(c.name);
	ck_assert_ptr_null(c.level);
	ck_assert_ptr_null(c.api_key);
	ck_assert_ptr_null(c.db_url);
	mk_cfg_release(vars, NVARS, &c);
}
END_TEST

START_TEST(test_release_after_a_failed_load_frees_what_was_filled)
{
	const kv env[] = {{V_DB_URL, DB_URL}, {V_NAME, "gateway"}, {V_PORT, "nope"}, {NULL, NULL}};
	struct tcfg c;
	char *errors = NULL;

	ck_assert_int_eq(load(env, &c, &errors), 1);
	ck_assert_str_eq(c.name, "gateway");
	free(errors);
	mk_cfg_release(vars, NVARS, &c); /* ASan: nothing leaks */
}
END_TEST

/* mk_cfg_main reads the real environment. */
static void set_valid_env(void)
{
	setenv(V_DB_URL, DB_URL, 1);
	setenv(V_PORT, "9090", 1);
	setenv(V_MAX_BODY, "2M", 1);
	unsetenv(V_NAME);
	unsetenv(V_DEBUG);
	unsetenv(V_TIMEOUT);
	unsetenv(V_LEVEL);
	unsetenv(V_API_KEY);
}

static void clear_env(void)
{
	size_t i;

	for (i = 0; i < NVARS; i++)
		unsetenv(vars[i].name);
}

START_TEST(test_check_config_on_a_valid_environment_exits_0)
{
	char *argv[] = {(char *)"x", (char *)"--check-config", NULL};
	struct tcfg c;

	set_valid_env();
	poison(&c);
	ck_assert_int_eq(mk_cfg_main(2, argv, "cfgtest", vars, NVARS, &c), 0);
	ck_assert_ptr_null(c.db_url); /* it released what it loaded */
	clear_env();
}
END_TEST

START_TEST(test_check_config_on_an_invalid_environment_exits_1)
{
	char *argv[] = {(char *)"x", (char *)"--check-config", NULL};
	struct tcfg c;

	set_valid_env();
	setenv(V_PORT, "80x", 1);
	poison(&c);
	ck_assert_int_eq(mk_cfg_main(2, argv, "cfgtest", vars, NVARS, &c), 1);
	ck_assert_ptr_null(c.db_url);

	set_valid_env();
	unsetenv(V_DB_URL);
	ck_assert_int_eq(mk_cfg_main(2, argv, "cfgtest", vars, NVARS, &c), 1);
	clear_env();
}
END_TEST

START_TEST(test_no_option_loads_the_config_and_continues)
{
	char *argv[] = {(char *)"x", NULL};
	struct tcfg c;

	set_valid_env();
	poison(&c);
	ck_assert_int_eq(mk_cfg_main(1, argv, "cfgtest", vars, NVARS, &c), -1);
	ck_assert_int_eq(c.port, 9090);
	ck_assert_int_eq(c.max_body, 2 * 1024 * 1024);
	ck_assert_str_eq(c.db_url, DB_URL);
	mk_cfg_release(vars, NVARS, &c);
	clear_env();
}
END_TEST

START_TEST(test_an_unknown_option_exits_2)
{
	char *argv[] = {(char *)"x", (char *)"--chek-config", NULL};
	struct tcfg c;

	set_valid_env();
	poison(&c);
	ck_assert_int_eq(mk_cfg_main(2, argv, "cfgtest", vars, NVARS, &c), 2);
	ck_assert_ptr_null(c.db_url); /* nothing was loaded */
	clear_env();
}
END_TEST

static Suite *cfg_suite(void)
{
	Suite *s = suite_create("mk_cfg");
	TCase *load_tc = tcase_create("load"), *main_tc = tcase_create("main");

	tcase_add_test(load_tc, test_defaults_are_applied_to_every_variable_left_unset);
	tcase_add_test(load_tc, test_an_empty_value_counts_as_unset_and_takes_the_default);
	tcase_add_test(load_tc, test_every_type_parses_its_documented_forms);
	tcase_add_test(load_tc, test_strings_and_enums_are_copied_into_the_config);
	tcase_add_test(load_tc,
	               test_a_value_out_of_bounds_is_reported_with_the_variable_and_the_bound);
	tcase_add_test(load_tc, test_a_default_outside_its_bounds_is_reported_as_the_default);
	tcase_add_test(load_tc, test_all_problems_are_reported_at_once);
	tcase_add_test(load_tc, test_a_malformed_value_is_reported_not_replaced_by_its_default);
	tcase_add_test(load_tc, test_a_required_variable_left_unset_is_an_error);
	tcase_add_test(load_tc, test_an_enum_rejects_a_word_not_among_its_choices);
	tcase_add_test(load_tc, test_a_secret_never_appears_in_the_error_text);
	tcase_add_test(load_tc, test_the_effective_config_log_masks_secrets);
	tcase_add_test(load_tc, test_release_frees_every_string_and_is_safe_to_repeat);
	tcase_add_test(load_tc, test_release_after_a_failed_load_frees_what_was_filled);
	suite_add_tcase(s, load_tc);

	tcase_add_test(main_tc, test_check_config_on_a_valid_environment_exits_0);
	tcase_add_test(main_tc, test_check_config_on_an_invalid_environment_exits_1);
	tcase_add_test(main_tc, test_no_option_loads_the_config_and_continues);
	tcase_add_test(main_tc, test_an_unknown_option_exits_2);
	suite_add_tcase(s, main_tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
