/*
 * bigquery_sdk_test.c - the BigQuery double (tests/doubles/bigquery) is
 * faithful as Google's own client sees it: the official @google-cloud/bigquery
 * package for Node.js, unchanged, lists, pages, describes, queries, polls,
 * dry-runs, retries and authenticates against it and decodes every fixture
 * value exactly (tests/doubles/bigquery/sdk/sdk_check.mjs, run with Node).
 * Then, from the double's request log, the client's token is shown to come
 * from the double's token endpoint: one JWT-bearer grant signed for the
 * fixture's service account, and API calls whose bearer the double accepts
 * while it refuses one it never issued.
 *
 * Needs Postgres (MARK_TEST_DATABASE_URL), for the double's fixture, and
 * node and npm on PATH; the client is installed by `npm ci` in
 * tests/doubles/bigquery/sdk the first time (when node_modules is missing).
 * A missing node or npm fails the test: it is never skipped.
 *
 * Environment read: MARK_TEST_DATABASE_URL, MARK_DOUBLES_DIR (default:
 * MARK_BIN_DIR/../tests/doubles when MARK_BIN_DIR is set, else
 * build/tests/doubles), MARK_TEST_LOG_DIR (default build/test-logs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_b64.h"
#include "mk_buf.h"
#include "mk_json.h"
#include "mt.h"
#include "mt_bq.h"
#include "mt_check.h"

#define SDK_DIR "tests/doubles/bigquery/sdk"
#define DB_NAME "mark_bq_sdk_test"
#define GRANT   "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
#define SCOPE   "https://www.googleapis.com/auth/bigquery"
#define API     "/bigquery/v2/projects/" MT_BQ_PROJECT

/* ------------------------------------------------------------------ helpers */

/* Run sdk_check.mjs against d with the key file (and BQ_ONLY=only when not NULL). */
static int sdk_check(const mt_bq *d, const char *key_file, const char *only, char **out)
{
	char env[768];

	snprintf(env, sizeof(env), "BQ_DOUBLE_URL='%s' BQ_KEY_FILE='%s' BQ_ONLY='%s'", d->base,
	         key_file, only ? only : "");
	return mt_sdk_run(SDK_DIR, env, &d->p, out);
}

/* out is one ok line per check and the summary, with at least min checks. */
static void all_ok(const char *out, int min)
{
	char why[256];

	ck_assert_msg(mt_sdk_passed(out, min, why, sizeof(why)) >= 0, "%s:\n%s", why, out);
}

/* The JSON of a JWT's claims (its base64url middle segment); the caller deletes it. */
static cJSON *jwt_claims(const char *jwt, size_t len)
{
	const char *a = memchr(jwt, '.', len), *b;
	char *std;
	unsigned char *raw;
	size_t n, i, rawlen;
	cJSON *claims;

	ck_assert_msg(a, "no '.' in the assertion");
	b = memchr(a + 1, '.', len - (size_t)(a + 1 - jwt));
	ck_assert_msg(b, "one '.' only in the assertion");
	n = (size_t)(b - a - 1);
	std = calloc(1, n + 4);
	ck_assert_ptr_nonnull(std);
	for (i = 0; i < n; i++)
		std[i] = a[1 + i] == '-' ? '+' : a[1 + i] == '_' ? '/' : a[1 + i];
	while (i % 4)
		std[i++] = '=';
	raw = mk_b64_decode(std, i, &rawlen);
	free(std);
	ck_assert_msg(raw, "the claims are not base64url");
	claims = cJSON_Parse((const char *)raw);
	free(raw);
	ck_assert_msg(claims, "the claims are not JSON");
	return claims;
}

/* GET the datasets list with `authorization` as the header value; the HTTP status. */
static long list_with(const mt_bq *d, const char *authorization)
{
	char hdr[512];
	const char *hdrs[] = {hdr, NULL};
	mt_resp r;
	long status;

	snprintf(hdr, sizeof(hdr), "Authorization: %s", authorization);
	ck_assert_int_eq(mt_http("GET", mt_bq_url(d, API "/datasets"), hdrs, NULL, 0, &r), 0);
	status = r.status;
	mt_resp_release(&r);
	return status;
}

/*
 * The log of one sdk_check "auth:" run: a JWT-bearer grant to /token for the
 * fixture's service account comes first, and every BigQuery call after it
 * carries one bearer token, which the double accepts.
 */
