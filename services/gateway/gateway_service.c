/*
 * gateway_service.c - the gateway process's life: dial every service,
 * serve HTTP, stop.
 */
#include <stdio.h>
#include <stdlib.h>

#include <sodium.h>

#include "gateway.h"

static int start(const void *cfgp, void **out, char *err, size_t errlen)
{
	const gateway_config *cfg = cfgp;
	const char *urls[GW_NSERVICES] = {cfg->auth_url, cfg->llm_url, cfg->executor_url,
	                                  cfg->metadata_url};
	gateway *gw = calloc(1, sizeof(*gw));
	mk_seal_key key;
	int i;

	*out = gw;
	if (!gw) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	gw->cfg = cfg;
	if (sodium_init() < 0 || gw_token_cache_new(gw) != 0) {
		snprintf(err, errlen, "cannot initialise the token cache");
		return -1;
	}
	if (gw_auth_keys_load(gw, err, errlen) != 0 ||
	    mk_seal_key_load(&key, cfg->bus_key_file, "GATEWAY_BUS_KEY_FILE", err, errlen) != 0)
		return -1;
	for (i = 0; i < GW_NSERVICES; i++) {
		gw->svc[i] = mk_rpc_client_new(urls[i], 64 << 20, &key, err, errlen);
		if (!gw->svc[i])
			return -1;
	}
	sodium_memzero(&key, sizeof(key));
	return gw_http_start(gw, err, errlen);
}

static void stop(void *p)
{
	gateway *gw = p;
	int i;

	if (!gw)
		return;
	gw_http_stop(gw);
	gw_metrics_stop(gw);
	for (i = 0; i < GW_NSERVICES; i++)
		mk_rpc_client_free(gw->svc[i]);
	gw_auth_keys_free(gw);
	gw_token_cache_free(gw);
	free(gw);
}

const mk_svc_app gateway_app = {
    .name = "gateway",
    .vars = gateway_config_vars,
    .nvars = &gateway_config_nvars,
    .log_level_offset = offsetof(gateway_config, log_level),
    .log_format_offset = offsetof(gateway_config, log_format),
    .start = start,
    .stop = stop,
};
