/*
 * mk_httpc.c - the HTTP client over libcurl (libmk, the common layer).
 *
 * One mk_httpc_do() call makes one or more attempts, each on its own curl
 * easy handle (so nothing leaks from a failed attempt into the next), and
 * answers with the outcome of the last one. Per attempt it applies:
 *
 *   - a connect timeout and a total timeout, the latter clamped to what is
 *     left before the call's deadline;
 *   - a first-byte timeout, measured from the attempt's start until the
 *     first byte of the response body, and then an idle timeout, measured
 *     from the last byte received or sent (curl's LOW_SPEED options work in
 *     whole seconds and on averages, too coarse). The progress callback
 *     notes every byte and aborts the transfer; the transfer is driven
 *     through a private multi handle so that the poll wakes up when the
 *     time runs out, not up to a second later;
 *   - a cap on the response: the body (buffered or streamed), checked
 *     against Content-Length before the first byte is kept and on every
 *     write; and a fixed cap on the headers.
 *
 * Between attempts it backs off exponentially with jitter, or waits as long
 * as the server's Retry-After / retry-after-ms says (capped), and never past
 * the deadline. Only idempotent requests are retried, and only after
 * errors that a retry may cure; never once body bytes went to on_data.
 *
 * curl's error codes are translated here, once, into mk_httpc_status and a
 * message naming the host. Messages never carry the URL's path, query,
 * userinfo or fragment, nor header values: those can hold API keys, so a
 * curl error text that contains any of them is replaced by the generic
 * text for its code.
 *
 * Not here: redirects (off; callers talk to APIs that do not redirect),
 * cookies, content decoding, connection reuse across calls.
 */
#include "mk_httpc.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "mk_time.h"

#define DEFAULT_CONNECT_MS   10000
#define DEFAULT_MAX_RESPONSE ((size_t)16 << 20)
#define DEFAULT_BACKOFF_MS   250
#define BACKOFF_CAP_MS       8000
#define RETRY_AFTER_CAP_MS   60000
#define MAX_HEADER_BYTES     ((size_t)256 << 10)

/* Parts of the URL that must never appear in a message. */
enum { SECRET_PATH, SECRET_QUERY, SECRET_USER, SECRET_PASSWORD, SECRET_FRAGMENT, NSECRETS };

/* What stays the same for every attempt of one call. */
struct call {
	const mk_httpc_req *req;
	mk_httpc_resp *resp;
	struct curl_slist *hdrs;
	char *host;             /* "host" or "host:port", for messages; malloc'd */
	char *secret[NSECRETS]; /* curl_free'd */
	size_t max;
	int retry_ok; /* the method or the caller says the request is idempotent */
	mk_buf head;  /* raw headers of the current response */
};

/* The state of one attempt, fresh for each. */
struct attempt {
	struct call *c;
	CURL *h;
	int64_t start_ms; /* mk_mono_ms() when the attempt started */
	int64_t last_ms;  /* mk_mono_ms() of the last byte in or out */
	curl_off_t dl_seen, ul_seen;
	size_t received; /* body bytes of this response */
	int length_checked;
	int too_large, head_too_large, user_abort, idle, oom, streamed;
	int got_body;   /* a byte of the body arrived: the idle timeout applies now */
	int first_byte; /* the first-byte timeout fired */
	char errbuf[CURL_ERROR_SIZE];
};

int mk_httpc_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -1;
}

void mk_httpc_global_cleanup(void)
{
	curl_global_cleanup();
}

void mk_httpc_resp_release(mk_httpc_resp *resp)
{
	if (!resp)
		return;
	mk_buf_release(&resp->body);
	free(resp->headers);
	resp->headers = NULL;
}

