-- The warehouse catalog (schema catalog): data sources, their tables and
-- columns with descriptions, the schema changes found between syncs, and
-- the audit log of every query run (or refused) against the warehouse.
--
-- A sync overwrites the synced description of a table or column; the
-- curated one (set by an admin) is never touched by a sync and wins when
-- both exist.

CREATE TABLE sources (
	id text PRIMARY KEY,			-- "warehouse"
	kind text NOT NULL CHECK (kind IN ('postgres', 'bigquery')),
	last_synced_at timestamptz
);

-- Words of an identifier: snake_case and camelCase split, lower case
-- ("orderItems" and "order_items" -> "order items").
CREATE FUNCTION ident_words(s text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
	SELECT lower(regexp_replace(regexp_replace(s, '([a-z0-9])([A-Z])', '\1 \2', 'g'),
	                            '[^[:alnum:]]+', ' ', 'g'))
$$;

CREATE TABLE tables (
	id bigserial PRIMARY KEY,
	source_id text NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
	schema_name text NOT NULL,
	name text NOT NULL,
	description text,			-- from the warehouse (COMMENT ON TABLE)
	description_curated text,		-- set by an admin; survives syncs
	row_count bigint,			-- the warehouse's estimate
	bytes bigint,
	last_synced_at timestamptz,
	removed_at timestamptz,			-- gone from the warehouse at this sync
	-- Full-text search over the table's name (weight A), its description
	-- (B), its columns' names (C) and descriptions (D); names are indexed
	-- both stemmed (english) and as words (simple). Rebuilt by each sync
	-- and when a description is curated (search_refresh).
	search tsvector NOT NULL DEFAULT ''::tsvector,
	UNIQUE (source_id, schema_name, name)
);
CREATE INDEX tables_search ON tables USING gin (search);

CREATE TABLE columns (
	table_id bigint NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
	position int NOT NULL,
	name text NOT NULL,
	type text NOT NULL,
	nullable boolean NOT NULL DEFAULT true,
	description text,
	description_curated text,
	PRIMARY KEY (table_id, name)
);

CREATE TABLE schema_changes (
	id bigserial PRIMARY KEY,
	table_id bigint NOT NULL REFERENCES tables (id) ON DELETE CASCADE,
	change text NOT NULL CHECK (change IN ('added', 'removed', 'changed')),
	column_name text NOT NULL,
	old_type text,
	new_type text,
	at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schema_changes_table ON schema_changes (table_id, at);

-- Every meta.query, accepted or refused: who, what, and what came of it.
CREATE TABLE queries (
	id bigserial PRIMARY KEY,
	user_id text NOT NULL,
	source_id text,
	sql text NOT NULL,
	status text NOT NULL CHECK (status IN ('ok', 'rejected', 'error')),
	rows bigint,
	bytes bigint,
	duration_ms bigint,
	error text,
	at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX queries_user_at ON queries (user_id, at);

-- Rebuild the search vectors of a source's tables.
CREATE FUNCTION search_refresh(src text) RETURNS void
LANGUAGE sql AS $$
	UPDATE tables t SET search =
	    setweight(to_tsvector('english', ident_words(t.name)), 'A') ||
	    setweight(to_tsvector('simple', ident_words(t.name)), 'A') ||
	    setweight(to_tsvector('english',
	        coalesce(t.description_curated, t.description, '')), 'B') ||
	    setweight(to_tsvector('english', coalesce(c.names, '')), 'C') ||
	    setweight(to_tsvector('simple', coalesce(c.names, '')), 'C') ||
	    setweight(to_tsvector('english', coalesce(c.descs, '')), 'D')
	FROM (SELECT t2.id,
	             string_agg(ident_words(col.name), ' ') AS names,
	             string_agg(coalesce(col.description_curated, col.description, ''), ' ') AS descs
	      FROM tables t2 LEFT JOIN columns col ON col.table_id = t2.id
	      WHERE t2.source_id = src
	      GROUP BY t2.id) c
	WHERE t.id = c.id
$$;
