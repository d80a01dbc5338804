/*
 * jwt_test.c - unit tests for common/mk_jwt.c: ES256 tokens signed and
 * verified with keys generated in the test, key ids checked against an
 * independent RFC 7638 computation and a known answer, hostile tokens
 * (algorithm confusion, forged key ids, malformed encodings, bad claims)
 * crafted by hand, and interoperability with Node's crypto module
 * (tests/unit/common/jwt_interop.js, run from the repository root).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mk_jwt.h"
#include "mt_check.h"

#define ISS     "mark-auth"
#define AUD     "mark"
#define NOW     1700000000LL
#define LEEWAY  60
#define INTEROP "tests/unit/common/jwt_interop.js"

static EVP_PKEY *ka, *kb; /* two P-256 key pairs: "current" and "previous" */
static mk_jwt_key *priv_a, *pub_a, *priv_b, *pub_b;

/* PEM text of a key (private or public half), malloc'd. */
static char *pem_of(EVP_PKEY *pk, int private)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, *s;
	long n;

	ck_assert_ptr_nonnull(b);
	if (private)
		ck_assert_int_eq(PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL, NULL), 1);
	else
		ck_assert_int_eq(PEM_write_bio_PUBKEY(b, pk), 1);
	n = BIO_get_mem_data(b, &data);
	/* The BIO's data is not NUL-terminated: copy exactly n bytes. */
	s = malloc((size_t)n + 1);
	ck_assert_ptr_nonnull(s);
	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	BIO_free(b);
	return s;
}

static mk_jwt_key *key_of(EVP_PKEY *pk, int private)
{
	char *pem = pem_of(pk, private), err[256] = "";
	mk_jwt_key *k = mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err));

	ck_assert_msg(k != NULL, "%s", err);
	free(pem);
	return k;
}

static void setup(void)
{
	ka = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	kb = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	ck_assert_ptr_nonnull(ka);
	ck_assert_ptr_nonnull(kb);
	priv_a = key_of(ka, 1);
	pub_a = key_of(ka, 0);
	priv_b = key_of(kb, 1);
	pub_b = key_of(kb, 0);
}

static void teardown(void)
{
	mk_jwt_key_free(priv_a);
	mk_jwt_key_free(pub_a);
	mk_jwt_key_free(priv_b);
	mk_jwt_key_free(pub_b);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
}

static mk_jwt_claims claims(int64_t iat, int64_t exp)
{
	mk_jwt_claims c;

	memset(&c, 0, sizeof(c));
	snprintf(c.sub, sizeof(c.sub), "u-42");
	snprintf(c.role, sizeof(c.role), "user");
	snprintf(c.email, sizeof(c.email), "ada@example.com");
	c.iat = iat;
	c.exp = exp;
	return c;
}

static char *sign_ok(const mk_jwt_key *k, const mk_jwt_claims *c)
{
	char err[256] = "";
	char *tok = mk_jwt_sign(k, ISS, AUD, c, err, sizeof(err));

	ck_assert_msg(tok != NULL, "%s", err);
	return tok;
}

static char *fresh_token(const mk_jwt_key *k)
{
	mk_jwt_claims c = claims(NOW, NOW + 600);

	return sign_ok(k, &c);
}

/* Verify against {pub_a} at NOW with LEEWAY. */
static int verify_a(const char *tok, mk_jwt_claims *out, char *err, size_t errlen)
{
	const mk_jwt_key *keys[] = {pub_a};

	return mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW, LEEWAY, out, err, errlen);
}

#define ck_accept(tok)                                                                             \
	do {                                                                                       \
		char e_[256] = "";                                                                 \
		mk_jwt_claims c_;                                                                  \
		ck_assert_msg(verify_a((tok), &c_, e_, sizeof(e_)) == 0, "rejected: %s", e_);      \
	} while (0)

#define ck_reject(tok, why)                                                                        \
	do {                                                                                       \
		char e_[256] = "";                                                                 \
		mk_jwt_claims c_;                                                                  \
		ck_assert_msg(verify_a((tok), &c_, e_, sizeof(e_)) == -1, "accepted, want '%s'",   \
		              (why));                                                              \
		ck_assert_msg(strstr(e_, (why)) != NULL, "error '%s', want '%s'", e_, (why));      \
	} while (0)

/* Hand-made tokens: an encoder and signer independent of mk_jwt.c's. */

static char *b64url(const void *data, size_t n)
{
	char *s = malloc(4 * ((n + 2) / 3) + 1);
	int len, i;

	ck_assert_ptr_nonnull(s);
	len = EVP_EncodeBlock((unsigned char *)s, data, (int)n);
	while (len > 0 && s[len - 1] == '=')
		len--;
	s[len] = '\0';
	for (i = 0; i < len; i++) {
		if (s[i] == '+')
			s[i] = '-';
		else if (s[i] == '/')
			s[i] = '_';
	}
	return s;
}

/* Decode unpadded base64url s[0..n) into a malloc'd, NUL-terminated string. */
static char *unb64url(const char *s, size_t n)
{
	size_t padded = (n + 3) / 4 * 4, i;
	unsigned char *in = malloc(padded + 1), *out = malloc(padded / 4 * 3 + 1);
	int len;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	for (i = 0; i < n; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
	for (; i < padded; i++)
		in[i] = '=';
	len = EVP_DecodeBlock(out, in, (int)padded);
	ck_assert_int_ge(len, 0);
	len -= (int)(padded - n); /* EVP_DecodeBlock counts padding as zero bytes */
	out[len] = '\0';
	free(in);
	return (char *)out;
}

/* base64url of an ES256 (R || S) signature of input by pk. */
static char *es256(EVP_PKEY *pk, const char *input)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128], rs[64];
	const unsigned char *p = der;
	size_t derlen = sizeof(der);
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;

	ck_assert_ptr_nonnull(md);
	ck_assert_int_eq(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, pk), 1);
	ck_assert_int_eq(
	    EVP_DigestSign(md, der, &derlen, (const unsigned char *)input, strlen(input)), 1);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
	ck_assert_ptr_nonnull(sig);
	ECDSA_SIG_get0(sig, &r, &s);
	ck_assert_int_eq(BN_bn2binpad(r, rs, 32), 32);
	ck_assert_int_eq(BN_bn2binpad(s, rs + 32, 32), 32);
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	return b64url(rs, sizeof(rs));
}

