/*
 * llm_turn.c - one chat turn, from the user's question to Mark's story.
 *
 * The question is saved first (nothing is lost if a later step fails),
 * then the model is called with the chat's history and the `run_python`
 * tool; each call it makes runs in the chat's sandbox (executor exec.run)
 * and its result goes back to the model, until it answers or a bound
 * (steps, tokens, time) is reached. The answer is saved with its steps and
 * returned as a MarkResponse. Every failure becomes a clear answer_story
 * with a stable error code, recorded on the assistant message.
 *
 * A turn runs either inside the chat.turn request, or (stream: true) on a
 * thread of its own: then chat.turn answers at once with the turn's id and
 * chat.turn_events hands out its events (turn_started, tool_call,
 * tool_result, answer_delta, final) as they happen. A streaming client
 * that goes away does not stop the turn: it completes and is saved.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "llm.h"
#include "mk_buf.h"
#include "mk_log.h"
#include "mk_time.h"

/* ------------------------------------------------------------------ the turn */

typedef struct {
	llm *l;
	char rid[MK_RID_MAX + 1];
	mk_caller caller;
	char chat_id[37];
	char user_msg_id[37];
	char *question;
	const cJSON *attachments_in; /* the request's file ids (borrowed, during llm_turn) */
	cJSON *attachments;          /* [{file_id, path, bytes, kind}] placed in the workspace */
	llm_stream *t;               /* NULL when not streamed */
	int64_t deadline;
	int warehouse; /* a warehouse answers: the SQL tools are offered */

	/* what the turn builds */
	mk_buf story;
	cJSON *steps, *tables, *figures, *artifacts;
	long prompt_tokens, completion_tokens;
	char err_code[48];
	char err_msg[512];
} turn_ctx;

static void emit(turn_ctx *c, const char *event, cJSON *data)
{
	llm_stream_emit(c->l, c->t, event, data);
}

static int on_text(void *ud, const char *delta, size_t len)
{
	turn_ctx *c = ud;
	cJSON *d = cJSON_CreateObject();
	char *s = strndup(delta, len);

	if (s) {
		cJSON_AddStringToObject(d, "text", s);
		free(s);
	}
	emit(c, "answer_delta", d);
	return 0;
}

static void fail(turn_ctx *c, const char *code, const char *story, const char *detail)
{
	snprintf(c->err_code, sizeof(c->err_code), "%s", code);
	snprintf(c->err_msg, sizeof(c->err_msg), "%s", detail ? detail : story);
	mk_buf_reset(&c->story);
	mk_buf_puts(&c->story, story);
}

/* A user-facing story for a model failure. */
static void model_failed(turn_ctx *c, llm_status st, const char *detail)
{
	const char *story;

	switch (st) {
	case LLM_E_AUTH:
		story =
		    "I could not reach my language model: the provider rejected Mark's API key. "
		    "An administrator needs to check `LLM_API_KEY`.";
		break;
	case LLM_E_QUOTA:
		story =
		    "I could not answer: the language model provider says the account is out of "
		    "credit or over its spending limit.";
		break;
	case LLM_E_RATE_LIMITED:
		story =
		    "The language model is busy right now (rate limited) and I could not finish "
		    "this answer. Please try again in a minute.";
		break;
	case LLM_E_TIMEOUT:
		story =
		    "The language model took too long to answer, so I stopped. Please try again.";
		break;
	case LLM_E_BAD_REQUEST:
		story =
		    "The language model refused the request (the model name may be wrong, or the "
		    "conversation too long for it). Try a new chat, or ask an administrator to "
		    "check `LLM_MODEL`.";
		break;
	default:
		story = "I could not reach the language model just now, so I cannot answer. Please "
		        "try again in a moment.";
	}
	fail(c, llm_status_code(st), story, detail);
}

static void clip_into(mk_buf *b, const char *label, const char *text, size_t max)
{
	size_t n;

	if (!text || !*text)
		return;
	n = strlen(text);
	mk_buf_printf(b, "%s:\n", label);
	if (n > max) {
		/* The end of an output (the traceback's last line) matters most. */
		mk_buf_printf(b, "[... %zu characters cut ...]\n", n - max);
		mk_buf_append(b, text + n - max, max);
	} else {
		mk_buf_puts(b, text);
	}
	mk_buf_puts(b, "\n");
}

