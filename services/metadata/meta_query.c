/*
 * meta_query.c - meta.query: the SQL guard, running a checked query on the
 * warehouse through its driver, and the audit log (catalog.queries) that
 * records every query, run or refused.
 *
 * The guard is the first of three walls (then the driver's read-only
 * transaction, then the warehouse role's grants). It reads the statement
 * as Postgres's lexer would - comments, string literals (E'' included),
 * quoted identifiers and dollar quotes are skipped - and accepts exactly
 * one SELECT or WITH ... SELECT: no second statement after a ';', no
 * INSERT/UPDATE/DELETE/MERGE (in a WITH or anywhere), no SELECT ... INTO,
 * no FOR UPDATE/SHARE, and none of the few functions that change the
 * session (set_config could lift the statement timeout), run SQL from a
 * string (query_to_xml) or reach outside it. Names are resolved as
 * Postgres resolves them: a function is found whether its name is plain,
 * schema-qualified, quoted ("set_config") or written with Unicode escapes
 * (U&"\0073et_config"). It errs on refusing: a column literally named
 * "update" must be quoted. It never sees the warehouse, which has its own
 * walls: a read-only transaction, a deadline held from outside, and the
 * role's grants.
 *
 * The reply is bounded: a text cell keeps at most 64 KiB (cut at a
 * character, ending in "…"), and rows stop before the reply's JSON would
 * pass METADATA_QUERY_MAX_BYTES; truncated_reason then says "bytes" (or
 * "rows" when max_rows cut the result).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "metadata.h"
#include "mk_json.h"
#include "mk_log.h"
#include "mk_time.h"

/* ------------------------------------------------------------------ guard */

static int ident_start(int ch)
{
	return isalpha(ch) || ch == '_' || ch >= 0x80;
}

static int ident_char(int ch)
{
	return isalnum(ch) || ch == '_' || ch == '$' || ch >= 0x80;
}

/* Skip a quoted run starting at s[i] == q; returns the index after it, or -1 when unterminated. */
static long skip_quoted(const char *s, long i, char q, int backslash)
{
	for (i++; s[i]; i++) {
		if (backslash && s[i] == '\\' && s[i + 1]) {
			i++;
		} else if (s[i] == q) {
			if (s[i + 1] == q) {
				i++;
				continue;
			}
			return i + 1;
		}
	}
	return -1;
}

/* Functions refused by name (upper case), and by the start of their name. */
static const char *const banned_prefixes[] = {
    "PG_ADVISORY_",  "PG_TRY_ADVISORY_", "DBLINK",        "QUERY_TO_XML",   "CURSOR_TO_XML",
    "SCHEMA_TO_XML", "DATABASE_TO_XML",  "PG_STAT_RESET", "PG_LOGICAL_EMIT"};
static const char *const banned_funcs[] = {
    "SET_CONFIG",
    "PG_TERMINATE_BACKEND",
    "PG_CANCEL_BACKEND",
    "PG_RELOAD_CONF",
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_LS_DIR",
    "LO_IMPORT",
    "LO_EXPORT",
    "DBLINK",
    "DBLINK_EXEC",
    "PG_ADVISORY_LOCK",
    "PG_ADVISORY_XACT_LOCK",
    "PG_NOTIFY",
};

/* Is the upper-case name one of the refused functions? */
static int banned(const char *name)
{
	for (size_t k = 0; k < sizeof(banned_funcs) / sizeof(*banned_funcs); k++)
		if (!strcmp(name, banned_funcs[k]))
			return 1;
	for (size_t k = 0; k < sizeof(banned_prefixes) / sizeof(*banned_prefixes); k++)
		if (!strncmp(name, banned_prefixes[k], strlen(banned_prefixes[k])))
			return 1;
	return 0;
}

static int hexval(int ch)
{
	return isdigit(ch) ? ch - '0' : isxdigit(ch) ? toupper(ch) - 'A' + 10 : -1;
}

/*
 * The name a quoted identifier stands for, upper-cased into word: s[a..b)
 * is its inside, with "" for a quote and, when unicode (U&"..."), \XXXX and
 * \+XXXXXX escapes (\\ for a backslash). -1 when an escape is malformed.
 * Only ASCII matters here: every refused name is ASCII, and a name with
 * anything else cannot be one.
 */
