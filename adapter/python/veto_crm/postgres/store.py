"""
PostgresStore: the store many processes share, Node and Python alike (adapter/postgres/store.ts), on
the same tables and with the same statements:

- Deny history: counted from the decisions table. A unit with a history key is one transaction that
  first takes pg_advisory_xact_lock on (schema, actor, tenant), the TypeScript adapter's key: count ->
  evaluate -> record -> append of one key run one at a time across every process, either language, so
  escalation starts exactly at the threshold.
- Approvals: rows bound to the call digest (and record state); answers move them with
  ``UPDATE ... WHERE approval_status = <from>`` (the first answer wins), the use-once claim
  ``approved -> executed`` the same way.
- Waiting: the decisions table's trigger NOTIFYs ``veto_approval`` with ``[schema, id]`` at commit; one
  LISTEN connection per store (a thread) wakes this process's waiters, and polling covers the gaps.
- One clock (docs/contract.md §6): the database's. A unit reads it once, after its history lock, and
  everything decided in the unit is timed by it.
"""

from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, Sequence

from ..bundle import BundleVersion
from ..checkpoint import CheckpointKeyInput
from ..decision import Decision, Reason
from ..store import Amendment, ApprovalReview, ApprovalState, ApprovalTransition, StoredDecision, unwatcher
from .connection import (
    APPROVAL_CHANNEL,
    DB_NOW_MS,
    DEFAULT_CONNECTION_TIMEOUT_S,
    DEFAULT_POOL_SIZE,
    DEFAULT_SCHEMA,
    LOCK_SQL,
    PostgresStoreError,
    check_schema,
    check_url,
    connection_unavailable,
    history_lock_key,
    quote_ident,
)
from .migrations import load_migrations, migrate_with, require_migrated
from .records import PostgresRecordSink, _signing

log = logging.getLogger("veto_crm")

RECONNECT_S = 1.0
#: The LISTEN connection's application_name (pg_stat_activity shows it).
LISTEN_APPLICATION = "veto-listen"

#: The columns a decision is written to, in the order the upsert binds them (decision-row.ts).
WRITE_COLUMNS = (
    "id",
    "action",
    "escalated",
    "actor_id",
    "tenant_id",
    "at_ms",
    "call_digest",
    "approvers",
    "approval_status",
    "expires_at_ms",
    "reviewer_id",
    "note",
    "answered_at_ms",
    "counts_towards_escalation",
    "review",
    "record_state",
    "amendment",
)
READ_COLUMNS = WRITE_COLUMNS + ("executed_at_ms", "amended_to")


def _read_committed(conn: Any) -> None:
    """
    Every transaction of the store's connections begins READ COMMITTED (store.ts BEGIN), whatever the
    server's or the role's default: counts and the chain's tail are read by statements after a lock is
    granted, and must see every commit before it (under REPEATABLE READ or SERIALIZABLE the snapshot
    would be the first statement's, taken before the lock).
    """
    from .driver import psycopg_module

    conn.isolation_level = psycopg_module().IsolationLevel.READ_COMMITTED


class _Statements:
    """The SQL of the store for one schema (store.ts Statements), with psycopg's placeholders."""

    def __init__(self, schema: str) -> None:
        decisions = f"{quote_ident(schema)}.decisions"
        casts = {"review": "::jsonb", "amendment": "::jsonb"}
        values = ", ".join(f"%s{casts.get(c, '')}" for c in WRITE_COLUMNS)
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in WRITE_COLUMNS[1:])
        self.upsert = f"INSERT INTO {decisions} ({', '.join(WRITE_COLUMNS)}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET {updates}"
        # One count for every writer (migration 013, recent_denies; decision-row.ts recentDeniesSql).
        self.count_denies = f"SELECT {quote_ident(schema)}.recent_denies(%(a)s, %(t)s, %(s)s::bigint)"
        self.select = f"SELECT {', '.join(READ_COLUMNS)} FROM {decisions} WHERE id = %s"
        self.claim = (
            f"UPDATE {decisions} SET approval_status = 'executed', executed_at_ms = coalesce(%(at)s::bigint, {DB_NOW_MS}) "
            "WHERE id = %(id)s AND approval_status = 'approved'"
        )
        # The use-once claim of an amended call the policy allowed: no approval, only an execution time, set once.
        self.claim_allowed = (
            f"UPDATE {decisions} SET executed_at_ms = coalesce(%(at)s::bigint, {DB_NOW_MS}) "
            "WHERE id = %(id)s AND action = 'allow' AND amendment IS NOT NULL AND approval_status IS NULL AND executed_at_ms IS NULL"
        )
        self.transition = (
            f"UPDATE {decisions} SET approval_status = %(to)s, reviewer_id = %(reviewer)s, note = %(note)s, amended_to = %(amended_to)s, "
            f"answered_at_ms = CASE WHEN %(to)s IN ('pending', 'answering') THEN NULL ELSE coalesce(%(at)s::bigint, {DB_NOW_MS}) END "
            f"WHERE id = %(id)s AND approval_status = %(from)s AND (%(from)s <> 'pending' OR (expires_at_ms <= {DB_NOW_MS}) = (%(to)s = 'expired'))"
        )


