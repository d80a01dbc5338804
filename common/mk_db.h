/*
 * mk_db.h - a PostgreSQL connection pool and the migration runner.
 *
 * Pool: a fixed number of libpq connections opened lazily, handed out one
 * per caller and returned after use. A connection found broken on return
 * (or on acquire) is reset, so the pool heals when Postgres restarts.
 * Every connection has its search_path set to the service's schema.
 *
 * Migrations: each service owns one schema and a list of migrations
 * (services/<svc>/migrations/NNN_<name>.sql, embedded into the binary at
 * build time as an mk_migration array sorted by version). mk_db_migrate
 * creates the schema and its version table, takes a Postgres advisory lock
 * (so concurrent starts of the same service apply each migration once),
 * and applies, each in its own transaction, the migrations not yet
 * recorded. Running it again applies nothing.
 */
#ifndef MK_DB_H
#define MK_DB_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

typedef struct {
	int version;      /* NNN of the file name */
	const char *name; /* file name without .sql, e.g. "001_init" */
	const char *sql;
} mk_migration;

typedef struct mk_db_pool mk_db_pool;

/*
 * Create a pool of at most `size` connections to conninfo (a libpq
 * connection string or URI), with search_path set to schema (may be NULL).
 * connect_timeout_ms bounds each connection attempt. Nothing is connected
 * yet. Returns NULL on allocation failure. The pool copies its arguments
 * and zeroes its copy of conninfo when freed (it may hold a password).
 */
mk_db_pool *mk_db_pool_new(const char *conninfo, const char *schema, int size,
                           int connect_timeout_ms);
void mk_db_pool_free(mk_db_pool *p); /* all connections must be released; NULL ok */

/*
 * Take a connection, waiting at most wait_ms for one to be free. Returns
 * NULL on timeout or when Postgres cannot be reached, with a message in err
 * that never contains the password. Thread-safe.
 */
PGconn *mk_db_acquire(mk_db_pool *p, int wait_ms, char *err, size_t errlen);
/* Give a connection back; a broken one (or one left inside a transaction) is closed. */
void mk_db_release(mk_db_pool *p, PGconn *c);
/* Close a connection instead of giving it back (its session may hold state); a new one replaces it.
 */
void mk_db_discard(mk_db_pool *p, PGconn *c);

/* Can Postgres be reached now? 0 yes, -1 no. Used by sys.ping. */
int mk_db_ping(mk_db_pool *p, int wait_ms);

/*
 * Apply migrations[0..n) to the pool's schema. Returns the number applied
 * (0 when up to date), or -1 with a message in err (naming the migration
 * that failed and Postgres's message). The failed migration's transaction
 * is rolled back; earlier ones stay applied.
 */
int mk_db_migrate(mk_db_pool *p, const mk_migration *migrations, size_t n, char *err,
                  size_t errlen);

/*
 * Run a statement with text parameters and return the result when its
 * status is COMMAND_OK or TUPLES_OK; otherwise PQclear it, return NULL and
 * write Postgres's message into err. sqlstate (6 bytes, may be NULL)
 * receives the SQLSTATE on failure (e.g. "23505" unique violation).
 */
PGresult *mk_db_exec(PGconn *c, const char *sql, int nparams, const char *const *params, char *err,
                     size_t errlen, char sqlstate[6]);
/*
 * mk_db_exec without parameters that ends at deadline (mk_mono_ms), however
 * the statement or the session's settings were made: the server is asked
 * to cancel it, and NULL comes back with SQLSTATE 57014. A connection whose
 * statement does not stop within MK_DB_CANCEL_WAIT_MS more is left busy,
 * and closed on release.
 */
#define MK_DB_CANCEL_WAIT_MS 5000
PGresult *mk_db_exec_until(PGconn *c, const char *sql, int64_t deadline, char *err, size_t errlen,
                           char sqlstate[6]);

/*
 * The same for a statement run often: prepared once per connection and
 * then executed by name. sql must be a string constant (it is remembered
 * by address). A statement that fails to prepare is not remembered.
 */
PGresult *mk_db_exec_prep(PGconn *c, const char *sql, int nparams, const char *const *params,
                          char *err, size_t errlen, char sqlstate[6]);

#endif
