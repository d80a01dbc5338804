/*
 * mt_serve.c - the test doubles' HTTP server and --listen check (see
 * mt_serve.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_log.h"
#include "mt_serve.h"

int mt_serve_valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[64], *end;
	struct in_addr a;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return 0;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	return inet_pton(AF_INET, host, &a) == 1 && end != colon + 1 && *end == '\0' && port >= 0 &&
	       port <= 65535;
}

/* The log id of the one server a double runs. */
static const char *serve_log_id = "DOUBLE-HTTP";

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	MK_WARN(serve_log_id, NULL, "%s", message);
	return 1;
}

struct mg_context *mt_serve_start(const char *listen, mg_request_handler handler, void *ud,
                                  const char *log_id, int *port, char *err, size_t errlen)
{
	const char *opts[] = {
	    "listening_ports",
	    listen,
	    "num_threads",
	    "32",
	    "request_timeout_ms",
	    "120000",
	    "enable_keep_alive",
	    "yes",
	    "keep_alive_timeout_ms",
	    "30000",
	    "tcp_nodelay",
	    "1",
	    NULL,
	};
	struct mg_server_port ports[4];
	struct mg_callbacks cb;
	struct mg_context *http;
	int n;

	serve_log_id = log_id;
	memset(&cb, 0, sizeof(cb));
	cb.log_message = on_log_message;
	mg_init_library(0);
	if (!(http = mg_start(&cb, ud, opts))) {
		mg_exit_library();
		snprintf(err, errlen, "cannot serve HTTP on '%s' (address in use or invalid)",
		         listen);
		return NULL;
	}
	mg_set_request_handler(http, "/", handler, ud);
	n = mg_get_server_ports(http, 4, ports);
	*port = n > 0 ? ports[0].port : 0;
	return http;
}

void mt_serve_stop(struct mg_context **http)
{
	if (*http) {
		mg_stop(*http);
		*http = NULL;
		mg_exit_library();
	}
}
