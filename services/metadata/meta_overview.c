/*
 * meta_overview.c - meta.overview: what the model is told about the
 * warehouse on every turn, whatever the question: its kind and SQL
 * dialect, its schemas (or datasets) with their table counts, and the
 * most used tables (by the recent queries of catalog.queries, then the
 * largest) with their descriptions, within a budget of characters and
 * tables. With `near`, also the catalog's tables whose names are closest
 * to a name the model got wrong (meta_closest_names).
 *
 * Catalog text comes from the warehouse: names and descriptions are cut
 * and their control characters replaced before they reach the text.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metadata.h"
#include "mk_buf.h"
#include "mk_json.h"

/* A description in the overview keeps at most this many bytes. */
#define DESC_MAX 160
/* A name in the overview keeps at most this many bytes. */
#define NAME_MAX_BYTES 128
/* Recent successful queries whose text counts a table as used. */
#define RECENT_QUERIES "500"
/* Closest names given for `near`. */
#define CLOSEST_MAX 5

const char *meta_dialect_text(const metadata *m)
{
	return m->wh_ops->dialect == META_SQL_BIGQUERY
	           ? "BigQuery GoogleSQL: name tables dataset.table, in backquotes "
	             "when a name has dashes; reach nested and repeated fields "
	             "with dots and UNNEST"
	           : "PostgreSQL: name tables schema.table";
}

void meta_text_clean(mk_buf *b, const char *s, size_t max)
{
	size_t n = strlen(s), i;

	if (n > max) {
		n = max;
		/* Do not cut a UTF-8 sequence in two. */
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		mk_buf_append(b, c < 0x20 || c == 0x7f ? " " : &s[i], 1);
	}
	if (n < strlen(s))
		mk_buf_puts(b, "...");
}

/* ------------------------------------------------------------------ closest names */

/* Levenshtein distance of a and b, lower-cased; both at most 255 bytes are read. */
static int distance(const char *a, const char *b)
{
	int prev[256], cur[256];
	size_t la = strlen(a), lb = strlen(b), i, j;

	la = la > 255 ? 255 : la;
	lb = lb > 255 ? 255 : lb;
	for (j = 0; j <= lb; j++)
		prev[j] = (int)j;
	for (i = 1; i <= la; i++) {
		cur[0] = (int)i;
		for (j = 1; j <= lb; j++) {
			int sub = prev[j - 1] + (tolower((unsigned char)a[i - 1]) !=
			                         tolower((unsigned char)b[j - 1]));
			int del = prev[j] + 1, ins = cur[j - 1] + 1;

			cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
		}
		memcpy(prev, cur, sizeof(int) * (lb + 1));
	}
	return prev[lb];
}

static const char *bare(const char *name)
{
	const char *dot = strrchr(name, '.');

	return dot ? dot + 1 : name;
}

