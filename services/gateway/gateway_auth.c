/*
 * gateway_auth.c - authentication at the edge: the Bearer guard of every
 * /api/v1 route (the gateway verifies access tokens itself with auth's
 * public key: no round trip), and the /auth routes, which accept JSON and
 * the OAuth2 password form so that standard OAuth2 clients work.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pthread.h>

#include <sodium.h>

#include "gateway.h"
#include "mk_json.h"
#include "mk_log.h"

int gw_auth_keys_load(gateway *gw, char *err, size_t errlen)
{
	gw->keys[0] = mk_jwt_key_load(gw->cfg->jwt_public_key_file, err, errlen);
	if (!gw->keys[0])
		return -1;
	if (gw->cfg->jwt_previous_public_key_file) {
		gw->keys[1] = mk_jwt_key_load(gw->cfg->jwt_previous_public_key_file, err, errlen);
		if (!gw->keys[1])
			return -1;
	}
	MK_INFO("GW-KEYS", NULL, "verifying access tokens with key id %s%s%s",
	        mk_jwt_key_id(gw->keys[0]), gw->keys[1] ? " and previous key id " : "",
	        gw->keys[1] ? mk_jwt_key_id(gw->keys[1]) : "");
	return 0;
}

void gw_auth_keys_free(gateway *gw)
{
	mk_jwt_key_free(gw->keys[0]);
	mk_jwt_key_free(gw->keys[1]);
	gw->keys[0] = gw->keys[1] = NULL;
}

/*
 * Verified tokens, keyed by a BLAKE2b digest of the whole token: a token
 * whose signature checked out is not checked again until it expires (the
 * signature check is the gateway's most expensive step). A changed token
 * has another digest, so it is verified afresh. Direct-mapped; locks are
 * striped so readers rarely meet.
 */
#define TC_LOCKS 64

typedef struct {
	unsigned char digest[crypto_generichash_BYTES];
	int64_t valid_until; /* unix seconds: exp + leeway; 0 = empty */
	mk_caller who;
} tc_entry;

struct gw_token_cache {
	size_t n;
	tc_entry *e;
	pthread_mutex_t locks[TC_LOCKS];
};

int gw_token_cache_new(gateway *gw)
{
	struct gw_token_cache *c;
	int i;

	if (gw->cfg->token_cache <= 0)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c || !(c->e = calloc((size_t)gw->cfg->token_cache, sizeof(tc_entry)))) {
		free(c);
		return -1;
	}
	c->n = (size_t)gw->cfg->token_cache;
	for (i = 0; i < TC_LOCKS; i++)
		pthread_mutex_init(&c->locks[i], NULL);
	gw->tokens = c;
	return 0;
}

void gw_token_cache_free(gateway *gw)
{
	struct gw_token_cache *c = gw->tokens;
	int i;

	if (!c)
		return;
	for (i = 0; i < TC_LOCKS; i++)
		pthread_mutex_destroy(&c->locks[i]);
	free(c->e);
	free(c);
	gw->tokens = NULL;
}

static size_t tc_slot(const struct gw_token_cache *c, const unsigned char *d)
{
	uint64_t h;

	memcpy(&h, d, sizeof(h));
	return (size_t)(h % c->n);
}

static int tc_get(struct gw_token_cache *c, const unsigned char *d, int64_t now, mk_caller *who)
{
	size_t i = tc_slot(c, d);
	pthread_mutex_t *l = &c->locks[i % TC_LOCKS];
	int hit;

	pthread_mutex_lock(l);
	hit = c->e[i].valid_until > now &&
	      sodium_memcmp(c->e[i].digest, d, sizeof(c->e[i].digest)) == 0;
	if (hit)
		*who = c->e[i].who;
	pthread_mutex_unlock(l);
	return hit;
}

static void tc_put(struct gw_token_cache *c, const unsigned char *d, int64_t valid_until,
                   const mk_caller *who)
{
	size_t i = tc_slot(c, d);
	pthread_mutex_t *l = &c->locks[i % TC_LOCKS];

	pthread_mutex_lock(l);
	memcpy(c->e[i].digest, d, sizeof(c->e[i].digest));
	c->e[i].valid_until = valid_until;
	c->e[i].who = *who;
	pthread_mutex_unlock(l);
}

