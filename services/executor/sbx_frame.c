/*
 * sbx_frame.c - the frames spoken with the Python driver and the output
 * streams of a run (see sbx_frame.h): encoding requests, reading replies
 * incrementally within their size limits, keeping output up to its caps.
 * Shared by every backend that talks to the driver; it holds no sandbox.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "mk_json.h"
#include "sbx_frame.h"

#define BODY_CHUNK (64 << 10) /* a reply's buffer grows from this */
#define PUT_SLACK  4096       /* a put frame's JSON around its data and path */

/* ---- requests ------------------------------------------------------------- */

static void put_len(unsigned char *f, size_t n)
{
	f[0] = (unsigned char)(n >> 24);
	f[1] = (unsigned char)(n >> 16);
	f[2] = (unsigned char)(n >> 8);
	f[3] = (unsigned char)n;
}

unsigned char *sbx_frame_encode(const cJSON *msg, size_t *len)
{
	char *json = mk_json_print(msg);
	size_t n;
	unsigned char *f;

	if (!json)
		return NULL;
	n = strlen(json);
	if (n > SBX_FRAME_MAX || !(f = malloc(n + 4))) {
		free(json);
		return NULL;
	}
	put_len(f, n);
	memcpy(f + 4, json, n);
	free(json);
	*len = n + 4;
	return f;
}

unsigned char *sbx_frame_exec(long long id, const char *code, const sbx_limits *L,
                              int artifact_data, size_t *len)
{
	cJSON *req, *lim;
	unsigned char *f;

	req = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "t", "exec");
	cJSON_AddNumberToObject(req, "id", (double)id);
	cJSON_AddStringToObject(req, "code", code);
	cJSON_AddNumberToObject(req, "cpu_s", (double)L->cpu_s);
	if (!artifact_data)
		cJSON_AddFalseToObject(req, "artifact_data");
	lim = cJSON_AddObjectToObject(req, "limits");
	cJSON_AddNumberToObject(lim, "table_rows", (double)L->table_rows);
	cJSON_AddNumberToObject(lim, "table_cols", (double)L->table_cols);
	cJSON_AddNumberToObject(lim, "value_bytes", (double)L->value_bytes);
	cJSON_AddNumberToObject(lim, "figure_bytes", (double)L->figure_bytes);
	cJSON_AddNumberToObject(lim, "image_bytes", (double)L->image_bytes);
	cJSON_AddNumberToObject(lim, "artifact_bytes", (double)L->artifact_bytes);
	cJSON_AddNumberToObject(lim, "artifacts_total", (double)L->artifacts_total);
	cJSON_AddNumberToObject(lim, "max_items", (double)L->max_items);
	f = sbx_frame_encode(req, len);
	cJSON_Delete(req);
	return f;
}

size_t sbx_frame_put_max(const char *path)
{
	/* A path may grow six times when JSON-escaped (\u0001). */
	return (SBX_FRAME_MAX - PUT_SLACK - strlen(path) * 6) / 4 * 3;
}

unsigned char *sbx_frame_put(long long id, const char *path, const void *data, size_t n,
                             size_t *len)
{
	size_t b64, head, body;
	char *qpath, prefix[128];
	unsigned char *f;
	cJSON *jpath;

	jpath = cJSON_CreateString(path);
	qpath = jpath ? cJSON_PrintUnformatted(jpath) : NULL;
	cJSON_Delete(jpath);
	if (!qpath)
		return NULL;
	snprintf(prefix, sizeof(prefix), "{\"t\":\"put\",\"id\":%lld,\"path\":", id);
	b64 = (n + 2) / 3 * 4;
	head = strlen(prefix) + strlen(qpath) + strlen(",\"data_b64\":\"");
	body = head + b64 + 2;
	f = malloc(4 + body + 1);
	if (!f) {
		free(qpath);
		return NULL;
	}
	snprintf((char *)f + 4, head + 1, "%s%s,\"data_b64\":\"", prefix, qpath);
	free(qpath);
	EVP_EncodeBlock(f + 4 + head, data, (int)n);
	memcpy(f + 4 + head + b64, "\"}", 2);
	put_len(f, body);
	*len = 4 + body;
	return f;
}

/* ---- replies -------------------------------------------------------------- */

void sbx_frame_rx_init(sbx_frame_rx *rx, size_t max)
{
	memset(rx, 0, sizeof(*rx));
	rx->max = max;
}

void sbx_frame_rx_release(sbx_frame_rx *rx)
{
	free(rx->body);
	rx->body = NULL;
	rx->body_cap = 0;
}

void sbx_frame_rx_next(sbx_frame_rx *rx)
{
	rx->hdr_got = rx->body_got = rx->body_len = 0;
	rx->oversize = 0;
}

