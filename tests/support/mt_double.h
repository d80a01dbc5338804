/*
 * mt_double.h - test support: the LLM provider test double
 * (tests/doubles/llm, binary llm-double) run as a real process on loopback,
 * and its control endpoints (POST /_double/scenario, GET /_double/requests,
 * POST /_double/reset); for every double, its start as a process and the
 * harness of its check with an official SDK (tests/doubles/<name>/sdk,
 * run with Node).
 *
 * Nothing here asserts: every call returns 0 (or a value) on success and -1
 * (or NULL) with a message in err, and the test decides. This file is part
 * of libmktest, which benchmarks link without Check.
 *
 * Environment read: MARK_DOUBLES_DIR (the directory holding llm-double;
 * default: MARK_BIN_DIR/../tests/doubles when MARK_BIN_DIR is set, so a
 * sanitizer run uses the sanitizer build, else build/tests/doubles),
 * MARK_TEST_LOG_DIR (default build/test-logs). Fixtures are read from
 * tests/data/llm, relative to the working directory (the repository root).
 */
#ifndef MT_DOUBLE_H
#define MT_DOUBLE_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "mt.h"

#define MT_DOUBLE_FIXTURE_DIR "tests/data/llm"

typedef struct {
	mt_proc p;
	int port;
	char base[64]; /* http://127.0.0.1:<port> */
} mt_double;

/* The directory holding the doubles' binaries (see above). */
const char *mt_doubles_dir(void);

/*
 * Start the double binary (in mt_doubles_dir()) with args (NULL-terminated;
 * it must serve on a free loopback port and print one line "listening on
 * <port>"), and read the port. Its stderr goes to <log dir>/<name>.log.
 * Returns 0, or -1 with err (the process, if it started, is killed and its
 * log's tail printed on stderr).
 */
int mt_double_spawn(mt_double *d, const char *binary, const char *name, const char *const *args,
                    char *err, size_t errlen);

/*
 * One control request (a JSON body, or NULL) that must answer 200; *resp
 * (optional; the caller releases it) gets the response. 0, or -1 with err.
 */
int mt_double_control(const mt_double *d, const char *method, const char *path, const char *body,
                      mt_resp *resp, char *err, size_t errlen);

/*
 * Run a shell command (with popen: the caller's stderr redirection, if
 * any, is in cmd); its output into *out (malloc'd). Returns the exit
 * status, or -1 when it could not run or was killed.
 */
int mt_sh(const char *cmd, char **out);

/* A whole file (malloc'd, NUL-terminated; its length in *len when not NULL), or NULL with err. */
char *mt_read_file(const char *path, size_t *len, char *err, size_t errlen);

/*
 * Make ready a double's SDK check in dir (tests/doubles/<name>/sdk): node
 * and npm must be on PATH (their absence is a failure, never a skip), and
 * `npm ci` installs the packages when one of `packages` (NULL-terminated
 * names under dir/node_modules) is missing. who and node_major word the
 * complaint: "node and npm are required by <who> (Node.js <node_major> or
 * later; ...)". 0, or -1 with err.
 */
int mt_sdk_ready(const char *dir, const char *const *packages, const char *who, int node_major,
                 char *err, size_t errlen);

/*
 * Run `node <dir>/sdk_check.mjs` with env put before it (shell assignments,
 * e.g. "BASE='http://127.0.0.1:4000'"). Its stdout and stderr go into *out
 * (malloc'd; the caller frees it) and are printed on stdout, one line per
 * check, for the test log; when it fails, the tail of the double's log
 * (dbl) is printed on stderr. The exit status, as mt_sh gives it.
 */
int mt_sdk_run(const char *dir, const char *env, const mt_proc *dbl, char **out);

/*
 * Whether out, the output of an SDK check, is one "ok <name>" line per
 * check and last the summary "sdk_check: N of N checks passed (...)", with
 * N at least min: N, or -1 with why.
 */
int mt_sdk_passed(const char *out, int min, char *why, size_t whylen);

/*
 * Start llm-double on a free loopback port, with --api-key key unless key
 * is NULL, and read the port from the one line it prints. Its stderr goes
 * to <log dir>/<name>.log. Returns 0, or -1 with err (the process, if it
 * started, is killed and its log's tail printed on stderr).
 */
int mt_double_start(mt_double *d, const char *name, const char *key, char *err, size_t errlen);

/*
 * SIGTERM, and wait up to 30 s. Returns the exit status (0 is what a test
 * wants; under ASan a leak makes it non-zero), or -1 when it had to be
 * killed; on anything but 0 the log's tail is printed on stderr.
 */
int mt_double_stop(mt_double *d);

/* base + path in a static per-thread buffer, valid until the next call on this thread. */
const char *mt_double_url(const mt_double *d, const char *path);

/* POST a scenario (JSON text). 0, or -1 with err (the double's complaint when it refused). */
int mt_double_scenario(const mt_double *d, const char *json, char *err, size_t errlen);

/*
 * Load the fixture MT_DOUBLE_FIXTURE_DIR/<name>.json as the scenario. When
 * fixture is not NULL, *fixture gets the file parsed (the caller deletes
 * it), written only on success.
 */
int mt_double_fixture(const mt_double *d, const char *name, cJSON **fixture, char *err,
                      size_t errlen);

/* Forget the recorded requests and rewind the scenario to its first step. */
int mt_double_reset(const mt_double *d, char *err, size_t errlen);

/*
 * The requests recorded since the last reset, as a JSON array of
 * {"method","path","query","headers" (names lower-cased),"body" (JSON when it
 * parsed, else text, else null)}. The caller deletes it. NULL with err.
 */
cJSON *mt_double_requests(const mt_double *d, char *err, size_t errlen);

#endif
