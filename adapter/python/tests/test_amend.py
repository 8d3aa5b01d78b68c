"""
Amend before approve (docs/contract.md §6): an approver amends a pending
call's arguments; the amended call is a new decision by the policy with the
same context, linked to the original, which ends "amended"; the waiting
guard runs the amended call as its decision allows, exactly once. The records
are pinned against the TypeScript adapter by test_conformance.py; here, the
guard's threads, asyncio, and seeded generated refusals and amendments.

VETO_AMEND_SEED=<n> reproduces a failing run (the seed is in every assertion message).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from veto_crm import (
    AmendedCall,
    ApprovalError,
    InMemoryStore,
    VetoClosedError,
    VetoDeniedError,
    VetoOptionsError,
    create_async_veto,
    Veto,
    create_veto,
)

from .conftest import ACTOR, APPROVER, OTHER_APPROVER, FakeClock, MemorySink, codes, write_call

SEED = int(os.environ.get("VETO_AMEND_SEED", str(random.SystemRandom().randrange(1 << 30))))
NEEDS_APPROVAL = write_call({"amount": 9000})


def args_of(amount: int) -> dict[str, Any]:
    return {**NEEDS_APPROVAL["arguments"], "amount": amount}


def _pending_id(sink: MemorySink, before: int) -> str:
    for _ in range(500):
        found = [r for r in sink.records[before:] if r["type"] == "decision" and r["result"]["action"] == "require_approval"]
        if found:
            return str(found[0]["decision_id"])
        time.sleep(0.01)
    raise AssertionError("no require_approval decision was recorded")


def _pending_guard(veto: Veto, sink: MemorySink) -> tuple[list[tuple[dict[str, Any], str]], list[BaseException], threading.Thread, str]:
    runs: list[tuple[dict[str, Any], str]] = []
    errors: list[BaseException] = []

    @veto.guard("crm.update")
    def update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
        runs.append((args, decision.action))
        return "updated"

    def run() -> None:
        try:
            update(NEEDS_APPROVAL["arguments"], NEEDS_APPROVAL["context"])
        except BaseException as error:  # noqa: BLE001 - the test reads it
            errors.append(error)

    before = len(sink.records)
    thread = threading.Thread(target=run)
    thread.start()
    return runs, errors, thread, _pending_id(sink, before)


def test_to_a_call_that_needs_approval_the_amender_approves_it_and_guard_runs_it_once(bundle: Path) -> None:
    sink, store = MemorySink(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, approval_poll_ms=10) as veto:
        runs, errors, thread, original = _pending_guard(veto, sink)
        result = veto.amend(original, APPROVER, args_of(8000), note="8,000, not 9,000")
        assert result.amended == original
        assert result.decision.action == "require_approval"
        assert result.approval is not None and result.approval.status == "approved" and result.approval.reviewer_id == APPROVER
        assert result.approval.decision_id == result.decision.id
        thread.join(10)
        assert errors == [] and runs == [(args_of(8000), "require_approval")]

        chain = [r for r in sink.records if r["decision_id"] in (original, result.decision.id)]
        assert [f"{r['type']}:{'original' if r['decision_id'] == original else 'amended'}" for r in chain] == [
            "decision:original",
            "decision:amended",
            "amendment:original",
            "approval:amended",
            "execution:amended",
        ]
        assert chain[1]["amended_from"] == original and chain[1]["amended_by"] == APPROVER and chain[1]["actor_id"] == ACTOR
        assert chain[2]["amended_to"] == result.decision.id and chain[2]["reviewer_id"] == APPROVER and chain[2]["note"] == "8,000, not 9,000"
        approval = store.get_decision(original).approval  # type: ignore[union-attr]
        assert approval is not None and approval.status == "amended" and approval.amended_to == result.decision.id

        # The original can never run: a wait for it is told it was amended, with the amended call.
        with pytest.raises(ApprovalError) as amended:
            veto.wait_for_approval(original, call=NEEDS_APPROVAL)
        assert amended.value.code == "amended"
        told = amended.value.amended
        assert isinstance(told, AmendedCall) and told.decision.id == result.decision.id
        assert told.call == {"tool": "crm.update", "arguments": args_of(8000), "context": NEEDS_APPROVAL["context"]}
        # Each read is a fresh copy: changing one changes nothing.
        told.call["arguments"]["amount"] = 1
        assert told.call["arguments"]["amount"] == 8000
        with pytest.raises(ApprovalError) as answered:
            veto.approve(original, OTHER_APPROVER)
        assert answered.value.code == "already_answered"
        # Nor can the amended one run twice.
        with pytest.raises(ApprovalError) as twice:
            veto.wait_for_approval(result.decision.id, call={**NEEDS_APPROVAL, "arguments": args_of(8000)})
        assert twice.value.code == "already_executed"
        assert len(runs) == 1


def test_to_a_call_the_policy_allows_guard_runs_it_to_one_it_denies_nothing_runs(bundle: Path) -> None:
    sink = MemorySink()
    with create_veto(bundle, record_sink=sink, approval_poll_ms=10) as veto:
        runs, errors, thread, original = _pending_guard(veto, sink)
        low = veto.amend(original, APPROVER, args_of(100))
        assert low.decision.action == "allow" and low.approval is None
        thread.join(10)
        assert errors == [] and runs == [(args_of(100), "allow")]

        runs, errors, thread, original = _pending_guard(veto, sink)
        high = veto.amend(original, APPROVER, args_of(10_000_000))
        assert high.decision.action == "deny" and "amount_over_limit" in codes(high.decision)
        thread.join(10)
        assert runs == [] and len(errors) == 1 and isinstance(errors[0], VetoDeniedError)
        assert errors[0].decision.id == high.decision.id

        # Arguments that are not a valid call: refused with what to fix, and the approval stays pending for the
        # waiting guard, which runs nothing until it is answered (here: rejected).
        runs, errors, thread, original = _pending_guard(veto, sink)
        before = len(sink.records)
        with pytest.raises(VetoOptionsError, match=r"^amend: the amended call is not valid input: .*recordId"):
            veto.amend(original, APPROVER, {"object": "opportunity", "recordId": 7})
        assert len(sink.records) == before
        veto.reject(original, APPROVER)
        thread.join(10)
        assert runs == [] and len(errors) == 1 and isinstance(errors[0], ApprovalError) and errors[0].code == "approval_rejected"


def test_is_refused_for_the_actor_a_non_approver_twice_after_expiry_and_for_bad_arguments(bundle: Path) -> None:
    clock = FakeClock()
    with create_veto(bundle, record_sink=MemorySink(), clock=clock, approval_ttl_ms=60_000) as veto:
        one = veto.protect(NEEDS_APPROVAL)
        for reviewer, code in ((ACTOR, "self_approval"), ("user:mallory", "not_an_approver")):
            with pytest.raises(ApprovalError) as refused:
                veto.amend(one.id, reviewer, args_of(1))
            assert refused.value.code == code
        bad: Any
        for bad in ([], None, "amount=1", 5):
            with pytest.raises(VetoOptionsError):
                veto.amend(one.id, APPROVER, bad)
        with pytest.raises(VetoOptionsError):
            veto.amend(one.id, APPROVER, args_of(1), note=5)  # type: ignore[arg-type]
        with pytest.raises(VetoOptionsError):
            veto.amend(one.id, " ", args_of(1))
        veto.amend(one.id, APPROVER, args_of(6000))
        with pytest.raises(ApprovalError) as twice:
            veto.amend(one.id, OTHER_APPROVER, args_of(7000))
        assert twice.value.code == "already_answered"
        two = veto.protect(write_call({"amount": 9500}))
        clock.advance(60_001)
        with pytest.raises(ApprovalError) as expired:
            veto.amend(two.id, APPROVER, args_of(1))
        assert expired.value.code == "approval_expired"
        with pytest.raises(ApprovalError) as unknown:
            veto.amend("nope", APPROVER, args_of(1))
        assert unknown.value.code == "unknown_decision"
        with pytest.raises(ApprovalError) as allowed:
            veto.amend(veto.protect(write_call()).id, APPROVER, args_of(1))
        assert allowed.value.code == "approval_not_required"
    with pytest.raises(VetoClosedError):
        veto.amend(one.id, APPROVER, args_of(1))


def test_an_amendment_whose_record_cannot_be_written_leaves_the_original_pending(bundle: Path) -> None:
    sink, store = MemorySink(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, clock=FakeClock()) as veto:
        original = veto.protect(NEEDS_APPROVAL)
        real_write = sink.write

        def write(record: dict[str, Any]) -> None:
            if record["type"] == "amendment":
                raise OSError("disk full")
            real_write(record)

        sink.write = write  # type: ignore[method-assign]
        with pytest.raises(ApprovalError) as refused:
            veto.amend(original.id, APPROVER, args_of(8000))
        assert refused.value.code == "record_unavailable" and "disk full" in str(refused.value)
        approval = store.get_decision(original.id).approval  # type: ignore[union-attr]
        assert approval is not None and approval.status == "pending"
        sink.write = real_write  # type: ignore[method-assign]
        assert veto.approve(original.id, APPROVER).status == "approved"


def test_generated_an_amended_calls_decision_is_the_policys_and_its_deny_never_counts(bundle: Path) -> None:
    rng = random.Random(SEED)
    for case in range(6):
        amounts = [rng.choice([rng.randrange(1, 5000), rng.randrange(5000, 250_001), rng.randrange(250_001, 20_000_000)]) for _ in range(rng.randrange(1, 6))]
        store, clock, reference_clock = InMemoryStore(), FakeClock(), FakeClock()
        with create_veto(bundle, record_sink=MemorySink(), store=store, clock=clock) as veto, create_veto(
            bundle, record_sink=MemorySink(), clock=reference_clock
        ) as reference:
            for amount in amounts:
                clock.advance(1000)
                # The reference's own denies count; past the window each time, it never escalates.
                reference_clock.advance(24 * 3600 * 1000)
                pending = veto.protect(NEEDS_APPROVAL)
                amender = rng.choice([APPROVER, OTHER_APPROVER])
                result = veto.amend(pending.id, amender, args_of(amount))
                direct = reference.protect(write_call({"amount": amount}))
                where = f"seed {SEED}, case {case}, amount {amount}"
                assert result.decision.action == direct.action and codes(result.decision) == codes(direct), where
                assert (result.approval is not None) == (direct.action == "require_approval"), where
                approval = store.get_decision(pending.id).approval  # type: ignore[union-attr]
                assert approval is not None and approval.status == "amended" and approval.amended_to == result.decision.id, where
            after = veto.protect(write_call({"amount": 10}))
            assert after.action == "allow" and not after.escalated, f"seed {SEED}, case {case}: {amounts}"
            assert store.count_recent_denies(ACTOR, "acme", 0) == 0, f"seed {SEED}, case {case}: {amounts}"


def test_generated_refusals_name_why(bundle: Path) -> None:
    """Who amends, and in what state the approval is: each refusal is the one approve() would give, and nothing is written."""
    rng = random.Random(SEED + 1)
    sink, clock = MemorySink(), FakeClock()
    with create_veto(bundle, record_sink=sink, clock=clock, approval_ttl_ms=10_000) as veto:
        for case in range(60):
            # Past the escalation window: a rejection counts as a deny, and this run makes many.
            clock.advance(1_000_000)
            decision = veto.protect(NEEDS_APPROVAL)
            assert decision.action == "require_approval", f"seed {SEED + 1}, case {case}"
            state = rng.choice(["pending", "approved", "rejected", "amended", "expired"])
            if state == "approved":
                veto.approve(decision.id, OTHER_APPROVER)
            elif state == "rejected":
                veto.reject(decision.id, OTHER_APPROVER)
            elif state == "amended":
                veto.amend(decision.id, OTHER_APPROVER, args_of(100))
            elif state == "expired":
                clock.advance(10_000)
            reviewer = rng.choice([ACTOR, "user:nobody", APPROVER, ""])
            where = f"seed {SEED + 1}, case {case}: {state} by {reviewer!r}"
            before = len(sink.records)
            if reviewer == "":
                with pytest.raises(VetoOptionsError):
                    veto.amend(decision.id, reviewer, args_of(1))
                continue
            expected = (
                "self_approval"
                if reviewer == ACTOR
                else "not_an_approver"
                if reviewer == "user:nobody"
                else {"pending": None, "expired": "approval_expired"}.get(state, "already_answered")
            )
            if expected is None:
                assert veto.amend(decision.id, reviewer, args_of(1)).decision.action == "allow", where
                continue
            with pytest.raises(ApprovalError) as refused:
                veto.amend(decision.id, reviewer, args_of(1))
            assert refused.value.code == expected, where
            assert len(sink.records) == before, where


def _lone_text(rng: random.Random) -> str:
    plain = "abc xyz-_.,0123456789"
    part = lambda: "".join(rng.choice(plain) for _ in range(rng.randrange(0, 12)))  # noqa: E731
    return part() + chr(rng.randrange(0xD800, 0xE000)) + part()


def _bad_arguments(rng: random.Random) -> tuple[str, Any]:
    """Amended arguments that break the input contract, one way or another (desk.ts check, bad-answers.test.ts)."""
    base = args_of(7000)
    kind = rng.choice(["lone value", "lone key", "deep", "proto", "amount"])
    if kind == "lone value":
        return kind, {**base, "changes": {"close_date": _lone_text(rng)}}
    if kind == "lone key":
        return kind, {**base, "changes": {_lone_text(rng): "2026-12-01"}}
    if kind == "deep":
        deep: Any = 1
        for _ in range(rng.randrange(12, 40)):
            deep = {"a": deep}
        return kind, {**base, "changes": {"close_date": "2026-12-01", "deep": deep}}
    if kind == "proto":
        return kind, {**base, rng.choice(["__proto__", "constructor", "prototype"]): {"x": 1}}
    amount = rng.choice([float("inf"), float("-inf"), float("nan"), "7000", 4999.999999999999, None, [7000]])
    return f"amount {amount!r}", {**base, "amount": amount}


def test_generated_bad_input_to_an_answer_raises_vetooptionserror_and_changes_nothing(bundle: Path) -> None:
    """A note no record can hold, or an amended call that breaks the input contract: refused before anything is reserved or recorded."""
    rng = random.Random(SEED + 2)
    sink, store = MemorySink(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, clock=FakeClock()) as veto:
        for case in range(60):
            decision = veto.protect(NEEDS_APPROVAL)
            before = len(sink.records)
            what = rng.choice(["approve", "reject", "amend", "amend arguments"])
            if what == "amend arguments":
                kind, bad = _bad_arguments(rng)
                where = f"seed {SEED + 2}, case {case}: {kind}"
                with pytest.raises(VetoOptionsError, match=r"^amend: the amended call is not valid input: ") as refused:
                    veto.amend(decision.id, APPROVER, bad)
            else:
                note = _lone_text(rng)
                where = f"seed {SEED + 2}, case {case}: {what} with note {note!r}"
                with pytest.raises(VetoOptionsError, match=rf"^{what}: note holds a lone surrogate \(code point \d+\)") as refused:
                    if what == "amend":
                        veto.amend(decision.id, APPROVER, args_of(7000), note)
                    else:
                        getattr(veto, what)(decision.id, APPROVER, note)
            assert refused.value is not None, where
            approval = store.get_decision(decision.id).approval  # type: ignore[union-attr]
            assert approval is not None and approval.status == "pending", where
            assert len(sink.records) == before, where
            assert veto.approve(decision.id, APPROVER).status == "approved", where


def test_a_decision_that_finds_the_amended_call_not_valid_is_refused_too(bundle: Path) -> None:
    """The check before the reservation and the decision read the bundle apart (a reload between them): the decision's own finding refuses it the same way."""
    sink, store = MemorySink(), InMemoryStore()
    with create_veto(bundle, record_sink=sink, store=store, clock=FakeClock()) as veto:
        original = veto.protect(NEEDS_APPROVAL)

        def decide(stored: Any, call: dict[str, Any]) -> Any:
            return veto._decide(call, amendment=(stored.id, APPROVER)).decision

        # The desk without its check, as if the bundle in force had changed after it passed.
        with pytest.raises(VetoOptionsError, match=r"^amend: the amended call is not valid input: .*amount"):
            veto._desk.amend(original.id, APPROVER, {**args_of(1), "amount": "7000"}, None, decide)
        approval = store.get_decision(original.id).approval  # type: ignore[union-attr]
        assert approval is not None and approval.status == "pending"
        assert veto.approve(original.id, APPROVER).status == "approved"


