/*
 * config.c - the executor service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "executor.h"

const mk_cfg_var executor_config_vars[] = {
    MK_SVC_CFG_VARS("EXECUTOR", executor_config, svc, "tcp://127.0.0.1:7103", "exec"),
};
const size_t executor_config_nvars = sizeof(executor_config_vars) / sizeof(executor_config_vars[0]);
