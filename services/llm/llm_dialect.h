/*
 * llm_dialect.h - between the provider clients' common half and their
 * dialects; private to llm_provider.c, llm_openai.c and llm_anthropic.c.
 * The rest of the service uses llm_provider.h only.
 *
 * llm_provider.c owns the settings, the HTTP attempts and retries, the
 * error mapping and the accumulation of a reply; a dialect only builds its
 * request and reads its replies, through the hooks of llm_dialect and the
 * helpers below. Pointers to an llm_acc_call are valid until the next
 * llm_acc_call_add.
 */
#ifndef LLM_DIALECT_H
#define LLM_DIALECT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "llm_provider.h"
#include "mk_buf.h"

/* A client's settings: its own copy of llm_provider_cfg, read-only once made. */
typedef struct {
	const struct llm_dialect *dialect;
	char *base_url; /* without a trailing '/' */
	char *api_key;  /* NULL when none; zeroed on free */
	char *model;
	char *azure_api_version; /* NULL: not the Azure form */
	char **headers;          /* the extra "Name: value" lines; zeroed on free */
	size_t nheaders;
	char host[256]; /* host[:port] of base_url, for messages */
	int connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms;
	int max_retries, backoff_base_ms;
	size_t max_response;
} llm_conf;

/* One tool call being put together from a reply. */
typedef struct {
	char *id, *name;
	mk_buf args;  /* the arguments' JSON text as it arrives */
	long key;     /* the dialect's handle: OpenAI's index, Anthropic's block index; -1 none */
	int synth_id; /* the id was made up here: the server sent none (yet) */
} llm_acc_call;

/* What one reply has produced so far. Made and finished by llm_provider.c. */
typedef struct {
	const llm_conf *conf;
	const llm_stream_cb *cb; /* NULL unless streaming */
	mk_buf text;
	llm_acc_call *calls;
	size_t ncalls, capcalls;
	char model[128];
	long prompt_tokens, completion_tokens;
	long input_parts[3]; /* Anthropic: input, cache creation, cache read (-1 unseen) */
	llm_stop stop;
	int stop_seen;     /* a finish / stop reason arrived */
	int done;          /* the stream's end marker arrived ([DONE], message_stop) */
	int filtered;      /* a refusal arrived */
	int aborted;       /* on_text asked to stop */
	llm_status status; /* LLM_OK, or what went wrong inside the reply */
	char err[256];
} llm_acc;

/* A request as it goes on the wire. */
typedef struct {
	mk_buf url, body;
	char **headers; /* "Name: value", malloc'd; zeroed when released (they hold keys) */
	size_t nheaders, capheaders;
} llm_wire;

typedef struct llm_dialect {
	const char *name;
	/* Fill w (URL, own headers, body) for req. LLM_OK, or a status with err. */
	llm_status (*build)(const llm_conf *c, const llm_request *req, llm_wire *w, char *err,
	                    size_t errlen);
	/* Read a whole JSON reply into a. Returns 0, or -1 with a->status set. */
	int (*parse)(llm_acc *a, const cJSON *root);
	/* One SSE event of a streamed reply: 0 to go on, 1 to stop (end, error or abort). */
	int (*event)(llm_acc *a, const char *event, const char *data, size_t len);
} llm_dialect;

extern const llm_dialect llm_openai_dialect;
extern const llm_dialect llm_anthropic_dialect;

/* Add "name: value" unless an extra header of the same name replaces it. 0 or -1 (memory). */
int llm_wire_header(llm_wire *w, const llm_conf *c, const char *name, const char *value);
/* Append part to the URL, as is or with every byte outside [A-Za-z0-9-._~] %-encoded. */
int llm_wire_url(llm_wire *w, const char *part, int escape);

/* Append text; calls on_text when streaming. 0, or 1 with a->status/aborted set. */
int llm_acc_text(llm_acc *a, const char *s, size_t n);
/* A new call (id NULL or "": "call_<n>" is made up). NULL with a->status set. */
llm_acc_call *llm_acc_call_add(llm_acc *a, const char *id, long key);
int llm_acc_call_name(llm_acc *a, llm_acc_call *c, const char *name);
int llm_acc_call_args(llm_acc *a, llm_acc_call *c, const char *s, size_t n);
/* Record a failure inside the reply (the first one wins); returns 1. */
int llm_acc_fail(llm_acc *a, llm_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record an error the provider reported inside a 2xx reply or stream; returns 1. */
int llm_acc_provider_error(llm_acc *a, const cJSON *root);
/* Parse one event's data as JSON; NULL with a->status set. The caller deletes it. */
cJSON *llm_acc_json(llm_acc *a, const char *data, size_t len);
void llm_acc_model(llm_acc *a, const char *model);

/* Parse JSON text that must be an object; NULL with a message in err. */
cJSON *llm_json_object(const char *text, char *err, size_t errlen);

/* Does s end with suffix? */
int llm_ends_with(const char *s, const char *suffix);

/* The out-of-memory failure while building a request. */
llm_status llm_oom(char *err, size_t errlen);
/* Print a request body into w->body and delete root (always). */
llm_status llm_wire_body(llm_wire *w, cJSON *root, char *err, size_t errlen);

#endif
