/*
 * bq_double_cells.c - BigQuery's cell encoding (contract §3) of Postgres
 * result rows: each row {"f":[{"v":...}]} positional against the result
 * schema. Scalars travel as strings (INTEGER exactly as Postgres printed
 * it, FLOAT and TIMESTAMP in Java's Double.toString form, BYTES in
 * base64, BOOLEAN "true"/"false", DATETIME with a 'T'); NULL is JSON null;
 * RECORD columns (stored as jsonb objects) become {"f":[...]} and REPEATED
 * ones [{"v":...},...], with a NULL array as [].
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bq_double.h"
#include "mk_b64.h"
#include "mk_json.h"

static int is_type(const cJSON *field, const char *a, const char *b)
{
	const char *t = mk_json_str(field, "type");

	return t && (strcmp(t, a) == 0 || (b && strcmp(t, b) == 0));
}

static int repeated(const cJSON *field)
{
	const char *m = mk_json_str(field, "mode");

	return m && strcmp(m, "REPEATED") == 0;
}

void bq_cells_java_double(double x, char *out, size_t len)
{
	char e[48], digits[24], *p;
	int prec, nd = 0, neg, i;
	long ex;
	double ax = fabs(x);
	mk_buf b;

	if (isnan(x)) {
		snprintf(out, len, "NaN");
		return;
	}
	if (isinf(x)) {
		snprintf(out, len, x > 0 ? "Infinity" : "-Infinity");
		return;
	}
	if (x == 0) {
		snprintf(out, len, signbit(x) ? "-0.0" : "0.0");
		return;
	}
	for (prec = 1; prec < 17; prec++) {
		snprintf(e, sizeof(e), "%.*e", prec - 1, x);
		if (strtod(e, NULL) == x)
			break;
	}
	snprintf(e, sizeof(e), "%.*e", prec - 1, x);
	neg = e[0] == '-';
	for (p = e + neg; *p && *p != 'e'; p++)
		if (*p >= '0' && *p <= '9' && nd < (int)sizeof(digits) - 1)
			digits[nd++] = *p;
	ex = *p == 'e' ? strtol(p + 1, NULL, 10) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = '\0';
	mk_buf_init(&b, 0);
	if (neg)
		mk_buf_puts(&b, "-");
	if (ax >= 1e-3 && ax < 1e7) {
		if (ex >= 0) {
			for (i = 0; i <= ex; i++)
				mk_buf_append(&b, i < nd ? &digits[i] : "0", 1);
			mk_buf_puts(&b, ".");
			if (nd > ex + 1)
				mk_buf_puts(&b, digits + ex + 1);
			else
				mk_buf_puts(&b, "0");
		} else {
			mk_buf_puts(&b, "0.");
			for (i = 0; i < -ex - 1; i++)
				mk_buf_puts(&b, "0");
			mk_buf_puts(&b, digits);
		}
	} else {
		mk_buf_printf(&b, "%c.%s", digits[0], nd > 1 ? digits + 1 : "0");
		mk_buf_printf(&b, "E%ld", ex);
	}
	snprintf(out, len, "%s", b.data ? b.data : "");
	mk_buf_release(&b);
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static long long days_from_civil(long long y, unsigned m, unsigned d)
{
	long long era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long long)doe - 719468;
}

/* Parse "YYYY-MM-DD[ T]HH:MM:SS[.f][Z|+HH[:MM]|-HH[:MM]]" into microseconds; -1 when not one. */
static int parse_ts(const char *s, long long *micros)
{
	int y, mo, d, h = 0, mi = 0, sec = 0, n = 0, k;
	long long frac = 0, off = 0;
	const char *p;

	if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 ||
	    d > 31)
		return -1;
	p = s + n;
	if (*p == ' ' || *p == 'T') {
		if (sscanf(p + 1, "%2d:%2d:%2d%n", &h, &mi, &sec, &n) != 3)
			return -1;
		p += 1 + n;
		if (*p == '.') {
			for (k = 0, p++; *p >= '0' && *p <= '9'; p++, k++)
				if (k < 6)
					frac = frac * 10 + (*p - '0');
			for (; k < 6; k++)
				frac *= 10;
		}
	}
	if (*p == '+' || *p == '-') {
		int oh = 0, om = 0;

		if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
			return -1;
		off = (oh * 3600LL + om * 60LL) * (*p == '-' ? -1 : 1);
	} else if (*p && *p != 'Z' && *p != 'z') {
		return -1;
	}
	*micros = ((days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400LL + h * 3600LL +
	            mi * 60LL + sec) -
	           off) *
	              1000000LL +
	          frac;
	return 0;
}

