/*
 * auth_hostile_test.c - the /auth routes and the Bearer guard against bad
 * and hostile input: missing and mistyped fields, malformed JSON, bodies
 * over the limit (plain and chunked), broken HTTP on a raw socket, odd
 * emails and passwords, a race of sign-ups, forged and tampered tokens,
 * refresh-token reuse, malformed OAuth2 forms and attempts to dodge the
 * sign-in lockout. Every answer must be a 4xx with the one JSON error
 * shape (never a 5xx, a hang or a crash), and the stack must still be
 * ready, and stop cleanly, afterwards.
 *
 * The normal flows are in auth_test.c. The stack runs with a high
 * per-address failure limit so that this suite's deliberate failures do not
 * lock its own address out; each test uses fresh accounts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mk_jwt.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

#define MAX_BODY (1 << 20) /* GATEWAY_MAX_BODY's default */

static mt_stack st;
static mk_jwt_key *signer; /* the stack's own private key, to mint test tokens */
/*
 * A high per-address failure limit (see above), and a request timeout well
 * under the RAW_WAIT_S this suite waits for a stalled request to be ended
 * (the margin is for a loaded host running the sanitizer build).
 */
static const char *const stack_env[] = {"AUTH_SIGNIN_IP_MAX_FAILURES=1000",
                                        "GATEWAY_REQUEST_TIMEOUT=10s", NULL};
#define REQUEST_TIMEOUT_S 10
#define RAW_WAIT_S        60
/* How long the stack may take to be ready again (a restarted process, a loaded host). */
#define READY_WAIT_MS 90000

static void stack_up(void)
{
	char err[256];

	if (mt_stack_start(&st, stack_env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	signer = mk_jwt_key_load(st.key_priv, err, sizeof(err));
	if (!signer) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
}

static void stack_down(void)
{
	mk_jwt_key_free(signer);
	signer = NULL;
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* ------------------------------------------------------------------ helpers */

/*
 * Called when a request got no answer: if the gateway died, start a new
 * one so that the tests after this one still run, and fail this one.
 */
static void check_gateway_alive(const char *what)
{
	mk_sleep_ms(200); /* a crashing process closes its sockets before it can be reaped */
	if (mt_proc_alive(&st.p[MT_GATEWAY]))
		return;
	st.p[MT_GATEWAY].pid = 0;
	if (mt_stack_start_one(&st, MT_GATEWAY, stack_env) == 0)
		mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS);
	ck_abort_msg("%s: the gateway crashed (a new one was started for the tests that follow)",
	             what);
}

/* A fresh, short email (short keeps access tokens under the refresh_token cap). */
static void new_email(char *out, size_t outlen)
{
	static int seq;

	snprintf(out, outlen, "h%d-%d@example.com", (int)getpid(), ++seq);
}

static const char *const json_ct[] = {"Content-Type: application/json", NULL};
static const char *const form_ct[] = {"Content-Type: application/x-www-form-urlencoded", NULL};

static void post(const char *path, const char *const *headers, const char *body, size_t len,
                 mt_resp *r)
{
	if (mt_http("POST", mt_url(&st, path), headers, body, len, r) != 0 && !r->status) {
		mt_resp_release(r);
		check_gateway_alive(path);
		ck_abort_msg("POST %s: no response", path);
	}
}

static void post_json(const char *path, const char *body, mt_resp *r)
{
	post(path, json_ct, body, strlen(body), r);
}

static void post_form(const char *path, const char *body, mt_resp *r)
{
	post(path, form_ct, body, strlen(body), r);
}

/* Is s[0..n) valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF)? */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0, k, len;
	unsigned cp;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		len = (s[i] & 0xe0) == 0xc0   ? 2
		      : (s[i] & 0xf0) == 0xe0 ? 3
		      : (s[i] & 0xf8) == 0xf0 ? 4
		                              : 0;
		if (!len || i + len > n)
			return 0;
		cp = s[i] & (0x7f >> len);
		for (k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return 0;
		i += len;
	}
	return 1;
}

/*
 * The one error shape: exactly {"error": {"code", "message", "request_id"}},
 * all non-empty strings, request_id equal to the X-Request-Id header, a
 * JSON content type, and valid UTF-8 throughout (whatever the client sent).
 */
static void check_error_shape(const mt_resp *r, const char *what)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
	const char *fields[] = {"code", "message", "request_id"};
	char *rid = mt_header(r, "X-Request-Id"), *ct = mt_header(r, "Content-Type");
	size_t i;

	ck_assert_msg(utf8_valid((const unsigned char *)r->body, r->len),
	              "%s: the error body is not valid UTF-8", what);
	ck_assert_msg(cJSON_IsObject(r->json) && cJSON_GetArraySize(r->json) == 1 &&
	                  cJSON_IsObject(e) && cJSON_GetArraySize(e) == 3,
	              "%s: not the error shape: %s", what, r->body);
	for (i = 0; i < 3; i++) {
		const char *s = mk_json_str(e, fields[i]);

		ck_assert_msg(s && *s, "%s: error.%s missing: %s", what, fields[i], r->body);
	}
	ck_assert_msg(rid && strcmp(rid, mk_json_str(e, "request_id")) == 0,
	              "%s: request_id does not match X-Request-Id", what);
	ck_assert_msg(ct && strncmp(ct, "application/json", 16) == 0, "%s: content type %s", what,
	              ct ? ct : "(none)");
	free(rid);
	free(ct);
}

/* Status, error code and shape of an error response. code NULL: any. */
static void check_error(const mt_resp *r, long status, const char *code, const char *what)
{
	ck_assert_msg(r->status == status, "%s: status %ld, want %ld: %s", what, r->status, status,
	              r->body);
	if (code)
		ck_assert_msg(strcmp(mt_error_code(r), code) == 0, "%s: code '%s', want '%s': %s",
		              what, mt_error_code(r), code, r->body);
	check_error_shape(r, what);
}

static void expect(const char *path, const char *const *headers, const char *body, size_t len,
                   long status, const char *code, const char *what)
{
	mt_resp r;

	post(path, headers, body, len, &r);
	check_error(&r, status, code, what);
	mt_resp_release(&r);
}

static void expect_json(const char *path, const char *body, long status, const char *code)
{
	expect(path, json_ct, body, strlen(body), status, code, body);
}

/* A 4xx error with the JSON shape: the answer to input that may be judged either way. */
static void check_client_error(const mt_resp *r, const char *what)
{
	ck_assert_msg(r->status >= 400 && r->status < 500, "%s: status %ld: %s", what, r->status,
	              r->body);
	check_error_shape(r, what);
}

/* Sign up (201 expected); the new user's id into id (may be NULL). */
static void signup(const char *email, const char *pw, char *id, size_t idlen)
{
	cJSON *o = cJSON_CreateObject();
	char *body;
	mt_resp r;

	cJSON_AddStringToObject(o, "email", email);
	cJSON_AddStringToObject(o, "password", pw);
	body = cJSON_PrintUnformatted(o);
	post_json("/auth/signup", body, &r);
	ck_assert_msg(r.status == 201, "signup %s: status %ld: %s", email, r.status, r.body);
	if (id)
		snprintf(id, idlen, "%s", mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	cJSON_free(body);
	cJSON_Delete(o);
}

/* POST /auth/signin with JSON {email, password}; the response into r. */
static void signin_raw(const char *email, const char *pw, mt_resp *r)
{
	cJSON *o = cJSON_CreateObject();
	char *body;

	cJSON_AddStringToObject(o, "email", email);
	cJSON_AddStringToObject(o, "password", pw);
	body = cJSON_PrintUnformatted(o);
	post_json("/auth/signin", body, r);
	cJSON_free(body);
	cJSON_Delete(o);
}

/* Sign in (200 expected); the tokens into access and refresh (either may be NULL). */
static void signin(const char *email, const char *pw, char *access, size_t alen, char *refresh,
                   size_t rlen)
{
	mt_resp r;

	signin_raw(email, pw, &r);
	ck_assert_msg(r.status == 200, "signin %s: status %ld: %s", email, r.status, r.body);
	if (access)
		snprintf(access, alen, "%s", mk_json_str(r.json, "access_token"));
	if (refresh)
		snprintf(refresh, rlen, "%s", mk_json_str(r.json, "refresh_token"));
	mt_resp_release(&r);
}

/* A new account, signed in: its id and tokens. */
static void fresh_user(char *id, size_t idlen, char *access, size_t alen, char *refresh,
                       size_t rlen)
{
	char email[64];

	new_email(email, sizeof(email));
	signup(email, "correct-horse", id, idlen);
	signin(email, "correct-horse", access, alen, refresh, rlen);
}

/* GET /auth/me with an Authorization header value (NULL: none). */
static void me(const char *authz, mt_resp *r)
{
	char *h = NULL;
	const char *hdrs[2] = {NULL, NULL};

	if (authz) {
		size_t n = strlen(authz) + 32;

		h = malloc(n);
		ck_assert_ptr_nonnull(h);
		snprintf(h, n, "Authorization: %s", authz);
		hdrs[0] = h;
	}
	if (mt_http("GET", mt_url(&st, "/auth/me"), hdrs, NULL, 0, r) != 0 && !r->status) {
		free(h);
		mt_resp_release(r);
		check_gateway_alive("GET /auth/me");
		ck_abort_msg("GET /auth/me: no response");
	}
	free(h);
}

/* A 401 from the Bearer guard: the error shape plus a Bearer challenge. */
static void check_denied(const mt_resp *r, const char *what)
{
	char *www = mt_header(r, "WWW-Authenticate");

	ck_assert_msg(r->status == 401, "%s: status %ld: %s", what, r->status, r->body);
	ck_assert_msg(strcmp(mt_error_code(r), "invalid_token") == 0 ||
	                  strcmp(mt_error_code(r), "unauthenticated") == 0,
	              "%s: code '%s'", what, mt_error_code(r));
	check_error_shape(r, what);
	ck_assert_msg(www && strncmp(www, "Bearer ", 7) == 0, "%s: WWW-Authenticate: %s", what,
	              www ? www : "(none)");
	free(www);
}

static void expect_denied(const char *authz, const char *what)
{
	mt_resp r;

	me(authz, &r);
	check_denied(&r, what);
	mt_resp_release(&r);
}

static void expect_me_ok(const char *authz, const char *what)
{
	mt_resp r;

	me(authz, &r);
	ck_assert_msg(r.status == 200, "%s: status %ld: %s", what, r.status, r.body);
	mt_resp_release(&r);
}

/* ------------------------------------------------------------------ tokens */

static void b64url(const unsigned char *in, size_t n, char *out, size_t outlen)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;
		size_t k = n - i < 3 ? n - i : 3;

		if (k > 1)
			v |= (unsigned)in[i + 1] << 8;
		if (k > 2)
			v |= in[i + 2];
		ck_assert(o + 5 < outlen);
		out[o++] = a[v >> 18 & 63];
		out[o++] = a[v >> 12 & 63];
		if (k > 1)
			out[o++] = a[v >> 6 & 63];
		if (k > 2)
			out[o++] = a[v & 63];
	}
	out[o] = '\0';
}

