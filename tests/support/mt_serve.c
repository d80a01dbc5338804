/*
 * mt_serve.c - the test doubles' HTTP server, request plumbing, request
 * log, fault rules and command line (see mt_serve.h).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mk_json.h"
#include "mk_log.h"
#include "mk_svc.h"
#include "mt_serve.h"

int mt_serve_valid_listen(const char *s)
{
	const char *colon = strrchr(s, ':');
	char host[64], *end;
	struct in_addr a;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return 0;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	return inet_pton(AF_INET, host, &a) == 1 && end != colon + 1 && *end == '\0' && port >= 0 &&
	       port <= 65535;
}

/* The log id of the one server a double runs. */
static const char *serve_log_id = "DOUBLE-HTTP";

static int on_log_message(const struct mg_connection *conn, const char *message)
{
	(void)conn;
	MK_WARN(serve_log_id, NULL, "%s", message);
	return 1;
}

struct mg_context *mt_serve_start(const char *listen, mg_request_handler handler, void *ud,
                                  const char *log_id, int *port, char *err, size_t errlen)
{
	const char *opts[] = {
	    "listening_ports",
	    listen,
	    "num_threads",
	    "32",
	    "request_timeout_ms",
	    "120000",
	    "enable_keep_alive",
	    "yes",
	    "keep_alive_timeout_ms",
	    "30000",
	    "tcp_nodelay",
	    "1",
	    NULL,
	};
	struct mg_server_port ports[4];
	struct mg_callbacks cb;
	struct mg_context *http;
	int n;

	serve_log_id = log_id;
	memset(&cb, 0, sizeof(cb));
	cb.log_message = on_log_message;
	mg_init_library(0);
	if (!(http = mg_start(&cb, ud, opts))) {
		mg_exit_library();
		snprintf(err, errlen, "cannot serve HTTP on '%s' (address in use or invalid)",
		         listen);
		return NULL;
	}
	mg_set_request_handler(http, "/", handler, ud);
	n = mg_get_server_ports(http, 4, ports);
	*port = n > 0 ? ports[0].port : 0;
	return http;
}

void mt_serve_stop(struct mg_context **http)
{
	if (*http) {
		mg_stop(*http);
		*http = NULL;
		mg_exit_library();
	}
}

/* ------------------------------------------------------------------ one request */

void mt_serve_continue(struct mg_connection *conn)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	const char *expect = mg_get_header(conn, "Expect");

	if (expect && strcasecmp(expect, "100-continue") == 0 &&
	    strcmp(ri->http_version, "1.1") == 0)
		mg_write(conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

int mt_serve_read_body(struct mg_connection *conn, size_t max, char **body, size_t *len)
{
	const struct mg_request_info *ri = mg_get_request_info(conn);
	char chunk[16384], *data;
	mk_buf b;
	int n;

	if (ri->content_length > (long long)max)
		return 1;
	mk_buf_init(&b, max);
	while ((n = mg_read(conn, chunk, sizeof(chunk))) > 0) {
		if (mk_buf_append(&b, chunk, (size_t)n) != 0) {
			mk_buf_release(&b);
			return 1;
		}
	}
	if (n < 0) {
		mk_buf_release(&b);
		return -1;
	}
	*len = b.len;
	data = b.data ? mk_buf_steal(&b) : strdup("");
	mk_buf_release(&b);
	if (!data)
		return -1;
	*body = data;
	return 0;
}

int mt_serve_split_path(const char *rest, char **seg, int cap, int *nseg)
{
	while (*rest) {
		const char *slash = strchr(rest, '/');
		size_t n = slash ? (size_t)(slash - rest) : strlen(rest);

		if (*nseg == cap)
			return -1;
		seg[*nseg] = strndup(rest, n);
		if (!seg[*nseg])
			return -1;
		(*nseg)++;
		rest += n;
		if (*rest == '/')
			rest++;
	}
	return 0;
}

int mt_serve_param(const struct mg_request_info *ri, const char *name, char *buf, size_t len)
{
	const char *q = ri->query_string;

	if (!q || len == 0)
		return 0;
	return mg_get_var(q, strlen(q), name, buf, len) >= 0;
}

void mt_serve_write(struct mg_connection *conn, const mk_buf *head, const void *body, size_t len)
{
	if (!head->data || mg_write(conn, head->data, head->len) != (int)head->len ||
	    (len > 0 && mg_write(conn, body, len) != (int)len))
		mg_disable_connection_keep_alive(conn);
}

/* ------------------------------------------------------------------ request log and faults */

void mt_serve_record(pthread_mutex_t *mu, cJSON **log, cJSON *rec, int max)
{
	pthread_mutex_lock(mu);
	cJSON_AddItemToArray(*log, rec);
	while (max > 0 && cJSON_GetArraySize(*log) > max)
		cJSON_DeleteItemFromArray(*log, 0);
	pthread_mutex_unlock(mu);
}

void mt_serve_record_line(cJSON *o, const struct mg_request_info *ri, const char *path)
{
	cJSON_AddStringToObject(o, "method", ri->request_method);
	cJSON_AddStringToObject(o, "path", path);
	cJSON_AddStringToObject(o, "query", ri->query_string ? ri->query_string : "");
}

void mt_serve_header_key(const char *name, char *out, size_t len)
{
	size_t k;

	snprintf(out, len, "%s", name);
	for (k = 0; out[k]; k++)
		if (out[k] >= 'A' && out[k] <= 'Z')
			out[k] = (char)(out[k] - 'A' + 'a');
}

char *mt_serve_print_log(pthread_mutex_t *mu, cJSON **log)
{
	char *s;

	pthread_mutex_lock(mu);
	s = mk_json_print(*log);
	pthread_mutex_unlock(mu);
	return s;
}

int mt_serve_add_faults(const cJSON *body,
                        int (*check)(const cJSON *rule, char *err, size_t errlen),
                        pthread_mutex_t *mu, cJSON **faults, char *err, size_t errlen)
{
	const cJSON *rules = cJSON_GetObjectItemCaseSensitive(body, "rules"), *rule;
	int n = 0;

	if (!cJSON_IsArray(rules)) {
		mk_errf(err, errlen, "want {\"rules\":[...]}");
		return -1;
	}
	cJSON_ArrayForEach(rule, rules)
	{
		if (check(rule, err, errlen) != 0)
			return -1;
	}
	pthread_mutex_lock(mu);
	cJSON_ArrayForEach(rule, rules)
	{
		cJSON_AddItemToArray(*faults, cJSON_Duplicate(rule, 1));
		n++;
	}
	pthread_mutex_unlock(mu);
	return n;
}

/* ------------------------------------------------------------------ the command line */

int mt_serve_args(int argc, char **argv, const char *prog, const mt_serve_opt *opts,
                  void (*usage)(FILE *f))
{
	int i;

	for (i = 1; i < argc; i++) {
		const mt_serve_opt *o;

		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		for (o = opts; o->name && strcmp(argv[i], o->name) != 0; o++)
			;
		if (!o->name || i + 1 == argc) {
			fprintf(stderr, "%s: %s '%s'\n", prog,
			        o->name ? "missing value after" : "unknown option", argv[i]);
			usage(stderr);
			return 2;
		}
		*o->value = argv[++i];
	}
	return -1;
}

void mt_serve_wait(int port, const char *log_id)
{
	printf("listening on %d\n", port);
	fflush(stdout);
	MK_INFO(log_id, NULL, "stopping on signal %d", mk_svc_wait());
}
