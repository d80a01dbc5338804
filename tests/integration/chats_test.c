/*
 * chats_test.c - chats and their messages through the gateway: the owner
 * sees and changes only their own chats (another's answers 404 exactly as a
 * missing one), pages follow cursors without gaps or repeats, and deleting
 * a chat deletes its messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "mk_json.h"
#include "mt.h"
#include "mt_check.h"

static mt_stack st;
static char tok_a[2048], tok_b[2048];

static void stack_up(void)
{
	if (mt_stack_start(&st, NULL) != 0) {
		fprintf(stderr, "the stack did not become ready\n");
		exit(1);
	}
	ck_assert_int_eq(mt_user(&st, "alice", tok_a, sizeof(tok_a), NULL, 0), 0);
	ck_assert_int_eq(mt_user(&st, "bob", tok_b, sizeof(tok_b), NULL, 0), 0);
}

static void stack_down(void)
{
	ck_assert_int_eq(mt_stack_stop(&st), 0);
}

/* One request as a user; body may be NULL. */
static long call(const char *tok, const char *method, const char *path, const char *body,
                 mt_resp *r)
{
	char auth[2100];
	const char *h[] = {auth, "Content-Type: application/json", NULL};

	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", tok);
	mt_http(method, mt_url(&st, path), h, body, body ? strlen(body) : 0, r);
	return r->status;
}

static char *new_chat(const char *tok, const char *title)
{
	char body[256];
	mt_resp r;
	char *id;

	snprintf(body, sizeof(body), "{\"title\":\"%s\"}", title);
	ck_assert_int_eq(call(tok, "POST", "/api/v1/chats", body, &r), 201);
	id = strdup(mk_json_str(r.json, "id"));
	mt_resp_release(&r);
	return id;
}

START_TEST(test_a_chat_is_created_renamed_read_and_deleted_by_its_owner)
{
	char path[128];
	char *id = new_chat(tok_a, "  Revenue by region  ");
	mt_resp r;

	snprintf(path, sizeof(path), "/api/v1/chats/%s", id);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "title"), "Revenue by region");
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "PATCH", path, "{\"title\":\"Churn\"}", &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "title"), "Churn");
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "DELETE", path, NULL, &r), 204);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 404);
	mt_resp_release(&r);
	free(id);
}
END_TEST

START_TEST(test_a_chat_without_a_title_is_called_new_chat)
{
	mt_resp r;

	ck_assert_int_eq(call(tok_a, "POST", "/api/v1/chats", NULL, &r), 201);
	ck_assert_str_eq(mk_json_str(r.json, "title"), "New chat");
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_another_users_chat_answers_404_like_a_missing_one)
{
	const char *missing = "/api/v1/chats/00000000-0000-4000-8000-000000000000";
	char path[128], mpath[160];
	char *id = new_chat(tok_a, "Alice's secret");
	mt_resp r, m;

	snprintf(path, sizeof(path), "/api/v1/chats/%s", id);
	snprintf(mpath, sizeof(mpath), "%s/messages", path);
	ck_assert_int_eq(call(tok_a, "GET", missing, NULL, &m), 404);
	ck_assert_int_eq(call(tok_b, "GET", path, NULL, &r), 404);
	ck_assert_str_eq(mt_error_code(&r), mt_error_code(&m));
	ck_assert_str_eq(mk_json_str(cJSON_GetObjectItem(r.json, "error"), "message"),
	                 mk_json_str(cJSON_GetObjectItem(m.json, "error"), "message"));
	mt_resp_release(&r);
	mt_resp_release(&m);
	ck_assert_int_eq(call(tok_b, "PATCH", path, "{\"title\":\"mine now\"}", &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_b, "DELETE", path, NULL, &r), 404);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_b, "GET", mpath, NULL, &r), 404);
	mt_resp_release(&r);
	/* Bob's list does not show it; Alice's chat is untouched. */
	ck_assert_int_eq(call(tok_b, "GET", "/api/v1/chats?limit=100", NULL, &r), 200);
	ck_assert_ptr_null(strstr(r.body, id));
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
	ck_assert_str_eq(mk_json_str(r.json, "title"), "Alice's secret");
	mt_resp_release(&r);
	free(id);
}
END_TEST

START_TEST(test_chat_pages_follow_the_cursor_newest_first_without_gaps)
{
	char tok[2048], path[512], *ids[7];
	const char *cursor = NULL;
	char seen[7] = {0}, cur[256] = "";
	int i, pages = 0, count = 0;
	mt_resp r;

	ck_assert_int_eq(mt_user(&st, "pager", tok, sizeof(tok), NULL, 0), 0);
	for (i = 0; i < 7; i++) {
		char t[16];

		snprintf(t, sizeof(t), "c%d", i);
		ids[i] = new_chat(tok, t);
	}
	do {
		const cJSON *it;

		snprintf(path, sizeof(path), "/api/v1/chats?limit=3%s%s", cursor ? "&cursor=" : "",
		         cursor ? cur : "");
		ck_assert_int_eq(call(tok, "GET", path, NULL, &r), 200);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r.json, "items"))
		{
			const char *id = mk_json_str(it, "id");

			for (i = 0; i < 7; i++)
				if (strcmp(ids[i], id) == 0)
					break;
			ck_assert_int_lt(i, 7);
			ck_assert_int_eq(seen[i], 0);
			/* Newest first: the k-th item seen is chat 6-k. */
			ck_assert_int_eq(i, 6 - count);
			seen[i] = 1;
			count++;
		}
		cursor = mk_json_str(r.json, "next_cursor");
		if (cursor)
			snprintf(cur, sizeof(cur), "%s", cursor);
		mt_resp_release(&r);
		pages++;
	} while (cursor && pages < 10);
	ck_assert_int_eq(count, 7);
	ck_assert_int_eq(pages, 3);
	for (i = 0; i < 7; i++)
		free(ids[i]);
}
END_TEST

