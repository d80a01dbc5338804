/*
 * proto_test.c - unit tests for proto/mk_proto.c: the error and op tables,
 * request ids, the envelope codec and the body field rules.
 *
 * Request fixtures live in tests/data/proto/ (the binary runs from the repo
 * root). Every op in ops.def must have <op>.valid.json and
 * <op>.invalid.json there; the field rules are checked for every field of
 * fields.def, so new ops and fields are covered without editing this file.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"
#include "mk_proto.h"

#define FIXTURES "tests/data/proto/"
#define NOW_MS   INT64_C(1763760000000) /* a fixed "now" for deadline checks */

/* Read a whole file (caller frees); fails the test when it is missing. */
static char *read_fixture(const char *name, size_t *len)
{
	char path[256];
	char *data;
	long n;
	FILE *f;

	snprintf(path, sizeof(path), FIXTURES "%s", name);
	f = fopen(path, "rb");
	ck_assert_msg(f != NULL, "cannot open %s (run from the repo root)", path);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	ck_assert_int_ge(n, 0);
	rewind(f);
	data = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(data);
	ck_assert_uint_eq(fread(data, 1, (size_t)n, f), (size_t)n);
	data[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return data;
}

static mk_err decode(const char *s, mk_env *env, char *err, size_t errlen)
{
	return mk_env_decode(s, strlen(s), NOW_MS, env, err, errlen);
}

/* Decode s expecting error want; return nothing held. err gets the message. */
static void expect_decode_error(const char *s, mk_err want, char *err, size_t errlen)
{
	mk_env env;
	mk_err e;

	err[0] = '\0';
	e = decode(s, &env, err, errlen);
	ck_assert_msg(e == want, "%s: got %s (%s), want %s", s, mk_err_code(e), err,
	              mk_err_code(want));
	ck_assert_ptr_null(env.root);
	ck_assert_ptr_null(env.body);
	ck_assert_msg(err[0] != '\0', "%s: no message", s);
	mk_env_release(&env); /* safe on a failed decode */
}

/* ---- tables ---------------------------------------------------------- */

START_TEST(test_every_error_code_round_trips_through_its_wire_name)
{
	int e;

	for (e = 0; e < MK_ERR__COUNT; e++) {
		const char *code = mk_err_code((mk_err)e);

		ck_assert_msg(code && *code, "error %d has no code", e);
		ck_assert_msg(mk_err_from_code(code) == (mk_err)e, "'%s' maps to %d, not %d", code,
		              (int)mk_err_from_code(code), e);
	}
}
END_TEST

START_TEST(test_every_error_has_a_sane_status_and_a_lower_case_default_message)
{
	int e;

	ck_assert_int_eq(mk_err_status(MK_OK), 200);
	for (e = 0; e < MK_ERR__COUNT; e++) {
		const char *msg = mk_err_message((mk_err)e);

		ck_assert_msg(mk_err_status((mk_err)e) >= 200 && mk_err_status((mk_err)e) <= 599,
		              "'%s': status %d", mk_err_code((mk_err)e), mk_err_status((mk_err)e));
		ck_assert_msg(e == MK_OK || mk_err_status((mk_err)e) >= 400,
		              "'%s' is an error with status %d", mk_err_code((mk_err)e),
		              mk_err_status((mk_err)e));
		ck_assert_msg(msg && *msg && !(msg[0] >= 'A' && msg[0] <= 'Z'),
		              "'%s': message '%s'", mk_err_code((mk_err)e), msg ? msg : "(null)");
	}
}
END_TEST

START_TEST(test_an_unknown_error_code_maps_to_internal)
{
	ck_assert_int_eq(mk_err_from_code("no_such_error"), MK_E_INTERNAL);
	ck_assert_int_eq(mk_err_from_code(""), MK_E_INTERNAL);
	ck_assert_int_eq(mk_err_from_code(NULL), MK_E_INTERNAL);
	ck_assert_int_eq(mk_err_from_code("NOT_FOUND"), MK_E_INTERNAL); /* case matters */
	ck_assert_str_eq(mk_err_code((mk_err)MK_ERR__COUNT), "internal");
	ck_assert_int_eq(mk_err_status((mk_err)MK_ERR__COUNT), 500);
}
END_TEST

START_TEST(test_sys_ping_is_a_known_op_for_every_service)
{
	mk_op op = MK_OP__COUNT;

	ck_assert_int_eq(mk_op_lookup("sys.ping", &op), 0);
	ck_assert_int_eq(op, MK_OP_SYS_PING);
	ck_assert_str_eq(mk_op_name(op), "sys.ping");
	ck_assert_int_eq(mk_op_version(op), 1);
	ck_assert_str_eq(mk_op_owner(op), "*");
}
END_TEST

START_TEST(test_every_op_looks_up_by_its_own_name)
{
	int i;

	for (i = 0; i < MK_OP__COUNT; i++) {
		mk_op op = MK_OP__COUNT;

		ck_assert_int_eq(mk_op_lookup(mk_op_name((mk_op)i), &op), 0);
		ck_assert_int_eq(op, i);
		ck_assert_int_ge(mk_op_version((mk_op)i), 1);
	}
}
END_TEST

START_TEST(test_an_unknown_op_name_is_not_found_and_leaves_the_output)
{
	static const char *const names[] = {"chat.tunr", "", "sys.pin", "sys.ping ", "SYS.PING"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		mk_op op = MK_OP__COUNT;

		ck_assert_msg(mk_op_lookup(names[i], &op) == -1, "'%s' found", names[i]);
		ck_assert_int_eq(op, MK_OP__COUNT);
	}
}
END_TEST

/* ---- request ids ----------------------------------------------------- */

START_TEST(test_a_request_id_is_1_to_64_safe_characters)
{
	static const char *const bad[] = {"",     "a b",         "a/b",  "a\nb", "a\"b",
	                                  "a\\b", "caf\xc3\xa9", "a\tb", "{}"};
	char id[MK_RID_MAX + 2];
	size_t i;

	ck_assert(mk_rid_valid("a"));
	ck_assert(mk_rid_valid("Req-1.2_3:xyz"));
	memset(id, 'a', MK_RID_MAX);
	id[MK_RID_MAX] = '\0';
	ck_assert_msg(mk_rid_valid(id), "64 characters rejected");
	id[MK_RID_MAX] = 'a';
	id[MK_RID_MAX + 1] = '\0';
	ck_assert_msg(!mk_rid_valid(id), "65 characters accepted");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(!mk_rid_valid(bad[i]), "'%s' accepted", bad[i]);
}
END_TEST

START_TEST(test_a_new_request_id_is_32_hex_characters_and_fresh_each_time)
{
	char a[MK_RID_MAX + 1], b[MK_RID_MAX + 1];

	mk_rid_new(a);
	mk_rid_new(b);
	ck_assert_uint_eq(strlen(a), 32);
	ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
	ck_assert_uint_eq(strlen(b), 32);
	ck_assert(mk_rid_valid(a));
	ck_assert_str_ne(a, b);
}
END_TEST

/* ---- decoding -------------------------------------------------------- */

START_TEST(test_an_encoded_request_decodes_to_the_same_envelope)
{
	mk_caller caller = {.user_id = "u-42", .role = "admin"};
	char err[256] = "";
	mk_env env;
	char *wire = mk_env_encode_request(MK_OP_SYS_PING, "rid-1.a", NOW_MS + 5000, &caller, NULL);
	mk_err e;

	ck_assert_ptr_nonnull(wire);
	e = decode(wire, &env, err, sizeof(err));
	ck_assert_msg(e == MK_OK, "%s: %s", mk_err_code(e), err);
	ck_assert_int_eq(env.version, MK_PROTO_VERSION);
	ck_assert_int_eq(env.op, MK_OP_SYS_PING);
	ck_assert_str_eq(env.rid, "rid-1.a");
	ck_assert(env.deadline_ms == NOW_MS + 5000);
	ck_assert_str_eq(env.caller.user_id, "u-42");
	ck_assert_str_eq(env.caller.role, "admin");
	ck_assert_ptr_nonnull(env.root);
	ck_assert(cJSON_IsObject(env.body));
	ck_assert_ptr_null(env.body->child);
	mk_env_release(&env);
	ck_assert_ptr_null(env.root);
	mk_env_release(&env);
	free(wire);
}
END_TEST

START_TEST(test_a_request_without_a_caller_or_deadline_round_trips)
{
	char err[256] = "";
	mk_env env;
	char *wire = mk_env_encode_request(MK_OP_SYS_PING, "r2", 0, NULL, NULL);
	mk_err e;

	ck_assert_ptr_nonnull(wire);
	e = mk_env_decode(wire, strlen(wire), INT64_MAX, &env, err, sizeof(err));
	ck_assert_msg(e == MK_OK, "%s: %s", mk_err_code(e), err);
	ck_assert(env.deadline_ms == 0);
	ck_assert_str_eq(env.caller.user_id, "");
	ck_assert_str_eq(env.caller.role, "");
	mk_env_release(&env);
	free(wire);
}
END_TEST

START_TEST(test_request_fixtures_decode_as_labelled)
{
	static const struct {
		const char *file;
		mk_err want;
		const char *rid;  /* what env.rid must carry afterwards */
		const char *text; /* in the message; NULL when ok */
	} cases[] = {
	    {"sys.ping.valid.json", MK_OK, "fixture-ping-valid", NULL},
	    {"sys.ping.invalid.json", MK_E_VALIDATION, "fixture-ping-invalid", "'x'"},
	    {"unknown_op.json", MK_E_UNKNOWN_OP, "fixture-unknown-op",
	     "unknown operation 'chat.tunr'"},
	    {"bad_version.json", MK_E_UNKNOWN_VERSION, "fixture-bad-version", "version 2"},
	    {"deadline_passed.json", MK_E_DEADLINE, "fixture-deadline", "deadline"},
	    {"bad_caller.json", MK_E_BAD_REQUEST, "fixture-bad-caller", "'caller'"},
	    {"body_not_object.json", MK_E_VALIDATION, "fixture-body-array", "object"},
	    {"invalid_json.json", MK_E_BAD_REQUEST, "", "line "},
	    {"not_an_object.json", MK_E_BAD_REQUEST, "", "object"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		size_t len;
		char *data = read_fixture(cases[i].file, &len);
		mk_env env;
		mk_err e = mk_env_decode(data, len, NOW_MS, &env, err, sizeof(err));

		ck_assert_msg(e == cases[i].want, "%s: got %s (%s), want %s", cases[i].file,
		              mk_err_code(e), err, mk_err_code(cases[i].want));
		ck_assert_msg(strcmp(env.rid, cases[i].rid) == 0, "%s: rid '%s', want '%s'",
		              cases[i].file, env.rid, cases[i].rid);
		if (cases[i].text)
			ck_assert_msg(strstr(err, cases[i].text), "%s: '%s' lacks \"%s\"",
			              cases[i].file, err, cases[i].text);
		if (e != MK_OK)
			ck_assert_ptr_null(env.root);
		mk_env_release(&env);
		free(data);
	}
}
END_TEST

START_TEST(test_every_op_has_a_valid_and_an_invalid_fixture)
{
	int i;

	for (i = 0; i < MK_OP__COUNT; i++) {
		char name[128], err[256] = "";
		size_t len;
		char *data;
		mk_env env;
		mk_err e;

		snprintf(name, sizeof(name), "%s.valid.json", mk_op_name((mk_op)i));
		data = read_fixture(name, &len);
		e = mk_env_decode(data, len, NOW_MS, &env, err, sizeof(err));
		ck_assert_msg(e == MK_OK, "%s: %s (%s)", name, mk_err_code(e), err);
		ck_assert_int_eq(env.op, i);
		mk_env_release(&env);
		free(data);

		snprintf(name, sizeof(name), "%s.invalid.json", mk_op_name((mk_op)i));
		data = read_fixture(name, &len);
		e = mk_env_decode(data, len, NOW_MS, &env, err, sizeof(err));
		ck_assert_msg(e != MK_OK, "%s decoded", name);
		mk_env_release(&env);
		free(data);
	}
}
END_TEST

START_TEST(test_invalid_json_is_a_bad_request)
{
	char err[256];

	expect_decode_error("{\"v\":1,", MK_E_BAD_REQUEST, err, sizeof(err));
	expect_decode_error("", MK_E_BAD_REQUEST, err, sizeof(err));
	expect_decode_error("{\"v\":1} trailing", MK_E_BAD_REQUEST, err, sizeof(err));
	ck_assert_msg(strstr(err, "line 1"), "%s", err);
}
END_TEST

START_TEST(test_an_envelope_that_is_not_an_object_is_a_bad_request)
{
	static const char *const docs[] = {"[]", "\"sys.ping\"", "1", "null"};
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		expect_decode_error(docs[i], MK_E_BAD_REQUEST, err, sizeof(err));
		ck_assert_msg(strstr(err, "object"), "%s: %s", docs[i], err);
	}
}
END_TEST

START_TEST(test_a_missing_or_non_integer_version_is_a_bad_request)
{
	static const char *const docs[] = {
	    "{\"op\":\"sys.ping\",\"id\":\"r\"}",
	    "{\"v\":\"1\",\"op\":\"sys.ping\",\"id\":\"r\"}",
	    "{\"v\":1.5,\"op\":\"sys.ping\",\"id\":\"r\"}",
	    "{\"v\":null,\"op\":\"sys.ping\",\"id\":\"r\"}",
	    "{\"v\":true,\"op\":\"sys.ping\",\"id\":\"r\"}",
	};
	char err[256];
	size_t i;

	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		expect_decode_error(docs[i], MK_E_BAD_REQUEST, err, sizeof(err));
		ck_assert_msg(strstr(err, "'v'"), "%s: %s", docs[i], err);
	}
}
END_TEST

