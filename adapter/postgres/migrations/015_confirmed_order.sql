-- confirm_counts (014) refuses too when a decision of a key is timed after
-- the group's time (docs/contract.md §3). A one-round-trip group holds none
-- of its keys' locks while its decisions are made, and its time was predicted
-- when it started: another writer of a key (another process, a group of the
-- same store started beside it) may decide it in between, timed later by
-- the database's clock. Were the group then written, its denies would be
-- timed before that decision without being in its count. Refused, the
-- group's decisions are made again the two-round-trip way, after it.
-- (decisions_at serves the probe: only rows timed after the group's time,
-- at most LAG_MS of them, are read.)

SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);

CREATE OR REPLACE FUNCTION confirm_counts(lock_keys text[], actors text[], tenants text[], windows_ms bigint[], expected bigint[],
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
    IF EXISTS (SELECT 1 FROM decisions d WHERE d.at_ms > confirm_counts.at_ms
                  AND d.actor_id = actors[j] AND d.tenant_id = tenants[j]) THEN
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
