/*
 * bigquery_double_test.c - the BigQuery double (tests/doubles/bigquery) is
 * faithful to ../shared/contracts/bigquery-api.md: the token endpoint
 * checks JWT assertions as Google does, the metadata server wants its
 * header, the API wants an issued token, lists page and omit empty keys,
 * tables.get shows nested schemas, queries run on Postgres come back with
 * BigQuery's cell encoding and errors, jobs page and poll, and the
 * scripted faults and request log work.
 *
 * Needs Postgres (MARK_TEST_DATABASE_URL): the double's fixture is loaded
 * into a database of its own made with mt_warehouse_create().
 *
 * Environment read: MARK_TEST_DATABASE_URL, MARK_DOUBLES_DIR (default:
 * MARK_BIN_DIR/../tests/doubles when MARK_BIN_DIR is set, else
 * build/tests/doubles), MARK_TEST_LOG_DIR (default build/test-logs).
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mk_json.h"
#include "mt.h"
#include "mt_bq.h"
#include "mt_check.h"

#define DB_NAME "mark_bq_double_test"
#define GRANT   "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
#define SCOPE   "https://www.googleapis.com/auth/bigquery"
#define API     "/bigquery/v2/projects/" MT_BQ_PROJECT

static mt_bq dbl;
static char key_file[256];
static char token[64];

/* ------------------------------------------------------------------ helpers */

static const cJSON *at(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	ck_assert_msg(v, "no member '%s'", name);
	return v;
}

static const char *str_at(const cJSON *o, const char *name)
{
	const cJSON *v = at(o, name);

	ck_assert_msg(cJSON_IsString(v), "'%s' is not a string", name);
	return v->valuestring;
}

/* Cell i of a row {"f":[{"v":...}]}: the "v" value. */
static const cJSON *cell(const cJSON *row, int i)
{
	return at(cJSON_GetArrayItem(at(row, "f"), i), "v");
}

static void b64url(const unsigned char *in, size_t n, char *out, size_t cap)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i < n && o + 5 < cap; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
		             (i + 2 < n ? in[i + 2] : 0);

		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = a[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

/* An RS256 assertion signed with the key file's private_key; the caller frees it. */
static char *make_jwt(const char *aud, long iat_offset, long lifetime, const char *scope)
{
	char head[128], claims[1024], enc_h[256], enc_c[1500], enc_s[600], *out;
	unsigned char sig[512];
	size_t siglen = sizeof(sig);
	long now = (long)time(NULL) + iat_offset;
	FILE *f = fopen(key_file, "rb");
	cJSON *kf;
	BIO *bio;
	EVP_PKEY *pkey;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char buf[8192], input[2048];
	size_t n;

	ck_assert_msg(f, "cannot open %s", key_file);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	kf = cJSON_Parse(buf);
	ck_assert_ptr_nonnull(kf);
	bio = BIO_new_mem_buf(str_at(kf, "private_key"), -1);
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ck_assert_ptr_nonnull(pkey);
	snprintf(head, sizeof(head), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
	         str_at(kf, "private_key_id"));
	snprintf(claims, sizeof(claims),
	         "{\"iss\":\"%s\",\"scope\":\"%s\",\"aud\":\"%s\",\"iat\":%ld,\"exp\":%ld}",
	         str_at(kf, "client_email"), scope, aud, now, now + lifetime);
	cJSON_Delete(kf);
	b64url((const unsigned char *)head, strlen(head), enc_h, sizeof(enc_h));
	b64url((const unsigned char *)claims, strlen(claims), enc_c, sizeof(enc_c));
	snprintf(input, sizeof(input), "%s.%s", enc_h, enc_c);
	ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey), 1);
	ck_assert_int_eq(
	    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, strlen(input)), 1);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	b64url(sig, siglen, enc_s, sizeof(enc_s));
	n = strlen(input) + strlen(enc_s) + 2;
	out = malloc(n);
	ck_assert_ptr_nonnull(out);
	snprintf(out, n, "%s.%s", input, enc_s);
	return out;
}

static void token_request(const char *ctype, const char *form, mt_resp *r)
{
	char h[128];
	const char *hdrs[] = {h, NULL};

	snprintf(h, sizeof(h), "Content-Type: %s", ctype);
	ck_assert_int_eq(mt_http("POST", mt_bq_url(&dbl, "/token"), hdrs, form, strlen(form), r),
	                 0);
}

/* A token request refused with 400 invalid_grant (or `error`) whose description contains needle. */
static void expect_refused(const char *form, const char *ctype, const char *error,
                           const char *needle)
{
	mt_resp r;

	token_request(ctype, form, &r);
	ck_assert_msg(r.status == 400, "status %ld, want 400: %s", r.status, r.body);
	ck_assert_str_eq(str_at(r.json, "error"), error);
	ck_assert_msg(strstr(str_at(r.json, "error_description"), needle),
	              "description '%s' lacks '%s'", str_at(r.json, "error_description"), needle);
	mt_resp_release(&r);
}

