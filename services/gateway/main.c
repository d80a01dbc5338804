/*
 * main.c - mark-gateway: the public HTTP API process. Wiring only; see
 * gateway.h.
 */
#include "gateway.h"

int main(int argc, char **argv)
{
	gateway_config cfg;

	return mk_svc_main(argc, argv, &gateway_app, &cfg);
}