def _ms(value: float) -> int:
    return int(value)


def _bundle_json(b: BundleVersion) -> dict[str, str]:
    return b.to_json()


def review_json(review: ApprovalReview) -> dict[str, Any]:
    """A review as the TypeScript store writes its ApprovalReview to the review column (same members)."""
    out: dict[str, Any] = {
        "tool": review.tool,
        "environment": review.environment,
        "arguments": review.arguments,
        "reasons": [r.to_json() for r in review.reasons],
        "bundle": _bundle_json(review.bundle),
        "recentDenies": review.recent_denies,
    }
    if review.context is not None:
        out["context"] = dict(review.context)
    return out


def amendment_json(amendment: Amendment) -> dict[str, Any]:
    """An amendment as the TypeScript store writes its Amendment to the amendment column (same members)."""
    out: dict[str, Any] = {"from": amendment.from_id, "by": amendment.by}
    if amendment.call is not None:
        out["call"] = dict(amendment.call)
    out["decision"] = amendment.decision.to_json()
    return out


class _Malformed(ValueError):
    pass


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _Malformed("not a string")
    return value


def _bundle_of(value: Any) -> BundleVersion:
    if not isinstance(value, dict):
        raise _Malformed("bundle: not an object")
    return BundleVersion(_text(value.get("revision")), _text(value.get("hash")))


def _reasons_of(value: Any) -> tuple[Reason, ...]:
    if not isinstance(value, list):
        raise _Malformed("reasons: not an array")
    out = []
    for r in value:
        if not isinstance(r, dict):
            raise _Malformed("reason: not an object")
        out.append(Reason(_text(r.get("code")), _text(r.get("message"))))
    return tuple(out)


def review_of(value: Any) -> ApprovalReview:
    """The review column (written by either language) as an ApprovalReview; _Malformed when it is not one."""
    if not isinstance(value, dict):
        raise _Malformed("review: not an object")
    recent = value.get("recentDenies")
    if recent is not None and (isinstance(recent, bool) or not isinstance(recent, int)):
        raise _Malformed("review.recentDenies: not an integer")
    context = value.get("context")
    if context is not None and not isinstance(context, dict):
        raise _Malformed("review.context: not an object")
    return ApprovalReview(
        tool=_text(value.get("tool")),
        environment=_text(value.get("environment")),
        arguments=value.get("arguments"),
        reasons=_reasons_of(value.get("reasons")),
        bundle=_bundle_of(value.get("bundle")),
        recent_denies=recent,
        context=context,
    )


def _decision_of(value: Any) -> Decision:
    if not isinstance(value, dict):
        raise _Malformed("decision: not an object")
    approvers = value.get("approvers")
    if not isinstance(approvers, list) or not isinstance(value.get("escalated"), bool):
        raise _Malformed("decision: approvers or escalated")
    return Decision(
        id=_text(value.get("id")),
        action=_text(value.get("action")),
        escalated=bool(value["escalated"]),
        reason=_text(value.get("reason")),
        reasons=_reasons_of(value.get("reasons")),
        approvers=tuple(_text(a) for a in approvers),
        bundle=_bundle_of(value.get("bundle")),
        timestamp=_text(value.get("timestamp")),
    )


