/*
 * auth_password.c - password hashing with argon2id (libsodium), bounded in
 * concurrency because each hash takes AUTH_ARGON2_MEMLIMIT of memory, and
 * the rules for emails and passwords.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "auth.h"

int auth_email_normalize(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
	const char *end = in + strlen(in), *at, *dot;
	size_t n, i;

	while (in < end && isspace((unsigned char)*in))
		in++;
	while (end > in && isspace((unsigned char)end[-1]))
		end--;
	n = (size_t)(end - in);
	if (n == 0 || n > 254 || n >= outlen) {
		snprintf(err, errlen, "email must be 1 to 254 characters");
		return -1;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)in[i];

		if (ch <= 0x20 || ch == 0x7f || ch == '"' || ch == '<' || ch == '>' || ch == ',' ||
		    ch == ';' || ch == '\\' || ch == '(' || ch == ')' || ch == '[' || ch == ']') {
			snprintf(err, errlen, "email contains a character that is not allowed");
			return -1;
		}
		out[i] = (char)(ch < 0x80 ? tolower(ch) : ch);
	}
	out[n] = '\0';
	at = strchr(out, '@');
	if (!at || at == out || strchr(at + 1, '@') || (size_t)(at - out) > 64) {
		snprintf(err, errlen, "email must look like name@example.com");
		return -1;
	}
	dot = strrchr(at + 1, '.');
	if (!dot || dot == at + 1 || dot[1] == '\0' || strstr(at, "..") || out[n - 1] == '.') {
		snprintf(err, errlen, "email must look like name@example.com");
		return -1;
	}
	return 0;
}

int auth_password_check(const char *pw, char *err, size_t errlen)
{
	size_t chars = 0;
	const unsigned char *p;

	/* Count characters, not bytes: "至少八个字符" is long enough. */
	for (p = (const unsigned char *)pw; *p; p++)
		chars += (*p & 0xc0) != 0x80;
	if (chars < 8) {
		snprintf(err, errlen, "password must be at least 8 characters");
		return -1;
	}
	if (strlen(pw) > 1024) {
		snprintf(err, errlen, "password must be at most 1024 bytes");
		return -1;
	}
	return 0;
}

/* Take a hashing slot, waiting until deadline_ms (unix ms; 0: 30 s). */
static int slot_take(auth *a, int64_t deadline_ms)
{
	struct timespec ts;

	if (deadline_ms <= 0) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 30;
	} else {
		ts.tv_sec = deadline_ms / 1000;
		ts.tv_nsec = (deadline_ms % 1000) * 1000000L;
	}
	while (sem_timedwait(&a->hash_slots, &ts) != 0)
		if (errno != EINTR)
			return -1;
	return 0;
}

char *auth_password_hash(auth *a, const char *pw, int64_t deadline_ms, char *err, size_t errlen)
{
	char *out = malloc(crypto_pwhash_STRBYTES);
	int rc;

	if (!out) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (slot_take(a, deadline_ms) != 0) {
		free(out);
		snprintf(err, errlen, "too many sign-ins at once; try again");
		return NULL;
	}
	rc = crypto_pwhash_str(out, pw, strlen(pw), (unsigned long long)a->cfg->argon2_ops,
	                       (size_t)a->cfg->argon2_mem);
	sem_post(&a->hash_slots);
	if (rc != 0) {
		free(out);
		snprintf(err, errlen, "cannot hash the password (out of memory)");
		return NULL;
	}
	return out;
}

int auth_password_verify(auth *a, const char *hash, const char *pw, int64_t deadline_ms)
{
	int rc;

	if (slot_take(a, deadline_ms) != 0)
		return -1;
	rc = crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
	sem_post(&a->hash_slots);
	return rc;
}

int auth_password_needs_rehash(const auth *a, const char *hash)
{
	return crypto_pwhash_str_needs_rehash(hash, (unsigned long long)a->cfg->argon2_ops,
	                                      (size_t)a->cfg->argon2_mem) != 0;
}