/* A token signed by key for user sub, with issuer iss, audience aud and times iat, exp. */
static char *mint(const mk_jwt_key *key, const char *iss, const char *aud, const char *sub,
                  int64_t iat, int64_t exp)
{
	mk_jwt_claims c;
	char err[160], *t;

	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "%s", sub);
	snprintf(c.role, sizeof(c.role), "user");
	c.iat = iat;
	c.exp = exp;
	t = mk_jwt_sign(key, iss, aud, &c, err, sizeof(err));
	ck_assert_msg(t != NULL, "mk_jwt_sign: %s", err);
	return t;
}

/* The token's header and payload parts ("h.p"), malloc'd. */
static char *signing_input(const char *tok)
{
	const char *dot2 = strrchr(tok, '.');

	ck_assert_ptr_nonnull(dot2);
	return strndup(tok, (size_t)(dot2 - tok));
}

static const char *payload_part(const char *tok)
{
	const char *dot1 = strchr(tok, '.');

	ck_assert_ptr_nonnull(dot1);
	return dot1 + 1;
}

/* ES256 signature of data by pkey, as base64url R || S. */
static void es256(EVP_PKEY *pkey, const char *data, char *out, size_t outlen)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128], rs[64];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *s;
	const BIGNUM *r, *sv;

	ck_assert_ptr_nonnull(md);
	ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey), 1);
	ck_assert_int_eq(
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)data, strlen(data)), 1);
	s = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	ck_assert_ptr_nonnull(s);
	ECDSA_SIG_get0(s, &r, &sv);
	ck_assert_int_eq(BN_bn2binpad(r, rs, 32), 32);
	ck_assert_int_eq(BN_bn2binpad(sv, rs + 32, 32), 32);
	b64url(rs, sizeof(rs), out, outlen);
	ECDSA_SIG_free(s);
	EVP_MD_CTX_free(md);
}

/* Replace a token's header with JSON hdr, keeping payload and (given) signature. */
static char *with_header(const char *tok, const char *hdr, const char *sig)
{
	char h[512], *out;
	size_t n;
	const char *p = payload_part(tok), *pe = strrchr(tok, '.');

	b64url((const unsigned char *)hdr, strlen(hdr), h, sizeof(h));
	n = strlen(h) + strlen(p) + strlen(sig) + 4;
	out = malloc(n);
	ck_assert_ptr_nonnull(out);
	snprintf(out, n, "%s.%.*s.%s", h, (int)(pe - p), p, sig);
	return out;
}

static char *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	mk_buf b;
	char chunk[4096];
	size_t n;

	ck_assert_ptr_nonnull(f);
	mk_buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_int_eq(mk_buf_append(&b, chunk, n), 0);
	fclose(f);
	*len = b.len;
	return mk_buf_steal(&b);
}

static void bearer(char *out, size_t outlen, const char *scheme, const char *tok)
{
	int n = snprintf(out, outlen, "%s %s", scheme, tok);

	ck_assert(n > 0 && (size_t)n < outlen);
}

/* ------------------------------------------------------------------ raw HTTP */