/* Write n messages straight into llm's table (the chat turn will do this). */
static void add_messages(const char *chat_id, int n)
{
	PGconn *c = PQconnectdb(mt_dsn());
	char text[64];
	const char *p[2] = {chat_id, text};
	int i;

	for (i = 0; i < n; i++) {
		snprintf(text, sizeof(text), "message %d", i);
		PQclear(
		    PQexecParams(c,
		                 "INSERT INTO chat.messages (chat_id, role, content) VALUES ($1, "
		                 "'user', jsonb_build_array(jsonb_build_object('type', 'text', "
		                 "'text', $2::text)))",
		                 2, NULL, p, NULL, NULL, 0));
	}
	PQfinish(c);
}

START_TEST(test_messages_page_in_conversation_order_and_go_with_their_chat)
{
	char path[512], cur[256] = "", base[160];
	char *id = new_chat(tok_a, "Long chat");
	const char *next;
	int seen = 0, pages = 0;
	mt_resp r;

	add_messages(id, 25);
	snprintf(base, sizeof(base), "/api/v1/chats/%s/messages", id);
	do {
		const cJSON *it;

		snprintf(path, sizeof(path), "%s?limit=10%s%s", base, cur[0] ? "&cursor=" : "",
		         cur);
		ck_assert_int_eq(call(tok_a, "GET", path, NULL, &r), 200);
		cJSON_ArrayForEach(it, cJSON_GetObjectItem(r.json, "items"))
		{
			char want[32];
			const cJSON *part =
			    cJSON_GetArrayItem(cJSON_GetObjectItem(it, "content"), 0);

			snprintf(want, sizeof(want), "message %d", seen++);
			ck_assert_str_eq(mk_json_str(part, "text"), want);
			ck_assert_str_eq(mk_json_str(it, "role"), "user");
			ck_assert_str_eq(mk_json_str(it, "chat_id"), id);
		}
		next = mk_json_str(r.json, "next_cursor");
		snprintf(cur, sizeof(cur), "%s", next ? next : "");
		mt_resp_release(&r);
		pages++;
	} while (cur[0] && pages < 10);
	ck_assert_int_eq(seen, 25);
	ck_assert_int_eq(pages, 3);

	snprintf(path, sizeof(path), "/api/v1/chats/%s", id);
	ck_assert_int_eq(call(tok_a, "DELETE", path, NULL, &r), 204);
	mt_resp_release(&r);
	{
		PGconn *c = PQconnectdb(mt_dsn());
		const char *p[1] = {id};
		PGresult *q =
		    PQexecParams(c, "SELECT count(*) FROM chat.messages WHERE chat_id = $1", 1,
		                 NULL, p, NULL, NULL, 0);

		ck_assert_str_eq(PQgetvalue(q, 0, 0), "0");
		PQclear(q);
		PQfinish(c);
	}
	free(id);
}
END_TEST

START_TEST(test_bad_page_parameters_and_titles_are_422)
{
	const char *bad[] = {"/api/v1/chats?limit=0",
	                     "/api/v1/chats?limit=101",
	                     "/api/v1/chats?limit=ten",
	                     "/api/v1/chats?limit=",
	                     "/api/v1/chats?cursor=not-a-cursor",
	                     "/api/v1/chats?cursor=%00"};
	size_t i;
	mt_resp r;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(call(tok_a, "GET", bad[i], NULL, &r) == 422, "%s: %ld", bad[i],
		              r.status);
		ck_assert_str_eq(mt_error_code(&r), "validation_failed");
		mt_resp_release(&r);
	}
	ck_assert_int_eq(call(tok_a, "POST", "/api/v1/chats", "{\"title\":\"a\\u0007b\"}", &r),
	                 422);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "POST", "/api/v1/chats", "{\"title\":42}", &r), 422);
	mt_resp_release(&r);
	ck_assert_int_eq(call(tok_a, "POST", "/api/v1/chats", "{\"owner_id\":\"x\"}", &r), 422);
	mt_resp_release(&r);
}
END_TEST

START_TEST(test_chat_routes_need_a_valid_token)
{
	mt_resp r;

	mt_http("GET", mt_url(&st, "/api/v1/chats"), NULL, NULL, 0, &r);
	ck_assert_int_eq(r.status, 401);
	mt_resp_release(&r);
	ck_assert_int_eq(call("not.a.token", "GET", "/api/v1/chats", NULL, &r), 401);
	mt_resp_release(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("chats");
	TCase *tc = tcase_create("chats");

	tcase_add_unchecked_fixture(tc, stack_up, stack_down);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_a_chat_is_created_renamed_read_and_deleted_by_its_owner);
	tcase_add_test(tc, test_a_chat_without_a_title_is_called_new_chat);
	tcase_add_test(tc, test_another_users_chat_answers_404_like_a_missing_one);
	tcase_add_test(tc, test_chat_pages_follow_the_cursor_newest_first_without_gaps);
	tcase_add_test(tc, test_messages_page_in_conversation_order_and_go_with_their_chat);
	tcase_add_test(tc, test_bad_page_parameters_and_titles_are_422);
	tcase_add_test(tc, test_chat_routes_need_a_valid_token);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 1);
}
