-- The decisions table changes only the way the adapter changes it, for every
-- role (the instances need INSERT and UPDATE on it, so grants alone cannot
-- say this; see docs/postgres.md, "Least privilege"):
--
-- - a new row is a decision, with its approval (if any) pending;
-- - a row's id, actor, tenant, time and call digest never change, so a deny
--   cannot be moved out of the escalation window or to another actor;
-- - its action, escalated, approvers and expiry change only when the adapter
--   stores again, under the same id, the record_unavailable deny that
--   replaced a decision whose record could not be written (from no approval
--   or a pending one, never from an answered one);
-- - an approval moves only pending -> answering -> approved | rejected (or
--   back to pending), or pending -> expired; an answer never changes again;
-- - where this schema keeps the decision's records, an approval or rejection
--   needs its record, by the same reviewer, already written (the adapter
--   writes it in the same transaction, before the answer).
--
-- Whoever owns the table can still disable the trigger: `veto log verify
-- --postgres` checks the rows against the records for that.
CREATE FUNCTION refuse_decision_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  answer text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.approval_status IS DISTINCT FROM 'pending' AND NEW.approval_status IS NOT NULL
       OR NEW.reviewer_id IS NOT NULL OR NEW.answered_at_ms IS NOT NULL THEN
      RAISE EXCEPTION 'veto: decision % must be inserted with its approval pending or none', NEW.id
        USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
  END IF;

  IF (NEW.id, NEW.actor_id, NEW.tenant_id, NEW.at_ms, NEW.call_digest)
     IS DISTINCT FROM (OLD.id, OLD.actor_id, OLD.tenant_id, OLD.at_ms, OLD.call_digest) THEN
    RAISE EXCEPTION 'veto: the id, actor, tenant, time and call digest of decision % never change', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;

  IF (NEW.action, NEW.escalated, NEW.approvers, NEW.expires_at_ms)
     IS DISTINCT FROM (OLD.action, OLD.escalated, OLD.approvers, OLD.expires_at_ms) THEN
    IF NEW.action = 'deny' AND NOT NEW.escalated AND NEW.approvers = '{}'
       AND NEW.approval_status IS NULL AND NEW.expires_at_ms IS NULL
       AND NEW.reviewer_id IS NULL AND NEW.note IS NULL AND NEW.answered_at_ms IS NULL
       AND coalesce(OLD.approval_status, 'pending') = 'pending' THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'veto: decision % can only be replaced by the deny that superseded it', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;

  IF NEW.approval_status IS DISTINCT FROM OLD.approval_status THEN
    IF coalesce(OLD.approval_status, '-') || '>' || coalesce(NEW.approval_status, '-') NOT IN
       ('pending>answering', 'answering>pending', 'answering>approved', 'answering>rejected', 'pending>expired') THEN
      RAISE EXCEPTION 'veto: the approval of decision % cannot move from % to %',
        OLD.id, coalesce(OLD.approval_status, 'none'), coalesce(NEW.approval_status, 'none')
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
  ELSIF (NEW.reviewer_id, NEW.note, NEW.answered_at_ms) IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms) THEN
    RAISE EXCEPTION 'veto: the answer of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER decisions_guard
  BEFORE INSERT OR UPDATE ON decisions
  FOR EACH ROW EXECUTE FUNCTION refuse_decision_change();
