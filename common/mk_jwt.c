/*
 * mk_jwt.c - ES256 access tokens (see mk_jwt.h), directly on OpenSSL 3's
 * EVP interface.
 *
 * libjwt is deliberately not used: version 1.10 takes the algorithm from
 * the token's own header, the classic algorithm-confusion hole (an "HS256"
 * token MACed with the public key PEM as its secret). Here ES256 is fixed
 * in code. The header is checked before any key is touched, and the payload
 * is parsed only once the signature is good, so unauthenticated input meets
 * nothing but the base64 decoder and a small, depth-limited JSON parse.
 *
 * Encodings are strict so that each token has one spelling: base64url
 * without padding, white space or non-zero trailing bits, and JSON objects
 * without duplicate members (cJSON would keep the first, JavaScript the
 * last). ECDSA signatures themselves stay malleable ((r, n - s) is valid
 * too), as JWS allows, so a token string is not a unique identifier; jti is.
 *
 * Not done here: fetching keys (jku, x5u, jwk and x5c headers are
 * rejected), revocation, reading the clock (callers pass `now`) and
 * logging. Layer: common/, used by auth (sign) and the gateway (verify).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "mk_json.h"
#include "mk_buf.h"
#include "mk_jwt.h"

#define KID_LEN     43              /* base64url of a SHA-256 digest */
#define COORD_LEN   32              /* a P-256 coordinate or scalar */
#define SIG_LEN     (2 * COORD_LEN) /* JWS ES256 signature: R || S */
#define SIG_B64_LEN 86              /* base64url of SIG_LEN bytes */
#define JSON_DEPTH  8               /* header and payload nesting limit */
#define PEM_MAX     (64 * 1024)     /* largest key file read */
#define SUB_MAX     64
#define EMAIL_MAX   320
#define JTI_BYTES   16
/* Times are integers a JSON number holds exactly (2^53 - 1). */
#define TIME_MAX 9007199254740991LL

struct mk_jwt_key {
	EVP_PKEY *pkey;
	int is_private;
	char kid[KID_LEN + 1];
};

/* base64url (RFC 4648 section 5), never padded. */

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t b64_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Encode in[0..n) into out, which has room for b64_len(n) + 1 bytes. */
static void b64_encode(const unsigned char *in, size_t n, char *out)
{
	uint32_t v;
	size_t i, o = 0;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
		out[o++] = b64_alphabet[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)in[i] << 16;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
	} else if (n - i == 2) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64_alphabet[v >> 18 & 63];
		out[o++] = b64_alphabet[v >> 12 & 63];
		out[o++] = b64_alphabet[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

/*
 * Decode s[0..n) into out (room for n / 4 * 3 + 2 bytes). Only the URL-safe
 * alphabet; no padding or white space; the unused low bits of the last
 * character must be zero, so no two spellings decode to the same bytes.
 * Returns 0 and writes *outlen, or -1.
 */
static int b64_decode(const char *s, size_t n, unsigned char *out, size_t *outlen)
{
	uint32_t acc = 0;
	int bits = 0, v;
	size_t i, o = 0;

	if (n % 4 == 1)
		return -1;
	for (i = 0; i < n; i++) {
		v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (acc != 0)
		return -1;
	*outlen = o;
	return 0;
}

/* Keys */

/* Never prompt on the terminal for a passphrase (OpenSSL's default). */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static EVP_PKEY *read_pem(const char *pem, size_t len)
{
	EVP_PKEY *pkey;
	BIO *b;

	b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return NULL;
	pkey = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (pkey)
		return pkey;
	ERR_clear_error();
	b = BIO_new_mem_buf(pem, (int)len);
	if (!b)
		return NULL;
	pkey = PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	return pkey;
}

static int has_private(const EVP_PKEY *pkey)
{
	BIGNUM *d = NULL;

	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d))
		return 0;
	BN_clear_free(d);
	return 1;
}

