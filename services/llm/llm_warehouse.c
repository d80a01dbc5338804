/*
 * llm_warehouse.c - what a chat turn knows and asks of the warehouse,
 * through the metadata service: the tables relevant to the question (put
 * in the prompt), and the tools `run_sql`, `search_tables` and
 * `describe_table`. A query's full result is also put into the chat's
 * sandbox as a CSV file, so the next Python step can load it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm.h"
#include "mk_time.h"
#include "mk_b64.h"
#include "mk_buf.h"
#include "mk_log.h"

/* Rows of a query result shown to the model and kept in the answer's tables. */
#define SHOWN_ROWS 20

const llm_tool llm_wh_tools[] = {
    {"run_sql",
     "Run one read-only SQL query (SELECT or WITH) on the data warehouse. Returns the columns "
     "and first rows; the full result is also saved in the Python session's working directory "
     "as a CSV file (named in the result) for run_python to load with pandas.",
     "{\"type\":\"object\",\"properties\":{\"sql\":{\"type\":\"string\",\"description\":"
     "\"one SELECT statement\"}},\"required\":[\"sql\"]}"},
    {"search_tables", "Find warehouse tables relevant to a topic: names, descriptions and columns.",
     "{\"type\":\"object\",\"properties\":{\"query\":{\"type\":\"string\"}},\"required\":"
     "[\"query\"]}"},
    {"describe_table",
     "Describe one warehouse table in full (schema.table): columns, types, descriptions.",
     "{\"type\":\"object\",\"properties\":{\"table\":{\"type\":\"string\"}},\"required\":"
     "[\"table\"]}"},
};
const size_t llm_wh_ntools = sizeof(llm_wh_tools) / sizeof(llm_wh_tools[0]);

/* Bytes of the overview and of the search hits put in the prompt, at most (metadata budgets them).
 */
#define CONTEXT_TEXT_MAX (256 * 1024)

char *llm_wh_context(llm *l, const mk_caller *who, const char *rid, const char *question,
                     int *connected)
{
	cJSON *body;
	mk_rpc_result ov, hits;
	const char *kind, *dialect, *text;
	int on = 0;
	mk_buf b;

	*connected = 0;
	if (!l->metadata)
		return NULL;
	body = cJSON_CreateObject();
	mk_rpc_call(l->metadata, MK_OP_META_OVERVIEW, rid, who, body, 10000, &ov);
	cJSON_Delete(body);
	if (ov.err != MK_OK || mk_json_bool(ov.body, "connected", &on) != 0 || !on) {
		mk_rpc_result_release(&ov);
		return NULL;
	}
	*connected = 1;
	kind = mk_json_str(ov.body, "kind");
	dialect = mk_json_str(ov.body, "dialect");
	text = mk_json_str(ov.body, "text");
	mk_buf_init(&b, 0);
	mk_buf_printf(&b,
	              "A data warehouse is connected (%s). Query it with run_sql; find tables "
	              "with search_tables and read their columns with describe_table.",
	              kind && strcmp(kind, "bigquery") == 0 ? "bigquery" : "postgres");
	if (dialect && *dialect) {
		mk_buf_puts(&b, " SQL dialect: ");
		llm_wh_clean(&b, dialect, 1024);
		mk_buf_puts(&b, ".");
	}
	if (text && *text) {
		mk_buf_puts(&b, "\n");
		llm_wh_text(&b, text, CONTEXT_TEXT_MAX);
	}
	mk_rpc_result_release(&ov);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "question", question);
	mk_rpc_call(l->metadata, MK_OP_META_SEARCH, rid, who, body, 10000, &hits);
	cJSON_Delete(body);
	text = hits.err == MK_OK ? mk_json_str(hits.body, "text") : NULL;
	if (text && *text &&
	    cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(hits.body, "tables")) > 0) {
		mk_buf_puts(&b, "\nTables that may be relevant to the question:\n");
		llm_wh_text(&b, text, CONTEXT_TEXT_MAX);
	}
	mk_rpc_result_release(&hits);
	return mk_buf_steal(&b);
}

/* One CSV field, quoted when it needs to be. */
static void csv_field(mk_buf *b, const cJSON *v)
{
	const char *s;
	char num[64];

	if (!v || cJSON_IsNull(v))
		return;
	if (cJSON_IsString(v)) {
		s = v->valuestring;
	} else if (cJSON_IsBool(v)) {
		s = cJSON_IsTrue(v) ? "true" : "false";
	} else if (cJSON_IsNumber(v)) {
		snprintf(num, sizeof(num), "%.17g", v->valuedouble);
		s = num;
	} else {
		char *j = cJSON_PrintUnformatted(v);

		if (j) {
			cJSON *tmp = cJSON_CreateString(j);

			free(j);
			csv_field(b, tmp);
			cJSON_Delete(tmp);
		}
		return;
	}
	if (strpbrk(s, ",\"\r\n")) {
		mk_buf_puts(b, "\"");
		for (; *s; s++) {
			if (*s == '"')
				mk_buf_puts(b, "\"");
			mk_buf_append(b, s, 1);
		}
		mk_buf_puts(b, "\"");
	} else {
		mk_buf_puts(b, s);
	}
}

