#!/usr/bin/env bash
# pg.sh - a private PostgreSQL 15 for the local stack and the tests.
#
#   pg.sh start DIR PORT   initdb DIR if new, start on 127.0.0.1:PORT, create
#                          database "mark"; prints the DSN on stdout
#   pg.sh stop DIR         stop it (fast shutdown), waiting until it is gone
#   pg.sh dsn DIR          print the DSN of a running one
#
# Loopback TCP only (no unix socket, so the path length never matters),
# trust authentication for the local role "mark". When run as root, the
# server runs as the unprivileged user "nobody" (Postgres refuses root); if
# nobody cannot reach DIR, the data lives under /var/tmp instead and DIR
# holds a link to it.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|dsn DIR [PORT]" >&2; exit 2; }

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u nobody -- "$@"
	else
		"$@"
	fi
}

data_dir() {
	if [ -L "$dir/data" ]; then readlink "$dir/data"; else echo "$dir/data"; fi
}

case "$cmd" in
start)
	port=${3:?port}
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ ! -e "$dir/data" ]; then
		data="$dir/data"
		if [ "$(id -u)" -eq 0 ] && ! runuser -u nobody -- test -x "$dir"; then
			data="/var/tmp/mark-pg-$(echo "$dir" | md5sum | cut -c1-12)"
			rm -rf "$data"
			ln -s "$data" "$dir/data"
		fi
		mkdir -p "$data"
		[ "$(id -u)" -eq 0 ] && chown nobody: "$data"
		chmod 700 "$data"
		as_owner "$PGBIN/initdb" -D "$data" -U mark --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; exit 1; }
	fi
	data=$(data_dir)
	echo "$port" >"$dir/port"
	if ! as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		touch "$dir/postgres.log"
		[ "$(id -u)" -eq 0 ] && chown nobody: "$dir/postgres.log"
		as_owner "$PGBIN/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
			-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=200 -c fsync=off -c synchronous_commit=off" \
			start >/dev/null || { tail -20 "$dir/postgres.log" >&2; exit 1; }
	fi
	for _ in $(seq 1 100); do
		"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
		sleep 0.1
	done
	if ! "$PGBIN/psql" -qtA -h 127.0.0.1 -p "$port" -U mark -d postgres -c "select 1 from pg_database where datname='mark'" | grep -q 1; then
		"$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U mark mark
	fi
	echo "postgresql://mark@127.0.0.1:$port/mark"
	;;
stop)
	[ -e "$dir/data" ] || exit 0
	data=$(data_dir)
	as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	;;
dsn)
	echo "postgresql://mark@127.0.0.1:$(cat "$dir/port")/mark"
	;;
*)
	echo "usage: pg.sh start|stop|dsn DIR [PORT]" >&2
	exit 2
	;;
esac
