/*
 * sandbox_security_test.c - the executor's sandbox under attack: the
 * model's Python is hostile and tries to reach the network, read the host
 * and other chats, learn secrets, exhaust the machine, signal or trace
 * processes outside, and escape through paths, mounts and setuid files.
 *
 * One real executor (mode "all", small limits) serves every test. Each
 * test asserts two things: the attack failed in a way the user sees (an
 * error type, a limit, a refused request, nothing found), and afterwards
 * the executor still serves: print(1) in a fresh chat answers "1\n"
 * promptly. The attacks are Python snippets inline below; values from the
 * host (ports, pids, secrets) go in as assignments before them. Secrets the
 * sandbox must not find are passed reversed and hex-encoded, so the code
 * itself never holds them in a form a search could match.
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "mk_buf.h"
#include "mk_json.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"
#include "mt_exec.h"

/* The executor's settings here: EXECUTOR_TIMEOUT and the caps below. */
/*
 * No test here depends on how fast the machine is: where one limit must
 * fire, the others are far away (a memory bomb runs with a long timeout),
 * and every upper bound on time leaves room for a loaded 2-core machine and
 * the sanitizer build.
 */
#define RUN_TIMEOUT_MS 3000
#define OUTPUT_CAP     (64 * 1024)
/* What the host holds every result to, whatever the driver inside is told. */
#define MAX_ITEMS         5
#define MAX_ITEMS_S       "5"
#define VALUE_MAX         4096
#define VALUE_MAX_S       "4K"
#define ARTIFACTS_TOTAL   (8LL << 20)
#define ARTIFACTS_TOTAL_S "8M"
#define WORKSPACE_MIB     64
#define PROMPT_MS         30000 /* "promptly": a fresh chat's print(1), sandbox start included */
#define RPC_SLACK_MS      30000 /* waited beyond a run's own timeout */
#define SCAN_RUN_MS       60000 /* runs that walk the file system */
#define LONG_RUN_MS       60000 /* a run that must meet a limit other than time */
#define STOP_SLACK_MS     20000 /* a run stopped at its timeout answers within this much more */
#define MARKER_SLACK      1024  /* the truncation marker's line */
#define PROC_SLACK        8     /* sandbox processes that may come meanwhile (pool refills) */

static mt_exec ex;
static mt_exec *target = &ex;                  /* the executor run() and call() speak to */
static char tag[32];                           /* unique per run: chat ids never repeat */
static char user_a[37], user_b[37], probe[37]; /* user ids (UUIDs) */
static char canary[33], fake_key[41];
static int listen_fd = -1, listen_port; /* a TCP service of the host's own */
static int udp_fd = -1, udp_port;       /* and a UDP one */
static int probes;

/* ------------------------------------------------------------------ helpers */

static void random_hex(char *out, size_t nchars)
{
	unsigned char b[64];
	size_t i;
	int fd = open("/dev/urandom", O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(read(fd, b, (nchars + 1) / 2), (ssize_t)((nchars + 1) / 2));
	close(fd);
	for (i = 0; i < nchars; i++)
		out[i] = "0123456789abcdef"[(b[i / 2] >> (i % 2 ? 0 : 4)) & 15];
	out[nchars] = '\0';
}

static void uuid_new(char out[37])
{
	char h[33];

	random_hex(h, 32);
	h[12] = '4';
	h[16] = "89ab"[h[16] % 4];
	snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", h, h + 8, h + 12, h + 16, h + 20);
}

static void chat_id(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s-%s", what, tag);
}

static const char *str_of(const cJSON *x, const char *name)
{
	const char *s = mk_json_str(x, name);

	return s ? s : "";
}

/* The execution's limit, or "null". */
static const char *limit_of(const cJSON *x)
{
	const char *s = mk_json_str(x, "limit");

	return s ? s : "null";
}

/* The exception's type, or "" when the code did not fail. */
static const char *error_type(const cJSON *x)
{
	return str_of(cJSON_GetObjectItemCaseSensitive(x, "error"), "type");
}

static int flag(const cJSON *x, const char *name)
{
	int v = 0;

	return mk_json_bool(x, name, &v) == 0 && v;
}

/* What the user saw of a run, on stderr: a summary line, then stdout (a flood's only in part). */
static void show(const char *what, const cJSON *x, int64_t ms)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(x, "session");
	const char *out = str_of(x, "stdout");

	fprintf(stderr,
	        "run %-28s limit=%s error=%s stdout=%zuB%s stderr=%zuB%s reset=%d reason=%s "
	        "%lld ms\n%.*s",
	        what, limit_of(x), *error_type(x) ? error_type(x) : "-", strlen(out),
	        flag(x, "stdout_truncated") ? "(cut)" : "", strlen(str_of(x, "stderr")),
	        flag(x, "stderr_truncated") ? "(cut)" : "", flag(s, "reset"),
	        *str_of(s, "reason") ? str_of(s, "reason") : "-", (long long)ms,
	        flag(x, "stdout_truncated") ? 100 : 2000, out);
	fprintf(stderr, "%s", *out && out[strlen(out) - 1] != '\n' ? "\n" : "");
}

/* exec.run that must be answered (the code itself may fail); run_ms 0: the default timeout. */
static cJSON *run_timed(const char *what, const char *user, const char *chat, const char *code,
                        long long run_ms, int64_t *ms)
{
	char msg[300];
	int64_t t0 = mk_mono_ms();
	mk_err e = MK_OK;
	cJSON *x = mt_exec_run_for(target, user, chat, code, run_ms,
	                           (int)((run_ms > 0 ? run_ms : RUN_TIMEOUT_MS) + RPC_SLACK_MS), &e,
	                           msg, sizeof(msg));

	if (ms)
		*ms = mk_mono_ms() - t0;
	ck_assert_msg(x != NULL, "%s: exec.run in '%s' was not answered: %s", what, chat, msg);
	show(what, x, mk_mono_ms() - t0);
	return x;
}

static cJSON *run(const char *what, const char *user, const char *chat, const char *code,
                  long long run_ms)
{
	return run_timed(what, user, chat, code, run_ms, NULL);
}

/* Call an exec op with body text; returns the error (MK_OK on success); res released. */
static mk_err call(mk_op op, const char *user, const char *body)
{
	mk_rpc_result res;
	mk_err e = mt_exec_call(target, op, user, body, 60000, &res);

	if (e != MK_OK)
		fprintf(stderr, "  %s as %.8s: %s (%s)\n", mk_op_name(op), user ? user : "-",
		        mk_err_code(e), res.msg);
	mk_rpc_result_release(&res);
	return e;
}

static void destroy(const char *user, const char *chat)
{
	char body[160];

	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", chat);
	ck_assert_int_eq(call(MK_OP_EXEC_DESTROY, user, body), MK_OK);
}

/* The executor still serves: print(1) in a fresh chat answers "1\n" promptly. */
static void assert_still_serves(void)
{
	char chat[96], what[32];
	int64_t ms;
	cJSON *x;

	ck_assert_msg(mt_proc_alive(&ex.p), "the executor died");
	snprintf(what, sizeof(what), "(still serves %d)", ++probes);
	snprintf(chat, sizeof(chat), "alive-%d-%s", probes, tag);
	x = run_timed(what, probe, chat, "print(1)", 0, &ms);
	ck_assert_str_eq(str_of(x, "stdout"), "1\n");
	ck_assert_str_eq(error_type(x), "");
	ck_assert_str_eq(limit_of(x), "null");
	ck_assert_msg(ms < PROMPT_MS, "print(1) in a fresh chat took %lld ms", (long long)ms);
	cJSON_Delete(x);
	destroy(probe, chat);
}

/* Is `line` one whole line of out? */
static int has_line(const char *out, const char *line)
{
	size_t n = strlen(line);
	const char *p = out;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == out || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return 1;
		p++;
	}
	return 0;
}

/*
 * The outcome printed after `subject` on its line of out ("<subject>
 * <outcome>"), in a static buffer; "" when there is no such line.
 */
static const char *outcome(const char *out, const char *subject)
{
	static char buf[128];
	size_t n = strlen(subject);
	const char *p = out;

	buf[0] = '\0';
	while ((p = strstr(p, subject)) != NULL) {
		if ((p == out || p[-1] == '\n') && p[n] == ' ') {
			size_t len = strcspn(p + n + 1, "\n");

			snprintf(buf, sizeof(buf), "%.*s", (int)len, p + n + 1);
			break;
		}
		p++;
	}
	return buf;
}

/* Assert that subject's outcome in out is one of the '|'-separated choices. */
static void expect(const char *out, const char *subject, const char *choices)
{
	char have[160], want[160];

	snprintf(have, sizeof(have), "|%s|", outcome(out, subject));
	snprintf(want, sizeof(want), "|%s|", choices);
	ck_assert_msg(strcmp(have, "||") != 0 && strstr(want, have), "%s: got '%s', expected %s",
	              subject, outcome(out, subject), choices);
}

/*
 * Python code: assignments formatted from fmt (may be NULL), then the
 * snippet as is. The caller frees.
 */
static char *py(const char *snippet, const char *fmt, ...)
{
	mk_buf b;
	va_list ap;

	mk_buf_init(&b, 0);
	if (fmt) {
		va_start(ap, fmt);
		mk_buf_vprintf(&b, fmt, ap);
		va_end(ap);
	}
	mk_buf_puts(&b, snippet);
	return mk_buf_steal(&b);
}

/* NEEDLES = [...]: each secret reversed and hex-encoded, decoded back in the sandbox. */
static char *needles_py(const char *const *needles, int n)
{
	mk_buf b;
	int i;

	mk_buf_init(&b, 0);
	mk_buf_puts(&b, "NEEDLES = [");
	for (i = 0; i < n; i++) {
		size_t k = strlen(needles[i]);

		mk_buf_puts(&b, "bytes.fromhex('");
		while (k-- > 0)
			mk_buf_printf(&b, "%02x", (unsigned char)needles[i][k]);
		mk_buf_puts(&b, "')[::-1], ");
	}
	mk_buf_puts(&b, "]\n");
	return mk_buf_steal(&b);
}

/*
 * Processes on the host owned by the executor's sandbox uids (mt_exec gives
 * the "all" process the range 200000..209999).
 */
static int sandbox_processes(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	while (d && (e = readdir(d)) != NULL) {
		char path[300];
		struct stat st;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s", e->d_name);
		n += stat(path, &st) == 0 && st.st_uid >= 200000 && st.st_uid < 210000;
	}
	if (d)
		closedir(d);
	return n;
}

