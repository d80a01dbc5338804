/*
 * dt_double_process.c - the toolbox's one-shot runs (contract §3.1, §3.2):
 *
 *   POST /process/execute   {"command","cwd"?,"envs"?,"timeout"?}
 *                           -> {"exitCode","result"} (stdout and stderr combined)
 *   POST /process/code-run  {"code","language","argv"?,"envs"?,"timeout"?}
 *                           -> {"exitCode","result","artifacts"?:{"charts"}}
 *
 * As in the daemon, the shell gets its command on stdin; code-run pipes the
 * base64 of the code into `python3 -u -` (or `node -`), and its output
 * loses the chart marker lines, whose JSON becomes artifacts.charts. A
 * timeout kills the run and answers 408. The daemon's matplotlib hook is
 * not reproduced: charts appear only when the code prints marker lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dt_double.h"
#include "mk_b64.h"
#include "mk_json.h"
#include "mk_log.h"

#define ARTIFACT_MARKER "dtn_artifact_k39fd2:"

/* ------------------------------------------------------------------ checks */

static int env_name_ok(const char *k)
{
	const char *p = k;

	if (!k || !(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z')))
		return 0;
	for (p++; *p; p++)
		if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

/* Check envs (absent is fine); 0, or -1 with r answered as the daemon does. */
static int check_envs(dt_req *r, const cJSON *envs)
{
	const cJSON *e;

	if (!envs || cJSON_IsNull(envs))
		return 0;
	if (!cJSON_IsObject(envs)) {
		dt_tb_error(r, 400, "BAD_REQUEST",
		            "bad request: invalid request body: envs must be an object of strings");
		return -1;
	}
	cJSON_ArrayForEach(e, envs)
	{
		if (!cJSON_IsString(e)) {
			dt_tb_error(
			    r, 400, "BAD_REQUEST",
			    "bad request: invalid request body: envs must be an object of strings");
			return -1;
		}
		if (!env_name_ok(e->string)) {
			dt_tb_error(r, 400, "BAD_REQUEST",
			            "bad request: invalid environment variable name: '%s'",
			            e->string);
			return -1;
		}
	}
	return 0;
}

/* An optional timeout in seconds; 0 (absent: 0), or -1 when it is not a non-negative integer. */
static int timeout_of(const cJSON *b, long long *out)
{
	*out = 0;
	if (!cJSON_GetObjectItemCaseSensitive(b, "timeout") ||
	    cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "timeout")))
		return 0;
	return mk_json_int(b, "timeout", out) == 0 && *out >= 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ answers */

/*
 * The answer to a finished run: 408 after a timeout, a bare 502 when the
 * sandbox stopped under it (the proxy loses the daemon), else 200 with
 * {"exitCode","result","artifacts"?}. Takes artifacts (may be NULL).
 */
static void answer(dt_req *r, const dt_run *run, const char *result, size_t len, cJSON *artifacts)
{
	cJSON *o;
	char *text;

	if (run->timed_out) {
		cJSON_Delete(artifacts);
		dt_tb_error(r, 408, "REQUEST_TIMEOUT",
		            "request timeout: command execution timeout");
		return;
	}
	if (run->killed) {
		cJSON_Delete(artifacts);
		dt_send(r, 502, NULL, NULL, "", 0);
		return;
	}
	o = cJSON_CreateObject();
	text = dt_utf8(result, len);
	cJSON_AddNumberToObject(o, "exitCode", run->exit_code);
	cJSON_AddStringToObject(o, "result", text ? text : "");
	if (artifacts)
		cJSON_AddItemToObject(o, "artifacts", artifacts);
	free(text);
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

/* A run that could not start: 200 with exitCode -1 and why, as the daemon says it. */
static void not_started(dt_req *r, const char *why)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddNumberToObject(o, "exitCode", -1);
	cJSON_AddStringToObject(o, "result", why);
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ execute */

static void execute(dt_req *r)
{
	const cJSON *b = r->json, *envs = cJSON_GetObjectItemCaseSensitive(b, "envs");
	const char *cmd = mk_json_str(b, "command"), *cwd = mk_json_str(b, "cwd"), *p;
	long long timeout;
	char err[256];
	dt_run run;

	if (!cJSON_IsObject(b) || timeout_of(b, &timeout) != 0 ||
	    (cJSON_GetObjectItemCaseSensitive(b, "cwd") && !cwd &&
	     !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(b, "cwd")))) {
		dt_tb_error(
		    r, 400, "BAD_REQUEST",
		    "bad request: invalid request body: want {\"command\":string, \"cwd\"?, "
		    "\"envs\"?, \"timeout\"?: seconds}");
		return;
	}
	for (p = cmd; p && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'); p++)
		;
	if (!cmd || !*p) {
		dt_tb_error(r, 400, "BAD_REQUEST",
		            "bad request: command cannot be empty or whitespace-only");
		return;
	}
	if (check_envs(r, envs) != 0)
		return;
	if (dt_proc_run(r->d, r->sbx, cwd, envs, cmd, strlen(cmd), timeout, &run, err,
	                sizeof(err)) != 0) {
		not_started(r, err);
		return;
	}
	answer(r, &run, run.out.data ? run.out.data : "", run.out.len, NULL);
	mk_buf_release(&run.out);
}

/* ------------------------------------------------------------------ code-run */

char *dt_artifacts_parse(const char *out, size_t len, size_t *outlen, cJSON **charts)
{
	mk_buf kept;
	size_t i = 0;
	int first = 1;

	*charts = NULL;
	*outlen = 0;
	mk_buf_init(&kept, 0);
	while (i <= len) {
		const char *nl = memchr(out + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (out + i)) : len - i;
		const char *line = out + i;

		if (n >= sizeof(ARTIFACT_MARKER) - 1 &&
		    memcmp(line, ARTIFACT_MARKER, sizeof(ARTIFACT_MARKER) - 1) == 0) {
			cJSON *a = cJSON_ParseWithLength(line + sizeof(ARTIFACT_MARKER) - 1,
			                                 n - (sizeof(ARTIFACT_MARKER) - 1));
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(a, "value");

			if (mk_json_str(a, "type") &&
			    strcmp(mk_json_str(a, "type"), "chart") == 0 && cJSON_IsObject(v)) {
				if (!*charts)
					*charts = cJSON_CreateArray();
				cJSON_AddItemToArray(*charts, cJSON_Duplicate(v, 1));
			}
			cJSON_Delete(a);
		} else {
			if (!first)
				mk_buf_puts(&kept, "\n");
			mk_buf_append(&kept, line, n);
			first = 0;
		}
		if (!nl)
			break;
		i += n + 1;
	}
	*outlen = kept.len;
	if (!kept.data)
		return strdup("");
	return mk_buf_steal(&kept);
}

/* The shell line that runs code in language, or NULL (unsupported, or out of memory). */
static char *run_line(const char *language, const char *code, const cJSON *argv)
{
	const char *runner = NULL;
	const cJSON *a;
	char *b64;
	mk_buf line, src;

	mk_buf_init(&src, 0);
	if (strcmp(language, "python") == 0) {
		runner = "python3 -u -";
		mk_buf_puts(&src, code);
	} else if (strcmp(language, "javascript") == 0) {
		runner = "node -";
		mk_buf_puts(&src, "process.argv.splice(1, 1);\n"); /* `node -` has an extra slot */
		mk_buf_puts(&src, code);
	} else if (strcmp(language, "typescript") == 0) {
		runner = "npx ts-node -T -";
		mk_buf_puts(&src, code);
	}
	if (!runner) {
		mk_buf_release(&src);
		return NULL;
	}
	b64 = mk_b64_encode(src.data ? src.data : "", src.len);
	mk_buf_release(&src);
	if (!b64)
		return NULL;
	mk_buf_init(&line, 0);
	mk_buf_printf(&line, "printf '%%s' '%s' | base64 -d | %s", b64, runner);
	/* argv goes in as the daemon passes it: joined with spaces, read by the shell. */
	cJSON_ArrayForEach(a, argv) if (cJSON_IsString(a))
	    mk_buf_printf(&line, " %s", a->valuestring);
	free(b64);
	return line.data ? mk_buf_steal(&line) : NULL;
}

static void code_run(dt_req *r)
{
	const cJSON *b = r->json, *envs = cJSON_GetObjectItemCaseSensitive(b, "envs"),
	            *argv = cJSON_GetObjectItemCaseSensitive(b, "argv"), *a;
	const char *code = mk_json_str(b, "code"), *lang = mk_json_str(b, "language");
	long long timeout;
	char err[256], *line, *result;
	size_t rlen = 0;
	cJSON *art = NULL, *charts = NULL;
	dt_run run;

	if (!cJSON_IsObject(b) || !code || !*code || !lang || !*lang ||
	    timeout_of(b, &timeout) != 0 || (argv && !cJSON_IsNull(argv) && !cJSON_IsArray(argv))) {
		dt_tb_error(r, 400, "INVALID_REQUEST_BODY",
		            "invalid body request: want {\"code\":string, \"language\":string, "
		            "\"argv\"?, \"envs\"?, \"timeout\"?: seconds}");
		return;
	}
	cJSON_ArrayForEach(a, argv)
	{
		if (!cJSON_IsString(a)) {
			dt_tb_error(r, 400, "INVALID_REQUEST_BODY",
			            "invalid body request: argv must be an array of strings");
			return;
		}
	}
	if (strcmp(lang, "python") != 0 && strcmp(lang, "javascript") != 0 &&
	    strcmp(lang, "typescript") != 0) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: unsupported language: %s", lang);
		return;
	}
	if (check_envs(r, envs) != 0)
		return;
	line = run_line(lang, code, argv);
	if (!line) {
		dt_tb_error(r, 500, "INTERNAL_SERVER_ERROR", "out of memory");
		return;
	}
	if (dt_proc_run(r->d, r->sbx, NULL, envs, line, strlen(line), timeout, &run, err,
	                sizeof(err)) != 0) {
		free(line);
		not_started(r, err);
		return;
	}
	free(line);
	result = dt_artifacts_parse(run.out.data ? run.out.data : "", run.out.len, &rlen, &charts);
	if (charts) {
		art = cJSON_CreateObject();
		cJSON_AddItemToObject(art, "charts", charts);
	}
	answer(r, &run, result ? result : "", result ? rlen : 0, art);
	free(result);
	mk_buf_release(&run.out);
}

void dt_process_serve(dt_req *r)
{
	if (r->body_len > 0 && !r->json) {
		dt_tb_error(r, 400,
		            strcmp(r->route, "process.code-run") == 0 ? "INVALID_REQUEST_BODY"
		                                                      : "BAD_REQUEST",
		            "%s: the body is not JSON",
		            strcmp(r->route, "process.code-run") == 0
		                ? "invalid body request"
		                : "bad request: invalid request body");
		return;
	}
	if (strcmp(r->route, "process.execute") == 0)
		execute(r);
	else
		code_run(r);
}