/* "b64(header).b64(payload)", malloc'd. */
static char *signing_input(const char *header, const char *payload)
{
	char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload)), *in;

	ck_assert_int_gt(asprintf(&in, "%s.%s", h, p), 0);
	free(h);
	free(p);
	return in;
}

/* A token with the given header and payload text, ES256-signed by pk. */
static char *craft(const char *header, const char *payload, EVP_PKEY *pk)
{
	char *in = signing_input(header, payload), *sig = es256(pk, in), *tok;

	ck_assert_int_gt(asprintf(&tok, "%s.%s", in, sig), 0);
	free(in);
	free(sig);
	return tok;
}

/* The same with an HS256 MAC under secret. */
static char *craft_hs256(const char *header, const char *payload, const void *secret, size_t slen)
{
	char *in = signing_input(header, payload), *sig, *tok;
	unsigned char mac[32];
	size_t maclen = 0;

	ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, slen,
	                                (const unsigned char *)in, strlen(in), mac, sizeof(mac),
	                                &maclen));
	sig = b64url(mac, maclen);
	ck_assert_int_gt(asprintf(&tok, "%s.%s", in, sig), 0);
	free(in);
	free(sig);
	return tok;
}

/* Header {"alg":alg,"typ":"JWT","kid":kid} (alg may be NULL: absent), malloc'd. */
static char *header_with(const char *alg, const char *kid)
{
	char *h;

	if (alg)
		ck_assert_int_gt(
		    asprintf(&h, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid), 0);
	else
		ck_assert_int_gt(asprintf(&h, "{\"typ\":\"JWT\",\"kid\":\"%s\"}", kid), 0);
	return h;
}

/* A valid payload at NOW; callers change members before crafting. */
static cJSON *std_payload(void)
{
	cJSON *p = cJSON_CreateObject();

	cJSON_AddStringToObject(p, "iss", ISS);
	cJSON_AddStringToObject(p, "aud", AUD);
	cJSON_AddStringToObject(p, "sub", "u-42");
	cJSON_AddStringToObject(p, "role", "user");
	cJSON_AddNumberToObject(p, "iat", (double)NOW);
	cJSON_AddNumberToObject(p, "exp", (double)(NOW + 600));
	cJSON_AddStringToObject(p, "jti", "00112233445566778899aabbccddeeff");
	return p;
}

static void set_member(cJSON *p, const char *name, cJSON *v)
{
	if (cJSON_GetObjectItemCaseSensitive(p, name))
		cJSON_ReplaceItemInObjectCaseSensitive(p, name, v);
	else
		cJSON_AddItemToObject(p, name, v);
}

/* Craft a token for key A from a payload object (which this deletes). */
static char *craft_a(cJSON *payload)
{
	char *h = header_with("ES256", mk_jwt_key_id(pub_a));
	char *p = cJSON_PrintUnformatted(payload), *tok;

	ck_assert_ptr_nonnull(p);
	tok = craft(h, p, ka);
	cJSON_Delete(payload);
	free(h);
	free(p);
	return tok;
}

/* Payload with one member replaced (or added), as a key-A token. */
static char *with_member(const char *name, cJSON *v)
{
	cJSON *p = std_payload();

	set_member(p, name, v);
	return craft_a(p);
}

static char *without_member(const char *name)
{
	cJSON *p = std_payload();

	cJSON_DeleteItemFromObjectCaseSensitive(p, name);
	return craft_a(p);
}

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/mk_jwt_test_XXXXXX");
	FILE *f;
	int fd;

	ck_assert_ptr_nonnull(path);
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

