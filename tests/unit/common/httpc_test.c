/*
 * httpc_test.c - unit tests for common/mk_httpc.c.
 *
 * A civetweb server on 127.0.0.1 (ephemeral port), started once, plays the
 * remote service: each path scripts one behaviour (flaky 503s, 429 with
 * Retry-After, oversize bodies, a slow first byte, chunked streams, a cut
 * stream). Per-path hit counters are reset before every test. Timing
 * assertions are loose on purpose: they check that a wait happened or was
 * skipped, not how precisely. A path that goes silent stays silent until
 * its test ends (at most STALL_MS), so a client that waited for it instead
 * of timing out would take far longer than any upper bound here, however
 * slow or loaded the machine.
 */
#include <arpa/inet.h>
#include <check.h>
#include <civetweb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mk_httpc.h"
#include "mk_time.h"

enum {
	ROUTE_OK,
	ROUTE_ECHO,
	ROUTE_FLAKY,
	ROUTE_503_THEN_FAR,
	ROUTE_429,
	ROUTE_RETRY_MS,
	ROUTE_RETRY_FAR,
	ROUTE_BIG,
	ROUTE_BIG_CHUNKED,
	ROUTE_SILENT,
	ROUTE_LATE,
	ROUTE_STREAM,
	ROUTE_STREAM_CUT,
	ROUTE_STREAM_STALL,
	ROUTE_POST_503,
	ROUTE_400,
	NROUTES
};

static const char *const route_path[NROUTES] = {
    [ROUTE_OK] = "/ok",
    [ROUTE_ECHO] = "/echo",
    [ROUTE_FLAKY] = "/flaky",
    [ROUTE_503_THEN_FAR] = "/503-then-far",
    [ROUTE_429] = "/429",
    [ROUTE_RETRY_MS] = "/retry-ms",
    [ROUTE_RETRY_FAR] = "/retry-far",
    [ROUTE_BIG] = "/big",
    [ROUTE_BIG_CHUNKED] = "/big-chunked",
    [ROUTE_SILENT] = "/silent",
    [ROUTE_LATE] = "/late-first-byte",
    [ROUTE_STREAM] = "/stream",
    [ROUTE_STREAM_CUT] = "/stream-cut",
    [ROUTE_STREAM_STALL] = "/stream-stall",
    [ROUTE_POST_503] = "/post-503",
    [ROUTE_400] = "/400",
};

#define BIG_LEN       ((size_t)2 << 20)
#define STREAM_CHUNKS 5
#define STALL_MS      60000 /* the longest a silent path stays silent */

static struct mg_context *server;
static int port;
static atomic_int hits[NROUTES];
static atomic_int flaky_fails;  /* how many times /flaky answers 503 first */
static atomic_int test_gen;     /* bumped when a test ends: silent paths speak again */
static atomic_int echo_expects; /* requests to /echo that carried an Expect header */

/* ---- the scripted server ---------------------------------------------- */

static void reply(struct mg_connection *conn, int code, const char *extra, const char *body,
                  size_t len)
{
	mg_printf(conn,
	          "HTTP/1.1 %d Scripted\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
	          "%sConnection: close\r\n\r\n",
	          code, len, extra ? extra : "");
	if (len)
		mg_write(conn, body, len);
}

static void chunk(struct mg_connection *conn, const char *data, size_t len)
{
	mg_printf(conn, "%zx\r\n", len);
	mg_write(conn, data, len);
	mg_write(conn, "\r\n", 2);
}

