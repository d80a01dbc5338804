/*
 * history_test.c - appending messages and loading a chat's history within
 * a token budget, against the real Postgres and llm's own migrations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/llm.h"
#include "mt.h"
#include "mt_check.h"

static mk_db_pool *pool;

static void setup(void)
{
	char err[256];

	pool = mk_db_pool_new(mt_dsn(), "chat", 2, 5000);
	ck_assert_ptr_nonnull(pool);
	ck_assert_msg(mk_db_migrate(pool, llm_migrations, llm_migrations_count, err, sizeof(err)) >=
	                  0,
	              "%s", err);
}

static void teardown(void)
{
	mk_db_pool_free(pool);
}

/* A new chat owned by a random user; returns its id (static buffer). */
static const char *new_chat(PGconn *c)
{
	static char id[37];
	char err[256];
	PGresult *r =
	    mk_db_exec(c,
	               "INSERT INTO chats (owner_id, title) VALUES (gen_random_uuid(), 't') "
	               "RETURNING id",
	               0, NULL, err, sizeof(err), NULL);

	ck_assert_ptr_nonnull(r);
	snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	return id;
}

static void add(PGconn *c, const char *chat, const char *role, const char *text, int tokens)
{
	char content[256], id[37], err[256];

	snprintf(content, sizeof(content), "[{\"type\":\"text\",\"text\":\"%s\"}]", text);
	ck_assert_msg(llm_message_add(c, chat, role, content, NULL, NULL, NULL, NULL, tokens, id,
	                              err, sizeof(err)) == 0,
	              "%s", err);
	ck_assert(llm_uuid_valid(id));
}

static const char *text_of(const cJSON *m)
{
	return cJSON_GetStringValue(
	    cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(m, "content"), 0), "text"));
}

START_TEST(test_history_keeps_the_newest_messages_that_fit_oldest_first)
{
	char err[256];
	PGconn *c = mk_db_acquire(pool, 5000, err, sizeof(err));
	const char *chat = new_chat(c);
	cJSON *h;

	add(c, chat, "user", "q1", 400);
	add(c, chat, "assistant", "a1", 400);
	add(c, chat, "user", "q2", 300);
	add(c, chat, "assistant", "a2", 300);
	h = llm_history(c, chat, 700, err, sizeof(err));
	ck_assert_ptr_nonnull(h);
	ck_assert_int_eq(cJSON_GetArraySize(h), 2);
	ck_assert_str_eq(text_of(cJSON_GetArrayItem(h, 0)), "q2");
	ck_assert_str_eq(text_of(cJSON_GetArrayItem(h, 1)), "a2");
	cJSON_Delete(h);
	h = llm_history(c, chat, 100000, err, sizeof(err));
	ck_assert_int_eq(cJSON_GetArraySize(h), 4);
	ck_assert_str_eq(text_of(cJSON_GetArrayItem(h, 0)), "q1");
	cJSON_Delete(h);
	mk_db_release(pool, c);
}
END_TEST

START_TEST(test_the_newest_message_is_kept_even_over_budget)
{
	char err[256];
	PGconn *c = mk_db_acquire(pool, 5000, err, sizeof(err));
	const char *chat = new_chat(c);
	cJSON *h;

	add(c, chat, "user", "small", 10);
	add(c, chat, "user", "huge", 50000);
	h = llm_history(c, chat, 100, err, sizeof(err));
	ck_assert_int_eq(cJSON_GetArraySize(h), 1);
	ck_assert_str_eq(text_of(cJSON_GetArrayItem(h, 0)), "huge");
	cJSON_Delete(h);
	mk_db_release(pool, c);
}
END_TEST

START_TEST(test_adding_to_a_missing_chat_fails_cleanly)
{
	char err[256] = "", id[37];
	PGconn *c = mk_db_acquire(pool, 5000, err, sizeof(err));

	ck_assert_int_eq(llm_message_add(c, "00000000-0000-4000-8000-000000000000", "user", NULL,
	                                 NULL, NULL, NULL, NULL, 1, id, err, sizeof(err)),
	                 -1);
	ck_assert_int_ne(strlen(err), 0);
	mk_db_release(pool, c);
}
END_TEST

START_TEST(test_uuids_are_checked_by_shape)
{
	ck_assert(llm_uuid_valid("7ad4db68-9198-4ab1-89fc-35ec5becf964"));
	ck_assert(!llm_uuid_valid("7ad4db68-9198-4ab1-89fc-35ec5becf96"));
	ck_assert(!llm_uuid_valid("7ad4db68x9198-4ab1-89fc-35ec5becf964"));
	ck_assert(!llm_uuid_valid("7ad4db68-9198-4ab1-89fc-35ec5becf96g"));
	ck_assert(!llm_uuid_valid(""));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("history");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_history_keeps_the_newest_messages_that_fit_oldest_first);
	tcase_add_test(tc, test_the_newest_message_is_kept_even_over_budget);
	tcase_add_test(tc, test_adding_to_a_missing_chat_fails_cleanly);
	tcase_add_test(tc, test_uuids_are_checked_by_shape);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return mt_check_main(suite(), 0);
}
