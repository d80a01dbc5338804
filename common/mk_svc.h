/*
 * mk_svc.h - what every backend service does the same way: the standard
 * settings (log level, listen address, workers, message cap, shutdown
 * grace, database, metrics port), start-up (database pool, migrations under the
 * service's schema, the RPC server with a sys.ping that reports the
 * database), signal handling and graceful shutdown.
 *
 * A service embeds mk_svc_cfg in its config struct, puts
 * MK_SVC_CFG_VARS(...) rows in its table, and calls mk_svc_start /
 * mk_svc_wait / mk_svc_stop from main.
 */
#ifndef MK_SVC_H
#define MK_SVC_H

#include <stdatomic.h>
#include <stddef.h>

#include "mk_cfg.h"
#include "mk_db.h"
#include "mk_rpc.h"

typedef struct {
	char *log_level;
	char *log_format;
	char *listen;
	long long workers;
	long long max_msg;
	long long grace_ms;
	char *database_url; /* NULL for a service without a database */
	long long db_pool;
	long long db_wait_ms;
	char *bus_key_file;
	char *metrics_listen; /* NULL: no metrics and health port */
} mk_svc_cfg;

/* The standard rows: P is the prefix ("AUTH"), T the config struct, F the mk_svc_cfg field. */
#define MK_SVC_CFG_VARS(P, T, F, LISTEN, SCHEMA) MK_SVC_CFG_VARS_MSG(P, T, F, LISTEN, SCHEMA, "8M")
/* The same with another default for the largest message (MSG, e.g. "256M"). */
#define MK_SVC_CFG_VARS_MSG(P, T, F, LISTEN, SCHEMA, MSG)                                            \
	{P "_LOG_LEVEL",                                                                             \
	 MK_CFG_ENUM,                                                                                \
	 "info",                                                                                     \
	 0,                                                                                          \
	 0,                                                                                          \
	 0,                                                                                          \
	 0,                                                                                          \
	 "debug|info|warn|error",                                                                    \
	 "lowest log level written",                                                                 \
	 offsetof(T, F.log_level)},                                                                  \
	    {P "_LOG_FORMAT",                                                                        \
	     MK_CFG_ENUM,                                                                            \
	     "text",                                                                                 \
	     0,                                                                                      \
	     0,                                                                                      \
	     0,                                                                                      \
	     0,                                                                                      \
	     "text|json",                                                                            \
	     MK_SVC_LOG_FORMAT_HELP,                                                                 \
	     offsetof(T, F.log_format)},                                                             \
	    {P "_LISTEN",                                                                            \
	     MK_CFG_STR,                                                                             \
	     LISTEN,                                                                                 \
	     1,                                                                                      \
	     256,                                                                                    \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "NNG address this service listens on",                                                  \
	     offsetof(T, F.listen)},                                                                 \
	    {P "_WORKERS",                                                                           \
	     MK_CFG_INT,                                                                             \
	     "16",                                                                                   \
	     1,                                                                                      \
	     1024,                                                                                   \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "requests served at once",                                                              \
	     offsetof(T, F.workers)},                                                                \
	    {P "_MAX_MESSAGE",                                                                       \
	     MK_CFG_SIZE,                                                                            \
	     MSG,                                                                                    \
	     1024,                                                                                   \
	     1LL << 30,                                                                              \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "largest request message accepted",                                                     \
	     offsetof(T, F.max_msg)},                                                                \
	    {P "_SHUTDOWN_GRACE",                                                                    \
	     MK_CFG_DURATION,                                                                        \
	     "10s",                                                                                  \
	     0,                                                                                      \
	     600000,                                                                                 \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "how long in-flight requests may finish after SIGTERM",                                 \
	     offsetof(T, F.grace_ms)},                                                               \
	    {P "_DATABASE_URL",                                                                      \
	     MK_CFG_STR,                                                                             \
	     "postgresql://mark@127.0.0.1:5433/mark",                                                \
	     1,                                                                                      \
	     4096,                                                                                   \
	     1,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "PostgreSQL connection URI (schema " SCHEMA ")",                                        \
	     offsetof(T, F.database_url)},                                                           \
	    {P "_DB_POOL",                                                                           \
	     MK_CFG_INT,                                                                             \
	     "8",                                                                                    \
	     1,                                                                                      \
	     256,                                                                                    \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "database connections at most",                                                         \
	     offsetof(T, F.db_pool)},                                                                \
	    {P "_DB_WAIT",                                                                           \
	     MK_CFG_DURATION,                                                                        \
	     "30s",                                                                                  \
	     0,                                                                                      \
	     600000,                                                                                 \
	     0,                                                                                      \
	     0,                                                                                      \
	     NULL,                                                                                   \
	     "how long start-up waits for the database",                                             \
	     offsetof(T, F.db_wait_ms)},                                                             \
	    {P "_BUS_KEY_FILE",          MK_CFG_STR, NULL, 0, 4096, 0, 0, NULL, MK_SVC_BUS_KEY_HELP, \
	     offsetof(T, F.bus_key_file)},                                                           \
	{                                                                                            \
		P "_METRICS_LISTEN", MK_CFG_STR, NULL, 0, 256, 0, 0, NULL, MK_SVC_METRICS_HELP,      \
		    offsetof(T, F.metrics_listen)                                                    \
	}

/* The log format setting's line in the README (the gateway's table shares it). */
#define MK_SVC_LOG_FORMAT_HELP                                                                     \
	"log lines as text, or one JSON object per line (ts, level, service, event, rid, msg) "    \
	"for log pipelines"

/* The metrics port setting's line in the README. */
#define MK_SVC_METRICS_HELP                                                                        \
	"host:port of a plain HTTP port serving GET /metrics (Prometheus text) and GET /healthz "  \
	"(200 while serving, for probes); unset: none. Keep it on an internal address"