START_TEST(test_a_token_verifies_with_the_private_key_and_with_its_public_key)
{
	mk_jwt_claims c = claims(NOW, NOW + 600), out;
	const mk_jwt_key *with_priv[] = {priv_a}, *with_pub[] = {pub_a};
	char err[256] = "";
	char *tok = sign_ok(priv_a, &c);

	ck_assert_int_le(strlen(tok), MK_JWT_MAX);
	ck_assert_msg(mk_jwt_verify(tok, with_priv, 1, ISS, AUD, NOW, 0, &out, err, sizeof(err)) ==
	                  0,
	              "%s", err);
	memset(&out, 0, sizeof(out));
	ck_assert_msg(mk_jwt_verify(tok, with_pub, 1, ISS, AUD, NOW, 0, &out, err, sizeof(err)) ==
	                  0,
	              "%s", err);
	ck_assert_str_eq(out.sub, "u-42");
	ck_assert_str_eq(out.role, "user");
	ck_assert_str_eq(out.email, "ada@example.com");
	ck_assert_int_eq(out.iat, NOW);
	ck_assert_int_eq(out.exp, NOW + 600);
	free(tok);

	/* No email: absent from the token, "" after verification. */
	c.email[0] = '\0';
	snprintf(c.role, sizeof(c.role), "admin");
	tok = sign_ok(priv_a, &c);
	ck_assert_int_eq(verify_a(tok, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(out.email, "");
	ck_assert_str_eq(out.role, "admin");
	free(tok);
}
END_TEST

START_TEST(test_a_token_has_the_fixed_header_and_a_random_jti)
{
	char *t1 = fresh_token(priv_a), *t2 = fresh_token(priv_a);
	char *hdr = header_with("ES256", mk_jwt_key_id(pub_a)), *want = b64url(hdr, strlen(hdr));
	size_t n = (size_t)(strchr(t1, '.') - t1);
	char *p1 = unb64url(t1 + n + 1, strcspn(t1 + n + 1, "."));
	char *p2 = unb64url(t2 + n + 1, strcspn(t2 + n + 1, "."));
	char err[128] = "";
	cJSON *j1 = mk_json_parse(p1, strlen(p1), 8, err, sizeof(err));
	cJSON *j2 = mk_json_parse(p2, strlen(p2), 8, err, sizeof(err));
	const char *jti1, *jti2;

	ck_assert_int_eq(n, strlen(want));
	ck_assert_int_eq(strncmp(t1, want, n), 0);
	ck_assert_msg(j1 && j2, "%s", err);
	ck_assert_str_eq(mk_json_str(j1, "iss"), ISS);
	ck_assert_str_eq(mk_json_str(j1, "aud"), AUD);
	/* Times are plain integers, never printed through a double. */
	ck_assert_ptr_nonnull(strstr(p1, "\"iat\":1700000000,"));
	ck_assert_ptr_nonnull(strstr(p1, "\"exp\":1700000600,"));
	jti1 = mk_json_str(j1, "jti");
	jti2 = mk_json_str(j2, "jti");
	ck_assert_ptr_nonnull(jti1);
	ck_assert_ptr_nonnull(jti2);
	ck_assert_int_eq(strlen(jti1), 32);
	ck_assert_int_eq(strspn(jti1, "0123456789abcdef"), 32);
	ck_assert_str_ne(jti1, jti2);
	cJSON_Delete(j1);
	cJSON_Delete(j2);
	free(p1);
	free(p2);
	free(hdr);
	free(want);
	free(t1);
	free(t2);
}
END_TEST

START_TEST(test_the_key_id_is_a_thumbprint_shared_by_both_halves_of_a_key)
{
	ck_assert_int_eq(strlen(mk_jwt_key_id(priv_a)), 43);
	ck_assert_str_eq(mk_jwt_key_id(priv_a), mk_jwt_key_id(pub_a));
	ck_assert_str_eq(mk_jwt_key_id(priv_b), mk_jwt_key_id(pub_b));
	ck_assert_str_ne(mk_jwt_key_id(pub_a), mk_jwt_key_id(pub_b));
	ck_assert_int_eq(mk_jwt_key_is_private(priv_a), 1);
	ck_assert_int_eq(mk_jwt_key_is_private(pub_a), 0);
	ck_assert_int_eq(mk_jwt_key_is_private(NULL), 0);
	mk_jwt_key_free(NULL);
}
END_TEST

START_TEST(test_the_key_id_matches_an_independent_rfc_7638_computation)
{
	unsigned char pt[65], md[SHA256_DIGEST_LENGTH];
	size_t ptlen = 0;
	char jwk[200], *x, *y, *kid;

	/* The encoded point 04 || X || Y, a different path from mk_jwt.c's BIGNUMs. */
	ck_assert_int_eq(
	    EVP_PKEY_get_octet_string_param(ka, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptlen),
	    1);
	ck_assert_int_eq(ptlen, 65);
	ck_assert_int_eq(pt[0], 4);
	x = b64url(pt + 1, 32);
	y = b64url(pt + 33, 32);
	snprintf(jwk, sizeof(jwk), "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
	         x, y);
	SHA256((const unsigned char *)jwk, strlen(jwk), md);
	kid = b64url(md, sizeof(md));
	ck_assert_str_eq(mk_jwt_key_id(pub_a), kid);
	free(x);
	free(y);
	free(kid);
}
END_TEST

/* RFC 7517 appendix A.1/A.2's P-256 key; its thumbprint was computed with
 * Node's crypto and with Python's hashlib, both giving the same answer. */
static const char rfc7517_priv[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg870MB6gfuTJ4HtUn\n"
    "UvYMyJpr5eUZNP4Bk43bVdj3eAGhRANCAAQwoEJM0hwpRIOKLXXJKzfnbqINnwCJ\n"
    "OjtO7oo8Cq/sPuBLZekkVtmIi1Kzeb371R7oae8fD8ZbZllpW2zOCBcj\n"
    "-----END PRIVATE KEY-----\n";
static const char rfc7517_pub[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEMKBCTNIcKUSDii11ySs3526iDZ8A\n"
    "iTo7Tu6KPAqv7D7gS2XpJFbZiItSs3m9+9Ue6GnvHw/GW2ZZaVtszggXIw==\n"
    "-----END PUBLIC KEY-----\n";
static const char rfc7517_kid[] = "cn-I_WNMClehiVp51i_0VpOENW1upEerA8sEam5hn-s";

START_TEST(test_the_key_id_of_a_published_key_matches_the_known_answer)
{
	char err[256] = "";
	mk_jwt_key *priv =
	    mk_jwt_key_from_pem(rfc7517_priv, strlen(rfc7517_priv), err, sizeof(err));
	mk_jwt_key *pub = mk_jwt_key_from_pem(rfc7517_pub, strlen(rfc7517_pub), err, sizeof(err));

	ck_assert_msg(priv && pub, "%s", err);
	ck_assert_str_eq(mk_jwt_key_id(priv), rfc7517_kid);
	ck_assert_str_eq(mk_jwt_key_id(pub), rfc7517_kid);
	mk_jwt_key_free(priv);
	mk_jwt_key_free(pub);
}
END_TEST

START_TEST(test_verify_picks_the_signing_key_among_current_and_previous)
{
	const mk_jwt_key *rotation[] = {pub_b, NULL, pub_a}, *only_b[] = {pub_b};
	char *ta = fresh_token(priv_a), *tb = fresh_token(priv_b);
	char err[256] = "";
	mk_jwt_claims out;

	ck_assert_msg(mk_jwt_verify(ta, rotation, 3, ISS, AUD, NOW, 0, &out, err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_msg(mk_jwt_verify(tb, rotation, 3, ISS, AUD, NOW, 0, &out, err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_int_eq(mk_jwt_verify(ta, only_b, 1, ISS, AUD, NOW, 0, &out, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "unknown key id");
	ck_assert_int_eq(mk_jwt_verify(ta, NULL, 0, ISS, AUD, NOW, 0, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown key id");
	free(ta);
	free(tb);
}
END_TEST

START_TEST(test_a_token_with_an_unknown_key_id_is_rejected)
{
	char *h = header_with("ES256", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	cJSON *pl = std_payload();
	char *p = cJSON_PrintUnformatted(pl), *tok = craft(h, p, ka), *tb = fresh_token(priv_b);

	ck_reject(tok, "unknown key id");
	ck_reject(tb, "unknown key id");
	cJSON_Delete(pl);
	free(h);
	free(p);
	free(tok);
	free(tb);
}
END_TEST

START_TEST(test_an_expired_token_is_rejected_but_accepted_within_the_leeway)
{
	const mk_jwt_key *keys[] = {pub_a};
	mk_jwt_claims c = claims(NOW - 600, NOW - 30), out;
	char err[256] = "", *tok = sign_ok(priv_a, &c);

	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW, 0, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "token expired");
	ck_assert_msg(mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW, 60, &out, err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW, 30, &out, err, sizeof(err)),
	                 -1);
	/* A negative leeway counts as none. */
	ck_assert_int_eq(
	    mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW - 31, -100, &out, err, sizeof(err)), 0);
	free(tok);

	/* RFC 7519: valid only while now < exp. */
	c = claims(NOW - 600, NOW);
	tok = sign_ok(priv_a, &c);
	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW, 0, &out, err, sizeof(err)), -1);
	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, ISS, AUD, NOW - 1, 0, &out, err, sizeof(err)),
	                 0);
	free(tok);
}
END_TEST

START_TEST(test_a_token_issued_in_the_future_is_rejected)
{
	mk_jwt_claims c = claims(NOW + 120, NOW + 720);
	char *tok = sign_ok(priv_a, &c);

	ck_reject(tok, "token issued in the future");
	free(tok);
	c = claims(NOW + 30, NOW + 630); /* clock skew within the leeway */
	tok = sign_ok(priv_a, &c);
	ck_accept(tok);
	free(tok);
}
END_TEST

START_TEST(test_a_token_before_its_nbf_is_rejected)
{
	char *tok = with_member("nbf", cJSON_CreateNumber((double)(NOW + 120)));

	ck_reject(tok, "token not yet valid");
	free(tok);
	tok = with_member("nbf", cJSON_CreateNumber((double)(NOW + 30)));
	ck_accept(tok);
	free(tok);
	tok = with_member("nbf", cJSON_CreateString("soon"));
	ck_reject(tok, "invalid 'nbf'");
	free(tok);
}
END_TEST

START_TEST(test_a_wrong_issuer_or_audience_is_rejected)
{
	const mk_jwt_key *keys[] = {pub_a};
	char err[256] = "", *tok = fresh_token(priv_a);
	mk_jwt_claims out;

	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, "evil", AUD, NOW, 0, &out, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "wrong issuer");
	ck_assert_int_eq(mk_jwt_verify(tok, keys, 1, ISS, "other", NOW, 0, &out, err, sizeof(err)),
	                 -1);
	ck_assert_str_eq(err, "wrong audience");
	free(tok);

	tok = without_member("iss");
	ck_reject(tok, "wrong issuer");
	free(tok);
	tok = without_member("aud");
	ck_reject(tok, "wrong audience");
	free(tok);
	tok = with_member("aud", cJSON_CreateNumber(1));
	ck_reject(tok, "wrong audience");
	free(tok);
}
END_TEST

START_TEST(test_an_audience_array_containing_ours_is_accepted)
{
	const char *ours[] = {"billing", AUD}, *others[] = {"billing", "marketing"};
	char *tok = with_member("aud", cJSON_CreateStringArray(ours, 2));

	ck_accept(tok);
	free(tok);
	tok = with_member("aud", cJSON_CreateStringArray(others, 2));
	ck_reject(tok, "wrong audience");
	free(tok);
	tok = with_member("aud", cJSON_CreateArray());
	ck_reject(tok, "wrong audience");
	free(tok);
}
END_TEST

START_TEST(test_a_tampered_payload_fails_the_signature_check)
{
	char *tok = fresh_token(priv_a), *head = strndup(tok, 12);
	char *payload = strchr(tok, '.') + 1;
	char err[256] = "";
	mk_jwt_claims out;

	payload[10] = payload[10] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(verify_a(tok, &out, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "bad signature");
	/* The reason never quotes the token. */
	ck_assert_ptr_null(strstr(err, head));
	free(head);
	free(tok);
}
END_TEST

START_TEST(test_a_signature_by_another_key_under_a_known_key_id_is_rejected)
{
	char *h = header_with("ES256", mk_jwt_key_id(pub_a));
	cJSON *pl = std_payload();
	char *p = cJSON_PrintUnformatted(pl), *forged = craft(h, p, kb), *genuine = craft(h, p, ka);

	ck_reject(forged, "bad signature");
	ck_accept(genuine);
	cJSON_Delete(pl);
	free(h);
	free(p);
	free(forged);
	free(genuine);
}
END_TEST

START_TEST(test_tokens_claiming_another_algorithm_are_rejected)
{
	static const char *const algs[] = {"none",  "HS256", "RS256",  "PS256",
	                                   "ES384", "es256", "ES256 ", "EdDSA"};
	const char *kid = mk_jwt_key_id(pub_a);
	cJSON *pl = std_payload();
	char *p = cJSON_PrintUnformatted(pl), *h, *tok, *in, *pub_pem;
	size_t i;

	/* Each with a genuine ES256 signature by key A: only the claim differs. */
	for (i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		h = header_with(algs[i], kid);
		tok = craft(h, p, ka);
		ck_reject(tok, "unsupported token algorithm");
		free(tok);
		free(h);
	}
	h = header_with(NULL, kid);
	tok = craft(h, p, ka);
	ck_reject(tok, "unsupported token algorithm");
	free(tok);
	free(h);
	tok = craft("{\"alg\":256,\"kid\":\"x\"}", p, ka);
	ck_reject(tok, "unsupported token algorithm");
	free(tok);

	/* alg none, unsigned: "header.payload." */
	h = header_with("none", kid);
	in = signing_input(h, p);
	ck_assert_int_gt(asprintf(&tok, "%s.", in), 0);
	ck_reject(tok, "empty part");
	free(tok);
	free(in);
	free(h);

	/* The classic confusion: HS256 keyed with the public key's PEM text
	 * (which a library taking alg from the token would accept). */
	pub_pem = pem_of(ka, 0);
	h = header_with("HS256", kid);
	tok = craft_hs256(h, p, pub_pem, strlen(pub_pem));
	ck_reject(tok, "unsupported token algorithm");
	free(tok);
	/* Even claiming ES256, an HMAC is not a signature. */
	free(h);
	h = header_with("ES256", kid);
	tok = craft_hs256(h, p, pub_pem, strlen(pub_pem));
	ck_reject(tok, "bad signature");
	free(tok);
	free(h);
	free(pub_pem);
	cJSON_Delete(pl);
	free(p);
}
END_TEST

START_TEST(test_headers_that_name_keys_or_are_critical_or_odd_are_rejected)
{
	static const struct {
		const char *fmt; /* %s: key A's kid */
		const char *why;
	} cases[] = {
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"crit\":[\"exp\"]}", "critical"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"jku\":\"https://evil/keys\"}", "names a key"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"x5u\":\"https://evil/cert\"}", "names a key"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"jwk\":{\"kty\":\"EC\"}}", "names a key"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"x5c\":[\"MIIB\"]}", "names a key"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JOSE\"}", "token type"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":1}", "token type"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\",\"kid\":\"x\"}", "malformed token header"},
	    {"{\"alg\":\"ES256\",\"alg\":\"none\",\"kid\":\"%s\"}", "malformed token header"},
	    {"[\"ES256\",\"%s\"]", "malformed token header"},
	    {"{\"alg\":\"ES256\",\"kid\":\"%s\"", "malformed token header"},
	    {"{\"alg\":\"ES256\",\"x\":[[[[[[[[1]]]]]]]],\"kid\":\"%s\"}",
	     "malformed token header"},
	    {"{\"alg\":\"ES256\",\"kidd\":\"%s\"}", "missing key id"},
	    {"{\"alg\":\"ES256\",\"kid\":[\"%s\"]}", "missing key id"},
	};
	cJSON *pl = std_payload();
	char *p = cJSON_PrintUnformatted(pl), h[512], *tok;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(h, sizeof(h), cases[i].fmt, mk_jwt_key_id(pub_a));
		tok = craft(h, p, ka);
		ck_reject(tok, cases[i].why);
		free(tok);
	}
	/* typ may be absent; other harmless members are ignored. */
	snprintf(h, sizeof(h), "{\"kid\":\"%s\",\"alg\":\"ES256\",\"cty\":\"x\"}",
	         mk_jwt_key_id(pub_a));
	tok = craft(h, p, ka);
	ck_accept(tok);
	free(tok);
	cJSON_Delete(pl);
	free(p);
}
END_TEST

START_TEST(test_malformed_tokens_are_rejected)
{
	char *tok = fresh_token(priv_a), *bad, *sig;
	size_t n = strlen(tok), i;
	int v;

	ck_accept(tok);
	ck_reject(NULL, "missing token");
	ck_reject("", "missing token");
	ck_reject("abc", "three parts");
	ck_reject("a.b", "three parts");
	ck_reject("a.b.c.d", "three parts");
	ck_reject("..", "empty part");
	ck_reject("a..c", "empty part");
	ck_reject(".b.c", "empty part");
	ck_reject("a.b.", "empty part");

	ck_assert_int_gt(asprintf(&bad, "%s.e30", tok), 0); /* four parts */
	ck_reject(bad, "three parts");
	free(bad);
	ck_assert_int_gt(asprintf(&bad, " %s", tok), 0);
	ck_reject(bad, "malformed token header");
	free(bad);
	ck_assert_int_gt(asprintf(&bad, "%s\n", tok), 0);
	ck_reject(bad, "bad signature");
	free(bad);
	ck_assert_int_gt(asprintf(&bad, "%s==", tok), 0);
	ck_reject(bad, "bad signature");
	free(bad);

	/* Padding or white space inside the header or payload. */
	bad = strdup(tok);
	*strchr(bad, '.') = '=';
	ck_reject(bad, "three parts");
	free(bad);
	i = (size_t)(strchr(tok, '.') - tok);
	ck_assert_int_gt(asprintf(&bad, "%.*s=%s", (int)i, tok, tok + i), 0);
	ck_reject(bad, "malformed token header");
	free(bad);
	ck_assert_int_gt(asprintf(&bad, "%.*s %s", (int)i + 3, tok, tok + i + 3), 0);
	ck_reject(bad, "bad signature"); /* the payload is only read after the signature */
	free(bad);

	/* The standard alphabet's + and / are not base64url. */
	bad = strdup(tok);
	bad[2] = '+';
	ck_reject(bad, "malformed token header");
	bad[2] = '/';
	ck_reject(bad, "malformed token header");
	free(bad);

	/* The same signature bytes spelled with non-zero unused bits. */
	bad = strdup(tok);
	sig = bad + n - 1;
	v = (int)(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *sig) -
	          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
	*sig = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[v ^ 1];
	ck_reject(bad, "bad signature");
	free(bad);

	/* A truncated signature. */
	bad = strndup(tok, n - 4);
	ck_reject(bad, "bad signature");
	free(bad);

	/* Over the size limit before anything else is looked at. */
	bad = repeat('A', MK_JWT_MAX + 1);
	bad[10] = bad[20] = '.';
	ck_reject(bad, "longer than 4096");
	free(bad);
	free(tok);
}
END_TEST

START_TEST(test_the_size_limit_holds_for_validly_signed_tokens)
{
	char *pad, *tok;
	size_t n, len;
	int accepted = 0, rejected = 0;
	cJSON *p;

	/* Grow an extra claim a byte at a time across the limit. */
	for (n = 2700; n < 3200 && !rejected; n++) {
		pad = repeat('x', n);
		p = std_payload();
		cJSON_AddStringToObject(p, "pad", pad);
		tok = craft_a(p);
		len = strlen(tok);
		if (len <= MK_JWT_MAX) {
			ck_accept(tok);
			accepted += len > MK_JWT_MAX - 4;
		} else {
			ck_reject(tok, "longer than 4096");
			rejected = 1;
		}
		free(tok);
		free(pad);
	}
	ck_assert_int_gt(accepted, 0);
	ck_assert_int_eq(rejected, 1);
}
END_TEST

START_TEST(test_claims_of_the_wrong_type_or_range_are_rejected)
{
	char *sub64 = repeat('s', 64), *sub65 = repeat('s', 65);
	char *em320 = repeat('e', 320), *em321 = repeat('e', 321), *tok;
	cJSON *deep, *p;
	int i;

	tok = with_member("role", cJSON_CreateString("root"));
	ck_reject(tok, "invalid role");
	free(tok);
	tok = with_member("role", cJSON_CreateString("Admin"));
	ck_reject(tok, "invalid role");
	free(tok);
	tok = without_member("role");
	ck_reject(tok, "invalid role");
	free(tok);
	tok = with_member("role", cJSON_CreateString("admin"));
	ck_accept(tok);
	free(tok);

	tok = with_member("sub", cJSON_CreateString(""));
	ck_reject(tok, "invalid subject");
	free(tok);
	tok = with_member("sub", cJSON_CreateString(sub65));
	ck_reject(tok, "invalid subject");
	free(tok);
	tok = with_member("sub", cJSON_CreateNumber(42));
	ck_reject(tok, "invalid subject");
	free(tok);
	tok = without_member("sub");
	ck_reject(tok, "invalid subject");
	free(tok);
	tok = with_member("sub", cJSON_CreateString(sub64));
	ck_accept(tok);
	free(tok);

	tok = with_member("exp", cJSON_CreateString("1700000600"));
	ck_reject(tok, "invalid 'exp'");
	free(tok);
	tok = with_member("exp", cJSON_CreateNumber((double)NOW + 600.5));
	ck_reject(tok, "invalid 'exp'");
	free(tok);
	tok = with_member("exp", cJSON_CreateNumber(1e300));
	ck_reject(tok, "invalid 'exp'");
	free(tok);
	tok = without_member("exp");
	ck_reject(tok, "missing or invalid 'exp'");
	free(tok);
	tok = without_member("iat");
	ck_reject(tok, "missing or invalid 'iat'");
	free(tok);
	tok = with_member("iat", cJSON_CreateNumber(-1));
	ck_reject(tok, "invalid 'iat'");
	free(tok);

	tok = with_member("email", cJSON_CreateString(em321));
	ck_reject(tok, "invalid email");
	free(tok);
	tok = with_member("email", cJSON_CreateNumber(1));
	ck_reject(tok, "invalid email");
	free(tok);
	tok = with_member("email", cJSON_CreateString(em320));
	ck_accept(tok);
	free(tok);

	/* Nesting: 8 levels are allowed, 9 are not. */
	for (i = 0; i < 2; i++) {
		int levels = 6 + i, j;

		deep = cJSON_CreateNumber(1);
		for (j = 0; j < levels; j++) {
			cJSON *a = cJSON_CreateArray();

			cJSON_AddItemToArray(a, deep);
			deep = a;
		}
		tok = with_member("x", deep); /* root object + levels arrays + number */
		if (i == 0)
			ck_accept(tok);
		else
			ck_reject(tok, "malformed token payload");
		free(tok);
	}

	/* A duplicate member could be read differently by another parser. */
	p = std_payload();
	cJSON_AddStringToObject(p, "role", "admin");
	tok = craft_a(p);
	ck_reject(tok, "malformed token payload");
	free(tok);

	/* A payload that is not an object. */
	{
		char *h = header_with("ES256", mk_jwt_key_id(pub_a));

		tok = craft(h, "[\"u-42\"]", ka);
		ck_reject(tok, "malformed token payload");
		free(tok);
		tok = craft(h, "{\"iss\":", ka);
		ck_reject(tok, "malformed token payload");
		free(tok);
		free(h);
	}
	free(sub64);
	free(sub65);
	free(em320);
	free(em321);
}
END_TEST

START_TEST(test_a_failed_verification_leaves_the_claims_untouched)
{
	mk_jwt_claims out;
	char err[256] = "", *tok = with_member("role", cJSON_CreateString("root"));

	memset(&out, 0x5a, sizeof(out));
	ck_assert_int_eq(verify_a(tok, &out, err, sizeof(err)), -1);
	ck_assert_int_eq(((unsigned char *)&out)[0], 0x5a);
	ck_assert_int_eq(out.exp, (int64_t)0x5a5a5a5a5a5a5a5aLL);
	free(tok);
}
END_TEST

START_TEST(test_signing_refuses_public_keys_and_bad_claims)
{
	mk_jwt_claims c = claims(NOW, NOW + 600), bad;
	char err[256] = "";

	ck_assert_ptr_null(mk_jwt_sign(pub_a, ISS, AUD, &c, err, sizeof(err)));
	ck_assert_str_eq(err, "signing needs a private key");
	ck_assert_ptr_null(mk_jwt_sign(NULL, ISS, AUD, &c, err, sizeof(err)));
	ck_assert_ptr_null(mk_jwt_sign(priv_a, NULL, AUD, &c, err, sizeof(err)));
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, "", &c, err, sizeof(err)));

	bad = c;
	snprintf(bad.role, sizeof(bad.role), "root");
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "role"));
	bad = c;
	bad.sub[0] = '\0';
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "subject"));
	bad = c;
	memset(bad.sub, 's', sizeof(bad.sub)); /* not terminated */
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	bad = c;
	memset(bad.role, 'r', sizeof(bad.role));
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	bad = c;
	memset(bad.email, 'e', sizeof(bad.email));
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	bad = c;
	bad.exp = bad.iat;
	ck_assert_ptr_null(mk_jwt_sign(priv_a, ISS, AUD, &bad, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "exp"));
}
END_TEST