static int quoted_name(const char *s, long a, long b, int unicode, char *word, size_t wlen)
{
	size_t n = 0;

	for (long i = a; i < b; i++) {
		long cp = (unsigned char)s[i];

		if (s[i] == '"' && i + 1 < b && s[i + 1] == '"') {
			i++;
		} else if (unicode && s[i] == '\\') {
			int digits = 4;

			if (i + 1 < b && s[i + 1] == '\\') {
				i++;
			} else {
				if (i + 1 < b && s[i + 1] == '+')
					digits = 6, i++;
				cp = 0;
				for (int k = 0; k < digits; k++) {
					int h = i + 1 < b ? hexval((unsigned char)s[i + 1]) : -1;

					if (h < 0)
						return -1;
					cp = cp * 16 + h;
					i++;
				}
			}
		}
		if (n < wlen - 1)
			word[n++] = cp < 0x80 ? (char)toupper((int)cp) : '?';
	}
	word[n] = '\0';
	return 0;
}

int meta_sql_check(const char *sql, meta_sql_dialect d, char *out, size_t outlen, char *err,
                   size_t errlen)
{
	int bq = d == META_SQL_BIGQUERY;
	char word[64], prev[64] = "";
	long i = 0, end = 0;
	int ntok = 0, nwords = 0, after_semi = 0, in_with = 0;

	while (sql[i]) {
		unsigned char ch = (unsigned char)sql[i];

		if (isspace(ch)) {
			i++;
			continue;
		}
		if ((ch == '-' && sql[i + 1] == '-') || (bq && ch == '#')) {
			while (sql[i] && sql[i] != '\n')
				i++;
			continue;
		}
		if (ch == '/' && sql[i + 1] == '*') {
			int depth = 1;

			for (i += 2; sql[i] && depth; i++) {
				if (sql[i] == '/' && sql[i + 1] == '*')
					depth++, i++;
				else if (sql[i] == '*' && sql[i + 1] == '/')
					depth--, i++;
			}
			if (depth) {
				snprintf(err, errlen, "unterminated /* comment");
				return -1;
			}
			continue;
		}
		if (ch == ';') {
			after_semi = 1;
			i++;
			continue;
		}
		if (after_semi) {
			snprintf(err, errlen,
			         "only one statement is allowed; remove everything after the ';'");
			return -1;
		}
		ntok++;
		if (!bq && (ch == 'U' || ch == 'u') && sql[i + 1] == '&' &&
		    (sql[i + 2] == '"' || sql[i + 2] == '\'')) {
			/* A Unicode-escaped name or string: U&"\0073et_config". */
			long start = i + 2, stop = skip_quoted(sql, start, sql[start], 0);

			if (stop < 0) {
				snprintf(err, errlen, "unterminated Unicode-escaped %s",
				         sql[start] == '"' ? "identifier" : "string");
				return -1;
			}
			if (sql[start] == '"') {
				if (quoted_name(sql, start + 1, stop - 1, 1, word, sizeof(word)) !=
				    0) {
					snprintf(err, errlen, "malformed Unicode escape in a name");
					return -1;
				}
				if (banned(word)) {
					snprintf(err, errlen,
					         "function '%s' is not allowed in a query", word);
					return -1;
				}
			}
			i = stop;
			prev[0] = '\0';
		} else if (ch == '\'' || ch == '"' || (bq && ch == '`')) {
			/* BigQuery: both quotes are strings with backslash escapes, `name` a name.
			 */
			long start = i;

			if ((i = skip_quoted(sql, i, (char)ch, bq)) < 0) {
				snprintf(err, errlen, "unterminated %s",
				         ch == '\'' || (bq && ch == '"') ? "string literal"
				                                         : "quoted identifier");
				return -1;
			}
			/* A quoted name is still the function it names ("set_config"). */
			if ((ch == '"' && !bq) || ch == '`') {
				if (quoted_name(sql, start + 1, i - 1, 0, word, sizeof(word)) ==
				        0 &&
				    banned(word)) {
					snprintf(err, errlen,
					         "function '%s' is not allowed in a query", word);
					return -1;
				}
			}
			prev[0] = '\0';
		} else if (!bq && ch == '$' &&
		           (sql[i + 1] == '$' || ident_start((unsigned char)sql[i + 1]))) {
			long t = i + 1;
			const char *close;

			while (sql[t] && sql[t] != '$' && ident_char((unsigned char)sql[t]))
				t++;
			if (sql[t] != '$') { /* $1 or a stray '$': not a quote */
				i = t;
				continue;
			}
			{
				size_t taglen = (size_t)(t - i + 1);
				char tag[80];

				if (taglen >= sizeof(tag)) {
					snprintf(err, errlen, "dollar-quote tag too long");
					return -1;
				}
				memcpy(tag, sql + i, taglen);
				tag[taglen] = '\0';
				if (!(close = strstr(sql + t + 1, tag))) {
					snprintf(err, errlen, "unterminated dollar-quoted string");
					return -1;
				}
				i = (long)(close - sql) + (long)taglen;
			}
			prev[0] = '\0';
		} else if (ident_start(ch)) {
			size_t n = 0;

			if (!bq && (ch == 'E' || ch == 'e') && sql[i + 1] == '\'') {
				if ((i = skip_quoted(sql, i + 1, '\'', 1)) < 0) {
					snprintf(err, errlen, "unterminated string literal");
					return -1;
				}
				end = i;
				prev[0] = '\0';
				continue;
			}
			while (ident_char((unsigned char)sql[i])) {
				if (n < sizeof(word) - 1)
					word[n++] = (char)toupper((unsigned char)sql[i]);
				i++;
			}
			word[n] = '\0';
			nwords++;
			if (nwords == 1 && strcmp(word, "SELECT") != 0 &&
			    strcmp(word, "WITH") != 0) {
				snprintf(err, errlen,
				         "only SELECT (or WITH ... SELECT) queries are allowed, "
				         "not '%s'",
				         word);
				return -1;
			}
			if (nwords == 1 && strcmp(word, "WITH") == 0)
				in_with = 1;
			if (!strcmp(word, "INSERT") || !strcmp(word, "DELETE") ||
			    !strcmp(word, "MERGE") ||
			    (!strcmp(word, "UPDATE") && strcmp(prev, "FOR") != 0)) {
				snprintf(
				    err, errlen,
				    in_with ? "data-modifying statements (%s) are not allowed, not "
				              "even inside WITH"
				            : "data-modifying statements (%s) are not allowed",
				    word);
				return -1;
			}
			if (!strcmp(prev, "FOR") &&
			    (!strcmp(word, "UPDATE") || !strcmp(word, "SHARE") ||
			     !strcmp(word, "NO") || !strcmp(word, "KEY"))) {
				snprintf(err, errlen,
				         "row locks (FOR UPDATE / FOR SHARE) are not allowed in a "
				         "read-only "
				         "query");
				return -1;
			}
			if (!strcmp(word, "INTO")) {
				snprintf(err, errlen,
				         "SELECT ... INTO creates a table and is not allowed; "
				         "select the "
				         "rows instead");
				return -1;
			}
			if (!strcmp(word, "UESCAPE")) {
				snprintf(err, errlen,
				         "UESCAPE is not allowed; use the default \\ escape");
				return -1;
			}
			if (banned(word)) {
				snprintf(err, errlen, "function '%s' is not allowed in a query",
				         word);
				return -1;
			}
			snprintf(prev, sizeof(prev), "%s", word);
			end = i;
			continue;
		} else {
			i++;
			if (ch != '(' && ch != ')')
				prev[0] = '\0';
			if (nwords == 0 && ch != '(') {
				snprintf(err, errlen,
				         "only SELECT (or WITH ... SELECT) queries are allowed");
				return -1;
			}
		}
		end = i;
	}
	if (ntok == 0) {
		snprintf(err, errlen, "the query is empty");
		return -1;
	}
	if (nwords == 0) {
		snprintf(err, errlen, "only SELECT (or WITH ... SELECT) queries are allowed");
		return -1;
	}
	if ((size_t)end >= outlen) {
		snprintf(err, errlen, "the query is too long");
		return -1;
	}
	memcpy(out, sql, (size_t)end);
	out[end] = '\0';
	return 0;
}