int sbx_frame_rx_room(sbx_frame_rx *rx, void *scratch, size_t scratch_len, void **p, size_t *n,
                      char *err, size_t errlen)
{
	if (rx->hdr_got < 4) {
		*p = rx->hdr + rx->hdr_got;
		*n = 4 - rx->hdr_got;
		return 0;
	}
	if (rx->body_got == rx->body_len)
		return 1;
	if (rx->oversize) {
		size_t want = rx->body_len - rx->body_got;

		*p = scratch;
		*n = want < scratch_len ? want : scratch_len;
		return 0;
	}
	if (rx->body_got == rx->body_cap) {
		size_t cap = rx->body_cap ? rx->body_cap * 2 : BODY_CHUNK;
		char *b;

		if (cap > rx->body_len)
			cap = rx->body_len;
		b = realloc(rx->body, cap);
		if (!b) {
			snprintf(err, errlen, "out of memory for a reply");
			return -2;
		}
		rx->body = b;
		rx->body_cap = cap;
	}
	*p = rx->body + rx->body_got;
	*n = rx->body_cap - rx->body_got;
	return 0;
}

int sbx_frame_rx_took(sbx_frame_rx *rx, size_t n, char *err, size_t errlen)
{
	if (rx->hdr_got >= 4) {
		rx->body_got += n;
		return 0;
	}
	rx->hdr_got += n;
	if (rx->hdr_got < 4)
		return 0;
	rx->body_len = (size_t)rx->hdr[0] << 24 | (size_t)rx->hdr[1] << 16 |
	               (size_t)rx->hdr[2] << 8 | rx->hdr[3];
	if (rx->body_len == 0 || rx->body_len > SBX_FRAME_MAX) {
		snprintf(err, errlen, "a reply frame of %zu bytes", rx->body_len);
		return -2;
	}
	rx->oversize = rx->body_len > rx->max;
	return 0;
}

int sbx_frame_read_fd(sbx_frame_rx *rx, int fd, void *scratch, size_t scratch_len, char *err,
                      size_t errlen)
{
	for (;;) {
		void *p;
		size_t n;
		ssize_t r;
		int k = sbx_frame_rx_room(rx, scratch, scratch_len, &p, &n, err, errlen);

		if (k != 0)
			return k;
		r = read(fd, p, n);
		if (r == 0)
			return -1;
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			snprintf(err, errlen, "reading its reply: %s", strerror(errno));
			return -2;
		}
		if (sbx_frame_rx_took(rx, (size_t)r, err, errlen) != 0)
			return -2;
	}
}

cJSON *sbx_frame_rx_json(const sbx_frame_rx *rx, char *err, size_t errlen)
{
	char e[120];
	cJSON *j;

	if (rx->oversize || !rx->body) {
		snprintf(err, errlen, "a reply of %zu bytes", rx->body_len);
		return NULL;
	}
	j = mk_json_parse(rx->body, rx->body_len, 0, e, sizeof(e));
	if (!j) {
		snprintf(err, errlen, "a reply that is not JSON: %s", e);
		return NULL;
	}
	if (!cJSON_IsObject(j) || !mk_json_str(j, "t")) {
		snprintf(err, errlen, "a reply without a type");
		cJSON_Delete(j);
		return NULL;
	}
	return j;
}

/*
 * The signal is blocked for this thread and a SIGPIPE raised by this
 * write is taken back, unless one was already pending.
 */