/* Wait up to 60 s for the sandboxes' process count to come back near `before`. */
static void assert_sandbox_processes_settle(int before)
{
	int64_t until = mk_mono_ms() + 60000;
	int now;

	while ((now = sandbox_processes()) > before + PROC_SLACK && mk_mono_ms() < until)
		mk_sleep_ms(200);
	ck_assert_msg(now <= before + PROC_SLACK,
	              "%d sandbox processes on the host, %d before the attack", now, before);
}

/* The host's non-loopback IPv4 addresses as a Python list literal's items. */
static void host_addresses(char *buf, size_t len)
{
	struct ifaddrs *ifs = NULL, *i;
	size_t used = 0;

	buf[0] = '\0';
	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i; i = i->ifa_next) {
		char a[INET_ADDRSTRLEN];
		const struct sockaddr_in *sin = (const struct sockaddr_in *)i->ifa_addr;

		if (!sin || sin->sin_family != AF_INET ||
		    ntohl(sin->sin_addr.s_addr) >> 24 == 127 ||
		    !inet_ntop(AF_INET, &sin->sin_addr, a, sizeof(a)))
			continue;
		used += (size_t)snprintf(buf + used, len - used, "'%s', ", a);
		if (used >= len)
			break;
	}
	freeifaddrs(ifs);
}

/* The port of the test database, from its DSN (postgresql://user@host:port/db or port=N). */
static int db_port(void)
{
	const char *d = mt_dsn(), *p = strstr(d, "port=");
	const char *at, *slash;

	if (p)
		return (int)strtol(p + 5, NULL, 10);
	p = strstr(d, "://");
	p = p ? p + 3 : d;
	at = strchr(p, '@');
	slash = strchr(p, '/');
	if (at && (!slash || at < slash))
		p = at + 1;
	p = strchr(p, ':');
	return p && (!slash || p < slash) ? (int)strtol(p + 1, NULL, 10) : 5432;
}

/* The test database's data directory (asked of the server), or "". */
static void db_data_dir(char *buf, size_t len)
{
	PGconn *c = PQconnectdb(mt_dsn());
	PGresult *r = PQstatus(c) == CONNECTION_OK ? PQexec(c, "show data_directory") : NULL;

	buf[0] = '\0';
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

/* Read a small host file whole (at most len-1 bytes, NULs kept); returns the length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n, got = 0;

	if (fd < 0)
		return -1;
	while ((size_t)got < len - 1 && (n = read(fd, buf + got, len - 1 - (size_t)got)) > 0)
		got += n;
	close(fd);
	buf[got] = '\0';
	return got;
}

static long long host_free_bytes(const char *path)
{
	struct statvfs v;

	ck_assert_int_eq(statvfs(path, &v), 0);
	return (long long)v.f_bavail * (long long)v.f_frsize;
}

/* ------------------------------------------------------------------ fixture */

/* A non-blocking socket bound to a free port on every IPv4 address; -1 on failure. */
static int host_socket(int type, int *port)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, type | SOCK_NONBLOCK, 0);

	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_ANY);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

static void executor_up(void)
{
	char e_canary[80], e_key[80], err[512];
	const char *env[] = {"EXECUTOR_TIMEOUT=3s",
	                     "EXECUTOR_TIMEOUT_MAX=120s",
	                     "EXECUTOR_SANDBOX_MEMORY=1G",
	                     "EXECUTOR_SANDBOX_PROCESSES=64",
	                     "EXECUTOR_STDOUT_MAX=64K",
	                     "EXECUTOR_STDERR_MAX=64K",
	                     "EXECUTOR_OUTPUT_KILL=1M",
	                     "EXECUTOR_SANDBOX_WORKSPACE_SIZE=64M",
	                     "EXECUTOR_POOL_SIZE=2",
	                     "EXECUTOR_MAX_SESSIONS=16",
	                     "EXECUTOR_MAX_ITEMS=" MAX_ITEMS_S,
	                     "EXECUTOR_VALUE_MAX=" VALUE_MAX_S,
	                     "EXECUTOR_ARTIFACTS_TOTAL=" ARTIFACTS_TOTAL_S,
	                     e_canary,
	                     e_key,
	                     NULL};

	snprintf(tag, sizeof(tag), "%d-%lld", (int)getpid(), (long long)(mk_now_ms() % 100000000));
	uuid_new(user_a);
	uuid_new(user_b);
	uuid_new(probe);
	random_hex(canary, 32);
	random_hex(fake_key, 40);
	/* Secrets the executor's process holds; no sandbox may see them. */
	snprintf(e_canary, sizeof(e_canary), "EXECUTOR_TEST_CANARY=%s", canary);
	snprintf(e_key, sizeof(e_key), "DAYTONA_API_KEY=dtn_%s", fake_key);
	if (mt_exec_start(&ex, "executor-security", env, 60000, err, sizeof(err)) != 0) {
		fprintf(stderr, "the executor did not become ready: %s\n", err);
		exit(1);
	}
	/* Services of the host's own: TCP and UDP sockets on every address. */
	listen_fd = host_socket(SOCK_STREAM, &listen_port);
	udp_fd = host_socket(SOCK_DGRAM, &udp_port);
	if (listen_fd < 0 || udp_fd < 0 || listen(listen_fd, 16) != 0) {
		fprintf(stderr, "cannot open the test's own sockets: %s\n", strerror(errno));
		exit(1);
	}
}

static void executor_down(void)
{
	if (listen_fd >= 0)
		close(listen_fd);
	if (udp_fd >= 0)
		close(udp_fd);
	ck_assert_int_eq(mt_exec_stop(&ex), 0);
}

/* ------------------------------------------------------------------ network */

/* TARGETS = [(proto, host, port)] → one line "<proto> <host>:<port> <outcome>" each. */
static const char net_probe_py[] =
    "import errno, socket\n"
    "\n"
    "def why(e):\n"
    "    if isinstance(e, socket.timeout):\n"
    "        return 'TIMEOUT'\n"
    "    return errno.errorcode.get(e.errno, type(e).__name__)\n"
    "\n"
    "def tcp(host, port):\n"
    "    try:\n"
    "        s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)\n"
    "        s.settimeout(2)\n"
    "        s.connect((host, port))\n"
    "        s.close()\n"
    "        return 'CONNECTED'\n"
    "    except OSError as e:\n"
    "        return why(e)\n"
    "\n"
    "def udp(host, port):\n"
    "    try:\n"
    "        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "        s.sendto(b'mark', (host, port))\n"
    "        return 'SENT'\n"
    "    except OSError as e:\n"
    "        return why(e)\n"
    "\n"
    "for proto, host, port in TARGETS:\n"
    "    print(proto, host + ':' + str(port), (tcp if proto == 'tcp' else udp)(host, port))\n";

