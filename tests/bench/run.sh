#!/usr/bin/env bash
# run.sh - `make bench`: a private PostgreSQL, then every benchmark in
# tests/bench/, each printing its figures: api_bench (the public API, and
# this machine's ceilings beside it), exec_bench (running code in the
# executor's sandboxes, beside a pipe to a live Python), search_bench (table
# search) and turn_bench (a chat turn's own overhead). MARK_BENCH_SECONDS
# sets the length of each load run (default 10); MARK_BENCH_EXEC_SAMPLES the
# latency samples per executor case (default 20). When the FastAPI reference is
# beside the repo (../shared/bench/fastapi-ref), it runs too, under the
# same load, and the ratios are printed; MARK_BENCH_REFERENCE=0 skips it,
# MARK_BENCH_REFERENCE=<dir> points elsewhere.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
pg_dir=build/bench-pg
trap 'scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
MARK_TEST_DATABASE_URL=$(PG_FAST=1 scripts/pg.sh start "$pg_dir" "$port") || exit 1
ref=${MARK_BENCH_REFERENCE:-$top/../shared/bench/fastapi-ref}
if [ "$ref" = 0 ] || [ ! -x "$ref/start.sh" ]; then ref=; fi
export MARK_BENCH_REFERENCE=$ref
export MARK_TEST_DATABASE_URL MARK_BIN_DIR=$top/build/bin MARK_TEST_LOG_DIR=$top/build/bench-logs
rc=0
# In name order: api_bench, exec_bench (which ends its sandboxes before it exits),
# search_bench, turn_bench.
for b in build/tests/bench/*_bench; do
	"$b" || rc=1
done
exit $rc
