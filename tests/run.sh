#!/usr/bin/env bash
# run.sh - `make test`: build, start a private PostgreSQL, run every unit,
# integration and security test, then build again with AddressSanitizer +
# UndefinedBehaviorSanitizer and run them all again. Leaks fail the run.
# Prints Check's summary line per test binary and a closing tally; exits
# non-zero on any failure. Everything it starts, it stops (trap on EXIT).
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)
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
dsn=$(scripts/pg.sh start "$pg_dir" "$(free_port)") || { echo "test: cannot start PostgreSQL" >&2; exit 1; }
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
		"$t" >"$dir/last-test.log" 2>&1
		rc=$?
		cat "$dir/last-test.log"
		out=$(grep -E '^[0-9]+%: Checks: ' "$dir/last-test.log" | tail -n 1)
		count "$out" "$rc" "$name ${t#"$dir"/tests/}"
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

# count SUMMARY RC NAME: add a binary's Check summary to the totals.
count() {
	local summary=$1 rc=$2 what=$3 checks=0 fails=0 errs=0
	if [[ $summary =~ Checks:\ ([0-9]+),\ Failures:\ ([0-9]+),\ Errors:\ ([0-9]+) ]]; then
		checks=${BASH_REMATCH[1]} fails=${BASH_REMATCH[2]} errs=${BASH_REMATCH[3]}
	fi
	passed=$((passed + checks - fails - errs))
	failed=$((failed + fails + errs))
	if [ "$rc" -ne 0 ] || [ -z "$summary" ]; then
		[ $((fails + errs)) -eq 0 ] && failed=$((failed + 1))
		failures+=("$what (exit $rc)")
	fi
}

mkdir -p build
run_pass "tests" build 0
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	run_pass "tests under ASan+UBSan" build/asan 1

echo
for f in "${failures[@]}"; do echo "FAILED: $f"; done
echo "summary: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
