/*
 * api_bench.c - what the public API costs: token signing and verification
 * and argon2id in-process, then over HTTP with wrk against the real stack,
 * with the same cases and data as the FastAPI reference
 * (../shared/bench/fastapi-ref: 1 user, 20 chats, 50 messages in the newest
 * chat): health checks, authenticated reads of chats and messages, and
 * sign-ins. Then the machine's own limits in the same run, beside what Mark
 * gets: a bare civetweb hello-world (the ceiling of /healthz), the
 * database's select-only rate (pgbench -S, the ceiling of authenticated
 * reads), and a bare HTTP sink (the ceiling of uploads). Prints its
 * figures; it asserts nothing about speed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <civetweb.h>
#include <libpq-fe.h>
#include <sodium.h>

#include "mk_json.h"
#include "mk_jwt.h"
#include "mk_time.h"
#include "mt.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void bench_tokens(const char *priv, const char *pub)
{
	char err[128];
	mk_jwt_key *k = mk_jwt_key_load(priv, err, sizeof(err));
	mk_jwt_key *p = mk_jwt_key_load(pub, err, sizeof(err));
	const mk_jwt_key *keys[1] = {p};
	mk_jwt_claims c = {.sub = "00000000-0000-0000-0000-000000000001", .role = "user"};
	mk_jwt_claims out;
	char *tok = NULL;
	double t0;
	int i, n = 2000;

	c.iat = time(NULL);
	c.exp = c.iat + 900;
	t0 = now_us();
	for (i = 0; i < n; i++) {
		free(tok);
		tok = mk_jwt_sign(k, "mark", "mark-api", &c, err, sizeof(err));
	}
	printf("token sign (ES256):            %8.1f us/op  %8.0f ops/s\n", (now_us() - t0) / n,
	       n / ((now_us() - t0) / 1e6));
	t0 = now_us();
	for (i = 0; i < n; i++)
		if (mk_jwt_verify(tok, keys, 1, "mark", "mark-api", time(NULL), 30, &out, err,
		                  sizeof(err)) != 0)
			abort();
	printf("token verify (ES256):          %8.1f us/op  %8.0f ops/s (one core)\n",
	       (now_us() - t0) / n, n / ((now_us() - t0) / 1e6));
	free(tok);
	mk_jwt_key_free(k);
	mk_jwt_key_free(p);
}

static void bench_argon2(void)
{
	char h[crypto_pwhash_STRBYTES];
	double t0;
	int i, n = 10;

	t0 = now_us();
	for (i = 0; i < n; i++)
		if (crypto_pwhash_str(h, "correct horse", 13, crypto_pwhash_OPSLIMIT_INTERACTIVE,
		                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
			abort();
	printf("argon2id hash (t=2, 64 MiB):   %8.1f ms/op\n", (now_us() - t0) / n / 1000);
	t0 = now_us();
	for (i = 0; i < n; i++)
		if (crypto_pwhash_str_verify(h, "correct horse", 13) != 0)
			abort();
	printf("argon2id verify:               %8.1f ms/op\n", (now_us() - t0) / n / 1000);
}

/*
 * Memory of a process in MiB: RSS (resident, counting every shared library
 * page in full) or PSS (shared pages divided among the processes sharing
 * them, the fair measure for a suite of small processes).
 */
static double mem_mib(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	double kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			kb = atof(line + n + 1);
	if (f)
		fclose(f);
	return kb / 1024;
}

typedef struct {
	double rps;
	double p50_ms, p99_ms;
	long errors; /* socket errors and non-2xx/3xx answers */
} wrk_result;

/* Run wrk against url; token may be NULL. */
static wrk_result wrk_run(const char *url, int conns, int secs, const char *script,
                          const char *token)
{
	char cmd[4096], line[512];
	wrk_result w = {0};
	long a, b, c, d;
	FILE *f;

	snprintf(cmd, sizeof(cmd),
	         "MARK_TOKEN='%s' wrk -t2 -c%d -d%ds --timeout 10s --latency %s%s '%s' 2>&1",
	         token ? token : "", conns, secs, script ? "-s " : "", script ? script : "", url);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char unit[8] = "";
		double v;

		if (strncmp(line, "Requests/sec:", 13) == 0)
			w.rps = atof(line + 13);
		else if (sscanf(line, " 50%% %lf%7s", &v, unit) == 2)
			w.p50_ms = v * (unit[0] == 'u' ? 0.001 : unit[0] == 's' ? 1000 : 1);
		else if (sscanf(line, " 99%% %lf%7s", &v, unit) == 2)
			w.p99_ms = v * (unit[0] == 'u' ? 0.001 : unit[0] == 's' ? 1000 : 1);
		else if (sscanf(line, "  Non-2xx or 3xx responses: %ld", &a) == 1)
			w.errors += a;
		else if (sscanf(line,
		                "  Socket errors: connect %ld, read %ld, write %ld, timeout %ld",
		                &a, &b, &c, &d) == 4)
			w.errors += a + b + c + d;
	}
	if (f)
		pclose(f);
	return w;
}

