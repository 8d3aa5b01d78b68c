-- The state of the CRM record a require_approval call targets, as the
-- application's recordState gave it when the call needed approval
-- (docs/contract.md §6, record state): the approved call runs only while the
-- record is still in it. Null when no state was bound. Like the call digest
-- it is fixed with the decision: no update changes it.
ALTER TABLE decisions ADD COLUMN record_state text;

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
