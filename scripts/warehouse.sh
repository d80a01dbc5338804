#!/usr/bin/env bash
# warehouse.sh - the local stack's demo warehouse, isolated from Mark's own
# database: a PostgreSQL cluster of its own (scripts/pg.sh) holding only
# the database "warehouse", loaded once from services/metadata/demo/
# warehouse.sql (a small online shop).
#
#   warehouse.sh DIR PORT   start (initdb if new) and load; prints the DSN
#                           of the read-only role mark_reader on stdout
#   warehouse.sh stop DIR   stop it
#
# What the model's SQL runs as (mark_reader) can reach nothing else: the
# cluster holds no Mark data and no Mark role; its superuser's password
# stays in DIR/password and is given to no service; mark_reader may
# connect to "warehouse" only (CONNECT on the others is revoked from
# PUBLIC), reads the shop's tables, writes nothing, and each of its
# sessions is held to WAREHOUSE_TEMP_FILE_LIMIT of temporary files (1GB)
# and WAREHOUSE_WORK_MEM of sort and hash memory (16MB): settings only a
# superuser can change.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
psql=${PGBIN:-/usr/lib/postgresql/15/bin}/psql

if [ "${1:-}" = stop ]; then
	PG_SUPERUSER=warehouse_admin PG_DATABASE=warehouse "$top/scripts/pg.sh" stop "${2:?DIR}"
	exit 0
fi
dir=${1:?usage: warehouse.sh DIR PORT | stop DIR}
port=${2:?port}
temp_limit=${WAREHOUSE_TEMP_FILE_LIMIT:-1GB}
work_mem=${WAREHOUSE_WORK_MEM:-16MB}

admin=$(PG_SUPERUSER=warehouse_admin PG_DATABASE=warehouse "$top/scripts/pg.sh" start "$dir" "$port")
q() { "$psql" -qtA -v ON_ERROR_STOP=1 "$admin" "$@"; }
if ! q -c "select to_regclass('public.orders') is not null" | grep -q t; then
	q -1 -f "$top/services/metadata/demo/warehouse.sql" >/dev/null
	echo "warehouse.sh: loaded the demo warehouse into $dir" >&2
fi
if [ ! -s "$dir/reader.password" ]; then
	(umask 077 && openssl rand -hex 24 >"$dir/reader.password")
fi
reader_pw=$(cat "$dir/reader.password")
q >/dev/null <<SQL
ALTER ROLE mark_reader PASSWORD '$reader_pw';
ALTER ROLE mark_reader SET temp_file_limit = '$temp_limit';
ALTER ROLE mark_reader SET work_mem = '$work_mem';
REVOKE CONNECT, TEMPORARY ON DATABASE postgres FROM PUBLIC;
REVOKE CONNECT, TEMPORARY ON DATABASE template1 FROM PUBLIC;
REVOKE TEMPORARY ON DATABASE warehouse FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
SQL
echo "postgresql://mark_reader:$reader_pw@127.0.0.1:$port/warehouse"
