-- Counting an (actor, tenant)'s recent denies without reading each one
-- (docs/contract.md §3; docs/postgres.md, "Counting denies"). Until now the
-- count visited every deny of the key in the window: an agent that keeps
-- being denied, which is what escalation is for, made each of its next
-- decisions slower (586 denies in the window: 0.43 ms of index and heap
-- reads per count, growing without bound), while holding its key's lock.
--
-- Each deny that counts towards escalation gets its key's next ordinal when
-- it is inserted (1, 2, 3, ...), unless it is timed before the key's last
-- numbered deny. So a key's numbered denies are in time order, and those at
-- or after any moment are the ordinals from the first of them to the last:
-- two index probes.
--
-- - Numbering takes a lock of its own per key (beside the history lock the
--   adapter holds, which makes it free there), so writers that do not hold
--   the history lock still number one at a time; and no two denies of a key
--   share an ordinal (a unique index).
-- - A deny timed before the key's last numbered deny (a database clock set
--   back, a store's caller appending history out of order) is a late deny:
--   no ordinal, counted one by one; so is a deny written in a transaction
--   that reads from an older snapshot (REPEATABLE READ, SERIALIZABLE). A
--   deny without its actor or tenant is never counted, and not numbered.
-- - A numbered deny that stops counting (replaced by the record_unavailable
--   deny that does not count: 011) keeps its ordinal and is subtracted, one
--   by one. Both kinds are rare, and share a small index.
-- - An ordinal never changes (decisions_deny_ordinal_fixed), and is never
--   given twice while a lower ordinal of its key remains. A numbered deny
--   deleted while a lower one of its key remains leaves a gap, which is
--   kept (deny_ordinal_gaps) and subtracted where it falls between the first
--   and last ordinals counted; the key's next ordinal is past its gaps too.
--   Deleting a key's oldest denies (the retention job) leaves none.
--
-- Rejections answered in the window are counted as before: owners make
-- them, not agents, and they are few.

ALTER TABLE decisions ADD COLUMN deny_ordinal bigint;

-- The denies that count today, of keys with an actor and a tenant, numbered
-- per key in time order (and by id where two share a time). Only this column
-- changes: the table's triggers (guards and notifications) have nothing to
-- say about it.
ALTER TABLE decisions DISABLE TRIGGER USER;
UPDATE decisions d SET deny_ordinal = o.n
  FROM (SELECT id, row_number() OVER (PARTITION BY actor_id, tenant_id ORDER BY at_ms, id) AS n
          FROM decisions WHERE action = 'deny' AND counts_towards_escalation
           AND actor_id IS NOT NULL AND tenant_id IS NOT NULL) o
 WHERE d.id = o.id;
ALTER TABLE decisions ENABLE TRIGGER USER;

CREATE UNIQUE INDEX decisions_deny_ordinals ON decisions (actor_id, tenant_id, deny_ordinal)
  WHERE deny_ordinal IS NOT NULL;
CREATE INDEX decisions_deny_times ON decisions (actor_id, tenant_id, at_ms, deny_ordinal)
  WHERE deny_ordinal IS NOT NULL;
-- The exceptions, each counted one by one: late denies (counted, no ordinal)
-- and numbered denies that stopped counting.
CREATE INDEX decisions_deny_exceptions ON decisions (actor_id, tenant_id, at_ms)
  WHERE (deny_ordinal IS NULL) = (action = 'deny' AND counts_towards_escalation);
DROP INDEX decisions_denies;

-- The functions below run as the table's owner (SECURITY DEFINER) and keep
-- this search path (FROM CURRENT): a caller's temporary tables come last in
-- it, so none can stand in for this schema's tables.
SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);