/* The tool result the model reads, from an execution. */
static char *describe_run(turn_ctx *c, const cJSON *x)
{
	size_t max = (size_t)c->l->cfg->tool_output_max;
	mk_buf b;
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(x, "error");
	const cJSON *val = cJSON_GetObjectItemCaseSensitive(x, "value");
	const cJSON *sess = cJSON_GetObjectItemCaseSensitive(x, "session");
	const cJSON *tables = cJSON_GetObjectItemCaseSensitive(x, "tables");
	const char *limit = mk_json_str(x, "limit");
	int nfig = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "figures"));
	int nimg = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(x, "images"));
	const cJSON *t;

	mk_buf_init(&b, 4 * max + 4096);
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(sess, "reset")))
		mk_buf_printf(&b,
		              "Note: the Python session was reset before this run (%s): earlier "
		              "variables are gone; load the data again.\n",
		              mk_json_str(sess, "reason") ? mk_json_str(sess, "reason") : "lost");
	clip_into(&b, "stdout", mk_json_str(x, "stdout"), max);
	clip_into(&b, "stderr", mk_json_str(x, "stderr"), max / 2);
	if (cJSON_IsObject(val))
		clip_into(&b, "value", mk_json_str(val, "text"), max / 2);
	cJSON_ArrayForEach(t, tables)
	{
		char *cols = mk_json_print(cJSON_GetObjectItemCaseSensitive(t, "columns"));
		char *rows = mk_json_print(cJSON_GetObjectItemCaseSensitive(t, "rows"));
		long long total = 0;

		mk_json_int(t, "total_rows", &total);
		mk_buf_printf(&b, "table (%lld rows in all, shown to the user) columns %s\n", total,
		              cols ? cols : "[]");
		if (rows)
			clip_into(&b, "first rows", rows, max / 2);
		free(cols);
		free(rows);
	}
	if (nfig > 0)
		mk_buf_printf(&b, "%d Plotly figure(s) made and shown to the user.\n", nfig);
	if (nimg > 0)
		mk_buf_printf(&b, "%d matplotlib image(s) made and shown to the user.\n", nimg);
	if (cJSON_IsObject(err)) {
		mk_buf_printf(&b, "The code failed: %s: %s\n", mk_json_str(err, "type"),
		              mk_json_str(err, "message") ? mk_json_str(err, "message") : "");
		clip_into(&b, "traceback", mk_json_str(err, "traceback"), max);
	}
	if (limit)
		mk_buf_printf(&b,
		              "The run hit the sandbox's %s limit and was stopped. Use less of it "
		              "(smaller data, fewer rows printed, simpler computation).\n",
		              limit);
	if (b.len == 0)
		mk_buf_puts(&b, "The code ran and printed nothing.\n");
	return mk_buf_steal(&b);
}

/* Run one python call. Returns the tool result text (malloc'd), or NULL when the
 * executor itself failed (then the turn ends with fail()). *is_error set for failing code. */
static char *run_python(turn_ctx *c, int step, const char *args, int *is_error)
{
	char perr[128], rid[MK_RID_MAX + 1];
	cJSON *a = mk_json_parse(args, strlen(args), 16, perr, sizeof(perr));
	const char *code = a ? mk_json_str(a, "code") : NULL;
	cJSON *body, *d, *s;
	mk_rpc_result res;
	int64_t left = c->deadline - mk_mono_ms();
	long long timeout = c->l->cfg->run_timeout_ms;
	char *out;
	mk_err e;

	*is_error = 0;
	if (!code) {
		cJSON_Delete(a);
		*is_error = 1;
		return strdup("The run_python call needs a JSON object {\"code\": \"...\"}.");
	}
	d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "step", step);
	cJSON_AddStringToObject(d, "tool", "run_python");
	cJSON_AddStringToObject(d, "code", code);
	emit(c, "tool_call", d);
	if (left < 2000) {
		cJSON_Delete(a);
		return NULL;
	}
	if (timeout > left - 1000)
		timeout = left - 1000;
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "chat_id", c->chat_id);
	cJSON_AddStringToObject(body, "code", code);
	cJSON_AddNumberToObject(body, "timeout_ms", (double)timeout);
	snprintf(rid, sizeof(rid), "%.50s.%d", c->rid, step);
	e = mk_rpc_call(c->l->executor, MK_OP_EXEC_RUN, rid, &c->caller, body, (int)timeout + 5000,
	                &res);
	cJSON_Delete(body);
	s = cJSON_CreateObject();
	cJSON_AddStringToObject(s, "kind", "python");
	cJSON_AddStringToObject(s, "code", code);
	cJSON_Delete(a);
	if (e != MK_OK) {
		MK_WARN("LLM-TURN-EXEC", c->rid, "the executor failed: %s: %s", mk_err_code(e),
		        res.msg);
		cJSON_AddStringToObject(s, "stdout", "");
		cJSON_AddStringToObject(s, "stderr", "");
		d = cJSON_AddObjectToObject(s, "error");
		cJSON_AddStringToObject(d, "type", mk_err_code(e));
		cJSON_AddStringToObject(d, "message", res.msg);
		cJSON_AddItemToArray(c->steps, s);
		if (e == MK_E_RATE_LIMITED) {
			/* The user's own runs at once: the model hears it and the turn goes on. */
			mk_buf b;

			mk_buf_init(&b, 0);
			mk_buf_printf(&b, "Not run: %s", res.msg);
			mk_rpc_result_release(&res);
			*is_error = 1;
			return mk_buf_steal(&b);
		}
		mk_rpc_result_release(&res);
		return NULL;
	}
	{
		const cJSON *x = res.body, *it;
		static const char *const keep[] = {"stdout", "stderr",      "error",       "value",
		                                   "limit",  "duration_ms", "execution_id"};

		for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
			const cJSON *v = cJSON_GetObjectItemCaseSensitive(x, keep[i]);

			cJSON_AddItemToObject(s, keep[i],
			                      v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
		}
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(x, "tables"))
		    cJSON_AddItemToArray(c->tables, cJSON_Duplicate(it, 1));
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(x, "figures"))
		    cJSON_AddItemToArray(c->figures, cJSON_Duplicate(it, 1));
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(x, "images"))
		    cJSON_AddItemToArray(c->artifacts, cJSON_Duplicate(it, 1));
		cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(x, "artifacts"))
		    cJSON_AddItemToArray(c->artifacts, cJSON_Duplicate(it, 1));
		*is_error = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(x, "error"));
		out = describe_run(c, x);
	}
	cJSON_AddItemToArray(c->steps, s);
	d = cJSON_Duplicate(s, 1);
	cJSON_AddNumberToObject(d, "step", step);
	emit(c, "tool_result", d);
	mk_rpc_result_release(&res);
	return out;
}

