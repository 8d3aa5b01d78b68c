"""
Record state (docs/contract.md §6): an approval bound to the state of the CRM
record its call targets, asked once when the call needs approval and again
where the approved call executes. What cannot be a static conformance vector
(threads, timeouts, asyncio, generated answers) is tested here, on the real
bundle; the records themselves are pinned against the TypeScript adapter by
test_conformance.py.

Generated cases are seeded: VETO_STATE_SEED=<n> reproduces a failing run (the
seed is in every assertion message).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from veto_crm import ApprovalError, FileDecisionLog, InMemoryStore, Veto, VetoOptionsError, create_async_veto, create_veto, read_log

from .conftest import APPROVER, FakeClock, MemorySink, codes, run_python_cli, run_ts_cli, write_call

SEED = int(os.environ.get("VETO_STATE_SEED", str(random.SystemRandom().randrange(1 << 30))))
NEEDS_APPROVAL = write_call({"amount": 9000})
UNAVAILABLE = "The state of the CRM record could not be read: "


class States:
    """A record_state function over a table the test changes, counting every ask and keeping what it was given."""

    def __init__(self, state: Any = "v1") -> None:
        self.state: Any = state
        self.asked: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, call: dict[str, Any]) -> Any:
        with self.lock:
            self.asked.append(call)
        value = self.state
        if isinstance(value, BaseException):
            raise value
        if callable(value):
            return value()
        return value


def _records(sink: MemorySink, decision_id: str, kind: Optional[str] = None) -> list[dict[str, Any]]:
    return [r for r in sink.records if r["decision_id"] == decision_id and (kind is None or r["type"] == kind)]


def _guard_in_thread(veto: Veto, call: dict[str, Any]) -> tuple[list[Any], list[BaseException], threading.Thread]:
    runs: list[Any] = []
    errors: list[BaseException] = []

    @veto.guard(call["tool"])
    def update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
        runs.append((args, decision.id))
        return "updated"

    def run() -> None:
        try:
            update(call["arguments"], call["context"])
        except BaseException as error:  # noqa: BLE001 - the test reads it
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    return runs, errors, thread


def _pending_id(sink: MemorySink, before: int = 0) -> str:
    for _ in range(500):
        found = [r for r in sink.records[before:] if r["type"] == "decision" and r["result"]["action"] == "require_approval"]
        if found:
            return str(found[-1]["decision_id"])
        time.sleep(0.01)
    raise AssertionError("no require_approval decision was recorded")


# -- at decision time ----------------------------------------------------------


def test_asked_once_with_a_copy_of_the_call_and_recorded_as_record_state(bundle: Path) -> None:
    sink, states = MemorySink(), States("etag-1")
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), record_state=states) as veto:
        decision = veto.protect(NEEDS_APPROVAL)
        assert decision.action == "require_approval"
        assert len(states.asked) == 1
        assert states.asked[0] == {"tool": NEEDS_APPROVAL["tool"], "arguments": NEEDS_APPROVAL["arguments"], "context": NEEDS_APPROVAL["context"]}
        # A copy: what the function does with it cannot change what was decided.
        states.asked[0]["arguments"]["amount"] = 1
        assert _records(sink, decision.id, "decision")[0]["record_state"] == "etag-1"
        assert _records(sink, decision.id, "decision")[0]["input"]["arguments"]["amount"] == 9000
        # Never asked for what the policy allows or denies, nor by approve() or reject().
        assert veto.protect(write_call()).action == "allow"
        assert veto.protect(write_call({"amount": 300000})).action == "deny"
        veto.approve(decision.id, APPROVER)
        veto.reject(veto.protect(NEEDS_APPROVAL).id, APPROVER)
        assert len(states.asked) == 2
        assert all("record_state" not in r for r in sink.records if r["type"] == "decision" and r["result"]["action"] != "require_approval")


def test_none_binds_no_state_and_the_approved_call_runs_without_asking_again(bundle: Path) -> None:
    sink, states = MemorySink(), States(None)
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), record_state=states) as veto:
        decision = veto.protect(NEEDS_APPROVAL)
        assert "record_state" not in _records(sink, decision.id, "decision")[0]
        veto.approve(decision.id, APPROVER)
        states.state = "v2"
        assert veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL).status == "approved"
        assert len(states.asked) == 1


def _js_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "function" if callable(value) else "object"


def _generated_answer(rng: random.Random) -> Any:
    kind = rng.randrange(12)
    if kind < 3:
        return "".join(rng.choice("abcXYZ019-:é\u2028\U0001F600 ") for _ in range(rng.randrange(0, 12)))
    if kind == 3:
        return None
    return [
        rng.randrange(-(10**6), 10**6),
        rng.random() * 1e6,
        rng.random() < 0.5,
        [rng.randrange(9)],
        {"v": rng.randrange(9)},
        b"v1",
        ("v1",),
        {"v1"},
        object(),
        lambda: "v1",
    ][kind - 4 if kind - 4 < 8 else rng.randrange(8, 10)]


def test_generated_answers_bind_a_string_or_nothing_and_deny_anything_else_uncounted(bundle: Path) -> None:
    rng = random.Random(SEED)
    sink, states = MemorySink(), States()
    clock = FakeClock()
    with create_veto(bundle, record_sink=sink, clock=clock, record_state=states) as veto:
        for case in range(120):
            clock.advance(1000)
            answer = _generated_answer(rng)
            states.state = (lambda a: lambda: a)(answer)
            decision = veto.protect(NEEDS_APPROVAL)
            record = _records(sink, decision.id, "decision")[-1]
            where = f"seed {SEED}, case {case}: {answer!r}"
            if answer is None or isinstance(answer, str):
                assert decision.action == "require_approval", where
                assert record.get("record_state") == answer, where
            else:
                assert decision.action == "deny" and codes(decision) == ["record_state_unavailable"], where
                assert decision.reason == f"{UNAVAILABLE}recordState must answer a string or undefined, not {_js_type(answer)}", where
                assert "record_state" not in record, where
            # Never counted: the deny history stays empty however many there were (docs/contract.md §3).
            assert record["history"] == {"recent_denies": 0}, where
            assert not decision.escalated, where


def test_raising_or_slow_state_functions_deny_within_the_timeout(bundle: Path) -> None:
    sink, states = MemorySink(), States(RuntimeError("CRM unavailable"))
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), record_state=states, record_state_timeout_ms=100) as veto:
        raised = veto.protect(NEEDS_APPROVAL)
        assert codes(raised) == ["record_state_unavailable"]
        assert raised.reason == f"{UNAVAILABLE}recordState failed: CRM unavailable"
        release = threading.Event()
        states.state = lambda: (release.wait(5), "v1")[1]
        started = time.monotonic()
        slow = veto.protect(NEEDS_APPROVAL)
        elapsed = time.monotonic() - started
        release.set()
        assert codes(slow) == ["record_state_unavailable"]
        assert slow.reason == f"{UNAVAILABLE}recordState did not answer within 100 ms"
        assert 0.09 <= elapsed < 1.0, elapsed
        # An awaitable from a synchronous Veto cannot be waited for: refused, not hung.
        async def coroutine() -> str:
            return "v1"

        states.state = coroutine
        awaited = veto.protect(NEEDS_APPROVAL)
        assert codes(awaited) == ["record_state_unavailable"]
        assert "cannot wait for" in awaited.reason
        assert all(r["history"] == {"recent_denies": 0} for r in sink.records if r["type"] == "decision")


@pytest.mark.parametrize(
    ("options", "issue"),
    [
        ({"record_state": "v1"}, "record_state:"),
        ({"record_state": lambda call: "v1", "record_state_timeout_ms": 0}, "record_state_timeout_ms:"),
        ({"record_state_timeout_ms": 1.5}, "record_state_timeout_ms:"),
        ({"record_state_timeout_ms": True}, "record_state_timeout_ms:"),
    ],
)
def test_options_are_checked(bundle: Path, options: dict[str, Any], issue: str) -> None:
    with pytest.raises(VetoOptionsError) as refused:
        create_veto(bundle, record_sink=MemorySink(), **options)
    assert any(i.startswith(issue) for i in refused.value.issues), refused.value.issues


def test_an_async_state_function_needs_the_asyncio_api(bundle: Path) -> None:
    async def state(call: dict[str, Any]) -> str:
        return "v1"

    with pytest.raises(VetoOptionsError) as refused:
        create_veto(bundle, record_sink=MemorySink(), record_state=state)
    assert "create_async_veto" in str(refused.value)


# -- where the approved call executes -------------------------------------------


def test_guard_refuses_a_record_changed_after_approval_and_runs_an_unchanged_one_once(bundle: Path) -> None:
    sink, states = MemorySink(), States("v1")
    with create_veto(bundle, record_sink=sink, record_state=states, approval_poll_ms=10) as veto:
        runs, errors, thread = _guard_in_thread(veto, NEEDS_APPROVAL)
        decision_id = _pending_id(sink)
        states.state = "v2"
        veto.approve(decision_id, APPROVER)
        thread.join(10)
        assert runs == []
        assert len(errors) == 1 and isinstance(errors[0], ApprovalError) and errors[0].code == "record_changed"
        assert '"v1"' in str(errors[0]) and '"v2"' in str(errors[0])
        refused = _records(sink, decision_id, "execution")
        assert [(r["result"], r["record_state"]) for r in refused] == [({"execution": "refused", "reason": "record_changed"}, "v2")]
        # The refusal leaves the approval approved and unclaimed (docs/contract.md §9).
        stored = veto._store.get_decision(decision_id)
        assert stored is not None and stored.approval is not None and stored.approval.status == "approved"

        before = len(sink.records)
        states.state = "v2"
        runs, errors, thread = _guard_in_thread(veto, NEEDS_APPROVAL)
        decision_id = _pending_id(sink, before)
        veto.approve(decision_id, APPROVER)
        thread.join(10)
        assert errors == [] and [d for _, d in runs] == [decision_id]
        assert [r["result"] for r in _records(sink, decision_id, "execution")] == [{"execution": "claimed"}]


def test_a_plain_wait_only_observes_and_a_wait_with_the_call_compares(bundle: Path) -> None:
    sink, states = MemorySink(), States("v1")
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), record_state=states) as veto:
        decision = veto.protect(NEEDS_APPROVAL)
        veto.approve(decision.id, APPROVER)
        states.state = RuntimeError("gone")
        assert veto.wait_for_approval(decision.id).status == "approved"
        assert len(states.asked) == 1
        with pytest.raises(ApprovalError) as failing:
            veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
        assert failing.value.code == "record_changed" and "recordState failed: gone" in str(failing.value)
        states.state = None
        with pytest.raises(ApprovalError) as gone:
            veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
        assert gone.value.code == "record_changed" and "no state" in str(gone.value)
        assert [r["record_state"] for r in _records(sink, decision.id, "execution")] == [None, None]
        states.state = "v1"
        assert veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL).status == "approved"
        with pytest.raises(ApprovalError) as again:
            veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
        assert again.value.code == "already_executed"


def test_an_instance_without_record_state_cannot_run_a_call_bound_to_one(bundle: Path) -> None:
    sink, store, clock = MemorySink(), InMemoryStore(), FakeClock()
    with create_veto(bundle, record_sink=sink, store=store, clock=clock, record_state=States("v1")) as bound:
        decision = bound.protect(NEEDS_APPROVAL)
        bound.approve(decision.id, APPROVER)
        with create_veto(bundle, record_sink=sink, store=store, clock=clock) as other:
            with pytest.raises(ApprovalError) as refused:
                other.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
        assert refused.value.code == "record_changed" and "no recordState" in str(refused.value)


def test_a_slow_state_function_at_execution_refuses_within_the_timeout(bundle: Path) -> None:
    states = States("v1")
    with create_veto(bundle, record_sink=MemorySink(), clock=FakeClock(), record_state=states, record_state_timeout_ms=80) as veto:
        decision = veto.protect(NEEDS_APPROVAL)
        veto.approve(decision.id, APPROVER)
        release = threading.Event()
        states.state = lambda: (release.wait(5), "v1")[1]
        started = time.monotonic()
        with pytest.raises(ApprovalError) as slow:
            veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
        elapsed = time.monotonic() - started
        release.set()
        assert slow.value.code == "record_changed" and "within 80 ms" in str(slow.value)
        assert elapsed < 1.0, elapsed


def test_generated_the_call_runs_iff_the_state_at_execution_is_the_bound_one(bundle: Path) -> None:
    rng = random.Random(SEED + 1)
    sink, states = MemorySink(), States()
    clock = FakeClock()
    with create_veto(bundle, record_sink=sink, clock=clock, record_state=states) as veto:
        for case in range(40):
            clock.advance(1000)
            bound = rng.choice(["v1", "v2", "", "é", "v1 "])
            states.state = bound
            decision = veto.protect(NEEDS_APPROVAL)
            veto.approve(decision.id, APPROVER)
            runs = 0
            for attempt in range(rng.randrange(1, 5)):
                now: Any = rng.choice(["v1", "v2", "", "é", "v1 ", None, RuntimeError("x"), 1])
                states.state = now
                where = f"seed {SEED + 1}, case {case}, attempt {attempt}: bound {bound!r}, now {now!r}"
                try:
                    veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
                    runs += 1
                    assert now == bound and runs == 1, where
                except ApprovalError as error:
                    if runs == 0:
                        assert error.code == "record_changed" and now != bound, where
                    else:
                        assert error.code in ("already_executed", "record_changed"), where
            assert runs <= 1


# -- asyncio -----------------------------------------------------------------------


def test_asyncio_state_function_binds_and_refuses_a_changed_record(bundle: Path) -> None:
    async def main() -> None:
        sink = MemorySink()
        state: dict[str, Any] = {"value": "v1", "asked": 0}

        async def record_state(call: dict[str, Any]) -> Any:
            state["asked"] += 1
            await asyncio.sleep(0)
            value = state["value"]
            if isinstance(value, BaseException):
                raise value
            if value == "slow":
                await asyncio.sleep(5)
            return value

        async with await create_async_veto(bundle, record_sink=sink, record_state=record_state, record_state_timeout_ms=100, approval_poll_ms=10) as veto:
            decision = await veto.protect(NEEDS_APPROVAL)
            assert decision.action == "require_approval"
            assert _records(sink, decision.id, "decision")[0]["record_state"] == "v1"
            ran: list[str] = []

            @veto.guard("crm.update")
            async def update(args: dict[str, Any], context: dict[str, Any], decided: Any) -> str:
                ran.append(decided.id)
                return "updated"

            task = asyncio.ensure_future(update(NEEDS_APPROVAL["arguments"], NEEDS_APPROVAL["context"]))
            pending = await asyncio.to_thread(_pending_id, sink, len(sink.records))
            state["value"] = "v2"
            await veto.approve(pending, APPROVER)
            with pytest.raises(ApprovalError) as changed:
                await task
            assert changed.value.code == "record_changed" and ran == []

            # Unchanged: claimed once (use-once in the asyncio wait too).
            state["value"] = "v1"
            await veto.approve(decision.id, APPROVER)
            assert (await veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)).status == "approved"
            with pytest.raises(ApprovalError) as again:
                await veto.wait_for_approval(decision.id, call=NEEDS_APPROVAL)
            assert again.value.code == "already_executed"

            state["value"] = RuntimeError("CRM unavailable")
            failed = await veto.protect(NEEDS_APPROVAL)
            assert failed.reason == f"{UNAVAILABLE}recordState failed: CRM unavailable"
            state["value"] = "slow"
            started = time.monotonic()
            slow = await veto.protect(NEEDS_APPROVAL)
            assert slow.reason == f"{UNAVAILABLE}recordState did not answer within 100 ms"
            assert time.monotonic() - started < 1.0
            state["value"] = 7
            assert (await veto.protect(NEEDS_APPROVAL)).reason == f"{UNAVAILABLE}recordState must answer a string or undefined, not number"

    asyncio.run(main())


# -- the log -------------------------------------------------------------------------


def python_log_with_state_and_amendments(path: Path, bundle: Path) -> None:
    """A file log holding every record kind record state and amend write: verified by both languages' `log verify`."""
    clock, states = FakeClock(), States("v1")
    log = FileDecisionLog.open(path)
    with create_veto(bundle, record_sink=log, clock=clock, record_state=states, record_key="a-record-key-of-16+bytes") as veto:
        bound = veto.protect(NEEDS_APPROVAL)
        veto.approve(bound.id, APPROVER, "at v1")
        states.state = "v2"
        with pytest.raises(ApprovalError):
            veto.wait_for_approval(bound.id, call=NEEDS_APPROVAL)
        states.state = "v1"
        veto.wait_for_approval(bound.id, call=NEEDS_APPROVAL)
        states.state = RuntimeError("CRM unavailable")
        veto.protect(NEEDS_APPROVAL)
        states.state = "v1"
        for amount in (8000, 100, 10_000_000):
            clock.advance(1000)
            pending = veto.protect(NEEDS_APPROVAL)
            result = veto.amend(pending.id, APPROVER, {**NEEDS_APPROVAL["arguments"], "amount": amount}, note=f"{amount}")
            if result.approval is not None:
                veto.wait_for_approval(result.decision.id, call={**NEEDS_APPROVAL, "arguments": {**NEEDS_APPROVAL["arguments"], "amount": amount}})
    log.close()


