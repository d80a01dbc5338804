/*
 * bq_double_auth.c - the BigQuery double's Google identity faces: the
 * OAuth2 token endpoint (RFC 7523 JWT bearer grant, checked as Google
 * checks it: RS256 signature by the test service account's key, issuer,
 * audience, lifetime, clock, scope), the GCE metadata server (token,
 * project id, e-mail, the directory listings client libraries probe) and
 * the bearer check in front of every BigQuery route.
 *
 * Access tokens are "test-token-N", remembered with their expiry; a token
 * from either face is valid for the API until it expires. A self-signed
 * JWT (what Google's client libraries send instead of a token when they use
 * a service account key without user scopes) is accepted as a bearer too
 * when the test key signed it for a Google API audience.
 */
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bq_double.h"
#include "mk_b64.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

#define JWT_GRANT       "urn:ietf:params:oauth:grant-type:jwt-bearer"
#define GOOGLE_TOKEN    "https://oauth2.googleapis.com/token"
#define GOOGLE_TOKEN_V4 "https://www.googleapis.com/oauth2/v4/token"
#define MAX_ASSERTION   8192
#define SKEW_S          300

static const char BAD_LIFETIME[] =
    "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. "
    "Check your iat and exp values in the JWT claim.";

int bq_auth_load_key(bq_double *d, const char *pem_file, char *err, size_t errlen)
{
	FILE *f = fopen(pem_file, "rb");

	if (!f) {
		mk_errf(err, errlen, "cannot open public key '%s'", pem_file);
		return -1;
	}
	d->pub = PEM_read_PUBKEY(f, NULL, NULL, NULL);
	fclose(f);
	if (!d->pub || EVP_PKEY_base_id(d->pub) != EVP_PKEY_RSA) {
		EVP_PKEY_free(d->pub);
		d->pub = NULL;
		mk_errf(err, errlen, "'%s' is not an RSA public key in PEM", pem_file);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------ JWT */

static cJSON *decode_json_part(const char *s, size_t n)
{
	char err[128];
	size_t len;
	unsigned char *raw = mk_b64url_decode(s, n, &len);
	cJSON *j;

	if (!raw)
		return NULL;
	j = mk_json_parse((const char *)raw, len, 16, err, sizeof(err));
	free(raw);
	if (j && !cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/*
 * Check a compact RS256 JWS signed by the test key and return its claims
 * (caller deletes), or NULL with Google's description of what is wrong.
 */
static cJSON *verify_jwt(const bq_double *d, const char *jwt, const char **why)
{
	const char *dot1 = strchr(jwt, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	size_t n = strlen(jwt), siglen = 0;
	unsigned char *sig = NULL;
	cJSON *head = NULL, *claims = NULL;
	EVP_MD_CTX *ctx = NULL;
	const char *alg, *typ;

	*why = "Invalid JWT: the assertion is not three base64url segments";
	if (n > MAX_ASSERTION || !dot1 || !dot2 || strchr(dot2 + 1, '.') || dot1 == jwt ||
	    dot2 == dot1 + 1 || dot2[1] == '\0')
		return NULL;
	head = decode_json_part(jwt, (size_t)(dot1 - jwt));
	claims = decode_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
	sig = mk_b64url_decode(dot2 + 1, strlen(dot2 + 1), &siglen);
	if (!head || !claims || !sig)
		goto bad;
	alg = mk_json_str(head, "alg");
	typ = mk_json_str(head, "typ");
	if (!alg || strcmp(alg, "RS256") != 0 || (typ && strcasecmp(typ, "JWT") != 0)) {
		*why = "Invalid JWT: the header's alg must be RS256";
		goto bad;
	}
	*why = "Invalid JWT Signature.";
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, (EVP_PKEY *)d->pub) != 1 ||
	    EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)jwt, (size_t)(dot2 - jwt)) !=
	        1)
		goto bad;
	EVP_MD_CTX_free(ctx);
	cJSON_Delete(head);
	free(sig);
	*why = NULL;
	return claims;
bad:
	EVP_MD_CTX_free(ctx);
	cJSON_Delete(head);
	cJSON_Delete(claims);
	free(sig);
	return NULL;
}

/* The integer claim name, or -1 when absent or not an integer. */
static long long claim_int(const cJSON *c, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, name);
	long long x;

	return cJSON_IsNumber(v) && mk_json_as_int(v, &x) == 0 ? x : -1;
}