static int raw_open(int timeout_s)
{
	struct sockaddr_in a;
	struct timeval tv = {timeout_s, 0};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)st.port[MT_GATEWAY]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		check_gateway_alive("connect");
		ck_abort_msg("cannot connect to the gateway: %s", strerror(errno));
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Send all of p; 0, or -1 when the peer stopped listening. */
static int raw_send(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t k;

	while (n > 0) {
		k = send(fd, c, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		c += k;
		n -= (size_t)k;
	}
	return 0;
}

enum { RAW_RESPONSE, RAW_CLOSED, RAW_TIMEOUT };

/*
 * Read one response into r (as mt_http would fill it). RAW_RESPONSE when
 * a status line and headers (and the body its Content-Length announces, or
 * what came before the close) arrived; RAW_CLOSED when the server closed
 * without a response; RAW_TIMEOUT when nothing conclusive came within the
 * socket's receive timeout.
 */
static int raw_recv(int fd, mt_resp *r)
{
	mk_buf b;
	char chunk[16384], *hend = NULL;
	size_t hlen = 0, want = 0;
	ssize_t n;
	int rc = RAW_TIMEOUT, eof = 0;

	memset(r, 0, sizeof(*r));
	mk_buf_init(&b, 8 << 20);
	for (;;) {
		n = recv(fd, chunk, sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			eof = 1;
			break;
		}
		ck_assert_int_eq(mk_buf_append(&b, chunk, (size_t)n), 0);
		if (!hend && (hend = strstr(b.data, "\r\n\r\n"))) {
			const char *cl;

			hlen = (size_t)(hend - b.data) + 4;
			cl = strcasestr(b.data, "\r\nContent-Length:");
			want = cl && cl < hend ? strtoul(cl + 17, NULL, 10) : 0;
		}
		if (hend && b.len >= hlen + want)
			break;
		hend = hend ? b.data + hlen - 4 : NULL; /* b.data may have moved */
	}
	if (b.len >= 12 && strncmp(b.data, "HTTP/1.", 7) == 0 && hlen) {
		r->status = strtol(b.data + 9, NULL, 10);
		r->headers = strndup(b.data, hlen);
		r->len = b.len - hlen;
		r->body = strndup(b.data + hlen, r->len);
		r->json = cJSON_ParseWithLength(r->body, r->len);
		rc = RAW_RESPONSE;
	} else if (eof) {
		rc = RAW_CLOSED;
	}
	if (!r->body) {
		r->body = strdup("");
		r->headers = strdup("");
	}
	mk_buf_release(&b);
	return rc;
}

/* Send req on a new connection and read the answer. */
static int raw_exchange(const void *req, size_t len, mt_resp *r)
{
	int fd = raw_open(RAW_WAIT_S), rc;

	raw_send(fd, req, len);
	rc = raw_recv(fd, r);
	close(fd);
	if (rc != RAW_RESPONSE)
		check_gateway_alive("a raw request");
	return rc;
}

/* ------------------------------------------------------------------ 1. fields */

/* For each field, a body with that field missing, null or of each wrong type. */
static void check_field_types(const char *path, const char *const *names, const char *const *values,
                              size_t nfields)
{
	static const char *const bad[] = {NULL,           "null", "42",        "-1.5e999", "[]",
	                                  "[\"a@b.co\"]", "{}",   "{\"a\":1}", "true",     "false"};
	size_t f, b, i;

	for (f = 0; f < nfields; f++) {
		for (b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
			mk_buf body;
			mt_resp r;
			const char *msg;

			mk_buf_init(&body, 0);
			mk_buf_puts(&body, "{");
			for (i = 0; i < nfields; i++) {
				const char *v = i == f ? bad[b] : values[i];

				if (!v)
					continue;
				mk_buf_printf(&body, "%s\"%s\":%s", body.len > 1 ? "," : "",
				              names[i], v);
			}
			mk_buf_puts(&body, "}");
			post_json(path, body.data, &r);
			check_error(&r, 422, "validation_failed", body.data);
			msg = mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message");
			ck_assert_msg(strstr(msg, names[f]) != NULL,
			              "%s: message '%s' does not name '%s'", body.data, msg,
			              names[f]);
			mt_resp_release(&r);
			mk_buf_release(&body);
		}
	}
}

START_TEST(test_signup_rejects_missing_null_and_mistyped_fields)
{
	const char *names[] = {"email", "password", "name"};
	const char *values[] = {"\"typed@example.com\"", "\"correct-horse\"", "\"Typed\""};

	/* name is optional: absent and null are fine, so only the first two get every case. */
	check_field_types("/auth/signup", names, values, 2);
	expect_json("/auth/signup",
	            "{\"email\":\"typed@example.com\",\"password\":\"correct-horse\",\"name\":42}",
	            422, "validation_failed");
	expect_json("/auth/signup",
	            "{\"email\":\"typed@example.com\",\"password\":\"correct-horse\",\"name\":[]}",
	            422, "validation_failed");
	expect_json("/auth/signup",
	            "{\"email\":\"typed@example.com\",\"password\":\"correct-horse\",\"name\":{}}",
	            422, "validation_failed");
	expect_json(
	    "/auth/signup",
	    "{\"email\":\"typed@example.com\",\"password\":\"correct-horse\",\"name\":true}", 422,
	    "validation_failed");
	/* A control character in the display name. */
	expect_json("/auth/signup",
	            "{\"email\":\"typed@example.com\",\"password\":\"correct-horse\",\"name\":"
	            "\"a\\u0007b\"}",
	            422, "validation_failed");
}
END_TEST

START_TEST(test_signin_rejects_missing_null_and_mistyped_fields)
{
	const char *names[] = {"email", "password"};
	const char *values[] = {"\"typed@example.com\"", "\"correct-horse\""};

	check_field_types("/auth/signin", names, values, 2);
}
END_TEST

START_TEST(test_refresh_and_signout_reject_missing_null_and_mistyped_tokens)
{
	const char *names[] = {"refresh_token"};
	const char *values[] = {"\"mrt_x\""};

	check_field_types("/auth/refresh", names, values, 1);
	check_field_types("/auth/signout", names, values, 1);
}
END_TEST

/* A body with no JSON value in it: 400 invalid_json or 422 validation_failed. */
static void expect_empty(const char *path, const char *const *headers, const char *body, size_t len,
                         const char *what)
{
	mt_resp r;

	post(path, headers, body, len, &r);
	ck_assert_msg((r.status == 400 && strcmp(mt_error_code(&r), "invalid_json") == 0) ||
	                  (r.status == 422 && strcmp(mt_error_code(&r), "validation_failed") == 0),
	              "%s: %ld %s", what, r.status, r.body);
	check_error_shape(&r, what);
	mt_resp_release(&r);
}

START_TEST(test_bodies_that_are_not_json_objects_are_rejected_on_every_auth_route)
{
	const char *paths[] = {"/auth/signup", "/auth/signin", "/auth/refresh", "/auth/signout"};
	const char *not_objects[] = {"[]",  "[{\"email\":\"a@b.co\"}]", "\"str\"", "null", "42",
	                             "true"};
	size_t p, i;

	for (p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
		char what[64];

		/* No body at all: not JSON (400), or taken as {} (422), never more. */
		snprintf(what, sizeof(what), "%s empty body", paths[p]);
		expect_empty(paths[p], json_ct, "", 0, what);
		snprintf(what, sizeof(what), "%s no body, no content type", paths[p]);
		expect_empty(paths[p], NULL, NULL, 0, what);
		snprintf(what, sizeof(what), "%s white space", paths[p]);
		expect_empty(paths[p], json_ct, " \r\n\t", 4, what);
		expect_json(paths[p], "{}", 422, "validation_failed");
		for (i = 0; i < sizeof(not_objects) / sizeof(not_objects[0]); i++)
			expect_json(paths[p], not_objects[i], 422, "validation_failed");
	}
}
END_TEST

START_TEST(test_unknown_and_misspelt_fields_are_rejected)
{
	expect_json("/auth/signup",
	            "{\"email\":\"x@example.com\",\"password\":\"correct-horse\",\"admin\":true}",
	            422, "validation_failed");
	expect_json(
	    "/auth/signup",
	    "{\"email\":\"x@example.com\",\"password\":\"correct-horse\",\"role\":\"admin\"}", 422,
	    "validation_failed");
	expect_json("/auth/signup", "{\"Email\":\"x@example.com\",\"password\":\"correct-horse\"}",
	            422, "validation_failed");
	expect_json("/auth/signup",
	            "{\"email\":\"x@example.com\",\"password\":\"correct-horse\",\"client_ip\":\"1."
	            "2.3.4\"}",
	            422, "validation_failed");
	expect_json(
	    "/auth/signin",
	    "{\"email\":\"x@example.com\",\"password\":\"correct-horse\",\"otp\":\"123456\"}", 422,
	    "validation_failed");
	expect_json("/auth/refresh", "{\"refresh_token\":\"mrt_x\",\"grant_type\":\"x\"}", 422,
	            "validation_failed");
	expect_json("/auth/signout", "{\"refresh_token\":\"mrt_x\",\"all\":true}", 422,
	            "validation_failed");
}
END_TEST

/*
 * An unknown field's name is echoed, cut to 64 bytes; the cut must not
 * split a UTF-8 sequence, or the service's reply is not valid JSON to the
 * gateway and the client sees a 500 instead of a 422.
 */
START_TEST(test_an_unknown_field_name_cut_inside_a_utf8_character_is_still_a_422)
{
	char body[256], name[80];
	mt_resp r;

	memset(name, 'k', 63);
	memcpy(name + 63, "\xc3\xa9", 3); /* é straddles bytes 64 and 65 */
	snprintf(body, sizeof(body),
	         "{\"email\":\"x@example.com\",\"password\":\"correct-horse\",\"%s\":1}", name);
	post_json("/auth/signup", body, &r);
	check_error(&r, 422, "validation_failed", "signup with a long non-ASCII field name");
	mt_resp_release(&r);
	post_json("/auth/signin", body, &r);
	check_error(&r, 422, "validation_failed", "signin with a long non-ASCII field name");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_near_miss_paths_and_other_methods_get_the_json_error_shape)
{
	const char *paths[] = {"/auth/signup/",  "/auth/signup/x",  "/AUTH/SIGNUP",
	                       "/auth/sign%75p", "/auth/signup%00", "/auth/signup%ff",
	                       "/auth/%c3%a9",   "/auth/signup;x",  "/auth/me/"};
	const char *methods[] = {"GET", "PUT", "DELETE", "PATCH", "OPTIONS"};
	char url[512], path[300];
	mt_resp r;
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(url, sizeof(url), "%s%s", st.base, paths[i]);
		ck_assert_int_eq(mt_http("POST", url, json_ct, "{}", 2, &r), 0);
		ck_assert_msg(r.status >= 400 && r.status < 500, "%s: %ld %s", paths[i], r.status,
		              r.body);
		check_error_shape(&r, paths[i]);
		mt_resp_release(&r);
	}
	/* A path echoed in the message, cut inside a two-byte character. */
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	snprintf(path + 199, sizeof(path) - 199, "%%c3%%a9");
	snprintf(url, sizeof(url), "%s%s", st.base, path);
	ck_assert_int_eq(mt_http("GET", url, NULL, NULL, 0, &r), 0);
	check_error(&r, 404, "not_found", "a long non-ASCII path");
	mt_resp_release(&r);
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		char *allow;

		ck_assert_int_eq(
		    mt_http(methods[i], mt_url(&st, "/auth/signin"), json_ct, "{}", 2, &r), 0);
		check_error(&r, 405, "method_not_allowed", methods[i]);
		allow = mt_header(&r, "Allow");
		ck_assert_msg(allow && strcmp(allow, "POST") == 0, "%s: Allow %s", methods[i],
		              allow ? allow : "(none)");
		free(allow);
		mt_resp_release(&r);
	}
	ck_assert_int_eq(mt_http("POST", mt_url(&st, "/auth/me"), json_ct, "{}", 2, &r), 0);
	check_error(&r, 405, "method_not_allowed", "POST /auth/me");
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ 2. malformed JSON */

