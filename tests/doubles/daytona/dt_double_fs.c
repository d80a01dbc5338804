/*
 * dt_double_fs.c - paths inside a sandbox, and the toolbox's file-system
 * routes that do not move file contents (contract §3.5):
 *
 *   GET    /files?path=&depth=     [FileInfo]   (path default: the working directory)
 *   GET    /files/info?path=       FileInfo
 *   DELETE /files?path=&recursive= 204
 *   POST   /files/folder?path=&mode=  201
 *   GET    /work-dir, /user-home-dir  {"dir":"/home/daytona"}   GET /version
 *
 * A sandbox's "/" is the directory <root>/<id>/fs; every path is resolved
 * with openat2(RESOLVE_IN_ROOT) from there, so a symlink the sandbox made
 * can never lead the double (which runs as root) out of it. Relative paths
 * are relative to /home/daytona, as for the daemon. Only /home/daytona and
 * /tmp hold anything: the rest of the sandbox's tree (/usr, /etc) is not
 * visible to these routes. Owners are shown as the sandbox sees them.
 *
 * Errors are the daemon's ErrorResponse with FILE_NOT_FOUND,
 * FILE_ACCESS_DENIED or BAD_REQUEST (the newest daemon's codes; v0.190
 * sent some of them with no body, which a fault rule can reproduce).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dt_double.h"
#include "mk_json.h"

#define MAX_DEPTH   16    /* of a listing (each level holds a path on the stack) */
#define MAX_ENTRIES 20000 /* in one listing */

/* ------------------------------------------------------------------ paths */

void dt_fs_abs(const char *path, char *out, size_t len)
{
	char tmp[DT_PATH_MAX];
	const char *seg[256];
	size_t nseg = 0, i, used = 0;
	char *p, *save = NULL;

	if (path[0] == '/')
		snprintf(tmp, sizeof(tmp), "%s", path);
	else
		snprintf(tmp, sizeof(tmp), "%s/%s", DT_HOME, path);
	for (p = strtok_r(tmp, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
		if (strcmp(p, ".") == 0)
			continue;
		if (strcmp(p, "..") == 0) {
			if (nseg > 0)
				nseg--;
			continue;
		}
		if (nseg < sizeof(seg) / sizeof(seg[0]))
			seg[nseg++] = p;
	}
	out[0] = '\0';
	for (i = 0; i < nseg && used + 1 < len; i++) {
		int n = snprintf(out + used, len - used, "/%s", seg[i]);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
	if (!out[0])
		snprintf(out, len, "/");
}

static int openat2_in(const dt_sandbox *s, const char *rel, int flags, mode_t mode)
{
	struct open_how how;

	memset(&how, 0, sizeof(how));
	how.flags = (unsigned long long)(flags | O_CLOEXEC);
	how.mode = (flags & O_CREAT) ? mode : 0;
	how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, s->fs_fd, *rel ? rel : ".", &how, sizeof(how));
}

int dt_fs_open(const dt_sandbox *s, const char *path, int flags)
{
	char abs[DT_PATH_MAX];

	dt_fs_abs(path, abs, sizeof(abs));
	return openat2_in(s, abs + 1, flags, 0644);
}

int dt_fs_mkdirs(const dt_sandbox *s, const char *path, unsigned mode)
{
	char abs[DT_PATH_MAX], prefix[DT_PATH_MAX];
	const char *p;

	dt_fs_abs(path, abs, sizeof(abs));
	p = abs + 1;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - abs) : strlen(abs);
		int fd;

		snprintf(prefix, sizeof(prefix), "%.*s", (int)n, abs);
		fd = openat2_in(s, prefix + 1, O_PATH | O_DIRECTORY, 0);
		if (fd < 0 && errno == ENOENT) {
			const char *last = strrchr(prefix, '/');
			char parent[DT_PATH_MAX];
			int pfd;

			snprintf(parent, sizeof(parent), "%.*s", (int)(last - prefix), prefix);
			pfd = openat2_in(s, parent[0] ? parent + 1 : "", O_PATH | O_DIRECTORY, 0);
			if (pfd < 0)
				return -1;
			if (mkdirat(pfd, last + 1, (mode_t)mode) != 0 && errno != EEXIST) {
				int e = errno;

				close(pfd);
				errno = e;
				return -1;
			}
			close(pfd);
			fd = openat2_in(s, prefix + 1, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return -1;
		close(fd);
		if (!slash)
			break;
		p = slash + 1;
	}
	return 0;
}

int dt_fs_parent(const dt_sandbox *s, const char *path, int mkparents, char *leaf, size_t leaflen)
{
	char abs[DT_PATH_MAX], dir[DT_PATH_MAX];
	const char *last;

	dt_fs_abs(path, abs, sizeof(abs));
	if (strcmp(abs, "/") == 0) {
		errno = EINVAL;
		return -1;
	}
	last = strrchr(abs, '/');
	snprintf(leaf, leaflen, "%s", last + 1);
	snprintf(dir, sizeof(dir), "%.*s", (int)(last - abs), abs);
	if (mkparents && dir[0] && dt_fs_mkdirs(s, dir, 0755) != 0)
		return -1;
	return openat2_in(s, dir[0] ? dir + 1 : "", O_PATH | O_DIRECTORY, 0);
}

int dt_fs_read(const dt_sandbox *s, const char *path, size_t max, mk_buf *out)
{
	int fd = dt_fs_open(s, path, O_RDONLY);
	char chunk[16384];
	ssize_t n;

	if (fd < 0)
		return -1;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		size_t keep = (size_t)n;

		if (out->len >= max)
			break;
		if (keep > max - out->len)
			keep = max - out->len;
		mk_buf_append(out, chunk, keep);
	}
	close(fd);
	return 0;
}

