/*
 * main.c - mark-gateway: the public HTTP API process. Wiring only; see
 * gateway.h. Besides the options every service has, `--routes` prints the
 * route table ("METHOD PATTERN" lines) and exits.
 */
#include <string.h>

#include "gateway.h"

int main(int argc, char **argv)
{
	gateway_config cfg;

	if (argc == 2 && strcmp(argv[1], "--routes") == 0)
		return gw_routes_print(stdout) == 0 ? 0 : 1;
	return mk_svc_main(argc, argv, &gateway_app, &cfg);
}
