/*
 * mt.c - test support: processes, HTTP, the stack (see mt.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <libpq-fe.h>
#include <sodium.h>

#include "mk_buf.h"

#include "mk_json.h"
#include "mk_svc.h"
#include "mk_time.h"
#include "mt.h"

extern char **environ;

const char *const mt_proc_names[MT_NPROCS] = {"auth", "llm", "executor", "metadata", "gateway"};

/*
 * Waits sized for a loaded host running the sanitizer build beside other
 * jobs; none costs anything when what it waits for comes at once.
 * HTTP_TIMEOUT_MS: one request of mt_http, past GATEWAY_TURN_TIMEOUT's
 * 330 s, so that a slow chat turn meets the gateway's own limit first.
 * POLL_HTTP_TIMEOUT_MS: one request of a readiness wait. STACK_READY_MS:
 * five processes starting at once. STACK_STOP_MS: one process draining and
 * exiting (with the leak check of a sanitizer build).
 */
#define HTTP_TIMEOUT_MS      360000L
#define POLL_HTTP_TIMEOUT_MS 60000L
#define STACK_READY_MS       120000
#define STACK_STOP_MS        60000

/* Every pid started, so that an exiting test never leaves one behind. */
static pid_t started[256];
static int nstarted;

static void kill_leftovers(void)
{
	int i;

	for (i = 0; i < nstarted; i++)
		if (started[i] > 0 && kill(started[i], 0) == 0) {
			kill(started[i], SIGKILL);
			waitpid(started[i], NULL, 0);
		}
}

static void forget(pid_t pid)
{
	int i;

	for (i = 0; i < nstarted; i++)
		if (started[i] == pid)
			started[i] = 0;
}

const char *mt_dsn(void)
{
	const char *d = getenv("MARK_TEST_DATABASE_URL");

	if (!d || !*d) {
		fprintf(stderr,
		        "MARK_TEST_DATABASE_URL is not set: run the tests with `make test`\n");
		exit(2);
	}
	return d;
}

const char *mt_bin_dir(void)
{
	const char *d = getenv("MARK_BIN_DIR");

	return d && *d ? d : "build/bin";
}

static const char *log_dir(void)
{
	const char *d = getenv("MARK_TEST_LOG_DIR");

	return d && *d ? d : "build/test-logs";
}

/*
 * Ports are drawn below the kernel's ephemeral range (32768 and up by
 * default), where no outgoing connection takes one between the test's pick
 * and the service's bind, and none is handed out twice by one process.
 */
#define PORT_LOW   20000
#define PORT_SPAN  12000
#define PORTS_KEPT 512

int mt_free_port(void)
{
	static int given[PORTS_KEPT], ngiven;
	static unsigned seed;
	struct sockaddr_in a;

	if (!seed)
		seed = (unsigned)getpid() ^ (unsigned)mk_mono_ms();
	for (int tries = 0; tries < 1000; tries++) {
		int port = PORT_LOW + (int)(rand_r(&seed) % PORT_SPAN), fd, ok, i;

		for (i = 0; i < ngiven && given[i] != port; i++)
			;
		if (i < ngiven)
			continue;
		fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0)
			return 0;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)port);
		ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (!ok)
			continue;
		if (ngiven < PORTS_KEPT)
			given[ngiven++] = port;
		return port;
	}
	return 0;
}

static char bus_file[600];
static mk_seal_key bus_key;
static char bus_env[MT_NPROCS][700];

/* Made once for every test process: a random secret, linked into place so
 * that concurrent tests agree on one file. */