START_TEST(test_the_internet_is_unreachable_from_a_sandbox)
{
	char chat[96];
	char *code = py(net_probe_py, "TARGETS = [('tcp', '1.1.1.1', 53), ('tcp', '8.8.8.8', 443), "
	                              "('udp', '1.1.1.1', 53), ('udp', '8.8.8.8', 53), "
	                              "('tcp', '2606:4700:4700::1111', 443)]\n");
	cJSON *x;
	const char *out;

	chat_id(chat, sizeof(chat), "net");
	x = run("internet", user_a, chat, code, LONG_RUN_MS);
	out = str_of(x, "stdout");
	/* No route at all: the sandbox's network has only its own loopback. */
	expect(out, "tcp 1.1.1.1:53", "ENETUNREACH");
	expect(out, "tcp 8.8.8.8:443", "ENETUNREACH");
	expect(out, "udp 1.1.1.1:53", "ENETUNREACH");
	expect(out, "udp 8.8.8.8:53", "ENETUNREACH");
	expect(out, "tcp 2606:4700:4700::1111:443", "ENETUNREACH|EADDRNOTAVAIL|EAFNOSUPPORT");
	cJSON_Delete(x);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_the_hosts_postgres_is_unreachable_from_a_sandbox)
{
	char chat[96], addrs[512];
	char subject[96];
	int port = db_port();
	char *code;
	cJSON *x;
	const char *out;

	host_addresses(addrs, sizeof(addrs));
	code = py(net_probe_py,
	          "TARGETS = [('tcp', '127.0.0.1', %d), ('tcp', '::1', %d)] + "
	          "[('tcp', a, %d) for a in [%s]]\n",
	          port, port, port, addrs);
	chat_id(chat, sizeof(chat), "pg");
	x = run("postgres port", user_a, chat, code, LONG_RUN_MS);
	out = str_of(x, "stdout");
	/* 127.0.0.1 inside is the sandbox's own loopback, where nothing listens. */
	snprintf(subject, sizeof(subject), "tcp 127.0.0.1:%d", port);
	expect(out, subject, "ECONNREFUSED|ENETUNREACH");
	snprintf(subject, sizeof(subject), "tcp ::1:%d", port);
	expect(out, subject, "ECONNREFUSED|ENETUNREACH|EADDRNOTAVAIL|EAFNOSUPPORT");
	ck_assert_ptr_null(strstr(out, "CONNECTED"));
	ck_assert_ptr_null(strstr(out, "TIMEOUT"));
	cJSON_Delete(x);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_the_executor_and_other_host_services_are_unreachable_from_a_sandbox)
{
	char chat[96], addrs[512], subject[96];
	struct sockaddr_in peer;
	socklen_t plen = sizeof(peer);
	char *code;
	cJSON *x;
	const char *out;
	int fd;

	host_addresses(addrs, sizeof(addrs));
	code = py(net_probe_py,
	          "TARGETS = [('tcp', '127.0.0.1', %d), ('tcp', '127.0.0.1', %d), "
	          "('tcp', '127.0.0.1', %d), ('udp', '127.0.0.1', %d)] + "
	          "[('tcp', a, p) for a in [%s] for p in (%d, %d)] + "
	          "[('udp', a, %d) for a in [%s]]\n",
	          ex.port, ex.worker_port, listen_port, udp_port, addrs, ex.port, listen_port,
	          udp_port, addrs);
	chat_id(chat, sizeof(chat), "svc");
	x = run("host services", user_a, chat, code, 25000);
	out = str_of(x, "stdout");
	/* The sandbox's own loopback: refused (a datagram there is "sent" and lost). */
	snprintf(subject, sizeof(subject), "tcp 127.0.0.1:%d", ex.port);
	expect(out, subject, "ECONNREFUSED|ENETUNREACH");
	snprintf(subject, sizeof(subject), "tcp 127.0.0.1:%d", ex.worker_port);
	expect(out, subject, "ECONNREFUSED|ENETUNREACH");
	snprintf(subject, sizeof(subject), "tcp 127.0.0.1:%d", listen_port);
	expect(out, subject, "ECONNREFUSED|ENETUNREACH");
	ck_assert_ptr_null(strstr(out, "CONNECTED"));
	ck_assert_ptr_null(strstr(out, "TIMEOUT"));
	/* And nothing reached the host's listener by any address. */
	fd = accept(listen_fd, (struct sockaddr *)&peer, &plen);
	ck_assert_msg(fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK),
	              "the host's listener accepted a connection from the sandbox");
	ck_assert_msg(recv(udp_fd, subject, sizeof(subject), 0) < 0 &&
	                  (errno == EAGAIN || errno == EWOULDBLOCK),
	              "a datagram from the sandbox reached the host");
	cJSON_Delete(x);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_names_do_not_resolve_in_a_sandbox)
{
	static const char code[] =
	    "import socket\n"
	    "for name in ('example.com', 'pypi.org', 'localhost.localdomain'):\n"
	    "    try:\n"
	    "        socket.getaddrinfo(name, 443, type=socket.SOCK_STREAM)\n"
	    "        print(name, 'RESOLVED')\n"
	    "    except socket.gaierror:\n"
	    "        print(name, 'gaierror')\n";
	char chat[96];
	cJSON *x;

	chat_id(chat, sizeof(chat), "dns");
	x = run("dns", user_a, chat, code, 25000);
	expect(str_of(x, "stdout"), "example.com", "gaierror");
	expect(str_of(x, "stdout"), "pypi.org", "gaierror");
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ host files */

START_TEST(test_host_files_are_not_readable_from_a_sandbox)
{
	static const char probe_py[] =
	    "import os\n"
	    "for path in PATHS:\n"
	    "    try:\n"
	    "        if os.path.isdir(path):\n"
	    "            print('PATH', path, 'LISTED' if os.listdir(path) else 'EMPTY')\n"
	    "        else:\n"
	    "            with open(path, 'rb') as f:\n"
	    "                f.read(1)\n"
	    "            print('PATH', path, 'READ')\n"
	    "    except OSError as e:\n"
	    "        print('PATH', path, type(e).__name__)\n"
	    "# Files the sandbox has under the host's names must not be the host's.\n"
	    "for path in ('/etc/passwd', '/etc/group', '/etc/shadow', '/proc/1/cmdline',\n"
	    "             '/proc/1/environ', '/etc/hostname', '/etc/hosts'):\n"
	    "    try:\n"
	    "        with open(path, 'rb') as f:\n"
	    "            data = f.read()\n"
	    "    except OSError:\n"
	    "        continue\n"
	    "    for i, n in enumerate(NEEDLES):\n"
	    "        if n in data:\n"
	    "            print('FOUND needle', i, 'in', path)\n";
	char passwd[16384], cmdline[4096], repo[PATH_MAX], data_dir[512], chat[96];
	const char *needles[64];
	int nneedles = 0;
	ssize_t n, i;
	char *saveptr = NULL, *line, *np, *code;
	mk_buf paths;
	cJSON *x;
	const char *out, *p;

	/* Lines of the host's /etc/passwd: root's, and every real account's (uid >= 1000). */
	ck_assert_int_gt(slurp("/etc/passwd", passwd, sizeof(passwd)), 0);
	for (line = strtok_r(passwd, "\n", &saveptr); line && nneedles < 60;
	     line = strtok_r(NULL, "\n", &saveptr)) {
		const char *uid = strchr(line, ':') ? strchr(strchr(line, ':') + 1, ':') : NULL;
		long u = uid ? strtol(uid + 1, NULL, 10) : -1;

		if (strncmp(line, "root:", 5) == 0 || (u >= 1000 && u < 65534))
			needles[nneedles++] = line;
	}
	/* The host's init: its command line, when it is long enough to be its own. */
	n = slurp("/proc/1/cmdline", cmdline, sizeof(cmdline));
	if (n >= 16) {
		for (i = 0; i + 1 < n; i++)
			if (!cmdline[i])
				cmdline[i] = ' ';
		needles[nneedles++] = cmdline;
	}
	needles[nneedles++] = canary;
	ck_assert_ptr_nonnull(getcwd(repo, sizeof(repo)));
	db_data_dir(data_dir, sizeof(data_dir));
	ck_assert_msg(*data_dir, "cannot ask Postgres for its data directory");
	mk_buf_init(&paths, 0);
	mk_buf_printf(
	    &paths,
	    "PATHS = ['/etc/shadow', '/etc/gshadow', '/root', '/root/.bash_history', "
	    "'/home', '/run', '/var', '/var/tmp', '/work', '%s', '%s/Makefile', "
	    "'%s', '%s/PG_VERSION', '%s', '/proc/%d/environ', '/proc/%d/root/etc/shadow', "
	    "'/sys/fs/cgroup/cgroup.procs', '/var/run/docker.sock']\n",
	    repo, repo, data_dir, data_dir, ex.p.log, (int)ex.p.pid, (int)ex.p.pid);
	np = needles_py(needles, nneedles);
	mk_buf_puts(&paths, np);
	code = py(probe_py, "%s", paths.data);
	chat_id(chat, sizeof(chat), "files");
	x = run("host files", user_a, chat, code, LONG_RUN_MS);
	out = str_of(x, "stdout");
	ck_assert_ptr_nonnull(strstr(out, "PATH /etc/shadow "));
	/* Every host path is missing, forbidden, or an empty stand-in. */
	for (p = out; (p = strstr(p, "PATH ")) != NULL; p++) {
		size_t len = strcspn(p, "\n");
		const char *sp = p + len;

		while (sp > p && sp[-1] != ' ')
			sp--;
		ck_assert_msg(strncmp(sp, "FileNotFoundError", 17) == 0 ||
		                  strncmp(sp, "PermissionError", 15) == 0 ||
		                  strncmp(sp, "EMPTY", 5) == 0,
		              "the sandbox reached a host path: %.*s", (int)len, p);
	}
	ck_assert_msg(!strstr(out, "FOUND"), "host data inside the sandbox:\n%s", out);
	cJSON_Delete(x);
	free(code);
	free(np);
	mk_buf_release(&paths);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ other chats, secrets */

/*
 * Walk everything readable for NEEDLES, within BUDGET_S seconds: every
 * process's environment, command line, working directory and root first,
 * then the whole tree (/usr last: it is big and holds nothing of a chat).
 * Prints "FOUND needle <i> in <path>" per hit, then "SCANNED <n> ...".
 */
static const char scan_py[] =
    "import os, stat, time\n"
    "deadline = time.monotonic() + BUDGET_S\n"
    "found, scanned, complete = [], 0, True\n"
    "\n"
    "def look(path):\n"
    "    global scanned\n"
    "    try:\n"
    "        if not stat.S_ISREG(os.lstat(path).st_mode):\n"
    "            return\n"
    "        with open(path, 'rb') as f:\n"
    "            data = f.read(1 << 20)\n"
    "    except OSError:\n"
    "        return\n"
    "    scanned += 1\n"
    "    for i, n in enumerate(NEEDLES):\n"
    "        if n in data:\n"
    "            found.append((i, path))\n"
    "\n"
    "def walk(top):\n"
    "    global complete\n"
    "    for d, dirs, names in os.walk(top):\n"
    "        for name in names:\n"
    "            if time.monotonic() > deadline:\n"
    "                complete = False\n"
    "                return\n"
    "            look(os.path.join(d, name))\n"
    "\n"
    "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n"
    "    for leaf in ('environ', 'cmdline'):\n"
    "        look('/proc/' + pid + '/' + leaf)\n"
    "    walk('/proc/' + pid + '/cwd')\n"
    "    for sub in ('workspace', 'tmp'):\n"
    "        walk('/proc/' + pid + '/root/' + sub)\n"
    "tops = [t for t in os.listdir('/') if t not in ('proc', 'sys', 'dev')\n"
    "        and not os.path.islink('/' + t)]\n"
    "for top in sorted(tops, key=lambda t: (t == 'usr', t not in ('workspace', 'tmp'))):\n"
    "    walk('/' + top)\n"
    "for i, path in found:\n"
    "    print('FOUND needle', i, 'in', path)\n"
    "print('SCANNED', scanned, 'complete' if complete else 'stopped by the time budget')\n";

/* Run the scan for needles in chat as user; returns the execution. */
static cJSON *scan(const char *what, const char *user, const char *chat, const char *const *needles,
                   int n)
{
	char *np = needles_py(needles, n), *code = py(scan_py, "%sBUDGET_S = 8\n", np);
	cJSON *x = run(what, user, chat, code, SCAN_RUN_MS);
	long scanned = 0;
	const char *s = strstr(str_of(x, "stdout"), "SCANNED ");

	ck_assert_msg(s != NULL, "%s: the scan did not finish: %s", what, str_of(x, "stderr"));
	scanned = strtol(s + 8, NULL, 10);
	ck_assert_msg(scanned >= 50, "%s: only %ld files scanned", what, scanned);
	free(np);
	free(code);
	return x;
}

START_TEST(test_another_chats_workspace_is_invisible_to_every_other_sandbox)
{
	static const char plant_py[] =
	    "import os, subprocess\n"
	    "secret = bytes.fromhex(TOKEN)[::-1]\n"
	    "os.makedirs('/workspace/output', exist_ok=True)\n"
	    "for path in ('/workspace/secret.txt', '/workspace/output/secret.txt', "
	    "'/tmp/secret.txt'):\n"
	    "    with open(path, 'wb') as f:\n"
	    "        f.write(secret)\n"
	    "# A process whose working directory is this workspace, for /proc/*/cwd.\n"
	    "keeper = subprocess.Popen(['sleep', '600'], cwd='/workspace')\n"
	    "print('planted')\n";
	char token[33], kept[33], chat_a[96], chat_b[96], chat_c[96], body[512], hex[80];
	char b64[64], artifact[80];
	const char *needles[2] = {token, kept};
	const char *s;
	char *code;
	cJSON *x;
	int i;

	random_hex(token, 32);
	random_hex(kept, 32);
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", (unsigned char)token[31 - i]);
	chat_id(chat_a, sizeof(chat_a), "owner");
	chat_id(chat_b, sizeof(chat_b), "sibling");
	chat_id(chat_c, sizeof(chat_c), "stranger");
	code = py(plant_py, "TOKEN = '%s'\n", hex);
	x = run("plant a secret", user_a, chat_a, code, 0);
	ck_assert_str_eq(str_of(x, "stdout"), "planted\n");
	/* output/secret.txt came back as an artifact: only its owner may fetch it. */
	snprintf(artifact, sizeof(artifact), "%s",
	         str_of(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(x, "artifacts"), 0),
	                "artifact_id"));
	ck_assert_msg(*artifact, "no artifact for output/secret.txt");
	cJSON_Delete(x);
	free(code);
	snprintf(body, sizeof(body), "{\"artifact_id\":\"%s\"}", artifact);
	ck_assert_int_eq(call(MK_OP_EXEC_ARTIFACT, user_a, body), MK_OK);
	ck_assert_int_eq(call(MK_OP_EXEC_ARTIFACT, user_b, body), MK_E_NOT_FOUND);
	/* A kept file too. */
	sodium_bin2base64(b64, sizeof(b64), (const unsigned char *)kept, strlen(kept),
	                  sodium_base64_VARIANT_ORIGINAL);
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"kept.txt\",\"data_b64\":\"%s\"}", chat_a, b64);
	ck_assert_int_eq(call(MK_OP_EXEC_PUT, user_a, body), MK_OK);

	/* The scan works: in the owner's own sandbox it finds both. */
	x = scan("scan own chat", user_a, chat_a, needles, 2);
	s = str_of(x, "stdout");
	ck_assert_msg(strstr(s, "FOUND needle 0 in /workspace/secret.txt") &&
	                  strstr(s, "FOUND needle 1 in /workspace/kept.txt"),
	              "the scan misses what it looks for:\n%s", s);
	cJSON_Delete(x);
	/* Another chat of the same user, and another user's chat: nothing. */
	x = scan("scan sibling chat", user_a, chat_b, needles, 2);
	ck_assert_msg(!strstr(str_of(x, "stdout"), "FOUND"), "another chat's files leak:\n%s",
	              str_of(x, "stdout"));
	cJSON_Delete(x);
	x = scan("scan stranger's chat", user_b, chat_c, needles, 2);
	ck_assert_msg(!strstr(str_of(x, "stdout"), "FOUND"), "another user's files leak:\n%s",
	              str_of(x, "stdout"));
	cJSON_Delete(x);
	/* Through the API another user does not even find the chat. */
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"secret.txt\"}", chat_a);
	ck_assert_int_eq(call(MK_OP_EXEC_GET, user_b, body), MK_E_NOT_FOUND);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"kept.txt\"}", chat_a);
	ck_assert_int_eq(call(MK_OP_EXEC_GET, user_b, body), MK_E_NOT_FOUND);
	snprintf(body, sizeof(body), "{\"chat_id\":\"%s\"}", chat_a);
	ck_assert_int_eq(call(MK_OP_EXEC_LIST, user_b, body), MK_E_NOT_FOUND);
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"code\":\"print(open('secret.txt').read())\"}", chat_a);
	ck_assert_int_eq(call(MK_OP_EXEC_RUN, user_b, body), MK_E_NOT_FOUND);
	destroy(user_a, chat_a);
	destroy(user_a, chat_b);
	destroy(user_b, chat_c);
	/* A destroyed chat's artifacts are gone, for their owner too. */
	snprintf(body, sizeof(body), "{\"artifact_id\":\"%s\"}", artifact);
	ck_assert_int_eq(call(MK_OP_EXEC_ARTIFACT, user_a, body), MK_E_NOT_FOUND);
	assert_still_serves();
}
END_TEST