def test_a_python_log_with_record_state_and_amendments_passes_veto_log_verify(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    python_log_with_state_and_amendments(path, bundle)
    args = ["log", "verify", str(path)]
    ts, py = run_ts_cli(args), run_python_cli(args)
    assert ts.returncode == 0, ts.stderr
    assert (py.returncode, py.stdout, py.stderr) == (ts.returncode, ts.stdout, ts.stderr)
    records = read_log([str(path)])
    kinds = [r["type"] for r in records]
    assert kinds.count("amendment") == 3
    assert {r["result"].get("reason") for r in records if r["type"] == "execution"} == {None, "record_changed"}
    assert any(r.get("record_state") == "v1" for r in records if r["type"] == "decision")
    assert sum(1 for r in records if r["type"] == "decision" and "amended_from" in r) == 3
    # An edited record state breaks the chain, for both verifiers.
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if '"record_state":"v1"' in line)
    lines[at] = lines[at].replace('"record_state":"v1"', '"record_state":"v0"')
    path.write_text("".join(lines), encoding="utf-8")
    ts, py = run_ts_cli(args), run_python_cli(args)
    assert ts.returncode == 1 and py.returncode == 1
    assert py.stdout == ts.stdout


def test_a_decision_whose_record_cannot_be_written_is_superseded_by_a_deny_that_binds_no_state(bundle: Path) -> None:
    """docs/contract.md §7: the superseding record_unavailable deny is on file, without the state the refused approval would have bound."""
    sink = MemorySink()
    real_write = sink.write
    failed: list[bool] = []

    def write(record: dict[str, Any]) -> None:
        if record["type"] == "decision" and not failed:
            failed.append(True)
            raise OSError("disk full")
        real_write(record)

    sink.write = write  # type: ignore[method-assign]
    with create_veto(bundle, record_sink=sink, clock=FakeClock(), record_state=States("v1")) as veto:
        decision = veto.protect(NEEDS_APPROVAL)
        assert codes(decision) == ["record_unavailable"]
        superseding = _records(sink, decision.id, "decision")
        assert len(superseding) == 1 and superseding[0]["result"]["action"] == "deny"
        assert "record_state" not in superseding[0]


