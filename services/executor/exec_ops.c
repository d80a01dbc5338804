/*
 * exec_ops.c - the exec.* operations of a worker: run code in a chat's
 * session, put/get/list its files, reset or destroy it, hand out
 * artifacts; and the records of all of it (schema exec).
 *
 * Every op acts for the verified caller: a chat's sandbox, files and
 * artifacts belong to the user who first used the chat id, and anyone else
 * gets not_found. Every run is recorded in exec.executions before its reply
 * leaves; images and output files become rows of exec.artifacts, and the
 * reply carries their ids instead of their bytes.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "mk_b64.h"
#include "mk_log.h"
#include "mk_time.h"

/* ------------------------------------------------------------------ checks */

static int chat_id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 64)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._:-", *s))
			return 0;
	return 1;
}

/* A workspace path: relative, no "..", no empty or hidden-dot-only parts, no control bytes. */
int exec_path_ok(const char *p)
{
	const char *seg = p;

	if (!*p || *p == '/' || strlen(p) > 255)
		return 0;
	for (const char *c = p;; c++) {
		if (*c == '/' || *c == '\0') {
			size_t n = (size_t)(c - seg);

			if (n == 0 || (n == 1 && seg[0] == '.') ||
			    (n == 2 && seg[0] == '.' && seg[1] == '.'))
				return 0;
			if (*c == '\0')
				return 1;
			seg = c + 1;
		} else if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '\\') {
			return 0;
		}
	}
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

static const char *mime_of(const char *path)
{
	static const struct {
		const char *ext, *mime;
	} t[] = {
	    {".png", "image/png"},
	    {".jpg", "image/jpeg"},
	    {".jpeg", "image/jpeg"},
	    {".gif", "image/gif"},
	    {".svg", "image/svg+xml"},
	    {".pdf", "application/pdf"},
	    {".csv", "text/csv"},
	    {".tsv", "text/tab-separated-values"},
	    {".txt", "text/plain"},
	    {".md", "text/markdown"},
	    {".json", "application/json"},
	    {".html", "text/html"},
	    {".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"},
	    {".parquet", "application/vnd.apache.parquet"},
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (ends_with(path, t[i].ext))
			return t[i].mime;
	return "application/octet-stream";
}

static const char *str_field(const cJSON *body, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, name);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Milliseconds left before the request's deadline (a default when it has none). */
static int64_t left_ms(const mk_env *req, int64_t dflt)
{
	return req->deadline_ms ? req->deadline_ms - mk_now_ms() : dflt;
}

/* ------------------------------------------------------------------ database */

/*
 * The chat's owner check. create: a chat seen for the first time becomes
 * the caller's. Returns MK_OK, MK_E_NOT_FOUND or MK_E_DB.
 */
static mk_err claim(PGconn *c, const char *chat, const char *owner, int create, char *err,
                    size_t errlen)
{
	const char *p[2] = {chat, owner};
	PGresult *r;
	int mine;

	if (create) {
		r = mk_db_exec_prep(c,
		                    "INSERT INTO sessions (chat_id, owner_id) VALUES ($1, $2) "
		                    "ON CONFLICT (chat_id) DO NOTHING",
		                    2, p, err, errlen, NULL);
		if (!r)
			return MK_E_DB;
		PQclear(r);
	}
	r = mk_db_exec_prep(c, "SELECT owner_id = $2 FROM sessions WHERE chat_id = $1", 2, p, err,
	                    errlen, NULL);
	if (!r)
		return MK_E_DB;
	mine = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!mine) {
		mk_errf(err, errlen, "no chat '%s'", chat);
		return MK_E_NOT_FOUND;
	}
	return MK_OK;
}

/* A statement with binary parameters where lens[i] > 0 marks one (bytea). */
PGresult *exec_bin(PGconn *c, const char *sql, int n, const char *const *vals, const int *lens,
                   int binary_result, char *err, size_t errlen)
{
	int fmts[8] = {0};
	PGresult *r;

	for (int i = 0; i < n && i < 8; i++)
		fmts[i] = lens && lens[i] > 0;
	r = PQexecParams(c, sql, n, NULL, vals, lens, fmts, binary_result);
	if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
		mk_errf(err, errlen, "%s", PQerrorMessage(c));
		PQclear(r);
		return NULL;
	}
	return r;
}

static int tx(PGconn *c, const char *what)
{
	PGresult *r = PQexec(c, what);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK;

	PQclear(r);
	return ok ? 0 : -1;
}

