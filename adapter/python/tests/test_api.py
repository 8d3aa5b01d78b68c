"""
The Python API: protect, approvals, guard, asyncio, escalation, fail-closed
evaluation and close, on the real bundle.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from veto_crm import (
    ApprovalError,
    AsyncVeto,
    InMemoryStore,
    VetoClosedError,
    VetoDeniedError,
    VetoError,
    VetoOptionsError,
    create_async_veto,
    create_veto,
)
from veto_crm.evaluator import PolicyEvaluator
from veto_crm.veto import Veto

from .conftest import ACTOR, APPROVER, OTHER_APPROVER, FakeClock, MemorySink, codes, read_call, write_call

SEED = int(time.time()) % 100000


@pytest.fixture()
def setup(bundle: Path) -> Any:
    clock = FakeClock()
    sink = MemorySink()
    veto = create_veto(bundle, record_sink=sink, clock=clock, approval_poll_ms=20)
    yield veto, sink, clock
    veto.close()


def test_protect_answers_the_contract_decision(setup: Any) -> None:
    veto, sink, _ = setup
    decision = veto.protect(write_call({"amount": 9000}))
    assert decision.action == "require_approval"
    assert codes(decision) == ["production_amount"]
    assert decision.approvers == (APPROVER, OTHER_APPROVER)
    assert decision.bundle == veto.bundle
    assert decision.timestamp == "2026-03-01T09:00:00.000Z"
    assert sink.records[-1]["decision_id"] == decision.id
    assert list(decision.to_json()) == ["id", "action", "escalated", "reason", "reasons", "approvers", "bundle", "timestamp"]


def test_protect_never_raises_for_what_a_call_holds(setup: Any) -> None:
    veto, _, _ = setup
    rng = random.Random(SEED)
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    odd = [None, 1, "x", [], {}, set(), b"bytes", object(), float("nan"), float("inf"), 10**400, cyclic, {1: "int key"}, ("tuple",)]
    for _ in range(300):
        call = write_call()
        target = rng.choice([call, call["arguments"], call["context"]])
        target[rng.choice(["tool", "amount", "changes", "actorId", "extra", "fields"])] = rng.choice(odd)
        decision = veto.protect(call if rng.random() < 0.9 else rng.choice(odd))
        assert decision.action in ("allow", "deny", "require_approval"), f"seed {SEED}"
    assert codes(veto.protect(cyclic)) == ["invalid_input"]


def test_approval_flow_and_its_refusals(setup: Any) -> None:
    veto, sink, clock = setup
    call = write_call({"amount": 9000})
    decision = veto.protect(call)
    with pytest.raises(ApprovalError) as self_approval:
        veto.approve(decision.id, ACTOR)
    assert self_approval.value.code == "self_approval"
    with pytest.raises(ApprovalError) as outsider:
        veto.approve(decision.id, "user:nobody")
    assert outsider.value.code == "not_an_approver"
    with pytest.raises(ApprovalError) as mismatch:
        veto.wait_for_approval(decision.id, call=write_call({"amount": 9001}))
    assert mismatch.value.code == "call_mismatch"
    with pytest.raises(ApprovalError) as timeout:
        veto.wait_for_approval(decision.id, timeout_ms=30)
    assert timeout.value.code == "approval_timeout"
    threading.Timer(0.05, lambda: veto.approve(decision.id, APPROVER, "fine")).start()
    answer = veto.wait_for_approval(decision.id, call=call)
    assert (answer.status, answer.reviewer_id, answer.note) == ("approved", APPROVER, "fine")
    assert sink.records[-2]["type"] == "approval" and sink.records[-2]["call_digest"] == sink.records[0]["call_digest"]
    # A wait given the call claims it for execution (use-once) and records the claim.
    assert sink.records[-1]["type"] == "execution" and sink.records[-1]["result"] == {"execution": "claimed"}
    with pytest.raises(ApprovalError) as twice:
        veto.reject(decision.id, OTHER_APPROVER)
    assert twice.value.code == "already_answered"
    allowed = veto.protect(read_call())
    with pytest.raises(ApprovalError) as not_required:
        veto.wait_for_approval(allowed.id)
    assert not_required.value.code == "approval_not_required"
    with pytest.raises(ApprovalError) as unknown:
        veto.approve("01ARZ3NDEKTSV4RRFFQ69G5FAV", APPROVER)
    assert unknown.value.code == "unknown_decision"
    later = veto.protect(write_call({"amount": 9000}))
    clock.advance(3_600_000)
    with pytest.raises(ApprovalError) as expired:
        veto.approve(later.id, APPROVER)
    assert expired.value.code == "approval_expired"
    with pytest.raises(VetoOptionsError):
        veto.approve(" ", APPROVER)
    cancel = threading.Event()
    pending = veto.protect(write_call({"amount": 9000}))
    threading.Timer(0.05, cancel.set).start()
    with pytest.raises(ApprovalError) as aborted:
        veto.wait_for_approval(pending.id, cancel=cancel)
    assert aborted.value.code == "approval_aborted"


def test_guard_runs_the_tool_only_when_allowed_or_approved(setup: Any) -> None:
    veto, _, _ = setup
    ran: list[tuple[Any, Any]] = []

    @veto.guard("crm.update")
    def update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
        ran.append((args, context))
        return decision.action

    call = write_call()
    assert update(call["arguments"], call["context"]) == "allow"
    assert ran[-1][0] == call["arguments"] and ran[-1][0] is not call["arguments"]
    blocked = write_call({"destination": "ana@gmail.com"})
    with pytest.raises(VetoDeniedError) as denied:
        update(blocked["arguments"], blocked["context"])
    assert denied.value.code == "denied" and codes(denied.value.decision) == ["blocked_destination"]
    assert len(ran) == 1
    big = write_call({"amount": 9000})

    def approve_pending() -> None:
        for _ in range(100):
            time.sleep(0.01)
            pending = [d for d in veto._store._decisions.values() if d.approval is not None and d.approval.status == "pending"]
            if pending:
                veto.approve(pending[0].id, APPROVER)
                return

    threading.Thread(target=approve_pending).start()
    assert update(big["arguments"], big["context"]) == "require_approval"
    assert len(ran) == 2


def test_escalation_threshold_window_and_what_counts(bundle: Path) -> None:
    clock = FakeClock()
    events: list[Any] = []
    with create_veto(bundle, record_sink=MemorySink(), clock=clock, on_escalation=events.append) as veto:
        blocked = write_call({"destination": "ana@gmail.com"})
        results = []
        for _ in range(2):
            clock.advance(1000)
            results.append(veto.protect(blocked))
        clock.advance(1000)
        invalid = write_call({"amount": "9000"})
        results.append(veto.protect(invalid))  # invalid_input naming its actor counts
        clock.advance(1000)
        results.append(veto.protect(read_call()))
        assert [d.escalated for d in results] == [False, False, False, True]
        assert codes(results[-1]) == ["repeated_denies"]
        assert events and events[0].recent_denies == 3 and events[0].actor_id == ACTOR
        clock.advance(900_000)  # the window (900 s) has passed for all three
        assert veto.protect(read_call()).action == "allow"


def test_rejections_count_and_other_actors_do_not(bundle: Path) -> None:
    clock = FakeClock()
    with create_veto(bundle, record_sink=MemorySink(), clock=clock) as veto:
        for _ in range(3):
            clock.advance(1000)
            veto.reject(veto.protect(write_call({"amount": 9000})).id, APPROVER)
        assert veto.protect(read_call({}, {"actorId": "agent:support-triage"})).action == "allow"
        assert veto.protect(read_call()).escalated


def test_evaluation_failures_deny_and_rebuild_the_instance(bundle: Path) -> None:
    class BrokenHistory(InMemoryStore):
        def count_recent_denies(self, actor_id: str, tenant_id: str, since_ms: float) -> int:
            return -1

    with create_veto(bundle, record_sink=MemorySink(), store=BrokenHistory()) as veto:
        decision = veto.protect(read_call())
        assert decision.action == "deny" and codes(decision) == ["evaluation_error"]
        assert "not a count" in decision.reason
    from veto_crm.bundle import load_bundle
    from veto_crm.policy_data import read_policy_data

    loaded = load_bundle(bundle)
    evaluator = PolicyEvaluator.create(loaded.wasm, read_policy_data(loaded.data, "test").json)
    good = '{"tool":"crm.read","arguments":{},"context":{"actorId":"a","tenantId":"acme","environment":"production"}}'
    entrypoint = evaluator._entrypoint
    evaluator._entrypoint = 9999
    failed = evaluator.evaluate_call(good, 0)
    assert not failed.ok
    evaluator._entrypoint = entrypoint
    assert evaluator.evaluate_call(good, 0).ok
    assert evaluator.instantiations == 2
    # The module's own parser refusing the input is an answer about the input: the instance stays.
    assert not evaluator.evaluate_json('{"tool":"\\ud800"}').ok
    assert evaluator.evaluate_call(good, 0).ok and evaluator.instantiations == 2


def test_close_ends_waits_and_refuses_calls(bundle: Path) -> None:
    veto = create_veto(bundle, record_sink=MemorySink(), approval_poll_ms=20)
    pending = veto.protect(write_call({"amount": 9000}))
    threading.Timer(0.05, veto.close).start()
    with pytest.raises(VetoClosedError):
        veto.wait_for_approval(pending.id)
    with pytest.raises(VetoClosedError) as closed:
        veto.protect(read_call())
    assert isinstance(closed.value, VetoError) and closed.value.code == "closed"
    veto.close()


@pytest.mark.parametrize(
    "options",
    [
        {"record_key": "short"},
        {"approval_ttl_ms": 0},
        {"limits": {"max_depth": 3, "other": 1}},
        {"record_sink": object()},
        {"data": ["not", "an", "object"]},
        {"verification_key": "not a key"},
    ],
)
def test_bad_options_are_typed_errors(options: dict[str, Any], bundle: Path) -> None:
    with pytest.raises(VetoOptionsError) as error:
        create_veto(bundle, **options)
    assert error.value.code == "invalid_options"


def test_unusable_data_is_refused_naming_the_field(bundle: Path) -> None:
    from veto_crm import BundleLoadError

    with pytest.raises(BundleLoadError) as error:
        create_veto(bundle, data={"veto": {"config": {"escalation": {"window_seconds": "soon"}}}})
    assert error.value.code == "data_unusable"
    assert "veto.config.escalation.window_seconds" in str(error.value)


async def test_asyncio_protect_wait_and_guard(bundle: Path) -> None:
    veto: AsyncVeto = await create_async_veto(bundle, record_sink=MemorySink(), approval_poll_ms=20)
    async with veto:
        decision = await veto.protect(write_call({"amount": 9000}))
        assert decision.action == "require_approval"

        async def answer() -> None:
            await asyncio.sleep(0.05)
            await veto.approve(decision.id, APPROVER)

        waited, _ = await asyncio.gather(veto.wait_for_approval(decision.id, call=write_call({"amount": 9000})), answer())
        assert waited.status == "approved"
        calls: list[Any] = []

        @veto.guard("crm.read")
        async def read(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
            calls.append(args)
            return "done"

        call = read_call()
        assert await read(call["arguments"], call["context"]) == "done"
        with pytest.raises(VetoDeniedError):
            await read(call["arguments"], {**call["context"], "tenantId": "umbrella"})
        assert len(calls) == 1
        pending = await veto.protect(write_call({"amount": 9000}))
        task = asyncio.create_task(veto.wait_for_approval(pending.id))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_concurrent_calls_of_one_actor_escalate_exactly_at_the_threshold(bundle: Path) -> None:
    with create_veto(bundle, record_sink=MemorySink()) as veto:
        blocked = write_call({"destination": "ana@gmail.com"})
        decisions: list[Any] = []
        threads = [threading.Thread(target=lambda: decisions.append(veto.protect(blocked))) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(d.escalated for d in decisions) == [False] * 3 + [True] * 5


def test_a_guard_on_a_closed_instance_and_a_bad_tool_name(setup: Any) -> None:
    veto: Veto = setup[0]
    with pytest.raises(VetoOptionsError):
        veto.guard("")


class _FlakySink:
    """A sink that refuses its writes while ``down`` is set (an outage of the log)."""

    def __init__(self) -> None:
        self.down = False
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        if self.down:
            raise OSError("the log is down")
        self.records.append(record)


def test_outage_denies_are_kept_but_not_counted_towards_escalation(bundle: Path) -> None:
    # docs/contract.md §3: record_unavailable and evaluation_error are the system's fault, not the actor's.
    sink, store, clock = _FlakySink(), InMemoryStore(), FakeClock()
    with create_veto(bundle, record_sink=sink, store=store, clock=clock) as veto:
        sink.down = True
        outages = [veto.protect(write_call({"destination": "ana@gmail.com"})) for _ in range(5)]
        assert {codes(d)[0] for d in outages} == {"record_unavailable"}
        assert all(store.get_decision(d.id) is not None for d in outages)
        assert store.count_recent_denies(ACTOR, "acme", 0) == 0
        sink.down = False
        denied = veto.protect(write_call({"destination": "ana@gmail.com"}))
        assert codes(denied) == ["blocked_destination"] and not denied.escalated
        assert sink.records[-1]["history"] == {"recent_denies": 0}
        assert sink.records[-1]["destination_hosts"] == ["gmail.com"]
        assert store.count_recent_denies(ACTOR, "acme", 0) == 1


def test_an_approval_the_records_do_not_back_is_refused(bundle: Path) -> None:
    # docs/contract.md §6, §7: a store entry saying "approved" is not evidence; the records must say it too.
    from veto_crm.store import ApprovalTransition

    sink, store, clock = MemorySink(), InMemoryStore(), FakeClock()
    with create_veto(bundle, record_sink=sink, store=store, clock=clock, approval_poll_ms=10) as veto:
        forged = veto.protect(write_call({"amount": 9000}))
        assert forged.action == "require_approval"
        # Someone who can write the store, but not the records, marks it approved.
        assert store.transition_approval(forged.id, ApprovalTransition("pending", "answering", clock(), APPROVER))
        assert store.transition_approval(forged.id, ApprovalTransition("answering", "approved", clock(), APPROVER))
        with pytest.raises(ApprovalError) as refused:
            veto.wait_for_approval(forged.id, timeout_ms=200)
        assert refused.value.code == "approval_unverified" and "no approval record" in str(refused.value)
        # An approval made through the adapter, by another instance sharing the sink, is backed.
        real = veto.protect(write_call({"amount": 9001}))
        with create_veto(bundle, record_sink=sink, store=store, clock=clock) as other:
            other.approve(real.id, APPROVER, "ok")
        assert veto.wait_for_approval(real.id, timeout_ms=200).status == "approved"
