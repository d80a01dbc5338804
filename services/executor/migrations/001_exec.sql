-- The executor's records (schema exec): the session of each chat, every
-- execution (the audit log of all code run), the files put into a chat's
-- workspace (kept, so a new session gets them back) and the artifacts code
-- produced. Owners and chats are other services' ids: no foreign key
-- crosses schemas.

-- One row per chat that ever ran code: which sandbox generation it is on and
-- how the last one ended, so a new sandbox can tell the model why its
-- variables are gone.
CREATE TABLE sessions (
	chat_id text PRIMARY KEY,
	owner_id text NOT NULL,
	worker_id text,
	generation int NOT NULL DEFAULT 0,	-- sandboxes started for this chat
	executions int NOT NULL DEFAULT 0,	-- runs in the current generation
	live boolean NOT NULL DEFAULT false,
	end_reason text,			-- reset, idle_timeout, evicted, wall_time, crashed, worker_lost, shutdown
	started_at timestamptz,
	last_used_at timestamptz,
	ended_at timestamptz
);

CREATE TABLE executions (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	chat_id text NOT NULL,
	user_id text NOT NULL,
	worker_id text NOT NULL,
	generation int NOT NULL,
	code text NOT NULL,
	started_at timestamptz NOT NULL,
	ended_at timestamptz NOT NULL,
	status text NOT NULL CHECK (status IN ('ok', 'error', 'limit', 'lost')),
	error_type text,
	limit_hit text,
	stdout_bytes bigint NOT NULL DEFAULT 0,
	stderr_bytes bigint NOT NULL DEFAULT 0,
	result_bytes bigint NOT NULL DEFAULT 0
);
CREATE INDEX executions_chat ON executions (chat_id, started_at);
CREATE INDEX executions_user ON executions (user_id, started_at);

CREATE TABLE files (
	chat_id text NOT NULL,
	path text NOT NULL,
	owner_id text NOT NULL,
	data bytea NOT NULL,
	bytes bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (chat_id, path)
);

CREATE TABLE artifacts (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	chat_id text NOT NULL,
	owner_id text NOT NULL,
	execution_id uuid REFERENCES executions (id) ON DELETE CASCADE,
	name text NOT NULL,
	mime text NOT NULL,
	data bytea NOT NULL,
	bytes bigint NOT NULL,
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX artifacts_chat ON artifacts (chat_id);
