/*
 * dt_double_transfer.c - the toolbox routes that move file contents
 * (contract §3.5), in the encodings the SDKs use:
 *
 *   GET  /files/download?path=      the bytes, application/octet-stream
 *   POST /files/bulk-download       {"paths":[...]} -> multipart/form-data,
 *        boundary DAYTONA-FILE-BOUNDARY: a part "file" (filename = the path
 *        as asked) per file, a part "error" (a JSON ErrorResponse) per failure
 *   POST /files/bulk-upload         multipart: for each i a part files[i].path
 *        (the destination) before files[i].file (the bytes)
 *        -> {"files":[{"path","bytes"}]}, or 400 {"errors":[...],"files":[...]}
 *   POST /files/upload-v2?path=     multipart part "file", or the raw body
 *        -> {"name","path","type"}
 *   POST /files/upload?path=        (before v0.201) multipart part "file" -> 200,
 *        no body; any failure is a 400 with no body either
 *
 * Parent directories are made (0755); an existing file is replaced. Paths
 * resolve inside the sandbox (dt_double_fs.c). Request bodies are read
 * whole (at most DT_MAX_BODY), chunked ones included.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_json.h"
#include "mk_time.h"

#define BOUNDARY     "DAYTONA-FILE-BOUNDARY"
#define MAX_DOWNLOAD (64u << 20) /* bytes of one bulk-download answer */
#define MAX_PARTS    256

/* ------------------------------------------------------------------ multipart in */

typedef struct {
	char name[256];
	char filename[DT_PATH_MAX];
	const char *data;
	size_t len;
} part_t;

/* The boundary parameter of a Content-Type into out; 0, or -1. */
static int boundary_of(const char *ct, char *out, size_t len)
{
	const char *b = ct ? strcasestr(ct, "boundary=") : NULL;
	size_t n;

	if (!b || strncasecmp(ct, "multipart/", 10) != 0)
		return -1;
	b += 9;
	if (*b == '"') {
		const char *end = strchr(++b, '"');

		n = end ? (size_t)(end - b) : strlen(b);
	} else {
		n = strcspn(b, "; \t");
	}
	if (n == 0 || n + 1 > len)
		return -1;
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}

/* A quoted (or bare) parameter of a Content-Disposition line into out. */
static void disposition_param(const char *line, size_t linelen, const char *param, char *out,
                              size_t len)
{
	size_t plen = strlen(param), i;

	out[0] = '\0';
	for (i = 0; i + plen + 1 < linelen; i++) {
		const char *p = line + i;
		size_t n = 0;

		if ((i > 0 && line[i - 1] != ';' && line[i - 1] != ' ') ||
		    strncasecmp(p, param, plen) != 0 || p[plen] != '=')
			continue;
		p += plen + 1;
		if (*p == '"') {
			p++;
			while (p + n < line + linelen && p[n] != '"')
				n++;
		} else {
			while (p + n < line + linelen && p[n] != ';')
				n++;
		}
		snprintf(out, len, "%.*s", (int)n, p);
		return;
	}
}