static char *grant_form(const char *jwt)
{
	size_t n = strlen(jwt) + 200;
	char *form = malloc(n);

	ck_assert_ptr_nonnull(form);
	snprintf(form, n, "grant_type=%s&assertion=%s", GRANT, jwt);
	return form;
}

/* GET or POST an API path with the test's token; body JSON or NULL. */
static void api(const char *method, const char *path, const char *body, mt_resp *r)
{
	char auth[128];
	const char *hdrs[] = {auth, "Content-Type: application/json", NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	ck_assert_int_eq(
	    mt_http(method, mt_bq_url(&dbl, path), hdrs, body, body ? strlen(body) : 0, r), 0);
}

/* POST a jobs.query body; the response must be 200. */
static void query_ok(const char *body, mt_resp *r)
{
	api("POST", API "/queries", body, r);
	ck_assert_msg(r->status == 200, "jobs.query: HTTP %ld: %s", r->status, r->body);
}

/* A Google error reply: status, errors[0].reason and a message containing needle. */
static void expect_error(const mt_resp *r, long status, const char *reason, const char *needle)
{
	const cJSON *e = at(r->json, "error");
	const cJSON *first = cJSON_GetArrayItem(at(e, "errors"), 0);

	ck_assert_msg(r->status == status, "status %ld, want %ld: %s", r->status, status, r->body);
	ck_assert_int_eq((long)at(e, "code")->valuedouble, status);
	ck_assert_str_eq(str_at(first, "reason"), reason);
	ck_assert_msg(strstr(str_at(e, "message"), needle), "message '%s' lacks '%s'",
	              str_at(e, "message"), needle);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(e, "status"));
}

static void control_ok(int rc, const char *err)
{
	ck_assert_msg(rc == 0, "%s", err);
}

static void reset(void)
{
	ck_assert_msg(mt_bq_reset(&dbl) == 0, "POST /_double/reset failed");
}

static void double_up(void)
{
	char err[512], dsn[512];
	mt_resp r;
	char *jwt, *form;

	control_ok(mt_warehouse_create(DB_NAME, "mark", dsn, sizeof(dsn), err, sizeof(err)), err);
	control_ok(mt_bq_start(&dbl, "bigquery-double", dsn, err, sizeof(err)), err);
	snprintf(key_file, sizeof(key_file), "/tmp/mark-bq-key-%d.json", (int)getpid());
	control_ok(mt_bq_write_key_file(&dbl, key_file, err, sizeof(err)), err);
	jwt = make_jwt(mt_bq_url(&dbl, "/token"), -10, 3600, SCOPE);
	form = grant_form(jwt);
	token_request("application/x-www-form-urlencoded", form, &r);
	ck_assert_msg(r.status == 200, "token: HTTP %ld: %s", r.status, r.body);
	snprintf(token, sizeof(token), "%s", str_at(r.json, "access_token"));
	mt_resp_release(&r);
	free(form);
	free(jwt);
}

static void double_down(void)
{
	int st = mt_bq_stop(&dbl);

	unlink(key_file);
	mt_warehouse_drop(DB_NAME);
	ck_assert_msg(st == 0, "bigquery-double exited %d on SIGTERM, want 0", st);
}

/* ------------------------------------------------------------------ auth */

START_TEST(test_the_key_file_points_at_the_double_token_endpoint)
{
	char buf[8192];
	FILE *f = fopen(key_file, "rb");
	size_t n;
	cJSON *kf;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	kf = cJSON_Parse(buf);
	ck_assert_ptr_nonnull(kf);
	ck_assert_str_eq(str_at(kf, "type"), "service_account");
	ck_assert_str_eq(str_at(kf, "project_id"), MT_BQ_PROJECT);
	ck_assert_str_eq(str_at(kf, "client_email"), MT_BQ_CLIENT_EMAIL);
	ck_assert_str_eq(str_at(kf, "token_uri"), mt_bq_url(&dbl, "/token"));
	ck_assert_str_eq(str_at(kf, "universe_domain"), "googleapis.com");
	ck_assert_ptr_nonnull(strstr(str_at(kf, "private_key"), "-----BEGIN PRIVATE KEY-----\n"));
	cJSON_Delete(kf);
}
END_TEST