START_TEST(test_malformed_json_is_400_on_every_auth_route)
{
	const char *paths[] = {"/auth/signup", "/auth/signin", "/auth/refresh", "/auth/signout"};
	const char *bad[] = {
	    "{\"email\":\"a@b.co\",\"pass",
	    "{\"email\":\"a@b.co\",\"password\":",
	    "{",
	    "{\"a\":1} x",
	    "{\"a\":1}{\"b\":2}",
	    "{\"a\":1}]",
	    "{'email':'a@b.co','password':'correct-horse'}",
	    "{/* c */\"email\":\"a@b.co\"}",
	    "// c\n{\"email\":\"a@b.co\"}",
	    "{\"email\":NaN}",
	    "{\"email\":Infinity}",
	    "{\"email\":-nan}",
	    "{\"email\":\"a@b.co\",}",
	    "{email:\"a@b.co\"}",
	    "{\"email\" \"a@b.co\"}",
	    "{\"email\":\"a@b.co\"",
	    "{\"email\":\"unterminated}",
	    "{\"email\":\"bad escape \\x41\"}",
	    "{\"email\":\"short escape \\u12\"}",
	    "email=a@b.co&password=correct-horse",
	    "\x01\x02\x03",
	};
	size_t p, i;

	for (p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			expect_json(paths[p], bad[i], 400, "invalid_json");
}
END_TEST

START_TEST(test_duplicate_json_keys_never_cause_a_server_error)
{
	char e1[64], e2[64], body[512];
	const char *got;
	mt_resp r;

	new_email(e1, sizeof(e1));
	new_email(e2, sizeof(e2));
	snprintf(body, sizeof(body),
	         "{\"email\":\"%s\",\"email\":\"%s\",\"password\":\"correct-horse\"}", e1, e2);
	post_json("/auth/signup", body, &r);
	ck_assert_msg(r.status == 201 || r.status == 400 || r.status == 422, "%s: %ld %s", body,
	              r.status, r.body);
	if (r.status == 201) {
		/* Whichever copy won, it is one of the two and it signs in. */
		got = mk_json_str(r.json, "email");
		ck_assert(strcmp(got, e1) == 0 || strcmp(got, e2) == 0);
		signin(got, "correct-horse", NULL, 0, NULL, 0);
	} else {
		check_error_shape(&r, body);
	}
	mt_resp_release(&r);

	snprintf(body, sizeof(body),
	         "{\"email\":\"%s\",\"email\":42,\"password\":\"correct-horse\"}", e1);
	post_json("/auth/signup", body, &r);
	ck_assert_msg(r.status >= 400 && r.status < 500, "%s: %ld %s", body, r.status, r.body);
	check_error_shape(&r, body);
	mt_resp_release(&r);

	snprintf(body, sizeof(body),
	         "{\"email\":\"%s\",\"password\":\"wrong-horse\",\"password\":\"correct-horse\"}",
	         e1);
	post_json("/auth/signin", body, &r);
	ck_assert_msg(r.status < 500, "%s: %ld %s", body, r.status, r.body);
	if (r.status != 200)
		check_error_shape(&r, body);
	mt_resp_release(&r);
}
END_TEST

static char *nested(size_t depth, const char *open, const char *close)
{
	mk_buf b;
	size_t i;

	mk_buf_init(&b, 0);
	for (i = 0; i < depth; i++)
		mk_buf_puts(&b, open);
	for (i = 0; close && i < depth; i++)
		mk_buf_puts(&b, close);
	return mk_buf_steal(&b);
}

START_TEST(test_deeply_nested_json_is_400_not_a_crash)
{
	const char *paths[] = {"/auth/signup", "/auth/signin", "/auth/refresh"};
	char *bodies[5], *inner;
	size_t p, i;
	mk_buf b;

	bodies[0] = nested(10000, "[", NULL);
	bodies[1] = nested(10000, "[", "]");
	bodies[2] = nested(10000, "{\"a\":", NULL);
	bodies[3] = nested(100, "[", "]"); /* parses, but deeper than the limit */
	/* Too deep inside an otherwise valid object. */
	inner = nested(200, "[", "]");
	mk_buf_init(&b, 0);
	mk_buf_printf(&b, "{\"email\":\"a@b.co\",\"password\":\"correct-horse\",\"name\":%s}",
	              inner);
	bodies[4] = mk_buf_steal(&b);
	free(inner);
	for (p = 0; p < sizeof(paths) / sizeof(paths[0]); p++)
		for (i = 0; i < 5; i++)
			expect(paths[p], json_ct, bodies[i], strlen(bodies[i]), 400, "invalid_json",
			       bodies[i] == bodies[4] ? "deep inside an object" : "deep nesting");
	for (i = 0; i < 5; i++)
		free(bodies[i]);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

START_TEST(test_invalid_utf8_nul_and_lone_surrogates_in_strings_are_400)
{
	const char *bad_pw[] = {
	    "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", /* not UTF-8 at all */
	    "password\xc0\xaf",                 /* overlong '/' */
	    "password\xc0\x80",                 /* overlong NUL */
	    "password\xe2\x82",                 /* truncated sequence */
	    "password\xed\xa0\x80",             /* an encoded surrogate */
	    "password\xf4\x90\x80\x80",         /* past U+10FFFF */
	    "password\x80",                     /* a lone continuation byte */
	    "pass\\u0000word",                  /* NUL escape */
	    "\\u0000",
	    "password\\ud800",        /* lone high surrogate at the end */
	    "pass\\ud800word",        /* lone high surrogate inside */
	    "password\\udc00",        /* lone low surrogate */
	    "password\\ud800\\u0041", /* high surrogate followed by a non-surrogate */
	    "password\\udc00\\ud800", /* reversed pair */
	};
	const char *paths[] = {"/auth/signup", "/auth/signin"};
	char body[256];
	size_t p, i;

	for (p = 0; p < 2; p++) {
		for (i = 0; i < sizeof(bad_pw) / sizeof(bad_pw[0]); i++) {
			snprintf(body, sizeof(body),
			         "{\"email\":\"u8@example.com\",\"password\":\"%s\"}", bad_pw[i]);
			expect(paths[p], json_ct, body, strlen(body), 400, "invalid_json", body);
			snprintf(body, sizeof(body),
			         "{\"email\":\"u8%s@example.com\",\"password\":\"x\"}", bad_pw[i]);
			expect(paths[p], json_ct, body, strlen(body), 400, "invalid_json", body);
		}
		/* A raw NUL byte anywhere in the body. */
		expect(paths[p], json_ct, "{\"email\":\"a\0b@example.com\",\"password\":\"x\"}", 42,
		       400, "invalid_json", "raw NUL");
	}
	/* Control: a proper surrogate pair is a character like any other. */
	{
		char email[64];
		mt_resp r;

		new_email(email, sizeof(email));
		snprintf(body, sizeof(body),
		         "{\"email\":\"%s\",\"password\":\"smile\\ud83d\\ude00!!\"}", email);
		post_json("/auth/signup", body, &r);
		ck_assert_msg(r.status == 201, "surrogate pair: %ld %s", r.status, r.body);
		mt_resp_release(&r);
		signin(email, "smile\xf0\x9f\x98\x80!!", NULL, 0, NULL, 0);
	}
}
END_TEST

/* ------------------------------------------------------------------ 3. size */

/* A signup body of exactly len bytes: a valid object with a long password. */
static char *sized_body(size_t len)
{
	const char *head = "{\"email\":\"big@example.com\",\"password\":\"", *tail = "\"}";
	size_t h = strlen(head), t = strlen(tail);
	char *b = malloc(len + 1);

	ck_assert(len > h + t);
	ck_assert_ptr_nonnull(b);
	memcpy(b, head, h);
	memset(b + h, 'a', len - h - t);
	memcpy(b + len - t, tail, t);
	b[len] = '\0';
	return b;
}

START_TEST(test_a_body_over_the_limit_is_413_and_one_at_the_limit_is_read)
{
	char *b;

	b = sized_body(2 * MAX_BODY);
	expect("/auth/signup", json_ct, b, strlen(b), 413, "too_large", "2 MiB signup");
	expect("/auth/signin", json_ct, b, strlen(b), 413, "too_large", "2 MiB signin");
	free(b);
	b = sized_body(MAX_BODY + 1);
	expect("/auth/signup", json_ct, b, strlen(b), 413, "too_large", "limit + 1");
	free(b);
	/* Exactly the limit is read and judged on its fields: the password is too long. */
	b = sized_body(MAX_BODY);
	expect("/auth/signup", json_ct, b, strlen(b), 422, "validation_failed", "at the limit");
	expect("/auth/signin", json_ct, b, strlen(b), 422, "validation_failed", "at the limit");
	free(b);
}
END_TEST

static const char chunked_head[] = "POST /auth/signup HTTP/1.1\r\n"
                                   "Host: 127.0.0.1\r\n"
                                   "Content-Type: application/json\r\n"
                                   "Transfer-Encoding: chunked\r\n"
                                   "\r\n";

START_TEST(test_a_chunked_body_over_the_limit_is_413)
{
	static char chunk[65536 + 16];
	size_t sent = 0, n;
	struct pollfd pf;
	mt_resp r;
	int fd = raw_open(RAW_WAIT_S), rc;

	ck_assert_int_eq(raw_send(fd, chunked_head, strlen(chunked_head)), 0);
	n = (size_t)snprintf(chunk, sizeof(chunk), "10000\r\n");
	memset(chunk + n, 'a', 65536);
	memcpy(chunk + n + 65536, "\r\n", 2);
	n += 65536 + 2;
	/* Up to 3 MiB, stopping as soon as the server answers. */
	while (sent < 3 * (size_t)MAX_BODY) {
		pf.fd = fd;
		pf.events = POLLIN;
		if (poll(&pf, 1, 0) > 0 || raw_send(fd, chunk, n) != 0)
			break;
		sent += 65536;
	}
	if (sent >= 3 * (size_t)MAX_BODY)
		raw_send(fd, "0\r\n\r\n", 5);
	rc = raw_recv(fd, &r);
	close(fd);
	ck_assert_msg(rc == RAW_RESPONSE, "no response to an oversized chunked body (rc %d)", rc);
	check_error(&r, 413, "too_large", "oversized chunked body");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_chunked_body_under_the_limit_is_served)
{
	char email[64], body[256], req[1024];
	mt_resp r;
	int n, len;

	new_email(email, sizeof(email));
	len = snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}",
	               email);
	/* Two chunks, the split inside a string. */
	n = snprintf(req, sizeof(req), "%s%x\r\n%.10s\r\n%x\r\n%s\r\n0\r\n\r\n", chunked_head, 10,
	             body, len - 10, body + 10);
	ck_assert_int_eq(raw_exchange(req, (size_t)n, &r), RAW_RESPONSE);
	ck_assert_msg(r.status == 201, "chunked signup: %ld %s", r.status, r.body);
	mt_resp_release(&r);
	signin(email, "correct-horse", NULL, 0, NULL, 0);
}
END_TEST

START_TEST(test_garbage_on_the_wire_gets_a_json_error_or_a_close)
{
	static const char *const garbage[] = {
	    "GARBAGE\r\n\r\n",
	    "this is not http at all\r\n\r\n",
	    "POST /auth/signin HTTP/9.9\r\nHost: x\r\n\r\n",
	    "POST  HTTP/1.1\r\nHost: x\r\n\r\n",
	    "POST /auth/signin HTTP/1.1\r\nHost x\r\n\r\n",
	    "POST /auth/signin HTTP/1.1\r\n: empty-name\r\n\r\n",
	    "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", /* a TLS ClientHello */
	};
	size_t i;

	for (i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		mt_resp r;
		int rc = raw_exchange(garbage[i], strlen(garbage[i]), &r);

		ck_assert_msg(rc != RAW_TIMEOUT, "garbage %zu: no answer and no close", i);
		if (rc == RAW_RESPONSE) {
			ck_assert_msg(r.status >= 400 && r.status < 500, "garbage %zu: %ld %s", i,
			              r.status, r.body);
			check_error_shape(&r, garbage[i]);
		}
		mt_resp_release(&r);
	}
	/* The request line proper: garbage there must be answered, with our shape. */
	{
		mt_resp r;

		ck_assert_int_eq(raw_exchange("GARBAGE\r\n\r\n", 11, &r), RAW_RESPONSE);
		check_client_error(&r, "GARBAGE request line");
		mt_resp_release(&r);
	}
}
END_TEST

START_TEST(test_a_negative_or_overflowing_content_length_gets_a_json_error)
{
	static const char *const lengths[] = {
	    "-1", "99999999999999999999", "18446744073709551616", "1e3", "0x10", "12, 13", ""};
	size_t i;

	for (i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
		char req[512];
		mt_resp r;
		int n, rc;

		n = snprintf(req, sizeof(req),
		             "POST /auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: "
		             "application/json\r\nContent-Length: %s\r\n\r\n{\"a\":1}             ",
		             lengths[i]);
		rc = raw_exchange(req, (size_t)n, &r);
		ck_assert_msg(rc == RAW_RESPONSE, "Content-Length '%s': no response (rc %d)",
		              lengths[i], rc);
		check_client_error(&r, lengths[i]);
		mt_resp_release(&r);
	}
}
END_TEST