START_TEST(test_the_executors_secrets_are_not_in_a_sandboxs_environment)
{
	static const char env_py[] = "import os\n"
	                             "names = sorted(os.environ)\n"
	                             "print('NAMES', ' '.join(names))\n"
	                             "print('SUSPECT', ' '.join(n for n in names if n.startswith(\n"
	                             "    ('EXECUTOR_', 'DAYTONA_', 'MARK_', 'PG', 'DATABASE', "
	                             "'AWS_', 'GOOGLE_', 'OPENAI_',\n"
	                             "     'ANTHROPIC_', 'LLM_', 'AUTH_', 'GATEWAY_'))))\n"
	                             "values = '\\0'.join(os.environ.values()).encode()\n"
	                             "with open('/proc/self/environ', 'rb') as f:\n"
	                             "    mine = f.read()\n"
	                             "for i, n in enumerate(NEEDLES):\n"
	                             "    if n in values:\n"
	                             "        print('FOUND needle', i, 'in os.environ')\n"
	                             "    if n in mine:\n"
	                             "        print('FOUND needle', i, 'in /proc/self/environ')\n";
	char key[64], environ_path[64], host_env[65536], chat[96];
	const char *needles[4];
	char *np, *code;
	cJSON *x;
	ssize_t n;

	snprintf(key, sizeof(key), "dtn_%s", fake_key);
	needles[0] = canary;
	needles[1] = key;
	needles[2] = mt_dsn();
	needles[3] = "EXECUTOR_DATABASE_URL";
	/* The secrets are really in the executor's environment. */
	snprintf(environ_path, sizeof(environ_path), "/proc/%d/environ", (int)ex.p.pid);
	n = slurp(environ_path, host_env, sizeof(host_env));
	ck_assert_int_gt(n, 0);
	ck_assert_msg(memmem(host_env, (size_t)n, canary, strlen(canary)) != NULL,
	              "the executor's environment lacks the canary");

	chat_id(chat, sizeof(chat), "env");
	np = needles_py(needles, 4);
	code = py(env_py, "%s", np);
	x = run("environment", user_a, chat, code, 0);
	ck_assert_msg(has_line(str_of(x, "stdout"), "SUSPECT "),
	              "suspect names in the sandbox:\n%s", str_of(x, "stdout"));
	ck_assert_msg(!strstr(str_of(x, "stdout"), "FOUND"), "secrets in the sandbox:\n%s",
	              str_of(x, "stdout"));
	cJSON_Delete(x);
	/* Every process's environment and every readable file. */
	x = scan("scan for secrets", user_a, chat, needles, 4);
	ck_assert_msg(!strstr(str_of(x, "stdout"), "FOUND"), "secrets in the sandbox:\n%s",
	              str_of(x, "stdout"));
	cJSON_Delete(x);
	free(np);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ exhaustion */

/* The chat survived, or its next run says its session was reset. */
static void assert_chat_recovers(const char *user, const char *chat, const char *reasons)
{
	cJSON *x = run("(same chat after)", user, chat, "print(2 + 2)", 0);
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(x, "session");

	ck_assert_str_eq(str_of(x, "stdout"), "4\n");
	if (flag(s, "reset")) {
		char c[160], w[64];

		snprintf(c, sizeof(c), "|%s|", reasons);
		snprintf(w, sizeof(w), "|%s|", str_of(s, "reason"));
		ck_assert_msg(strstr(c, w), "session reset for '%s', expected one of %s",
		              str_of(s, "reason"), reasons);
	}
	cJSON_Delete(x);
}

START_TEST(test_a_python_fork_bomb_hits_the_process_limit)
{
	static const char bomb_py[] = "import os\n"
	                              "while True:\n"
	                              "    os.fork()\n";
	char chat[96];
	int before = sandbox_processes();
	int64_t ms;
	cJSON *x;

	chat_id(chat, sizeof(chat), "forkbomb");
	x = run_timed("python fork bomb", user_a, chat, bomb_py, 0, &ms);
	ck_assert_msg(strcmp(limit_of(x), "processes") == 0 ||
	                  strcmp(limit_of(x), "wall_time") == 0,
	              "limit '%s'", limit_of(x));
	if (strcmp(limit_of(x), "processes") == 0)
		ck_assert_str_eq(error_type(x), "BlockingIOError");
	ck_assert_int_le(ms, RUN_TIMEOUT_MS + STOP_SLACK_MS);
	cJSON_Delete(x);
	assert_chat_recovers(user_a, chat, "wall_time|crashed");
	destroy(user_a, chat);
	assert_sandbox_processes_settle(before);
	assert_still_serves();
}
END_TEST

START_TEST(test_a_bash_fork_bomb_is_stopped_by_the_process_limit_or_the_timeout)
{
	static const char bomb_py[] = "import subprocess, time\n"
	                              "subprocess.Popen(['/usr/bin/bash', '-c', ':(){ :|:& };:'],\n"
	                              "                 stdout=subprocess.DEVNULL,\n"
	                              "                 stderr=subprocess.DEVNULL)\n"
	                              "time.sleep(60)\n";
	char chat[96];
	int before = sandbox_processes();
	int64_t ms;
	cJSON *x;

	if (access("/usr/bin/bash", X_OK) != 0) {
		fprintf(stderr, "  no /usr/bin/bash: no bash fork bomb\n");
		return;
	}
	chat_id(chat, sizeof(chat), "bashbomb");
	x = run_timed("bash fork bomb", user_a, chat, bomb_py, 0, &ms);
	ck_assert_msg(strcmp(limit_of(x), "processes") == 0 ||
	                  strcmp(limit_of(x), "wall_time") == 0,
	              "limit '%s'", limit_of(x));
	ck_assert_int_le(ms, RUN_TIMEOUT_MS + STOP_SLACK_MS);
	cJSON_Delete(x);
	assert_chat_recovers(user_a, chat, "wall_time|crashed");
	destroy(user_a, chat);
	assert_sandbox_processes_settle(before);
	assert_still_serves();
}
END_TEST

START_TEST(test_a_fork_bomb_left_running_after_its_run_does_not_starve_other_chats)
{
	static const char bomb_py[] = "import subprocess\n"
	                              "subprocess.Popen(['/usr/bin/bash', '-c', ':(){ :|:& };:'],\n"
	                              "                 stdout=subprocess.DEVNULL,\n"
	                              "                 stderr=subprocess.DEVNULL,\n"
	                              "                 start_new_session=True)\n"
	                              "print('left running')\n";
	char chat[96], load[128] = "";
	int before = sandbox_processes(), i;
	cJSON *x;

	if (access("/usr/bin/bash", X_OK) != 0) {
		fprintf(stderr, "  no /usr/bin/bash: no bash fork bomb\n");
		return;
	}
	chat_id(chat, sizeof(chat), "bgbomb");
	x = run("background fork bomb", user_a, chat, bomb_py, 0);
	cJSON_Delete(x);
	mk_sleep_ms(1000);
	slurp("/proc/loadavg", load, sizeof(load));
	fprintf(stderr, "  with the bomb left running: %d sandbox processes (%d before), load %s",
	        sandbox_processes(), before, load);
	for (i = 0; i < 3; i++)
		assert_still_serves();
	/* Destroying the chat ends everything it started. */
	destroy(user_a, chat);
	assert_sandbox_processes_settle(before);
}
END_TEST

START_TEST(test_memory_bombs_hit_the_memory_limit)
{
	static const char *const bombs[][2] = {
	    {"one huge allocation", "x = bytearray(8 << 30)\n"},
	    {"a growing list", "chunks = []\n"
	                       "while True:\n"
	                       "    chunks.append(' ' * (1 << 20))\n"},
	    {"a huge numpy array", "import numpy as np\n"
	                           "a = np.ones(1 << 31)\n"},
	};
	char chat[96];
	size_t i;

	chat_id(chat, sizeof(chat), "membomb");
	for (i = 0; i < sizeof(bombs) / sizeof(bombs[0]); i++) {
		/* A long timeout: touching 1 GiB takes seconds on a slow machine. */
		cJSON *x = run(bombs[i][0], user_a, chat, bombs[i][1], LONG_RUN_MS);

		ck_assert_str_eq(limit_of(x), "memory");
		ck_assert_msg(strstr(error_type(x), "MemoryError") != NULL, "error '%s'",
		              error_type(x));
		cJSON_Delete(x);
		/* Let go of what the growing list holds before the next bomb. */
		cJSON_Delete(run("(free)", user_a, chat, "chunks = None\n", 0));
	}
	assert_chat_recovers(user_a, chat, "crashed");
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_memory_spread_over_processes_is_held_to_the_sandbox_limit)
{
	/*
	 * Four processes of 900 MiB each (every page touched), held at once:
	 * 3.6 GiB, little enough for the host, but 3.5 times the sandbox's
	 * 1 GiB. With 64 processes the same code would ask for 57 GiB.
	 */
	static const char spread_py[] = "import os, time\n"
	                                "kids = []\n"
	                                "for i in range(4):\n"
	                                "    r, w = os.pipe()\n"
	                                "    pid = os.fork()\n"
	                                "    if pid == 0:\n"
	                                "        try:\n"
	                                "            b = bytearray(900 << 20)\n"
	                                "            os.write(w, b'1')\n"
	                                "            time.sleep(2)\n"
	                                "        except BaseException:\n"
	                                "            os.write(w, b'0')\n"
	                                "        finally:\n"
	                                "            os._exit(0)\n"
	                                "    kids.append((pid, r))\n"
	                                "held = sum(os.read(r, 1) == b'1' for pid, r in kids)\n"
	                                "for pid, r in kids:\n"
	                                "    os.waitpid(pid, 0)\n"
	                                "print('HELD', held * 900)\n";
	char chat[96], limit[32];
	long held = -1;
	cJSON *x;

	chat_id(chat, sizeof(chat), "memspread");
	x = run("memory over processes", user_a, chat, spread_py, LONG_RUN_MS);
	if (*outcome(str_of(x, "stdout"), "HELD"))
		held = strtol(outcome(str_of(x, "stdout"), "HELD"), NULL, 10);
	snprintf(limit, sizeof(limit), "%s", limit_of(x));
	cJSON_Delete(x);
	destroy(user_a, chat);
	ck_assert_msg(strcmp(limit, "memory") == 0 || (held >= 0 && held <= 1024),
	              "the sandbox's processes held %ld MiB together (-1: did not say; limit=%s); "
	              "its memory limit is 1024 MiB",
	              held, limit);
	assert_still_serves();
}
END_TEST

/* How the executor's workers hold their sandboxes (its sys.ping): "cgroup-v1", "off", ... */
static void isolation_of(mt_exec *e, char *buf, size_t len)
{
	mk_rpc_result res;

	ck_assert_int_eq(mt_exec_call(e, MK_OP_SYS_PING, NULL, NULL, 60000, &res), MK_OK);
	snprintf(buf, len, "%s", str_of(res.body, "isolation"));
	mk_rpc_result_release(&res);
}

/*
 * Memory that no process maps: memfd files, SysV shared memory detached
 * after use, and files in the tmpfs mounts beside processes that hold the
 * rest. Each snippet prints what it held (MiB) as far as it got; all of it
 * together must stay within the sandbox's 1 GiB, or the sandbox is stopped
 * at its memory limit. Without a cgroup, memfd and SysV shared memory are
 * refused outright.
 */
/* A new memfd every 128 MiB: each file stays under the file size limit. */
static const char memfd_py[] = "import os\n"
                               "n = 0\n"
                               "fds = []\n"
                               "try:\n"
                               "    block = b'\\1' * (1 << 20)\n"
                               "    while n < 3072:\n"
                               "        if n % 128 == 0:\n"
                               "            fds.append(os.memfd_create('hoard'))\n"
                               "        os.write(fds[-1], block)\n"
                               "        n += 1\n"
                               "        if n % 64 == 0:\n"
                               "            print('HELD', n, flush=True)\n"
                               "except OSError as e:\n"
                               "    print('REFUSED', type(e).__name__, flush=True)\n"
                               "print('HELD', n, flush=True)\n";
static const char sysv_py[] =
    "import ctypes\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]\n"
    "libc.shmdt.argtypes = [ctypes.c_void_p]\n"
    "n = 0\n"
    "try:\n"
    "    while n < 3072:\n"
    "        seg = libc.shmget(0, 128 << 20, 0o1600)\n"
    "        if seg < 0:\n"
    "            raise OSError(ctypes.get_errno(), 'shmget')\n"
    "        addr = libc.shmat(seg, None, 0)\n"
    "        if addr is None or addr == ctypes.c_void_p(-1).value:\n"
    "            raise OSError(ctypes.get_errno(), 'shmat')\n"
    "        ctypes.memset(addr, 1, 128 << 20)\n"
    "        libc.shmdt(addr)  # nothing maps it now; it stays\n"
    "        n += 128\n"
    "        print('HELD', n, flush=True)\n"
    "except OSError as e:\n"
    "    print('REFUSED', type(e).__name__, flush=True)\n"
    "print('HELD', n, flush=True)\n";
/* 3 x 60 MiB of files in the tmpfs mounts, then 3 processes of 300 MiB each (every page touched).
 */
static const char files_py[] = "import os, time\n"
                               "block = b'\\1' * (1 << 20)\n"
                               "files = 0\n"
                               "for d in ('/workspace', '/tmp', '/dev/shm'):\n"
                               "    with open(d + '/hoard', 'wb') as f:\n"
                               "        for i in range(60):\n"
                               "            f.write(block)\n"
                               "            files += 1\n"
                               "kids = []\n"
                               "for i in range(3):\n"
                               "    r, w = os.pipe()\n"
                               "    if os.fork() == 0:\n"
                               "        try:\n"
                               "            b = bytearray(b'\\1') * (300 << 20)\n"
                               "            os.write(w, b'1')\n"
                               "            time.sleep(3)\n"
                               "        except BaseException:\n"
                               "            os.write(w, b'0')\n"
                               "        finally:\n"
                               "            os._exit(0)\n"
                               "    kids.append(r)\n"
                               "held = sum(os.read(r, 1) == b'1' for r in kids)\n"
                               "os.wait()\n"
                               "print('HELD', files + held * 300, flush=True)\n";

/* The last HELD figure a run printed; -1 when none. */
static long last_held(const char *out)
{
	long held = -1;

	for (const char *p = out; (p = strstr(p, "HELD ")) != NULL; p += 5)
		if (p == out || p[-1] == '\n')
			held = strtol(p + 5, NULL, 10);
	return held;
}

/* Run each hoard on the current target: held within 1 GiB, or stopped at the memory limit. */
static void assert_hoards_held(const char *iso)
{
	static const char *const hoards[][2] = {{"memfd hoard", memfd_py},
	                                        {"SysV shm hoard", sysv_py},
	                                        {"tmpfs files + memory", files_py}};
	char chat[96];

	for (size_t i = 0; i < sizeof(hoards) / sizeof(hoards[0]); i++) {
		cJSON *x;
		long held;

		snprintf(chat, sizeof(chat), "hoard%zu-%s-%s", i, iso, tag);
		x = run(hoards[i][0], user_a, chat, hoards[i][1], LONG_RUN_MS);
		held = last_held(str_of(x, "stdout"));
		ck_assert_msg(strcmp(limit_of(x), "memory") == 0 || (held >= 0 && held <= 1024),
		              "%s (%s): the sandbox held %ld MiB outside its processes' maps "
		              "(limit=%s); its memory limit is 1024 MiB",
		              hoards[i][0], iso, held, limit_of(x));
		if (strcmp(limit_of(x), "memory") == 0)
			ck_assert_str_eq(error_type(x), "MemoryError");
		/* Without a cgroup the mechanisms themselves are closed. */
		if (strcmp(iso, "off") == 0 && i < 2)
			ck_assert_msg(strstr(str_of(x, "stdout"), "REFUSED PermissionError") !=
			                  NULL,
			              "%s was not refused without a cgroup", hoards[i][0]);
		cJSON_Delete(x);
		destroy(user_a, chat);
	}
}

START_TEST(test_memory_nothing_maps_counts_against_the_sandbox_limit)
{
	char iso[32];

	isolation_of(&ex, iso, sizeof(iso));
	fprintf(stderr, "  sandboxes held by: %s\n", iso);
	/* Root on a host with cgroups (this suite's machines): one per sandbox. */
	if (geteuid() == 0 && access("/sys/fs/cgroup/memory/memory.limit_in_bytes", W_OK) == 0)
		ck_assert_msg(strncmp(iso, "cgroup-", 7) == 0, "isolation '%s'", iso);
	assert_hoards_held(iso);
	assert_still_serves();
}
END_TEST

START_TEST(test_without_a_cgroup_memory_nothing_maps_is_refused_or_counted)
{
	const char *env[] = {"EXECUTOR_SANDBOX_CGROUP=off",   "EXECUTOR_TIMEOUT=3s",
	                     "EXECUTOR_TIMEOUT_MAX=120s",     "EXECUTOR_SANDBOX_MEMORY=1G",
	                     "EXECUTOR_SANDBOX_PROCESSES=64", "EXECUTOR_SANDBOX_WORKSPACE_SIZE=64M",
	                     "EXECUTOR_POOL_SIZE=0",          NULL};
	char err[512], iso[32];
	mt_exec off;

	ck_assert_msg(mt_exec_start(&off, "executor-nocgroup", env, 60000, err, sizeof(err)) == 0,
	              "%s", err);
	isolation_of(&off, iso, sizeof(iso));
	ck_assert_str_eq(iso, "off");
	target = &off;
	assert_hoards_held(iso);
	target = &ex;
	ck_assert_int_eq(mt_exec_stop(&off), 0);
	assert_still_serves();
}
END_TEST

START_TEST(test_a_sandbox_gets_one_core_however_many_processes_it_runs)
{
	/* Four processes spin for 4 s of wall time; their CPU time says how many cores they had. */
	static const char spin_py[] = "import os, time, resource\n"
	                              "t0 = time.monotonic()\n"
	                              "kids = []\n"
	                              "for i in range(4):\n"
	                              "    pid = os.fork()\n"
	                              "    if pid == 0:\n"
	                              "        while time.monotonic() < t0 + 4:\n"
	                              "            pass\n"
	                              "        os._exit(0)\n"
	                              "    kids.append(pid)\n"
	                              "for pid in kids:\n"
	                              "    os.waitpid(pid, 0)\n"
	                              "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
	                              "print('CPU', ru.ru_utime + ru.ru_stime)\n"
	                              "print('WALL', time.monotonic() - t0)\n";
	char chat[96], iso[32];
	double cpu, wall;
	cJSON *x;

	isolation_of(&ex, iso, sizeof(iso));
	if (strcmp(iso, "off") == 0) {
		fprintf(stderr, "  no cgroup: no CPU share to check\n");
		return;
	}
	chat_id(chat, sizeof(chat), "spin");
	x = run("four spinning processes", user_a, chat, spin_py, LONG_RUN_MS);
	cpu = strtod(outcome(str_of(x, "stdout"), "CPU"), NULL);
	wall = strtod(outcome(str_of(x, "stdout"), "WALL"), NULL);
	ck_assert_msg(wall >= 4.0, "stdout: %s", str_of(x, "stdout"));
	/* One core (EXECUTOR_SANDBOX_MILLICORES' default), with room for accounting. */
	ck_assert_msg(cpu <= wall * 1.25 + 0.5,
	              "four processes used %.2f s of CPU in %.2f s: more than one core", cpu, wall);
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ the host enforces */

/* A result within the host's own limits: at most MAX_ITEMS of each kind, the value and files
 * capped. */
static void assert_result_held(const cJSON *x)
{
	static const char *const kinds[] = {"tables", "figures", "images", "artifacts"};
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, "value"), *a;
	long long total = 0;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		ck_assert_msg(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, kinds[i])) <=
		                  MAX_ITEMS,
		              "%d %s (the limit is %d)",
		              cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, kinds[i])),
		              kinds[i], MAX_ITEMS);
	if (cJSON_IsObject(v))
		ck_assert_int_le(strlen(str_of(v, "text")), VALUE_MAX + 64);
	cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(x, "artifacts"))
	{
		long long n = 0;

		if (!cJSON_GetObjectItemCaseSensitive(a, "skipped") &&
		    mk_json_int(a, "bytes", &n) == 0)
			total += n;
	}
	ck_assert_msg(total <= ARTIFACTS_TOTAL, "%lld bytes of files kept (the limit is %lld)",
	              total, ARTIFACTS_TOTAL);
	ck_assert_msg(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "notes")) > 0,
	              "nothing says what was cut");
}