TS_LOG_SCRIPT = """
const [root, bundle, path] = process.argv.slice(-3);
const { createVeto } = await import(`${root}/dist/index.js`);
const { openFileLog } = await import(`${root}/dist/audit.js`);
const log = await openFileLog(path);
const quiet = { info() {}, error() {}, warn() {}, debug() {}, child() { return quiet; } };
let state = "v1";
const veto = await createVeto({ bundle, recordSink: log, recordState: () => state, logger: quiet });
const call = JSON.parse(process.env.VETO_CALL);
const approver = process.env.VETO_APPROVER;
const one = await veto.protect(call);
await veto.approve({ decisionId: one.id, reviewerId: approver });
state = "v2";
await veto.waitForApproval({ decisionId: one.id, call }).catch(() => {});
const two = await veto.protect(call);
const amended = { ...call, arguments: { ...call.arguments, amount: 8000 } };
// The amended call is bound to the state now ("v2"), and runs while it stays so.
const result = await veto.amend({ decisionId: two.id, reviewerId: approver, arguments: amended.arguments, note: "less" });
await veto.waitForApproval({ decisionId: result.decision.id, call: amended });
await veto.close();
await log.close();
"""


def test_a_typescript_log_with_record_state_and_amendments_verifies_and_reads_in_python(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    import json
    import subprocess

    from .conftest import ROOT

    path = tmp_path / "ts.jsonl"
    script = tmp_path / "write-log.mjs"
    script.write_text(TS_LOG_SCRIPT, encoding="utf-8")
    env = {**os.environ, "VETO_CALL": json.dumps(NEEDS_APPROVAL), "VETO_APPROVER": APPROVER}
    done = subprocess.run(["node", str(script), str(ROOT), str(bundle), str(path)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    args = ["log", "verify", str(path)]
    ts, py = run_ts_cli(args), run_python_cli(args)
    assert py.returncode == 0, py.stderr
    assert (py.returncode, py.stdout, py.stderr) == (ts.returncode, ts.stdout, ts.stderr)
    records = read_log([str(path)])
    assert [r["type"] for r in records] == ["decision", "approval", "execution", "decision", "decision", "amendment", "approval", "execution"]
    assert records[2]["result"] == {"execution": "refused", "reason": "record_changed"} and records[2]["record_state"] == "v2"
    assert records[4]["amended_from"] == records[3]["decision_id"] and records[5]["amended_to"] == records[4]["decision_id"]
    assert records[7]["result"] == {"execution": "claimed"}