START_TEST(test_many_tokens_round_trip_including_short_signature_values)
{
	mk_jwt_claims c = claims(NOW, NOW + 600), out;
	char err[256] = "", *tok;
	int i;

	/* About 1 in 128 signatures has an R or S below 2^248, which must be
	 * padded to 32 bytes; 400 tokens meet several. */
	for (i = 0; i < 400; i++) {
		snprintf(c.sub, sizeof(c.sub), "u-%d", i);
		tok = sign_ok(priv_a, &c);
		ck_assert_int_eq(strlen(strrchr(tok, '.') + 1), 86);
		ck_assert_msg(verify_a(tok, &out, err, sizeof(err)) == 0, "%d: %s", i, err);
		ck_assert_str_eq(out.sub, c.sub);
		free(tok);
	}
}
END_TEST

static void *sign_and_verify_loop(void *arg)
{
	const mk_jwt_key *keys[] = {pub_b, pub_a};
	mk_jwt_claims c = claims(NOW, NOW + 600), out;
	long failures = 0;
	char err[256], *tok;
	int i;

	(void)arg;
	for (i = 0; i < 100; i++) {
		tok = mk_jwt_sign(i % 2 ? priv_a : priv_b, ISS, AUD, &c, err, sizeof(err));
		if (!tok ||
		    mk_jwt_verify(tok, keys, 2, ISS, AUD, NOW, 0, &out, err, sizeof(err)) != 0 ||
		    strcmp(out.sub, "u-42") != 0)
			failures++;
		free(tok);
	}
	return (void *)failures;
}

