/*
 * mt_serve.h - test support for the test doubles (under tests/doubles): the
 * HTTP server every double runs (civetweb on one loopback address, the
 * same options for all) and the check of its --listen argument.
 *
 * Part of libmktest; the doubles link it, so nothing here uses Check.
 */
#ifndef MT_SERVE_H
#define MT_SERVE_H

#include <stddef.h>

#include <civetweb.h>

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

#endif