START_TEST(test_an_unsupported_version_is_refused_but_keeps_the_request_id)
{
	const char *doc = "{\"v\":2,\"op\":\"sys.ping\",\"id\":\"keep-me\",\"body\":{}}";
	char err[256] = "";
	mk_env env;

	ck_assert_int_eq(decode(doc, &env, err, sizeof(err)), MK_E_UNKNOWN_VERSION);
	ck_assert_str_eq(env.rid, "keep-me");
	ck_assert_msg(strstr(err, "2"), "%s", err);
	ck_assert_ptr_null(env.root);

	expect_decode_error("{\"v\":0,\"op\":\"sys.ping\",\"id\":\"r\"}", MK_E_UNKNOWN_VERSION, err,
	                    sizeof(err));
}
END_TEST

START_TEST(test_an_unknown_op_is_named_in_the_error)
{
	const char *doc = "{\"v\":1,\"op\":\"chat.tunr\",\"id\":\"r-7\",\"body\":{}}";
	char err[256] = "";
	mk_env env;

	ck_assert_int_eq(decode(doc, &env, err, sizeof(err)), MK_E_UNKNOWN_OP);
	ck_assert_msg(strstr(err, "unknown operation 'chat.tunr'"), "%s", err);
	ck_assert_str_eq(env.rid, "r-7");
	ck_assert_ptr_null(env.root);
}
END_TEST