static void chunked_start(struct mg_connection *conn)
{
	mg_printf(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
	                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
}

/* Say nothing until the current test ends, or STALL_MS at most. */
static void stall(void)
{
	int gen = atomic_load(&test_gen);
	int64_t until = mk_mono_ms() + STALL_MS;

	while (atomic_load(&test_gen) == gen && mk_mono_ms() < until)
		mk_sleep_ms(10);
}

static void reply_echo(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	size_t mlen = strlen(ri->request_method), len = mlen + 1, cap = len + 4096;
	char *out = malloc(cap);
	int n;

	memcpy(out, ri->request_method, mlen);
	out[mlen] = '\n';
	for (;;) {
		if (cap - len < 4096) {
			cap *= 2;
			out = realloc(out, cap);
		}
		n = mg_read(conn, out + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	reply(conn, 200, NULL, out, len);
	free(out);
}

static int handle(struct mg_connection *conn, void *cbdata)
{
	const char *uri = mg_get_request_info(conn)->local_uri;
	char extra[128], body[64];
	int r, n;

	(void)cbdata;
	for (r = 0; r < NROUTES; r++)
		if (strcmp(uri, route_path[r]) == 0)
			break;
	if (r == NROUTES) {
		reply(conn, 404, NULL, "no such path", 12);
		return 404;
	}
	n = atomic_fetch_add(&hits[r], 1) + 1;

	switch (r) {
	case ROUTE_OK: reply(conn, 200, "X-Test:   Hello World  \r\n", "hello", 5); return 200;
	case ROUTE_ECHO: {
		const char *expect = mg_get_header(conn, "Expect");

		if (expect && *expect)
			atomic_fetch_add(&echo_expects, 1);
		reply_echo(conn);
		return 200;
	}
	case ROUTE_FLAKY:
		snprintf(extra, sizeof(extra), "X-Attempt: %d\r\n", n);
		if (n <= atomic_load(&flaky_fails)) {
			reply(conn, 503, extra, "busy", 4);
			return 503;
		}
		reply(conn, 200, extra, "finally", 7);
		return 200;
	case ROUTE_503_THEN_FAR:
		/* A retry is welcome at once, then only in 30 s. */
		reply(conn, 503, n == 1 ? NULL : "Retry-After: 30\r\n", "busy", 4);
		return 503;
	case ROUTE_POST_503: reply(conn, 503, NULL, "busy", 4); return 503;
	case ROUTE_429:
		if (n == 1) {
			reply(conn, 429, "Retry-After: 1\r\n", "slow down", 9);
			return 429;
		}
		reply(conn, 200, NULL, "ok", 2);
		return 200;
	case ROUTE_RETRY_MS:
		if (n == 1) {
			reply(conn, 429, "Retry-After: 30\r\nretry-after-ms: 50\r\n", "slow down",
			      9);
			return 429;
		}
		reply(conn, 200, NULL, "ok", 2);
		return 200;
	case ROUTE_RETRY_FAR:
		reply(conn, 429, "Retry-After: 3600\r\n", "come back later", 15);
		return 429;
	case ROUTE_BIG:
	case ROUTE_BIG_CHUNKED: {
		char *big = malloc(BIG_LEN);

		memset(big, 'x', BIG_LEN);
		if (r == ROUTE_BIG) {
			reply(conn, 200, NULL, big, BIG_LEN);
		} else {
			chunked_start(conn);
			for (size_t off = 0; off < BIG_LEN; off += 65536)
				chunk(conn, big + off, 65536);
			mg_write(conn, "0\r\n\r\n", 5);
		}
		free(big);
		return 200;
	}
	case ROUTE_SILENT:
		stall();
		reply(conn, 200, NULL, "late", 4);
		return 200;
	case ROUTE_LATE:
		mk_sleep_ms(1500);
		reply(conn, 200, NULL, "late", 4);
		return 200;
	case ROUTE_STREAM:
		chunked_start(conn);
		for (int i = 0; i < STREAM_CHUNKS; i++) {
			snprintf(body, sizeof(body), "chunk-%d;", i);
			chunk(conn, body, strlen(body));
			mk_sleep_ms(50);
		}
		mg_write(conn, "0\r\n\r\n", 5);
		return 200;
	case ROUTE_STREAM_CUT:
		/* One chunk, then the connection closes without the last chunk. */
		chunked_start(conn);
		chunk(conn, "partial", 7);
		return 200;
	case ROUTE_STREAM_STALL:
		/* A first chunk at once, then silence until the test ends. */
		chunked_start(conn);
		chunk(conn, "first;", 6);
		stall();
		chunk(conn, "second;", 7);
		mg_write(conn, "0\r\n\r\n", 5);
		return 200;
	case ROUTE_400: reply(conn, 400, NULL, "bad request", 11); return 400;
	}
	return 500;
}

/* The test is over: every silent path may give up. */
static void stalls_release(void)
{
	atomic_fetch_add(&test_gen, 1);
}

static void server_start(void)
{
	const char *opts[] = {"listening_ports", "127.0.0.1:0", "num_threads", "16", NULL};
	struct mg_callbacks cb;
	struct mg_server_port ports[4];

	memset(&cb, 0, sizeof(cb));
	server = mg_start(&cb, NULL, opts);
	ck_assert_ptr_nonnull(server);
	mg_set_request_handler(server, "/", handle, NULL);
	ck_assert_int_ge(mg_get_server_ports(server, 4, ports), 1);
	port = ports[0].port;
	ck_assert_int_gt(port, 0);
}

static void server_stop(void)
{
	stalls_release();
	mg_stop(server);
	server = NULL;
}

static void counters_reset(void)
{
	for (int r = 0; r < NROUTES; r++)
		atomic_store(&hits[r], 0);
	atomic_store(&flaky_fails, 0);
	atomic_store(&echo_expects, 0);
}

/* ---- helpers ------------------------------------------------------------ */

static char url_buf[512];

static const char *url(const char *path)
{
	snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
	return url_buf;
}

static mk_httpc_req get(const char *path)
{
	mk_httpc_req req;

	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url(path);
	req.backoff_base_ms = 10;
	return req;
}

/* A loopback port nobody listens on (a tiny race with other processes is fine). */
static int unused_port(void)
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

struct sink {
	char data[4096];
	size_t len;
	int calls;
	int stop_after; /* abort on this call (1-based); 0: never */
};

static int sink_data(void *ud, const char *data, size_t len)
{
	struct sink *s = ud;

	s->calls++;
	if (s->stop_after && s->calls >= s->stop_after)
		return 1;
	ck_assert_uint_le(s->len + len, sizeof(s->data) - 1);
	memcpy(s->data + s->len, data, len);
	s->len += len;
	s->data[s->len] = '\0';
	return 0;
}

/* ---- plain requests ----------------------------------------------------- */

START_TEST(a_get_returns_the_status_body_and_headers)
{
	mk_httpc_req req = get("/ok");
	mk_httpc_resp resp;
	char *v;

	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.status, MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(resp.retry_after_ms, -1);
	ck_assert_str_eq(resp.error, "");
	ck_assert_uint_eq(resp.body.len, 5);
	ck_assert_str_eq(resp.body.data, "hello");
	ck_assert_ptr_nonnull(resp.headers);
	v = mk_httpc_header(&resp, "x-TEST");
	ck_assert_str_eq(v, "Hello World");
	free(v);
	v = mk_httpc_header(&resp, "content-length");
	ck_assert_str_eq(v, "5");
	free(v);
	ck_assert_ptr_null(mk_httpc_header(&resp, "X-Missing"));
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_post_sends_its_method_and_body)
{
	mk_httpc_req req = get("/echo");
	mk_httpc_resp resp;
	const char *hdrs[] = {"Content-Type: application/json", NULL};

	req.method = "POST";
	req.headers = hdrs;
	req.body = "{\"a\":1}";
	req.body_len = 7;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_str_eq(resp.body.data, "POST\n{\"a\":1}");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_binary_body_is_sent_whole_including_nul_bytes)
{
	mk_httpc_req req = get("/echo");
	mk_httpc_resp resp;
	const char body[] = {'a', '\0', 'b', '\0'};

	req.method = "POST";
	req.body = body;
	req.body_len = sizeof(body);
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_uint_eq(resp.body.len, 5 + sizeof(body));
	ck_assert_mem_eq(resp.body.data, "POST\na\0b\0", 9);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_large_upload_goes_through_without_stalling)
{
	mk_httpc_req req = get("/echo");
	mk_httpc_resp resp;
	size_t n = (size_t)1 << 20;
	char *body = malloc(n);

	memset(body, 'u', n);
	req.method = "POST";
	req.body = body;
	req.body_len = n;
	req.idle_timeout_ms = 2000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_uint_eq(resp.body.len, 5 + n);
	/*
	 * No "Expect: 100-continue": against a server that ignores it, curl
	 * would hold the body back for a second first.
	 */
	ck_assert_msg(atomic_load(&echo_expects) == 0,
	              "the upload asked the server for a 100 Continue first");
	mk_httpc_resp_release(&resp);
	free(body);
}
END_TEST

START_TEST(put_and_delete_are_sent_with_their_method)
{
	mk_httpc_req req = get("/echo");
	mk_httpc_resp resp;

	req.method = "PUT";
	req.body = "data";
	req.body_len = 4;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_str_eq(resp.body.data, "PUT\ndata");
	mk_httpc_resp_release(&resp);

	req.method = "DELETE";
	req.body = NULL;
	req.body_len = 0;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_str_eq(resp.body.data, "DELETE\n");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_head_request_gets_the_status_and_no_body)
{
	mk_httpc_req req = get("/ok");
	mk_httpc_resp resp;

	req.method = "HEAD";
	req.max_response = 1; /* the announced length of a HEAD body is not a body */
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_uint_eq(resp.body.len, 0);
	mk_httpc_resp_release(&resp);
}
END_TEST

/* ---- retries ------------------------------------------------------------ */

START_TEST(a_flaky_get_is_retried_until_it_succeeds)
{
	mk_httpc_req req = get("/flaky");
	mk_httpc_resp resp;
	char *v;

	atomic_store(&flaky_fails, 2);
	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_str_eq(resp.body.data, "finally");
	/* Only the final attempt's headers are kept. */
	v = mk_httpc_header(&resp, "X-Attempt");
	ck_assert_str_eq(v, "3");
	free(v);
	ck_assert_ptr_null(strstr(resp.headers, "X-Attempt: 1"));
	ck_assert_ptr_null(strstr(resp.headers, " 503 "));
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(retries_stop_after_max_retries_with_the_last_response)
{
	mk_httpc_req req = get("/flaky");
	mk_httpc_resp resp;

	atomic_store(&flaky_fails, 10);
	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 503);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_int_eq(atomic_load(&hits[ROUTE_FLAKY]), 3);
	ck_assert_str_eq(resp.body.data, "busy");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(no_retries_means_one_attempt)
{
	mk_httpc_req req = get("/flaky");
	mk_httpc_resp resp;

	atomic_store(&flaky_fails, 10);
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 503);
	ck_assert_int_eq(resp.attempts, 1);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_429_with_retry_after_seconds_waits_that_long_then_retries)
{
	mk_httpc_req req = get("/429");
	mk_httpc_resp resp;
	int64_t t0 = mk_mono_ms();

	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_int_eq(resp.attempts, 2);
	ck_assert_int_ge(mk_mono_ms() - t0, 900);
	ck_assert_int_eq(resp.retry_after_ms, -1); /* the final response had none */
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(retry_after_ms_takes_precedence_over_retry_after)
{
	mk_httpc_req req = get("/retry-ms");
	mk_httpc_resp resp;
	int64_t t0 = mk_mono_ms();

	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_int_eq(resp.attempts, 2);
	ck_assert_int_ge(mk_mono_ms() - t0, 40);
	ck_assert_int_lt(mk_mono_ms() - t0, 10000); /* not Retry-After's 30 s */
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(the_retry_hint_of_the_last_response_is_reported)
{
	mk_httpc_req req = get("/retry-ms");
	mk_httpc_resp resp;

	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 429);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(resp.retry_after_ms, 50);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_retry_after_beyond_the_deadline_returns_the_429_at_once)
{
	mk_httpc_req req = get("/retry-far");
	mk_httpc_resp resp;
	int64_t t0 = mk_mono_ms();

	req.max_retries = 3;
	req.deadline_mono_ms = t0 + 30000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 429);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_ge(resp.retry_after_ms, 3599000);
	ck_assert_str_eq(resp.body.data, "come back later");
	/* Not a wait until the deadline 30 s away. */
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_post_is_not_retried_unless_marked_idempotent)
{
	mk_httpc_req req = get("/post-503");
	mk_httpc_resp resp;

	req.method = "POST";
	req.body = "x";
	req.body_len = 1;
	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 503);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(atomic_load(&hits[ROUTE_POST_503]), 1);
	mk_httpc_resp_release(&resp);

	req.idempotent = 1;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 503);
	ck_assert_int_eq(resp.attempts, 4);
	ck_assert_int_eq(atomic_load(&hits[ROUTE_POST_503]), 5);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_400_is_not_retried)
{
	mk_httpc_req req = get("/400");
	mk_httpc_resp resp;

	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 400);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_str_eq(resp.body.data, "bad request");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_refused_connection_is_retried_then_reported_as_connect)
{
	mk_httpc_req req = get("/");
	mk_httpc_resp resp;
	char u[64], hostport[32];
	int p = unused_port();

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/v1/x", p);
	snprintf(hostport, sizeof(hostport), "'127.0.0.1:%d'", p);
	req.url = u;
	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_CONNECT);
	ck_assert_int_eq(resp.attempts, 3);
	ck_assert_int_eq(resp.http_status, 0);
	ck_assert_ptr_nonnull(strstr(resp.error, "could not connect to"));
	ck_assert_ptr_nonnull(strstr(resp.error, hostport));
	ck_assert_ptr_null(resp.headers);
	mk_httpc_resp_release(&resp);
}
END_TEST

