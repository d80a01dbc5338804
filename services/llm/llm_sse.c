/*
 * llm_sse.c - incremental Server-Sent Events parsing (libllm, provider layer).
 *
 * The bytes of a text/event-stream body arrive in slices of any size: half
 * a line, several events, a multi-byte character cut in two. This parser
 * keeps the unfinished line between slices and turns complete lines into
 * events, following the WHATWG algorithm as the contract (llm-api.md §5)
 * narrows it:
 *
 *   - a line ends at "\n", "\r\n" or "\r". A '\r' ends its line at once and
 *     a '\n' right after it, in this slice or the next, is swallowed: so a
 *     "\r\n" split between two slices never yields a phantom blank line,
 *     and an event whose blank line is "\r\n" is dispatched without waiting
 *     for the byte after it;
 *   - a blank line dispatches the event: its name ("" when none) and its
 *     data lines joined with '\n'. A block that set neither a name nor any
 *     data (comments only, or only id/retry) dispatches nothing;
 *   - a line starting with ':' is a comment (keep-alives, OpenRouter's
 *     "PROCESSING") and is ignored;
 *   - "field:value" loses exactly one space after the colon; a line
 *     without a colon is a field with an empty value. Fields: event, data,
 *     id, retry; others are ignored. id and retry are kept as the spec
 *     says, though nothing here reconnects;
 *   - a UTF-8 byte order mark at the very start is skipped;
 *   - at the end of the stream a pending event is dispatched even without
 *     its blank line (openai-python does the same).
 *
 * One event (its name, its data and any single line) is capped at
 * max_event bytes; beyond it the feed fails and stays failed. Bytes are
 * never interpreted: data is handed on exactly as it came, UTF-8 or not,
 * NUL-terminated for convenience.
 *
 * Not here: JSON, [DONE], the dialects' event names (llm_openai.c,
 * llm_anthropic.c). Not thread-safe: one parser per stream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "llm_provider.h"
#include "mk_buf.h"

#define DEFAULT_MAX_EVENT ((size_t)1 << 20)
#define MAX_ID            256

enum { SSE_OK = 0, SSE_STOPPED = 1, SSE_TOO_LARGE = -1 };

struct llm_sse {
	llm_sse_event_fn fn;
	void *ud;
	size_t max;
	mk_buf line;  /* the line being read, without its terminator */
	mk_buf data;  /* data lines of the pending event, each followed by '\n' */
	mk_buf event; /* the pending event's name */
	char last_id[MAX_ID];
	long retry_ms; /* the last valid retry field, -1 when none */
	int has_data;  /* a data field was seen in this block */
	int skip_lf;   /* the previous byte was '\r' */
	int bom_done;  /* the start of the stream has been checked for a BOM */
	int state;     /* SSE_OK, or the sticky result of a stop or an overflow */
};

llm_sse *llm_sse_new(llm_sse_event_fn fn, void *ud, size_t max_event)
{
	llm_sse *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fn = fn;
	s->ud = ud;
	s->max = max_event > 0 ? max_event : DEFAULT_MAX_EVENT;
	mk_buf_init(&s->line, s->max);
	mk_buf_init(&s->data, s->max + 1); /* + the '\n' after the last data line */
	mk_buf_init(&s->event, s->max);
	s->retry_ms = -1;
	return s;
}

void llm_sse_free(llm_sse *s)
{
	if (!s)
		return;
	mk_buf_release(&s->line);
	mk_buf_release(&s->data);
	mk_buf_release(&s->event);
	free(s);
}

static void block_reset(llm_sse *s)
{
	mk_buf_reset(&s->data);
	mk_buf_reset(&s->event);
	s->has_data = 0;
}

