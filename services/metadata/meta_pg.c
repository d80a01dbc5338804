/*
 * meta_pg.c - the Postgres warehouse driver: reads the structure of every
 * non-system schema (information_schema, with comments and sizes from
 * pg_catalog) and runs checked queries read-only.
 *
 * A query runs in a READ ONLY transaction with a local statement_timeout,
 * through a cursor read a thousand rows at a time, stopping at max_rows or
 * once the cells pass the reply's byte cap; the transaction is always
 * rolled back. One deadline bounds the whole query, every FETCH included,
 * from outside the session: past it the statement is cancelled, whatever
 * the query did to its settings. Nothing of a query survives on the pooled
 * connection: DISCARD ALL drops session locks, settings, temporary tables,
 * prepared statements and LISTENs, and a connection that cannot be cleaned
 * is closed. The role in the DSN should itself
 * be read-only (SELECT grants only): the transaction is the second wall,
 * meta_sql_check the first. Values become JSON by the column's type:
 * integers and exact numerics as numbers while a double holds them
 * exactly, larger ones as strings, NULL as null.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "mk_json.h"
#include "mk_time.h"

typedef struct {
	mk_db_pool *pool;
} pg_wh;

void *meta_pg_new(const char *dsn)
{
	pg_wh *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	if (!(w->pool = mk_db_pool_new(dsn, NULL, 8, 5000))) {
		free(w);
		return NULL;
	}
	return w;
}

static void pg_free(void *p)
{
	pg_wh *w = p;

	if (!w)
		return;
	mk_db_pool_free(w->pool);
	free(w);
}

/* Schemas of the warehouse's own data: not Postgres's catalogs. */
#define USER_SCHEMAS(col)                                                                          \
	col " NOT IN ('pg_catalog', 'information_schema') AND " col " NOT LIKE 'pg\\_%'"

static const char tables_sql[] =
    "SELECT coalesce(json_agg(json_build_object("
    " 'schema_name', t.table_schema, 'name', t.table_name,"
    " 'description', obj_description(c.oid, 'pg_class'),"
    " 'row_count', CASE WHEN c.reltuples >= 0 THEN c.reltuples::bigint END,"
    " 'bytes', pg_total_relation_size(c.oid),"
    " 'kind', CASE t.table_type WHEN 'BASE TABLE' THEN 'TABLE' ELSE t.table_type END,"
    " 'partitioning', CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END)"
    " ORDER BY t.table_schema, t.table_name), '[]')"
    " FROM information_schema.tables t"
    " JOIN pg_namespace n ON n.nspname = t.table_schema"
    " JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = t.table_name"
    " WHERE " USER_SCHEMAS("t.table_schema");

static const char columns_sql[] =
    "SELECT coalesce(json_agg(json_build_object("
    " 'schema_name', c.table_schema, 'table_name', c.table_name,"
    " 'position', c.ordinal_position, 'name', c.column_name,"
    " 'type', format_type(a.atttypid, a.atttypmod), 'nullable', c.is_nullable = 'YES',"
    " 'mode', CASE WHEN c.is_nullable = 'YES' THEN 'NULLABLE' ELSE 'REQUIRED' END,"
    " 'description', col_description(k.oid, a.attnum))"
    " ORDER BY c.table_schema, c.table_name, c.ordinal_position), '[]')"
    " FROM information_schema.columns c"
    " JOIN pg_namespace n ON n.nspname = c.table_schema"
    " JOIN pg_class k ON k.relnamespace = n.oid AND k.relname = c.table_name"
    " JOIN pg_attribute a ON a.attrelid = k.oid AND a.attname = c.column_name"
    " WHERE " USER_SCHEMAS("c.table_schema");

static char *one_text(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = mk_db_exec(c, sql, 0, NULL, err, errlen, NULL);
	char *s;

	if (!r)
		return NULL;
	s = strdup(PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "[]");
	PQclear(r);
	if (!s)
		snprintf(err, errlen, "out of memory");
	return s;
}

static int pg_snapshot(void *p, char **tables, char **columns, char *err, size_t errlen)
{
	pg_wh *w = p;
	PGconn *c = mk_db_acquire(w->pool, 5000, err, errlen);
	char *t = NULL, *k = NULL;

	if (!c)
		return -1;
	/* One snapshot for both reads, so tables and columns agree. */
	PQclear(PQexec(c, "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"));
	t = one_text(c, tables_sql, err, errlen);
	if (t)
		k = one_text(c, columns_sql, err, errlen);
	PQclear(PQexec(c, "ROLLBACK"));
	mk_db_release(w->pool, c);
	if (!t || !k) {
		free(t);
		free(k);
		return -1;
	}
	*tables = t;
	*columns = k;
	return 0;
}