/* ---- limits and timeouts ------------------------------------------------ */

START_TEST(a_body_over_max_response_is_too_large)
{
	mk_httpc_req req = get("/big");
	mk_httpc_resp resp;

	req.max_response = (size_t)1 << 20;
	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TOO_LARGE);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_ptr_nonnull(strstr(resp.error, "exceeds 1048576 bytes"));
	ck_assert_ptr_nonnull(strstr(resp.error, "127.0.0.1"));
	/* Refused from Content-Length, before any of it was kept. */
	ck_assert_uint_eq(resp.body.len, 0);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_chunked_body_over_max_response_is_too_large)
{
	mk_httpc_req req = get("/big-chunked");
	mk_httpc_resp resp;

	req.max_response = (size_t)1 << 20;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TOO_LARGE);
	ck_assert_ptr_nonnull(strstr(resp.error, "exceeds 1048576 bytes"));
	ck_assert_uint_le(resp.body.len, (size_t)1 << 20);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_body_under_the_default_cap_is_kept_whole)
{
	mk_httpc_req req = get("/big");
	mk_httpc_resp resp;

	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_uint_eq(resp.body.len, BIG_LEN);
	ck_assert_int_eq(resp.body.data[BIG_LEN - 1], 'x');
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_slow_first_byte_trips_the_idle_timeout)
{
	mk_httpc_req req = get("/silent");
	mk_httpc_resp resp;
	char want[64];
	int64_t t0 = mk_mono_ms();

	req.idle_timeout_ms = 300;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TIMEOUT);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_ge(mk_mono_ms() - t0, 290);
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	snprintf(want, sizeof(want), "no data from '127.0.0.1:%d' for 300 ms", port);
	ck_assert_str_eq(resp.error, want);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_slow_first_byte_trips_the_first_byte_timeout)
{
	mk_httpc_req req = get("/silent");
	mk_httpc_resp resp;
	char want[64];
	int64_t t0 = mk_mono_ms();

	req.first_byte_timeout_ms = 300;
	req.idle_timeout_ms = STALL_MS + 30000; /* would fire only after the silence ends */
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TIMEOUT);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_ge(mk_mono_ms() - t0, 290);
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	snprintf(want, sizeof(want), "no response from '127.0.0.1:%d' within 300 ms", port);
	ck_assert_str_eq(resp.error, want);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(the_first_byte_timeout_replaces_the_idle_timeout_until_the_body_starts)
{
	mk_httpc_req req = get("/late-first-byte");
	mk_httpc_resp resp;

	req.first_byte_timeout_ms = 60000;
	req.idle_timeout_ms = 300; /* alone, it would fire during the 1.5 s wait */
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_str_eq(resp.body.data, "late");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(after_the_first_body_byte_the_idle_timeout_applies)
{
	mk_httpc_req req = get("/stream-stall");
	mk_httpc_resp resp;
	struct sink s = {.len = 0};
	char want[64];
	int64_t t0 = mk_mono_ms();

	req.first_byte_timeout_ms = STALL_MS + 30000; /* would fire only after the silence ends */
	req.idle_timeout_ms = 300;
	req.on_data = sink_data;
	req.ud = &s;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TIMEOUT);
	ck_assert_str_eq(s.data, "first;");
	ck_assert_int_ge(mk_mono_ms() - t0, 290);
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	snprintf(want, sizeof(want), "no data from '127.0.0.1:%d' for 300 ms", port);
	ck_assert_str_eq(resp.error, want);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_stream_that_keeps_sending_is_not_cut_by_the_idle_timeout)
{
	mk_httpc_req req = get("/stream");
	mk_httpc_resp resp;

	req.idle_timeout_ms = 1000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_str_eq(resp.body.data, "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(the_total_timeout_fails_the_call_without_retrying)
{
	mk_httpc_req req = get("/silent");
	mk_httpc_resp resp;

	req.total_timeout_ms = 300;
	req.max_retries = 2;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TIMEOUT);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_ptr_nonnull(strstr(resp.error, "within 300 ms"));
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_passed_deadline_sends_nothing)
{
	mk_httpc_req req = get("/ok");
	mk_httpc_resp resp;

	req.deadline_mono_ms = mk_mono_ms() - 1;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_DEADLINE);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_int_eq(atomic_load(&hits[ROUTE_OK]), 0);
	ck_assert_ptr_nonnull(strstr(resp.error, "deadline"));
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(the_deadline_cuts_a_slow_attempt_short)
{
	mk_httpc_req req = get("/silent");
	mk_httpc_resp resp;
	int64_t t0 = mk_mono_ms();

	req.deadline_mono_ms = t0 + 1000;
	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_DEADLINE);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_ge(mk_mono_ms() - t0, 950);
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(retries_never_wait_past_the_deadline)
{
	mk_httpc_req req = get("/503-then-far");
	mk_httpc_resp resp;
	int64_t t0 = mk_mono_ms();

	/* The first retry fits before the deadline; the second (in 30 s) does not. */
	req.max_retries = 5;
	req.deadline_mono_ms = t0 + 20000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 503);
	ck_assert_int_eq(resp.attempts, 2);
	ck_assert_int_eq(resp.retry_after_ms, 30000);
	/* Given up at once: no wait for the retry, nor until the deadline. */
	ck_assert_int_lt(mk_mono_ms() - t0, 10000);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_transport_error_at_the_deadline_is_reported_as_deadline)
{
	mk_httpc_req req = get("/");
	mk_httpc_resp resp;
	char u[64];

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", unused_port());
	req.url = u;
	req.max_retries = 5;
	req.backoff_base_ms = 8000; /* the first backoff: 4 to 8 s, past the deadline */
	req.deadline_mono_ms = mk_mono_ms() + 3000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_DEADLINE);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_ptr_nonnull(strstr(resp.error, "could not connect"));
	mk_httpc_resp_release(&resp);
}
END_TEST

