-- What a reviewer sees of a require_approval decision (tool, environment, the
-- masked arguments, reasons, bundle, recentDenies), kept with the decision so
-- an approval service on this database can show it whatever record sink the
-- deciding application used; and the use-once claim (docs/contract.md §6): an
-- approved call is claimed once, approved -> executed, before it runs.
ALTER TABLE decisions ADD COLUMN review jsonb, ADD COLUMN executed_at_ms bigint;

ALTER TABLE decisions DROP CONSTRAINT decisions_approval_status_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_approval_status_check
  CHECK (approval_status IN ('pending', 'answering', 'approved', 'rejected', 'expired', 'executed'));
ALTER TABLE decisions ADD CONSTRAINT executed_has_time
  CHECK (approval_status IS NULL OR (approval_status = 'executed') = (executed_at_ms IS NOT NULL));
ALTER TABLE decisions ADD CONSTRAINT review_only_when_required
  CHECK (review IS NULL OR approval_status IS NOT NULL);

CREATE INDEX decisions_approvals ON decisions (at_ms DESC) WHERE approval_status IS NOT NULL;

-- A new approval is announced too (an approval service notifies its reviewers).
CREATE TRIGGER decisions_notify_new_approval
  AFTER INSERT ON decisions
  FOR EACH ROW WHEN (NEW.approval_status IS NOT NULL)
  EXECUTE FUNCTION notify_approval();

-- The guard of 003, with: approved -> executed (the claim; it needs its
-- execution record where this schema keeps the decision's records), the
-- review fixed with the decision (replaced only by the superseding deny, which
-- has none), and executed_at_ms set only by the claim.
CREATE OR REPLACE FUNCTION refuse_decision_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  answer text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.approval_status IS DISTINCT FROM 'pending' AND NEW.approval_status IS NOT NULL
       OR NEW.reviewer_id IS NOT NULL OR NEW.answered_at_ms IS NOT NULL OR NEW.executed_at_ms IS NOT NULL THEN
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

  IF (NEW.action, NEW.escalated, NEW.approvers, NEW.expires_at_ms, NEW.review)
     IS DISTINCT FROM (OLD.action, OLD.escalated, OLD.approvers, OLD.expires_at_ms, OLD.review) THEN
    IF NEW.action = 'deny' AND NOT NEW.escalated AND NEW.approvers = '{}'
       AND NEW.approval_status IS NULL AND NEW.expires_at_ms IS NULL AND NEW.review IS NULL
       AND NEW.reviewer_id IS NULL AND NEW.note IS NULL AND NEW.answered_at_ms IS NULL
       AND coalesce(OLD.approval_status, 'pending') = 'pending' THEN
      RETURN NEW;
    END IF;
    RAISE EXCEPTION 'veto: decision % can only be replaced by the deny that superseded it', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;

  IF NEW.approval_status IS DISTINCT FROM OLD.approval_status THEN
    IF coalesce(OLD.approval_status, '-') || '>' || coalesce(NEW.approval_status, '-') NOT IN
       ('pending>answering', 'answering>pending', 'answering>approved', 'answering>rejected', 'pending>expired',
        'approved>executed') THEN
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
      RETURN NEW;
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
  ELSIF (NEW.reviewer_id, NEW.note, NEW.answered_at_ms, NEW.executed_at_ms)
        IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms, OLD.executed_at_ms) THEN
    RAISE EXCEPTION 'veto: the answer of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
