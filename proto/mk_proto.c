/*
 * mk_proto.c - the tables of errors.def, ops.def and fields.def, and the
 * envelope codec with the checks every request passes before a handler
 * sees it. No I/O.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "mk_json.h"
#include "mk_proto.h"

static const struct {
	const char *code;
	int status;
	const char *msg;
} errs[] = {
#define MK_ERR(sym, code, status, msg) {code, status, msg},
#include "errors.def"
#undef MK_ERR
};

static const struct {
	const char *name;
	int version;
	const char *owner;
} ops[] = {
#define MK_OP(sym, name, ver, owner) {name, ver, owner},
#include "ops.def"
#undef MK_OP
};

static const mk_field fields[] = {
#define MK_FIELD(op, name, type, req, min, max) {op, name, type, req, min, max},
#include "fields.def"
#undef MK_FIELD
    {MK_OP__COUNT, NULL, MK_F_ANY, 0, 0, 0},
};

const char *mk_err_code(mk_err e)
{
	return (unsigned)e < MK_ERR__COUNT ? errs[e].code : "internal";
}

int mk_err_status(mk_err e)
{
	return (unsigned)e < MK_ERR__COUNT ? errs[e].status : 500;
}

const char *mk_err_message(mk_err e)
{
	return (unsigned)e < MK_ERR__COUNT ? errs[e].msg : "internal error";
}

mk_err mk_err_from_code(const char *code)
{
	size_t i;

	for (i = 0; code && i < MK_ERR__COUNT; i++)
		if (strcmp(errs[i].code, code) == 0)
			return (mk_err)i;
	return MK_E_INTERNAL;
}

const char *mk_op_name(mk_op op)
{
	return (unsigned)op < MK_OP__COUNT ? ops[op].name : "?";
}

int mk_op_version(mk_op op)
{
	return (unsigned)op < MK_OP__COUNT ? ops[op].version : 0;
}

const char *mk_op_owner(mk_op op)
{
	return (unsigned)op < MK_OP__COUNT ? ops[op].owner : "?";
}

int mk_op_lookup(const char *name, mk_op *out)
{
	size_t i;

	for (i = 0; i < MK_OP__COUNT; i++) {
		if (strcmp(ops[i].name, name) == 0) {
			*out = (mk_op)i;
			return 0;
		}
	}
	return -1;
}

const mk_field *mk_op_fields(mk_op op, size_t *n)
{
	size_t i, first = 0, count = 0;

	for (i = 0; fields[i].name; i++) {
		if (fields[i].op != op)
			continue;
		if (!count)
			first = i;
		count++;
	}
	*n = count;
	return count ? &fields[first] : NULL;
}

int mk_rid_valid(const char *rid)
{
	size_t n = strlen(rid);

	if (n == 0 || n > MK_RID_MAX)
		return 0;
	return strspn(rid, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") ==
	       n;
}

void mk_rid_new(char buf[MK_RID_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];
	size_t i;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		memset(raw, 0, sizeof(raw));
	for (i = 0; i < sizeof(raw); i++) {
		buf[2 * i] = hex[raw[i] >> 4];
		buf[2 * i + 1] = hex[raw[i] & 15];
	}
	buf[2 * sizeof(raw)] = '\0';
}

static const char *type_word(mk_field_type t)
{
	switch (t) {
	case MK_F_STR: return "a string";
	case MK_F_INT: return "an integer";
	case MK_F_BOOL: return "a boolean";
	case MK_F_OBJ: return "an object";
	case MK_F_ARR: return "an array";
	case MK_F_ANY: return "a value";
	}
	return "a value";
}

/* Check one present value against its field description. */
static mk_err check_field(const mk_field *f, const cJSON *v, char *err, size_t errlen)
{
	long long n;

	switch (f->type) {
	case MK_F_STR:
		if (!cJSON_IsString(v))
			break;
		n = (long long)strlen(v->valuestring);
		if (n < f->min || n > f->max) {
			snprintf(err, errlen, "field '%s' must be %lld to %lld bytes long", f->name,
			         f->min, f->max);
			return MK_E_VALIDATION;
		}
		return MK_OK;
	case MK_F_INT:
		if (mk_json_as_int(v, &n) != 0)
			break;
		if (n < f->min || n > f->max) {
			snprintf(err, errlen, "field '%s' must be between %lld and %lld", f->name,
			         f->min, f->max);
			return MK_E_VALIDATION;
		}
		return MK_OK;
	case MK_F_BOOL:
		if (cJSON_IsBool(v))
			return MK_OK;
		break;
	case MK_F_OBJ:
		if (cJSON_IsObject(v))
			return MK_OK;
		break;
	case MK_F_ARR:
		if (!cJSON_IsArray(v))
			break;
		n = cJSON_GetArraySize(v);
		if (n < f->min || n > f->max) {
			snprintf(err, errlen, "field '%s' must have %lld to %lld items", f->name,
			         f->min, f->max);
			return MK_E_VALIDATION;
		}
		return MK_OK;
	case MK_F_ANY: return MK_OK;
	}
	snprintf(err, errlen, "field '%s' must be %s", f->name, type_word(f->type));
	return MK_E_VALIDATION;
}

