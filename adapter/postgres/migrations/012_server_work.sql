-- Less work per decision in the server, the same refusals (docs/postgres.md,
-- "Cost"; docs/contract.md §3, §7). Measured per single-row statement on an
-- otherwise idle server, what a decision's write spent beyond the insert
-- itself went mostly to work PostgreSQL redoes for every statement, not to
-- the rows: each CHECK constraint is read back from the catalog's text form
-- and planned again for every INSERT (nine of them: ~40 µs per statement),
-- and the two statements of a group that are built anew each time (the deny
-- counts, and sealing the records with a recursive query) were parsed and
-- planned again every time (~400 µs of a decision's server time alone).
--
-- 1. The nine CHECK constraints of decisions become the last thing the
--    guard trigger checks (BEFORE INSERT OR UPDATE, every row: what a CHECK
--    constraint sees), in a PL/pgSQL function whose expressions are
--    prepared once per session. Same names, SQLSTATE (23514
--    check_violation) and message; a check that yields null passes, as in a
--    CHECK constraint. The rule of decisions_record_state_fixed moves into
--    the same function, between the guard's rules and the checks: each
--    change is refused by the same rule, with the same error, as before
--    (the triggers ran guard, then record state, then the constraints).
--    Whoever owns the table could drop a constraint as well as disable a
--    trigger; `veto log verify --postgres` checks the rows either way.
-- 2. lock_and_count and append_records: the group's statements as
--    functions (the first also takes the keys' locks: one statement for all
--    of them instead of one each), whose plans are kept per session, and
--    generic ones: a custom plan, which PostgreSQL kept choosing for the
--    count, is planned anew on every call (~80-125 µs). Both say exactly
--    what the statements said (adapter/postgres/batch.ts, decision-row.ts
--    recentDeniesSql); the chain format does not change.

ALTER TABLE decisions
  DROP CONSTRAINT decisions_action_check,
  DROP CONSTRAINT decisions_approval_status_check,
  DROP CONSTRAINT approval_only_when_required,
  DROP CONSTRAINT approval_bound_to_call,
  DROP CONSTRAINT answer_has_reviewer,
  DROP CONSTRAINT executed_has_time,
  DROP CONSTRAINT review_only_when_required,
  DROP CONSTRAINT amended_names_its_amendment,
  DROP CONSTRAINT amended_calls_never_count;

-- The guard of 010, then the rule of 009's record-state trigger, then the row checks.
CREATE OR REPLACE FUNCTION refuse_decision_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  answer text;
  checked text;
BEGIN
  -- The rules of 010, each refusal as it was; what they let through then passes the row checks.
  <<transition>>
  BEGIN
    IF TG_OP = 'INSERT' THEN
      IF NEW.approval_status IS DISTINCT FROM 'pending' AND NEW.approval_status IS NOT NULL
         OR NEW.reviewer_id IS NOT NULL OR NEW.answered_at_ms IS NOT NULL OR NEW.executed_at_ms IS NOT NULL
         OR NEW.amended_to IS NOT NULL THEN
        RAISE EXCEPTION 'veto: decision % must be inserted with its approval pending or none', NEW.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      EXIT transition;
    END IF;

    IF (NEW.id, NEW.actor_id, NEW.tenant_id, NEW.at_ms, NEW.call_digest)
       IS DISTINCT FROM (OLD.id, OLD.actor_id, OLD.tenant_id, OLD.at_ms, OLD.call_digest) THEN
      RAISE EXCEPTION 'veto: the id, actor, tenant, time and call digest of decision % never change', OLD.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;

    IF NEW.amendment IS DISTINCT FROM OLD.amendment THEN
      RAISE EXCEPTION 'veto: the amendment of decision % never changes', OLD.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;

    IF (NEW.action, NEW.escalated, NEW.approvers, NEW.expires_at_ms, NEW.review)
       IS DISTINCT FROM (OLD.action, OLD.escalated, OLD.approvers, OLD.expires_at_ms, OLD.review) THEN
      IF NEW.action = 'deny' AND NOT NEW.escalated AND NEW.approvers = '{}'
         AND NEW.approval_status IS NULL AND NEW.expires_at_ms IS NULL AND NEW.review IS NULL
         AND NEW.reviewer_id IS NULL AND NEW.note IS NULL AND NEW.answered_at_ms IS NULL
         AND coalesce(OLD.approval_status, 'pending') = 'pending' THEN
        EXIT transition;
      END IF;
      RAISE EXCEPTION 'veto: decision % can only be replaced by the deny that superseded it', OLD.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;

    IF NEW.approval_status IS DISTINCT FROM OLD.approval_status THEN
      IF coalesce(OLD.approval_status, '-') || '>' || coalesce(NEW.approval_status, '-') NOT IN
         ('pending>answering', 'answering>pending', 'answering>approved', 'answering>rejected', 'pending>expired',
          'approved>executed', 'answering>amended') THEN
        RAISE EXCEPTION 'veto: the approval of decision % cannot move from % to %',
          OLD.id, coalesce(OLD.approval_status, 'none'), coalesce(NEW.approval_status, 'none')
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.approval_status = 'executed' THEN
        IF (NEW.reviewer_id, NEW.note, NEW.answered_at_ms) IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms) THEN
          RAISE EXCEPTION 'veto: the answer of decision % never changes', OLD.id
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'decision')
           AND NOT EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'execution'
                             AND line::jsonb -> 'result' ->> 'execution' = 'claimed') THEN
          RAISE EXCEPTION 'veto: decision % cannot be executed without its execution record', NEW.id
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        EXIT transition;
      END IF;
      IF NEW.approval_status = 'amended' THEN
        IF NEW.amended_to IS NULL THEN
          RAISE EXCEPTION 'veto: decision % cannot be amended without the amended decision''s id', NEW.id
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'decision')
           AND NOT EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'amendment'
                             AND line::jsonb ->> 'reviewer_id' = NEW.reviewer_id
                             AND line::jsonb ->> 'amended_to' = NEW.amended_to) THEN
          RAISE EXCEPTION 'veto: decision % cannot be amended without its amendment record by %', NEW.id, NEW.reviewer_id
            USING ERRCODE = 'insufficient_privilege';
        END IF;
        EXIT transition;
      END IF;
      IF NEW.amended_to IS NOT NULL THEN
        RAISE EXCEPTION 'veto: only the amendment of decision % names its amended decision', OLD.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.executed_at_ms IS NOT NULL THEN
        RAISE EXCEPTION 'veto: only the claim of decision % sets its execution time', OLD.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF NEW.approval_status IN ('approved', 'rejected')
         AND EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'decision') THEN
        answer := CASE NEW.approval_status WHEN 'approved' THEN 'approval' ELSE 'rejection' END;
        IF NOT EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = answer
                         AND line::jsonb ->> 'reviewer_id' = NEW.reviewer_id) THEN
          RAISE EXCEPTION 'veto: decision % cannot be % without its % record by %',
            NEW.id, NEW.approval_status, answer, NEW.reviewer_id
            USING ERRCODE = 'insufficient_privilege';
        END IF;
      END IF;
    ELSIF OLD.approval_status IS NULL AND OLD.executed_at_ms IS NULL AND NEW.executed_at_ms IS NOT NULL THEN
      -- The use-once claim of an amended call the policy allowed: once, with its execution record.
      IF NEW.action <> 'allow' OR NEW.amendment IS NULL
         OR (NEW.reviewer_id, NEW.note, NEW.answered_at_ms, NEW.amended_to) IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms, OLD.amended_to) THEN
        RAISE EXCEPTION 'veto: only an allowed amended call''s claim sets the execution time of decision %', OLD.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
      IF EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'decision')
         AND NOT EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'execution'
                           AND line::jsonb -> 'result' ->> 'execution' = 'claimed') THEN
        RAISE EXCEPTION 'veto: decision % cannot be executed without its execution record', NEW.id
          USING ERRCODE = 'insufficient_privilege';
      END IF;
    ELSIF (NEW.reviewer_id, NEW.note, NEW.answered_at_ms, NEW.executed_at_ms, NEW.amended_to)
          IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms, OLD.executed_at_ms, OLD.amended_to) THEN
      RAISE EXCEPTION 'veto: the answer of decision % never changes', OLD.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;
  END;

  -- The rule of decisions_record_state_fixed (009), the trigger that ran
  -- after this one, with its refusal.
  IF TG_OP = 'UPDATE' AND NEW.record_state IS DISTINCT FROM OLD.record_state THEN
    RAISE EXCEPTION 'veto: the record state of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;

  -- The table's row checks of 001, 006, 009 and 010 (CHECK constraints until
  -- this migration), after every trigger's rules as they were then, in the
  -- order PostgreSQL checks a table's constraints (by name), with the same
  -- names, code and message: a check that is false refuses the row, one that
  -- is null passes, as a CHECK constraint does.
  IF (NEW.amendment IS NULL OR NOT NEW.counts_towards_escalation) IS FALSE THEN
    checked := 'amended_calls_never_count';
  ELSIF (NEW.approval_status IS NULL OR (NEW.approval_status = 'amended') = (NEW.amended_to IS NOT NULL)) IS FALSE THEN
    checked := 'amended_names_its_amendment';
  ELSIF (NEW.approval_status NOT IN ('approved', 'rejected') OR (NEW.reviewer_id IS NOT NULL AND NEW.answered_at_ms IS NOT NULL)) IS FALSE THEN
    checked := 'answer_has_reviewer';
  ELSIF (NEW.approval_status IS NULL OR (NEW.call_digest IS NOT NULL AND NEW.expires_at_ms IS NOT NULL)) IS FALSE THEN
    checked := 'approval_bound_to_call';
  ELSIF ((NEW.action = 'require_approval') = (NEW.approval_status IS NOT NULL)) IS FALSE THEN
    checked := 'approval_only_when_required';
  ELSIF (NEW.action IN ('allow', 'deny', 'require_approval')) IS FALSE THEN
    checked := 'decisions_action_check';
  ELSIF (NEW.approval_status IN ('pending', 'answering', 'approved', 'rejected', 'expired', 'executed', 'amended')) IS FALSE THEN
    checked := 'decisions_approval_status_check';
  ELSIF (NEW.approval_status IS NULL OR (NEW.approval_status = 'executed') = (NEW.executed_at_ms IS NOT NULL)) IS FALSE THEN
    checked := 'executed_has_time';
  ELSIF (NEW.review IS NULL OR NEW.approval_status IS NOT NULL) IS FALSE THEN
    checked := 'review_only_when_required';
  END IF;
  IF checked IS NOT NULL THEN
    RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, checked
      USING ERRCODE = 'check_violation', CONSTRAINT = checked, TABLE = TG_TABLE_NAME, SCHEMA = TG_TABLE_SCHEMA;
  END IF;
  RETURN NEW;
