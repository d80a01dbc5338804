/*
 * gateway_auth.c - the /auth routes, which accept JSON and the OAuth2
 * password form so that standard OAuth2 clients work. The Bearer guard of
 * the /api/v1 routes is gateway_bearer.c; form decoding gateway_form.c.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "mk_json.h"
#include "mk_log.h"

/* Is the body an OAuth2-style form rather than JSON? curl -d sends JSON
 * with the form content type, so a body that starts with '{' is JSON. */
static int body_is_form(const gw_req *r)
{
	size_t i = 0;

	if (!gw_content_type_is(r, "application/x-www-form-urlencoded"))
		return 0;
	while (i < r->body_len && isspace((unsigned char)r->body[i]))
		i++;
	return i == r->body_len || r->body[i] != '{';
}

/* Parse the body as a JSON object, answering 400/422 on failure. */
static cJSON *json_body(gw_req *r)
{
	char perr[160], msg[200];
	cJSON *j;

	if (r->body_len == 0)
		return cJSON_CreateObject(); /* no body is an empty object, as on JSON routes */
	j = mk_json_parse(r->body, r->body_len, MK_JSON_MAX_DEPTH, perr, sizeof(perr));

	if (!j) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s", perr);
		gw_reply_error(r, MK_E_INVALID_JSON, msg);
		return NULL;
	}
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		gw_reply_error(r, MK_E_VALIDATION, "the request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* Copy form field `name` into obj as a string; answer 422 and return -1 when malformed. */
static int form_field(gw_req *r, cJSON *obj, const char *name, const char *as, size_t max,
                      int required)
{
	char *v = malloc(max + 1), msg[160];
	int rc = v ? gw_form_get(r->body, r->body_len, name, v, max + 1) : -1;

	if (rc < 0 || (rc == 0 && required)) {
		snprintf(msg, sizeof(msg),
		         rc < 0 ? "form field '%s' is malformed, repeated or too long"
		                : "missing form field '%s'",
		         name);
		gw_reply_error(r, MK_E_VALIDATION, msg);
		free(v);
		return -1;
	}
	if (rc == 1 && mk_utf8_valid_prefix((const unsigned char *)v, strlen(v)) != strlen(v)) {
		snprintf(msg, sizeof(msg), "form field '%s' is not valid UTF-8", name);
		gw_reply_error(r, MK_E_VALIDATION, msg);
		memset(v, 0, max + 1);
		free(v);
		return -1;
	}
	if (rc == 1)
		cJSON_AddStringToObject(obj, as, v);
	if (v)
		memset(v, 0, max + 1); /* may be a password */
	free(v);
	return 0;
}

/* The OAuth2 grant_type, when given, must be the one this route serves. */
static int check_grant(gw_req *r, const char *want)
{
	char g[64], msg[160];
	int rc = gw_form_get(r->body, r->body_len, "grant_type", g, sizeof(g));

	if (rc == 0 || (rc == 1 && strcmp(g, want) == 0))
		return 0;
	snprintf(msg, sizeof(msg), "unsupported grant_type (this endpoint takes '%s')", want);
	gw_reply_error(r, MK_E_VALIDATION, msg);
	return -1;
}

static void client_ip(const gw_req *r, char *out, size_t outlen)
{
	const char *xff =
	    r->gw->cfg->trust_forwarded_for ? mg_get_header(r->conn, "X-Forwarded-For") : NULL;
	size_t n;

	if (xff) {
		while (*xff == ' ')
			xff++;
		n = strspn(xff, "0123456789abcdefABCDEF.:");
		if (n > 0 && n < outlen) {
			memcpy(out, xff, n);
			out[n] = '\0';
			return;
		}
	}
	snprintf(out, outlen, "%s", r->ri->remote_addr);
}

void gw_auth_signup(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNUP, r->json, 201);
}

void gw_auth_signin(gw_req *r)
{
	cJSON *body;
	char ip[64];

	if (body_is_form(r)) {
		body = cJSON_CreateObject();
		if (check_grant(r, "password") != 0 ||
		    form_field(r, body, "username", "email", 1024, 1) != 0 ||
		    form_field(r, body, "password", "password", 1024, 1) != 0) {
			cJSON_Delete(body);
			return;
		}
	} else if (!(body = json_body(r))) {
		return;
	}
	client_ip(r, ip, sizeof(ip));
	cJSON_DeleteItemFromObjectCaseSensitive(body, "client_ip");
	cJSON_AddStringToObject(body, "client_ip", ip);
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNIN, body, 200);
	cJSON_Delete(body);
}

void gw_auth_refresh(gw_req *r)
{
	cJSON *body;

	if (body_is_form(r)) {
		body = cJSON_CreateObject();
		if (check_grant(r, "refresh_token") != 0 ||
		    form_field(r, body, "refresh_token", "refresh_token", 512, 1) != 0) {
			cJSON_Delete(body);
			return;
		}
	} else if (!(body = json_body(r))) {
		return;
	}
	gw_forward(r, GW_AUTH, MK_OP_AUTH_REFRESH, body, 200);
	cJSON_Delete(body);
}

void gw_auth_signout(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_SIGNOUT, r->json, 204);
}

void gw_auth_me(gw_req *r)
{
	gw_forward(r, GW_AUTH, MK_OP_AUTH_ME, NULL, 200);
}