mk_err mk_body_check(mk_op op, const cJSON *body, char *err, size_t errlen)
{
	const mk_field *fs;
	const cJSON *v;
	size_t n, i;

	if (!cJSON_IsObject(body)) {
		snprintf(err, errlen, "body must be a JSON object");
		return MK_E_VALIDATION;
	}
	fs = mk_op_fields(op, &n);
	for (v = body->child; v; v = v->next) {
		for (i = 0; i < n; i++)
			if (strcmp(fs[i].name, v->string) == 0)
				break;
		if (i == n) {
			snprintf(err, errlen, "unknown field '%.64s' for '%s'", v->string,
			         mk_op_name(op));
			return MK_E_VALIDATION;
		}
		if (cJSON_IsNull(v) && !fs[i].required)
			continue;
		if (check_field(&fs[i], v, err, errlen) != MK_OK)
			return MK_E_VALIDATION;
	}
	for (i = 0; i < n; i++) {
		v = cJSON_GetObjectItemCaseSensitive(body, fs[i].name);
		if (fs[i].required && (!v || cJSON_IsNull(v))) {
			snprintf(err, errlen, "missing field '%s'", fs[i].name);
			return MK_E_VALIDATION;
		}
	}
	return MK_OK;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);

	if (n >= cap)
		n = cap - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static mk_err decode_caller(const cJSON *c, mk_caller *out, char *err, size_t errlen)
{
	const char *uid, *role;

	memset(out, 0, sizeof(*out));
	if (!c || cJSON_IsNull(c))
		return MK_OK;
	uid = mk_json_str(c, "user_id");
	role = mk_json_str(c, "role");
	if (!cJSON_IsObject(c) || !uid || !role || strlen(uid) > MK_CALLER_MAX ||
	    strlen(role) >= sizeof(out->role)) {
		snprintf(err, errlen, "envelope field 'caller' must be {user_id, role}");
		return MK_E_BAD_REQUEST;
	}
	copy_str(out->user_id, sizeof(out->user_id), uid);
	copy_str(out->role, sizeof(out->role), role);
	return MK_OK;
}

mk_err mk_env_decode(const char *data, size_t len, int64_t now_ms, mk_env *env, char *err,
                     size_t errlen)
{
	cJSON *root;
	const char *s;
	long long n;
	mk_err e;

	memset(env, 0, sizeof(*env));
	root = mk_json_parse(data, len, MK_JSON_MAX_DEPTH, err, errlen);
	if (!root)
		return MK_E_BAD_REQUEST;
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "envelope must be a JSON object");
		e = MK_E_BAD_REQUEST;
		goto out;
	}
	s = mk_json_str(root, "id");
	if (s && mk_rid_valid(s))
		copy_str(env->rid, sizeof(env->rid), s);
	if (mk_json_int(root, "v", &n) != 0) {
		snprintf(err, errlen, "envelope field 'v' must be an integer");
		e = MK_E_BAD_REQUEST;
		goto out;
	}
	if (n != MK_PROTO_VERSION) {
		snprintf(err, errlen, "unsupported protocol version %lld (this service speaks %d)",
		         n, MK_PROTO_VERSION);
		e = MK_E_UNKNOWN_VERSION;
		goto out;
	}
	env->version = (int)n;
	if (!env->rid[0]) {
		snprintf(err, errlen, "envelope field 'id' must be 1 to %d of [A-Za-z0-9._:-]",
		         MK_RID_MAX);
		e = MK_E_BAD_REQUEST;
		goto out;
	}
	s = mk_json_str(root, "op");
	if (!s) {
		snprintf(err, errlen, "envelope field 'op' must be a string");
		e = MK_E_BAD_REQUEST;
		goto out;
	}
	if (mk_op_lookup(s, &env->op) != 0) {
		snprintf(err, errlen, "unknown operation '%.64s'", s);
		e = MK_E_UNKNOWN_OP;
		goto out;
	}
	if (cJSON_GetObjectItemCaseSensitive(root, "deadline")) {
		if (mk_json_int(root, "deadline", &n) != 0 || n < 0) {
			snprintf(err, errlen,
			         "envelope field 'deadline' must be unix milliseconds");
			e = MK_E_BAD_REQUEST;
			goto out;
		}
		env->deadline_ms = n;
		if (n && n <= now_ms) {
			snprintf(err, errlen, "deadline passed %lld ms ago",
			         (long long)(now_ms - n));
			e = MK_E_DEADLINE;
			goto out;
		}
	}
	e = decode_caller(cJSON_GetObjectItemCaseSensitive(root, "caller"), &env->caller, err,
	                  errlen);
	if (e != MK_OK)
		goto out;
	env->body = cJSON_GetObjectItemCaseSensitive(root, "body");
	if (!env->body) {
		env->body = cJSON_AddObjectToObject(root, "body");
		if (!env->body) {
			e = MK_E_INTERNAL;
			goto out;
		}
	}
	e = mk_body_check(env->op, env->body, err, errlen);
	if (e != MK_OK)
		goto out;
	env->root = root;
	return MK_OK;
