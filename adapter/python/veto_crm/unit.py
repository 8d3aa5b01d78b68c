"""
One decision's (or one answer's) store and record writes as a unit (adapter/history/unit.ts): the
store's unit of work (a per-(actor, tenant) lock; for a database, one transaction with the lock), and
the record written inside that transaction when the record sink can join it. For the in-memory store
the unit is its lock and writes go straight through: ``commit`` and ``rollback`` do nothing.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, ContextManager, Iterator, Optional

from .records import RecordSink
from .store import ApprovalTransition, StoredDecision


class DecisionUnit:
    """What the decision flow and the approval desk do inside a unit."""

    #: The unit's time by the store's clock (the database's), or None: use the instance's clock.
    now_ms: Optional[float] = None
    #: Whether ``write_record`` writes inside the store's transaction (then it commits with it).
    records_in_transaction = False

    def __init__(self, store: Any, sink: RecordSink, inner: Any = None) -> None:
        self._store = store
        self._sink = sink
        self._inner = inner
        self._target = inner if inner is not None else store
        if inner is not None:
            self.now_ms = inner.now_ms
            joins = getattr(sink, "joins_transaction", None)
            self.records_in_transaction = callable(joins) and bool(joins(inner.transaction))

    def count_recent_denies(self, actor_id: str, tenant_id: str, since_ms: float) -> int:
        return int(self._target.count_recent_denies(actor_id, tenant_id, since_ms))

    def append_decision(self, decision: StoredDecision) -> None:
        self._target.append_decision(decision)

    def get_decision(self, decision_id: str) -> Optional[StoredDecision]:
        found: Optional[StoredDecision] = self._target.get_decision(decision_id)
        return found

    def transition_approval(self, decision_id: str, t: ApprovalTransition) -> bool:
        return bool(self._target.transition_approval(decision_id, t))

    def claim_execution(self, decision_id: str, at_ms: float) -> bool:
        """The use-once claim of an allowed amended call (store.py); a store without it refuses (the call does not run)."""
        claim = getattr(self._target, "claim_execution", None)
        if not callable(claim):
            raise RuntimeError("this store has no claim_execution, so an allowed amended call cannot be claimed once")
        return bool(claim(decision_id, at_ms))

    def write_record(self, record: dict[str, Any]) -> None:
        """Inside the unit's transaction when the sink can join it, else through the sink. A failed write ends the unit (rolled back)."""
        try:
            if self.records_in_transaction:
                self._sink.write_in_transaction(self._inner.transaction, record)  # type: ignore[attr-defined]
            else:
                self._sink.write(record)
        except BaseException:
            self.rollback()
            raise

    def commit(self) -> None:
        if self._inner is not None:
            self._inner.commit()

    def rollback(self) -> None:
        if self._inner is not None:
            self._inner.rollback()


def is_transactional(store: Any) -> bool:
    return getattr(store, "transactional", False) is True


def run_unit(
    store: Any, sink: RecordSink, actor_id: Optional[str], tenant_id: Optional[str], plain: Optional[DecisionUnit] = None
) -> ContextManager[DecisionUnit]:
    """
    A unit on ``store``: exclusive per (actor, tenant) when both are given; for a database store, one transaction.
    ``plain``: a DecisionUnit(store, sink) to use for a store without transactions (one holds nothing of a unit).
    """
    if plain is not None:
        return _Held(None if actor_id is None or tenant_id is None else store.unit(actor_id, tenant_id), plain)
    if is_transactional(store):
        return _transaction_unit(store, sink, actor_id, tenant_id)
    if actor_id is None or tenant_id is None:
        return _Held(None, DecisionUnit(store, sink))
    return _Held(store.unit(actor_id, tenant_id), DecisionUnit(store, sink))


class _Held:
    """
    ``with store.unit(actor, tenant): yield DecisionUnit(store, sink)`` as a
    class (one per decision: a generator-based context manager costs several
    times as much), the store's own unit entered and left exactly as the
    ``with`` would (its ``__exit__`` sees the exception and may suppress it).
    """

    __slots__ = ("_inner", "_unit")

    def __init__(self, inner: Any, unit: DecisionUnit) -> None:
        self._inner = inner
        self._unit = unit

    def __enter__(self) -> DecisionUnit:
        if self._inner is not None:
            self._inner.__enter__()
        return self._unit

    def __exit__(self, kind: Any, error: Any, trace: Any) -> bool:
        if self._inner is not None:
            return bool(self._inner.__exit__(kind, error, trace))
        return False


@contextmanager
def _transaction_unit(store: Any, sink: RecordSink, actor_id: Optional[str], tenant_id: Optional[str]) -> Iterator[DecisionUnit]:
    with store.unit(actor_id, tenant_id) as inner:
        yield DecisionUnit(store, sink, inner)
