/*
 * config.c - the llm service's settings: the one table of environment
 * variables it reads (the README's settings table is printed from it).
 */
#include <stddef.h>

#include "llm.h"

#define L(f) offsetof(llm_config, f)

const mk_cfg_var llm_config_vars[] = {
    MK_SVC_CFG_VARS("LLM", llm_config, svc, "tcp://127.0.0.1:7102", "chat"),
    {"LLM_PROVIDER", MK_CFG_ENUM, "openai", 0, 0, 0, 0, "openai|anthropic",
     "`openai` for any OpenAI-compatible server (OpenAI, Azure, Ollama, vLLM, llama.cpp, "
     "Gemini, OpenRouter, Groq), or `anthropic`",
     L(provider)},
    {"LLM_BASE_URL", MK_CFG_STR, NULL, 0, 2048, 0, 0, NULL,
     "API base, e.g. http://localhost:11434/v1 (default: https://api.openai.com/v1 or "
     "https://api.anthropic.com)",
     L(base_url)},
    {"LLM_API_KEY", MK_CFG_STR, NULL, 0, 4096, 1, 0, NULL,
     "the provider's API key (not needed by local servers)", L(api_key)},
    {"LLM_MODEL", MK_CFG_STR, NULL, 0, 256, 0, 0, NULL,
     "model name (the deployment name on Azure); unset: no model, a chat turn explains how "
     "to configure one",
     L(model)},
    {"LLM_EXTRA_HEADERS", MK_CFG_STR, NULL, 0, 8192, 1, 0, NULL,
     "extra request headers, `Name: value` separated by `;` (e.g. OpenRouter's X-Title)",
     L(extra_headers)},
    {"LLM_AZURE_API_VERSION", MK_CFG_STR, NULL, 0, 64, 0, 0, NULL,
     "set for Azure OpenAI's classic form: `api-key` header and "
     "`/openai/deployments/{LLM_MODEL}` path with this api-version",
     L(azure_api_version)},
    {"LLM_CONNECT_TIMEOUT", MK_CFG_DURATION, "10s", 100, 300000, 0, 0, NULL,
     "how long to wait to connect to the provider", L(connect_timeout_ms)},
    {"LLM_FIRST_BYTE_TIMEOUT", MK_CFG_DURATION, "120s", 100, 3600000, 0, 0, NULL,
     "how long to wait for the first byte of an answer", L(first_byte_timeout_ms)},
    {"LLM_IDLE_TIMEOUT", MK_CFG_DURATION, "60s", 100, 3600000, 0, 0, NULL,
     "how long a streamed answer may go silent (no fixed total timeout)", L(idle_timeout_ms)},
    {"LLM_MAX_RETRIES", MK_CFG_INT, "3", 0, 20, 0, 0, NULL,
     "retries on 429, 5xx and network errors (with backoff, within the turn's deadline)",
     L(max_retries)},
    {"LLM_MAX_RESPONSE", MK_CFG_SIZE, "16M", 1024, 1LL << 30, 0, 0, NULL,
     "largest provider response accepted", L(max_response)},
    {"LLM_CHAT_TITLE_MAX", MK_CFG_INT, "200", 1, 1000, 0, 0, NULL,
     "longest chat title, in characters", L(title_max)},
    {"LLM_PAGE_SIZE", MK_CFG_INT, "20", 1, 100, 0, 0, NULL,
     "chats or messages per page when the client gives no limit (at most 100)", L(page_default)},
    {"LLM_HISTORY_TOKENS", MK_CFG_INT, "8000", 100, 1000000, 0, 0, NULL,
     "estimated tokens of earlier messages given to the model", L(history_tokens)},
    {"LLM_EXECUTOR_URL", MK_CFG_STR, "tcp://127.0.0.1:7103", 1, 256, 0, 0, NULL,
     "NNG address of the executor (its router)", L(executor_url)},
    {"LLM_PROMPTS_DIR", MK_CFG_STR, NULL, 0, 1024, 0, 0, NULL,
     "directory whose system.md replaces the system prompt built from services/llm/prompts/ "
     "(read at start)",
     L(prompts_dir)},
    {"LLM_METADATA_URL", MK_CFG_STR, "tcp://127.0.0.1:7104", 1, 256, 0, 0, NULL,
     "NNG address of the metadata service (warehouse tables and queries)", L(metadata_url)},
    {"LLM_TURN_MAX_STEPS", MK_CFG_INT, "8", 1, 100, 0, 0, NULL,
     "tool calls one chat turn may make before it must answer", L(turn_max_steps)},
    {"LLM_TURN_MAX_CALLS_PER_REPLY", MK_CFG_INT, "4", 1, 100, 0, 0, NULL,
     "tool calls run from one model reply; the rest are answered \"not run\" (each counts "
     "against LLM_TURN_MAX_STEPS)",
     L(turn_max_calls_per_reply)},
    {"LLM_TURN_TIMEOUT", MK_CFG_DURATION, "5m", 1000, 3600000, 0, 0, NULL,
     "wall-clock time of one chat turn", L(turn_timeout_ms)},
    {"LLM_TURN_LOST_AFTER", MK_CFG_DURATION, "30s", 1000, 3600000, 0, 0, NULL,
     "a streamed turn whose replica has not beaten its heartbeat this long is over: its "
     "readers get a final event saying so (the heartbeat beats every quarter of it)",
     L(turn_lost_after_ms)},
    {"LLM_TURN_MAX_TOKENS", MK_CFG_INT, "200000", 1000, 100000000, 0, 0, NULL,
     "prompt plus completion tokens one chat turn may use", L(turn_max_tokens)},
    {"LLM_MESSAGE_MAX", MK_CFG_SIZE, "32K", 1, 1048576, 0, 0, NULL,
     "longest question accepted in a chat turn", L(message_max)},
    {"LLM_TOOL_OUTPUT_MAX", MK_CFG_SIZE, "8K", 256, 1048576, 0, 0, NULL,
     "characters of a tool's output (stdout, traceback, tables) fed back to the model",
     L(tool_output_max)},
    {"LLM_RUN_TIMEOUT", MK_CFG_DURATION, "60s", 100, 3600000, 0, 0, NULL,
     "wall-clock limit asked for each Python run of a turn", L(run_timeout_ms)},
};
const size_t llm_config_nvars = sizeof(llm_config_vars) / sizeof(llm_config_vars[0]);