/* Whether iat/exp make a short-lived token valid now. */
static int lifetime_ok(const cJSON *claims)
{
	long long iat = claim_int(claims, "iat"), exp = claim_int(claims, "exp");
	long long now = mk_now_ms() / 1000;

	return iat >= 0 && exp > iat && exp - iat <= 3600 && iat <= now + SKEW_S &&
	       iat >= now - SKEW_S && exp > now;
}

/* ------------------------------------------------------------------ tokens */

/* Mint and remember an access token; returns the token response body. */
static cJSON *issue(bq_double *d, const char *via)
{
	cJSON *o = cJSON_CreateObject();
	char tok[40];
	long long ttl;
	int64_t now = mk_now_ms();
	size_t i, keep = 0;

	pthread_mutex_lock(&d->mu);
	ttl = d->cfg.expires_in;
	snprintf(tok, sizeof(tok), "test-token-%lu", ++d->token_seq);
	if (d->ntokens == BQ_MAX_TOKENS) {
		for (i = 0; i < d->ntokens; i++)
			if (d->tokens[i].exp_ms > now)
				d->tokens[keep++] = d->tokens[i];
		d->ntokens = keep;
		if (d->ntokens == BQ_MAX_TOKENS) {
			memmove(d->tokens, d->tokens + 1, (d->ntokens - 1) * sizeof(d->tokens[0]));
			d->ntokens--;
		}
	}
	snprintf(d->tokens[d->ntokens].token, sizeof(d->tokens[0].token), "%s", tok);
	d->tokens[d->ntokens].exp_ms = now + ttl * 1000;
	d->ntokens++;
	pthread_mutex_unlock(&d->mu);
	cJSON_AddStringToObject(o, "access_token", tok);
	cJSON_AddNumberToObject(o, "expires_in", (double)ttl);
	cJSON_AddStringToObject(o, "token_type", "Bearer");
	MK_INFO("BQD-TOKEN", NULL, "issued token %lu via %s (expires in %llds)", d->token_seq, via,
	        ttl);
	return o;
}

