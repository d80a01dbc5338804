/*
 * mk_cfg.c - typed configuration from environment variables (see
 * mk_cfg.h). This is the only module that reads the environment.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mk_buf.h"
#include "mk_cfg.h"
#include "mk_log.h"

static const char *env_get(const char *name, void *ud)
{
	(void)ud;
	return getenv(name);
}

static const char *type_name(mk_cfg_type t)
{
	switch (t) {
	case MK_CFG_STR: return "string";
	case MK_CFG_INT: return "integer";
	case MK_CFG_BOOL: return "bool";
	case MK_CFG_SIZE: return "size";
	case MK_CFG_DURATION: return "duration";
	case MK_CFG_ENUM: return "enum";
	}
	return "?";
}

/* Parse a whole decimal integer with an optional suffix; *suffix gets the rest. */
static int parse_num(const char *s, long long *out, const char **suffix)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s) && *s != '-')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -1;
	*out = v;
	*suffix = end;
	return 0;
}

static int mul_ok(long long v, long long m, long long *out)
{
	if (v != 0 && (v > LLONG_MAX / m || v < -LLONG_MAX / m))
		return -1;
	*out = v * m;
	return 0;
}

static int parse_size(const char *s, long long *out)
{
	const char *suf;
	long long v, m = 1;

	if (parse_num(s, &v, &suf) != 0)
		return -1;
	if (*suf == 'K' || *suf == 'k')
		m = 1024LL;
	else if (*suf == 'M' || *suf == 'm')
		m = 1024LL * 1024;
	else if (*suf == 'G' || *suf == 'g')
		m = 1024LL * 1024 * 1024;
	else if (*suf)
		return -1;
	if (*suf && suf[1] != '\0' && strcasecmp(suf + 1, "b") != 0 &&
	    strcasecmp(suf + 1, "ib") != 0)
		return -1;
	return mul_ok(v, m, out);
}

static int parse_duration(const char *s, long long *out)
{
	const char *suf;
	long long v, m;

	if (parse_num(s, &v, &suf) != 0)
		return -1;
	if (*suf == '\0' || strcmp(suf, "ms") == 0)
		m = 1;
	else if (strcmp(suf, "s") == 0)
		m = 1000;
	else if (strcmp(suf, "m") == 0)
		m = 60 * 1000;
	else if (strcmp(suf, "h") == 0)
		m = 3600 * 1000;
	else
		return -1;
	return mul_ok(v, m, out);
}

static int parse_bool(const char *s, int *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* Is word one of the '|'-separated choices? */
static int enum_has(const char *choices, const char *word)
{
	size_t wl = strlen(word);
	const char *p = choices;

	while (p && *p) {
		const char *bar = strchr(p, '|');
		size_t n = bar ? (size_t)(bar - p) : strlen(p);

		if (n == wl && strncmp(p, word, n) == 0)
			return 1;
		p = bar ? bar + 1 : NULL;
	}
	return 0;
}

/* Parse one value into its slot; on a problem append one line to errs. */
static int load_one(const mk_cfg_var *v, const char *val, int from_env, void *out, mk_buf *errs)
{
	char *slot = (char *)out + v->offset;
	const char *shown = v->secret ? "(secret)" : val;
	const char *rest = "";
	long long n = 0;
	int b;

	if (v->type == MK_CFG_STR || v->type == MK_CFG_ENUM) {
		size_t len = strlen(val);
		char *copy;

		if (v->type == MK_CFG_ENUM && !enum_has(v->choices, val)) {
			mk_buf_printf(errs, "%s: '%s' is not one of %s\n", v->name, shown,
			              v->choices);
			return -1;
		}
		if ((long long)len < v->min || (v->max > 0 && (long long)len > v->max)) {
			mk_buf_printf(errs, "%s: length %zu is outside %lld..%lld\n", v->name, len,
			              v->min, v->max);
			return -1;
		}
		copy = len ? strdup(val) : NULL;
		if (len && !copy) {
			mk_buf_printf(errs, "%s: out of memory\n", v->name);
			return -1;
		}
		*(char **)slot = copy;
		return 0;
	}
	if (v->type == MK_CFG_BOOL) {
		if (parse_bool(val, &b) != 0) {
			mk_buf_printf(errs,
			              "%s: '%s' is not a bool (true/false, 1/0, yes/no, on/off)\n",
			              v->name, shown);
			return -1;
		}
		*(int *)slot = b;
		return 0;
	}
	if ((v->type == MK_CFG_INT && (parse_num(val, &n, &rest) != 0 || *rest != '\0' ||
	                               strspn(val, "-0123456789") != strlen(val))) ||
	    (v->type == MK_CFG_SIZE && parse_size(val, &n) != 0) ||
	    (v->type == MK_CFG_DURATION && parse_duration(val, &n) != 0)) {
		mk_buf_printf(errs, "%s: '%s' is not a valid %s%s\n", v->name, shown,
		              type_name(v->type),
		              v->type == MK_CFG_SIZE       ? " (bytes, or with K, M or G)"
		              : v->type == MK_CFG_DURATION ? " (ms, or with ms, s, m or h)"
		                                           : "");
		return -1;
	}
	if (n < v->min || n > v->max) {
		mk_buf_printf(errs, "%s: %s%lld is %s the %s %lld\n", v->name,
		              from_env ? "" : "default ", n, n < v->min ? "below" : "above",
		              n < v->min ? "minimum" : "maximum", n < v->min ? v->min : v->max);
		return -1;
	}
	*(long long *)slot = n;
	return 0;
}

int mk_cfg_load(const mk_cfg_var *vars, size_t n, void *out, mk_cfg_getter get, void *ud,
                char **errors)
{
	mk_buf errs;
	size_t i;
	int bad = 0;

	mk_buf_init(&errs, 64 * 1024);
	if (!get)
		get = env_get;
	for (i = 0; i < n; i++) {
		const mk_cfg_var *v = &vars[i];
		const char *val = get(v->name, ud);
		int from_env = val && *val;

		if (v->type == MK_CFG_STR || v->type == MK_CFG_ENUM)
			*(char **)((char *)out + v->offset) = NULL;
		if (!from_env)
			val = v->def;
		if (!val || !*val) {
			if (v->required) {
				mk_buf_printf(&errs, "%s: required but not set (%s)\n", v->name,
				              v->help);
				bad++;
			} else if (v->type != MK_CFG_STR) {
				mk_buf_printf(&errs, "%s: has no value and no default\n", v->name);
				bad++;
			}
			continue;
		}
		if (load_one(v, val, from_env, out, &errs) != 0)
			bad++;
	}
	*errors = bad ? mk_buf_steal(&errs) : NULL;
	mk_buf_release(&errs);
	return bad;
}

void mk_cfg_release(const mk_cfg_var *vars, size_t n, void *out)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char **slot;

		if (vars[i].type != MK_CFG_STR && vars[i].type != MK_CFG_ENUM)
			continue;
		slot = (char **)((char *)out + vars[i].offset);
		if (*slot && vars[i].secret)
			explicit_bzero(*slot, strlen(*slot));
		free(*slot);
		*slot = NULL;
	}
}

