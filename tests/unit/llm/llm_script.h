/*
 * llm_script.h - a scripted HTTP server for the provider client tests
 * (openai_test.c, anthropic_test.c), in process on 127.0.0.1:<ephemeral>.
 *
 * A test sets up to LS_MAX_REPLIES replies; request n gets reply n (the
 * last one repeats). A reply is a status, extra headers and a body sent in
 * one piece or as chunks of a chosen size, with a delay before the first
 * byte, a gap between chunks, a stall at a chosen offset, or a cut (no
 * final chunk). The last request's method, URI (URL-decoded, as civetweb
 * gives it), headers and body are kept for assertions. Tests run without forking, one at a time;
 * the lock only guards against the server's own threads.
 */
#ifndef LLM_SCRIPT_H
#define LLM_SCRIPT_H

#include <arpa/inet.h>
#include <check.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mk_httpc.h"
#include "mk_time.h"

#define LS_MAX_REPLIES 8

typedef struct {
	int status;
	const char *headers; /* extra "Name: value\r\n" lines, or NULL */
	const char *ctype;   /* NULL: text/event-stream when chunked, else application/json */
	const char *body;    /* NULL: empty */
	size_t chunk;        /* 0: one write with Content-Length; n: chunked, n bytes a chunk */
	int delay_ms;        /* before the status line */
	int gap_ms;          /* between chunks */
	size_t stall_at;     /* after this many body bytes, go quiet for stall_ms (0: never) */
	int stall_ms;
	int cut; /* end without the last chunk: the connection just closes */
} ls_reply;

static struct {
	struct mg_context *ctx;
	int port;
	pthread_mutex_t mu;
	ls_reply script[LS_MAX_REPLIES];
	int nscript;
	int hits;
	char method[16];
	char uri[1024];
	char headers[8192]; /* "name: value\n" as received */
	char *body;
} ls = {.mu = PTHREAD_MUTEX_INITIALIZER};

static inline void ls_chunk(struct mg_connection *conn, const char *p, size_t n)
{
	mg_printf(conn, "%zx\r\n", n);
	mg_write(conn, p, n);
	mg_write(conn, "\r\n", 2);
}

static inline void ls_send(struct mg_connection *conn, const ls_reply *r)
{
	const char *body = r->body ? r->body : "";
	size_t len = strlen(body), off = 0;
	int stalled = 0;

	if (r->delay_ms)
		mk_sleep_ms(r->delay_ms);
	if (r->chunk == 0) {
		mg_printf(conn,
		          "HTTP/1.1 %d Scripted\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
		          "%sConnection: close\r\n\r\n",
		          r->status, r->ctype ? r->ctype : "application/json", len,
		          r->headers ? r->headers : "");
		mg_write(conn, body, len);
		return;
	}
	mg_printf(conn,
	          "HTTP/1.1 %d Scripted\r\nContent-Type: %s\r\nTransfer-Encoding: chunked\r\n"
	          "%sConnection: close\r\n\r\n",
	          r->status, r->ctype ? r->ctype : "text/event-stream",
	          r->headers ? r->headers : "");
	while (off < len) {
		size_t n = len - off < r->chunk ? len - off : r->chunk;

		if (r->stall_at && !stalled && off + n > r->stall_at) {
			n = r->stall_at > off ? r->stall_at - off : 0;
			if (n)
				ls_chunk(conn, body + off, n);
			off += n;
			mk_sleep_ms(r->stall_ms);
			stalled = 1;
			continue;
		}
		ls_chunk(conn, body + off, n);
		off += n;
		if (r->gap_ms && off < len)
			mk_sleep_ms(r->gap_ms);
	}
	if (!r->cut)
		mg_write(conn, "0\r\n\r\n", 5);
}

