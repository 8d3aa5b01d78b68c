-- One-time tokens used (the approval inbox's sign-in links, docs/inbox.md):
-- an id is inserted once; a second insert of it finds it and is refused, in
-- every process on this schema. Rows past their expiry no longer matter (the
-- token itself has expired) and are deleted as new ones arrive.
CREATE TABLE used_tokens (
  id text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 256),
  expires_at_ms bigint NOT NULL,
  used_at_ms bigint NOT NULL
);
CREATE INDEX used_tokens_expiry ON used_tokens (expires_at_ms);
