/*
 * gateway_form.c - small readers of what clients send: the Content-Type
 * check, application/x-www-form-urlencoded fields (the OAuth2 password
 * form of /auth), hex digits. Pure functions over the client's bytes:
 * unit-tested with hostile input (tests/unit/gateway/form_test.c).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"

int gw_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

int gw_content_type_is(const gw_req *r, const char *type)
{
	const char *ct = mg_get_header(r->conn, "Content-Type");
	size_t n = strlen(type);

	if (!ct)
		return 0;
	while (*ct == ' ')
		ct++;
	return strncasecmp(ct, type, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Decode one form component (percent escapes, '+' as space) into out. */
static int form_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;

	for (i = 0; i < n; i++) {
		int ch = (unsigned char)s[i];

		if (ch == '+') {
			ch = ' ';
		} else if (ch == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = gw_hexval((unsigned char)s[i + 1]);
			lo = gw_hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			ch = hi * 16 + lo;
			i += 2;
		}
		if (ch == 0 || o + 1 >= outlen)
			return -1;
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return 0;
}

int gw_form_get(const char *body, size_t len, const char *name, char *out, size_t outlen)
{
	const char *p = body, *end = body + len;
	char key[64];
	int found = 0;

	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		const char *ke = eq ? eq : pe;

		if (ke > p && form_decode(p, (size_t)(ke - p), key, sizeof(key)) == 0 &&
		    strcmp(key, name) == 0) {
			if (found)
				return -1; /* a repeated field is ambiguous */
			if (form_decode(eq ? eq + 1 : pe, eq ? (size_t)(pe - eq - 1) : 0, out,
			                outlen) != 0)
				return -1;
			found = 1;
		}
		p = amp ? amp + 1 : end;
	}
	return found;
}