int dt_fs_write(const dt_sandbox *s, const char *path, const void *data, size_t len)
{
	char leaf[DT_PATH_MAX];
	int pfd = dt_fs_parent(s, path, 1, leaf, sizeof(leaf)), fd, e;
	size_t off = 0;

	if (pfd < 0)
		return -1;
	close(pfd);
	fd = dt_fs_open(s, path, O_WRONLY | O_CREAT | O_TRUNC);
	if (fd < 0)
		return -1;
	while (off < len) {
		ssize_t w = write(fd, (const char *)data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			e = w < 0 ? errno : EIO;
			close(fd);
			errno = e;
			return -1;
		}
		off += (size_t)w;
	}
	return close(fd);
}

/* ------------------------------------------------------------------ FileInfo */

/* Go's FileMode.String() of st_mode. */
static void go_mode(mode_t m, char *out)
{
	static const char rwx[] = "rwxrwxrwx";
	size_t n = 0;
	int i;

	if (S_ISDIR(m))
		out[n++] = 'd';
	else if (S_ISLNK(m))
		out[n++] = 'L';
	else if (S_ISFIFO(m))
		out[n++] = 'p';
	else if (S_ISSOCK(m))
		out[n++] = 'S';
	else if (S_ISBLK(m))
		out[n++] = 'D';
	else if (S_ISCHR(m)) {
		out[n++] = 'D';
		out[n++] = 'c';
	}
	if (m & S_ISUID)
		out[n++] = 'u';
	if (m & S_ISGID)
		out[n++] = 'g';
	if (m & S_ISVTX)
		out[n++] = 't';
	if (n == 0)
		out[n++] = '-';
	for (i = 0; i < 9; i++)
		out[n++] = (m & (1u << (8 - i))) ? rwx[i] : '-';
	out[n] = '\0';
}

/* A uid or gid as the sandbox sees it: the double's own files are its user's. */
static const char *inside_id(unsigned id)
{
	return id == 0 ? "1000" : "65534";
}

