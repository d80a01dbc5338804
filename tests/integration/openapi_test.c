/*
 * openapi_test.c - the OpenAPI description (docs/openapi.yaml) against the
 * gateway that serves it: GET /openapi.json answers it as JSON that
 * parses; the routes it describes are exactly the routes the gateway
 * registers (`mark-gateway --routes`), with path templates compared
 * segment by segment ("{id}" in the description, "{}" in the table); its
 * error codes are exactly those of proto/errors.def; and it passes
 * @redocly/cli's lint (pinned in tests/openapi, recommended-strict), which
 * fails on a description broken on purpose.
 *
 * Needs node and npm for the lint; their absence fails the test: it is
 * never skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define LINT_DIR "tests/openapi"
#define SPEC     "docs/openapi.yaml"
#define MAXR     128

static mt_stack st;

static void setup(void)
{
	static const char *const packages[] = {"@redocly/cli", NULL};
	char err[2048];

	if (mt_stack_start(&st, NULL) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_msg(mt_sdk_ready(LINT_DIR, packages, "the OpenAPI lint (@redocly/cli)", 20, err,
	                           sizeof(err)) == 0,
	              "%s", err);
}

static void teardown(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* "METHOD /path/{}": each {name} of path made {}. */
static void route_key(const char *method, const char *path, char *out, size_t outlen)
{
	size_t n = (size_t)snprintf(out, outlen, "%s ", method);

	for (; *path && n + 3 < outlen; path++) {
		if (*path == '{') {
			const char *end = strchr(path, '}');

			ck_assert_msg(end != NULL, "unclosed '{' in '%s'", path);
			out[n++] = '{';
			out[n++] = '}';
			path = end;
			continue;
		}
		out[n++] = *path;
	}
	out[n] = '\0';
}

static int has(char (*set)[160], int n, const char *key)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(set[i], key) == 0)
			return 1;
	return 0;
}

/* GET /openapi.json, checked and parsed; the caller releases r. */
static void get_description(mt_resp *r)
{
	char *ctype, *cache;

	ck_assert_int_eq(mt_http("GET", mt_url(&st, "/openapi.json"), NULL, NULL, 0, r), 0);
	ck_assert_int_eq(r->status, 200);
	ctype = mt_header(r, "Content-Type");
	cache = mt_header(r, "Cache-Control");
	ck_assert_ptr_nonnull(ctype);
	ck_assert_ptr_nonnull(cache);
	ck_assert_str_eq(ctype, "application/json");
	ck_assert_msg(strstr(cache, "max-age=") && !strstr(cache, "no-store"),
	              "Cache-Control '%s' should let clients keep the description", cache);
	free(ctype);
	free(cache);
	ck_assert_msg(cJSON_IsObject(r->json), "/openapi.json is not a JSON object");
}

START_TEST(test_openapi_json_is_served_as_json_that_parses)
{
	const char *version, *title;
	mt_resp r;

	get_description(&r);
	version = mk_json_str(r.json, "openapi");
	ck_assert_ptr_nonnull(version);
	ck_assert_msg(strncmp(version, "3.", 2) == 0, "openapi '%s'", version);
	title = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(r.json, "info"), "title"));
	ck_assert_ptr_nonnull(title);
	/* The bearer scheme is the default; the public routes opt out. */
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r.json, "components"),
	                                     "securitySchemes"),
	    "bearer"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_every_registered_route_is_described_and_every_described_route_registered)
{
	static const char *const methods[] = {"get",     "put",  "post",  "delete",
	                                      "options", "head", "patch", "trace"};
	static char registered[MAXR][160], described[MAXR][160];
	const char *args[] = {"--routes", NULL};
	char *out = NULL, *line, *save = NULL;
	mk_buf missing;
	int nreg = 0, ndesc = 0, i, rc;
	const cJSON *path;
	mt_resp r;

	rc = mt_run("mark-gateway", args, NULL, &out);
	ck_assert_msg(rc == 0, "mark-gateway --routes exited %d: %s", rc, out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char method[16], pattern[128];

		ck_assert_msg(sscanf(line, "%15s %127s", method, pattern) == 2,
		              "route line '%s' is not METHOD PATTERN", line);
		ck_assert_int_lt(nreg, MAXR);
		route_key(method, pattern, registered[nreg], sizeof(registered[0]));
		ck_assert_msg(!has(registered, nreg, registered[nreg]), "'%s' registered twice",
		              registered[nreg]);
		nreg++;
	}
	free(out);
	ck_assert_int_gt(nreg, 20);
	ck_assert(has(registered, nreg, "GET /openapi.json"));

	get_description(&r);
	cJSON_ArrayForEach(path, cJSON_GetObjectItemCaseSensitive(r.json, "paths"))
	{
		size_t m;

		for (m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
			char upper[16];
			size_t k;

			if (!cJSON_GetObjectItemCaseSensitive(path, methods[m]))
				continue;
			for (k = 0; methods[m][k] && k + 1 < sizeof(upper); k++)
				upper[k] = (char)(methods[m][k] - 'a' + 'A');
			upper[k] = '\0';
			ck_assert_int_lt(ndesc, MAXR);
			route_key(upper, path->string, described[ndesc], sizeof(described[0]));
			ndesc++;
		}
	}
	mt_resp_release(&r);

	mk_buf_init(&missing, 0);
	for (i = 0; i < nreg; i++)
		if (!has(described, ndesc, registered[i]))
			mk_buf_printf(&missing, "\n  registered, not described: %s", registered[i]);
	for (i = 0; i < ndesc; i++)
		if (!has(registered, nreg, described[i]))
			mk_buf_printf(&missing, "\n  described, not registered: %s", described[i]);
	ck_assert_msg(missing.len == 0, "docs/openapi.yaml and the route table differ:%s",
	              missing.data);
	mk_buf_release(&missing);
	ck_assert_int_eq(nreg, ndesc);
}
END_TEST