END
$$;

DROP TRIGGER decisions_record_state_fixed ON decisions;
DROP FUNCTION refuse_record_state_change();

-- A group's first statement after BEGIN (adapter/postgres/batch.ts): each
-- (actor, tenant)'s history lock, taken only if free (`lock_keys`, given in
-- the one order every writer takes several in: sorted), then the database's
-- clock and, for each key whose lock it got, its recent denies
-- (decision-row.ts recentDeniesSql: the denies at or after now - window and
-- the rejections answered since then, of the decisions that count). The
-- count is a statement of its own after the locks, so it sees every commit
-- before them. `i` is each key's place in the arrays, from 0; `n` is null
-- for a key whose lock another transaction holds.
CREATE FUNCTION lock_and_count(lock_keys text[], actors text[], tenants text[], windows_ms bigint[])
RETURNS TABLE (now_ms bigint, i bigint, got boolean, n bigint) LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
#variable_conflict use_column
DECLARE
  held boolean[] := '{}';
  j integer;
  t bigint;
BEGIN
  FOR j IN 1 .. coalesce(cardinality(lock_keys), 0) LOOP
    held[j] := pg_try_advisory_xact_lock(hashtextextended(lock_keys[j], 0));
  END LOOP;
  t := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  RETURN QUERY
    SELECT t, k.ord - 1, k.held,
      CASE WHEN k.held THEN
        (SELECT count(*) FROM decisions d
           WHERE d.actor_id = k.actor_id AND d.tenant_id = k.tenant_id AND d.counts_towards_escalation
             AND d.action = 'deny' AND d.at_ms >= t - k.window_ms)
        + (SELECT count(*) FROM decisions d
           WHERE d.actor_id = k.actor_id AND d.tenant_id = k.tenant_id AND d.counts_towards_escalation
             AND d.approval_status = 'rejected' AND d.answered_at_ms >= t - k.window_ms)
      END
    FROM unnest(actors, tenants, windows_ms, held) WITH ORDINALITY AS k(actor_id, tenant_id, window_ms, held, ord);