/* ------------------------------------------------------------------ values */

/* The type's short name on the wire; "other" for the rest. */
static const char *type_name(Oid t)
{
	switch (t) {
	case 16: return "bool";
	case 20:
	case 21:
	case 23:
	case 26: return "int";
	case 700:
	case 701: return "float";
	case 1700: return "numeric";
	case 790: return "money";
	case 18:
	case 19:
	case 25:
	case 1042:
	case 1043: return "text";
	case 1082: return "date";
	case 1083:
	case 1266: return "time";
	case 1114: return "timestamp";
	case 1184: return "timestamptz";
	case 1186: return "interval";
	case 114:
	case 3802: return "json";
	case 2950: return "uuid";
	case 17: return "bytes";
	case 1000:
	case 1005:
	case 1007:
	case 1016:
	case 1009:
	case 1015:
	case 1021:
	case 1022:
	case 1231:
	case 1182:
	case 1115:
	case 1185: return "array";
	default: return "other";
	}
}

int meta_exact_decimal(const char *s)
{
	int digits = 0, seen = 0;
	const char *p = s;

	if (*p == '-')
		p++;
	if (!isdigit((unsigned char)*p))
		return 0;
	for (; *p; p++) {
		if (*p == '.')
			continue;
		if (!isdigit((unsigned char)*p))
			return 0; /* NaN, Infinity, exponents */
		if (*p != '0' || seen) {
			seen = 1;
			digits++;
		}
	}
	/* Trailing zeros after the point count, which is conservative. */
	return digits <= 15;
}

static cJSON *value_json(const PGresult *r, int row, int col)
{
	const char *v;
	Oid t = PQftype(r, col);

	if (PQgetisnull(r, row, col))
		return cJSON_CreateNull();
	v = PQgetvalue(r, row, col);
	switch (t) {
	case 16: return cJSON_CreateBool(v[0] == 't');
	case 20:
	case 21:
	case 23:
	case 26:
	case 1700:
		if (meta_exact_decimal(v))
			return cJSON_CreateNumber(strtod(v, NULL));
		return cJSON_CreateString(v);
	case 700:
	case 701: {
		char *end;
		double d;

		errno = 0;
		d = strtod(v, &end);
		if (*end || errno || !isfinite(d))
			return cJSON_CreateString(v);
		return cJSON_CreateNumber(d);
	}
	case 114:
	case 3802: {
		cJSON *j = cJSON_ParseWithLength(v, strlen(v));

		return j ? j : cJSON_CreateString(v);
	}
	default: return cJSON_CreateString(v);
	}
}

/* ------------------------------------------------------------------ query */

/* Map a failed statement to the reply's error. */
static mk_err classify(const char *state)
{
	if (strcmp(state, "57014") == 0) /* query_canceled: statement_timeout */
		return MK_E_DEADLINE;
	if (strncmp(state, "08", 2) == 0 || strncmp(state, "57P", 3) == 0 ||
	    strncmp(state, "53", 2) == 0)
		return MK_E_UNAVAILABLE;
	return MK_E_VALIDATION;
}

/* Rows fetched from the cursor at a time. */
#define FETCH_ROWS 1000

/* The result's columns, from the first FETCH's description. */
static void add_columns(cJSON *cols, const PGresult *r)
{
	int j;

	for (j = 0; j < PQnfields(r); j++) {
		cJSON *col = cJSON_CreateObject();

		cJSON_AddStringToObject(col, "name", PQfname(r, j));
		cJSON_AddStringToObject(col, "type", type_name(PQftype(r, j)));
		cJSON_AddItemToArray(cols, col);
	}
}