/* ---- streaming ---------------------------------------------------------- */

START_TEST(a_stream_delivers_every_byte_in_order_to_on_data)
{
	mk_httpc_req req = get("/stream");
	mk_httpc_resp resp;
	struct sink s = {.len = 0};

	req.on_data = sink_data;
	req.ud = &s;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 200);
	ck_assert_str_eq(s.data, "chunk-0;chunk-1;chunk-2;chunk-3;chunk-4;");
	ck_assert_int_ge(s.calls, 1);
	ck_assert_uint_eq(resp.body.len, 0);
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(on_data_returning_nonzero_aborts_the_call)
{
	mk_httpc_req req = get("/stream");
	mk_httpc_resp resp;
	struct sink s = {.stop_after = 1};

	req.on_data = sink_data;
	req.ud = &s;
	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_ABORTED);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_ne(resp.error, "");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(an_error_body_is_buffered_even_when_streaming)
{
	mk_httpc_req req = get("/400");
	mk_httpc_resp resp;
	struct sink s = {.len = 0};

	req.on_data = sink_data;
	req.ud = &s;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_OK);
	ck_assert_int_eq(resp.http_status, 400);
	ck_assert_int_eq(s.calls, 0);
	ck_assert_str_eq(resp.body.data, "bad request");
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_cut_stream_is_not_retried_once_bytes_were_delivered)
{
	mk_httpc_req req = get("/stream-cut");
	mk_httpc_resp resp;
	struct sink s = {.len = 0};

	req.on_data = sink_data;
	req.ud = &s;
	req.max_retries = 3;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_NETWORK);
	ck_assert_int_eq(resp.attempts, 1);
	ck_assert_str_eq(s.data, "partial");
	mk_httpc_resp_release(&resp);

	/* The same failure without streaming is retried. */
	req.on_data = NULL;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_NETWORK);
	ck_assert_int_eq(resp.attempts, 4);
	mk_httpc_resp_release(&resp);
}
END_TEST

