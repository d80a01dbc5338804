/*
 * api_bench.c - what the public API costs: token signing and verification
 * and argon2id in-process, then over HTTP with wrk against the real stack,
 * with the same cases and data as the FastAPI reference
 * (../shared/bench/fastapi-ref: 1 user, 20 chats, 50 messages in the newest
 * chat): health checks, authenticated reads of chats and messages, and
 * sign-ins. Prints its figures; it asserts nothing about speed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* Resident memory of a process, in MiB. */
static double rss_mib(pid_t pid)
{
	char path[64], line[256];
	double kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0)
			kb = atof(line + 6);
	if (f)
		fclose(f);
	return kb / 1024;
}

/* Run wrk and print its request rate, latency percentiles and errors. */
static void wrk(const char *label, const mt_stack *st, int conns, int secs, const char *script,
                const char *token, const char *path)
{
	char cmd[4096], line[512];
	double rps = 0;
	char p50[32] = "?", p99[32] = "?", errs[128] = "0";
	FILE *f;

	snprintf(cmd, sizeof(cmd), "MARK_TOKEN='%s' wrk -t2 -c%d -d%ds --latency %s%s '%s' 2>&1",
	         token ? token : "", conns, secs, script ? "-s " : "", script ? script : "",
	         mt_url(st, path));
	f = popen(cmd, "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "Requests/sec:", 13) == 0)
			rps = atof(line + 13);
		else if (strstr(line, " 50% "))
			sscanf(line, " 50%% %31s", p50);
		else if (strstr(line, " 99% "))
			sscanf(line, " 99%% %31s", p99);
		else if (strstr(line, "Non-2xx") || strstr(line, "Socket errors"))
			snprintf(errs, sizeof(errs), "%.*s", (int)strcspn(line, "\n"), line);
	}
	if (f)
		pclose(f);
	printf(
	    "%-34s c=%-4d %9.0f req/s  p50 %-9s p99 %-9s gateway %.1f MiB, auth %.1f MiB  [%s]\n",
	    label, conns, rps, p50, p99, rss_mib(st->p[MT_GATEWAY].pid),
	    rss_mib(st->p[MT_AUTH].pid), errs);
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
		r = PQexecParams(c,
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
		PQclear(PQexecParams(c,
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

	printf(
	    "== auth: over HTTP (wrk -t2, %d s each; wrk, services and Postgres share the cores)\n",
	    secs);
	wrk("GET /healthz", &st, 50, secs, NULL, NULL, "/healthz");
	wrk("GET /healthz", &st, 200, secs, NULL, NULL, "/healthz");
	wrk("GET /api/v1/chats (20 chats)", &st, 50, secs, "tests/bench/bearer.lua", token,
	    "/api/v1/chats");
	wrk("GET /api/v1/chats (20 chats)", &st, 200, secs, "tests/bench/bearer.lua", token,
	    "/api/v1/chats");
	wrk("GET .../messages (50 messages)", &st, 50, secs, "tests/bench/bearer.lua", token,
	    messages);
	wrk("GET .../messages (50 messages)", &st, 200, secs, "tests/bench/bearer.lua", token,
	    messages);
	wrk("GET /auth/me (Bearer, Postgres)", &st, 200, secs, "tests/bench/bearer.lua", token,
	    "/auth/me");
	wrk("GET /auth/me (bad token -> 401)", &st, 200, secs, "tests/bench/badtoken.lua", NULL,
	    "/auth/me");
	wrk("POST /auth/signin (argon2id)", &st, 10, secs, "tests/bench/signin.lua", NULL,
	    "/auth/signin");
	return mt_stack_stop(&st) == 0 ? 0 : 1;
}
