/*
 * llm_service.c - the llm process's life: open the database and apply its
 * migrations, serve the chat.* ops over NNG, stop.
 */
#include <stdio.h>
#include <stdlib.h>

#include <sodium.h>

#include "llm.h"
#include "mk_httpc.h"
#include "mk_log.h"

static mk_err handle(void *ud, const mk_env *req, cJSON **reply, char *err, size_t errlen)
{
	llm *l = ud;

	switch (req->op) {
	case MK_OP_CHAT_CREATE: return llm_chat_create(l, req, reply, err, errlen);
	case MK_OP_CHAT_LIST: return llm_chat_list(l, req, reply, err, errlen);
	case MK_OP_CHAT_GET: return llm_chat_get(l, req, reply, err, errlen);
	case MK_OP_CHAT_UPDATE: return llm_chat_update(l, req, reply, err, errlen);
	case MK_OP_CHAT_DELETE: return llm_chat_delete(l, req, reply, err, errlen);
	case MK_OP_CHAT_MESSAGES: return llm_chat_messages(l, req, reply, err, errlen);
	case MK_OP_CHAT_TURN: return llm_turn(l, req, reply, err, errlen);
	case MK_OP_CHAT_TURN_EVENTS: return llm_turn_events(l, req, reply, err, errlen);
	case MK_OP_CHAT_FEEDBACK: return llm_chat_feedback(l, req, reply, err, errlen);
	case MK_OP_CHAT_USAGE: return llm_chat_usage(l, req, reply, err, errlen);
	default:
		snprintf(err, errlen, "operation '%s' is not served by 'llm'", mk_op_name(req->op));
		return MK_E_UNKNOWN_OP;
	}
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const llm_config *cfg = cfgp;
	llm *l = calloc(1, sizeof(*l));

	*out = l;
	if (!l || sodium_init() < 0) {
		snprintf(err, errlen, "cannot initialise");
		return -1;
	}
	l->cfg = cfg;
	if (mk_httpc_global_init() != 0) {
		snprintf(err, errlen, "cannot initialise libcurl");
		return -1;
	}
	if (cfg->model && cfg->model[0]) {
		llm_provider_cfg pc = {
		    .kind = cfg->provider,
		    .base_url = cfg->base_url,
		    .api_key = cfg->api_key,
		    .model = cfg->model,
		    .extra_headers = cfg->extra_headers,
		    .azure_api_version = cfg->azure_api_version,
		    .connect_timeout_ms = (int)cfg->connect_timeout_ms,
		    .first_byte_timeout_ms = (int)cfg->first_byte_timeout_ms,
		    .idle_timeout_ms = (int)cfg->idle_timeout_ms,
		    .max_retries = (int)cfg->max_retries,
		    .max_response = (size_t)cfg->max_response,
		};

		l->provider = llm_provider_new(&pc, err, errlen);
		if (!l->provider)
			return -1;
		MK_INFO("LLM-MODEL", NULL, "model '%s' through the %s API", cfg->model,
		        cfg->provider);
	} else {
		MK_WARN("LLM-NO-MODEL", NULL,
		        "no model configured (set LLM_MODEL, and LLM_BASE_URL / LLM_API_KEY as "
		        "needed): chat turns will explain how to configure one");
	}
	l->def = (mk_svc_def){
	    .name = "llm",
	    .schema = "chat",
	    .migrations = llm_migrations,
	    .nmigrations = llm_migrations_count,
	    .handler = handle,
	    .ud = l,
	};
	if (mk_svc_open_db(&l->svc, &l->def, &cfg->svc, err, errlen) != 0)
		return -1;
	/* The executor, for the code a turn runs (connects when it comes up). */
	l->executor = mk_rpc_client_new(cfg->executor_url, 256u << 20, err, errlen);
	if (!l->executor || llm_turns_init(l, err, errlen) != 0)
		return -1;
	return mk_svc_serve(&l->svc, &l->def, err, errlen);
}

static void stop(void *p)
{
	llm *l = p;

	if (!l)
		return;
	mk_svc_stop(&l->svc);
	if (l->svc.rpc)
		return; /* handlers still running hold l; the process is exiting */
	if (l->turns && llm_turns_wait(l, (int)l->cfg->svc.grace_ms) > 0)
		return; /* streamed turns still running hold l; the process is exiting */
	llm_turns_free(l);
	mk_rpc_client_free(l->executor);
	llm_provider_free(l->provider);
	mk_httpc_global_cleanup();
	free(l);
}

const mk_svc_app llm_app = {
    .name = "llm",
    .vars = llm_config_vars,
    .nvars = &llm_config_nvars,
    .log_level_offset = offsetof(llm_config, svc.log_level),
    .listen_offset = offsetof(llm_config, svc.listen),
    .start = start,
    .stop = stop,
};