def test_asyncio_amend_and_the_async_guard_run_the_amended_call(bundle: Path) -> None:
    async def main() -> None:
        sink = MemorySink()
        async with await create_async_veto(bundle, record_sink=sink, approval_poll_ms=10) as veto:
            ran: list[dict[str, Any]] = []

            @veto.guard("crm.update")
            async def update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
                ran.append(args)
                return "updated"

            before = len(sink.records)
            task = asyncio.ensure_future(update(NEEDS_APPROVAL["arguments"], NEEDS_APPROVAL["context"]))
            original = await asyncio.to_thread(_pending_id, sink, before)
            result = await veto.amend(original, APPROVER, args_of(8000), note="less")
            assert result.approval is not None
            assert await task == "updated"
            assert ran == [args_of(8000)]
            with pytest.raises(ApprovalError) as amended:
                await veto.wait_for_approval(original, call=NEEDS_APPROVAL)
            assert amended.value.code == "amended" and amended.value.amended is not None

            before = len(sink.records)
            task = asyncio.ensure_future(update(NEEDS_APPROVAL["arguments"], NEEDS_APPROVAL["context"]))
            original = await asyncio.to_thread(_pending_id, sink, before)
            await veto.amend(original, APPROVER, args_of(10_000_000))
            with pytest.raises(VetoDeniedError):
                await task
            assert len(ran) == 1

    asyncio.run(main())
