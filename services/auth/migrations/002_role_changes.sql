-- Admin rights come from an operator (mark-auth --grant-admin), never from
-- an email at sign-up; every change of role is recorded here.
CREATE TABLE role_changes (
	id bigserial PRIMARY KEY,
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	email text NOT NULL,
	role text NOT NULL CHECK (role IN ('user', 'admin')),
	changed_by text NOT NULL,
	changed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX role_changes_user ON role_changes (user_id);
