/*
 * gateway_artifacts.c - GET /api/v1/artifacts/{id}: the bytes of a file or
 * image that code produced, fetched from the executor (exec.artifact) as
 * the caller, so another user's artifact answers 404 like a missing one.
 *
 * Artifacts are written by model-generated code, so they are untrusted
 * content served from the API's own origin. Every answer carries
 * `Content-Security-Policy: sandbox` and nosniff; only types a browser
 * shows passively (raster images, plain text, CSV, JSON, PDF) are inline,
 * anything else (HTML, SVG, XHTML, unknown types) is an attachment.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "mk_b64.h"
#include "mk_json.h"

#define ARTIFACT_CACHE "private, max-age=3600"

static int uuid_ok(const char *s)
{
	size_t i;

	if (strlen(s) != 36)
		return 0;
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return 0;
		} else if (!isxdigit((unsigned char)s[i])) {
			return 0;
		}
	}
	return 1;
}

/* A media type made only of token characters ("type/subtype"); else a neutral one. */
static const char *safe_mime(const char *m)
{
	size_t n = m ? strlen(m) : 0, i;

	if (n == 0 || n > 127 || !strchr(m, '/'))
		return "application/octet-stream";
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)m[i]) && !strchr("!#$&^_.+-/", m[i]))
			return "application/octet-stream";
	return m;
}

/* Can a browser show this type without running anything in it? */
static int passive(const char *mime)
{
	static const char *const t[] = {
	    "image/png", "image/jpeg", "image/gif",        "image/webp",
	    "text/csv",  "text/plain", "application/json", "application/pdf",
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (strcasecmp(mime, t[i]) == 0)
			return 1;
	return 0;
}

/*
 * The last path segment of name, with only [A-Za-z0-9._-] kept (others
 * become '_'), no leading dots, at most outlen - 1 bytes; "artifact" when
 * nothing is left. Safe inside a quoted header parameter.
 */
static void safe_filename(const char *name, char *out, size_t outlen)
{
	const char *base = name ? strrchr(name, '/') : NULL;
	size_t n = 0;

	base = base ? base + 1 : (name ? name : "");
	while (*base == '.')
		base++;
	for (; *base && n + 1 < outlen; base++) {
		unsigned char ch = (unsigned char)*base;

		out[n++] = isalnum(ch) || ch == '.' || ch == '_' || ch == '-' ? (char)ch : '_';
	}
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "artifact");
}

void gw_artifacts_get(gw_req *r)
{
	const char *id = r->params[0];
	cJSON *b;
	mk_rpc_result res;
	const char *data, *mime;
	unsigned char *bytes = NULL;
	char fname[128], hdr[320];
	size_t len = 0;

	/* Only a UUID names an artifact; anything else is simply not there. */
	if (!uuid_ok(id)) {
		gw_reply_error(r, MK_E_NOT_FOUND, "artifact not found");
		return;
	}
	b = cJSON_CreateObject();
	if (!b || !cJSON_AddStringToObject(b, "artifact_id", id)) {
		cJSON_Delete(b);
		gw_reply_error(r, MK_E_INTERNAL, NULL);
		return;
	}
	mk_rpc_call(r->gw->svc[GW_EXECUTOR], MK_OP_EXEC_ARTIFACT, r->rid, &r->caller, b,
	            (int)r->gw->cfg->rpc_timeout_ms, &res);
	cJSON_Delete(b);
	if (res.err != MK_OK) {
		if (res.err == MK_E_NOT_FOUND)
			gw_reply_error(r, MK_E_NOT_FOUND, "artifact not found");
		else
			gw_reply_rpc_error(r, &res);
		goto out;
	}
	data = mk_json_str(res.body, "data_b64");
	if (!data || !(bytes = mk_b64_decode(data, strlen(data), &len))) {
		gw_reply_error(r, MK_E_INTERNAL,
		               "the executor sent an artifact that is not base64");
		goto out;
	}
	mime = safe_mime(mk_json_str(res.body, "mime"));
	safe_filename(mk_json_str(res.body, "name"), fname, sizeof(fname));
	snprintf(hdr, sizeof(hdr),
	         "Content-Disposition: %s; filename=\"%s\"\r\n"
	         "Content-Security-Policy: sandbox\r\n",
	         passive(mime) ? "inline" : "attachment", fname);
	gw_reply_bytes(r, 200, mime, bytes, len, ARTIFACT_CACHE, hdr);
out:
	free(bytes);
	mk_rpc_result_release(&res);
}