static void bus_init(void)
{
	unsigned char raw[32];
	char hex[65], tmp[640], err[512];
	int fd, i;

	if (bus_file[0])
		return;
	snprintf(bus_file, sizeof(bus_file), "%s/bus.key", log_dir());
	if (access(bus_file, R_OK) != 0) {
		mkdir(log_dir(), 0755);
		randombytes_buf(raw, sizeof(raw));
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", raw[i]);
		snprintf(tmp, sizeof(tmp), "%s.%d", bus_file, (int)getpid());
		fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd < 0 || write(fd, hex, 64) != 64) {
			fprintf(stderr, "cannot write %s: %s\n", tmp, strerror(errno));
			abort();
		}
		close(fd);
		if (link(tmp, bus_file) != 0 && errno != EEXIST) {
			fprintf(stderr, "cannot link %s: %s\n", bus_file, strerror(errno));
			abort();
		}
		unlink(tmp);
	}
	if (mk_seal_key_load(&bus_key, bus_file, "the tests' bus key", err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
	for (i = 0; i < MT_NPROCS; i++) {
		char name[64];

		mk_svc_key_setting(mt_proc_names[i], name, sizeof(name));
		snprintf(bus_env[i], sizeof(bus_env[i]), "%s=%s", name, bus_file);
	}
}

const char *mt_bus_key_file(void)
{
	bus_init();
	return bus_file;
}

const mk_seal_key *mt_bus_key(void)
{
	bus_init();
	return &bus_key;
}

/* environ plus env plus the bus key settings, as a new NULL-terminated
 * array (strings borrowed); the first occurrence wins in getenv. */
static char **merged_env(const char *const *env)
{
	size_t n = 0, m = 0, i;
	char **out;

	bus_init();
	while (environ[n])
		n++;
	while (env && env[m])
		m++;
	out = calloc(n + m + MT_NPROCS + 1, sizeof(char *));
	if (!out)
		abort();
	for (i = 0; i < m; i++)
		out[i] = (char *)env[i];
	for (i = 0; i < n; i++)
		out[m + i] = environ[i];
	for (i = 0; i < MT_NPROCS; i++)
		out[m + n + i] = bus_env[i];
	return out;
}

static pid_t spawn(const char *path, const char *const *argv, const char *const *env, int outfd)
{
	char **envp = merged_env(env);
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(outfd, 1);
		dup2(outfd, 2);
		execve(path, (char *const *)argv, envp);
		fprintf(stderr, "cannot exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	free(envp);
	if (pid > 0) {
		if (nstarted == 0)
			atexit(kill_leftovers);
		if (nstarted < (int)(sizeof(started) / sizeof(started[0])))
			started[nstarted++] = pid;
	}
	return pid;
}

int mt_proc_start(mt_proc *p, const char *name, const char *binary, const char *const *env)
{
	char path[512];
	const char *argv[2];
	int fd;

	mkdir("build", 0755);
	mkdir(log_dir(), 0755);
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->log, sizeof(p->log), "%s/%s.log", log_dir(), name);
	snprintf(path, sizeof(path), "%s/%s", mt_bin_dir(), binary);
	fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		return -1;
	argv[0] = path;
	argv[1] = NULL;
	p->pid = spawn(path, argv, env, fd);
	close(fd);
	return p->pid > 0 ? 0 : -1;
}

int mt_proc_alive(const mt_proc *p)
{
	return p->pid > 0 && waitpid(p->pid, NULL, WNOHANG) == 0;
}

int mt_proc_stop(mt_proc *p, int sig, int timeout_ms)
{
	int64_t until = mk_mono_ms() + timeout_ms;
	int st = 0;
	pid_t r;

	if (p->pid <= 0)
		return -1;
	kill(p->pid, sig);
	for (;;) {
		r = waitpid(p->pid, &st, WNOHANG);
		if (r == p->pid)
			break;
		if (mk_mono_ms() >= until) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			forget(p->pid);
			p->pid = 0;
			return -1;
		}
		mk_sleep_ms(10);
	}
	forget(p->pid);
	p->pid = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

void mt_proc_dump(const mt_proc *p)
{
	char cmd[600];

	fprintf(stderr, "---- last lines of %s ----\n", p->log);
	snprintf(cmd, sizeof(cmd), "tail -n 30 '%s' >&2", p->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log)\n");
}

int mt_run(const char *binary, const char *const *argv, const char *const *env, char **out)
{
	char path[512], tmpl[] = "/tmp/mt-run-XXXXXX";
	const char *args[16];
	int fd, st = 0, i;
	pid_t pid;
	mk_buf b;
	char chunk[4096];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", mt_bin_dir(), binary);
	args[0] = path;
	for (i = 0; argv && argv[i] && i < 14; i++)
		args[i + 1] = argv[i];
	args[i + 1] = NULL;
	fd = mkstemp(tmpl);
	if (fd < 0)
		return -1;
	unlink(tmpl);
	pid = spawn(path, args, env, fd);
	waitpid(pid, &st, 0);
	forget(pid);
	mk_buf_init(&b, 0);
	lseek(fd, 0, SEEK_SET);
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		mk_buf_append(&b, chunk, (size_t)n);
	close(fd);
	*out = b.data ? mk_buf_steal(&b) : strdup("");
	mk_buf_release(&b);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------------ HTTP */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	return mk_buf_append(ud, p, sz * n) == 0 ? sz * n : 0;
}

static int http_do(const char *method, const char *url, const char *const *headers,
                   const char *body, size_t len, long timeout_ms, mt_resp *out)
{
	struct curl_slist *h = NULL;
	mk_buf b, hb;
	CURL *c = curl_easy_init();
	CURLcode rc;
	int i;

	memset(out, 0, sizeof(*out));
	mk_buf_init(&b, 0);
	mk_buf_init(&hb, 0);
	for (i = 0; headers && headers[i]; i++)
		h = curl_slist_append(h, headers[i]);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	}
	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
	curl_easy_cleanup(c);
	curl_slist_free_all(h);
	out->len = b.len;
	out->body = b.data ? mk_buf_steal(&b) : strdup("");
	out->headers = hb.data ? mk_buf_steal(&hb) : strdup("");
	mk_buf_release(&b);
	mk_buf_release(&hb);
	out->json = cJSON_ParseWithLength(out->body, out->len);
	return rc == CURLE_OK ? 0 : -1;
}