static void deny(gw_req *r, mk_err e, const char *why)
{
	char hdr[300];

	/* RFC 6750: error="invalid_token" only when a token was presented. */
	if (e == MK_E_INVALID_TOKEN)
		snprintf(hdr, sizeof(hdr),
		         "WWW-Authenticate: Bearer realm=\"mark\", error=\"invalid_token\", "
		         "error_description=\"%s\"\r\n",
		         why);
	else
		snprintf(hdr, sizeof(hdr), "WWW-Authenticate: Bearer realm=\"mark\"\r\n");
	gw_reply_error_ex(r, e, why, hdr, NULL);
}

int gw_auth_guard(gw_req *r)
{
	const char *h = mg_get_header(r->conn, "Authorization");
	unsigned char digest[crypto_generichash_BYTES];
	mk_jwt_claims c;
	char why[160], msg[200];
	int64_t now;
	int leeway;

	if (!h || !*h) {
		deny(r, MK_E_UNAUTHENTICATED,
		     "an access token is required (Authorization: Bearer ...)");
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7) != 0) {
		deny(r, MK_E_UNAUTHENTICATED, "the Authorization header must be 'Bearer <token>'");
		return -1;
	}
	h += 7;
	while (*h == ' ')
		h++;
	now = (int64_t)time(NULL);
	leeway = (int)(r->gw->cfg->jwt_leeway_ms / 1000);
	if (r->gw->tokens) {
		crypto_generichash(digest, sizeof(digest), (const unsigned char *)h, strlen(h),
		                   NULL, 0);
		if (tc_get(r->gw->tokens, digest, now, &r->caller))
			return 0;
	}
	if (mk_jwt_verify(h, (const mk_jwt_key *const *)r->gw->keys, 2, r->gw->cfg->jwt_issuer,
	                  r->gw->cfg->jwt_audience, now, leeway, &c, why, sizeof(why)) != 0) {
		snprintf(msg, sizeof(msg), "invalid access token: %s", why);
		deny(r, MK_E_INVALID_TOKEN, msg);
		return -1;
	}
	snprintf(r->caller.user_id, sizeof(r->caller.user_id), "%s", c.sub);
	snprintf(r->caller.role, sizeof(r->caller.role), "%s", c.role);
	if (r->gw->tokens)
		tc_put(r->gw->tokens, digest, c.exp + leeway, &r->caller);
	return 0;
}

int gw_content_type_is(const gw_req *r, const char *type)
{
	const char *ct = mg_get_header(r->conn, "Content-Type");
	size_t n = strlen(type);

	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Decode one form component (percent escapes, '+' as space) into out. */
static int form_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];

		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (ch == 0 || o + 1 >= outlen)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

int gw_form_get(const char *body, size_t len, const char *name, char *out, size_t outlen)
{
	const char *p = body, *end = body + len;
	char key[64];
	int found = 0;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *ke = eq ? eq : pe;

		if (ke > p && form_decode(p, (size_t)(ke - p), key, sizeof(key)) == 0 &&
		    strcmp(key, name) == 0) {
			if (found)
				return -1; /* a repeated field is ambiguous */
			if (form_decode(eq ? eq + 1 : pe, eq ? (size_t)(pe - eq - 1) : 0, out,
			                outlen) != 0)
				return -1;
			found = 1;
		}
		p = amp ? amp + 1 : end;
	}
	return found;
}

/* Is the body an OAuth2-style form rather than JSON? curl -d sends JSON
 * with the form content type, so a body that starts with '{' is JSON. */
static int body_is_form(const gw_req *r)
{
	size_t i = 0;

	if (!gw_content_type_is(r, "application/x-www-form-urlencoded"))
		return 0;
	while (i < r->body_len && isspace((unsigned char)r->body[i]))
		i++;
	return i == r->body_len || r->body[i] != '{';
}

