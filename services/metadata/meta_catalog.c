/*
 * meta_catalog.c - the catalog (schema catalog): applying a warehouse
 * snapshot to it (meta_catalog_sync), and the two ops that read it for
 * the model: meta.search (tables ranked by full-text relevance to a
 * question, rendered within a size budget) and meta.describe (one table in
 * full).
 *
 * Ranking: each table's search vector holds its name (weight A, stemmed
 * and as plain words, snake_case and camelCase split), its description
 * (B), its columns' names (C) and descriptions (D). A word of the question
 * counts most when it is in a table's own name and more when few tables
 * have it (see search_sql), so "which customers ordered the most
 * products" puts orders, order_items and customers first. Descriptions
 * curated by admins replace synced ones everywhere. This module does not talk to the warehouse; the
 * driver does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "mk_buf.h"
#include "mk_json.h"

/* ------------------------------------------------------------------ sync */

#define COLS_REC                                                                                   \
	"json_to_recordset($2::json) AS x(schema_name text, table_name text, position int, "       \
	"name text, type text, mode text, nullable boolean, description text)"

static const char *const sync_tables_sql[] = {
    /* upsert the tables; a curated description is another column and stays */
    "INSERT INTO tables (source_id, schema_name, name, description, row_count, bytes, kind, "
    "partitioning, clustering, labels, last_synced_at, removed_at) "
    "SELECT $1, w.schema_name, w.name, w.description, w.row_count, w.bytes, w.kind, "
    "w.partitioning, w.clustering, w.labels, now(), NULL "
    "FROM json_to_recordset($2::json) AS w(schema_name text, name text, description text, "
    "row_count bigint, bytes bigint, kind text, partitioning text, clustering text, "
    "labels jsonb) "
    "ON CONFLICT (source_id, schema_name, name) DO UPDATE SET "
    "description = EXCLUDED.description, row_count = EXCLUDED.row_count, "
    "bytes = EXCLUDED.bytes, kind = EXCLUDED.kind, partitioning = EXCLUDED.partitioning, "
    "clustering = EXCLUDED.clustering, labels = EXCLUDED.labels, last_synced_at = now(), "
    "removed_at = NULL",
    /* tables gone from the warehouse are kept (with their curated text), marked removed */
    "UPDATE tables t SET removed_at = now() WHERE t.source_id = $1 AND t.removed_at IS NULL "
    "AND NOT EXISTS (SELECT 1 FROM json_to_recordset($2::json) AS w(schema_name text, "
    "name text) WHERE w.schema_name = t.schema_name AND w.name = t.name)",
};

static const char *const sync_columns_sql[] = {
    /* schema changes since the last sync, for tables that had columns before */
    "WITH w AS (SELECT t.id AS table_id, x.name, x.type FROM " COLS_REC
    " JOIN tables t ON t.source_id = $1 AND t.schema_name = x.schema_name "
    "AND t.name = x.table_name), "
    "known AS (SELECT DISTINCT c.table_id FROM columns c WHERE c.table_id IN "
    "(SELECT table_id FROM w)) "
    "INSERT INTO schema_changes (table_id, change, column_name, old_type, new_type) "
    "SELECT w.table_id, 'added', w.name, NULL, w.type FROM w "
    "WHERE w.table_id IN (SELECT table_id FROM known) AND NOT EXISTS "
    "(SELECT 1 FROM columns c WHERE c.table_id = w.table_id AND c.name = w.name) "
    "UNION ALL SELECT c.table_id, 'removed', c.name, c.type, NULL FROM columns c "
    "WHERE c.table_id IN (SELECT table_id FROM w) AND NOT EXISTS "
    "(SELECT 1 FROM w WHERE w.table_id = c.table_id AND w.name = c.name) "
    "UNION ALL SELECT c.table_id, 'changed', c.name, c.type, w.type FROM columns c "
    "JOIN w ON w.table_id = c.table_id AND w.name = c.name WHERE c.type <> w.type",
    "INSERT INTO columns (table_id, position, name, type, mode, nullable, description) "
    "SELECT t.id, x.position, x.name, x.type, x.mode, x.nullable, x.description FROM " COLS_REC
    " JOIN tables t ON t.source_id = $1 AND t.schema_name = x.schema_name "
    "AND t.name = x.table_name "
    "ON CONFLICT (table_id, name) DO UPDATE SET position = EXCLUDED.position, "
    "type = EXCLUDED.type, mode = EXCLUDED.mode, nullable = EXCLUDED.nullable, "
    "description = EXCLUDED.description",
    "DELETE FROM columns c USING tables t WHERE c.table_id = t.id AND t.source_id = $1 "
    "AND t.removed_at IS NULL AND NOT EXISTS (SELECT 1 FROM " COLS_REC
    " WHERE x.schema_name = t.schema_name AND x.table_name = t.name AND x.name = c.name)",
    "SELECT search_refresh($1)",
    "UPDATE sources SET last_synced_at = now() WHERE id = $1",
};

