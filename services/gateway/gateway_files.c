/*
 * gateway_files.c - the /api/v1/files routes: uploads of files to analyse.
 *
 * POST reads its own multipart/form-data body (one part `file` with a
 * filename, an optional `name` field), capped at GATEWAY_UPLOAD_MAX from
 * Content-Length and while reading, and forwards the file's bytes as
 * base64 to the executor, which owns uploads and decides their kind from
 * their content. Listing, reading and deleting forward the caller's request
 * as is. The gateway never looks inside a file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "mk_b64.h"
#include "mk_buf.h"
#include "mk_json.h"

/* Room for the multipart framing around the file: boundaries, part headers, `name`. */
#define FORM_SLACK   (64 * 1024)
#define FORM_HEADERS 8192 /* the headers of one part */
#define FORM_PARTS   8
#define NAME_MAX_LEN 255

/* One part of a multipart/form-data body; data points into the body. */
typedef struct {
	char name[64];
	char filename[1024];
	int has_filename;
	const char *data;
	size_t len;
} form_part;

/* The boundary parameter of a multipart Content-Type (quoted or not), 1-70 characters. */
static int boundary_of(const char *ct, char *out, size_t outlen)
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

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* An RFC 5987 value (UTF-8''percent-encoded) decoded in place; -1 when it is not one. */
static int ext_value(char *v)
{
	char *in, *out;

	if (strncasecmp(v, "UTF-8''", 7) != 0)
		return -1;
	for (in = v + 7, out = v; *in; in++) {
		if (*in == '%') {
			int hi = hexval(in[1]), lo = hi < 0 ? -1 : hexval(in[2]);

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
static int disposition(const char *v, const char *end, form_part *part)
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
static int form_parse(const char *body, size_t len, const char *boundary, form_part *parts, int max,
                      char *err, size_t errlen)
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
		form_part *part;

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
static const char *base_name(const char *s)
{
	const char *b = s;

	for (; *s; s++)
		if (*s == '/' || *s == '\\')
			b = s + 1;
	return b;
}

/* Call op and answer the reply's `file` (an upload's metadata) with ok_status. */
static void call_file(gw_req *r, mk_op op, const cJSON *body, int ok_status)
{
	mk_rpc_result res;

	mk_rpc_call(r->gw->svc[GW_EXECUTOR], op, r->rid, &r->caller, body,
	            (int)r->gw->cfg->rpc_timeout_ms, &res);
	if (res.err == MK_OK)
		gw_reply_json(r, ok_status, cJSON_GetObjectItemCaseSensitive(res.body, "file"),
		              NULL);
	else
		gw_reply_rpc_error(r, &res);
	mk_rpc_result_release(&res);
}

void gw_files_upload(gw_req *r)
{
	const long long max = r->gw->cfg->upload_max;
	const char *ct = mg_get_header(r->conn, "Content-Type");
	form_part parts[FORM_PARTS];
	const form_part *file = NULL, *name = NULL;
	char boundary[72], err[160], msg[320], too_large[128], display[NAME_MAX_LEN + 1];
	cJSON *b;
	char *b64;
	int n, i;

	/* Refusals before the body is read leave it unread: the connection closes. */
	if (!gw_content_type_is(r, "multipart/form-data")) {
		gw_reply_error_ex(r, MK_E_UNSUPPORTED_MEDIA,
		                  "upload a file as multipart/form-data (a part named 'file')",
		                  "Connection: close\r\n", NULL);
		return;
	}
	if (boundary_of(ct, boundary, sizeof(boundary)) != 0) {
		gw_reply_error_ex(r, MK_E_BAD_REQUEST,
		                  "the multipart Content-Type has no valid boundary",
		                  "Connection: close\r\n", NULL);
		return;
	}
	snprintf(too_large, sizeof(too_large), "the file exceeds GATEWAY_UPLOAD_MAX (%lld bytes)",
	         max);
	if (gw_read_body_or_reply(r, (size_t)(max + FORM_SLACK), too_large) != 0)
		return;
	n = form_parse(r->body, r->body_len, boundary, parts, FORM_PARTS, err, sizeof(err));
	if (n < 0) {
		snprintf(msg, sizeof(msg), "malformed multipart body: %s", err);
		gw_reply_error(r, MK_E_BAD_REQUEST, msg);
		return;
	}
	for (i = 0; i < n; i++) {
		const form_part **slot = strcmp(parts[i].name, "file") == 0   ? &file
		                         : strcmp(parts[i].name, "name") == 0 ? &name
		                                                              : NULL;

		if (!slot) {
			snprintf(
			    msg, sizeof(msg),
			    "unknown form field '%.64s' (expected 'file' and optionally 'name')",
			    parts[i].name);
			gw_reply_error(r, MK_E_VALIDATION, msg);
			return;
		}
		if (*slot) {
			snprintf(msg, sizeof(msg), "the form has more than one '%.64s'",
			         parts[i].name);
			gw_reply_error(r, MK_E_VALIDATION, msg);
			return;
		}
		*slot = &parts[i];
	}
	if (!file || !file->has_filename || !*base_name(file->filename)) {
		gw_reply_error(r, MK_E_VALIDATION,
		               "the form has no file: send one part named 'file' with a filename");
		return;
	}
	if ((long long)file->len > max) {
		gw_reply_error(r, MK_E_TOO_LARGE, too_large);
		return;
	}
	if (name && name->len > 0) {
		if (name->len > NAME_MAX_LEN || memchr(name->data, '\0', name->len) ||
		    mk_utf8_valid_prefix((const unsigned char *)name->data, name->len) !=
		        name->len) {
			gw_reply_error(r, MK_E_VALIDATION,
			               "'name' must be UTF-8 text of at most 255 bytes");
			return;
		}
		memcpy(display, name->data, name->len);
		display[name->len] = '\0';
	} else {
		const char *f = base_name(file->filename);
		size_t fl = strlen(f);

		if (fl > NAME_MAX_LEN || mk_utf8_valid_prefix((const unsigned char *)f, fl) != fl) {
			gw_reply_error(r, MK_E_VALIDATION,
			               "the filename must be UTF-8 text of at most 255 bytes");
			return;
		}
		snprintf(display, sizeof(display), "%s", f);
	}
	if (file->len == 0) {
		snprintf(msg, sizeof(msg), "'%s' is empty", display);
		gw_reply_error(r, MK_E_VALIDATION, msg);
		return;
	}
	b64 = mk_b64_encode(file->data, file->len);
	/* The body is not needed past here; at the size of uploads, memory is worth it. */
	free(r->body);
	r->body = NULL;
	b = cJSON_CreateObject();
	if (!b64 || !b || !cJSON_AddStringToObject(b, "name", display) ||
	    !cJSON_AddItemToObject(b, "data_b64", cJSON_CreateStringReference(b64))) {
		gw_reply_error(r, MK_E_INTERNAL, "out of memory");
	} else {
		call_file(r, MK_OP_EXEC_UPLOAD, b, 201);
	}
	cJSON_Delete(b);
	free(b64);
}

void gw_files_list(gw_req *r)
{
	cJSON *b = cJSON_CreateObject();

	if (gw_page_query(r, b) == 0)
		gw_forward(r, GW_EXECUTOR, MK_OP_EXEC_UPLOADS, b, 200);
	cJSON_Delete(b);
}

/* A body holding the path's {id} as file_id. */
static cJSON *with_file_id(gw_req *r)
{
	cJSON *b = cJSON_CreateObject();

	cJSON_AddStringToObject(b, "file_id", r->params[0]);
	return b;
}

void gw_files_get(gw_req *r)
{
	cJSON *b = with_file_id(r);

	call_file(r, MK_OP_EXEC_UPLOAD_GET, b, 200);
	cJSON_Delete(b);
}

void gw_files_delete(gw_req *r)
{
	cJSON *b = with_file_id(r);

	gw_forward(r, GW_EXECUTOR, MK_OP_EXEC_UPLOAD_DELETE, b, 204);
	cJSON_Delete(b);
}