static const llm_tool python_tool[] = {
    {"run_python",
     "Run Python in this chat's stateful session (pandas, numpy, plotly, matplotlib). "
     "Variables persist between calls. The last expression is shown (a DataFrame as a table, "
     "a Plotly figure as a chart). Returns stdout, stderr, the value, tables and errors.",
     "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"description\":"
     "\"Python code to run\"}},\"required\":[\"code\"]}"},
};

/* The conversation as the model sees it: system prompt, history, this question. */
typedef struct {
	llm_message *m;
	size_t n, cap;
	cJSON *hist;  /* owns the history's strings */
	char **owned; /* strings this turn made */
	size_t nowned, capowned;
	struct kept_calls {
		llm_tool_call *a;
		size_t n;
	} * calls; /* the call arrays of this turn's assistant steps */
	size_t ncalls, capcalls;
} convo;

static llm_message *convo_add(convo *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 32;
		llm_message *m = realloc(v->m, cap * sizeof(*m));

		if (!m)
			return NULL;
		v->m = m;
		v->cap = cap;
	}
	memset(&v->m[v->n], 0, sizeof(v->m[0]));
	return &v->m[v->n++];
}

static const char *convo_own(convo *v, char *s)
{
	if (!s)
		return NULL;
	if (v->nowned == v->capowned) {
		size_t cap = v->capowned ? v->capowned * 2 : 32;
		char **o = realloc(v->owned, cap * sizeof(*o));

		if (!o) {
			free(s);
			return NULL;
		}
		v->owned = o;
		v->capowned = cap;
	}
	v->owned[v->nowned++] = s;
	return s;
}

static void convo_release(convo *v)
{
	for (size_t i = 0; i < v->nowned; i++)
		free(v->owned[i]);
	for (size_t i = 0; i < v->ncalls; i++) {
		for (size_t j = 0; j < v->calls[i].n; j++) {
			free(v->calls[i].a[j].id);
			free(v->calls[i].a[j].name);
			free(v->calls[i].a[j].arguments);
		}
		free(v->calls[i].a);
	}
	free(v->owned);
	free(v->calls);
	free(v->m);
	cJSON_Delete(v->hist);
}

/* The text of a stored message: its text parts joined. */
static const char *message_text(const cJSON *msg)
{
	const cJSON *p, *content = cJSON_GetObjectItemCaseSensitive(msg, "content");

	cJSON_ArrayForEach(p, content)
	{
		const char *t = mk_json_str(p, "text");

		if (t)
			return t;
	}
	return "";
}

static char *describe_attachments(turn_ctx *c);

/*
 * The system prompt, plus the files already in the chat's workspace (so the
 * model knows what it can load). The executor being down is not an error
 * here: the first run will say so.
 */
static char *system_prompt(turn_ctx *c)
{
	cJSON *body = cJSON_CreateObject();
	mk_rpc_result res;
	mk_buf b;
	const cJSON *f;
	int n = 0;

	mk_buf_init(&b, 64 * 1024);
	mk_buf_puts(&b, c->l->system_prompt);
	cJSON_AddStringToObject(body, "chat_id", c->chat_id);
	mk_rpc_call(c->l->executor, MK_OP_EXEC_LIST, c->rid, &c->caller, body, 5000, &res);
	cJSON_Delete(body);
	if (res.err == MK_OK)
		cJSON_ArrayForEach(f, cJSON_GetObjectItemCaseSensitive(res.body, "files"))
		{
			const char *path = mk_json_str(f, "path");
			long long bytes = 0;

			if (!path || n >= 50)
				continue;
			mk_json_int(f, "bytes", &bytes);
			mk_buf_printf(&b, "%s`%s` (%lld bytes)",
			              n++ ? ", " : "\n\nFiles in this chat's workspace: ", path,
			              bytes);
		}
	mk_rpc_result_release(&res);
	{
		char *wh = llm_wh_context(c->l, &c->caller, c->rid, c->question, &c->warehouse);

		if (wh) {
			mk_buf_printf(&b, "\n\n%s", wh);
			free(wh);
		}
	}
	{
		char *desc = describe_attachments(c);

		if (desc) {
			mk_buf_printf(&b, "\n\n%s", desc);
			free(desc);
		}
	}
	return mk_buf_steal(&b);
}