void bq_auth_token(bq_req *r)
{
	const char *ct = mg_get_header(r->conn, "Content-Type");
	char grant[128], *assertion = NULL;
	const char *why, *iss, *aud, *scope;
	cJSON *claims, *o;
	size_t cap = r->body_len + 1;

	if (strcmp(r->ri->request_method, "POST") != 0) {
		bq_send_oauth_error(r, 400, "invalid_request", "Invalid request: POST only");
		return;
	}
	if (!ct || strncasecmp(ct, "application/x-www-form-urlencoded", 33) != 0 ||
	    (ct[33] != '\0' && ct[33] != ';')) {
		bq_send_oauth_error(r, 400, "invalid_grant",
		                    "Bad Request: Content-Type must be "
		                    "application/x-www-form-urlencoded");
		return;
	}
	if (mg_get_var(r->body, r->body_len, "grant_type", grant, sizeof(grant)) < 0 ||
	    strcmp(grant, JWT_GRANT) != 0) {
		bq_send_oauth_error(r, 400, "invalid_grant", "Invalid grant_type: want " JWT_GRANT);
		return;
	}
	assertion = malloc(cap);
	if (!assertion || mg_get_var(r->body, r->body_len, "assertion", assertion, cap) < 1) {
		free(assertion);
		bq_send_oauth_error(r, 400, "invalid_grant",
		                    "Invalid JWT: the assertion is missing");
		return;
	}
	claims = verify_jwt(r->d, assertion, &why);
	free(assertion);
	if (!claims) {
		bq_send_oauth_error(r, 400, "invalid_grant", why);
		return;
	}
	iss = mk_json_str(claims, "iss");
	aud = mk_json_str(claims, "aud");
	scope = mk_json_str(claims, "scope");
	if (!iss || strcmp(iss, r->d->client_email) != 0) {
		bq_send_oauth_error(r, 400, "invalid_grant", "Invalid grant: account not found");
	} else if (!aud || (strcmp(aud, r->d->token_url) != 0 && strcmp(aud, GOOGLE_TOKEN) != 0 &&
	                    strcmp(aud, GOOGLE_TOKEN_V4) != 0)) {
		char msg[256];

		snprintf(msg, sizeof(msg),
		         "Invalid JWT: Failed audience check. The right audience is %s",
		         r->d->token_url);
		bq_send_oauth_error(r, 400, "invalid_grant", msg);
	} else if (!lifetime_ok(claims)) {
		bq_send_oauth_error(r, 400, "invalid_grant", BAD_LIFETIME);
	} else if (!scope || !*scope) {
		bq_send_oauth_error(r, 400, "invalid_scope",
		                    "Invalid oauth scope or ID token audience provided.");
	} else {
		o = issue(r->d, "token endpoint");
		bq_send_json(r, 200, o, "Cache-Control: no-cache, no-store, max-age=0\r\n");
		cJSON_Delete(o);
	}
	cJSON_Delete(claims);
}

/* ------------------------------------------------------------------ metadata */

static void md_send(bq_req *r, int status, const char *ctype, const char *body)
{
	bq_send(r, status, ctype, "Metadata-Flavor: Google\r\nServer: Metadata Server for VM\r\n",
	        body, strlen(body));
}

void bq_auth_metadata(bq_req *r)
{
	const char *flavor = mg_get_header(r->conn, "Metadata-Flavor");
	const char *legacy = mg_get_header(r->conn, "X-Google-Metadata-Request");
	const char *p = r->path;
	char text[512];

	if (!(flavor && strcmp(flavor, "Google") == 0) &&
	    !(legacy && strcasecmp(legacy, "True") == 0)) {
		md_send(r, 403, "text/plain; charset=utf-8",
		        "Missing required header \"Metadata-Flavor\": \"Google\"\n");
		return;
	}
	if (strcmp(r->ri->request_method, "GET") != 0) {
		md_send(r, 405, "text/plain; charset=utf-8", "Method not allowed\n");
		return;
	}
	if (strcmp(p, "/computeMetadata/v1/instance/service-accounts/default/token") == 0) {
		cJSON *o = issue(r->d, "metadata server");
		char *s = mk_json_print(o);

		cJSON_Delete(o);
		if (!s) {
			md_send(r, 500, "text/plain", "out of memory\n");
			return;
		}
		md_send(r, 200, "application/json", s);
		cJSON_free(s);
		return;
	}
#define MD(path, body)                                                                             \
	if (strcmp(p, path) == 0) {                                                                \
		md_send(r, 200, "application/text", body);                                         \
		return;                                                                            \
	}
	MD("/", "computeMetadata/\n");
	MD("/computeMetadata", "v1/\n");
	MD("/computeMetadata/", "v1/\n");
	MD("/computeMetadata/v1", "instance/\nproject/\nuniverse/\n");
	MD("/computeMetadata/v1/", "instance/\nproject/\nuniverse/\n");
	MD("/computeMetadata/v1/instance", "attributes/\nhostname\nid\nservice-accounts/\nzone\n");
	MD("/computeMetadata/v1/instance/", "attributes/\nhostname\nid\nservice-accounts/\nzone\n");
	MD("/computeMetadata/v1/instance/hostname", "mark-test-vm.us-central1-a.c.internal");
	MD("/computeMetadata/v1/instance/id", "4520031799277581759");
	MD("/computeMetadata/v1/instance/zone", "projects/123456789012/zones/us-central1-a");
	MD("/computeMetadata/v1/instance/service-accounts/default/scopes",
	   "https://www.googleapis.com/auth/cloud-platform\n");
	MD("/computeMetadata/v1/project/numeric-project-id", "123456789012");
	MD("/computeMetadata/v1/universe/universe-domain", "googleapis.com");
	MD("/computeMetadata/v1/universe/universe_domain", "googleapis.com");
#undef MD
	if (strcmp(p, "/computeMetadata/v1/project/project-id") == 0) {
		md_send(r, 200, "application/text", r->d->project);
		return;
	}
	if (strcmp(p, "/computeMetadata/v1/instance/service-accounts/default/email") == 0) {
		md_send(r, 200, "application/text", r->d->client_email);
		return;
	}
	if (strcmp(p, "/computeMetadata/v1/instance/service-accounts") == 0 ||
	    strcmp(p, "/computeMetadata/v1/instance/service-accounts/") == 0) {
		snprintf(text, sizeof(text), "default/\n%s/\n", r->d->client_email);
		md_send(r, 200, "application/text", text);
		return;
	}
	if (strcmp(p, "/computeMetadata/v1/instance/service-accounts/default") == 0 ||
	    strcmp(p, "/computeMetadata/v1/instance/service-accounts/default/") == 0) {
		md_send(r, 200, "application/text", "aliases\nemail\nidentity\nscopes\ntoken\n");
		return;
	}
	if (strcmp(p, "/computeMetadata/v1/project") == 0 ||
	    strcmp(p, "/computeMetadata/v1/project/") == 0) {
		md_send(r, 200, "application/text",
		        "attributes/\nnumeric-project-id\nproject-id\n");
		return;
	}
	md_send(r, 404, "text/plain; charset=utf-8", "Not Found\n");
}