START_TEST(test_keys_sign_and_verify_from_several_threads_at_once)
{
	pthread_t t[8];
	void *failures;
	int i;

	for (i = 0; i < 8; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, sign_and_verify_loop, NULL), 0);
	for (i = 0; i < 8; i++) {
		ck_assert_int_eq(pthread_join(t[i], &failures), 0);
		ck_assert_int_eq((long)failures, 0);
	}
}
END_TEST

START_TEST(test_an_rsa_or_p384_or_ed25519_key_is_refused_with_a_clear_error)
{
	EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
	EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	char err[256] = "", *pem, *path;

	ck_assert_ptr_nonnull(rsa);
	ck_assert_ptr_nonnull(p384);
	ck_assert_ptr_nonnull(ed);

	pem = pem_of(rsa, 1);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	ck_assert_str_eq(err, "unsupported key type 'RSA' (only EC P-256 keys are accepted)");
	free(pem);
	pem = pem_of(rsa, 0);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "'RSA'"));
	/* From a file, the message names the file but never quotes it. */
	path = write_temp(pem);
	ck_assert_ptr_null(mk_jwt_key_load(path, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, path));
	ck_assert_ptr_nonnull(strstr(err, "'RSA'"));
	ck_assert_ptr_null(strstr(err, "BEGIN"));
	unlink(path);
	free(path);
	free(pem);

	pem = pem_of(p384, 1);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	ck_assert_str_eq(err, "unsupported EC curve 'secp384r1' (only P-256 is accepted)");
	free(pem);
	pem = pem_of(p384, 0);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "'secp384r1'"));
	free(pem);

	pem = pem_of(ed, 1);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "'ED25519'"));
	free(pem);

	EVP_PKEY_free(rsa);
	EVP_PKEY_free(p384);
	EVP_PKEY_free(ed);
}
END_TEST

