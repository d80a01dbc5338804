/*
 * meta_sources.c - the catalog as the HTTP API shows it: the data sources
 * (meta.sources), a page of a source's tables (meta.tables), one table in
 * full (meta.table), an admin's curated description of a table or column
 * (meta.annotate) and a sync on demand (meta.sync).
 *
 * A source is known while its warehouse is configured: "warehouse" (the one
 * METADATA_WAREHOUSE_KIND describes); any other id is not_found. Tables are
 * named as in meta.describe: "schema.table", or a bare name (public first).
 * Curated descriptions live in their own columns, which a sync never
 * writes, so they survive re-syncs; an empty one clears it and the synced
 * description shows again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "mk_json.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

#define TABLES_DEFAULT_LIMIT 50

/* Is source_id of the body a configured source? Otherwise not_found in err. */
static mk_err known_source(const metadata *m, const mk_env *req, char *err, size_t errlen)
{
	const char *id = mk_json_str(req->body, "source_id");

	if (m->wh_ops && id && strcmp(id, META_SOURCE_ID) == 0)
		return MK_OK;
	snprintf(err, errlen, "no data source '%s'", id ? id : "");
	return MK_E_NOT_FOUND;
}

/* Only an authenticated admin may change the catalog. */
static mk_err admin_only(const mk_env *req, char *err, size_t errlen)
{
	if (!req->caller.user_id[0]) {
		snprintf(err, errlen, "no authenticated caller");
		return MK_E_UNAUTHENTICATED;
	}
	if (strcmp(req->caller.role, "admin") != 0) {
		snprintf(err, errlen, "only an admin may change the catalog");
		return MK_E_FORBIDDEN;
	}
	return MK_OK;
}

/* ------------------------------------------------------------------ meta.sources */

mk_err meta_sources(META_HANDLER_ARGS)
{
	const char *p[2];
	cJSON *items, *o;
	PGresult *r;
	PGconn *c;

	*reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(*reply, "items");
	if (!m->wh_ops)
		return MK_OK;
	p[0] = META_SOURCE_ID;
	p[1] = m->wh_ops->kind;
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		goto db;
	/* The configured source is listed even before its first sync. */
	r = mk_db_exec_prep(c,
	                    "SELECT (SELECT count(*) FROM tables t WHERE t.source_id = $1 "
	                    "AND t.removed_at IS NULL), " TS(
	                        "s.last_synced_at") " "
	                                            "FROM (SELECT 1) x LEFT JOIN sources s ON s.id "
	                                            "= $1 AND s.kind = $2",
	                    2, p, err, errlen, NULL);
	mk_db_release(m->svc.db, c);
	if (!r)
		goto db;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", META_SOURCE_ID);
	cJSON_AddStringToObject(o, "kind", m->wh_ops->kind);
	meta_json_num(o, "tables", r, 0, 0);
	meta_json_text(o, "last_synced_at", r, 0, 1);
	cJSON_AddItemToArray(items, o);
	PQclear(r);
	return MK_OK;
db:
	cJSON_Delete(*reply);
	*reply = NULL;
	return MK_E_DB;
}

/* ------------------------------------------------------------------ meta.tables */

/*
 * A page of the source's tables in (schema, name) order. The cursor is the
 * "schema.table" of the last table of the previous page.
 */