static void set_error(mk_httpc_resp *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(mk_httpc_resp *resp, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(resp->error, sizeof(resp->error), fmt, ap);
	va_end(ap);
}

/* ---- headers ---------------------------------------------------------- */

static int is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

/*
 * Find header `name` in raw header text; on success point *val at its
 * trimmed value and return its length, else return -1. The status line and
 * continuation lines never match (they have no "name:" at the start).
 */
static long header_find(const char *raw, size_t len, const char *name, const char **val)
{
	size_t nlen = strlen(name);
	const char *p = raw, *end = raw + len;

	if (!raw || nlen == 0)
		return -1;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = eol ? eol : end;

		if ((size_t)(line_end - p) > nlen && p[nlen] == ':' &&
		    strncasecmp(p, name, nlen) == 0) {
			const char *v = p + nlen + 1, *ve = line_end;

			while (v < ve && is_blank(*v))
				v++;
			while (ve > v && is_blank(ve[-1]))
				ve--;
			*val = v;
			return (long)(ve - v);
		}
		p = eol ? eol + 1 : end;
	}
	return -1;
}

char *mk_httpc_header(const mk_httpc_resp *resp, const char *name)
{
	const char *v;
	long n;

	if (!resp || !resp->headers || !name)
		return NULL;
	n = header_find(resp->headers, strlen(resp->headers), name, &v);
	if (n < 0)
		return NULL;
	return strndup(v, (size_t)n);
}

long mk_httpc_parse_retry_after(const char *value, int64_t now_ms)
{
	char buf[128];
	const char *s, *e;
	size_t n;
	time_t t;
	int64_t ms;

	if (!value)
		return -1;
	for (s = value; is_blank(*s); s++)
		;
	for (e = s + strlen(s); e > s && is_blank(e[-1]); e--)
		;
	n = (size_t)(e - s);
	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';

	if (strspn(buf, "0123456789") == n) {
		long secs = 0;

		/* Saturate rather than overflow; the caller caps the wait anyway. */
		for (size_t i = 0; i < n; i++) {
			if (secs > (LONG_MAX / 1000 - 9) / 10)
				return LONG_MAX / 1000 * 1000;
			secs = secs * 10 + (buf[i] - '0');
		}
		return secs * 1000;
	}
	t = curl_getdate(buf, NULL);
	if (t == (time_t)-1)
		return -1;
	ms = (int64_t)t * 1000 - now_ms;
	if (ms < 0)
		return 0;
	return ms > LONG_MAX ? LONG_MAX : (long)ms;
}

/* retry-after-ms (milliseconds, maybe fractional) wins over Retry-After. */
static long retry_after_from(const mk_buf *head)
{
	const char *v;
	long n;

	n = header_find(head->data, head->len, "retry-after-ms", &v);
	if (n > 0 && n < 64) {
		char buf[64], *end;
		double ms;

		memcpy(buf, v, (size_t)n);
		buf[n] = '\0';
		ms = strtod(buf, &end);
		if (*end == '\0' && end != buf && isfinite(ms) && ms >= 0) {
			long whole = ms > 1e9 ? 1000000000L : (long)ms;

			return whole < ms ? whole + 1 : whole; /* round up: never retry early */
		}
	}
	n = header_find(head->data, head->len, "retry-after", &v);
	if (n > 0 && n < 128) {
		char buf[128];

		memcpy(buf, v, (size_t)n);
		buf[n] = '\0';
		return mk_httpc_parse_retry_after(buf, mk_now_ms());
	}
	return -1;
}

