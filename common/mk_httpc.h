/*
 * mk_httpc.h - an HTTP client over libcurl for calling outside services
 * (LLM providers, Daytona, BigQuery).
 *
 * One call = one request with: a connect timeout, a total timeout (or none,
 * for streams, which use the idle timeout instead), a first-byte timeout
 * and an idle timeout (no byte for that long fails the call), a response
 * size cap, and retries with exponential backoff and jitter for idempotent
 * calls on network errors, 429 and 5xx, honouring Retry-After (seconds or
 * HTTP date) and retry-after-ms, never past the call's deadline. Errors are translated
 * here, once, into a class and a message a user can act on.
 */
#ifndef MK_HTTPC_H
#define MK_HTTPC_H

#include <stddef.h>
#include <stdint.h>

#include "mk_buf.h"

typedef enum {
	MK_HTTPC_OK = 0,    /* a response arrived (any status) */
	MK_HTTPC_CONNECT,   /* could not connect / resolve */
	MK_HTTPC_TIMEOUT,   /* connect, idle or total timeout */
	MK_HTTPC_TOO_LARGE, /* response exceeded max_response */
	MK_HTTPC_DEADLINE,  /* the call's deadline passed (incl. while backing off) */
	MK_HTTPC_ABORTED,   /* the on_data callback asked to stop */
	MK_HTTPC_NETWORK,   /* any other transport error */
} mk_httpc_status;

typedef struct {
	const char *method; /* "GET", "POST", ... */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value" list, may be NULL */
	const char *body;           /* may be NULL */
	size_t body_len;
	int connect_timeout_ms; /* 0: 10 s */
	int total_timeout_ms;   /* 0: none */
	int idle_timeout_ms;    /* 0: none; no byte received for this long fails */
	/*
	 * 0: none (idle_timeout_ms applies from the start). Otherwise the first
	 * byte of the response body must arrive within this long of the
	 * attempt's start; idle_timeout_ms applies only after it. For servers
	 * that think before they answer (an LLM: the whole generation when not
	 * streaming, the time to the first token when streaming).
	 */
	int first_byte_timeout_ms;
	size_t max_response; /* 0: 16 MiB */
	int max_retries;     /* extra attempts; 0 = one attempt */
	int idempotent;      /* retry only when set (GET/PUT/DELETE set it themselves) */
	int backoff_base_ms; /* first backoff; 0: 250 ms; doubles each time, capped at 8 s, with
	                        jitter */
	int64_t deadline_mono_ms; /* mk_mono_ms() value after which nothing starts; 0: none */
	/*
	 * Streaming: when set, body bytes go to on_data as they arrive (of a
	 * 2xx response only; error bodies are buffered into resp->body) and are
	 * not kept. Return nonzero to abort. Retries stop once any byte has
	 * gone to on_data.
	 */
	int (*on_data)(void *ud, const char *data, size_t len);
	void *ud;
} mk_httpc_req;

typedef struct {
	mk_httpc_status status;
	long http_status;    /* 0 when no response */
	mk_buf body;         /* response body (not for streamed 2xx) */
	char *headers;       /* raw response headers of the final attempt, malloc'd */
	int attempts;        /* how many requests were sent */
	long retry_after_ms; /* from the last response, -1 when absent */
	char error[256];     /* human message when status != OK */
} mk_httpc_resp;

/* Process-wide libcurl init; call once from main before threads start. */
int mk_httpc_global_init(void);
void mk_httpc_global_cleanup(void);

/*
 * Perform the request. Always initialises *resp (release it with
 * mk_httpc_resp_release) and returns resp->status. Thread-safe (one curl
 * handle per call).
 */
mk_httpc_status mk_httpc_do(const mk_httpc_req *req, mk_httpc_resp *resp);
void mk_httpc_resp_release(mk_httpc_resp *resp);

/* The value of a response header (case-insensitive name), malloc'd, or NULL. */
char *mk_httpc_header(const mk_httpc_resp *resp, const char *name);

/* Parse a Retry-After value (delta seconds or HTTP date) into ms; -1 when unparseable. */
long mk_httpc_parse_retry_after(const char *value, int64_t now_ms);

#endif
