-- A predicted group's writes as one prepared statement (docs/postgres.md,
-- "One round trip"; BENCHMARKS.md, "A predicted group's writes in one
-- prepared statement"). Until now a group whose counts the store predicted
-- (014) sent one simple query: BEGIN; confirm_counts(...); append_records(...);
-- INSERT INTO decisions ... VALUES ...; COMMIT, its records and rows written
-- as SQL literals, so the server lexed, parsed, analysed and planned the
-- whole text for every group (a sixth of its CPU per decision at
-- concurrency 1).
--
-- write_group does the same three things in the same order, in one
-- statement the adapter prepares once per connection and sends alone (its
-- own transaction): the keys' locks, clock and counts confirmed
-- (confirm_counts, which refuses with SQLSTATE VS001 as before), the records
-- appended and sealed (append_records), the rows inserted in group order.
-- Either all of it commits or none of it. Nothing it checks or writes is
-- new: a group written this way and one written the old way leave the same
-- rows and records.
--
-- The old query began with BEGIN ISOLATION LEVEL READ COMMITTED; a statement
-- sent alone runs at the session's default level, and only READ COMMITTED
-- lets the count, the later-decision probe and the chain's last entry, read
-- after their locks are granted, see every commit before them (a REPEATABLE
-- READ snapshot is the statement's start, before the locks). So write_group
-- refuses any other level with SQLSTATE VS002 and writes nothing; the
-- adapter then makes the group's decisions again the two-round-trip way
-- (which begins READ COMMITTED explicitly) and predicts no more.

SELECT set_config('search_path', current_setting('search_path') || ', pg_temp', true);

-- The records come as append_records takes them, but for their four member
-- parts: each is one text, the records' parts in order joined by U+001E,
-- a null part written U+001F. Canonical JSON never holds a raw control
-- character (JSON escapes them in strings, and there is nowhere else to
-- put one), so the split is exact; the adapter refuses a part that holds
-- either. As text[] parameters, every '"' of the members would be escaped
-- by the sender and read back by the server.
--
-- The rows come as one array per column of decisions' write columns
-- (decision-row.ts DECISION_WRITE_COLUMNS), element k of each the k-th row:
-- each approvers element a text[] literal, each review and amendment the
-- JSON text of its jsonb. Every row array has as many elements as the
-- rows' ids, every record array as many as their types: arrays that
-- disagree (or are null) are refused, not padded with nulls. Runs with its
-- caller's rights, as confirm_counts and the INSERT it replaces did.
CREATE FUNCTION write_group(
  lock_keys text[], actors text[], tenants text[], windows_ms bigint[], expected bigint[], at_ms bigint, lag_ms bigint,
  records_lock text, a text, b text, c text, d text, types text[], decision_ids text[],
  ids text[], actions text[], escalated boolean[], actor_ids text[], tenant_ids text[], at_mss bigint[],
  call_digests text[], approvers text[], approval_statuses text[], expires_at_mss bigint[], reviewer_ids text[],
  notes text[], answered_at_mss bigint[], counts boolean[], reviews text[], record_states text[], amendments text[])
RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT SET plan_cache_mode = force_generic_plan AS $$
DECLARE
  n integer := coalesce(cardinality(ids), 0);
  r integer := coalesce(cardinality(types), 0);
  pa text[] := string_to_array(a, E'\x1e', E'\x1f');
  pb text[] := string_to_array(b, E'\x1e', E'\x1f');
  pc text[] := string_to_array(c, E'\x1e', E'\x1f');
  pd text[] := string_to_array(d, E'\x1e', E'\x1f');
  t bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'veto: write_group runs only READ COMMITTED, not %', upper(current_setting('transaction_isolation'))
      USING ERRCODE = 'VS002';
  END IF;
  -- One comparison (group_array on each array cost twice as much per
  -- transaction): every row array n elements (unnest reads any shape in
  -- order, so rows stay aligned), every record array r elements, one
  -- dimension, from 1 (append_records reads them by subscript; the split
  -- parts are). A null array or text has no cardinality, and is refused.
  IF ARRAY[cardinality(ids), cardinality(actions), cardinality(escalated), cardinality(actor_ids), cardinality(tenant_ids),
           cardinality(at_mss), cardinality(call_digests), cardinality(approvers), cardinality(approval_statuses),
           cardinality(expires_at_mss), cardinality(reviewer_ids), cardinality(notes), cardinality(answered_at_mss),
           cardinality(counts), cardinality(reviews), cardinality(record_states), cardinality(amendments),
           cardinality(pa), cardinality(pb), cardinality(pc), cardinality(pd), cardinality(types), cardinality(decision_ids)]
     IS DISTINCT FROM ARRAY[n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, n, r, r, r, r, r, r]
     OR array_ndims(types) > 1 OR array_ndims(decision_ids) > 1
     OR array_lower(types, 1) <> 1 OR array_lower(decision_ids, 1) <> 1 THEN
    RAISE EXCEPTION 'veto: write_group takes % rows in every row array and % records in every record array', n, r
      USING ERRCODE = '22023';
  END IF;
  t := confirm_counts(lock_keys, actors, tenants, windows_ms, expected, at_ms, lag_ms);
  IF r > 0 THEN
    PERFORM append_records(records_lock, pa, pb, pc, pd, types, decision_ids);
  END IF;
  IF n > 0 THEN
    INSERT INTO decisions (id, action, escalated, actor_id, tenant_id, at_ms, call_digest, approvers, approval_status,
                           expires_at_ms, reviewer_id, note, answered_at_ms, counts_towards_escalation, review,
                           record_state, amendment)
      SELECT w.id, w.action, w.escalated, w.actor_id, w.tenant_id, w.at_ms, w.call_digest, w.approvers::text[],
             w.approval_status, w.expires_at_ms, w.reviewer_id, w.note, w.answered_at_ms, w.counts, w.review::jsonb,
             w.record_state, w.amendment::jsonb
        FROM unnest(ids, actions, escalated, actor_ids, tenant_ids, at_mss, call_digests, approvers, approval_statuses,
                    expires_at_mss, reviewer_ids, notes, answered_at_mss, counts, reviews, record_states, amendments)
             WITH ORDINALITY AS w(id, action, escalated, actor_id, tenant_id, at_ms, call_digest, approvers,
                                  approval_status, expires_at_ms, reviewer_id, note, answered_at_ms, counts, review,
                                  record_state, amendment, k)
       ORDER BY w.k;
  END IF;
  RETURN t;
END
$$;
