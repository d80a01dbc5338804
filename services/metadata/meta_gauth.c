/*
 * meta_gauth.c - Google access tokens for the BigQuery driver: from a
 * service-account key file (an RS256-signed JWT assertion exchanged at the
 * key's token_uri, RFC 7523) or from the GCE/GKE metadata server.
 *
 * A token is cached and refreshed when less than five minutes of it are
 * left; one refresh at a time (callers wait on the lock and take the new
 * token). The assertion is back-dated ten seconds against clock skew and
 * lives the hour Google allows at most. The key's private half and the
 * tokens never leave this process and are never logged.
 */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "mk_b64.h"
#include "mk_buf.h"
#include "mk_httpc.h"
#include "mk_json.h"
#include "mk_time.h"

#define TOKEN_MAX 4096
/* Refresh this long before the token expires. */
#define REFRESH_EARLY_MS  (300 * 1000)
#define DEFAULT_TOKEN_URI "https://oauth2.googleapis.com/token"

struct meta_gauth {
	pthread_mutex_t lock;
	EVP_PKEY *key;      /* NULL: the metadata server */
	char *client_email; /* key file */
	char *key_id;       /* key file's private_key_id, may be NULL */
	char *token_uri;    /* key file */
	char *project;      /* key file's project_id, may be NULL */
	char md_base[300];  /* http://<metadata host> */
	char scope[128];
	char token[TOKEN_MAX];   /* "" until the first fetch */
	int64_t expires_mono_ms; /* when token stops being good */
};

static char *json_dup(const cJSON *o, const char *k)
{
	const char *s = mk_json_str(o, k);

	return s && *s ? strdup(s) : NULL;
}