static int check_p256(const EVP_PKEY *pkey, char *err, size_t errlen)
{
	char group[64] = "";
	size_t glen = 0;
	const char *type;

	if (!EVP_PKEY_is_a(pkey, "EC")) {
		type = EVP_PKEY_get0_type_name(pkey);
		mk_errf(err, errlen, "unsupported key type '%s' (only EC P-256 keys are accepted)",
		        type ? type : "unknown");
		return -1;
	}
	if (!EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
	                                    &glen)) {
		mk_errf(err, errlen, "EC key without a named curve (only P-256 is accepted)");
		return -1;
	}
	if (strcmp(group, "prime256v1") != 0) {
		mk_errf(err, errlen, "unsupported EC curve '%s' (only P-256 is accepted)", group);
		return -1;
	}
	return 0;
}

/* The public point is on the curve; for a private key, it matches d. */
static int check_consistent(EVP_PKEY *pkey, int is_private)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	int ok;

	if (!c)
		return -1;
	ok = is_private ? EVP_PKEY_check(c) : EVP_PKEY_public_check(c);
	EVP_PKEY_CTX_free(c);
	return ok == 1 ? 0 : -1;
}

/* RFC 7638: base64url(SHA-256({"crv":"P-256","kty":"EC","x":..,"y":..})). */
static int thumbprint(const EVP_PKEY *pkey, char kid[KID_LEN + 1])
{
	BIGNUM *x = NULL, *y = NULL;
	unsigned char xb[COORD_LEN], yb[COORD_LEN], md[32];
	char xs[KID_LEN + 1], ys[KID_LEN + 1], jwk[160];
	int n, rc = -1;

	if (!EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y))
		goto out;
	if (BN_bn2binpad(x, xb, COORD_LEN) != COORD_LEN ||
	    BN_bn2binpad(y, yb, COORD_LEN) != COORD_LEN)
		goto out;
	b64_encode(xb, COORD_LEN, xs);
	b64_encode(yb, COORD_LEN, ys);
	n = snprintf(jwk, sizeof(jwk),
	             "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs, ys);
	if (n < 0 || (size_t)n >= sizeof(jwk))
		goto out;
	if (!EVP_Digest(jwk, (size_t)n, md, NULL, EVP_sha256(), NULL))
		goto out;
	b64_encode(md, sizeof(md), kid);
	rc = 0;
out:
	BN_free(x);
	BN_free(y);
	return rc;
}

mk_jwt_key *mk_jwt_key_from_pem(const char *pem, size_t len, char *err, size_t errlen)
{
	EVP_PKEY *pkey;
	mk_jwt_key *k;
	int is_private;

	if (!pem || len == 0) {
		mk_errf(err, errlen, "empty key");
		return NULL;
	}
	if (len > PEM_MAX) {
		mk_errf(err, errlen, "key longer than %d bytes", PEM_MAX);
		return NULL;
	}
	pkey = read_pem(pem, len);
	ERR_clear_error();
	if (!pkey) {
		if (memmem(pem, len, "ENCRYPTED", 9))
			mk_errf(err, errlen,
			        "encrypted private key (passphrases are not supported)");
		else
			mk_errf(err, errlen, "no PEM private or public key found");
		return NULL;
	}
	if (check_p256(pkey, err, errlen) < 0)
		goto fail;
	is_private = has_private(pkey);
	if (check_consistent(pkey, is_private) < 0) {
		mk_errf(err, errlen, "EC key fails its consistency check");
		goto fail;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		mk_errf(err, errlen, "out of memory");
		goto fail;
	}
	if (thumbprint(pkey, k->kid) < 0) {
		free(k);
		mk_errf(err, errlen, "cannot compute the key id");
		goto fail;
	}
	k->pkey = pkey;
	k->is_private = is_private;
	ERR_clear_error();
	return k;
fail:
	EVP_PKEY_free(pkey);
	ERR_clear_error();
	return NULL;
}

