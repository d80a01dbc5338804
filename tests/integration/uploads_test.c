/*
 * uploads_test.c - files uploaded through the gateway (/api/v1/files): a
 * file's kind comes from its content (CSV, TSV, JSON, NDJSON, Excel), not
 * its name; anything else, a Parquet file this sandbox cannot read, an
 * empty file and one over GATEWAY_UPLOAD_MAX are refused with the right
 * status; the owner lists (newest first, by cursor), reads and deletes
 * their uploads while anyone else gets 404 as for a missing one; and
 * exec.attach puts an upload into a chat, where pandas reads it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mt.h"
#include "mt_check.h"

#define BOUNDARY   "mark-test-boundary-7f3a"
#define UPLOAD_MAX (64 * 1024) /* GATEWAY_UPLOAD_MAX of this stack */

static mt_stack st;
static char tok_a[2048], tok_b[2048], id_a[64], id_b[64];

static void stack_up(void)
{
	static char worker[2][64];
	/* A run's wall clock with room for pandas and openpyxl on a loaded host. */
	const char *env[] = {"GATEWAY_UPLOAD_MAX=64K",
	                     "EXECUTOR_POOL_SIZE=1",
	                     "EXECUTOR_TIMEOUT=60s",
	                     worker[0],
	                     worker[1],
	                     NULL};
	int port = mt_free_port();

	/* The executor's own worker address, so stacks on one host do not share it. */
	snprintf(worker[0], sizeof(worker[0]), "EXECUTOR_WORKER_LISTEN=tcp://127.0.0.1:%d", port);
	snprintf(worker[1], sizeof(worker[1]), "EXECUTOR_ROUTER_URL=tcp://127.0.0.1:%d", port);
	if (mt_stack_start(&st, env) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "alice", tok_a, sizeof(tok_a), id_a, sizeof(id_a)), 0);
	ck_assert_int_eq(mt_user(&st, "bob", tok_b, sizeof(tok_b), id_b, sizeof(id_b)), 0);
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