/* Read and parse a service-account key file into g. 0, or -1 with err. */
static int load_key_file(meta_gauth *g, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char buf[16384], jerr[128];
	const char *type, *pem;
	size_t n;
	cJSON *j;
	BIO *bio;

	if (!f) {
		snprintf(err, errlen, "cannot read the BigQuery key file '%s': %s", path,
		         strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	if (n == sizeof(buf)) {
		snprintf(err, errlen, "the BigQuery key file '%s' is larger than 16 KiB", path);
		return -1;
	}
	j = mk_json_parse(buf, n, 8, jerr, sizeof(jerr));
	OPENSSL_cleanse(buf, sizeof(buf));
	if (!j) {
		snprintf(err, errlen, "the BigQuery key file '%s' is not JSON: %s", path, jerr);
		return -1;
	}
	type = mk_json_str(j, "type");
	pem = mk_json_str(j, "private_key");
	if (!type || strcmp(type, "service_account") != 0) {
		snprintf(err, errlen,
		         "the BigQuery key file '%s' has type '%s'; a service-account key "
		         "(\"type\": \"service_account\") is needed",
		         path, type ? type : "(none)");
		cJSON_Delete(j);
		return -1;
	}
	if (!pem || !mk_json_str(j, "client_email")) {
		snprintf(err, errlen,
		         "the BigQuery key file '%s' lacks private_key or client_email", path);
		cJSON_Delete(j);
		return -1;
	}
	bio = BIO_new_mem_buf(pem, (int)strlen(pem));
	g->key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	if (!g->key || EVP_PKEY_get_base_id(g->key) != EVP_PKEY_RSA) {
		snprintf(err, errlen, "the private_key of '%s' is not an RSA key in PEM form",
		         path);
		cJSON_Delete(j);
		return -1;
	}
	g->client_email = json_dup(j, "client_email");
	g->key_id = json_dup(j, "private_key_id");
	g->project = json_dup(j, "project_id");
	g->token_uri = json_dup(j, "token_uri");
	if (!g->token_uri)
		g->token_uri = strdup(DEFAULT_TOKEN_URI);
	/* The PEM text is in j's strings: wipe it before freeing. */
	{
		cJSON *pk = cJSON_GetObjectItem(j, "private_key");

		if (cJSON_IsString(pk))
			OPENSSL_cleanse(pk->valuestring, strlen(pk->valuestring));
	}
	cJSON_Delete(j);
	if (!g->client_email || !g->token_uri) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

meta_gauth *meta_gauth_new(const char *key_file, const char *md_host, const char *scope, char *err,
                           size_t errlen)
{
	meta_gauth *g = calloc(1, sizeof(*g));

	if (!g) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&g->lock, NULL);
	snprintf(g->scope, sizeof(g->scope), "%s", scope);
	snprintf(g->md_base, sizeof(g->md_base), "%s%s",
	         strncmp(md_host, "http://", 7) == 0 ? "" : "http://", md_host);
	if (key_file && *key_file && load_key_file(g, key_file, err, errlen) != 0) {
		meta_gauth_free(g);
		return NULL;
	}
	return g;
}

void meta_gauth_free(meta_gauth *g)
{
	if (!g)
		return;
	EVP_PKEY_free(g->key);
	free(g->client_email);
	free(g->key_id);
	free(g->token_uri);
	free(g->project);
	OPENSSL_cleanse(g->token, sizeof(g->token));
	pthread_mutex_destroy(&g->lock);
	free(g);
}

const char *meta_gauth_key_project(const meta_gauth *g)
{
	return g->project;
}

/* base64url without padding of data, appended to b. */
static int b64url(mk_buf *b, const void *data, size_t len)
{
	char *s = mk_b64url_encode(data, len);

	if (!s)
		return -1;
	mk_buf_puts(b, s);
	free(s);
	return 0;
}

/* The signed JWT assertion (malloc'd), or NULL with err. */
static char *assertion(meta_gauth *g, char *err, size_t errlen)
{
	cJSON *h = cJSON_CreateObject(), *c = cJSON_CreateObject();
	int64_t iat = mk_now_ms() / 1000 - 10;
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	char *hs, *cs, *out = NULL;
	EVP_MD_CTX *md = NULL;
	mk_buf b;

	cJSON_AddStringToObject(h, "alg", "RS256");
	cJSON_AddStringToObject(h, "typ", "JWT");
	if (g->key_id)
		cJSON_AddStringToObject(h, "kid", g->key_id);
	cJSON_AddStringToObject(c, "iss", g->client_email);
	cJSON_AddStringToObject(c, "scope", g->scope);
	cJSON_AddStringToObject(c, "aud", g->token_uri);
	cJSON_AddNumberToObject(c, "iat", (double)iat);
	cJSON_AddNumberToObject(c, "exp", (double)(iat + 3600));
	hs = cJSON_PrintUnformatted(h);
	cs = cJSON_PrintUnformatted(c);
	cJSON_Delete(h);
	cJSON_Delete(c);
	mk_buf_init(&b, 0);
	if (!hs || !cs || b64url(&b, hs, strlen(hs)) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	mk_buf_puts(&b, ".");
	if (b64url(&b, cs, strlen(cs)) != 0 || !b.data) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (!md || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, g->key) != 1 ||
	    EVP_DigestSign(md, sig, &siglen, (const unsigned char *)b.data, b.len) != 1) {
		snprintf(err, errlen, "cannot sign the token request with the BigQuery key");
		goto out;
	}
	mk_buf_puts(&b, ".");
	if (b64url(&b, sig, siglen) != 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	out = b.data;
	b.data = NULL;
out:
	EVP_MD_CTX_free(md);
	free(hs);
	free(cs);
	mk_buf_release(&b);
	return out;
}

/* Read {access_token, expires_in} of a 200 reply into g. 0, or -1 with err. */
static int take_token(meta_gauth *g, const mk_httpc_resp *r, const char *from, char *err,
                      size_t errlen)
{
	cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
	const char *tok = mk_json_str(j, "access_token");
	long long exp = 3600;

	mk_json_int(j, "expires_in", &exp);
	if (!tok || !*tok || strlen(tok) >= sizeof(g->token) || exp <= 0) {
		snprintf(err, errlen, "%s answered without a usable access_token", from);
		cJSON_Delete(j);
		return -1;
	}
	snprintf(g->token, sizeof(g->token), "%s", tok);
	OPENSSL_cleanse(cJSON_GetObjectItem(j, "access_token")->valuestring, strlen(tok));
	g->expires_mono_ms = mk_mono_ms() + exp * 1000;
	cJSON_Delete(j);
	return 0;
}

/* Describe a failed token call in err. */
static void token_error(const mk_httpc_resp *r, const char *from, char *err, size_t errlen)
{
	cJSON *j;

	if (r->status != MK_HTTPC_OK) {
		snprintf(err, errlen, "%s is unreachable: %s", from, r->error);
		return;
	}
	j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
	if (mk_json_str(j, "error"))
		snprintf(err, errlen, "%s refused the token request (HTTP %ld): %s%s%s", from,
		         r->http_status, mk_json_str(j, "error"),
		         mk_json_str(j, "error_description") ? ": " : "",
		         mk_json_str(j, "error_description") ? mk_json_str(j, "error_description")
		                                             : "");
	else
		snprintf(err, errlen, "%s answered HTTP %ld to the token request", from,
		         r->http_status);
	cJSON_Delete(j);
}

static int fetch_from_key(meta_gauth *g, int64_t deadline, char *err, size_t errlen)
{
	static const char *const hdrs[] = {"Content-Type: application/x-www-form-urlencoded",
	                                   "Accept: application/json", NULL};
	char *jwt = assertion(g, err, errlen);
	mk_httpc_resp r;
	mk_httpc_req q;
	mk_buf body;
	int rc = -1;

	if (!jwt)
		return -1;
	mk_buf_init(&body, 0);
	mk_buf_printf(&body,
	              "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Agrant-type%%3Ajwt-bearer"
	              "&assertion=%s",
	              jwt); /* base64url and '.' need no escaping */
	free(jwt);
	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.url = g->token_uri;
	q.headers = hdrs;
	q.body = body.data;
	q.body_len = body.len;
	q.connect_timeout_ms = 5000;
	q.total_timeout_ms = 15000;
	q.max_response = 64 * 1024;
	q.max_retries = 2; /* network errors, 429 and 5xx: a new grant is harmless */
	q.idempotent = 1;
	q.deadline_mono_ms = deadline;
	mk_httpc_do(&q, &r);
	if (r.status == MK_HTTPC_OK && r.http_status == 200)
		rc = take_token(g, &r, "the token endpoint", err, errlen);
	else
		token_error(&r, "the token endpoint", err, errlen);
	mk_buf_release(&body);
	mk_httpc_resp_release(&r);
	return rc;
}

/* GET a metadata-server path; the body (malloc'd) on 200, or NULL with err. */
static char *md_get(meta_gauth *g, const char *path, int64_t deadline, char *err, size_t errlen)
{
	static const char *const hdrs[] = {"Metadata-Flavor: Google", NULL};
	char url[600], *out = NULL;
	mk_httpc_resp r;
	mk_httpc_req q;

	snprintf(url, sizeof(url), "%s/computeMetadata/v1/%s", g->md_base, path);
	memset(&q, 0, sizeof(q));
	q.method = "GET";
	q.url = url;
	q.headers = hdrs;
	q.connect_timeout_ms = 2000; /* off Google Cloud this fails fast */
	q.total_timeout_ms = 5000;
	q.max_response = 64 * 1024;
	q.max_retries = 2;
	q.deadline_mono_ms = deadline;
	mk_httpc_do(&q, &r);
	if (r.status == MK_HTTPC_OK && r.http_status == 200) {
		out = malloc(r.body.len + 1);
		if (out) {
			memcpy(out, r.body.data ? r.body.data : "", r.body.len);
			out[r.body.len] = '\0';
		} else {
			snprintf(err, errlen, "out of memory");
		}
	} else if (r.status != MK_HTTPC_OK) {
		snprintf(err, errlen,
		         "the metadata server (%s) is unreachable: %s; outside Google Cloud set "
		         "METADATA_BIGQUERY_KEY_FILE",
		         g->md_base, r.error);
	} else {
		snprintf(err, errlen, "the metadata server answered HTTP %ld for %s", r.http_status,
		         path);
	}
	mk_httpc_resp_release(&r);
	return out;
}

static int fetch_from_md(meta_gauth *g, int64_t deadline, char *err, size_t errlen)
{
	char path[300];
	mk_httpc_resp r;
	char *body;

	snprintf(path, sizeof(path), "instance/service-accounts/default/token?scopes=%s", g->scope);
	if (!(body = md_get(g, path, deadline, err, errlen)))
		return -1;
	memset(&r, 0, sizeof(r));
	r.body.data = body;
	r.body.len = strlen(body);
	if (take_token(g, &r, "the metadata server", err, errlen) != 0) {
		free(body);
		return -1;
	}
	OPENSSL_cleanse(body, r.body.len);
	free(body);
	return 0;
}

int meta_gauth_token(meta_gauth *g, const char *stale, int64_t deadline, char *out, size_t outlen,
                     char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&g->lock);
	/* A token a caller saw refused is dropped, unless another caller already replaced it. */
	if (stale && strcmp(stale, g->token) == 0)
		g->token[0] = '\0';
	if (!g->token[0] || mk_mono_ms() > g->expires_mono_ms - REFRESH_EARLY_MS) {
		g->token[0] = '\0';
		rc = g->key ? fetch_from_key(g, deadline, err, errlen)
		            : fetch_from_md(g, deadline, err, errlen);
	}
	if (rc == 0) {
		if (strlen(g->token) >= outlen) {
			snprintf(err, errlen, "the access token is too long");
			rc = -1;
		} else {
			memcpy(out, g->token, strlen(g->token) + 1);
		}
	}
	pthread_mutex_unlock(&g->lock);
	return rc;
}

char *meta_gauth_md_project(meta_gauth *g, int64_t deadline, char *err, size_t errlen)
{
	char *p = md_get(g, "project/project-id", deadline, err, errlen);

	if (p)
		p[strcspn(p, " \r\n")] = '\0';
	return p;
}
