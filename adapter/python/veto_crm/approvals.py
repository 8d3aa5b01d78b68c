"""
Approvals (docs/contract.md §6), as adapter/approvals.ts answers and waits:
only a listed approver, never the decision's actor, once, before expiry; an
answer is reserved, recorded, and only then committed, so no approval takes
effect without its record; a wait is bound to the call's digest when the call
is given; a wait accepts an approval only when the records back it
(evidence.py, ``approval_unverified``); a wait given the call claims the
approval for execution (use-once: approved -> executed, ``already_executed``
for a second claim).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from .bundle import BundleVersion
from .decision import iso_timestamp
from .errors import ApprovalError, VetoOptionsError
from .evidence import WrittenRecords, approval_problem, written_records_of
from .jsontext import js_number
from .records import RecordSink, answer_record, execution_record
from .store import ApprovalTransition, StoredDecision
from .text import is_blank
from .unit import run_unit

log = logging.getLogger("veto_crm")


@dataclass(frozen=True)
class ApprovalAnswer:
    decision_id: str
    status: str
    reviewer_id: str
    #: ISO 8601 UTC.
    answered_at: str
    note: Optional[str] = None


def require_text(value: Any, name: str, method: str) -> str:
    if not isinstance(value, str) or is_blank(value):
        raise VetoOptionsError(f"{method}: {name} must be a non-empty string")
    return value


class ApprovalDesk:
    def __init__(
        self,
        store: Any,
        sink: RecordSink,
        clock: Callable[[], float],
        bundle: Callable[[], BundleVersion],
        poll_ms: float,
        call_digest: Callable[[Mapping[str, Any]], str],
        written: Optional[WrittenRecords] = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock
        self.bundle = bundle
        self.poll_ms = poll_ms
        self.call_digest = call_digest
        #: What backs an approval: the sink's records read back when it can be read (the PostgreSQL
        #: sink: the shared chain, so an answer given by any instance, Node or Python, is checked), else
        #: this process's memory of the records written to the sink.
        self.written: Any = written if written is not None else sink if callable(getattr(sink, "read_records", None)) else written_records_of(sink)
        self._closed: Optional[Exception] = None
        self._wakers: set[threading.Event] = set()
        self._wakers_lock = threading.Lock()

    def now(self) -> float:
        """The store's clock when it has one (the database's: docs/contract.md §6, one clock for every instance), else the instance's."""
        store_now = getattr(self.store, "now", None)
        return float(store_now()) if callable(store_now) else self.clock()

    def answer(self, kind: str, decision_id: Any, reviewer_id: Any, note: Any = None) -> ApprovalAnswer:
        method = "approve" if kind == "approval" else "reject"
        decision_id = require_text(decision_id, "decision_id", method)
        reviewer_id = require_text(reviewer_id, "reviewer_id", method)
        if note is not None and not isinstance(note, str):
            raise VetoOptionsError(f"{method}: note must be a string when given")
        decision = self.approvable(decision_id)
        if reviewer_id == decision.actor_id:
            raise ApprovalError("self_approval", decision_id, f"{reviewer_id} made the call and cannot answer its own approval")
        if reviewer_id not in decision.approvers:
            raise ApprovalError(
                "not_an_approver",
                decision_id,
                f"{reviewer_id} is not among this decision's approvers ({', '.join(decision.approvers)})",
            )
        self._refuse_if_settled(decision, self.now())

        status = "approved" if kind == "approval" else "rejected"
        # Reserve, record, settle: one unit, so with a transactional store the reservation is never seen
        # by others and a crash leaves the approval pending with no record.
        try:
            with run_unit(self.store, self.sink, None, None) as unit:
                return self._answer_in(unit, kind, status, decision, reviewer_id, note)
        except ApprovalError:
            raise
        except Exception as error:
            # The store could not give a unit or lost it: refused, naming why.
            log.error("%s could not be stored (decision %s)", kind, decision_id, exc_info=error)
            raise ApprovalError("record_unavailable", decision_id, f"the {kind} could not be stored: {error}") from error

    def _answer_in(self, unit: Any, kind: str, status: str, decision: StoredDecision, reviewer_id: str, note: Optional[str]) -> ApprovalAnswer:
        decision_id = decision.id
        # The time of the answer is read again where the reservation is made (by the store's clock when
        # it has one: the unit's), and the store refuses to reserve a pending approval at or after its
        # expiry, so no answer commits after it.
        at_ms = unit.now_ms if unit.now_ms is not None else self.clock()
        if not unit.transition_approval(decision_id, ApprovalTransition("pending", "answering", at_ms, reviewer_id)):
            again = unit.get_decision(decision_id)
            unit.rollback()
            if again is not None and again.approval is not None and again.approval.status == "pending":
                # Pending but not reservable: the store's clock says it has expired.
                try:
                    self.store.transition_approval(decision_id, ApprovalTransition("pending", "expired", at_ms))
                except Exception:
                    pass
                raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired at {iso_timestamp(again.approval.expires_at_ms)}")
            if again is not None:
                self._refuse_if_settled(again, at_ms)
            raise ApprovalError("already_answered", decision_id, f"decision {decision_id} is already being answered")
        record = answer_record(
            kind=kind,
            decision_id=decision_id,
            timestamp=iso_timestamp(at_ms),
            bundle=self.bundle(),
            actor_id=decision.actor_id,
            tenant_id=decision.tenant_id,
            call_digest=decision.call_digest,
            reviewer_id=reviewer_id,
            note=note,
        )
        try:
            unit.write_record(record)
        except Exception as error:
            # A transactional unit is already rolled back (the reservation with it).
            if not unit.records_in_transaction:
                self.store.transition_approval(decision_id, ApprovalTransition("answering", "pending", at_ms))
            raise ApprovalError(
                "record_unavailable", decision_id, f"the {kind} was refused because its record could not be written: {error}"
            ) from error
        # Known before the answer commits: a waiter that sees the approval finds its record.
        self.written.remember(record)
        try:
            unit.transition_approval(decision_id, ApprovalTransition("answering", status, at_ms, reviewer_id, note))
            unit.commit()
        except Exception:
            # A COMMIT whose connection broke may have committed all the same: read what the store holds.
            try:
                held = self.store.get_decision(decision_id)
            except Exception:
                held = None
            approval = None if held is None else held.approval
            if approval is not None and approval.status == status and approval.reviewer_id == reviewer_id and approval.answered_at_ms == at_ms:
                return ApprovalAnswer(decision_id, status, reviewer_id, record["timestamp"], note)
            raise
        return ApprovalAnswer(decision_id, status, reviewer_id, record["timestamp"], note)

    def approvable(self, decision_id: str) -> StoredDecision:
        decision: Optional[StoredDecision] = self.store.get_decision(decision_id)
        if decision is None:
            raise ApprovalError("unknown_decision", decision_id, f"no decision {decision_id} is known to this store")
        if decision.action != "require_approval" or decision.approval is None:
            raise ApprovalError(
                "approval_not_required", decision_id, f"decision {decision_id} was {decision.action}, not require_approval"
            )
        return decision

    def _refuse_if_settled(self, decision: StoredDecision, now_ms: float) -> None:
        approval = decision.approval
        assert approval is not None
        if approval.status == "pending" and now_ms >= approval.expires_at_ms:
            self.store.transition_approval(decision.id, ApprovalTransition("pending", "expired", now_ms))
            raise ApprovalError("approval_expired", decision.id, f"the approval of {decision.id} expired at {iso_timestamp(approval.expires_at_ms)}")
        if approval.status == "expired":
            raise ApprovalError("approval_expired", decision.id, f"the approval of {decision.id} expired at {iso_timestamp(approval.expires_at_ms)}")
        if approval.status != "pending":
            by = "" if approval.reviewer_id is None else f" by {approval.reviewer_id}"
            raise ApprovalError("already_answered", decision.id, f"decision {decision.id} was already answered ({approval.status}{by})")

    def settled_outcome(self, decision_id: str) -> Optional[ApprovalAnswer]:
        """The answer if the approval was approved; raises ApprovalError if it ended otherwise; None while pending."""
        decision = self.approvable(decision_id)
        approval = decision.approval
        assert approval is not None
        if approval.status in ("approved", "executed"):
            # An executed approval was approved: a wait that claims it is refused by the claim (already_executed).
            # The one place an approval is accepted: only when the records back what the store shows.
            problem = approval_problem(decision, self.written.read_records(decision_id))
            if problem is not None:
                log.error("approval refused: the records do not back it (decision %s, reviewer %s): %s", decision_id, approval.reviewer_id, problem)
                raise ApprovalError("approval_unverified", decision_id, f"the approval of {decision_id} is refused: {problem}")
            return ApprovalAnswer(
                decision_id, "approved", approval.reviewer_id or "", iso_timestamp(approval.answered_at_ms or 0), approval.note
            )
        if approval.status == "rejected":
            note = "" if approval.note is None else f": {approval.note}"
            raise ApprovalError("approval_rejected", decision_id, f"the call was rejected by {approval.reviewer_id or 'a reviewer'}{note}")
        if approval.status == "expired":
            raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired")
        now_ms = self.now()
        if now_ms < approval.expires_at_ms:
            return None
        # The store has the last word on expiry: if it did not move the approval (an answer came first), the next read says what happened.
        if approval.status == "pending" and not self.store.transition_approval(decision_id, ApprovalTransition("pending", "expired", now_ms)):
            return None
        raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired")

    def check_wait(self, decision_id: Any, timeout_ms: Any, call: Optional[Mapping[str, Any]]) -> StoredDecision:
        """The checks a wait starts with (arguments, the decision, the call's digest)."""
        decision_id = require_text(decision_id, "decision_id", "wait_for_approval")
        if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or not timeout_ms >= 0):
            raise VetoOptionsError("wait_for_approval: timeout_ms must be a non-negative number of milliseconds")
        if self._closed is not None:
            raise self._closed
        decision = self.approvable(decision_id)
        if call is not None and self.call_digest(call) != decision.call_digest:
            raise ApprovalError("call_mismatch", decision_id, f"the approval of {decision_id} is for a different call")
        return decision

    def wait(self, decision_id: Any, timeout_ms: Optional[float] = None, call: Optional[Mapping[str, Any]] = None, cancel: Optional[threading.Event] = None) -> ApprovalAnswer:
        decision = self.check_wait(decision_id, timeout_ms, call)
        wake = threading.Event()
        unwatch = self.store.watch_decision(decision.id, wake.set)
        with self._wakers_lock:
            self._wakers.add(wake)
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        try:
            while True:
                if self._closed is not None:
                    raise self._closed
                if cancel is not None and cancel.is_set():
                    raise ApprovalError("approval_aborted", decision.id, f"waiting for approval of {decision.id} was aborted")
                wake.clear()
                answer = self.settled_outcome(decision.id)
                if answer is not None:
                    return answer if call is None else self._claim(decision, answer)
                pause = self.poll_ms / 1000
                approval = decision.approval
                if approval is not None:
                    pause = min(pause, max(0.0, (approval.expires_at_ms - self.now() + 1) / 1000))
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ApprovalError("approval_timeout", decision.id, f"no answer for {decision.id} within {js_number(timeout_ms or 0)} ms")
                    pause = min(pause, left)
                wake.wait(pause)
        finally:
            unwatch()
            with self._wakers_lock:
                self._wakers.discard(wake)

    def _claim(self, decision: StoredDecision, answer: ApprovalAnswer) -> ApprovalAnswer:
        """
        The use-once claim (docs/contract.md §6): approved -> executed by
        compare-and-set, then its execution record, before the call runs (as
        approvals/desk.ts does for a sink outside the store's transaction): a
        record that cannot be written loses the call, never runs it twice or
        unrecorded. A claim that finds the approval claimed already is refused
        with already_executed, and that refusal is recorded too.
        """
        def record(execution: str, at_ms: float) -> dict[str, Any]:
            return execution_record(
                decision_id=decision.id,
                timestamp=iso_timestamp(at_ms),
                bundle=self.bundle(),
                actor_id=decision.actor_id,
                tenant_id=decision.tenant_id,
                call_digest=decision.call_digest,
                reviewer_id=answer.reviewer_id,
                execution=execution,
            )

        refused_at: Optional[float] = None
        try:
            with run_unit(self.store, self.sink, None, None) as unit:
                at_ms = unit.now_ms if unit.now_ms is not None else self.clock()
                claimed = record("claimed", at_ms)
                # In the transaction, the record first (both commit together); else the claim first, so a
                # record that cannot be written loses the call, never runs it twice or unrecorded.
                if unit.records_in_transaction:
                    unit.write_record(claimed)
                if not unit.transition_approval(decision.id, ApprovalTransition("approved", "executed", at_ms)):
                    unit.rollback()
                    refused_at = at_ms
                else:
                    unit.commit()
                    if not unit.records_in_transaction:
                        unit.write_record(claimed)
                    self.written.remember(claimed)
                    return answer
        except Exception as error:
            log.error("approval could not be claimed; the call does not run (decision %s): %s", decision.id, error)
            raise ApprovalError(
                "record_unavailable", decision.id, f"the approval of {decision.id} could not be claimed for execution: {error}"
            ) from error
        if refused_at is not None:
            refused = record("refused", refused_at)
            try:
                self.sink.write(refused)
                self.written.remember(refused)
            except Exception as error:
                log.error("refused claim could not be recorded (decision %s): %s", decision.id, error)
        raise ApprovalError(
            "already_executed", decision.id, f"the approved call {decision.id} was already claimed for execution; it runs at most once"
        )

    def close(self, error: Exception) -> None:
        """Wake every wait with ``error``, and refuse every wait started from now on."""
        self._closed = error
        with self._wakers_lock:
            wakers = list(self._wakers)
        for wake in wakers:
            wake.set()