/* Total memory (field "Rss" or "Pss") of a list of processes, in MiB. */
static double mem_sum(const pid_t *pids, int n, const char *field)
{
	double t = 0;
	int i;

	for (i = 0; i < n; i++)
		t += mem_mib(pids[i], field);
	return t;
}

typedef struct {
	const char *label;
	const char *path; /* NULL: the messages path */
	int conns;
	const char *script;
	int authed;
} bench_case;

static const bench_case cases[] = {
    {"GET /healthz", "/healthz", 200, NULL, 0},
    {"GET /api/v1/chats (20 chats)", "/api/v1/chats", 50, "tests/bench/bearer.lua", 1},
    {"GET /api/v1/chats (20 chats)", "/api/v1/chats", 200, "tests/bench/bearer.lua", 1},
    {"GET .../messages (50 messages)", NULL, 50, "tests/bench/bearer.lua", 1},
    {"GET .../messages (50 messages)", NULL, 200, "tests/bench/bearer.lua", 1},
    {"GET /auth/me (bad token, 401)", "/auth/me", 200, "tests/bench/badtoken.lua", 0},
    {"POST /auth/signin (argon2id)", "/auth/signin", 10, "tests/bench/signin.lua", 0},
};
#define NCASES (sizeof(cases) / sizeof(cases[0]))

typedef struct {
	const char *base; /* http://host:port */
	const char *token;
	const char *messages;
	pid_t pids[8];
	int npids;
	wrk_result res[NCASES];
	double rss[NCASES], pss[NCASES];
} target;

static void run_cases(const char *name, target *t, int secs)
{
	char url[512];
	size_t i;

	printf("== %s: over HTTP (wrk -t2, %d s each; wrk, servers and Postgres share the cores)\n",
	       name, secs);
	for (i = 0; i < NCASES; i++) {
		snprintf(url, sizeof(url), "%s%s", t->base,
		         cases[i].path ? cases[i].path : t->messages);
		/* A short warm-up, discarded (as the reference's own bench does):
		 * pools, prepared statements and caches fill before measuring. */
		wrk_run(url, cases[i].conns, 2, cases[i].script, cases[i].authed ? t->token : NULL);
		t->res[i] = wrk_run(url, cases[i].conns, secs, cases[i].script,
		                    cases[i].authed ? t->token : NULL);
		t->rss[i] = mem_sum(t->pids, t->npids, "Rss");
		t->pss[i] = mem_sum(t->pids, t->npids, "Pss");
		printf("%-32s c=%-4d %8.0f req/s  p50 %8.2f ms  p99 %8.2f ms  RSS %6.1f  PSS %6.1f "
		       "MiB  "
		       "errors %ld\n",
		       cases[i].label, cases[i].conns, t->res[i].rps, t->res[i].p50_ms,
		       t->res[i].p99_ms, t->rss[i], t->pss[i], t->res[i].errors);
		fflush(stdout);
	}
}

/*
 * The FastAPI reference (../shared/bench/fastapi-ref), started and stopped
 * with its own scripts, under the same load. Returns 0 when it ran.
 */
static int run_reference(const char *dir, target *ref, int secs, char *tok, size_t toklen,
                         char *msgs, size_t msglen)
{
	char cmd[1024], line[4096], chat[64] = "";
	FILE *f;
	int pid = 0;

	snprintf(cmd, sizeof(cmd), "cd '%s' && ./start.sh 2>&1", dir);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "CHAT_ID=", 8) == 0)
			snprintf(chat, sizeof(chat), "%.63s", line + 8);
		else if (strncmp(line, "TOKEN=", 6) == 0)
			snprintf(tok, toklen, "%.2000s", line + 6);
	}
	if (!f || pclose(f) != 0 || !chat[0] || !tok[0]) {
		printf("== reference: could not start it (%s/start.sh)\n", dir);
		return -1;
	}
	snprintf(msgs, msglen, "/api/v1/chats/%s/messages", chat);
	ref->base = "http://127.0.0.1:8899";
	ref->token = tok;
	ref->messages = msgs;
	/* Its workers: the children of the uvicorn master. */
	f = fopen("/tmp/fastapi_ref_run/uvicorn.pid", "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "pgrep -P %d", pid);
	f = pid ? popen(cmd, "r") : NULL;
	while (f && ref->npids < 8 && fgets(line, sizeof(line), f))
		ref->pids[ref->npids++] = (pid_t)atoi(line);
	if (f)
		pclose(f);
	run_cases("FastAPI reference", ref, secs);
	snprintf(cmd, sizeof(cmd), "cd '%s' && ./stop.sh >/dev/null 2>&1", dir);
	if (system(cmd) != 0)
		printf("(the reference's stop.sh failed)\n");
	return 0;
}