/* Parse the body as a JSON object, answering 400/422 on failure. */
static cJSON *json_body(gw_req *r)
{
	char perr[160], msg[200];
	cJSON *j;

	if (r->body_len == 0)
		return cJSON_CreateObject(); /* no body is an empty object, as on JSON routes */
	j = mk_json_parse(r->body, r->body_len, MK_JSON_MAX_DEPTH, perr, sizeof(perr));

	if (!j) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s", perr);
		gw_reply_error(r, MK_E_INVALID_JSON, msg);
		return NULL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		gw_reply_error(r, MK_E_VALIDATION, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Copy form field `name` into obj as a string; answer 422 and return -1 when malformed. */
static int form_field(gw_req *r, cJSON *obj, const char *name, const char *as, size_t max,
                      int required)
{
	char *v = malloc(max + 1), msg[160];
	int rc = v ? gw_form_get(r->body, r->body_len, name, v, max + 1) : -1;

	if (rc < 0 || (rc == 0 && required)) {
		snprintf(msg, sizeof(msg),
		         rc < 0 ? "form field '%s' is malformed, repeated or too long"
		                : "missing form field '%s'",
		         name);
		gw_reply_error(r, MK_E_VALIDATION, msg);
		free(v);
		return -1;
	}
	if (rc == 1 && mk_utf8_valid_prefix((const unsigned char *)v, strlen(v)) != strlen(v)) {
		snprintf(msg, sizeof(msg), "form field '%s' is not valid UTF-8", name);
		gw_reply_error(r, MK_E_VALIDATION, msg);
		memset(v, 0, max + 1);
		free(v);
		return -1;
	}
	if (rc == 1)
		cJSON_AddStringToObject(obj, as, v);
	if (v)
		memset(v, 0, max + 1); /* may be a password */
	free(v);
	return 0;
}

/* The OAuth2 grant_type, when given, must be the one this route serves. */
static int check_grant(gw_req *r, const char *want)
{
	char g[64], msg[160];
	int rc = gw_form_get(r->body, r->body_len, "grant_type", g, sizeof(g));

	if (rc == 0 || (rc == 1 && strcmp(g, want) == 0))
		return 0;
	snprintf(msg, sizeof(msg), "unsupported grant_type (this endpoint takes '%s')", want);
	gw_reply_error(r, MK_E_VALIDATION, msg);
	return -1;
}

static void client_ip(const gw_req *r, char *out, size_t outlen)
{
	const char *xff =
	    r->gw->cfg->trust_forwarded_for ? mg_get_header(r->conn, "X-Forwarded-For") : NULL;
	size_t n;

	if (xff) {
		while (*xff == ' ')
			xff++;
		n = strspn(xff, "0123456789abcdefABCDEF.:");
		if (n > 0 && n < outlen) {
			memcpy(out, xff, n);
			out[n] = '\0';
			return;
		}
	}
	snprintf(out, outlen, "%s", r->ri->remote_addr);
}

void gw_auth_signup(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNUP, r->json, 201);
}

void gw_auth_signin(gw_req *r)
{
	cJSON *body;
	char ip[64];

	if (body_is_form(r)) {
		body = cJSON_CreateObject();
		if (check_grant(r, "password") != 0 ||
		    form_field(r, body, "username", "email", 1024, 1) != 0 ||
		    form_field(r, body, "password", "password", 1024, 1) != 0) {
			cJSON_Delete(body);
			return;
		}
	} else if (!(body = json_body(r))) {
		return;
	}
	client_ip(r, ip, sizeof(ip));
	cJSON_DeleteItemFromObjectCaseSensitive(body, "client_ip");
	cJSON_AddStringToObject(body, "client_ip", ip);
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNIN, body, 200);
	cJSON_Delete(body);
}

void gw_auth_refresh(gw_req *r)
{
	cJSON *body;

	if (body_is_form(r)) {
		body = cJSON_CreateObject();
		if (check_grant(r, "refresh_token") != 0 ||
		    form_field(r, body, "refresh_token", "refresh_token", 512, 1) != 0) {
			cJSON_Delete(body);
			return;
		}
	} else if (!(body = json_body(r))) {
		return;
	}
	gw_forward(r, GW_AUTH, MK_OP_AUTH_REFRESH, body, 200);
	cJSON_Delete(body);
}

void gw_auth_signout(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNOUT, r->json, 204);
}

void gw_auth_me(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_ME, NULL, 200);
}