/* Split body into parts; their count, or -1 when it is not well-formed multipart. */
static int parse_multipart(const char *body, size_t len, const char *boundary, part_t *parts,
                           int max)
{
	char delim[300];
	size_t dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", boundary);
	const char *p = memmem(body, len, delim, dlen), *end = body + len;
	int n = 0;

	if (!p)
		return -1;
	for (;;) {
		const char *hdr, *hend, *next;

		p += dlen;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			return n; /* the closing delimiter */
		if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || n == max)
			return -1;
		hdr = p + 2;
		hend = memmem(hdr, (size_t)(end - hdr), "\r\n\r\n", 4);
		if (!hend)
			return -1;
		memset(&parts[n], 0, sizeof(parts[n]));
		for (p = hdr; p < hend;) {
			const char *eol = memmem(p, (size_t)(hend - p), "\r\n", 2);
			size_t ll = eol ? (size_t)(eol - p) : (size_t)(hend - p);

			if (ll > 20 && strncasecmp(p, "Content-Disposition:", 20) == 0) {
				disposition_param(p, ll, "name", parts[n].name,
				                  sizeof(parts[n].name));
				disposition_param(p, ll, "filename", parts[n].filename,
				                  sizeof(parts[n].filename));
			}
			p += ll + 2;
		}
		parts[n].data = hend + 4;
		next = memmem(parts[n].data, (size_t)(end - parts[n].data), delim, dlen);
		/* the data ends before the CRLF that precedes the next delimiter */
		while (next && (next - parts[n].data < 2 || next[-2] != '\r' || next[-1] != '\n'))
			next = memmem(next + 1, (size_t)(end - next - 1), delim, dlen);
		if (!next)
			return -1;
		parts[n].len = (size_t)(next - 2 - parts[n].data);
		n++;
		p = next;
	}
}

/* The text of a part, trimmed as Go's strings.TrimSpace does; malloc'd or NULL. */
static char *part_text(const part_t *pt)
{
	const char *a = pt->data, *b = pt->data + pt->len;

	while (a < b && (*a == ' ' || *a == '\t' || *a == '\r' || *a == '\n'))
		a++;
	while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r' || b[-1] == '\n'))
		b--;
	return strndup(a, (size_t)(b - a));
}

typedef struct {
	char key[32]; /* the i of files[i] */
	char *dest;   /* malloc'd */
} dest_t;

/* The upload of one files[key].file part; adds to files or errs. */
static void upload_one(dt_req *r, const dest_t *dests, int ndest, const char *key, const part_t *pt,
                       cJSON *files, cJSON *errs)
{
	char err[DT_PATH_MAX + 256];
	cJSON *o;
	int k;

	for (k = ndest - 1; k >= 0 && strcmp(dests[k].key, key) != 0; k--)
		;
	if (k < 0) {
		snprintf(err, sizeof(err), "file[%s]: missing .path metadata", key);
		cJSON_AddItemToArray(errs, cJSON_CreateString(err));
		return;
	}
	if (dt_fs_write(r->sbx, dests[k].dest, pt->data, pt->len) != 0) {
		snprintf(err, sizeof(err), "%s: create: %s", dests[k].dest, strerror(errno));
		cJSON_AddItemToArray(errs, cJSON_CreateString(err));
		return;
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "path", dests[k].dest);
	cJSON_AddNumberToObject(o, "bytes", (double)pt->len);
	cJSON_AddItemToArray(files, o);
}

static void bulk_upload(dt_req *r)
{
	char boundary[256], err[300];
	part_t *parts = calloc(MAX_PARTS, sizeof(*parts));
	dest_t *dests = calloc(MAX_PARTS, sizeof(*dests));
	cJSON *files = cJSON_CreateArray(), *errs = cJSON_CreateArray(), *o;
	int n = -1, i, ndest = 0;

	if (parts && dests &&
	    boundary_of(mg_get_header(r->conn, "Content-Type"), boundary, sizeof(boundary)) == 0)
		n = parse_multipart(r->body, r->body_len, boundary, parts, MAX_PARTS);
	if (n < 0) {
		cJSON_AddItemToArray(errs, cJSON_CreateString("invalid multipart form"));
		n = 0;
	}
	for (i = 0; i < n; i++) {
		const char *name = parts[i].name, *dot = strrchr(name, '.');
		char key[32];

		if (!dot || strncmp(name, "files[", 6) != 0 || dot - name < 7 || dot[-1] != ']')
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(dot - name - 7), name + 6);
		if (strcmp(dot, ".path") == 0) {
			char *dest = part_text(&parts[i]);

			if (dest && dest[0] && ndest < MAX_PARTS) {
				snprintf(dests[ndest].key, sizeof(dests[ndest].key), "%s", key);
				dests[ndest++].dest = dest;
				continue;
			}
			free(dest);
			snprintf(err, sizeof(err), "path[%s]: empty path", key);
			cJSON_AddItemToArray(errs, cJSON_CreateString(err));
		} else if (strcmp(dot, ".file") == 0) {
			upload_one(r, dests, ndest, key, &parts[i], files, errs);
		}
	}
	o = cJSON_CreateObject();
	if (cJSON_GetArraySize(errs) > 0) {
		cJSON_AddItemToObject(o, "errors", errs);
		cJSON_AddItemToObject(o, "files", files);
		dt_send_json(r, 400, o);
	} else {
		cJSON_Delete(errs);
		cJSON_AddItemToObject(o, "files", files);
		dt_send_json(r, 200, o);
	}
	cJSON_Delete(o);
	for (i = 0; dests && i < ndest; i++)
		free(dests[i].dest);
	free(dests);
	free(parts);
}