static void compare(const target *m, const target *r)
{
	size_t i;

	printf("== Mark against the FastAPI reference (same cases, same machine, same run)\n");
	printf("%-32s %-6s %10s %10s %10s %10s\n", "case", "conns", "req/s", "p99", "RSS", "PSS");
	for (i = 0; i < NCASES; i++) {
		double rss = m->rss[i] > 0 ? r->rss[i] / m->rss[i] : 0;
		double pss = m->pss[i] > 0 ? r->pss[i] / m->pss[i] : 0;

		/* A reference that served nothing stalled: say so, never print 0x. */
		if (r->res[i].rps <= 0 || m->res[i].p99_ms <= 0 || r->res[i].p99_ms <= 0) {
			printf("%-32s c=%-4d the reference stalled: %.0f req/s, %ld errors%s\n",
			       cases[i].label, cases[i].conns, r->res[i].rps, r->res[i].errors,
			       m->res[i].rps > 0 ? "" : " (and Mark served nothing either)");
			continue;
		}
		printf("%-32s c=%-4d %9.1fx %9.1fx %9.1fx %9.1fx%s\n", cases[i].label,
		       cases[i].conns, m->res[i].rps / r->res[i].rps,
		       r->res[i].p99_ms / m->res[i].p99_ms, rss, pss,
		       r->res[i].errors ? "  (the reference had errors)" : "");
	}
	printf("(req/s: Mark's over the reference's; p99 and memory: the reference's over Mark's,\n"
	       " so every figure above 1 favours Mark. Memory: the Mark processes serving these\n"
	       " routes (gateway, auth, llm) against the reference's two workers, measured after\n"
	       " each case; targets: 10x req/s, 10x p99, 10x PSS.)\n");
}

/* Each Mark process's memory, and the sum (the executor holds its warm pool's sandboxes apart). */
static void print_memory(const mt_stack *st, const char *when)
{
	double rss = 0, pss = 0;

	printf("== memory of each Mark process, %s (MiB)\n", when);
	for (int i = 0; i < MT_NPROCS; i++) {
		double r = mem_mib(st->p[i].pid, "Rss"), p = mem_mib(st->p[i].pid, "Pss");

		printf("%-10s RSS %6.1f  PSS %6.1f\n", mt_proc_names[i], r, p);
		rss += r;
		pss += p;
	}
	printf("%-10s RSS %6.1f  PSS %6.1f\n", "all five", rss, pss);
}

/* ---- the machine's limits ---------------------------------------------------- */

static int hello(struct mg_connection *conn, void *ud)
{
	(void)ud;
	mg_printf(conn,
	          "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok");
	return 200;
}

/* Read the whole body and throw it away: what an upload costs with no work at all. */
static int sink(struct mg_connection *conn, void *ud)
{
	char buf[65536];

	(void)ud;
	while (mg_read(conn, buf, sizeof(buf)) > 0)
		;
	mg_printf(conn, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
	                "Content-Length: 2\r\n\r\n{}");
	return 201;
}

/* A bare civetweb with the gateway's options (64 threads, keep-alive); its port, or 0. */
static struct mg_context *bare_start(int *port)
{
	const char *opts[] = {"listening_ports",
	                      "127.0.0.1:0",
	                      "num_threads",
	                      "64",
	                      "enable_keep_alive",
	                      "yes",
	                      "keep_alive_timeout_ms",
	                      "30000",
	                      "tcp_nodelay",
	                      "1",
	                      "listen_backlog",
	                      "1024",
	                      NULL};
	struct mg_callbacks cb;
	struct mg_server_port ports[2];
	struct mg_context *ctx;

	memset(&cb, 0, sizeof(cb));
	ctx = mg_start(&cb, NULL, opts);
	if (!ctx)
		return NULL;
	mg_set_request_handler(ctx, "/hello", hello, NULL);
	mg_set_request_handler(ctx, "/sink", sink, NULL);
	*port = mg_get_server_ports(ctx, 2, ports) > 0 ? ports[0].port : 0;
	return ctx;
}