static cJSON *timestamp_cell(const char *text, int int64_ts)
{
	long long us;
	char buf[64];

	if (parse_ts(text, &us) != 0)
		return cJSON_CreateString(text);
	if (int64_ts)
		snprintf(buf, sizeof(buf), "%lld", us);
	else
		bq_cells_java_double((double)us / 1e6, buf, sizeof(buf));
	return cJSON_CreateString(buf);
}

/* JSON text without white space outside strings. */
static cJSON *compact_json(const char *text)
{
	size_t n = strlen(text), i, o = 0;
	char *s = malloc(n + 1);
	int in = 0;
	cJSON *v;

	if (!s)
		return NULL;
	for (i = 0; i < n; i++) {
		char c = text[i];

		if (in) {
			s[o++] = c;
			if (c == '\\' && i + 1 < n)
				s[o++] = text[++i];
			else if (c == '"')
				in = 0;
		} else if (c == '"') {
			in = 1;
			s[o++] = c;
		} else if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
			s[o++] = c;
		}
	}
	s[o] = '\0';
	v = cJSON_CreateString(s);
	free(s);
	return v;
}

static cJSON *numeric_cell(const char *text)
{
	char buf[256];
	size_t n;

	snprintf(buf, sizeof(buf), "%s", text);
	n = strlen(buf);
	if (strchr(buf, '.') && !strchr(buf, 'e') && !strchr(buf, 'E')) {
		while (n > 0 && buf[n - 1] == '0')
			buf[--n] = '\0';
		if (n > 0 && buf[n - 1] == '.')
			buf[--n] = '\0';
	}
	return cJSON_CreateString(buf);
}

static cJSON *float_cell(const char *text)
{
	char buf[64];

	if (strcmp(text, "NaN") == 0 || strcmp(text, "Infinity") == 0 ||
	    strcmp(text, "-Infinity") == 0)
		return cJSON_CreateString(text);
	bq_cells_java_double(strtod(text, NULL), buf, sizeof(buf));
	return cJSON_CreateString(buf);
}

/* A scalar cell from its text (Postgres output, or the text of a nested JSON value). */
static cJSON *scalar_cell(const cJSON *field, const char *text, int int64_ts, int from_pg)
{
	if (is_type(field, "FLOAT", "FLOAT64"))
		return float_cell(text);
	if (is_type(field, "NUMERIC", "BIGNUMERIC"))
		return numeric_cell(text);
	if (is_type(field, "BOOLEAN", "BOOL"))
		return cJSON_CreateString(
		    strcmp(text, "t") == 0 || strcmp(text, "true") == 0 ? "true" : "false");
	if (is_type(field, "TIMESTAMP", NULL))
		return timestamp_cell(text, int64_ts);
	if (is_type(field, "DATETIME", NULL) || is_type(field, "TIME", NULL)) {
		char buf[64];
		char *sp, *dot;
		size_t n, len;

		snprintf(buf, sizeof(buf), "%s", text);
		sp = strchr(buf, ' ');
		if (sp)
			*sp = 'T';
		/* BigQuery prints a fraction with all six digits. */
		dot = strchr(buf, '.');
		n = dot ? strlen(dot + 1) : 6;
		len = strlen(buf);
		for (; n < 6 && len + 1 < sizeof(buf); n++) {
			buf[len++] = '0';
			buf[len] = '\0';
		}
		return cJSON_CreateString(buf);
	}
	if (is_type(field, "BYTES", NULL) && from_pg) {
		size_t n = 0;
		unsigned char *raw = PQunescapeBytea((const unsigned char *)text, &n);
		char *b64 = raw ? mk_b64_encode(raw, n) : NULL;
		cJSON *v = cJSON_CreateString(b64 ? b64 : "");

		PQfreemem(raw);
		free(b64);
		return v;
	}
	if (is_type(field, "JSON", NULL) && from_pg)
		return compact_json(text);
	return cJSON_CreateString(text);
}