-- The ordinals of numbered denies deleted while a lower ordinal of their key
-- remained. Read and written only by this migration's functions, as the
-- table's owner (SECURITY DEFINER): the roles that write and count decisions
-- need no grant on it.
CREATE TABLE deny_ordinal_gaps (
  actor_id     text NOT NULL,
  tenant_id    text NOT NULL,
  deny_ordinal bigint NOT NULL,
  PRIMARY KEY (actor_id, tenant_id, deny_ordinal)
);
REVOKE ALL ON deny_ordinal_gaps FROM PUBLIC;

-- After a DELETE: each numbered deny gone while a lower ordinal of its key
-- remains is a gap; gaps below every ordinal of their key that remains
-- (a key's oldest denies deleted) no longer matter, and go.
CREATE FUNCTION note_deny_gaps() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO deny_ordinal_gaps (actor_id, tenant_id, deny_ordinal)
    SELECT g.actor_id, g.tenant_id, g.deny_ordinal FROM gone g
     WHERE g.deny_ordinal IS NOT NULL AND g.actor_id IS NOT NULL AND g.tenant_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM decisions d
                    WHERE d.actor_id = g.actor_id AND d.tenant_id = g.tenant_id
                      AND d.deny_ordinal IS NOT NULL AND d.deny_ordinal < g.deny_ordinal)
    ON CONFLICT DO NOTHING;
  DELETE FROM deny_ordinal_gaps o
   USING (SELECT DISTINCT g.actor_id, g.tenant_id FROM gone g WHERE g.deny_ordinal IS NOT NULL) k
   WHERE o.actor_id = k.actor_id AND o.tenant_id = k.tenant_id
     AND NOT EXISTS (SELECT 1 FROM decisions d
                      WHERE d.actor_id = o.actor_id AND d.tenant_id = o.tenant_id
                        AND d.deny_ordinal IS NOT NULL AND d.deny_ordinal < o.deny_ordinal);
  RETURN NULL;
END
$$;
CREATE TRIGGER decisions_deny_gaps
  AFTER DELETE ON decisions REFERENCING OLD TABLE AS gone
  FOR EACH STATEMENT EXECUTE FUNCTION note_deny_gaps();

CREATE FUNCTION number_denies() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path FROM CURRENT AS $$
DECLARE
  last_at bigint;
  last_n bigint;
BEGIN
  IF TG_OP = 'UPDATE' THEN
    RAISE EXCEPTION 'veto: the deny ordinal of decision % never changes', OLD.id
      USING ERRCODE = 'insufficient_privilege';
  END IF;
  -- Numbered: a deny that counts, of a whole key (a key without its actor or
  -- tenant is never counted: every count matches keys by equality, and its
  -- writers hold no history lock, so they take no lock here either), written
  -- by a READ COMMITTED statement (which sees, once the lock below is
  -- granted, every deny numbered before it; an older snapshot, REPEATABLE
  -- READ or SERIALIZABLE, would give an ordinal already taken). Any other
  -- deny that counts is counted one by one, like a late deny.
  IF NOT (NEW.action = 'deny' AND NEW.counts_towards_escalation)
     OR NEW.actor_id IS NULL OR NEW.tenant_id IS NULL
     OR current_setting('transaction_isolation') <> 'read committed' THEN
    NEW.deny_ordinal := NULL;
    RETURN NEW;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtextextended(json_build_array('veto:deny-ordinals', TG_TABLE_SCHEMA, NEW.actor_id, NEW.tenant_id)::text, 0));
  -- The key's last numbered deny and its highest gap, in one snapshot (a
  -- DELETE commits its rows' going and their gaps at once).
  SELECT l.at_ms, greatest(l.deny_ordinal, (SELECT g.deny_ordinal FROM deny_ordinal_gaps g
                                              WHERE g.actor_id = NEW.actor_id AND g.tenant_id = NEW.tenant_id
                                              ORDER BY g.deny_ordinal DESC LIMIT 1))
    INTO last_at, last_n
    FROM (SELECT 1) one LEFT JOIN LATERAL (
      SELECT d.at_ms, d.deny_ordinal FROM decisions d
       WHERE d.actor_id = NEW.actor_id AND d.tenant_id = NEW.tenant_id AND d.deny_ordinal IS NOT NULL
       ORDER BY d.deny_ordinal DESC LIMIT 1) l ON true;
  IF NEW.at_ms < last_at THEN
    NEW.deny_ordinal := NULL;
  ELSE
    NEW.deny_ordinal := coalesce(last_n, 0) + 1;
  END IF;
  RETURN NEW;
