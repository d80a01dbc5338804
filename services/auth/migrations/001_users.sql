-- Accounts, refresh tokens and sign-in throttling (schema auth).

CREATE TABLE users (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	email text NOT NULL UNIQUE,
	name text NOT NULL DEFAULT '',
	password_hash text NOT NULL,
	role text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
	created_at timestamptz NOT NULL DEFAULT now(),
	updated_at timestamptz NOT NULL DEFAULT now()
);

-- Refresh tokens are stored only as SHA-256 hashes. Tokens issued from one
-- sign-in share a family; presenting a used token revokes its family.
CREATE TABLE refresh_tokens (
	id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
	user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	family_id uuid NOT NULL,
	token_hash bytea NOT NULL UNIQUE,
	created_at timestamptz NOT NULL DEFAULT now(),
	expires_at timestamptz NOT NULL,
	used_at timestamptz,
	revoked_at timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

-- Failed sign-ins per key ("acct-ip:<email>|<ip>", "acct:<email>", "ip:<ip>").
CREATE TABLE signin_throttle (
	key text PRIMARY KEY,
	failures int NOT NULL DEFAULT 0,
	window_start timestamptz NOT NULL DEFAULT now(),
	lockouts int NOT NULL DEFAULT 0,
	locked_until timestamptz
);