static char *to_csv(const cJSON *columns, const cJSON *rows)
{
	mk_buf b;
	const cJSON *c, *row;
	int i;

	mk_buf_init(&b, 0);
	i = 0;
	cJSON_ArrayForEach(c, columns)
	{
		cJSON *name =
		    cJSON_CreateString(mk_json_str(c, "name") ? mk_json_str(c, "name") : "");

		if (i++)
			mk_buf_puts(&b, ",");
		csv_field(&b, name);
		cJSON_Delete(name);
	}
	mk_buf_puts(&b, "\n");
	cJSON_ArrayForEach(row, rows)
	{
		i = 0;
		cJSON_ArrayForEach(c, row)
		{
			if (i++)
				mk_buf_puts(&b, ",");
			csv_field(&b, c);
		}
		mk_buf_puts(&b, "\n");
	}
	return mk_buf_steal(&b);
}

/* How long a call may wait: at most `fixed`, and never past the turn's deadline (mk_mono_ms). */
static int wait_ms(int64_t deadline, int fixed)
{
	int64_t left = deadline - mk_mono_ms();

	return left < 1 ? 1 : left < fixed ? (int)left : fixed;
}

/* Put text into the chat's workspace at path; 0 on success. */
static int put_file(llm *l, const mk_caller *who, const char *rid, const char *chat,
                    const char *path, const char *text, int64_t deadline)
{
	char *b64 = mk_b64_encode(text, strlen(text));
	cJSON *body = cJSON_CreateObject();
	mk_rpc_result res;
	int rc;

	cJSON_AddStringToObject(body, "chat_id", chat);
	cJSON_AddStringToObject(body, "path", path);
	cJSON_AddStringToObject(body, "data_b64", b64 ? b64 : "");
	free(b64);
	rc = mk_rpc_call(l->executor, MK_OP_EXEC_PUT, rid, who, body, wait_ms(deadline, 60000),
	                 &res) == MK_OK
	         ? 0
	         : -1;
	cJSON_Delete(body);
	mk_rpc_result_release(&res);
	return rc;
}

static char *run_sql(llm *l, const mk_caller *who, const char *rid, const char *chat,
                     const char *sql, int seq, cJSON *step, cJSON *tables, int64_t deadline,
                     int *is_error)
{
	cJSON *body = cJSON_CreateObject(), *table;
	mk_rpc_result res;
	mk_buf b;
	char path[64];
	const cJSON *cols, *rows, *row;
	long long total;
	int i;

	cJSON_AddStringToObject(step, "kind", "sql");
	cJSON_AddStringToObject(step, "sql", sql);
	cJSON_AddStringToObject(body, "sql", sql);
	/* The query's time is the turn's: it waits no longer than the turn may. */
	mk_rpc_call(l->metadata, MK_OP_META_QUERY, rid, who, body, wait_ms(deadline, 120000), &res);
	cJSON_Delete(body);
	mk_buf_init(&b, 256 * 1024);
	if (res.err != MK_OK) {
		cJSON *e = cJSON_AddObjectToObject(step, "error");

		cJSON_AddStringToObject(e, "type", mk_err_code(res.err));
		cJSON_AddStringToObject(e, "message", res.msg);
		*is_error = 1;
		if (res.err == MK_E_VALIDATION) {
			mk_buf_puts(&b, "The query was refused or failed: ");
			llm_wh_clean(&b, res.msg, sizeof(res.msg));
			llm_wh_failure_hint(l, who, rid, sql, res.msg, deadline, &b);
			mk_buf_puts(&b, "\nFix the SQL and try again.");
		} else
			mk_buf_printf(&b, "The warehouse could not run the query (%s: %s).",
			              mk_err_code(res.err), res.msg);
		mk_rpc_result_release(&res);
		return mk_buf_steal(&b);
	}
	cols = cJSON_GetObjectItemCaseSensitive(res.body, "columns");
	rows = cJSON_GetObjectItemCaseSensitive(res.body, "rows");
	total = cJSON_GetArraySize(rows);
	/* The full result, for Python. */
	snprintf(path, sizeof(path), "query_%d.csv", seq);
	{
		char *csv = to_csv(cols, rows);

		if (csv && put_file(l, who, rid, chat, path, csv, deadline) == 0)
			cJSON_AddStringToObject(step, "file", path);
		else
			path[0] = '\0';
		free(csv);
	}
	table = cJSON_CreateObject();
	cJSON_AddStringToObject(table, "name", path[0] ? path : "query");
	cJSON_AddItemToObject(table, "columns", cJSON_CreateArray());
	cJSON_AddItemToObject(table, "dtypes", cJSON_CreateArray());
	{
		const cJSON *c;

		cJSON_ArrayForEach(c, cols)
		{
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(table, "columns"),
			                     cJSON_CreateString(mk_json_str(c, "name")));
			cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(table, "dtypes"),
			                     cJSON_CreateString(mk_json_str(c, "type")
			                                            ? mk_json_str(c, "type")
			                                            : ""));
		}
	}
	{
		cJSON *shown = cJSON_AddArrayToObject(table, "rows");

		i = 0;
		cJSON_ArrayForEach(row, rows)
		{
			if (i++ >= SHOWN_ROWS)
				break;
			cJSON_AddItemToArray(shown, cJSON_Duplicate(row, 1));
		}
	}
	cJSON_AddNumberToObject(table, "total_rows", (double)total);
	cJSON_AddBoolToObject(table, "truncated",
	                      total > SHOWN_ROWS || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
	                                                res.body, "truncated")));
	cJSON_AddItemToObject(step, "table", cJSON_Duplicate(table, 1));
	cJSON_AddItemToArray(tables, table);
	{
		char *cj = mk_json_print(cols);
		char *rj = mk_json_print(cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetArrayItem(tables, cJSON_GetArraySize(tables) - 1), "rows"));

		mk_buf_printf(&b, "The query returned %lld row(s)%s. Columns: %s\nFirst rows: %s\n",
		              total,
		              cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res.body, "truncated"))
		                  ? " (cut at the row limit)"
		                  : "",
		              cj ? cj : "[]", rj ? rj : "[]");
		if (path[0])
			mk_buf_printf(&b,
			              "The full result is in the working directory as %s "
			              "(pd.read_csv('%s')).\n",
			              path, path);
		free(cj);
		free(rj);
	}
	mk_rpc_result_release(&res);
	return mk_buf_steal(&b);
}

