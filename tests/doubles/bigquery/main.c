/*
 * main.c - bigquery-double: the command line of the BigQuery, OAuth2 and
 * metadata-server test double (see bq_double.h). Wiring only.
 *
 *   bigquery-double --fixture FILE --database-url DSN [--listen 127.0.0.1:0]
 *                   [--public-key PEM_FILE]
 *
 * Loads the fixture into the database (its datasets' schemas are dropped
 * and created again), prints exactly one line, "listening on <port>", on
 * stdout once it serves, then serves until SIGTERM or SIGINT and exits 0.
 * Diagnostics go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bq_double.h"
#include "mk_log.h"
#include "mk_svc.h"
#include "mt_serve.h"

#define DEFAULT_PUBLIC_KEY "tests/data/bigquery/test-sa-pub.pem"

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: bigquery-double --fixture FILE --database-url DSN [--listen HOST:PORT]\n"
	    "                       [--public-key PEM_FILE]\n"
	    "  --fixture       catalog and rows to serve (tests/data/bigquery/fixture.json)\n"
	    "  --database-url  Postgres the fixture is loaded into (a database of its own)\n"
	    "  --listen        address to serve on (default 127.0.0.1:0: a free port)\n"
	    "  --public-key    the service account key's public half (default " DEFAULT_PUBLIC_KEY
	    ")\n");
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:0", *fixture = NULL, *dsn = NULL;
	const char *pubkey = DEFAULT_PUBLIC_KEY;
	const mt_serve_opt opts[] = {
	    {"--listen", &listen},
	    {"--fixture", &fixture},
	    {"--database-url", &dsn},
	    {"--public-key", &pubkey},
	    {NULL, NULL},
	};
	char err[1024];
	bq_double d;
	int st, rc = 1;

	memset(&d, 0, sizeof(d));
	if ((st = mt_serve_args(argc, argv, "bigquery-double", opts, usage)) >= 0)
		return st;
	if (!fixture || !dsn) {
		fprintf(stderr, "bigquery-double: --fixture and --database-url are required\n");
		usage(stderr);
		return 2;
	}
	if (!mt_serve_valid_listen(listen)) {
		fprintf(stderr, "bigquery-double: --listen '%s' is not <IPv4 address>:<port>\n",
		        listen);
		return 2;
	}
	mk_log_init("bigquery-double", MK_LOG_INFO);
	pthread_mutex_init(&d.mu, NULL);
	d.cfg.expires_in = BQ_EXPIRES_IN;
	d.cfg.strict_legacy_sql = 1;
	d.requests = cJSON_CreateArray();
	d.faults = cJSON_CreateArray();
	d.tokens = calloc(BQ_MAX_TOKENS, sizeof(*d.tokens));
	if (!d.requests || !d.faults || !d.tokens) {
		fprintf(stderr, "bigquery-double: out of memory\n");
		goto out;
	}
	if (bq_auth_load_key(&d, pubkey, err, sizeof(err)) != 0 ||
	    bq_catalog_load(&d, fixture, err, sizeof(err)) != 0) {
		fprintf(stderr, "bigquery-double: %s\n", err);
		goto out;
	}
	d.db = mk_db_pool_new(dsn, NULL, 8, 5000);
	if (!d.db || bq_catalog_seed(&d, err, sizeof(err)) != 0) {
		fprintf(stderr, "bigquery-double: cannot load the fixture into the database: %s\n",
		        d.db ? err : "out of memory");
		goto out;
	}
	/* Before any thread starts, so that only sigwait below sees the stop signals. */
	mk_svc_block_signals();
	if (bq_http_start(&d, listen, err, sizeof(err)) != 0) {
		fprintf(stderr, "bigquery-double: %s\n", err);
		goto out;
	}
	mt_serve_wait(d.port, "BQD-STOP");
	rc = 0;
out:
	bq_http_stop(&d);
	bq_jobs_release(&d);
	mk_db_pool_free(d.db);
	EVP_PKEY_free(d.pub);
	cJSON_Delete(d.fixture);
	cJSON_Delete(d.requests);
	cJSON_Delete(d.faults);
	free(d.tokens);
	pthread_mutex_destroy(&d.mu);
	return rc;
}
