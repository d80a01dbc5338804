/*
 * config.c - the gateway's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "gateway.h"

#define G(f) offsetof(gateway_config, f)

const mk_cfg_var gateway_config_vars[] = {
	{"GATEWAY_LOG_LEVEL", MK_CFG_ENUM, "info", 0, 0, 0, 0, "debug|info|warn|error",
	 "lowest log level written", G(log_level)},
	{"GATEWAY_LISTEN", MK_CFG_STR, "127.0.0.1:8080", 1, 256, 0, 0, NULL,
	 "HTTP address (host:port; port 0 picks a free one)", G(listen)},
	{"GATEWAY_THREADS", MK_CFG_INT, "64", 2, 4096, 0, 0, NULL,
	 "HTTP worker threads (concurrent requests)", G(threads)},
	{"GATEWAY_MAX_BODY", MK_CFG_SIZE, "1M", 1024, 1LL << 30, 0, 0, NULL,
	 "largest request body accepted (413 above)", G(max_body)},
	{"GATEWAY_REQUEST_TIMEOUT", MK_CFG_DURATION, "30s", 100, 3600000, 0, 0, NULL,
	 "how long a client may take to send a request", G(request_timeout_ms)},
	{"GATEWAY_RPC_TIMEOUT", MK_CFG_DURATION, "30s", 100, 3600000, 0, 0, NULL,
	 "deadline of a call to a service", G(rpc_timeout_ms)},
	{"GATEWAY_READY_TIMEOUT", MK_CFG_DURATION, "1s", 50, 60000, 0, 0, NULL,
	 "how long /readyz waits for each service's ping", G(ready_timeout_ms)},
	{"GATEWAY_SHUTDOWN_GRACE", MK_CFG_DURATION, "10s", 0, 600000, 0, 0, NULL,
	 "how long in-flight requests may finish after SIGTERM", G(grace_ms)},
	{"GATEWAY_AUTH_URL", MK_CFG_STR, "tcp://127.0.0.1:7101", 1, 256, 0, 0, NULL,
	 "NNG address of the auth service", G(auth_url)},
	{"GATEWAY_LLM_URL", MK_CFG_STR, "tcp://127.0.0.1:7102", 1, 256, 0, 0, NULL,
	 "NNG address of the llm service", G(llm_url)},
	{"GATEWAY_EXECUTOR_URL", MK_CFG_STR, "tcp://127.0.0.1:7103", 1, 256, 0, 0, NULL,
	 "NNG address of the executor (router)", G(executor_url)},
	{"GATEWAY_METADATA_URL", MK_CFG_STR, "tcp://127.0.0.1:7104", 1, 256, 0, 0, NULL,
	 "NNG address of the metadata service", G(metadata_url)},
};
const size_t gateway_config_nvars = sizeof(gateway_config_vars) / sizeof(gateway_config_vars[0]);