START_TEST(test_the_token_endpoint_grants_a_good_assertion_and_refuses_bad_ones)
{
	const char *form_ct = "application/x-www-form-urlencoded";
	char *jwt = make_jwt(mt_bq_url(&dbl, "/token"), -10, 3600, SCOPE), *form, *bad;
	mt_resp r;
	size_t n;

	form = grant_form(jwt);
	token_request(form_ct, form, &r);
	ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
	ck_assert_ptr_nonnull(strstr(str_at(r.json, "access_token"), "test-token-"));
	ck_assert_str_eq(str_at(r.json, "token_type"), "Bearer");
	ck_assert_int_eq((int)at(r.json, "expires_in")->valuedouble, 3599);
	mt_resp_release(&r);

	/* One flipped character in the signature. */
	bad = strdup(jwt);
	n = strlen(bad);
	bad[n - 10] = bad[n - 10] == 'A' ? 'B' : 'A';
	free(form);
	form = grant_form(bad);
	expect_refused(form, form_ct, "invalid_grant", "Invalid JWT Signature");
	free(bad);
	free(form);
	free(jwt);

	jwt = make_jwt("https://example.com/token", -10, 3600, SCOPE);
	form = grant_form(jwt);
	expect_refused(form, form_ct, "invalid_grant", "audience");
	free(form);
	free(jwt);

	jwt = make_jwt(mt_bq_url(&dbl, "/token"), -10, 3601, SCOPE);
	form = grant_form(jwt);
	expect_refused(form, form_ct, "invalid_grant", "short-lived");
	free(form);
	free(jwt);

	jwt = make_jwt(mt_bq_url(&dbl, "/token"), -3600, 3600, SCOPE);
	form = grant_form(jwt);
	expect_refused(form, form_ct, "invalid_grant", "iat and exp");
	expect_refused(form, "application/json", "invalid_grant", "Content-Type");
	free(form);
	free(jwt);

	jwt = make_jwt(mt_bq_url(&dbl, "/token"), -10, 3600, SCOPE);
	n = strlen(jwt) + 100;
	form = malloc(n);
	snprintf(form, n, "grant_type=client_credentials&assertion=%s", jwt);
	expect_refused(form, form_ct, "invalid_grant", "grant_type");
	snprintf(form, n, "grant_type=%s&assertion=abc.def", GRANT);
	expect_refused(form, form_ct, "invalid_grant", "Invalid JWT");
	free(form);
	free(jwt);
}
END_TEST

START_TEST(test_the_api_without_an_issued_token_is_401_authError)
{
	static const char *const bogus[] = {"Authorization: Bearer test-token-999999", NULL};
	mt_resp r;

	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, API "/datasets"), NULL, NULL, 0, &r), 0);
	expect_error(&r, 401, "authError", "invalid authentication credentials");
	ck_assert_str_eq(str_at(at(r.json, "error"), "status"), "UNAUTHENTICATED");
	mt_resp_release(&r);
	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, API "/datasets"), bogus, NULL, 0, &r), 0);
	expect_error(&r, 401, "authError", "invalid authentication credentials");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_the_metadata_server_wants_its_header_and_issues_tokens_the_api_takes)
{
	static const char *const flavor[] = {"Metadata-Flavor: Google", NULL};
	const char *tok_path = "/computeMetadata/v1/instance/service-accounts/default/token";
	char auth[128], *h;
	const char *with_tok[] = {auth, NULL};
	mt_resp r;

	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, tok_path), NULL, NULL, 0, &r), 0);
	ck_assert_int_eq(r.status, 403);
	ck_assert_ptr_null(r.json);
	mt_resp_release(&r);

	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, "/computeMetadata/v1/project/project-id"),
	                         flavor, NULL, 0, &r),
	                 0);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(r.body, MT_BQ_PROJECT);
	h = mt_header(&r, "Metadata-Flavor");
	ck_assert_str_eq(h ? h : "", "Google");
	free(h);
	mt_resp_release(&r);

	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, "/computeMetadata/v1/nothing/here"), flavor,
	                         NULL, 0, &r),
	                 0);
	ck_assert_int_eq(r.status, 404);
	mt_resp_release(&r);

	ck_assert_int_eq(mt_http("GET",
	                         mt_bq_url(&dbl, "/computeMetadata/v1/instance/service-accounts/"
	                                         "default/token?scopes=" SCOPE),
	                         flavor, NULL, 0, &r),
	                 0);
	ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
	ck_assert_str_eq(str_at(r.json, "token_type"), "Bearer");
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", str_at(r.json, "access_token"));
	mt_resp_release(&r);
	ck_assert_int_eq(mt_http("GET", mt_bq_url(&dbl, API "/datasets"), with_tok, NULL, 0, &r),
	                 0);
	ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ catalog */

