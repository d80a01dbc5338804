/*
 * mt_serve.h - test support for the test doubles (under tests/doubles): the
 * HTTP server every double runs (civetweb on one loopback address, the
 * same options for all), the plumbing of their request handlers (reading
 * a body, path segments and query parameters, writing a reply), their
 * request log and fault rules, and their command line (options, the
 * --listen check, the one "listening on" line and the wait for a signal).
 *
 * What a double answers, and in which shape, stays in the double: nothing
 * here writes a status line or an error body.
 *
 * Part of libmktest; the doubles link it, so nothing here uses Check.
 */
#ifndef MT_SERVE_H
#define MT_SERVE_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

#include <civetweb.h>
#include <cjson/cJSON.h>

#include "mk_buf.h"

/* ---- the server */

/* Whether s is "<IPv4 address>:<port>" (civetweb reads some malformed ones as another address). */
int mt_serve_valid_listen(const char *s);

/*
 * Serve every path with handler (ud its user data) on listen, with 32
 * threads and keep-alive; civetweb's own complaints are logged as warnings
 * under log_id. *port gets the port bound (listen may ask for port 0).
 * The server, or NULL with err.
 */
struct mg_context *mt_serve_start(const char *listen, mg_request_handler handler, void *ud,
                                  const char *log_id, int *port, char *err, size_t errlen);

/* Stop the server (waiting for requests in flight) and clear *http; safe when already stopped. */
void mt_serve_stop(struct mg_context **http);

/* ---- one request */

/*
 * Answer "Expect: 100-continue" on an HTTP/1.1 request. civetweb leaves it
 * to handlers, and the real services answer it, so libcurl does not wait
 * a second before sending a large body.
 */
void mt_serve_continue(struct mg_connection *conn);

/*
 * Read the whole request body, at most max bytes. On success *body gets it
 * (malloc'd, NUL-terminated, "" when there is none; the caller frees it)
 * and *len its length. 0; 1 when it is over max; -1 on a read error or
 * when out of memory (*body and *len untouched).
 */
int mt_serve_read_body(struct mg_connection *conn, size_t max, char **body, size_t *len);

/*
 * Split rest ("a/b/c") at each '/' into seg[*nseg], seg[*nseg + 1], ...
 * (each malloc'd, counted in *nseg, which the caller frees even on
 * failure); an empty segment between two slashes is kept, a trailing
 * slash adds none. 0, or -1 when there are more than cap or out of memory.
 */
int mt_serve_split_path(const char *rest, char **seg, int cap, int *nseg);

/* Query parameter name of ri, decoded, into buf; 1 when present, 0 when absent. */
int mt_serve_param(const struct mg_request_info *ri, const char *name, char *buf, size_t len);

/*
 * Write a reply: head (status line and headers, ending in the blank line;
 * its data may be NULL when building it ran out of memory), then len
 * bytes of body. When head is missing or the client has gone, the
 * connection is not kept alive.
 */
void mt_serve_write(struct mg_connection *conn, const mk_buf *head, const void *body, size_t len);

/* ---- the request log and fault rules (a double's state, guarded by its mutex mu) */

/*
 * Append rec (taken) to the request log *log under mu, and drop the oldest
 * entries beyond max (0: keep all). *log is read under mu, since a reset
 * replaces it.
 */
void mt_serve_record(pthread_mutex_t *mu, cJSON **log, cJSON *rec, int max);

/*
 * Add to o, a request log entry, the members every double records:
 * "method", "path" (path, the URI without its query) and "query" (""
 * when there is none).
 */
void mt_serve_record_line(cJSON *o, const struct mg_request_info *ri, const char *path);

/* Header name `name` lower-cased into out (len bytes): its key in a request log entry. */
void mt_serve_header_key(const char *name, char *out, size_t len);

/* The request log *log printed under mu (the caller cJSON_frees it), or NULL when out of memory. */
char *mt_serve_print_log(pthread_mutex_t *mu, cJSON **log);

/*
 * POST /_double/faults: body is {"rules":[...]}; every rule is checked with
 * check (0, or -1 with a complaint in err) before a copy of each is
 * appended to *faults under mu. The number of rules added, or -1 with err
 * and nothing added.
 */
int mt_serve_add_faults(const cJSON *body,
                        int (*check)(const cJSON *rule, char *err, size_t errlen),
                        pthread_mutex_t *mu, cJSON **faults, char *err, size_t errlen);

/* ---- the command line */

/* One option of a double's command line: "--name VALUE" sets *value (borrowed from argv). */
typedef struct {
	const char *name;
	const char **value;
} mt_serve_opt;

/*
 * Read a double's command line: each argument is an option of opts (ended
 * by an entry whose name is NULL) followed by its value; --help or -h
 * prints usage on stdout. Returns -1 when the double goes on, else its
 * exit status: 0 after --help, 2 after an unknown option or a missing value
 * (said on stderr as "<prog>: ...", then the usage).
 */
int mt_serve_args(int argc, char **argv, const char *prog, const mt_serve_opt *opts,
                  void (*usage)(FILE *f));

/*
 * Print "listening on <port>", the one line a double writes on stdout, and
 * wait for SIGTERM or SIGINT (blocked beforehand with
 * mk_svc_block_signals), logged under log_id.
 */
void mt_serve_wait(int port, const char *log_id);

#endif
