/*
 * mk_json.c - cJSON helpers: bounded parsing with a located error message,
 * and typed getters (see mk_json.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mk_json.h"

/* Describe the byte at which parsing stopped: "at line L, column C (byte B)". */
static void locate(const char *data, size_t len, size_t off, char *err, size_t errlen)
{
	size_t line = 1, col = 1, i;

	for (i = 0; i < off && i < len; i++) {
		if (data[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	if (off >= len)
		snprintf(err, errlen, "unexpected end of input at line %zu, column %zu", line, col);
	else
		snprintf(err, errlen, "unexpected character at line %zu, column %zu (byte %zu)",
		         line, col, off);
}

/* Offset of the first byte that is not valid UTF-8 (RFC 3629), or len. */
size_t mk_utf8_valid_prefix(const unsigned char *s, size_t len)
{
	size_t i = 0, n, k;
	unsigned cp;

	while (i < len) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			n = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			n = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			n = 3;
			cp = s[i] & 0x07;
		} else {
			return i;
		}
		for (k = 1; k <= n; k++) {
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				return i;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		/* Overlong forms, surrogates and code points past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return i;
		i += n + 1;
	}
	return len;
}

/*
 * One pass before cJSON sees the text: find a \u0000 escape inside a string
 * (C strings cannot hold it) and nesting deeper than max_depth (cJSON
 * recurses once per level, so deep input must be refused before it can
 * exhaust a thread's stack). Returns the offending offset, or len.
 */
static size_t prescan(const char *s, size_t len, int max_depth, int *too_deep)
{
	size_t i;
	int in_str = 0, depth = 0;

	*too_deep = 0;
	for (i = 0; i < len; i++) {
		if (!in_str) {
			if (s[i] == '"') {
				in_str = 1;
			} else if (s[i] == '[' || s[i] == '{') {
				if (++depth > max_depth) {
					*too_deep = 1;
					return i;
				}
			} else if (s[i] == ']' || s[i] == '}') {
				depth--;
			}
			continue;
		}
		if (s[i] == '"') {
			in_str = 0;
		} else if (s[i] == '\\' && i + 1 < len) {
			if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0)
				return i;
			i++; /* skip the escaped character */
		}
	}
	return len;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The first member name that appears twice in one object, anywhere in v,
 * or NULL. Parsers disagree on which duplicate wins, so a body with one is
 * ambiguous: a check could read one value and a handler the other.
 */
static const char *duplicate_member(const cJSON *v)
{
	const cJSON *c;
	const char *dup = NULL, **names;
	size_t n = 0, i;

	for (c = v->child; c; c = c->next) {
		if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && (dup = duplicate_member(c)))
			return dup;
		n++;
	}
	if (!cJSON_IsObject(v) || n < 2)
		return NULL;
	names = malloc(n * sizeof(*names));
	if (!names)
		return "(out of memory)";
	for (i = 0, c = v->child; c; c = c->next)
		names[i++] = c->string;
	qsort(names, n, sizeof(*names), cmp_names);
	for (i = 1; i < n && !dup; i++)
		if (strcmp(names[i - 1], names[i]) == 0)
			dup = names[i];
	free(names);
	return dup;
}

cJSON *mk_json_parse(const char *data, size_t len, int max_depth, char *err, size_t errlen)
{
	const char *dup;
	size_t bad;
	int deep;

	const char *end = NULL;
	cJSON *v;
	size_t i;

	if (len == 0) {
		snprintf(err, errlen, "empty body: expected a JSON value");
		return NULL;
	}
	if (memchr(data, '\0', len)) {
		snprintf(err, errlen, "NUL byte at byte %zu",
		         (size_t)((const char *)memchr(data, '\0', len) - data));
		return NULL;
	}
	bad = mk_utf8_valid_prefix((const unsigned char *)data, len);
	if (bad < len) {
		snprintf(err, errlen, "invalid UTF-8 at byte %zu", bad);
		return NULL;
	}
	bad = prescan(data, len, max_depth > 0 ? max_depth : MK_JSON_HARD_DEPTH, &deep);
	if (bad < len) {
		if (deep)
			snprintf(err, errlen, "nesting deeper than %d levels at byte %zu",
			         max_depth > 0 ? max_depth : MK_JSON_HARD_DEPTH, bad);
		else
			snprintf(err, errlen, "a string contains \\u0000 (NUL) at byte %zu", bad);
		return NULL;
	}
	v = cJSON_ParseWithLengthOpts(data, len, &end, 0);
	if (!v) {
		locate(data, len, end ? (size_t)(end - data) : 0, err, errlen);
		return NULL;
	}
	/* cJSON stops after one value; anything but white space after it is an error. */
	for (i = (size_t)(end - data); i < len; i++) {
		if (data[i] != ' ' && data[i] != '\t' && data[i] != '\n' && data[i] != '\r') {
			cJSON_Delete(v);
			locate(data, len, i, err, errlen);
			return NULL;
		}
	}
	if ((dup = duplicate_member(v))) {
		snprintf(err, errlen, "member '%.64s' appears twice in one object", dup);
		mk_utf8_clip(err);
		cJSON_Delete(v);
		return NULL;
	}
	if (max_depth > 0 && mk_json_depth(v) > max_depth) {
		cJSON_Delete(v);
		snprintf(err, errlen, "nesting deeper than %d levels", max_depth);
		return NULL;
	}
	return v;
}

int mk_json_depth(const cJSON *v)
{
	const cJSON *c;
	int d = 0, cd;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 1;
	for (c = v->child; c; c = c->next) {
		cd = mk_json_depth(c);
		if (cd > d)
			d = cd;
	}
	return d + 1;
}

const char *mk_json_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int mk_json_as_int(const cJSON *v, long long *out)
{
	double d;

	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	/* Integral and exactly representable (|d| <= 2^53). */
	if (d != floor(d) || fabs(d) > 9007199254740992.0)
		return -1;
	*out = (long long)d;
	return 0;
}

int mk_json_int(const cJSON *obj, const char *name, long long *out)
{
	return mk_json_as_int(cJSON_GetObjectItemCaseSensitive(obj, name), out);
}

int mk_json_bool(const cJSON *obj, const char *name, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsBool(v))
		return -1;
	*out = cJSON_IsTrue(v);
	return 0;
}

char *mk_json_print(const cJSON *v)
{
	return cJSON_PrintUnformatted(v);
}

void mk_utf8_clip(char *s)
{
	size_t n = strlen(s);

	s[mk_utf8_valid_prefix((const unsigned char *)s, n)] = '\0';
}