static int build_convo(turn_ctx *c, PGconn *db, convo *v, char *err, size_t errlen)
{
	const cJSON *msg;
	llm_message *m;

	m = convo_add(v);
	if (!m)
		return -1;
	m->role = LLM_ROLE_SYSTEM;
	m->content = convo_own(v, system_prompt(c));
	if (!m->content)
		m->content = c->l->system_prompt;
	v->hist = llm_history(db, c->chat_id, c->l->cfg->history_tokens, err, errlen);
	if (!v->hist)
		return -1;
	cJSON_ArrayForEach(msg, v->hist)
	{
		const char *role = mk_json_str(msg, "role");
		const char *text = message_text(msg);

		if (!role || !*text)
			continue;
		m = convo_add(v);
		if (!m)
			return -1;
		if (strcmp(role, "user") == 0) {
			m->role = LLM_ROLE_USER;
			m->content = text;
		} else {
			/* Earlier answers, with the code they ran, so follow-ups build on them. */
			const cJSON *steps = cJSON_GetObjectItemCaseSensitive(msg, "steps"), *s;
			mk_buf b;

			mk_buf_init(&b, 64 * 1024);
			cJSON_ArrayForEach(s, steps)
			{
				const char *code = mk_json_str(s, "code");

				if (code)
					mk_buf_printf(
					    &b, "[earlier step: ran Python]\n```python\n%s\n```\n",
					    code);
			}
			mk_buf_puts(&b, text);
			m->role = LLM_ROLE_ASSISTANT;
			m->content = convo_own(v, mk_buf_steal(&b));
		}
	}
	return 0;
}

/* Keep the model's calls of this step alive for the next requests. */
static const llm_tool_call *convo_keep_calls(convo *v, llm_response *r)
{
	llm_tool_call *copy;

	if (v->ncalls == v->capcalls) {
		size_t cap = v->capcalls ? v->capcalls * 2 : 16;
		struct kept_calls *o = realloc(v->calls, cap * sizeof(*o));

		if (!o)
			return NULL;
		v->calls = o;
		v->capcalls = cap;
	}
	copy = calloc(r->ncalls, sizeof(*copy));
	if (!copy)
		return NULL;
	memcpy(copy, r->calls, r->ncalls * sizeof(*copy));
	/* Steal the strings from the response. */
	for (size_t i = 0; i < r->ncalls; i++)
		r->calls[i].id = r->calls[i].name = r->calls[i].arguments = NULL;
	v->calls[v->ncalls].a = copy;
	v->calls[v->ncalls++].n = r->ncalls;
	return copy;
}

static int is_wh_tool(const char *name)
{
	for (size_t i = 0; i < llm_wh_ntools; i++)
		if (strcmp(name, llm_wh_tools[i].name) == 0)
			return 1;
	return 0;
}

/* A warehouse tool call, with its events and step. */
static char *wh_call(turn_ctx *c, int step, const llm_tool_call *call, int *is_error)
{
	cJSON *s = cJSON_CreateObject(), *d;
	char perr[64];
	cJSON *a = mk_json_parse(call->arguments, strlen(call->arguments), 16, perr, sizeof(perr));
	char *out;

	d = cJSON_CreateObject();
	cJSON_AddNumberToObject(d, "step", step);
	cJSON_AddStringToObject(d, "tool", call->name);
	if (a) {
		const cJSON *it;

		cJSON_ArrayForEach(it, a)
		{
			if (cJSON_IsString(it))
				cJSON_AddStringToObject(d, it->string, it->valuestring);
		}
	}
	cJSON_Delete(a);
	emit(c, "tool_call", d);
	out = llm_wh_tool(c->l, &c->caller, c->rid, c->chat_id, call->name, call->arguments, step,
	                  s, c->tables, c->deadline, is_error);
	cJSON_AddItemToArray(c->steps, s);
	d = cJSON_Duplicate(s, 1);
	cJSON_AddNumberToObject(d, "step", step);
	emit(c, "tool_result", d);
	return out;
}

