#!/usr/bin/env bash
# entrypoint.sh - mark-postgres: make the cluster on first start, then run
# the server in the foreground (see Dockerfile).
set -euo pipefail

if [ "${1:-}" != postgres ]; then
	exec "$@"
fi
shift

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
export POSTGRES_USER POSTGRES_DB

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	: "${POSTGRES_PASSWORD:?is not set: the superuser needs a password}"
	pwfile=$(mktemp)
	printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
	initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pwfile" -E UTF8 --locale=C.UTF-8 \
		--auth-local=trust --auth-host=scram-sha-256 >/dev/null
	rm -f "$pwfile"
	# Password logins from the container network; the Unix socket (inside the
	# container only) stays trusted for the initialisation scripts.
	echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"

	pg_ctl -D "$PGDATA" -w -o "-c listen_addresses='' -k /var/run/postgresql" start >/dev/null
	if [ "$POSTGRES_DB" != postgres ]; then
		psql -v ON_ERROR_STOP=1 --no-psqlrc -U "$POSTGRES_USER" -d postgres \
			-v db="$POSTGRES_DB" <<<'CREATE DATABASE :"db"' >/dev/null
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		case $f in
		*.sh)
			echo "mark-postgres: running $f"
			bash "$f"
			;;
		*.sql)
			echo "mark-postgres: running $f"
			psql -v ON_ERROR_STOP=1 --no-psqlrc -U "$POSTGRES_USER" -d "$POSTGRES_DB" -f "$f"
			;;
		*) ;;
		esac
	done
	pg_ctl -D "$PGDATA" -w -m fast stop >/dev/null
	echo "mark-postgres: cluster initialised in $PGDATA"
fi

exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
