-- An amended call is the reviewer's, not the agent's (docs/contract.md §6,
-- amend; §9, what counts towards escalation): nothing that becomes of it, its
-- deny or the rejection of its approval, counts towards the actor's
-- recentDenies. Rows written before this migration are set so, and the table
-- holds it from now on; rejections count only where the decision counts.
UPDATE decisions SET counts_towards_escalation = false WHERE amendment IS NOT NULL AND counts_towards_escalation;
ALTER TABLE decisions ADD CONSTRAINT amended_calls_never_count
  CHECK (amendment IS NULL OR NOT counts_towards_escalation);

DROP INDEX decisions_rejections;
CREATE INDEX decisions_rejections ON decisions (actor_id, tenant_id, answered_at_ms)
  WHERE approval_status = 'rejected' AND counts_towards_escalation;

-- An amended call the policy allowed has no approval to claim: the waiting
-- agent claims it once by setting its execution time (approval none, action
-- allow), with its execution record where this schema keeps the decision's
-- records (docs/contract.md §6, use once). The guard of 009, with that move.
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
  RETURN NEW;
END
$$;
