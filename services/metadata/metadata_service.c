/*
 * metadata_service.c - the metadata process's life: open its database, apply its
 * migrations, serve its ops over NNG, stop gracefully.
 */
#include <stdio.h>
#include <stdlib.h>

#include "metadata.h"

typedef struct {
	mk_svc svc;
	mk_svc_def def;
} metadata_ctx;

static mk_err handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	(void)ud;
	(void)reply;
	snprintf(err, errlen, "operation '%s' is not served by 'metadata'", mk_op_name(req->op));
	return MK_E_UNKNOWN_OP;
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const metadata_config *cfg = cfgp;
	metadata_ctx *c = calloc(1, sizeof(*c));

	*out = c;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	c->def = (mk_svc_def){
	    .name = "metadata",
	    .schema = "catalog",
	    .migrations = metadata_migrations,
	    .nmigrations = metadata_migrations_count,
	    .handler = handle,
	    .ud = c,
	};
	if (mk_svc_open_db(&c->svc, &c->def, &cfg->svc, err, errlen) != 0)
		return -1;
	return mk_svc_serve(&c->svc, &c->def, err, errlen);
}

static void stop(void *p)
{
	metadata_ctx *c = p;

	if (!c)
		return;
	mk_svc_stop(&c->svc);
	free(c);
}

const mk_svc_app metadata_app = {
    .name = "metadata",
    .vars = metadata_config_vars,
    .nvars = &metadata_config_nvars,
    .log_level_offset = offsetof(metadata_config, svc.log_level),
    .listen_offset = offsetof(metadata_config, svc.listen),
    .start = start,
    .stop = stop,
};