END
$$;

-- Appends records to the chain where it ends, under the chain's lock (taken
-- here, on `lock_key`: connection.ts recordsLockKey, held to the end of the
-- transaction). Per record, in order: its canonical members before "hash",
-- between "hash" and "prev_hash", between "prev_hash" and "seq", after "seq"
-- (chain.ts PreparedRecord.parts; a null part is absent), its type and its
-- decision id. Each is sealed as chain.ts seals it: seq one past the entry
-- before, prev_hash that entry's hash, hash = "sha256:" + hex SHA-256 of the
-- UTF-8 canonical JSON without the hash member.
CREATE FUNCTION append_records(lock_key text, a text[], b text[], c text[], d text[], types text[], decision_ids text[])
RETURNS void LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  last_seq bigint;
  prev text;
  h text;
  k integer;
  seqs bigint[] := '{}';
  prevs text[] := '{}';
  hashes text[] := '{}';
  lines text[] := '{}';
BEGIN
  PERFORM pg_advisory_xact_lock(hashtextextended(lock_key, 0));
  -- A statement after the lock: its snapshot holds every append committed before the lock was granted.
  SELECT r.seq, r.hash INTO last_seq, prev FROM records r ORDER BY r.seq DESC LIMIT 1;
  last_seq := coalesce(last_seq, 0);
  prev := coalesce(prev, 'sha256:0000000000000000000000000000000000000000000000000000000000000000');
  FOR k IN 1 .. coalesce(cardinality(types), 0) LOOP
    h := 'sha256:' || encode(sha256(convert_to('{' || array_to_string(ARRAY[a[k], b[k],
           '"prev_hash":"' || prev || '"', c[k], '"seq":' || (last_seq + k)::text, d[k]], ',') || '}', 'UTF8')), 'hex');
    seqs[k] := last_seq + k;
    prevs[k] := prev;
    hashes[k] := h;
    lines[k] := '{' || array_to_string(ARRAY[a[k], '"hash":"' || h || '"', b[k],
           '"prev_hash":"' || prev || '"', c[k], '"seq":' || (last_seq + k)::text, d[k]], ',') || '}';
    prev := h;
  END LOOP;
  INSERT INTO records (seq, prev_hash, hash, type, decision_id, line)
    SELECT * FROM unnest(seqs, prevs, hashes, types, decision_ids, lines);
END
$$;
