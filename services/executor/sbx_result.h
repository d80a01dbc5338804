/*
 * sbx_result.h - an execution's result as the host accepts it from a
 * sandbox, whatever the backend (libexecutor, sandbox layer).
 *
 * The driver that shapes a result runs in the same interpreter as the
 * model's code, which can change the driver's limits or write a reply of
 * its own. So the host holds every result to its own settings: it keeps
 * only the fields it knows, with the types it expects, at most max_items
 * of each kind, each within its size (values, figures, images, artifacts
 * and their total, table rows and columns), and says what it cut in
 * `notes`. Then it adds its own fields (the output it read, the time, the
 * limit it enforced), or makes the whole result when the code did not
 * finish.
 */
#ifndef SBX_RESULT_H
#define SBX_RESULT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sbx.h"
#include "sbx_frame.h"

/* The largest reply frame of an execution under L: larger ones end the run. */
size_t sbx_result_frame_max(const sbx_limits *L);

/* Hold r (a result object from a sandbox) to L in place; adds `notes` when anything was cut. */
void sbx_result_enforce(cJSON *r, const sbx_limits *L);
/*
 * Mark an image or artifact skipped for why: its data goes, and its size
 * is bytes when known (>= 0), else none.
 */
void sbx_result_skip(cJSON *item, long long bytes, const char *why);

/*
 * Complete r (an enforced result, or one sbx_result_host began) with the
 * host's fields of sbx_exec's result: the driver's fields it lacks as null
 * or empty; stdout, stderr and their *_truncated from out and err;
 * duration_ms; limit (this one when set, else the driver's, else null);
 * session_lost. Returns r (NULL when r is NULL).
 */
cJSON *sbx_result_finish(cJSON *r, const sbx_stream *out, const sbx_stream *err, long long ms,
                         const char *limit, int lost);

/*
 * A result made by the host: the code did not finish (or was not run), and
 * error is {type, message, traceback ""}. A new object (the caller frees
 * it), completed as by sbx_result_finish; NULL when out of memory.
 */
cJSON *sbx_result_host(const char *type, const char *msg, const sbx_stream *out,
                       const sbx_stream *err, long long ms, const char *limit, int lost);

/*
 * A run the host stopped for limit ("wall_time", timeout_ms, or "output"):
 * its error type, and its message in msg.
 */
const char *sbx_result_stop_text(const char *limit, long long timeout_ms, const sbx_limits *L,
                                 char *msg, size_t len);

#endif
