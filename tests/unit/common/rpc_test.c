/*
 * rpc_test.c - the NNG request/reply layer: a real server and client in
 * one process over loopback TCP.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "mk_json.h"
#include "mk_rpc.h"
#include "mk_time.h"
#include "mt.h"
#include "mt_check.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int in_flight, max_in_flight, want_together;
static int hold_ms;  /* how long the hook holds each request */
static int released; /* set by let_go(): held requests go on at once */

/* Wait on cv until done() holds or the time is `until`; mu is held. */
static void wait_until(const struct timespec *until, int (*done)(void))
{
	while (!done() && pthread_cond_timedwait(&cv, &mu, until) != ETIMEDOUT)
		;
}

static int all_together(void)
{
	return !want_together || max_in_flight >= want_together;
}

static int let_go_now(void)
{
	return released;
}

/* The ping hook doubles as the test's handler: it runs on a worker thread
 * for every sys.ping, which is all a test needs to observe concurrency,
 * slowness and shutdown. */
static void slow_ping(void *ud, cJSON *reply)
{
	struct timespec until;

	(void)ud;
	pthread_mutex_lock(&mu);
	in_flight++;
	if (in_flight > max_in_flight)
		max_in_flight = in_flight;
	pthread_cond_broadcast(&cv);
	/* Wait (bounded) until want_together requests are inside at once. */
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 30;
	wait_until(&until, all_together);
	/* Hold the request hold_ms, or until the test lets go. */
	if (hold_ms > 0) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += hold_ms / 1000;
		until.tv_nsec += (long)(hold_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		wait_until(&until, let_go_now);
	}
	in_flight--;
	pthread_mutex_unlock(&mu);
	cJSON_AddStringToObject(reply, "hook", "ran");
}

