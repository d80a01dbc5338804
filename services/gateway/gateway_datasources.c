/*
 * gateway_datasources.c - the /api/v1/datasources routes: the warehouse
 * catalog, forwarded to metadata with the verified caller. Path ids and
 * query values are put into the op's body here; metadata checks the
 * body's fields against proto/fields.def and that the caller is an admin
 * where the op changes the catalog (403 otherwise).
 */
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "mk_json.h"

/*
 * A body holding the path's {id} as source_id and, with_table, its {table}
 * as table, plus the request's own fields (PATCH: description, column).
 */
static cJSON *with_path(gw_req *r, int with_table)
{
	cJSON *b = r->json ? cJSON_Duplicate(r->json, 1) : cJSON_CreateObject();

	cJSON_DeleteItemFromObjectCaseSensitive(b, "source_id");
	cJSON_AddStringToObject(b, "source_id", r->params[0]);
	if (with_table) {
		cJSON_DeleteItemFromObjectCaseSensitive(b, "table");
		cJSON_AddStringToObject(b, "table", r->params[1]);
	}
	return b;
}

void gw_datasources_list(gw_req *r)
{
	gw_forward(r, GW_METADATA, MK_OP_META_SOURCES, NULL, 200);
}

void gw_datasources_tables(gw_req *r)
{
	cJSON *b = with_path(r, 0);

	if (gw_page_query(r, b) == 0)
		gw_forward(r, GW_METADATA, MK_OP_META_TABLES, b, 200);
	cJSON_Delete(b);
}

void gw_datasources_table(gw_req *r)
{
	cJSON *b = with_path(r, 1);

	gw_forward(r, GW_METADATA, MK_OP_META_TABLE, b, 200);
	cJSON_Delete(b);
}

void gw_datasources_annotate(gw_req *r)
{
	cJSON *b = with_path(r, 1);

	gw_forward(r, GW_METADATA, MK_OP_META_ANNOTATE, b, 200);
	cJSON_Delete(b);
}

void gw_datasources_sync(gw_req *r)
{
	cJSON *b = with_path(r, 0);

	gw_forward(r, GW_METADATA, MK_OP_META_SYNC, b, 200);
	cJSON_Delete(b);
}
