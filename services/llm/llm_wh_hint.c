/*
 * llm_wh_hint.c - what the model is told when run_sql fails, so that its
 * next try is better: for an unknown column the columns that do exist in
 * the tables the query names (meta.describe), for an unknown table the
 * catalog's closest names (meta.overview's `near`), for a syntax or
 * function error a short hint on the dialect (PostgreSQL or BigQuery
 * GoogleSQL, told apart by the form of the warehouse's message).
 *
 * The classification and the table names of a query are pure
 * (llm_wh_sql_error, llm_wh_sql_tables). Catalog names come from the
 * warehouse: they are cut and their control characters replaced
 * (llm_wh_clean) before they reach the model.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "mk_buf.h"
#include "mk_time.h"

/* Tables of a failed query whose columns are listed, at most. */
#define HINT_TABLES 3
/* Columns listed per table, at most. */
#define HINT_COLUMNS 80
/* Bytes of one name in a hint, at most. */
#define HINT_NAME_MAX 128

static void clean(mk_buf *b, const char *s, size_t max, int lines)
{
	size_t n = strlen(s), i;

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		mk_buf_append(b, (c < 0x20 && !(lines && c == '\n')) || c == 0x7f ? " " : &s[i], 1);
	}
	if (n < strlen(s))
		mk_buf_puts(b, "...");
}

void llm_wh_clean(mk_buf *b, const char *s, size_t max)
{
	clean(b, s, max, 0);
}

void llm_wh_text(mk_buf *b, const char *s, size_t max)
{
	clean(b, s, max, 1);
}

/* Copy the name starting at s (quoted with q, or up to a space, quote or ',') into out. */
static void copy_name(const char *s, char q, char *out, size_t outlen)
{
	size_t n = 0;

	if (q)
		s++;
	while (*s && n + 1 < outlen) {
		if (q ? *s == q
		      : (isspace((unsigned char)*s) || *s == '"' || *s == ',' || *s == '`'))
			break;
		out[n++] = *s++;
	}
	out[n] = '\0';
}

/* The name after prefix in msg (quoted or not), into out; 1 when found. */
static int name_after(const char *msg, const char *prefix, char *out, size_t outlen)
{
	const char *p = strstr(msg, prefix);

	if (!p)
		return 0;
	p += strlen(prefix);
	copy_name(p, *p == '"' || *p == '`' ? *p : 0, out, outlen);
	return out[0] != '\0';
}

llm_sql_error llm_wh_sql_error(const char *msg, char *name, size_t namelen)
{
	name[0] = '\0';
	/* PostgreSQL */
	if (strstr(msg, "does not exist")) {
		if (name_after(msg, "column ", name, namelen))
			return LLM_SQL_UNKNOWN_COLUMN;
		if (name_after(msg, "relation ", name, namelen))
			return LLM_SQL_UNKNOWN_TABLE;
		if (strstr(msg, "function ") || strstr(msg, "operator "))
			return LLM_SQL_DIALECT_POSTGRES;
	}
	if (strstr(msg, "syntax error at") || strstr(msg, "invalid input syntax"))
		return LLM_SQL_DIALECT_POSTGRES;
	/* BigQuery */
	if (name_after(msg, "Unrecognized name: ", name, namelen))
		return LLM_SQL_UNKNOWN_COLUMN;
	if (strstr(msg, "Not found: Table ") &&
	    name_after(msg, "Not found: Table ", name, namelen)) {
		char *colon = strchr(name, ':');

		/* project:dataset.table -> dataset.table */
		if (colon)
			memmove(name, colon + 1, strlen(colon + 1) + 1);
		return LLM_SQL_UNKNOWN_TABLE;
	}
	if (strstr(msg, "Syntax error:") || strstr(msg, "Function not found:") ||
	    strstr(msg, "No matching signature"))
		return LLM_SQL_DIALECT_BIGQUERY;
	return LLM_SQL_OTHER;
}

static int word_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

size_t llm_wh_sql_tables(const char *sql, char names[][LLM_SQL_NAME_MAX], size_t max)
{
	const char *s = sql;
	size_t got = 0;
	int after = 0; /* the last word was FROM or JOIN */

	while (*s && got < max) {
		const char *w;
		size_t n, i;

		if (*s == '\'') {
			/* skip a string literal */
			for (s++; *s && *s != '\''; s++)
				;
			if (*s)
				s++;
			after = 0;
			continue;
		}
		if (after && (*s == '"' || *s == '`' || isalpha((unsigned char)*s) || *s == '_')) {
			char name[LLM_SQL_NAME_MAX];
			size_t k = 0;

			while (*s && k + 1 < sizeof(name) &&
			       (isalnum((unsigned char)*s) || *s == '_' || *s == '.' || *s == '"' ||
			        *s == '`' || *s == '-')) {
				if (*s != '"' && *s != '`')
					name[k++] = *s;
				s++;
			}
			name[k] = '\0';
			after = 0;
			if (!k || word_is(name, k, "lateral") || word_is(name, k, "unnest"))
				continue;
			for (i = 0; i < got && strcmp(names[i], name) != 0; i++)
				;
			if (i == got)
				memcpy(names[got++], name, k + 1);
			continue;
		}
		if (!isalpha((unsigned char)*s)) {
			if (!isspace((unsigned char)*s))
				after = 0;
			s++;
			continue;
		}
		w = s;
		while (isalnum((unsigned char)*s) || *s == '_')
			s++;
		n = (size_t)(s - w);
		after = word_is(w, n, "from") || word_is(w, n, "join");
	}
	return got;
}