START_TEST(test_key_files_load_and_a_missing_one_is_named_in_the_error)
{
	char *priv_pem = pem_of(ka, 1), *pub_pem = pem_of(ka, 0);
	char *priv_path = write_temp(priv_pem), *pub_path = write_temp(pub_pem);
	char err[256] = "";
	mk_jwt_key *priv, *pub;

	priv = mk_jwt_key_load(priv_path, err, sizeof(err));
	ck_assert_msg(priv != NULL, "%s", err);
	pub = mk_jwt_key_load(pub_path, err, sizeof(err));
	ck_assert_msg(pub != NULL, "%s", err);
	ck_assert_str_eq(mk_jwt_key_id(priv), mk_jwt_key_id(pub_a));
	ck_assert_str_eq(mk_jwt_key_id(pub), mk_jwt_key_id(pub_a));
	ck_assert_int_eq(mk_jwt_key_is_private(priv), 1);
	ck_assert_int_eq(mk_jwt_key_is_private(pub), 0);
	mk_jwt_key_free(priv);
	mk_jwt_key_free(pub);

	ck_assert_ptr_null(mk_jwt_key_load("/nonexistent/mark/jwt.pem", err, sizeof(err)));
	ck_assert_str_eq(
	    err, "cannot read key file '/nonexistent/mark/jwt.pem': No such file or directory");
	ck_assert_ptr_null(mk_jwt_key_load("/tmp", err, sizeof(err)));
	ck_assert_str_eq(err, "cannot read key file '/tmp': not a regular file");
	ck_assert_ptr_null(mk_jwt_key_load(NULL, err, sizeof(err)));

	unlink(priv_path);
	unlink(pub_path);
	free(priv_path);
	free(pub_path);
	free(priv_pem);
	free(pub_pem);
}
END_TEST