static cJSON *nested(const cJSON *field, const cJSON *v, int elem, int int64_ts);

static cJSON *wrap(cJSON *v)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddItemToObject(o, "v", v ? v : cJSON_CreateNull());
	return o;
}

/* The cell value of a nested (jsonb-stored) value against field. */
static cJSON *nested(const cJSON *field, const cJSON *v, int elem, int int64_ts)
{
	char num[64];

	if (repeated(field) && !elem) {
		cJSON *a = cJSON_CreateArray();
		const cJSON *x;

		if (cJSON_IsArray(v))
			cJSON_ArrayForEach(x, v)
			{
				cJSON_AddItemToArray(a, wrap(nested(field, x, 1, int64_ts)));
			}
		return a;
	}
	if (!v || cJSON_IsNull(v))
		return cJSON_CreateNull();
	if (is_type(field, "RECORD", "STRUCT")) {
		cJSON *o = cJSON_CreateObject(), *f = cJSON_AddArrayToObject(o, "f");
		const cJSON *sub;
		int i = 0;

		cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(field, "fields"))
		{
			const cJSON *x =
			    cJSON_IsArray(v)
			        ? cJSON_GetArrayItem(v, i)
			        : cJSON_GetObjectItemCaseSensitive(v, mk_json_str(sub, "name"));

			cJSON_AddItemToArray(f, wrap(nested(sub, x, 0, int64_ts)));
			i++;
		}
		return o;
	}
	if (is_type(field, "JSON", NULL)) {
		char *s = mk_json_print(v);
		cJSON *c = cJSON_CreateString(s ? s : "null");

		cJSON_free(s);
		return c;
	}
	if (cJSON_IsString(v))
		return scalar_cell(field, v->valuestring, int64_ts, 0);
	if (cJSON_IsBool(v))
		return cJSON_CreateString(cJSON_IsTrue(v) ? "true" : "false");
	if (cJSON_IsNumber(v)) {
		if (is_type(field, "FLOAT", "FLOAT64")) {
			bq_cells_java_double(v->valuedouble, num, sizeof(num));
			return cJSON_CreateString(num);
		}
		if (v->valuedouble == floor(v->valuedouble) && fabs(v->valuedouble) < 1e18)
			snprintf(num, sizeof(num), "%lld", (long long)v->valuedouble);
		else
			snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		return scalar_cell(field, num, int64_ts, 0);
	}
	{
		char *s = mk_json_print(v);
		cJSON *c = cJSON_CreateString(s ? s : "");

		cJSON_free(s);
		return c;
	}
}

cJSON *bq_cells_row(const PGresult *res, int row, const cJSON *fields, int int64_ts)
{
	cJSON *o = cJSON_CreateObject(), *f = cJSON_AddArrayToObject(o, "f");
	const cJSON *field;
	int i = 0;

	cJSON_ArrayForEach(field, fields)
	{
		const char *text = PQgetvalue(res, row, i);
		int null = PQgetisnull(res, row, i);
		cJSON *v;

		if (repeated(field) || is_type(field, "RECORD", "STRUCT")) {
			char err[64];
			cJSON *j =
			    null ? NULL : mk_json_parse(text, strlen(text), 0, err, sizeof(err));

			v = nested(field, j, 0, int64_ts);
			cJSON_Delete(j);
		} else if (null) {
			v = cJSON_CreateNull();
		} else {
			v = scalar_cell(field, text, int64_ts, 1);
		}
		cJSON_AddItemToArray(f, wrap(v));
		i++;
	}
	return o;
}
