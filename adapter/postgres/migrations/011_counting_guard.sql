-- Whether a decision counts towards its actor's recentDenies changes only the
-- way the adapter changes it (docs/contract.md §3): a decision whose record
-- could not be written is replaced by the record_unavailable deny, which does
-- not count. Anything else would take denies out of the escalation count as
-- surely as moving their time or deleting their rows, so the table refuses it:
--
-- - a row stops counting only as that replacing deny (no approval, no answer,
--   not escalated); a deny only while none of its decision records answers
--   anything but record_unavailable alone (where this schema keeps the
--   records). A row that was not a deny removes nothing from the count, so its
--   replacement is taken even when its own record was committed and the
--   answer to its COMMIT was lost (the adapter then replaces it all the same);
-- - a row that does not count never starts counting again.
--
-- A trigger of its own beside decisions_guard (003, 009, 010), so the two
-- read separately. `veto log verify --postgres` names a deny row that does not
-- count although its record says it does, for an owner who got around this.
CREATE FUNCTION refuse_counting_change() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  IF NEW.counts_towards_escalation IS NOT DISTINCT FROM OLD.counts_towards_escalation THEN
    RETURN NEW;
  END IF;
  IF OLD.counts_towards_escalation AND NOT NEW.counts_towards_escalation
     AND NEW.action = 'deny' AND NOT NEW.escalated AND NEW.approvers = '{}'
     AND NEW.approval_status IS NULL AND NEW.expires_at_ms IS NULL AND NEW.review IS NULL
     AND NEW.reviewer_id IS NULL AND NEW.note IS NULL AND NEW.answered_at_ms IS NULL
     AND coalesce(OLD.approval_status, 'pending') = 'pending'
     AND (OLD.action <> 'deny'
          OR NOT EXISTS (SELECT 1 FROM records WHERE decision_id = NEW.id AND type = 'decision'
                           AND NOT coalesce(CASE WHEN jsonb_typeof(line::jsonb -> 'result' -> 'reasons') = 'array'
                                                 THEN jsonb_array_length(line::jsonb -> 'result' -> 'reasons') = 1
                                                      AND line::jsonb -> 'result' -> 'reasons' -> 0 ->> 'code' = 'record_unavailable'
                                            END, false))) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'veto: whether decision % counts towards escalation changes only when a deny replaces it for want of its record', OLD.id
    USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER decisions_counting_guard
  BEFORE UPDATE OF counts_towards_escalation ON decisions
  FOR EACH ROW EXECUTE FUNCTION refuse_counting_change();