static void upload_v2(dt_req *r, const char *path, int legacy)
{
	const char *ct = mg_get_header(r->conn, "Content-Type"), *data = r->body, *base;
	char boundary[256], abs[DT_PATH_MAX];
	size_t len = r->body_len;
	part_t *parts = NULL;
	cJSON *o;
	int e;

	if (ct && strncasecmp(ct, "multipart/", 10) == 0) {
		int n = -1, i;

		parts = calloc(MAX_PARTS, sizeof(*parts));
		if (parts && boundary_of(ct, boundary, sizeof(boundary)) == 0)
			n = parse_multipart(r->body, r->body_len, boundary, parts, MAX_PARTS);
		for (i = 0; i < n && strcmp(parts[i].name, "file") != 0; i++)
			;
		if (n < 0 || i == n) {
			free(parts);
			if (legacy)
				dt_send(r, 400, NULL, NULL, "", 0);
			else
				dt_tb_error(
				    r, 400, "BAD_REQUEST",
				    "bad request: multipart upload without a \"file\" part");
			return;
		}
		data = parts[i].data;
		len = parts[i].len;
	}
	e = dt_fs_write(r->sbx, path, data, len) == 0 ? 0 : errno;
	free(parts);
	if (e && legacy) {
		dt_send(r, 400, NULL, NULL, "", 0);
		return;
	}
	if (legacy) {
		dt_send(r, 200, NULL, NULL, "", 0);
		return;
	}
	if (e) {
		dt_tb_error(r, e == EACCES || e == EPERM ? 403 : 400,
		            e == EACCES || e == EPERM ? "FILE_ACCESS_DENIED" : "BAD_REQUEST",
		            "bad request: %s: %s", path, strerror(e));
		return;
	}
	dt_fs_abs(path, abs, sizeof(abs));
	base = strrchr(abs, '/') + 1;
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "name", base);
	cJSON_AddStringToObject(o, "path", abs);
	cJSON_AddStringToObject(o, "type", "file");
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

/* ------------------------------------------------------------------ downloads */

/* Go's mime.TypeByExtension for the common cases, else application/octet-stream. */
static const char *mime_of(const char *path)
{
	static const char *const map[][2] = {
	    {".txt", "text/plain; charset=utf-8"},
	    {".csv", "text/csv; charset=utf-8"},
	    {".json", "application/json"},
	    {".html", "text/html; charset=utf-8"},
	    {".png", "image/png"},
	    {".jpg", "image/jpeg"},
	    {".jpeg", "image/jpeg"},
	    {".svg", "image/svg+xml"},
	    {".pdf", "application/pdf"},
	    {".xml", "text/xml; charset=utf-8"},
	    {".js", "text/javascript; charset=utf-8"},
	    {".gif", "image/gif"},
	};
	const char *dot = strrchr(path, '.'), *slash = strrchr(path, '/');
	size_t i;

	if (dot && (!slash || dot > slash))
		for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
			if (strcasecmp(dot, map[i][0]) == 0)
				return map[i][1];
	return "application/octet-stream";
}

