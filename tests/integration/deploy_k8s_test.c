/*
 * deploy_k8s_test.c - the Kubernetes manifests as a cluster would take
 * them: both overlays (deploy/k8s/overlays/local and production) build
 * with `kubectl kustomize`, and every object (with the Secret
 * placeholders) is valid against the
 * Kubernetes OpenAPI schemas (kubernetes-models from the npm registry,
 * pinned in tests/deploy/k8s), each service's Secret reaches only its
 * owner, the bus key every Mark workload, and every workload sets
 * resources and a readiness probe. The same check run on manifests broken
 * on purpose fails, naming what is wrong.
 *
 * Needs node, npm and kubectl (Debian's kubernetes-client); a missing one
 * fails the test: it is never skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mt.h"
#include "mt_check.h"
#include "mt_double.h"

#define DIR "tests/deploy/k8s"

static char built[600], built_prod[600];

/* Run the check on files; its output into *out. The exit status. */
static int check(const char *files, char **out)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "node " DIR "/check.mjs %s 2>&1", files);
	return mt_sh(cmd, out);
}

static void setup(void)
{
	static const char *const packages[] = {"kubernetes-models", "yaml", NULL};
	char err[1024], cmd[2048], *out = NULL;
	int st;

	ck_assert_msg(
	    mt_sdk_ready(DIR, packages, "the Kubernetes manifest check", 18, err, sizeof(err)) == 0,
	    "%s", err);
	snprintf(built, sizeof(built), "%s.k8s-local-%d.yaml", mt_bus_key_file(), (int)getpid());
	snprintf(built_prod, sizeof(built_prod), "%s.k8s-prod-%d.yaml", mt_bus_key_file(),
	         (int)getpid());
	snprintf(cmd, sizeof(cmd),
	         "kubectl kustomize deploy/k8s/overlays/local > '%s' 2>'%s.err' || "
	         "{ cat '%s.err'; exit 1; }",
	         built, built, built);
	st = mt_sh(cmd, &out);
	ck_assert_msg(st == 0,
	              "kubectl kustomize of the local overlay failed (is kubectl installed?): %s",
	              out);
	free(out);
	snprintf(cmd, sizeof(cmd),
	         "kubectl kustomize deploy/k8s/overlays/production > '%s' 2>'%s.err' || "
	         "{ cat '%s.err'; exit 1; }",
	         built_prod, built_prod, built_prod);
	st = mt_sh(cmd, &out);
	ck_assert_msg(st == 0, "kubectl kustomize of the production overlay failed: %s", out);
	free(out);
}

START_TEST(test_the_manifests_are_valid_and_each_secret_reaches_only_its_owner)
{
	char files[4096], *out = NULL;
	int st;

	/* Each overlay on its own, the Secret placeholders with the local one. */
	snprintf(files, sizeof(files), "'%s' deploy/k8s/base/secrets.example.yaml", built);
	st = check(files, &out);
	ck_assert_msg(st == 0, "%s", out);
	ck_assert_ptr_nonnull(strstr(out, "ok schemas"));
	ck_assert_ptr_nonnull(strstr(out, "ok secrets"));
	ck_assert_ptr_nonnull(strstr(out, "ok workloads"));
	free(out);
	snprintf(files, sizeof(files), "'%s'", built_prod);
	st = check(files, &out);
	ck_assert_msg(st == 0, "%s", out);
	free(out);
	/* The overlays differ where they should: the sandbox backend, and the worker's hardening.
	 */
	snprintf(
	    files, sizeof(files),
	    "grep -q 'EXECUTOR_BACKEND: local' '%s' && grep -q 'EXECUTOR_BACKEND: daytona' '%s' "
	    "&& grep -q 'procMount: Unmasked' '%s' && ! grep -q 'procMount' '%s'",
	    built, built_prod, built, built_prod);
	ck_assert_int_eq(mt_sh(files, &out), 0);
	free(out);
}
END_TEST

/* The built manifests with one sed edit, checked: its output (caller frees). */
static char *check_broken(const char *sed, int *status)
{
	char cmd[2048], broken[700], *out = NULL;

	snprintf(broken, sizeof(broken), "%s.broken", built);
	snprintf(cmd, sizeof(cmd), "sed %s '%s' > '%s'", sed, built, broken);
	ck_assert_int_eq(mt_sh(cmd, &out), 0);
	free(out);
	snprintf(cmd, sizeof(cmd), "'%s'", broken);
	*status = check(cmd, &out);
	return out;
}

START_TEST(test_the_check_fails_on_an_invalid_object_and_on_a_secret_given_to_another)
{
	int st;
	char *out;

	/* A field of the wrong type. */
	out = check_broken("-e 's/minAvailable: 1/minAvailable: [one]/'", &st);
	ck_assert_msg(st != 0 && strstr(out, "FAIL") && strstr(out, "PodDisruptionBudget"), "%s",
	              out);
	free(out);
	/* llm given auth's secret (the name of the Secret its key comes from). */
	out = check_broken("-e '/name: LLM_DATABASE_URL/,/name: llm-secrets/ s/name: llm-secrets/"
	                   "name: auth-secrets/'",
	                   &st);
	ck_assert_msg(st != 0 && strstr(out, "secret auth-secrets reaches llm"), "%s", out);
	free(out);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("deploy_k8s");
	TCase *tc = tcase_create("k8s");

	tcase_set_timeout(tc, 600);
	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_the_manifests_are_valid_and_each_secret_reaches_only_its_owner);
	tcase_add_test(tc,
	               test_the_check_fails_on_an_invalid_object_and_on_a_secret_given_to_another);
	suite_add_tcase(s, tc);
	return mt_check_main(s, 0);
}
