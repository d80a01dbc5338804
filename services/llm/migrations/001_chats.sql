-- Chats and their messages (schema chat). Owners are auth's user ids; no
-- foreign key crosses schemas: each service owns only its own tables.

CREATE TABLE chats (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	owner_id uuid NOT NULL,
	title text NOT NULL DEFAULT '',
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);
-- A user's chats, most recently active first (and the cursor's tie-break).
CREATE INDEX chats_owner_recent ON chats (owner_id, updated_at DESC, id DESC);

CREATE TABLE messages (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	chat_id uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
	seq bigserial NOT NULL,
	role text NOT NULL CHECK (role IN ('user', 'assistant', 'tool')),
	content jsonb NOT NULL DEFAULT '[]',	-- parts: [{"type":"text","text":...}, ...]
	attachments jsonb NOT NULL DEFAULT '[]',
	steps jsonb,				-- tool calls with their code/SQL and outputs
	usage jsonb,				-- {"prompt_tokens","completion_tokens"}
	error jsonb,				-- {"code","message"} when the turn failed
	feedback jsonb,				-- {"rating","comment","at"}
	tokens int NOT NULL DEFAULT 0,		-- estimated size in the model's context
	created_at timestamptz NOT NULL DEFAULT now()
);
-- A chat's messages in order.
CREATE UNIQUE INDEX messages_chat_seq ON messages (chat_id, seq);
