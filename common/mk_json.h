/*
 * mk_json.h - small helpers over cJSON.
 *
 * Parsing always takes a length and a nesting limit and reports where the
 * input went wrong without cJSON's global error pointer (which is not
 * thread-safe). Getters distinguish "absent" from "wrong type".
 */
#ifndef MK_JSON_H
#define MK_JSON_H

#include <stddef.h>

#include <cjson/cJSON.h>

/* Default nesting limit for outside input. */
#define MK_JSON_MAX_DEPTH 64
/* The limit when a caller passes max_depth 0: bounds cJSON's recursion. */
#define MK_JSON_HARD_DEPTH 256

/*
 * Parse exactly one JSON value from data[0..len) (trailing white space
 * allowed). Refused: invalid UTF-8, a \u0000 escape, nesting deeper than
 * max_depth (0: MK_JSON_HARD_DEPTH), and an object with a member name twice. On failure returns
 * NULL and writes a message naming the line, column and byte offset into err ("expected a value at
 * line 1, column 7"). The caller deletes the result.
 */
cJSON *mk_json_parse(const char *data, size_t len, int max_depth, char *err, size_t errlen);

/* Depth of a value (a scalar is 1). */
int mk_json_depth(const cJSON *v);

/* String member or NULL when absent or not a string. */
const char *mk_json_str(const cJSON *obj, const char *name);
/* Integer member; returns 0 and writes *out, or -1 when absent or not an integer. */
int mk_json_int(const cJSON *obj, const char *name, long long *out);
/* The same for a value itself. */
int mk_json_as_int(const cJSON *v, long long *out);
/* Bool member; returns 0 and writes *out, or -1. */
int mk_json_bool(const cJSON *obj, const char *name, int *out);

/* Length of the longest valid UTF-8 prefix of s[0..len). */
size_t mk_utf8_valid_prefix(const unsigned char *s, size_t len);
/* Cut a string at its first invalid UTF-8 byte (e.g. a character split by truncation). */
void mk_utf8_clip(char *s);

/* Print unformatted; caller frees. NULL on allocation failure. */
char *mk_json_print(const cJSON *v);

#endif
