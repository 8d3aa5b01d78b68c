"""
What backs an approval (docs/contract.md §6, §7; adapter/approvals/evidence.ts).
A store entry that says "approved" is not evidence: an approval counts only
when the records say the same thing: the decision's own record names the
reviewer among its approvers and not as its actor, and an approval record by
that reviewer, for that decision and call digest, at the time the store
gives, exists. The records are this process's memory of those it wrote (one
memory per sink object, so instances sharing a sink check each other's
answers); an answer this process cannot check is refused.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import Any, Optional

from .decision import iso_timestamp
from .store import StoredDecision

ReadRecord = dict[str, Any]


def _evidence_of(record: dict[str, Any]) -> ReadRecord:
    """What approval checks read of a record (not the call it holds)."""
    get = record.get
    common = {
        "type": get("type"),
        "decision_id": get("decision_id"),
        "timestamp": get("timestamp"),
        "actor_id": get("actor_id"),
        "tenant_id": get("tenant_id"),
        "call_digest": get("call_digest"),
    }
    result = record.get("result") or {}
    if record.get("type") == "decision":
        made = {**common, "result": {"action": result.get("action"), "escalated": result.get("escalated"), "approvers": list(result.get("approvers") or [])}}
        # The record state an approval is bound to, and the amendment a decision came from (docs/contract.md §6).
        for name in ("record_state", "amended_from"):
            if name in record:
                made[name] = record[name]
        return made
    if record.get("type") == "execution":
        return {**common, "reviewer_id": record.get("reviewer_id"), "result": {"execution": result.get("execution")}}
    return {**common, "reviewer_id": record.get("reviewer_id"), "note": record.get("note"), "result": {"approval": result.get("approval")}}


class WrittenRecords:
    """The records written that an approval check reads; bounded, the oldest decisions forgotten first (then refused)."""

    def __init__(self, max_decisions: int = 100_000) -> None:
        self._max = max_decisions
        self._by_decision: OrderedDict[str, list[ReadRecord]] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, record: dict[str, Any]) -> None:
        # Decisions an approval check reads: require_approval ones, and those of amended calls (the amendment's evidence).
        kept = (
            record.get("type") != "decision"
            or (record.get("result") or {}).get("action") == "require_approval"
            or record.get("amended_from") is not None
        )
        decision_id = record.get("decision_id")
        if not isinstance(decision_id, str):
            return
        with self._lock:
            existing = self._by_decision.get(decision_id)
            if existing is not None:
                existing.append(_evidence_of(record))
            elif kept:
                self._by_decision[decision_id] = [_evidence_of(record)]
                if len(self._by_decision) > self._max:
                    self._by_decision.popitem(last=False)

    def read_records(self, decision_id: str) -> list[ReadRecord]:
        with self._lock:
            return list(self._by_decision.get(decision_id, []))


_by_sink: "weakref.WeakKeyDictionary[Any, WrittenRecords]" = weakref.WeakKeyDictionary()
_by_sink_lock = threading.Lock()


def written_records_of(sink: Any) -> WrittenRecords:
    """The memory of the records written to ``sink``: one per sink object (a fresh one when the sink cannot be weakly referenced)."""
    with _by_sink_lock:
        try:
            written = _by_sink.get(sink)
            if written is None:
                written = WrittenRecords()
                _by_sink[sink] = written
            return written
        except TypeError:
            return WrittenRecords()


def _same_time(value: Any, ms: Optional[float]) -> bool:
    """A record's timestamp is the store's time, to the millisecond a record can hold."""
    return ms is not None and value == iso_timestamp(ms)


def approval_problem(decision: StoredDecision, records: list[ReadRecord]) -> Optional[str]:
    """Why the approval the store shows for ``decision`` is not backed by its records (in the order written), or None (evidence.ts, same words)."""
    approval = decision.approval
    # An executed approval was approved, then claimed: its answer is the approval's.
    if approval is None or approval.status not in ("approved", "executed"):
        return "the store shows no approval"
    return answer_problem(decision, records)


def answer_problem(decision: StoredDecision, records: list[ReadRecord]) -> Optional[str]:
    """Why the answer (approved or rejected) the store shows for ``decision`` is not backed by its records, or None (evidence.ts answerProblem)."""
    approval = decision.approval
    status = "approved" if approval is not None and approval.status == "executed" else None if approval is None else approval.status
    reviewer = None if approval is None else approval.reviewer_id
    if status not in ("approved", "rejected") or not reviewer:
        return "the store shows no answer with a reviewer"
    assert approval is not None
    if reviewer == decision.actor_id:
        return f"the store shows it {status} by {reviewer}, the decision's own actor"
    if reviewer not in decision.approvers:
        return f"the store shows it {status} by {reviewer}, who is not among its approvers"
    if decision.call_digest is None:
        return "the store shows no call digest for it"
    made_list = [r for r in records if r.get("type") == "decision"]
    if not made_list:
        return "its decision record is not in the records"
    # The last decision record is the one in force (a record_unavailable deny supersedes the first).
    made = made_list[-1]
    result = made.get("result") or {}
    listed = result.get("approvers")
    recorded_ok = isinstance(listed, list) and all(isinstance(a, str) for a in listed)
    recorded: list[str] = list(listed) if recorded_ok and isinstance(listed, list) else []
    if result.get("action") != "require_approval":
        return f"its decision record says {result.get('action')}, not require_approval"
    if (
        made.get("actor_id") != decision.actor_id
        or made.get("tenant_id") != decision.tenant_id
        or made.get("call_digest") != decision.call_digest
        or not _same_time(made.get("timestamp"), decision.at_ms)
        # The record state the approval is bound to (docs/contract.md §6) is the one recorded.
        or made.get("record_state") != decision.record_state
        or not recorded_ok
        or set(recorded) != set(decision.approvers)
    ):
        return "its decision record does not match the store (actor, tenant, call digest, time, approvers or record state differ)"
    if reviewer == made.get("actor_id") or reviewer not in recorded:
        return f"its decision record does not list {reviewer} among its approvers"
    kind = "approval" if status == "approved" else "rejection"
    answers = [r for r in records if r.get("type") in ("approval", "rejection")]
    if not answers:
        return f"no {kind} record by {reviewer} is in the records"
    if len(answers) > 1:
        return f"the records hold {len(answers)} answers to it, not one"
    answer = answers[0]
    if answer.get("type") != kind or (answer.get("result") or {}).get("approval") != status:
        return f"the records hold {'a rejection' if kind == 'approval' else 'an approval'} of it, not {'an approval' if kind == 'approval' else 'a rejection'}"
    if answer.get("reviewer_id") != reviewer:
        return f"its {kind} record is by {answer.get('reviewer_id')}, not {reviewer}"
    if answer.get("call_digest") != decision.call_digest or answer.get("actor_id") != decision.actor_id or answer.get("tenant_id") != decision.tenant_id:
        return f"its {kind} record is for another call (call digest, actor or tenant differ)"
    if not _same_time(answer.get("timestamp"), approval.answered_at_ms):
        return f"its {kind} record's time differs from the store's"
    if answer.get("note") != approval.note:
        return f"its {kind} record's note differs from the store's"
    return None