out:
	cJSON_Delete(root);
	env->body = NULL;
	return e;
}

void mk_env_release(mk_env *env)
{
	cJSON_Delete(env->root);
	env->root = NULL;
	env->body = NULL;
}

/* Build {"v":1,"id":rid, ...} with body duplicated in; NULL on allocation failure. */
static cJSON *frame(const char *rid)
{
	cJSON *o = cJSON_CreateObject();

	if (!o || !cJSON_AddNumberToObject(o, "v", MK_PROTO_VERSION) ||
	    !cJSON_AddStringToObject(o, "id", rid ? rid : "")) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static char *finish(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;

	cJSON_Delete(o);
	return s;
}

static int add_body(cJSON *o, const cJSON *body)
{
	cJSON *b = body ? cJSON_Duplicate(body, 1) : cJSON_CreateObject();

	if (!b)
		return -1;
	if (!cJSON_AddItemToObject(o, "body", b)) {
		cJSON_Delete(b);
		return -1;
	}
	return 0;
}

char *mk_env_encode_request(mk_op op, const char *rid, int64_t deadline_ms, const mk_caller *caller,
                            const cJSON *body)
{
	cJSON *o = frame(rid), *c;

	if (!o)
		return NULL;
	if (!cJSON_AddStringToObject(o, "op", mk_op_name(op)) ||
	    !cJSON_AddNumberToObject(o, "deadline", (double)deadline_ms))
		goto fail;
	if (caller && caller->user_id[0]) {
		c = cJSON_AddObjectToObject(o, "caller");
		if (!c || !cJSON_AddStringToObject(c, "user_id", caller->user_id) ||
		    !cJSON_AddStringToObject(c, "role", caller->role))
			goto fail;
	} else if (!cJSON_AddNullToObject(o, "caller")) {
		goto fail;
	}
	if (add_body(o, body) != 0)
		goto fail;
	return finish(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

char *mk_env_encode_reply(const char *rid, const cJSON *body)
{
	char *b = body ? cJSON_PrintUnformatted(body) : NULL, *out;
	size_t n;

	if (body && !b)
		return NULL;
	/* Built as text in exactly this shape, body last, so a client may take
	 * the body's bytes without parsing them (see MK_REPLY_PREFIX_FMT). */
	n = strlen(MK_REPLY_PREFIX_FMT) + strlen(rid ? rid : "") + (b ? strlen(b) : 2) + 2;
	out = malloc(n);
	if (out)
		snprintf(out, n, MK_REPLY_PREFIX_FMT "%s}", rid ? rid : "", b ? b : "{}");
	cJSON_free(b);
	return out;
}

char *mk_env_encode_error_ex(const char *rid, mk_err e, const char *msg, const cJSON *extra)
{
	cJSON *o = frame(rid), *er;
	const cJSON *x;
	char text[512];

	/* Messages quote input; one cut inside a character must not make the reply invalid. */
	snprintf(text, sizeof(text), "%s", msg && *msg ? msg : mk_err_message(e));
	mk_utf8_clip(text);
	if (!o || !cJSON_AddFalseToObject(o, "ok"))
		goto fail;
	er = cJSON_AddObjectToObject(o, "error");
	if (!er || !cJSON_AddStringToObject(er, "code", mk_err_code(e)) ||
	    !cJSON_AddStringToObject(er, "message", text) ||
	    !cJSON_AddNumberToObject(er, "status", mk_err_status(e)))
		goto fail;
	for (x = cJSON_IsObject(extra) ? extra->child : NULL; x; x = x->next) {
		cJSON *dup;

		if (cJSON_GetObjectItemCaseSensitive(er, x->string))
			continue; /* code, message and status are not overridable */
		dup = cJSON_Duplicate(x, 1);
		if (!dup || !cJSON_AddItemToObject(er, x->string, dup)) {
			cJSON_Delete(dup);
			goto fail;
		}
	}
	return finish(o);
fail:
	cJSON_Delete(o);
	return NULL;
}

char *mk_env_encode_error(const char *rid, mk_err e, const char *msg)
{
	return mk_env_encode_error_ex(rid, e, msg, NULL);
}
