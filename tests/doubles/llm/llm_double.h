/*
 * llm_double.h - a scripted fake of the LLM providers' HTTP APIs, for
 * offline tests of Mark's provider clients (services/llm).
 *
 * One process speaks both dialects of ../shared/contracts/llm-api.md: the
 * OpenAI Chat Completions dialect (POST .../chat/completions, including the
 * Azure classic deployment form) and Anthropic Messages (POST /v1/messages).
 * It checks each request the way the real services do (headers, keys,
 * required fields, tool-call pairing) and answers a malformed one itself with
 * the provider's error body; a well-formed one consumes the next step of the
 * current scenario, which says exactly which bytes to send back, in which
 * slices and at which pace. Every provider request is recorded for the test
 * to inspect. Control endpoints live under /_double/.
 *
 * It is not a model: it never looks at the prompt beyond the optional
 * per-step `match`, and it does not implement the Responses API.
 *
 * Files: main.c (command line, start, signals), llm_double_http.c (routing,
 * recording, control endpoints, writing paced bytes), llm_double_validate.c
 * (auth and request checks per dialect), llm_double_scenario.c (loading,
 * step order, match), llm_double_gen.c (the openai_* / anthropic_* shorthand
 * bodies and streams). The scenario format is described in
 * llm_double_scenario.c and in tests/data/llm/README.md.
 */
#ifndef LLM_DOUBLE_H
#define LLM_DOUBLE_H

#include <pthread.h>
#include <stddef.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "mk_buf.h"

/* Largest request body accepted (Anthropic's own limit is 32 MB). */
#define LD_MAX_BODY (32u << 20)

typedef enum { LD_OPENAI, LD_AZURE, LD_ANTHROPIC } ld_dialect;

/* The process's state, shared by civetweb's worker threads under mu. */
typedef struct {
	pthread_mutex_t mu;
	cJSON *scenario;     /* the current scenario's root (owned), or NULL: no steps */
	int pos;             /* index of the next step to serve */
	cJSON *requests;     /* array of recorded provider requests (owned) */
	unsigned long seq;   /* counter for generated ids */
	const char *api_key; /* NULL: any key is accepted (borrowed from argv) */
	struct mg_context *http;
	int port;
} ld_double;

/* One provider request being served (lives on a worker thread's stack). */
typedef struct {
	ld_double *d;
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	ld_dialect dialect;
	const char *path;     /* local URI */
	char deployment[128]; /* Azure classic: the deployment in the path */
	char *body;           /* NUL-terminated, owned */
	size_t body_len;
	cJSON *json;       /* the parsed body, or NULL when it is not JSON (owned) */
	int stream;        /* the body has "stream": true */
	int include_usage; /* OpenAI: stream_options.include_usage */
	const char *model; /* body's model, or the Azure deployment; never NULL */
	unsigned long seq; /* this request's number, for ids */
} ld_req;

/* How to pace and cut a response body. */
typedef struct {
	const int *sizes; /* slice sizes, cycled; NULL or {0}: one write */
	int nsizes;
	long first_byte_delay_ms; /* before the status line */
	long between_writes_ms;
	long close_after_bytes; /* -1: send everything */
	int close;              /* close the connection after this response */
} ld_pace;

/* ---- llm_double_http.c */

/* Start serving on listen ("host:port"); 0, or -1 with err filled. */
int ld_http_start(ld_double *d, const char *listen, char *err, size_t errlen);
/* Stop serving; waits for in-flight requests. Safe twice. */
void ld_http_stop(ld_double *d);

/*
 * Write one whole response. extra_headers: raw "Name: value\r\n" lines or
 * NULL. SSE bodies (chunked = 1) use chunked transfer encoding, one chunk per
 * slice, so a libcurl client sees each slice as one write callback; other
 * bodies carry a Content-Length. pace may be NULL.
 */
void ld_send(ld_req *r, int status, const char *ctype, const char *extra_headers, const char *body,
             size_t len, int chunked, const ld_pace *pace);
/* A JSON reply with the dialect's error shape and a request id header. */
void ld_send_json(ld_req *r, int status, const cJSON *body, const char *extra_headers);
/* An error in the request's dialect: OpenAI {"error":{message,type,param,code}},
 * Anthropic {"type":"error","error":{type,message},"request_id"}. param/code may be NULL. */
void ld_send_error(ld_req *r, int status, const char *type, const char *code, const char *param,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- llm_double_validate.c */

/* Check the key headers; answers 401/400 itself and returns -1, or 0. */
int ld_check_auth(ld_req *r);
/* Check the body the way the provider does; answers 400 itself and returns -1, or 0. */
int ld_check_body(ld_req *r);

/* ---- llm_double_scenario.c */

/*
 * Check a scenario (steps' keys and types) and make it the current one,
 * rewound. Takes ownership of root on success only. 0, or -1 with err.
 */
int ld_scenario_set(ld_double *d, cJSON *root, char *err, size_t errlen);
/* Load a scenario file; 0, or -1 with err. */
int ld_scenario_load(ld_double *d, const char *file, char *err, size_t errlen);
/* Serve r with the next step (or the 500 that says why there is none). */
void ld_scenario_serve(ld_req *r);

/* ---- llm_double_gen.c */

/*
 * Build the body the shorthand keys of step describe (openai_text,
 * openai_tool_calls, anthropic_text, anthropic_tool_uses) for r: a JSON
 * object when r is not streaming, else the SSE bytes. Appends to out.
 * Returns 0, or -1 with err (e.g. openai_* keys on an Anthropic request).
 */
int ld_gen_body(const ld_req *r, const cJSON *step, mk_buf *out, char *err, size_t errlen);
/* Whether step uses a shorthand key. */
int ld_gen_wanted(const cJSON *step);
/* Whether step's shorthand keys suit r's dialect; 0, or -1 with why (it expects ...). */
int ld_gen_fits(const ld_req *r, const cJSON *step, char *why, size_t whylen);
/* Check the shorthand keys' shapes at load time; 0, or -1 with err. */
int ld_gen_check(const cJSON *step, char *err, size_t errlen);

#endif
