/*
 * mk_jwt.h - Mark's access tokens: compact JWS with ES256 (ECDSA P-256,
 * SHA-256), signed by auth with its private key and verified by the
 * gateway with the public key, with no round trip.
 *
 * Keys are PEM files (EC P-256). Each key's id (`kid` header) is its RFC
 * 7638 JWK thumbprint (base64url SHA-256 of {"crv","kty","x","y"}), so both
 * ends derive the same id from the key itself and rotation needs no extra
 * setting: the gateway holds the current and the previous public key and
 * picks by kid.
 *
 * Verification accepts only: a well-formed three-part token of bounded
 * size, header {"alg":"ES256","typ":"JWT" (optional),"kid":<a known key>},
 * a valid signature by that key, the expected `iss` and `aud` (a string, or
 * an array containing it), `exp` in the future (with leeway), `nbf`/`iat`
 * not in the future (with leeway), a string `sub` and a string `role`.
 * The algorithm is never taken from the token: a token claiming HS256,
 * none, or anything else is rejected before any key is used.
 */
#ifndef MK_JWT_H
#define MK_JWT_H

#include <stddef.h>
#include <stdint.h>

/* Longest token accepted (bytes). */
#define MK_JWT_MAX 4096

typedef struct mk_jwt_key mk_jwt_key;

/*
 * Load a PEM key from a file: a private key (for signing; its public half
 * also verifies) or a public key. Only EC P-256 is accepted. Returns NULL
 * with a message in err naming the file (never its contents).
 */
mk_jwt_key *mk_jwt_key_load(const char *path, char *err, size_t errlen);
/* The same from PEM text in memory (for tests). */
mk_jwt_key *mk_jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen);
void mk_jwt_key_free(mk_jwt_key *k); /* zeroes private material; NULL ok */
/* The key id (RFC 7638 thumbprint, base64url, 43 chars). */
const char *mk_jwt_key_id(const mk_jwt_key *k);
int mk_jwt_key_is_private(const mk_jwt_key *k);

typedef struct {
	char sub[65];     /* user id */
	char role[16];    /* "user" or "admin" */
	char email[321];  /* optional; "" when absent */
	int64_t iat, exp; /* unix seconds */
} mk_jwt_claims;

/*
 * Sign claims with a private key: header {"alg":"ES256","typ":"JWT","kid"},
 * payload {iss, aud, sub, role, email?, iat, exp, jti}. Returns a malloc'd
 * token, or NULL with err.
 */
char *mk_jwt_sign(const mk_jwt_key *key, const char *iss, const char *aud, const mk_jwt_claims *c,
                  char *err, size_t errlen);

/*
 * Verify token against keys[0..nkeys) (entries may be NULL). now is unix
 * seconds. On success returns 0 and fills *out. On failure returns -1 with
 * a short reason in err ("token expired", "unknown key id", "bad
 * signature", "wrong audience", ...) suitable for a 401 message.
 * Thread-safe; keys are read-only.
 */
int mk_jwt_verify(const char *token, const mk_jwt_key *const *keys, size_t nkeys, const char *iss,
                  const char *aud, int64_t now, int leeway_s, mk_jwt_claims *out, char *err,
                  size_t errlen);

#endif
