"""
The shared conformance vectors (test/conformance/vectors.json, made by
scripts/conformance-vectors.mjs from the TypeScript adapter): the same
suites run through veto_crm must give the same decisions, digests, masked
records and record hashes, byte for byte after normalizing what varies from
run to run (ids, the bundle's version, the evaluation time).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from veto_crm import ApprovalAnswer, ApprovalError, Decision, VetoDeniedError, VetoOptionsError, create_veto
from veto_crm.jsontext import parse
from veto_crm.log import GENESIS_HASH, canonical_json, seal_record

from .conftest import VECTORS, FakeClock, MemorySink, policy_reason_codes, rego_case_codes

VECTOR_DATA: dict[str, Any] = parse(VECTORS.read_text(encoding="utf-8"))
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def normalize_record(record: dict[str, Any], ids: list[str]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    out["decision_id"] = "<id>"
    # Links to other decisions name them by their place in the suite (scripts/conformance-vectors.mjs).
    for link in ("amended_from", "amended_to"):
        if link in out:
            out[link] = f"<decision {ids.index(out[link]) if out[link] in ids else -1}>"
    out["bundles"] = {"crm": {"revision": "<revision>", "hash": "<hash>"}}
    if "metrics" in out:
        out["metrics"] = {"timer_rego_query_eval_ns": 0}
    return out


def record_state_of(table: dict[str, Any], call: dict[str, Any]) -> Any:
    """The state a suite's ``recordStates`` table gives for a call (recordStateOf in scripts/conformance-vectors.mjs)."""
    entry = table.get(call["arguments"]["recordId"])
    if entry is None or isinstance(entry, str):
        return entry
    if "throws" in entry:
        raise RuntimeError(entry["throws"])
    return entry["answers"]


def normalize_decision(decision: Decision) -> dict[str, Any]:
    json = decision.to_json()
    json["id"] = "<id>"
    json["bundle"] = {"revision": "<revision>", "hash": "<hash>"}
    return json


def answer_of(answer: ApprovalAnswer) -> dict[str, Any]:
    return {"status": answer.status, "reviewerId": answer.reviewer_id, "answeredAt": answer.answered_at, "note": answer.note}


def run_suite(suite: dict[str, Any], bundle: Path) -> list[dict[str, Any]]:
    options = suite.get("options", {})
    limits = options.get("limits")
    clock = FakeClock(VECTOR_DATA["start_ms"])
    sink = MemorySink()
    states = dict(suite.get("recordStates") or {})
    veto = create_veto(
        bundle,
        data=suite.get("data"),
        record_key=options.get("recordKey"),
        limits=None if limits is None else {"max_input_bytes": limits["maxInputBytes"], "max_depth": limits["maxDepth"]},
        approval_ttl_ms=options.get("approvalTtlMs", 3_600_000),
        record_state=None if "recordStates" not in suite else (lambda call: record_state_of(states, call)),
        record_sink=sink,
        clock=clock,
    )
    outcomes: list[dict[str, Any]] = []
    decisions: list[Decision] = []
    # The call each decision decided (an amended call's: the original's tool and context, the amended arguments).
    calls: list[Any] = []
    with veto:
        for step in suite["steps"]:
            clock.advance(VECTOR_DATA["step_ms"])
            before = len(sink.records)
            outcome: dict[str, Any]
            ids = lambda: [d.id for d in decisions]  # noqa: E731
            if "call" in step:
                decision = veto.protect(step["call"])
                assert ULID.match(decision.id)
                assert all(r["decision_id"] == decision.id for r in sink.records[before:])
                assert all(r.get("metrics", {"timer_rego_query_eval_ns": 0})["timer_rego_query_eval_ns"] >= 0 for r in sink.records[before:])
                decisions.append(decision)
                calls.append(step["call"])
                outcome = {"decision": normalize_decision(decision)}
            elif "recordStates" in step:
                states.update(step["recordStates"])
                outcome = {}
            elif "amend" in step:
                try:
                    result = veto.amend(decisions[step["amend"]].id, step["reviewerId"], step["arguments"], step.get("note"))
                    decisions.append(result.decision)
                    original = calls[step["amend"]]
                    calls.append({"tool": original["tool"], "arguments": step["arguments"], "context": original["context"]})
                    outcome = {
                        "amended": f"<decision {ids().index(result.amended)}>",
                        "decision": normalize_decision(result.decision),
                        "approval": None if result.approval is None else answer_of(result.approval),
                    }
                except (ApprovalError, VetoOptionsError) as error:
                    outcome = {"error": error.code}
            elif "resume" in step:
                # As the integrations resume (Veto.resume_approval): an amendment followed and claimed once.
                try:
                    resumed = veto.resume_approval(decisions[step["resume"]].id, calls[step["resume"]], timeout_ms=0)
                    outcome = {
                        "ran": {
                            "decision": f"<decision {ids().index(resumed.decision_id)}>",
                            "amended_from": None if resumed.amended is None else f"<decision {ids().index(resumed.amended.from_id)}>",
                            "by": None if resumed.amended is None else resumed.amended.by,
                            "call": resumed.call,
                        }
                    }
                except VetoDeniedError as error:
                    outcome = {"error": error.code, "denied": f"<decision {ids().index(error.decision.id)}>"}
                except ApprovalError as error:
                    outcome = {"error": error.code}
            elif "execute" in step:
                try:
                    outcome = {"answer": answer_of(veto.wait_for_approval(decisions[step["execute"]].id, call=calls[step["execute"]], timeout_ms=0))}
                except ApprovalError as error:
                    outcome = {"error": error.code}
                    if error.amended is not None:
                        outcome["amended"] = {
                            "decision": f"<decision {ids().index(error.amended.decision.id)}>",
                            "action": error.amended.decision.action,
                            "call": error.amended.call,
                        }
            else:
                kind = "approve" if "approve" in step else "reject"
                target = decisions[step[kind]]
                answer_with = veto.approve if kind == "approve" else veto.reject
                try:
                    outcome = {"answer": answer_of(answer_with(target.id, step["reviewerId"], step.get("note")))}
                except ApprovalError as error:
                    outcome = {"error": error.code}
            written = [normalize_record(r, ids()) for r in sink.records[before:]]
            outcome["records"] = [
                {"record": r, "canonical": canonical_json(r), "hash": seal_record(r, 1, GENESIS_HASH).hash} for r in written
            ]
            outcomes.append(outcome)
    return outcomes