START_TEST(test_a_traditional_ec_private_key_loads)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, err[256] = "";
	mk_jwt_key *k;
	long n;

	ck_assert_int_eq(PEM_write_bio_PrivateKey_traditional(b, ka, NULL, NULL, 0, NULL, NULL), 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_ptr_nonnull(memmem(data, (size_t)n, "BEGIN EC PRIVATE KEY", 20));
	k = mk_jwt_key_from_pem(data, (size_t)n, err, sizeof(err));
	ck_assert_msg(k != NULL, "%s", err);
	ck_assert_str_eq(mk_jwt_key_id(k), mk_jwt_key_id(pub_a));
	ck_assert_int_eq(mk_jwt_key_is_private(k), 1);
	mk_jwt_key_free(k);
	BIO_free(b);
}
END_TEST

START_TEST(test_an_encrypted_or_garbled_key_is_refused_without_prompting)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL, err[256] = "", *pem;
	long n;

	ck_assert_int_eq(PEM_write_bio_PrivateKey(b, ka, EVP_aes_256_cbc(),
	                                          (const unsigned char *)"secret", 6, NULL, NULL),
	                 1);
	n = BIO_get_mem_data(b, &data);
	ck_assert_ptr_null(mk_jwt_key_from_pem(data, (size_t)n, err, sizeof(err)));
	ck_assert_str_eq(err, "encrypted private key (passphrases are not supported)");
	BIO_free(b);

	ck_assert_ptr_null(mk_jwt_key_from_pem("hello", 5, err, sizeof(err)));
	ck_assert_str_eq(err, "no PEM private or public key found");
	ck_assert_ptr_null(mk_jwt_key_from_pem("", 0, err, sizeof(err)));
	ck_assert_ptr_null(mk_jwt_key_from_pem(NULL, 10, err, sizeof(err)));

	/* A public key PEM with its body cut short. */
	pem = pem_of(ka, 0);
	memcpy(pem + 40, "AAAA", 4);
	ck_assert_ptr_null(mk_jwt_key_from_pem(pem, strlen(pem), err, sizeof(err)));
	free(pem);
}
END_TEST