int mt_http(const char *method, const char *url, const char *const *headers, const char *body,
            size_t len, mt_resp *out)
{
	return http_do(method, url, headers, body, len, HTTP_TIMEOUT_MS, out);
}

char *mt_header(const mt_resp *r, const char *name)
{
	size_t nl = strlen(name);
	const char *p = r->headers;

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;

			while (*v == ' ')
				v++;
			return strndup(v, len - (size_t)(v - p));
		}
		p = eol ? eol + 2 : NULL;
	}
	return NULL;
}

const char *mt_error_code(const mt_resp *r)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(r->json, "error");
	const char *c = mk_json_str(e, "code");

	return c ? c : "";
}

void mt_resp_release(mt_resp *r)
{
	free(r->body);
	free(r->headers);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof(*r));
}

/* ------------------------------------------------------------------ keys */

int mt_keygen(const char *priv_path, const char *pub_path)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	FILE *f;
	int ok = k != NULL;

	if (ok && (f = fopen(priv_path, "w"))) {
		ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
		fclose(f);
	} else {
		ok = 0;
	}
	if (ok && (f = fopen(pub_path, "w"))) {
		ok = PEM_write_PUBKEY(f, k) == 1;
		fclose(f);
	} else {
		ok = 0;
	}
	EVP_PKEY_free(k);
	return ok ? 0 : -1;
}

/* ------------------------------------------------------------------ stack */

const char *mt_url(const mt_stack *s, const char *path)
{
	static __thread char buf[2048];

	snprintf(buf, sizeof(buf), "%s%s", s->base, path);
	return buf;
}

int mt_wait_status(const char *base, const char *path, long status, int timeout_ms)
{
	int64_t until = mk_mono_ms() + timeout_ms;
	char url[512];
	mt_resp r;

	snprintf(url, sizeof(url), "%s%s", base, path);
	do {
		if (http_do("GET", url, NULL, NULL, 0, POLL_HTTP_TIMEOUT_MS, &r) == 0 &&
		    r.status == status) {
			mt_resp_release(&r);
			return 0;
		}
		mt_resp_release(&r);
		mk_sleep_ms(50);
	} while (mk_mono_ms() < until);
	return -1;
}

