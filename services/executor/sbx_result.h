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
 * `notes`.
 */
#ifndef SBX_RESULT_H
#define SBX_RESULT_H

#include <stddef.h>

#include <cjson/cJSON.h>

#include "sbx.h"

/* The largest reply frame of an execution under L: larger ones end the run. */
size_t sbx_result_frame_max(const sbx_limits *L);

/* Hold r (a result object from a sandbox) to L in place; adds `notes` when anything was cut. */
void sbx_result_enforce(cJSON *r, const sbx_limits *L);

#endif
