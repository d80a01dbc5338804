/*
 * mk_b64.c - base64 with OpenSSL's block coder, plus the checks it leaves
 * to the caller (length, alphabet, padding only at the end).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "mk_b64.h"

/* A multiple of both 3 and 4, so chunks are whole groups either way. */
#define CHUNK ((size_t)3 << 28)

char *mk_b64_encode(const void *data, size_t len)
{
	size_t n = 4 * ((len + 2) / 3);
	char *out = malloc(n + 1);

	if (!out || len > (size_t)1 << 40) {
		free(out);
		return NULL;
	}
	/* EVP_EncodeBlock takes an int length: encode in chunks of whole groups. */
	for (size_t done = 0, o = 0; done < len;) {
		size_t chunk = len - done > CHUNK ? CHUNK : len - done;

		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o,
		                             (const unsigned char *)data + done, (int)chunk);
		done += chunk;
	}
	out[n] = '\0';
	return out;
}

size_t mk_b64_decoded_len(const char *text, size_t len)
{
	size_t pad = 0;

	if (len % 4 != 0)
		return 0;
	if (len >= 1 && text[len - 1] == '=')
		pad++;
	if (len >= 2 && text[len - 2] == '=')
		pad++;
	return len / 4 * 3 - pad;
}

static int valid(const char *t, size_t len)
{
	size_t i;

	if (len % 4 != 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)t[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/')
			continue;
		/* '=' only as the last one or two characters */
		if (c == '=' && (i == len - 1 || (i == len - 2 && t[len - 1] == '=')))
			continue;
		return 0;
	}
	return 1;
}

unsigned char *mk_b64_decode(const char *text, size_t len, size_t *outlen)
{
	size_t n, done, o = 0;
	unsigned char *out;

	if (!valid(text, len))
		return NULL;
	n = mk_b64_decoded_len(text, len);
	out = malloc(len / 4 * 3 + 1);
	if (!out)
		return NULL;
	for (done = 0; done < len;) {
		size_t chunk = len - done > CHUNK ? CHUNK : len - done;
		int r = EVP_DecodeBlock(out + o, (const unsigned char *)text + done, (int)chunk);

		if (r < 0) {
			free(out);
			return NULL;
		}
		o += (size_t)r;
		done += chunk;
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

char *mk_b64url_encode(const void *data, size_t len)
{
	char *s = mk_b64_encode(data, len), *p;

	if (!s)
		return NULL;
	for (p = s; *p && *p != '='; p++)
		*p = *p == '+' ? '-' : *p == '/' ? '_' : *p;
	*p = '\0';
	return s;
}

unsigned char *mk_b64url_decode(const char *text, size_t len, size_t *outlen)
{
	unsigned char *out;
	char *std;
	size_t i;

	if (len % 4 == 1)
		return NULL;
	if (!(std = malloc(len + 3)))
		return NULL;
	for (i = 0; i < len; i++) {
		char c = text[i];

		/* The standard alphabet's own '+', '/' and '=' are not base64url. */
		if (c == '+' || c == '/' || c == '=') {
			free(std);
			return NULL;
		}
		std[i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (i % 4)
		std[i++] = '=';
	out = mk_b64_decode(std, i, outlen);
	free(std);
	return out;
}