START_TEST(test_a_missing_or_bad_op_or_id_is_a_bad_request)
{
	char err[256];
	mk_env env;

	expect_decode_error("{\"v\":1,\"id\":\"r\"}", MK_E_BAD_REQUEST, err, sizeof(err));
	ck_assert_msg(strstr(err, "'op'"), "%s", err);
	expect_decode_error("{\"v\":1,\"op\":7,\"id\":\"r\"}", MK_E_BAD_REQUEST, err, sizeof(err));
	expect_decode_error("{\"v\":1,\"op\":\"sys.ping\"}", MK_E_BAD_REQUEST, err, sizeof(err));
	ck_assert_msg(strstr(err, "'id'"), "%s", err);
	expect_decode_error("{\"v\":1,\"op\":\"sys.ping\",\"id\":\"a b\"}", MK_E_BAD_REQUEST, err,
	                    sizeof(err));
	expect_decode_error("{\"v\":1,\"op\":\"sys.ping\",\"id\":42}", MK_E_BAD_REQUEST, err,
	                    sizeof(err));

	/* An invalid id is never copied out. */
	ck_assert_int_ne(
	    decode("{\"v\":1,\"op\":\"sys.ping\",\"id\":\"a/b\"}", &env, err, sizeof(err)), MK_OK);
	ck_assert_str_eq(env.rid, "");
}
END_TEST

