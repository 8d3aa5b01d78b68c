"""
Shadow mode (docs/policy-changes.md) in the Python adapter, on the real bundle
with seeded generated calls: the decision is what it would be without the
shadow; the record carries the candidate's verdict on the same call and deny
history, equal to what the TypeScript CLI records for the same calls; a
failing candidate is recorded (its error), never a deny; the shadow fields are
inside the hash chain that ``veto log verify`` checks. Reproduce a failure
with the seed it prints: VETO_SHADOW_SEED=<seed> pytest tests/test_shadow.py
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from veto_crm import BundleLoadError, FileDecisionLog, VetoOptionsError, create_veto
from veto_crm.input import DEFAULT_INPUT_LIMITS, CheckedCall, check_call
from veto_crm.log import read_log
from veto_crm.veto import activate_policy

from .conftest import FIXTURE_DATA, MemorySink, FakeClock, read_call, run_python_cli, run_ts_cli, write_call
from .test_differential_cli import generated

SEED = int(os.environ.get("VETO_SHADOW_SEED", "2108"))


def relaxed_data() -> dict[str, Any]:
    """The fixture data with acme's approval threshold raised: a candidate that allows what the bundle asks approval for."""
    data: dict[str, Any] = json.loads(FIXTURE_DATA.read_text(encoding="utf-8"))
    data["veto"]["config"]["tenants"]["acme"]["approval_threshold"] = 50_000
    return data


def generated_calls(seed: int, count: int) -> list[Any]:
    rng = random.Random(seed)
    calls: list[Any] = []
    for _ in range(count):
        r = rng.random()
        if r < 0.4:
            calls.append(write_call({"amount": rng.randrange(120_000)}))
        elif r < 0.55:
            calls.append(write_call({"object": "account", "changes": {"credit_limit": 1}}))
        elif r < 0.65:
            calls.append(write_call({"tenantId": "globex"}))
        elif r < 0.75:
            calls.append(write_call({}, {"environment": "production", "reason": ""}))
        elif r < 0.8:
            calls.append({"tool": "crm.update", "arguments": "not an object"})  # refused: no history, no shadow
        else:
            calls.append(read_call())
    return calls


def strip(decision: Any) -> dict[str, Any]:
    return {**decision.to_json(), "id": "", "timestamp": ""}


def test_never_changes_a_decision_and_records_the_candidate_on_the_same_call_and_history(bundle: Path, tmp_path: Path) -> None:
    relaxed = relaxed_data()
    clocks = FakeClock(), FakeClock()
    plain_sink, shadow_sink = MemorySink(), MemorySink()
    calls = generated_calls(SEED, 150)
    with create_veto(bundle, record_sink=plain_sink, clock=clocks[0]) as plain, create_veto(
        bundle, record_sink=shadow_sink, clock=clocks[1], shadow={"bundle": bundle, "data": relaxed, "verification_key": None}
    ) as shadowed:
        for call in calls:
            for clock in clocks:
                clock.advance(20_000)
            a, b = plain.protect(call), shadowed.protect(call)
            assert strip(b) == strip(a), f"seed {SEED}: {json.dumps(call)}"
    candidate = activate_policy(bundle, None, relaxed)
    disagree = 0
    for plain_record, record in zip(plain_sink.records, shadow_sink.records):
        # Apart from its shadow member, the record is the one written without a shadow.
        assert {k: v for k, v in record.items() if k not in ("decision_id", "timestamp", "metrics", "shadow")} == {
            k: v for k, v in plain_record.items() if k not in ("decision_id", "timestamp", "metrics")
        }
        if record["history"] is None:
            assert "shadow" not in record, f"seed {SEED}: {record['decision_id']}"
            continue
        shadow = record["shadow"]
        assert list(shadow) == ["revision", "hash", "action", "escalated", "reasons"]
        # An independent evaluation of the candidate on the recorded call and deny history.
        checked = check_call(record["input"], DEFAULT_INPUT_LIMITS, candidate.data.amount_names)
        assert isinstance(checked, CheckedCall) and checked.json is not None
        evaluation = candidate.evaluator.evaluate_call(checked.json, record["history"]["recent_denies"])
        assert evaluation.ok and evaluation.answer is not None
        expected = {
            **candidate.version.to_json(),
            "action": evaluation.answer.action,
            "escalated": evaluation.answer.escalated,
            "reasons": [r.code for r in evaluation.answer.reasons],
        }
        assert shadow == expected, f"seed {SEED}: {record['decision_id']}"
        if (shadow["action"], shadow["escalated"]) != (record["result"]["action"], record["result"]["escalated"]):
            disagree += 1
    assert disagree > 0, f"seed {SEED}: the candidate should disagree somewhere"
    assert any(r["result"]["escalated"] for r in shadow_sink.records), f"seed {SEED}: the stream should reach escalation"


