/*
 * mk_buf.h - growable byte buffers with a ceiling.
 *
 * Every buffer that holds outside input has a maximum size; appending past
 * it fails and leaves the buffer unchanged, so callers can answer
 * `too_large` instead of growing without bound. The data is always
 * NUL-terminated (the terminator is not counted in len).
 */
#ifndef MK_BUF_H
#define MK_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct {
	char *data; /* NULL until the first append */
	size_t len;
	size_t cap;
	size_t max; /* 0: no ceiling */
} mk_buf;

void mk_buf_init(mk_buf *b, size_t max);
/* Free the data and reset to empty; the ceiling stays. Safe twice. */
void mk_buf_release(mk_buf *b);
void mk_buf_reset(mk_buf *b); /* len = 0, keep memory */
/* Append; returns 0, or -1 (buffer unchanged) past the ceiling or out of memory. */
int mk_buf_append(mk_buf *b, const void *data, size_t len);
int mk_buf_puts(mk_buf *b, const char *s);
int mk_buf_printf(mk_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mk_buf_vprintf(mk_buf *b, const char *fmt, va_list ap);
/* Hand the data to the caller (malloc'd, NUL-terminated, never NULL on success) and reset. */
char *mk_buf_steal(mk_buf *b);

/* Format a message into err[0..errlen) (nothing when err is NULL or errlen 0). */
void mk_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