static int run_all(PGconn *c, const char *const *sqls, size_t n, const char *const *p, char *err,
                   size_t errlen)
{
	size_t i;

	for (i = 0; i < n; i++) {
		PGresult *r =
		    mk_db_exec(c, sqls[i], strstr(sqls[i], "$2") ? 2 : 1, p, err, errlen, NULL);

		if (!r)
			return -1;
		PQclear(r);
	}
	return 0;
}

int meta_catalog_sync(metadata *m, char *err, size_t errlen)
{
	char *tables = NULL, *columns = NULL;
	const char *p[2];
	PGresult *r = NULL;
	PGconn *c = NULL;
	int rc = -1;

	if (!m->wh_ops) {
		snprintf(err, errlen, "no warehouse is configured");
		return -1;
	}
	pthread_mutex_lock(&m->sync_lock);
	if (m->wh_ops->snapshot(m->wh, &tables, &columns, err, errlen) != 0)
		goto out;
	if (!(c = mk_db_acquire(m->svc.db, 5000, err, errlen)))
		goto out;
	if (!(r = mk_db_exec(c, "BEGIN", 0, NULL, err, errlen, NULL)))
		goto out;
	PQclear(r);
	/* One sync at a time across every instance of the service. */
	if (!(r = mk_db_exec(c, "SELECT pg_advisory_xact_lock(hashtext('catalog.sync'))", 0, NULL,
	                     err, errlen, NULL)))
		goto out;
	PQclear(r);
	p[0] = META_SOURCE_ID;
	p[1] = m->wh_ops->kind;
	if (!(r = mk_db_exec(c,
	                     "INSERT INTO sources (id, kind) VALUES ($1, $2) "
	                     "ON CONFLICT (id) DO UPDATE SET kind = EXCLUDED.kind",
	                     2, p, err, errlen, NULL)))
		goto out;
	PQclear(r);
	p[1] = tables;
	if (run_all(c, sync_tables_sql, sizeof(sync_tables_sql) / sizeof(*sync_tables_sql), p, err,
	            errlen) != 0)
		goto out;
	p[1] = columns;
	if (run_all(c, sync_columns_sql, sizeof(sync_columns_sql) / sizeof(*sync_columns_sql), p,
	            err, errlen) != 0)
		goto out;
	if (!(r = mk_db_exec(c, "COMMIT", 0, NULL, err, errlen, NULL)))
		goto out;
	PQclear(r);
	rc = 0;
out:
	if (c) {
		if (PQtransactionStatus(c) != PQTRANS_IDLE)
			PQclear(PQexec(c, "ROLLBACK"));
		mk_db_release(m->svc.db, c);
	}
	pthread_mutex_unlock(&m->sync_lock);
	free(tables);
	free(columns);
	return rc;
}

/* ------------------------------------------------------------------ reading */

#define TABLE_COLS                                                                                 \
	"SELECT t.schema_name, t.name, coalesce(t.description_curated, t.description), "           \
	"t.row_count, t.bytes, "                                                                   \
	"to_char(t.last_synced_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "         \
	"coalesce((SELECT json_agg(json_build_object('name', c.name, 'type', c.type, "             \
	"'mode', c.mode, 'nullable', c.nullable, "                                                 \
	"'description', coalesce(c.description_curated, c.description)) "                          \
	"ORDER BY c.position) FROM columns c WHERE c.table_id = t.id), '[]'), "                    \
	"t.kind, t.partitioning, t.clustering, t.labels FROM tables t "

int meta_table_name(const char *name, char *schema, size_t slen, char *table, size_t tlen,
                    char *err, size_t errlen)
{
	const char *dot = strchr(name, '.');

	schema[0] = '\0';
	if (dot) {
		if ((size_t)(dot - name) >= slen || strlen(dot + 1) >= tlen) {
			snprintf(err, errlen, "table name '%s' is too long", name);
			return -1;
		}
		snprintf(schema, slen, "%.*s", (int)(dot - name), name);
		snprintf(table, tlen, "%s", dot + 1);
	} else {
		if (strlen(name) >= tlen) {
			snprintf(err, errlen, "table name '%s' is too long", name);
			return -1;
		}
		snprintf(table, tlen, "%s", name);
	}
	return 0;
}

