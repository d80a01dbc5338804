/*
 * sbx_frame.h - the frames the host and the Python driver speak, and the
 * output of a run, whatever carries them (libexecutor, sandbox layer).
 *
 * A frame is a 4-byte big-endian length and that many bytes of JSON
 * (SANDBOX.md). Requests are encoded whole; a reply is read incrementally
 * into an sbx_frame_rx, from a descriptor or from bytes a backend got by
 * other means; stdout and stderr are kept in an sbx_stream up to a cap,
 * counting what was not kept. Nothing here knows how a backend reaches its
 * sandboxes or when it gives up on one: that, and every deadline, is the
 * backend's.
 *
 * Threads: each object is used by one thread at a time.
 */
#ifndef SBX_FRAME_H
#define SBX_FRAME_H

#include <stddef.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "mk_buf.h"
#include "sbx.h"

#define SBX_FRAME_MAX   ((size_t)256 << 20) /* largest frame either way */
#define SBX_STREAM_TAIL 400                 /* bytes of a stream sbx_stream_tail quotes */

/* ---- requests */

/* The whole frame of msg. NULL when out of memory or larger than SBX_FRAME_MAX; the caller frees.
 */
unsigned char *sbx_frame_encode(const cJSON *msg, size_t *len);

/*
 * An `exec` request: code and the limits the driver applies (cpu_s and the
 * result's). Without artifact_data the driver names the run's output files
 * and their sizes but leaves their bytes for the host to fetch. As above.
 */
unsigned char *sbx_frame_exec(long long id, const char *code, const sbx_limits *L,
                              int artifact_data, size_t *len);

/*
 * A `put` request, the data base64-encoded straight into the frame (no
 * JSON copy of it). The caller keeps len within SBX_FRAME_MAX (see
 * sbx_frame_put_max). NULL when out of memory; the caller frees.
 */
unsigned char *sbx_frame_put(long long id, const char *path, const void *data, size_t n,
                             size_t *len);
/* The largest file sbx_frame_put can carry for path. */
size_t sbx_frame_put_max(const char *path);

/* ---- replies */

/* One reply frame being read. Release with sbx_frame_rx_release. */
typedef struct {
	unsigned char hdr[4];
	size_t hdr_got;
	char *body; /* NULL for an oversize frame */
	size_t body_len, body_got, body_cap;
	size_t max; /* larger frames (up to SBX_FRAME_MAX) are read and dropped: oversize */
	int oversize;
} sbx_frame_rx;

void sbx_frame_rx_init(sbx_frame_rx *rx, size_t max);
void sbx_frame_rx_release(sbx_frame_rx *rx);
/* Forget the frame held, keeping the buffer, to read the next one. */
void sbx_frame_rx_next(sbx_frame_rx *rx);

/*
 * Where the next bytes of the frame go: 0 with *p and *n (at most that
 * many bytes); an oversize frame's bytes go to scratch, to be dropped.
 * 1 when a whole frame is held (nothing more to read for it); -2 with err
 * when out of memory.
 */
int sbx_frame_rx_room(sbx_frame_rx *rx, void *scratch, size_t scratch_len, void **p, size_t *n,
                      char *err, size_t errlen);
/* n bytes were put where sbx_frame_rx_room said. 0, or -2 with err for a length out of bounds. */
int sbx_frame_rx_took(sbx_frame_rx *rx, size_t n, char *err, size_t errlen);

/*
 * Read from fd (non-blocking) into rx: 1 with a whole frame, 0 for more
 * later, -1 at EOF, -2 with err when malformed or on a read error.
 */
int sbx_frame_read_fd(sbx_frame_rx *rx, int fd, void *scratch, size_t scratch_len, char *err,
                      size_t errlen);

/* The whole frame rx holds, parsed: a JSON object with a string "t", or NULL with err. */
cJSON *sbx_frame_rx_json(const sbx_frame_rx *rx, char *err, size_t errlen);

/*
 * write(2) on a pipe whose reader may be gone: EPIPE instead of a SIGPIPE
 * that would kill the executor. Thread-safe.
 */
ssize_t sbx_write_nosigpipe(int fd, const void *p, size_t n);

/* ---- paths and files */

/* A path the driver may be asked for: relative, inside the workspace, no "..". */
int sbx_path_ok(const char *path);
/* A path to ask a sandbox for (sbx_path_ok), of a sandbox not dead: 0, or -1 with err. */
int sbx_file_request_ok(const char *path, int dead, char *err, size_t errlen);
/* A file of len bytes to put there: sbx_file_request_ok, and at most sbx_frame_put_max. */
int sbx_put_request_ok(const char *path, size_t len, int dead, char *err, size_t errlen);

/*
 * Append the file of a `file` reply to out, when it is well formed and at
 * most room bytes. 0, or -1 with err naming path.
 */
int sbx_frame_file(const cJSON *reply, const char *path, size_t room, mk_buf *out, char *err,
                   size_t errlen);

/* The file list of a `files` reply (a new array), or NULL with err; reply is freed either way. */
cJSON *sbx_frame_files(cJSON *reply, char *err, size_t errlen);

/* ---- output streams */

/* Output of a run: the first max bytes kept (keep set, max > 0), all of them counted. */
typedef struct {
	mk_buf kept;
	long long total; /* bytes read, kept or not */
	int keep;
	int closed; /* its descriptor reached EOF or failed */
} sbx_stream;

void sbx_stream_init(sbx_stream *st, int keep, long long max);
void sbx_stream_release(sbx_stream *st);
void sbx_stream_add(sbx_stream *st, const char *p, size_t n);
/* Read what fd (non-blocking) holds now, at most rounds reads of buf; EOF or an error closes st. */
void sbx_stream_read_fd(sbx_stream *st, int fd, char *buf, size_t len, int rounds);
/*
 * What st kept as a new JSON string (invalid UTF-8 and NUL become U+FFFD),
 * with a marker line when some was not kept (*truncated set).
 */
cJSON *sbx_stream_json(const sbx_stream *st, int *truncated);
/* The end of what st kept (SBX_STREAM_TAIL bytes, from a whole line), on one line, in buf. */
void sbx_stream_tail(const sbx_stream *st, char *buf, size_t len);

#endif
