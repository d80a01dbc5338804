/*
 * mk_rpc.h - request/reply between services over NNG.
 *
 * Server: a rep0 socket listening on a URL, served by N worker threads, each
 * with its own NNG context, so one service handles N requests at once. Each
 * request is decoded and checked by the common dispatcher (mk_proto) before
 * the handler runs; handlers only see well-formed envelopes for ops their
 * service owns. mk_rpc_server_stop stops taking new requests, lets in-flight
 * ones finish within a bound, and closes the socket.
 *
 * Every message is sealed with the deployment's bus key (mk_seal.h): a
 * server refuses a request that is not, and a client takes no reply that
 * is not.
 *
 * Client: a req0 socket dialled asynchronously, so it connects when the peer
 * comes up and reconnects when the peer restarts. Each call opens its own
 * context, so many threads may call through one client at once. A call
 * carries a deadline; it fails with MK_E_DEADLINE or MK_E_UNAVAILABLE rather
 * than waiting past it.
 */
#ifndef MK_RPC_H
#define MK_RPC_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "mk_proto.h"
#include "mk_seal.h"

/* ------------------------------------------------------------------ server */

/*
 * A handler's reply. On success set *reply to a new JSON body (or leave it
 * NULL for {}) and return MK_OK; the server takes ownership of *reply.
 * On failure return the error and write a human message into err (an empty
 * err uses the error's default message); *reply may then hold extra members
 * for the error object (e.g. {"retry_after": 30}). Runs on a worker thread.
 */
typedef mk_err (*mk_rpc_handler)(void *ud, const mk_env *req, cJSON **reply, char *err,
                                 size_t errlen);

typedef struct {
	const char *service;    /* owner name checked against ops.def */
	const char *url;        /* e.g. tcp://127.0.0.1:7101 */
	int workers;            /* concurrent requests */
	size_t max_msg;         /* largest request accepted, bytes */
	const mk_seal_key *key; /* the bus key (copied); required */
	mk_rpc_handler handler;
	void *ud;
	/* Optional: fills the sys.ping reply with service details (e.g. db status). */
	void (*ping)(void *ping_ud, cJSON *reply);
	void *ping_ud;
} mk_rpc_server_opts;

typedef struct mk_rpc_server mk_rpc_server;

/*
 * Listen and start serving. Returns 0 and *out, or -1 with a message in err
 * (e.g. the address is in use). sys.ping is answered by the server itself.
 */
int mk_rpc_server_start(const mk_rpc_server_opts *opts, mk_rpc_server **out, char *err,
                        size_t errlen);
/*
 * Stop taking requests, wait up to grace_ms for in-flight ones, then close
 * the socket. Returns the number of requests still inside their handler
 * when the grace ran out; their replies are dropped. Call once.
 */
int mk_rpc_server_stop(mk_rpc_server *s, int grace_ms);
/*
 * Stop (with no grace) if not stopped, wait for every handler still
 * running, and free. NULL ok. A process exiting after a stop that left
 * handlers running may skip this and exit.
 */
void mk_rpc_server_free(mk_rpc_server *s);

/*
 * Decode, check and handle one request exactly as a server does (sys.ping
 * included; started_ms is the mk_mono_ms() the uptime counts from; when
 * stopping, handlers are not called and the reply is shutting_down).
 * Returns the reply text (the caller frees it), or NULL when out of memory.
 * For processes that receive requests some other way than
 * mk_rpc_server_start (the executor's workers).
 */
char *mk_rpc_dispatch(const mk_rpc_server_opts *o, int64_t started_ms, int stopping,
                      const char *data, size_t len);

/* ------------------------------------------------------------------ client */

typedef struct mk_rpc_client mk_rpc_client;

/*
 * Dial url (asynchronously; the peer need not be up yet); requests are
 * sealed with key (copied). NULL on failure, with err.
 */
mk_rpc_client *mk_rpc_client_new(const char *url, size_t max_msg, const mk_seal_key *key, char *err,
                                 size_t errlen);
/*
 * A url of the form tcp://NAME:PORT, NAME not an address (a Kubernetes
 * headless Service, a compose service scaled to N): every address NAME
 * resolves to is dialled, so calls spread over every replica; the name is
 * resolved again every refresh_ms, new replicas dialled and vanished ones
 * dropped. While NAME resolves to nothing, NNG dials the name itself.
 * resolve NULL: DNS (mk_rpc_resolve_dns); refresh_ms 0: MK_RPC_REFRESH_MS.
 * mk_rpc_client_new is this with both defaults.
 */
#define MK_RPC_ADDR_MAX   64
#define MK_RPC_REFRESH_MS 5000
/* Numeric addresses (IPv4 or IPv6 text) of host, at most max; the count, or -1. */
typedef int (*mk_rpc_resolver)(void *ud, const char *host, char addrs[][MK_RPC_ADDR_MAX], int max);
int mk_rpc_resolve_dns(void *ud, const char *host, char addrs[][MK_RPC_ADDR_MAX], int max);
mk_rpc_client *mk_rpc_client_new_resolving(const char *url, size_t max_msg, const mk_seal_key *key,
                                           mk_rpc_resolver resolve, void *ud, long long refresh_ms,
                                           char *err, size_t errlen);
void mk_rpc_client_free(mk_rpc_client *c); /* NULL ok */
/* Connections up now: the replicas of the peer this client reaches. */
int mk_rpc_client_peers(const mk_rpc_client *c);
const char *mk_rpc_client_url(const mk_rpc_client *c);

/* The outcome of a call. Release with mk_rpc_result_release. */
typedef struct {
	mk_err err;           /* MK_OK or the error */
	char msg[256];        /* human message on error */
	cJSON *root;          /* the whole reply, owned here */
	const cJSON *body;    /* reply body on success (points into root) */
	const cJSON *error;   /* the error object on failure (points into root), or NULL */
	const char *raw_body; /* the body's JSON text on success (points into msg) */
	size_t raw_len;
	void *nmsg; /* the reply message (nng_msg), owned here */
} mk_rpc_result;

/*
 * Call op with body (borrowed; NULL for {}) and wait at most timeout_ms.
 * caller may be NULL. Always fills *res; returns res->err.
 * Transport failures map to MK_E_UNAVAILABLE (no peer answered) or
 * MK_E_DEADLINE (the deadline passed while waiting).
 */
mk_err mk_rpc_call(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                   const cJSON *body, int timeout_ms, mk_rpc_result *res);
void mk_rpc_result_release(mk_rpc_result *res);

/*
 * The same, but on success the body is not parsed: res->body stays NULL
 * and res->raw_body/raw_len hold its JSON text (for forwarding as is).
 * Errors are parsed as by mk_rpc_call.
 */
mk_err mk_rpc_call_raw(mk_rpc_client *c, mk_op op, const char *rid, const mk_caller *caller,
                       const cJSON *body, int timeout_ms, mk_rpc_result *res);

#endif