void meta_json_text(cJSON *o, const char *k, const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		cJSON_AddNullToObject(o, k);
	else
		cJSON_AddStringToObject(o, k, PQgetvalue(r, row, col));
}

void meta_json_num(cJSON *o, const char *k, const PGresult *r, int row, int col)
{
	if (PQgetisnull(r, row, col))
		cJSON_AddNullToObject(o, k);
	else
		cJSON_AddNumberToObject(o, k, strtod(PQgetvalue(r, row, col), NULL));
}

/* A table row of TABLE_COLS as the wire's table object. */
static cJSON *table_json(const PGresult *r, int row)
{
	cJSON *o = cJSON_CreateObject();
	const char *cols = PQgetvalue(r, row, 6);
	cJSON *cj = cJSON_ParseWithLength(cols, strlen(cols)), *labels;
	char q[512];

	snprintf(q, sizeof(q), "%s.%s", PQgetvalue(r, row, 0), PQgetvalue(r, row, 1));
	cJSON_AddStringToObject(o, "table", q);
	cJSON_AddStringToObject(o, "schema", PQgetvalue(r, row, 0));
	cJSON_AddStringToObject(o, "name", PQgetvalue(r, row, 1));
	meta_json_text(o, "description", r, row, 2);
	meta_json_num(o, "row_count", r, row, 3);
	meta_json_num(o, "bytes", r, row, 4);
	meta_json_text(o, "last_synced_at", r, row, 5);
	meta_json_text(o, "kind", r, row, 7);
	meta_json_text(o, "partitioning", r, row, 8);
	meta_json_text(o, "clustering", r, row, 9);
	labels = PQgetisnull(r, row, 10) ? NULL : cJSON_Parse(PQgetvalue(r, row, 10));
	cJSON_AddItemToObject(o, "labels", labels ? labels : cJSON_CreateNull());
	cJSON_AddItemToObject(o, "columns", cj ? cj : cJSON_CreateArray());
	return o;
}

/* The prompt-ready text of a table object: a header line and one line per column. */
static void table_text(const cJSON *t, mk_buf *b)
{
	const char *d = mk_json_str(t, "description");
	const cJSON *rows = cJSON_GetObjectItem(t, "row_count");
	const cJSON *col;

	const char *kind = mk_json_str(t, "kind"), *part = mk_json_str(t, "partitioning");
	const char *clus = mk_json_str(t, "clustering");

	mk_buf_printf(b, "%s %s", kind && strcmp(kind, "TABLE") ? kind : "Table",
	              mk_json_str(t, "table"));
	if (cJSON_IsNumber(rows))
		mk_buf_printf(b, " (~%.0f rows)", rows->valuedouble);
	if (d && *d)
		mk_buf_printf(b, ": %s", d);
	mk_buf_puts(b, "\n");
	if (part)
		mk_buf_printf(b, "  partitioned by %s\n", part);
	if (clus)
		mk_buf_printf(b, "  clustered by %s\n", clus);
	cJSON_ArrayForEach(col, cJSON_GetObjectItem(t, "columns"))
	{
		const char *cd = mk_json_str(col, "description");
		int nullable = 1;

		mk_json_bool(col, "nullable", &nullable);
		mk_buf_printf(b, "  - %s %s%s", mk_json_str(col, "name"), mk_json_str(col, "type"),
		              nullable ? "" : " not null");
		if (cd && *cd)
			mk_buf_printf(b, ": %s", cd);
		mk_buf_puts(b, "\n");
	}
}

/* ------------------------------------------------------------------ meta.describe */

mk_err meta_describe(META_HANDLER_ARGS)
{
	const char *name = mk_json_str(req->body, "table");
	char schema[256] = "", table[256];
	const char *p[3] = {META_SOURCE_ID, schema, table};
	PGresult *r;
	PGconn *c;
	cJSON *t;
	mk_buf b;

	if (!m->wh_ops) {
		snprintf(err, errlen, "no warehouse is configured");
		return MK_E_UNAVAILABLE;
	}
	if (meta_table_name(name, schema, sizeof(schema), table, sizeof(table), err, errlen) != 0)
		return MK_E_VALIDATION;
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return MK_E_DB;
	r = mk_db_exec_prep(c,
	                    TABLE_COLS
	                    "WHERE t.source_id = $1 AND t.removed_at IS NULL "
	                    "AND ($2 = '' OR t.schema_name = $2) AND t.name = $3 "
	                    "ORDER BY t.schema_name = 'public' DESC, t.schema_name LIMIT 1",
	                    3, p, err, errlen, NULL);
	mk_db_release(m->svc.db, c);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		snprintf(err, errlen, "no table '%s' in the catalog", name);
		return MK_E_NOT_FOUND;
	}
	t = table_json(r, 0);
	PQclear(r);
	mk_buf_init(&b, 0);
	table_text(t, &b);
	*reply = cJSON_CreateObject();
	cJSON_AddItemToObject(*reply, "table", t);
	cJSON_AddStringToObject(*reply, "text", b.data ? b.data : "");
	mk_buf_release(&b);
	return MK_OK;
}

