/*
 * config.c - the auth service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "auth.h"

const mk_cfg_var auth_config_vars[] = {
	MK_SVC_CFG_VARS("AUTH", auth_config, svc, "tcp://127.0.0.1:7101", "auth"),
};
const size_t auth_config_nvars = sizeof(auth_config_vars) / sizeof(auth_config_vars[0]);
