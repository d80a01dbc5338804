/*
 * main.c - mark-auth: the auth service process. Wiring only; see auth.h.
 */
#include <string.h>

#include "auth.h"

int main(int argc, char **argv)
{
	auth_config cfg;

	if (argc == 3 &&
	    (strcmp(argv[1], "--grant-admin") == 0 || strcmp(argv[1], "--revoke-admin") == 0))
		return auth_admin_cli(argv[1], argv[2], &cfg);
	return mk_svc_main(argc, argv, &auth_app, &cfg);
}
