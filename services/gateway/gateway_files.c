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
#define FORM_PARTS   8
#define NAME_MAX_LEN 255

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
	gw_form_part parts[FORM_PARTS];
	const gw_form_part *file = NULL, *name = NULL;
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
	if (gw_multipart_boundary(ct, boundary, sizeof(boundary)) != 0) {
		gw_reply_error_ex(r, MK_E_BAD_REQUEST,
		                  "the multipart Content-Type has no valid boundary",
		                  "Connection: close\r\n", NULL);
		return;
	}
	snprintf(too_large, sizeof(too_large), "the file exceeds GATEWAY_UPLOAD_MAX (%lld bytes)",
	         max);
	if (gw_read_body_or_reply(r, (size_t)(max + FORM_SLACK), too_large) != 0)
		return;
	n = gw_multipart_parse(r->body, r->body_len, boundary, parts, FORM_PARTS, err, sizeof(err));
	if (n < 0) {
		snprintf(msg, sizeof(msg), "malformed multipart body: %s", err);
		gw_reply_error(r, MK_E_BAD_REQUEST, msg);
		return;
	}
	for (i = 0; i < n; i++) {
		const gw_form_part **slot = strcmp(parts[i].name, "file") == 0   ? &file
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
	if (!file || !file->has_filename || !*gw_multipart_base_name(file->filename)) {
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
		const char *f = gw_multipart_base_name(file->filename);
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