/* pgbench -S (select-only, the standard read) with conns clients; its tps, or 0. */
static double pgbench_select(int conns, int secs)
{
	char dsn[600], cmd[1400], line[512], err[256];
	double tps = 0;
	FILE *f;

	mt_sql(mt_dsn(), "DROP DATABASE IF EXISTS mark_pgbench", err, sizeof(err));
	if (mt_sql(mt_dsn(), "CREATE DATABASE mark_pgbench", err, sizeof(err)) != 0)
		return 0;
	{
		const char *u = strstr(mt_dsn(), "://");
		char who[128];

		snprintf(who, sizeof(who), "%.*s", (int)strcspn(u + 3, ":@"), u + 3);
		mt_dsn_for(who, "mark_pgbench", dsn, sizeof(dsn));
	}
	snprintf(
	    cmd, sizeof(cmd),
	    "PATH=/usr/lib/postgresql/15/bin:$PATH; pgbench -q -i -s 10 '%s' >/dev/null 2>&1 && "
	    "pgbench -n -S -M prepared -c %d -j 2 -T %d '%s' 2>&1",
	    dsn, conns, secs, dsn);
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "tps = ", 6) == 0)
			tps = atof(line + 6);
	if (f)
		pclose(f);
	mt_sql(mt_dsn(), "DROP DATABASE IF EXISTS mark_pgbench", err, sizeof(err));
	return tps;
}

/* One line of Mark beside a ceiling; goal 0: no target is set for it. */
static void ratio_line(const char *what, double mark, double limit, const char *unit, double goal)
{
	double r = limit > 0 ? mark / limit : 0;

	printf("%-44s %10.0f %10.0f %-6s %6.2f", what, mark, limit, unit, r);
	if (limit <= 0)
		printf("  (no ceiling measured)\n");
	else if (goal > 0)
		printf("  (target >= %.2f, %s)\n", goal, r >= goal ? "met" : "not met");
	else
		printf("\n");
}

/*
 * Mark beside what this machine allows, in the same run: /healthz against
 * a bare civetweb hello-world, authenticated reads against pgbench -S,
 * uploads against a bare HTTP sink (MB/s of multipart bodies of
 * MARK_BENCH_UPLOAD_MB, default 4).
 */
static void bench_limits(const target *mark, const char *token, int secs)
{
	char url[256], mb_env[32];
	int port = 0,
	    mb = getenv("MARK_BENCH_UPLOAD_MB") ? atoi(getenv("MARK_BENCH_UPLOAD_MB")) : 4;
	struct mg_context *bare = bare_start(&port);
	wrk_result hz, hb, rd, up, sk;
	double tps;

	if (!bare || !port) {
		printf("== limits: cannot start a bare civetweb\n");
		return;
	}
	printf(
	    "== limits: Mark beside this machine's ceilings (same run, same load, wrk -t2, %d s)\n",
	    secs);
	snprintf(mb_env, sizeof(mb_env), "%d", mb > 0 ? mb : 4);
	setenv("MARK_UPLOAD_MB", mb_env, 1);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hello", port);
	wrk_run(url, 200, 2, NULL, NULL);
	hb = wrk_run(url, 200, secs, NULL, NULL);
	snprintf(url, sizeof(url), "%s/healthz", mark->base);
	hz = wrk_run(url, 200, secs, NULL, NULL);
	snprintf(url, sizeof(url), "%s/api/v1/chats", mark->base);
	rd = wrk_run(url, 50, secs, "tests/bench/bearer.lua", token);
	snprintf(url, sizeof(url), "%s/api/v1/files", mark->base);
	up = wrk_run(url, 2, secs, "tests/bench/upload.lua", token);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/sink", port);
	sk = wrk_run(url, 2, secs, "tests/bench/upload.lua", token);
	mg_stop(bare);
	tps = pgbench_select(50, secs);
	printf("%-44s %10s %10s %-6s %6s\n", "", "Mark", "ceiling", "unit", "ratio");
	ratio_line("GET /healthz vs bare civetweb hello (c=200)", hz.rps, hb.rps, "req/s", 0.7);
	ratio_line("GET /api/v1/chats vs pgbench -S (c=50)", rd.rps, tps, "req/s", 0);
	ratio_line("POST /api/v1/files vs bare HTTP sink (c=2)", up.rps * mb, sk.rps * mb, "MB/s",
	           0);
	printf("(p99: /healthz %.2f ms, bare %.2f ms; reads %.2f ms; uploads %.1f ms, sink %.1f ms;"
	       " errors %ld %ld %ld %ld %ld)\n",
	       hz.p99_ms, hb.p99_ms, rd.p99_ms, up.p99_ms, sk.p99_ms, hz.errors, hb.errors,
	       rd.errors, up.errors, sk.errors);
}

