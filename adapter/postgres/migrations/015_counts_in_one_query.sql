-- A group's keys counted in one query (docs/postgres.md, "One round trip";
-- BENCHMARKS.md, "Counting a group's keys in one query"). Until now
-- confirm_counts and lock_and_count_window counted key by key: per key a
-- call of recent_denies (a SQL function, planned again on every call), then
-- deny_window's four queries, then a probe for the key's latest decision:
-- about 80 µs of server time per key, 3.6 ms of a 32-key group's 10 ms.
--
-- The count itself is unchanged: key_window below is deny_window's four
-- queries written as one, and deny_window, recent_denies, confirm_counts and
-- lock_and_count_window all read it. Being one SQL query, the planner puts it
-- into the query that calls it: count_windows counts every key of a group in
-- one statement, whose plan the server keeps per session.

-- The functions below keep this search path (FROM CURRENT): a caller's
-- temporary tables come last in it, so none can stand in for this schema's
-- tables.
SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);

-- An (actor, tenant)'s recent denies and the earliest time among what it
-- counts, exactly as deny_window (014) computed them: the numbered denies
-- from the first at or after since_ms to the key's last, less the deleted
-- ones among them; each late deny, less each numbered deny that stopped
-- counting; the rejections answered since then. One SELECT, no SET clause and
-- no SECURITY DEFINER, so that the planner inlines it into its caller's
-- query; only the functions of this schema call it (they run as the table's
-- owner, which reads deny_ordinal_gaps), and no one else may.
CREATE FUNCTION key_window(actor text, tenant text, since_ms bigint)
RETURNS TABLE (n bigint, oldest_ms bigint) LANGUAGE sql STABLE AS $$
  SELECT coalesce(l.last_n - f.first_n + 1
           - (SELECT count(*) FROM deny_ordinal_gaps g
               WHERE g.actor_id = actor AND g.tenant_id = tenant
                 AND g.deny_ordinal > f.first_n AND g.deny_ordinal <= l.last_n), 0)
         + x.exceptions + r.rejections,
         least(f.first_at, x.exceptions_at, r.rejections_at)
    FROM (SELECT) AS one
    LEFT JOIN LATERAL (SELECT d.deny_ordinal AS first_n, d.at_ms AS first_at FROM decisions d
                        WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.deny_ordinal IS NOT NULL
                          AND d.at_ms >= since_ms
                        ORDER BY d.at_ms, d.deny_ordinal LIMIT 1) AS f ON true
    LEFT JOIN LATERAL (SELECT d.deny_ordinal AS last_n FROM decisions d
                        WHERE f.first_n IS NOT NULL
                          AND d.actor_id = actor AND d.tenant_id = tenant AND d.deny_ordinal IS NOT NULL
                        ORDER BY d.deny_ordinal DESC LIMIT 1) AS l ON true
    CROSS JOIN LATERAL (SELECT coalesce(sum(CASE WHEN d.deny_ordinal IS NULL THEN 1 ELSE -1 END), 0) AS exceptions,
                               min(d.at_ms) AS exceptions_at FROM decisions d
                         WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.at_ms >= since_ms
                           AND (d.deny_ordinal IS NULL) = (d.action = 'deny' AND d.counts_towards_escalation)) AS x
    CROSS JOIN LATERAL (SELECT count(*) AS rejections, min(d.answered_at_ms) AS rejections_at FROM decisions d
                         WHERE d.actor_id = actor AND d.tenant_id = tenant AND d.counts_towards_escalation
                           AND d.approval_status = 'rejected' AND d.answered_at_ms >= since_ms) AS r
$$;
REVOKE EXECUTE ON FUNCTION key_window(text, text, bigint) FROM PUBLIC;

