-- The sandbox a chat's live session holds, as its backend names it (the
-- Daytona sandbox id; NULL for local sandboxes, which die with their
-- worker). Any worker can take the session over from it: after a worker
-- restarts or dies, the chat's next run re-attaches to the same sandbox and
-- its Python state, instead of starting over.
ALTER TABLE sessions ADD COLUMN sandbox text;