START_TEST(test_a_passed_deadline_is_refused_before_the_handler)
{
	char doc[256], err[256];
	mk_env env;

	snprintf(doc, sizeof(doc),
	         "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"late\",\"deadline\":%lld}",
	         (long long)(NOW_MS - 1));
	expect_decode_error(doc, MK_E_DEADLINE, err, sizeof(err));
	ck_assert_int_eq(decode(doc, &env, err, sizeof(err)), MK_E_DEADLINE);
	ck_assert_str_eq(env.rid, "late");

	/* Exactly now has passed too. */
	snprintf(doc, sizeof(doc),
	         "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"late\",\"deadline\":%lld}",
	         (long long)NOW_MS);
	expect_decode_error(doc, MK_E_DEADLINE, err, sizeof(err));

	/* One millisecond ahead is fine. */
	snprintf(doc, sizeof(doc), "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"ok\",\"deadline\":%lld}",
	         (long long)(NOW_MS + 1));
	ck_assert_int_eq(decode(doc, &env, err, sizeof(err)), MK_OK);
	ck_assert(env.deadline_ms == NOW_MS + 1);
	mk_env_release(&env);
}
END_TEST

START_TEST(test_a_deadline_of_0_or_none_means_no_deadline)
{
	static const char *const docs[] = {
	    "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"deadline\":0}",
	    "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\"}",
	};
	char err[256] = "";
	size_t i;

	for (i = 0; i < 2; i++) {
		mk_env env;
		mk_err e =
		    mk_env_decode(docs[i], strlen(docs[i]), INT64_MAX, &env, err, sizeof(err));

		ck_assert_msg(e == MK_OK, "%s: %s (%s)", docs[i], mk_err_code(e), err);
		ck_assert(env.deadline_ms == 0);
		mk_env_release(&env);
	}
}
END_TEST

