/*
 * auth_users.c - sign-up, sign-in and "who am I".
 *
 * Sign-in answers the same 401, after the same work, whether the email is
 * unknown or the password wrong: an unknown email is verified against a
 * dummy hash made with the same parameters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "mk_log.h"

#define USER_COLS                                                                                  \
	"id, email, name, role, "                                                                  \
	"to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* {id, email, name, role, created_at} from columns 0..4 of row 0. */
static cJSON *user_json(const PGresult *r)
{
	cJSON *u = cJSON_CreateObject();

	if (!u)
		return NULL;
	cJSON_AddStringToObject(u, "id", PQgetvalue(r, 0, 0));
	cJSON_AddStringToObject(u, "email", PQgetvalue(r, 0, 1));
	cJSON_AddStringToObject(u, "name", PQgetvalue(r, 0, 2));
	cJSON_AddStringToObject(u, "role", PQgetvalue(r, 0, 3));
	cJSON_AddStringToObject(u, "created_at", PQgetvalue(r, 0, 4));
	return u;
}

/* Trim a display name and reject control characters. */
static int clean_name(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
	size_t n;

	while (*in == ' ' || *in == '\t')
		in++;
	n = strlen(in);
	while (n && (in[n - 1] == ' ' || in[n - 1] == '\t'))
		n--;
	if (n >= outlen) {
		snprintf(err, errlen, "name must be at most %zu bytes", outlen - 1);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)in[i] < 0x20 || in[i] == 0x7f) {
			snprintf(err, errlen, "name contains a control character");
			return -1;
		}
	}
	memcpy(out, in, n);
	out[n] = '\0';
	return 0;
}

mk_err auth_signup(AUTH_HANDLER_ARGS)
{
	const char *pw = mk_json_str(req->body, "password");
	const char *name_in = mk_json_str(req->body, "name");
	char email[256], name[201], state[6] = "";
	const char *p[4];
	PGresult *r;
	PGconn *c;
	char *hash;

	if (auth_email_normalize(mk_json_str(req->body, "email"), email, sizeof(email), err,
	                         errlen) != 0 ||
	    auth_password_check(pw, err, errlen) != 0 ||
	    clean_name(name_in ? name_in : "", name, sizeof(name), err, errlen) != 0)
		return MK_E_VALIDATION;
	hash = auth_password_hash(a, pw, req->deadline_ms, err, errlen);
	if (!hash)
		return MK_E_UNAVAILABLE;
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c) {
		free(hash);
		return MK_E_DB;
	}
	p[0] = email;
	p[1] = name;
	p[2] = hash;
	/* Every account starts as a user: only an operator grants admin (auth_admin_cli). */
	r = mk_db_exec(c,
	               "INSERT INTO users (email, name, password_hash) VALUES ($1, $2, $3) "
	               "RETURNING " USER_COLS,
	               3, p, err, errlen, state);
	mk_db_release(a->svc.db, c);
	sodium_memzero(hash, strlen(hash));
	free(hash);
	if (!r) {
		if (strcmp(state, "23505") == 0) {
			snprintf(err, errlen, "an account with this email already exists");
			return MK_E_CONFLICT;
		}
		return MK_E_DB;
	}
	*reply = user_json(r);
	PQclear(r);
	MK_INFO("AUTH-SIGNUP", req->rid, "new account %s", mk_json_str(*reply, "id"));
	return MK_OK;
}

/* Replace a hash made with weaker parameters; best effort. */
static void refresh_user(auth *a, PGconn *c, const char *id, const char *pw, const char *hash,
                         const mk_env *req)
{
	char err[256], *nh = NULL;
	const char *p[2] = {id, NULL};
	PGresult *r;

	if (auth_password_needs_rehash(a, hash))
		nh = auth_password_hash(a, pw, req->deadline_ms, err, sizeof(err));
	if (!nh)
		return;
	p[1] = nh;
	r = mk_db_exec(c, "UPDATE users SET password_hash = $2, updated_at = now() WHERE id = $1",
	               2, p, err, sizeof(err), NULL);
	if (!r)
		MK_WARN("AUTH-USER-UPDATE", req->rid, "cannot update user: %s", err);
	else if (nh)
		MK_INFO("AUTH-REHASH", req->rid, "password hash upgraded for %s", id);
	PQclear(r);
	if (nh) {
		sodium_memzero(nh, strlen(nh));
		free(nh);
	}
}

