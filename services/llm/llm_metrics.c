/*
 * llm_metrics.c - the llm service's own metrics, by provider (the
 * LLM_PROVIDER kind: openai, anthropic):
 *
 *   mark_llm_calls_total{provider,outcome}     model calls; outcome "ok" or the
 *                                              failure's code (model_rate_limited, ...)
 *   mark_llm_tokens_total{provider,type}       tokens the provider reported, prompt
 *                                              and completion
 *   mark_llm_call_duration_seconds{provider}   how long each call took, retries included
 */
#include <pthread.h>
#include <string.h>

#include "llm.h"
#include "mk_metrics.h"

static const char *const providers[] = {"openai", "anthropic", "other"};
#define NPROVIDERS 3
#define NOUTCOMES  ((int)LLM_E_ABORTED + 1)

static const char *provider_value(int i)
{
	return providers[i];
}

static const char *outcome_value(int i)
{
	return llm_status_code((llm_status)i);
}

static const char *type_value(int i)
{
	return i == 0 ? "prompt" : "completion";
}

#define PROVIDER_LABEL                                                                             \
	{                                                                                          \
		.name = "provider", .n = NPROVIDERS, .value = provider_value                       \
	}

static mk_metric calls = {
    .name = "mark_llm_calls_total",
    .help = "model calls by provider and outcome (ok or the failure's code)",
    .type = MK_METRIC_COUNTER,
    .nlabels = 2,
    .labels = {PROVIDER_LABEL, {.name = "outcome", .n = NOUTCOMES, .value = outcome_value}}};
static mk_metric tokens = {
    .name = "mark_llm_tokens_total",
    .help = "tokens reported by the provider, prompt and completion",
    .type = MK_METRIC_COUNTER,
    .nlabels = 2,
    .labels = {PROVIDER_LABEL, {.name = "type", .n = 2, .value = type_value}}};
static const double call_buckets[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300};
static mk_metric call_time = {.name = "mark_llm_call_duration_seconds",
                              .help = "duration of model calls, retries included",
                              .type = MK_METRIC_HISTOGRAM,
                              .nlabels = 1,
                              .labels = {PROVIDER_LABEL},
                              .buckets = call_buckets,
                              .nbuckets = (int)(sizeof(call_buckets) / sizeof(call_buckets[0]))};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
	mk_metric_register(&calls);
	mk_metric_register(&tokens);
	mk_metric_register(&call_time);
}

void llm_metrics_init(void)
{
	pthread_once(&once, init);
}

void llm_metrics_model_call(const char *provider, llm_status st, const llm_response *r,
                            double seconds)
{
	int p = NPROVIDERS - 1, i;

	for (i = 0; provider && i < NPROVIDERS - 1; i++)
		if (strcmp(provider, providers[i]) == 0)
			p = i;
	mk_metric_add(&calls, p, (int)st, 1);
	if (r->prompt_tokens > 0)
		mk_metric_add(&tokens, p, 0, r->prompt_tokens);
	if (r->completion_tokens > 0)
		mk_metric_add(&tokens, p, 1, r->completion_tokens);
	mk_metric_observe(&call_time, p, 0, seconds);
}