static long call(const char *tok, const char *method, const char *path, mt_resp *r)
{
	char auth[2100];
	const char *h[] = {auth, NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	mt_http(method, mt_url(&st, path), h, NULL, 0, r);
	return r->status;
}

/*
 * POST /api/v1/files with one `file` part (filename, len bytes of data)
 * and, when name is not NULL, a `name` field. filename NULL: no file part.
 */
static long upload(const char *tok, const char *filename, const char *name, const void *data,
                   size_t len, mt_resp *r)
{
	char auth[2100], head[1024];
	const char *h[] = {auth, "Content-Type: multipart/form-data; boundary=" BOUNDARY, NULL};
	size_t cap = len + 2048, n = 0;
	char *body = malloc(cap);
	long status;

	ck_assert_ptr_nonnull(body);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	if (name)
		n += (size_t)snprintf(body + n, cap - n,
		                      "--" BOUNDARY "\r\nContent-Disposition: form-data; "
		                      "name=\"name\"\r\n\r\n%s\r\n",
		                      name);
	if (filename) {
		int k =
		    snprintf(head, sizeof(head),
		             "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\"; "
		             "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		             filename);

		memcpy(body + n, head, (size_t)k);
		n += (size_t)k;
		memcpy(body + n, data, len);
		n += len;
		memcpy(body + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)snprintf(body + n, cap - n, "--" BOUNDARY "--\r\n");
	mt_http("POST", mt_url(&st, "/api/v1/files"), h, body, n, r);
	free(body);
	status = r->status;
	return status;
}

static long upload_text(const char *tok, const char *filename, const char *text, mt_resp *r)
{
	return upload(tok, filename, NULL, text, strlen(text), r);
}

/* Upload text expecting 201 and kind; returns the new file's id (caller frees). */
static char *uploaded(const char *tok, const char *filename, const char *text, const char *kind)
{
	mt_resp r;
	char *id;

	ck_assert_msg(upload_text(tok, filename, text, &r) == 201, "%s: %ld %s", filename, r.status,
	              r.body);
	ck_assert_str_eq(mk_json_str(r.json, "kind"), kind);
	id = strdup(mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	return id;
}

static const char *message_of(const mt_resp *r)
{
	const char *m = mk_json_str(cJSON_GetObjectItem(r->json, "error"), "message");

	return m ? m : "";
}

/* The whole of a file (caller frees), or NULL. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *d;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	d = malloc((size_t)n + 1);
	if (d && fread(d, 1, (size_t)n, f) != (size_t)n) {
		free(d);
		d = NULL;
	}
	fclose(f);
	*len = (size_t)n;
	return d;
}

/* Run /usr/bin/python3 with code (argv[1] = out); 0 when it exited 0. quiet: no stderr. */
static int python(const char *code, const char *out, int quiet)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		if (quiet && !freopen("/dev/null", "w", stderr))
			_exit(126);
		execl("/usr/bin/python3", "python3", "-c", code, out, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* A small workbook written by openpyxl (caller frees). */
static char *xlsx(size_t *len)
{
	char path[256];
	char *d;

	snprintf(path, sizeof(path), "/tmp/mark-uploads-%d.xlsx", (int)getpid());
	ck_assert_msg(python("import sys, openpyxl\n"
	                     "wb = openpyxl.Workbook(); ws = wb.active\n"
	                     "ws.append(['region', 'revenue'])\n"
	                     "ws.append(['north', 10]); ws.append(['south', 32])\n"
	                     "wb.save(sys.argv[1])\n",
	                     path, 0) == 0,
	              "/usr/bin/python3 with openpyxl is needed (scripts/deps.sh installs it)");
	d = slurp(path, len);
	unlink(path);
	ck_assert_ptr_nonnull(d);
	return d;
}

START_TEST(test_text_files_are_typed_by_their_content_not_their_name)
{
	static const struct {
		const char *filename, *text, *kind, *mime;
	} cases[] = {
	    {"sales.csv", "region,revenue\nnorth,10\nsouth,32\n", "csv", "text/csv"},
	    {"semi.csv", "region;revenue\r\nnorth;10\r\n", "csv", "text/csv"},
	    {"quoted.csv", "name,note\n\"Smith, J\",\"said \"\"hi\"\"\"\nLee,ok", "csv",
	     "text/csv"},
	    {"data.txt", "region\trevenue\nnorth\t10\nsouth\t32\n", "tsv",
	     "text/tab-separated-values"},
	    {"rows.json", "[{\"region\": \"north\", \"revenue\": 10}]\n", "json",
	     "application/json"},
	    {"events.log", "{\"a\": 1}\n{\"a\": 2, \"b\": [true, null]}\n", "json",
	     "application/x-ndjson"},
	    /* The name says JSON; the content is CSV, and content wins. */
	    {"misnamed.json", "a,b\n1,2\n", "csv", "text/csv"},
	};
	size_t i;
	mt_resp r;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(upload_text(tok_a, cases[i].filename, cases[i].text, &r) == 201,
		              "%s: %ld %s", cases[i].filename, r.status, r.body);
		ck_assert_str_eq(mk_json_str(r.json, "kind"), cases[i].kind);
		ck_assert_str_eq(mk_json_str(r.json, "mime"), cases[i].mime);
		ck_assert_str_eq(mk_json_str(r.json, "name"), cases[i].filename);
		ck_assert_double_eq(cJSON_GetObjectItem(r.json, "bytes")->valuedouble,
		                    (double)strlen(cases[i].text));
		ck_assert_ptr_nonnull(mk_json_str(r.json, "created_at"));
		ck_assert_int_eq((int)strlen(mk_json_str(r.json, "id")), 36);
		mt_resp_release(&r);
	}
}
END_TEST

START_TEST(test_an_excel_workbook_is_excel_and_the_name_field_names_it)
{
	size_t len;
	char *d = xlsx(&len);
	mt_resp r;

	/* Named .csv by the client: the content says Excel. */
	ck_assert_int_eq(upload(tok_a, "C:\\Users\\al\\report.csv", "Q3 report.xlsx", d, len, &r),
	                 201);
	ck_assert_str_eq(mk_json_str(r.json, "kind"), "excel");
	ck_assert_str_eq(mk_json_str(r.json, "mime"),
	                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
	ck_assert_str_eq(mk_json_str(r.json, "name"), "Q3 report.xlsx");
	mt_resp_release(&r);
	/* Without a name field, the filename's last part names it. */
	ck_assert_int_eq(upload(tok_a, "C:\\Users\\al\\report.xlsx", NULL, d, len, &r), 201);
	ck_assert_str_eq(mk_json_str(r.json, "name"), "report.xlsx");
	mt_resp_release(&r);
	free(d);
}
END_TEST

START_TEST(test_uploads_are_listed_newest_first_read_and_deleted_by_their_owner)
{
	char tok[2048], uid[64], path[512], cur[256] = "";
	char *ids[5];
	int i, seen = 0, pages = 0;
	mt_resp r;

	ck_assert_int_eq(mt_user(&st, "lister", tok, sizeof(tok), uid, sizeof(uid)), 0);
	for (i = 0; i < 5; i++) {
		char name[32];

		snprintf(name, sizeof(name), "f%d.csv", i);
		ids[i] = uploaded(tok, name, "a,b\n1,2\n", "csv");
	}
	do {
		const cJSON *it;
		const char *next;

		snprintf(path, sizeof(path), "/api/v1/files?limit=2%s%s", cur[0] ? "&cursor=" : "",
		         cur);
		ck_assert_int_eq(call(tok, "GET", path, &r), 200);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r.json, "items"))
		{
			char want[32];

			/* Newest first: the k-th item seen is upload 4-k. */
			ck_assert_str_eq(mk_json_str(it, "id"), ids[4 - seen]);
			snprintf(want, sizeof(want), "f%d.csv", 4 - seen);
			ck_assert_str_eq(mk_json_str(it, "name"), want);
			ck_assert_ptr_null(cJSON_GetObjectItem(it, "data_b64"));
			seen++;
		}
		next = mk_json_str(r.json, "next_cursor");
		snprintf(cur, sizeof(cur), "%s", next ? next : "");
		mt_resp_release(&r);
		pages++;
	} while (cur[0] && pages < 10);
	ck_assert_int_eq(seen, 5);
	ck_assert_int_eq(pages, 3);

	snprintf(path, sizeof(path), "/api/v1/files/%s", ids[2]);
	ck_assert_int_eq(call(tok, "GET", path, &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "id"), ids[2]);
	ck_assert_str_eq(mk_json_str(r.json, "name"), "f2.csv");
	ck_assert_str_eq(mk_json_str(r.json, "kind"), "csv");
	ck_assert_str_eq(mk_json_str(r.json, "mime"), "text/csv");
	ck_assert_double_eq(cJSON_GetObjectItem(r.json, "bytes")->valuedouble, 8);
	ck_assert_ptr_nonnull(mk_json_str(r.json, "created_at"));
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "DELETE", path, &r), 204);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "GET", path, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "DELETE", path, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "GET", "/api/v1/files?limit=100", &r), 200);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(r.json, "items")), 4);
	ck_assert_ptr_null(strstr(r.body, ids[2]));
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "GET", "/api/v1/files?cursor=not-a-cursor", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok, "GET", "/api/v1/files?limit=0", &r), 422);
	mt_resp_release(&r);
	for (i = 0; i < 5; i++)
		free(ids[i]);
}
END_TEST

