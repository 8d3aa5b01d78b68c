-- The adapter's own fail-closed denies (evaluation_error, record_unavailable)
-- are remembered but do not count towards recentDenies: an outage of the log or
-- the database is not the actor's doing (docs/contract.md §3). Rows written
-- before this migration count, as they did.
ALTER TABLE decisions ADD COLUMN counts_towards_escalation boolean NOT NULL DEFAULT true;

DROP INDEX decisions_denies;
CREATE INDEX decisions_denies ON decisions (actor_id, tenant_id, at_ms) WHERE action = 'deny' AND counts_towards_escalation;