/* Run the Node side; returns its stdout (malloc'd) and its exit status in *status. */
static char *run_node(const char *cmd, int *status)
{
	mk_buf out;
	char chunk[4096];
	size_t n;
	FILE *f;

	mk_buf_init(&out, 1 << 20);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		ck_assert_int_eq(mk_buf_append(&out, chunk, n), 0);
	*status = pclose(f);
	ck_assert_int_eq(mk_buf_puts(&out, ""), 0);
	return mk_buf_steal(&out);
}

START_TEST(test_tokens_interoperate_with_node_crypto)
{
	enum { COUNT = 32 };
	const mk_jwt_key *keys[] = {pub_a, pub_b};
	char *pub_pem = pem_of(ka, 0), *priv_pem = pem_of(kb, 1);
	char *pub_path = write_temp(pub_pem), *priv_path = write_temp(priv_pem);
	char *out, *line, *save = NULL, *tok, err[256] = "", want[128], sub[16];
	mk_jwt_claims c = claims(NOW - 5, NOW + 600), got;
	mk_buf cmd;
	int status, i, seen = 0;

	ck_assert_msg(access(INTEROP, R_OK) == 0, "%s not found: run from the repository root",
	              INTEROP);
	mk_buf_init(&cmd, 0);
	ck_assert_int_eq(mk_buf_printf(&cmd, "node %s %s %s %s %s %lld %d", INTEROP, pub_path,
	                               priv_path, ISS, AUD, NOW, COUNT),
	                 0);
	for (i = 0; i < COUNT; i++) {
		snprintf(c.sub, sizeof(c.sub), "c-%d", i);
		tok = sign_ok(priv_a, &c);
		ck_assert_int_eq(mk_buf_printf(&cmd, " %s", tok), 0);
		free(tok);
	}
	out = run_node(cmd.data, &status);
	unlink(pub_path);
	unlink(priv_path);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 127,
	              "cannot run node (is it on PATH?)");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	              "node rejected mk_jwt's tokens (exit %d; see stderr)",
	              WIFEXITED(status) ? WEXITSTATUS(status) : -1);

	/* Node checked signatures and computed the same thumbprint... */
	snprintf(want, sizeof(want), "verified %d %s", COUNT, mk_jwt_key_id(pub_a));
	line = strtok_r(out, "\n", &save);
	ck_assert_ptr_nonnull(line);
	ck_assert_str_eq(line, want);
	/* ...and mk_jwt accepts every token Node signed with key B. */
	while ((line = strtok_r(NULL, "\n", &save))) {
		ck_assert_msg(
		    mk_jwt_verify(line, keys, 2, ISS, AUD, NOW, 0, &got, err, sizeof(err)) == 0,
		    "node token %d: %s", seen, err);
		snprintf(sub, sizeof(sub), "node-%d", seen);
		ck_assert_str_eq(got.sub, sub);
		ck_assert_str_eq(got.role, "admin");
		ck_assert_str_eq(got.email, "node@example.com");
		ck_assert_int_eq(got.exp, NOW + 600);
		seen++;
	}
	ck_assert_int_eq(seen, COUNT);

	free(out);
	mk_buf_release(&cmd);
	explicit_bzero(priv_pem, strlen(priv_pem));
	free(priv_pem);
	free(pub_pem);
	free(pub_path);
	free(priv_path);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_a_token_verifies_with_the_private_key_and_with_its_public_key);
	tcase_add_test(tc, test_a_token_has_the_fixed_header_and_a_random_jti);
	tcase_add_test(tc, test_the_key_id_is_a_thumbprint_shared_by_both_halves_of_a_key);
	tcase_add_test(tc, test_the_key_id_matches_an_independent_rfc_7638_computation);
	tcase_add_test(tc, test_the_key_id_of_a_published_key_matches_the_known_answer);
	tcase_add_test(tc, test_verify_picks_the_signing_key_among_current_and_previous);
	tcase_add_test(tc, test_a_token_with_an_unknown_key_id_is_rejected);
	tcase_add_test(tc, test_an_expired_token_is_rejected_but_accepted_within_the_leeway);
	tcase_add_test(tc, test_a_token_issued_in_the_future_is_rejected);
	tcase_add_test(tc, test_a_token_before_its_nbf_is_rejected);
	tcase_add_test(tc, test_a_wrong_issuer_or_audience_is_rejected);
	tcase_add_test(tc, test_an_audience_array_containing_ours_is_accepted);
	tcase_add_test(tc, test_a_tampered_payload_fails_the_signature_check);
	tcase_add_test(tc, test_a_signature_by_another_key_under_a_known_key_id_is_rejected);
	tcase_add_test(tc, test_tokens_claiming_another_algorithm_are_rejected);
	tcase_add_test(tc, test_headers_that_name_keys_or_are_critical_or_odd_are_rejected);
	tcase_add_test(tc, test_malformed_tokens_are_rejected);
	tcase_add_test(tc, test_the_size_limit_holds_for_validly_signed_tokens);
	tcase_add_test(tc, test_claims_of_the_wrong_type_or_range_are_rejected);
	tcase_add_test(tc, test_a_failed_verification_leaves_the_claims_untouched);
	tcase_add_test(tc, test_signing_refuses_public_keys_and_bad_claims);
	tcase_add_test(tc, test_many_tokens_round_trip_including_short_signature_values);
	tcase_add_test(tc, test_keys_sign_and_verify_from_several_threads_at_once);
	tcase_add_test(tc, test_an_rsa_or_p384_or_ed25519_key_is_refused_with_a_clear_error);
	tcase_add_test(tc, test_key_files_load_and_a_missing_one_is_named_in_the_error);
	tcase_add_test(tc, test_a_traditional_ec_private_key_loads);
	tcase_add_test(tc, test_an_encrypted_or_garbled_key_is_refused_without_prompting);
	tcase_add_test(tc, test_tokens_interoperate_with_node_crypto);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