START_TEST(test_a_malformed_deadline_is_a_bad_request)
{
	static const char *const deadlines[] = {"-1", "\"soon\"", "1.5", "null", "1e300"};
	char doc[256], err[256];
	size_t i;

	for (i = 0; i < sizeof(deadlines) / sizeof(deadlines[0]); i++) {
		snprintf(doc, sizeof(doc),
		         "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"deadline\":%s}",
		         deadlines[i]);
		expect_decode_error(doc, MK_E_BAD_REQUEST, err, sizeof(err));
		ck_assert_msg(strstr(err, "'deadline'"), "%s: %s", doc, err);
	}
}
END_TEST

START_TEST(test_a_caller_of_the_wrong_shape_is_a_bad_request)
{
	static const char *const callers[] = {
	    "\"admin\"",
	    "5",
	    "[]",
	    "{}",
	    "{\"user_id\":\"u\"}",
	    "{\"role\":\"user\"}",
	    "{\"user_id\":1,\"role\":\"user\"}",
	    "{\"user_id\":\"u\",\"role\":false}",
	    "{\"user_id\":\"u\",\"role\":\"a-role-of-16-chr\"}",
	    "{\"user_id\":"
	    "\"uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu\","
	    "\"role\":\"user\"}", /* 65 */
	};
	char doc[512], err[256];
	size_t i;

	for (i = 0; i < sizeof(callers) / sizeof(callers[0]); i++) {
		snprintf(doc, sizeof(doc),
		         "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"caller\":%s}", callers[i]);
		expect_decode_error(doc, MK_E_BAD_REQUEST, err, sizeof(err));
		ck_assert_msg(strstr(err, "'caller'"), "%s: %s", doc, err);
	}
}
END_TEST

START_TEST(test_a_caller_at_the_length_limits_is_kept_whole)
{
	const char *doc = "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"caller\":{\"user_id\":"
	                  "\"uuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuuu\","
	                  "\"role\":\"a-role-of-15-ch\"}}";
	char err[256] = "";
	mk_env env;
	mk_err e = decode(doc, &env, err, sizeof(err));

	ck_assert_msg(e == MK_OK, "%s (%s)", mk_err_code(e), err);
	ck_assert_uint_eq(strlen(env.caller.user_id), MK_CALLER_MAX);
	ck_assert_str_eq(env.caller.role, "a-role-of-15-ch");
	mk_env_release(&env);
}
END_TEST

START_TEST(test_a_body_that_is_not_an_object_fails_validation)
{
	static const char *const bodies[] = {"[]", "\"x\"", "1", "null", "true"};
	char doc[256], err[256];
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		snprintf(doc, sizeof(doc), "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"body\":%s}",
		         bodies[i]);
		expect_decode_error(doc, MK_E_VALIDATION, err, sizeof(err));
	}
}
END_TEST

START_TEST(test_a_missing_body_is_an_empty_object)
{
	char err[256] = "";
	mk_env env;

	ck_assert_int_eq(
	    decode("{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\"}", &env, err, sizeof(err)), MK_OK);
	ck_assert(cJSON_IsObject(env.body));
	ck_assert_ptr_null(env.body->child);
	mk_env_release(&env);
}
END_TEST

START_TEST(test_an_unknown_body_field_fails_validation_naming_the_field)
{
	const char *doc = "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"keep\",\"body\":{\"x\":1}}";
	char err[256] = "";
	mk_env env;
	size_t n = 99;

	mk_op_fields(MK_OP_SYS_PING, &n);
	ck_assert_msg(n == 0, "sys.ping has %zu fields; this test assumes none", n);
	ck_assert_int_eq(decode(doc, &env, err, sizeof(err)), MK_E_VALIDATION);
	ck_assert_msg(strstr(err, "'x'") && strstr(err, "sys.ping"), "%s", err);
	ck_assert_str_eq(env.rid, "keep");
	ck_assert_ptr_null(env.root);
}
END_TEST

