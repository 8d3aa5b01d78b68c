"""
Shared test parts. Everything here is real: the test bundle built by
``make test-bundles`` from policy/ and test/fixtures/data.json, the real
``opa`` binary, the TypeScript CLI built by ``npm run build``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

ROOT = Path(__file__).resolve().parents[3]
TEST_BUNDLE = ROOT / ".build/test-bundles/crm.tar.gz"
SHIPPED_BUNDLE = ROOT / "bundles/crm.tar.gz"
FIXTURE_DATA = ROOT / "test/fixtures/data.json"
KEYS = ROOT / "test/fixtures/keys"
OPA = ROOT / ".tools/bin/opa"
TS_CLI = ROOT / "dist/cli.js"
VECTORS = ROOT / "test/conformance/vectors.json"

ACTOR = "agent:sales-assistant"
APPROVER = "user:crm-owner@acme.example"
OTHER_APPROVER = "user:revops-lead@acme.example"
START_MS = 1772355600000  # 2026-03-01T09:00:00.000Z


def require(path: Path, how: str) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: run {how}")
    return path


@pytest.fixture(scope="session")
def bundle() -> Path:
    return require(TEST_BUNDLE, "make test-bundles")


@pytest.fixture(scope="session")
def ts_cli() -> Path:
    return require(TS_CLI, "npm run build")


@pytest.fixture(scope="session")
def opa() -> Path:
    return require(OPA, "make tools")


class MemorySink:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.failing: Optional[Exception] = None

    def write(self, record: dict[str, Any]) -> None:
        if self.failing is not None:
            raise self.failing
        import copy

        self.records.append(copy.deepcopy(record))


class FakeClock:
    def __init__(self, start: float = START_MS) -> None:
        self.now_ms = start

    def __call__(self) -> float:
        return self.now_ms

    def advance(self, ms: float) -> None:
        self.now_ms += ms


def write_call(args: Optional[dict[str, Any]] = None, context: Optional[dict[str, Any]] = None, tool: str = "crm.update") -> dict[str, Any]:
    """A production write for acme that the test data allows (low value)."""
    return {
        "tool": tool,
        "arguments": {"object": "opportunity", "recordId": "opp_123", "tenantId": "acme", "changes": {"close_date": "2026-12-01"}, **(args or {})},
        "context": {"actorId": ACTOR, "tenantId": "acme", "environment": "production", "reason": "Customer asked to move the close date", **(context or {})},
    }


def read_call(args: Optional[dict[str, Any]] = None, context: Optional[dict[str, Any]] = None, tool: str = "crm.read") -> dict[str, Any]:
    return {
        "tool": tool,
        "arguments": {"object": "contact", "recordId": "c_1", "fields": ["name", "company"], **(args or {})},
        "context": {"actorId": ACTOR, "tenantId": "acme", "environment": "production", **(context or {})},
    }


def codes(decision: Any) -> list[str]:
    return [r.code for r in decision.reasons]


def run_python_cli(args: list[str], stdin: str = "", env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "veto_crm", *args], input=stdin, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False
    )


def run_ts_cli(args: list[str], stdin: str = "", env: Optional[dict[str, str]] = None) -> subprocess.CompletedProcess[str]:
    require(TS_CLI, "npm run build")
    return subprocess.run(["node", str(TS_CLI), *args], input=stdin, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)


def _opa_eval(opa: Path, policy_dir: Path, query: str) -> Any:
    run = subprocess.run([str(opa), "eval", "-d", str(policy_dir), "-f", "raw", query], capture_output=True, text=True, check=False)
    if run.returncode != 0:
        pytest.fail(f"opa eval {query} on {policy_dir} failed: {run.stderr}")
    import json

    return json.loads(run.stdout)


def policy_reason_codes(opa: Path, policy_dir: Path = ROOT / "policy") -> dict[str, dict[str, Any]]:
    """data.veto.crm.reason_codes (policy/veto/crm/reasons.rego) through the real opa: no test keeps its own list."""
    codes: dict[str, dict[str, Any]] = _opa_eval(opa, policy_dir, "data.veto.crm.reason_codes")
    return codes


def rego_case_codes(opa: Path, policy_dir: Path = ROOT / "policy") -> set[str]:
    """The codes policy/veto/crm/decision_test.rego decides one call for each, on OPA and on WASM (make test-rego)."""
    query = (
        'array.concat(array.concat(array.concat(["invalid_input", "repeated_denies"], [k | some k, _ in data.veto.crm_test.deny_cases]),'
        " [k | some k, _ in data.veto.crm_test.approval_cases]), [k | some k, _ in data.veto.crm_test.allow_cases])"
    )
    return set(_opa_eval(opa, policy_dir, query))