CREATE OR REPLACE FUNCTION deny_window(actor text, tenant text, since_ms bigint, OUT n bigint, OUT oldest_ms bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  SELECT w.n, w.oldest_ms INTO n, oldest_ms FROM key_window(actor, tenant, since_ms) AS w;
END
$$;

-- A plpgsql function: its plan is kept per session (014's SQL wrapper was
-- planned again on every call).
CREATE OR REPLACE FUNCTION recent_denies(actor text, tenant text, since_ms bigint) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  RETURN (SELECT w.n FROM key_window(actor, tenant, since_ms) AS w);
END
$$;

-- Each key of a group, in one query: its count and earliest counted time
-- since since_ms[j] (key_window), for the keys whose `counted` is not false
-- (null for the others). One row per element of actors, in order, j from 1.
-- Like recent_denies, any role may call it: it tells counts and times of
-- what counts, nothing else of the rows (whether a key has any decision
-- after a time is asked by confirm_counts with its caller's rights).
CREATE FUNCTION count_windows(actors text[], tenants text[], since_ms bigint[], counted boolean[])
RETURNS TABLE (j bigint, n bigint, oldest_ms bigint) LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
BEGIN
  RETURN QUERY
  SELECT k.ord, w.n, w.oldest_ms
    FROM unnest(actors, tenants, since_ms, counted) WITH ORDINALITY AS k(actor, tenant, since, c, ord)
    LEFT JOIN LATERAL (SELECT kw.n, kw.oldest_ms FROM key_window(k.actor, k.tenant, k.since) AS kw
                        WHERE k.c IS NOT FALSE) AS w ON true
   WHERE k.ord <= cardinality(actors)
   ORDER BY k.ord;
END
$$;

-- Whether a group's arrays are what the adapters send: one dimension,
-- numbered from 1, n elements each. 014's functions walked lock_keys and
-- read the others by subscript; these read every array by position, so a
-- group whose arrays disagree is refused rather than read another way.
CREATE FUNCTION group_array(a anyarray, n integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
  SELECT a IS NOT NULL AND cardinality(a) = n AND (n = 0 OR (array_ndims(a) = 1 AND array_lower(a, 1) = 1))
$$;

-- 014's function, the held keys counted in one query (one key: deny_window,
-- whose plan is smaller). A lock key that is null is not held.
CREATE OR REPLACE FUNCTION lock_and_count_window(lock_keys text[], actors text[], tenants text[], windows_ms bigint[])
RETURNS TABLE (now_ms bigint, i bigint, got boolean, n bigint, oldest_ms bigint) LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  held boolean[] := '{}';
  keys integer := coalesce(cardinality(lock_keys), 0);
  k integer;
  t bigint;
BEGIN
  IF NOT (group_array(lock_keys, keys) AND group_array(actors, keys) AND group_array(tenants, keys)
          AND group_array(windows_ms, keys)) THEN
    RAISE EXCEPTION 'veto: lock_and_count_window takes % lock keys, and as many actors, tenants and windows', keys
      USING ERRCODE = '22023';
  END IF;
  IF keys = 0 THEN
    RETURN;
  END IF;
  FOR k IN 1 .. keys LOOP
    held[k] := coalesce(pg_try_advisory_xact_lock(hashtextextended(lock_keys[k], 0)), false);
  END LOOP;
  t := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  IF keys = 1 THEN
    RETURN QUERY
    SELECT t, 0::bigint, held[1], w.n, w.oldest_ms
      FROM (SELECT) AS one
      LEFT JOIN LATERAL (SELECT d.n, d.oldest_ms FROM deny_window(actors[1], tenants[1], t - windows_ms[1]) AS d
                          WHERE held[1]) AS w ON true;
    RETURN;
  END IF;
  RETURN QUERY
  SELECT t, c.j - 1, held[c.j], c.n, c.oldest_ms
    FROM count_windows(actors, tenants, ARRAY(SELECT t - w.ms FROM unnest(windows_ms) WITH ORDINALITY AS w(ms, o) ORDER BY w.o),
                       held) AS c
   ORDER BY c.j;
END
$$;

-- 014's function, the keys counted in one query (one key: deny_window). What
-- it refuses is 014's, for a group whose arrays agree (group_array); one
-- whose arrays do not, or with a null lock key, is refused too. When several
-- keys fail, the first is named.
CREATE OR REPLACE FUNCTION confirm_counts(lock_keys text[], actors text[], tenants text[], windows_ms bigint[], expected bigint[],
                                          at_ms bigint, lag_ms bigint)
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  keys integer := coalesce(cardinality(lock_keys), 0);
  k integer;
  t bigint;
  failed bigint;
  counted bigint;
  later boolean;
BEGIN
  IF NOT (group_array(lock_keys, keys) AND group_array(actors, keys) AND group_array(tenants, keys)
          AND group_array(windows_ms, keys) AND group_array(expected, keys)) THEN
    RAISE EXCEPTION 'veto: confirm_counts takes % lock keys, and as many actors, tenants, windows and counts', keys
      USING ERRCODE = 'VS001';
  END IF;
  FOR k IN 1 .. keys LOOP
    IF pg_try_advisory_xact_lock(hashtextextended(lock_keys[k], 0)) IS NOT TRUE THEN
      RAISE EXCEPTION 'veto: the history lock of key % is held elsewhere', k - 1 USING ERRCODE = 'VS001';
    END IF;
  END LOOP;
  t := floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint;
  IF confirm_counts.at_ms IS NULL OR confirm_counts.at_ms > t OR confirm_counts.at_ms < t - lag_ms THEN
    RAISE EXCEPTION 'veto: the group''s time % is not the database''s (%)', confirm_counts.at_ms, t USING ERRCODE = 'VS001';
  END IF;
  -- Whether a decision of the key is timed after the group's is read here,
  -- with the caller's rights; the counts as the table's owner.
  IF keys = 1 THEN
    -- One key (every group at concurrency 1): deny_window, a smaller plan
    -- than count_windows' (BENCHMARKS.md, "Counting a group's keys in one
    -- query"). This function runs as its caller, who may not call
    -- key_window itself.
    later := EXISTS (SELECT FROM decisions d WHERE d.actor_id = actors[1] AND d.tenant_id = tenants[1]
                                               AND d.at_ms > confirm_counts.at_ms);
    SELECT w.n INTO counted FROM deny_window(actors[1], tenants[1], confirm_counts.at_ms - windows_ms[1]) AS w;
    IF later OR counted IS DISTINCT FROM expected[1] THEN
      failed := 1;
    END IF;
  ELSIF keys > 1 THEN
    SELECT c.j, c.n, c.later INTO failed, counted, later
      FROM (SELECT w.j, w.n, EXISTS (SELECT FROM decisions d WHERE d.actor_id = actors[w.j] AND d.tenant_id = tenants[w.j]
                                                             AND d.at_ms > confirm_counts.at_ms) AS later
              FROM count_windows(actors, tenants,
                                 ARRAY(SELECT confirm_counts.at_ms - w.ms FROM unnest(windows_ms) WITH ORDINALITY AS w(ms, o) ORDER BY w.o),
                                 NULL) AS w) AS c
     WHERE c.later OR c.n IS DISTINCT FROM expected[c.j]
     ORDER BY c.j
     LIMIT 1;
  END IF;
  IF failed IS NOT NULL THEN
    IF later THEN
      RAISE EXCEPTION 'veto: key % was decided after the group''s time %', failed - 1, confirm_counts.at_ms USING ERRCODE = 'VS001';
    END IF;
    RAISE EXCEPTION 'veto: key % has % recent denies, not %', failed - 1, counted, expected[failed] USING ERRCODE = 'VS001';
  END IF;
  RETURN t;
END
$$;