/* ------------------------------------------------------------------ audit */

static int audit(metadata *m, const mk_env *req, const char *sql, const char *status,
                 long long rows, long long bytes, long long ms, const char *error)
{
	char rbuf[24], bbuf[24], dbuf[24], ebuf[512];
	const char *p[8] = {req->caller.user_id,
	                    m->wh_ops ? META_SOURCE_ID : NULL,
	                    sql,
	                    status,
	                    rows >= 0 ? rbuf : NULL,
	                    dbuf,
	                    error && *error ? error : NULL,
	                    bbuf};
	PGresult *r;
	PGconn *c;

	snprintf(rbuf, sizeof(rbuf), "%lld", rows);
	snprintf(bbuf, sizeof(bbuf), "%lld", bytes);
	snprintf(dbuf, sizeof(dbuf), "%lld", ms);
	if (!(c = mk_svc_db_acquire(&m->svc, req, ebuf, sizeof(ebuf)))) {
		MK_ERROR("META-AUDIT-FAIL", req->rid, "cannot record a query: %s", ebuf);
		return -1;
	}
	/* bytes: what the warehouse processed (or estimated, when refused); Postgres says 0. */
	r = mk_db_exec_prep(c,
	                    "INSERT INTO queries (user_id, source_id, sql, status, rows, bytes, "
	                    "duration_ms, error) VALUES ($1, $2, $3, $4, $5::bigint, $8::bigint, "
	                    "$6::bigint, $7)",
	                    8, p, ebuf, sizeof(ebuf), NULL);
	mk_db_release(m->svc.db, c);
	if (!r) {
		MK_ERROR("META-AUDIT-FAIL", req->rid, "cannot record a query: %s", ebuf);
		return -1;
	}
	PQclear(r);
	return 0;
}