def amendment_of(value: Any) -> Amendment:
    """The amendment column (written by either language) as an Amendment; _Malformed when it is not one."""
    if not isinstance(value, dict):
        raise _Malformed("amendment: not an object")
    call = value.get("call")
    if call is not None and not (isinstance(call, dict) and isinstance(call.get("tool"), str) and "arguments" in call and "context" in call):
        raise _Malformed("amendment.call: not a call")
    return Amendment(
        from_id=_text(value.get("from")),
        by=_text(value.get("by")),
        decision=_decision_of(value.get("decision")),
        call=None if call is None else {"tool": call["tool"], "arguments": call["arguments"], "context": call["context"]},
    )


def _params(d: StoredDecision) -> tuple[Any, ...]:
    a = d.approval
    return (
        d.id,
        d.action,
        d.escalated,
        d.actor_id,
        d.tenant_id,
        _ms(d.at_ms),
        d.call_digest,
        list(d.approvers),
        None if a is None else a.status,
        None if a is None else _ms(a.expires_at_ms),
        None if a is None else a.reviewer_id,
        None if a is None else a.note,
        None if a is None or a.answered_at_ms is None else _ms(a.answered_at_ms),
        d.counts_towards_escalation is not False,
        None if d.review is None else json.dumps(review_json(d.review), ensure_ascii=False, allow_nan=False),
        d.record_state,
        None if d.amendment is None else json.dumps(amendment_json(d.amendment), ensure_ascii=False, allow_nan=False),
    )


def _stored(row: Sequence[Any]) -> StoredDecision:
    """A row of READ_COLUMNS as a StoredDecision (decision-row.ts toStoredDecision)."""
    r = dict(zip(READ_COLUMNS, row))
    approval = None
    if r["approval_status"] is not None:
        approval = ApprovalState(
            status=r["approval_status"],
            expires_at_ms=int(r["expires_at_ms"]),
            reviewer_id=r["reviewer_id"],
            note=r["note"],
            answered_at_ms=None if r["answered_at_ms"] is None else int(r["answered_at_ms"]),
            executed_at_ms=None if r["executed_at_ms"] is None else int(r["executed_at_ms"]),
            amended_to=r["amended_to"],
        )
    # A review or amendment that is not one (written by hand, or by a version that wrote another
    # shape) is read as absent: the decision is then not amendable, and a wait for an amended call
    # whose amendment is unreadable is refused approval_unverified (fail closed, docs/contract.md §6).
    review: Optional[ApprovalReview] = None
    amendment: Optional[Amendment] = None
    try:
        review = None if r["review"] is None else review_of(r["review"])
    except _Malformed as problem:
        log.error("decision %s: its stored review is unreadable (%s); read as none", r["id"], problem)
    try:
        amendment = None if r["amendment"] is None else amendment_of(r["amendment"])
    except _Malformed as problem:
        log.error("decision %s: its stored amendment is unreadable (%s); read as none", r["id"], problem)
    return StoredDecision(
        id=r["id"],
        action=r["action"],
        escalated=bool(r["escalated"]),
        at_ms=int(r["at_ms"]),
        approvers=tuple(r["approvers"] or ()),
        actor_id=r["actor_id"],
        tenant_id=r["tenant_id"],
        call_digest=r["call_digest"],
        approval=approval,
        counts_towards_escalation=bool(r["counts_towards_escalation"]),
        review=review,
        record_state=r["record_state"],
        amendment=amendment,
    )


class _Ops:
    """The statements of the store on one connection (a unit's, or one of its own)."""

    def __init__(self, sql: _Statements) -> None:
        self.sql = sql

    def append(self, conn: Any, d: StoredDecision) -> None:
        conn.execute(self.sql.upsert, _params(d))

    def count(self, conn: Any, actor_id: str, tenant_id: str, since_ms: float) -> int:
        row = conn.execute(self.sql.count_denies, {"a": actor_id, "t": tenant_id, "s": _ms(since_ms)}).fetchone()
        return int(row[0]) if row is not None else 0

    def get(self, conn: Any, decision_id: str) -> Optional[StoredDecision]:
        row = conn.execute(self.sql.select, (decision_id,)).fetchone()
        return None if row is None else _stored(row)

    def transition(self, conn: Any, decision_id: str, t: ApprovalTransition, at_ms: Optional[int]) -> bool:
        if t.to_status == "executed":
            if t.from_status != "approved":
                return False
            return bool(conn.execute(self.sql.claim, {"id": decision_id, "at": at_ms}).rowcount == 1)
        params = {
            "id": decision_id,
            "from": t.from_status,
            "to": t.to_status,
            "reviewer": t.reviewer_id,
            "note": t.note,
            "at": at_ms,
            "amended_to": t.amended_to,
        }
        return bool(conn.execute(self.sql.transition, params).rowcount == 1)