START_TEST(test_code_that_lifts_the_drivers_limits_gets_the_hosts)
{
	/* The driver shares the interpreter: its limits are the code's to change. */
	static const char lift_py[] = "import pandas as pd, plotly.graph_objects as go\n"
	                              "run = display.__globals__['_current']\n"
	                              "for k in list(run.lim):\n"
	                              "    run.lim[k] = 1 << 40\n"
	                              "for i in range(30):\n"
	                              "    display(pd.DataFrame({'a': [i]}))\n"
	                              "    display(go.Figure(data=[go.Bar(y=[i])]))\n"
	                              "'v' * (1 << 20)\n";
	char chat[96];
	cJSON *x;

	chat_id(chat, sizeof(chat), "lift");
	x = run("lifted driver limits", user_a, chat, lift_py, LONG_RUN_MS);
	ck_assert_str_eq(error_type(x), "");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "tables")),
	                 MAX_ITEMS);
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "figures")),
	                 MAX_ITEMS);
	ck_assert_ptr_nonnull(
	    strstr(str_of(cJSON_GetObjectItemCaseSensitive(x, "value"), "text"), "[cut at"));
	assert_result_held(x);
	cJSON_Delete(x);
	assert_chat_recovers(user_a, chat, "crashed");
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_a_reply_forged_on_the_control_channel_is_held_to_the_hosts_limits)
{
	/*
	 * The code writes a reply of its own, with this request's id, before
	 * the driver's: 12 files of 2 MiB each, a 1 MiB value and fields only
	 * the host may set. The driver's own reply, coming after, is stale.
	 */
	static const char forge_py[] =
	    "import json, struct, sys\n"
	    "g = display.__globals__\n"
	    "f = sys._getframe()\n"
	    "while f is not None and 'rid' not in f.f_locals:\n"
	    "    f = f.f_back\n"
	    "blob = 'QUFB' * ((2 << 20) // 3)\n"
	    "res = {'error': None, 'value': {'type': 'str', 'text': 'F' * (1 << 20)},\n"
	    "       'tables': [], 'figures': [], 'images': [], 'limit': 'nonsense',\n"
	    "       'session_lost': False, 'duration_ms': -1, 'stdout': 'forged',\n"
	    "       'artifacts': [{'path': 'output/f%d.bin' % i, 'bytes': 1, 'data_b64': blob}\n"
	    "                     for i in range(12)]}\n"
	    "body = json.dumps({'t': 'done', 'id': f.f_locals['rid'], 'result': res}).encode()\n"
	    "g['_ctl_out'].write(struct.pack('>I', len(body)) + body)\n";
	char chat[96];
	cJSON *x;

	chat_id(chat, sizeof(chat), "forge");
	x = run("forged reply", user_a, chat, forge_py, LONG_RUN_MS);
	assert_result_held(x);
	ck_assert_str_eq(limit_of(x), "null");
	ck_assert_msg(strcmp(str_of(x, "stdout"), "forged") != 0,
	              "the host took stdout from a frame");
	ck_assert(cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(x, "duration_ms")) >= 0);
	cJSON_Delete(x);
	/* The driver's late reply is dropped: the chat's next run answers for itself. */
	assert_chat_recovers(user_a, chat, "crashed");
	/* A forged reply larger than the limits allow is never held: the run ends, cleanly. */
	x = run("oversized forged reply", user_a, chat,
	        "import struct\n"
	        "body = b'{' * (200 << 20)\n"
	        "display.__globals__['_ctl_out'].write(struct.pack('>I', len(body)) + body)\n",
	        LONG_RUN_MS);
	ck_assert_str_eq(error_type(x), "SandboxError");
	ck_assert(flag(x, "session_lost"));
	cJSON_Delete(x);
	assert_chat_recovers(user_a, chat, "crashed");
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_an_infinite_loop_is_stopped_at_the_timeout_and_its_session_reset)
{
	/* It swallows every exception, so only killing it stops it. */
	static const char loop_py[] = "while True:\n"
	                              "    try:\n"
	                              "        while True:\n"
	                              "            pass\n"
	                              "    except BaseException:\n"
	                              "        pass\n";
	char chat[96];
	int64_t ms;
	cJSON *x;
	const cJSON *s;

	chat_id(chat, sizeof(chat), "loop");
	cJSON_Delete(run("(state before)", user_a, chat, "kept = 42", 0));
	x = run_timed("infinite loop", user_a, chat, loop_py, 0, &ms);
	ck_assert_str_eq(limit_of(x), "wall_time");
	ck_assert_int_ge(ms, RUN_TIMEOUT_MS - 100);
	ck_assert_int_le(ms, RUN_TIMEOUT_MS + STOP_SLACK_MS);
	cJSON_Delete(x);
	x = run("(after the loop)", user_a, chat, "print('kept' in globals())", 0);
	s = cJSON_GetObjectItemCaseSensitive(x, "session");
	ck_assert_str_eq(str_of(x, "stdout"), "False\n");
	ck_assert(flag(s, "reset"));
	ck_assert_str_eq(str_of(s, "reason"), "wall_time");
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_cpu_burned_inside_c_code_is_stopped_too)
{
	/* Matrix products: the time goes in BLAS, where Python cannot interrupt. */
	static const char burn_py[] = "import numpy as np\n"
	                              "a = np.random.rand(3000, 3000)\n"
	                              "while True:\n"
	                              "    a = a @ a\n"
	                              "    a /= a.max()\n";
	char chat[96];
	int64_t ms;
	cJSON *x;

	chat_id(chat, sizeof(chat), "cburn");
	x = run_timed("cpu burn in C", user_a, chat, burn_py, 0, &ms);
	ck_assert_msg(strcmp(limit_of(x), "wall_time") == 0 || strcmp(limit_of(x), "cpu_time") == 0,
	              "limit '%s'", limit_of(x));
	ck_assert_int_le(ms, RUN_TIMEOUT_MS + STOP_SLACK_MS);
	cJSON_Delete(x);
	assert_chat_recovers(user_a, chat, "wall_time|crashed");
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_output_floods_are_cut_at_the_cap_and_stopped)
{
	static const char *const floods[][3] = {
	    {"print forever", "stdout",
	     "while True:\n"
	     "    print('x' * 99)\n"},
	    {"one huge write", "stdout",
	     "import os\n"
	     "data = b'y' * (256 << 20)\n"
	     "while data:\n"
	     "    data = data[os.write(1, data):]\n"},
	    {"stderr flood", "stderr",
	     "import sys\n"
	     "while True:\n"
	     "    sys.stderr.write('z' * 4096)\n"},
	};
	char chat[96], trunc[32];
	size_t i;

	for (i = 0; i < sizeof(floods) / sizeof(floods[0]); i++) {
		int64_t ms;
		cJSON *x;

		snprintf(trunc, sizeof(trunc), "%s_truncated", floods[i][1]);
		snprintf(chat, sizeof(chat), "flood%zu-%s", i, tag);
		x = run_timed(floods[i][0], user_a, chat, floods[i][2], 0, &ms);
		ck_assert(flag(x, trunc));
		ck_assert_int_le(strlen(str_of(x, floods[i][1])), OUTPUT_CAP + MARKER_SLACK);
		ck_assert_int_gt(strlen(str_of(x, floods[i][1])), OUTPUT_CAP / 2);
		ck_assert_msg(strcmp(limit_of(x), "output") == 0 ||
		                  strcmp(limit_of(x), "wall_time") == 0,
		              "limit '%s'", limit_of(x));
		ck_assert_int_le(ms, RUN_TIMEOUT_MS + STOP_SLACK_MS);
		cJSON_Delete(x);
		assert_chat_recovers(user_a, chat, "wall_time|crashed");
		destroy(user_a, chat);
	}
	assert_still_serves();
}
END_TEST