START_TEST(test_nesting_past_the_json_limit_is_a_bad_request)
{
	size_t depth = MK_JSON_MAX_DEPTH, i, off = 0;
	char doc[512];

	off +=
	    (size_t)snprintf(doc, sizeof(doc), "{\"v\":1,\"op\":\"sys.ping\",\"id\":\"r\",\"x\":");
	for (i = 0; i < depth; i++)
		doc[off++] = '[';
	for (i = 0; i < depth; i++)
		doc[off++] = ']';
	doc[off++] = '}';
	doc[off] = '\0';
	{
		char err[256];

		expect_decode_error(doc, MK_E_BAD_REQUEST, err, sizeof(err));
		ck_assert_msg(strstr(err, "64"), "%s", err);
	}
}
END_TEST

/* ---- body field rules ------------------------------------------------ */

START_TEST(test_a_closed_body_rejects_any_field_not_in_the_table)
{
	char err[256] = "";
	cJSON *body = cJSON_CreateObject();
	int i;

	ck_assert_ptr_nonnull(body);
	ck_assert_int_eq(mk_body_check(MK_OP_SYS_PING, body, err, sizeof(err)), MK_OK);
	ck_assert_ptr_nonnull(cJSON_AddNumberToObject(body, "zz_not_a_field", 1));
	for (i = 0; i < MK_OP__COUNT; i++) {
		err[0] = '\0';
		ck_assert_int_eq(mk_body_check((mk_op)i, body, err, sizeof(err)), MK_E_VALIDATION);
		ck_assert_msg(strstr(err, "'zz_not_a_field'") && strstr(err, mk_op_name((mk_op)i)),
		              "%s", err);
	}
	cJSON_Delete(body);

	body = cJSON_CreateArray();
	ck_assert_int_eq(mk_body_check(MK_OP_SYS_PING, body, err, sizeof(err)), MK_E_VALIDATION);
	cJSON_Delete(body);
	ck_assert_int_eq(mk_body_check(MK_OP_SYS_PING, NULL, err, sizeof(err)), MK_E_VALIDATION);
}
END_TEST

/* A value of the wrong type for f; NULL for MK_F_ANY, which takes anything. */
static cJSON *wrong_type(const mk_field *f)
{
	switch (f->type) {
	case MK_F_STR: return cJSON_CreateNumber(1);
	case MK_F_INT: return cJSON_CreateString("1");
	case MK_F_BOOL: return cJSON_CreateNumber(1);
	case MK_F_OBJ: return cJSON_CreateArray();
	case MK_F_ARR: return cJSON_CreateObject();
	case MK_F_ANY: return NULL;
	}
	return NULL;
}

/* A value just past f's maximum, or NULL when the bound cannot be crossed cheaply. */
static cJSON *over_max(const mk_field *f)
{
	cJSON *a;
	char *s;
	long long i;

	switch (f->type) {
	case MK_F_STR:
		if (f->max < 0 || f->max > (1 << 20))
			return NULL;
		s = malloc((size_t)f->max + 2);
		ck_assert_ptr_nonnull(s);
		memset(s, 'a', (size_t)f->max + 1);
		s[f->max + 1] = '\0';
		a = cJSON_CreateString(s);
		free(s);
		return a;
	case MK_F_INT:
		return f->max < 9007199254740991LL ? cJSON_CreateNumber((double)(f->max + 1))
		                                   : NULL;
	case MK_F_ARR:
		if (f->max < 0 || f->max > 10000)
			return NULL;
		a = cJSON_CreateArray();
		for (i = 0; a && i <= f->max; i++)
			cJSON_AddItemToArray(a, cJSON_CreateNull());
		return a;
	default: return NULL;
	}
}

/* Check {name: v} against op and expect a validation error naming the field. */
static void expect_field_rejected(mk_op op, const mk_field *f, cJSON *v, const char *why)
{
	char err[256] = "", quoted[128];
	cJSON *body = cJSON_CreateObject();

	ck_assert_ptr_nonnull(body);
	ck_assert_ptr_nonnull(v);
	cJSON_AddItemToObject(body, f->name, v);
	snprintf(quoted, sizeof(quoted), "'%s'", f->name);
	ck_assert_msg(mk_body_check(op, body, err, sizeof(err)) == MK_E_VALIDATION,
	              "%s.%s %s accepted", mk_op_name(op), f->name, why);
	ck_assert_msg(strstr(err, quoted), "%s.%s %s: '%s' does not name it", mk_op_name(op),
	              f->name, why, err);
	cJSON_Delete(body);
}

