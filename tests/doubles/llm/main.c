/*
 * main.c - llm-double: the command line of the LLM provider test double
 * (see llm_double.h). Wiring only.
 *
 *   llm-double [--listen 127.0.0.1:0] [--scenario FILE] [--api-key KEY]
 *
 * Prints exactly one line, "listening on <port>", on stdout once it serves,
 * then serves until SIGTERM or SIGINT and exits 0. Diagnostics go to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm_double.h"
#include "mk_log.h"
#include "mk_svc.h"
#include "mt_serve.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: llm-double [--listen HOST:PORT] [--scenario FILE] [--api-key KEY]\n"
	           "  --listen    address to serve on (default 127.0.0.1:0: a free port)\n"
	           "  --scenario  scenario JSON to start with (default: none; POST "
	           "/_double/scenario)\n"
	           "  --api-key   the only key accepted (default: any key)\n");
}

int main(int argc, char **argv)
{
	const char *listen = "127.0.0.1:0", *scenario = NULL;
	char err[512];
	ld_double d;
	const mt_serve_opt opts[] = {
	    {"--listen", &listen},
	    {"--scenario", &scenario},
	    {"--api-key", &d.api_key},
	    {NULL, NULL},
	};
	int st, rc = 1;

	memset(&d, 0, sizeof(d));
	if ((st = mt_serve_args(argc, argv, "llm-double", opts, usage)) >= 0)
		return st;
	if (!mt_serve_valid_listen(listen)) {
		fprintf(stderr, "llm-double: --listen '%s' is not <IPv4 address>:<port>\n", listen);
		return 2;
	}
	mk_log_init("llm-double", MK_LOG_INFO);
	pthread_mutex_init(&d.mu, NULL);
	d.requests = cJSON_CreateArray();
	if (!d.requests) {
		fprintf(stderr, "llm-double: out of memory\n");
		goto out;
	}
	if (scenario && ld_scenario_load(&d, scenario, err, sizeof(err)) != 0) {
		fprintf(stderr, "llm-double: scenario '%s': %s\n", scenario, err);
		goto out;
	}
	/* Before any thread starts, so that only sigwait below sees the stop signals. */
	mk_svc_block_signals();
	if (ld_http_start(&d, listen, err, sizeof(err)) != 0) {
		fprintf(stderr, "llm-double: %s\n", err);
		goto out;
	}
	mt_serve_wait(d.port, "LLMD-STOP");
	rc = 0;
out:
	ld_http_stop(&d);
	cJSON_Delete(d.scenario);
	cJSON_Delete(d.requests);
	pthread_mutex_destroy(&d.mu);
	return rc;
}
