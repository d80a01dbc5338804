#!/usr/bin/env bash
# dev-setup.sh [DIR] - prepare the compose stack's settings on a developer's
# machine: copy each deploy/env/*.env.example that has no DIR/env/*.env yet,
# make a JWT key pair, the bus key and a BigQuery key placeholder in
# DIR/secrets/ if missing. DIR is deploy/ by default; with another one, run
# compose with MARK_CONFIG_DIR=DIR. Never overwrites an existing file. The
# values it writes are for a local stack only: production secrets come from
# your secret store (see README.md).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
mkdir -p "$out/env"
out=$(cd "$out" && pwd)

for ex in "$here"/env/*.env.example; do
	env=$out/env/$(basename "${ex%.example}")
	if [ ! -e "$env" ]; then
		cp "$ex" "$env"
		chmod 0600 "$env"
		echo "dev-setup: wrote ${env#"$out"/} (edit it: the passwords are placeholders)"
	fi
done

secrets=$out/secrets
mkdir -p "$secrets"
chmod 0700 "$secrets"

# The access-token key pair: EC P-256 (ES256), what AUTH_JWT_PRIVATE_KEY_FILE
# and GATEWAY_JWT_PUBLIC_KEY_FILE expect.
if [ ! -e "$secrets/jwt-private.pem" ]; then
	command -v openssl >/dev/null || { echo "dev-setup: openssl is needed for the JWT keys" >&2; exit 1; }
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$secrets/jwt-private.pem" 2>/dev/null
	openssl pkey -in "$secrets/jwt-private.pem" -pubout -out "$secrets/jwt-public.pem"
	echo "dev-setup: wrote secrets/jwt-private.pem and secrets/jwt-public.pem"
elif [ ! -e "$secrets/jwt-public.pem" ]; then
	openssl pkey -in "$secrets/jwt-private.pem" -pubout -out "$secrets/jwt-public.pem"
	echo "dev-setup: wrote secrets/jwt-public.pem"
fi

# The bus key: every message between Mark's processes is sealed with it.
if [ ! -e "$secrets/bus.key" ]; then
	(umask 077 && openssl rand -hex 32 >"$secrets/bus.key")
	echo "dev-setup: wrote secrets/bus.key"
fi

# docker-compose refuses to start when a secret's file is missing. An empty
# file stands for "no BigQuery"; put a real service-account key here and set
# MARK_WAREHOUSE_KIND=bigquery to use one.
if [ ! -e "$secrets/bigquery-key.json" ]; then
	: >"$secrets/bigquery-key.json"
	echo "dev-setup: wrote an empty secrets/bigquery-key.json (no BigQuery)"
fi

# Compose secrets are bind mounts keeping the host owner and mode: the
# container user (uid 10001) must be able to read them. The 0700 directory
# keeps other host users out.
chmod 0644 "$secrets/jwt-private.pem" "$secrets/jwt-public.pem" "$secrets/bigquery-key.json" "$secrets/bus.key"
