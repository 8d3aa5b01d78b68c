"""
Resuming an amended call (docs/contract.md §6, amend; §9, what counts towards
escalation), as the TypeScript gate does (test/integrations/gate.test.ts): the
resume follows the original to the amended call's decision and runs the
amended, frozen call once when it is allowed (claimed by the store's
``claim_execution``, with an ``execution`` record by the amender) or approved;
a second resume is refused ``already_executed``; denied, rejected, expired or
unanswered, nothing runs. Nothing that becomes of an amended call counts
towards the agent's escalation: not its deny, not the rejection of its
approval.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any, Iterator, Mapping

import pytest

from veto_crm import InMemoryStore, Veto, create_veto
from veto_crm.integrations.gate import Amended, ToolGate, amended_notice, with_amended_notice

from .conftest import APPROVER, FIXTURE_DATA, OTHER_APPROVER, TEST_BUNDLE, FakeClock, MemorySink, require
from .integration_parts import APP_CONTEXT, SEED, update

THIRD_APPROVER = "user:cfo@acme.example"


class Two:
    """
    Two instances on one store and one sink: ``same`` decides with the test
    data; ``other`` with acme's approvers changed to [OTHER_APPROVER,
    THIRD_APPROVER], so an amendment made there by APPROVER needs another
    approver's answer, which may be a rejection.
    """

    def __init__(self) -> None:
        bundle = require(TEST_BUNDLE, "make test-bundles")
        self.store = InMemoryStore()
        self.sink = MemorySink()
        self.clock = FakeClock()
        data = json.loads(FIXTURE_DATA.read_text())
        moved = copy.deepcopy(data)
        moved["veto"]["config"]["tenants"]["acme"]["approvers"] = [OTHER_APPROVER, THIRD_APPROVER]
        common: dict[str, Any] = {"store": self.store, "record_sink": self.sink, "clock": self.clock, "approval_poll_ms": 10}
        self.same: Veto = create_veto(bundle, **common)
        self.other: Veto = create_veto(bundle, data=moved, **common)

    def executions(self, decision_id: str) -> list[str]:
        return [r["result"]["execution"] for r in self.sink.records if r["type"] == "execution" and r["decision_id"] == decision_id]

    def close(self) -> None:
        self.same.close()
        self.other.close()


@pytest.fixture
def two() -> Iterator[Two]:
    t = Two()
    yield t
    t.close()


def _gate(veto: Veto) -> ToolGate[None]:
    return ToolGate[None](veto=veto, context=lambda _: APP_CONTEXT, tool_names={"crm_update": "crm.update"})


def _expected(amount: int) -> str:
    return "allow" if amount < 5000 else "require_approval" if amount <= 250_000 else "deny"


def test_generated_a_resume_runs_the_amendment_as_decided_once_never_the_original_and_nothing_counts(two: Two) -> None:
    rng = random.Random(SEED)
    gate = _gate(two.same)
    ran = 0
    expected_runs = 0
    for case in range(40):
        where = f"seed {SEED} case {case}"
        amount = rng.choice([rng.randint(1, 4999), rng.randint(5000, 250_000), rng.randint(250_001, 20_000_000)])
        at = rng.choice(["same", "other"])
        answer = rng.choice(["approve", "reject", "none"])
        tool_input = update(amount=9000, recordId=f"opp_{case}")
        call = gate.call("crm_update", tool_input, None)
        verdict = gate.decide(call)
        assert verdict.kind == "approval", where
        original = verdict.decision.id
        amended_args = {**call.arguments, "amount": amount}
        amender = two.same if at == "same" else two.other
        decision = amender.amend(original, APPROVER, amended_args).decision
        expected = _expected(amount)
        assert decision.action == expected, where
        approved = expected == "require_approval" and at == "same"
        if expected == "require_approval" and at == "other" and answer != "none":
            reviewer = OTHER_APPROVER if answer == "approve" else THIRD_APPROVER
            (two.other.approve if answer == "approve" else two.other.reject)(decision.id, reviewer)
            approved = answer == "approve"
        first = gate.claim(original, call)
        if expected == "allow" or approved:
            expected_runs += 1
            assert first.ok and first.run is not None and first.amended is not None, (where, first)
            ran += 1
            assert first.amended == Amended(original, decision.id, APPROVER, amended_args), where
            assert first.run.arguments == amended_args, where
            assert first.run.input == {**amended_args, "reason": tool_input["reason"]}, where
            assert first.run.context == call.context, where
            # The allowed amendment's claim is the store's, with the amender's execution record.
            if expected == "allow":
                stored = two.store.get_decision(decision.id)
                assert stored is not None and stored.executed_at_ms == two.clock.now_ms, where
        else:
            code = "amount_over_limit" if expected == "deny" else "approval_rejected" if answer == "reject" else "approval_pending"
            assert (first.ok, first.code) == (False, code), (where, first)
        second = gate.claim(original, call)
        assert not second.ok, where
        if first.ok:
            assert second.code == "already_executed", (where, second)
            assert two.executions(decision.id) == ["claimed", "refused"], where
        else:
            assert "claimed" not in two.executions(decision.id), where
    assert ran == expected_runs
    # No deny, rejection or refusal of an amended call counted towards the agent's escalation.
    assert two.store.count_recent_denies(APP_CONTEXT["actorId"], APP_CONTEXT["tenantId"], 0) == 0, f"seed {SEED}"
    for veto in (two.same, two.other):
        after = _gate(veto).decide(gate.call("crm_update", update(amount=10, recordId="opp_z"), None)).decision
        assert (after.action, after.escalated) == ("allow", False)


def test_the_execution_record_of_an_allowed_amendment_is_the_amenders_and_byte_for_byte_the_claims(two: Two) -> None:
    gate = _gate(two.same)
    call = gate.call("crm_update", update(amount=9000, recordId="opp_x"), None)
    original = gate.decide(call).decision.id
    low = two.other.amend(original, OTHER_APPROVER, {**call.arguments, "amount": 100}).decision
    assert low.action == "allow"
    claim = gate.claim(original, call)
    assert claim.ok and claim.amended is not None and claim.amended.by == OTHER_APPROVER
    [record] = [r for r in two.sink.records if r["type"] == "execution" and r["decision_id"] == low.id]
    decided = [r for r in two.sink.records if r["type"] == "decision" and r["decision_id"] == low.id][0]
    assert list(record) == ["type", "decision_id", "timestamp", "path", "bundles", "actor_id", "tenant_id", "call_digest", "reviewer_id", "result"]
    assert record["reviewer_id"] == OTHER_APPROVER and record["result"] == {"execution": "claimed"}
    assert record["call_digest"] == decided["call_digest"] and record["actor_id"] == APP_CONTEXT["actorId"]


def test_rejections_of_amended_calls_do_not_escalate_the_agent_its_own_do(two: Two) -> None:
    gate = _gate(two.same)
    for i in range(3):
        call = gate.call("crm_update", update(amount=9000, recordId=f"opp_a{i}"), None)
        original = gate.decide(call).decision.id
        decision = two.other.amend(original, APPROVER, {**call.arguments, "amount": 8000}).decision
        assert decision.action == "require_approval"
        two.other.reject(decision.id, THIRD_APPROVER)
        claim = gate.claim(original, call)
        assert (claim.ok, claim.code) == (False, "approval_rejected")
    assert two.store.count_recent_denies(APP_CONTEXT["actorId"], APP_CONTEXT["tenantId"], 0) == 0
    small = gate.call("crm_update", update(amount=10, recordId="opp_z"), None).call()
    after = two.same.protect(small)
    assert (after.action, after.escalated) == ("allow", False)
    for i in range(3):
        call = gate.call("crm_update", update(amount=9000, recordId=f"opp_b{i}"), None)
        two.same.reject(gate.decide(call).decision.id, APPROVER)
    assert two.same.protect(small).escalated is True


def test_an_amended_call_amended_again_is_followed_and_an_expired_one_refused(two: Two) -> None:
    gate = _gate(two.same)
    call = gate.call("crm_update", update(amount=9000, recordId="opp_c"), None)
    original = gate.decide(call).decision.id
    first = two.other.amend(original, APPROVER, {**call.arguments, "amount": 8000}).decision
    second = two.other.amend(first.id, OTHER_APPROVER, {**call.arguments, "amount": 100}).decision
    assert second.action == "allow"
    claimed = gate.claim(original, call)
    assert claimed.ok and claimed.amended == Amended(first.id, second.id, OTHER_APPROVER, {**call.arguments, "amount": 100})
    again = gate.claim(original, call)
    assert (again.ok, again.code) == (False, "already_executed")
    assert two.executions(second.id) == ["claimed", "refused"]
    # Expired: the amended call's approval ran out before an answer.
    call = gate.call("crm_update", update(amount=9000, recordId="opp_d"), None)
    original = gate.decide(call).decision.id
    pending = two.other.amend(original, APPROVER, {**call.arguments, "amount": 8000}).decision
    two.clock.advance(2 * 3600 * 1000)
    expired = gate.claim(original, call)
    assert (expired.ok, expired.code) == (False, "approval_expired")
    assert two.executions(pending.id) == []


def test_guard_claims_an_allowed_amendment_once(two: Two) -> None:
    veto = two.same
    call = _gate(veto).call("crm_update", update(amount=9000, recordId="opp_g"), None).call()
    original = veto.protect(call).id
    low = veto.amend(original, APPROVER, {**call["arguments"], "amount": 100}).decision
    runs: list[Any] = []

    resumed = veto.resume_approval(original, call)
    assert resumed.decision_id == low.id and resumed.amended is not None and resumed.amended.by == APPROVER
    runs.append(resumed.call["arguments"]["amount"])
    from veto_crm import ApprovalError

    with pytest.raises(ApprovalError) as twice:
        veto.resume_approval(original, call)
    assert twice.value.code == "already_executed"
    assert runs == [100] and two.executions(low.id) == ["claimed", "refused"]


def test_store_claim_execution_is_a_compare_and_set_for_allowed_amended_calls_only(two: Two) -> None:
    gate = _gate(two.same)
    call = gate.call("crm_update", update(amount=9000, recordId="opp_s"), None)
    original = gate.decide(call).decision.id
    low = two.same.amend(original, APPROVER, {**call.arguments, "amount": 100}).decision
    store = two.store
    assert store.claim_execution(original, 1.0) is False  # not allowed, not amended
    assert store.claim_execution("nope", 1.0) is False
    assert store.claim_execution(low.id, 5.0) is True
    assert store.claim_execution(low.id, 6.0) is False
    got = store.get_decision(low.id)
    assert got is not None and got.executed_at_ms == 5.0


def test_the_notice_is_the_typescript_gates_text() -> None:
    amended = Amended("01A", "01B", "user:x", {"amount": 100, "name": "é"})
    assert amended_notice(amended) == (
        "Note: the reviewer user:x amended this call's arguments before it ran (veto decision 01A -> 01B); "
        'it ran once with {"amount":100,"name":"é"}, not with the arguments you gave.'
    )
    assert amended_notice(Amended("01A", "01B", None, {})).startswith("Note: the reviewer amended this call's")
    assert with_amended_notice("done", amended) == f"{amended_notice(amended)}\ndone"
    wrapped: Mapping[str, Any] = with_amended_notice({"ok": 1}, amended)
    assert wrapped == {"veto_amended": {"note": amended_notice(amended), "by": "user:x", "arguments": {"amount": 100, "name": "é"}}, "result": {"ok": 1}}
    assert with_amended_notice("done", None) == "done"


def test_guard_and_the_async_guard_claim_an_allowed_amendment_where_it_runs(two: Two) -> None:
    """guard's wait runs an allowed amendment once, claimed in the store with the amender's execution record."""
    import asyncio
    import threading
    import time

    from veto_crm import create_async_veto

    call = _gate(two.same).call("crm_update", update(amount=9000, recordId="opp_w"), None).call()

    def pending_id(before: int) -> str:
        for _ in range(500):
            found = [r for r in two.sink.records[before:] if r["type"] == "decision" and r["result"]["action"] == "require_approval"]
            if found:
                return str(found[0]["decision_id"])
            time.sleep(0.01)
        raise AssertionError("no require_approval decision was recorded")

    runs: list[Any] = []

    @two.same.guard("crm.update")
    def crm_update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
        runs.append((args["amount"], decision.id))
        return "updated"

    before = len(two.sink.records)
    thread = threading.Thread(target=lambda: crm_update(call["arguments"], call["context"]))
    thread.start()
    low = two.same.amend(pending_id(before), APPROVER, {**call["arguments"], "amount": 100}).decision
    thread.join(10)
    assert runs == [(100, low.id)] and two.executions(low.id) == ["claimed"]
    stored = two.store.get_decision(low.id)
    assert stored is not None and stored.executed_at_ms is not None

    async def run_async() -> None:
        averto = await create_async_veto(
            require(TEST_BUNDLE, "make test-bundles"), store=two.store, record_sink=two.sink, clock=two.clock, approval_poll_ms=10
        )
        try:

            @averto.guard("crm.update")
            async def aupdate(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
                runs.append((args["amount"], decision.id))
                return "updated"

            at = len(two.sink.records)
            task: "asyncio.Future[str]" = asyncio.ensure_future(aupdate(call["arguments"], call["context"]))
            original = await asyncio.to_thread(pending_id, at)
            amended = (await averto.amend(original, APPROVER, {**call["arguments"], "amount": 200})).decision
            await asyncio.wait_for(task, 10)
            assert runs[-1] == (200, amended.id) and two.executions(amended.id) == ["claimed"]
        finally:
            await averto.close()

    asyncio.run(run_async())