/* The bus key setting's line in the README (the gateway's table shares it). */
#define MK_SVC_BUS_KEY_HELP                                                                        \
	"file holding the deployment's secret that seals every internal message, the same "        \
	"file in every service (required; `make run` creates one)"

typedef struct {
	const char *name;   /* "auth" */
	const char *schema; /* "auth"; NULL: no database */
	const mk_migration *migrations;
	size_t nmigrations;
	mk_rpc_handler handler;
	void *ud;
	/* Optional: what the service adds of itself to sys.ping (after "db"). */
	void (*ping)(void *ud, cJSON *reply);
} mk_svc_def;

typedef struct {
	mk_db_pool *db; /* NULL without a database */
	mk_rpc_server *rpc;
	const mk_svc_cfg *cfg;
	mk_seal_key key; /* the bus key, once mk_svc_key has loaded it */
	int key_loaded;
	const mk_svc_def *def;           /* set by mk_svc_serve */
	struct mk_metrics_http *metrics; /* the metrics port, when configured */
	atomic_int stopping;             /* /healthz answers 503 once set */
} mk_svc;

/*
 * Block SIGTERM/SIGINT/SIGHUP in this and every later thread, so that
 * mk_svc_wait receives them. Call before starting any thread.
 */
void mk_svc_block_signals(void);

/*
 * Open the pool and apply migrations (retrying while the database is not
 * up, up to cfg->db_wait_ms). Returns 0, or -1 with a message in err. Call
 * before mk_svc_serve; the handler may use svc->db once this succeeds.
 */
int mk_svc_open_db(mk_svc *svc, const mk_svc_def *def, const mk_svc_cfg *cfg, char *err,
                   size_t errlen);

/*
 * A database connection for a request: waits for a free one no longer than
 * the request's deadline allows, and at most 5 s. NULL with err on failure.
 */
PGconn *mk_svc_db_acquire(mk_svc *svc, const mk_env *req, char *err, size_t errlen);

/*
 * The *.usage ops: run sql on c with $1 = the caller's user id and $2 = the
 * body's "days" (default 30); each result row is one day: column 0 its
 * date, column i its value of fields[i - 1] (a NULL-terminated list), so
 * *reply is {days: [{date, <field>: number, ...}]} in the rows' order.
 * `unauthenticated` without a caller, `database_error` when sql fails.
 */
mk_err mk_svc_usage_days(PGconn *c, const mk_env *req, const char *sql, const char *const *fields,
                         cJSON **reply, char *err, size_t errlen);

/*
 * Load the bus key from the service's <SERVICE>_BUS_KEY_FILE, once
 * (mk_svc_open_db must have run). Returns the key, or NULL with a message
 * in err.
 */
const mk_seal_key *mk_svc_key(mk_svc *svc, const char *service, char *err, size_t errlen);
/* The bus key setting of a service: "AUTH_BUS_KEY_FILE" for "auth". */
void mk_svc_key_setting(const char *service, char *out, size_t outlen);

/*
 * Apply def's migrations (waiting for the database up to cfg->db_wait_ms)
 * and close the pool: a service's --migrate, e.g. a Kubernetes init
 * container before the service starts. Returns 0, or -1 with err.
 */
int mk_svc_migrate(const mk_svc_def *def, const mk_svc_cfg *cfg, char *err, size_t errlen);

/* Load the bus key and start the RPC server. Returns 0, or -1 with a message in err. */
int mk_svc_serve(mk_svc *svc, const mk_svc_def *def, char *err, size_t errlen);

/*
 * Start the metrics and health port at cfg->metrics_listen, when set
 * (mk_svc_serve does; a service that serves otherwise calls it itself).
 * Returns 0, or -1 with err. mk_svc_stop stops it.
 */
int mk_svc_metrics_start(mk_svc *svc, char *err, size_t errlen);

/* Wait for SIGTERM or SIGINT; returns the signal number. */
int mk_svc_wait(void);

/* Stop serving within the grace, close the pool. Safe on a half-started svc. */
void mk_svc_stop(mk_svc *svc);

/*
 * A process: its settings table and how to start and stop it. main() is
 * then one call to mk_svc_main, which handles the command line
 * (--check-config, --config-table, --help, --ping: exit 0 when the
 * running service at its listen address answers and reaches its database,
 * and --migrate: apply the schema's migrations and exit), loads and logs the
 * config, starts, waits for SIGTERM/SIGINT, stops within the grace and exits 0.
 */
typedef struct {
	const char *name;
	const mk_cfg_var *vars;
	const size_t *nvars;      /* a pointer: the count is defined beside the table */
	size_t log_level_offset;  /* offsetof(config, char *log_level field) */
	size_t log_format_offset; /* offsetof(config, char *log_format field) */
	size_t listen_offset;     /* offsetof(config, char *listen) for --ping; 0: none */
	size_t bus_key_offset;    /* offsetof(config, char *bus_key_file) for --ping */
	/* Start everything; *ctx is handed to stop. Returns 0 or -1 with err. */
	int (*start)(const void *cfg, void **ctx, char *err, size_t errlen);
	/* Stop within the configured grace and free ctx; ctx may be half-built or NULL. */
	void (*stop)(void *ctx);
	/* --migrate: apply the schema's migrations and return 0, or -1 with err; NULL: none. */
	int (*migrate)(const void *cfg, char *err, size_t errlen);
} mk_svc_app;

/* Run a service process with cfg as its config struct storage. Returns the exit status. */
int mk_svc_main(int argc, char **argv, const mk_svc_app *app, void *cfg);

#endif