_cache: dict[str, list[dict[str, Any]]] = {}

STEPS = [(suite["name"], i) for suite in VECTOR_DATA["suites"] for i in range(len(suite["steps"]))]


@pytest.mark.parametrize(("suite_name", "index"), STEPS, ids=[f"{s}-{i}" for s, i in STEPS])
def test_step_matches_the_typescript_adapter(suite_name: str, index: int, bundle: Path) -> None:
    suite = next(s for s in VECTOR_DATA["suites"] if s["name"] == suite_name)
    if suite_name not in _cache:
        _cache[suite_name] = run_suite(suite, bundle)
    step = suite["steps"][index]
    got = _cache[suite_name][index]
    expected = step["expected"]
    # Every outcome: the decision, the answer or the refusal's code, an amendment's result, the amended call a wait is told of.
    assert {k: v for k, v in got.items() if k != "records"} == {k: v for k, v in expected.items() if k != "records"}, f"step {index}: {step!r}"
    assert len(got["records"]) == len(expected["records"])
    for mine, theirs in zip(got["records"], expected["records"]):
        assert mine["record"] == theirs["record"]
        assert mine["canonical"] == theirs["canonical"]
        assert mine["hash"] == theirs["hash"]


def test_the_vectors_reach_every_reason_code_and_both_digest_kinds(opa: Path) -> None:
    seen = set()
    digests = set()
    for suite in VECTOR_DATA["suites"]:
        for step in suite["steps"]:
            decision = step["expected"].get("decision")
            if decision is not None:
                seen.update(r["code"] for r in decision["reasons"])
            for record in step["expected"]["records"]:
                digest = record["record"].get("input_digest")
                if digest:
                    digests.add(digest.split(":")[0])
    # The codes come from the policy (reasons.rego through opa), never from a list here.
    policy = policy_reason_codes(opa)
    policy_codes = {code for code, entry in policy.items() if entry["source"] == "policy"}
    assert seen <= set(policy), f"answered codes reasons.rego does not define: {sorted(seen - set(policy))}"
    # Every action and verdict class the policy has is reached, and every policy code is
    # reached or (a code added in policy/ alone) decided by the policy's own cases on both engines.
    assert {(policy[c]["class"], policy[c]["action"]) for c in seen if c in policy_codes} == {
        (entry["class"], entry["action"]) for entry in policy.values() if entry["source"] == "policy"
    }
    assert policy_codes - seen <= rego_case_codes(opa), f"policy codes neither in the vectors nor in decision_test.rego: {sorted(policy_codes - seen - rego_case_codes(opa))}"
    assert digests == {"sha256", "hmac-sha256"}


def test_the_adapters_own_reason_messages_are_the_policys(opa: Path) -> None:
    """veto_crm's copies of the messages reasons.rego defines for the adapter's codes cannot drift from it."""
    from veto_crm.decision import ADAPTER_REASON_MESSAGES, OUTAGE_REASON_CODES

    policy = policy_reason_codes(opa)
    for code, message in ADAPTER_REASON_MESSAGES.items():
        assert code in policy, f"{code} is not in reasons.rego"
        assert policy[code]["message"] == message, code
    adapter_codes = {code for code, entry in policy.items() if entry["source"] == "adapter"}
    assert adapter_codes and adapter_codes <= set(ADAPTER_REASON_MESSAGES)
    # Each is an outage deny, which does not count towards escalation (docs/contract.md §7b).
    assert adapter_codes <= OUTAGE_REASON_CODES
