/*
 * auth_tokens.c - access and refresh tokens: issue a pair, rotate a
 * refresh token (detecting reuse), revoke on sign-out.
 *
 * A refresh token is "mrt_" + 32 random bytes in base64url. Only its
 * SHA-256 is stored. Rotation marks the presented token used and issues a
 * new one in the same family; presenting a used token again means it was
 * copied, so the whole family is revoked and the holder must sign in.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth.h"
#include "mk_log.h"
#include "mk_time.h"

#define TOKEN_PREFIX "mrt_"

/* SHA-256 of a token as hex, for bytea input ('\x...'). */
static void token_hash_hex(const char *token, char out[2 + 2 * crypto_hash_sha256_BYTES + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
	out[0] = '\\';
	out[1] = 'x';
	sodium_bin2hex(out + 2, 2 * crypto_hash_sha256_BYTES + 1, h, sizeof(h));
}

cJSON *auth_tokens_issue(auth *a, PGconn *c, const char *user_id, const char *email,
                         const char *role, const char *family, char *err, size_t errlen)
{
	unsigned char raw[32];
	char token[sizeof(TOKEN_PREFIX) + 64], hash[2 + 64 + 1], ttl[24];
	const char *p[4] = {user_id, family, hash, ttl};
	mk_jwt_claims claims;
	PGresult *r;
	cJSON *out;
	char *access;

	randombytes_buf(raw, sizeof(raw));
	memcpy(token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
	sodium_bin2base64(token + sizeof(TOKEN_PREFIX) - 1,
	                  sizeof(token) - sizeof(TOKEN_PREFIX) + 1, raw, sizeof(raw),
	                  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	token_hash_hex(token, hash);
	snprintf(ttl, sizeof(ttl), "%lld", a->cfg->refresh_ttl_ms);
	r = mk_db_exec(c,
	               "INSERT INTO refresh_tokens (user_id, family_id, token_hash, expires_at) "
	               "VALUES ($1, coalesce($2::uuid, gen_random_uuid()), $3::bytea, "
	               "now() + make_interval(secs => $4::float8 / 1000))",
	               4, p, err, errlen, NULL);
	if (!r)
		return NULL;
	PQclear(r);

	memset(&claims, 0, sizeof(claims));
	snprintf(claims.sub, sizeof(claims.sub), "%s", user_id);
	snprintf(claims.role, sizeof(claims.role), "%s", role);
	snprintf(claims.email, sizeof(claims.email), "%s", email);
	claims.iat = (int64_t)time(NULL);
	claims.exp = claims.iat + a->cfg->access_ttl_ms / 1000;
	access =
	    mk_jwt_sign(a->key, a->cfg->jwt_issuer, a->cfg->jwt_audience, &claims, err, errlen);
	if (!access) {
		sodium_memzero(token, sizeof(token));
		return NULL;
	}
	out = cJSON_CreateObject();
	if (out) {
		cJSON_AddStringToObject(out, "access_token", access);
		cJSON_AddStringToObject(out, "token_type", "bearer");
		cJSON_AddNumberToObject(out, "expires_in", (double)(a->cfg->access_ttl_ms / 1000));
		cJSON_AddStringToObject(out, "refresh_token", token);
	}
	sodium_memzero(access, strlen(access));
	free(access);
	sodium_memzero(token, sizeof(token));
	return out;
}

/* Run a statement whose result we only need to succeed. */
static int exec_ok(PGconn *c, const char *sql, int n, const char *const *p, char *err,
                   size_t errlen)
{
	PGresult *r = mk_db_exec(c, sql, n, p, err, errlen, NULL);

	PQclear(r);
	return r ? 0 : -1;
}

mk_err auth_refresh(AUTH_HANDLER_ARGS)
{
	const char *token = mk_json_str(req->body, "refresh_token");
	char hash[2 + 64 + 1], user_id[64], family[64], email[321], role[16];
	const char *p[2] = {hash, NULL};
	PGresult *r = NULL;
	PGconn *c;
	mk_err e = MK_E_DB;
	int used, revoked, expired;

	token_hash_hex(token, hash);
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	if (exec_ok(c, "BEGIN", 0, NULL, err, errlen) != 0)
		goto out;
	/* FOR UPDATE: two refreshes with one token are serialised, and the
	 * second sees it used. */
	r = mk_db_exec(
	    c,
	    "SELECT t.user_id, t.family_id, t.used_at IS NOT NULL, t.revoked_at IS NOT NULL, "
	    "t.expires_at < now(), u.email, u.role FROM refresh_tokens t "
	    "JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1::bytea FOR UPDATE OF t",
	    1, p, err, errlen, NULL);
	if (!r)
		goto out;
	if (PQntuples(r) == 0) {
		snprintf(err, errlen, "unknown refresh token");
		e = MK_E_INVALID_TOKEN;
		goto out;
	}
	snprintf(user_id, sizeof(user_id), "%s", PQgetvalue(r, 0, 0));
	snprintf(family, sizeof(family), "%s", PQgetvalue(r, 0, 1));
	used = PQgetvalue(r, 0, 2)[0] == 't';
	revoked = PQgetvalue(r, 0, 3)[0] == 't';
	expired = PQgetvalue(r, 0, 4)[0] == 't';
	snprintf(email, sizeof(email), "%s", PQgetvalue(r, 0, 5));
	snprintf(role, sizeof(role), "%s", PQgetvalue(r, 0, 6));
	PQclear(r);
	r = NULL;
	p[0] = family;
	e = MK_E_INVALID_TOKEN;
	if (revoked) {
		snprintf(err, errlen, "refresh token revoked; sign in again");
		goto out;
	}
	if (used) {
		if (exec_ok(c,
		            "UPDATE refresh_tokens SET revoked_at = now() "
		            "WHERE family_id = $1 AND revoked_at IS NULL",
		            1, p, err, errlen) != 0 ||
		    exec_ok(c, "COMMIT", 0, NULL, err, errlen) != 0) {
			e = MK_E_DB;
			goto out;
		}
		MK_WARN("AUTH-REFRESH-REUSE", req->rid,
		        "reused refresh token: family revoked (user %s)", user_id);
		snprintf(err, errlen,
		         "refresh token already used; every session of that sign-in is "
		         "revoked, sign in again");
		PQclear(r);
		mk_db_release(a->svc.db, c);
		return MK_E_INVALID_TOKEN;
	}
	if (expired) {
		snprintf(err, errlen, "refresh token expired; sign in again");
		goto out;
	}
	p[0] = hash;
	if (exec_ok(c, "UPDATE refresh_tokens SET used_at = now() WHERE token_hash = $1::bytea", 1,
	            p, err, errlen) != 0) {
		e = MK_E_DB;
		goto out;
	}
	*reply = auth_tokens_issue(a, c, user_id, email, role, family, err, errlen);
	if (!*reply || exec_ok(c, "COMMIT", 0, NULL, err, errlen) != 0) {
		cJSON_Delete(*reply);
		*reply = NULL;
		e = MK_E_DB;
		goto out;
	}
	mk_db_release(a->svc.db, c);
	return MK_OK;
out:
	PQclear(r);
	/* Release closes a connection left inside a transaction. */
	mk_db_release(a->svc.db, c);
	return e;
}

mk_err auth_signout(AUTH_HANDLER_ARGS)
{
	char hash[2 + 64 + 1];
	const char *p[1] = {hash};
	PGconn *c;
	int rc;

	(void)reply;
	token_hash_hex(mk_json_str(req->body, "refresh_token"), hash);
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	/* Signing out ends that sign-in: the token's whole family. Unknown
	 * tokens are fine: signing out twice is not an error. */
	rc = exec_ok(
	    c,
	    "UPDATE refresh_tokens SET revoked_at = now() WHERE revoked_at IS NULL AND "
	    "family_id = (SELECT family_id FROM refresh_tokens WHERE token_hash = $1::bytea)",
	    1, p, err, errlen);
	mk_db_release(a->svc.db, c);
	return rc == 0 ? MK_OK : MK_E_DB;
}