/* ------------------------------------------------------------------ meta.search */

/*
 * Tables ranked for a question ($2). The question's words, stemmed (or as
 * plain words when stemming leaves none, e.g. only stop words), each
 * score a table by where it appears in the table's vector - its name 1.0,
 * its description 0.4, a column's name 0.3, a column's description 0.1,
 * the best place counting - times the word's rarity across the source's
 * tables (idf: ln(1 + tables / tables having it)), summed over the words.
 * The GIN index narrows the tables to those matching some word first.
 *
 * Then the shape of each candidate's own name: the question is most often
 * about a base table, not its copies and rollups. A name with a word that
 * marks a copy (archive, backup, stg, tmp, a year, ...) or a rollup
 * (summary, daily, monthly, facts, history, ...) that the question does
 * not ask about weighs less, and so does each word of the name the
 * question does not mention: "orders" beats "order_stock_monthly" for "how
 * many orders were placed last month", "discount_codes" beats
 * "discount_codes_backup_2023". Asked about, those words count like any.
 */
#define SEARCH_COPY_WORDS                                                                          \
	"^(archive|archived|arch|backup|backups|bak|bkp|stg|staging|stage|tmp|temp|old|copy|"      \
	"snapshot|snap|legacy|deprecated|test|dev|scratch|raw|v[0-9]+|(19|20)[0-9]{2}|[0-9]{6,8})" \
	"$"
#define SEARCH_ROLLUP_WORDS                                                                        \
	"^(summary|summaries|daily|weekly|monthly|quarterly|yearly|annual|agg|aggregate|"          \
	"aggregates|rollup|fact|facts|report|reports|stats|history|hist|forecast|forecasts|"       \
	"target|targets|by|kpi|kpis)$"
#define SEARCH_COPY_WEIGHT   "0.3"
#define SEARCH_ROLLUP_WEIGHT "0.6"
#define SEARCH_EXTRA_WORD    "0.25"

static const char search_sql[] =
    "WITH e AS (SELECT unnest(tsvector_to_array(to_tsvector('english', ident_words($2)))) AS w), "
    "l AS (SELECT w FROM e UNION ALL SELECT unnest(tsvector_to_array(to_tsvector('simple', "
    "ident_words($2)))) WHERE NOT EXISTS (SELECT 1 FROM e)), "
    "q AS (SELECT to_tsquery('simple', string_agg(quote_literal(w), ' | ')) AS q FROM l), "
    "tl AS (SELECT t.id, u.lexeme, max(CASE wt WHEN 'A' THEN 1.0 WHEN 'B' THEN 0.4 "
    "WHEN 'C' THEN 0.3 ELSE 0.1 END) AS w "
    "FROM tables t CROSS JOIN q CROSS JOIN LATERAL unnest(t.search) AS u "
    "CROSS JOIN LATERAL unnest(u.weights) AS wt "
    "WHERE q.q IS NOT NULL AND t.source_id = $1 AND t.removed_at IS NULL AND t.search @@ q.q "
    "AND u.lexeme IN (SELECT w FROM l) GROUP BY t.id, u.lexeme), "
    "df AS (SELECT lexeme, count(*) AS n FROM tl GROUP BY lexeme), "
    "n AS (SELECT count(*) AS n FROM tables WHERE source_id = $1 AND removed_at IS NULL), "
    "base AS (SELECT tl.id, sum(tl.w * ln(1 + n.n::float8 / df.n)) AS score "
    "FROM tl JOIN df USING (lexeme) CROSS JOIN n GROUP BY tl.id), "
    /* Each word of a candidate's own name: asked about, or not; a copy's or a rollup's mark. */
    "nw AS (SELECT b.id, w.word, "
    "(to_tsvector('english', w.word) @@ (SELECT q FROM q) OR w.word IN (SELECT w FROM l)) AS asked "
    "FROM base b JOIN tables t ON t.id = b.id "
    "CROSS JOIN LATERAL unnest(string_to_array(ident_words(t.name), ' ')) AS w(word) "
    "WHERE w.word <> ''), "
    "shape AS (SELECT id, count(*) AS words, count(*) FILTER (WHERE asked) AS hit, "
    "bool_or(NOT asked AND word ~ '" SEARCH_COPY_WORDS "') AS copy, "
    "bool_or(NOT asked AND word ~ '" SEARCH_ROLLUP_WORDS "') AS rollup FROM nw GROUP BY id) "
    "SELECT b.id, b.score * CASE WHEN s.copy THEN " SEARCH_COPY_WEIGHT " ELSE 1 END "
    "* CASE WHEN s.rollup THEN " SEARCH_ROLLUP_WEIGHT " ELSE 1 END "
    "/ (1 + " SEARCH_EXTRA_WORD " * (s.words - s.hit)) AS score "
    "FROM base b JOIN shape s USING (id) ORDER BY score DESC, b.id LIMIT $3";