static void run_loop(turn_ctx *c, PGconn *db)
{
	const llm_config *cfg = c->l->cfg;
	char err[512] = "";
	convo v = {0};
	llm_stream_cb cb = {.on_text = on_text, .ud = c};
	int step = 0;
	llm_tool tools[8];
	size_t ntools = 0;

	if (build_convo(c, db, &v, err, sizeof(err)) != 0) {
		fail(c, "database_error", "I could not read this chat's history, so I stopped.",
		     err);
		goto out;
	}
	/* Python always; the warehouse's tools when one answers (build_convo found out). */
	tools[ntools++] = python_tool[0];
	for (size_t i = 0; c->warehouse && i < llm_wh_ntools && ntools < 8; i++)
		tools[ntools++] = llm_wh_tools[i];
	for (;;) {
		llm_request rq = {
		    .messages = v.m,
		    .nmessages = v.n,
		    .tools = tools,
		    .ntools = ntools,
		    .stream = c->t != NULL,
		    .deadline_mono_ms = c->deadline,
		};
		llm_response r;
		llm_status st;
		int64_t t0;
		int last = step >= cfg->turn_max_steps ||
		           c->prompt_tokens + c->completion_tokens >= cfg->turn_max_tokens;
		const llm_tool_call *calls;

		if (last) {
			/* Bounds reached: one more call without tools, for an answer from what
			 * there is. */
			llm_message *m = convo_add(&v);

			if (m) {
				m->role = LLM_ROLE_USER;
				m->content =
				    "You have used all the tool calls this turn allows. Answer now "
				    "with what you found so far, and say what is missing.";
			}
			rq.messages = v.m;
			rq.nmessages = v.n;
			rq.tool_choice = "none";
		}
		t0 = mk_mono_ms();
		st = c->l->provider->ops->complete(c->l->provider, &rq, &cb, &r, err, sizeof(err));
		llm_metrics_model_call(cfg->provider, st, &r, (double)(mk_mono_ms() - t0) / 1e3);
		c->prompt_tokens += r.prompt_tokens;
		c->completion_tokens += r.completion_tokens;
		if (st != LLM_OK) {
			MK_WARN("LLM-TURN-MODEL", c->rid, "%s: %s", llm_status_code(st), err);
			model_failed(c, st, err);
			llm_response_release(&r);
			break;
		}
		if (r.ncalls == 0 || last) {
			mk_buf_reset(&c->story);
			mk_buf_puts(&c->story, r.text && *r.text
			                           ? r.text
			                           : "I have no answer to give for this.");
			if (last && step >= cfg->turn_max_steps)
				snprintf(c->err_code, sizeof(c->err_code), "turn_step_limit");
			llm_response_release(&r);
			break;
		}
		/* The assistant's tool calls, then each result. */
		{
			llm_message *m = convo_add(&v);
			size_t n = r.ncalls;

			if (!m) {
				llm_response_release(&r);
				fail(c, "internal", "I ran out of memory while working on this.",
				     NULL);
				break;
			}
			m->role = LLM_ROLE_ASSISTANT;
			m->content = convo_own(&v, strdup(r.text ? r.text : ""));
			calls = convo_keep_calls(&v, &r);
			m->calls = calls;
			m->ncalls = calls ? n : 0;
			llm_response_release(&r);
			for (size_t i = 0; calls && i < n; i++) {
				llm_message *tm;
				char *out;
				int is_error = 0;

				/*
				 * Every call counts against the turn's steps; a reply runs only
				 * as many as remain and as one reply may ask for. The rest are
				 * answered, not run, so that each call has its result.
				 */
				if ((long long)i >= cfg->turn_max_calls_per_reply ||
				    step >= cfg->turn_max_steps || mk_mono_ms() >= c->deadline) {
					char msg[200];

					if ((long long)i >= cfg->turn_max_calls_per_reply)
						snprintf(msg, sizeof(msg),
						         "Not run: one reply may make at most %lld "
						         "tool calls.",
						         cfg->turn_max_calls_per_reply);
					else if (step >= cfg->turn_max_steps)
						snprintf(msg, sizeof(msg),
						         "Not run: this turn's %lld tool calls are "
						         "used up.",
						         cfg->turn_max_steps);
					else
						snprintf(msg, sizeof(msg),
						         "Not run: this turn's time is up.");
					out = strdup(msg);
					is_error = 1;
					goto result;
				}
				step++;
				if (strcmp(calls[i].name, "run_python") == 0) {
					out = run_python(c, step, calls[i].arguments, &is_error);
					if (!out) {
						fail(c, "executor_unavailable",
						     "I could not run code just now: the sandbox "
						     "service is not "
						     "answering. Your question is saved; please "
						     "try again in a "
						     "moment.",
						     NULL);
						goto out;
					}
				} else if (c->warehouse && is_wh_tool(calls[i].name)) {
					out = wh_call(c, step, &calls[i], &is_error);
				} else {
					char msg[200];

					snprintf(msg, sizeof(msg),
					         "There is no tool '%.80s'; use run_python.",
					         calls[i].name);
					out = strdup(msg);
					is_error = 1;
				}
			result:
				tm = convo_add(&v);
				if (!tm) {
					free(out);
					break;
				}
				tm->role = LLM_ROLE_TOOL;
				tm->tool_call_id = calls[i].id;
				tm->content = convo_own(&v, out);
				tm->is_error = is_error;
			}
		}
		if (mk_mono_ms() >= c->deadline) {
			fail(c, "turn_timeout",
			     "This question took longer than I am allowed to work on one answer, "
			     "so I "
			     "stopped. Try asking for a smaller piece of it.",
			     NULL);
			break;
		}
	}
out:
	convo_release(&v);
}

/* ------------------------------------------------------------------ saving */

/* The MarkResponse of the turn (also what the assistant message records). */
static cJSON *mark_response(turn_ctx *c, const char *msg_id)
{
	cJSON *r = cJSON_CreateObject(), *u;

	cJSON_AddStringToObject(r, "chat_id", c->chat_id);
	if (msg_id)
		cJSON_AddStringToObject(r, "message_id", msg_id);
	else
		cJSON_AddNullToObject(r, "message_id");
	cJSON_AddStringToObject(r, "question_id", c->user_msg_id);
	cJSON_AddStringToObject(r, "answer_story", c->story.data ? c->story.data : "");
	cJSON_AddItemToObject(r, "steps", cJSON_Duplicate(c->steps, 1));
	cJSON_AddItemToObject(r, "tables", cJSON_Duplicate(c->tables, 1));
	cJSON_AddItemToObject(r, "visualizations", cJSON_Duplicate(c->figures, 1));
	cJSON_AddItemToObject(r, "artifacts", cJSON_Duplicate(c->artifacts, 1));
	u = cJSON_AddObjectToObject(r, "usage");
	cJSON_AddNumberToObject(u, "prompt_tokens", (double)c->prompt_tokens);
	cJSON_AddNumberToObject(u, "completion_tokens", (double)c->completion_tokens);
	if (c->err_code[0]) {
		cJSON *e = cJSON_AddObjectToObject(r, "error");

		cJSON_AddStringToObject(e, "code", c->err_code);
		cJSON_AddStringToObject(e, "message", c->err_msg[0] ? c->err_msg : c->err_code);
	} else {
		cJSON_AddNullToObject(r, "error");
	}
	return r;
}

