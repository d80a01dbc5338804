/*
 * auth_service.c - the auth process's life: load the signing key, open the
 * database and apply migrations, serve the auth.* ops over NNG, stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "mk_log.h"

static mk_err handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	auth *a = ud;

	switch (req->op) {
	case MK_OP_AUTH_SIGNUP: return auth_signup(a, req, reply, err, errlen);
	case MK_OP_AUTH_SIGNIN: return auth_signin(a, req, reply, err, errlen);
	case MK_OP_AUTH_REFRESH: return auth_refresh(a, req, reply, err, errlen);
	case MK_OP_AUTH_SIGNOUT: return auth_signout(a, req, reply, err, errlen);
	case MK_OP_AUTH_ME: return auth_me(a, req, reply, err, errlen);
	default:
		snprintf(err, errlen, "operation '%s' is not served by 'auth'",
		         mk_op_name(req->op));
		return MK_E_UNKNOWN_OP;
	}
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const auth_config *cfg = cfgp;
	auth *a = calloc(1, sizeof(*a));
	unsigned char rnd[32];
	char pw[65];

	*out = a;
	if (!a || sodium_init() < 0) {
		snprintf(err, errlen, "cannot initialise (out of memory or no entropy)");
		return -1;
	}
	a->cfg = cfg;
	a->key = mk_jwt_key_load(cfg->jwt_private_key_file, err, errlen);
	if (!a->key)
		return -1;
	if (!mk_jwt_key_is_private(a->key)) {
		snprintf(err, errlen,
		         "AUTH_JWT_PRIVATE_KEY_FILE '%s' holds a public key, not a private one",
		         cfg->jwt_private_key_file);
		return -1;
	}
	sem_init(&a->hash_slots, 0, (unsigned)cfg->hash_concurrency);
	/* The dummy hash: a random password with the configured parameters,
	 * so a sign-in for an unknown email costs the same as a real one. */
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(pw, sizeof(pw), rnd, sizeof(rnd));
	a->dummy_hash = auth_password_hash(a, pw, 0, err, errlen);
	sodium_memzero(pw, sizeof(pw));
	if (!a->dummy_hash)
		return -1;
	MK_INFO("AUTH-KEY", NULL, "signing access tokens with key id %s", mk_jwt_key_id(a->key));
	a->def = (mk_svc_def){
	    .name = "auth",
	    .schema = "auth",
	    .migrations = auth_migrations,
	    .nmigrations = auth_migrations_count,
	    .handler = handle,
	    .ud = a,
	};
	if (mk_svc_open_db(&a->svc, &a->def, &cfg->svc, err, errlen) != 0)
		return -1;
	return mk_svc_serve(&a->svc, &a->def, err, errlen);
}

static void stop(void *p)
{
	auth *a = p;

	if (!a)
		return;
	mk_svc_stop(&a->svc);
	if (a->svc.rpc)
		return; /* handlers still running hold a; the process is exiting */
	mk_jwt_key_free(a->key);
	if (a->dummy_hash)
		sem_destroy(&a->hash_slots);
	free(a->dummy_hash);
	free(a);
}

/* --migrate: schema 'auth' only, then exit. */
static int migrate(const void *cfgp, char *err, size_t errlen)
{
	const mk_svc_def def = {
	    .name = "auth",
	    .schema = "auth",
	    .migrations = auth_migrations,
	    .nmigrations = auth_migrations_count,
	};

	return mk_svc_migrate(&def, &((const auth_config *)cfgp)->svc, err, errlen);
}

const mk_svc_app auth_app = {
    .name = "auth",
    .vars = auth_config_vars,
    .nvars = &auth_config_nvars,
    .log_level_offset = offsetof(auth_config, svc.log_level),
    .log_format_offset = offsetof(auth_config, svc.log_format),
    .listen_offset = offsetof(auth_config, svc.listen),
    .bus_key_offset = offsetof(auth_config, svc.bus_key_file),
    .start = start,
    .stop = stop,
    .migrate = migrate,
};
