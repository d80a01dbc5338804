/*
 * bq_double_sql.c - running a BigQuery query on the double's Postgres.
 *
 * Translation is deliberately small: table references in BigQuery's forms
 * (`proj.ds.t`, `ds.t`, `proj`.ds.t, `proj.ds`.t, unquoted ds.t and
 * proj.ds.t where proj is the fixture's project) become "ds"."t"; other
 * backticked names become double-quoted identifiers; "..." string
 * literals become '...'; '#' comments become '--'. The rest of the SQL
 * goes to Postgres as written. The referenced tables give the job's
 * location, the bytes estimate (the sum of their fixture numBytes) and the
 * nested schemas of jsonb result columns. Queries run in a read-only
 * transaction with a statement timeout; dry runs are only described.
 * Postgres errors become BigQuery's invalidQuery / notFound errors. Every
 * text first gets the statementType BigQuery would give it, read with
 * BigQuery's lexer (raw strings, block comments that do not nest): a dry
 * run describes any kind (a SCRIPT too), a run takes SELECTs only.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bq_double.h"
#include "mk_json.h"
#include "mk_log.h"

#define MAX_PARTS 6
#define PART_LEN  130

typedef struct {
	const cJSON *ds;    /* fixture dataset */
	const cJSON *table; /* fixture table, or NULL when the fixture has none by that id */
	char dsid[PART_LEN], tid[PART_LEN];
} ref;

typedef struct {
	const bq_double *d;
	const char *default_ds;
	mk_buf out;
	ref refs[BQ_MAX_REFS];
	int nrefs;
} xlate;

/* ------------------------------------------------------------------ translation */

static int ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int ident_char(char c)
{
	return ident_start(c) || (c >= '0' && c <= '9');
}

static void add_ref(xlate *x, const char *ds, const char *t)
{
	const cJSON *dsj = bq_catalog_dataset(x->d, ds);
	int i;

	if (!dsj || x->nrefs == BQ_MAX_REFS)
		return;
	for (i = 0; i < x->nrefs; i++)
		if (strcmp(x->refs[i].dsid, ds) == 0 && strcmp(x->refs[i].tid, t) == 0)
			return;
	x->refs[x->nrefs].ds = dsj;
	x->refs[x->nrefs].table = bq_catalog_table(dsj, t);
	snprintf(x->refs[x->nrefs].dsid, PART_LEN, "%s", ds);
	snprintf(x->refs[x->nrefs].tid, PART_LEN, "%s", t);
	x->nrefs++;
}

