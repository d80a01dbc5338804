-- Files users upload to analyse (POST /api/v1/files). An upload belongs to
-- its owner alone; a chat turn copies it into a chat's kept files
-- (exec.attach), so deleting an upload leaves the chats that used it
-- untouched. `kind` is what the content is, whatever its name says.

CREATE TABLE uploads (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	owner_id text NOT NULL,
	name text NOT NULL,
	kind text NOT NULL CHECK (kind IN ('csv', 'tsv', 'excel', 'parquet', 'json')),
	mime text NOT NULL,
	data bytea NOT NULL,
	bytes bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
-- The owner's uploads, newest first, paged by (created_at, id).
CREATE INDEX uploads_owner ON uploads (owner_id, created_at DESC, id DESC);
