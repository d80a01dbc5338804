/*
 * main.c - mark-auth: the auth service process. Wiring only; see auth.h.
 */
#include "auth.h"

int main(int argc, char **argv)
{
	auth_config cfg;

	return mk_svc_main(argc, argv, &auth_app, &cfg);
}
