#!/usr/bin/env bash
# pg.sh - a private PostgreSQL 15 for the local stack and the tests.
#
#   pg.sh start DIR PORT   initdb DIR if new, start on 127.0.0.1:PORT, create
#                          database "mark"; prints the DSN on stdout
#   pg.sh stop DIR         stop it (fast shutdown), waiting until it is gone
#   pg.sh dsn DIR          print the DSN of a running one
#
# Loopback TCP only (no unix socket, so the path length never matters).
# Nobody is trusted: every connection authenticates with a password
# (scram-sha-256). The superuser "mark" gets a random password, kept in
# DIR/password (mode 0600) and put into the printed DSN, so only who can
# read DIR can connect. A cluster made by an older pg.sh (trust) is given
# a password and scram on its next start. PG_SUPERUSER and PG_DATABASE
# (default "mark") name the superuser and the database made.
#
# Durable by default (fsync on): `make run` keeps users' data. PG_FAST=1
# (the tests and benchmarks) turns fsync and synchronous commit off.
#
# When run as root, the server runs as the unprivileged user "nobody"
# (Postgres refuses root); if nobody cannot reach DIR (a 0700 checkout,
# /root/...), the data and the server's log live under /var/tmp instead
# and DIR holds links to them.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
su_name=${PG_SUPERUSER:-mark}
db_name=${PG_DATABASE:-mark}
cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: pg.sh start|stop|dsn DIR [PORT]" >&2; exit 2; }

# Paths are absolute, so that commands run as nobody can start in / (it may
# not be able to enter the current directory, a 0700 checkout).
case $dir in /*) ;; *) dir=$PWD/$dir ;; esac

as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		(cd / && runuser -u nobody -- "$@")
	else
		"$@"
	fi
}

data_dir() {
	if [ -L "$dir/data" ]; then readlink "$dir/data"; else echo "$dir/data"; fi
}

# Only password logins, over loopback.
write_hba() {
	as_owner sh -c "cat >'$1/pg_hba.conf'" <<'HBA'
# Written by scripts/pg.sh: every connection authenticates with a password.
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
host  all all ::1/128 scram-sha-256
HBA
}

dsn_of() {
	echo "postgresql://$su_name:$(cat "$dir/password")@127.0.0.1:$1/$db_name"
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
		(umask 077 && openssl rand -hex 24 >"$dir/password")
		# initdb reads the password from a file its user can read; gone at once.
		pw_dir=$(mktemp -d)
		cp "$dir/password" "$pw_dir/pw"
		[ "$(id -u)" -eq 0 ] && chown -R nobody: "$pw_dir"
		as_owner "$PGBIN/initdb" -D "$data" -U "$su_name" --pwfile="$pw_dir/pw" \
			--auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ rm -rf "$pw_dir"; cat "$dir/initdb.log" >&2; exit 1; }
		rm -rf "$pw_dir"
		write_hba "$data"
	fi
	data=$(data_dir)
	echo "$port" >"$dir/port"
	if ! as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		# The server writes its log itself: beside the data when nobody cannot reach DIR.
		log="$dir/postgres.log"
		if [ -L "$dir/data" ]; then
			log="$data.log"
			ln -sfn "$log" "$dir/postgres.log"
		fi
		touch "$log"
		[ "$(id -u)" -eq 0 ] && chown nobody: "$log"
		opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories='' -c max_connections=200"
		[ "${PG_FAST:-0}" = 1 ] && opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
		as_owner "$PGBIN/pg_ctl" -D "$data" -l "$log" -w -t 60 -o "$opts" \
			start >/dev/null || { tail -20 "$log" >&2; exit 1; }
	fi
	for _ in $(seq 1 100); do
		"$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
		sleep 0.1
	done
	if [ ! -s "$dir/password" ]; then
		# Made by an older pg.sh, with trust: a password, then scram only.
		(umask 077 && openssl rand -hex 24 >"$dir/password")
		"$PGBIN/psql" -qtA -h 127.0.0.1 -p "$port" -U "$su_name" -d postgres -v ON_ERROR_STOP=1 \
			-c "ALTER ROLE $su_name PASSWORD '$(cat "$dir/password")'" >/dev/null
		write_hba "$data"
		as_owner "$PGBIN/pg_ctl" -D "$data" reload >/dev/null
		echo "pg.sh: $dir now takes passwords only (kept in $dir/password)" >&2
	fi
	admin="postgresql://$su_name:$(cat "$dir/password")@127.0.0.1:$port/postgres"
	if ! "$PGBIN/psql" -qtA "$admin" -c "select 1 from pg_database where datname='$db_name'" | grep -q 1; then
		"$PGBIN/psql" -qtA "$admin" -c "CREATE DATABASE $db_name" >/dev/null
	fi
	dsn_of "$port"
	;;
stop)
	[ -e "$dir/data" ] || exit 0
	data=$(data_dir)
	as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
	;;
dsn)
	dsn_of "$(cat "$dir/port")"
	;;
*)
	echo "usage: pg.sh start|stop|dsn DIR [PORT]" >&2
	exit 2
	;;
esac
