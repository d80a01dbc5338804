/*
 * sbx_daytona_int.h - what the files of the Daytona backend share
 * (libexecutor, sandbox layer; not for the rest of the executor, which
 * knows only sbx.h): the backend's and a sandbox's structs, and the
 * operations kept in files of their own. sbx_daytona.c holds the backend
 * and the sessions (the relay), sbx_daytona_files.c the files a sandbox
 * takes and gives through the toolbox's file endpoints.
 */
#ifndef SBX_DAYTONA_INT_H
#define SBX_DAYTONA_INT_H

#include "sbx.h"
#include "sbx_daytona_api.h"

#define DTN_DIR      "/home/daytona/.mark"     /* driver, relay and its socket */
#define DTN_WS       "/home/daytona/workspace" /* the driver's workspace, as /workspace locally */
#define DTN_CALL_MS  60000                     /* put, get, list, ready */
#define DTN_CTRL_MS  60000                     /* one control-plane step: delete, reap */
#define DTN_LABEL_WK "mark-worker"             /* the label naming the worker holding a sandbox */

typedef struct {
	sbx_backend base;
	dtn_client api;
	char *snapshot, *target, *network_allow, *deployment, *preload, *worker;
	long long cpu, memory_gb, disk_gb, auto_stop, auto_archive, auto_delete;
	sbx_limits lim;
	sbx_caps caps;
} dtn_backend;

typedef struct {
	sbx base;
	dtn_backend *b;
	char id[64];
	char tb[1024]; /* toolbox base: <toolboxProxyUrl>/<id> */
	long long next_id;
	int dead;
	int parquet;
	int restarted; /* its driver was started again (the sandbox had been stopped): say so once
	                */
} dtn_box;

/* ---- sbx_daytona_files.c: the put, get and list operations (sbx.h's contracts) */
int dtn_put(sbx *base, const char *path, const void *data, size_t len, char *err, size_t errlen);
int dtn_get(sbx *base, const char *path, mk_buf *out, char *err, size_t errlen);
cJSON *dtn_list(sbx *base, char *err, size_t errlen);
/*
 * Fetch the bytes of the output files a run's result names without them
 * (the driver was asked for names and sizes only) through the toolbox,
 * each at most artifact_bytes and all together at most artifacts_total,
 * as measured here; a file that cannot be fetched, or is over a limit, is
 * marked skipped with the reason. res is the driver's result, changed in
 * place; the deadline bounds all the fetches together.
 */
void dtn_fetch_artifacts(dtn_box *s, cJSON *res, int64_t deadline);

#endif