/* `; filename="..."; filename*=utf-8''...` of name, as the daemon writes them. */
static void filename_params(mk_buf *b, const char *name)
{
	static const char attr[] = "!#$&+-.^_`|~";
	const unsigned char *p;

	mk_buf_puts(b, "; filename=\"");
	for (p = (const unsigned char *)name; *p; p++)
		mk_buf_append(b, *p < 0x80 ? (const char *)p : "?", 1);
	mk_buf_puts(b, "\"; filename*=utf-8''");
	for (p = (const unsigned char *)name; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || (*p && strchr(attr, *p)))
			mk_buf_append(b, p, 1);
		else
			mk_buf_printf(b, "%%%02X", *p);
	}
}

/* Open path for a download: the fd and its size, or -1 with the daemon's code and message. */
static int open_download(const dt_sandbox *s, const char *path, off_t *size, int *status,
                         const char **code, char *msg, size_t msglen)
{
	struct stat st;
	int fd = path[0] ? dt_fs_open(s, path, O_RDONLY) : -1;

	if (!path[0]) {
		*status = 400;
		*code = "INVALID_FILE_PATH";
		snprintf(msg, msglen, "invalid file path: path is empty");
		return -1;
	}
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		*status = e == ENOENT ? 404 : e == EACCES || e == EPERM ? 403 : 500;
		*code = e == ENOENT                 ? "FILE_NOT_FOUND"
		        : e == EACCES || e == EPERM ? "FILE_ACCESS_DENIED"
		                                    : "FILE_READ_FAILED";
		if (e == ENOENT)
			snprintf(msg, msglen, "file not found: %s", path);
		else if (e == EACCES || e == EPERM)
			snprintf(msg, msglen, "permission denied: %s", path);
		else
			snprintf(msg, msglen, "failed to open file: %s", strerror(e));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		close(fd);
		*status = 400;
		*code = "INVALID_FILE_PATH";
		snprintf(msg, msglen, "invalid file path: path points to a directory: %s", path);
		return -1;
	}
	*size = st.st_size;
	return fd;
}

/* Append up to size bytes of fd to b; 0, or -1 when it would pass the answer's limit. */
static int append_fd(mk_buf *b, int fd, off_t size)
{
	char chunk[16384];
	ssize_t n;

	if ((size_t)size > MAX_DOWNLOAD || b->len + (size_t)size > MAX_DOWNLOAD)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (mk_buf_append(b, chunk, (size_t)n) != 0)
			return -1;
	return 0;
}

