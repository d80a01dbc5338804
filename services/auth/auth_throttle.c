/*
 * auth_throttle.c - limits on failed sign-ins, kept in Postgres so every
 * auth replica sees the same counts.
 *
 * Three counters per attempt: the account from this address (tight:
 * AUTH_SIGNIN_MAX_FAILURES), the account from anywhere and the address for
 * any account (loose, against distributed guessing and spraying). A
 * counter that reaches its limit locks for AUTH_SIGNIN_LOCKOUT, doubling
 * with each further lockout up to AUTH_SIGNIN_LOCKOUT_MAX; a quiet window
 * resets it. So an attacker elsewhere cannot lock a user out for long: the
 * tight per-address lock is the attacker's own, and the account-wide lock
 * needs many failures and is capped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "mk_log.h"

#define KEY_MAX 1200

static void keys(const char *email, const char *ip, char k[3][KEY_MAX])
{
	snprintf(k[0], KEY_MAX, "acct-ip:%s|%s", email, ip);
	snprintf(k[1], KEY_MAX, "acct:%s", email);
	snprintf(k[2], KEY_MAX, "ip:%s", ip);
}

long auth_throttle_check(auth *a, PGconn *c, const char *email, const char *ip, char *err,
                         size_t errlen)
{
	char k[3][KEY_MAX];
	const char *params[3] = {k[0], k[1], k[2]};
	PGresult *r;
	long wait;

	(void)a;
	keys(email, ip, k);
	r = mk_db_exec(
	    c,
	    "SELECT coalesce(max(ceil(extract(epoch FROM locked_until - now()))), 0)::bigint "
	    "FROM signin_throttle WHERE key IN ($1, $2, $3) AND locked_until > now()",
	    3, params, err, errlen, NULL);
	if (!r)
		return -1;
	wait = strtol(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return wait > 0 ? wait : 0;
}

static void fail_one(auth *a, PGconn *c, const char *key, long long max)
{
	char smax[24], swin[24], slock[24], slockmax[24], err[256];
	const char *p[5] = {key, smax, swin, slock, slockmax};
	PGresult *r;

	snprintf(smax, sizeof(smax), "%lld", max);
	snprintf(swin, sizeof(swin), "%lld", a->cfg->signin_window_ms);
	snprintf(slock, sizeof(slock), "%lld", a->cfg->signin_lockout_ms);
	snprintf(slockmax, sizeof(slockmax), "%lld", a->cfg->signin_lockout_max_ms);
	/* Count the failure; a quiet window starts a new count and forgets
	 * earlier lockouts; reaching the limit locks (doubling, capped). */
	r = mk_db_exec(
	    c,
	    "INSERT INTO signin_throttle AS t (key, failures, window_start, lockouts, locked_until)"
	    " VALUES ($1, CASE WHEN $2::int <= 1 THEN 0 ELSE 1 END, now(),"
	    "  CASE WHEN $2::int <= 1 THEN 1 ELSE 0 END,"
	    "  CASE WHEN $2::int <= 1 THEN now() + make_interval(secs => least($4::float8, "
	    "$5::float8) / 1000) END)"
	    " ON CONFLICT (key) DO UPDATE SET (failures, window_start, lockouts, locked_until) = ("
	    "  SELECT CASE WHEN x.n >= $2::int THEN 0 ELSE x.n END,"
	    "   CASE WHEN x.n >= $2::int OR x.quiet THEN now() ELSE t.window_start END,"
	    "   CASE WHEN x.n >= $2::int THEN x.l + 1 ELSE x.l END,"
	    "   CASE WHEN x.n >= $2::int THEN now() + make_interval(secs =>"
	    "    least($4::float8 * power(2, x.l), $5::float8) / 1000) ELSE t.locked_until END"
	    "  FROM (SELECT q.quiet, CASE WHEN q.quiet THEN 1 ELSE t.failures + 1 END AS n,"
	    "    CASE WHEN q.quiet AND (t.locked_until IS NULL OR t.locked_until < now())"
	    "     THEN 0 ELSE t.lockouts END AS l"
	    "   FROM (SELECT t.window_start < now() - make_interval(secs => $3::float8 / 1000)"
	    "    AS quiet) q) x)"
	    " RETURNING coalesce(locked_until > now(), false) AND failures = 0",
	    5, p, err, sizeof(err), NULL);
	if (!r) {
		MK_WARN("AUTH-THROTTLE-FAIL", NULL, "cannot record a failed sign-in: %s", err);
		return;
	}
	if (PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't')
		MK_WARN("AUTH-LOCKOUT", NULL, "sign-in lockout for a %s key",
		        strncmp(key, "ip:", 3) == 0 ? "address" : "account");
	PQclear(r);
}

void auth_throttle_fail(auth *a, PGconn *c, const char *email, const char *ip)
{
	char k[3][KEY_MAX], err[256], swin[24];
	const char *p[1] = {swin};
	PGresult *r;

	keys(email, ip, k);
	fail_one(a, c, k[0], a->cfg->signin_max_failures);
	fail_one(a, c, k[1], a->cfg->signin_account_max_failures);
	fail_one(a, c, k[2], a->cfg->signin_ip_max_failures);
	/* Now and then, forget counters that have gone quiet. */
	if (randombytes_uniform(100) == 0) {
		snprintf(swin, sizeof(swin), "%lld", a->cfg->signin_window_ms);
		r = mk_db_exec(c,
		               "DELETE FROM signin_throttle WHERE window_start < now() - "
		               "make_interval(secs => $1::float8 / 1000) AND "
		               "(locked_until IS NULL OR locked_until < now())",
		               1, p, err, sizeof(err), NULL);
		PQclear(r);
	}
}

void auth_throttle_success(auth *a, PGconn *c, const char *email, const char *ip)
{
	char k[3][KEY_MAX], err[256];
	const char *p[1] = {k[0]};
	PGresult *r;

	(void)a;
	keys(email, ip, k);
	r = mk_db_exec(c, "DELETE FROM signin_throttle WHERE key = $1", 1, p, err, sizeof(err),
	               NULL);
	PQclear(r);
}
