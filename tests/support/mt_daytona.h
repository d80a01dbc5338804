/*
 * mt_daytona.h - test support: the Daytona sandbox API test double
 * (tests/doubles/daytona, binary daytona-double) run as a real process on
 * loopback, its control endpoints (POST /_double/faults, POST
 * /_double/config, POST /_double/reset, GET|DELETE /_double/sandboxes) and
 * the control-plane calls tests make most: create a sandbox and wait for a
 * state.
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

#endif