/* Render a value as text for logs and tables. */
static void render(const mk_cfg_var *v, const void *cfg, char *buf, size_t len)
{
	const char *slot = (const char *)cfg + v->offset;

	switch (v->type) {
	case MK_CFG_STR:
	case MK_CFG_ENUM: {
		const char *s = *(char *const *)slot;

		if (v->secret)
			snprintf(buf, len, "%s", s ? "(set)" : "(unset)");
		else
			snprintf(buf, len, "%s", s ? s : "");
		break;
	}
	case MK_CFG_BOOL: snprintf(buf, len, "%s", *(const int *)slot ? "true" : "false"); break;
	default: snprintf(buf, len, "%lld", *(const long long *)slot);
	}
}

void mk_cfg_log(const mk_cfg_var *vars, size_t n, const void *cfg)
{
	mk_buf line;
	char val[256];
	size_t i;

	mk_buf_init(&line, 0);
	for (i = 0; i < n; i++) {
		render(&vars[i], cfg, val, sizeof(val));
		mk_buf_printf(&line, "%s%s=%s", i ? " " : "", vars[i].name, val);
	}
	MK_INFO("CFG-EFFECTIVE", NULL, "%s", line.data ? line.data : "");
	mk_buf_release(&line);
}

void mk_cfg_print_table(const mk_cfg_var *vars, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		const mk_cfg_var *v = &vars[i];
		int has_def = v->def && *v->def;

		printf("| `%s` | %s%s | %s%s%s | %s |\n", v->name,
		       v->type == MK_CFG_ENUM ? v->choices : type_name(v->type),
		       v->secret ? ", secret" : "", has_def ? "`" : "",
		       has_def ? v->def : (v->required ? "required" : "(none)"), has_def ? "`" : "",
		       v->help);
	}
}

int mk_cfg_main(int argc, char **argv, const char *service, const mk_cfg_var *vars, size_t n,
                void *out)
{
	char *errors = NULL;
	int i, check = 0;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--check-config") == 0) {
			check = 1;
		} else if (strcmp(argv[i], "--config-table") == 0) {
			mk_cfg_print_table(vars, n);
			return 0;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: mark-%s [--check-config | --config-table | --ping | "
			       "--migrate]\n\n"
			       "  --ping     exit 0 when the running service answers (backends)\n"
			       "  --migrate  apply the database schema's migrations and exit "
			       "(backends "
			       "with a database)\n\n"
			       "Settings come from the environment:\n\n",
			       service);
			mk_cfg_print_table(vars, n);
			return 0;
		} else {
			fprintf(stderr, "mark-%s: unknown option '%s' (try --help)\n", service,
			        argv[i]);
			return 2;
		}
	}
	if (mk_cfg_load(vars, n, out, NULL, NULL, &errors) != 0) {
		fprintf(stderr, "mark-%s: invalid configuration:\n%s", service, errors);
		free(errors);
		mk_cfg_release(vars, n, out);
		return 1;
	}
	if (check) {
		printf("mark-%s: configuration ok\n", service);
		mk_cfg_release(vars, n, out);
		return 0;
	}
	return -1;
}