@pytest.fixture(scope="module")
def broken_bundle(opa: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by the real opa: a decision for most calls, something that is not one for crm.explode, nothing for crm.void."""
    where = tmp_path_factory.mktemp("broken")
    (where / "broken.rego").write_text(
        "package veto.crm\n\n"
        'decision := {"action": "allow", "escalated": false, "reasons": [{"code": "read_only", "message": "ok"}], "approvers": []} if {\n'
        '\tnot input.tool in {"crm.explode", "crm.void"}\n}\n\n'
        'decision := {"action": "launch", "reasons": []} if input.tool == "crm.explode"\n'
    )
    out = where / "broken.tar.gz"
    run = subprocess.run(
        [str(opa), "build", "-t", "wasm", "-e", "veto/crm/decision", "-o", str(out), str(where / "broken.rego")], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return out


def shadow_lines(stdout: str, records_path: Path) -> list[tuple[dict[str, Any], Optional[dict[str, Any]]]]:
    """Per decision printed, in order: the decision and its record's shadow member (None when absent)."""
    by_id = {}
    for line in records_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        by_id[record["decision_id"]] = record.get("shadow")
    decisions = [json.loads(line) for line in stdout.splitlines()]
    return [(d, by_id[d["id"]]) for d in decisions]


def run_both(args: list[str], text: str, tmp_path: Path) -> tuple[list[tuple[dict[str, Any], Optional[dict[str, Any]]]], ...]:
    ts = run_ts_cli(["eval", *args, "--records", str(tmp_path / "ts.jsonl")], text)
    py = run_python_cli(["eval", *args, "--records", str(tmp_path / "py.jsonl")], text)
    assert ts.returncode == 0, ts.stderr[-2000:]
    assert py.returncode == 0, py.stderr[-2000:]
    return shadow_lines(ts.stdout, tmp_path / "ts.jsonl"), shadow_lines(py.stdout, tmp_path / "py.jsonl")


def test_the_shadow_member_is_the_typescript_clis_line_by_line(bundle: Path, ts_cli: Path, tmp_path: Path) -> None:
    _, cases = generated()
    # Two writes the candidate judges otherwise first, before the stream's denies escalate the actor.
    lines = [json.dumps(write_call({"amount": 9000})), json.dumps(write_call({"amount": 70_000})), "{not json"]
    lines += [json.dumps(c["call"]) for c in cases if c["config"] == "bundle"]
    relaxed = tmp_path / "relaxed.json"
    relaxed.write_text(json.dumps(relaxed_data()))
    ts, py = run_both(["--bundle", str(bundle), "--shadow-bundle", str(bundle), "--shadow-data", str(relaxed)], "\n".join(lines) + "\n", tmp_path)
    assert len(ts) == len(py) == len(lines)
    disagree = 0
    for i, ((t, t_shadow), (p, p_shadow)) in enumerate(zip(ts, py)):
        where = f"line {i}: {lines[i][:300]!r}"
        # (Only the wording of a JSON parser's error may differ, as in test_differential_cli.py.)
        assert (p["action"], p["escalated"], [r["code"] for r in p["reasons"]]) == (t["action"], t["escalated"], [r["code"] for r in t["reasons"]]), where
        # Byte for byte, member order included: the records hash the same way.
        assert json.dumps(p_shadow) == json.dumps(t_shadow), where
        if t_shadow is not None and t_shadow["action"] != t["action"]:
            disagree += 1
    assert ts[0][1] is not None and (ts[0][0]["action"], ts[0][1]["action"]) == ("require_approval", "allow")
    assert ts[1][1] is not None and (ts[1][0]["action"], ts[1][1]["action"]) == ("require_approval", "require_approval")
    assert disagree > 0
    assert any(s is None for _, s in ts), "a refused line is decided without the candidate"


def test_a_failing_candidate_is_recorded_never_a_deny(bundle: Path, broken_bundle: Path, ts_cli: Path, tmp_path: Path) -> None:
    calls = [read_call(), read_call({}, {}, "crm.void"), read_call({}, {}, "crm.explode"), read_call(), write_call({"amount": 9000})]
    text = "".join(json.dumps(c) + "\n" for c in calls)
    args = ["--bundle", str(bundle), "--shadow-bundle", str(broken_bundle), "--shadow-data", str(FIXTURE_DATA)]
    ts, py = run_both(args, text, tmp_path)
    plain = [json.loads(line) for line in run_python_cli(["eval", "--bundle", str(bundle), "--records", str(tmp_path / "plain.jsonl")], text).stdout.splitlines()]
    assert [strip_json(d) for d, _ in py] == [strip_json(d) for d in plain]
    assert [d["action"] for d, _ in py] == [d["action"] for d, _ in ts]
    void, explode = py[1][1], py[2][1]
    assert void is not None and explode is not None
    assert list(void) == list(explode) == ["revision", "hash", "error"]
    assert void["error"] == "veto/crm/decision produced no single result (it may be undefined for this input)"
    assert explode["error"].startswith("veto/crm/decision answered something that is not a decision: ")
    assert json.dumps(void) == json.dumps(ts[1][1])
    # The candidate's validator words its findings in each language's way; the rest is the same.
    assert {**explode, "error": ""} == {**(ts[2][1] or {}), "error": ""}
    # The candidate recovers for the next call.
    assert py[3][1] == ts[3][1] and py[3][1] is not None and py[3][1]["action"] == "allow"
    assert py[4][1] == ts[4][1] and py[4][1] is not None and py[4][1]["action"] == "allow"


def strip_json(d: dict[str, Any]) -> dict[str, Any]:
    return {**d, "id": "", "timestamp": ""}


def test_shadow_fields_are_inside_the_hash_chain(bundle: Path, ts_cli: Path, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = FileDecisionLog.open(path)
    clock = FakeClock()
    with create_veto(bundle, record_sink=log, clock=clock, shadow={"bundle": bundle, "data": relaxed_data()}) as veto:
        for call in generated_calls(SEED, 20) + [write_call({"amount": 9000})]:
            clock.advance(20_000)
            veto.protect(call)
    log.close()
    records = read_log([str(path)])
    assert any("shadow" in r for r in records)
    ts, py = run_ts_cli(["log", "verify", str(path)]), run_python_cli(["log", "verify", str(path)])
    assert ts.returncode == 0, ts.stderr
    assert py.returncode == 0 and py.stdout == ts.stdout
    text = path.read_text(encoding="utf-8")
    # Members only a shadow holds, in the log's canonical order (action, escalated, hash, reasons, revision).
    edits = {
        "action": (r'"shadow":\{"action":"allow"', '"shadow":{"action":"deny"'),
        "escalated": (r'"escalated":false,"hash"', '"escalated":true,"hash"'),
        "reasons": (r'"reasons":\["[a-z_]+"\],"revision"', '"reasons":[],"revision"'),
        "revision": (r'\],"revision":"crm-[0-9a-f]+"', '],"revision":"crm-000000000000"'),
    }
    for name, (pattern, replacement) in edits.items():
        assert re.search(pattern, text), name
        tampered = tmp_path / f"tampered-{name}.jsonl"
        tampered.write_text(re.sub(pattern, replacement, text, count=1), encoding="utf-8")
        ts, py = run_ts_cli(["log", "verify", str(tampered)]), run_python_cli(["log", "verify", str(tampered)])
        assert ts.returncode == 1, name
        assert (py.returncode, py.stderr) == (ts.returncode, ts.stderr), name


def test_unusable_shadow_options_are_refused_naming_the_option(bundle: Path, tmp_path: Path) -> None:
    cases: list[tuple[Any, str]] = [
        ({}, "shadow.bundle"),
        ({"bundle": ""}, "shadow.bundle"),
        ({"bundle": bundle, "data": []}, "shadow.data"),
        ({"bundle": bundle, "verificationKey": None}, "unknown option verificationKey"),
        ([bundle], "shadow must be"),
        ({"bundle": bundle, "verification_key": "not a key"}, "shadow.verification_key"),
    ]
    for given, words in cases:
        with pytest.raises(VetoOptionsError) as raised:
            create_veto(bundle, record_sink=MemorySink(), shadow=given)
        assert words in str(raised.value), given
    with pytest.raises(BundleLoadError, match="missing.tar.gz"):
        create_veto(bundle, record_sink=MemorySink(), shadow={"bundle": tmp_path / "missing.tar.gz"})
    with pytest.raises(BundleLoadError):
        create_veto(bundle, record_sink=MemorySink(), shadow={"bundle": bundle, "data": {"veto": {}}})


def test_the_command_lines_refuse_shadow_data_without_a_shadow_bundle(bundle: Path, ts_cli: Path, tmp_path: Path) -> None:
    call = json.dumps(write_call({"amount": 9000})) + "\n"
    args = ["eval", "--bundle", str(bundle), "--shadow-data", str(FIXTURE_DATA)]
    ts, py = run_ts_cli(args, call), run_python_cli(args, call)
    assert ts.returncode == py.returncode == 2
    assert "--shadow-data needs --shadow-bundle PATH" in py.stderr and "--shadow-data needs --shadow-bundle PATH" in ts.stderr
    missing = ["eval", "--bundle", str(bundle), "--shadow-bundle", str(tmp_path / "missing.tar.gz")]
    assert run_ts_cli(missing, call).returncode == run_python_cli(missing, call).returncode == 2
