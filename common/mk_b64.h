/*
 * mk_b64.h - standard base64 (RFC 4648, with padding), for file bytes that
 * travel inside JSON messages, and unpadded base64url for JWTs sent to
 * other parties (Mark's own access tokens have their stricter codec in
 * mk_jwt.c).
 */
#ifndef MK_B64_H
#define MK_B64_H

#include <stddef.h>

/* The encoded form of len bytes, NUL-terminated (caller frees), or NULL when out of memory. */
char *mk_b64_encode(const void *data, size_t len);
/* Bytes decoded from text (whitespace not allowed); caller frees; NULL when not valid base64 or out
 * of memory. *outlen receives the length. A NUL is appended (not counted). */
unsigned char *mk_b64_decode(const char *text, size_t len, size_t *outlen);
/*
 * base64url (RFC 4648 section 5) without padding, as JWTs use it: the
 * encoded text (caller frees), or NULL when out of memory.
 */
char *mk_b64url_encode(const void *data, size_t len);
/* Bytes decoded from unpadded base64url text; caller frees; NULL when malformed (padding
 * included) or out of memory. A NUL is appended (not counted). */
unsigned char *mk_b64url_decode(const char *text, size_t len, size_t *outlen);
/* The decoded length of valid base64 text of len characters (0 when len is not a multiple of 4). */
size_t mk_b64_decoded_len(const char *text, size_t len);

#endif