START_TEST(test_filling_the_workspace_and_tmp_stops_at_their_caps)
{
	static const char one_file_py[] = "n = 0\n"
	                                  "block = b'\\0' * (1 << 20)\n"
	                                  "try:\n"
	                                  "    with open(PATH, 'wb') as f:\n"
	                                  "        while n < 4096:\n"
	                                  "            f.write(block)\n"
	                                  "            f.flush()\n"
	                                  "            n += 1\n"
	                                  "finally:\n"
	                                  "    print('MiB', n)\n";
	static const char many_files_py[] = "import os\n"
	                                    "n = 0\n"
	                                    "block = b'\\0' * (1 << 20)\n"
	                                    "os.makedirs(PATH, exist_ok=True)\n"
	                                    "try:\n"
	                                    "    while n < 4096:\n"
	                                    "        with open(PATH + '/' + str(n), 'wb') as f:\n"
	                                    "            f.write(block)\n"
	                                    "        n += 1\n"
	                                    "finally:\n"
	                                    "    print('MiB', n)\n";
	static const char clean_py[] = "import os, shutil\n"
	                               "if os.path.isdir(PATH):\n"
	                               "    shutil.rmtree(PATH)\n"
	                               "else:\n"
	                               "    os.remove(PATH)\n";
	static const char *const places[][2] = {{"/workspace/fill.bin", "/workspace/many"},
	                                        {"/tmp/fill.bin", "/tmp/many"}};
	char chat[96];
	int i;

	chat_id(chat, sizeof(chat), "disk");
	for (i = 0; i < 4; i++) {
		const char *place = places[i / 2][i % 2];
		char *code = py(i % 2 ? many_files_py : one_file_py, "PATH = '%s'\n", place);
		long long before = host_free_bytes("/");
		cJSON *x = run(place, user_a, chat, code, LONG_RUN_MS);

		/* One big file may meet the file size limit first; many small ones only the cap. */
		ck_assert_msg(strcmp(limit_of(x), "disk") == 0 ||
		                  (i % 2 == 0 && strcmp(limit_of(x), "file_size") == 0),
		              "limit '%s'", limit_of(x));
		ck_assert_str_eq(error_type(x), "OSError");
		ck_assert_int_le(strtol(outcome(str_of(x, "stdout"), "MiB"), NULL, 10),
		                 WORKSPACE_MIB);
		/* With the fill still in place, the host's disk did not take it. */
		ck_assert_msg(llabs(before - host_free_bytes("/")) < (32LL << 20),
		              "the host's free space went from %lld to %lld bytes", before,
		              host_free_bytes("/"));
		cJSON_Delete(x);
		free(code);
		cJSON_Delete(run("(clean up)", user_a, chat, clean_py, 0));
	}
	assert_chat_recovers(user_a, chat, "crashed");
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_no_writable_place_in_a_sandbox_holds_more_than_the_workspace_cap)
{
	/* Up to 256 MiB per place: enough to see a missing cap, little enough for the host. */
	static const char places_py[] =
	    "import os\n"
	    "block = b'\\0' * (1 << 20)\n"
	    "for d in ('/', '/dev', '/dev/shm', '/run', '/var/tmp', '/workspace/output',\n"
	    "          '/home', '/mnt'):\n"
	    "    n = 0\n"
	    "    try:\n"
	    "        os.makedirs(d + '/fill-dir', exist_ok=True)\n"
	    "        while n < 256:\n"
	    "            with open(d + '/fill-dir/' + str(n), 'wb') as f:\n"
	    "                f.write(block)\n"
	    "            n += 1\n"
	    "        why = 'no limit'\n"
	    "    except OSError as e:\n"
	    "        why = type(e).__name__\n"
	    "    print('PLACE', d, n, why)\n"
	    "    for k in range(n + 1):\n"
	    "        try:\n"
	    "            os.remove(d + '/fill-dir/' + str(k))\n"
	    "        except OSError:\n"
	    "            pass\n";
	char chat[96];
	const char *p;
	cJSON *x;

	chat_id(chat, sizeof(chat), "places");
	x = run("fill every writable place", user_a, chat, places_py, LONG_RUN_MS);
	ck_assert_ptr_nonnull(strstr(str_of(x, "stdout"), "PLACE /workspace/output "));
	for (p = str_of(x, "stdout"); (p = strstr(p, "PLACE ")) != NULL; p++) {
		char place[64];
		long mib = -1;

		ck_assert_int_eq(sscanf(p, "PLACE %63s %ld", place, &mib), 2);
		ck_assert_msg(mib <= WORKSPACE_MIB,
		              "%s holds %ld MiB (the workspace cap is %d MiB)", place, mib,
		              WORKSPACE_MIB);
	}
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ processes outside */

START_TEST(test_processes_outside_cannot_be_signalled_traced_or_read)
{
	static const char attack_py[] =
	    "import ctypes, errno, os, signal\n"
	    "libc = ctypes.CDLL(None, use_errno=True)\n"
	    "\n"
	    "def attempt(what, fn):\n"
	    "    try:\n"
	    "        fn()\n"
	    "        print(what, 'DONE')\n"
	    "    except OSError as e:\n"
	    "        print(what, type(e).__name__)\n"
	    "\n"
	    "def read_mem(pid):\n"
	    "    with open('/proc/' + str(pid) + '/mem', 'rb') as f:\n"
	    "        f.read(1)\n"
	    "\n"
	    "attempt('kill executor', lambda: os.kill(EXECUTOR_PID, signal.SIGKILL))\n"
	    "attempt('kill test', lambda: os.kill(TEST_PID, signal.SIGKILL))\n"
	    "attempt('read executor memory', lambda: read_mem(EXECUTOR_PID))\n"
	    "for name, pid in (('init', 1), ('executor', EXECUTOR_PID)):\n"
	    "    ctypes.set_errno(0)\n"
	    "    r = libc.ptrace(16, pid, None, None)  # PTRACE_ATTACH\n"
	    "    print('ptrace', name, r, errno.errorcode.get(ctypes.get_errno(), '0'))\n";
	char chat[96], *code;
	cJSON *x;
	const char *out;

	chat_id(chat, sizeof(chat), "signals");
	code = py(attack_py, "EXECUTOR_PID = %d\nTEST_PID = %d\n", (int)ex.p.pid, (int)getpid());
	x = run("signal and trace the host", user_a, chat, code, 0);
	out = str_of(x, "stdout");
	expect(out, "kill executor", "ProcessLookupError");
	expect(out, "kill test", "ProcessLookupError");
	expect(out, "read executor memory", "FileNotFoundError|PermissionError");
	/* seccomp refuses ptrace outright; the executor is not even visible. */
	expect(out, "ptrace init", "-1 EPERM");
	expect(out, "ptrace executor", "-1 EPERM|-1 ESRCH");
	ck_assert(mt_proc_alive(&ex.p));
	cJSON_Delete(x);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_killing_every_process_in_reach_harms_only_the_sandbox)
{
	static const char *const kills[][2] = {
	    {"kill -1", "import os, signal\n"
	                "os.kill(-1, signal.SIGKILL)\n"
	                "print('after kill -1')\n"},
	    {"kill init", "import os, signal\n"
	                  "os.kill(1, signal.SIGKILL)\n"
	                  "import time\n"
	                  "time.sleep(0.5)\n"
	                  "print('after kill 1')\n"},
	};
	char chat[96];
	size_t i;

	for (i = 0; i < 2; i++) {
		cJSON *x;

		snprintf(chat, sizeof(chat), "kill%zu-%s", i, tag);
		cJSON_Delete(run("(start)", user_a, chat, "print(0)", 0));
		x = run(kills[i][0], user_a, chat, kills[i][1], 0);
		/* The run ends (it may lose its session) and nothing outside is touched. */
		ck_assert_msg(mt_proc_alive(&ex.p), "the executor died");
		cJSON_Delete(x);
		assert_chat_recovers(user_a, chat, "crashed|wall_time");
		destroy(user_a, chat);
	}
	assert_still_serves();
}
END_TEST

/* ------------------------------------------------------------------ escapes */

START_TEST(test_file_paths_cannot_leave_the_workspace)
{
	static const char links_py[] = "import os\n"
	                               "os.symlink('/', '/workspace/link')\n"
	                               "os.symlink('/etc/passwd', '/workspace/pw')\n"
	                               "os.symlink('../../../../etc', '/workspace/up')\n"
	                               "print('linked')\n";
	static const char *const bad_puts[] = {"../../etc/x", "/etc/x", "a/../../x", "..",
	                                       "./../x"};
	static const char *const via_links[] = {"link/etc/passwd", "pw", "up/passwd", "link"};
	char chat[96], body[512], host_path[128];
	size_t i;
	cJSON *x;

	chat_id(chat, sizeof(chat), "paths");
	for (i = 0; i < sizeof(bad_puts) / sizeof(bad_puts[0]); i++) {
		snprintf(body, sizeof(body),
		         "{\"chat_id\":\"%s\",\"path\":\"%s\",\"data_b64\":\"eA==\"}", chat,
		         bad_puts[i]);
		ck_assert_msg(call(MK_OP_EXEC_PUT, user_a, body) == MK_E_VALIDATION, "put '%s'",
		              bad_puts[i]);
		snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"%s\"}", chat,
		         bad_puts[i]);
		ck_assert_msg(call(MK_OP_EXEC_GET, user_a, body) == MK_E_VALIDATION, "get '%s'",
		              bad_puts[i]);
	}
	x = run("symlinks out", user_a, chat, links_py, 0);
	ck_assert_str_eq(str_of(x, "stdout"), "linked\n");
	cJSON_Delete(x);
	for (i = 0; i < sizeof(via_links) / sizeof(via_links[0]); i++) {
		mk_err e;

		snprintf(body, sizeof(body), "{\"chat_id\":\"%s\",\"path\":\"%s\"}", chat,
		         via_links[i]);
		e = call(MK_OP_EXEC_GET, user_a, body);
		ck_assert_msg(e == MK_E_VALIDATION || e == MK_E_NOT_FOUND || e == MK_E_FORBIDDEN,
		              "get '%s' through a link answered %s", via_links[i], mk_err_code(e));
	}
	snprintf(host_path, sizeof(host_path), "/tmp/mark-escape-%s", tag);
	snprintf(body, sizeof(body),
	         "{\"chat_id\":\"%s\",\"path\":\"link/tmp/mark-escape-%s\",\"data_b64\":\"eA==\"}",
	         chat, tag);
	{
		mk_err e = call(MK_OP_EXEC_PUT, user_a, body);

		ck_assert_msg(e == MK_E_VALIDATION || e == MK_E_NOT_FOUND || e == MK_E_FORBIDDEN,
		              "put through a link answered %s", mk_err_code(e));
	}
	ck_assert_msg(access(host_path, F_OK) != 0, "a put through a link wrote %s on the host",
	              host_path);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_mounts_namespaces_and_chroot_are_refused)
{
	static const char ns_py[] =
	    "import ctypes, errno, os\n"
	    "libc = ctypes.CDLL(None, use_errno=True)\n"
	    "\n"
	    "def report(what, r):\n"
	    "    print(what, r, errno.errorcode.get(ctypes.get_errno(), '0') if r else 'OK')\n"
	    "\n"
	    "os.makedirs('/tmp/m', exist_ok=True)\n"
	    "MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 32, 4096\n"
	    "CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000\n"
	    "for what, fn in (\n"
	    "        ('mount tmpfs', lambda: libc.mount(b'none', b'/tmp/m', b'tmpfs', 0, None)),\n"
	    "        ('mount proc', lambda: libc.mount(b'proc', b'/tmp/m', b'proc', 0, None)),\n"
	    "        ('bind root', lambda: libc.mount(b'/', b'/tmp/m', None, MS_BIND, None)),\n"
	    "        ('remount usr', lambda: libc.mount(None, b'/usr', None,\n"
	    "                                           MS_REMOUNT | MS_BIND, None)),\n"
	    "        ('unshare mount', lambda: libc.unshare(CLONE_NEWNS)),\n"
	    "        ('unshare net', lambda: libc.unshare(CLONE_NEWNET)),\n"
	    "        ('unshare user', lambda: libc.unshare(CLONE_NEWUSER)),\n"
	    "        ('chroot', lambda: libc.chroot(b'/tmp'))):\n"
	    "    ctypes.set_errno(0)\n"
	    "    report(what, fn())\n";
	char chat[96];
	cJSON *x;
	const char *out;

	chat_id(chat, sizeof(chat), "mounts");
	x = run("mount and unshare", user_a, chat, ns_py, 0);
	out = str_of(x, "stdout");
	expect(out, "mount tmpfs", "-1 EPERM");
	expect(out, "mount proc", "-1 EPERM");
	expect(out, "bind root", "-1 EPERM");
	expect(out, "remount usr", "-1 EPERM");
	expect(out, "unshare mount", "-1 EPERM");
	expect(out, "unshare net", "-1 EPERM");
	/* ENOSPC: nested user namespaces are disabled (no seccomp to answer first). */
	expect(out, "unshare user", "-1 EPERM|-1 ENOSPC");
	expect(out, "chroot", "-1 EPERM");
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_usr_and_etc_are_read_only)
{
	/* Opening for writing is the test; nothing is written even when it opens. */
	static const char ro_py[] = "import errno, os\n"
	                            "def try_open(path, flags):\n"
	                            "    try:\n"
	                            "        os.close(os.open(path, flags, 0o644))\n"
	                            "        return 'OPENED'\n"
	                            "    except OSError as e:\n"
	                            "        return errno.errorcode.get(e.errno, str(e.errno))\n"
	                            "print('create', try_open(NEW, os.O_WRONLY | os.O_CREAT))\n"
	                            "print('python', try_open('/usr/bin/python3', os.O_WRONLY))\n"
	                            "print('passwd', try_open('/etc/passwd', os.O_WRONLY))\n"
	                            "try:\n"
	                            "    os.chmod('/usr/bin', 0o777)\n"
	                            "    print('chmod DONE')\n"
	                            "except OSError as e:\n"
	                            "    print('chmod', errno.errorcode.get(e.errno))\n";
	char chat[96], host_new[128], *code;
	cJSON *x;
	const char *out;

	snprintf(host_new, sizeof(host_new), "/usr/mark-test-%s", tag);
	chat_id(chat, sizeof(chat), "readonly");
	code = py(ro_py, "NEW = '%s'\n", host_new);
	x = run("write /usr", user_a, chat, code, 0);
	out = str_of(x, "stdout");
	if (access(host_new, F_OK) == 0)
		unlink(host_new);
	expect(out, "create", "EROFS");
	expect(out, "python", "EROFS|EACCES");
	expect(out, "passwd", "EROFS|EACCES|ENOENT");
	expect(out, "chmod", "EROFS|EPERM");
	cJSON_Delete(x);
	free(code);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

START_TEST(test_nothing_in_a_sandbox_runs_as_root)
{
	static const char uid_py[] =
	    "import errno, os, stat, subprocess\n"
	    "print('uid', os.getuid(), os.geteuid())\n"
	    "for name, fn in (('setuid', lambda: os.setuid(0)), ('seteuid', lambda: "
	    "os.seteuid(0)),\n"
	    "                 ('setresuid', lambda: os.setresuid(0, 0, 0))):\n"
	    "    try:\n"
	    "        fn()\n"
	    "        print(name, 'DONE', os.geteuid())\n"
	    "    except OSError as e:\n"
	    "        print(name, errno.errorcode.get(e.errno, e.errno))\n"
	    "for line in open('/proc/self/status'):\n"
	    "    if line.startswith(('CapEff', 'CapPrm')):\n"
	    "        print(line.split()[0].rstrip(':'), line.split()[1])\n"
	    "# A setuid file elevates only from a mount that honours the bit, and only\n"
	    "# to an owner that exists here.\n"
	    "for d in ('/usr/bin', '/usr/sbin', '/usr/lib'):\n"
	    "    for top, dirs, names in os.walk(d):\n"
	    "        for n in names:\n"
	    "            p = os.path.join(top, n)\n"
	    "            try:\n"
	    "                st = os.lstat(p)\n"
	    "            except OSError:\n"
	    "                continue\n"
	    "            if stat.S_ISREG(st.st_mode) and st.st_mode & stat.S_ISUID:\n"
	    "                nosuid = os.statvfs(p).f_flag & os.ST_NOSUID\n"
	    "                print('SUID', p, 'owner', st.st_uid, 'nosuid' if nosuid else "
	    "'honoured')\n"
	    "if os.path.exists('/usr/bin/su'):\n"
	    "    r = subprocess.run(['/usr/bin/su', '-c', 'id -u'], stdin=subprocess.DEVNULL,\n"
	    "                       capture_output=True, timeout=5)\n"
	    "    print('su', r.returncode, r.stdout.decode().strip() or '-')\n";
	char chat[96];
	cJSON *x;
	const char *out, *p;
	long uid = -1, euid = -1;

	chat_id(chat, sizeof(chat), "root");
	x = run("become root", user_a, chat, uid_py, LONG_RUN_MS);
	out = str_of(x, "stdout");
	ck_assert_int_eq(sscanf(outcome(out, "uid"), "%ld %ld", &uid, &euid), 2);
	ck_assert_int_ne(uid, 0);
	ck_assert_int_ne(euid, 0);
	/* EINVAL: root does not even exist in the sandbox's user namespace. */
	expect(out, "setuid", "EPERM|EINVAL");
	expect(out, "seteuid", "EPERM|EINVAL");
	expect(out, "setresuid", "EPERM|EINVAL");
	expect(out, "CapEff", "0000000000000000");
	expect(out, "CapPrm", "0000000000000000");
	for (p = out; (p = strstr(p, "SUID ")) != NULL; p++) {
		char path[256], how[16];
		long owner = -1;

		ck_assert_int_eq(sscanf(p, "SUID %255s owner %ld %15s", path, &owner, how), 3);
		ck_assert_msg(strcmp(how, "nosuid") == 0 || owner != 0,
		              "%s is setuid root on a mount that honours it", path);
	}
	ck_assert_msg(strncmp(outcome(out, "su"), "0 0", 3) != 0, "su ran 'id -u' as root");
	cJSON_Delete(x);
	destroy(user_a, chat);
	assert_still_serves();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sandbox_security");
	TCase *tc = tcase_create("sandbox_security");

	tcase_add_unchecked_fixture(tc, executor_up, executor_down);
	tcase_set_timeout(tc, 300);
	tcase_add_test(tc, test_the_internet_is_unreachable_from_a_sandbox);
	tcase_add_test(tc, test_the_hosts_postgres_is_unreachable_from_a_sandbox);
	tcase_add_test(tc,
	               test_the_executor_and_other_host_services_are_unreachable_from_a_sandbox);
	tcase_add_test(tc, test_names_do_not_resolve_in_a_sandbox);
	tcase_add_test(tc, test_host_files_are_not_readable_from_a_sandbox);
	tcase_add_test(tc, test_another_chats_workspace_is_invisible_to_every_other_sandbox);
	tcase_add_test(tc, test_the_executors_secrets_are_not_in_a_sandboxs_environment);
	tcase_add_test(tc, test_a_python_fork_bomb_hits_the_process_limit);
	tcase_add_test(tc, test_a_bash_fork_bomb_is_stopped_by_the_process_limit_or_the_timeout);
	tcase_add_test(tc, test_a_fork_bomb_left_running_after_its_run_does_not_starve_other_chats);
	tcase_add_test(tc, test_memory_bombs_hit_the_memory_limit);
	tcase_add_test(tc, test_memory_spread_over_processes_is_held_to_the_sandbox_limit);
	tcase_add_test(tc, test_memory_nothing_maps_counts_against_the_sandbox_limit);
	tcase_add_test(tc, test_without_a_cgroup_memory_nothing_maps_is_refused_or_counted);
	tcase_add_test(tc, test_a_sandbox_gets_one_core_however_many_processes_it_runs);
	tcase_add_test(tc, test_code_that_lifts_the_drivers_limits_gets_the_hosts);
	tcase_add_test(tc, test_a_reply_forged_on_the_control_channel_is_held_to_the_hosts_limits);
	tcase_add_test(tc, test_an_infinite_loop_is_stopped_at_the_timeout_and_its_session_reset);
	tcase_add_test(tc, test_cpu_burned_inside_c_code_is_stopped_too);
	tcase_add_test(tc, test_output_floods_are_cut_at_the_cap_and_stopped);
	tcase_add_test(tc, test_filling_the_workspace_and_tmp_stops_at_their_caps);
	tcase_add_test(tc, test_no_writable_place_in_a_sandbox_holds_more_than_the_workspace_cap);
	tcase_add_test(tc, test_processes_outside_cannot_be_signalled_traced_or_read);
	tcase_add_test(tc, test_killing_every_process_in_reach_harms_only_the_sandbox);
	tcase_add_test(tc, test_file_paths_cannot_leave_the_workspace);
	tcase_add_test(tc, test_mounts_namespaces_and_chroot_are_refused);
	tcase_add_test(tc, test_usr_and_etc_are_read_only);
	tcase_add_test(tc, test_nothing_in_a_sandbox_runs_as_root);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
