-- Streamed turns and their events, so that any llm replica can serve a
-- turn's events (chat.turn_events), and a turn whose replica stopped is
-- seen to be over: the running replica beats heartbeat_at.
CREATE TABLE turns (
	id uuid PRIMARY KEY,
	owner_id uuid NOT NULL,
	chat_id uuid NOT NULL,
	replica text NOT NULL,			-- the llm process running it
	done boolean NOT NULL DEFAULT false,
	heartbeat_at timestamptz NOT NULL DEFAULT now(),
	created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX turns_running ON turns (replica) WHERE NOT done;
CREATE INDEX turns_created ON turns (created_at);

CREATE TABLE turn_events (
	turn_id uuid NOT NULL REFERENCES turns (id) ON DELETE CASCADE,
	seq int NOT NULL,
	event text NOT NULL,
	data jsonb NOT NULL,
	PRIMARY KEY (turn_id, seq)
);
