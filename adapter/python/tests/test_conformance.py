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

from veto_crm import ApprovalError, create_veto
from veto_crm.jsontext import parse
from veto_crm.log import GENESIS_HASH, canonical_json, seal_record

from .conftest import VECTORS, FakeClock, MemorySink, policy_reason_codes, rego_case_codes

VECTOR_DATA: dict[str, Any] = parse(VECTORS.read_text(encoding="utf-8"))
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


def normalize_record(record: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(record)
    out["decision_id"] = "<id>"
    out["bundles"] = {"crm": {"revision": "<revision>", "hash": "<hash>"}}
    if "metrics" in out:
        out["metrics"] = {"timer_rego_query_eval_ns": 0}
    return out


def run_suite(suite: dict[str, Any], bundle: Path) -> list[dict[str, Any]]:
    options = suite.get("options", {})
    limits = options.get("limits")
    clock = FakeClock(VECTOR_DATA["start_ms"])
    sink = MemorySink()
    veto = create_veto(
        bundle,
        data=suite.get("data"),
        record_key=options.get("recordKey"),
        limits=None if limits is None else {"max_input_bytes": limits["maxInputBytes"], "max_depth": limits["maxDepth"]},
        record_sink=sink,
        clock=clock,
    )
    outcomes: list[dict[str, Any]] = []
    decisions = []
    with veto:
        for step in suite["steps"]:
            clock.advance(VECTOR_DATA["step_ms"])
            before = len(sink.records)
            outcome: dict[str, Any]
            if "call" in step:
                decision = veto.protect(step["call"])
                assert ULID.match(decision.id)
                assert all(r["decision_id"] == decision.id for r in sink.records[before:])
                assert all(r.get("metrics", {"timer_rego_query_eval_ns": 0})["timer_rego_query_eval_ns"] >= 0 for r in sink.records[before:])
                decisions.append(decision)
                json = decision.to_json()
                json["id"] = "<id>"
                json["bundle"] = {"revision": "<revision>", "hash": "<hash>"}
                outcome = {"decision": json}
            else:
                kind = "approve" if "approve" in step else "reject"
                target = decisions[step[kind]]
                answer_with = veto.approve if kind == "approve" else veto.reject
                try:
                    answer = answer_with(target.id, step["reviewerId"], step.get("note"))
                    outcome = {"answer": {"status": answer.status, "reviewerId": answer.reviewer_id, "answeredAt": answer.answered_at, "note": answer.note}}
                except ApprovalError as error:
                    outcome = {"error": error.code}
            written = [normalize_record(r) for r in sink.records[before:]]
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
    if "decision" in expected:
        assert got["decision"] == expected["decision"], f"step {index}: {step.get('call')!r}"
    else:
        assert got.get("answer") == expected.get("answer") and got.get("error") == expected.get("error")
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
