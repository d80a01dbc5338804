/*
 * log_test.c - mk_log's two line formats: text lines fold newlines, and
 * JSON lines are valid JSON objects with the event's fields whatever the
 * message holds (quotes, backslashes, control characters, bytes that are
 * not UTF-8).
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "mk_log.h"
#include "mt_check.h"

static int saved_stderr = -1;
static char path[64];

/* Send stderr to a fresh file until captured() reads it back. */
static void capture(void)
{
	int fd;

	snprintf(path, sizeof(path), "/tmp/mk-log-test-%d", (int)getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(STDERR_FILENO);
	ck_assert_int_ge(saved_stderr, 0);
	ck_assert_int_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
}

/* What was written since capture() (malloc'd); stderr is back. */
static char *captured(void)
{
	FILE *f;
	char *buf = calloc(1, 65536);
	size_t n;

	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, 65535, f);
	buf[n] = '\0';
	fclose(f);
	unlink(path);
	return buf;
}

/* Line i (0-based) of text, parsed as JSON; NULL when it is not. */
static cJSON *json_line(const char *text, int i)
{
	const char *p = text;

	while (i-- > 0 && p)
		if ((p = strchr(p, '\n')))
			p++;
	if (!p || !*p)
		return NULL;
	return cJSON_ParseWithLength(p, strcspn(p, "\n"));
}

static const char *field(const cJSON *o, const char *name)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

START_TEST(json_lines_carry_every_field_and_escape_what_json_requires)
{
	char *out;
	cJSON *a, *b;

	mk_log_init("auth", MK_LOG_INFO);
	mk_log_set_format(MK_LOG_JSON);
	capture();
	MK_INFO("AUTH-START", NULL, "listening on %s", "tcp://0.0.0.0:7101");
	MK_WARN("AUTH-ODD", "r-123",
	        "a \"quote\", a \\ backslash,\na newline, a tab\t, a bell\a, "
	        "bad bytes \xff\xc3 and caf\xc3\xa9");
	MK_DEBUG("AUTH-HIDDEN", NULL, "below the level");
	out = captured();
	mk_log_set_format(MK_LOG_TEXT);

	/* Two lines: the debug event is below the level. */
	ck_assert_ptr_null(json_line(out, 2));
	a = json_line(out, 0);
	ck_assert_msg(a != NULL, "not JSON: %s", out);
	ck_assert_str_eq(field(a, "level"), "INFO");
	ck_assert_str_eq(field(a, "service"), "auth");
	ck_assert_str_eq(field(a, "event"), "AUTH-START");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(a, "rid")));
	ck_assert_str_eq(field(a, "msg"), "listening on tcp://0.0.0.0:7101");
	ck_assert_int_eq(strlen(field(a, "ts")), 24); /* 2026-11-21T21:42:10.123Z */
	ck_assert_int_eq(field(a, "ts")[23], 'Z');

	b = json_line(out, 1);
	ck_assert_msg(b != NULL, "not JSON: %s", out);
	ck_assert_str_eq(field(b, "level"), "WARN");
	ck_assert_str_eq(field(b, "rid"), "r-123");
	ck_assert_str_eq(field(b, "msg"),
	                 "a \"quote\", a \\ backslash,\na newline, a tab\t, a bell\a, bad bytes "
	                 "\xef\xbf\xbd\xef\xbf\xbd and caf\xc3\xa9");
	cJSON_Delete(a);
	cJSON_Delete(b);
	free(out);
}
END_TEST

START_TEST(a_long_json_message_is_cut_and_the_line_stays_json)
{
	char big[8000], *out;
	cJSON *a;

	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	mk_log_init("llm", MK_LOG_INFO);
	mk_log_set_format(MK_LOG_JSON);
	capture();
	MK_INFO("LLM-BIG", NULL, "%s", big);
	out = captured();
	mk_log_set_format(MK_LOG_TEXT);
	a = json_line(out, 0);
	ck_assert_msg(a != NULL, "not JSON: %.200s", out);
	ck_assert_int_gt(strlen(field(a, "msg")), 1000);
	ck_assert_int_le(strlen(out), 4096);
	cJSON_Delete(a);
	free(out);
}
END_TEST

START_TEST(text_lines_fold_newlines_into_one_line)
{
	char *out;

	mk_log_init("gateway", MK_LOG_INFO);
	mk_log_set_format(MK_LOG_TEXT);
	capture();
	MK_ERROR("GW-FAIL", "r-9", "first\nsecond");
	out = captured();
	ck_assert_msg(strstr(out, " ERROR gateway GW-FAIL rid=r-9 first second\n") != NULL, "%s",
	              out);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
}
END_TEST

START_TEST(formats_parse_by_name)
{
	mk_log_format f;

	ck_assert_int_eq(mk_log_format_parse("json", &f), 0);
	ck_assert_int_eq(f, MK_LOG_JSON);
	ck_assert_int_eq(mk_log_format_parse("TEXT", &f), 0);
	ck_assert_int_eq(f, MK_LOG_TEXT);
	ck_assert_int_eq(mk_log_format_parse("xml", &f), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("log");

	tcase_add_test(tc, json_lines_carry_every_field_and_escape_what_json_requires);
	tcase_add_test(tc, a_long_json_message_is_cut_and_the_line_stays_json);
	tcase_add_test(tc, text_lines_fold_newlines_into_one_line);
	tcase_add_test(tc, formats_parse_by_name);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