static void set_env(mt_stack *s, int which)
{
	static const char *const prefix[MT_NPROCS] = {"AUTH", "LLM", "EXECUTOR", "METADATA",
	                                              "GATEWAY"};
	int k = 0, i;

	if (which == MT_GATEWAY) {
		snprintf(s->env[which][k++], sizeof(s->env[which][0]),
		         "GATEWAY_LISTEN=127.0.0.1:%d", s->port[MT_GATEWAY]);
		for (i = 0; i < MT_GATEWAY; i++)
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "GATEWAY_%s_URL=tcp://127.0.0.1:%d", prefix[i], s->port[i]);
		snprintf(s->env[which][k++], sizeof(s->env[which][0]),
		         "GATEWAY_JWT_PUBLIC_KEY_FILE=%s", s->key_pub);
	} else {
		snprintf(s->env[which][k++], sizeof(s->env[which][0]),
		         "%s_LISTEN=tcp://127.0.0.1:%d", prefix[which], s->port[which]);
		snprintf(s->env[which][k++], sizeof(s->env[which][0]), "%s_DATABASE_URL=%s",
		         prefix[which], mt_dsn());
		snprintf(s->env[which][k++], sizeof(s->env[which][0]), "%s_SHUTDOWN_GRACE=5s",
		         prefix[which]);
		if (which == MT_AUTH)
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "AUTH_JWT_PRIVATE_KEY_FILE=%s", s->key_priv);
		if (which == MT_LLM) {
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "LLM_EXECUTOR_URL=tcp://127.0.0.1:%d", s->port[MT_EXECUTOR]);
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "LLM_METADATA_URL=tcp://127.0.0.1:%d", s->port[MT_METADATA]);
		}
		if (which == MT_EXECUTOR) {
			/* Its own worker port, and sandbox uids of its own (see mt_exec.c). */
			if (!s->worker_port)
				s->worker_port = mt_free_port();
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "EXECUTOR_WORKER_LISTEN=tcp://127.0.0.1:%d", s->worker_port);
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "EXECUTOR_ROUTER_URL=tcp://127.0.0.1:%d", s->worker_port);
			snprintf(s->env[which][k++], sizeof(s->env[which][0]),
			         "EXECUTOR_SANDBOX_UID_BASE=%d", 100000 + 2000 * (getpid() % 40));
		}
	}
	s->env[which][k][0] = '\0';
}

/*
 * Settings of the stack's processes that extra_env may override (they come
 * after it; the first of two settings of a name is the one read). The
 * gateway's /readyz waits this long for each service's ping: a loaded host
 * may answer a ping later than the default second.
 */
static const char *const overridable[MT_NPROCS][2] = {
    [MT_GATEWAY] = {"GATEWAY_READY_TIMEOUT=10s", NULL},
};

int mt_stack_start_one(mt_stack *s, int which, const char *const *extra_env)
{
	const char *env[64];
	char bin[64];
	int k = 0, i;

	for (i = 0; i < 8 && s->env[which][i][0]; i++)
		env[k++] = s->env[which][i];
	for (i = 0; extra_env && extra_env[i] && k < 61; i++)
		env[k++] = extra_env[i];
	for (i = 0; overridable[which][i]; i++)
		env[k++] = overridable[which][i];
	env[k] = NULL;
	snprintf(bin, sizeof(bin), "mark-%s", mt_proc_names[which]);
	return mt_proc_start(&s->p[which], mt_proc_names[which], bin, env);
}

