/*
 * mt_daytona.h - test support: the Daytona sandbox API test double
 * (tests/doubles/daytona, binary daytona-double) run as a real process on
 * loopback, its control endpoints (POST /_double/faults, POST
 * /_double/config, POST /_double/reset, GET|DELETE /_double/sandboxes) and
 * the calls tests make most: create a sandbox and wait for a state, change
 * its state, run a command, and stop the double checking that nothing of
 * it is left.
 *
 * Nothing here asserts: every call returns 0 (or a value) on success and -1
 * (or NULL) with a message in err, and the test decides. Part of libmktest,
 * which benchmarks link without Check.
 *
 * Environment read: MARK_DOUBLES_DIR (see mt_doubles_dir() in
 * mt_double.h), MARK_TEST_LOG_DIR (default build/test-logs).
 */
#ifndef MT_DAYTONA_H
#define MT_DAYTONA_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "mt.h"
#include "mt_double.h"

/* The double's process and address (the struct of every double). */
typedef mt_double mt_daytona;

/*
 * Start daytona-double on a free loopback port with --api-key key and
 * --root root (NULL: its own directory under /tmp, removed when it stops),
 * plus extra (NULL-terminated, may be NULL). Returns 0, or -1 with err.
 */
int mt_daytona_start(mt_daytona *d, const char *name, const char *key, const char *root,
                     const char *const *extra, char *err, size_t errlen);

/* SIGTERM and wait: the exit status, 0 being what a test wants (see mt_double_stop). */
static inline int mt_daytona_stop(mt_daytona *d)
{
	return mt_double_stop(d);
}

/* base + path (see mt_double_url). */
static inline const char *mt_daytona_url(const mt_daytona *d, const char *path)
{
	return mt_double_url(d, path);
}

/* Append fault rules: json is {"rules":[...]}. 0, or -1 with err (the double's complaint). */
int mt_daytona_faults(const mt_daytona *d, const char *json, char *err, size_t errlen);

/* Set knobs: json is {"start_delay_ms"?,"stop_delay_ms"?,"minute_ms"?}. 0, or -1 with err. */
int mt_daytona_config(const mt_daytona *d, const char *json, char *err, size_t errlen);

/* Forget faults and the request log; knobs back to the command line's. 0, or -1. */
int mt_daytona_reset(const mt_daytona *d);

/* GET /_double/sandboxes: the live sandboxes (the caller deletes it), or NULL. */
cJSON *mt_daytona_sandboxes(const mt_daytona *d);

/*
 * One request to the double with the bearer key (NULL: no Authorization)
 * and, when body is not NULL, Content-Type: application/json. *r gets the
 * answer (release it). 0, or -1 when no answer came.
 */
int mt_daytona_call(const mt_daytona *d, const char *key, const char *method, const char *path,
                    const char *body, mt_resp *r);

/*
 * POST /api/sandbox with body (NULL: {}); the new sandbox's id into id
 * (at least 40 bytes). 0, or -1 with err (the status and body).
 */
int mt_daytona_create(const mt_daytona *d, const char *key, const char *body, char *id, char *err,
                      size_t errlen);

/*
 * Poll GET /api/sandbox/{id} until its state is `state` ("destroyed": until
 * it is 404), for at most timeout_ms. 0, or -1 with err (the last state).
 */
int mt_daytona_wait(const mt_daytona *d, const char *key, const char *id, const char *state,
                    int timeout_ms, char *err, size_t errlen);

/*
 * Create a sandbox (mt_daytona_create) and wait until it has started (at
 * most timeout_ms); its id into id (at least 40 bytes). 0, or -1 with err.
 */
int mt_daytona_started(const mt_daytona *d, const char *key, const char *body, int timeout_ms,
                       char *id, char *err, size_t errlen);

/*
 * POST /api/sandbox/{id}/<action> (start, stop, archive, recover), or
 * DELETE /api/sandbox/{id} when action is "". *r gets the answer when r is
 * not NULL (release it either way). The HTTP status, or -1 when no answer
 * came.
 */
long mt_daytona_lifecycle(const mt_daytona *d, const char *key, const char *id, const char *action,
                          mt_resp *r);

/*
 * A toolbox request for sandbox id (sub: the path after it, with its
 * query), with the key, JSON content type and extra headers (may be NULL).
 * 0, or -1 when no answer came; *r must be released either way.
 */
int mt_daytona_tb(const mt_daytona *d, const char *key, const char *id, const char *method,
                  const char *sub, const char *body, const char *const *extra, mt_resp *r);

/*
 * POST /process/execute {"command"} in sandbox id: its exit code into
 * *code and its output into out (may be NULL). 0, or -1 with err when it
 * was not answered 200.
 */
int mt_daytona_run(const mt_daytona *d, const char *key, const char *id, const char *command,
                   long *code, char *out, size_t outlen, char *err, size_t errlen);

/* The number of live sandboxes and, into *processes, of their processes; -1 on failure. */
int mt_daytona_live(const mt_daytona *d, int *processes);

/*
 * Start over: knobs, faults and log reset, every sandbox deleted and
 * waited for (at most timeout_ms). 0, or -1 with err.
 */
int mt_daytona_clear(const mt_daytona *d, int timeout_ms, char *err, size_t errlen);

/*
 * Whether r is the control plane's error: status, its reason phrase in
 * "error", message, a path and an ISO-8601 timestamp. 0, or -1 with why.
 */
int mt_daytona_api_error(const mt_resp *r, long status, const char *reason, const char *message,
                         char *why, size_t whylen);

/*
 * Whether r is the toolbox's error: status, code, a message containing
 * needle, source (DAYTONA_DAEMON or DAYTONA_PROXY), timestamp and method.
 * 0, or -1 with why.
 */
int mt_daytona_tb_error(const mt_resp *r, long status, const char *code, const char *needle,
                        const char *source, char *why, size_t whylen);

/*
 * How many processes have `dir` in their command line (the double started
 * with --root dir, and every bubblewrap of its sandboxes); -1 when /proc
 * cannot be read.
 */
int mt_daytona_processes(const char *dir);

/*
 * Stop the double started with --root root and check that nothing of it
 * is left: it exits 0 on SIGTERM, no process names root any more, and root
 * holds only its etc; then remove root. 0, or -1 with err (root is kept
 * for a look).
 */
int mt_daytona_stop_clean(mt_daytona *d, const char *root, char *err, size_t errlen);

#endif
