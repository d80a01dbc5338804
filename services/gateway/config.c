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
    {"GATEWAY_LOG_FORMAT", MK_CFG_ENUM, "text", 0, 0, 0, 0, "text|json", MK_SVC_LOG_FORMAT_HELP,
     G(log_format)},
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
    {"GATEWAY_TURN_TIMEOUT", MK_CFG_DURATION, "330s", 1000, 3600000, 0, 0, NULL,
     "how long a chat turn answered as JSON may take (above LLM_TURN_TIMEOUT)", G(turn_timeout_ms)},
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
    {"GATEWAY_BUS_KEY_FILE", MK_CFG_STR, NULL, 0, 4096, 0, 0, NULL, MK_SVC_BUS_KEY_HELP,
     G(bus_key_file)},
    {"GATEWAY_JWT_PUBLIC_KEY_FILE", MK_CFG_STR, NULL, 1, 4096, 0, 1, NULL,
     "PEM public key (EC P-256) that verifies access tokens (`make run` creates one)",
     G(jwt_public_key_file)},
    {"GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE", MK_CFG_STR, NULL, 0, 4096, 0, 0, NULL,
     "the previous public key, still accepted during a key rotation",
     G(jwt_previous_public_key_file)},
    {"GATEWAY_JWT_ISSUER", MK_CFG_STR, "mark", 1, 200, 0, 0, NULL,
     "`iss` that access tokens must carry (as AUTH_JWT_ISSUER)", G(jwt_issuer)},
    {"GATEWAY_JWT_AUDIENCE", MK_CFG_STR, "mark-api", 1, 200, 0, 0, NULL,
     "`aud` that access tokens must carry (as AUTH_JWT_AUDIENCE)", G(jwt_audience)},
    {"GATEWAY_JWT_LEEWAY", MK_CFG_DURATION, "30s", 0, 300000, 0, 0, NULL,
     "clock skew allowed when checking `exp`, `nbf` and `iat`", G(jwt_leeway_ms)},
    {"GATEWAY_TRUST_FORWARDED_FOR", MK_CFG_BOOL, "false", 0, 0, 0, 0, NULL,
     "take the client address from X-Forwarded-For (only behind a proxy that sets it)",
     G(trust_forwarded_for)},
    {"GATEWAY_TOKEN_CACHE", MK_CFG_INT, "8192", 0, 1 << 24, 0, 0, NULL,
     "verified access tokens remembered (until they expire) so each signature is checked "
     "once; 0 turns the cache off",
     G(token_cache)},
    {"GATEWAY_UPLOAD_MAX", MK_CFG_SIZE, "100M", 1024, 1LL << 30, 0, 0, NULL,
     "largest file accepted by POST /api/v1/files (413 above); keep it at most "
     "EXECUTOR_FILE_MAX, and EXECUTOR_MAX_MESSAGE above 4/3 of it (files travel as base64)",
     G(upload_max)},
};
const size_t gateway_config_nvars = sizeof(gateway_config_vars) / sizeof(gateway_config_vars[0]);