static cJSON *file_info(const char *abs, const struct stat *st)
{
	cJSON *o = cJSON_CreateObject();
	const char *name = strrchr(abs, '/');
	char mode[16], perm[8], iso[48], gotime[64], day[32];
	struct tm tm;

	name = name && name[1] ? name + 1 : "/";
	go_mode(st->st_mode, mode);
	snprintf(perm, sizeof(perm), "%04o", (unsigned)(st->st_mode & 0777));
	gmtime_r(&st->st_mtim.tv_sec, &tm);
	strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(iso, sizeof(iso), "%s.%09ldZ", day, st->st_mtim.tv_nsec);
	strftime(day, sizeof(day), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(gotime, sizeof(gotime), "%s.%09ld +0000 UTC", day, st->st_mtim.tv_nsec);
	cJSON_AddStringToObject(o, "name", name);
	cJSON_AddStringToObject(o, "path", abs);
	cJSON_AddBoolToObject(o, "isDir", S_ISDIR(st->st_mode));
	cJSON_AddNumberToObject(o, "size", (double)st->st_size);
	cJSON_AddStringToObject(o, "mode", mode);
	cJSON_AddStringToObject(o, "permissions", perm);
	cJSON_AddStringToObject(o, "owner", inside_id(st->st_uid));
	cJSON_AddStringToObject(o, "group", inside_id(st->st_gid));
	cJSON_AddStringToObject(o, "modifiedAt", iso);
	cJSON_AddStringToObject(o, "modTime", gotime);
	return o;
}

/* stat of abs inside s, following symlinks inside the sandbox; 0, or -1 with errno. */
static int stat_in(const dt_sandbox *s, const char *abs, struct stat *st)
{
	int fd = openat2_in(s, abs + 1, O_PATH, 0), rc;

	if (fd < 0)
		return -1;
	rc = fstat(fd, st);
	close(fd);
	return rc;
}

/* The daemon's answer to a failed lookup of path. */
static void fs_error(dt_req *r, int e, const char *path)
{
	if (e == ENOENT)
		dt_tb_error(r, 404, "FILE_NOT_FOUND", "file not found: %s", path);
	else if (e == EACCES || e == EPERM)
		dt_tb_error(r, 403, "FILE_ACCESS_DENIED", "permission denied: %s", path);
	else
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: %s: %s", path, strerror(e));
}

/* ------------------------------------------------------------------ routes */

/* Add the entries of directory abs (and below, to depth) to list. */
static void list_dir(const dt_sandbox *s, const char *abs, int depth, cJSON *list)
{
	int fd = openat2_in(s, abs + 1, O_RDONLY | O_DIRECTORY, 0);
	struct dirent *e;
	DIR *dp;

	if (fd < 0)
		return;
	dp = fdopendir(fd);
	if (!dp) {
		close(fd);
		return;
	}
	while ((e = readdir(dp)) && cJSON_GetArraySize(list) < MAX_ENTRIES) {
		char child[DT_PATH_MAX];
		struct stat st;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(child, sizeof(child), "%s/%s", strcmp(abs, "/") == 0 ? "" : abs,
		         e->d_name);
		if (stat_in(s, child, &st) != 0)
			continue; /* as the daemon: entries it cannot stat are left out */
		cJSON_AddItemToArray(list, file_info(child, &st));
		if (depth > 1 && S_ISDIR(st.st_mode))
			list_dir(s, child, depth - 1, list);
	}
	closedir(dp);
}

static void list(dt_req *r)
{
	char path[DT_PATH_MAX] = ".", abs[DT_PATH_MAX], v[32];
	long depth = 1;
	struct stat st;
	cJSON *a;

	dt_param(r, "path", path, sizeof(path));
	if (!path[0])
		snprintf(path, sizeof(path), ".");
	if (dt_param(r, "depth", v, sizeof(v)) && *v) {
		char *end;

		depth = strtol(v, &end, 10);
		if (*end || depth < 1) {
			dt_tb_error(r, 400, "BAD_REQUEST",
			            "bad request: depth must be an integer >= 1");
			return;
		}
		if (depth > MAX_DEPTH)
			depth = MAX_DEPTH;
	}
	dt_fs_abs(path, abs, sizeof(abs));
	if (stat_in(r->sbx, abs, &st) != 0) {
		fs_error(r, errno, path);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		fs_error(r, ENOTDIR, path);
		return;
	}
	a = cJSON_CreateArray();
	list_dir(r->sbx, abs, (int)depth, a);
	dt_send_json(r, 200, a);
	cJSON_Delete(a);
}

static void info(dt_req *r, const char *path)
{
	char abs[DT_PATH_MAX];
	struct stat st;
	cJSON *o;

	dt_fs_abs(path, abs, sizeof(abs));
	if (stat_in(r->sbx, abs, &st) != 0) {
		fs_error(r, errno, path);
		return;
	}
	o = file_info(abs, &st);
	dt_send_json(r, 200, o);
	cJSON_Delete(o);
}

/* Whether abs is one of the directories the sandbox user cannot remove. */
static int protected_dir(const char *abs)
{
	return strcmp(abs, "/") == 0 || strcmp(abs, "/home") == 0 || strcmp(abs, DT_HOME) == 0 ||
	       strcmp(abs, "/tmp") == 0;
}

static void delete (dt_req *r, const char *path)
{
	char abs[DT_PATH_MAX], leaf[DT_PATH_MAX], v[16] = "";
	struct stat st;
	int pfd, recursive;

	dt_param(r, "recursive", v, sizeof(v));
	recursive = strcmp(v, "true") == 0;
	dt_fs_abs(path, abs, sizeof(abs));
	if (protected_dir(abs)) {
		fs_error(r, EACCES, path);
		return;
	}
	pfd = dt_fs_parent(r->sbx, path, 0, leaf, sizeof(leaf));
	if (pfd < 0 || fstatat(pfd, leaf, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		int e = errno;

		if (pfd >= 0)
			close(pfd);
		fs_error(r, e, path);
		return;
	}
	if (S_ISDIR(st.st_mode) && !recursive) {
		close(pfd);
		dt_tb_error(r, 400, "BAD_REQUEST",
		            "bad request: cannot delete directory without recursive flag");
		return;
	}
	if (S_ISDIR(st.st_mode))
		dt_rm_tree(pfd, leaf);
	else if (unlinkat(pfd, leaf, 0) != 0) {
		int e = errno;

		close(pfd);
		fs_error(r, e, path);
		return;
	}
	close(pfd);
	dt_send(r, 204, NULL, NULL, "", 0);
}

static void folder(dt_req *r, const char *path)
{
	char abs[DT_PATH_MAX], v[16] = "";
	unsigned long mode = 0755;

	if (dt_param(r, "mode", v, sizeof(v)) && *v) {
		char *end;

		mode = strtoul(v, &end, 8);
		if (*end || mode > 07777) {
			dt_tb_error(r, 400, "BAD_REQUEST", "bad request: invalid mode format");
			return;
		}
	}
	dt_fs_abs(path, abs, sizeof(abs));
	if (strcmp(abs, "/") != 0 && dt_fs_mkdirs(r->sbx, abs, (unsigned)mode) != 0) {
		fs_error(r, errno, path);
		return;
	}
	dt_send(r, 201, NULL, NULL, "", 0);
}

void dt_fs_serve(dt_req *r)
{
	const char *route = r->route;
	char path[DT_PATH_MAX] = "";

	if (strncmp(route, "info.", 5) == 0) {
		cJSON *o = cJSON_CreateObject();

		if (strcmp(route, "info.version") == 0)
			cJSON_AddStringToObject(o, "version", DT_VERSION);
		else
			cJSON_AddStringToObject(o, "dir", DT_HOME);
		dt_send_json(r, 200, o);
		cJSON_Delete(o);
		return;
	}
	if (strcmp(route, "files.list") == 0) {
		list(r);
		return;
	}
	if (strcmp(route, "files.info") != 0 && strcmp(route, "files.delete") != 0 &&
	    strcmp(route, "files.folder") != 0) {
		dt_transfer_serve(r);
		return;
	}
	if (!dt_param(r, "path", path, sizeof(path)) || !path[0]) {
		dt_tb_error(r, 400, "BAD_REQUEST", "bad request: path is required");
		return;
	}
	if (strcmp(route, "files.info") == 0)
		info(r, path);
	else if (strcmp(route, "files.delete") == 0)
		delete (r, path);
	else
		folder(r, path);
}
