/*
 * mt_double.c - test support: a test double as a process (the LLM provider
 * double's start here; the BigQuery double's in mt_bq.c, the Daytona
 * double's in mt_daytona.c), its control endpoints and the harness of its
 * SDK check (see mt_double.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt_double.h"

/* Generous: a sanitizer build on a loaded machine starts and stops slowly. */
#define START_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS  30000

const char *mt_doubles_dir(void)
{
	static char dir[512];
	const char *d = getenv("MARK_DOUBLES_DIR"), *bin = getenv("MARK_BIN_DIR");

	if (d && *d)
		return d;
	if (bin && *bin) {
		snprintf(dir, sizeof(dir), "%s/../tests/doubles", bin);
		return dir;
	}
	return "build/tests/doubles";
}

static const char *log_dir(void)
{
	const char *d = getenv("MARK_TEST_LOG_DIR");

	return d && *d ? d : "build/test-logs";
}

/* Read from fd until a newline, EOF or the time is up; returns the bytes read. */
static size_t read_line(int fd, char *line, size_t cap)
{
	int64_t until = mk_mono_ms() + START_TIMEOUT_MS;
	size_t used = 0;

	while (used < cap - 1 && !memchr(line, '\n', used) && mk_mono_ms() < until) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&pfd, 1, 200) <= 0)
			continue;
		n = read(fd, line + used, cap - 1 - used);
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	line[used] = '\0';
	return used;
}

