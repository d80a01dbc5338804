/*
 * mt_prom.c - the strict Prometheus text-format reader of the tests (see
 * mt_prom.h). Written from the format's description, not from Mark's
 * writer, so that the two check each other.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_prom.h"

typedef struct {
	char family[128];
	char type[16];
	/* a histogram series being read: its labels without le, buckets so far */
	char series[512];
	int in_series, saw_inf, saw_sum;
	double last_le, last_count, inf_count;
} state;

static int is_name_char(int c, int first)
{
	return isalpha(c) || c == '_' || c == ':' || (!first && isdigit(c));
}

/* Read a metric or label name at *p (label names without ':'). Returns its length. */
static size_t read_name(const char *p, int label)
{
	size_t n = 0;

	while (is_name_char((unsigned char)p[n], n == 0) && !(label && p[n] == ':'))
		n++;
	return n;
}

static int fail(char *err, size_t errlen, const char *line, size_t len, const char *why)
{
	snprintf(err, errlen, "%s: '%.*s'", why, (int)(len > 200 ? 200 : len), line);
	return -1;
}

static int has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

/* A HELP or TYPE line. */
static int comment(state *st, const char *line, size_t len, char *err, size_t errlen)
{
	const char *p = line + 2;
	size_t n;

	if (len < 2 || line[1] != ' ')
		return 0; /* a plain comment */
	if (strncmp(p, "HELP ", 5) != 0 && strncmp(p, "TYPE ", 5) != 0)
		return 0;
	n = read_name(p + 5, 0);
	if (n == 0 || n >= sizeof(st->family) || p[5 + n] != ' ')
		return fail(err, errlen, line, len, "bad HELP/TYPE name");
	if (strncmp(p, "TYPE ", 5) == 0) {
		const char *t = p + 5 + n + 1;
		size_t tn = len - (size_t)(t - line);

		if (st->in_series)
			return fail(err, errlen, line, len,
			            "histogram series not closed by _count");
		if (!((tn == 7 && !strncmp(t, "counter", 7)) ||
		      (tn == 5 && !strncmp(t, "gauge", 5)) ||
		      (tn == 9 && !strncmp(t, "histogram", 9)) ||
		      (tn == 7 && !strncmp(t, "summary", 7)) ||
		      (tn == 7 && !strncmp(t, "untyped", 7))))
			return fail(err, errlen, line, len, "unknown TYPE");
		if (strlen(st->family) == n && !strncmp(st->family, p + 5, n))
			return fail(err, errlen, line, len, "TYPE given twice");
		if (tn == 7 && !strncmp(t, "counter", 7) && !has_suffix(p + 5, n, "_total"))
			return fail(err, errlen, line, len, "a counter's name must end in _total");
		memcpy(st->family, p + 5, n);
		st->family[n] = '\0';
		memcpy(st->type, t, tn);
		st->type[tn] = '\0';
	}
	return 0;
}

/* Parse the label set at *p ('{' ... '}'); the set without le goes to series, le to le. */
static int labels(const char **pp, const char *end, char *series, size_t slen, char *le,
                  size_t lelen)
{
	const char *p = *pp + 1;
	size_t used = 0;

	series[0] = le[0] = '\0';
	while (p < end && *p != '}') {
		size_t n = read_name(p, 1);
		const char *name = p, *v;
		int is_le;

		if (n == 0 || p[n] != '=' || p[n + 1] != '"')
			return -1;
		is_le = n == 2 && !strncmp(name, "le", 2);
		p += n + 2;
		v = p;
		while (p < end && *p != '"') {
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
					return -1;
				p++;
			}
			p++;
		}
		if (p >= end)
			return -1;
		if (is_le)
			snprintf(le, lelen, "%.*s", (int)(p - v), v);
		else
			used += (size_t)snprintf(series + used, used < slen ? slen - used : 0,
			                         "%s%.*s", used ? "," : "", (int)(p - name), name);
		p++; /* the closing quote */
		if (*p == ',')
			p++;
		else if (*p != '}')
			return -1;
	}
	if (p >= end)
		return -1;
	*pp = p + 1;
	return 0;
}

