/*
 * mk_proto.h - Mark's wire protocol: error codes, operations, the envelope.
 *
 * Every NNG message between services is one JSON object:
 *
 *   request  {"v":1, "op":"sys.ping", "id":"<request id>",
 *             "deadline":<unix ms>, "caller":{"user_id","role"}|null,
 *             "body":{...}}
 *   reply    {"v":1, "id":"<request id>", "ok":true,  "body":{...}}
 *            {"v":1, "id":"<request id>", "ok":false,
 *             "error":{"code":"not_found", "message":"...", "status":404}}
 *
 * The error, op and field tables come from errors.def, ops.def and
 * fields.def; this module only reads and writes them. It does no I/O.
 */
#ifndef MK_PROTO_H
#define MK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#define MK_PROTO_VERSION 1

typedef enum {
#define MK_ERR(sym, code, status, msg) sym,
#include "errors.def"
#undef MK_ERR
	MK_ERR__COUNT
} mk_err;

typedef enum {
#define MK_OP(sym, name, ver, owner) sym,
#include "ops.def"
#undef MK_OP
	MK_OP__COUNT
} mk_op;

typedef enum { MK_F_STR, MK_F_INT, MK_F_BOOL, MK_F_OBJ, MK_F_ARR, MK_F_ANY } mk_field_type;

typedef struct {
	mk_op op;
	const char *name;
	mk_field_type type;
	int required;
	long long min, max;
} mk_field;

/* Longest request id accepted, in bytes (ids are [A-Za-z0-9._:-]). */
#define MK_RID_MAX 64
/* Longest user id / role carried as the verified caller. */
#define MK_CALLER_MAX 64

typedef struct {
	char user_id[MK_CALLER_MAX + 1]; /* empty: no authenticated caller */
	char role[16];
} mk_caller;

/* A decoded request. body is owned by root; free with mk_env_release. */
typedef struct {
	int version;
	mk_op op;
	char rid[MK_RID_MAX + 1];
	int64_t deadline_ms; /* unix ms; 0 when the sender set none */
	mk_caller caller;
	cJSON *root;
	cJSON *body; /* points into root; never NULL after a good decode */
} mk_env;

/* Wire code, HTTP status and default message of an error. */
const char *mk_err_code(mk_err e);
int mk_err_status(mk_err e);
const char *mk_err_message(mk_err e);
/* The error whose wire code is `code`, or MK_E_INTERNAL when unknown. */
mk_err mk_err_from_code(const char *code);

/* Wire name, version and owner of an op. */
const char *mk_op_name(mk_op op);
int mk_op_version(mk_op op);
const char *mk_op_owner(mk_op op);
/* The op named `name`; returns -1 when there is none. */
int mk_op_lookup(const char *name, mk_op *out);
/* The field table of an op: *n entries. */
const mk_field *mk_op_fields(mk_op op, size_t *n);

/* Is `rid` a valid request id (1..MK_RID_MAX of [A-Za-z0-9._:-])? */
int mk_rid_valid(const char *rid);
/* Write a fresh random request id (32 hex chars) into buf. */
void mk_rid_new(char buf[MK_RID_MAX + 1]);

/*
 * Decode a request of `len` bytes into env. Returns MK_OK, or the error to
 * reply with and a human message in err (the rid is still filled in when it
 * could be read, so the reply can carry it). Checks, in order: JSON, version,
 * op known, deadline not passed (now_ms), body is an object whose fields
 * match fields.def. On error env holds nothing.
 */
mk_err mk_env_decode(const char *data, size_t len, int64_t now_ms, mk_env *env, char *err,
                     size_t errlen);
void mk_env_release(mk_env *env);

/*
 * Check a body against an op's field table. Returns MK_OK or
 * MK_E_VALIDATION with the offending field named in err.
 */
mk_err mk_body_check(mk_op op, const cJSON *body, char *err, size_t errlen);

/*
 * Encode a request. body is borrowed (may be NULL for {}). Returns a
 * malloc'd string the caller frees, or NULL on allocation failure.
 */
char *mk_env_encode_request(mk_op op, const char *rid, int64_t deadline_ms, const mk_caller *caller,
                            const cJSON *body);
/*
 * An ok reply is always exactly MK_REPLY_PREFIX_FMT (with the request id)
 * followed by the body and a closing '}', so the body's bytes can be
 * forwarded without parsing them.
 */
#define MK_REPLY_PREFIX_FMT "{\"v\":1,\"id\":\"%s\",\"ok\":true,\"body\":"

/* Encode an ok reply (body borrowed, NULL for {}). Caller frees. */
char *mk_env_encode_reply(const char *rid, const cJSON *body);
/* Encode an error reply; msg NULL uses the default message. Caller frees. */
char *mk_env_encode_error(const char *rid, mk_err e, const char *msg);
/* The same with extra members (borrowed, may be NULL) copied into the error object. */
char *mk_env_encode_error_ex(const char *rid, mk_err e, const char *msg, const cJSON *extra);

#endif
