/*
 * config.c - the metadata service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "metadata.h"

const mk_cfg_var metadata_config_vars[] = {
    MK_SVC_CFG_VARS("METADATA", metadata_config, svc, "tcp://127.0.0.1:7104", "catalog"),
};
const size_t metadata_config_nvars = sizeof(metadata_config_vars) / sizeof(metadata_config_vars[0]);
