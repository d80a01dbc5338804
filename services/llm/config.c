/*
 * config.c - the llm service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "llm.h"

const mk_cfg_var llm_config_vars[] = {
    MK_SVC_CFG_VARS("LLM", llm_config, svc, "tcp://127.0.0.1:7102", "chat"),
};
const size_t llm_config_nvars = sizeof(llm_config_vars) / sizeof(llm_config_vars[0]);
