/*
 * llm.h - the llm service: chats, messages and the agent loop.
 *
 * libllm: everything of the service but main(). Owns the Postgres schema
 * "chat"; other services reach it only through its ops over NNG.
 */
#ifndef LLM_H
#define LLM_H

#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
} llm_config;

extern const mk_cfg_var llm_config_vars[];
extern const size_t llm_config_nvars;
extern const mk_svc_app llm_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration llm_migrations[];
extern const size_t llm_migrations_count;

#endif