/* Put the chat's kept files into a new sandbox. */
static int restore_files(exec_ops *x, PGconn *c, const char *chat, sbx *box, char *err,
                         size_t errlen)
{
	const char *p[1] = {chat};
	PGresult *r = exec_bin(c, "SELECT path, data FROM files WHERE chat_id = $1 ORDER BY path",
	                       1, p, NULL, 1, err, errlen);
	int i, rc = 0;

	(void)x;
	if (!r)
		return -1;
	for (i = 0; i < PQntuples(r) && rc == 0; i++) {
		char path[256];
		int n = PQgetlength(r, i, 0);

		if (n <= 0 || (size_t)n >= sizeof(path))
			continue;
		memcpy(path, PQgetvalue(r, i, 0), (size_t)n);
		path[n] = '\0';
		rc = sbx_put(box, path, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), err,
		             errlen);
	}
	PQclear(r);
	return rc;
}

/* ------------------------------------------------------------------ exec.run */

/* Store one image or output file as an artifact; replace its bytes in item by the id. */
static int store_artifact(PGconn *c, const char *chat, const char *owner, const char *exec_id,
                          cJSON *item, const char *name, const char *mime, char *err, size_t errlen)
{
	const cJSON *b64 = cJSON_GetObjectItemCaseSensitive(item, "data_b64");
	unsigned char *data;
	size_t len;
	char sz[32];
	const char *vals[6];
	int lens[6] = {0};
	PGresult *r;

	if (!cJSON_IsString(b64))
		return 0;
	data = mk_b64_decode(b64->valuestring, strlen(b64->valuestring), &len);
	if (!data)
		return 0; /* not ours to fail on: the item stays without an id */
	snprintf(sz, sizeof(sz), "%zu", len);
	vals[0] = chat;
	vals[1] = owner;
	vals[2] = exec_id;
	vals[3] = name;
	vals[4] = mime;
	vals[5] = (const char *)data;
	lens[5] = (int)len;
	r = exec_bin(
	    c,
	    "INSERT INTO artifacts (chat_id, owner_id, execution_id, name, mime, data, bytes) "
	    "VALUES ($1, $2, $3, $4, $5, $6::bytea, length($6::bytea)) RETURNING id",
	    6, vals, lens, 0, err, errlen);
	free(data);
	(void)sz;
	if (!r)
		return -1;
	cJSON_DeleteItemFromObjectCaseSensitive(item, "data_b64");
	cJSON_AddStringToObject(item, "artifact_id", PQgetvalue(r, 0, 0));
	if (!cJSON_GetObjectItemCaseSensitive(item, "mime"))
		cJSON_AddStringToObject(item, "mime", mime);
	PQclear(r);
	return 0;
}

static long long str_len(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? (long long)strlen(v->valuestring) : 0;
}

