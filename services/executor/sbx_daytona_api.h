/*
 * sbx_daytona_api.h - the Daytona REST calls the Daytona backend makes
 * (libexecutor, sandbox layer; part of the Daytona backend): the control
 * plane (create, get, start, delete, list sandboxes) and the toolbox
 * (execute a command, start a background command in a session, upload,
 * download and list files), per ../shared/contracts/daytona-api.md.
 *
 * Every call holds to a deadline (mk_mono_ms) and retries what the
 * contract says is passing: 429 (waiting as its Retry-After-<bucket> or
 * Retry-After header says), 409 "state change in progress" on lifecycle
 * calls, and bare 502/503/504 or transport failures on idempotent calls.
 * What is left becomes one clear message in err: the status, and the
 * server's message when its body has one (an empty body is named so).
 *
 * The API key lives in the dtn_client and is sent only in the
 * Authorization header of calls to the API and the toolbox; it is never
 * logged nor placed in a message. Threads: a client is shared read-only.
 */
#ifndef SBX_DAYTONA_API_H
#define SBX_DAYTONA_API_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "mk_buf.h"

typedef struct {
	char *api_url; /* e.g. https://app.daytona.io/api, no trailing slash */
	char *auth;    /* "Authorization: Bearer <key>" (secret; zeroed when released) */
} dtn_client;

/* Copies url and key. 0, or -1 when out of memory. Release with dtn_client_release. */
int dtn_client_init(dtn_client *c, const char *api_url, const char *key);
void dtn_client_release(dtn_client *c);

/* What a call may do again. */
enum {
	DTN_IDEMPOTENT = 1, /* retry 5xx and transport errors */
	DTN_RETRY_409 = 2,  /* retry 409 (a lifecycle change is under way) */
};

/*
 * One call: method on url (absolute), body of ctype (NULL: none), the
 * response body (at most max_resp bytes) into *out (a new NUL-terminated
 * buffer the caller frees) when out is set. Returns the final HTTP status
 * (2xx), or with err: -status for an error answer, -2 for a response
 * over max_resp, -1 for anything else. Retries per flags until deadline.
 */
long dtn_call(const dtn_client *c, const char *method, const char *url, const char *ctype,
              const char *body, size_t len, int flags, size_t max_resp, int64_t deadline,
              char **out, char *err, size_t errlen);

/* POST /sandbox with body; the new sandbox object, or NULL with err. */
cJSON *dtn_sandbox_create(const dtn_client *c, const cJSON *body, int64_t deadline, char *err,
                          size_t errlen);
/* GET /sandbox/{id}; the object, or NULL with err (*gone set on 404). */
cJSON *dtn_sandbox_get(const dtn_client *c, const char *id, int64_t deadline, int *gone, char *err,
                       size_t errlen);
/*
 * Wait until sandbox id is started, starting it when stopped or archived;
 * polls with backoff. Fills tb (the toolbox base of the sandbox,
 * "<toolboxProxyUrl>/<id>") on success. 0, or -1 with err (error and
 * build_failed states name their reason).
 */
int dtn_sandbox_wait_started(const dtn_client *c, const char *id, int64_t deadline, char *tb,
                             size_t tblen, char *err, size_t errlen);
/* PUT /sandbox/{id}/labels: labels (an object of strings) replace the sandbox's. 0, or -1. */
int dtn_sandbox_labels(const dtn_client *c, const char *id, const cJSON *labels, int64_t deadline,
                       char *err, size_t errlen);
/* DELETE /sandbox/{id}; a sandbox already gone is fine. 0, or -1 with err. */
int dtn_sandbox_delete(const dtn_client *c, const char *id, int64_t deadline, char *err,
                       size_t errlen);
/*
 * The sandboxes whose label key has value (GET /sandbox?labels=, every
 * page): a new array of the list's items (id, state, labels, ...), or NULL
 * with err.
 */
cJSON *dtn_sandbox_list(const dtn_client *c, const char *key, const char *value, int64_t deadline,
                        char *err, size_t errlen);

/*
 * POST {tb}/process/execute: command (given to the shell's stdin), killed
 * after timeout_s. Its output (stdout and stderr together, at most
 * max_resp bytes of response) into *out (the caller frees) and exit code
 * into *code. 0, or -1 with err; *timed_out set when the toolbox said it
 * killed the command for its timeout. Retried only when retry is set.
 */
int dtn_execute(const dtn_client *c, const char *tb, const char *command, long long timeout_s,
                int retry, size_t max_resp, int64_t deadline, char **out, int *code, int *timed_out,
                char *err, size_t errlen);
/* Start command in the background in a new session sid. 0, or -1 with err. */
int dtn_background(const dtn_client *c, const char *tb, const char *sid, const char *command,
                   int64_t deadline, char *err, size_t errlen);
/* POST {tb}/files/upload-v2?path=path with the raw bytes. 0, or -1 with err. */
int dtn_upload(const dtn_client *c, const char *tb, const char *path, const void *data, size_t len,
               int64_t deadline, char *err, size_t errlen);
/*
 * GET {tb}/files/download?path=path: the file's bytes appended to out, at
 * most max of them (counted as they arrive, whatever the sandbox says its
 * size is). 0; -2 with err when the file is larger than max; -3 when the
 * toolbox says there is no such file; -1 with err for any other failure.
 * Retried as idempotent.
 */
int dtn_download(const dtn_client *c, const char *tb, const char *path, size_t max,
                 int64_t deadline, mk_buf *out, char *err, size_t errlen);
/*
 * GET {tb}/files?path=dir&depth=depth: the toolbox's FileInfo list (a new
 * array the caller frees), the answer at most max bytes; NULL with err.
 */
cJSON *dtn_files(const dtn_client *c, const char *tb, const char *dir, int depth, size_t max,
                 int64_t deadline, char *err, size_t errlen);

#endif