/* ---- curl callbacks --------------------------------------------------- */

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct attempt *a = ud;
	mk_buf *head = &a->c->head;
	size_t len = size * nmemb;

	a->last_ms = mk_mono_ms();
	/* A status line starts a new response (after 1xx or a proxy's CONNECT). */
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0)
		mk_buf_reset(head);
	if (mk_buf_append(head, p, len) != 0) {
		if (head->len + len > MAX_HEADER_BYTES)
			a->head_too_large = 1;
		else
			a->oom = 1;
		return 0;
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct attempt *a = ud;
	const mk_httpc_req *req = a->c->req;
	size_t len = size * nmemb;
	long code = 0;

	a->last_ms = mk_mono_ms();
	if (len == 0)
		return 0;
	a->got_body = 1;
	if (!a->length_checked) {
		curl_off_t cl = -1;

		/* Refuse an announced oversize body before keeping any of it. */
		a->length_checked = 1;
		if (curl_easy_getinfo(a->h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK &&
		    cl > 0 && (unsigned long long)cl > a->c->max) {
			a->too_large = 1;
			return 0;
		}
	}
	if (len > a->c->max - a->received) {
		a->too_large = 1;
		return 0;
	}
	a->received += len;

	curl_easy_getinfo(a->h, CURLINFO_RESPONSE_CODE, &code);
	if (req->on_data && code >= 200 && code < 300) {
		a->streamed = 1;
		if (req->on_data(req->ud, p, len) != 0) {
			a->user_abort = 1;
			return 0;
		}
		return len;
	}
	if (mk_buf_append(&a->c->resp->body, p, len) != 0) {
		a->oom = 1;
		return 0;
	}
	return len;
}

/*
 * When the attempt times out for want of bytes (mk_mono_ms() value), or 0:
 * the first-byte limit until the body starts, the idle limit after it.
 * Sets *first when the first-byte limit is the one that applies.
 */
static int64_t quiet_limit(const struct attempt *a, int *first)
{
	const mk_httpc_req *req = a->c->req;

	*first = 0;
	if (!a->got_body && req->first_byte_timeout_ms > 0) {
		*first = 1;
		return a->start_ms + req->first_byte_timeout_ms;
	}
	if (req->idle_timeout_ms > 0)
		return a->last_ms + req->idle_timeout_ms;
	return 0;
}

/* Mark the attempt timed out when its quiet limit has passed; returns 1 then. */
static int quiet_expired(struct attempt *a, int64_t now)
{
	int first;
	int64_t limit = quiet_limit(a, &first);

	if (limit == 0 || now <= limit)
		return 0;
	if (first)
		a->first_byte = 1;
	else
		a->idle = 1;
	return 1;
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct attempt *a = ud;
	int64_t now = mk_mono_ms();

	(void)dltotal;
	(void)ultotal;
	if (dlnow != a->dl_seen || ulnow != a->ul_seen) {
		a->dl_seen = dlnow;
		a->ul_seen = ulnow;
		a->last_ms = now;
	}
	return quiet_expired(a, now);
}

/* ---- one attempt ------------------------------------------------------ */

static int method_is(const char *m, const char *name)
{
	return strcasecmp(m, name) == 0;
}

static const char *req_method(const mk_httpc_req *req)
{
	return req->method && *req->method ? req->method : "GET";
}

/* curl's own text, unless it contains a part of the request that may be secret. */
static const char *safe_detail(const struct call *c, const char *errbuf, CURLcode rc)
{
	const char *generic = curl_easy_strerror(rc);

	if (!errbuf[0])
		return generic;
	for (int i = 0; i < NSECRETS; i++) {
		const char *s = c->secret[i];

		if (s && strlen(s) > 1 && strstr(errbuf, s))
			return generic;
	}
	for (const char *const *h = c->req->headers; h && *h; h++) {
		const char *v = strchr(*h, ':'), *ve;
		size_t n;
		char val[512];

		if (!v)
			continue;
		for (v++; *v && is_blank(*v); v++)
			;
		for (ve = v + strlen(v); ve > v && is_blank(ve[-1]); ve--)
			;
		n = (size_t)(ve - v);
		/* Values too short to be secrets would match almost any text. */
		if (n < 4)
			continue;
		if (n >= sizeof(val))
			return generic; /* too long to check cheaply: be safe */
		memcpy(val, v, n);
		val[n] = '\0';
		if (strstr(errbuf, val))
			return generic;
	}
	return errbuf;
}

static int http_retriable(long code)
{
	return code == 408 || code == 429 || code == 500 || code == 502 || code == 503 ||
	       code == 504;
}

/* Errors that the same request will meet again. */
static int curl_permanent(CURLcode rc)
{
	switch (rc) {
	case CURLE_FAILED_INIT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
	case CURLE_NOT_BUILT_IN:
	case CURLE_OUT_OF_MEMORY:
	case CURLE_BAD_FUNCTION_ARGUMENT:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_FILESIZE_EXCEEDED: return 1;
	default: return 0;
	}
}

static CURLcode attempt_setup(struct attempt *a, long total_ms)
{
	const struct call *c = a->c;
	const mk_httpc_req *req = c->req;
	const char *m = req_method(req);
	CURL *h = a->h;
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                                                              \
	do {                                                                                       \
		if (rc == CURLE_OK)                                                                \
			rc = curl_easy_setopt(h, opt, val);                                        \
	} while (0)

	SET(CURLOPT_ERRORBUFFER, a->errbuf);
	SET(CURLOPT_URL, req->url);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	SET(CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(req->connect_timeout_ms > 0 ? req->connect_timeout_ms : DEFAULT_CONNECT_MS));
	if (total_ms > 0)
		SET(CURLOPT_TIMEOUT_MS, total_ms);
	SET(CURLOPT_HTTPHEADER, c->hdrs);

	if (method_is(m, "GET") && !req->body && req->body_len == 0) {
		SET(CURLOPT_HTTPGET, 1L);
	} else if (method_is(m, "HEAD")) {
		SET(CURLOPT_NOBODY, 1L);
	} else {
		if (method_is(m, "POST") || req->body) {
			curl_off_t n = req->body ? (curl_off_t)req->body_len : 0;

			SET(CURLOPT_POSTFIELDSIZE_LARGE, n);
			SET(CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
		if (!method_is(m, "POST"))
			SET(CURLOPT_CUSTOMREQUEST, m);
	}

	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, a);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, a);
	SET(CURLOPT_XFERINFOFUNCTION, on_progress);
	SET(CURLOPT_XFERINFODATA, a);
	SET(CURLOPT_NOPROGRESS, 0L);
#undef SET
	return rc;
}

/*
 * curl_easy_perform() without its blind spot: when nothing moves it sleeps
 * up to a second between progress callbacks, so an idle timeout of 300 ms
 * would fire after 1.2 s. Driving the transfer ourselves lets the poll wake
 * up exactly when the idle time runs out.
 */
static CURLcode perform(struct attempt *a)
{
	CURLcode rc = CURLE_FAILED_INIT;
	CURLM *m = curl_multi_init();
	CURLMcode mc;
	CURLMsg *msg;
	int running = 1, left;

	if (!m)
		return CURLE_OUT_OF_MEMORY;
	mc = curl_multi_add_handle(m, a->h);
	if (mc != CURLM_OK) {
		curl_multi_cleanup(m);
		return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	}
	for (;;) {
		int wait = 1000, first;
		int64_t limit;

		mc = curl_multi_perform(m, &running);
		if (mc != CURLM_OK)
			break;
		if (!running) {
			while ((msg = curl_multi_info_read(m, &left)))
				if (msg->msg == CURLMSG_DONE && msg->easy_handle == a->h)
					rc = msg->data.result;
			break;
		}
		limit = quiet_limit(a, &first);
		if (limit > 0) {
			int64_t rest = limit + 1 - mk_mono_ms();

			if (rest <= 0 && quiet_expired(a, mk_mono_ms())) {
				rc = CURLE_ABORTED_BY_CALLBACK;
				break;
			}
			if (rest < wait)
				wait = (int)rest;
		}
		/* curl shortens the wait itself for its own timers (connect, total). */
		mc = curl_multi_poll(m, NULL, 0, wait, NULL);
		if (mc != CURLM_OK)
			break;
	}
	if (mc != CURLM_OK)
		rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
	curl_multi_remove_handle(m, a->h);
	curl_multi_cleanup(m);
	return rc;
}

/*
 * Send the request once. Leaves the response (or its absence) in c->resp
 * and c->head, and sets *retriable when another attempt may succeed.
 */
static mk_httpc_status attempt_run(struct call *c, int *retriable)
{
	const mk_httpc_req *req = c->req;
	mk_httpc_resp *resp = c->resp;
	struct attempt a;
	long total_ms = req->total_timeout_ms > 0 ? req->total_timeout_ms : 0;
	long code = 0;
	int by_deadline = 0;
	curl_off_t connect_us = 0;
	mk_httpc_status st;
	CURLcode rc;

	*retriable = 0;
	mk_buf_reset(&resp->body);
	mk_buf_reset(&c->head);
	resp->http_status = 0;
	resp->retry_after_ms = -1;
	resp->error[0] = '\0';

	if (req->deadline_mono_ms > 0) {
		int64_t left = req->deadline_mono_ms - mk_mono_ms();

		if (left <= 0) {
			set_error(resp, "deadline passed before calling '%s'", c->host);
			return MK_HTTPC_DEADLINE;
		}
		if (total_ms == 0 || left < total_ms) {
			total_ms = left > INT_MAX ? INT_MAX : (long)left;
			by_deadline = 1;
		}
	}

	memset(&a, 0, sizeof(a));
	a.c = c;
	a.h = curl_easy_init();
	if (!a.h) {
		set_error(resp, "could not start a request to '%s': out of memory", c->host);
		return MK_HTTPC_NETWORK;
	}
	a.start_ms = a.last_ms = mk_mono_ms();
	rc = attempt_setup(&a, total_ms);
	if (rc != CURLE_OK) {
		set_error(resp, "could not set up the request to '%s': %s", c->host,
		          curl_easy_strerror(rc));
		curl_easy_cleanup(a.h);
		return MK_HTTPC_NETWORK;
	}
	resp->attempts++;
	rc = perform(&a);
	curl_easy_getinfo(a.h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(a.h, CURLINFO_CONNECT_TIME_T, &connect_us);
	resp->http_status = code;
	if (code > 0)
		resp->retry_after_ms = retry_after_from(&c->head);

	if (rc == CURLE_OK) {
		st = MK_HTTPC_OK;
		*retriable = http_retriable(code);
	} else if (a.too_large) {
		st = MK_HTTPC_TOO_LARGE;
		set_error(resp, "response from '%s' exceeds %zu bytes", c->host, c->max);
	} else if (a.head_too_large) {
		st = MK_HTTPC_TOO_LARGE;
		set_error(resp, "response headers from '%s' exceed %zu bytes", c->host,
		          MAX_HEADER_BYTES);
	} else if (a.user_abort) {
		st = MK_HTTPC_ABORTED;
		set_error(resp, "response from '%s' abandoned by its receiver", c->host);
	} else if (a.first_byte) {
		st = MK_HTTPC_TIMEOUT;
		set_error(resp, "no response from '%s' within %d ms", c->host,
		          req->first_byte_timeout_ms);
		*retriable = 1;
	} else if (a.idle) {
		st = MK_HTTPC_TIMEOUT;
		set_error(resp, "no data from '%s' for %d ms", c->host, req->idle_timeout_ms);
		*retriable = 1;
	} else if (a.oom) {
		st = MK_HTTPC_NETWORK;
		set_error(resp, "response from '%s' dropped: out of memory", c->host);
	} else if (rc == CURLE_OPERATION_TIMEDOUT) {
		st = MK_HTTPC_TIMEOUT;
		if (by_deadline && mk_mono_ms() >= req->deadline_mono_ms - 5) {
			st = MK_HTTPC_DEADLINE;
			set_error(resp, "deadline passed while waiting for '%s'", c->host);
		} else if (connect_us == 0) {
			set_error(resp, "connecting to '%s' timed out: %s", c->host,
			          safe_detail(c, a.errbuf, rc));
			*retriable = 1;
		} else {
			/* The whole budget is spent; another try would spend it again. */
			set_error(resp, "no complete response from '%s' within %ld ms", c->host,
			          total_ms);
		}
	} else if (rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY) {
		st = MK_HTTPC_CONNECT;
		set_error(resp, "could not resolve '%s': %s", c->host,
		          safe_detail(c, a.errbuf, rc));
		*retriable = 1;
	} else if (rc == CURLE_COULDNT_CONNECT) {
		st = MK_HTTPC_CONNECT;
		set_error(resp, "could not connect to '%s': %s", c->host,
		          safe_detail(c, a.errbuf, rc));
		*retriable = 1;
	} else {
		st = MK_HTTPC_NETWORK;
		set_error(resp, "request to '%s' failed: %s", c->host,
		          safe_detail(c, a.errbuf, rc));
		*retriable = !curl_permanent(rc);
	}
	if (a.streamed)
		*retriable = 0;
	curl_easy_cleanup(a.h);
	return st;
}

/* ---- the call --------------------------------------------------------- */

/* A thread's own xorshift64, seeded from the kernel: jitter needs no more. */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
	uint64_t x = rng_state;

	if (x == 0) {
		if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x) || x == 0)
			x = ((uint64_t)mk_mono_ms() * 0x9E3779B97F4A7C15ull) ^
			    (uint64_t)(uintptr_t)&rng_state;
		if (x == 0)
			x = 0x2545F4914F6CDD1Dull;
	}
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	rng_state = x;
	return x;
}