/*
 * A request that announces more body than it sends: a complete, valid
 * sign-up object, then nothing more. It must never be taken for the whole
 * request, and the server must not wait for the rest much longer than its
 * request timeout (GATEWAY_REQUEST_TIMEOUT, REQUEST_TIMEOUT_S here).
 */
static void send_short_body(int fd, char *email, size_t emaillen)
{
	char body[256], req[512];
	int n;

	new_email(email, emaillen);
	n = snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}",
	             email);
	n = snprintf(req, sizeof(req),
	             "POST /auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
	             "Content-Length: %d\r\n\r\n%s",
	             n + 50, body);
	ck_assert_int_eq(raw_send(fd, req, (size_t)n), 0);
}

START_TEST(test_a_body_shorter_than_its_content_length_is_answered_or_closed)
{
	struct timeval longer = {90, 0};
	char email[64];
	mt_resp r;
	int fd, rc, late = 0;

	/* First half-closed: the server sees the end of the stream. */
	fd = raw_open(RAW_WAIT_S);
	send_short_body(fd, email, sizeof(email));
	shutdown(fd, SHUT_WR);
	rc = raw_recv(fd, &r);
	close(fd);
	ck_assert_msg(rc != RAW_TIMEOUT, "a half-closed short body was left hanging");
	if (rc == RAW_RESPONSE)
		check_client_error(&r, "half-closed short body");
	mt_resp_release(&r);

	/* Then left open: the request timeout must end it, with an error. */
	fd = raw_open(RAW_WAIT_S);
	send_short_body(fd, email, sizeof(email));
	rc = raw_recv(fd, &r);
	if (rc == RAW_TIMEOUT) {
		/* Late; wait on to see what the answer is. */
		late = 1;
		mt_resp_release(&r);
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &longer, sizeof(longer));
		rc = raw_recv(fd, &r);
	}
	close(fd);
	ck_assert_msg(rc != RAW_TIMEOUT, "a short body on an open connection hung for %d s",
	              RAW_WAIT_S + (int)longer.tv_sec);
	if (rc == RAW_RESPONSE) {
		ck_assert_msg(r.status != 201,
		              "a truncated body was served as a whole request: %ld %s", r.status,
		              r.body);
		check_client_error(&r, "stalled short body");
	}
	ck_assert_msg(!late,
	              "a stalled request was answered (%ld) or closed only after more than %d s "
	              "(the request timeout is %d s)",
	              r.status, RAW_WAIT_S, REQUEST_TIMEOUT_S);
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ 4. emails */

START_TEST(test_malformed_emails_are_422)
{
	char body[1024], longer[300];
	const char *bad[] = {"",
	                     "   ",
	                     "no-at-sign.example.com",
	                     "two@@example.com",
	                     "a@b@example.com",
	                     "@example.com",
	                     "name@",
	                     "name@example",
	                     "name@.com",
	                     "name@example.",
	                     "name@example..com",
	                     "with space@example.com",
	                     "name@exa mple.com",
	                     "tab\\there@example.com",
	                     "new\\nline@example.com",
	                     "quote\\\"d@example.com",
	                     "<angle>@example.com",
	                     "semi;colon@example.com",
	                     "name@example.com\\u0001",
	                     "a,b@example.com",
	                     "(comment)name@example.com",
	                     "back\\\\slash@example.com",
	                     longer};
	size_t i;

	/* 255 characters: 64 + '@' + 190 */
	memset(longer, 'a', 64);
	longer[64] = '@';
	memset(longer + 65, 'b', 186);
	memcpy(longer + 251, ".com", 5);
	ck_assert_uint_eq(strlen(longer), 255);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}",
		         bad[i]);
		expect_json("/auth/signup", body, 422, "validation_failed");
	}
	/* A local part over 64 characters. */
	memset(longer, 'a', 65);
	snprintf(longer + 65, sizeof(longer) - 65, "@example.com");
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}", longer);
	expect_json("/auth/signup", body, 422, "validation_failed");
}
END_TEST

START_TEST(test_emails_are_trimmed_and_lower_cased_and_case_duplicates_conflict)
{
	char email[64], upper[64], padded[80], body[256];
	mt_resp r;
	size_t i;

	new_email(email, sizeof(email));
	for (i = 0; email[i]; i++)
		upper[i] = (char)(email[i] >= 'a' && email[i] <= 'z' ? email[i] - 32 : email[i]);
	upper[i] = '\0';
	snprintf(padded, sizeof(padded), "  %s \t", upper);
	snprintf(body, sizeof(body), "{\"email\":\"  %s \\t\",\"password\":\"correct-horse\"}",
	         upper);
	post_json("/auth/signup", body, &r);
	ck_assert_msg(r.status == 201, "%s: %ld %s", body, r.status, r.body);
	ck_assert_str_eq(mk_json_str(r.json, "email"), email);
	mt_resp_release(&r);

	signin(email, "correct-horse", NULL, 0, NULL, 0);
	signin(upper, "correct-horse", NULL, 0, NULL, 0);
	signin(padded, "correct-horse", NULL, 0, NULL, 0);

	/* The same address in other spellings is taken. */
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}", email);
	expect_json("/auth/signup", body, 409, "conflict");
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"other-horse\"}", upper);
	expect_json("/auth/signup", body, 409, "conflict");
	snprintf(body, sizeof(body), "{\"email\":\" %s\",\"password\":\"other-horse\"}", email);
	expect_json("/auth/signup", body, 409, "conflict");
}
END_TEST

START_TEST(test_a_unicode_email_is_handled_consistently)
{
	char email[96], body[256];
	mt_resp r;

	snprintf(email, sizeof(email), "\xc3\xa4\x64\xc3\xa4%d@ex\xc3\xa4mple.com", (int)getpid());
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}", email);
	post_json("/auth/signup", body, &r);
	ck_assert_msg(r.status == 201 || r.status == 422, "%ld %s", r.status, r.body);
	if (r.status == 201) {
		ck_assert_str_eq(mk_json_str(r.json, "email"), email);
		mt_resp_release(&r);
		signin(email, "correct-horse", NULL, 0, NULL, 0);
		expect_json("/auth/signup", body, 409, "conflict");
		/* The same address with the characters escaped is the same address. */
		snprintf(body, sizeof(body),
		         "{\"email\":\"\\u00e4d\\u00e4%d@ex\\u00e4mple.com\",\"password\":\"x-"
		         "horse-2\"}",
		         (int)getpid());
		expect_json("/auth/signup", body, 409, "conflict");
	} else {
		check_error_shape(&r, body);
		mt_resp_release(&r);
	}
}
END_TEST

/* ------------------------------------------------------------------ 5. passwords */

START_TEST(test_password_length_is_counted_in_characters_and_capped_in_bytes)
{
	char email[64], pw[1100];
	cJSON *o;
	char *body;

	new_email(email, sizeof(email));
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email", email);
	cJSON_AddStringToObject(o, "password", "1234567");
	body = cJSON_PrintUnformatted(o);
	expect_json("/auth/signup", body, 422, "validation_failed");
	cJSON_free(body);
	/* 7 characters in 13 bytes is still too short. */
	cJSON_ReplaceItemInObject(o, "password",
	                          cJSON_CreateString("\xd0\xbf\xd0\xb0\xd1\x80"
	                                             "\xd0\xbe\xd0\xbb\xd1\x8c"
	                                             "1"));
	body = cJSON_PrintUnformatted(o);
	expect_json("/auth/signup", body, 422, "validation_failed");
	cJSON_free(body);
	cJSON_Delete(o);

	/* "пароль12": 8 characters in 14 bytes. */
	signup(email,
	       "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c"
	       "12",
	       NULL, 0);
	signin(email,
	       "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c"
	       "12",
	       NULL, 0, NULL, 0);

	/* Exactly 1024 bytes is accepted, and signs in. */
	new_email(email, sizeof(email));
	memset(pw, 'p', 1024);
	pw[1024] = '\0';
	signup(email, pw, NULL, 0);
	signin(email, pw, NULL, 0, NULL, 0);

	/* 1025 bytes is not, at sign-up nor at sign-in. */
	new_email(email, sizeof(email));
	memset(pw, 'p', 1025);
	pw[1025] = '\0';
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "email", email);
	cJSON_AddStringToObject(o, "password", pw);
	body = cJSON_PrintUnformatted(o);
	expect_json("/auth/signup", body, 422, "validation_failed");
	expect_json("/auth/signin", body, 422, "validation_failed");
	cJSON_free(body);
	/* 1023 bytes of ASCII plus a 2-byte character: 1025 bytes. */
	memset(pw, 'p', 1023);
	memcpy(pw + 1023, "\xc3\xa9", 3);
	cJSON_ReplaceItemInObject(o, "password", cJSON_CreateString(pw));
	body = cJSON_PrintUnformatted(o);
	expect_json("/auth/signup", body, 422, "validation_failed");
	cJSON_free(body);
	cJSON_Delete(o);
}
END_TEST

/* ------------------------------------------------------------------ 6. a race */

typedef struct {
	const char *url, *body;
	long status;
	char code[32];
	pthread_barrier_t *go;
} race_job;

static void *race_one(void *arg)
{
	race_job *j = arg;
	mt_resp r;

	pthread_barrier_wait(j->go);
	if (mt_http("POST", j->url, json_ct, j->body, strlen(j->body), &r) == 0) {
		j->status = r.status;
		snprintf(j->code, sizeof(j->code), "%s", mt_error_code(&r));
	}
	mt_resp_release(&r);
	return NULL;
}

