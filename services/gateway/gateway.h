/*
 * gateway.h - the gateway: Mark's public HTTP API (civetweb).
 *
 * It gives every request an id, caps bodies, parses JSON, routes, turns
 * each request into one NNG call to the service that owns it, and maps
 * replies to HTTP with the one table in proto/errors.def. It never touches
 * Postgres and holds no secret but the JWT public key.
 *
 * lib gateway: gateway_http.c (server, request reading, responses),
 * gateway_routes.c (the route table and handlers), gateway_metrics.c
 * (its metrics and GET /metrics), config.c.
 */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <stddef.h>
#include <stdio.h>

#include <civetweb.h>

#include "mk_cfg.h"
#include "mk_jwt.h"
#include "mk_proto.h"
#include "mk_rpc.h"
#include "mk_svc.h"

typedef struct {
	char *log_level;
	char *log_format;
	char *listen;
	long long threads;
	long long max_body;
	long long request_timeout_ms;
	long long rpc_timeout_ms;
	long long turn_timeout_ms;
	long long ready_timeout_ms;
	long long grace_ms;
	char *auth_url;
	char *llm_url;
	char *executor_url;
	char *metadata_url;
	char *bus_key_file;
	char *jwt_public_key_file;
	char *jwt_previous_public_key_file;
	char *jwt_issuer;
	char *jwt_audience;
	long long jwt_leeway_ms;
	int trust_forwarded_for;
	long long token_cache;
	long long upload_max; /* one uploaded file (POST /api/v1/files) */
} gateway_config;

extern const mk_cfg_var gateway_config_vars[];
extern const size_t gateway_config_nvars;
extern const mk_svc_app gateway_app;

/* The downstream services, in the order /readyz reports them. */
enum { GW_AUTH, GW_LLM, GW_EXECUTOR, GW_METADATA, GW_NSERVICES };

typedef struct gateway {
	const gateway_config *cfg;
	struct mg_context *http;
	mk_rpc_client *svc[GW_NSERVICES];
	mk_jwt_key *keys[2];           /* current and previous token-verification keys */
	struct gw_token_cache *tokens; /* verified tokens, so each is checked once */
	int port;                      /* the port actually bound (useful with port 0) */
} gateway;

/* One HTTP request being served. Lives on the handling thread's stack. */
typedef struct {
	gateway *gw;
	struct mg_connection *conn;
	const struct mg_request_info *ri;
	char rid[MK_RID_MAX + 1];
	const char *params[4]; /* {id} path segments, NUL-terminated copies in pbuf */
	char pbuf[512];
	char *body; /* request body (NUL-terminated), owned here */
	size_t body_len;
	cJSON *json; /* the parsed body on JSON routes, owned here */
	mk_caller caller;
	int status; /* the status answered, for the access log */
	int route;  /* index in gw_routes of the route matched, or -1 */
} gw_req;

/* A route handler: must answer exactly once through the gw_reply_* functions. */
typedef void (*gw_handler)(gw_req *r);

enum {
	GW_R_BODY = 1, /* reads a body (capped at max_body) */
	GW_R_JSON = 2, /* the body must be a JSON object (implies GW_R_BODY) */
	GW_R_AUTH = 4, /* needs a valid Bearer access token; sets r->caller */
};

typedef struct {
	const char *method;
	const char *pattern; /* "/api/v1/chats/{}" - {} matches one segment */
	gw_handler handler;
	int flags;
} gw_route;

extern const gw_route gw_routes[];
extern const size_t gw_nroutes;

/*
 * Print the route table to out, one "METHOD PATTERN" line per route in
 * table order ({} stands for one path segment): `mark-gateway --routes`,
 * which tests compare with docs/openapi.yaml. Returns 0, or -1 when
 * writing failed.
 */
int gw_routes_print(FILE *out);

/* docs/openapi.yaml as JSON (NUL-terminated), embedded at build time. */
extern const char gateway_openapi_json[];
extern const size_t gateway_openapi_json_len;
extern const char *const gw_service_names[GW_NSERVICES];

/* Start/stop the HTTP server (gateway_http.c). */
int gw_http_start(gateway *gw, char *err, size_t errlen);

/* Register the gateway's metrics and its scrape hook (before serving). 0, or -1 with err. */
int gw_metrics_start(gateway *gw, char *err, size_t errlen);
/* Remove the scrape hook (after serving stopped). Safe when never started. */
void gw_metrics_stop(gateway *gw);
/* A request arrived / was answered (r->route and r->status set) after seconds. */
void gw_metrics_begin(void);
void gw_metrics_end(const gw_req *r, double seconds);
/* GET /metrics: every metric of the process in the Prometheus text format. */
void gw_metrics_get(gw_req *r);
void gw_http_stop(gateway *gw);

/* Answer with a JSON body (borrowed) and status; extra_headers may be NULL ("Name: v\r\n"...). */
void gw_reply_json(gw_req *r, int status, const cJSON *body, const char *extra_headers);
/* Answer {"error":{"code","message","request_id"}} with the error's status; msg NULL = default. */
void gw_reply_error(gw_req *r, mk_err e, const char *msg);
/* Same, with extra headers and extra members merged into the top-level object (may be NULL). */
void gw_reply_error_ex(gw_req *r, mk_err e, const char *msg, const char *extra_headers,
                       const cJSON *extra);

