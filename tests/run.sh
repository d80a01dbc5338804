#!/usr/bin/env bash
# run.sh - `make test`: build, start a private PostgreSQL, run every unit,
# integration and security test, then build again with AddressSanitizer +
# UndefinedBehaviorSanitizer and run them all again. Leaks fail the run.
# Prints Check's summary line per test binary, then every failing check by
# file and line, and ends with one line: "summary: N passed, M failed".
# Exits non-zero on any failure. Everything it starts, it stops (trap on EXIT).
#
#   MARK_TEST_BINARY_TIMEOUT  seconds one test binary may run before it is
#                             stopped and counted as failed (default 1800)
#   CK_DEFAULT_TIMEOUT        Check's per-test limit where a suite sets none
#                             (default 60 here, for a loaded machine)
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
binary_timeout=${MARK_TEST_BINARY_TIMEOUT:-1800}
export CK_DEFAULT_TIMEOUT=${CK_DEFAULT_TIMEOUT:-60}
started=$(date +%s)
pg_dir=build/test-pg
passed=0   # checks passed, summed over Check's summary lines
failed=0   # checks failed or errored, plus binaries that died without a summary
failures=()

cleanup() {
	scripts/pg.sh stop "$pg_dir" >/dev/null 2>&1 || true
}
trap cleanup EXIT

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A fresh database every run, so migrations are exercised from scratch.
cleanup
rm -rf "$pg_dir"
dsn=$(PG_FAST=1 scripts/pg.sh start "$pg_dir" "$(free_port)") || { echo "test: cannot start PostgreSQL" >&2; exit 1; }
export MARK_TEST_DATABASE_URL=$dsn

run_pass() { # name build-dir san
	local name=$1 dir=$2 san=$3 t rc
	echo "== $name: building"
	mkdir -p "$dir"
	if ! make --no-print-directory -j"$jobs" BUILD="$dir" SAN="$san" test-build >"$dir/build.log" 2>&1; then
		tail -n 40 "$dir/build.log"
		echo "== $name: build failed"
		failed=$((failed + 1))
		failures+=("$name build")
		return
	fi
	export MARK_BIN_DIR=$top/$dir/bin MARK_TEST_LOG_DIR=$top/$dir/test-logs
	rm -rf "$MARK_TEST_LOG_DIR"
	for t in $(ls "$dir"/tests/unit/*/*_test "$dir"/tests/integration/*_test \
		"$dir"/tests/security/*_test 2>/dev/null); do
		echo "-- $name: ${t#"$dir"/tests/}"
		t0=$(date +%s)
		timeout --kill-after=30 "$binary_timeout" "$t" >"$dir/last-test.log" 2>&1
		rc=$?
		cat "$dir/last-test.log"
		[ "$rc" -eq 124 ] && echo "-- stopped after ${binary_timeout} s"
		echo "-- $(($(date +%s) - t0)) s"
		out=$(grep -E '^[0-9]+%: Checks: ' "$dir/last-test.log" | tail -n 1)
		count "$out" "$rc" "$name ${t#"$dir"/tests/}" "$dir/last-test.log"
	done
	if [ "$san" = 0 ]; then
		echo "-- $name: README settings table matches the binaries"
		if MARK_BIN_DIR=$top/$dir/bin scripts/settings.sh --check; then
			passed=$((passed + 1))
		else
			failed=$((failed + 1))
			failures+=("README settings table")
		fi
	fi
}

# count SUMMARY RC NAME LOG: add a binary's Check summary to the totals and
# name each failing check (Check's "file:line:F|E:case:test:..." lines), or
# the sanitizer's report when the binary died without a summary.
count() {
	local summary=$1 rc=$2 what=$3 log=$4 checks=0 fails=0 errs=0 line
	if [[ $summary =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
		checks=${BASH_REMATCH[1]} fails=${BASH_REMATCH[2]} errs=${BASH_REMATCH[3]}
	fi
	passed=$((passed + checks - fails - errs))
	failed=$((failed + fails + errs))
	while IFS= read -r line; do
		failures+=("$line")
	done < <(grep -E '^[^ :]+\.c:[0-9]+:[FE]:' "$log" | cut -c1-300)
	if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
		[ $((fails + errs)) -eq 0 ] && failed=$((failed + 1))
		failures+=("$what (exit $rc$([ "$rc" -eq 124 ] && echo ", stopped after ${binary_timeout} s"))")
		while IFS= read -r line; do
			failures+=("  $line")
		done < <(grep -E 'SUMMARY: [A-Za-z]+Sanitizer|runtime error:' "$log" | head -n 3 | cut -c1-300)
	fi
}

mkdir -p build
run_pass "tests" build 0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_pass "tests under ASan+UBSan" build/asan 1

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "took $(($(date +%s) - started)) s"
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
