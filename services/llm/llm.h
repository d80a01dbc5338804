/*
 * llm.h - the llm service: Mark's conversation. It owns chats and messages
 * (schema "chat"), the model provider clients (llm_provider.h) and, later,
 * the agent loop that conducts a chat turn.
 *
 * lib llm: llm_service.c (life and dispatch), llm_chats.c (chats,
 * messages, history), llm_provider.c / llm_openai.c / llm_anthropic.c /
 * llm_sse.c (model providers), config.c.
 */
#ifndef LLM_H
#define LLM_H

#include "llm_provider.h"
#include "mk_buf.h"
#include "mk_json.h"
#include "mk_svc.h"

typedef struct {
	mk_svc_cfg svc;
	char *provider; /* openai | anthropic */
	char *base_url;
	char *api_key;
	char *model;
	char *extra_headers;
	char *azure_api_version;
	long long connect_timeout_ms;
	long long first_byte_timeout_ms;
	long long idle_timeout_ms;
	long long max_retries;
	long long max_response;
	long long title_max;
	long long page_default;
	long long history_tokens;
	char *executor_url;
	char *metadata_url;
	char *prompts_dir;
	long long turn_max_steps;
	long long turn_max_calls_per_reply;
	long long turn_timeout_ms;
	long long turn_lost_after_ms;
	long long turn_max_tokens;
	long long message_max;
	long long tool_output_max;
	long long run_timeout_ms;
} llm_config;

extern const mk_cfg_var llm_config_vars[];
extern const size_t llm_config_nvars;
extern const mk_svc_app llm_app;

/* Embedded migrations (generated from migrations/NNN_name.sql at build time). */
extern const mk_migration llm_migrations[];
extern const size_t llm_migrations_count;

typedef struct {
	mk_svc svc;
	mk_svc_def def;
	const llm_config *cfg;
	llm_provider *provider; /* NULL when no model is configured */
	mk_rpc_client *executor;
	mk_rpc_client *metadata;
	char *system_prompt;     /* prompts/system.md, or LLM_PROMPTS_DIR's */
	struct llm_turns *turns; /* turns running or recently ended (llm_turn_events.c) */
} llm;

/* ---- llm_metrics.c: model calls, tokens and failures by provider */
void llm_metrics_init(void);
/* One model call of provider (LLM_PROVIDER) ended with st after seconds; r its usage. */
void llm_metrics_model_call(const char *provider, llm_status st, const llm_response *r,
                            double seconds);

#define LLM_HANDLER_ARGS llm *l, const mk_env *req, cJSON **reply, char *err, size_t errlen

/* ---- llm_chats.c: the chat.* ops (the caller is always the owner) */
mk_err llm_chat_create(LLM_HANDLER_ARGS);
mk_err llm_chat_list(LLM_HANDLER_ARGS);
mk_err llm_chat_get(LLM_HANDLER_ARGS);
mk_err llm_chat_update(LLM_HANDLER_ARGS);
mk_err llm_chat_delete(LLM_HANDLER_ARGS);
mk_err llm_chat_messages(LLM_HANDLER_ARGS);

/*
 * Append a message to a chat and touch the chat's updated_at. JSON
 * arguments are text (NULL for none; content NULL means []). On success
 * writes the new id (36 chars + NUL) to id_out. Returns 0 or -1 with err.
 */
int llm_message_add(PGconn *c, const char *chat_id, const char *role, const char *content,
                    const char *attachments, const char *steps, const char *usage,
                    const char *error, int tokens, char id_out[37], char *err, size_t errlen);

/*
 * The newest messages of a chat whose estimated tokens fit in budget,
 * oldest first, as a JSON array of {id, role, content, steps, tokens}.
 * The newest message is always included, even over budget. NULL with err
 * on failure.
 */
cJSON *llm_history(PGconn *c, const char *chat_id, long budget, char *err, size_t errlen);

/* ---- llm_turn.c: one chat turn, from question to story */
mk_err llm_turn(LLM_HANDLER_ARGS); /* chat.turn */

/* ---- llm_turn_events.c: a streamed turn's events, readable from any replica */
mk_err llm_turn_events(LLM_HANDLER_ARGS); /* chat.turn_events */
typedef struct llm_stream llm_stream;
/*
 * Register a streamed turn of owner in chat_id (its row in chat.turns, on
 * db): its events can be read from every replica from now on. NULL with
 * err when the database fails or memory runs out.
 */