START_TEST(test_sixteen_concurrent_signups_of_one_email_create_exactly_one_account)
{
	enum { N = 16 };
	pthread_t th[N];
	race_job jobs[N];
	pthread_barrier_t go;
	char email[64], body[256], url[128];
	int i, created = 0, conflicts = 0;

	new_email(email, sizeof(email));
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"correct-horse\"}", email);
	snprintf(url, sizeof(url), "%s/auth/signup", st.base);
	pthread_barrier_init(&go, NULL, N);
	for (i = 0; i < N; i++) {
		memset(&jobs[i], 0, sizeof(jobs[i]));
		jobs[i].url = url;
		jobs[i].body = body;
		jobs[i].go = &go;
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_one, &jobs[i]), 0);
	}
	for (i = 0; i < N; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&go);
	for (i = 0; i < N; i++) {
		ck_assert_msg(jobs[i].status == 201 || jobs[i].status == 409,
		              "racer %d: status %ld (%s)", i, jobs[i].status, jobs[i].code);
		created += jobs[i].status == 201;
		conflicts += jobs[i].status == 409 && strcmp(jobs[i].code, "conflict") == 0;
	}
	ck_assert_int_eq(created, 1);
	ck_assert_int_eq(conflicts, N - 1);
	signin(email, "correct-horse", NULL, 0, NULL, 0);
}
END_TEST

/* ------------------------------------------------------------------ 7. tokens */

START_TEST(test_me_without_a_usable_authorization_header_is_401)
{
	char *huge = malloc(5001 + 8);
	char dotted[5200];

	ck_assert_ptr_nonnull(huge);
	expect_denied(NULL, "no header");
	expect_denied("Bearer", "Bearer alone");
	expect_denied("Bearer ", "Bearer and a space");
	expect_denied("Bearer      ", "Bearer and spaces");
	expect_denied("Basic YWxpY2U6c2VjcmV0", "Basic");
	expect_denied("Digest username=\"a\"", "Digest");
	expect_denied("Bearerxyz", "no space after the scheme");
	expect_denied("Bearer a.b", "two parts");
	expect_denied("Bearer a.b.c.d", "four parts");
	expect_denied("Bearer ..", "empty parts");
	expect_denied("Bearer !!!.???.***", "not base64url");
	expect_denied("Bearer eyJhbGciOiJFUzI1NiJ9.e30=.c2ln", "padded base64");
	expect_denied("Bearer null", "null");
	/* 5000 bytes: a plain run, and one shaped like a token. */
	snprintf(huge, 5009, "Bearer ");
	memset(huge + 7, 'A', 5000);
	huge[5007] = '\0';
	expect_denied(huge, "5000-byte token");
	memset(dotted, 'A', sizeof(dotted));
	memcpy(dotted, "Bearer ", 7);
	dotted[7 + 1600] = '.';
	dotted[7 + 3200] = '.';
	dotted[7 + 5000] = '\0';
	expect_denied(dotted, "5000-byte three-part token");
	free(huge);
}
END_TEST

START_TEST(test_the_bearer_scheme_is_case_insensitive)
{
	char access[2048], h[2100];

	fresh_user(NULL, 0, access, sizeof(access), NULL, 0);
	bearer(h, sizeof(h), "Bearer", access);
	expect_me_ok(h, "Bearer");
	bearer(h, sizeof(h), "bearer", access);
	expect_me_ok(h, "bearer");
	bearer(h, sizeof(h), "BEARER", access);
	expect_me_ok(h, "BEARER");
	bearer(h, sizeof(h), "bEaReR ", access); /* two spaces */
	expect_me_ok(h, "bEaReR and two spaces");
}
END_TEST

START_TEST(test_a_token_changed_by_one_character_is_401)
{
	char access[2048], t[2048], h[2100];
	const char *pay;
	size_t i, n, pstart, sstart;

	fresh_user(NULL, 0, access, sizeof(access), NULL, 0);
	n = strlen(access);
	pay = payload_part(access);
	pstart = (size_t)(pay - access);
	sstart = (size_t)(strrchr(access, '.') - access) + 1;
	/* One character each in the header, the payload and the signature: the
	 * first, the middle and the last of each part. */
	{
		size_t at[] = {
		    0,          pstart / 2, pstart - 2,       pstart, (pstart + sstart) / 2,
		    sstart - 2, sstart,     (sstart + n) / 2, n - 1};

		for (i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
			memcpy(t, access, n + 1);
			t[at[i]] = t[at[i]] == 'A' ? 'B' : 'A';
			bearer(h, sizeof(h), "Bearer", t);
			expect_denied(h, "one character changed");
		}
	}
	/* Truncated, extended, and with the parts swapped. */
	memcpy(t, access, n + 1);
	t[n - 1] = '\0';
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "last character dropped");
	snprintf(t, sizeof(t), "%sA", access);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "a character appended");
	snprintf(t, sizeof(t), "%s.", access);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "a trailing dot");
	/* The untouched token still works. */
	bearer(h, sizeof(h), "Bearer", access);
	expect_me_ok(h, "the original token");
}
END_TEST

START_TEST(test_a_token_claiming_another_algorithm_is_401)
{
	char access[2048], h[2400], sig[256], hdr[256];
	const char *kid = mk_jwt_key_id(signer);
	const char *algs[] = {"none",  "None",  "NONE", "HS256", "RS256",
	                      "ES384", "PS256", "",     "es256"};
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *pem, *input, *forged;
	size_t i, pemlen;

	fresh_user(NULL, 0, access, sizeof(access), NULL, 0);
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		/* The header changed by hand; payload and signature kept. */
		snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
		         algs[i], kid);
		forged = with_header(access, hdr, strrchr(access, '.') + 1);
		bearer(h, sizeof(h), "Bearer", forged);
		expect_denied(h, algs[i]);
		free(forged);
		/* And with no signature at all. */
		forged = with_header(access, hdr, "");
		bearer(h, sizeof(h), "Bearer", forged);
		expect_denied(h, "no signature");
		free(forged);
	}
	/* alg none without a kid, as such attacks usually come. */
	forged = with_header(access, "{\"alg\":\"none\",\"typ\":\"JWT\"}", "");
	bearer(h, sizeof(h), "Bearer", forged);
	expect_denied(h, "alg none without kid");
	free(forged);
	/* alg missing, alg not a string, and a duplicated alg. */
	snprintf(hdr, sizeof(hdr), "{\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	forged = with_header(access, hdr, strrchr(access, '.') + 1);
	bearer(h, sizeof(h), "Bearer", forged);
	expect_denied(h, "no alg");
	free(forged);
	snprintf(hdr, sizeof(hdr), "{\"alg\":[\"ES256\"],\"kid\":\"%s\"}", kid);
	forged = with_header(access, hdr, strrchr(access, '.') + 1);
	bearer(h, sizeof(h), "Bearer", forged);
	expect_denied(h, "alg array");
	free(forged);

	/*
	 * The classic confusion: HS256, MACed with the public key's PEM text
	 * as the secret. The signature is genuinely valid for HS256 there.
	 */
	pem = read_all(st.key_pub, &pemlen);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	forged = with_header(access, hdr, "x");
	input = signing_input(forged);
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), pem, (int)pemlen, (const unsigned char *)input,
	                           strlen(input), mac, &maclen));
	b64url(mac, maclen, sig, sizeof(sig));
	snprintf(h, sizeof(h), "Bearer %s.%s", input, sig);
	expect_denied(h, "HS256 with the public key as secret");
	free(forged);
	free(input);
	free(pem);
}
END_TEST

START_TEST(test_a_token_signed_by_another_key_is_401)
{
	char id[64], access[2048], h[2400], sig[256], hdr[256], priv[256], pub[256], err[160];
	const char *kid = mk_jwt_key_id(signer);
	mk_jwt_key *other;
	EVP_PKEY *opk;
	FILE *f;
	char *t, *forged, *input;
	time_t now = time(NULL);

	fresh_user(id, sizeof(id), access, sizeof(access), NULL, 0);
	snprintf(priv, sizeof(priv), "%s-other-private.pem", st.key_priv);
	snprintf(pub, sizeof(pub), "%s-other-public.pem", st.key_priv);
	ck_assert_int_eq(mt_keygen(priv, pub), 0);
	other = mk_jwt_key_load(priv, err, sizeof(err));
	ck_assert_msg(other != NULL, "%s", err);

	/* Signed by the other key, naming it: an unknown key id. */
	t = mint(other, "mark", "mark-api", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "another key, its own kid");

	/* Signed by the other key but claiming the stack's key id. */
	f = fopen(priv, "r");
	ck_assert_ptr_nonnull(f);
	opk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	ck_assert_ptr_nonnull(opk);
	snprintf(hdr, sizeof(hdr), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}", kid);
	forged = with_header(t, hdr, "x");
	input = signing_input(forged);
	es256(opk, input, sig, sizeof(sig));
	snprintf(h, sizeof(h), "Bearer %s.%s", input, sig);
	expect_denied(h, "another key, the stack's kid");
	/* The same construction with the stack's own key passes: the forgery
	 * above failed for its key alone. */
	{
		EVP_PKEY *own;

		f = fopen(st.key_priv, "r");
		ck_assert_ptr_nonnull(f);
		own = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
		ck_assert_ptr_nonnull(own);
		es256(own, input, sig, sizeof(sig));
		snprintf(h, sizeof(h), "Bearer %s.%s", input, sig);
		expect_me_ok(h, "hand-signed with the stack's key");
		EVP_PKEY_free(own);
	}
	/* A header that carries its own key (jwk) alongside the stack's kid. */
	snprintf(hdr, sizeof(hdr),
	         "{\"alg\":\"ES256\",\"kid\":\"%s\",\"jwk\":{\"kty\":\"EC\",\"crv\":\"P-256\"}}",
	         kid);
	free(forged);
	free(input);
	forged = with_header(t, hdr, "x");
	input = signing_input(forged);
	es256(opk, input, sig, sizeof(sig));
	snprintf(h, sizeof(h), "Bearer %s.%s", input, sig);
	expect_denied(h, "an embedded jwk");

	EVP_PKEY_free(opk);
	free(forged);
	free(input);
	free(t);
	mk_jwt_key_free(other);
	unlink(priv);
	unlink(pub);
}
END_TEST