/* Record the run and its artifacts; fills execution_id. One transaction. */
static mk_err record_run(exec_ops *x, PGconn *c, const mk_env *req, const char *chat,
                         const char *code, int generation, int64_t started, int64_t ended,
                         cJSON *res, char *err, size_t errlen)
{
	const cJSON *error = cJSON_GetObjectItemCaseSensitive(res, "error");
	const cJSON *limit = cJSON_GetObjectItemCaseSensitive(res, "limit");
	int lost = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "session_lost"));
	const char *status = cJSON_IsString(limit)   ? "limit"
	                     : lost                  ? "lost"
	                     : cJSON_IsObject(error) ? "error"
	                                             : "ok";
	const char *etype = cJSON_IsObject(error) ? str_field(error, "type") : NULL;
	char gen[16], t0[32], t1[32], so[24], se[24], rb[24], id[64];
	char *printed = cJSON_PrintUnformatted(res);
	const char *p[13];
	PGresult *r;
	cJSON *arr, *item;
	int n = 0;

	snprintf(gen, sizeof(gen), "%d", generation);
	snprintf(t0, sizeof(t0), "%.3f", (double)started / 1000.0);
	snprintf(t1, sizeof(t1), "%.3f", (double)ended / 1000.0);
	snprintf(so, sizeof(so), "%lld", str_len(res, "stdout"));
	snprintf(se, sizeof(se), "%lld", str_len(res, "stderr"));
	snprintf(rb, sizeof(rb), "%zu", printed ? strlen(printed) : (size_t)0);
	free(printed);
	p[0] = chat;
	p[1] = req->caller.user_id;
	p[2] = x->worker_id;
	p[3] = gen;
	p[4] = code;
	p[5] = t0;
	p[6] = t1;
	p[7] = status;
	p[8] = etype;
	p[9] = cJSON_IsString(limit) ? limit->valuestring : NULL;
	p[10] = so;
	p[11] = se;
	p[12] = rb;
	exec_metrics_run(status, p[9], (double)(ended - started) / 1e3);
	if (tx(c, "BEGIN") != 0) {
		mk_errf(err, errlen, "%s", PQerrorMessage(c));
		return MK_E_DB;
	}
	r = mk_db_exec_prep(
	    c,
	    "INSERT INTO executions (chat_id, user_id, worker_id, generation, code, "
	    "  started_at, ended_at, status, error_type, limit_hit, stdout_bytes, "
	    "  stderr_bytes, result_bytes) "
	    "VALUES ($1, $2, $3, $4::int, $5, to_timestamp($6::float8), "
	    "  to_timestamp($7::float8), $8, $9, $10, $11::bigint, $12::bigint, "
	    "  $13::bigint) RETURNING id",
	    13, p, err, errlen, NULL);
	if (!r)
		goto fail;
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	arr = cJSON_GetObjectItemCaseSensitive(res, "images");
	cJSON_ArrayForEach(item, arr)
	{
		char name[48];

		snprintf(name, sizeof(name), "figure-%d.png", ++n);
		if (store_artifact(c, chat, req->caller.user_id, id, item, name, "image/png", err,
		                   errlen) != 0)
			goto fail;
	}
	arr = cJSON_GetObjectItemCaseSensitive(res, "artifacts");
	cJSON_ArrayForEach(item, arr)
	{
		const char *path = str_field(item, "path");

		if (path && store_artifact(c, chat, req->caller.user_id, id, item, path,
		                           mime_of(path), err, errlen) != 0)
			goto fail;
	}
	p[0] = chat;
	p[1] = gen;
	r = mk_db_exec_prep(c,
	                    "UPDATE sessions SET executions = executions + 1, last_used_at = now() "
	                    "WHERE chat_id = $1 AND generation = $2::int",
	                    2, p, err, errlen, NULL);
	if (!r)
		goto fail;
	PQclear(r);
	if (tx(c, "COMMIT") != 0) {
		mk_errf(err, errlen, "%s", PQerrorMessage(c));
		return MK_E_DB;
	}
	cJSON_AddStringToObject(res, "execution_id", id);
	cJSON_AddStringToObject(res, "worker_id", x->worker_id);
	return MK_OK;
fail:
	tx(c, "ROLLBACK");
	return MK_E_DB;
}