/* ---- messages keep secrets out ------------------------------------------ */

START_TEST(error_messages_name_the_host_but_no_query_path_or_header_value)
{
	mk_httpc_req req = get("/");
	mk_httpc_resp resp;
	const char *hdrs[] = {"Authorization: Bearer SECRETTOKEN", "X-Key: 127.0.0.1 port", NULL};
	char u[160];

	snprintf(u, sizeof(u),
	         "http://user:hunter2pw@127.0.0.1:%d/v1/secret-path?api_key=SECRETKEY",
	         unused_port());
	req.url = u;
	req.headers = hdrs;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_CONNECT);
	ck_assert_ptr_nonnull(strstr(resp.error, "127.0.0.1"));
	ck_assert_ptr_null(strstr(resp.error, "SECRETKEY"));
	ck_assert_ptr_null(strstr(resp.error, "SECRETTOKEN"));
	ck_assert_ptr_null(strstr(resp.error, "hunter2pw"));
	ck_assert_ptr_null(strstr(resp.error, "secret-path"));
	/* curl's own text held a header value, so the generic text replaced it. */
	ck_assert_ptr_null(strstr(resp.error, "127.0.0.1 port"));
	mk_httpc_resp_release(&resp);

	snprintf(u, sizeof(u), "http://127.0.0.1:%d/big?api_key=SECRETKEY", port);
	req.url = u;
	req.max_response = 1000;
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_TOO_LARGE);
	ck_assert_ptr_null(strstr(resp.error, "SECRETKEY"));
	ck_assert_ptr_null(strstr(resp.error, "/big"));
	mk_httpc_resp_release(&resp);
}
END_TEST