START_TEST(test_expired_and_wrong_issuer_or_audience_tokens_are_401)
{
	char id[64], h[2400];
	time_t now = time(NULL);
	char *t;

	fresh_user(id, sizeof(id), NULL, 0, NULL, 0);
	/* Control: a token minted here, with the right claims, works. */
	t = mint(signer, "mark", "mark-api", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_me_ok(h, "minted token");
	free(t);

	t = mint(signer, "mark", "mark-api", id, now - 3600, now - 120); /* past the 30 s leeway */
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "expired");
	free(t);
	t = mint(signer, "mark", "mark-api", id, now + 3600, now + 7200); /* issued in the future */
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "issued in the future");
	free(t);
	t = mint(signer, "evil", "mark-api", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "wrong issuer");
	free(t);
	t = mint(signer, "mark ", "mark-api", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "issuer with a trailing space");
	free(t);
	t = mint(signer, "mark", "other-api", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "wrong audience");
	free(t);
	t = mint(signer, "mark", "MARK-API", id, now, now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "audience in other case");
	free(t);
	/* A well-signed token for a user that does not exist. */
	t = mint(signer, "mark", "mark-api", "00000000-0000-4000-8000-000000000000", now,
	         now + 600);
	bearer(h, sizeof(h), "Bearer", t);
	expect_denied(h, "no such user");
	free(t);
}
END_TEST

START_TEST(test_control_characters_in_the_authorization_header_never_pass)
{
	char access[2048], req[4096];
	const char *inject[] = {"\x00", "\x01", "\x7f", "\x1b[2J", "\t", "\r"};
	size_t i, half;

	fresh_user(NULL, 0, access, sizeof(access), NULL, 0);
	half = strlen(access) / 2;
	for (i = 0; i < sizeof(inject) / sizeof(inject[0]); i++) {
		size_t ilen = i == 0 ? 1 : strlen(inject[i]);
		mt_resp r;
		int n, rc;

		/* The valid token with the byte(s) spliced into its middle. */
		n = snprintf(req, sizeof(req),
		             "GET /auth/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %.*s",
		             (int)half, access);
		memcpy(req + n, inject[i], ilen);
		n += (int)ilen;
		n += snprintf(req + n, sizeof(req) - (size_t)n, "%s\r\nConnection: close\r\n\r\n",
		              access + half);
		rc = raw_exchange(req, (size_t)n, &r);
		ck_assert_msg(rc != RAW_TIMEOUT, "control byte %zu: no answer", i);
		if (rc == RAW_RESPONSE) {
			ck_assert_msg(r.status == 400 || r.status == 401,
			              "control byte %zu: %ld %s", i, r.status, r.body);
			if (r.status == 401)
				check_denied(&r, "control byte in the token");
			else
				check_error_shape(&r, "control byte in the token");
		}
		mt_resp_release(&r);
	}
}
END_TEST

/* The token header is parsed before any signature check: unauthenticated input. */
START_TEST(test_a_token_whose_header_nests_deeply_is_401_not_a_crash)
{
	static const size_t depths[] = {9, 100, 500, 1000, 2000, 2900};
	char hdr[4000], h[4200];
	size_t i;

	for (i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
		char *raw = nested(depths[i], "[", NULL);

		b64url((const unsigned char *)raw, strlen(raw), hdr, sizeof(hdr));
		snprintf(h, sizeof(h), "Bearer %s.e30.c2ln", hdr);
		expect_denied(h, "deeply nested token header");
		free(raw);
	}
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

START_TEST(test_an_oversized_request_header_gets_a_json_error)
{
	size_t n = 64 * 1024;
	char *h = malloc(n + 32);
	mt_resp r;

	ck_assert_ptr_nonnull(h);
	memcpy(h, "Bearer ", 7);
	memset(h + 7, 'A', n);
	h[7 + n] = '\0';
	me(h, &r);
	check_client_error(&r, "64 KiB Authorization header");
	mt_resp_release(&r);
	free(h);
}
END_TEST

/* ------------------------------------------------------------------ 8. refresh */

static void refresh_json(const char *token, mt_resp *r)
{
	cJSON *o = cJSON_CreateObject();
	char *body;

	cJSON_AddStringToObject(o, "refresh_token", token);
	body = cJSON_PrintUnformatted(o);
	post_json("/auth/refresh", body, r);
	cJSON_free(body);
	cJSON_Delete(o);
}

static void expect_refresh_denied(const char *token, const char *what)
{
	mt_resp r;
	char *www;

	refresh_json(token, &r);
	check_error(&r, 401, "invalid_token", what);
	www = mt_header(&r, "WWW-Authenticate");
	ck_assert_msg(www && strncmp(www, "Bearer", 6) == 0, "%s: no Bearer challenge", what);
	free(www);
	mt_resp_release(&r);
}

/* Refresh (200 expected); the new refresh token into out. */
static void refresh_ok(const char *token, char *out, size_t outlen)
{
	mt_resp r;

	refresh_json(token, &r);
	ck_assert_msg(r.status == 200, "refresh: %ld %s", r.status, r.body);
	snprintf(out, outlen, "%s", mk_json_str(r.json, "refresh_token"));
	mt_resp_release(&r);
}

START_TEST(test_refresh_rejects_garbage_and_access_tokens)
{
	char access[2048], refresh[256], big[600];

	fresh_user(NULL, 0, access, sizeof(access), refresh, sizeof(refresh));
	expect_refresh_denied("garbage", "garbage");
	expect_refresh_denied("mrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	                      "well-formed, unknown");
	expect_refresh_denied("' OR 1=1 --", "SQL");
	expect_refresh_denied("\\x00", "bytea escape");
	/* An access token is not a refresh token (it fits the 512-byte field). */
	ck_assert_uint_le(strlen(access), 512);
	expect_refresh_denied(access, "an access token");
	/* Longer than the field allows. */
	memset(big, 'a', 513);
	big[513] = '\0';
	{
		mt_resp r;

		refresh_json(big, &r);
		check_error(&r, 422, "validation_failed", "513-byte refresh token");
		mt_resp_release(&r);
	}
	/* The real one still works after all that. */
	refresh_ok(refresh, refresh, sizeof(refresh));
}
END_TEST

START_TEST(test_a_reused_refresh_token_revokes_its_family)
{
	char a[256], b[256];

	fresh_user(NULL, 0, NULL, 0, a, sizeof(a));
	refresh_ok(a, b, sizeof(b));
	expect_refresh_denied(a, "A reused");
	expect_refresh_denied(b, "B after A's reuse");
	/* And stays dead. */
	expect_refresh_denied(a, "A again");
}
END_TEST

START_TEST(test_a_refresh_token_is_dead_after_signout)
{
	char a[256], b[256], body[512];
	mt_resp r;

	fresh_user(NULL, 0, NULL, 0, a, sizeof(a));
	refresh_ok(a, b, sizeof(b));
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", b);
	post_json("/auth/signout", body, &r);
	ck_assert_msg(r.status == 204, "signout: %ld %s", r.status, r.body);
	mt_resp_release(&r);
	expect_refresh_denied(b, "after signout");
	/* Signing out again, or with a token never issued, is not an error. */
	post_json("/auth/signout", body, &r);
	ck_assert_int_eq(r.status, 204);
	mt_resp_release(&r);
	post_json("/auth/signout", "{\"refresh_token\":\"mrt_never-issued\"}", &r);
	ck_assert_int_eq(r.status, 204);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_form_refresh_rejects_a_wrong_grant_type_and_malformed_forms)
{
	char refresh[256], body[1024];
	mt_resp r;

	fresh_user(NULL, 0, NULL, 0, refresh, sizeof(refresh));
	snprintf(body, sizeof(body), "grant_type=password&refresh_token=%s", refresh);
	post_form("/auth/refresh", body, &r);
	check_error(&r, 422, "validation_failed", "grant_type=password");
	mt_resp_release(&r);
	snprintf(body, sizeof(body), "grant_type=&refresh_token=%s", refresh);
	post_form("/auth/refresh", body, &r);
	check_error(&r, 422, "validation_failed", "empty grant_type");
	mt_resp_release(&r);
	snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s&refresh_token=%s",
	         refresh, refresh);
	post_form("/auth/refresh", body, &r);
	check_error(&r, 422, "validation_failed", "repeated refresh_token");
	mt_resp_release(&r);
	post_form("/auth/refresh", "grant_type=refresh_token", &r);
	check_error(&r, 422, "validation_failed", "no refresh_token");
	mt_resp_release(&r);
	post_form("/auth/refresh", "grant_type=refresh_token&refresh_token=%zz", &r);
	check_error(&r, 422, "validation_failed", "bad escape");
	mt_resp_release(&r);
	/* None of that used the token up. */
	snprintf(body, sizeof(body), "grant_type=refresh_token&refresh_token=%s", refresh);
	post_form("/auth/refresh", body, &r);
	ck_assert_msg(r.status == 200, "form refresh: %ld %s", r.status, r.body);
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ 9. forms */

START_TEST(test_form_signin_accepts_valid_forms_and_rejects_malformed_ones)
{
	char email[64], body[512];
	const char *bad[] = {
	    "username=%s",                                   /* no password */
	    "password=correct-horse",                        /* no username */
	    "username=%s&password=correct-horse&password=x", /* repeated password */
	    "username=%s&username=%s&password=correct-horse",
	    "username=%s&password=correct%%zzhorse",
	    "username=%s&password=correct-horse%%",
	    "username=%s&password=correct-horse%%4",
	    "username=%s&password=correct%%00horse", /* NUL */
	    "grant_type=client_credentials&username=%s&password=correct-horse",
	    "grant_type=password&grant_type=password&username=%s&password=correct-horse",
	    "",
	    "&&&",
	    "===",
	};
	mt_resp r;
	size_t i;

	new_email(email, sizeof(email));
	signup(email, "correct-horse", NULL, 0);
	snprintf(body, sizeof(body), "username=%s&password=correct-horse", email);
	post_form("/auth/signin", body, &r);
	ck_assert_msg(r.status == 200, "form signin: %ld %s", r.status, r.body);
	ck_assert_str_eq(mk_json_str(r.json, "token_type"), "bearer");
	mt_resp_release(&r);
	snprintf(body, sizeof(body),
	         "grant_type=password&username=%s&password=correct-horse&scope=x", email);
	post_form("/auth/signin", body, &r);
	ck_assert_msg(r.status == 200, "form signin with grant_type: %ld %s", r.status, r.body);
	mt_resp_release(&r);
	/* Percent-encoded '@' and a charset parameter on the content type. */
	{
		const char *cs[] = {
		    "Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL};
		char enc[64];
		const char *at = strchr(email, '@');

		snprintf(enc, sizeof(enc), "%.*s%%40%s", (int)(at - email), email, at + 1);
		snprintf(body, sizeof(body), "username=%s&password=correct-horse", enc);
		post("/auth/signin", cs, body, strlen(body), &r);
		ck_assert_msg(r.status == 200, "encoded form signin: %ld %s", r.status, r.body);
		mt_resp_release(&r);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body), bad[i], email, email);
		post_form("/auth/signin", body, &r);
		check_error(&r, 422, "validation_failed", body);
		mt_resp_release(&r);
	}
	/* Bytes that decode to invalid UTF-8: refused, never a server error. */
	snprintf(body, sizeof(body), "username=%s&password=correct%%ff%%fehorse", email);
	post_form("/auth/signin", body, &r);
	check_client_error(&r, body);
	mt_resp_release(&r);
	post_form("/auth/signin", "username=%ff%fe@example.com&password=correct-horse", &r);
	check_client_error(&r, "invalid UTF-8 username");
	mt_resp_release(&r);
	/* The account is not locked by any of that: malformed forms are not failed sign-ins. */
	snprintf(body, sizeof(body), "username=%s&password=correct-horse", email);
	post_form("/auth/signin", body, &r);
	ck_assert_msg(r.status == 200, "form signin after the abuse: %ld %s", r.status, r.body);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_form_plus_decodes_to_a_space)
{
	char email[64], body[512];
	mt_resp r;

	new_email(email, sizeof(email));
	signup(email, "correct horse battery", NULL, 0);
	snprintf(body, sizeof(body), "username=%s&password=correct+horse+battery", email);
	post_form("/auth/signin", body, &r);
	ck_assert_msg(r.status == 200, "'+' as space: %ld %s", r.status, r.body);
	mt_resp_release(&r);
	snprintf(body, sizeof(body), "username=%s&password=correct%%20horse%%20battery", email);
	post_form("/auth/signin", body, &r);
	ck_assert_msg(r.status == 200, "%%20 as space: %ld %s", r.status, r.body);
	mt_resp_release(&r);
	/* An encoded '+' is a plus, not a space: a wrong password. */
	snprintf(body, sizeof(body), "username=%s&password=correct%%2Bhorse%%2Bbattery", email);
	post_form("/auth/signin", body, &r);
	check_error(&r, 401, "invalid_credentials", "%2B");
	mt_resp_release(&r);
}
END_TEST

/* ------------------------------------------------------------------ lockout evasion */

START_TEST(test_a_forwarded_for_header_does_not_escape_the_address_lockout)
{
	char email[64], xff[64];
	const char *hdrs[] = {"Content-Type: application/json", xff, NULL};
	char body[256];
	int i, denied = 0;
	mt_resp r;

	new_email(email, sizeof(email));
	signup(email, "correct-horse", NULL, 0);
	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"wrong-horse\"}", email);
	for (i = 0; i < 8; i++) {
		snprintf(xff, sizeof(xff), "X-Forwarded-For: 10.0.0.%d", i + 1);
		post("/auth/signin", hdrs, body, strlen(body), &r);
		ck_assert_msg(r.status == 401 || r.status == 429, "attempt %d: %ld %s", i, r.status,
		              r.body);
		check_error_shape(&r, "spoofed X-Forwarded-For");
		denied += r.status == 401;
		mt_resp_release(&r);
	}
	ck_assert_msg(denied <= 5, "%d wrong passwords judged from one address (limit 5)", denied);
}
END_TEST

