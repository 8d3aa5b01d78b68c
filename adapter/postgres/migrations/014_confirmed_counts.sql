-- A decision in one round trip when its store already knows its key's count
-- (docs/postgres.md, "One round trip"; docs/contract.md §3). Until now every
-- group of decisions took two round trips: the keys' locks and counts, then
-- (after the policy had decided with those counts) the writes. The first is
-- spent learning what the store, the only writer of most keys, usually
-- knows already: the count it wrote last, plus its own denies since.
--
-- A store that remembers a key's count (and until when it holds: the oldest
-- deny it counts leaves the window) decides with it at once, and sends the
-- count with its writes. confirm_counts, the first statement of that one
-- round trip, takes the keys' locks and counts again, under the locks and in
-- the writes' transaction: when a count differs (another process or an
-- owner's rejection changed it, a deny left the window), when a lock is held
-- elsewhere, or when the decisions' time is not the database's, it refuses
-- with SQLSTATE VS001 and nothing is written; the store decides those calls
-- again the two-round-trip way. So every count a decision records is still
-- the count at its time, taken under its key's lock: exact, as before.

SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);

-- Each key's decisions by time: confirm_counts finds a key's latest decision
-- with one probe (any decision, not only denies: see there).
CREATE INDEX decisions_key_times ON decisions (actor_id, tenant_id, at_ms);

-- An (actor, tenant)'s recent denies, as recent_denies (013) counts them,
-- and the earliest time among those it counts (a deny's time, a rejection's
-- answer time; null when it counts none): the count cannot fall before the
-- window's start passes it. A numbered deny that stopped counting is taken
-- as counted here, so the time is never later than the truth.
CREATE FUNCTION deny_window(actor text, tenant text, since_ms bigint, OUT n bigint, OUT oldest_ms bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  first_n bigint;
  first_at bigint;
  last_n bigint;
  numbered bigint := 0;
  exceptions bigint;
  exceptions_at bigint;
  rejections bigint;
  rejections_at bigint;
BEGIN
  -- The first numbered deny at or after since_ms, and the key's last (one
  -- snapshot: the function is STABLE).
  SELECT f.deny_ordinal, f.at_ms INTO first_n, first_at FROM decisions f
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
  -- Each late deny, less each numbered deny that stopped counting, at or after since_ms.
  SELECT coalesce(sum(CASE WHEN d.deny_ordinal IS NULL THEN 1 ELSE -1 END), 0), min(d.at_ms)
    INTO exceptions, exceptions_at FROM decisions d
   WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.at_ms >= since_ms
     AND (d.deny_ordinal IS NULL) = (d.action = 'deny' AND d.counts_towards_escalation);
  -- The rejections answered since then.
  SELECT count(*), min(d.answered_at_ms) INTO rejections, rejections_at FROM decisions d
   WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.counts_towards_escalation
     AND d.approval_status = 'rejected' AND d.answered_at_ms >= since_ms;
  n := numbered + exceptions + rejections;
  oldest_ms := least(first_at, exceptions_at, rejections_at);
END
$$;

-- 013's count, now read from deny_window: one definition of what counts.
CREATE OR REPLACE FUNCTION recent_denies(actor text, tenant text, since_ms bigint) RETURNS bigint LANGUAGE sql STABLE SECURITY DEFINER
SET search_path FROM CURRENT AS $$
  SELECT n FROM deny_window(actor, tenant, since_ms)
$$;

-- lock_and_count (012, 013) with each held key's oldest counted time: what a
-- store needs to know until when the count it read holds. lock_and_count
-- stays, for processes of the previous version while they finish.
CREATE FUNCTION lock_and_count_window(lock_keys text[], actors text[], tenants text[], windows_ms bigint[])
RETURNS TABLE (now_ms bigint, i bigint, got boolean, n bigint, oldest_ms bigint) LANGUAGE plpgsql
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
  FOR j IN 1 .. coalesce(cardinality(lock_keys), 0) LOOP
    now_ms := t;
    i := j - 1;
    got := held[j];
    n := NULL;
    oldest_ms := NULL;
    IF got THEN
      SELECT w.n, w.oldest_ms INTO n, oldest_ms FROM deny_window(actors[j], tenants[j], t - windows_ms[j]) w;
    END IF;
    RETURN NEXT;
  END LOOP;
END
$$;

-- The first statement of a one-round-trip group: every key's lock (taken
-- only if free, in the caller's order), then the database's clock, then each
-- key's count at at_ms, which must be what the store decided with. at_ms,
-- the group's time as the store predicted the database's clock, must not be
-- ahead of the clock read here (a later count by the two-round-trip way,
-- timed by the clock, would then come before it), nor more than lag_ms
-- behind. No decision of a key may be timed after at_ms: the group held no
-- lock while its decisions were made, so another writer (another process, a
-- group of the same store started beside a stalled one) may have decided the
-- key in between, timed later; an allow changes no count, but the group's
-- denies, timed before it, would be missing from its count. Any of these not
-- so: SQLSTATE VS001, and the transaction is over. Returns the clock it read.
CREATE FUNCTION confirm_counts(lock_keys text[], actors text[], tenants text[], windows_ms bigint[], expected bigint[],
                               at_ms bigint, lag_ms bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  j integer;
  t bigint;
  counted bigint;
BEGIN
  FOR j IN 1 .. coalesce(cardinality(lock_keys), 0) LOOP
    IF NOT pg_try_advisory_xact_lock(hashtextextended(lock_keys[j], 0)) THEN
      RAISE EXCEPTION 'veto: the history lock of key % is held elsewhere', j - 1 USING ERRCODE = 'VS001';
    END IF;
  END LOOP;
  t := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  IF at_ms IS NULL OR at_ms > t OR at_ms < t - lag_ms THEN
    RAISE EXCEPTION 'veto: the group''s time % is not the database''s (%)', at_ms, t USING ERRCODE = 'VS001';
  END IF;
  FOR j IN 1 .. coalesce(cardinality(lock_keys), 0) LOOP
    IF (SELECT max(d.at_ms) FROM decisions d WHERE d.actor_id = actors[j] AND d.tenant_id = tenants[j]) > confirm_counts.at_ms THEN
      RAISE EXCEPTION 'veto: key % was decided after the group''s time %', j - 1, at_ms USING ERRCODE = 'VS001';
    END IF;
    counted := recent_denies(actors[j], tenants[j], at_ms - windows_ms[j]);
    IF counted IS DISTINCT FROM expected[j] THEN
      RAISE EXCEPTION 'veto: key % has % recent denies, not %', j - 1, counted, expected[j] USING ERRCODE = 'VS001';
    END IF;
  END LOOP;
  RETURN t;
END
$$;