START_TEST(a_malformed_url_fails_without_echoing_it)
{
	mk_httpc_req req = get("/");
	mk_httpc_resp resp;

	req.url = "ht!tp://[bad?key=SECRETKEY";
	ck_assert_int_eq(mk_httpc_do(&req, &resp), MK_HTTPC_NETWORK);
	ck_assert_int_eq(resp.attempts, 0);
	ck_assert_ptr_null(strstr(resp.error, "SECRETKEY"));
	mk_httpc_resp_release(&resp);

	ck_assert_int_eq(mk_httpc_do(NULL, &resp), MK_HTTPC_NETWORK);
	mk_httpc_resp_release(&resp);
}
END_TEST

/* ---- pure functions ----------------------------------------------------- */

START_TEST(retry_after_in_seconds_is_parsed_to_milliseconds)
{
	ck_assert_int_eq(mk_httpc_parse_retry_after("5", 0), 5000);
	ck_assert_int_eq(mk_httpc_parse_retry_after(" 2 \r\n", 0), 2000);
	ck_assert_int_eq(mk_httpc_parse_retry_after("0", 0), 0);
	ck_assert_int_gt(mk_httpc_parse_retry_after("99999999999999999999999", 0), 0);
}
END_TEST

START_TEST(retry_after_as_an_http_date_is_measured_from_now)
{
	/* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
	int64_t at = 1445412480LL * 1000;

	ck_assert_int_eq(mk_httpc_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at - 3000),
	                 3000);
	ck_assert_int_eq(mk_httpc_parse_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", at - 1000),
	                 1000);
	ck_assert_int_eq(mk_httpc_parse_retry_after("Wed Oct 21 07:28:00 2015", at - 1000), 1000);
	/* A date in the past means "now". */
	ck_assert_int_eq(mk_httpc_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", at + 5000), 0);
}
END_TEST

START_TEST(garbage_retry_after_is_unparseable)
{
	ck_assert_int_eq(mk_httpc_parse_retry_after("garbage", 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after("", 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after("   ", 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after(NULL, 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after("-3", 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after("1.5", 0), -1);
	ck_assert_int_eq(mk_httpc_parse_retry_after("5 seconds", 0), -1);
}
END_TEST

START_TEST(header_lookup_is_case_insensitive_trimmed_and_exact_on_the_name)
{
	mk_httpc_resp resp;
	char *v;

	memset(&resp, 0, sizeof(resp));
	resp.headers = strdup("HTTP/1.1 200 OK\r\nContent-Type:  text/plain \r\nX-Dup: a\r\n"
	                      "x-dup: b\r\nEmpty:\r\nLast: z");
	v = mk_httpc_header(&resp, "content-type");
	ck_assert_str_eq(v, "text/plain");
	free(v);
	v = mk_httpc_header(&resp, "X-DUP");
	ck_assert_str_eq(v, "a");
	free(v);
	v = mk_httpc_header(&resp, "Empty");
	ck_assert_str_eq(v, "");
	free(v);
	v = mk_httpc_header(&resp, "last");
	ck_assert_str_eq(v, "z");
	free(v);
	ck_assert_ptr_null(mk_httpc_header(&resp, "Content"));
	ck_assert_ptr_null(mk_httpc_header(&resp, "Missing"));
	ck_assert_ptr_null(mk_httpc_header(&resp, ""));
	mk_httpc_resp_release(&resp);
	mk_httpc_resp_release(&resp); /* twice is safe */
	ck_assert_ptr_null(mk_httpc_header(&resp, "Last"));
}
END_TEST

static Suite *httpc_suite(void)
{
	Suite *s = suite_create("httpc");
	TCase *pure = tcase_create("pure");
	TCase *net = tcase_create("loopback");

	tcase_add_test(pure, retry_after_in_seconds_is_parsed_to_milliseconds);
	tcase_add_test(pure, retry_after_as_an_http_date_is_measured_from_now);
	tcase_add_test(pure, garbage_retry_after_is_unparseable);
	tcase_add_test(pure, header_lookup_is_case_insensitive_trimmed_and_exact_on_the_name);
	suite_add_tcase(s, pure);

	tcase_add_unchecked_fixture(net, server_start, server_stop);
	tcase_add_checked_fixture(net, counters_reset, stalls_release);
	tcase_set_timeout(net, 60);
	tcase_add_test(net, a_get_returns_the_status_body_and_headers);
	tcase_add_test(net, a_post_sends_its_method_and_body);
	tcase_add_test(net, a_binary_body_is_sent_whole_including_nul_bytes);
	tcase_add_test(net, a_large_upload_goes_through_without_stalling);
	tcase_add_test(net, put_and_delete_are_sent_with_their_method);
	tcase_add_test(net, a_head_request_gets_the_status_and_no_body);
	tcase_add_test(net, a_flaky_get_is_retried_until_it_succeeds);
	tcase_add_test(net, retries_stop_after_max_retries_with_the_last_response);
	tcase_add_test(net, no_retries_means_one_attempt);
	tcase_add_test(net, a_429_with_retry_after_seconds_waits_that_long_then_retries);
	tcase_add_test(net, retry_after_ms_takes_precedence_over_retry_after);
	tcase_add_test(net, the_retry_hint_of_the_last_response_is_reported);
	tcase_add_test(net, a_retry_after_beyond_the_deadline_returns_the_429_at_once);
	tcase_add_test(net, a_post_is_not_retried_unless_marked_idempotent);
	tcase_add_test(net, a_400_is_not_retried);
	tcase_add_test(net, a_refused_connection_is_retried_then_reported_as_connect);
	tcase_add_test(net, a_body_over_max_response_is_too_large);
	tcase_add_test(net, a_chunked_body_over_max_response_is_too_large);
	tcase_add_test(net, a_body_under_the_default_cap_is_kept_whole);
	tcase_add_test(net, a_slow_first_byte_trips_the_idle_timeout);
	tcase_add_test(net, a_slow_first_byte_trips_the_first_byte_timeout);
	tcase_add_test(net, the_first_byte_timeout_replaces_the_idle_timeout_until_the_body_starts);
	tcase_add_test(net, after_the_first_body_byte_the_idle_timeout_applies);
	tcase_add_test(net, a_stream_that_keeps_sending_is_not_cut_by_the_idle_timeout);
	tcase_add_test(net, the_total_timeout_fails_the_call_without_retrying);
	tcase_add_test(net, a_passed_deadline_sends_nothing);
	tcase_add_test(net, the_deadline_cuts_a_slow_attempt_short);
	tcase_add_test(net, retries_never_wait_past_the_deadline);
	tcase_add_test(net, a_transport_error_at_the_deadline_is_reported_as_deadline);
	tcase_add_test(net, a_stream_delivers_every_byte_in_order_to_on_data);
	tcase_add_test(net, on_data_returning_nonzero_aborts_the_call);
	tcase_add_test(net, an_error_body_is_buffered_even_when_streaming);
	tcase_add_test(net, a_cut_stream_is_not_retried_once_bytes_were_delivered);
	tcase_add_test(net, error_messages_name_the_host_but_no_query_path_or_header_value);
	tcase_add_test(net, a_malformed_url_fails_without_echoing_it);
	suite_add_tcase(s, net);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	if (mk_httpc_global_init() != 0) {
		fprintf(stderr, "httpc_test: curl_global_init failed\n");
		return 1;
	}
	mg_init_library(0);
	sr = srunner_create(httpc_suite());
	/*
	 * One process: the server lives across tests, and the sanitizers see
	 * every allocation. A crash stops the run, which is loud enough.
	 */
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	mg_exit_library();
	mk_httpc_global_cleanup();
	return failed ? 1 : 0;
}
