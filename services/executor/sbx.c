/*
 * sbx.c - the sandbox interface of sbx.h over its backends (libexecutor,
 * sandbox layer): the backend chosen by name, and each public call passed
 * to the backend's table of operations. Nothing here knows how a backend
 * holds its sandboxes.
 */
#include <string.h>

#include "mk_buf.h"
#include "sbx.h"

sbx_backend *sbx_backend_new(const char *kind, const sbx_local_opts *local,
                             const sbx_daytona_opts *daytona, const sbx_limits *lim, char *err,
                             size_t errlen)
{
	if (kind && strcmp(kind, "local") == 0 && local)
		return sbx_local_new(local, lim, err, errlen);
	if (kind && strcmp(kind, "daytona") == 0 && daytona)
		return sbx_daytona_new(daytona, lim, err, errlen);
	mk_errf(err, errlen, "unknown sandbox backend '%s'", kind ? kind : "");
	return NULL;
}

void sbx_backend_free(sbx_backend *b)
{
	if (b)
		b->ops->free(b);
}

const char *sbx_backend_name(const sbx_backend *b)
{
	return b->ops->name;
}

sbx_caps sbx_backend_caps(const sbx_backend *b)
{
	return b->ops->caps(b);
}

sbx *sbx_create(sbx_backend *b, char *err, size_t errlen)
{
	return b->ops->create(b, err, errlen);
}

cJSON *sbx_exec(sbx *s, const char *code, long long timeout_ms)
{
	return s->b->ops->exec(s, code, timeout_ms);
}

int sbx_put(sbx *s, const char *path, const void *data, size_t len, char *err, size_t errlen)
{
	return s->b->ops->put(s, path, data, len, err, errlen);
}

int sbx_get(sbx *s, const char *path, mk_buf *out, char *err, size_t errlen)
{
	return s->b->ops->get(s, path, out, err, errlen);
}

cJSON *sbx_list(sbx *s, char *err, size_t errlen)
{
	return s->b->ops->list(s, err, errlen);
}

int sbx_alive(sbx *s)
{
	return s ? s->b->ops->alive(s) : 0;
}

void sbx_destroy(sbx *s)
{
	if (s)
		s->b->ops->destroy(s);
}

const char *sbx_ref(sbx *s)
{
	return s && s->b->ops->ref ? s->b->ops->ref(s) : NULL;
}

sbx *sbx_attach(sbx_backend *b, const char *ref, char *err, size_t errlen)
{
	if (!b->ops->attach) {
		mk_errf(err, errlen, "the '%s' backend cannot re-attach to a sandbox",
		        b->ops->name);
		return NULL;
	}
	return b->ops->attach(b, ref, err, errlen);
}

void sbx_detach(sbx *s)
{
	if (s && s->b->ops->detach)
		s->b->ops->detach(s);
	else
		sbx_destroy(s);
}

void sbx_drop(sbx_backend *b, const char *ref)
{
	if (b->ops->drop)
		b->ops->drop(b, ref);
}

cJSON *sbx_leftovers(sbx_backend *b, char *err, size_t errlen)
{
	if (!b->ops->leftovers)
		return cJSON_CreateArray();
	return b->ops->leftovers(b, err, errlen);
}

void sbx_label(sbx *s, const char *chat_id, const char *owner_id)
{
	if (s && s->b->ops->label)
		s->b->ops->label(s, chat_id, owner_id);
}