START_TEST(test_every_field_rejects_a_wrong_type_and_a_value_past_its_maximum)
{
	int op;

	for (op = 0; op < MK_OP__COUNT; op++) {
		size_t n = 0, i;
		const mk_field *fs = mk_op_fields((mk_op)op, &n);

		for (i = 0; i < n; i++) {
			cJSON *v;

			ck_assert_int_eq(fs[i].op, op);
			if ((v = wrong_type(&fs[i])) != NULL)
				expect_field_rejected((mk_op)op, &fs[i], v, "of the wrong type");
			if ((v = over_max(&fs[i])) != NULL)
				expect_field_rejected((mk_op)op, &fs[i], v, "past its maximum");
		}
	}
}
END_TEST

START_TEST(test_an_empty_body_names_a_missing_required_field)
{
	int op;

	for (op = 0; op < MK_OP__COUNT; op++) {
		size_t n = 0, i, required = 0;
		const mk_field *fs = mk_op_fields((mk_op)op, &n);
		cJSON *body = cJSON_CreateObject();
		char err[256] = "";
		mk_err e;

		for (i = 0; i < n; i++)
			required += fs[i].required != 0;
		e = mk_body_check((mk_op)op, body, err, sizeof(err));
		if (required) {
			ck_assert_msg(e == MK_E_VALIDATION && strstr(err, "missing field '"),
			              "%s: %s (%s)", mk_op_name((mk_op)op), mk_err_code(e), err);
		} else {
			ck_assert_msg(e == MK_OK, "%s: %s (%s)", mk_op_name((mk_op)op),
			              mk_err_code(e), err);
		}
		cJSON_Delete(body);
	}
}
END_TEST

/* ---- encoding -------------------------------------------------------- */

/* Parse an encoded envelope and check it has exactly these top-level keys. */
static cJSON *parse_reply(const char *wire, const char *const *keys, size_t nkeys)
{
	char err[128] = "";
	cJSON *o = mk_json_parse(wire, strlen(wire), MK_JSON_MAX_DEPTH, err, sizeof(err));
	size_t i;

	ck_assert_msg(o != NULL, "%s: %s", wire, err);
	ck_assert_msg(cJSON_GetArraySize(o) == (int)nkeys, "%s: %d keys, want %zu", wire,
	              cJSON_GetArraySize(o), nkeys);
	for (i = 0; i < nkeys; i++)
		ck_assert_msg(cJSON_GetObjectItemCaseSensitive(o, keys[i]), "%s lacks '%s'", wire,
		              keys[i]);
	return o;
}

START_TEST(test_an_error_reply_carries_code_message_and_status)
{
	static const char *const keys[] = {"v", "id", "ok", "error"};
	char *wire = mk_env_encode_error("rid-9", MK_E_NOT_FOUND, NULL);
	cJSON *o, *er;
	long long n;

	ck_assert_ptr_nonnull(wire);
	o = parse_reply(wire, keys, 4);
	ck_assert_int_eq(mk_json_int(o, "v", &n), 0);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(mk_json_str(o, "id"), "rid-9");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(o, "ok")));
	er = cJSON_GetObjectItemCaseSensitive(o, "error");
	ck_assert(cJSON_IsObject(er));
	ck_assert_int_eq(cJSON_GetArraySize(er), 3);
	ck_assert_str_eq(mk_json_str(er, "code"), "not_found");
	ck_assert_str_eq(mk_json_str(er, "message"), mk_err_message(MK_E_NOT_FOUND));
	ck_assert_int_eq(mk_json_int(er, "status", &n), 0);
	ck_assert_int_eq(n, 404);
	cJSON_Delete(o);
	free(wire);
}
END_TEST

START_TEST(test_an_error_reply_uses_the_given_message_when_there_is_one)
{
	static const char *const keys[] = {"v", "id", "ok", "error"};
	char *wire = mk_env_encode_error("r", MK_E_UNKNOWN_OP, "unknown operation 'chat.tunr'");
	cJSON *o;

	ck_assert_ptr_nonnull(wire);
	o = parse_reply(wire, keys, 4);
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItemCaseSensitive(o, "error"), "message"),
	                 "unknown operation 'chat.tunr'");
	cJSON_Delete(o);
	free(wire);

	/* An empty message counts as none. */
	wire = mk_env_encode_error(NULL, MK_E_INTERNAL, "");
	ck_assert_ptr_nonnull(wire);
	o = parse_reply(wire, keys, 4);
	ck_assert_str_eq(mk_json_str(o, "id"), "");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItemCaseSensitive(o, "error"), "message"),
	                 "internal error");
	cJSON_Delete(o);
	free(wire);
}
END_TEST