START_TEST(test_another_users_file_answers_404_like_a_missing_one)
{
	const char *missing = "/api/v1/files/00000000-0000-4000-8000-000000000000";
	char *id = uploaded(tok_a, "secret.csv", "k,v\nx,1\n", "csv");
	char path[128];
	mt_resp r, m;

	snprintf(path, sizeof(path), "/api/v1/files/%s", id);
	ck_assert_int_eq(call(tok_a, "GET", missing, &m), 404);
	ck_assert_int_eq(call(tok_b, "GET", path, &r), 404);
	ck_assert_str_eq(mt_error_code(&r), "not_found");
	ck_assert_str_eq(mt_error_code(&r), mt_error_code(&m));
	mt_resp_release(&r);
	mt_resp_release(&m);
	ck_assert_int_eq(call(tok_b, "DELETE", path, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_b, "GET", "/api/v1/files/not-a-uuid", &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_b, "GET", "/api/v1/files?limit=100", &r), 200);
	ck_assert_ptr_null(strstr(r.body, id));
	mt_resp_release(&r);
	/* Alice's file is untouched. */
	ck_assert_int_eq(call(tok_a, "GET", path, &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "name"), "secret.csv");
	mt_resp_release(&r);
	free(id);
}
END_TEST

START_TEST(test_files_mark_cannot_read_are_415_with_what_is_accepted)
{
	static const unsigned char png[] = {
	    0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13, 'I', 'H',  'D',  'R',
	    0,    0,   0,   1,   0,    0,    0,    1,    8, 6, 0, 0,  0,   0x1f, 0x15, 0xc4};
	static const unsigned char zip[] = {'P', 'K', 3, 4, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	                                    0,   0,   0, 0, 0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	static const char *const text[] = {
	    "Dear team,\nthe numbers look good this quarter.\nBest, Al\n", /* prose */
	    "{\"a\": 1",                                                   /* broken JSON */
	    "caf\xe9,price\nlatte,3\n",                                    /* Latin-1 */
	};
	mt_resp r;
	size_t i;

	ck_assert_int_eq(upload(tok_a, "chart.csv", NULL, png, sizeof(png), &r), 415);
	ck_assert_str_eq(mt_error_code(&r), "unsupported_media_type");
	ck_assert_ptr_nonnull(strstr(message_of(&r), "chart.csv"));
	ck_assert_ptr_nonnull(strstr(message_of(&r), "CSV"));
	ck_assert_ptr_nonnull(strstr(message_of(&r), "Excel"));
	ck_assert_ptr_nonnull(strstr(message_of(&r), "JSON"));
	ck_assert_ptr_nonnull(strstr(message_of(&r), "Parquet"));
	mt_resp_release(&r);
	ck_assert_int_eq(upload(tok_a, "book.xlsx", NULL, zip, sizeof(zip), &r), 415);
	mt_resp_release(&r);
	for (i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		ck_assert_msg(upload_text(tok_a, "t.csv", text[i], &r) == 415, "'%s': %ld", text[i],
		              r.status);
		mt_resp_release(&r);
	}
	ck_assert_int_eq(call(tok_a, "GET", "/api/v1/files?limit=100", &r), 200);
	ck_assert_ptr_null(strstr(r.body, "chart.csv"));
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_parquet_is_refused_where_the_sandbox_cannot_read_it)
{
	static const char pq[] = "PAR1\x15\x04\x15\x10\x15\x14\x4c\x15\x02\x15\x00\x12\x00\x00"
	                         "\x08\x1c\x01\x00\x00\x00\x00\x00\x00\x00\x1b\x00\x00\x00PAR1";
	int has_pyarrow = python("import pyarrow", "", 1) == 0;
	mt_resp r;

	upload(tok_a, "t.parquet", NULL, pq, sizeof(pq) - 1, &r);
	if (has_pyarrow) {
		ck_assert_int_eq(r.status, 201);
		ck_assert_str_eq(mk_json_str(r.json, "kind"), "parquet");
	} else {
		ck_assert_int_eq(r.status, 415);
		ck_assert_str_eq(mt_error_code(&r), "unsupported_media_type");
		ck_assert_ptr_nonnull(strstr(message_of(&r), "not supported by this sandbox"));
	}
	mt_resp_release(&r);
}
END_TEST

/* Send an upload with chunked transfer encoding (no Content-Length); the status answered. */
static int chunked_upload(const char *tok, size_t total)
{
	struct sockaddr_in a;
	char head[4096], chunk[8192 + 64], resp[512] = "";
	int fd = socket(AF_INET, SOCK_STREAM, 0), status = 0, n;
	size_t sent = 0;

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((unsigned short)st.port[MT_GATEWAY]);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	n = snprintf(head, sizeof(head),
	             "POST /api/v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	             "Authorization: Bearer %s\r\n"
	             "Content-Type: multipart/form-data; boundary=" BOUNDARY "\r\n"
	             "Transfer-Encoding: chunked\r\n\r\n",
	             tok);
	send(fd, head, (size_t)n, MSG_NOSIGNAL);
	n = snprintf(chunk, sizeof(chunk),
	             "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\"; "
	             "filename=\"big.csv\"\r\n\r\n");
	n = snprintf(head, sizeof(head), "%x\r\n%.*s\r\n", n, n, chunk);
	send(fd, head, (size_t)n, MSG_NOSIGNAL);
	while (sent < total) {
		int k = snprintf(chunk, sizeof(chunk), "2000\r\n");

		memset(chunk + k, 'x', 8192);
		memcpy(chunk + k + 8192, "\r\n", 2);
		if (send(fd, chunk, (size_t)k + 8194, MSG_NOSIGNAL) < 0)
			break; /* the gateway answered and closed early */
		sent += 8192;
	}
	send(fd, "0\r\n\r\n", 5, MSG_NOSIGNAL);
	n = (int)recv(fd, resp, sizeof(resp) - 1, 0);
	if (n > 0) {
		resp[n] = '\0';
		sscanf(resp, "HTTP/1.1 %d", &status);
	}
	close(fd);
	return status;
}

START_TEST(test_empty_oversized_and_malformed_uploads_are_refused)
{
	char auth[2100];
	const char *json_h[] = {auth, "Content-Type: application/json", NULL};
	const char *bad_h[] = {auth, "Content-Type: multipart/form-data", NULL};
	char *big = malloc(UPLOAD_MAX + 4096);
	mt_resp r;
	size_t i;

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok_a);
	ck_assert_int_eq(upload_text(tok_a, "empty.csv", "", &r), 422);
	ck_assert_str_eq(mt_error_code(&r), "validation_failed");
	ck_assert_ptr_nonnull(strstr(message_of(&r), "empty"));
	mt_resp_release(&r);
	/* Just over GATEWAY_UPLOAD_MAX: refused by the file part's size. */
	for (i = 0; i < UPLOAD_MAX + 4096; i++)
		big[i] = i % 8 == 7 ? '\n' : (i % 2 ? ',' : '1');
	ck_assert_int_eq(upload(tok_a, "big.csv", NULL, big, UPLOAD_MAX + 4096, &r), 413);
	ck_assert_str_eq(mt_error_code(&r), "too_large");
	ck_assert_ptr_nonnull(strstr(message_of(&r), "GATEWAY_UPLOAD_MAX"));
	mt_resp_release(&r);
	/* Far over it: refused from its Content-Length, before reading. */
	big = realloc(big, 4 * UPLOAD_MAX);
	ck_assert_ptr_nonnull(big);
	memset(big, '1', 4 * UPLOAD_MAX);
	ck_assert_int_eq(upload(tok_a, "bigger.csv", NULL, big, 4 * UPLOAD_MAX, &r), 413);
	ck_assert_str_eq(mt_error_code(&r), "too_large");
	mt_resp_release(&r);
	/* Exactly at the limit is fine. */
	for (i = 0; i < UPLOAD_MAX; i++)
		big[i] = i % 8 == 7 ? '\n' : (i % 2 ? ',' : '1');
	ck_assert_int_eq(upload(tok_a, "edge.csv", NULL, big, UPLOAD_MAX, &r), 201);
	mt_resp_release(&r);
	free(big);
	/* Without a Content-Length: refused while reading. */
	ck_assert_int_eq(chunked_upload(tok_a, 4 * UPLOAD_MAX), 413);
	/* No file part; a file part without a filename. */
	ck_assert_int_eq(upload(tok_a, NULL, "just-a-name.csv", NULL, 0, &r), 422);
	ck_assert_ptr_nonnull(strstr(message_of(&r), "'file'"));
	mt_resp_release(&r);
	{
		const char *h[] = {auth, "Content-Type: multipart/form-data; boundary=" BOUNDARY,
		                   NULL};
		const char *body = "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\""
		                   "\r\n\r\na,b\n1,2\n\r\n--" BOUNDARY "--\r\n";

		mt_http("POST", mt_url(&st, "/api/v1/files"), h, body, strlen(body), &r);
		ck_assert_int_eq(r.status, 422);
		mt_resp_release(&r);
		body = "--" BOUNDARY "\r\nContent-Disposition: form-data; name=\"file\"; "
		       "filename=\"x.csv\"\r\n\r\na,b\n1,2\n";
		mt_http("POST", mt_url(&st, "/api/v1/files"), h, body, strlen(body), &r);
		ck_assert_int_eq(r.status, 400); /* no closing boundary */
		mt_resp_release(&r);
	}
	/* Not multipart at all; multipart without a boundary. */
	mt_http("POST", mt_url(&st, "/api/v1/files"), json_h, "{}", 2, &r);
	ck_assert_int_eq(r.status, 415);
	ck_assert_str_eq(mt_error_code(&r), "unsupported_media_type");
	mt_resp_release(&r);
	mt_http("POST", mt_url(&st, "/api/v1/files"), bad_h, "x", 1, &r);
	ck_assert_int_eq(r.status, 400);
	mt_resp_release(&r);
	/* No token. */
	mt_http("POST", mt_url(&st, "/api/v1/files"), NULL, "x", 1, &r);
	ck_assert_int_eq(r.status, 401);
	mt_resp_release(&r);
	mt_http("GET", mt_url(&st, "/api/v1/files"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 401);
	mt_resp_release(&r);
}
END_TEST

/* An exec.* call to the executor as user; fills *res (release it). */
static mk_err exec_call(mk_rpc_client *c, const char *user, mk_op op, const char *body_json,
                        mk_rpc_result *res)
{
	mk_caller who;
	cJSON *b = cJSON_Parse(body_json);
	mk_err e;

	memset(&who, 0, sizeof(who));
	snprintf(who.user_id, sizeof(who.user_id), "%s", user);
	snprintf(who.role, sizeof(who.role), "user");
	/* Room for a sandbox's start (up to a minute) and a run's whole wall clock. */
	e = mk_rpc_call(c, op, "uploads-test", &who, b, 180000, res);
	cJSON_Delete(b);
	return e;
}

START_TEST(test_an_attached_upload_is_read_by_pandas_in_the_chat)
{
	char url[64], err[256], body[512], chat[64];
	char *csv =
	    uploaded(tok_a, "../Sales Q3.csv", "region,revenue\nnorth,10\nsouth,32\n", "csv");
	size_t xlen;
	char *xd = xlsx(&xlen), *xid;
	mk_rpc_client *c;
	mk_rpc_result res;
	const char *out;
	mt_resp r;

	ck_assert_int_eq(upload(tok_a, "book.xlsx", NULL, xd, xlen, &r), 201);
	xid = strdup(mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	free(xd);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", st.port[MT_EXECUTOR]);
	c = mk_rpc_client_new(url, 64 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	snprintf(chat, sizeof(chat), "uploads-%d", (int)getpid());

	/* The name "../Sales Q3.csv" was cut to its last part when it was uploaded. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"file_id\":\"%s\"}", chat, csv);
	ck_assert_msg(exec_call(c, id_a, MK_OP_EXEC_ATTACH, body, &res) == MK_OK, "%s", res.msg);
	ck_assert_str_eq(mk_json_str(res.body, "path"), "Sales Q3.csv");
	ck_assert_double_eq(cJSON_GetObjectItem(res.body, "bytes")->valuedouble, 33);
	mk_rpc_result_release(&res);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"file_id\":\"%s\"}", chat, xid);
	ck_assert_msg(exec_call(c, id_a, MK_OP_EXEC_ATTACH, body, &res) == MK_OK, "%s", res.msg);
	ck_assert_str_eq(mk_json_str(res.body, "path"), "book.xlsx");
	mk_rpc_result_release(&res);

	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"code\":\"import pandas as pd\\n"
	         "df = pd.read_csv('Sales Q3.csv')\\nx = pd.read_excel('book.xlsx')\\n"
	         "print('sum', df.revenue.sum(), x.revenue.sum())\"}",
	         chat);
	ck_assert_msg(exec_call(c, id_a, MK_OP_EXEC_RUN, body, &res) == MK_OK, "%s", res.msg);
	out = mk_json_str(res.body, "stdout");
	ck_assert_msg(out && strstr(out, "sum 42 42"), "stdout: %s; error: %s", out ? out : "",
	              cJSON_PrintUnformatted(cJSON_GetObjectItem((cJSON *)res.body, "error")));
	mk_rpc_result_release(&res);

	/* Bob cannot attach Alice's upload, nor attach into Alice's chat. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s-bob\",\"file_id\":\"%s\"}", chat, csv);
	ck_assert_int_eq(exec_call(c, id_b, MK_OP_EXEC_ATTACH, body, &res), MK_E_NOT_FOUND);
	mk_rpc_result_release(&res);
	{
		char *bobs = uploaded(tok_b, "b.csv", "a,b\n1,2\n", "csv");

		snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"file_id\":\"%s\"}", chat, bobs);
		ck_assert_int_eq(exec_call(c, id_b, MK_OP_EXEC_ATTACH, body, &res), MK_E_NOT_FOUND);
		mk_rpc_result_release(&res);
		free(bobs);
	}
	/* Deleting the upload leaves the chat's copy in place. */
	snprintf(body, sizeof(body), "/api/v1/files/%s", csv);
	ck_assert_int_eq(call(tok_a, "DELETE", body, &r), 204);
	mt_resp_release(&r);
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"code\":\"print(len(pd.read_csv('Sales Q3.csv')))\"}", chat);
	ck_assert_msg(exec_call(c, id_a, MK_OP_EXEC_RUN, body, &res) == MK_OK, "%s", res.msg);
	out = mk_json_str(res.body, "stdout");
	ck_assert_msg(out && strstr(out, "2"), "stdout: %s", out ? out : "");
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
	free(csv);
	free(xid);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("uploads");
	TCase *tc = tcase_create("uploads");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_text_files_are_typed_by_their_content_not_their_name);
	tcase_add_test(tc, test_an_excel_workbook_is_excel_and_the_name_field_names_it);
	tcase_add_test(tc, test_uploads_are_listed_newest_first_read_and_deleted_by_their_owner);
	tcase_add_test(tc, test_another_users_file_answers_404_like_a_missing_one);
	tcase_add_test(tc, test_files_mark_cannot_read_are_415_with_what_is_accepted);
	tcase_add_test(tc, test_parquet_is_refused_where_the_sandbox_cannot_read_it);
	tcase_add_test(tc, test_empty_oversized_and_malformed_uploads_are_refused);
	tcase_add_test(tc, test_an_attached_upload_is_read_by_pandas_in_the_chat);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