static void bulk_download(dt_req *r)
{
	const cJSON *paths = cJSON_GetObjectItemCaseSensitive(r->json, "paths"), *p;
	char ctype[80];
	mk_buf b;

	if (!cJSON_IsArray(paths) || cJSON_GetArraySize(paths) == 0) {
		static const char msg[] =
		    "{\"error\":\"request body must be {\\\"paths\\\": [ ... ]} and non-empty\"}";

		dt_send(r, 400, "application/json; charset=utf-8", NULL, msg, sizeof(msg) - 1);
		return;
	}
	mk_buf_init(&b, 0);
	cJSON_ArrayForEach(p, paths)
	{
		const char *path = cJSON_IsString(p) ? p->valuestring : "", *code = NULL;
		char msg[DT_PATH_MAX + 64], ts[40];
		int status = 0, fd;
		off_t size = 0;
		mk_buf part;

		fd = open_download(r->sbx, path, &size, &status, &code, msg, sizeof(msg));
		mk_buf_init(&part, 0);
		if (fd >= 0 && append_fd(&part, fd, size) != 0) {
			mk_buf_release(&part);
			status = 500;
			code = "FILE_READ_FAILED";
			snprintf(msg, sizeof(msg), "failed to read file: over %u bytes",
			         MAX_DOWNLOAD);
			close(fd);
			fd = -1;
		}
		mk_buf_printf(&b, "%s--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"%s\"",
		              b.len ? "\r\n" : "", fd >= 0 ? "file" : "error");
		filename_params(&b, path);
		if (fd >= 0) {
			mk_buf_printf(&b, "\r\nContent-Length: %zu\r\nContent-Type: %s\r\n\r\n",
			              part.len, mime_of(path));
			mk_buf_append(&b, part.data ? part.data : "", part.len);
			close(fd);
		} else {
			cJSON *e = cJSON_CreateObject();
			char *json;

			dt_iso_time(mk_now_ms(), ts, sizeof(ts));
			cJSON_AddNumberToObject(e, "statusCode", status);
			cJSON_AddStringToObject(e, "message", msg);
			cJSON_AddStringToObject(e, "code", code);
			cJSON_AddStringToObject(e, "timestamp", ts);
			cJSON_AddStringToObject(e, "path", r->path);
			cJSON_AddStringToObject(e, "method", r->ri->request_method);
			cJSON_AddStringToObject(e, "source", "DAYTONA_DAEMON");
			json = mk_json_print(e);
			mk_buf_printf(&b,
			              "\r\nContent-Type: application/json; charset=utf-8\r\n\r\n%s",
			              json ? json : "{}");
			cJSON_free(json);
			cJSON_Delete(e);
		}
		mk_buf_release(&part);
	}
	mk_buf_puts(&b, "\r\n--" BOUNDARY "--\r\n");
	snprintf(ctype, sizeof(ctype), "multipart/form-data; boundary=%s", BOUNDARY);
	if (!b.data)
		dt_tb_error(r, 500, "INTERNAL_SERVER_ERROR", "out of memory");
	else
		dt_send(r, 200, ctype, NULL, b.data, b.len);
	mk_buf_release(&b);
}

static void download(dt_req *r, const char *path)
{
	char msg[DT_PATH_MAX + 64], *base;
	const char *code = NULL;
	int status = 0, fd;
	off_t size = 0;
	mk_buf h, data;

	fd = open_download(r->sbx, path, &size, &status, &code, msg, sizeof(msg));
	if (fd < 0) {
		dt_tb_error(r, status == 500 ? 400 : status,
		            status == 404 ? "FILE_NOT_FOUND" : code, "%s", msg);
		return;
	}
	mk_buf_init(&data, 0);
	if (append_fd(&data, fd, size) != 0) {
		close(fd);
		mk_buf_release(&data);
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: over %u bytes", MAX_DOWNLOAD);
		return;
	}
	close(fd);
	base = strrchr(path, '/') ? strrchr(path, '/') + 1 : (char *)path;
	mk_buf_init(&h, 0);
	mk_buf_puts(&h, "Content-Description: File Transfer\r\nContent-Disposition: attachment");
	filename_params(&h, base);
	mk_buf_puts(&h, "\r\nContent-Transfer-Encoding: binary\r\nExpires: 0\r\n"
	                "Cache-Control: must-revalidate\r\nPragma: public\r\n");
	dt_send(r, 200, "application/octet-stream", h.data, data.data ? data.data : "", data.len);
	mk_buf_release(&h);
	mk_buf_release(&data);
}

void dt_transfer_serve(dt_req *r)
{
	char path[DT_PATH_MAX] = "";

	if (strcmp(r->route, "files.bulk-upload") == 0) {
		bulk_upload(r);
		return;
	}
	if (strcmp(r->route, "files.bulk-download") == 0) {
		bulk_download(r);
		return;
	}
	if (!dt_param(r, "path", path, sizeof(path)) || !path[0]) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: path is required");
		return;
	}
	if (strcmp(r->route, "files.download") == 0)
		download(r, path);
	else
		upload_v2(r, path, strcmp(r->route, "files.upload-legacy") == 0);
}