/* search_tables / describe_table: the metadata service's text, or its error. */
static char *lookup(llm *l, const mk_caller *who, const char *rid, mk_op op, const char *field,
                    const char *value, cJSON *step, int64_t deadline, int *is_error)
{
	cJSON *body = cJSON_CreateObject();
	mk_rpc_result res;
	char *out;

	cJSON_AddStringToObject(body, field, value);
	mk_rpc_call(l->metadata, op, rid, who, body, wait_ms(deadline, 10000), &res);
	cJSON_Delete(body);
	if (res.err == MK_OK && mk_json_str(res.body, "text")) {
		out = strdup(mk_json_str(res.body, "text"));
	} else {
		mk_buf b;

		mk_buf_init(&b, 0);
		mk_buf_printf(&b, "Not found or unavailable: %s", res.msg);
		out = mk_buf_steal(&b);
		*is_error = 1;
		cJSON_AddStringToObject(step, "error_message", res.msg);
	}
	mk_rpc_result_release(&res);
	return out;
}

char *llm_wh_tool(llm *l, const mk_caller *who, const char *rid, const char *chat, const char *tool,
                  const char *args, int seq, cJSON *step, cJSON *tables, int64_t deadline,
                  int *is_error)
{
	char perr[128];
	cJSON *a = mk_json_parse(args, strlen(args), 16, perr, sizeof(perr));
	const char *v;
	char *out = NULL;

	*is_error = 0;
	if (strcmp(tool, "run_sql") == 0 && a && (v = mk_json_str(a, "sql")) != NULL)
		out = run_sql(l, who, rid, chat, v, seq, step, tables, deadline, is_error);
	else if (strcmp(tool, "search_tables") == 0 && a && (v = mk_json_str(a, "query")) != NULL)
		out =
		    lookup(l, who, rid, MK_OP_META_SEARCH, "question", v, step, deadline, is_error);
	else if (strcmp(tool, "describe_table") == 0 && a && (v = mk_json_str(a, "table")) != NULL)
		out =
		    lookup(l, who, rid, MK_OP_META_DESCRIBE, "table", v, step, deadline, is_error);
	if (!out) {
		mk_buf b;

		mk_buf_init(&b, 0);
		mk_buf_printf(
		    &b, "The %s call's arguments are not valid JSON of the expected shape.", tool);
		out = mk_buf_steal(&b);
		*is_error = 1;
	}
	if (!cJSON_GetObjectItemCaseSensitive(step, "kind"))
		cJSON_AddStringToObject(step, "kind", tool);
	cJSON_Delete(a);
	return out;
}