int mt_stack_start(mt_stack *s, const char *const *extra_env)
{
	int i;

	memset(s, 0, sizeof(*s));
	mkdir("build", 0755);
	mkdir(log_dir(), 0755);
	snprintf(s->key_priv, sizeof(s->key_priv), "%s/jwt-%d-private.pem", log_dir(),
	         (int)getpid());
	snprintf(s->key_pub, sizeof(s->key_pub), "%s/jwt-%d-public.pem", log_dir(), (int)getpid());
	if (mt_keygen(s->key_priv, s->key_pub) != 0)
		return -1;
	for (i = 0; i < MT_NPROCS; i++)
		s->port[i] = mt_free_port();
	for (i = 0; i < MT_NPROCS; i++)
		set_env(s, i); /* after every port is known: llm dials the executor's */
	snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port[MT_GATEWAY]);
	for (i = 0; i < MT_NPROCS; i++)
		if (mt_stack_start_one(s, i, extra_env) != 0)
			return -1;
	if (mt_wait_status(s->base, "/readyz", 200, STACK_READY_MS) != 0) {
		for (i = 0; i < MT_NPROCS; i++)
			mt_proc_dump(&s->p[i]);
		return -1;
	}
	return 0;
}

int mt_user(const mt_stack *s, const char *tag, char *tok, size_t toklen, char *id, size_t idlen)
{
	char body[256], base[80];
	mt_resp r;
	int rc = -1;

	if (id)
		id[0] = '\0';
	snprintf(body, sizeof(body),
	         "{\"email\":\"%s-%d@example.com\",\"password\":\"password-%s\"}", tag,
	         (int)getpid(), tag);
	snprintf(base, sizeof(base), "%s/auth/signup", s->base);
	mt_http("POST", base, NULL, body, strlen(body), &r);
	if (id && r.status == 201 && mk_json_str(r.json, "id"))
		snprintf(id, idlen, "%s", mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	snprintf(base, sizeof(base), "%s/auth/signin", s->base);
	mt_http("POST", base, NULL, body, strlen(body), &r);
	if (r.status == 200 && mk_json_str(r.json, "access_token")) {
		snprintf(tok, toklen, "%s", mk_json_str(r.json, "access_token"));
		rc = 0;
	}
	mt_resp_release(&r);
	if (rc == 0 && id && !id[0]) {
		/* Signed up before: ask who we are. */
		char auth[2100];
		const char *h[] = {auth, NULL};

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
		snprintf(base, sizeof(base), "%s/auth/me", s->base);
		mt_http("GET", base, h, NULL, 0, &r);
		if (r.status == 200 && mk_json_str(r.json, "id"))
			snprintf(id, idlen, "%s", mk_json_str(r.json, "id"));
		else
			rc = -1;
		mt_resp_release(&r);
	}
	return rc;
}

int mt_admin(const mt_stack *s, const char *tag, char *tok, size_t toklen)
{
	char email[128], db[600], *out = NULL;
	const char *args[] = {"--grant-admin", email, NULL}, *env[] = {db, NULL};
	int rc;

	if (mt_user(s, tag, tok, toklen, NULL, 0) != 0)
		return -1;
	snprintf(email, sizeof(email), "%s-%d@example.com", tag, (int)getpid());
	snprintf(db, sizeof(db), "AUTH_DATABASE_URL=%s", mt_dsn());
	rc = mt_run("mark-auth", args, env, &out);
	if (rc != 0)
		fprintf(stderr, "mark-auth --grant-admin %s: %s", email, out ? out : "");
	free(out);
	/* A new sign-in: the token carries the role the account has now. */
	return rc == 0 ? mt_user(s, tag, tok, toklen, NULL, 0) : -1;
}

/* The password of the test database's superuser, from its DSN ("" without one). */
static void base_password(char *out, size_t outlen)
{
	const char *base = mt_dsn(), *u = strstr(base, "://"), *at = strchr(base, '@'), *colon;

	out[0] = '\0';
	if (!u || !at)
		return;
	colon = memchr(u + 3, ':', (size_t)(at - u - 3));
	if (colon)
		snprintf(out, outlen, "%.*s", (int)(at - colon - 1), colon + 1);
}

void mt_role_password(const char *user, char *out, size_t outlen)
{
	char pw[256];

	base_password(pw, sizeof(pw));
	snprintf(out, outlen, "%s-%s", user, pw);
}

void mt_dsn_for(const char *user, const char *db, char *out, size_t outlen)
{
	const char *base = mt_dsn(), *u = strstr(base, "://"), *at = strchr(base, '@'),
	           *slash = strrchr(base, '/');
	char pw[300], who[256];
	size_t n;

	if (!u || !at || !slash || slash < at) {
		snprintf(out, outlen, "%s", base);
		return;
	}
	/* The superuser keeps its password; another role has its derived one. */
	n = strcspn(u + 3, ":@");
	snprintf(who, sizeof(who), "%.*s", (int)n, u + 3);
	if (strcmp(who, user) == 0)
		base_password(pw, sizeof(pw));
	else
		mt_role_password(user, pw, sizeof(pw));
	snprintf(out, outlen, "postgresql://%s%s%s%.*s/%s", user, pw[0] ? ":" : "", pw,
	         (int)(slash - at), at, db);
}

static void quiet(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

int mt_sql(const char *dsn, const char *sql, char *err, size_t errlen)
{
	PGconn *c = PQconnectdb(dsn);
	PGresult *r;
	int rc = -1;

	PQsetNoticeProcessor(c, quiet, NULL);
	if (PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "%s", PQerrorMessage(c));
		PQfinish(c);
		return -1;
	}
	r = PQexec(c, sql);
	if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
		rc = 0;
	else
		snprintf(err, errlen, "%s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return rc;
}

int mt_warehouse_create(const char *name, const char *user, char *dsn, size_t dsnlen, char *err,
                        size_t errlen)
{
	char admin[512], q[400], own[512];
	FILE *f = fopen("services/metadata/demo/warehouse.sql", "rb");
	char *sql;
	long n;
	int rc;

	if (!f) {
		snprintf(err, errlen, "cannot open services/metadata/demo/warehouse.sql");
		return -1;
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	sql = malloc((size_t)n + 1);
	if (!sql || fread(sql, 1, (size_t)n, f) != (size_t)n) {
		fclose(f);
		free(sql);
		snprintf(err, errlen, "cannot read the demo warehouse");
		return -1;
	}
	sql[n] = '\0';
	fclose(f);
	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	rc = mt_sql(admin, q, err, errlen);
	snprintf(q, sizeof(q), "CREATE DATABASE %s", name);
	if (rc == 0)
		rc = mt_sql(admin, q, err, errlen);
	mt_dsn_for("mark", name, own, sizeof(own));
	if (rc == 0)
		rc = mt_sql(own, sql, err, errlen);
	free(sql);
	/* The reader logs in with its password, as every role does. */
	if (rc == 0) {
		char pw[300];

		mt_role_password("mark_reader", pw, sizeof(pw));
		snprintf(q, sizeof(q), "ALTER ROLE mark_reader PASSWORD '%s'", pw);
		rc = mt_sql(own, q, err, errlen);
	}
	mt_dsn_for(user, name, dsn, dsnlen);
	return rc;
}

void mt_warehouse_drop(const char *name)
{
	char admin[512], q[200], err[256];

	mt_dsn_for("mark", "postgres", admin, sizeof(admin));
	snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
	mt_sql(admin, q, err, sizeof(err));
}

int mt_stack_stop(mt_stack *s)
{
	int bad = 0, i, rc;

	/* The gateway first, as an operator would drain it. */
	for (i = MT_NPROCS - 1; i >= 0; i--) {
		if (s->p[i].pid <= 0)
			continue;
		rc = mt_proc_stop(&s->p[i], SIGTERM, STACK_STOP_MS);
		if (rc != 0) {
			fprintf(stderr, "%s exited with %d\n", s->p[i].name, rc);
			mt_proc_dump(&s->p[i]);
			bad++;
		}
	}
	return bad;
}
