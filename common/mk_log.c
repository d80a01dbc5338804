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
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void mk_log_init(const char *service, mk_log_level level)
{
	log_service = service;
	log_min = level;
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

void mk_log_write(mk_log_level level, const char *id, const char *rid, const char *fmt, ...)
{
	char line[4096];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int k;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	k = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s %s %s rid=%s ", ts.tv_nsec / 1000000,
	             level_names[level], log_service, id, rid && *rid ? rid : "-");
	if (k > 0)
		n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (k > 0)
		n += (size_t)k < sizeof(line) - n ? (size_t)k : sizeof(line) - n - 1;
	/* One event is one line: fold any newline the message carried. */
	for (size_t i = 0; i < n; i++)
		if (line[i] == '\n' || line[i] == '\r')
			line[i] = ' ';
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(STDERR_FILENO, line, n);
}
