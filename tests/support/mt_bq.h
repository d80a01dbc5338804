/*
 * mt_bq.h - test support: the BigQuery / Google OAuth2 / metadata-server
 * test double (tests/doubles/bigquery, binary bigquery-double) run as a
 * real process on loopback, its control endpoints (POST /_double/faults,
 * POST /_double/config, GET /_double/requests, POST /_double/reset), and a
 * service-account key file that points a client at it.
 *
 * The double loads tests/data/bigquery/fixture.json into the database it
 * is given (one schema per dataset); tests make that database with
 * mt_warehouse_create() and drop it afterwards.
 *
 * Nothing here asserts: every call returns 0 (or a value) on success and -1
 * (or NULL) with a message in err, and the test decides. Part of libmktest,
 * which benchmarks link without Check.
 *
 * Environment read: MARK_DOUBLES_DIR (see mt_doubles_dir() in
 * mt_double.h), MARK_TEST_LOG_DIR (default build/test-logs). Files are
 * read relative to the working directory (the repository root).
 */
#ifndef MT_BQ_H
#define MT_BQ_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "mt.h"
#include "mt_double.h"

#define MT_BQ_FIXTURE      "tests/data/bigquery/fixture.json"
#define MT_BQ_PRIVATE_KEY  "tests/data/bigquery/test-sa-key.pem"
#define MT_BQ_PROJECT      "mark-test"
#define MT_BQ_CLIENT_EMAIL "mark-metadata@mark-test.iam.gserviceaccount.com"

/* The double's process and address (the struct of every double). */
typedef mt_double mt_bq;

/*
 * Start bigquery-double on a free loopback port with the fixture loaded
 * into dsn (see mt_double_spawn). Returns 0, or -1 with err.
 */
int mt_bq_start(mt_bq *d, const char *name, const char *dsn, char *err, size_t errlen);

/* SIGTERM and wait: the exit status, 0 being what a test wants (see mt_double_stop). */
static inline int mt_bq_stop(mt_bq *d)
{
	return mt_double_stop(d);
}

/* base + path (see mt_double_url). */
static inline const char *mt_bq_url(const mt_bq *d, const char *path)
{
	return mt_double_url(d, path);
}

/* Append fault rules: json is {"rules":[...]}. 0, or -1 with err (the double's complaint). */
int mt_bq_faults(const mt_bq *d, const char *json, char *err, size_t errlen);

/* Set knobs: json is {"expires_in"?,"incomplete_polls"?,"strict_legacy_sql"?}. 0, or -1. */
int mt_bq_config(const mt_bq *d, const char *json, char *err, size_t errlen);

/*
 * The requests recorded since the last reset, as a JSON array of
 * {"route","method","path","query","authorization","body"}; the caller
 * deletes it. NULL when the double did not answer with one.
 */
cJSON *mt_bq_requests(const mt_bq *d);

/* Forget faults, knobs and the request log (issued tokens stay valid). 0, or -1. */
int mt_bq_reset(const mt_bq *d);

/*
 * Write a service-account key file for the double at path: type
 * service_account, project_id, private_key_id, private_key (the PEM of
 * MT_BQ_PRIVATE_KEY), client_email, client_id, auth_uri, token_uri
 * (http://127.0.0.1:<port>/token), universe_domain. 0, or -1 with err.
 */
int mt_bq_write_key_file(const mt_bq *d, const char *path, char *err, size_t errlen);

#endif
