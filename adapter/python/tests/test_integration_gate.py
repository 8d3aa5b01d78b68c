"""
What the Python integrations share (veto_crm.integrations.gate), on generated
calls: the call a resume rebuilds from the framework's tool call claims the
approval of the call that was decided, whatever the order of its keys, and only
that call: one changed value anywhere is call_mismatch; the context is the
application's, the model's reason moves into it. VETO_TEST_SEED=<n> reproduces
a failing run (the seed is in every assertion message). Also: importing
veto_crm, its integrations package and the gate imports no framework.
"""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import threading
from typing import Any, Mapping, Union

import pytest

from veto_crm import VetoOptionsError, create_async_veto, create_veto
from veto_crm.integrations.gate import ToolGate, decision_id_in, deny_message, input_fingerprint, pause_message

from .conftest import TEST_BUNDLE, FakeClock, MemorySink
from .integration_parts import APP_CONTEXT, APPROVER, SEED, Recorded, recorded, update

__all__ = ["recorded"]

_CHARS = "abcXYZ09 -_/é漢🙂\u200b\"\\\n"
_KEYS = ("note", "meta", "tags", "x", "ünï", "nested")


def _leaf(rng: random.Random) -> Any:
    kind = rng.randrange(6)
    if kind == 0:
        return "".join(rng.choice(_CHARS) for _ in range(rng.randrange(8)))
    if kind == 1:
        return rng.randint(-(10**6), 10**6)
    if kind == 2:
        return rng.choice([0.5, -1.25, 1e21, 3.14159, 2.0**-30, 1e-7])
    if kind == 3:
        return rng.random() < 0.5
    if kind == 4:
        return None
    return rng.choice(["", "ok", "🙂"])