/* Save the assistant message; returns the MarkResponse (with its id when saved). */
static cJSON *finish(turn_ctx *c, PGconn *db)
{
	char err[256] = "", id[37] = "";
	cJSON *content = cJSON_CreateArray(), *part = cJSON_CreateObject(), *usage, *error = NULL;
	cJSON *steps;
	char *ct, *us, *er = NULL;

	cJSON_AddStringToObject(part, "type", "text");
	cJSON_AddStringToObject(part, "text", c->story.data ? c->story.data : "");
	cJSON_AddItemToArray(content, part);
	/* Steps keep what the chat page needs to show them again: outputs, tables, charts. */
	steps = cJSON_CreateObject();
	cJSON_AddItemToObject(steps, "steps", cJSON_Duplicate(c->steps, 1));
	cJSON_AddItemToObject(steps, "tables", cJSON_Duplicate(c->tables, 1));
	cJSON_AddItemToObject(steps, "visualizations", cJSON_Duplicate(c->figures, 1));
	cJSON_AddItemToObject(steps, "artifacts", cJSON_Duplicate(c->artifacts, 1));
	usage = cJSON_CreateObject();
	cJSON_AddNumberToObject(usage, "prompt_tokens", (double)c->prompt_tokens);
	cJSON_AddNumberToObject(usage, "completion_tokens", (double)c->completion_tokens);
	if (c->err_code[0]) {
		error = cJSON_CreateObject();
		cJSON_AddStringToObject(error, "code", c->err_code);
		cJSON_AddStringToObject(error, "message", c->err_msg);
		er = mk_json_print(error);
	}
	ct = mk_json_print(content);
	us = mk_json_print(usage);
	{
		/* The whole response rides in steps so history shows charts again. */
		char *all = mk_json_print(steps);

		if (db && ct && all && us &&
		    llm_message_add(db, c->chat_id, "assistant", ct, NULL, all, us, er,
		                    llm_tokens_estimate(c->story.data ? c->story.data : ""), id,
		                    err, sizeof(err)) != 0) {
			MK_WARN("LLM-TURN-SAVE", c->rid, "the answer was not saved: %s", err);
			id[0] = '\0';
		}
		free(all);
	}
	free(ct);
	free(us);
	free(er);
	cJSON_Delete(content);
	cJSON_Delete(steps);
	cJSON_Delete(usage);
	cJSON_Delete(error);
	return mark_response(c, id[0] ? id : NULL);
}

static void ctx_free(turn_ctx *c)
{
	mk_buf_release(&c->story);
	cJSON_Delete(c->steps);
	cJSON_Delete(c->tables);
	cJSON_Delete(c->figures);
	cJSON_Delete(c->artifacts);
	cJSON_Delete(c->attachments);
	free(c->question);
	free(c);
}

/* Everything after the question is saved. Returns the MarkResponse. */
static cJSON *conduct(turn_ctx *c)
{
	char err[256] = "";
	PGconn *db = mk_db_acquire(c->l->svc.db, 10000, err, sizeof(err));
	cJSON *resp;

	if (!c->l->provider) {
		fail(c, "model_not_configured",
		     "I can't answer yet: no language model is configured for Mark.\n\n"
		     "To set one up, start the llm service with `LLM_MODEL` (and, as needed, "
		     "`LLM_BASE_URL` and `LLM_API_KEY`). For example:\n\n"
		     "- OpenAI: `LLM_MODEL=gpt-4o-mini LLM_API_KEY=sk-...`\n"
		     "- Ollama: `LLM_BASE_URL=http://localhost:11434/v1 LLM_MODEL=qwen2.5`\n"
		     "- Anthropic: `LLM_PROVIDER=anthropic LLM_MODEL=claude-sonnet-4-5 "
		     "LLM_API_KEY=sk-ant-...`\n\n"
		     "Your question is saved in this chat; ask again once a model is set up.",
		     "no model is configured (LLM_MODEL is not set)");
	} else if (!db) {
		fail(c, "database_error", "I could not reach my database, so I stopped.", err);
	} else {
		run_loop(c, db);
	}
	resp = finish(c, db);
	if (db)
		mk_db_release(c->l->svc.db, db);
	return resp;
}

static void *turn_main(void *arg)
{
	turn_ctx *c = arg;
	cJSON *resp = conduct(c);

	emit(c, "final", resp);
	llm_stream_close(c->l, c->t);
	ctx_free(c);
	return NULL;
}

/* A chat title from the first question: its first line, cut at a word. */
static char *title_of(const char *q)
{
	char t[81];
	size_t n = 0;

	while (*q == ' ' || *q == '\n' || *q == '\t')
		q++;
	while (q[n] && q[n] != '\n' && n < 80)
		n++;
	memcpy(t, q, n);
	t[n] = '\0';
	if (q[n] && q[n] != '\n') {
		char *sp = strrchr(t, ' ');

		if (sp && sp - t > 40)
			*sp = '\0';
	}
	mk_utf8_clip(t);
	return strdup(t[0] ? t : "New chat");
}

/* exec.attach every file id of the request; 0, or -1 with *e and err. */
/*
 * Every attachment is one of the caller's uploads: checked before a chat is
 * created or anything saved, so a bad id leaves nothing behind. 0, or -1
 * with *e and err.
 */
