/*
 * gateway_multipart.c - the multipart/form-data parser of uploads
 * (gateway_files.c): the boundary of a Content-Type, the parts of a body,
 * each part's Content-Disposition (RFC 7578, with RFC 5987 filename*).
 * Pure functions over bytes the client sent: unit-tested with hostile
 * input (tests/unit/gateway/multipart_test.c).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "mk_buf.h"

#define FORM_HEADERS 8192 /* the headers of one part */

/* The boundary parameter of a multipart Content-Type (quoted or not), 1-70 characters. */
int gw_multipart_boundary(const char *ct, char *out, size_t outlen)
{
	const char *p = ct;
	size_t n;

	while ((p = strchr(p, ';'))) {
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncasecmp(p, "boundary=", 9) != 0)
			continue;
		p += 9;
		if (*p == '"') {
			const char *q = strchr(++p, '"');

			if (!q)
				return -1;
			n = (size_t)(q - p);
		} else {
			n = strcspn(p, "; \t");
		}
		if (n < 1 || n > 70 || n >= outlen)
			return -1;
		memcpy(out, p, n);
		out[n] = '\0';
		return 0;
	}
	return -1;
}

/*
 * Read one parameter value of a header at *pp (quoted, or a token) into
 * out; -1 when it does not fit or is unclosed.
 */
static int param_value(const char **pp, const char *end, char *out, size_t outlen)
{
	const char *p = *pp;
	size_t n = 0;

	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			/* Only \" and \\ are escapes: a Windows path keeps its backslashes. */
			if (*p == '\\' && p + 1 < end && (p[1] == '"' || p[1] == '\\'))
				p++;
			if (n + 1 >= outlen)
				return -1;
			out[n++] = *p;
		}
		if (p >= end)
			return -1;
		p++;
	} else {
		for (; p < end && *p != ';' && *p != ' ' && *p != '\t'; p++) {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = *p;
		}
	}
	out[n] = '\0';
	*pp = p;
	return 0;
}

/* An RFC 5987 value (UTF-8''percent-encoded) decoded in place; -1 when it is not one. */
static int ext_value(char *v)
{
	char *in, *out;

	if (strncasecmp(v, "UTF-8''", 7) != 0)
		return -1;
	for (in = v + 7, out = v; *in; in++) {
		if (*in == '%') {
			int hi = gw_hexval(in[1]), lo = hi < 0 ? -1 : gw_hexval(in[2]);

			if (lo < 0 || (hi == 0 && lo == 0))
				return -1;
			*out++ = (char)(hi << 4 | lo);
			in += 2;
		} else {
			*out++ = *in;
		}
	}
	*out = '\0';
	return 0;
}

/* Parse "form-data; name=...; filename=..." into part; -1 when malformed. */
static int disposition(const char *v, const char *end, gw_form_part *part)
{
	char key[32], val[1024];
	int have_ext = 0;

	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	if ((size_t)(end - v) < 9 || strncasecmp(v, "form-data", 9) != 0)
		return -1;
	v += 9;
	for (;;) {
		size_t n;

		while (v < end && (*v == ' ' || *v == '\t' || *v == ';'))
			v++;
		if (v >= end)
			return part->name[0] ? 0 : -1;
		for (n = 0; v < end && *v != '=' && *v != ';' && *v != ' ' && n + 1 < sizeof(key);)
			key[n++] = *v++;
		key[n] = '\0';
		if (v >= end || *v != '=')
			return -1;
		v++;
		if (param_value(&v, end, val, sizeof(val)) != 0)
			return -1;
		if (strcasecmp(key, "name") == 0) {
			if (strlen(val) >= sizeof(part->name))
				return -1;
			snprintf(part->name, sizeof(part->name), "%s", val);
		} else if (strcasecmp(key, "filename*") == 0) {
			if (ext_value(val) != 0)
				return -1;
			snprintf(part->filename, sizeof(part->filename), "%s", val);
			part->has_filename = have_ext = 1;
		} else if (strcasecmp(key, "filename") == 0 && !have_ext) {
			snprintf(part->filename, sizeof(part->filename), "%s", val);
			part->has_filename = 1;
		}
	}
}

/*
 * Split a multipart/form-data body into its parts (at most max). Returns
 * the number of parts, or -1 with why in err.
 */
int gw_multipart_parse(const char *body, size_t len, const char *boundary, gw_form_part *parts,
                       int max, char *err, size_t errlen)
{
	char delim[80];
	size_t dl = (size_t)snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	const char *end = body + len, *p;
	int n = 0;

	/* The first delimiter may open the body (no preceding CRLF) or follow a preamble. */
	if (len >= dl - 2 && memcmp(body, delim + 2, dl - 2) == 0)
		p = body + dl - 2;
	else if ((p = memmem(body, len, delim, dl)))
		p += dl;
	else {
		mk_errf(err, errlen, "the body has no boundary '%s'", boundary);
		return -1;
	}
	for (;;) {
		const char *h, *hend, *next;
		gw_form_part *part;

		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return n; /* the closing delimiter */
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n')
			break;
		h = p + 2;
		if (end - h >= 2 && h[0] == '\r' && h[1] == '\n')
			hend = h;
		else if ((hend = memmem(h,
		                        (size_t)(end - h) < FORM_HEADERS ? (size_t)(end - h)
		                                                         : FORM_HEADERS,
		                        "\r\n\r\n", 4)))
			hend += 2;
		else
			break;
		if (n == max) {
			mk_errf(err, errlen, "the form has more than %d parts", max);
			return -1;
		}
		part = &parts[n];
		memset(part, 0, sizeof(*part));
		while (h < hend) {
			const char *eol = memmem(h, (size_t)(hend - h), "\r\n", 2);

			if (!eol)
				break;
			if ((size_t)(eol - h) > 20 &&
			    strncasecmp(h, "Content-Disposition:", 20) == 0 &&
			    disposition(h + 20, eol, part) != 0) {
				mk_errf(err, errlen, "a part's Content-Disposition is malformed");
				return -1;
			}
			h = eol + 2;
		}
		if (!part->name[0]) {
			mk_errf(err, errlen, "a part has no form-data name");
			return -1;
		}
		part->data = hend + 2;
		next = memmem(part->data, (size_t)(end - part->data), delim, dl);
		if (!next)
			break;
		part->len = (size_t)(next - part->data);
		n++;
		p = next + dl;
	}
	mk_errf(err, errlen, "the body ends before its closing boundary");
	return -1;
}

/* The last part of a client's file path (some browsers send the whole path). */
const char *gw_multipart_base_name(const char *s)
{
	const char *b = s;

	for (; *s; s++)
		if (*s == '/' || *s == '\\')
			b = s + 1;
	return b;
}
