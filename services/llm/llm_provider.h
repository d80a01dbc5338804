/*
 * llm_provider.h - one interface to every model provider, so the agent
 * loop never knows which one it talks to.
 *
 * Two implementations: the OpenAI Chat Completions dialect (OpenAI, Azure,
 * Ollama, vLLM, llama.cpp, Gemini's compatible endpoint, OpenRouter, Groq,
 * ...) in llm_openai.c, and Anthropic Messages in llm_anthropic.c; both
 * over common/mk_httpc (libcurl) and the incremental SSE parser in
 * llm_sse.c. See ../shared/contracts/llm-api.md for the dialects and their
 * known deviations.
 *
 * Tests replace the provider through llm_provider_ops; the API key is read
 * only here and never logged.
 */
#ifndef LLM_PROVIDER_H
#define LLM_PROVIDER_H

#include <stddef.h>
#include <stdint.h>

typedef enum { LLM_ROLE_SYSTEM, LLM_ROLE_USER, LLM_ROLE_ASSISTANT, LLM_ROLE_TOOL } llm_role;

typedef struct {
	char *id;        /* provider's call id (synthesised when a server omits it) */
	char *name;      /* tool name */
	char *arguments; /* the arguments as JSON text ("{}" when empty) */
} llm_tool_call;

/* One message of the conversation. Strings are owned by whoever built it. */
typedef struct {
	llm_role role;
	const char *content;        /* text; may be NULL for an assistant turn with calls */
	const llm_tool_call *calls; /* assistant: the tool calls it made */
	size_t ncalls;
	const char *tool_call_id; /* tool: which call this result answers */
	int is_error;             /* tool: the call failed */
} llm_message;

typedef struct {
	const char *name;
	const char *description;
	const char *parameters; /* JSON Schema object, as JSON text */
} llm_tool;

typedef struct {
	const llm_message *messages; /* the first may be LLM_ROLE_SYSTEM */
	size_t nmessages;
	const llm_tool *tools;
	size_t ntools;
	const char *tool_choice; /* NULL/"auto", "none", "required", or a tool's name */
	int max_tokens;          /* 0: the provider default (Anthropic requires one: 4096) */
	double temperature;      /* used only when has_temperature */
	int has_temperature;
	int stream;               /* use SSE; on_text then receives text as it arrives */
	int64_t deadline_mono_ms; /* mk_mono_ms() after which no attempt starts; 0 none */
} llm_request;

/* Streaming callbacks (any may be NULL). Return nonzero to abort the call. */
typedef struct {
	int (*on_text)(void *ud, const char *delta, size_t len);
	void *ud;
} llm_stream_cb;

typedef enum {
	LLM_STOP_END,        /* the model finished its answer */
	LLM_STOP_TOOL_CALLS, /* it wants tools run (decided by calls present, not the label) */
	LLM_STOP_LENGTH,     /* cut by the token limit */
	LLM_STOP_FILTERED,   /* content filter or refusal */
} llm_stop;

/* What a call produced. Release with llm_response_release. */
typedef struct {
	char *text; /* the assistant's text ("" when none) */
	llm_tool_call *calls;
	size_t ncalls;
	llm_stop stop;
	long prompt_tokens, completion_tokens;
	int attempts; /* HTTP requests made, retries included */
	char model[128];
} llm_response;

/* Failures, each with a message a user can act on. */
typedef enum {
	LLM_OK = 0,
	LLM_E_NOT_CONFIGURED, /* no model set up */
	LLM_E_AUTH,           /* the provider rejected the API key (401/403) */
	LLM_E_QUOTA,          /* out of credit / spend limit: not retried */
	LLM_E_RATE_LIMITED,   /* 429 still after the retries */
	LLM_E_BAD_REQUEST,    /* 400/404/422: model unknown, context too long, ... */
	LLM_E_UNAVAILABLE,    /* 5xx/529 or unreachable, after the retries */
	LLM_E_TIMEOUT,        /* no first byte / went idle / deadline */
	LLM_E_PROTOCOL,       /* the reply could not be understood */
	LLM_E_ABORTED,        /* a callback asked to stop */
} llm_status;

/* Stable wire names for llm_status ("model_auth_failed", ...). */
const char *llm_status_code(llm_status s);

typedef struct llm_provider llm_provider;

typedef struct {
	/* Perform one completion. Always initialises *out; on failure returns the
	 * status with a message in err. Thread-safe: calls may run at once. */
	llm_status (*complete)(llm_provider *p, const llm_request *req, const llm_stream_cb *cb,
	                       llm_response *out, char *err, size_t errlen);
	void (*free)(llm_provider *p);
} llm_provider_ops;

struct llm_provider {
	const llm_provider_ops *ops;
	void *impl;
};

/* Settings of a provider client (from the llm service's config). */
typedef struct {
	const char *kind;          /* "openai" or "anthropic" */
	const char *base_url;      /* e.g. https://api.openai.com/v1, http://localhost:11434/v1 */
	const char *api_key;       /* may be NULL (local servers) */
	const char *model;         /* model name, or the Azure deployment */
	const char *extra_headers; /* "Name: value" lines separated by '\n' or ';', or NULL */
	const char *azure_api_version; /* set: Azure form (api-key header, deployments path) */
	int connect_timeout_ms;
	int first_byte_timeout_ms; /* until the first response byte */
	int idle_timeout_ms;       /* then, between bytes of a stream */
	int max_retries;
	int backoff_base_ms;
	size_t max_response; /* bytes of one response (streamed ones too) */
} llm_provider_cfg;

/*
 * Make a client. Returns NULL with err for a bad setting (unknown kind,
 * malformed base URL or header line). The cfg strings are copied; the copy
 * of the API key is zeroed on free.
 */
llm_provider *llm_provider_new(const llm_provider_cfg *cfg, char *err, size_t errlen);
void llm_provider_free(llm_provider *p); /* NULL ok */

void llm_response_release(llm_response *r);

/* ---- llm_sse.c: incremental Server-Sent Events parsing ---- */

typedef struct llm_sse llm_sse;
/* Called once per complete event; event is "" when the stream named none. Nonzero stops. */
typedef int (*llm_sse_event_fn)(void *ud, const char *event, const char *data, size_t len);
/* max_event caps one event's size; an event over it is an error. */
llm_sse *llm_sse_new(llm_sse_event_fn fn, void *ud, size_t max_event);
/* Feed any slice of bytes. Returns 0, 1 when fn asked to stop, -1 when an event is too large. */
int llm_sse_feed(llm_sse *s, const char *data, size_t len);
/* End of stream: dispatch a pending event without its blank line. Same returns. */
int llm_sse_finish(llm_sse *s);
void llm_sse_free(llm_sse *s);

#endif