mk_err meta_tables(META_HANDLER_ARGS)
{
	const char *cursor = mk_json_str(req->body, "cursor");
	long long limit = TABLES_DEFAULT_LIMIT;
	char lim[24], cs[601] = "", cn[601] = "";
	const char *p[4] = {META_SOURCE_ID, cs, cn, lim};
	cJSON *items;
	PGresult *r;
	PGconn *c;
	mk_err e;
	int i, n;

	if ((e = known_source(m, req, err, errlen)) != MK_OK)
		return e;
	mk_json_int(req->body, "limit", &limit);
	if (cursor && *cursor) {
		const char *dot = strchr(cursor, '.');

		if (!dot || dot == cursor || !dot[1]) {
			snprintf(err, errlen, "invalid cursor");
			return MK_E_VALIDATION;
		}
		snprintf(cs, sizeof(cs), "%.*s", (int)(dot - cursor), cursor);
		snprintf(cn, sizeof(cn), "%s", dot + 1);
	}
	snprintf(lim, sizeof(lim), "%lld", limit + 1);
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return MK_E_DB;
	r = mk_db_exec_prep(
	    c,
	    "SELECT t.schema_name, t.name, "
	    "coalesce(t.description_curated, t.description), t.row_count, "
	    "t.bytes, " TS(
	        "t.last_synced_at") " FROM tables t "
	                            "WHERE t.source_id = $1 AND t.removed_at IS NULL "
	                            "AND ($2 = '' OR (t.schema_name, t.name) > ($2, $3)) "
	                            "ORDER BY t.schema_name, t.name LIMIT $4::int",
	    4, p, err, errlen, NULL);
	mk_db_release(m->svc.db, c);
	if (!r)
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	items = cJSON_AddArrayToObject(*reply, "items");
	n = PQntuples(r);
	for (i = 0; i < n && i < limit; i++) {
		cJSON *o = cJSON_CreateObject();
		char q[1100];

		snprintf(q, sizeof(q), "%s.%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		cJSON_AddStringToObject(o, "table", q);
		meta_json_text(o, "description", r, i, 2);
		meta_json_num(o, "row_count", r, i, 3);
		meta_json_num(o, "bytes", r, i, 4);
		meta_json_text(o, "last_synced_at", r, i, 5);
		cJSON_AddItemToArray(items, o);
	}
	if (n > limit) {
		char q[1100];

		snprintf(q, sizeof(q), "%s.%s", PQgetvalue(r, (int)limit - 1, 0),
		         PQgetvalue(r, (int)limit - 1, 1));
		cJSON_AddStringToObject(*reply, "next_cursor", q);
	} else {
		cJSON_AddNullToObject(*reply, "next_cursor");
	}
	PQclear(r);
	return MK_OK;
}

/* ------------------------------------------------------------------ meta.table */

mk_err meta_table(META_HANDLER_ARGS)
{
	mk_err e = known_source(m, req, err, errlen);

	/* The body's "table" is read exactly as meta.describe reads it. */
	return e != MK_OK ? e : meta_describe(m, req, reply, err, errlen);
}

/* ------------------------------------------------------------------ meta.annotate */

mk_err meta_annotate(META_HANDLER_ARGS)
{
	const char *name = mk_json_str(req->body, "table");
	const char *column = mk_json_str(req->body, "column");
	const char *desc = mk_json_str(req->body, "description");
	char schema[256] = "", table[256];
	const char *p[4] = {META_SOURCE_ID, schema, table, NULL};
	char id[32];
	PGresult *r;
	PGconn *c;
	mk_err e;

	if ((e = admin_only(req, err, errlen)) != MK_OK ||
	    (e = known_source(m, req, err, errlen)) != MK_OK)
		return e;
	if (meta_table_name(name, schema, sizeof(schema), table, sizeof(table), err, errlen) != 0)
		return MK_E_VALIDATION;
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return MK_E_DB;
	r = mk_db_exec_prep(c,
	                    "SELECT t.id FROM tables t WHERE t.source_id = $1 "
	                    "AND t.removed_at IS NULL AND ($2 = '' OR t.schema_name = $2) "
	                    "AND t.name = $3 "
	                    "ORDER BY t.schema_name = 'public' DESC, t.schema_name LIMIT 1",
	                    3, p, err, errlen, NULL);
	if (!r) {
		e = MK_E_DB;
		goto out;
	}
	if (PQntuples(r) == 0) {
		PQclear(r);
		snprintf(err, errlen, "no table '%s' in the catalog", name);
		e = MK_E_NOT_FOUND;
		goto out;
	}
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	p[0] = id;
	p[1] = desc;
	if (column) {
		p[2] = column;
		r = mk_db_exec_prep(c,
		                    "UPDATE columns SET description_curated = nullif($2, '') "
		                    "WHERE table_id = $1::bigint AND name = $3",
		                    3, p, err, errlen, NULL);
	} else {
		r = mk_db_exec_prep(c,
		                    "UPDATE tables SET description_curated = nullif($2, '') "
		                    "WHERE id = $1::bigint",
		                    2, p, err, errlen, NULL);
	}
	if (!r) {
		e = MK_E_DB;
		goto out;
	}
	if (strcmp(PQcmdTuples(r), "1") != 0) {
		PQclear(r);
		snprintf(err, errlen, "no column '%s' in table '%s'", column, name);
		e = MK_E_NOT_FOUND;
		goto out;
	}
	PQclear(r);
	/* The curated text takes part in meta.search at once. */
	p[0] = META_SOURCE_ID;
	if (!(r = mk_db_exec_prep(c, "SELECT search_refresh($1)", 1, p, err, errlen, NULL))) {
		e = MK_E_DB;
		goto out;
	}
	PQclear(r);
out:
	mk_db_release(m->svc.db, c);
	return e != MK_OK ? e : meta_describe(m, req, reply, err, errlen);
}

/* ------------------------------------------------------------------ meta.sync */

static int count_of(metadata *m, const mk_env *req, const char *sql, const char *arg,
                    long long *out, char *err, size_t errlen)
{
	const char *p[2] = {META_SOURCE_ID, arg};
	PGresult *r;
	PGconn *c;

	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return -1;
	r = mk_db_exec_prep(c, sql, arg ? 2 : 1, p, err, errlen, NULL);
	mk_db_release(m->svc.db, c);
	if (!r)
		return -1;
	*out = PQgetisnull(r, 0, 0) ? 0 : strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return 0;
}

/*
 * Sync now. changes: the schema changes recorded since the sync began
 * (columns added, removed or retyped).
 */
mk_err meta_sync(META_HANDLER_ARGS)
{
	long long before = 0, tables = 0, changes = 0;
	char b[32];
	mk_err e;

	if ((e = admin_only(req, err, errlen)) != MK_OK ||
	    (e = known_source(m, req, err, errlen)) != MK_OK)
		return e;
	if (count_of(m, req, "SELECT max(id) FROM schema_changes WHERE $1 <> ''", NULL, &before,
	             err, errlen) != 0)
		return MK_E_DB;
	if (meta_catalog_sync(m, err, errlen) != 0)
		return MK_E_UNAVAILABLE;
	snprintf(b, sizeof(b), "%lld", before);
	if (count_of(m, req,
	             "SELECT count(*) FROM tables WHERE source_id = $1 AND removed_at IS NULL",
	             NULL, &tables, err, errlen) != 0 ||
	    count_of(m, req,
	             "SELECT count(*) FROM schema_changes c JOIN tables t ON t.id = c.table_id "
	             "WHERE t.source_id = $1 AND c.id > $2::bigint",
	             b, &changes, err, errlen) != 0)
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(*reply, "synced", 1);
	cJSON_AddNumberToObject(*reply, "tables", (double)tables);
	cJSON_AddNumberToObject(*reply, "changes", (double)changes);
	return MK_OK;
}