START_TEST(test_an_ok_reply_carries_a_copy_of_the_body)
{
	static const char *const keys[] = {"v", "id", "ok", "body"};
	cJSON *body = cJSON_CreateObject(), *o;
	char *wire;

	ck_assert_ptr_nonnull(cJSON_AddStringToObject(body, "pong", "yes"));
	wire = mk_env_encode_reply("r1", body);
	cJSON_Delete(body); /* borrowed: the reply does not point into it */
	ck_assert_ptr_nonnull(wire);
	o = parse_reply(wire, keys, 4);
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "ok")));
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItemCaseSensitive(o, "body"), "pong"), "yes");
	cJSON_Delete(o);
	free(wire);

	wire = mk_env_encode_reply("r2", NULL);
	ck_assert_ptr_nonnull(wire);
	o = parse_reply(wire, keys, 4);
	ck_assert(cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "body")));
	cJSON_Delete(o);
	free(wire);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("mk_proto");
	TCase *tables = tcase_create("tables"), *rid = tcase_create("rid"),
	      *dec = tcase_create("decode"), *body = tcase_create("body"),
	      *enc = tcase_create("encode");

	tcase_add_test(tables, test_every_error_code_round_trips_through_its_wire_name);
	tcase_add_test(tables, test_every_error_has_a_sane_status_and_a_lower_case_default_message);
	tcase_add_test(tables, test_an_unknown_error_code_maps_to_internal);
	tcase_add_test(tables, test_sys_ping_is_a_known_op_for_every_service);
	tcase_add_test(tables, test_every_op_looks_up_by_its_own_name);
	tcase_add_test(tables, test_an_unknown_op_name_is_not_found_and_leaves_the_output);
	suite_add_tcase(s, tables);

	tcase_add_test(rid, test_a_request_id_is_1_to_64_safe_characters);
	tcase_add_test(rid, test_a_new_request_id_is_32_hex_characters_and_fresh_each_time);
	suite_add_tcase(s, rid);

	tcase_add_test(dec, test_an_encoded_request_decodes_to_the_same_envelope);
	tcase_add_test(dec, test_a_request_without_a_caller_or_deadline_round_trips);
	tcase_add_test(dec, test_request_fixtures_decode_as_labelled);
	tcase_add_test(dec, test_every_op_has_a_valid_and_an_invalid_fixture);
	tcase_add_test(dec, test_invalid_json_is_a_bad_request);
	tcase_add_test(dec, test_an_envelope_that_is_not_an_object_is_a_bad_request);
	tcase_add_test(dec, test_a_missing_or_non_integer_version_is_a_bad_request);
	tcase_add_test(dec, test_an_unsupported_version_is_refused_but_keeps_the_request_id);
	tcase_add_test(dec, test_an_unknown_op_is_named_in_the_error);
	tcase_add_test(dec, test_a_missing_or_bad_op_or_id_is_a_bad_request);
	tcase_add_test(dec, test_a_passed_deadline_is_refused_before_the_handler);
	tcase_add_test(dec, test_a_deadline_of_0_or_none_means_no_deadline);
	tcase_add_test(dec, test_a_malformed_deadline_is_a_bad_request);
	tcase_add_test(dec, test_a_caller_of_the_wrong_shape_is_a_bad_request);
	tcase_add_test(dec, test_a_caller_at_the_length_limits_is_kept_whole);
	tcase_add_test(dec, test_a_body_that_is_not_an_object_fails_validation);
	tcase_add_test(dec, test_a_missing_body_is_an_empty_object);
	tcase_add_test(dec, test_an_unknown_body_field_fails_validation_naming_the_field);
	tcase_add_test(dec, test_nesting_past_the_json_limit_is_a_bad_request);
	suite_add_tcase(s, dec);

	tcase_add_test(body, test_a_closed_body_rejects_any_field_not_in_the_table);
	tcase_add_test(body, test_every_field_rejects_a_wrong_type_and_a_value_past_its_maximum);
	tcase_add_test(body, test_an_empty_body_names_a_missing_required_field);
	suite_add_tcase(s, body);

	tcase_add_test(enc, test_an_error_reply_carries_code_message_and_status);
	tcase_add_test(enc, test_an_error_reply_uses_the_given_message_when_there_is_one);
	tcase_add_test(enc, test_an_ok_reply_carries_a_copy_of_the_body);
	suite_add_tcase(s, enc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