/* Read a whole regular file of at most PEM_MAX bytes; *out is malloc'd. */
static int read_file(const char *path, char **out, size_t *outlen, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	size_t len, got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		mk_errf(err, errlen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		mk_errf(err, errlen, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		mk_errf(err, errlen, "not a regular file");
		close(fd);
		return -1;
	}
	if (st.st_size > PEM_MAX) {
		mk_errf(err, errlen, "larger than %d bytes", PEM_MAX);
		close(fd);
		return -1;
	}
	len = (size_t)st.st_size;
	buf = malloc(len + 1);
	if (!buf) {
		mk_errf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	while (got < len) {
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			mk_errf(err, errlen, "%s", strerror(errno));
			explicit_bzero(buf, got);
			free(buf);
			close(fd);
			return -1;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*out = buf;
	*outlen = got;
	return 0;
}

mk_jwt_key *mk_jwt_key_load(const char *path, char *err, size_t errlen)
{
	char msg[160];
	char *pem = NULL;
	size_t len = 0;
	mk_jwt_key *k;

	if (!path || !*path) {
		mk_errf(err, errlen, "no key file given");
		return NULL;
	}
	if (read_file(path, &pem, &len, msg, sizeof(msg)) < 0) {
		mk_errf(err, errlen, "cannot read key file '%s': %s", path, msg);
		return NULL;
	}
	k = mk_jwt_key_from_pem(pem, len, msg, sizeof(msg));
	explicit_bzero(pem, len);
	free(pem);
	if (!k)
		mk_errf(err, errlen, "cannot load key file '%s': %s", path, msg);
	return k;
}

void mk_jwt_key_free(mk_jwt_key *k)
{
	if (!k)
		return;
	/* OpenSSL clears the private scalar when it frees the key. */
	EVP_PKEY_free(k->pkey);
	explicit_bzero(k, sizeof(*k));
	free(k);
}

const char *mk_jwt_key_id(const mk_jwt_key *k)
{
	return k ? k->kid : "";
}

int mk_jwt_key_is_private(const mk_jwt_key *k)
{
	return k ? k->is_private : 0;
}

/* ES256 */

/* Sign data with SHA-256/ECDSA and write the JWS form R || S. 0 or -1. */
static int es256_sign(EVP_PKEY *pkey, const char *data, size_t len, unsigned char sig[SIG_LEN])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	ECDSA_SIG *s = NULL;
	const BIGNUM *r, *sv;
	int rc = -1;

	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
		goto out;
	if (EVP_DigestSign(md, der, &derlen, (const unsigned char *)data, len) != 1)
		goto out;
	s = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	if (!s || p != der + derlen)
		goto out;
	ECDSA_SIG_get0(s, &r, &sv);
	if (BN_bn2binpad(r, sig, COORD_LEN) != COORD_LEN ||
	    BN_bn2binpad(sv, sig + COORD_LEN, COORD_LEN) != COORD_LEN)
		goto out;
	rc = 0;
out:
	ECDSA_SIG_free(s);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

/* 1 when sig (R || S) is a valid ES256 signature of data by pkey, else 0. */
static int es256_verify(EVP_PKEY *pkey, const char *data, size_t len,
                        const unsigned char sig[SIG_LEN])
{
	ECDSA_SIG *s = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(sig, COORD_LEN, NULL);
	BIGNUM *sv = BN_bin2bn(sig + COORD_LEN, COORD_LEN, NULL);
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	int derlen, ok = 0;

	if (!s || !r || !sv || !ECDSA_SIG_set0(s, r, sv))
		goto out;
	r = sv = NULL; /* now owned by s */
	derlen = i2d_ECDSA_SIG(s, &der);
	if (derlen <= 0)
		goto out;
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pkey) != 1)
		goto out;
	ok = EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)data, len) == 1;
out:
	BN_free(r);
	BN_free(sv);
	ECDSA_SIG_free(s);
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return ok;
}

/* Signing */

static int check_claims(const mk_jwt_claims *c, char *err, size_t errlen)
{
	size_t n = strnlen(c->sub, sizeof(c->sub));

	if (n == 0 || n > SUB_MAX) {
		mk_errf(err, errlen, "subject must be 1 to %d bytes", SUB_MAX);
		return -1;
	}
	if (strnlen(c->role, sizeof(c->role)) == sizeof(c->role) ||
	    (strcmp(c->role, "user") != 0 && strcmp(c->role, "admin") != 0)) {
		mk_errf(err, errlen, "role must be 'user' or 'admin'");
		return -1;
	}
	if (strnlen(c->email, sizeof(c->email)) > EMAIL_MAX) {
		mk_errf(err, errlen, "email longer than %d bytes", EMAIL_MAX);
		return -1;
	}
	if (c->iat < 0 || c->exp <= c->iat || c->exp > TIME_MAX) {
		mk_errf(err, errlen, "exp must be after iat and both in 0..2^53");
		return -1;
	}
	return 0;
}