/* ------------------------------------------------------------------ bearer */

/* Whether a self-signed JWT names a Google API (or this double) as its audience. */
static int self_signed_ok(const bq_double *d, const char *jwt)
{
	const char *why, *iss, *sub, *aud, *scope;
	cJSON *c = verify_jwt(d, jwt, &why);
	int ok;

	if (!c)
		return 0;
	iss = mk_json_str(c, "iss");
	sub = mk_json_str(c, "sub");
	aud = mk_json_str(c, "aud");
	scope = mk_json_str(c, "scope");
	ok = iss && strcmp(iss, d->client_email) == 0 &&
	     (!sub || strcmp(sub, d->client_email) == 0) && lifetime_ok(c) &&
	     ((aud && (strncmp(aud, "https://bigquery.googleapis.com/", 32) == 0 ||
	               strncmp(aud, "https://www.googleapis.com/", 27) == 0 ||
	               strncmp(aud, d->base, strlen(d->base)) == 0)) ||
	      (!aud && scope && *scope));
	cJSON_Delete(c);
	return ok;
}

int bq_auth_check(bq_req *r)
{
	const char *h = mg_get_header(r->conn, "Authorization"), *tok;
	int64_t now = mk_now_ms();
	size_t i;
	int ok = 0;

	if (h && strncasecmp(h, "Bearer ", 7) == 0) {
		tok = h + 7;
		while (*tok == ' ')
			tok++;
		pthread_mutex_lock(&r->d->mu);
		for (i = 0; i < r->d->ntokens && !ok; i++)
			ok =
			    strcmp(r->d->tokens[i].token, tok) == 0 && r->d->tokens[i].exp_ms > now;
		pthread_mutex_unlock(&r->d->mu);
		if (!ok && strchr(tok, '.'))
			ok = self_signed_ok(r->d, tok);
	}
	if (ok)
		return 0;
	bq_send_error(r, 401, "authError",
	              "Request had invalid authentication credentials. Expected OAuth 2 access "
	              "token, login cookie or other valid authentication credential. See "
	              "https://developers.google.com/identity/sign-in/web/devconsole-project.");
	return -1;
}