static void assert_token_from_the_endpoint(const mt_bq *d, const cJSON *reqs)
{
	const cJSON *tok = cJSON_GetArrayItem(reqs, 0), *r;
	const char *body = mk_json_str(tok, "body"), *assertion, *bearer = NULL;
	cJSON *claims;
	int api = 0;
	long st;

	ck_assert_msg(cJSON_GetArraySize(reqs) >= 2, "too few requests recorded");
	ck_assert_str_eq(mk_json_str(tok, "route"), "token");
	ck_assert_str_eq(mk_json_str(tok, "method"), "POST");
	ck_assert_str_eq(mk_json_str(tok, "path"), "/token");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(tok, "authorization")));
	ck_assert_msg(body && strstr(body, GRANT), "not a JWT-bearer grant: %s", body ? body : "");
	assertion = strstr(body, "assertion=");
	ck_assert_ptr_nonnull(assertion);
	assertion += strlen("assertion=");
	claims = jwt_claims(assertion, strcspn(assertion, "&"));
	ck_assert_str_eq(mk_json_str(claims, "iss"), MT_BQ_CLIENT_EMAIL);
	ck_assert_msg(mk_json_str(claims, "scope") && strstr(mk_json_str(claims, "scope"), SCOPE),
	              "scope");
	cJSON_Delete(claims);

	cJSON_ArrayForEach(r, reqs)
	{
		const char *route = mk_json_str(r, "route"),
		           *auth = mk_json_str(r, "authorization");

		if (r == tok)
			continue;
		ck_assert_msg(route && strcmp(route, "token") != 0, "one token request only");
		ck_assert_msg(strncmp(mk_json_str(r, "path"), "/bigquery/v2/", 13) == 0,
		              "a BigQuery call: %s", mk_json_str(r, "path"));
		ck_assert_msg(auth && strncmp(auth, "Bearer ", 7) == 0 && auth[7],
		              "%s carries a bearer token", route);
		if (bearer)
			ck_assert_str_eq(auth, bearer);
		bearer = auth;
		api++;
	}
	ck_assert_int_ge(api, 1);
	/* The double takes only tokens it issued: this one, not one it never did. */
	st = list_with(d, bearer);
	ck_assert_msg(st == 200, "the client's token was refused: HTTP %ld", st);
	st = list_with(d, "Bearer ya29.never-issued");
	ck_assert_msg(st == 401, "a token never issued was taken: HTTP %ld", st);
}

/* ------------------------------------------------------------------ the test */

START_TEST(test_the_official_client_reads_what_the_double_sends)
{
	static const char *const packages[] = {"@google-cloud/bigquery", NULL};
	char err[512], dsn[512], key_file[256], *out = NULL;
	cJSON *reqs;
	mt_bq d;
	int st;

	ck_assert_msg(mt_sdk_ready(SDK_DIR, packages, "the BigQuery double's faithfulness test", 18,
	                           err, sizeof(err)) == 0,
	              "%s", err);

	ck_assert_msg(mt_warehouse_create(DB_NAME, "mark", dsn, sizeof(dsn), err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_msg(mt_bq_start(&d, "bigquery-double-sdk", dsn, err, sizeof(err)) == 0, "%s",
	              err);
	snprintf(key_file, sizeof(key_file), "/tmp/mark-bq-sdk-key-%d.json", (int)getpid());
	ck_assert_msg(mt_bq_write_key_file(&d, key_file, err, sizeof(err)) == 0, "%s", err);

	/* Every check, each one line. */
	st = sdk_check(&d, key_file, NULL, &out);
	ck_assert_msg(st == 0, "sdk_check.mjs exited %d:\n%s", st, out);
	all_ok(out, 16);
	free(out);

	/* Once more, the authentication check alone, and read what the double saw. */
	ck_assert_msg(mt_bq_reset(&d) == 0, "POST /_double/reset failed");
	st = sdk_check(&d, key_file, "auth:", &out);
	ck_assert_msg(st == 0, "sdk_check.mjs (auth) exited %d:\n%s", st, out);
	all_ok(out, 1);
	free(out);
	reqs = mt_bq_requests(&d);
	ck_assert_msg(cJSON_IsArray(reqs), "no request log");
	assert_token_from_the_endpoint(&d, reqs);
	cJSON_Delete(reqs);

	unlink(key_file);
	st = mt_bq_stop(&d);
	mt_warehouse_drop(DB_NAME);
	ck_assert_msg(st == 0, "bigquery-double exited %d on SIGTERM, want 0", st);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bigquery_sdk");
	TCase *tc = tcase_create("sdk");

	/* npm ci the first time, then ~16 checks, two of them with the client's retry pauses. */
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_the_official_client_reads_what_the_double_sends);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