static int new_jti(char out[2 * JTI_BYTES + 1])
{
	unsigned char r[JTI_BYTES];
	size_t got = 0;
	ssize_t n;
	int i;

	while (got < sizeof(r)) {
		n = getrandom(r + got, sizeof(r) - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	for (i = 0; i < JTI_BYTES; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* The payload JSON (malloc'd), or NULL when out of memory. */
static char *payload_json(const char *iss, const char *aud, const mk_jwt_claims *c, const char *jti)
{
	char iat[24], exp[24];
	cJSON *o = cJSON_CreateObject();
	char *s = NULL;

	/* Raw numbers: cJSON would print large integers through a double. */
	snprintf(iat, sizeof(iat), "%" PRId64, c->iat);
	snprintf(exp, sizeof(exp), "%" PRId64, c->exp);
	if (!o || !cJSON_AddStringToObject(o, "iss", iss) ||
	    !cJSON_AddStringToObject(o, "aud", aud) || !cJSON_AddStringToObject(o, "sub", c->sub) ||
	    !cJSON_AddStringToObject(o, "role", c->role) ||
	    (c->email[0] && !cJSON_AddStringToObject(o, "email", c->email)) ||
	    !cJSON_AddRawToObject(o, "iat", iat) || !cJSON_AddRawToObject(o, "exp", exp) ||
	    !cJSON_AddStringToObject(o, "jti", jti))
		goto out;
	s = cJSON_PrintUnformatted(o);
out:
	cJSON_Delete(o);
	return s;
}

char *mk_jwt_sign(const mk_jwt_key *key, const char *iss, const char *aud, const mk_jwt_claims *c,
                  char *err, size_t errlen)
{
	char header[96], jti[2 * JTI_BYTES + 1];
	unsigned char sig[SIG_LEN];
	char *payload = NULL, *tok = NULL;
	size_t hlen, plen, total, off;

	if (!key || !key->is_private) {
		mk_errf(err, errlen, "signing needs a private key");
		return NULL;
	}
	if (!iss || !*iss || !aud || !*aud || !c) {
		mk_errf(err, errlen, "signing needs an issuer, an audience and claims");
		return NULL;
	}
	if (check_claims(c, err, errlen) < 0)
		return NULL;
	if (new_jti(jti) < 0) {
		mk_errf(err, errlen, "cannot read random bytes for jti: %s", strerror(errno));
		return NULL;
	}
	snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
	         key->kid);
	payload = payload_json(iss, aud, c, jti);
	if (!payload) {
		mk_errf(err, errlen, "out of memory");
		return NULL;
	}
	hlen = strlen(header);
	plen = strlen(payload);
	total = b64_len(hlen) + 1 + b64_len(plen) + 1 + SIG_B64_LEN;
	if (plen > MK_JWT_MAX || total > MK_JWT_MAX) {
		mk_errf(err, errlen, "token would be longer than %d bytes", MK_JWT_MAX);
		goto out;
	}
	tok = malloc(total + 1);
	if (!tok) {
		mk_errf(err, errlen, "out of memory");
		goto out;
	}
	b64_encode((const unsigned char *)header, hlen, tok);
	off = b64_len(hlen);
	tok[off++] = '.';
	b64_encode((const unsigned char *)payload, plen, tok + off);
	off += b64_len(plen);
	if (es256_sign(key->pkey, tok, off, sig) < 0) {
		mk_errf(err, errlen, "signing failed");
		free(tok);
		tok = NULL;
		goto out;
	}
	tok[off++] = '.';
	b64_encode(sig, SIG_LEN, tok + off);
out:
	free(payload);
	return tok;
}

/* Verification */

/* Decode one base64url part and parse it as a JSON object without duplicate members. */
static cJSON *decode_object(const char *s, size_t n)
{
	unsigned char raw[MK_JWT_MAX];
	size_t len;
	const cJSON *a, *b;
	cJSON *o;
	char jerr[128];

	if (b64_decode(s, n, raw, &len) < 0 || len == 0)
		return NULL;
	o = mk_json_parse((const char *)raw, len, JSON_DEPTH, jerr, sizeof(jerr));
	if (!o)
		return NULL;
	if (!cJSON_IsObject(o))
		goto bad;
	for (a = o->child; a; a = a->next)
		for (b = a->next; b; b = b->next)
			if (strcmp(a->string, b->string) == 0)
				goto bad;
	return o;
bad:
	cJSON_Delete(o);
	return NULL;
}

/* Check the header; returns the key that must have signed the token, or NULL with err. */
static const mk_jwt_key *check_header(const cJSON *h, const mk_jwt_key *const *keys, size_t nkeys,
                                      char *err, size_t errlen)
{
	static const char *const key_refs[] = {"jku", "jwk", "x5u", "x5c"};
	const cJSON *v;
	const char *kid;
	size_t i;

	v = cJSON_GetObjectItemCaseSensitive(h, "alg");
	if (!cJSON_IsString(v) || strcmp(v->valuestring, "ES256") != 0) {
		mk_errf(err, errlen, "unsupported token algorithm (only ES256 is accepted)");
		return NULL;
	}
	if (cJSON_GetObjectItemCaseSensitive(h, "crit")) {
		mk_errf(err, errlen, "unsupported critical token header");
		return NULL;
	}
	for (i = 0; i < sizeof(key_refs) / sizeof(key_refs[0]); i++) {
		if (cJSON_GetObjectItemCaseSensitive(h, key_refs[i])) {
			mk_errf(err, errlen,
			        "token header names a key (jku, jwk, x5u, x5c "
			        "are not accepted)");
			return NULL;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(h, "typ");
	if (v && (!cJSON_IsString(v) || strcmp(v->valuestring, "JWT") != 0)) {
		mk_errf(err, errlen, "unsupported token type (only JWT is accepted)");
		return NULL;
	}
	kid = mk_json_str(h, "kid");
	if (!kid) {
		mk_errf(err, errlen, "missing key id");
		return NULL;
	}
	for (i = 0; keys && i < nkeys; i++)
		if (keys[i] && strcmp(keys[i]->kid, kid) == 0)
			return keys[i];
	mk_errf(err, errlen, "unknown key id");
	return NULL;
}

static int aud_matches(const cJSON *v, const char *aud)
{
	const cJSON *e;

	if (cJSON_IsString(v))
		return strcmp(v->valuestring, aud) == 0;
	if (cJSON_IsArray(v)) {
		cJSON_ArrayForEach(e, v)
		{
			if (cJSON_IsString(e) && strcmp(e->valuestring, aud) == 0)
				return 1;
		}
	}
	return 0;
}

/* A required (or, with optional, possibly absent) integer time in 0..TIME_MAX. */
static int get_time(const cJSON *p, const char *name, int optional, long long *out, int *present)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, name);

	*present = v != NULL;
	if (!v)
		return optional ? 0 : -1;
	if (mk_json_as_int(v, out) < 0 || *out < 0 || *out > TIME_MAX)
		return -1;
	return 0;
}

static int check_payload(const cJSON *p, const char *iss, const char *aud, int64_t now,
                         int64_t leeway, mk_jwt_claims *c, char *err, size_t errlen)
{
	const char *s;
	long long exp, iat, nbf = 0;
	int has;

	s = mk_json_str(p, "iss");
	if (!s || strcmp(s, iss) != 0) {
		mk_errf(err, errlen, "wrong issuer");
		return -1;
	}
	if (!aud_matches(cJSON_GetObjectItemCaseSensitive(p, "aud"), aud)) {
		mk_errf(err, errlen, "wrong audience");
		return -1;
	}
	if (get_time(p, "exp", 0, &exp, &has) < 0) {
		mk_errf(err, errlen, "missing or invalid 'exp'");
		return -1;
	}
	if (get_time(p, "iat", 0, &iat, &has) < 0) {
		mk_errf(err, errlen, "missing or invalid 'iat'");
		return -1;
	}
	if (get_time(p, "nbf", 1, &nbf, &has) < 0) {
		mk_errf(err, errlen, "invalid 'nbf'");
		return -1;
	}
	/* RFC 7519: valid while now < exp. Claims are at most 2^53 and leeway
	 * an int, so none of these sums overflows. */
	if (now >= exp + leeway) {
		mk_errf(err, errlen, "token expired");
		return -1;
	}
	if (has && nbf - leeway > now) {
		mk_errf(err, errlen, "token not yet valid");
		return -1;
	}
	if (iat - leeway > now) {
		mk_errf(err, errlen, "token issued in the future");
		return -1;
	}
	s = mk_json_str(p, "sub");
	if (!s || !*s || strlen(s) > SUB_MAX) {
		mk_errf(err, errlen, "invalid subject");
		return -1;
	}
	memcpy(c->sub, s, strlen(s) + 1);
	s = mk_json_str(p, "role");
	if (!s || (strcmp(s, "user") != 0 && strcmp(s, "admin") != 0)) {
		mk_errf(err, errlen, "invalid role");
		return -1;
	}
	memcpy(c->role, s, strlen(s) + 1);
	c->email[0] = '\0';
	if (cJSON_GetObjectItemCaseSensitive(p, "email")) {
		s = mk_json_str(p, "email");
		if (!s || strlen(s) > EMAIL_MAX) {
			mk_errf(err, errlen, "invalid email");
			return -1;
		}
		memcpy(c->email, s, strlen(s) + 1);
	}
	c->iat = iat;
	c->exp = exp;
	return 0;
}

int mk_jwt_verify(const char *token, const mk_jwt_key *const *keys, size_t nkeys, const char *iss,
                  const char *aud, int64_t now, int leeway_s, mk_jwt_claims *out, char *err,
                  size_t errlen)
{
	const char *dot1, *dot2;
	const mk_jwt_key *key;
	unsigned char sig[SIG_LEN + 2];
	size_t len, hlen, plen, slen, siglen;
	cJSON *h = NULL, *p = NULL;
	mk_jwt_claims c;
	int rc = -1;

	if (!iss || !aud || !out) {
		mk_errf(err, errlen, "no expected issuer or audience");
		return -1;
	}
	if (!token || !*token) {
		mk_errf(err, errlen, "missing token");
		return -1;
	}
	len = strnlen(token, MK_JWT_MAX + 1);
	if (len > MK_JWT_MAX) {
		mk_errf(err, errlen, "token longer than %d bytes", MK_JWT_MAX);
		return -1;
	}
	dot1 = memchr(token, '.', len);
	dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
	if (!dot2 || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token))) {
		mk_errf(err, errlen, "malformed token (not three parts)");
		return -1;
	}
	hlen = (size_t)(dot1 - token);
	plen = (size_t)(dot2 - dot1 - 1);
	slen = len - (size_t)(dot2 + 1 - token);
	if (hlen == 0 || plen == 0 || slen == 0) {
		mk_errf(err, errlen, "malformed token (empty part)");
		return -1;
	}

	h = decode_object(token, hlen);
	if (!h) {
		mk_errf(err, errlen, "malformed token header");
		goto out;
	}
	key = check_header(h, keys, nkeys, err, errlen);
	if (!key)
		goto out;
	if (slen != SIG_B64_LEN || b64_decode(dot2 + 1, slen, sig, &siglen) < 0 ||
	    siglen != SIG_LEN || !es256_verify(key->pkey, token, (size_t)(dot2 - token), sig)) {
		mk_errf(err, errlen, "bad signature");
		goto out;
	}

	p = decode_object(dot1 + 1, plen);
	if (!p) {
		mk_errf(err, errlen, "malformed token payload");
		goto out;
	}
	if (leeway_s < 0)
		leeway_s = 0;
	if (check_payload(p, iss, aud, now, leeway_s, &c, err, errlen) < 0)
		goto out;
	*out = c;
	rc = 0;
out:
	cJSON_Delete(h);
	cJSON_Delete(p);
	return rc;
}