/* ------------------------------------------------------------------ reply size */

/* U+2026 HORIZONTAL ELLIPSIS in UTF-8. */
static const char cut_marker[] = "\xe2\x80\xa6";
/*
 * Room kept for the reply's fixed members beside columns and rows:
 * {"columns":,"rows":[],"truncated":false,"truncated_reason":"bytes",
 * "bytes_processed":<n>,"duration_ms":<n>}.
 */
#define REPLY_FIXED_BYTES 160

/* Cut a text cell longer than META_CELL_MAX_BYTES in place, at a UTF-8 character boundary. */
static void cap_cell(cJSON *cell)
{
	char *v = cJSON_IsString(cell) ? cell->valuestring : NULL;
	size_t n = META_CELL_MAX_BYTES - (sizeof(cut_marker) - 1);

	if (!v || strnlen(v, META_CELL_MAX_BYTES + 1) <= META_CELL_MAX_BYTES)
		return;
	while (n > 0 && ((unsigned char)v[n] & 0xC0) == 0x80)
		n--;
	memcpy(v + n, cut_marker, sizeof(cut_marker)); /* with its NUL */
}

/*
 * Cap the driver's result to the reply limits: text cells, then whole rows
 * while the printed reply stays within max_bytes. Sets truncated and
 * truncated_reason. 0, or -1 (out of memory).
 */
static int cap_reply(cJSON *res, long long max_bytes)
{
	cJSON *rows = cJSON_GetObjectItem(res, "rows"), *row, *next, *cell;
	const char *reason = NULL;
	size_t used = REPLY_FIXED_BYTES;
	char *s;

	if ((s = cJSON_PrintUnformatted(cJSON_GetObjectItem(res, "columns")))) {
		used += strlen(s);
		free(s);
	}
	for (row = rows ? rows->child : NULL; row; row = next) {
		size_t len;

		next = row->next;
		cJSON_ArrayForEach(cell, row) cap_cell(cell);
		if (!(s = cJSON_PrintUnformatted(row)))
			return -1;
		len = strlen(s) + 1; /* the ',' before it */
		free(s);
		if ((long long)(used + len) > max_bytes) {
			for (; row; row = next) {
				next = row->next;
				cJSON_Delete(cJSON_DetachItemViaPointer(rows, row));
			}
			reason = "bytes";
			break;
		}
		used += len;
	}
	/* A driver that stopped reading says why ("bytes"); otherwise it was the row cap. */
	if (!reason && cJSON_IsTrue(cJSON_GetObjectItem(res, "truncated")))
		reason = mk_json_str(res, "truncated_reason") ? "bytes" : "rows";
	cJSON_DeleteItemFromObject(res, "truncated_reason");
	if (reason) {
		cJSON_DeleteItemFromObject(res, "truncated");
		cJSON_AddBoolToObject(res, "truncated", 1);
		cJSON_AddStringToObject(res, "truncated_reason", reason);
	}
	return 0;
}

