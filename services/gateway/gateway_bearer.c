/*
 * gateway_bearer.c - the Bearer guard of every /api/v1 route: the gateway
 * verifies access tokens itself with auth's public key (and the previous
 * one while keys rotate), no round trip, and keeps each verified token in
 * a small cache so that it is checked once.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <pthread.h>

#include <sodium.h>

#include "gateway.h"
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