def _json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(4) if depth < 3 else 0
    if kind <= 1:
        return _leaf(rng)
    if kind == 2:
        return [_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {"".join(rng.choice("abkü") for _ in range(rng.randrange(1, 4))): _json(rng, depth + 1) for _ in range(rng.randrange(4))}


def _reversed(value: Any) -> Any:
    """The same value with the keys of every object in reverse order."""
    if isinstance(value, list):
        return [_reversed(v) for v in value]
    if isinstance(value, dict):
        return {k: _reversed(v) for k, v in reversed(list(value.items()))}
    return value


def _leaves(value: Any, path: tuple[Union[str, int], ...] = ()) -> list[tuple[Union[str, int], ...]]:
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    return [path]


def _changed_at(value: dict[str, Any], path: tuple[Union[str, int], ...]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(value))
    at: Any = copy
    for key in path[:-1]:
        at = at[key]
    old = at[path[-1]]
    if isinstance(old, bool):
        new: Any = not old
    elif isinstance(old, str):
        new = f"{old}!"
    elif isinstance(old, (int, float)):
        new = 1 if old == 0 else -old
    else:
        new = "changed"
    at[path[-1]] = new
    return copy


class Run:
    """A framework's run context: the application's context lives here, never in the model's output."""

    def __init__(self, app: Mapping[str, Any]) -> None:
        self.app = app


def test_a_resumed_call_claims_exactly_its_own_approval_once(recorded: Recorded) -> None:
    rng = random.Random(SEED)
    gate = ToolGate[Run](veto=recorded.veto, context=lambda run: run.app, tool_names={"crm_update": "crm.update"})
    for case in range(100):
        where = f"seed {SEED} case {case}"
        extras = {k: _json(rng) for k in rng.sample(_KEYS, rng.randrange(4))}
        tool_input = update(amount=rng.randint(5000, 250000), **extras)
        call = gate.call("crm_update", tool_input, Run(APP_CONTEXT))
        assert call.tool == "crm.update", where
        assert call.context == {**APP_CONTEXT, "reason": tool_input["reason"]}, where
        assert "reason" not in call.arguments and call.input == tool_input, where
        verdict = gate.decide(call)
        assert verdict.kind == "approval", (where, verdict.decision.reasons)
        assert decision_id_in(pause_message(verdict.decision)) == verdict.decision.id
        decision_id = verdict.decision.id
        # Before any answer: pending, not executed.
        assert gate.claim(decision_id, call).code == "approval_pending", where
        recorded.veto.approve(decision_id, APPROVER)
        # One value changed anywhere in the input: another call.
        for path in _leaves(tool_input):
            other = gate.call("crm_update", _changed_at(tool_input, path), Run(APP_CONTEXT))
            assert gate.claim(decision_id, other).code == "call_mismatch", (where, path)
        # Another actor's context: another call.
        elsewhere = gate.call("crm_update", tool_input, Run({**APP_CONTEXT, "actorId": "agent:support-triage"}))
        assert gate.claim(decision_id, elsewhere).code == "call_mismatch", where
        # The same call rebuilt from a tool call with its keys in another order: claimed once.
        rebuilt = gate.call("crm_update", _reversed(tool_input), Run(APP_CONTEXT))
        assert rebuilt.fingerprint == call.fingerprint, where
        assert gate.claim(decision_id, rebuilt).ok, where
        again = gate.claim(decision_id, call)
        assert (again.ok, again.code) == (False, "already_executed"), where


def test_concurrent_claims_of_one_approval_run_once(recorded: Recorded) -> None:
    rng = random.Random(SEED)
    gate = ToolGate[Run](veto=recorded.veto, context=lambda run: run.app)
    for round_ in range(5):
        call = gate.call("crm.update", update(amount=9000 + round_), Run(APP_CONTEXT))
        verdict = gate.decide(call)
        recorded.veto.approve(verdict.decision.id, APPROVER)
        threads = rng.randint(2, 8)
        start = threading.Barrier(threads)
        outcomes: list[str] = []
        lock = threading.Lock()

        def claim() -> None:
            start.wait()
            result = gate.claim(verdict.decision.id, call)
            with lock:
                outcomes.append("ok" if result.ok else result.code)

        workers = [threading.Thread(target=claim) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert sorted(outcomes) == sorted(["ok"] + ["already_executed"] * (threads - 1)), f"seed {SEED} round {round_}"


def test_the_applications_reason_wins_reason_argument_renames_or_turns_it_off(recorded: Recorded) -> None:
    tool_input = update(amount=100, why="model says")
    named = ToolGate[None](veto=recorded.veto, context=lambda _: APP_CONTEXT, reason_argument="why")
    assert named.call("crm.update", tool_input, None).context["reason"] == "model says"
    off = ToolGate[None](veto=recorded.veto, context=lambda _: APP_CONTEXT, reason_argument=False)
    assert "reason" in off.call("crm.update", tool_input, None).arguments
    assert "reason" not in off.call("crm.update", tool_input, None).context
    app = ToolGate[None](veto=recorded.veto, context=lambda _: {**APP_CONTEXT, "reason": "app says"})
    call = app.call("crm.update", tool_input, None)
    assert call.context["reason"] == "app says" and call.input == tool_input
    # Only the contract's context fields are taken from the application.
    extra = ToolGate[None](veto=recorded.veto, context=lambda _: {**APP_CONTEXT, "tool": "x", "arguments": {}})
    assert sorted(extra.call("crm.update", tool_input, None).context) == ["actorId", "environment", "reason", "tenantId"]


def test_what_was_decided_cannot_be_changed_through_what_the_gate_hands_out(recorded: Recorded) -> None:
    gate = ToolGate[None](veto=recorded.veto, context=lambda _: APP_CONTEXT)
    tool_input = update(amount=100)
    call = gate.call("crm.update", tool_input, None)
    tool_input["changes"]["stage"] = "closed_won"
    call.input["changes"]["stage"] = "closed_won"
    call.arguments["changes"]["stage"] = "closed_won"
    assert call.input == update(amount=100)
    assert call.fingerprint == input_fingerprint(update(amount=100))


def test_input_that_is_not_an_object_is_denied_invalid_input_and_recorded(recorded: Recorded) -> None:
    gate = ToolGate[None](veto=recorded.veto, context=lambda _: APP_CONTEXT)
    for raw in ["opp_1", ["opp_1"], None, 7, {"changes": threading.Lock()}]:
        verdict = gate.decide(gate.call("crm.update", raw, None))
        assert verdict.kind == "deny" and verdict.message.startswith("Denied by policy [invalid_input]: "), raw
    assert len(recorded.decisions()) == 5


def test_deny_texts_and_bad_options(recorded: Recorded) -> None:
    gate = ToolGate[None](veto=recorded.veto, context=lambda _: APP_CONTEXT)
    verdict = gate.decide(gate.call("crm.update", update(tenantId="globex"), None))
    assert verdict.kind == "deny" and deny_message(verdict.decision).startswith("Denied by policy [wrong_tenant]: ")
    with pytest.raises(VetoOptionsError, match="veto must be"):
        ToolGate(veto={}, context=lambda _: APP_CONTEXT)  # type: ignore[arg-type]
    with pytest.raises(VetoOptionsError, match="context must be a function"):
        ToolGate(veto=recorded.veto, context="app")  # type: ignore[arg-type]
    with pytest.raises(VetoOptionsError, match="tool_names"):
        ToolGate(veto=recorded.veto, context=lambda _: APP_CONTEXT, tool_names={"a": ""})
    with pytest.raises(VetoOptionsError, match="reason_argument"):
        ToolGate(veto=recorded.veto, context=lambda _: APP_CONTEXT, reason_argument="")
    with pytest.raises(VetoOptionsError, match="must return"):
        ToolGate[None](veto=recorded.veto, context=lambda _: "nobody").call("crm.update", {}, None)  # type: ignore[arg-type,return-value]

    async def later(_: None) -> Mapping[str, Any]:
        return APP_CONTEXT

    with pytest.raises(VetoOptionsError, match="awaitable"):
        ToolGate[None](veto=recorded.veto, context=later).call("crm.update", {}, None)
    assert asyncio.run(ToolGate[None](veto=recorded.veto, context=later).acall("crm.update", update(), None)).context["actorId"] == APP_CONTEXT["actorId"]


async def test_an_async_veto_decides_and_claims_off_the_event_loop() -> None:
    veto = await create_async_veto(TEST_BUNDLE, record_sink=MemorySink(), approval_poll_ms=10)
    try:
        gate = ToolGate[None](veto=veto, context=lambda _: APP_CONTEXT)
        call = await gate.acall("crm.update", update(amount=9000), None)
        verdict = await gate.adecide(call)
        assert (await gate.aclaim(verdict.decision.id, call)).code == "approval_pending"
        await veto.approve(verdict.decision.id, APPROVER)
        assert (await gate.aclaim(verdict.decision.id, call)).ok
    finally:
        await veto.close()


def test_the_core_and_the_gate_import_no_framework() -> None:
    probe = (
        "import sys, veto_crm, veto_crm.integrations, veto_crm.integrations.gate; "
        "print([m for m in ('langgraph', 'langchain_core', 'agents', 'openai') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_expired_approval_is_refused_and_never_claimed() -> None:
    clock = FakeClock()
    with create_veto(TEST_BUNDLE, record_sink=MemorySink(), clock=clock, approval_ttl_ms=60_000, approval_poll_ms=10) as veto:
        gate = ToolGate[None](veto=veto, context=lambda _: APP_CONTEXT)
        call = gate.call("crm.update", update(amount=9000), None)
        verdict = gate.decide(call)
        clock.advance(60_000)
        assert gate.claim(verdict.decision.id, call).code == "approval_expired"
        # The same call approved in time is claimed once.
        fresh = gate.decide(call)
        veto.approve(fresh.decision.id, APPROVER)
        clock.advance(59_999)
        assert gate.claim(fresh.decision.id, call).ok