/* ------------------------------------------------------------------ meta.query */

mk_err meta_query(META_HANDLER_ARGS)
{
	const char *sql = mk_json_str(req->body, "sql");
	long long max_rows = m->cfg->query_max_rows, timeout = m->cfg->query_timeout_ms, rows = 0;
	long long bytes = 0;
	meta_wh_query q;
	size_t n = strlen(sql) + 1;
	char *checked = NULL;
	cJSON *res = NULL;
	int64_t t0;
	mk_err e;

	if (!req->caller.user_id[0]) {
		snprintf(err, errlen, "no authenticated caller");
		return MK_E_UNAUTHENTICATED;
	}
	if (mk_json_int(req->body, "max_rows", &max_rows) == 0 && max_rows > m->cfg->query_max_rows)
		max_rows = m->cfg->query_max_rows;
	if (!m->wh_ops) {
		snprintf(err, errlen, "no warehouse is configured");
		audit(m, req, sql, "rejected", -1, 0, 0, err);
		return MK_E_UNAVAILABLE;
	}
	if (!(checked = malloc(n))) {
		snprintf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	if (meta_sql_check(sql, m->wh_ops->dialect, checked, n, err, errlen) != 0) {
		free(checked);
		audit(m, req, sql, "rejected", -1, 0, 0, err);
		return MK_E_VALIDATION;
	}
	/* The query stops at the request's deadline if that comes first. */
	if (req->deadline_ms) {
		int64_t left = req->deadline_ms - mk_now_ms();

		if (left <= 0) {
			free(checked);
			snprintf(err, errlen, "the request deadline passed before the query ran");
			return MK_E_DEADLINE;
		}
		if (left < timeout)
			timeout = left;
	}
	t0 = mk_mono_ms();
	q.sql = checked;
	q.user_id = req->caller.user_id;
	q.max_rows = max_rows;
	q.max_bytes = m->cfg->query_max_bytes;
	q.timeout_ms = timeout;
	e = m->wh_ops->query(m->wh, &q, &res, &bytes, err, errlen);
	free(checked);
	if (e == MK_OK && cap_reply(res, m->cfg->query_max_bytes) != 0) {
		cJSON_Delete(res);
		res = NULL;
		snprintf(err, errlen, "out of memory");
		e = MK_E_INTERNAL;
	}
	if (e == MK_OK)
		rows = cJSON_GetArraySize(cJSON_GetObjectItem(res, "rows"));
	meta_metrics_query(m->cfg->warehouse_kind, e == MK_OK, rows, bytes,
	                   (double)(mk_mono_ms() - t0) / 1e3);
	if (audit(m, req, sql, e == MK_OK ? "ok" : "error", e == MK_OK ? rows : -1, bytes,
	          (long long)(mk_mono_ms() - t0), e == MK_OK ? NULL : err) != 0 &&
	    e == MK_OK) {
		cJSON_Delete(res);
		snprintf(err, errlen, "the query could not be recorded");
		return MK_E_DB;
	}
	if (e != MK_OK)
		return e;
	cJSON_AddNumberToObject(res, "duration_ms", (double)(mk_mono_ms() - t0));
	*reply = res;
	return MK_OK;
}

/* ------------------------------------------------------------------ meta.usage */

mk_err meta_usage(META_HANDLER_ARGS)
{
	static const char *const fields[] = {"warehouse_bytes", "warehouse_queries", NULL};
	PGconn *c = req->caller.user_id[0] ? mk_svc_db_acquire(&m->svc, req, err, errlen) : NULL;
	mk_err e;

	if (req->caller.user_id[0] && !c)
		return MK_E_DB;
	/* days = 1 is today (UTC) alone; each more adds the day before. Refused queries count
	 * nothing: BigQuery bills no dry run. */
	e = mk_svc_usage_days(c, req,
	                      "SELECT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, "
	                      "coalesce(sum(bytes) FILTER (WHERE status = 'ok'), 0), count(*) "
	                      "FROM queries WHERE user_id = $1 "
	                      "AND at >= (date_trunc('day', now() AT TIME ZONE 'UTC') - "
	                      "($2::int - 1) * interval '1 day') AT TIME ZONE 'UTC' "
	                      "GROUP BY day ORDER BY day DESC",
	                      fields, reply, err, errlen);
	if (c)
		mk_db_release(m->svc.db, c);
	return e;
}