#define SEARCH_TOP 10

mk_err meta_search(META_HANDLER_ARGS)
{
	const char *question = mk_json_str(req->body, "question");
	long long budget = m->cfg->search_budget;
	char lim[8];
	const char *p[3] = {META_SOURCE_ID, question, lim};
	PGresult *r = NULL, *tr = NULL;
	cJSON *tables;
	PGconn *c;
	mk_buf b, one;
	mk_err e = MK_OK;
	int i, n;

	mk_json_int(req->body, "budget", &budget);
	if (!m->wh_ops) {
		*reply = cJSON_CreateObject();
		cJSON_AddArrayToObject(*reply, "tables");
		cJSON_AddStringToObject(*reply, "text",
		                        "No data warehouse is connected, so there are no tables to "
		                        "query.");
		return MK_OK;
	}
	snprintf(lim, sizeof(lim), "%d", SEARCH_TOP);
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	cJSON_AddStringToObject(*reply, "dialect", meta_dialect_text(m));
	tables = cJSON_AddArrayToObject(*reply, "tables");
	mk_buf_init(&b, 0);
	mk_buf_init(&one, 0);
	if (!(r = mk_db_exec_prep(c, search_sql, 3, p, err, errlen, NULL))) {
		e = MK_E_DB;
		goto out;
	}
	n = PQntuples(r);
	for (i = 0; i < n; i++) {
		const char *id = PQgetvalue(r, i, 0);
		cJSON *t, *hit;

		if (!(tr = mk_db_exec_prep(c, TABLE_COLS "WHERE t.id = $1::bigint", 1, &id, err,
		                           errlen, NULL))) {
			e = MK_E_DB;
			goto out;
		}
		if (PQntuples(tr) != 1) {
			PQclear(tr);
			continue;
		}
		t = table_json(tr, 0);
		PQclear(tr);
		mk_buf_reset(&one);
		table_text(t, &one);
		if (b.len + one.len + 1 > (size_t)budget) {
			/* The best table is given even when cut; later ones only whole. */
			if (b.len == 0 && one.len) {
				size_t keep = (size_t)budget > 5 ? (size_t)budget - 5 : 0;

				while (keep > 0 && one.data[keep] != '\n')
					keep--;
				mk_buf_append(&b, one.data, keep);
				mk_buf_puts(&b, "\n  ...\n");
			} else {
				cJSON_Delete(t);
				break;
			}
		} else {
			if (b.len)
				mk_buf_puts(&b, "\n");
			mk_buf_append(&b, one.data, one.len);
		}
		hit = cJSON_CreateObject();
		cJSON_AddStringToObject(hit, "table", mk_json_str(t, "table"));
		cJSON_AddNumberToObject(
		    hit, "score",
		    (double)(long long)(strtod(PQgetvalue(r, i, 1), NULL) * 10000 + 0.5) / 10000);
		cJSON_AddItemToArray(tables, hit);
		cJSON_Delete(t);
		if (b.len + 1 >= (size_t)budget)
			break;
	}
	cJSON_AddStringToObject(*reply, "text",
	                        b.len ? b.data : "No table in the catalog matches the question.");
out:
	if (r)
		PQclear(r);
	mk_db_release(m->svc.db, c);
	if (e != MK_OK) {
		cJSON_Delete(*reply);
		*reply = NULL;
	}
	mk_buf_release(&b);
	mk_buf_release(&one);
	return e;
}