static int dispatch(llm_sse *s)
{
	size_t len;
	int rc;

	if (!s->has_data && s->event.len == 0) {
		block_reset(s);
		return SSE_OK;
	}
	len = s->data.len;
	if (len > 0 && s->data.data[len - 1] == '\n')
		s->data.data[--len] = '\0'; /* the separator after the last data line */
	if (len + s->event.len > s->max)
		return SSE_TOO_LARGE;
	rc = s->fn(s->ud, s->event.len ? s->event.data : "", s->data.data ? s->data.data : "", len);
	block_reset(s);
	return rc != 0 ? SSE_STOPPED : SSE_OK;
}

static int digits_only(const char *v, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return 0;
	return 1;
}

static int field(llm_sse *s, const char *name, size_t nlen, const char *v, size_t vlen)
{
	if (nlen == 4 && memcmp(name, "data", 4) == 0) {
		if (mk_buf_append(&s->data, v, vlen) != 0 || mk_buf_append(&s->data, "\n", 1) != 0)
			return SSE_TOO_LARGE;
		s->has_data = 1;
	} else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
		mk_buf_reset(&s->event);
		if (mk_buf_append(&s->event, v, vlen) != 0)
			return SSE_TOO_LARGE;
	} else if (nlen == 2 && memcmp(name, "id", 2) == 0) {
		/* The spec ignores an id holding NUL; an over-long one is ignored here too. */
		if (!memchr(v, '\0', vlen) && vlen < sizeof(s->last_id)) {
			memcpy(s->last_id, v, vlen);
			s->last_id[vlen] = '\0';
		}
	} else if (nlen == 5 && memcmp(name, "retry", 5) == 0) {
		if (digits_only(v, vlen) && vlen < 10)
			s->retry_ms = strtol(v, NULL, 10);
	}
	return SSE_OK;
}

/* One complete line (without its terminator). */
static int line(llm_sse *s, const char *p, size_t n)
{
	const char *colon, *v;
	size_t nlen, vlen;

	if (!s->bom_done) {
		s->bom_done = 1;
		if (n >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
			p += 3;
			n -= 3;
		}
	}
	if (n == 0)
		return dispatch(s);
	if (p[0] == ':')
		return SSE_OK;
	colon = memchr(p, ':', n);
	if (!colon)
		return field(s, p, n, "", 0);
	nlen = (size_t)(colon - p);
	v = colon + 1;
	vlen = n - nlen - 1;
	if (vlen > 0 && *v == ' ') {
		v++;
		vlen--;
	}
	return field(s, p, nlen, v, vlen);
}

/* The buffered line is complete: process it and start the next. */
static int end_line(llm_sse *s)
{
	int rc = line(s, s->line.data ? s->line.data : "", s->line.len);

	mk_buf_reset(&s->line);
	return rc;
}

int llm_sse_feed(llm_sse *s, const char *data, size_t len)
{
	size_t i = 0;

	if (s->state != SSE_OK)
		return s->state;
	while (i < len) {
		size_t j = i;
		int rc;

		if (s->skip_lf) {
			s->skip_lf = 0;
			if (data[i] == '\n') {
				i++;
				continue;
			}
		}
		while (j < len && data[j] != '\n' && data[j] != '\r')
			j++;
		if (j > i && mk_buf_append(&s->line, data + i, j - i) != 0)
			return s->state = SSE_TOO_LARGE;
		if (j == len)
			break; /* an unfinished line: wait for more */
		if (data[j] == '\r')
			s->skip_lf = 1;
		i = j + 1;
		rc = end_line(s);
		if (rc != SSE_OK)
			return s->state = rc;
	}
	return SSE_OK;
}

int llm_sse_finish(llm_sse *s)
{
	int rc;

	if (s->state != SSE_OK)
		return s->state;
	s->skip_lf = 0;
	if (s->line.len > 0) {
		rc = end_line(s);
		if (rc != SSE_OK)
			return s->state = rc;
	}
	rc = dispatch(s);
	/* Nothing more may come: a later feed or finish is ignored and answers 1. */
	s->state = rc != SSE_OK ? rc : SSE_STOPPED;
	return rc;
}