START_TEST(test_datasets_list_pages_and_drops_the_token_on_the_last_page)
{
	char path[256];
	mt_resp r;

	api("GET", API "/datasets?maxResults=3&prettyPrint=false", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(at(r.json, "datasets")), 3);
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(at(r.json, "datasets"), 0), "id"),
	                 MT_BQ_PROJECT ":empty");
	snprintf(path, sizeof(path), API "/datasets?maxResults=3&pageToken=%s",
	         str_at(r.json, "nextPageToken"));
	mt_resp_release(&r);
	api("GET", path, NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_int_eq(cJSON_GetArraySize(at(r.json, "datasets")), 1);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "nextPageToken"));
	mt_resp_release(&r);

	api("GET", API "/datasets/eu_sales", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(str_at(r.json, "location"), "europe-west2");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "description"));
	mt_resp_release(&r);
	api("GET", API "/datasets/nope", NULL, &r);
	expect_error(&r, 404, "notFound", "Not found: Dataset mark-test:nope");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_tables_list_pages_over_wide_and_has_no_tables_key_for_empty)
{
	char path[256];
	const cJSON *t;
	int pages = 0, total = 0;
	mt_resp r;

	snprintf(path, sizeof(path), API "/datasets/wide/tables?maxResults=3");
	for (;;) {
		const cJSON *next;

		api("GET", path, NULL, &r);
		ck_assert_int_eq(r.status, 200);
		ck_assert_msg(cJSON_IsNumber(at(r.json, "totalItems")), "totalItems not a number");
		ck_assert_int_eq((int)at(r.json, "totalItems")->valuedouble, 7);
		cJSON_ArrayForEach(t, at(r.json, "tables"))
		{
			ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(t, "schema"));
			ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(t, "numRows"));
			ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(t, "description"));
			total++;
		}
		pages++;
		next = cJSON_GetObjectItemCaseSensitive(r.json, "nextPageToken");
		if (!next) {
			mt_resp_release(&r);
			break;
		}
		snprintf(path, sizeof(path), API "/datasets/wide/tables?maxResults=3&pageToken=%s",
		         next->valuestring);
		mt_resp_release(&r);
	}
	ck_assert_int_eq(pages, 3);
	ck_assert_int_eq(total, 7);

	api("GET", API "/datasets/empty/tables", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "tables"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "nextPageToken"));
	ck_assert_int_eq((int)at(r.json, "totalItems")->valuedouble, 0);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_tables_get_shows_the_nested_schema_and_int64_strings)
{
	const cJSON *fields, *items, *sub;
	mt_resp r;

	api("GET", API "/datasets/shop/tables/events", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(str_at(r.json, "numRows"), "4");
	ck_assert_str_eq(str_at(r.json, "numBytes"), "2097152");
	ck_assert_str_eq(str_at(r.json, "type"), "TABLE");
	fields = at(at(r.json, "schema"), "fields");
	items = cJSON_GetArrayItem(fields, 6);
	ck_assert_str_eq(str_at(items, "name"), "items");
	ck_assert_str_eq(str_at(items, "type"), "RECORD");
	ck_assert_str_eq(str_at(items, "mode"), "REPEATED");
	sub = at(items, "fields");
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(sub, 2), "mode"), "REPEATED");
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(sub, 3), "type"), "RECORD");
	ck_assert_int_eq(cJSON_GetArraySize(at(cJSON_GetArrayItem(sub, 3), "fields")), 2);
	mt_resp_release(&r);

	api("GET", API "/datasets/shop/tables/orders", NULL, &r);
	ck_assert_str_eq(str_at(at(r.json, "timePartitioning"), "field"), "order_date");
	ck_assert_str_eq(cJSON_GetArrayItem(at(at(r.json, "clustering"), "fields"), 0)->valuestring,
	                 "customer_id");
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "description"));
	mt_resp_release(&r);

	api("GET", API "/datasets/shop/tables/orders?view=BASIC&selectedFields=id,total", NULL, &r);
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "numRows"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "numBytes"));
	ck_assert_int_eq(cJSON_GetArraySize(at(at(r.json, "schema"), "fields")), 2);
	mt_resp_release(&r);

	api("GET", API "/datasets/shop/tables/ordrs", NULL, &r);
	expect_error(&r, 404, "notFound",
	             "Not found: Table mark-test:shop.ordrs was not found in location US");
	mt_resp_release(&r);
	api("GET", API "/datasets/shop/wrong", NULL, &r);
	ck_assert_int_eq(r.status, 404);
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ queries */

