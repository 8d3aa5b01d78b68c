"""
bench/wasm_fuel.py, the wasm_fuel diagnostic of `make bench`: the WebAssembly
instructions a bundle's module executes per decision, counted by wasmtime's
fuel. The count is what makes it worth having beside the timed cases, so it
must be the same on every run; and the script compares modules only on the
same verdicts, so a module that decides otherwise must stop it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import ROOT

SCRIPT = ROOT / "bench/wasm_fuel.py"
SHIPPED = ROOT / "bundles/crm.tar.gz"
BASELINE = ROOT / "bench/baseline/crm.tar.gz"


@pytest.fixture(scope="module")
def mix(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The benchmark's mix (300 calls of it) as policy inputs, and the shipped bundle's data document."""
    work = tmp_path_factory.mktemp("fuel-mix")
    script = """
import { writeFileSync } from "node:fs";
import { loadBundle } from "./dist/bundle.js";
import { SEED, buildMix, policyInput } from "./bench/mix.mjs";
const loaded = await loadBundle("bundles/crm.tar.gz");
const mix = buildMix(loaded.data, { seed: SEED, count: 300 });
writeFileSync(process.argv[1], JSON.stringify(mix.map((e) => ({ kind: e.kind, input: policyInput(e) }))));
writeFileSync(process.argv[2], JSON.stringify(loaded.data));
"""
    subprocess.run(["node", "--input-type=module", "-e", script, str(work / "mix.json"), str(work / "data.json")], check=True, cwd=ROOT)
    return work / "mix.json", work / "data.json"


def fuel(mix: tuple[Path, Path], *bundles: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), str(mix[0]), str(mix[1]), *map(str, bundles)], capture_output=True, text=True, cwd=ROOT)


def test_counts_are_the_same_on_every_run_and_verdicts_agree(mix: tuple[Path, Path]) -> None:
    runs = [fuel(mix, BASELINE, SHIPPED) for _ in range(2)]
    for run in runs:
        assert run.returncode == 0, run.stderr
    first: dict[str, Any] = json.loads(runs[0].stdout)
    assert runs[1].stdout == runs[0].stdout
    assert first["evaluations"] == 300 and first["same_verdicts"] is True
    shipped, baseline = first["bundles"][str(SHIPPED)], first["bundles"][str(BASELINE)]
    assert shipped["verdicts"] == baseline["verdicts"]
    assert sum(shipped["verdicts"].values()) == 300
    # Each mix kind is counted, and every count is a positive whole number of instructions.
    assert set(shipped["fuel_per_eval_by_kind"]) == {"allow_read", "allow_write", "approval", "deny", "invalid"}
    assert all(isinstance(v, int) and v > 0 for v in shipped["fuel_per_eval_by_kind"].values())
    # The shipped policy is the cheaper one (bench/baseline/README.md); by how much is make bench's to say.
    assert shipped["fuel_per_eval"] < baseline["fuel_per_eval"]


def test_a_module_that_decides_otherwise_stops_the_comparison(mix: tuple[Path, Path], tmp_path: Path, opa: Path) -> None:
    # A copy of the policy in which reads are denied as unknown tools: built by the real opa, as the bundles are.
    clone = tmp_path / "clone"
    shutil.copytree(ROOT / "policy", clone / "policy")
    tool = clone / "policy/veto/crm/tool.rego"
    text = tool.read_text(encoding="utf-8")
    assert '_allow contains "read_only" if _kind == "read"' in text
    tool.write_text(text.replace('_allow contains "read_only" if _kind == "read"', '_deny contains "unknown_tool" if _kind == "read"'), encoding="utf-8")
    subprocess.run(
        ["bash", str(ROOT / "scripts/build-bundles.sh"), str(tmp_path / "bundles")],
        check=True,
        cwd=ROOT,
        capture_output=True,
        env={**os.environ, "POLICY_ROOT": str(clone), "OPA": str(opa)},
    )
    run = fuel(mix, SHIPPED, tmp_path / "bundles/crm.tar.gz")
    assert run.returncode != 0
    assert "verdicts differ from" in run.stderr
    assert run.stdout == ""
