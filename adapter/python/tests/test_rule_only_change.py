"""
A Rego-only change needs no Python either: the frozen_record rule and reason
code, added to a copy of the policy as the README's "Adding a rule" checklist
says (test/fixtures/rule-only-change/apply.mjs), built into a bundle by the
real opa, is answered, recorded and counted towards escalation by the
unchanged veto_crm, which reads codes and messages from the bundle.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from veto_crm import create_veto

from .conftest import ROOT, MemorySink, codes, policy_reason_codes, write_call

CODE = "frozen_record"
MESSAGE = "The record is frozen by its tenant"


@pytest.fixture(scope="module")
def changed_bundle(tmp_path_factory: pytest.TempPathFactory, opa: Path) -> Path:
    work = tmp_path_factory.mktemp("rule-only-change")
    clone = work / "clone"
    subprocess.run(["node", str(ROOT / "test/fixtures/rule-only-change/apply.mjs"), str(clone)], check=True, cwd=ROOT)
    subprocess.run([str(opa), "fmt", "--write", "policy"], check=True, cwd=clone, capture_output=True)
    subprocess.run(
        ["bash", str(ROOT / "scripts/build-bundles.sh"), str(work / "bundles")],
        check=True,
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "POLICY_ROOT": str(clone)},
    )
    assert policy_reason_codes(opa, clone / "policy")[CODE]["message"] == MESSAGE
    return work / "bundles/crm.tar.gz"


def test_the_unchanged_python_adapter_answers_records_and_counts_the_new_code(changed_bundle: Path) -> None:
    sink = MemorySink()
    with create_veto(changed_bundle, record_sink=sink) as veto:
        frozen = write_call({"recordId": "opp_frozen"})
        decision = veto.protect(frozen)
        assert (decision.action, codes(decision), decision.reason) == ("deny", [CODE], MESSAGE)
        assert sink.records[-1]["decision_id"] == decision.id
        assert sink.records[-1]["result"]["reasons"] == [{"code": CODE, "message": MESSAGE}]
        assert codes(veto.protect(write_call())) == ["low_value"]
        veto.protect(frozen)
        veto.protect(frozen)
        escalated = veto.protect(frozen)
        assert (escalated.action, escalated.escalated, codes(escalated)) == ("deny", True, ["repeated_denies"])


def test_this_repositorys_policy_does_not_have_the_code(opa: Path) -> None:
    assert CODE not in policy_reason_codes(opa)