/* The reference's seed, written into Mark's tables: 20 chats a minute
 * apart, 50 messages in the newest. Returns the newest chat's id. */
static void seed(const char *user_id, char chat_id[37])
{
	static const char lorem[] =
	    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod "
	    "tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam.";
	PGconn *c = PQconnectdb(mt_dsn());
	char i_s[8], text[256];
	const char *p[3] = {user_id, i_s, NULL};
	PGresult *r;
	int i;

	for (i = 0; i < 20; i++) {
		snprintf(i_s, sizeof(i_s), "%d", i + 1);
		r = PQexecParams(
		    c,
		    "INSERT INTO chat.chats (owner_id, title, created_at, updated_at) VALUES "
		    "($1, 'Chat number ' || lpad($2, 2, '0'), timestamptz '2024-01-01 12:00Z' "
		    "+ ($2::int - 1) * interval '1 minute', timestamptz '2024-01-01 12:00Z' + "
		    "($2::int - 1) * interval '1 minute') RETURNING id",
		    2, NULL, p, NULL, NULL, 0);
		snprintf(chat_id, 37, "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	p[0] = chat_id;
	p[2] = text;
	for (i = 0; i < 50; i++) {
		snprintf(i_s, sizeof(i_s), "%d", i);
		snprintf(text, sizeof(text), "Message %02d: %s", i + 1, lorem);
		PQclear(PQexecParams(
		    c,
		    "INSERT INTO chat.messages (chat_id, role, content, created_at) "
		    "VALUES ($1, CASE WHEN $2::int % 2 = 0 THEN 'user' ELSE 'assistant' "
		    "END, jsonb_build_array(jsonb_build_object('type', 'text', 'text', "
		    "$3::text)), timestamptz '2024-01-01 13:00Z' + $2::int * interval '1 "
		    "second')",
		    3, NULL, p, NULL, NULL, 0));
	}
	PQfinish(c);
}

int main(void)
{
	mt_stack st;
	mt_resp r;
	char token[2048], chat_id[37], messages[128];
	const char *body = "{\"email\":\"bench@example.com\",\"password\":\"bench-password\"}";
	const char *env[] = {"AUTH_SIGNIN_IP_MAX_FAILURES=100000", "GATEWAY_LOG_LEVEL=warn",
	                     "AUTH_LOG_LEVEL=warn", "LLM_LOG_LEVEL=warn", NULL};
	int secs = getenv("MARK_BENCH_SECONDS") ? atoi(getenv("MARK_BENCH_SECONDS")) : 10;

	if (sodium_init() < 0)
		return 1;
	printf("== api: in-process costs\n");
	if (mt_stack_start(&st, env) != 0)
		return 1;
	bench_tokens(st.key_priv, st.key_pub);
	bench_argon2();

	mt_http("POST", mt_url(&st, "/auth/signup"), NULL, body, strlen(body), &r);
	mt_resp_release(&r);
	mt_http("POST", mt_url(&st, "/auth/signin"), NULL, body, strlen(body), &r);
	snprintf(token, sizeof(token), "%s", mk_json_str(r.json, "access_token"));
	mt_resp_release(&r);
	{
		char auth[2100];
		const char *h[] = {auth, NULL};

		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
		mt_http("GET", mt_url(&st, "/auth/me"), h, NULL, 0, &r);
		seed(mk_json_str(r.json, "id"), chat_id);
		mt_resp_release(&r);
	}
	snprintf(messages, sizeof(messages), "/api/v1/chats/%s/messages", chat_id);

	{
		target mark = {.base = st.base, .token = token, .messages = messages};
		target ref = {0};
		char rtok[2048], rmsgs[160];
		const char *refdir = getenv("MARK_BENCH_REFERENCE");
		/* The processes serving these routes; executor and metadata are idle. */
		mark.pids[mark.npids++] = st.p[MT_GATEWAY].pid;
		mark.pids[mark.npids++] = st.p[MT_AUTH].pid;
		mark.pids[mark.npids++] = st.p[MT_LLM].pid;
		print_memory(&st, "idle");
		run_cases("Mark", &mark, secs);
		print_memory(&st, "after the load");
		bench_limits(&mark, token, secs);
		if (mt_stack_stop(&st) != 0)
			return 1;
		if (refdir && *refdir &&
		    run_reference(refdir, &ref, secs, rtok, sizeof(rtok), rmsgs, sizeof(rmsgs)) ==
		        0)
			compare(&mark, &ref);
	}
	return 0;
}
