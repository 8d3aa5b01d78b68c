-- Deny history and approvals shared by every instance.
-- Applied with search_path set to the store's schema: names are unqualified.

-- One row per decision. A deny counts towards (actor_id, tenant_id) at at_ms;
-- a rejected approval counts at answered_at_ms.
CREATE TABLE decisions (
  id              text PRIMARY KEY,
  action          text NOT NULL CHECK (action IN ('allow', 'deny', 'require_approval')),
  escalated       boolean NOT NULL,
  actor_id        text,
  tenant_id       text,
  at_ms           bigint NOT NULL,
  -- Digest of tool, arguments and context: the only call an approval authorizes.
  call_digest     text,
  approvers       text[] NOT NULL DEFAULT '{}',
  approval_status text CHECK (approval_status IN ('pending', 'answering', 'approved', 'rejected', 'expired')),
  expires_at_ms   bigint,
  reviewer_id     text,
  note            text,
  answered_at_ms  bigint,
  -- An approval exists exactly for require_approval decisions, and is bound to a call.
  CONSTRAINT approval_only_when_required CHECK ((action = 'require_approval') = (approval_status IS NOT NULL)),
  CONSTRAINT approval_bound_to_call CHECK (approval_status IS NULL OR (call_digest IS NOT NULL AND expires_at_ms IS NOT NULL)),
  CONSTRAINT answer_has_reviewer CHECK (approval_status NOT IN ('approved', 'rejected') OR (reviewer_id IS NOT NULL AND answered_at_ms IS NOT NULL))
);

CREATE INDEX decisions_denies ON decisions (actor_id, tenant_id, at_ms) WHERE action = 'deny';
CREATE INDEX decisions_rejections ON decisions (actor_id, tenant_id, answered_at_ms) WHERE approval_status = 'rejected';
CREATE INDEX decisions_at ON decisions (at_ms);

-- Waiting instances LISTEN on veto_approval; the payload names the schema and
-- the decision. Sent at commit, so a waiter never sees an uncommitted answer.
CREATE FUNCTION notify_approval() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('veto_approval', json_build_array(TG_TABLE_SCHEMA, NEW.id)::text);
  RETURN NULL;
END
$$;

CREATE TRIGGER decisions_notify_approval
  AFTER UPDATE OF approval_status ON decisions
  FOR EACH ROW WHEN (OLD.approval_status IS DISTINCT FROM NEW.approval_status)
  EXECUTE FUNCTION notify_approval();