static inline int ls_handle(struct mg_connection *conn, void *cbdata)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	size_t cap = 4096, len = 0, hl = 0;
	char *body = malloc(cap);
	ls_reply r;
	int n;

	(void)cbdata;
	while ((n = mg_read(conn, body + len, cap - len - 1)) > 0) {
		len += (size_t)n;
		if (cap - len < 1024) {
			cap *= 2;
			body = realloc(body, cap);
		}
	}
	body[len] = '\0';
	pthread_mutex_lock(&ls.mu);
	snprintf(ls.method, sizeof(ls.method), "%s", ri->request_method);
	snprintf(ls.uri, sizeof(ls.uri), "%s%s%s", ri->local_uri, ri->query_string ? "?" : "",
	         ri->query_string ? ri->query_string : "");
	ls.headers[0] = '\0';
	for (int i = 0; i < ri->num_headers; i++)
		hl += (size_t)snprintf(
		    ls.headers + hl, hl < sizeof(ls.headers) ? sizeof(ls.headers) - hl : 0,
		    "%s: %s\n", ri->http_headers[i].name, ri->http_headers[i].value);
	free(ls.body);
	ls.body = body;
	r = ls.script[ls.hits < ls.nscript ? ls.hits : (ls.nscript > 0 ? ls.nscript - 1 : 0)];
	ls.hits++;
	pthread_mutex_unlock(&ls.mu);
	if (r.status == 0)
		r.status = 500;
	ls_send(conn, &r);
	return r.status;
}

static inline void ls_start(void)
{
	const char *opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8", NULL};
	struct mg_callbacks cb;
	struct mg_server_port ports[4];

	ck_assert_int_eq(mk_httpc_global_init(), 0);
	mg_init_library(0);
	memset(&cb, 0, sizeof(cb));
	ls.ctx = mg_start(&cb, NULL, opts);
	ck_assert_ptr_nonnull(ls.ctx);
	mg_set_request_handler(ls.ctx, "/", ls_handle, NULL);
	ck_assert_int_ge(mg_get_server_ports(ls.ctx, 4, ports), 1);
	ls.port = ports[0].port;
}

static inline void ls_stop(void)
{
	mg_stop(ls.ctx);
	ls.ctx = NULL;
	free(ls.body);
	ls.body = NULL;
	mg_exit_library();
	mk_httpc_global_cleanup();
}

/* Forget the last test: no script, no requests. */
static inline void ls_reset(void)
{
	pthread_mutex_lock(&ls.mu);
	memset(ls.script, 0, sizeof(ls.script));
	ls.nscript = 0;
	ls.hits = 0;
	ls.method[0] = ls.uri[0] = ls.headers[0] = '\0';
	free(ls.body);
	ls.body = NULL;
	pthread_mutex_unlock(&ls.mu);
}

static inline void ls_script(const ls_reply *replies, int n)
{
	ck_assert_int_le(n, LS_MAX_REPLIES);
	pthread_mutex_lock(&ls.mu);
	memcpy(ls.script, replies, (size_t)n * sizeof(*replies));
	ls.nscript = n;
	pthread_mutex_unlock(&ls.mu);
}

static inline int ls_hits(void)
{
	int n;

	pthread_mutex_lock(&ls.mu);
	n = ls.hits;
	pthread_mutex_unlock(&ls.mu);
	return n;
}

/* The last request's header value (case-insensitive name), or NULL. Static buffer. */
static inline const char *ls_header(const char *name)
{
	static char val[1024];
	size_t nlen = strlen(name);
	const char *p = ls.headers;

	while (*p) {
		const char *eol = strchr(p, '\n');

		if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
			snprintf(val, sizeof(val), "%.*s", (int)(eol - p - nlen - 2), p + nlen + 2);
			return val;
		}
		p = eol + 1;
	}
	return NULL;
}

/* A loopback port nobody listens on (a tiny race with other processes is fine). */
static inline int ls_unused_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), p;

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	p = ntohs(sa.sin_port);
	close(fd);
	return p;
}

/* The server's base URL with a path prefix, e.g. ls_base("/v1"). Static buffer. */
static inline const char *ls_base(const char *prefix)
{
	static char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", ls.port, prefix);
	return url;
}

#endif