START_TEST(test_a_query_returns_typed_cells_with_big_integers_exact)
{
	const cJSON *rows, *fields;
	mt_resp r;

	query_ok("{\"query\":\"SELECT id, customer_id, order_date, status, total FROM "
	         "`mark-test.shop.orders` ORDER BY id\",\"useLegacySql\":false}",
	         &r);
	ck_assert(cJSON_IsTrue(at(r.json, "jobComplete")));
	ck_assert_str_eq(str_at(r.json, "totalRows"), "15");
	ck_assert_str_eq(str_at(r.json, "totalBytesProcessed"), "1048576");
	ck_assert_str_eq(str_at(at(r.json, "jobReference"), "location"), "US");
	fields = at(at(r.json, "schema"), "fields");
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(fields, 0), "type"), "INTEGER");
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(fields, 2), "type"), "DATE");
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(fields, 4), "type"), "FLOAT");
	rows = at(r.json, "rows");
	ck_assert_int_eq(cJSON_GetArraySize(rows), 15);
	ck_assert_str_eq(cell(cJSON_GetArrayItem(rows, 0), 0)->valuestring, "1");
	ck_assert_str_eq(cell(cJSON_GetArrayItem(rows, 0), 2)->valuestring, "2024-01-06");
	ck_assert_str_eq(cell(cJSON_GetArrayItem(rows, 0), 4)->valuestring, "10.75");
	ck_assert_str_eq(cell(cJSON_GetArrayItem(rows, 14), 0)->valuestring, "9007199254740993");
	ck_assert(cJSON_IsNull(cell(cJSON_GetArrayItem(rows, 6), 3)));  /* order 7: no status */
	ck_assert(cJSON_IsNull(cell(cJSON_GetArrayItem(rows, 10), 4))); /* order 11: no total */
	mt_resp_release(&r);

	query_ok("{\"query\":\"SELECT * FROM shop.orders WHERE id < 0\",\"useLegacySql\":false}",
	         &r);
	ck_assert_str_eq(str_at(r.json, "totalRows"), "0");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "rows"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_nested_cells_are_encoded_as_bigquery_encodes_them)
{
	const cJSON *rows, *r1, *r2, *r3, *items, *first, *tags, *price;
	mt_resp r;

	query_ok("{\"query\":\"SELECT event_id, occurred_at, payload, raw, score, device, items "
	         "FROM shop.events ORDER BY event_id\",\"useLegacySql\":false}",
	         &r);
	rows = at(r.json, "rows");
	r1 = cJSON_GetArrayItem(rows, 0);
	r2 = cJSON_GetArrayItem(rows, 1);
	r3 = cJSON_GetArrayItem(rows, 2);
	ck_assert_str_eq(cell(r1, 1)->valuestring, "1.561017697269367E9");
	ck_assert_str_eq(cell(r1, 2)->valuestring, "{\"kind\":\"view\",\"page\":\"/home\"}");
	ck_assert_str_eq(cell(r1, 3)->valuestring, "AQID/w==");
	ck_assert_str_eq(cell(r1, 4)->valuestring, "0.5");
	ck_assert_str_eq(at(cJSON_GetArrayItem(at(cell(r1, 5), "f"), 0), "v")->valuestring, "ios");
	items = cell(r1, 6);
	ck_assert(cJSON_IsArray(items));
	ck_assert_int_eq(cJSON_GetArraySize(items), 2);
	first = at(cJSON_GetArrayItem(items, 0), "v");
	ck_assert_str_eq(cell(first, 0)->valuestring, "A-1");
	ck_assert_str_eq(cell(first, 1)->valuestring, "2");
	tags = cell(first, 2);
	ck_assert_int_eq(cJSON_GetArraySize(tags), 2);
	ck_assert_str_eq(at(cJSON_GetArrayItem(tags, 1), "v")->valuestring, "sale");
	price = cell(first, 3);
	ck_assert_str_eq(cell(price, 0)->valuestring, "9.99");
	ck_assert_str_eq(cell(price, 1)->valuestring, "EUR");
	/* Second item: empty tags, NULL price. */
	first = at(cJSON_GetArrayItem(items, 1), "v");
	ck_assert_int_eq(cJSON_GetArraySize(cell(first, 2)), 0);
	ck_assert(cJSON_IsNull(cell(first, 3)));
	/* Row 2: NaN, NULL record, empty array; row 3: NULLs inside records, NULL tags -> []. */
	ck_assert_str_eq(cell(r2, 4)->valuestring, "NaN");
	ck_assert(cJSON_IsNull(cell(r2, 3)));
	ck_assert(cJSON_IsNull(cell(r2, 5)));
	ck_assert(cJSON_IsArray(cell(r2, 6)) && cJSON_GetArraySize(cell(r2, 6)) == 0);
	ck_assert(cJSON_IsNull(cell(r3, 1)));
	ck_assert_str_eq(cell(r3, 4)->valuestring, "-1.25E10");
	ck_assert(cJSON_IsNull(cell(cell(r3, 5), 0)));
	first = at(cJSON_GetArrayItem(cell(r3, 6), 0), "v");
	ck_assert(cJSON_IsNull(cell(first, 0)));
	ck_assert(cJSON_IsArray(cell(first, 2)) && cJSON_GetArraySize(cell(first, 2)) == 0);
	ck_assert(cJSON_IsNull(cell(cell(first, 3), 0)));
	mt_resp_release(&r);

	query_ok("{\"query\":\"SELECT occurred_at FROM shop.events WHERE event_id = 1\","
	         "\"useLegacySql\":false,\"formatOptions\":{\"useInt64Timestamp\":true}}",
	         &r);
	ck_assert_str_eq(cell(cJSON_GetArrayItem(at(r.json, "rows"), 0), 0)->valuestring,
	                 "1561017697269367");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_dry_run_estimates_bytes_and_returns_the_schema_without_rows)
{
	mt_resp r;

	query_ok(
	    "{\"query\":\"SELECT o.id, c.name FROM shop.orders o JOIN `mark-test`.shop.customers "
	    "c ON c.id = o.customer_id\",\"useLegacySql\":false,\"dryRun\":true}",
	    &r);
	ck_assert(cJSON_IsTrue(at(r.json, "jobComplete")));
	ck_assert_str_eq(str_at(r.json, "totalBytesProcessed"), "1052672"); /* 1048576 + 4096 */
	ck_assert_int_eq(cJSON_GetArraySize(at(at(r.json, "schema"), "fields")), 2);
	ck_assert_str_eq(str_at(cJSON_GetArrayItem(at(at(r.json, "schema"), "fields"), 1), "type"),
	                 "STRING");
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "rows"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "totalRows"));
	mt_resp_release(&r);

	api("POST", API "/queries",
	    "{\"query\":\"SELECT nope FROM shop.orders\",\"useLegacySql\":false,\"dryRun\":true}",
	    &r);
	expect_error(&r, 400, "invalidQuery", "Unrecognized name: nope");
	mt_resp_release(&r);
	api("POST", API "/queries",
	    "{\"query\":\"SELECT * FROM shop.ordrs\",\"useLegacySql\":false,\"dryRun\":true}", &r);
	expect_error(&r, 404, "notFound",
	             "Not found: Table mark-test:shop.ordrs was not found in location US");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_bytes_cap_below_the_estimate_is_bytesBilledLimitExceeded)
{
	mt_resp r;

	api("POST", API "/queries",
	    "{\"query\":\"SELECT * FROM shop.orders\",\"useLegacySql\":false,"
	    "\"maximumBytesBilled\":\"1000\"}",
	    &r);
	expect_error(&r, 400, "bytesBilledLimitExceeded",
	             "Query exceeded limit for bytes billed: 1000. 10485760 or higher required.");
	mt_resp_release(&r);
	query_ok("{\"query\":\"SELECT * FROM shop.orders\",\"useLegacySql\":false,"
	         "\"maximumBytesBilled\":\"10485760\"}",
	         &r);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_query_without_useLegacySql_false_is_invalidQuery)
{
	mt_resp r;

	api("POST", API "/queries", "{\"query\":\"SELECT 1\"}", &r);
	expect_error(&r, 400, "invalidQuery", "useLegacySql");
	mt_resp_release(&r);
	api("POST", API "/queries", "{\"query\":\"SELECT 1\",\"useLegacySql\":true}", &r);
	expect_error(&r, 400, "invalidQuery", "legacy SQL");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_query_results_page_through_getQueryResults)
{
	char path[512], job[128];
	const cJSON *row, *tok;
	int seen = 0, pages = 1;
	mt_resp r;

	query_ok("{\"query\":\"SELECT id FROM shop.orders ORDER BY id\",\"useLegacySql\":false,"
	         "\"maxResults\":5}",
	         &r);
	ck_assert_int_eq(cJSON_GetArraySize(at(r.json, "rows")), 5);
	ck_assert_str_eq(str_at(r.json, "totalRows"), "15");
	snprintf(job, sizeof(job), "%s", str_at(at(r.json, "jobReference"), "jobId"));
	seen = 5;
	tok = cJSON_GetObjectItemCaseSensitive(r.json, "pageToken");
	while (tok) {
		snprintf(path, sizeof(path),
		         API "/queries/%s?location=US&maxResults=5&pageToken=%s", job,
		         tok->valuestring);
		mt_resp_release(&r);
		api("GET", path, NULL, &r);
		ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
		ck_assert_str_eq(str_at(r.json, "kind"), "bigquery#getQueryResultsResponse");
		cJSON_ArrayForEach(row, at(r.json, "rows"))
		{
			char want[32];

			seen++;
			snprintf(want, sizeof(want), "%d", seen);
			ck_assert_str_eq(cell(row, 0)->valuestring,
			                 seen == 15 ? "9007199254740993" : want);
		}
		pages++;
		tok = cJSON_GetObjectItemCaseSensitive(r.json, "pageToken");
	}
	mt_resp_release(&r);
	ck_assert_int_eq(seen, 15);
	ck_assert_int_eq(pages, 3);

	snprintf(path, sizeof(path), API "/queries/%s?pageToken=bogus", job);
	api("GET", path, NULL, &r);
	ck_assert_int_eq(r.status, 400);
	mt_resp_release(&r);
	api("GET", API "/queries/job_does_not_exist", NULL, &r);
	expect_error(&r, 404, "notFound", "Not found: Job mark-test:US.job_does_not_exist");
	mt_resp_release(&r);

	/* The server's own page cap applies even when the client asks for more. */
	control_ok(mt_bq_config(&dbl, "{\"max_page_size\":4}", path, sizeof(path)), path);
	query_ok("{\"query\":\"SELECT id FROM shop.orders\",\"useLegacySql\":false,"
	         "\"maxResults\":10}",
	         &r);
	ck_assert_int_eq(cJSON_GetArraySize(at(r.json, "rows")), 4);
	ck_assert_ptr_nonnull(cJSON_GetObjectItemCaseSensitive(r.json, "pageToken"));
	mt_resp_release(&r);
	reset();
}
END_TEST