mk_err auth_signin(AUTH_HANDLER_ARGS)
{
	const char *pw = mk_json_str(req->body, "password");
	const char *ip = mk_json_str(req->body, "client_ip");
	char email[256], id[64] = "", role[16] = "", hash[crypto_pwhash_STRBYTES] = "",
	                 norm_err[128];
	const char *p[1] = {email};
	PGresult *r;
	PGconn *c;
	long wait;
	int ok;

	if (!ip || !*ip)
		ip = "unknown";
	/* A malformed email cannot have an account: same answer as a wrong one. */
	if (auth_email_normalize(mk_json_str(req->body, "email"), email, sizeof(email), norm_err,
	                         sizeof(norm_err)) != 0)
		snprintf(email, sizeof(email), "%.200s", mk_json_str(req->body, "email"));
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	wait = auth_throttle_check(a, c, email, ip, err, errlen);
	if (wait != 0) {
		mk_db_release(a->svc.db, c);
		if (wait < 0)
			return MK_E_DB;
		snprintf(err, errlen, "too many failed sign-ins; try again in %ld s", wait);
		*reply = cJSON_CreateObject();
		cJSON_AddNumberToObject(*reply, "retry_after", (double)wait);
		return MK_E_RATE_LIMITED;
	}
	r = mk_db_exec_prep(c, "SELECT id, password_hash, role FROM users WHERE email = $1", 1, p,
	                    err, errlen, NULL);
	if (!r) {
		mk_db_release(a->svc.db, c);
		return MK_E_DB;
	}
	if (PQntuples(r) == 1) {
		snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
		snprintf(hash, sizeof(hash), "%s", PQgetvalue(r, 0, 1));
		snprintf(role, sizeof(role), "%s", PQgetvalue(r, 0, 2));
	}
	PQclear(r);
	/* Hold no connection during the slow hash. */
	mk_db_release(a->svc.db, c);
	ok = auth_password_verify(a, id[0] ? hash : a->dummy_hash, pw, req->deadline_ms);
	if (ok < 0) {
		snprintf(err, errlen, "too many sign-ins at once; try again");
		return MK_E_UNAVAILABLE;
	}
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	if (!ok || !id[0]) {
		auth_throttle_fail(a, c, email, ip);
		mk_db_release(a->svc.db, c);
		MK_INFO("AUTH-LOGIN-FAIL", req->rid, "failed sign-in");
		return MK_E_INVALID_CREDENTIALS;
	}
	auth_throttle_success(a, c, email, ip);
	refresh_user(a, c, id, pw, hash, req);
	*reply = auth_tokens_issue(a, c, id, email, role, NULL, err, errlen);
	mk_db_release(a->svc.db, c);
	sodium_memzero(hash, sizeof(hash));
	if (!*reply)
		return MK_E_DB;
	MK_INFO("AUTH-LOGIN", req->rid, "sign-in of %s", id);
	return MK_OK;
}

mk_err auth_me(AUTH_HANDLER_ARGS)
{
	const char *p[1] = {req->caller.user_id};
	PGresult *r;
	PGconn *c;

	if (!req->caller.user_id[0]) {
		snprintf(err, errlen, "no authenticated caller");
		return MK_E_UNAUTHENTICATED;
	}
	if (strlen(req->caller.user_id) != 36 ||
	    strspn(req->caller.user_id, "0123456789abcdefABCDEF-") != 36) {
		snprintf(err, errlen, "the account of this token no longer exists");
		return MK_E_INVALID_TOKEN;
	}
	c = mk_svc_db_acquire(&a->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	r = mk_db_exec_prep(c, "SELECT " USER_COLS " FROM users WHERE id = $1::uuid", 1, p, err,
	                    errlen, NULL);
	mk_db_release(a->svc.db, c);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		snprintf(err, errlen, "the account of this token no longer exists");
		return MK_E_INVALID_TOKEN;
	}
	*reply = user_json(r);
	PQclear(r);
	return MK_OK;
}