static mk_err op_run(exec_ops *x, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	const executor_config *cfg = x->cfg;
	const char *chat = str_field(req->body, "chat_id");
	const char *code = str_field(req->body, "code");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(req->body, "timeout_ms");
	long long timeout = cJSON_IsNumber(t) ? (long long)t->valuedouble : cfg->timeout_ms;
	int64_t left = left_ms(req, timeout + 60000), started, ended;
	exec_session_info info;
	exec_session *s = NULL;
	PGconn *c = NULL;
	cJSON *res = NULL, *sess;
	const char *end = NULL;
	mk_err e;

	if ((long long)strlen(code) > cfg->code_max) {
		mk_errf(err, errlen, "the code is %zu bytes; at most %lld are accepted",
		        strlen(code), cfg->code_max);
		return MK_E_TOO_LARGE;
	}
	if (timeout > cfg->timeout_max_ms) {
		mk_errf(err, errlen, "'timeout_ms' must be at most %lld", cfg->timeout_max_ms);
		return MK_E_VALIDATION;
	}
	/* Leave time to answer before the caller gives up. */
	if (left - 250 < timeout)
		timeout = left - 250;
	if (timeout < 50) {
		mk_errf(err, errlen, "too little time left before the request's deadline");
		return MK_E_DEADLINE;
	}
	e = exec_session_acquire(x->sessions, chat, req->caller.user_id, mk_mono_ms() + left, &s,
	                         &info, err, errlen);
	if (e != MK_OK) {
		if (e == MK_E_UNAVAILABLE && *reply == NULL) {
			*reply = cJSON_CreateObject();
			if (*reply)
				cJSON_AddNumberToObject(*reply, "retry_after", 2);
		}
		return e;
	}
	c = mk_svc_db_acquire(x->svc, req, err, errlen);
	if (!c) {
		exec_session_release(x->sessions, s, NULL);
		return MK_E_DB;
	}
	if (info.started && restore_files(x, c, chat, exec_session_sbx(s), err, errlen) != 0) {
		MK_WARN("EXEC-RESTORE", req->rid, "kept files not restored: %s", err);
		err[0] = '\0';
	}
	/* The session may have waited for the chat's previous run. */
	left = left_ms(req, timeout + 60000);
	if (left - 250 < timeout)
		timeout = left - 250 < 50 ? 50 : left - 250;
	started = mk_now_ms();
	res = sbx_exec(exec_session_sbx(s), code, timeout);
	ended = mk_now_ms();
	if (!res) {
		exec_session_release(x->sessions, s, "crashed");
		mk_db_release(x->svc->db, c);
		mk_errf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	/* The backend had to start the session again (Daytona stopped the sandbox meanwhile). */
	if (str_field(res, "session_reset")) {
		info.reset = 1;
		snprintf(info.reason, sizeof(info.reason), "%s", str_field(res, "session_reset"));
		cJSON_DeleteItemFromObjectCaseSensitive(res, "session_reset");
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(res, "session_lost"))) {
		const char *lim = str_field(res, "limit");

		end = lim && strcmp(lim, "wall_time") == 0 ? "wall_time" : "crashed";
	}
	e = record_run(x, c, req, chat, code, exec_session_generation(s), started, ended, res, err,
	               errlen);
	mk_db_release(x->svc->db, c);
	exec_session_release(x->sessions, s, end);
	if (e != MK_OK) {
		cJSON_Delete(res);
		return e;
	}
	sess = cJSON_AddObjectToObject(res, "session");
	if (sess) {
		cJSON_AddNumberToObject(sess, "generation", info.generation);
		cJSON_AddBoolToObject(sess, "started", info.started);
		cJSON_AddBoolToObject(sess, "warm", info.warm);
		cJSON_AddBoolToObject(sess, "reset", info.reset);
		if (info.reset)
			cJSON_AddStringToObject(sess, "reason", info.reason);
		else
			cJSON_AddNullToObject(sess, "reason");
	}
	*reply = res;
	return MK_OK;
}

/* ------------------------------------------------------------------ files */

mk_err exec_parquet_check(const exec_ops *x, char *err, size_t errlen)
{
	if (x->caps.parquet)
		return MK_OK;
	mk_errf(err, errlen,
	        "Parquet files are not supported by this sandbox (it has no pyarrow); "
	        "upload CSV or Excel instead, or run Mark with the Daytona sandbox");
	return MK_E_UNSUPPORTED_MEDIA;
}

mk_err exec_file_keep(exec_ops *x, const mk_env *req, PGconn *c, const char *chat, const char *path,
                      const void *data, size_t len, char *err, size_t errlen)
{
	const char *p[2] = {chat, path};
	exec_session *s;
	PGresult *r;
	mk_err e;

	if ((long long)len > x->cfg->file_max) {
		mk_errf(err, errlen, "the file is larger than %lld bytes", x->cfg->file_max);
		return MK_E_TOO_LARGE;
	}
	e = claim(c, chat, req->caller.user_id, 1, err, errlen);
	if (e != MK_OK)
		return e;
	r = mk_db_exec_prep(
	    c, "SELECT coalesce(sum(bytes), 0) FROM files WHERE chat_id = $1 AND path <> $2", 2, p,
	    err, errlen, NULL);
	if (!r)
		return MK_E_DB;
	if (strtoll(PQgetvalue(r, 0, 0), NULL, 10) + (long long)len > x->cfg->chat_files_max) {
		PQclear(r);
		mk_errf(err, errlen, "the chat's files would exceed %lld bytes",
		        x->cfg->chat_files_max);
		return MK_E_TOO_LARGE;
	}
	PQclear(r);
	{
		const char *vals[4] = {chat, path, req->caller.user_id, (const char *)data};
		int lens[4] = {0, 0, 0, (int)len};

		r = exec_bin(
		    c,
		    "INSERT INTO files (chat_id, path, owner_id, data, bytes) "
		    "VALUES ($1, $2, $3, $4::bytea, length($4::bytea)) ON CONFLICT (chat_id, path) "
		    "DO "
		    "UPDATE SET data = excluded.data, bytes = excluded.bytes, created_at = now()",
		    4, vals, lens, 0, err, errlen);
		if (!r)
			return MK_E_DB;
		PQclear(r);
	}
	/* A live session gets it now; a new one gets it when it starts. */
	s = exec_session_peek(x->sessions, chat, mk_mono_ms() + left_ms(req, 30000));
	if (s) {
		int rc = sbx_put(exec_session_sbx(s), path, data, len, err, errlen);

		exec_session_release(x->sessions, s, NULL);
		if (rc != 0)
			return MK_E_VALIDATION;
	}
	return MK_OK;
}