END
$$;

-- After decisions_guard (triggers of one event fire in name order): a row the
-- guard refuses is refused for its own reason first.
CREATE TRIGGER decisions_number_denies
  BEFORE INSERT ON decisions
  FOR EACH ROW WHEN (NEW.deny_ordinal IS NOT NULL OR (NEW.action = 'deny' AND NEW.counts_towards_escalation))
  EXECUTE FUNCTION number_denies();
CREATE TRIGGER decisions_deny_ordinal_fixed
  BEFORE UPDATE OF deny_ordinal ON decisions
  FOR EACH ROW WHEN (NEW.deny_ordinal IS DISTINCT FROM OLD.deny_ordinal)
  EXECUTE FUNCTION number_denies();

-- An (actor, tenant)'s recent denies (docs/contract.md §3): its denies that
-- count, at or after since_ms, and the rejections answered since then of its
-- decisions that count. Exact under the key's lock, which every writer of
-- the key's decisions holds (the adapter's stores all do). As the owner
-- (for deny_ordinal_gaps): a role that may use the schema may count, as it
-- may read the decisions.
CREATE FUNCTION recent_denies(actor text, tenant text, since_ms bigint) RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  first_n bigint;
  last_n bigint;
  numbered bigint := 0;
BEGIN
  -- The first numbered deny at or after since_ms, and the key's last (one
  -- snapshot: the function is STABLE).
  SELECT f.deny_ordinal INTO first_n FROM decisions f
   WHERE f.actor_id = actor AND f.tenant_id = tenant AND f.deny_ordinal IS NOT NULL AND f.at_ms >= since_ms
   ORDER BY f.at_ms, f.deny_ordinal LIMIT 1;
  IF first_n IS NOT NULL THEN
    SELECT l.deny_ordinal INTO last_n FROM decisions l
     WHERE l.actor_id = actor AND l.tenant_id = tenant AND l.deny_ordinal IS NOT NULL
     ORDER BY l.deny_ordinal DESC LIMIT 1;
    -- The ordinals from the first to the last, less the deleted ones among them.
    numbered := last_n - first_n + 1;
    IF last_n > first_n THEN
      numbered := numbered - (SELECT count(*) FROM deny_ordinal_gaps g
                               WHERE g.actor_id = actor AND g.tenant_id = tenant
                                 AND g.deny_ordinal > first_n AND g.deny_ordinal <= last_n);
    END IF;
  END IF;
  RETURN numbered
    -- Plus each late deny, less each numbered deny that stopped counting, at or after since_ms.
    + (SELECT coalesce(sum(CASE WHEN d.deny_ordinal IS NULL THEN 1 ELSE -1 END), 0) FROM decisions d
        WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.at_ms >= since_ms
          AND (d.deny_ordinal IS NULL) = (d.action = 'deny' AND d.counts_towards_escalation))
    -- Plus the rejections answered since then.
    + (SELECT count(*) FROM decisions d
        WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.counts_towards_escalation
          AND d.approval_status = 'rejected' AND d.answered_at_ms >= since_ms);
END
$$;

-- 012's function, counting by recent_denies.
CREATE OR REPLACE FUNCTION lock_and_count(lock_keys text[], actors text[], tenants text[], windows_ms bigint[])
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
      CASE WHEN k.held THEN recent_denies(k.actor_id, k.tenant_id, t - k.window_ms) END
    FROM unnest(actors, tenants, windows_ms, held) WITH ORDINALITY AS k(actor_id, tenant_id, window_ms, held, ord);
END
$$;