/*
 * The gateway sets client_ip in the body it forwards; a client that sends
 * its own client_ip (twice, so that removing one copy leaves the other)
 * must still be counted at its real address.
 */
START_TEST(test_a_client_ip_in_the_body_does_not_escape_the_address_lockout)
{
	char email[64], body[512];
	int i, denied = 0;
	mt_resp r;

	new_email(email, sizeof(email));
	signup(email, "correct-horse", NULL, 0);
	for (i = 0; i < 8; i++) {
		snprintf(
		    body, sizeof(body),
		    "{\"email\":\"%s\",\"password\":\"wrong-horse\",\"client_ip\":\"10.1.0.%d\","
		    "\"client_ip\":\"10.2.0.%d\"}",
		    email, i + 1, i + 1);
		post_json("/auth/signin", body, &r);
		ck_assert_msg(r.status == 400 || r.status == 401 || r.status == 422 ||
		                  r.status == 429,
		              "attempt %d: %ld %s", i, r.status, r.body);
		check_error_shape(&r, "spoofed client_ip");
		denied += r.status == 401;
		mt_resp_release(&r);
	}
	ck_assert_msg(denied <= 5, "%d wrong passwords judged from one address (limit 5)", denied);
}
END_TEST

/* ------------------------------------------------------------------ 10. afterwards */

START_TEST(test_the_stack_is_still_ready_after_the_abuse)
{
	int i;

	for (i = 0; i < MT_NPROCS; i++)
		ck_assert_msg(mt_proc_alive(&st.p[i]), "%s died", mt_proc_names[i]);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
	fresh_user(NULL, 0, NULL, 0, NULL, 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("auth_hostile");
	TCase *tc = tcase_create("auth_hostile");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_signup_rejects_missing_null_and_mistyped_fields);
	tcase_add_test(tc, test_signin_rejects_missing_null_and_mistyped_fields);
	tcase_add_test(tc, test_refresh_and_signout_reject_missing_null_and_mistyped_tokens);
	tcase_add_test(tc, test_bodies_that_are_not_json_objects_are_rejected_on_every_auth_route);
	tcase_add_test(tc, test_unknown_and_misspelt_fields_are_rejected);
	tcase_add_test(tc, test_an_unknown_field_name_cut_inside_a_utf8_character_is_still_a_422);
	tcase_add_test(tc, test_near_miss_paths_and_other_methods_get_the_json_error_shape);
	tcase_add_test(tc, test_malformed_json_is_400_on_every_auth_route);
	tcase_add_test(tc, test_duplicate_json_keys_never_cause_a_server_error);
	tcase_add_test(tc, test_deeply_nested_json_is_400_not_a_crash);
	tcase_add_test(tc, test_invalid_utf8_nul_and_lone_surrogates_in_strings_are_400);
	tcase_add_test(tc, test_a_body_over_the_limit_is_413_and_one_at_the_limit_is_read);
	tcase_add_test(tc, test_a_chunked_body_over_the_limit_is_413);
	tcase_add_test(tc, test_a_chunked_body_under_the_limit_is_served);
	tcase_add_test(tc, test_garbage_on_the_wire_gets_a_json_error_or_a_close);
	tcase_add_test(tc, test_a_negative_or_overflowing_content_length_gets_a_json_error);
	tcase_add_test(tc, test_a_body_shorter_than_its_content_length_is_answered_or_closed);
	tcase_add_test(tc, test_malformed_emails_are_422);
	tcase_add_test(tc, test_emails_are_trimmed_and_lower_cased_and_case_duplicates_conflict);
	tcase_add_test(tc, test_a_unicode_email_is_handled_consistently);
	tcase_add_test(tc, test_password_length_is_counted_in_characters_and_capped_in_bytes);
	tcase_add_test(tc, test_sixteen_concurrent_signups_of_one_email_create_exactly_one_account);
	tcase_add_test(tc, test_me_without_a_usable_authorization_header_is_401);
	tcase_add_test(tc, test_the_bearer_scheme_is_case_insensitive);
	tcase_add_test(tc, test_a_token_changed_by_one_character_is_401);
	tcase_add_test(tc, test_a_token_claiming_another_algorithm_is_401);
	tcase_add_test(tc, test_a_token_signed_by_another_key_is_401);
	tcase_add_test(tc, test_expired_and_wrong_issuer_or_audience_tokens_are_401);
	tcase_add_test(tc, test_control_characters_in_the_authorization_header_never_pass);
	tcase_add_test(tc, test_a_token_whose_header_nests_deeply_is_401_not_a_crash);
	tcase_add_test(tc, test_an_oversized_request_header_gets_a_json_error);
	tcase_add_test(tc, test_refresh_rejects_garbage_and_access_tokens);
	tcase_add_test(tc, test_a_reused_refresh_token_revokes_its_family);
	tcase_add_test(tc, test_a_refresh_token_is_dead_after_signout);
	tcase_add_test(tc, test_form_refresh_rejects_a_wrong_grant_type_and_malformed_forms);
	tcase_add_test(tc, test_form_signin_accepts_valid_forms_and_rejects_malformed_ones);
	tcase_add_test(tc, test_form_plus_decodes_to_a_space);
	tcase_add_test(tc, test_a_forwarded_for_header_does_not_escape_the_address_lockout);
	tcase_add_test(tc, test_a_client_ip_in_the_body_does_not_escape_the_address_lockout);
	tcase_add_test(tc, test_the_stack_is_still_ready_after_the_abuse);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