/* How long a call may wait: at most `fixed`, and never past deadline (mk_mono_ms). */
static int wait_ms(int64_t deadline, int fixed)
{
	int64_t left = deadline - mk_mono_ms();

	return left < 1 ? 1 : left < fixed ? (int)left : fixed;
}

/* The columns of table, as "Columns of <table>: a, b, c." (nothing when unknown). */
static void columns_of(llm *l, const mk_caller *who, const char *rid, const char *table,
                       int64_t deadline, mk_buf *b)
{
	cJSON *body = cJSON_CreateObject();
	const cJSON *t, *col;
	mk_rpc_result res;
	int n = 0;

	cJSON_AddStringToObject(body, "table", table);
	mk_rpc_call(l->metadata, MK_OP_META_DESCRIBE, rid, who, body, wait_ms(deadline, 10000),
	            &res);
	cJSON_Delete(body);
	t = res.err == MK_OK ? cJSON_GetObjectItemCaseSensitive(res.body, "table") : NULL;
	if (t && mk_json_str(t, "table")) {
		mk_buf_puts(b, "\nColumns of ");
		llm_wh_clean(b, mk_json_str(t, "table"), HINT_NAME_MAX);
		mk_buf_puts(b, ":");
		cJSON_ArrayForEach(col, cJSON_GetObjectItemCaseSensitive(t, "columns"))
		{
			const char *name = mk_json_str(col, "name"),
			           *type = mk_json_str(col, "type");

			if (!name)
				continue;
			if (n++ >= HINT_COLUMNS) {
				mk_buf_puts(b, ", ...");
				break;
			}
			mk_buf_puts(b, n > 1 ? ", " : " ");
			llm_wh_clean(b, name, HINT_NAME_MAX);
			if (type) {
				mk_buf_puts(b, " (");
				llm_wh_clean(b, type, 64);
				mk_buf_puts(b, ")");
			}
		}
		mk_buf_puts(b, ".");
	}
	mk_rpc_result_release(&res);
}

/* The catalog's names closest to name, as "Closest tables in the catalog: a, b." */
static void closest_to(llm *l, const mk_caller *who, const char *rid, const char *name,
                       int64_t deadline, mk_buf *b)
{
	cJSON *body = cJSON_CreateObject();
	const cJSON *c;
	mk_rpc_result res;
	int n = 0;

	cJSON_AddStringToObject(body, "near", name);
	cJSON_AddNumberToObject(body, "tables", 1);
	mk_rpc_call(l->metadata, MK_OP_META_OVERVIEW, rid, who, body, wait_ms(deadline, 10000),
	            &res);
	cJSON_Delete(body);
	if (res.err == MK_OK)
		cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(res.body, "closest"))
		{
			if (!cJSON_IsString(c))
				continue;
			mk_buf_puts(b, n++ ? ", " : "\nClosest tables in the catalog: ");
			llm_wh_clean(b, c->valuestring, HINT_NAME_MAX);
		}
	if (n)
		mk_buf_puts(b, ". Check with describe_table before querying one of them.");
	else if (res.err == MK_OK)
		mk_buf_puts(b, "\nNo table in the catalog has a similar name: use search_tables.");
	mk_rpc_result_release(&res);
}

static const char pg_hint[] =
    "\nPostgreSQL hints: quote identifiers with double quotes (\"Name\"), strings with "
    "single quotes; dates: date_trunc('month', d), d - interval '7 days', extract(year from d), "
    "now(); cast with ::type or CAST(x AS type); name tables schema.table.";
static const char bq_hint[] =
    "\nBigQuery Standard SQL hints: quote names with backquotes (`dataset.table`), strings "
    "with single or double quotes; dates: DATE_TRUNC(d, MONTH), DATE_SUB(d, INTERVAL 7 DAY), "
    "EXTRACT(YEAR FROM d), CURRENT_DATE(); cast with CAST(x AS INT64) or SAFE_CAST; no "
    "::type casts; name tables dataset.table.";

void llm_wh_failure_hint(llm *l, const mk_caller *who, const char *rid, const char *sql,
                         const char *msg, int64_t deadline, mk_buf *b)
{
	char name[LLM_SQL_NAME_MAX], tables[HINT_TABLES][LLM_SQL_NAME_MAX];
	size_t n, i;

	switch (llm_wh_sql_error(msg, name, sizeof(name))) {
	case LLM_SQL_UNKNOWN_COLUMN:
		n = llm_wh_sql_tables(sql, tables, HINT_TABLES);
		for (i = 0; i < n; i++)
			columns_of(l, who, rid, tables[i], deadline, b);
		break;
	case LLM_SQL_UNKNOWN_TABLE: closest_to(l, who, rid, name, deadline, b); break;
	case LLM_SQL_DIALECT_POSTGRES: mk_buf_puts(b, pg_hint); break;
	case LLM_SQL_DIALECT_BIGQUERY: mk_buf_puts(b, bq_hint); break;
	case LLM_SQL_OTHER: break;
	}
}
