-- The state of the CRM record a require_approval call targets, as the
-- application's recordState gave it when the call needed approval
-- (docs/contract.md §6, record state): the approved call runs only while the
-- record is still in it. Null when no state was bound. Like the call digest
-- it is fixed with the decision: no update changes it.
--
-- Amend (docs/contract.md §6): an approver may amend a pending call instead of
-- answering it. The original moves answering -> amended, naming the amended
-- call's decision (amended_to), and needs its amendment record by that
-- reviewer where this schema keeps the decision's records; the amended call's
-- decision keeps its amendment (amendment: from, by, the call, the decision),
-- fixed with the decision.
ALTER TABLE decisions ADD COLUMN record_state text, ADD COLUMN amended_to text, ADD COLUMN amendment jsonb;

ALTER TABLE decisions DROP CONSTRAINT decisions_approval_status_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_approval_status_check
  CHECK (approval_status IN ('pending', 'answering', 'approved', 'rejected', 'expired', 'executed', 'amended'));
ALTER TABLE decisions ADD CONSTRAINT amended_names_its_amendment
  CHECK (approval_status IS NULL OR (approval_status = 'amended') = (amended_to IS NOT NULL));

CREATE OR REPLACE FUNCTION refuse_record_state_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.record_state IS DISTINCT FROM OLD.record_state THEN
    RAISE EXCEPTION 'veto: the record state of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;

CREATE TRIGGER decisions_record_state_fixed
  BEFORE UPDATE ON decisions
  FOR EACH ROW EXECUTE FUNCTION refuse_record_state_change();

-- The guard of 006, with: answering -> amended (it needs its amendment record),
-- amended_to set only by that move, and the amendment fixed with the decision.
CREATE OR REPLACE FUNCTION refuse_decision_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  answer text;
BEGIN
  IF TG_OP = 'INSERT' THEN
    IF NEW.approval_status IS DISTINCT FROM 'pending' AND NEW.approval_status IS NOT NULL
       OR NEW.reviewer_id IS NOT NULL OR NEW.answered_at_ms IS NOT NULL OR NEW.executed_at_ms IS NOT NULL
       OR NEW.amended_to IS NOT NULL THEN
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
      RETURN NEW;
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
      RETURN NEW;
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
      RETURN NEW;
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
  ELSIF (NEW.reviewer_id, NEW.note, NEW.answered_at_ms, NEW.executed_at_ms, NEW.amended_to)
        IS DISTINCT FROM (OLD.reviewer_id, OLD.note, OLD.answered_at_ms, OLD.executed_at_ms, OLD.amended_to) THEN
    RAISE EXCEPTION 'veto: the answer of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$$;