/* Let every held request go on. */
static void let_go(void)
{
	pthread_mutex_lock(&mu);
	released = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static mk_err no_ops(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	(void)ud;
	(void)req;
	(void)reply;
	snprintf(err, errlen, "none");
	return MK_E_UNKNOWN_OP;
}

static char url[64];

static mk_rpc_server *serve(int workers)
{
	mk_rpc_server_opts o = {
	    .service = "test",
	    .url = url,
	    .workers = workers,
	    .max_msg = 1 << 20,
	    .key = mt_bus_key(),
	    .handler = no_ops,
	    .ping = slow_ping,
	};
	mk_rpc_server *s = NULL;
	char err[256];

	ck_assert_msg(mk_rpc_server_start(&o, &s, err, sizeof(err)) == 0, "%s", err);
	return s;
}

static void setup(void)
{
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", mt_free_port());
	in_flight = max_in_flight = want_together = hold_ms = released = 0;
}

static mk_rpc_client *client(void)
{
	char err[256];
	mk_rpc_client *c = mk_rpc_client_new(url, 1 << 20, mt_bus_key(), err, sizeof(err));

	ck_assert_msg(c != NULL, "%s", err);
	return c;
}

/*
 * A client whose connection is up. A new client dials in the background,
 * and a call gives the connection only a short while to come up, so ping
 * until one gets through, however long the machine takes.
 */
static mk_rpc_client *connected_client(void)
{
	mk_rpc_client *c = client();
	int64_t until = mk_mono_ms() + 30000;
	mk_rpc_result res;
	char why[256];
	mk_err e;

	do {
		e = mk_rpc_call(c, MK_OP_SYS_PING, "hello", NULL, NULL, 30000, &res);
		snprintf(why, sizeof(why), "%s", res.msg);
		mk_rpc_result_release(&res);
	} while (e != MK_OK && mk_mono_ms() < until);
	ck_assert_msg(e == MK_OK, "no connection to %s: %s", url, why);
	pthread_mutex_lock(&mu);
	max_in_flight = 0;
	pthread_mutex_unlock(&mu);
	return c;
}

START_TEST(test_a_ping_is_answered_with_the_service_name)
{
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c = connected_client();
	mk_rpc_result res;

	ck_assert_int_eq(mk_rpc_call(c, MK_OP_SYS_PING, "r1", NULL, NULL, 30000, &res), MK_OK);
	ck_assert_str_eq(mk_json_str(res.body, "service"), "test");
	ck_assert_str_eq(mk_json_str(res.body, "hook"), "ran");
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

typedef struct {
	mk_rpc_client *c;
	int timeout_ms;
	mk_err e;
} call_job;

static void *call_thread(void *arg)
{
	call_job *j = arg;
	mk_rpc_result res;

	j->e = mk_rpc_call(j->c, MK_OP_SYS_PING, "par", NULL, NULL, j->timeout_ms, &res);
	mk_rpc_result_release(&res);
	return NULL;
}

START_TEST(test_one_server_serves_several_requests_at_once)
{
	mk_rpc_server *s = serve(4);
	mk_rpc_client *c = connected_client();
	pthread_t th[4];
	call_job jobs[4];
	int i;

	want_together = 4;
	for (i = 0; i < 4; i++) {
		jobs[i].c = c;
		jobs[i].timeout_ms = 60000;
		pthread_create(&th[i], NULL, call_thread, &jobs[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		ck_assert_int_eq(jobs[i].e, MK_OK);
	}
	ck_assert_int_eq(max_in_flight, 4);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_a_slow_reply_fails_with_deadline_exceeded)
{
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c = connected_client();
	mk_rpc_result res;

	hold_ms = 60000; /* no reply while the test runs */
	ck_assert_int_eq(mk_rpc_call(c, MK_OP_SYS_PING, "r2", NULL, NULL, 300, &res),
	                 MK_E_DEADLINE);
	mk_rpc_result_release(&res);
	let_go();
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_no_peer_fails_with_unavailable)
{
	mk_rpc_client *c = client();
	mk_rpc_result res;

	ck_assert_int_eq(mk_rpc_call(c, MK_OP_SYS_PING, "r3", NULL, NULL, 5000, &res),
	                 MK_E_UNAVAILABLE);
	ck_assert_ptr_nonnull(strstr(res.msg, url));
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
}
END_TEST

START_TEST(test_the_client_reconnects_when_the_peer_restarts)
{
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c = connected_client();
	int64_t until;
	mk_rpc_result res;
	mk_err e;

	mk_rpc_server_free(s);
	/* Whether the client saw the pipe close yet decides which of the two. */
	mk_rpc_call(c, MK_OP_SYS_PING, "b", NULL, NULL, 300, &res);
	ck_assert(res.err == MK_E_UNAVAILABLE || res.err == MK_E_DEADLINE);
	mk_rpc_result_release(&res);
	s = serve(2);
	/* The same client gets through again once it has redialled, whenever that is. */
	until = mk_mono_ms() + 30000;
	do {
		e = mk_rpc_call(c, MK_OP_SYS_PING, "c", NULL, NULL, 30000, &res);
		mk_rpc_result_release(&res);
	} while (e == MK_E_UNAVAILABLE && mk_mono_ms() < until);
	ck_assert_int_eq(e, MK_OK);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_stop_lets_in_flight_requests_finish_within_the_grace)
{
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c = connected_client();
	call_job j = {c, 60000, MK_E_INTERNAL};
	pthread_t th;

	hold_ms = 500;
	pthread_create(&th, NULL, call_thread, &j);
	pthread_mutex_lock(&mu);
	while (in_flight == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	ck_assert_int_eq(mk_rpc_server_stop(s, 30000), 0);
	pthread_join(th, NULL);
	ck_assert_int_eq(j.e, MK_OK);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_stop_reports_requests_still_running_after_the_grace)
{
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c = connected_client();
	call_job j = {c, 5000, MK_OK};
	pthread_t th;

	hold_ms = 60000; /* still inside when the grace runs out */
	pthread_create(&th, NULL, call_thread, &j);
	pthread_mutex_lock(&mu);
	while (in_flight == 0)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	ck_assert_int_eq(mk_rpc_server_stop(s, 100), 1);
	let_go(); /* its reply goes nowhere now */
	pthread_join(th, NULL);
	ck_assert_int_ne(j.e, MK_OK);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

/* Calls until one gets past connecting (the peer answers, whatever it says). */
static mk_err call_once_connected(mk_rpc_client *c, mk_rpc_result *res)
{
	int64_t until = mk_mono_ms() + 30000;
	mk_err e;

	for (;;) {
		e = mk_rpc_call(c, MK_OP_SYS_PING, "seal", NULL, NULL, 30000, res);
		if (e != MK_E_UNAVAILABLE || mk_mono_ms() >= until)
			return e;
		mk_rpc_result_release(res);
	}
}

START_TEST(test_a_client_with_another_bus_key_is_refused_before_any_handler_runs)
{
	mk_rpc_server *s = serve(2);
	mk_seal_key other;
	char err[256];
	mk_rpc_client *c;
	mk_rpc_result res;

	mk_seal_key_from(&other, "another deployment's secret, 32+ bytes", 38);
	c = mk_rpc_client_new(url, 1 << 20, &other, err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_int_eq(call_once_connected(c, &res), MK_E_INTERNAL);
	ck_assert_msg(strstr(res.msg, "bus key differs"), "%s", res.msg);
	mk_rpc_result_release(&res);
	pthread_mutex_lock(&mu);
	ck_assert_int_eq(max_in_flight, 0); /* the ping hook never ran */
	pthread_mutex_unlock(&mu);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_an_unsealed_request_with_a_forged_caller_gets_only_a_refusal)
{
	mk_rpc_server *s = serve(2);
	mk_caller who = {0};
	nng_socket sock;
	char *req, *buf = NULL;
	size_t len = 0;
	int rv;

	snprintf(who.user_id, sizeof(who.user_id), "00000000-0000-4000-8000-000000000001");
	snprintf(who.role, sizeof(who.role), "admin");
	req = mk_env_encode_request(MK_OP_SYS_PING, "forged", mk_now_ms() + 30000, &who, NULL);
	ck_assert_ptr_nonnull(req);
	ck_assert_int_eq(nng_req0_open(&sock), 0);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, 30000);
	ck_assert_int_eq(nng_dial(sock, url, NULL, 0), 0);
	ck_assert_int_eq(nng_send(sock, req, strlen(req), 0), 0);
	rv = nng_recv(sock, &buf, &len, NNG_FLAG_ALLOC);
	ck_assert_int_eq(rv, 0);
	ck_assert_msg(mk_seal_is_refusal(buf, len), "%.*s", (int)len, buf);
	nng_free(buf, len);
	nng_close(sock);
	free(req);
	pthread_mutex_lock(&mu);
	ck_assert_int_eq(max_in_flight, 0);
	pthread_mutex_unlock(&mu);
	mk_rpc_server_free(s);
}
END_TEST

/* A peer in a service's place that does not hold the key: answers every request unsealed. */
static void *impostor(void *arg)
{
	nng_socket *sock = arg;
	char *buf = NULL, reply[128];
	size_t len = 0;

	if (nng_recv(*sock, &buf, &len, NNG_FLAG_ALLOC) == 0) {
		nng_free(buf, len);
		snprintf(reply, sizeof(reply), MK_REPLY_PREFIX_FMT "{\"service\":\"fake\"}}",
		         "seal");
		nng_send(*sock, reply, strlen(reply), 0);
	}
	return NULL;
}

START_TEST(test_a_reply_not_sealed_with_the_bus_key_is_not_taken)
{
	nng_socket sock;
	pthread_t th;
	mk_rpc_client *c;
	mk_rpc_result res;

	ck_assert_int_eq(nng_rep0_open(&sock), 0);
	ck_assert_int_eq(nng_listen(sock, url, NULL, 0), 0);
	pthread_create(&th, NULL, impostor, &sock);
	c = client();
	ck_assert_int_eq(call_once_connected(c, &res), MK_E_INTERNAL);
	ck_assert_msg(strstr(res.msg, "not sealed"), "%s", res.msg);
	ck_assert_ptr_null(res.body);
	mk_rpc_result_release(&res);
	pthread_join(th, NULL);
	mk_rpc_client_free(c);
	nng_close(sock);
}
END_TEST

/* A name whose addresses the test sets: 127.0.0.1 and 127.0.0.2 are both loopback. */
static pthread_mutex_t names_mu = PTHREAD_MUTEX_INITIALIZER;
static int names_n;

static int fake_resolve(void *ud, const char *host, char addrs[][MK_RPC_ADDR_MAX], int max)
{
	int n;

	(void)ud;
	ck_assert_str_eq(host, "replicas.test");
	pthread_mutex_lock(&names_mu);
	n = names_n < max ? names_n : max;
	for (int i = 0; i < n; i++)
		snprintf(addrs[i], MK_RPC_ADDR_MAX, "127.0.0.%d", i + 1);
	pthread_mutex_unlock(&names_mu);
	return n;
}

static mk_rpc_server *serve_as(const char *name, const char *at)
{
	mk_rpc_server_opts o = {
	    .service = name, .url = at, .workers = 2, .key = mt_bus_key(), .handler = no_ops};
	mk_rpc_server *s = NULL;
	char err[256];

	ck_assert_msg(mk_rpc_server_start(&o, &s, err, sizeof(err)) == 0, "%s", err);
	return s;
}

/* Which servers answer 40 pings: bit 1 "a", bit 2 "b". */
static int who_answers(mk_rpc_client *c)
{
	int seen = 0;

	for (int i = 0; i < 40; i++) {
		mk_rpc_result res;

		if (mk_rpc_call(c, MK_OP_SYS_PING, "who", NULL, NULL, 30000, &res) == MK_OK) {
			const char *svc = mk_json_str(res.body, "service");

			seen |= strcmp(svc, "a") == 0 ? 1 : strcmp(svc, "b") == 0 ? 2 : 4;
		}
		mk_rpc_result_release(&res);
	}
	return seen;
}

static void wait_peers(mk_rpc_client *c, int n)
{
	int64_t until = mk_mono_ms() + 60000;

	while (mk_rpc_client_peers(c) != n && mk_mono_ms() < until)
		mk_sleep_ms(20);
	ck_assert_int_eq(mk_rpc_client_peers(c), n);
}

START_TEST(test_a_name_with_two_addresses_reaches_both_replicas_and_follows_the_name)
{
	int port = mt_free_port();
	char at1[64], at2[64], named[64], err[256];
	mk_rpc_server *a, *b;
	mk_rpc_client *c;

	snprintf(at1, sizeof(at1), "tcp://127.0.0.1:%d", port);
	snprintf(at2, sizeof(at2), "tcp://127.0.0.2:%d", port);
	snprintf(named, sizeof(named), "tcp://replicas.test:%d", port);
	a = serve_as("a", at1);
	b = serve_as("b", at2);
	names_n = 2;
	c = mk_rpc_client_new_resolving(named, 1 << 20, mt_bus_key(), fake_resolve, NULL, 50, err,
	                                sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	wait_peers(c, 2);
	ck_assert_int_eq(who_answers(c), 3);
	/* The name loses an address: that replica is dropped, the other still serves. */
	pthread_mutex_lock(&names_mu);
	names_n = 1;
	pthread_mutex_unlock(&names_mu);
	wait_peers(c, 1);
	ck_assert_int_eq(who_answers(c), 1);
	/* And gains it back. */
	pthread_mutex_lock(&names_mu);
	names_n = 2;
	pthread_mutex_unlock(&names_mu);
	wait_peers(c, 2);
	ck_assert_int_eq(who_answers(c), 3);
	mk_rpc_client_free(c);
	mk_rpc_server_free(a);
	mk_rpc_server_free(b);
}
END_TEST

START_TEST(test_a_name_that_resolves_through_dns_is_dialled)
{
	char named[64], err[256];
	mk_rpc_server *s = serve(2);
	mk_rpc_client *c;
	mk_rpc_result res;

	/* url is tcp://127.0.0.1:PORT; the same port by name. */
	snprintf(named, sizeof(named), "tcp://localhost:%s", strrchr(url, ':') + 1);
	c = mk_rpc_client_new(named, 1 << 20, mt_bus_key(), err, sizeof(err));
	ck_assert_msg(c != NULL, "%s", err);
	wait_peers(c, 1);
	ck_assert_int_eq(mk_rpc_call(c, MK_OP_SYS_PING, "dns", NULL, NULL, 30000, &res), MK_OK);
	mk_rpc_result_release(&res);
	mk_rpc_client_free(c);
	mk_rpc_server_free(s);
}
END_TEST

START_TEST(test_a_second_server_on_a_used_address_fails_cleanly)
{
	mk_rpc_server *s = serve(1), *s2 = NULL;
	mk_rpc_server_opts o = {
	    .service = "test", .url = url, .workers = 1, .key = mt_bus_key(), .handler = no_ops};
	char err[256] = "";

	ck_assert_int_eq(mk_rpc_server_start(&o, &s2, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, url));
	mk_rpc_server_free(s);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("rpc");
	TCase *tc = tcase_create("rpc");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_ping_is_answered_with_the_service_name);
	tcase_add_test(tc, test_one_server_serves_several_requests_at_once);
	tcase_add_test(tc, test_a_slow_reply_fails_with_deadline_exceeded);
	tcase_add_test(tc, test_no_peer_fails_with_unavailable);
	tcase_add_test(tc, test_the_client_reconnects_when_the_peer_restarts);
	tcase_add_test(tc, test_stop_lets_in_flight_requests_finish_within_the_grace);
	tcase_add_test(tc, test_stop_reports_requests_still_running_after_the_grace);
	tcase_add_test(tc, test_a_second_server_on_a_used_address_fails_cleanly);
	tcase_add_test(tc, test_a_client_with_another_bus_key_is_refused_before_any_handler_runs);
	tcase_add_test(tc, test_an_unsealed_request_with_a_forged_caller_gets_only_a_refusal);
	tcase_add_test(tc, test_a_reply_not_sealed_with_the_bus_key_is_not_taken);
	tcase_add_test(tc,
	               test_a_name_with_two_addresses_reaches_both_replicas_and_follows_the_name);
	tcase_add_test(tc, test_a_name_that_resolves_through_dns_is_dialled);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
