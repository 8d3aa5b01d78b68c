"""
The wasm_fuel diagnostic of `make bench` (bench/run.mjs): how many WebAssembly
instructions each bundle's module executes per decision on the mix, counted by
wasmtime's fuel (one unit per instruction, a few control instructions free).
Unlike a time, the count is the same on every run and every machine, so it
shows what a policy change costs without the noise of a shared machine: the
same figure twice, or a change of one rule, is a change of the count.

Each input is evaluated once per bundle by the Python adapter's evaluator (the
same module, data document and derived values as the adapters use), in the
order of the mix; the counts are per evaluation of opa_eval (writing the
input's JSON into the module, evaluating, writing the answer), not the SDK's
work around it. Every bundle must give every input the same verdict (action,
escalation and reason codes), or the script fails.

    python bench/wasm_fuel.py MIX.json DATA.json BUNDLE [BUNDLE...]

MIX.json: a list of {"kind": ..., "input": ...} (bench/mix.mjs policyInput).
Prints one JSON object: per bundle, fuel per evaluation (mean, and mean by
mix kind), and the verdicts.
"""

from __future__ import annotations

import json
import sys
import tarfile
from typing import Any
from unittest import mock

import wasmtime

from veto_crm import evaluator
from veto_crm.jsontext import stringify

#: More than any evaluation of the mix needs; what is left after each one says what it used.
FUEL = 10**15


class _FuelStore(wasmtime.Store):
    """A store that starts with FUEL (the engine counts; a store with none traps at its first instruction)."""

    def __init__(self, engine: wasmtime.Engine) -> None:
        super().__init__(engine)
        self.set_fuel(FUEL)


def _wasm(path: str) -> bytes:
    with tarfile.open(path) as bundle:
        member = bundle.extractfile("/policy.wasm")
        if member is None:
            raise SystemExit(f"{path}: no /policy.wasm")
        return member.read()


def main() -> None:
    mix_path, data_path, bundles = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(mix_path, encoding="utf-8") as handle:
        mix: list[dict[str, Any]] = json.load(handle)
    with open(data_path, encoding="utf-8") as handle:
        data = handle.read()
    texts = [stringify(entry["input"]) for entry in mix]
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    out: dict[str, Any] = {}
    first_verdicts: list[str] | None = None
    for path in bundles:
        with mock.patch.object(evaluator.PolicyEvaluator, "_engine", engine), mock.patch.object(wasmtime, "Store", _FuelStore):
            policy = evaluator.PolicyEvaluator.create(_wasm(path), data)
        # The live instance: its store holds the fuel.
        instance = policy._instance
        assert instance is not None
        store = instance.store
        by_kind: dict[str, list[int]] = {}
        verdicts: list[str] = []
        counts: dict[str, int] = {}
        for entry, text in zip(mix, texts):
            before = store.get_fuel()
            evaluation = policy.evaluate_json(text)
            used = before - store.get_fuel()
            if not evaluation.ok or evaluation.answer is None:
                raise SystemExit(f"{path}: evaluation failed: {evaluation.error}")
            answer = evaluation.answer
            verdicts.append(f"{answer.action}:{answer.escalated}:{','.join(r.code for r in answer.reasons)}")
            counts[answer.action] = counts.get(answer.action, 0) + 1
            by_kind.setdefault(entry["kind"], []).append(used)
        if first_verdicts is None:
            first_verdicts = verdicts
        elif verdicts != first_verdicts:
            differ = sum(1 for a, b in zip(verdicts, first_verdicts) if a != b)
            raise SystemExit(f"{path}: {differ} of {len(verdicts)} verdicts differ from {bundles[0]}'s")
        total = sum(sum(v) for v in by_kind.values())
        out[path] = {
            "fuel_per_eval": round(total / len(mix)),
            "fuel_per_eval_by_kind": {kind: round(sum(v) / len(v)) for kind, v in sorted(by_kind.items())},
            "verdicts": counts,
        }
    print(json.dumps({"evaluations": len(mix), "bundles": out, "same_verdicts": True}))


if __name__ == "__main__":
    main()
