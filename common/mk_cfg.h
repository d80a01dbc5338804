/*
 * mk_cfg.h - configuration from one table of environment variables per
 * service.
 *
 * Each service declares a static table (name, type, default, bounds, secret
 * flag, help, and where the value goes in its config struct) in its
 * config.c. mk_cfg_load reads every variable, checks types and bounds, and
 * reports all problems at once; a malformed value is never replaced by its
 * default. Secrets are masked when the effective config is logged and are
 * zeroed on release.
 *
 * Types and what they accept:
 *   MK_CFG_STR       any string (min/max: length in bytes; max 0 = no limit)
 *   MK_CFG_INT       a decimal integer within [min, max]
 *   MK_CFG_BOOL      1/0, true/false, yes/no, on/off
 *   MK_CFG_SIZE      bytes, with an optional K, M or G suffix (powers of 1024)
 *   MK_CFG_DURATION  milliseconds, or a number with ms, s, m or h suffix
 *   MK_CFG_ENUM      one of the words in `choices` ("a|b|c")
 * All numeric types are stored as long long; STR and ENUM as a malloc'd char*
 * (NULL when empty and no default); BOOL as int.
 */
#ifndef MK_CFG_H
#define MK_CFG_H

#include <stddef.h>

typedef enum {
	MK_CFG_STR,
	MK_CFG_INT,
	MK_CFG_BOOL,
	MK_CFG_SIZE,
	MK_CFG_DURATION,
	MK_CFG_ENUM
} mk_cfg_type;

typedef struct {
	const char *name;
	mk_cfg_type type;
	const char *def; /* default as text; NULL = no default (empty) */
	long long min, max;
	int secret;
	int required;        /* must be set (non-empty) */
	const char *choices; /* MK_CFG_ENUM: "a|b|c" */
	const char *help;    /* one line for the README */
	size_t offset;       /* offsetof(the service's config struct, field) */
} mk_cfg_var;

/* How to read a variable: getenv by default; tests pass their own. */
typedef const char *(*mk_cfg_getter)(const char *name, void *ud);

/*
 * Fill `out` from the table. Returns 0, or the number of problems, each
 * appended as one line ("AUTH_PORT: '70000' is above the maximum 65535") to
 * the malloc'd *errors (caller frees; NULL when there are none). On failure
 * `out` may be partly filled: release it with mk_cfg_release.
 * get NULL means getenv.
 */
int mk_cfg_load(const mk_cfg_var *vars, size_t n, void *out, mk_cfg_getter get, void *ud,
                char **errors);

/* Free strings in `out` (zeroing secrets first). Safe on a partly filled struct. */
void mk_cfg_release(const mk_cfg_var *vars, size_t n, void *out);

/* Log the effective configuration at info level, secrets as "(set)" or "(unset)". */
void mk_cfg_log(const mk_cfg_var *vars, size_t n, const void *cfg);

/* Print the table as Markdown rows: | name | type | default | help | */
void mk_cfg_print_table(const mk_cfg_var *vars, size_t n);

/*
 * The common command line of every service: --check-config (validate and
 * exit), --config-table (print the settings table and exit), --help.
 * Returns -1 to continue starting, or the exit status to exit with. Loads
 * the config into `out` (always, so --check-config reports every problem).
 */
int mk_cfg_main(int argc, char **argv, const char *service, const mk_cfg_var *vars, size_t n,
                void *out);

#endif
