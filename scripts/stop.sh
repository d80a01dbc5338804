#!/usr/bin/env bash
# stop.sh - stop what scripts/run.sh started: each service by its recorded
# pid (SIGTERM, then SIGKILL after 15 s), then the private PostgreSQL
# clusters (Mark's and the demo warehouse's).
# --services-only leaves Postgres running.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
run=${MARK_RUN_DIR:-$top/run}
bin=${MARK_BIN_DIR:-$top/build/bin}

pids=()
for f in "$run"/pids/*.pid; do
	[ -e "$f" ] || continue
	pid=$(cat "$f")
	svc=$(basename "$f" .pid)
	# Only a process that is still ours: running this stack's own binary (a
	# recorded pid may since belong to another process, even another stack's).
	if kill -0 "$pid" 2>/dev/null &&
		[ "$(readlink -f "/proc/$pid/exe" 2>/dev/null)" = "$(readlink -f "$bin/mark-$svc")" ]; then
		kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
	fi
	rm -f "$f"
done
for _ in $(seq 1 150); do
	left=0
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null && left=1
	done
	[ $left -eq 0 ] && break
	sleep 0.1
done
for pid in "${pids[@]}"; do
	kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
done
[ "${1:-}" = "--services-only" ] && exit 0
[ -d "$run/warehouse-pg" ] && "$top/scripts/warehouse.sh" stop "$run/warehouse-pg"
[ -d "$run/pg" ] && "$top/scripts/pg.sh" stop "$run/pg"
exit 0
