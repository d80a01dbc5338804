#!/usr/bin/env bash
# run.sh - the local stack: a private PostgreSQL and every service, with
# safe local defaults. Called by `make run` after the build.
#
# Everything lives under run/ (or $MARK_RUN_DIR): the Postgres data (kept
# between runs), logs/<service>.log and pids/. Ctrl-C, SIGTERM or
# `make stop` stops everything. Starting again while a stack is up stops
# the old one first.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
run=${MARK_RUN_DIR:-$top/run}
bin=${MARK_BIN_DIR:-$top/build/bin}
pg_port=${MARK_PG_PORT:-5433}
mkdir -p "$run/logs" "$run/pids"

"$top/scripts/stop.sh" --services-only

dsn=$("$top/scripts/pg.sh" start "$run/pg" "$pg_port")
for p in AUTH LLM EXECUTOR METADATA; do
	v=${p}_DATABASE_URL
	export "$v=${!v:-$dsn}"
done
export GATEWAY_LISTEN=${GATEWAY_LISTEN:-127.0.0.1:8080}

# The demo warehouse (a small online shop) in a PostgreSQL cluster of its
# own (run/warehouse-pg, port MARK_PG_PORT + 1), read by the metadata
# service as the read-only role mark_reader; skipped when
# METADATA_WAREHOUSE_KIND is set.
if [ -z "${METADATA_WAREHOUSE_KIND:-}" ]; then
	wh_dsn=$("$top/scripts/warehouse.sh" "$run/warehouse-pg" "${MARK_WAREHOUSE_PORT:-$((pg_port + 1))}")
	export METADATA_WAREHOUSE_KIND=postgres
	export METADATA_WAREHOUSE_DSN=${METADATA_WAREHOUSE_DSN:-$wh_dsn}
fi

# A development key pair for access tokens, made once, unless keys are configured.
if [ -z "${AUTH_JWT_PRIVATE_KEY_FILE:-}" ]; then
	keys="$run/keys"
	if [ ! -s "$keys/jwt-private.pem" ]; then
		mkdir -p "$keys"
		chmod 700 "$keys"
		(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
			-out "$keys/jwt-private.pem" 2>/dev/null)
		openssl pkey -in "$keys/jwt-private.pem" -pubout -out "$keys/jwt-public.pem"
		echo "mark: created a development token key pair in $keys"
	fi
	export AUTH_JWT_PRIVATE_KEY_FILE="$keys/jwt-private.pem"
	export GATEWAY_JWT_PUBLIC_KEY_FILE=${GATEWAY_JWT_PUBLIC_KEY_FILE:-$keys/jwt-public.pem}
fi

# The bus key that seals every message between the services, made once.
bus_key=$run/keys/bus.key
if [ ! -s "$bus_key" ]; then
	mkdir -p "$(dirname "$bus_key")"
	(umask 077 && openssl rand -hex 32 >"$bus_key")
	echo "mark: created the bus key $bus_key"
fi
for p in AUTH LLM EXECUTOR METADATA GATEWAY; do
	v=${p}_BUS_KEY_FILE
	export "$v=${!v:-$bus_key}"
done

stopping=0
stop_all() {
	[ $stopping -eq 1 ] && return
	stopping=1
	echo
	echo "mark: stopping..."
	"$top/scripts/stop.sh"
	exit 0
}
trap stop_all INT TERM HUP

services=(auth llm executor metadata gateway)

# Each service gets its own settings only (the names in its settings
# table), as compose gives them: an LLM_API_KEY or DAYTONA_API_KEY in the
# shell reaches its owner and nothing else.
declare -A own_vars
for svc in "${services[@]}"; do
	own_vars[$svc]=$("$bin/mark-$svc" --config-table | sed -n 's/^| `\([A-Z0-9_]*\)`.*/\1/p')
done

start_svc() {
	local svc=$1 v
	local -a env=("PATH=$PATH" "HOME=${HOME:-/}" "LANG=${LANG:-C.UTF-8}")
	for v in ${own_vars[$svc]}; do
		[ -n "${!v+x}" ] && env+=("$v=${!v}")
	done
	env -i "${env[@]}" "$bin/mark-$svc" >>"$run/logs/$svc.log" 2>&1 &
	echo $! >"$run/pids/$svc.pid"
	started_at[$svc]=$SECONDS
}

declare -A started_at backoff restart_at
for svc in "${services[@]}"; do
	start_svc "$svc"
	backoff[$svc]=1
	restart_at[$svc]=0
done

url="http://${GATEWAY_LISTEN}"
ready=0
for _ in $(seq 1 300); do
	if curl -fsS -o /dev/null "$url/readyz" 2>/dev/null; then
		ready=1
		echo "mark: ready at $url  (logs: $run/logs, stop: Ctrl-C or make stop)"
		echo "mark: make someone admin (after they sign up):" \
			"AUTH_DATABASE_URL=\$(scripts/pg.sh dsn ${run#"$top"/}/pg) build/bin/mark-auth --grant-admin EMAIL"
		break
	fi
	for svc in "${services[@]}"; do
		if ! kill -0 "$(cat "$run/pids/$svc.pid")" 2>/dev/null; then
			echo "mark: $svc failed to start; last lines of $run/logs/$svc.log:" >&2
			tail -n 20 "$run/logs/$svc.log" >&2
			stop_all
		fi
	done
	sleep 0.1
done
[ $ready -eq 1 ] || {
	echo "mark: not ready after 30 s: $(curl -sS "$url/readyz" 2>&1)" >&2
	stop_all
}
# Stay in the foreground until a signal, or until `make stop` ends the
# services (it removes their pid files). A service that dies is started
# again, after 1 s, then 2, 4, ... up to 30 s while it keeps dying; the
# delay resets once it has run for a minute.
while :; do
	left=0
	for svc in "${services[@]}"; do
		f=$run/pids/$svc.pid
		# make stop removes the file at any moment: then it is gone here too.
		pid=$(cat "$f" 2>/dev/null) || continue
		left=1
		kill -0 "$pid" 2>/dev/null && {
			[ $((SECONDS - started_at[$svc])) -ge 60 ] && backoff[$svc]=1
			continue
		}
		if [ "${restart_at[$svc]}" -eq 0 ]; then
			status=0
			wait "$pid" 2>/dev/null || status=$?
			restart_at[$svc]=$((SECONDS + backoff[$svc]))
			echo "mark: $svc exited (status $status); restarting it in ${backoff[$svc]} s" |
				tee -a "$run/logs/$svc.log"
			backoff[$svc]=$((backoff[$svc] * 2 > 30 ? 30 : backoff[$svc] * 2))
		elif [ "$SECONDS" -ge "${restart_at[$svc]}" ]; then
			[ -e "$f" ] || continue # make stop came meanwhile
			restart_at[$svc]=0
			start_svc "$svc"
			echo "mark: $svc restarted (pid $(cat "$f"))" | tee -a "$run/logs/$svc.log"
		fi
	done
	[ $left -eq 1 ] || break
	sleep 0.5 &
	wait $! || true
done
echo "mark: services stopped"