static mk_err pg_query(void *p, const meta_wh_query *q, cJSON **out, long long *bytes, char *err,
                       size_t errlen)
{
	pg_wh *w = p;
	char state[6] = "", setto[64], fetch[64], junk[160], *decl = NULL;
	size_t dlen = strlen(q->sql) + 64;
	long long kept = 0, seen = 0;
	PGresult *r = NULL;
	PGconn *c;
	cJSON *res = NULL, *cols = NULL, *rows = NULL;
	mk_err e = MK_OK;
	int i, j, n, nf, more = 0, clean;
	int64_t deadline = mk_mono_ms() + q->timeout_ms;

	*bytes = 0;
	if (!(c = mk_db_acquire(w->pool, 5000, err, errlen)))
		return MK_E_UNAVAILABLE;
	if (!(decl = malloc(dlen))) {
		snprintf(err, errlen, "out of memory");
		e = MK_E_INTERNAL;
		goto out;
	}
	/* The newline ends a trailing "--" comment of the statement. */
	snprintf(decl, dlen, "DECLARE mark_q NO SCROLL CURSOR FOR\n%s\n", q->sql);
	snprintf(setto, sizeof(setto), "SET LOCAL statement_timeout = %lld", q->timeout_ms);
	snprintf(fetch, sizeof(fetch), "FETCH FORWARD %d FROM mark_q", FETCH_ROWS);
	r = mk_db_exec_until(c, "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
	                     deadline, err, errlen, state);
	if (r) {
		PQclear(r);
		r = mk_db_exec_until(c, setto, deadline, err, errlen, state);
	}
	if (r) {
		PQclear(r);
		r = mk_db_exec_until(c, decl, deadline, err, errlen, state);
	}
	/*
	 * Batches until max_rows are kept or the cells pass max_bytes; one row
	 * more tells whether the result was cut.
	 */
	while (r) {
		PQclear(r);
		if (!(r = mk_db_exec_until(c, fetch, deadline, err, errlen, state)))
			break;
		if (!res) {
			res = cJSON_CreateObject();
			cols = cJSON_AddArrayToObject(res, "columns");
			rows = cJSON_AddArrayToObject(res, "rows");
			add_columns(cols, r);
		}
		n = PQntuples(r);
		nf = PQnfields(r);
		for (i = 0; i < n; i++) {
			cJSON *row;

			if (kept >= q->max_rows || seen > q->max_bytes) {
				more = 1;
				break;
			}
			row = cJSON_CreateArray();
			for (j = 0; j < nf; j++) {
				cJSON_AddItemToArray(row, value_json(r, i, j));
				int len = PQgetlength(r, i, j);

				/* As the reply will hold it: long text is cut there. */
				seen += (len < META_CELL_MAX_BYTES ? len : META_CELL_MAX_BYTES) + 3;
			}
			cJSON_AddItemToArray(rows, row);
			kept++;
		}
		if (more || n < FETCH_ROWS)
			break;
	}
	if (!r) {
		e = classify(state);
		if (e == MK_E_DEADLINE)
			snprintf(
			    err, errlen,
			    "the query ran longer than %lld ms (METADATA_QUERY_TIMEOUT) and was "
			    "cancelled",
			    q->timeout_ms);
		cJSON_Delete(res);
		res = NULL;
		goto out;
	}
	cJSON_AddBoolToObject(res, "truncated", more);
	if (more && seen > q->max_bytes)
		cJSON_AddStringToObject(res, "truncated_reason", "bytes");
	cJSON_AddNumberToObject(res, "bytes_processed", 0);
	*out = res;
out:
	if (r)
		PQclear(r);
	clean = PQtransactionStatus(c) == PQTRANS_IDLE ||
	        PQtransactionStatus(c) == PQTRANS_INTRANS ||
	        PQtransactionStatus(c) == PQTRANS_INERROR;
	if (clean && PQtransactionStatus(c) != PQTRANS_IDLE) {
		r = mk_db_exec_until(c, "ROLLBACK", mk_mono_ms() + MK_DB_CANCEL_WAIT_MS, junk,
		                     sizeof(junk), NULL);
		clean = r != NULL;
		PQclear(r);
	}
	if (clean) {
		r = mk_db_exec_until(c, "DISCARD ALL", mk_mono_ms() + MK_DB_CANCEL_WAIT_MS, junk,
		                     sizeof(junk), NULL);
		clean = r != NULL;
		PQclear(r);
	}
	if (clean)
		mk_db_release(w->pool, c);
	else
		mk_db_discard(w->pool, c);
	free(decl);
	return e;
}

const meta_wh_ops meta_pg_ops = {
    .kind = "postgres",
    .dialect = META_SQL_POSTGRES,
    .snapshot = pg_snapshot,
    .query = pg_query,
    .free = pg_free,
};