static int attachments_check(turn_ctx *c, char *err, size_t errlen, mk_err *e)
{
	const cJSON *id;

	cJSON_ArrayForEach(id, c->attachments_in)
	{
		cJSON *body;
		mk_rpc_result res;

		if (!cJSON_IsString(id)) {
			mk_errf(err, errlen, "'attachments' must be file ids");
			*e = MK_E_VALIDATION;
			return -1;
		}
		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "file_id", id->valuestring);
		mk_rpc_call(c->l->executor, MK_OP_EXEC_UPLOAD_GET, c->rid, &c->caller, body, 10000,
		            &res);
		cJSON_Delete(body);
		if (res.err != MK_OK) {
			mk_errf(err, errlen, "%s", res.msg);
			*e = res.err;
			mk_rpc_result_release(&res);
			return -1;
		}
		mk_rpc_result_release(&res);
	}
	return 0;
}

static int attach_all(turn_ctx *c, char *err, size_t errlen, mk_err *e)
{
	const cJSON *id;

	c->attachments = cJSON_CreateArray();
	/* attachments_check has seen every id to be a string. */
	cJSON_ArrayForEach(id, c->attachments_in)
	{
		cJSON *body, *a;
		mk_rpc_result res;

		body = cJSON_CreateObject();
		cJSON_AddStringToObject(body, "chat_id", c->chat_id);
		cJSON_AddStringToObject(body, "file_id", id->valuestring);
		mk_rpc_call(c->l->executor, MK_OP_EXEC_ATTACH, c->rid, &c->caller, body, 60000,
		            &res);
		cJSON_Delete(body);
		if (res.err != MK_OK) {
			mk_errf(err, errlen, "%s", res.msg);
			*e = res.err;
			mk_rpc_result_release(&res);
			return -1;
		}
		a = cJSON_Duplicate(res.body, 1);
		cJSON_AddStringToObject(a, "file_id", id->valuestring);
		cJSON_AddItemToArray(c->attachments, a);
		mk_rpc_result_release(&res);
	}
	return 0;
}

/* Python that summarises files as tables (row count, dtypes, head), defining nothing. */
static const char describe_py[] =
    "def __mark_describe(path, kind):\n"
    "    import pandas as pd\n"
    "    if kind == 'excel':\n"
    "        df = pd.read_excel(path)\n"
    "    elif kind == 'parquet':\n"
    "        df = pd.read_parquet(path)\n"
    "    elif kind == 'json':\n"
    "        try:\n"
    "            df = pd.read_json(path)\n"
    "        except ValueError:\n"
    "            df = pd.read_json(path, lines=True)\n"
    "    elif kind == 'tsv':\n"
    "        df = pd.read_csv(path, sep='\\t')\n"
    "    else:\n"
    "        df = pd.read_csv(path, sep=None, engine='python')\n"
    "    print(f'File {path!r} ({kind}): {len(df)} rows, {len(df.columns)} columns')\n"
    "    print('dtypes:')\n"
    "    print(df.dtypes.to_string())\n"
    "    print('first rows:')\n"
    "    print(df.head(5).to_string(max_colwidth=40))\n"
    "for __p, __k in __mark_files:\n"
    "    try:\n"
    "        __mark_describe(__p, __k)\n"
    "    except Exception as __e:\n"
    "        print(f'File {__p!r}: not readable as a table ({type(__e).__name__}: {__e})')\n"
    "del __mark_describe, __mark_files\n";

/* What the attached files hold, computed in the chat's sandbox; NULL when there are none. */
static char *describe_attachments(turn_ctx *c)
{
	mk_buf code;
	cJSON *body, *list;
	const cJSON *a;
	mk_rpc_result res;
	char *out = NULL, *lj;

	if (!c->attachments || cJSON_GetArraySize(c->attachments) == 0)
		return NULL;
	list = cJSON_CreateArray();
	cJSON_ArrayForEach(a, c->attachments)
	{
		cJSON *pair = cJSON_CreateArray();

		cJSON_AddItemToArray(pair, cJSON_CreateString(mk_json_str(a, "path")));
		cJSON_AddItemToArray(
		    pair,
		    cJSON_CreateString(mk_json_str(a, "kind") ? mk_json_str(a, "kind") : "csv"));
		cJSON_AddItemToArray(list, pair);
	}
	lj = mk_json_print(list);
	cJSON_Delete(list);
	mk_buf_init(&code, 0);
	mk_buf_printf(&code, "__mark_files = %s\n%s", lj ? lj : "[]", describe_py);
	free(lj);
	body = cJSON_CreateObject();
	cJSON_AddStringToObject(body, "chat_id", c->chat_id);
	cJSON_AddStringToObject(body, "code", code.data ? code.data : "");
	cJSON_AddNumberToObject(body, "timeout_ms", 60000);
	mk_rpc_call(c->l->executor, MK_OP_EXEC_RUN, c->rid, &c->caller, body, 70000, &res);
	cJSON_Delete(body);
	mk_buf_release(&code);
	if (res.err == MK_OK && mk_json_str(res.body, "stdout")) {
		mk_buf b;

		mk_buf_init(&b, 0);
		clip_into(&b, "The user attached these files (now in the workspace)",
		          mk_json_str(res.body, "stdout"), (size_t)c->l->cfg->tool_output_max);
		out = mk_buf_steal(&b);
	}
	mk_rpc_result_release(&res);
	return out;
}

