-- The workers alive, as each says every little while (seen_at). A worker
-- not heard from for DAYTONA_WORKER_LEASE is dead: the sandboxes labelled
-- with its id that no live chat session names (exec.sessions.sandbox) are
-- orphans, and any worker deletes them. A worker that stops cleanly
-- removes its row.
CREATE TABLE workers (
	worker_id text PRIMARY KEY,
	seen_at timestamptz NOT NULL DEFAULT now()
);
