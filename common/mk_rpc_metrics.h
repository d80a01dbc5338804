/*
 * mk_rpc_metrics.h - the RPC layer's metrics (used by mk_rpc.c only):
 * calls made and requests served, by op and outcome (the error's wire code,
 * "ok" on success), their latency by op, and the connections each client
 * holds to the replicas behind its address.
 */
#ifndef MK_RPC_METRICS_H
#define MK_RPC_METRICS_H

#include "mk_proto.h"

/*
 * Register the client's or the server's metrics, once (thread-safe; cheap
 * after the first call), so a process shows only the side it has.
 */
void mk_rpc_metrics_init_client(void);
void mk_rpc_metrics_init_server(void);
/* A call made by a client: its op, outcome and duration. */
void mk_rpc_metrics_called(mk_op op, mk_err e, double seconds);
/* A request served; op is MK_OP__COUNT when the request could not be decoded. */
void mk_rpc_metrics_served(mk_op op, mk_err e, double seconds);
/* The label index of a client's address (interned at start-up, not on a hot path). */
int mk_rpc_metrics_target(const char *url);
/* A client's connections to the replicas behind target went up or down by delta. */
void mk_rpc_metrics_connections(int target, int delta);
/* Workers of this process's RPC server busy with a request now. */
void mk_rpc_metrics_busy(int busy);
/* Seconds on the monotonic clock, for durations. */
double mk_rpc_metrics_now(void);

#endif