/* How long to wait before retry number `n` (0 for the first retry). */
static int64_t backoff_ms(const mk_httpc_req *req, const mk_httpc_resp *resp, int n)
{
	int64_t d = req->backoff_base_ms > 0 ? req->backoff_base_ms : DEFAULT_BACKOFF_MS;

	if (resp->retry_after_ms >= 0)
		return resp->retry_after_ms < RETRY_AFTER_CAP_MS ? resp->retry_after_ms
		                                                 : RETRY_AFTER_CAP_MS;
	for (int i = 0; i < n && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	if (d > BACKOFF_CAP_MS)
		d = BACKOFF_CAP_MS;
	/* Full jitter over the upper half, so clients that failed together spread out. */
	return d - d / 2 + (int64_t)(rng_next() % (uint64_t)(d / 2 + 1));
}

/* The deadline stops the retries: a response stays; a transport error becomes DEADLINE. */
static mk_httpc_status give_up_at_deadline(mk_httpc_resp *resp, mk_httpc_status st)
{
	char last[sizeof(resp->error)];

	if (st == MK_HTTPC_OK || st == MK_HTTPC_DEADLINE)
		return st;
	memcpy(last, resp->error, sizeof(last));
	set_error(resp, "deadline passed after %d attempt%s; last: %s", resp->attempts,
	          resp->attempts == 1 ? "" : "s", last);
	return MK_HTTPC_DEADLINE;
}

static void call_release(struct call *c)
{
	curl_slist_free_all(c->hdrs);
	free(c->host);
	for (int i = 0; i < NSECRETS; i++)
		curl_free(c->secret[i]);
	mk_buf_release(&c->head);
}

/* Parse the URL for the host (messages) and the secret parts; build the header list. */
static mk_httpc_status call_init(struct call *c, const mk_httpc_req *req, mk_httpc_resp *resp)
{
	static const CURLUPart parts[NSECRETS] = {
	    [SECRET_PATH] = CURLUPART_PATH,         [SECRET_QUERY] = CURLUPART_QUERY,
	    [SECRET_USER] = CURLUPART_USER,         [SECRET_PASSWORD] = CURLUPART_PASSWORD,
	    [SECRET_FRAGMENT] = CURLUPART_FRAGMENT,
	};
	const char *m = req_method(req);
	CURLU *u;
	char *host = NULL, *port = NULL;
	size_t hostlen;
	int has_expect = 0;

	memset(c, 0, sizeof(*c));
	c->req = req;
	c->resp = resp;
	c->max = req->max_response > 0 ? req->max_response : DEFAULT_MAX_RESPONSE;
	c->retry_ok = req->idempotent || method_is(m, "GET") || method_is(m, "HEAD") ||
	              method_is(m, "PUT") || method_is(m, "DELETE") || method_is(m, "OPTIONS");
	mk_buf_init(&c->head, MAX_HEADER_BYTES);

	u = curl_url();
	if (!u) {
		set_error(resp, "could not parse the URL: out of memory");
		return MK_HTTPC_NETWORK;
	}
	if (curl_url_set(u, CURLUPART_URL, req->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		curl_url_cleanup(u);
		set_error(resp, "malformed URL (not shown: it may hold secrets)");
		return MK_HTTPC_NETWORK;
	}
	/* The port only when the URL names one: "127.0.0.1:8080", "api.example.com". */
	if (curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK)
		port = NULL;
	hostlen = strlen(host) + (port ? strlen(port) + 1 : 0) + 1;
	c->host = malloc(hostlen);
	if (c->host && port)
		snprintf(c->host, hostlen, "%s:%s", host, port);
	else if (c->host)
		snprintf(c->host, hostlen, "%s", host);
	curl_free(host);
	curl_free(port);
	for (int i = 0; i < NSECRETS; i++)
		if (curl_url_get(u, parts[i], &c->secret[i], 0) != CURLUE_OK)
			c->secret[i] = NULL;
	curl_url_cleanup(u);
	if (!c->host) {
		set_error(resp, "could not parse the URL: out of memory");
		return MK_HTTPC_NETWORK;
	}

	for (const char *const *h = req->headers; h && *h; h++) {
		struct curl_slist *n = curl_slist_append(c->hdrs, *h);

		if (!n) {
			set_error(resp, "could not build the request to '%s': out of memory",
			          c->host);
			return MK_HTTPC_NETWORK;
		}
		c->hdrs = n;
		if (strncasecmp(*h, "Expect:", 7) == 0)
			has_expect = 1;
	}
	/* No "Expect: 100-continue" round trip (a second's stall on servers that ignore it). */
	if (!has_expect) {
		struct curl_slist *n = curl_slist_append(c->hdrs, "Expect:");

		if (!n) {
			set_error(resp, "could not build the request to '%s': out of memory",
			          c->host);
			return MK_HTTPC_NETWORK;
		}
		c->hdrs = n;
	}
	return MK_HTTPC_OK;
}

mk_httpc_status mk_httpc_do(const mk_httpc_req *req, mk_httpc_resp *resp)
{
	struct call c;
	mk_httpc_status st;
	int retriable, max_retries;

	memset(resp, 0, sizeof(*resp));
	resp->retry_after_ms = -1;
	mk_buf_init(&resp->body,
	            req && req->max_response > 0 ? req->max_response : DEFAULT_MAX_RESPONSE);
	if (!req || !req->url || !*req->url) {
		set_error(resp, "no URL given");
		resp->status = MK_HTTPC_NETWORK;
		return resp->status;
	}
	max_retries = req->max_retries > 0 ? req->max_retries : 0;

	st = call_init(&c, req, resp);
	if (st != MK_HTTPC_OK)
		goto out;
	for (int n = 0;; n++) {
		int64_t wait;

		st = attempt_run(&c, &retriable);
		if (!retriable || !c.retry_ok || n >= max_retries)
			break;
		wait = backoff_ms(req, resp, n);
		if (req->deadline_mono_ms > 0 && mk_mono_ms() + wait >= req->deadline_mono_ms) {
			st = give_up_at_deadline(resp, st);
			break;
		}
		mk_sleep_ms(wait);
	}
	if (c.head.len > 0)
		resp->headers = mk_buf_steal(&c.head);
out:
	call_release(&c);
	resp->status = st;
	return st;
}
