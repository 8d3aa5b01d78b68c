-- Decision records (docs/contract.md §7): the file log's hash chain in a table. `line` is
-- the sealed record exactly as the file log writes a line (canonical JSON with
-- seq, prev_hash and hash); the other columns repeat parts of it for queries,
-- and `veto log verify --postgres` checks them against it.
CREATE TABLE records (
  seq         bigint PRIMARY KEY CHECK (seq >= 1),
  prev_hash   text NOT NULL,
  hash        text NOT NULL UNIQUE,
  type        text NOT NULL,
  decision_id text NOT NULL,
  line        text NOT NULL,
  written_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX records_decision ON records (decision_id);

-- Append-only: rows can be added, never changed or removed (the hash chain
-- shows tampering by anyone who gets around this, e.g. a superuser; cutting
-- records off the end needs a head kept elsewhere).
CREATE FUNCTION refuse_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'veto: records are append-only (% refused)', TG_OP
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER records_append_only
  BEFORE UPDATE OR DELETE ON records
  FOR EACH ROW EXECUTE FUNCTION refuse_record_change();

CREATE TRIGGER records_no_truncate
  BEFORE TRUNCATE ON records
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_record_change();

REVOKE UPDATE, DELETE, TRUNCATE ON records FROM PUBLIC;
