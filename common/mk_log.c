/*
 * mk_log.c - one line per event on stderr (see mk_log.h).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "mk_log.h"

static const char *log_service = "mark";
static mk_log_level log_min = MK_LOG_INFO;
static mk_log_format log_format = MK_LOG_TEXT;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void mk_log_init(const char *service, mk_log_level level)
{
	log_service = service;
	log_min = level;
}

void mk_log_set_format(mk_log_format format)
{
	log_format = format;
}

int mk_log_format_parse(const char *s, mk_log_format *out)
{
	if (strcasecmp(s, "text") == 0)
		*out = MK_LOG_TEXT;
	else if (strcasecmp(s, "json") == 0)
		*out = MK_LOG_JSON;
	else
		return -1;
	return 0;
}

int mk_log_level_parse(const char *s, mk_log_level *out)
{
	static const char *const words[] = {"debug", "info", "warn", "error"};
	size_t i;

	for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if (strcasecmp(s, words[i]) == 0) {
			*out = (mk_log_level)i;
			return 0;
		}
	}
	return -1;
}

int mk_log_enabled(mk_log_level level)
{
	return level >= log_min;
}

/* The length of the UTF-8 sequence at p (at most n bytes), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		len = 2, cp = p[0] & 0x1F;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		len = 3, cp = p[0] & 0x0F;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3F);
	}
	/* No overlong form, no surrogate, nothing past U+10FFFF. */
	if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return len;
}

/* Append s (n bytes) to out as the inside of a JSON string; returns the new length. */
static size_t json_escape(char *out, size_t at, size_t cap, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		char esc[8];
		const char *add = esc;
		size_t k = utf8_len(p + i, n - i), alen;

		if (k == 0) {
			add = "\xEF\xBF\xBD"; /* U+FFFD for a byte that is not UTF-8 */
			alen = 3;
			k = 1;
		} else if (p[i] == '"' || p[i] == '\\') {
			esc[0] = '\\';
			esc[1] = (char)p[i];
			alen = 2;
		} else if (p[i] < 0x20 || p[i] == 0x7F) {
			alen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
		} else {
			add = s + i;
			alen = k;
		}
		if (at + alen >= cap)
			break;
		memcpy(out + at, add, alen);
		at += alen;
		i += k;
	}
	return at;
}

static size_t append(char *out, size_t at, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (at + n >= cap)
		n = at < cap - 1 ? cap - 1 - at : 0;
	memcpy(out + at, s, n);
	return at + n;
}

/* The JSON line of an event whose message is msg; returns its length, newline included. */
static size_t json_line(char *line, size_t cap, const char *ts, mk_log_level level, const char *id,
                        const char *rid, const char *msg)
{
	size_t n = 0;

	n = append(line, n, cap, "{\"ts\":\"");
	n = append(line, n, cap, ts);
	n = append(line, n, cap, "\",\"level\":\"");
	n = append(line, n, cap, level_names[level]);
	n = append(line, n, cap, "\",\"service\":\"");
	n = json_escape(line, n, cap, log_service, strlen(log_service));
	n = append(line, n, cap, "\",\"event\":\"");
	n = json_escape(line, n, cap, id, strlen(id));
	if (rid && *rid) {
		n = append(line, n, cap, "\",\"rid\":\"");
		n = json_escape(line, n, cap, rid, strlen(rid));
		n = append(line, n, cap, "\",\"msg\":\"");
	} else {
		n = append(line, n, cap, "\",\"rid\":null,\"msg\":\"");
	}
	/* Room kept for the closing quote, brace and newline. */
	n = json_escape(line, n, cap - 3, msg, strlen(msg));
	memcpy(line + n, "\"}\n", 3);
	return n + 3;
}

void mk_log_write(mk_log_level level, const char *id, const char *rid, const char *fmt, ...)
{
	char line[4096], msg[3072], ts[40];
	struct timespec ts_now;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts_now);
	gmtime_r(&ts_now.tv_sec, &tm);
	n = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof(ts) - n, ".%03ldZ", ts_now.tv_nsec / 1000000);
	va_start(ap, fmt);
	k = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (k < 0)
		msg[0] = '\0';
	if (log_format == MK_LOG_JSON) {
		n = json_line(line, sizeof(line), ts, level, id, rid, msg);
		(void)!write(STDERR_FILENO, line, n);
		return;
	}
	k = snprintf(line, sizeof(line), "%s %s %s %s rid=%s %s", ts, level_names[level],
	             log_service, id, rid && *rid ? rid : "-", msg);
	n = k < 0 ? 0 : (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1;
	/* One event is one line: fold any newline the message carried. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}