static mk_err op_put(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                     size_t errlen)
{
	const char *chat = str_field(req->body, "chat_id");
	const char *path = str_field(req->body, "path");
	const char *b64 = str_field(req->body, "data_b64");
	size_t b64len = strlen(b64), len;
	long long want = (long long)mk_b64_decoded_len(b64, b64len);
	unsigned char *data;
	mk_err e;
	int parquet;

	if (!exec_path_ok(path)) {
		mk_errf(err, errlen, "'path' must be a relative path inside the workspace");
		return MK_E_VALIDATION;
	}
	if (want > x->cfg->file_max || (long long)b64len / 4 * 3 > x->cfg->file_max + 2) {
		mk_errf(err, errlen, "the file is larger than %lld bytes", x->cfg->file_max);
		return MK_E_TOO_LARGE;
	}
	data = mk_b64_decode(b64, b64len, &len);
	if (!data) {
		mk_errf(err, errlen, "'data_b64' is not valid base64");
		return MK_E_VALIDATION;
	}
	parquet = ends_with(path, ".parquet") || ends_with(path, ".parq") ||
	          (len >= 4 && memcmp(data, "PAR1", 4) == 0);
	e = parquet ? exec_parquet_check(x, err, errlen) : MK_OK;
	if (e == MK_OK)
		e = exec_file_keep(x, req, c, chat, path, data, len, err, errlen);
	if (e == MK_OK) {
		*reply = cJSON_CreateObject();
		if (*reply) {
			cJSON_AddStringToObject(*reply, "path", path);
			cJSON_AddNumberToObject(*reply, "bytes", (double)len);
		}
	}
	free(data);
	return e;
}

static mk_err op_get(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                     size_t errlen)
{
	const char *chat = str_field(req->body, "chat_id");
	const char *path = str_field(req->body, "path");
	const char *p[2] = {chat, path};
	exec_session *s;
	mk_buf buf;
	char *b64 = NULL;
	size_t len = 0;
	mk_err e;

	if (!exec_path_ok(path)) {
		mk_errf(err, errlen, "'path' must be a relative path inside the workspace");
		return MK_E_VALIDATION;
	}
	e = claim(c, chat, req->caller.user_id, 0, err, errlen);
	if (e != MK_OK)
		return e;
	/* base64 grows by a third: what fits in one reply. */
	mk_buf_init(&buf, (size_t)x->cfg->svc.max_msg / 4 * 3 - 4096);
	s = exec_session_peek(x->sessions, chat, mk_mono_ms() + left_ms(req, 30000));
	if (s) {
		int rc = sbx_get(exec_session_sbx(s), path, &buf, err, errlen);

		exec_session_release(x->sessions, s, NULL);
		if (rc == 0) {
			b64 = mk_b64_encode(buf.data ? buf.data : "", buf.len);
			len = buf.len;
		}
	}
	mk_buf_release(&buf);
	if (!b64) {
		PGresult *r = exec_bin(c, "SELECT data FROM files WHERE chat_id = $1 AND path = $2",
		                       2, p, NULL, 1, err, errlen);

		if (!r)
			return MK_E_DB;
		if (PQntuples(r) == 0) {
			PQclear(r);
			mk_errf(err, errlen, "no file '%s' in the workspace", path);
			return MK_E_NOT_FOUND;
		}
		len = (size_t)PQgetlength(r, 0, 0);
		b64 = mk_b64_encode(PQgetvalue(r, 0, 0), len);
		PQclear(r);
	}
	*reply = cJSON_CreateObject();
	if (!b64 || !*reply) {
		free(b64);
		mk_errf(err, errlen, "out of memory");
		return MK_E_INTERNAL;
	}
	cJSON_AddStringToObject(*reply, "path", path);
	cJSON_AddNumberToObject(*reply, "bytes", (double)len);
	cJSON_AddStringToObject(*reply, "data_b64", b64);
	free(b64);
	return MK_OK;
}