mk_err llm_turn(LLM_HANDLER_ARGS)
{
	const char *chat = mk_json_str(req->body, "chat_id");
	const char *q = mk_json_str(req->body, "message");
	int stream = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(req->body, "stream"));
	turn_ctx *c;
	PGconn *db;
	PGresult *r;
	char *content = NULL, *atts;
	cJSON *parts, *part;
	mk_err e = MK_OK;
	int rc;

	if (!req->caller.user_id[0]) {
		mk_errf(err, errlen, "a chat turn needs a signed-in user");
		return MK_E_UNAUTHENTICATED;
	}
	if ((long long)strlen(q) > l->cfg->message_max) {
		mk_errf(err, errlen, "the question is longer than %lld bytes", l->cfg->message_max);
		return MK_E_TOO_LARGE;
	}
	if (chat && !llm_uuid_valid(chat)) {
		mk_errf(err, errlen, "no chat '%s'", chat);
		return MK_E_NOT_FOUND;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return MK_E_INTERNAL;
	c->l = l;
	snprintf(c->rid, sizeof(c->rid), "%s", req->rid);
	c->caller = req->caller;
	c->question = strdup(q);
	mk_buf_init(&c->story, 1 << 20);
	c->steps = cJSON_CreateArray();
	c->tables = cJSON_CreateArray();
	c->figures = cJSON_CreateArray();
	c->artifacts = cJSON_CreateArray();
	c->deadline = mk_mono_ms() + l->cfg->turn_timeout_ms;
	c->attachments_in = cJSON_GetObjectItemCaseSensitive(req->body, "attachments");
	db = mk_svc_db_acquire(&l->svc, req, err, errlen);
	if (!db) {
		ctx_free(c);
		return MK_E_DB;
	}
	if (c->attachments_in && attachments_check(c, err, errlen, &e) != 0)
		goto out;
	/* 1. The chat: the caller's own, or a new one titled after the question. */
	if (chat) {
		const char *p[2] = {chat, req->caller.user_id};

		r = mk_db_exec_prep(
		    db, "SELECT 1 FROM chats WHERE id = $1::uuid AND owner_id = $2::uuid", 2, p,
		    err, errlen, NULL);
		if (!r) {
			e = MK_E_DB;
			goto out;
		}
		if (PQntuples(r) == 0) {
			PQclear(r);
			mk_errf(err, errlen, "no chat '%s'", chat);
			e = MK_E_NOT_FOUND;
			goto out;
		}
		PQclear(r);
		snprintf(c->chat_id, sizeof(c->chat_id), "%s", chat);
	} else {
		char *title = title_of(q);
		const char *p[2] = {req->caller.user_id, title};

		r = mk_db_exec_prep(
		    db, "INSERT INTO chats (owner_id, title) VALUES ($1::uuid, $2) RETURNING id", 2,
		    p, err, errlen, NULL);
		free(title);
		if (!r) {
			e = MK_E_DB;
			goto out;
		}
		snprintf(c->chat_id, sizeof(c->chat_id), "%s", PQgetvalue(r, 0, 0));
		PQclear(r);
	}
	/* Attached uploads go into the chat's workspace first: a bad one fails the request. */
	if (c->attachments_in && attach_all(c, err, errlen, &e) != 0)
		goto out;
	/* 2. The question, saved before anything can fail. */
	parts = cJSON_CreateArray();
	part = cJSON_CreateObject();
	cJSON_AddStringToObject(part, "type", "text");
	cJSON_AddStringToObject(part, "text", q);
	cJSON_AddItemToArray(parts, part);
	content = mk_json_print(parts);
	cJSON_Delete(parts);
	atts = c->attachments ? mk_json_print(c->attachments) : NULL;
	rc = content ? llm_message_add(db, c->chat_id, "user", content, atts, NULL, NULL, NULL,
	                               llm_tokens_estimate(q), c->user_msg_id, err, errlen)
	             : -1;
	free(atts);
	c->attachments_in = NULL;
	if (rc != 0) {
		e = MK_E_DB;
		goto out;
	}
	if (stream) {
		pthread_t th;
		pthread_attr_t at;
		cJSON *d;
		/* Registered before the reply: any replica can serve its events from now on. */
		llm_stream *t =
		    llm_stream_open(l, db, req->caller.user_id, c->chat_id, err, errlen);

		mk_db_release(l->svc.db, db);
		db = NULL;
		if (!t) {
			e = MK_E_DB;
			goto out;
		}
		c->t = t;
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "turn_id", llm_stream_id(t));
		cJSON_AddStringToObject(d, "chat_id", c->chat_id);
		cJSON_AddStringToObject(d, "question_id", c->user_msg_id);
		emit(c, "turn_started", d);
		*reply = cJSON_CreateObject();
		cJSON_AddStringToObject(*reply, "turn_id", llm_stream_id(t));
		cJSON_AddStringToObject(*reply, "chat_id", c->chat_id);
		cJSON_AddStringToObject(*reply, "question_id", c->user_msg_id);
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, turn_main, c) != 0) {
			/* No thread: finish here, so the client still gets its final event. */
			turn_main(c);
		}
		pthread_attr_destroy(&at);
		free(content);
		return MK_OK;
	}
	mk_db_release(l->svc.db, db);
	db = NULL;
	*reply = conduct(c);
out:
	if (db)
		mk_db_release(l->svc.db, db);
	free(content);
	ctx_free(c);
	return e;
}
