-- Signed checkpoints of the records chain (docs/decision-log.md). A
-- checkpoint is a row of records like any record (type 'checkpoint', its line
-- `{"checkpoint":{...},"hash":...,"prev_hash":...,"seq":...}`), chained and
-- append-only. This adds the id every checkpoint of this table names, so a
-- checkpoint of one records table cannot pass for one of another, and an
-- index to find the last checkpoint under the chain lock.
CREATE TABLE record_log (
  only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  log_id   text NOT NULL CHECK (log_id ~ '^[0-9a-f]{32}$')
);

INSERT INTO record_log (log_id) VALUES (replace(gen_random_uuid()::text, '-', ''));

CREATE TRIGGER record_log_append_only
  BEFORE UPDATE OR DELETE ON record_log
  FOR EACH ROW EXECUTE FUNCTION refuse_record_change();

CREATE TRIGGER record_log_no_truncate
  BEFORE TRUNCATE ON record_log
  FOR EACH STATEMENT EXECUTE FUNCTION refuse_record_change();

REVOKE UPDATE, DELETE, TRUNCATE ON record_log FROM PUBLIC;

CREATE INDEX records_checkpoints ON records (seq) WHERE type = 'checkpoint';