static mk_err op_list(exec_ops *x, const mk_env *req, PGconn *c, cJSON **reply, char *err,
                      size_t errlen)
{
	const char *chat = str_field(req->body, "chat_id");
	const char *p[1] = {chat};
	exec_session *s;
	cJSON *files = NULL;
	PGresult *r;
	mk_err e;
	int i;

	e = claim(c, chat, req->caller.user_id, 0, err, errlen);
	if (e != MK_OK)
		return e;
	s = exec_session_peek(x->sessions, chat, mk_mono_ms() + left_ms(req, 30000));
	if (s) {
		files = sbx_list(exec_session_sbx(s), err, errlen);
		exec_session_release(x->sessions, s, NULL);
	}
	*reply = cJSON_CreateObject();
	if (!*reply)
		return MK_E_INTERNAL;
	if (files) {
		cJSON_AddItemToObject(*reply, "files", files);
		cJSON_AddBoolToObject(*reply, "live", 1);
		return MK_OK;
	}
	err[0] = '\0';
	r = mk_db_exec_prep(c,
	                    "SELECT path, bytes, (extract(epoch FROM created_at) * 1000)::bigint "
	                    "FROM files WHERE chat_id = $1 ORDER BY path",
	                    1, p, err, errlen, NULL);
	if (!r)
		return MK_E_DB;
	files = cJSON_AddArrayToObject(*reply, "files");
	for (i = 0; i < PQntuples(r); i++) {
		cJSON *f = cJSON_CreateObject();

		cJSON_AddStringToObject(f, "path", PQgetvalue(r, i, 0));
		cJSON_AddNumberToObject(f, "bytes", strtod(PQgetvalue(r, i, 1), NULL));
		cJSON_AddNumberToObject(f, "modified_ms", strtod(PQgetvalue(r, i, 2), NULL));
		cJSON_AddItemToArray(files, f);
	}
	PQclear(r);
	cJSON_AddBoolToObject(*reply, "live", 0);
	return MK_OK;
}

/* ------------------------------------------------------------------ life */

