-- roles.sql - one PostgreSQL role per Mark service, each the owner of its
-- own schema and of nothing else.
--
-- Every service migrates its own schema at start-up (CREATE SCHEMA IF NOT
-- EXISTS <schema>, then <schema>.schema_migrations). Pre-creating each
-- schema here, owned by that service's role, means a service can create
-- and change tables in its schema and cannot even look into another's:
--
--   role            service     schema
--   mark_auth       auth        auth
--   mark_llm        llm         chat
--   mark_executor   executor    exec
--   mark_metadata   metadata    catalog
--
-- Run once, as an administrator, against the application database:
--
--   psql "postgresql://ADMIN@HOST:5432/mark" -v ON_ERROR_STOP=1 \
--     -v auth_password=... -v llm_password=... \
--     -v executor_password=... -v metadata_password=... \
--     -f deploy/postgres/roles.sql
--
-- Re-running it fails on the existing roles; to rotate a password use
-- ALTER ROLE ... PASSWORD. The docker-compose stack runs it through
-- init-roles.sh when its Postgres volume is first created.

\set ON_ERROR_STOP on

CREATE ROLE mark_auth LOGIN PASSWORD :'auth_password';
CREATE ROLE mark_llm LOGIN PASSWORD :'llm_password';
CREATE ROLE mark_executor LOGIN PASSWORD :'executor_password';
CREATE ROLE mark_metadata LOGIN PASSWORD :'metadata_password';

-- Only the service roles (and administrators) may connect.
SELECT current_database() AS dbname \gset
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname"
	TO mark_auth, mark_llm, mark_executor, mark_metadata;
-- PostgreSQL checks the database's CREATE privilege before it looks at
-- IF NOT EXISTS, so the migration runner's CREATE SCHEMA IF NOT EXISTS
-- needs it even though the schema below already exists.
GRANT CREATE ON DATABASE :"dbname"
	TO mark_auth, mark_llm, mark_executor, mark_metadata;

CREATE SCHEMA auth AUTHORIZATION mark_auth;
CREATE SCHEMA chat AUTHORIZATION mark_llm;
CREATE SCHEMA exec AUTHORIZATION mark_executor;
CREATE SCHEMA catalog AUTHORIZATION mark_metadata;