/* Answer with no body (204). */
void gw_reply_empty(gw_req *r, int status);

/*
 * Call a service and answer with its reply: the body with ok_status on
 * success, the error mapped through errors.def otherwise. body borrowed.
 */
void gw_forward(gw_req *r, int svc, mk_op op, const cJSON *body, int ok_status);

/* ---- gateway_bearer.c */

/* Verify the request's Bearer token into r->caller; on failure answer 401 and return -1. */
int gw_auth_guard(gw_req *r);
/* Load the verification keys. 0, or -1 with err. */
int gw_auth_keys_load(gateway *gw, char *err, size_t errlen);
void gw_auth_keys_free(gateway *gw);
/* The verified-token cache (GATEWAY_TOKEN_CACHE entries; 0: none). */
int gw_token_cache_new(gateway *gw);
void gw_token_cache_free(gateway *gw);

/* ---- gateway_auth.c */
void gw_auth_signup(gw_req *r);
void gw_auth_signin(gw_req *r);
void gw_auth_refresh(gw_req *r);
void gw_auth_signout(gw_req *r);
void gw_auth_me(gw_req *r);

/* ---- gateway_chats.c */
void gw_chats_create(gw_req *r);
void gw_chats_list(gw_req *r);
void gw_chats_get(gw_req *r);
void gw_chats_update(gw_req *r);
void gw_chats_delete(gw_req *r);
void gw_chats_messages(gw_req *r);

/* ---- gateway_form.c */

/* The value of a hex digit (either case), or -1. */
int gw_hexval(int ch);
/*
 * The value of `name` in an application/x-www-form-urlencoded body, decoded
 * into out. Returns 1 found, 0 absent, -1 malformed (bad escape, repeated
 * name, or longer than outlen - 1).
 */
int gw_form_get(const char *body, size_t len, const char *name, char *out, size_t outlen);
/* Is the request's Content-Type `type` (ignoring parameters and case)? */
int gw_content_type_is(const gw_req *r, const char *type);

/* ---- gateway_multipart.c */

/* One part of a multipart/form-data body; data points into the body. */
typedef struct {
	char name[64];
	char filename[1024];
	int has_filename;
	const char *data;
	size_t len;
} gw_form_part;

/* The boundary parameter of a multipart Content-Type (quoted or not, 1-70 characters): 0, or -1. */
int gw_multipart_boundary(const char *ct, char *out, size_t outlen);
/*
 * Split a multipart/form-data body into its parts (at most max). Returns
 * the number of parts, or -1 with why in err.
 */
int gw_multipart_parse(const char *body, size_t len, const char *boundary, gw_form_part *parts,
                       int max, char *err, size_t errlen);
/* The last part of a client's file path (some browsers send the whole path). */
const char *gw_multipart_base_name(const char *s);

/*
 * Answer with raw bytes (borrowed) of Content-Type ctype, with
 * X-Content-Type-Options: nosniff and the request id like every answer.
 * cache_control NULL = "no-store"; extra_headers may be NULL ("Name: v\r\n"...).
 */
void gw_reply_bytes(gw_req *r, int status, const char *ctype, const void *data, size_t len,
                    const char *cache_control, const char *extra_headers);
/* Answer a failed service call's error (res borrowed) as gw_forward does. */
void gw_reply_rpc_error(gw_req *r, const mk_rpc_result *res);

/* ---- gateway_turn.c */
void gw_chat_turn(gw_req *r);        /* POST /api/v1/chat, JSON or Server-Sent Events */
void gw_chat_turn_events(gw_req *r); /* GET /api/v1/chat/turns/{id}/events (resume) */

/* ---- gateway_feedback.c, gateway_artifacts.c, gateway_usage.c */
void gw_messages_feedback(gw_req *r);
void gw_artifacts_get(gw_req *r);
void gw_usage_get(gw_req *r);

/*
 * Read the whole body into r->body (owned by r), at most max bytes, within
 * one request timeout; a Content-Length over max fails before any read.
 * Returns 0, 1 too large, 2 the body stopped short of its Content-Length
 * (the client went quiet or away), -1 a read error. For routes that read
 * their body themselves (no GW_R_BODY), with a limit of their own.
 */
int gw_read_body(gw_req *r, size_t max);
/* The same, answering 413 (with too_large), 408 or 400 itself; 0 when the body was read. */
int gw_read_body_or_reply(gw_req *r, size_t max, const char *too_large);
/*
 * Copy the page query (?limit=&cursor=) into body (borrowed). Answers 422
 * and returns -1 when limit is not a whole number in 1..100 or the cursor
 * is too long.
 */
int gw_page_query(gw_req *r, cJSON *body);

/* ---- gateway_files.c: /api/v1/files, uploads kept by the executor */
void gw_files_upload(gw_req *r); /* multipart/form-data; reads its own body */
void gw_files_list(gw_req *r);
void gw_files_get(gw_req *r);
void gw_files_delete(gw_req *r);

/* ---- gateway_datasources.c: /api/v1/datasources, the warehouse catalog kept by metadata */
void gw_datasources_list(gw_req *r);
void gw_datasources_tables(gw_req *r);
void gw_datasources_table(gw_req *r);
void gw_datasources_annotate(gw_req *r); /* admin */
void gw_datasources_sync(gw_req *r);     /* admin */

#endif