ssize_t sbx_write_nosigpipe(int fd, const void *p, size_t n)
{
	sigset_t pipe_set, old, pending;
	int was_pending, e;
	ssize_t w;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	w = write(fd, p, n);
	e = errno;
	if (w < 0 && e == EPIPE && !was_pending) {
		const struct timespec zero = {0, 0};

		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
			;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return w;
}

/* ---- output streams --------------------------------------------------------- */

void sbx_stream_init(sbx_stream *st, int keep, long long max)
{
	mk_buf_init(&st->kept, max > 0 ? (size_t)max : 1);
	st->total = 0;
	st->keep = keep && max > 0;
	st->closed = 0;
}

void sbx_stream_release(sbx_stream *st)
{
	mk_buf_release(&st->kept);
}

void sbx_stream_add(sbx_stream *st, const char *p, size_t n)
{
	st->total += (long long)n;
	if (st->keep && st->kept.len < st->kept.max) {
		size_t room = st->kept.max - st->kept.len;

		mk_buf_append(&st->kept, p, n < room ? n : room);
	}
}

void sbx_stream_read_fd(sbx_stream *st, int fd, char *buf, size_t len, int rounds)
{
	while (fd >= 0 && !st->closed && rounds-- > 0) {
		ssize_t r = read(fd, buf, len);

		if (r > 0) {
			sbx_stream_add(st, buf, (size_t)r);
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			st->closed = 1;
		return;
	}
}

/* Some bytes of text as a JSON-safe C string: invalid UTF-8 and NUL become U+FFFD. */
static char *clean_text(const char *s, size_t n, const char *suffix)
{
	mk_buf b;
	size_t i = 0;
	char *out;

	mk_buf_init(&b, 0);
	while (i < n) {
		size_t ok = mk_utf8_valid_prefix((const unsigned char *)s + i, n - i);
		const char *nul = memchr(s + i, '\0', ok);

		if (nul)
			ok = (size_t)(nul - (s + i));
		mk_buf_append(&b, s + i, ok);
		i += ok;
		if (i < n) {
			mk_buf_append(&b, "\xef\xbf\xbd", 3);
			i++;
		}
	}
	if (suffix)
		mk_buf_puts(&b, suffix);
	mk_buf_puts(&b, "");
	out = mk_buf_steal(&b);
	return out;
}

cJSON *sbx_stream_json(const sbx_stream *st, int *truncated)
{
	long long more = st->total - (long long)st->kept.len;
	char marker[96];
	char *text;
	cJSON *v;

	*truncated = more > 0;
	if (more > 0)
		snprintf(marker, sizeof(marker), "\n[output cut: %lld more bytes not shown]\n",
		         more);
	text =
	    clean_text(st->kept.data ? st->kept.data : "", st->kept.len, more > 0 ? marker : NULL);
	v = cJSON_CreateString(text ? text : "");
	free(text);
	return v;
}

void sbx_stream_tail(const sbx_stream *st, char *buf, size_t len)
{
	const char *d = st->kept.data ? st->kept.data : "";
	size_t n = st->kept.len, from;
	char *t;

	while (n > 0 && (d[n - 1] == '\n' || d[n - 1] == ' '))
		n--;
	from = n > SBX_STREAM_TAIL ? n - SBX_STREAM_TAIL : 0;
	/* Start at a line when the tail is cut, so the message begins with a whole line. */
	if (from > 0) {
		const char *nl = memchr(d + from, '\n', n - from);

		if (nl)
			from = (size_t)(nl + 1 - d);
	}
	t = clean_text(d + from, n - from, NULL);
	snprintf(buf, len, "%s", t ? t : "");
	free(t);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
}

/* ---- paths and files */

int sbx_path_ok(const char *path)
{
	const char *p = path;

	if (!path || !*path || *path == '/' || strlen(path) > 4096)
		return 0;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 0;
		p += n;
		if (*p == '/')
			p++;
	}
	return 1;
}

int sbx_file_request_ok(const char *path, int dead, char *err, size_t errlen)
{
	if (!sbx_path_ok(path)) {
		mk_errf(err, errlen, "path '%s' is not inside the workspace", path ? path : "");
		return -1;
	}
	if (dead) {
		mk_errf(err, errlen, "sandbox is no longer running");
		return -1;
	}
	return 0;
}

int sbx_put_request_ok(const char *path, size_t len, int dead, char *err, size_t errlen)
{
	if (sbx_file_request_ok(path, dead, err, errlen) != 0)
		return -1;
	if (len > sbx_frame_put_max(path)) {
		mk_errf(err, errlen, "file '%s' is too large for the sandbox (%zu bytes)", path,
		        len);
		return -1;
	}
	return 0;
}

int sbx_frame_file(const cJSON *reply, const char *path, size_t room, mk_buf *out, char *err,
                   size_t errlen)
{
	const char *b64 = mk_json_str(reply, "data_b64");
	size_t b64len = b64 ? strlen(b64) : 0;
	unsigned char *data;
	long long bytes;
	int dn;

	if (!b64 || mk_json_int(reply, "bytes", &bytes) != 0 || bytes < 0 || b64len % 4 != 0 ||
	    b64len > INT_MAX) {
		mk_errf(err, errlen, "sandbox sent a malformed file for '%s'", path);
		return -1;
	}
	if ((unsigned long long)bytes > room) {
		mk_errf(err, errlen, "file '%s' is larger than the %zu bytes allowed", path, room);
		return -1;
	}
	data = malloc(b64len / 4 * 3 + 1);
	dn = data ? EVP_DecodeBlock(data, (const unsigned char *)b64, (int)b64len) : -1;
	/* EVP_DecodeBlock counts the padding's zero bytes too. */
	if (dn >= 0 && b64len >= 1 && b64[b64len - 1] == '=')
		dn--;
	if (dn >= 0 && b64len >= 2 && b64[b64len - 2] == '=')
		dn--;
	if (dn < 0 || dn != bytes || mk_buf_append(out, data, (size_t)dn) != 0) {
		mk_errf(err, errlen, "sandbox sent a malformed file for '%s'", path);
		free(data);
		return -1;
	}
	free(data);
	return 0;
}

cJSON *sbx_frame_files(cJSON *reply, char *err, size_t errlen)
{
	cJSON *files = cJSON_DetachItemFromObjectCaseSensitive(reply, "files");

	cJSON_Delete(reply);
	if (!cJSON_IsArray(files)) {
		cJSON_Delete(files);
		mk_errf(err, errlen, "sandbox sent a malformed file list");
		return NULL;
	}
	return files;
}
