/*
 * mk_db_metrics.h - the database pool's metrics (used by mk_db.c only; the
 * names are in mk_db_metrics.c).
 */
#ifndef MK_DB_METRICS_H
#define MK_DB_METRICS_H

/* A pool of n connections for schema (NULL: none) opened; returns its label. */
int mk_db_metrics_pool(const char *schema, int n);
/* The pool of n connections is freed (its idle connections were counted out before). */
void mk_db_metrics_pool_gone(int pool, int n);
/* A slot moved from one state to another (each flag 0 or 1: busy, idle). */
void mk_db_metrics_move(int pool, int from_busy, int from_idle, int to_busy, int to_idle);
/* An acquire waited for seconds, and got a connection (got) or not. */
void mk_db_metrics_waited(int pool, double seconds, int got);

#endif
