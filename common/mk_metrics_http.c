/*
 * mk_metrics_http.c - a backend service's metrics and health port (see
 * mk_metrics.h): civetweb with two threads, GET /metrics (the registry in
 * the text format) and GET /healthz (200 "ok", or 503 with the reason the
 * service gives). It serves nothing else and reads no request body; it is
 * meant for Prometheus and Kubernetes probes on an internal address.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <civetweb.h>

#include "mk_log.h"
#include "mk_metrics.h"

struct mk_metrics_http {
	struct mg_context *ctx;
	int (*health)(void *ud, char *why, size_t len);
	void *ud;
	int port;
};

static void reply(struct mg_connection *conn, int status, const char *ctype, const char *body,
                  size_t len)
{
	mg_printf(conn,
	          "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	          "Cache-Control: no-store\r\n\r\n",
	          status, mg_get_response_code_text(NULL, status), ctype, len);
	mg_write(conn, body, len);
}

static int on_request(struct mg_connection *conn, void *cbdata)
{
	mk_metrics_http *h = cbdata;
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *path = ri->local_uri ? ri->local_uri : "/";
	char why[200] = "", text[256];
	mk_buf b;
	int n;

	if (strcmp(ri->request_method, "GET") != 0 && strcmp(ri->request_method, "HEAD") != 0) {
		reply(conn, 405, "text/plain", "method not allowed\n", 19);
		return 405;
	}
	if (strcmp(path, "/metrics") == 0) {
		mk_buf_init(&b, 0);
		if (mk_metrics_render(&b) != 0) {
			mk_buf_release(&b);
			reply(conn, 500, "text/plain", "out of memory\n", 14);
			return 500;
		}
		reply(conn, 200, MK_METRICS_CONTENT_TYPE, b.data, b.len);
		mk_buf_release(&b);
		return 200;
	}
	if (strcmp(path, "/healthz") == 0) {
		if (h->health && h->health(h->ud, why, sizeof(why)) != 0) {
			n = snprintf(text, sizeof(text), "%s\n", why[0] ? why : "unhealthy");
			reply(conn, 503, "text/plain", text, (size_t)n);
			return 503;
		}
		reply(conn, 200, "text/plain", "ok\n", 3);
		return 200;
	}
	reply(conn, 404, "text/plain", "not found\n", 10);
	return 404;
}

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	MK_WARN("METRICS-HTTP", NULL, "%s", message);
	return 1;
}

mk_metrics_http *mk_metrics_http_start(const char *addr, int (*health)(void *ud, char *why, size_t),
                                       void *ud, char *err, size_t errlen)
{
	const char *opts[] = {"listening_ports",
	                      addr,
	                      "num_threads",
	                      "2",
	                      "request_timeout_ms",
	                      "5000",
	                      "enable_keep_alive",
	                      "yes",
	                      "keep_alive_timeout_ms",
	                      "5000",
	                      NULL};
	struct mg_server_port ports[2];
	struct mg_callbacks cb;
	mk_metrics_http *h = calloc(1, sizeof(*h));

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->health = health;
	h->ud = ud;
	memset(&cb, 0, sizeof(cb));
	cb.log_message = on_log_message;
	mg_init_library(0);
	h->ctx = mg_start(&cb, h, opts);
	if (!h->ctx) {
		snprintf(err, errlen, "cannot serve metrics on '%s' (address in use or invalid)",
		         addr);
		mg_exit_library();
		free(h);
		return NULL;
	}
	mg_set_request_handler(h->ctx, "/", on_request, h);
	h->port = mg_get_server_ports(h->ctx, 2, ports) > 0 ? ports[0].port : 0;
	MK_INFO("METRICS-LISTEN", NULL, "serving /metrics and /healthz on %s (port %d)", addr,
	        h->port);
	return h;
}

int mk_metrics_http_port(const mk_metrics_http *h)
{
	return h ? h->port : 0;
}

void mk_metrics_http_stop(mk_metrics_http *h)
{
	if (!h)
		return;
	mg_stop(h->ctx);
	mg_exit_library();
	free(h);
}
