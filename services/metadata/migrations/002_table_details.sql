-- What a warehouse tells of a table besides its columns, and each
-- column's mode: kept so the model knows how a table is partitioned (and
-- must be filtered) and which columns repeat.
--
-- A nested field (BigQuery RECORD) is a column of its own named by its
-- dotted path ("items.sku"), placed right after its parent.

ALTER TABLE tables
	ADD COLUMN kind text,			-- TABLE, VIEW, MATERIALIZED VIEW, EXTERNAL, ...
	ADD COLUMN partitioning text,		-- "DAY on order_date", a Postgres partition key, ...
	ADD COLUMN clustering text,		-- "customer_id, country"
	ADD COLUMN labels jsonb;		-- {"team": "sales"}

ALTER TABLE columns
	ADD COLUMN mode text;			-- NULLABLE, REQUIRED or REPEATED
