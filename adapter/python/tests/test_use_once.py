"""
Use-once execution (docs/contract.md §6): an approved call is claimed
(approved -> executed) before it runs; a second claim is refused with
already_executed and recorded; the records of a Python run verify with the
TypeScript ``veto log verify`` and read back with both readers.
"""

from __future__ import annotations

import random
import threading
from pathlib import Path
from typing import Any

import pytest

from veto_crm import ApprovalError, FileDecisionLog, InMemoryStore, create_veto, read_log
from veto_crm.store import ApprovalTransition

from .conftest import APPROVER, FakeClock, MemorySink, run_ts_cli, write_call

SEED = random.SystemRandom().randrange(1 << 30)


def _approved(veto: Any, amount: int = 9000) -> tuple[Any, dict[str, Any]]:
    call = write_call({"amount": amount})
    decision = veto.protect(call)
    assert decision.action == "require_approval"
    veto.approve(decision.id, APPROVER, "ok")
    return decision, call


def test_a_guarded_tool_runs_once_and_a_second_claim_is_refused_and_recorded(bundle: Path) -> None:
    sink, store = MemorySink(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, clock=FakeClock(), approval_poll_ms=10) as veto:
        decision, call = _approved(veto)
        # Without the call, a wait only reads the answer: nothing is claimed.
        assert veto.wait_for_approval(decision.id).status == "approved"
        assert store.get_decision(decision.id).approval.status == "approved"  # type: ignore[union-attr]
        answer = veto.wait_for_approval(decision.id, call=call)
        assert answer.status == "approved" and answer.reviewer_id == APPROVER
        state = store.get_decision(decision.id).approval  # type: ignore[union-attr]
        assert state is not None and state.status == "executed" and state.executed_at_ms is not None
        assert state.reviewer_id == APPROVER and state.note == "ok"
        for _ in range(2):
            with pytest.raises(ApprovalError) as again:
                veto.wait_for_approval(decision.id, call=call)
            assert again.value.code == "already_executed"
        executions = [r for r in sink.records if r["type"] == "execution"]
        assert [r["result"]["execution"] for r in executions] == ["claimed", "refused", "refused"]
        assert {r["call_digest"] for r in executions} == {decision_record(sink, decision.id)["call_digest"]}
        assert all(r["reviewer_id"] == APPROVER for r in executions)
        # An executed approval is still an approval: a wait without the call reads it, an answer is refused.
        assert veto.wait_for_approval(decision.id).status == "approved"
        with pytest.raises(ApprovalError) as answered:
            veto.reject(decision.id, APPROVER)
        assert answered.value.code == "already_answered"


def decision_record(sink: MemorySink, decision_id: str) -> dict[str, Any]:
    return next(r for r in sink.records if r["type"] == "decision" and r["decision_id"] == decision_id)


def test_concurrent_claims_run_the_call_exactly_once(bundle: Path) -> None:
    """Threads racing to claim the same approvals (seeded): exactly one claim per approval wins."""
    rng = random.Random(SEED)
    sink = MemorySink()
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), approval_poll_ms=5) as veto:
        for round_ in range(8):
            decision, call = _approved(veto, 9000 + round_)
            wins: list[int] = []
            refusals: list[str] = []
            lock = threading.Lock()
            start = threading.Barrier(threads := rng.randint(2, 8))

            def claim(n: int, decision_id: str = decision.id, call: dict[str, Any] = call) -> None:
                start.wait()
                try:
                    veto.wait_for_approval(decision_id, call=call)
                    with lock:
                        wins.append(n)
                except ApprovalError as error:
                    with lock:
                        refusals.append(error.code)

            workers = [threading.Thread(target=claim, args=(n,)) for n in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            assert len(wins) == 1, f"seed {SEED} round {round_}"
            assert refusals == ["already_executed"] * (threads - 1), f"seed {SEED}"


class _FailingAfter:
    """A sink that refuses writes once ``down`` is set."""

    def __init__(self) -> None:
        self.down = False
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if self.down:
            raise OSError("the log is down")
        self.records.append(record)


def test_a_claim_whose_record_cannot_be_written_loses_the_call(bundle: Path) -> None:
    sink, store = _FailingAfter(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, clock=FakeClock(), approval_poll_ms=10) as veto:
        decision, call = _approved(veto)
        sink.down = True
        with pytest.raises(ApprovalError) as lost:
            veto.wait_for_approval(decision.id, call=call)
        assert lost.value.code == "record_unavailable"
        # At most once: the claim stands, so the call never runs, not even after the log is back.
        sink.down = False
        with pytest.raises(ApprovalError) as again:
            veto.wait_for_approval(decision.id, call=call)
        assert again.value.code == "already_executed"


def test_only_an_approved_call_can_be_claimed(bundle: Path) -> None:
    store = InMemoryStore()
    with create_veto(bundle, record_sink=MemorySink(), store=store, clock=FakeClock()) as veto:
        decision = veto.protect(write_call({"amount": 9000}))
        # Pending: no claim from any other status moves it, and it stays pending.
        for status in ("pending", "answering", "rejected", "expired", "executed"):
            assert not store.transition_approval(decision.id, ApprovalTransition(status, "executed", 0))
        assert store.get_decision(decision.id).approval.status == "pending"  # type: ignore[union-attr]


def test_a_python_log_with_executions_verifies_and_reads_in_typescript(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "executions.jsonl"
    with FileDecisionLog.open(path) as log, create_veto(bundle, record_sink=log, clock=FakeClock(), approval_poll_ms=10) as veto:
        decision, call = _approved(veto)
        veto.wait_for_approval(decision.id, call=call)
        with pytest.raises(ApprovalError):
            veto.wait_for_approval(decision.id, call=call)
    done = run_ts_cli(["log", "verify", str(path)])
    assert done.returncode == 0, done.stderr
    assert [r["type"] for r in read_log([str(path)])] == ["decision", "approval", "execution", "execution"]
    # The TypeScript replay reads the same log (execution records are part of the record schema).
    replay = run_ts_cli(["replay", "--bundle", str(bundle), str(path)])
    assert replay.returncode == 0, replay.stderr
