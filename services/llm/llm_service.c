/*
 * llm_service.c - the llm process's life: open the database and apply its
 * migrations, serve the chat.* ops over NNG, stop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

extern const char llm_prompt_system[];

/* The system prompt: LLM_PROMPTS_DIR/system.md when set, else the copy built in. */
static int load_prompt(llm *l, char *err, size_t errlen)
{
	unsigned char h[16];
	char path[1100];
	FILE *f;
	long n;

	if (!l->cfg->prompts_dir || !l->cfg->prompts_dir[0]) {
		l->system_prompt = strdup(llm_prompt_system);
	} else {
		snprintf(path, sizeof(path), "%s/system.md", l->cfg->prompts_dir);
		f = fopen(path, "rb");
		if (!f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 1 || n > (256 << 10) ||
		    fseek(f, 0, SEEK_SET) != 0 || !(l->system_prompt = calloc(1, (size_t)n + 1)) ||
		    fread(l->system_prompt, 1, (size_t)n, f) != (size_t)n) {
			mk_errf(err, errlen,
			        "cannot read the system prompt '%s' (1 byte to 256 KiB)", path);
			if (f)
				fclose(f);
			return -1;
		}
		fclose(f);
	}
	if (!l->system_prompt) {
		mk_errf(err, errlen, "out of memory");
		return -1;
	}
	/* Which prompt answered is in the log, by a short hash of its text. */
	crypto_generichash(h, sizeof(h), (const unsigned char *)l->system_prompt,
	                   strlen(l->system_prompt), NULL, 0);
	MK_INFO("LLM-PROMPT", NULL, "system prompt %s (%zu bytes, %02x%02x%02x%02x)",
	        l->cfg->prompts_dir && l->cfg->prompts_dir[0] ? path : "built in",
	        strlen(l->system_prompt), h[0], h[1], h[2], h[3]);
	return 0;
}

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const llm_config *cfg = cfgp;
	llm *l = calloc(1, sizeof(*l));
	const mk_seal_key *key;

	*out = l;
	if (!l || sodium_init() < 0) {
		snprintf(err, errlen, "cannot initialise");
		return -1;
	}
	l->cfg = cfg;
	if (load_prompt(l, err, errlen) != 0)
		return -1;
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
	    .ping = llm_turns_ping,
	};
	if (mk_svc_open_db(&l->svc, &l->def, &cfg->svc, err, errlen) != 0)
		return -1;
	/* The executor, for the code a turn runs (connects when it comes up). */
	if (!(key = mk_svc_key(&l->svc, "llm", err, errlen)))
		return -1;
	l->executor = mk_rpc_client_new(cfg->executor_url, 256u << 20, key, err, errlen);
	l->metadata = mk_rpc_client_new(cfg->metadata_url, 256u << 20, key, err, errlen);
	if (!l->executor || !l->metadata || llm_turns_init(l, err, errlen) != 0)
		return -1;
	llm_metrics_init();
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
	mk_rpc_client_free(l->metadata);
	llm_provider_free(l->provider);
	free(l->system_prompt);
	mk_httpc_global_cleanup();
	free(l);
}

/* --migrate: schema 'chat' only, then exit. */
static int migrate(const void *cfgp, char *err, size_t errlen)
{
	const mk_svc_def def = {
	    .name = "llm",
	    .schema = "chat",
	    .migrations = llm_migrations,
	    .nmigrations = llm_migrations_count,
	};

	return mk_svc_migrate(&def, &((const llm_config *)cfgp)->svc, err, errlen);
}

const mk_svc_app llm_app = {
    .name = "llm",
    .vars = llm_config_vars,
    .nvars = &llm_config_nvars,
    .log_level_offset = offsetof(llm_config, svc.log_level),
    .log_format_offset = offsetof(llm_config, svc.log_format),
    .listen_offset = offsetof(llm_config, svc.listen),
    .bus_key_offset = offsetof(llm_config, svc.bus_key_file),
    .start = start,
    .stop = stop,
    .migrate = migrate,
};