class PostgresUnit:
    """
    One unit's transaction on one pooled connection (store.ts unit, transaction.ts): BEGIN, the history
    lock, then the database's clock (``now_ms``). Any failed statement rolls it back and returns the
    connection at once, so its locks never outlive the failure; after that, and after commit, the unit
    refuses further work. Not committed: undone.
    """

    def __init__(self, store: "PostgresStore", conn: Any, now_ms: int) -> None:
        self.store = store
        self._conn: Optional[Any] = conn
        self.now_ms: Optional[float] = now_ms

    @property
    def open(self) -> bool:
        return self._conn is not None

    @property
    def transaction(self) -> "PostgresUnit":
        return self

    def run(self, fn: Callable[[Any], Any]) -> Any:
        conn = self._conn
        if conn is None:
            raise RuntimeError("the store transaction is over (committed or rolled back)")
        try:
            return fn(conn)
        except BaseException:
            self.rollback()
            raise

    def count_recent_denies(self, actor_id: str, tenant_id: str, since_ms: float) -> int:
        return int(self.run(lambda c: self.store._ops.count(c, actor_id, tenant_id, since_ms)))

    def append_decision(self, decision: StoredDecision) -> None:
        self.run(lambda c: self.store._ops.append(c, decision))

    def get_decision(self, decision_id: str) -> Optional[StoredDecision]:
        found: Optional[StoredDecision] = self.run(lambda c: self.store._ops.get(c, decision_id))
        return found

    def transition_approval(self, decision_id: str, t: ApprovalTransition) -> bool:
        """Timed by the unit's reading of the database's clock, whatever ``t.at_ms`` says."""
        at = None if self.now_ms is None else int(self.now_ms)
        return bool(self.run(lambda c: self.store._ops.transition(c, decision_id, t, at)))

    def claim_execution(self, decision_id: str, at_ms: float) -> bool:
        """Timed by the unit's reading of the database's clock, whatever ``at_ms`` says."""
        at = None if self.now_ms is None else int(self.now_ms)
        sql = self.store._ops.sql.claim_allowed
        return bool(self.run(lambda c: c.execute(sql, {"id": decision_id, "at": at}).rowcount == 1))

    def commit(self) -> None:
        self.run(lambda c: c.commit())
        self._finish()

    def rollback(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            conn.rollback()
        except Exception:
            # It broke (the usual cause): the pool discards a broken connection it gets back.
            pass
        self._finish()

    def _finish(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self.store._put(conn)


class PostgresStore:
    """
    The store for ``create_veto(store=...)`` when many instances, Node and Python, share one database.
    Connect with ``PostgresStore.connect(url, schema="veto", migrate=False)``; close with ``close()``
    (a Veto never closes a store it was given). ``record_sink()`` gives the sink on the same schema that
    writes inside the store's transactions (create_veto uses it when given no ``record_sink``).
    """

    #: Units are transactions: records written inside them commit with the history update.
    transactional = True

    def __init__(self, pool: Any, url: Optional[str], schema: str, timeout_s: float, size: int) -> None:
        self._pool = pool
        self._url = url
        self.schema = schema
        self._timeout_s = timeout_s
        self._size = size
        self._ops = _Ops(_Statements(schema))
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._watch_lock = threading.Lock()
        self._listener: Optional[threading.Thread] = None
        self._listen_conn: Optional[Any] = None
        self._closed = threading.Event()
        self._signing_sinks: list[PostgresRecordSink] = []
        self._default_sink: Optional[PostgresRecordSink] = None
        #: Only a test turns this off, to show what the history lock prevents (double-counted denies).
        self._history_lock = True

    @classmethod
    def connect(
        cls,
        url: Optional[str] = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        migrate: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        connection_timeout_s: float = DEFAULT_CONNECTION_TIMEOUT_S,
    ) -> "PostgresStore":
        """
        Connect (``url``: ``postgres://user:password@host:port/database``; None: libpq's PG* variables), then
        apply pending migrations (``migrate=True``) or check that none is pending. Raises VetoOptionsError
        for bad options, PostgresStoreError (``schema_not_migrated``, ``migration_changed``,
        ``schema_newer``, ``connection_unavailable``).
        """
        from ..errors import VetoOptionsError
        from .driver import pool_module

        check_url(url, "PostgresStore.connect")
        check_schema(schema, "PostgresStore.connect")
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise VetoOptionsError("PostgresStore.connect: invalid options: pool_size: must be a positive integer", ["pool_size: must be a positive integer"])
        if isinstance(connection_timeout_s, bool) or not isinstance(connection_timeout_s, (int, float)) or not connection_timeout_s > 0:
            issue = "connection_timeout_s: must be a positive number of seconds"
            raise VetoOptionsError(f"PostgresStore.connect: invalid options: {issue}", [issue])
        if not isinstance(migrate, bool):
            raise VetoOptionsError("PostgresStore.connect: invalid options: migrate: must be a boolean", ["migrate: must be a boolean"])
        migrations = load_migrations()
        pool = pool_module().ConnectionPool(
            url or "",
            min_size=1,
            max_size=pool_size,
            timeout=float(connection_timeout_s),
            open=False,
            kwargs={"autocommit": False},
            configure=_read_committed,
            name=f"veto-{schema}",
        )
        store = cls(pool, url, schema, float(connection_timeout_s), pool_size)
        try:
            pool.open(wait=True, timeout=float(connection_timeout_s))
        except Exception as error:
            pool.close()
            raise connection_unavailable(error, connection_timeout_s, pool_size) from error
        try:
            with store.connection() as conn:
                conn.autocommit = True
                try:
                    if migrate:
                        migrate_with(conn, schema, migrations)
                    else:
                        require_migrated(conn, schema, migrations)
                finally:
                    if not conn.closed:
                        conn.autocommit = False
        except BaseException:
            pool.close()
            raise
        return store

    # -- connections ---------------------------------------------------------

    def _get(self) -> Any:
        try:
            return self._pool.getconn(timeout=self._timeout_s)
        except Exception as error:
            raise connection_unavailable(error, self._timeout_s, self._size) from error

    def _put(self, conn: Any) -> None:
        try:
            self._pool.putconn(conn)
        except Exception:
            pass

    @contextmanager
    def connection(self) -> Iterator[Any]:
        """A pooled connection for statements of one's own, committed when the block ends (rolled back if it raises)."""
        conn = self._get()
        try:
            yield conn
            if not conn.closed:
                conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                pass
            raise
        finally:
            self._put(conn)

    def record_sink(
        self, checkpoint_key: Optional[CheckpointKeyInput] = None, checkpoint_every: Optional[int] = None, clock: Optional[Callable[[], int]] = None
    ) -> PostgresRecordSink:
        """
        A record sink writing to this store's records table, inside the store's units when a Veto uses both.
        With ``checkpoint_key`` (Ed25519) it signs checkpoints every ``checkpoint_every`` records (default
        1,000) and at close; closing the store closes it first.
        """
        sink = PostgresRecordSink(self, _signing(checkpoint_key, checkpoint_every, clock, "PostgresStore.record_sink"))
        if sink.checkpoint_key_id is not None:
            self._signing_sinks.append(sink)
        return sink

    def default_record_sink(self) -> PostgresRecordSink:
        """The sink create_veto uses when given this store and no record_sink."""
        if self._default_sink is None:
            self._default_sink = self.record_sink()
        return self._default_sink

    # -- the store -------------------------------------------------------------

    def now(self) -> int:
        """The database's clock (docs/contract.md §6), epoch milliseconds: what every instance on it times approvals by."""
        with self.connection() as conn:
            row = conn.execute(f"SELECT {DB_NOW_MS}").fetchone()
        return int(row[0])

    def append_decision(self, decision: StoredDecision) -> None:
        with self.connection() as conn:
            self._ops.append(conn, decision)

    def count_recent_denies(self, actor_id: str, tenant_id: str, since_ms: float) -> int:
        with self.connection() as conn:
            return self._ops.count(conn, actor_id, tenant_id, since_ms)

    def get_decision(self, decision_id: str) -> Optional[StoredDecision]:
        with self.connection() as conn:
            return self._ops.get(conn, decision_id)

    def transition_approval(self, decision_id: str, t: ApprovalTransition) -> bool:
        """``t.at_ms`` is not used: the database's clock decides, and times the answer."""
        with self.connection() as conn:
            return self._ops.transition(conn, decision_id, t, None)

    @contextmanager
    def transaction_unit(self, actor_id: Optional[str], tenant_id: Optional[str], _lock: bool = True) -> Iterator[PostgresUnit]:
        """
        One transaction on one connection, held throughout: the history lock on (actor, tenant) when both
        are given, then the database's clock. Not committed when the block ends: rolled back.
        """
        conn = self._get()
        try:
            if actor_id is not None and tenant_id is not None and _lock:
                conn.execute(LOCK_SQL, (history_lock_key(self.schema, actor_id, tenant_id),))
            row = conn.execute(f"SELECT {DB_NOW_MS}").fetchone()
        except BaseException:
            try:
                conn.rollback()
            except Exception:
                pass
            self._put(conn)
            raise
        if row is None or not isinstance(row[0], int):
            self._put(conn)
            raise RuntimeError("the database did not tell its time")
        unit = PostgresUnit(self, conn, int(row[0]))
        try:
            yield unit
        finally:
            unit.rollback()

    @contextmanager
    def unit(self, actor_id: Optional[str], tenant_id: Optional[str]) -> Iterator[PostgresUnit]:
        with self.transaction_unit(actor_id, tenant_id, self._history_lock) as unit:
            yield unit

    # -- notifications ---------------------------------------------------------

    def watch_decision(self, decision_id: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the decision's approval changes, in any process on this schema; returns the unsubscribe."""
        with self._watch_lock:
            self._watchers.setdefault(decision_id, []).append(listener)
            if self._listener is None and not self._closed.is_set():
                self._listener = threading.Thread(target=self._listen_loop, name=f"veto-listen-{self.schema}", daemon=True)
                self._listener.start()
        return unwatcher(self._watch_lock, self._watchers, decision_id, listener)

    def _notify(self, decision_id: Optional[str]) -> None:
        with self._watch_lock:
            if decision_id is None:
                listeners = [fn for fns in self._watchers.values() for fn in fns]
            else:
                listeners = list(self._watchers.get(decision_id, ()))
        for fn in listeners:
            try:
                fn()
            except Exception as error:
                log.error("an approval watcher failed", exc_info=error)

    def _listen_loop(self) -> None:
        """One LISTEN connection (outside the pool), reopened while the store is open; every waiter re-reads after each (re)connect."""
        from .driver import connect

        while not self._closed.is_set():
            conn = None
            try:
                conn = connect(self._url, autocommit=True, timeout_s=self._timeout_s, application_name=LISTEN_APPLICATION)
                self._listen_conn = conn
                conn.execute(f"LISTEN {APPROVAL_CHANNEL}")
                # Anything answered while we were not listening: every waiter re-reads.
                self._notify(None)
                while not self._closed.is_set():
                    for message in conn.notifies(timeout=0.25):
                        self._on_notification(message.channel, message.payload)
            except Exception as error:
                if not self._closed.is_set():
                    log.error("PostgreSQL LISTEN connection failed; polling until it is back", exc_info=error)
                    self._closed.wait(RECONNECT_S)
            finally:
                self._listen_conn = None
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:
                        pass

    def _on_notification(self, channel: str, payload: str) -> None:
        if channel != APPROVAL_CHANNEL:
            return
        try:
            target = json.loads(payload)
        except ValueError:
            return
        if not isinstance(target, list) or len(target) < 2 or target[0] != self.schema or not isinstance(target[1], str):
            return
        self._notify(target[1])

    def close(self) -> None:
        """Sign the close checkpoints of this store's signing sinks, stop listening, close the pool. Safe to call twice."""
        if self._closed.is_set():
            return
        for sink in self._signing_sinks:
            try:
                sink.close()
            except Exception as error:
                log.error("records: the close checkpoint could not be written", exc_info=error)
        self._closed.set()
        with self._watch_lock:
            self._watchers.clear()
            listener = self._listener
        if listener is not None:
            listener.join(timeout=2)
        self._pool.close()


__all__ = ["PostgresStore", "PostgresUnit", "PostgresStoreError"]