START_TEST(test_an_eu_job_is_not_found_without_its_location)
{
	char path[256], job[128], want[256];
	mt_resp r;

	query_ok("{\"query\":\"SELECT * FROM eu_sales.invoices ORDER BY invoice_id\","
	         "\"useLegacySql\":false}",
	         &r);
	ck_assert_str_eq(str_at(at(r.json, "jobReference"), "location"), "europe-west2");
	ck_assert_str_eq(cell(cJSON_GetArrayItem(at(r.json, "rows"), 1), 3)->valuestring,
	                 "2024-02-29T16:30:00.250000");
	snprintf(job, sizeof(job), "%s", str_at(at(r.json, "jobReference"), "jobId"));
	mt_resp_release(&r);
	snprintf(path, sizeof(path), API "/queries/%s", job);
	api("GET", path, NULL, &r);
	snprintf(want, sizeof(want), "Not found: Job mark-test:europe-west2.%s", job);
	expect_error(&r, 404, "notFound", want);
	mt_resp_release(&r);
	snprintf(path, sizeof(path), API "/queries/%s?location=europe-west2", job);
	api("GET", path, NULL, &r);
	ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
	ck_assert_str_eq(str_at(r.json, "totalRows"), "3");
	mt_resp_release(&r);

	api("POST", API "/queries",
	    "{\"query\":\"SELECT * FROM eu_sales.invoices\",\"useLegacySql\":false,"
	    "\"location\":\"US\"}",
	    &r);
	expect_error(&r, 404, "notFound",
	             "Dataset mark-test:eu_sales was not found in location US");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_incomplete_polls_answer_jobComplete_false_first)
{
	char err[512], path[256];
	mt_resp r;

	reset();
	control_ok(mt_bq_config(&dbl, "{\"incomplete_polls\":2}", err, sizeof(err)), err);
	query_ok("{\"query\":\"SELECT id FROM shop.customers\",\"useLegacySql\":false}", &r);
	ck_assert(cJSON_IsFalse(at(r.json, "jobComplete")));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "rows"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "schema"));
	ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(r.json, "totalRows"));
	snprintf(path, sizeof(path), API "/queries/%s?timeoutMs=1000",
	         str_at(at(r.json, "jobReference"), "jobId"));
	mt_resp_release(&r);
	api("GET", path, NULL, &r);
	ck_assert(cJSON_IsFalse(at(r.json, "jobComplete")));
	mt_resp_release(&r);
	api("GET", path, NULL, &r);
	ck_assert(cJSON_IsTrue(at(r.json, "jobComplete")));
	ck_assert_str_eq(str_at(r.json, "totalRows"), "8");
	ck_assert_int_eq(cJSON_GetArraySize(at(r.json, "rows")), 8);
	mt_resp_release(&r);
	reset();
}
END_TEST

