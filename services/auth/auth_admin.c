/*
 * auth_admin.c - the operator's command for the admin role:
 *
 *   mark-auth --grant-admin EMAIL
 *   mark-auth --revoke-admin EMAIL
 *
 * It reads the service's settings from the environment (AUTH_DATABASE_URL
 * above all), applies the schema's migrations if the database is new, sets
 * the role of the account with that email and records the change in
 * auth.role_changes. The account must exist (signed up); the role reaches
 * its tokens at its next sign-in or refresh. Nothing else grants admin.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "mk_log.h"

int auth_admin_cli(const char *flag, const char *email, auth_config *cfg)
{
	char *argv[] = {"mark-auth", NULL}, err[512] = "", who[128], host[64] = "";
	const char *role = strcmp(flag, "--grant-admin") == 0 ? "admin" : "user";
	const char *p[4];
	mk_svc svc = {0};
	mk_svc_def def = {
	    .name = "auth",
	    .schema = "auth",
	    .migrations = auth_migrations,
	    .nmigrations = auth_migrations_count,
	};
	PGresult *r = NULL;
	PGconn *c = NULL;
	mk_cfg_var vars[128];
	size_t n = 0;
	int rc;

	/* The service's settings, less the signing key this command never uses. */
	for (size_t i = 0; i < auth_config_nvars && n < sizeof(vars) / sizeof(vars[0]); i++)
		if (strncmp(auth_config_vars[i].name, "AUTH_JWT_", 9) != 0)
			vars[n++] = auth_config_vars[i];
	rc = mk_cfg_main(1, argv, "auth", vars, n, cfg);
	if (rc >= 0)
		return rc;
	mk_log_init("auth", MK_LOG_WARN);
	rc = 1;
	if (!*email || strlen(email) > 320 || !strchr(email, '@')) {
		fprintf(stderr, "mark-auth: '%s' is not an email address\n", email);
		goto out;
	}
	if (mk_svc_open_db(&svc, &def, &cfg->svc, err, sizeof(err)) != 0 ||
	    !(c = mk_db_acquire(svc.db, 10000, err, sizeof(err)))) {
		fprintf(stderr, "mark-auth: cannot reach the database: %s\n", err);
		goto out;
	}
	gethostname(host, sizeof(host) - 1);
	snprintf(who, sizeof(who), "operator: mark-auth %s (uid %d on %s)", flag, (int)getuid(),
	         host);
	p[0] = email;
	p[1] = role;
	p[2] = who;
	/* One statement: the role and its record change together. */
	r = mk_db_exec(c,
	               "WITH u AS (UPDATE users SET role = $2, updated_at = now() "
	               "WHERE lower(email) = lower($1) RETURNING id, email) "
	               "INSERT INTO role_changes (user_id, email, role, changed_by) "
	               "SELECT id, email, $2, $3 FROM u RETURNING email",
	               3, p, err, sizeof(err), NULL);
	if (!r) {
		fprintf(stderr, "mark-auth: %s\n", err);
	} else if (PQntuples(r) == 0) {
		fprintf(stderr, "mark-auth: no account has the email %s; it must sign up first\n",
		        email);
	} else {
		printf("%s is now %s %s; their next sign-in or token refresh carries the role\n",
		       PQgetvalue(r, 0, 0), strcmp(role, "admin") == 0 ? "an" : "a", role);
		rc = 0;
	}
out:
	PQclear(r);
	if (c)
		mk_db_release(svc.db, c);
	mk_db_pool_free(svc.db);
	mk_cfg_release(vars, n, cfg);
	return rc;
}
