/*
 * auth_test.c - accounts, sign-in and tokens through the gateway, with the
 * real auth service and Postgres: the flows a user and an OAuth2 client go
 * through, the admin role, refresh rotation with reuse detection, lockouts
 * that an attacker elsewhere cannot impose, key rotation, and hash
 * upgrades.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mk_jwt.h"
#include "mt.h"
#include "mt_check.h"

/* Sized for a loaded host running the sanitizer build: a process exiting, the stack ready. */
#define STOP_MS       60000
#define READY_WAIT_MS 90000

static mt_stack st;
static const char *const stack_env[] = {"GATEWAY_TRUST_FORWARDED_FOR=true", NULL};

static void stack_up(void)
{
	if (mt_stack_start(&st, stack_env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* A unique email per call. */
static const char *fresh_email(const char *tag)
{
	static char buf[8][128];
	static int n;
	char *b = buf[n++ % 8];

	snprintf(b, 128, "%s-%d-%d@example.com", tag, (int)getpid(), n);
	return b;
}

static long post_json(const char *path, const char *json, const char *ip, mt_resp *r)
{
	char xff[80];
	const char *h[3] = {"Content-Type: application/json", NULL, NULL};

	if (ip) {
		snprintf(xff, sizeof(xff), "X-Forwarded-For: %s", ip);
		h[1] = xff;
	}
	mt_http("POST", mt_url(&st, path), h, json, strlen(json), r);
	return r->status;
}

static long signup(const char *email, const char *pw)
{
	char body[512];
	mt_resp r;
	long s;

	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\",\"name\":\"T\"}", email,
	         pw);
	s = post_json("/auth/signup", body, NULL, &r);
	mt_resp_release(&r);
	return s;
}

static long signin(const char *email, const char *pw, const char *ip, mt_resp *r)
{
	char body[512];

	snprintf(body, sizeof(body), "{\"email\":\"%s\",\"password\":\"%s\"}", email, pw);
	return post_json("/auth/signin", body, ip, r);
}

static long me(const char *token, mt_resp *r)
{
	char auth[2048];
	const char *h[] = {auth, NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
	mt_http("GET", mt_url(&st, "/auth/me"), h, NULL, 0, r);
	return r->status;
}

START_TEST(test_signup_normalises_the_email_and_answers_201_with_the_account)
{
	char body[256];
	mt_resp r;

	snprintf(body, sizeof(body),
	         "{\"email\":\"  Mixed.Case-%d@Example.COM \",\"password\":\"long "
	         "enough\",\"name\":\"Ada\"}",
	         (int)getpid());
	ck_assert_int_eq(post_json("/auth/signup", body, NULL, &r), 201);
	snprintf(body, sizeof(body), "mixed.case-%d@example.com", (int)getpid());
	ck_assert_str_eq(mk_json_str(r.json, "email"), body);
	ck_assert_str_eq(mk_json_str(r.json, "name"), "Ada");
	ck_assert_str_eq(mk_json_str(r.json, "role"), "user");
	ck_assert_uint_eq(strlen(mk_json_str(r.json, "id")), 36);
	ck_assert_ptr_nonnull(mk_json_str(r.json, "created_at"));
	ck_assert_ptr_null(cJSON_GetObjectItem(r.json, "password_hash"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_a_taken_email_is_409_whatever_its_case)
{
	const char *e = fresh_email("taken");
	char upper[128];
	size_t i;

	ck_assert_int_eq(signup(e, "password1"), 201);
	for (i = 0; e[i]; i++)
		upper[i] = (char)(e[i] >= 'a' && e[i] <= 'z' ? e[i] - 32 : e[i]);
	upper[i] = '\0';
	ck_assert_int_eq(signup(upper, "password2"), 409);
}
END_TEST

START_TEST(test_signin_returns_a_bearer_pair_that_opens_auth_me)
{
	const char *e = fresh_email("signin");
	long long expires;
	mt_resp r, m;

	ck_assert_int_eq(signup(e, "s3cret-pass"), 201);
	ck_assert_int_eq(signin(e, "s3cret-pass", NULL, &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "token_type"), "bearer");
	ck_assert_int_eq(mk_json_int(r.json, "expires_in", &expires), 0);
	ck_assert_int_eq(expires, 900);
	ck_assert_ptr_nonnull(mk_json_str(r.json, "refresh_token"));
	ck_assert_int_eq(me(mk_json_str(r.json, "access_token"), &m), 200);
	ck_assert_str_eq(mk_json_str(m.json, "email"), e);
	ck_assert_str_eq(mk_json_str(m.json, "role"), "user");
	mt_resp_release(&m);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_an_oauth2_password_form_signs_in)
{
	const char *e = fresh_email("form");
	const char *h[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
	char form[256];
	mt_resp r;

	ck_assert_int_eq(signup(e, "pass word+1"), 201);
	/* '+' is a space in forms; %2B is a literal '+'. */
	snprintf(form, sizeof(form),
	         "grant_type=password&username=%s&password=pass+word%%2B1&scope=", e);
	mt_http("POST", mt_url(&st, "/auth/signin"), h, form, strlen(form), &r);
	ck_assert_int_eq(r.status, 200);
	ck_assert_str_eq(mk_json_str(r.json, "token_type"), "bearer");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_unknown_email_and_wrong_password_get_the_same_answer)
{
	const char *e = fresh_email("same");
	mt_resp a, b;

	ck_assert_int_eq(signup(e, "right-password"), 201);
	ck_assert_int_eq(signin(e, "wrong-password", "10.9.0.1", &a), 401);
	ck_assert_int_eq(signin(fresh_email("nobody"), "wrong-password", "10.9.0.1", &b), 401);
	ck_assert_str_eq(mt_error_code(&a), "invalid_credentials");
	ck_assert_str_eq(mt_error_code(&b), "invalid_credentials");
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(a.json, "error"), "message"),
	                 mk_json_str(cJSON_GetObjectItem(b.json, "error"), "message"));
	mt_resp_release(&a);
	mt_resp_release(&b);
}
END_TEST

/* The role in an access token (sign-in or refresh reply). */
static void token_role(const mt_resp *r, char *role, size_t len)
{
	mk_jwt_claims c;
	mk_jwt_key *k;
	char err[128];

	k = mk_jwt_key_load(st.key_pub, err, sizeof(err));
	ck_assert_msg(k != NULL, "%s", err);
	ck_assert_int_eq(mk_jwt_verify(mk_json_str(r->json, "access_token"),
	                               (const mk_jwt_key *const *)&k, 1, "mark", "mark-api",
	                               time(NULL), 0, &c, err, sizeof(err)),
	                 0);
	snprintf(role, len, "%s", c.role);
	mk_jwt_key_free(k);
}

/* mark-auth --grant-admin / --revoke-admin EMAIL against the stack's database; its exit status. */
static int operator_sets(const char *flag, const char *email, char **out)
{
	char db[600];
	const char *args[] = {flag, email, NULL}, *env[] = {db, NULL};

	snprintf(db, sizeof(db), "AUTH_DATABASE_URL=%s", mt_dsn());
	return mt_run("mark-auth", args, env, out);
}

START_TEST(test_admin_comes_from_an_operator_never_from_an_email)
{
	char email[96], role[16], *out = NULL, *n;
	mt_resp r;

	snprintf(email, sizeof(email), "boss-%d@example.com", (int)getpid());
	/* Signing up with any address gives a user, admin-looking or not. */
	ck_assert_int_eq(signup(email, "boss-password"), 201);
	ck_assert_int_eq(signin(email, "boss-password", NULL, &r), 200);
	token_role(&r, role, sizeof(role));
	ck_assert_str_eq(role, "user");
	mt_resp_release(&r);
	/* An operator grants it; the next sign-in carries it. */
	ck_assert_int_eq(operator_sets("--grant-admin", email, &out), 0);
	ck_assert_msg(strstr(out, "is now an admin") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(signin(email, "boss-password", NULL, &r), 200);
	token_role(&r, role, sizeof(role));
	ck_assert_str_eq(role, "admin");
	mt_resp_release(&r);
	/* Only accounts that exist; every change is recorded. */
	ck_assert_int_eq(operator_sets("--grant-admin", "nobody-at-all@example.com", &out), 1);
	ck_assert_msg(strstr(out, "must sign up first") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(operator_sets("--revoke-admin", email, &out), 0);
	free(out);
	ck_assert_int_eq(signin(email, "boss-password", NULL, &r), 200);
	token_role(&r, role, sizeof(role));
	ck_assert_str_eq(role, "user");
	mt_resp_release(&r);
	{
		PGconn *c = PQconnectdb(mt_dsn());
		const char *p[1] = {email};
		PGresult *q = PQexecParams(c,
		                           "SELECT string_agg(role || ' by ' || changed_by, '; ' "
		                           "ORDER BY id) FROM auth.role_changes WHERE email = $1",
		                           1, NULL, p, NULL, NULL, 0);

		ck_assert_int_eq(PQresultStatus(q), PGRES_TUPLES_OK);
		n = PQgetvalue(q, 0, 0);
		ck_assert_msg(strstr(n, "admin by operator: mark-auth --grant-admin") == n &&
		                  strstr(n, "; user by operator: mark-auth --revoke-admin"),
		              "recorded: %s", n);
		PQclear(q);
		PQfinish(c);
	}
}
END_TEST

static long refresh(const char *token, mt_resp *r)
{
	char body[256];

	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", token);
	return post_json("/auth/refresh", body, NULL, r);
}

START_TEST(test_refresh_rotates_and_a_reused_token_revokes_its_family)
{
	const char *e = fresh_email("rot");
	char a[128], b[128];
	mt_resp r, r2;

	ck_assert_int_eq(signup(e, "rotate-me"), 201);
	ck_assert_int_eq(signin(e, "rotate-me", NULL, &r), 200);
	snprintf(a, sizeof(a), "%s", mk_json_str(r.json, "refresh_token"));
	mt_resp_release(&r);

	ck_assert_int_eq(refresh(a, &r), 200);
	snprintf(b, sizeof(b), "%s", mk_json_str(r.json, "refresh_token"));
	ck_assert_str_ne(a, b);
	ck_assert_int_eq(me(mk_json_str(r.json, "access_token"), &r2), 200);
	mt_resp_release(&r2);
	mt_resp_release(&r);

	/* A copied token comes back: the whole family is revoked. */
	ck_assert_int_eq(refresh(a, &r), 401);
	ck_assert_str_eq(mt_error_code(&r), "invalid_token");
	mt_resp_release(&r);
	ck_assert_int_eq(refresh(b, &r), 401);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_signout_revokes_the_refresh_token)
{
	const char *e = fresh_email("out");
	char body[256], tok[128];
	mt_resp r;

	ck_assert_int_eq(signup(e, "sign-me-out"), 201);
	ck_assert_int_eq(signin(e, "sign-me-out", NULL, &r), 200);
	snprintf(tok, sizeof(tok), "%s", mk_json_str(r.json, "refresh_token"));
	mt_resp_release(&r);
	snprintf(body, sizeof(body), "{\"refresh_token\":\"%s\"}", tok);
	ck_assert_int_eq(post_json("/auth/signout", body, NULL, &r), 204);
	ck_assert_uint_eq(r.len, 0);
	mt_resp_release(&r);
	ck_assert_int_eq(refresh(tok, &r), 401);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_failed_signins_lock_that_address_but_not_the_user_elsewhere)
{
	const char *e = fresh_email("lock");
	char *after;
	mt_resp r;
	int i;

	ck_assert_int_eq(signup(e, "the-real-one"), 201);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(signin(e, "guess", "10.66.6.6", &r), 401);
		mt_resp_release(&r);
	}
	/* Locked for the attacker's address, even with the right password. */
	ck_assert_int_eq(signin(e, "the-real-one", "10.66.6.6", &r), 429);
	ck_assert_str_eq(mt_error_code(&r), "rate_limited");
	after = mt_header(&r, "Retry-After");
	ck_assert_ptr_nonnull(after);
	ck_assert_int_gt(atoi(after), 0);
	free(after);
	mt_resp_release(&r);
	/* The user, from their own address, is not locked out. */
	ck_assert_int_eq(signin(e, "the-real-one", "192.0.2.10", &r), 200);
	mt_resp_release(&r);
}
END_TEST

/* The hash stored for an email, read from auth's own table. */
static char *stored_hash(const char *email)
{
	PGconn *c = PQconnectdb(mt_dsn());
	const char *p[1] = {email};
	PGresult *r = PQexecParams(c, "SELECT password_hash FROM auth.users WHERE email = $1", 1,
	                           NULL, p, NULL, NULL, 0);
	char *h = PQntuples(r) == 1 ? strdup(PQgetvalue(r, 0, 0)) : NULL;

	PQclear(r);
	PQfinish(c);
	return h;
}

START_TEST(test_signin_upgrades_a_hash_made_with_weaker_parameters)
{
	const char *e = fresh_email("rehash");
	const char *stronger[] = {"AUTH_ARGON2_OPSLIMIT=3", NULL};
	char *h;
	mt_resp r;

	ck_assert_int_eq(signup(e, "upgrade-me"), 201);
	h = stored_hash(e);
	ck_assert_ptr_nonnull(strstr(h, "$argon2id$"));
	ck_assert_ptr_nonnull(strstr(h, "t=2"));
	free(h);
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_AUTH], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_AUTH, stronger), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
	ck_assert_int_eq(signin(e, "upgrade-me", NULL, &r), 200);
	mt_resp_release(&r);
	h = stored_hash(e);
	ck_assert_ptr_nonnull(strstr(h, "t=3"));
	free(h);
	/* The upgraded hash still verifies. */
	ck_assert_int_eq(signin(e, "upgrade-me", NULL, &r), 200);
	mt_resp_release(&r);
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_AUTH], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_AUTH, stack_env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);
}
END_TEST

START_TEST(test_after_a_key_rotation_old_and_new_tokens_are_both_accepted)
{
	const char *e = fresh_email("rotate-key");
	char old_tok[2048], priv[256], pub[256], env_priv[300], env_pub[300], env_prev[300];
	const char *auth_env[] = {env_priv, NULL};
	const char *gw_env[] = {env_pub, env_prev, NULL};
	mt_resp r, r2;

	ck_assert_int_eq(signup(e, "key-rotation"), 201);
	ck_assert_int_eq(signin(e, "key-rotation", NULL, &r), 200);
	snprintf(old_tok, sizeof(old_tok), "%s", mk_json_str(r.json, "access_token"));
	mt_resp_release(&r);

	snprintf(priv, sizeof(priv), "%s.next", st.key_priv);
	snprintf(pub, sizeof(pub), "%s.next", st.key_pub);
	ck_assert_int_eq(mt_keygen(priv, pub), 0);
	snprintf(env_priv, sizeof(env_priv), "AUTH_JWT_PRIVATE_KEY_FILE=%s", priv);
	snprintf(env_pub, sizeof(env_pub), "GATEWAY_JWT_PUBLIC_KEY_FILE=%s", pub);
	snprintf(env_prev, sizeof(env_prev), "GATEWAY_JWT_PREVIOUS_PUBLIC_KEY_FILE=%s", st.key_pub);
	/* The gateway learns the new key first (keeping the old), then auth switches. */
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_GATEWAY], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_GATEWAY, gw_env), 0);
	ck_assert_int_eq(mt_proc_stop(&st.p[MT_AUTH], SIGTERM, STOP_MS), 0);
	ck_assert_int_eq(mt_stack_start_one(&st, MT_AUTH, auth_env), 0);
	ck_assert_int_eq(mt_wait_status(st.base, "/readyz", 200, READY_WAIT_MS), 0);

	ck_assert_int_eq(me(old_tok, &r), 200);
	mt_resp_release(&r);
	ck_assert_int_eq(signin(e, "key-rotation", NULL, &r), 200);
	ck_assert_int_eq(me(mk_json_str(r.json, "access_token"), &r2), 200);
	mt_resp_release(&r2);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_passwords_and_tokens_never_reach_the_logs)
{
	const char *e = fresh_email("logs");
	char cmd[512], tok[128];
	mt_resp r;
	int i;

	ck_assert_int_eq(signup(e, "Pa55-never-logged"), 201);
	ck_assert_int_eq(signin(e, "Pa55-never-logged", NULL, &r), 200);
	snprintf(tok, sizeof(tok), "%s", mk_json_str(r.json, "refresh_token"));
	mt_resp_release(&r);
	for (i = 0; i < MT_NPROCS; i++) {
		snprintf(cmd, sizeof(cmd), "grep -qE 'Pa55-never-logged|%s|argon2id' '%s'", tok + 4,
		         st.p[i].log);
		ck_assert_msg(system(cmd) != 0, "a secret is in %s", st.p[i].log);
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("auth");
	TCase *tc = tcase_create("auth");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_signup_normalises_the_email_and_answers_201_with_the_account);
	tcase_add_test(tc, test_a_taken_email_is_409_whatever_its_case);
	tcase_add_test(tc, test_signin_returns_a_bearer_pair_that_opens_auth_me);
	tcase_add_test(tc, test_an_oauth2_password_form_signs_in);
	tcase_add_test(tc, test_unknown_email_and_wrong_password_get_the_same_answer);
	tcase_add_test(tc, test_admin_comes_from_an_operator_never_from_an_email);
	tcase_add_test(tc, test_refresh_rotates_and_a_reused_token_revokes_its_family);
	tcase_add_test(tc, test_signout_revokes_the_refresh_token);
	tcase_add_test(tc, test_failed_signins_lock_that_address_but_not_the_user_elsewhere);
	tcase_add_test(tc, test_passwords_and_tokens_never_reach_the_logs);
	tcase_add_test(tc, test_signin_upgrades_a_hash_made_with_weaker_parameters);
	tcase_add_test(tc, test_after_a_key_rotation_old_and_new_tokens_are_both_accepted);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
