"""
State shared between decisions (adapter/store.ts): deny history per
(actor_id, tenant_id) and pending approvals, in memory, bounded, thread-safe.

Escalation semantics are the TypeScript adapter's: ``count_recent_denies``
counts the denies and rejected approvals of (actor, tenant) at or after
``since_ms``; every deny decision that names its actor and tenant counts,
except the adapter's own fail-closed denies (evaluation_error,
record_unavailable), stored with ``counts_towards_escalation`` False
(docs/contract.md §3).

What any store keeps for an approval (the PostgreSQL store too): the
decision's ``record_state`` and ``review`` (with the context an amendment is
decided with), an amended call's ``amendment``, and ``ApprovalState.amended_to``
after ``transition_approval(..., ApprovalTransition("answering", "amended",
at_ms, reviewer_id, note, amended_to))`` (docs/contract.md §6). Any store also
implements ``claim_execution(decision_id, at_ms)`` (an allowed amended call's
use-once claim, ``StoredDecision.executed_at_ms``) and counts neither the deny
nor the rejection of an amended call (``counts_for_actor``; docs/contract.md §9).
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, replace
from typing import Any, Callable, ContextManager, Literal, Mapping, Optional, TypeVar, Union

_T = TypeVar("_T")

try:
    # The compiled build (hatch_build.py) reads this decorator; at run time it does nothing.
    from mypy_extensions import mypyc_attr
except ImportError:  # pragma: no cover - without mypy_extensions (pure Python): the same no-op

    def mypyc_attr(*attrs: str, **kwattrs: object) -> Callable[[_T], _T]:
        return lambda cls: cls


from .bundle import BundleVersion
from .decision import Decision, Reason
from .frozen import fast_init, python_class

#: "executed": approved, then claimed once by the caller about to run the
#: call (use-once, docs/contract.md §6); no later claim succeeds. "amended": an
#: approver amended the call instead of answering it; the amended call is a new
#: decision (``amended_to``), and the original can never run.
ApprovalStatus = Literal["pending", "answering", "approved", "rejected", "expired", "executed", "amended"]

MAX_DENIES_PER_KEY = 10_000


@fast_init
@dataclass(frozen=True)
class ApprovalState:
    status: str
    expires_at_ms: float
    reviewer_id: Optional[str] = None
    note: Optional[str] = None
    answered_at_ms: Optional[float] = None
    #: When the approval was claimed for execution (status "executed").
    executed_at_ms: Optional[float] = None
    #: For status "amended": the decision id of the amended call.
    amended_to: Optional[str] = None


@fast_init
@dataclass(frozen=True)
class ApprovalReview:
    """
    What a reviewer sees of a require_approval decision, kept with it (the
    TypeScript store's ApprovalReview, field for field): the arguments as the
    record holds them (masked), and the call's context as decided, which an
    amendment of the call is decided with (docs/contract.md §6, amend).
    """

    tool: str
    environment: str
    #: The call's arguments as its record holds them: sensitive values masked.
    arguments: Any
    reasons: tuple[Reason, ...]
    bundle: BundleVersion
    recent_denies: Optional[int]
    #: The call's context, as decided (not masked).
    context: Optional[Mapping[str, Any]] = None


@python_class
@dataclass(frozen=True)
class Amendment:
    """What an amended call's decision keeps of its amendment (docs/contract.md §6, amend)."""

    #: The decision amended.
    from_id: str
    #: The approver who amended it.
    by: str
    #: The decision made for the amended call, as the caller of amend() got it.
    decision: Decision
    #: The amended call as decided (not masked: the waiting agent runs it), when it was a valid call.
    call: Optional[Mapping[str, Any]] = None


@fast_init
@dataclass(frozen=True)
class StoredDecision:
    id: str
    action: str
    escalated: bool
    at_ms: float
    approvers: tuple[str, ...] = ()
    #: Present when the decision could be attributed (the call named them).
    actor_id: Optional[str] = None
    tenant_id: Optional[str] = None
    #: Digest of tool, arguments and context: what an approval authorizes.
    call_digest: Optional[str] = None
    #: For require_approval decisions.
    approval: Optional[ApprovalState] = None
    #: For a deny: whether it counts towards its actor's recentDenies; False for
    #: the adapter's own fail-closed denies (an outage is not the actor's doing).
    counts_towards_escalation: bool = True
    #: For require_approval decisions: what the reviewer sees and an amendment is decided with (the
    #: TypeScript store's ApprovalReview), kept with the decision so an approval service on a shared
    #: store (Node's too) can show it.
    review: Optional[ApprovalReview] = None
    #: For require_approval decisions: the state of the target CRM record when
    #: the call needed approval, as the application's ``record_state`` gave it
    #: (docs/contract.md §6, record state); None when no state was bound. Never changes.
    record_state: Optional[str] = None
    #: For the decision of an amended call: the amendment it came from.
    amendment: Optional[Amendment] = None
    #: For an amended call the policy allowed (no approval to claim): when it
    #: was claimed for execution, once (``claim_execution``).
    executed_at_ms: Optional[float] = None


@dataclass(frozen=True)
class ApprovalTransition:
    from_status: str
    to_status: str
    at_ms: float
    reviewer_id: Optional[str] = None
    note: Optional[str] = None
    #: For a move to "amended": the decision id of the amended call.
    amended_to: Optional[str] = None


def counts_towards_escalation(decision: StoredDecision) -> bool:
    """Which decisions count as the actor's denies (docs/contract.md §3 recentDenies): every attributed deny but the adapter's own outages."""
    return (
        decision.action == "deny"
        and decision.counts_towards_escalation
        and decision.actor_id is not None
        and decision.tenant_id is not None
    )


def counts_for_actor(decision: StoredDecision) -> bool:
    """
    Whether what becomes of a decision can count towards its actor's deny
    history (history/store.ts countsForActor): not the adapter's own
    fail-closed denies, and nothing of an amended call, which the reviewer
    made, not the agent (docs/contract.md §6, amend; §9): neither its deny nor
    the rejection of its approval.
    """
    return decision.counts_towards_escalation and decision.amendment is None


def unwatcher(
    lock: Any, watchers: dict[str, list[Callable[[], None]]], decision_id: str, listener: Callable[[], None]
) -> Callable[[], None]:
    """The unsubscribe of a store's watch_decision: takes ``listener`` off ``watchers`` under ``lock``, once."""

    def unwatch() -> None:
        with lock:
            listeners = watchers.get(decision_id)
            if listeners is not None and listener in listeners:
                listeners.remove(listener)
                if not listeners:
                    del watchers[decision_id]

    return unwatch


@mypyc_attr(allow_interpreted_subclasses=True)
class InMemoryStore:
    """The default store. ``history_retention_ms`` may be a function asked at each pruning (retention can follow the bundle in force)."""

    def __init__(self, max_decisions: int = 100_000, history_retention_ms: Union[float, Callable[[], float]] = 24 * 3600 * 1000) -> None:
        self._max_decisions = max_decisions
        self._retention: Callable[[], float] = history_retention_ms if callable(history_retention_ms) else (lambda: float(history_retention_ms))  # type: ignore[arg-type,unused-ignore]
        self._decisions: OrderedDict[str, StoredDecision] = OrderedDict()
        self._denies: dict[tuple[str, str], list[float]] = {}
        self._watchers: dict[str, list[Callable[[], None]]] = {}
        self._lock = threading.RLock()
        self._unit_locks: dict[tuple[str, str], tuple[threading.Lock, int]] = {}
        self._unit_guard = threading.Lock()
        self._latest_ms = 0.0
        self._appends_since_sweep = 0

    def append_decision(self, decision: StoredDecision) -> None:
        with self._lock:
            self._decisions[decision.id] = decision
            at_ms = decision.at_ms
            if at_ms > self._latest_ms:
                self._latest_ms = at_ms
            # counts_towards_escalation(decision), inline.
            if decision.action == "deny" and decision.counts_towards_escalation and decision.actor_id is not None and decision.tenant_id is not None:
                self._add_deny(decision.actor_id, decision.tenant_id, at_ms)
            self._evict()

    def count_recent_denies(self, actor_id: str, tenant_id: str, since_ms: float) -> int:
        with self._lock:
            times = self._denies.get((actor_id, tenant_id))
            if not times:
                return 0
            return len(times) - bisect.bisect_left(times, since_ms)

    def get_decision(self, decision_id: str) -> Optional[StoredDecision]:
        with self._lock:
            return self._decisions.get(decision_id)

    def transition_approval(self, decision_id: str, t: ApprovalTransition) -> bool:
        """
        Move an approval from ``t.from_status`` to ``t.to_status`` if and only if
        it is in ``from_status`` (the first answer wins), and, from "pending" to
        anything but "expired", only while ``t.at_ms`` is before its expiry. A
        move to "rejected" counts as a deny at ``t.at_ms`` unless nothing of the
        decision counts (``counts_for_actor``: an amended call); "approved" ->
        "executed" (the use-once claim) keeps the answer and sets
        ``executed_at_ms``; a move to "amended" (from "answering", reserved by
        the amender, docs/contract.md §6) keeps ``amended_to``.
        """
        with self._lock:
            decision = self._decisions.get(decision_id)
            if decision is None or decision.approval is None or decision.approval.status != t.from_status:
                return False
            if t.from_status == "pending" and t.to_status != "expired" and t.at_ms >= decision.approval.expires_at_ms:
                return False
            if t.to_status == "executed":
                # The use-once claim: only an approved call, and its answer stays as given.
                if t.from_status != "approved":
                    return False
                self._decisions[decision_id] = replace(decision, approval=replace(decision.approval, status="executed", executed_at_ms=t.at_ms))
                listeners = list(self._watchers.get(decision_id, ()))
                for listener in listeners:
                    listener()
                return True
            approval = ApprovalState(
                status=t.to_status,
                expires_at_ms=decision.approval.expires_at_ms,
                reviewer_id=t.reviewer_id,
                note=t.note,
                answered_at_ms=None if t.to_status in ("answering", "pending") else t.at_ms,
                amended_to=t.amended_to if t.to_status == "amended" else None,
            )
            self._decisions[decision_id] = replace(decision, approval=approval)
            if t.to_status == "rejected" and counts_for_actor(decision):
                self._add_deny(decision.actor_id, decision.tenant_id, t.at_ms)
            listeners = list(self._watchers.get(decision_id, ()))
        for listener in listeners:
            listener()
        return True

    def claim_execution(self, decision_id: str, at_ms: float) -> bool:
        """
        The use-once claim of an amended call the policy allowed
        (docs/contract.md §6, amend), which has no approval to move to
        "executed": sets its ``executed_at_ms`` to ``at_ms`` if and only if the
        decision is an allowed amended call not yet claimed (compare-and-set).
        Returns whether it did. Any store must implement it (the PostgreSQL
        store as one conditional UPDATE); the TypeScript store's claimExecution.
        """
        with self._lock:
            decision = self._decisions.get(decision_id)
            if decision is None or decision.action != "allow" or decision.amendment is None or decision.executed_at_ms is not None:
                return False
            self._decisions[decision_id] = replace(decision, executed_at_ms=at_ms)
            listeners = list(self._watchers.get(decision_id, ()))
        for listener in listeners:
            listener()
        return True

    def watch_decision(self, decision_id: str, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` whenever the decision's approval changes; returns the unsubscribe."""
        with self._lock:
            self._watchers.setdefault(decision_id, []).append(listener)
        return unwatcher(self._lock, self._watchers, decision_id, listener)

    def unit(self, actor_id: Optional[str], tenant_id: Optional[str]) -> ContextManager["InMemoryStore"]:
        """
        One unit of work: units for the same (actor, tenant) run one after
        another, so count -> evaluate -> record -> append sees every deny before
        it and escalation starts exactly at the threshold.
        """
        if actor_id is None or tenant_id is None:
            return nullcontext(self)
        return _KeyUnit(self, (actor_id, tenant_id))

    def close(self) -> None:
        with self._lock:
            self._watchers.clear()

    def _add_deny(self, actor_id: Optional[str], tenant_id: Optional[str], at_ms: float) -> None:
        if actor_id is None or tenant_id is None:
            return
        key = (actor_id, tenant_id)
        times = self._denies.setdefault(key, [])
        bisect.insort_right(times, at_ms)
        # Far beyond any sensible deny threshold; keeps one noisy actor's memory bounded.
        if len(times) > MAX_DENIES_PER_KEY:
            del times[: len(times) - MAX_DENIES_PER_KEY]
        self._latest_ms = max(self._latest_ms, at_ms)
        self._prune(key, times)

    def _prune(self, key: tuple[str, str], times: list[float]) -> None:
        cutoff = self._latest_ms - self._retention()
        drop = bisect.bisect_left(times, cutoff)
        if drop:
            del times[:drop]
        if not times:
            self._denies.pop(key, None)

    def _evict(self) -> None:
        # The oldest first; an evicted pending approval becomes unknown, which fails closed.
        while len(self._decisions) > self._max_decisions:
            self._decisions.popitem(last=False)
        self._appends_since_sweep += 1
        if self._appends_since_sweep >= 1024:
            self._appends_since_sweep = 0
            for key, times in list(self._denies.items()):
                self._prune(key, times)


class _KeyUnit:
    """
    InMemoryStore.unit for one (actor, tenant), as a class (one per decision):
    the key's lock, made by the first unit that needs it and shared with the
    units waiting for it, dropped when the last one leaves.
    """

    __slots__ = ("_store", "_key", "_lock")

    def __init__(self, store: InMemoryStore, key: tuple[str, str]) -> None:
        self._store = store
        self._key = key
        self._lock: Optional[threading.Lock] = None

    def __enter__(self) -> InMemoryStore:
        store = self._store
        key = self._key
        with store._unit_guard:
            entry = store._unit_locks.get(key)
            lock = threading.Lock() if entry is None else entry[0]
            store._unit_locks[key] = (lock, 1 if entry is None else entry[1] + 1)
        lock.acquire()
        self._lock = lock
        return store

    def __exit__(self, kind: Any, error: Any, trace: Any) -> None:
        lock = self._lock
        assert lock is not None
        self._lock = None
        lock.release()
        store = self._store
        key = self._key
        with store._unit_guard:
            _, users = store._unit_locks[key]
            if users <= 1:
                del store._unit_locks[key]
            else:
                store._unit_locks[key] = (lock, users - 1)