llm_stream *llm_stream_open(llm *l, PGconn *db, const char *owner, const char *chat_id, char *err,
                            size_t errlen);
const char *llm_stream_id(const llm_stream *t);
/* Add an event (takes data; NULL: {}). t NULL (a turn not streamed): dropped. */
void llm_stream_emit(llm *l, llm_stream *t, const char *event, cJSON *data);
/* The turn ended (after its final event). */
void llm_stream_close(llm *l, llm_stream *t);
/*
 * The registry of streamed turns and its bus thread (writes events to the
 * database, wakes pollers on other replicas' notifications, beats the
 * heartbeat); free stops the bus after it wrote what is left.
 */
int llm_turns_init(llm *l, char *err, size_t errlen);
/* Wait up to grace_ms for streamed turns still running; returns how many still are. */
int llm_turns_wait(llm *l, int grace_ms);
void llm_turns_free(llm *l);
/*
 * sys.ping's addition (l is the ud): the streamed turns of the last hour,
 * {"turns_last_hour": {"total", "by_replica": [count, ...]}}, from the
 * shared table, so any replica tells how the turns were spread.
 */
void llm_turns_ping(void *ud, cJSON *reply);

/* ---- llm_wh_hint.c: help after a failed run_sql */
typedef enum {
	LLM_SQL_OTHER,
	LLM_SQL_UNKNOWN_COLUMN,   /* name: the column as the message gives it */
	LLM_SQL_UNKNOWN_TABLE,    /* name: the table (BigQuery's project: dropped) */
	LLM_SQL_DIALECT_POSTGRES, /* syntax, function or operator error of PostgreSQL */
	LLM_SQL_DIALECT_BIGQUERY, /* syntax, function or signature error of BigQuery */
} llm_sql_error;
#define LLM_SQL_NAME_MAX 256
/* What kind of failure the warehouse's message msg reports; the name it names into name. */
llm_sql_error llm_wh_sql_error(const char *msg, char *name, size_t namelen);
/*
 * The tables a query names after FROM and JOIN (quotes removed, each once,
 * string literals skipped), at most max, into names; returns how many.
 */
size_t llm_wh_sql_tables(const char *sql, char names[][LLM_SQL_NAME_MAX], size_t max);
/* Append s to b cut at max bytes ("..." added) with control characters made spaces. */
void llm_wh_clean(mk_buf *b, const char *s, size_t max);
/* The same, keeping line ends (text of several lines). */
void llm_wh_text(mk_buf *b, const char *s, size_t max);
/*
 * Append to b what helps the model fix sql after the warehouse's message
 * msg: existing columns, closest table names (through metadata, waiting
 * no later than deadline) or the dialect's hint; nothing for other errors.
 */
void llm_wh_failure_hint(llm *l, const mk_caller *who, const char *rid, const char *sql,
                         const char *msg, int64_t deadline, mk_buf *b);

/* ---- llm_warehouse.c: the warehouse tools of a turn (through metadata) */
extern const llm_tool llm_wh_tools[];
extern const size_t llm_wh_ntools;
/*
 * The prompt's note on the warehouse (malloc'd), or NULL when none is
 * configured or metadata does not answer: that one is connected, its
 * dialect, its overview (meta.overview) and, on top, the tables relevant
 * to question (meta.search). *connected says whether a warehouse answers.
 */
char *llm_wh_context(llm *l, const mk_caller *who, const char *rid, const char *question,
                     int *connected);
/*
 * Run warehouse tool `tool` with its JSON args, recording it in step (and a
 * query's result snippet in tables), waiting no later than deadline (the
 * turn's, mk_mono_ms). Returns the result text for the model
 * (malloc'd); *is_error when the call failed.
 */
char *llm_wh_tool(llm *l, const mk_caller *who, const char *rid, const char *chat, const char *tool,
                  const char *args, int seq, cJSON *step, cJSON *tables, int64_t deadline,
                  int *is_error);

/* Estimated tokens of a text (about four bytes a token). */
int llm_tokens_estimate(const char *text);

/* Is s a canonical lower- or upper-case UUID (8-4-4-4-12 hex)? */
int llm_uuid_valid(const char *s);

/* ---- llm_feedback.c, llm_usage.c: ratings of answers, tokens per day */
mk_err llm_chat_feedback(LLM_HANDLER_ARGS); /* chat.feedback */
mk_err llm_chat_usage(LLM_HANDLER_ARGS);    /* chat.usage */

#endif