static int contains_ci(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	if (!n)
		return 0;
	for (; *hay; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return 1;
	return 0;
}

/* How far a candidate is from the name: edit distance of the bare names, halved on containment. */
static int score(const char *name, const char *cand)
{
	const char *a = bare(name), *b = bare(cand);
	int d = distance(a, b);

	if (contains_ci(a, b) || contains_ci(b, a))
		d /= 2;
	/* The same schema as asked for is a little closer. */
	if (a != name && strncasecmp(name, cand, (size_t)(a - name)) == 0)
		d = d > 0 ? d - 1 : 0;
	return d;
}

size_t meta_closest_names(const char *name, const char *const *cands, size_t n, size_t k,
                          size_t *out)
{
	size_t got = 0, i, j;
	int *best = k ? calloc(k, sizeof(int)) : NULL;
	size_t alen = strlen(bare(name));

	if (!best)
		return 0;
	for (i = 0; i < n; i++) {
		size_t blen = strlen(bare(cands[i]));
		int d = score(name, cands[i]);

		/* Nothing in common: not a near name. */
		if ((size_t)d >= (alen > blen ? alen : blen))
			continue;
		/* Insert by distance, then by name. */
		for (j = got; j > 0; j--) {
			if (best[j - 1] < d ||
			    (best[j - 1] == d && strcmp(cands[out[j - 1]], cands[i]) <= 0))
				break;
			if (j < k) {
				best[j] = best[j - 1];
				out[j] = out[j - 1];
			}
		}
		if (j < k) {
			best[j] = d;
			out[j] = i;
			if (got < k)
				got++;
		}
	}
	free(best);
	return got;
}

/* ------------------------------------------------------------------ meta.overview */

static const char schemas_sql[] =
    "SELECT schema_name, count(*) FROM tables WHERE source_id = $1 AND removed_at IS NULL "
    "GROUP BY schema_name ORDER BY count(*) DESC, schema_name";

/* The tables, most used first: uses in the recent queries, then curated, then size. */
static const char top_sql[] =
    "WITH q AS (SELECT lower(sql) AS s FROM queries WHERE status = 'ok' AND "
    "(source_id = $1 OR source_id IS NULL) ORDER BY id DESC LIMIT " RECENT_QUERIES ") "
    "SELECT t.schema_name, t.name, coalesce(t.description_curated, t.description), "
    "t.row_count, (SELECT count(*) FROM q WHERE strpos(q.s, lower(t.name)) > 0) AS uses "
    "FROM tables t WHERE t.source_id = $1 AND t.removed_at IS NULL "
    "ORDER BY uses DESC, t.description_curated IS NOT NULL DESC, "
    "t.row_count DESC NULLS LAST, t.schema_name, t.name LIMIT $2::int";

static const char names_sql[] =
    "SELECT schema_name || '.' || name FROM tables WHERE source_id = $1 AND removed_at IS NULL "
    "ORDER BY 1";

static mk_err closest(PGconn *c, const char *near, cJSON *reply, char *err, size_t errlen)
{
	const char *p[1] = {META_SOURCE_ID};
	PGresult *r = mk_db_exec_prep(c, names_sql, 1, p, err, errlen, NULL);
	cJSON *arr = cJSON_AddArrayToObject(reply, "closest");
	const char **names;
	size_t idx[CLOSEST_MAX], got, i;
	int n;

	if (!r)
		return MK_E_DB;
	n = PQntuples(r);
	if (!(names = calloc((size_t)n + 1, sizeof(*names)))) {
		PQclear(r);
		snprintf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	for (i = 0; i < (size_t)n; i++)
		names[i] = PQgetvalue(r, (int)i, 0);
	got = meta_closest_names(near, names, (size_t)n, CLOSEST_MAX, idx);
	for (i = 0; i < got; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(names[idx[i]]));
	free(names);
	PQclear(r);
	return MK_OK;
}

mk_err meta_overview(META_HANDLER_ARGS)
{
	long long budget = m->cfg->overview_budget, ntop = m->cfg->overview_tables;
	const char *near = mk_json_str(req->body, "near");
	char lim[24];
	const char *p[2] = {META_SOURCE_ID, lim};
	PGresult *r = NULL;
	PGconn *c;
	cJSON *schemas, *tables;
	mk_buf b, line;
	mk_err e = MK_OK;
	long long total = 0;
	int i, n, shown = 0, cut = 0;

	mk_json_int(req->body, "budget", &budget);
	mk_json_int(req->body, "tables", &ntop);
	if (!m->wh_ops) {
		*reply = cJSON_CreateObject();
		cJSON_AddBoolToObject(*reply, "connected", 0);
		return MK_OK;
	}
	if (!(c = mk_svc_db_acquire(&m->svc, req, err, errlen)))
		return MK_E_DB;
	*reply = cJSON_CreateObject();
	cJSON_AddBoolToObject(*reply, "connected", 1);
	cJSON_AddStringToObject(*reply, "kind", m->wh_ops->kind);
	cJSON_AddStringToObject(*reply, "dialect", meta_dialect_text(m));
	schemas = cJSON_AddArrayToObject(*reply, "schemas");
	tables = cJSON_AddArrayToObject(*reply, "tables");
	mk_buf_init(&b, 0);
	mk_buf_init(&line, 0);
	if (!(r = mk_db_exec_prep(c, schemas_sql, 1, p, err, errlen, NULL))) {
		e = MK_E_DB;
		goto out;
	}
	n = PQntuples(r);
	for (i = 0; i < n; i++)
		total += strtoll(PQgetvalue(r, i, 1), NULL, 10);
	mk_buf_puts(&b, m->wh_ops->dialect == META_SQL_BIGQUERY ? "Datasets:" : "Schemas:");
	for (i = 0; i < n; i++) {
		cJSON *s = cJSON_CreateObject();
		long long k = strtoll(PQgetvalue(r, i, 1), NULL, 10);

		cJSON_AddStringToObject(s, "schema", PQgetvalue(r, i, 0));
		cJSON_AddNumberToObject(s, "tables", (double)k);
		cJSON_AddItemToArray(schemas, s);
		/* The list of schemas takes about a quarter of the budget at most. */
		if (cut)
			continue;
		if (b.len > (size_t)budget / 4) {
			mk_buf_printf(&b, ", and %d more", n - i);
			cut = 1;
			continue;
		}
		mk_buf_puts(&b, i ? ", " : " ");
		meta_text_clean(&b, PQgetvalue(r, i, 0), NAME_MAX_BYTES);
		mk_buf_printf(&b, " (%lld table%s)", k, k == 1 ? "" : "s");
	}
	if (n == 0)
		mk_buf_puts(&b, " none yet");
	PQclear(r);
	r = NULL;
	cJSON_AddNumberToObject(*reply, "table_count", (double)total);
	mk_buf_printf(&b, ". %lld table%s in all.\n", total, total == 1 ? "" : "s");
	snprintf(lim, sizeof(lim), "%lld", ntop);
	if (!(r = mk_db_exec_prep(c, top_sql, 2, p, err, errlen, NULL))) {
		e = MK_E_DB;
		goto out;
	}
	n = PQntuples(r);
	if (n > 0)
		mk_buf_puts(&b, n < total ? "The most used tables:\n" : "The tables:\n");
	for (i = 0; i < n; i++) {
		cJSON *t = cJSON_CreateObject();
		char q[600];

		snprintf(q, sizeof(q), "%s.%s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1));
		mk_buf_reset(&line);
		mk_buf_puts(&line, "- ");
		meta_text_clean(&line, q, NAME_MAX_BYTES);
		if (!PQgetisnull(r, i, 3))
			mk_buf_printf(&line, " (~%s rows)", PQgetvalue(r, i, 3));
		if (!PQgetisnull(r, i, 2) && *PQgetvalue(r, i, 2)) {
			mk_buf_puts(&line, ": ");
			meta_text_clean(&line, PQgetvalue(r, i, 2), DESC_MAX);
		}
		mk_buf_puts(&line, "\n");
		if (b.len + line.len > (size_t)budget) {
			cJSON_Delete(t);
			break;
		}
		mk_buf_append(&b, line.data, line.len);
		cJSON_AddStringToObject(t, "table", q);
		meta_json_text(t, "description", r, i, 2);
		meta_json_num(t, "uses", r, i, 4);
		cJSON_AddItemToArray(tables, t);
		shown++;
	}
	if (shown < total)
		mk_buf_printf(&b, "(%lld more: search_tables finds them.)\n", total - shown);
	if (near && *near && (e = closest(c, near, *reply, err, errlen)) != MK_OK)
		goto out;
	cJSON_AddStringToObject(*reply, "text", b.data ? b.data : "");
out:
	if (r)
		PQclear(r);
	mk_db_release(m->svc.db, c);
	if (e != MK_OK) {
		cJSON_Delete(*reply);
		*reply = NULL;
	}
	mk_buf_release(&b);
	mk_buf_release(&line);
	return e;
}