static void put_quoted(mk_buf *b, const char *s)
{
	mk_buf_puts(b, "\"");
	for (; *s; s++)
		mk_buf_append(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
	mk_buf_puts(b, "\"");
}

/*
 * A path expression at s[*pi]: backticked and plain parts joined by dots.
 * Emits its Postgres form and advances *pi.
 */
static void path(xlate *x, const char *s, size_t *pi)
{
	char parts[MAX_PARTS][PART_LEN];
	const char *raw[MAX_PARTS];
	size_t rawlen[MAX_PARTS], i = *pi, start = *pi, plen = strlen(x->d->project);
	int quoted[MAX_PARTS], np = 0, k, first = 0;

	for (;;) {
		if (s[i] == '`') {
			size_t j = i + 1, p;

			while (s[j] && s[j] != '`')
				j++;
			if (!s[j])
				goto verbatim;
			p = i + 1;
			while (p <= j) {
				size_t q = p;

				while (q < j && s[q] != '.')
					q++;
				if (np == MAX_PARTS || q - p >= PART_LEN)
					goto verbatim;
				memcpy(parts[np], s + p, q - p);
				parts[np][q - p] = '\0';
				quoted[np] = 1;
				raw[np] = s + p;
				rawlen[np] = q - p;
				np++;
				p = q + 1;
			}
			i = j + 1;
		} else if (np == 0 && strchr(x->d->project, '-') &&
		           strncmp(s + i, x->d->project, plen) == 0 && s[i + plen] == '.') {
			memcpy(parts[0], s + i, plen + 1);
			parts[0][plen] = '\0';
			quoted[0] = 0;
			raw[0] = s + i;
			rawlen[0] = plen;
			np = 1;
			i += plen;
		} else if (ident_start(s[i])) {
			size_t j = i;

			while (ident_char(s[j]))
				j++;
			if (np == MAX_PARTS || j - i >= PART_LEN)
				goto verbatim;
			memcpy(parts[np], s + i, j - i);
			parts[np][j - i] = '\0';
			quoted[np] = 0;
			raw[np] = s + i;
			rawlen[np] = j - i;
			np++;
			i = j;
		} else {
			break;
		}
		if (s[i] == '.' && (s[i + 1] == '`' || ident_start(s[i + 1]))) {
			i++;
			continue;
		}
		break;
	}
	if (np >= 3 && strcmp(parts[0], x->d->project) == 0) {
		first = 1;
	} else if (np >= 2 && bq_catalog_dataset(x->d, parts[0])) {
		first = 0;
	} else {
		if (np == 1 && x->default_ds && s[i] != '(') {
			const cJSON *ds = bq_catalog_dataset(x->d, x->default_ds);

			if (ds && bq_catalog_table(ds, parts[0]))
				add_ref(x, x->default_ds, parts[0]);
		}
		for (k = 0; k < np; k++) {
			if (k)
				mk_buf_puts(&x->out, ".");
			if (quoted[k])
				put_quoted(&x->out, parts[k]);
			else
				mk_buf_append(&x->out, raw[k], rawlen[k]);
		}
		*pi = i;
		return;
	}
	add_ref(x, parts[first], parts[first + 1]);
	for (k = first; k < np; k++) {
		if (k > first)
			mk_buf_puts(&x->out, ".");
		if (k < first + 2 || quoted[k])
			put_quoted(&x->out, parts[k]);
		else
			mk_buf_append(&x->out, raw[k], rawlen[k]);
	}
	*pi = i;
	return;
verbatim:
	mk_buf_append(&x->out, s + start, strlen(s + start));
	*pi = start + strlen(s + start);
}

/* A string literal quoted with q at s[*pi], emitted as a Postgres literal. */
static void literal(xlate *x, const char *s, size_t *pi, char q)
{
	size_t i = *pi + 1, j;
	int bs = 0;

	for (j = i; s[j] && s[j] != q; j++) {
		if (s[j] == '\\' && s[j + 1]) {
			bs = 1;
			j++;
		}
	}
	mk_buf_puts(&x->out, bs ? "E'" : "'");
	for (; i < j; i++) {
		if (s[i] == '\\' && i + 1 < j) {
			mk_buf_append(&x->out, s + i, 2);
			i++;
		} else if (s[i] == '\'') {
			mk_buf_puts(&x->out, "''");
		} else {
			mk_buf_append(&x->out, s + i, 1);
		}
	}
	mk_buf_puts(&x->out, "'");
	*pi = s[j] ? j + 1 : j;
}

static void translate(xlate *x, const char *s)
{
	size_t i = 0;

	while (s[i]) {
		char c = s[i];
		size_t j;

		if ((c == '-' && s[i + 1] == '-') || c == '#') {
			j = i + strcspn(s + i, "\n");
			mk_buf_puts(&x->out, "--");
			mk_buf_append(&x->out, s + i + (c == '#' ? 1 : 2),
			              j - i - (c == '#' ? 1 : 2));
			i = j;
		} else if (c == '/' && s[i + 1] == '*') {
			const char *end = strstr(s + i + 2, "*/");

			j = end ? (size_t)(end - s) + 2 : strlen(s);
			mk_buf_append(&x->out, s + i, j - i);
			i = j;
		} else if (c == '\'' || c == '"') {
			literal(x, s, &i, c);
		} else if (c == '`' || ident_start(c)) {
			path(x, s, &i);
		} else if (c >= '0' && c <= '9') {
			j = i;
			while (
			    ident_char(s[j]) || s[j] == '.' ||
			    ((s[j] == '+' || s[j] == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E')))
				j++;
			mk_buf_append(&x->out, s + i, j - i);
			i = j;
		} else {
			mk_buf_append(&x->out, s + i, 1);
			i++;
		}
	}
}

char *bq_sql_translate(const bq_double *d, const char *sql, const char *default_ds)
{
	xlate x;

	memset(&x, 0, sizeof(x));
	x.d = d;
	x.default_ds = default_ds;
	mk_buf_init(&x.out, 0);
	translate(&x, sql);
	return mk_buf_puts(&x.out, "") == 0 ? mk_buf_steal(&x.out) : NULL;
}

/* ------------------------------------------------------------------ schemas */

/* A result-schema copy of a fixture field under name: name, type, mode, nested fields. */
static cJSON *clean_field(const cJSON *f, const char *name)
{
	const char *mode = mk_json_str(f, "mode");
	const cJSON *sub, *subs = cJSON_GetObjectItemCaseSensitive(f, "fields");
	cJSON *o = cJSON_CreateObject(), *arr;

	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "type", mk_json_str(f, "type"));
	cJSON_AddStringToObject(o, "mode", mode ? mode : "NULLABLE");
	if (subs) {
		arr = cJSON_AddArrayToObject(o, "fields");
		cJSON_ArrayForEach(sub, subs)
		{
			cJSON_AddItemToArray(arr, clean_field(sub, mk_json_str(sub, "name")));
		}
	}
	return o;
}

/* A top-level fixture field called name in one of the referenced tables, or NULL. */
static const cJSON *fixture_field(const xlate *x, const char *name)
{
	const cJSON *f;
	int i;

	for (i = 0; i < x->nrefs; i++) {
		cJSON_ArrayForEach(
		    f, cJSON_GetObjectItemCaseSensitive(
		           cJSON_GetObjectItemCaseSensitive(x->refs[i].table, "schema"), "fields"))
		{
			if (strcasecmp(mk_json_str(f, "name"), name) == 0)
				return f;
		}
	}
	return NULL;
}

static const char *type_of_oid(Oid oid)
{
	switch (oid) {
	case 20:
	case 21:
	case 23:
	case 26: return "INTEGER";
	case 700:
	case 701: return "FLOAT";
	case 1700: return "NUMERIC";
	case 16: return "BOOLEAN";
	case 17: return "BYTES";
	case 1082: return "DATE";
	case 1083: return "TIME";
	case 1114: return "DATETIME";
	case 1184: return "TIMESTAMP";
	case 114:
	case 3802: return "JSON";
	default: return "STRING";
	}
}

static cJSON *result_fields(const xlate *x, const PGresult *res)
{
	cJSON *arr = cJSON_CreateArray();
	int i, n = PQnfields(res);

	for (i = 0; i < n; i++) {
		const char *pgname = PQfname(res, i), *type = type_of_oid(PQftype(res, i));
		const cJSON *ff;
		char name[300];
		cJSON *o;

		if (strcmp(pgname, "?column?") == 0)
			snprintf(name, sizeof(name), "f%d_", i);
		else
			snprintf(name, sizeof(name), "%s", pgname);
		ff = fixture_field(x, name);
		if (ff) {
			const char *ft = mk_json_str(ff, "type"), *mode = mk_json_str(ff, "mode");
			int nested = strcmp(ft, "RECORD") == 0 || strcmp(ft, "STRUCT") == 0 ||
			             (mode && strcmp(mode, "REPEATED") == 0);

			if (PQftype(res, i) == 3802 && nested) {
				cJSON_AddItemToArray(arr, clean_field(ff, name));
				continue;
			}
			if ((PQftype(res, i) == 25 && strcmp(ft, "GEOGRAPHY") == 0) ||
			    (PQftype(res, i) == 1700 && strcmp(ft, "BIGNUMERIC") == 0))
				type = ft;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", name);
		cJSON_AddStringToObject(o, "type", type);
		cJSON_AddStringToObject(o, "mode", "NULLABLE");
		cJSON_AddItemToArray(arr, o);
	}
	return arr;
}

/* ------------------------------------------------------------------ running */

static void fail(bq_result *out, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail(bq_result *out, int status, const char *reason, const char *fmt, ...)
{
	va_list ap;

	out->err_status = status;
	snprintf(out->err_reason, sizeof(out->err_reason), "%s", reason);
	va_start(ap, fmt);
	vsnprintf(out->err_message, sizeof(out->err_message), fmt, ap);
	va_end(ap);
	mk_utf8_clip(out->err_message);
}

/* The text between the first pair of double quotes in msg, into buf. */
static void quoted_name(const char *msg, char *buf, size_t len)
{
	const char *a = strchr(msg, '"'), *b = a ? strchr(a + 1, '"') : NULL;
	size_t n = a && b ? (size_t)(b - a - 1) : 0;

	if (n >= len)
		n = len - 1;
	if (n)
		memcpy(buf, a + 1, n);
	buf[n] = '\0';
}

/* Translate a failed statement's error into BigQuery's. */
static void pg_error(const bq_double *d, const PGresult *res, const char *sql,
                     const char *default_ds, bq_result *out)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
	char name[256], at[48] = "";
	long p = pos ? strtol(pos, NULL, 10) : 0, k, line = 1, col = 1;

	if (!state)
		state = "";
	if (!msg)
		msg = PQresultErrorMessage(res);
	for (k = 0; k < p - 1 && sql[k]; k++) {
		if (sql[k] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	if (p > 0)
		snprintf(at, sizeof(at), " at [%ld:%ld]", line, col);
	quoted_name(msg, name, sizeof(name));
	if (strcmp(state, "42P01") == 0) {
		if (strchr(name, '.'))
			fail(out, 404, "notFound",
			     "Not found: Table %s:%s was not found in location %s", d->project,
			     name, out->location);
		else if (default_ds)
			fail(out, 404, "notFound",
			     "Not found: Table %s:%s.%s was not found in location %s", d->project,
			     default_ds, name, out->location);
		else
			fail(
			    out, 400, "invalidQuery",
			    "Table \"%s\" must be qualified with a dataset (e.g. dataset.table).%s",
			    name, at);
	} else if (strcmp(state, "3F000") == 0) {
		fail(out, 404, "notFound", "Not found: Dataset %s:%s was not found in location %s",
		     d->project, name, out->location);
	} else if (strcmp(state, "42703") == 0) {
		fail(out, 400, "invalidQuery", "Unrecognized name: %s%s", name, at);
	} else if (strcmp(state, "42601") == 0) {
		fail(out, 400, "invalidQuery", "Syntax error: %s%s", msg, at);
	} else if (strcmp(state, "57014") == 0) {
		fail(out, 400, "resourcesExceeded",
		     "Query exceeded resource limits: the statement timeout (" BQ_STMT_TIMEOUT
		     ") passed");
	} else {
		fail(out, 400, "invalidQuery", "%s%s", msg, at);
	}
}

static int setup(PGconn *c, const char *default_ds, bq_result *out)
{
	static const char *const stmts[] = {
	    "BEGIN READ ONLY",
	    "SET LOCAL statement_timeout = '" BQ_STMT_TIMEOUT "'",
	    "SET LOCAL TimeZone = 'UTC'",
	    "SET LOCAL DateStyle = 'ISO, YMD'",
	    "SET LOCAL extra_float_digits = 1",
	};
	char err[512], q[200];
	size_t i;
	PGresult *res;

	for (i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
		res = mk_db_exec(c, stmts[i], 0, NULL, err, sizeof(err), NULL);
		if (!res)
			goto bad;
		PQclear(res);
	}
	if (default_ds)
		snprintf(q, sizeof(q), "SET LOCAL search_path TO \"%s\"", default_ds);
	else
		snprintf(q, sizeof(q), "SET LOCAL search_path TO pg_catalog");
	res = mk_db_exec(c, q, 0, NULL, err, sizeof(err), NULL);
	if (!res)
		goto bad;
	PQclear(res);
	return 0;
bad:
	fail(out, 500, "backendError", "bigquery-double: cannot prepare the transaction: %s", err);
	return -1;
}

/* Settle the location from the request and the referenced datasets; -1 after fail(). */
static int locate(const bq_double *d, const xlate *x, const char *location, bq_result *out)
{
	const cJSON *def = x->default_ds ? bq_catalog_dataset(d, x->default_ds) : NULL;
	int i;

	snprintf(out->location, sizeof(out->location), "%s", location && *location ? location : "");
	if (x->default_ds && !def) {
		fail(out, 404, "notFound", "Not found: Dataset %s:%s was not found in location %s",
		     d->project, x->default_ds, *out->location ? out->location : "US");
		return -1;
	}
	for (i = -1; i < x->nrefs; i++) {
		const cJSON *ds = i < 0 ? def : x->refs[i].ds;
		const char *l = ds ? mk_json_str(ds, "location") : NULL;

		if (!l)
			continue;
		if (!*out->location)
			snprintf(out->location, sizeof(out->location), "%s", l);
		if (strcasecmp(out->location, l) != 0) {
			fail(out, 404, "notFound",
			     "Not found: Dataset %s:%s was not found in location %s", d->project,
			     mk_json_str(ds, "id"), out->location);
			return -1;
		}
		snprintf(out->location, sizeof(out->location), "%s", l);
	}
	if (!*out->location)
		snprintf(out->location, sizeof(out->location), "US");
	return 0;
}

/* Skip a quoted run of BigQuery's at s[i] (', " or `, tripled or not, raw or not); the index after.
 */
static size_t skip_bq_quoted(const char *s, size_t i, int raw)
{
	char q = s[i];
	int triple = q != '`' && s[i + 1] == q && s[i + 2] == q;

	for (i += triple ? 3 : 1; s[i]; i++) {
		if (!raw && s[i] == '\\' && s[i + 1]) {
			i++;
		} else if (s[i] == q && (!triple || (s[i + 1] == q && s[i + 2] == q))) {
			return i + (triple ? 3 : 1);
		}
	}
	return i;
}

/*
 * The statementType BigQuery gives a text, read with its lexer: comments
 * (--, #, and block comments, which do not nest), strings with backslash escapes,
 * raw strings (r'...', where a backslash is only a backslash), triple quotes
 * and backquoted names. Two statements or more are a SCRIPT; otherwise the
 * first word says (WITH and a parenthesis are a SELECT).
 */
static void statement_type(const char *s, char out[32])
{
	char first[24] = "";
	size_t i = 0;
	int tokens = 0, statements = 0, raw = 0;

	while (s[i]) {
		unsigned char c = (unsigned char)s[i];

		if (isspace(c)) {
			i++;
		} else if (c == '#' || (c == '-' && s[i + 1] == '-')) {
			while (s[i] && s[i] != '\n')
				i++;
		} else if (c == '/' && s[i + 1] == '*') {
			const char *end = strstr(s + i + 2, "*/");

			i = end ? (size_t)(end - s) + 2 : strlen(s);
		} else if (c == ';') {
			statements += tokens > 0;
			tokens = 0;
			i++;
		} else {
			if (tokens++ == 0 && statements > 0) {
				snprintf(out, 32, "SCRIPT");
				return;
			}
			if (c == '\'' || c == '"' || c == '`') {
				i = skip_bq_quoted(s, i, raw);
				raw = 0;
			} else if (isalpha(c) || c == '_') {
				size_t n = 0, k = i;

				while (isalnum((unsigned char)s[i]) || s[i] == '_')
					i++;
				if (statements == 0 && tokens == 1) {
					for (n = 0; n < i - k && n < sizeof(first) - 1; n++)
						first[n] = (char)toupper((unsigned char)s[k + n]);
					first[n] = '\0';
				}
				/* r, R, rb, br...: the string right after it is raw. */
				raw = i - k <= 2 && strspn(s + k, "rRbB") >= i - k &&
				      (memchr(s + k, 'r', i - k) || memchr(s + k, 'R', i - k)) &&
				      (s[i] == '\'' || s[i] == '"');
			} else {
				if (statements == 0 && tokens == 1 && c == '(')
					snprintf(first, sizeof(first), "SELECT");
				i++;
			}
		}
	}
	if (!strcmp(first, "WITH") || !strcmp(first, "SELECT") || !first[0])
		snprintf(out, 32, "SELECT");
	else if (!strcmp(first, "CREATE") || !strcmp(first, "DROP") || !strcmp(first, "ALTER"))
		snprintf(out, 32, "%s_TABLE", first);
	else if (!strcmp(first, "DECLARE") || !strcmp(first, "SET") || !strcmp(first, "BEGIN") ||
	         !strcmp(first, "IF") || !strcmp(first, "LOOP") || !strcmp(first, "CALL"))
		snprintf(out, 32, "SCRIPT");
	else
		snprintf(out, 32, "%s", first);
}

void bq_sql_run(bq_double *d, const char *sql, const char *default_ds, const char *location,
                int dry, long long cap, bq_result *out)
{
	char err[512];
	PGresult *res = NULL, *end;
	PGconn *c = NULL;
	xlate x;
	int i;

	memset(out, 0, sizeof(*out));
	memset(&x, 0, sizeof(x));
	statement_type(sql, out->stype);
	if (strcmp(out->stype, "SELECT") != 0) {
		/* Dry runs describe any statement; runs are SELECTs only here. */
		if (dry) {
			snprintf(out->location, sizeof(out->location), "%s",
			         location && *location ? location : "US");
			out->fields = cJSON_CreateArray();
		} else {
			fail(out, 400, "invalidQuery",
			     "bigquery-double runs SELECT statements only");
		}
		return;
	}
	x.d = d;
	x.default_ds = default_ds && *default_ds ? default_ds : NULL;
	mk_buf_init(&x.out, 0);
	translate(&x, sql);
	if (!x.out.data) {
		fail(out, 400, "invalidQuery", "Syntax error: Unexpected end of script at [1:1]");
		goto out;
	}
	if (locate(d, &x, location, out) != 0)
		goto out;
	for (i = 0; i < x.nrefs; i++) {
		const cJSON *t = x.refs[i].table;
		long long b = 0;

		if (!t)
			continue;
		if (mk_json_str(t, "numBytes"))
			b = bq_parse_count(mk_json_str(t, "numBytes"));
		else
			mk_json_int(t, "numBytes", &b);
		out->bytes += b > 0 ? b : 0;
	}
	c = mk_db_acquire(d->db, 10000, err, sizeof(err));
	if (!c) {
		fail(out, 503, "backendError", "bigquery-double: no database connection: %s", err);
		goto out;
	}
	if (setup(c, x.default_ds, out) != 0)
		goto out;
	MK_DEBUG("BQD-SQL", NULL, "%s", x.out.data);
	res = PQprepare(c, "", x.out.data, 0, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		pg_error(d, res, x.out.data, x.default_ds, out);
		goto out;
	}
	PQclear(res);
	if (dry) {
		res = PQdescribePrepared(c, "");
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			pg_error(d, res, x.out.data, x.default_ds, out);
			goto out;
		}
	} else {
		long long need = out->bytes > BQ_MIN_BILLED ? out->bytes : BQ_MIN_BILLED;

		res = NULL;
		if (cap >= 0 && cap < need) {
			fail(
			    out, 400, "bytesBilledLimitExceeded",
			    "Query exceeded limit for bytes billed: %lld. %lld or higher required.",
			    cap, need);
			goto out;
		}
		res = PQexecPrepared(c, "", 0, NULL, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			if (PQresultStatus(res) == PGRES_COMMAND_OK)
				fail(out, 400, "invalidQuery",
				     "bigquery-double runs SELECT statements only");
			else
				pg_error(d, res, x.out.data, x.default_ds, out);
			goto out;
		}
	}
	out->fields = result_fields(&x, res);
	if (!dry) {
		out->res = res;
		res = NULL;
	}
out:
	PQclear(res);
	if (c) {
		end = PQexec(c, "ROLLBACK");
		PQclear(end);
		mk_db_release(d->db, c);
	}
	mk_buf_release(&x.out);
}

void bq_result_release(bq_result *res)
{
	PQclear(res->res);
	cJSON_Delete(res->fields);
	res->res = NULL;
	res->fields = NULL;
}
