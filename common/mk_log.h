/*
 * mk_log.h - one small logging API for every service.
 *
 * One line per event on stderr, written with a single write(2) so lines from
 * threads never interleave (text by default; JSON with mk_log_set_format):
 *
 *   2026-11-21T21:42:10.123Z INFO auth AUTH-START rid=- listening on ...
 *
 * The level is checked before any formatting, and the arguments are not
 * evaluated below it: never pass an expression with a side effect. Message ids are short, stable
 * and upper case (SVC-WHAT). Never pass tokens, passwords, keys, DSNs or
 * user data at info level.
 */
#ifndef MK_LOG_H
#define MK_LOG_H

#include <stdarg.h>

typedef enum { MK_LOG_DEBUG, MK_LOG_INFO, MK_LOG_WARN, MK_LOG_ERROR } mk_log_level;

/*
 * The line format: text (above), or one JSON object per line for log
 * pipelines:
 *
 *   {"ts":"2026-11-21T21:42:10.123Z","level":"INFO","service":"auth",
 *    "event":"AUTH-START","rid":null,"msg":"listening on ..."}
 *
 * (on one line; "rid" is null without a request id). The message is escaped
 * as JSON requires, and bytes that are not UTF-8 become U+FFFD.
 */
typedef enum { MK_LOG_TEXT, MK_LOG_JSON } mk_log_format;

/* Set the service name and the lowest level written. Not thread-safe: call once, early. */
void mk_log_init(const char *service, mk_log_level level);
/* Set the line format (text by default). Not thread-safe: call once, early. */
void mk_log_set_format(mk_log_format format);
/* Parse "text" or "json"; returns -1 when unknown. */
int mk_log_format_parse(const char *s, mk_log_format *out);
/* Parse "debug", "info", "warn" or "error"; returns -1 when unknown. */
int mk_log_level_parse(const char *s, mk_log_level *out);
int mk_log_enabled(mk_log_level level);

void mk_log_write(mk_log_level level, const char *id, const char *rid, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define MK_LOG(level, id, rid, ...)                                                                \
	do {                                                                                       \
		if (mk_log_enabled(level))                                                         \
			mk_log_write(level, id, rid, __VA_ARGS__);                                 \
	} while (0)
#define MK_DEBUG(id, rid, ...) MK_LOG(MK_LOG_DEBUG, id, rid, __VA_ARGS__)
#define MK_INFO(id, rid, ...)  MK_LOG(MK_LOG_INFO, id, rid, __VA_ARGS__)
#define MK_WARN(id, rid, ...)  MK_LOG(MK_LOG_WARN, id, rid, __VA_ARGS__)
#define MK_ERROR(id, rid, ...) MK_LOG(MK_LOG_ERROR, id, rid, __VA_ARGS__)

#endif
