/*
 * mk_buf.c - growable byte buffers with a ceiling (see mk_buf.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_buf.h"

void mk_buf_init(mk_buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
}

void mk_buf_release(mk_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void mk_buf_reset(mk_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

/* Make room for `more` bytes plus the terminator, within the ceiling. */
static int reserve(mk_buf *b, size_t more)
{
	size_t need, ncap;
	char *p;

	if (more > (size_t)-1 - b->len - 1)
		return -1;
	need = b->len + more;
	if (b->max && need > b->max)
		return -1;
	if (need + 1 <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need + 1)
		ncap = ncap > ((size_t)-1) / 2 ? need + 1 : ncap * 2;
	p = realloc(b->data, ncap);
	if (!p)
		return -1;
	b->data = p;
	b->cap = ncap;
	return 0;
}

int mk_buf_append(mk_buf *b, const void *data, size_t len)
{
	if (reserve(b, len) != 0)
		return -1;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int mk_buf_puts(mk_buf *b, const char *s)
{
	return mk_buf_append(b, s, strlen(s));
}

int mk_buf_vprintf(mk_buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(b, (size_t)n) != 0)
		return -1;
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int mk_buf_printf(mk_buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = mk_buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

char *mk_buf_steal(mk_buf *b)
{
	char *p;

	if (!b->data && reserve(b, 0) != 0)
		return NULL;
	if (!b->data) /* reserve(0) on an empty buffer with cap 0 */
		return NULL;
	b->data[b->len] = '\0'; /* a fresh allocation from reserve() is not yet terminated */
	p = b->data;
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}

void mk_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}