static int sample(state *st, const char *line, size_t len, char *err, size_t errlen)
{
	const char *p = line, *end = line + len;
	char series[512], le[64] = "", *vend, num[64];
	size_t n = read_name(p, 0), fl = strlen(st->family);
	double v;
	const char *suffix;

	if (n == 0)
		return fail(err, errlen, line, len, "bad metric name");
	if (!st->family[0] || n < fl || strncmp(p, st->family, fl) != 0)
		return fail(err, errlen, line, len, "sample outside its TYPE'd family");
	suffix = p + fl;
	if (!strcmp(st->type, "histogram")) {
		size_t sn = n - fl;

		if (!((sn == 7 && !strncmp(suffix, "_bucket", 7)) ||
		      (sn == 4 && !strncmp(suffix, "_sum", 4)) ||
		      (sn == 6 && !strncmp(suffix, "_count", 6))))
			return fail(err, errlen, line, len, "histogram sample of another name");
	} else if (n != fl) {
		return fail(err, errlen, line, len, "sample of another name than its family");
	}
	p += n;
	series[0] = '\0';
	if (*p == '{' && labels(&p, end, series, sizeof(series), le, sizeof(le)) != 0)
		return fail(err, errlen, line, len, "bad label set");
	if (*p != ' ' || p + 1 >= end || (size_t)(end - p - 1) >= sizeof(num))
		return fail(err, errlen, line, len, "no value");
	snprintf(num, sizeof(num), "%.*s", (int)(end - p - 1), p + 1);
	v = strtod(num, &vend);
	if (vend == num || *vend)
		return fail(err, errlen, line, len, "value is not a number (or has a timestamp)");
	if (strcmp(st->type, "histogram") != 0) {
		if (le[0])
			return fail(err, errlen, line, len, "le outside a histogram");
		if (!strcmp(st->type, "counter") && !(v >= 0))
			return fail(err, errlen, line, len, "negative counter");
		return 0;
	}
	if (!strncmp(suffix, "_bucket", 7)) {
		double b;

		if (!le[0])
			return fail(err, errlen, line, len, "bucket without le");
		b = strtod(le, &vend);
		if (*vend)
			return fail(err, errlen, line, len, "bad le");
		if (!st->in_series) {
			snprintf(st->series, sizeof(st->series), "%s", series);
			st->in_series = 1;
			st->saw_inf = st->saw_sum = 0;
			st->last_le = -INFINITY;
			st->last_count = 0;
		} else if (strcmp(st->series, series) != 0 || st->saw_inf) {
			return fail(err, errlen, line, len, "buckets of a series not together");
		}
		if (!(b > st->last_le))
			return fail(err, errlen, line, len, "le not ascending");
		if (v < st->last_count)
			return fail(err, errlen, line, len, "bucket counts not cumulative");
		st->last_le = b;
		st->last_count = v;
		if (isinf(b)) {
			st->saw_inf = 1;
			st->inf_count = v;
		}
		return 0;
	}
	if (le[0])
		return fail(err, errlen, line, len, "le on _sum or _count");
	if (!st->in_series || !st->saw_inf || strcmp(st->series, series) != 0)
		return fail(err, errlen, line, len,
		            "_sum/_count without its buckets ending in +Inf");
	if (!strncmp(suffix, "_sum", 4)) {
		st->saw_sum = 1;
		return 0;
	}
	if (!st->saw_sum)
		return fail(err, errlen, line, len, "_count before _sum");
	if (v != st->inf_count)
		return fail(err, errlen, line, len, "_count differs from the +Inf bucket");
	st->in_series = 0;
	return 0;
}

int mt_prom_check(const char *text, char *err, size_t errlen)
{
	state st;
	const char *line = text;

	memset(&st, 0, sizeof(st));
	if (!*text)
		return fail(err, errlen, "", 0, "empty exposition");
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t len;
		int rc;

		if (!nl)
			return fail(err, errlen, line, strlen(line), "last line without newline");
		len = (size_t)(nl - line);
		if (len == 0)
			return fail(err, errlen, line, 0, "empty line");
		rc = line[0] == '#' ? comment(&st, line, len, err, errlen)
		                    : sample(&st, line, len, err, errlen);
		if (rc != 0)
			return -1;
		line = nl + 1;
	}
	if (st.in_series)
		return fail(err, errlen, "", 0, "last histogram series not closed by _count");
	return 0;
}

double mt_prom_value(const char *text, const char *name, const char *labels_want)
{
	const char *line = text;
	size_t n = strlen(name);
	double sum = 0;

	for (; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
		const char *nl = strchr(line, '\n'), *sp, *lb;
		char want[256], *tok, *save = NULL, set[1024];
		int ok = 1;

		if (line[0] == '#' || strncmp(line, name, n) != 0 ||
		    (line[n] != '{' && line[n] != ' '))
			continue;
		lb = line + n;
		/* the value follows the line's last space */
		for (sp = nl ? nl : lb + strlen(lb); sp > lb && sp[-1] != ' '; sp--)
			;
		if (sp == lb)
			continue;
		sp--;
		snprintf(set, sizeof(set), "%.*s", (int)(sp - lb), lb);
		snprintf(want, sizeof(want), "%s", labels_want);
		for (tok = strtok_r(want, ",", &save); tok && ok; tok = strtok_r(NULL, ",", &save))
			ok = strstr(set, tok) != NULL;
		if (ok)
			sum += strtod(sp + 1, NULL);
	}
	return sum;
}