int mt_double_spawn(mt_double *d, const char *binary, const char *name, const char *const *args,
                    char *err, size_t errlen)
{
	char path[600], line[128] = "";
	const char *argv[20] = {path};
	const char *nl;
	int out[2], logfd, n = 1;

	while (args && *args && n < 19)
		argv[n++] = *args++;
	argv[n] = NULL;

	memset(d, 0, sizeof(*d));
	snprintf(path, sizeof(path), "%s/%s", mt_doubles_dir(), binary);
	if (access(path, X_OK) != 0) {
		snprintf(err, errlen,
		         "%s is missing: build it with `make build/tests/doubles/%s` (or set "
		         "MARK_DOUBLES_DIR)",
		         path, binary);
		return -1;
	}
	mkdir("build", 0755);
	mkdir(log_dir(), 0755);
	snprintf(d->p.name, sizeof(d->p.name), "%s", name);
	snprintf(d->p.log, sizeof(d->p.log), "%s/%s.log", log_dir(), name);
	logfd = open(d->p.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (logfd < 0) {
		snprintf(err, errlen, "cannot open '%s': %s", d->p.log, strerror(errno));
		return -1;
	}
	if (pipe(out) != 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	d->p.pid = fork();
	if (d->p.pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], 1);
		dup2(logfd, 2);
		close(out[0]);
		execv(path, (char *const *)argv);
		fprintf(stderr, "cannot exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(out[1]);
	close(logfd);
	if (d->p.pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(out[0]);
		d->p.pid = 0;
		return -1;
	}
	read_line(out[0], line, sizeof(line));
	close(out[0]);
	nl = strchr(line, '\n');
	if (sscanf(line, "listening on %d\n", &d->port) != 1 || d->port <= 0 || !nl ||
	    strcmp(nl, "\n") != 0) {
		snprintf(
		    err, errlen,
		    "%s did not print exactly one line 'listening on <port>' (got '%.80s'); its "
		    "log is %s",
		    binary, line, d->p.log);
		mt_proc_dump(&d->p);
		mt_proc_stop(&d->p, SIGKILL, 5000);
		d->port = 0;
		return -1;
	}
	snprintf(d->base, sizeof(d->base), "http://127.0.0.1:%d", d->port);
	return 0;
}

int mt_double_start(mt_double *d, const char *name, const char *key, char *err, size_t errlen)
{
	const char *args[] = {"--listen", "127.0.0.1:0", key ? "--api-key" : NULL, key, NULL};

	return mt_double_spawn(d, "llm-double", name, args, err, errlen);
}

int mt_double_stop(mt_double *d)
{
	int st = mt_proc_stop(&d->p, SIGTERM, STOP_TIMEOUT_MS);

	if (st != 0)
		mt_proc_dump(&d->p);
	return st;
}

const char *mt_double_url(const mt_double *d, const char *path)
{
	static __thread char buf[2048];

	snprintf(buf, sizeof(buf), "%s%s", d->base, path);
	return buf;
}

int mt_double_control(const mt_double *d, const char *method, const char *path, const char *body,
                      mt_resp *resp, char *err, size_t errlen)
{
	static const char *const json[] = {"Content-Type: application/json", NULL};
	mt_resp r;

	if (mt_http(method, mt_double_url(d, path), body ? json : NULL, body,
	            body ? strlen(body) : 0, &r) != 0) {
		snprintf(err, errlen, "%s %s: no response from %s", method, path, d->p.name);
		mt_resp_release(&r);
		return -1;
	}
	if (r.status != 200) {
		snprintf(err, errlen, "%s %s: HTTP %ld: %.300s", method, path, r.status, r.body);
		mt_resp_release(&r);
		return -1;
	}
	if (resp)
		*resp = r;
	else
		mt_resp_release(&r);
	return 0;
}

int mt_double_scenario(const mt_double *d, const char *json, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/scenario", json, NULL, err, errlen);
}

int mt_sh(const char *cmd, char **out)
{
	FILE *f = popen(cmd, "r");
	char chunk[4096];
	size_t n;
	mk_buf b;
	int st;

	mk_buf_init(&b, 0);
	if (!f) {
		*out = strdup("popen failed");
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		mk_buf_append(&b, chunk, n);
	st = pclose(f);
	*out = b.data ? mk_buf_steal(&b) : strdup("");
	mk_buf_release(&b);
	return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

char *mt_read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char chunk[8192];
	size_t n;
	mk_buf b;

	if (!f) {
		snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
		return NULL;
	}
	mk_buf_init(&b, 0);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (mk_buf_append(&b, chunk, n) != 0) {
			snprintf(err, errlen, "out of memory reading '%s'", path);
			mk_buf_release(&b);
			fclose(f);
			return NULL;
		}
	}
	fclose(f);
	if (len)
		*len = b.len;
	return b.data ? mk_buf_steal(&b) : strdup("");
}

int mt_sdk_ready(const char *dir, const char *const *packages, const char *who, int node_major,
                 char *err, size_t errlen)
{
	char cmd[1024], path[1024], *out = NULL;
	int st, missing = 0;

	st = mt_sh("command -v node && command -v npm && node --version 2>&1", &out);
	if (st != 0) {
		snprintf(
		    err, errlen,
		    "node and npm are required by %s (Node.js %d or later; e.g. apt-get install "
		    "nodejs npm): %s",
		    who, node_major, out);
		free(out);
		return -1;
	}
	free(out);
	for (; *packages && !missing; packages++) {
		snprintf(path, sizeof(path), "%s/node_modules/%s/package.json", dir, *packages);
		missing = access(path, F_OK) != 0;
	}
	if (!missing)
		return 0;
	printf("installing the packages: (cd %s && npm ci --no-audit --no-fund)\n", dir);
	fflush(stdout);
	snprintf(cmd, sizeof(cmd), "cd '%s' && npm ci --no-audit --no-fund 2>&1", dir);
	st = mt_sh(cmd, &out);
	if (st != 0)
		snprintf(err, errlen, "npm ci in %s failed (exit %d):\n%s", dir, st, out);
	free(out);
	return st == 0 ? 0 : -1;
}

int mt_sdk_run(const char *dir, const char *env, const mt_proc *dbl, char **out)
{
	char cmd[2048];
	int st;

	snprintf(cmd, sizeof(cmd), "%s node %s/sdk_check.mjs 2>&1", env, dir);
	st = mt_sh(cmd, out);
	printf("%s", *out);
	fflush(stdout);
	if (st != 0)
		mt_proc_dump(dbl);
	return st;
}

int mt_sdk_passed(const char *out, int min, char *why, size_t whylen)
{
	const char *line = out, *nl;
	int oks = 0, passed = -1, total = -2;

	for (; *line; line = nl ? nl + 1 : line + strlen(line)) {
		nl = strchr(line, '\n');
		if (strncmp(line, "ok ", 3) == 0) {
			oks++;
		} else if (sscanf(line, "sdk_check: %d of %d checks passed", &passed, &total) ==
		           2) {
			if (nl && nl[1]) {
				snprintf(why, whylen, "the summary is not the last line");
				return -1;
			}
		} else if (line != nl) {
			snprintf(why, whylen, "not an ok line: '%.*s'",
			         nl ? (int)(nl - line) : (int)strlen(line), line);
			return -1;
		}
	}
	if (passed != total || oks != total) {
		snprintf(why, whylen, "%d ok lines, summary %d of %d", oks, passed, total);
		return -1;
	}
	if (oks < min) {
		snprintf(why, whylen, "only %d checks ran, want at least %d", oks, min);
		return -1;
	}
	return oks;
}

int mt_double_fixture(const mt_double *d, const char *name, cJSON **fixture, char *err,
                      size_t errlen)
{
	char path[512], why[128];
	size_t len;
	char *text;
	cJSON *root;

	snprintf(path, sizeof(path), MT_DOUBLE_FIXTURE_DIR "/%s.json", name);
	text = mt_read_file(path, &len, err, errlen);
	if (!text)
		return -1;
	root = mk_json_parse(text, len, 0, why, sizeof(why));
	if (!root) {
		snprintf(err, errlen, "%s: %s", path, why);
		free(text);
		return -1;
	}
	if (mt_double_scenario(d, text, err, errlen) != 0) {
		free(text);
		cJSON_Delete(root);
		return -1;
	}
	free(text);
	if (fixture)
		*fixture = root;
	else
		cJSON_Delete(root);
	return 0;
}

int mt_double_reset(const mt_double *d, char *err, size_t errlen)
{
	return mt_double_control(d, "POST", "/_double/reset", "", NULL, err, errlen);
}

cJSON *mt_double_requests(const mt_double *d, char *err, size_t errlen)
{
	cJSON *reqs;
	mt_resp r;

	if (mt_double_control(d, "GET", "/_double/requests", NULL, &r, err, errlen) != 0)
		return NULL;
	if (!cJSON_IsArray(r.json)) {
		snprintf(err, errlen, "GET /_double/requests: not a JSON array: %.300s", r.body);
		mt_resp_release(&r);
		return NULL;
	}
	reqs = r.json;
	r.json = NULL; /* taken */
	mt_resp_release(&r);
	return reqs;
}
