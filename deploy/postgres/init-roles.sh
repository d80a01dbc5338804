#!/usr/bin/env bash
# init-roles.sh - docker-compose only: runs deploy/postgres/roles.sql when the
# postgres container initialises a new data volume (the official image runs
# /docker-entrypoint-initdb.d/*.sh once, as the superuser, before it starts
# accepting connections). The passwords come from deploy/env/postgres.env;
# each must match the one in that service's <SERVICE>_DATABASE_URL.
#
# The image may source this file rather than run it, so it neither exits nor
# changes shell options; a missing password stops the initialisation.
: "${MARK_AUTH_PASSWORD:?is not set (deploy/env/postgres.env)}"
: "${MARK_LLM_PASSWORD:?is not set (deploy/env/postgres.env)}"
: "${MARK_EXECUTOR_PASSWORD:?is not set (deploy/env/postgres.env)}"
: "${MARK_METADATA_PASSWORD:?is not set (deploy/env/postgres.env)}"

psql -v ON_ERROR_STOP=1 --no-psqlrc \
	--username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
	-v auth_password="$MARK_AUTH_PASSWORD" \
	-v llm_password="$MARK_LLM_PASSWORD" \
	-v executor_password="$MARK_EXECUTOR_PASSWORD" \
	-v metadata_password="$MARK_METADATA_PASSWORD" \
	-f /mark-initdb/roles.sql
