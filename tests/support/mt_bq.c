/*
 * mt_bq.c - test support: the BigQuery double as a process, its control
 * endpoints and a key file for it (see mt_bq.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"
#include "mt_bq.h"
#include "mt_double.h"

int mt_bq_start(mt_bq *d, const char *name, const char *dsn, char *err, size_t errlen)
{
	const char *args[] = {"--listen",       "127.0.0.1:0", "--fixture", MT_BQ_FIXTURE,
	                      "--database-url", dsn,           NULL};

	return mt_double_spawn(d, "bigquery-double", name, args, err, errlen);
}

int mt_bq_faults(const mt_bq *d, const char *json, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/faults", json, NULL, err, errlen);
}

int mt_bq_config(const mt_bq *d, const char *json, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/config", json, NULL, err, errlen);
}

int mt_bq_reset(const mt_bq *d)
{
	char err[512];

	return mt_double_control(d, "POST", "/_double/reset", "{}", NULL, err, sizeof(err));
}

cJSON *mt_bq_requests(const mt_bq *d)
{
	char err[512];
	cJSON *reqs;
	mt_resp r;

	if (mt_double_control(d, "GET", "/_double/requests", NULL, &r, err, sizeof(err)) != 0)
		return NULL;
	if (!cJSON_IsArray(r.json)) {
		mt_resp_release(&r);
		return NULL;
	}
	reqs = r.json;
	r.json = NULL; /* taken */
	mt_resp_release(&r);
	return reqs;
}

int mt_bq_write_key_file(const mt_bq *d, const char *path, char *err, size_t errlen)
{
	char *pem = mt_read_file(MT_BQ_PRIVATE_KEY, NULL, err, errlen), *text = NULL;
	cJSON *o;
	FILE *f;
	int rc = -1;

	if (!pem)
		return -1;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "type", "service_account");
	cJSON_AddStringToObject(o, "project_id", MT_BQ_PROJECT);
	cJSON_AddStringToObject(o, "private_key_id", "0123456789abcdef0123456789abcdef01234567");
	cJSON_AddStringToObject(o, "private_key", pem);
	cJSON_AddStringToObject(o, "client_email", MT_BQ_CLIENT_EMAIL);
	cJSON_AddStringToObject(o, "client_id", "100000000000000000001");
	cJSON_AddStringToObject(o, "auth_uri", "https://accounts.google.com/o/oauth2/auth");
	cJSON_AddStringToObject(o, "token_uri", mt_bq_url(d, "/token"));
	cJSON_AddStringToObject(o, "auth_provider_x509_cert_url",
	                        "https://www.googleapis.com/oauth2/v1/certs");
	cJSON_AddStringToObject(o, "universe_domain", "googleapis.com");
	text = cJSON_Print(o);
	f = text ? fopen(path, "wb") : NULL;
	if (!f) {
		snprintf(err, errlen, "cannot write '%s': %s", path,
		         text ? strerror(errno) : "out of memory");
		goto out;
	}
	if (fputs(text, f) < 0 || fputc('\n', f) < 0)
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
	else
		rc = 0;
	if (fclose(f) != 0 && rc == 0) {
		snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
		rc = -1;
	}
out:
	cJSON_free(text);
	cJSON_Delete(o);
	free(pem);
	return rc;
}