START_TEST(test_the_described_error_codes_are_those_of_errors_def)
{
	static char defined[64][160];
	char err[256], *def, *p;
	mk_buf missing;
	int ndef = 0, ndesc = 0, i;
	const cJSON *e, *codes;
	mt_resp r;

	def = mt_read_file("proto/errors.def", NULL, err, sizeof(err));
	ck_assert_msg(def != NULL, "%s", err);
	/* MK_ERR(MK_E_X, "wire_code", status, "message") */
	for (p = strstr(def, "\nMK_ERR("); p; p = strstr(p + 1, "\nMK_ERR(")) {
		char *q = strchr(p, '"'), *end = q ? strchr(q + 1, '"') : NULL;

		ck_assert_ptr_nonnull(end);
		ck_assert_int_lt(ndef, 64);
		if (end - q - 1 == 2 && strncmp(q + 1, "ok", 2) == 0)
			continue; /* success is never an error body */
		snprintf(defined[ndef++], sizeof(defined[0]), "%.*s", (int)(end - q - 1), q + 1);
	}
	free(def);
	ck_assert_int_gt(ndef, 10);

	get_description(&r);
	codes = r.json;
	{
		static const char *const walk[] = {"components", "schemas", "Error",
		                                   "properties", "error",   "properties",
		                                   "code",       "enum"};
		size_t k;

		for (k = 0; k < sizeof(walk) / sizeof(walk[0]); k++)
			codes = cJSON_GetObjectItemCaseSensitive(codes, walk[k]);
	}
	ck_assert_msg(cJSON_IsArray(codes), "no components.schemas.Error's code enum");
	mk_buf_init(&missing, 0);
	cJSON_ArrayForEach(e, codes)
	{
		ck_assert(cJSON_IsString(e));
		if (!has(defined, ndef, e->valuestring))
			mk_buf_printf(&missing, "\n  described, not in errors.def: %s",
			              e->valuestring);
		ndesc++;
	}
	for (i = 0; i < ndef; i++) {
		int found = 0;

		cJSON_ArrayForEach(e, codes) found |= strcmp(e->valuestring, defined[i]) == 0;
		if (!found)
			mk_buf_printf(&missing, "\n  in errors.def, not described: %s", defined[i]);
	}
	mt_resp_release(&r);
	ck_assert_msg(missing.len == 0, "the Error code enum and errors.def differ:%s",
	              missing.data);
	mk_buf_release(&missing);
	ck_assert_int_eq(ndesc, ndef);
}
END_TEST

/* Redocly's lint of spec; its output into *out. The exit status. */
static int lint(const char *spec, char **out)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd),
	         "REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_COLOR=1 "
	         "node " LINT_DIR "/node_modules/@redocly/cli/bin/cli.js lint "
	         "--config " LINT_DIR "/redocly.yaml --format=stylish '%s' 2>&1",
	         spec);
	return mt_sh(cmd, out);
}

START_TEST(test_the_description_passes_redocly_lint)
{
	char *out = NULL;
	int rc = lint(SPEC, &out);

	printf("%s", out);
	ck_assert_msg(rc == 0, "redocly lint of " SPEC " failed (exit %d):\n%s", rc, out);
	free(out);
}
END_TEST

START_TEST(test_the_lint_fails_on_a_description_broken_on_purpose)
{
	char broken[600], cmd[1400], *out = NULL;
	int rc;

	/* An operation without its summary, and a reference to nothing. */
	snprintf(broken, sizeof(broken), "%s.openapi-broken-%d.yaml", mt_bus_key_file(),
	         (int)getpid());
	snprintf(cmd, sizeof(cmd),
	         "sed -e '/summary: The gateway process is up/d' "
	         "-e 's|schemas/Chat\"|schemas/Chatt\"|' " SPEC " > '%s'",
	         broken);
	ck_assert_int_eq(mt_sh(cmd, &out), 0);
	free(out);
	rc = lint(broken, &out);
	ck_assert_msg(rc != 0, "the lint passed a broken description:\n%s", out);
	ck_assert_msg(strstr(out, "operation-summary") && strstr(out, "no-unresolved-refs"), "%s",
	              out);
	free(out);
	unlink(broken);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("openapi");
	TCase *tc = tcase_create("openapi");

	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_openapi_json_is_served_as_json_that_parses);
	tcase_add_test(
	    tc, test_every_registered_route_is_described_and_every_described_route_registered);
	tcase_add_test(tc, test_the_described_error_codes_are_those_of_errors_def);
	tcase_add_test(tc, test_the_description_passes_redocly_lint);
	tcase_add_test(tc, test_the_lint_fails_on_a_description_broken_on_purpose);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 1);
}