START_TEST(test_jobs_insert_then_get_and_getQueryResults)
{
	mt_resp r;

	api("POST", API "/jobs",
	    "{\"configuration\":{\"query\":{\"query\":\"SELECT name FROM customers ORDER BY id\","
	    "\"useLegacySql\":false,\"defaultDataset\":{\"projectId\":\"mark-test\","
	    "\"datasetId\":\"shop\"}}},\"jobReference\":{\"projectId\":\"mark-test\","
	    "\"jobId\":\"mark-job-insert-1\"}}",
	    &r);
	ck_assert_msg(r.status == 200, "HTTP %ld: %s", r.status, r.body);
	ck_assert_str_eq(str_at(at(r.json, "status"), "state"), "DONE");
	ck_assert_str_eq(str_at(at(at(r.json, "statistics"), "query"), "totalBytesProcessed"),
	                 "4096");
	mt_resp_release(&r);
	api("GET", API "/jobs/mark-job-insert-1?location=US", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(str_at(at(at(r.json, "configuration"), "query"), "query"),
	                 "SELECT name FROM customers ORDER BY id");
	mt_resp_release(&r);
	api("GET", API "/queries/mark-job-insert-1", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(cell(cJSON_GetArrayItem(at(r.json, "rows"), 0), 0)->valuestring,
	                 "Ada Lovelace");
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ control */

START_TEST(test_a_fault_rule_fires_n_times_then_stops)
{
	char err[512];
	mt_resp r;

	reset();
	control_ok(mt_bq_faults(&dbl,
	                        "{\"rules\":[{\"route\":\"datasets.list\",\"times\":2,"
	                        "\"status\":403,\"reason\":\"rateLimitExceeded\"}]}",
	                        err, sizeof(err)),
	           err);
	api("GET", API "/datasets", NULL, &r);
	expect_error(&r, 403, "rateLimitExceeded", "rate limits");
	mt_resp_release(&r);
	api("GET", API "/datasets/shop", NULL, &r); /* another route: not affected */
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	api("GET", API "/datasets", NULL, &r);
	expect_error(&r, 403, "rateLimitExceeded", "rate limits");
	mt_resp_release(&r);
	api("GET", API "/datasets", NULL, &r);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);

	ck_assert_int_eq(
	    mt_bq_faults(&dbl, "{\"rules\":[{\"route\":\"nope\",\"times\":1}]}", err, sizeof(err)),
	    -1);
}
END_TEST

START_TEST(test_an_html_502_has_no_json_body)
{
	char err[512], *ct;
	mt_resp r;

	reset();
	control_ok(mt_bq_faults(&dbl,
	                        "{\"rules\":[{\"route\":\"any\",\"times\":1,\"status\":502,"
	                        "\"html\":true}]}",
	                        err, sizeof(err)),
	           err);
	api("POST", API "/queries", "{\"query\":\"SELECT 1\",\"useLegacySql\":false}", &r);
	ck_assert_int_eq(r.status, 502);
	ck_assert_ptr_null(r.json);
	ct = mt_header(&r, "Content-Type");
	ck_assert_ptr_nonnull(ct && strstr(ct, "text/html") ? ct : NULL);
	free(ct);
	mt_resp_release(&r);
	query_ok("{\"query\":\"SELECT 1\",\"useLegacySql\":false}", &r);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_the_request_log_records_route_authorization_and_body)
{
	char *jwt, *form;
	const cJSON *q, *t;
	cJSON *reqs;
	mt_resp r;

	reset();
	query_ok("{\"query\":\"SELECT 1\",\"useLegacySql\":false}", &r);
	mt_resp_release(&r);
	jwt = make_jwt(mt_bq_url(&dbl, "/token"), -10, 3600, SCOPE);
	form = grant_form(jwt);
	token_request("application/x-www-form-urlencoded", form, &r);
	ck_assert_int_eq(r.status, 200);
	mt_resp_release(&r);
	reqs = mt_bq_requests(&dbl);
	ck_assert_ptr_nonnull(reqs);
	ck_assert_int_eq(cJSON_GetArraySize(reqs), 2);
	q = cJSON_GetArrayItem(reqs, 0);
	ck_assert_str_eq(str_at(q, "route"), "jobs.query");
	ck_assert_str_eq(str_at(q, "method"), "POST");
	ck_assert_str_eq(str_at(q, "path"), API "/queries");
	ck_assert_ptr_nonnull(strstr(str_at(q, "authorization"), token));
	ck_assert_str_eq(str_at(at(q, "body"), "query"), "SELECT 1");
	t = cJSON_GetArrayItem(reqs, 1);
	ck_assert_str_eq(str_at(t, "route"), "token");
	ck_assert(cJSON_IsNull(at(t, "authorization")));
	ck_assert_str_eq(str_at(t, "body"), form);
	cJSON_Delete(reqs);
	free(form);
	free(jwt);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("bigquery_double");
	TCase *tc = tcase_create("double");

	tcase_add_unchecked_fixture(tc, double_up, double_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_the_key_file_points_at_the_double_token_endpoint);
	tcase_add_test(tc, test_the_token_endpoint_grants_a_good_assertion_and_refuses_bad_ones);
	tcase_add_test(tc, test_the_api_without_an_issued_token_is_401_authError);
	tcase_add_test(tc,
	               test_the_metadata_server_wants_its_header_and_issues_tokens_the_api_takes);
	tcase_add_test(tc, test_datasets_list_pages_and_drops_the_token_on_the_last_page);
	tcase_add_test(tc, test_tables_list_pages_over_wide_and_has_no_tables_key_for_empty);
	tcase_add_test(tc, test_tables_get_shows_the_nested_schema_and_int64_strings);
	tcase_add_test(tc, test_a_query_returns_typed_cells_with_big_integers_exact);
	tcase_add_test(tc, test_nested_cells_are_encoded_as_bigquery_encodes_them);
	tcase_add_test(tc, test_a_dry_run_estimates_bytes_and_returns_the_schema_without_rows);
	tcase_add_test(tc, test_a_bytes_cap_below_the_estimate_is_bytesBilledLimitExceeded);
	tcase_add_test(tc, test_a_query_without_useLegacySql_false_is_invalidQuery);
	tcase_add_test(tc, test_query_results_page_through_getQueryResults);
	tcase_add_test(tc, test_an_eu_job_is_not_found_without_its_location);
	tcase_add_test(tc, test_incomplete_polls_answer_jobComplete_false_first);
	tcase_add_test(tc, test_jobs_insert_then_get_and_getQueryResults);
	tcase_add_test(tc, test_a_fault_rule_fires_n_times_then_stops);
	tcase_add_test(tc, test_an_html_502_has_no_json_body);
	tcase_add_test(tc, test_the_request_log_records_route_authorization_and_body);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