int exec_purge_executions(PGconn *c, long long retention_ms, char *err, size_t errlen)
{
	char ms[32];
	const char *p[1] = {ms};
	PGresult *r;
	int n;

	snprintf(ms, sizeof(ms), "%lld", retention_ms);
	/* A deleted chat has no session row; a batch at a time keeps each call short. */
	r = mk_db_exec(c,
	               "DELETE FROM executions WHERE id IN (SELECT e.id FROM executions e "
	               "WHERE e.ended_at < now() - $1::bigint * interval '1 millisecond' "
	               "AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.chat_id = e.chat_id) "
	               "LIMIT 10000)",
	               1, p, err, errlen, NULL);
	if (!r)
		return -1;
	n = (int)strtol(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return n;
}

static mk_err op_end(exec_ops *x, const mk_env *req, PGconn *c, int destroy, cJSON **reply,
                     char *err, size_t errlen)
{
	const char *chat = str_field(req->body, "chat_id");
	const char *p[1] = {chat};
	mk_err e = claim(c, chat, req->caller.user_id, 1, err, errlen);
	PGresult *r;

	if (e != MK_OK)
		return e;
	e = exec_session_end(x->sessions, chat, req->caller.user_id,
	                     destroy ? "destroyed" : "reset", mk_mono_ms() + left_ms(req, 30000),
	                     err, errlen);
	if (e != MK_OK)
		return e;
	if (destroy) {
		static const char *const gone[] = {
		    "DELETE FROM files WHERE chat_id = $1",
		    "DELETE FROM artifacts WHERE chat_id = $1",
		    "DELETE FROM sessions WHERE chat_id = $1",
		};

		for (size_t i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
			r = mk_db_exec(c, gone[i], 1, p, err, errlen, NULL);
			if (!r)
				return MK_E_DB;
			PQclear(r);
		}
		/* Execution records of deleted chats go once past their retention. */
		if (exec_purge_executions(c, x->cfg->execution_retention_ms, err, errlen) < 0)
			MK_WARN("EXEC-PURGE", req->rid, "cannot purge old execution records: %s",
			        err);
	}
	*reply = cJSON_CreateObject();
	if (*reply)
		cJSON_AddBoolToObject(*reply, destroy ? "destroyed" : "reset", 1);
	return MK_OK;
}

static mk_err op_artifact(const mk_env *req, PGconn *c, cJSON **reply, char *err, size_t errlen)
{
	const char *id = str_field(req->body, "artifact_id");
	const char *p[2] = {id, req->caller.user_id};
	PGresult *r;
	char *b64;
	size_t n = strlen(id);

	/* Only a UUID can name one; anything else is simply not there. */
	if (n != 36 || strspn(id, "0123456789abcdefABCDEF-") != n) {
		mk_errf(err, errlen, "no artifact '%s'", id);
		return MK_E_NOT_FOUND;
	}
	r = exec_bin(c,
	             "SELECT chat_id, name, mime, data FROM artifacts "
	             "WHERE id = $1::uuid AND owner_id = $2",
	             2, p, NULL, 1, err, errlen);
	if (!r)
		return MK_E_DB;
	if (PQntuples(r) == 0) {
		PQclear(r);
		mk_errf(err, errlen, "no artifact '%s'", id);
		return MK_E_NOT_FOUND;
	}
	b64 = mk_b64_encode(PQgetvalue(r, 0, 3), (size_t)PQgetlength(r, 0, 3));
	*reply = cJSON_CreateObject();
	if (b64 && *reply) {
		char text[3][256];

		/* Binary results: text columns are not NUL-terminated there. */
		for (int i = 0; i < 3; i++) {
			int l = PQgetlength(r, 0, i);

			l = l < 255 ? l : 255;
			memcpy(text[i], PQgetvalue(r, 0, i), (size_t)l);
			text[i][l] = '\0';
		}
		cJSON_AddStringToObject(*reply, "artifact_id", id);
		cJSON_AddStringToObject(*reply, "chat_id", text[0]);
		cJSON_AddStringToObject(*reply, "name", text[1]);
		cJSON_AddStringToObject(*reply, "mime", text[2]);
		cJSON_AddNumberToObject(*reply, "bytes", PQgetlength(r, 0, 3));
		cJSON_AddStringToObject(*reply, "data_b64", b64);
	}
	PQclear(r);
	free(b64);
	return *reply ? MK_OK : MK_E_INTERNAL;
}

mk_err exec_ops_handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	exec_ops *x = ud;
	const char *chat = str_field(req->body, "chat_id");
	PGconn *c;
	mk_err e;

	if (!req->caller.user_id[0]) {
		mk_errf(err, errlen, "'%s' acts for a user: the request has no caller",
		        mk_op_name(req->op));
		return MK_E_UNAUTHENTICATED;
	}
	if (chat && !chat_id_ok(chat)) {
		mk_errf(err, errlen, "'chat_id' must be 1-64 of [A-Za-z0-9._:-]");
		return MK_E_VALIDATION;
	}
	if (req->op == MK_OP_EXEC_RUN)
		return op_run(x, req, reply, err, errlen);
	c = mk_svc_db_acquire(x->svc, req, err, errlen);
	if (!c)
		return MK_E_DB;
	switch (req->op) {
	case MK_OP_EXEC_PUT: e = op_put(x, req, c, reply, err, errlen); break;
	case MK_OP_EXEC_GET: e = op_get(x, req, c, reply, err, errlen); break;
	case MK_OP_EXEC_LIST: e = op_list(x, req, c, reply, err, errlen); break;
	case MK_OP_EXEC_RESET: e = op_end(x, req, c, 0, reply, err, errlen); break;
	case MK_OP_EXEC_DESTROY: e = op_end(x, req, c, 1, reply, err, errlen); break;
	case MK_OP_EXEC_ARTIFACT: e = op_artifact(req, c, reply, err, errlen); break;
	case MK_OP_EXEC_USAGE: e = exec_usage_op(req, c, reply, err, errlen); break;
	case MK_OP_EXEC_UPLOAD:
	case MK_OP_EXEC_UPLOADS:
	case MK_OP_EXEC_UPLOAD_GET:
	case MK_OP_EXEC_UPLOAD_DELETE:
	case MK_OP_EXEC_ATTACH: e = exec_uploads_op(x, req, c, reply, err, errlen); break;
	default:
		mk_errf(err, errlen, "operation '%s' is not served by 'executor'",
		        mk_op_name(req->op));
		e = MK_E_UNKNOWN_OP;
	}
	mk_db_release(x->svc->db, c);
	return e;
}
