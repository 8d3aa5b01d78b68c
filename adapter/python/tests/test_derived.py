"""
The values the policy derives from the data document alone (policy/veto/crm/derived.rego): the
evaluator stores them once per instance at data.veto.derived, and an instance without that step
derives them on every call; on seeded generated data documents (field lists by object, respelled
names, blocked destination lists and calls with destinations, lists of the wrong shape or left
out, a value of the document's own planted at
data.veto.derived) and calls, both give the same answer, whole. The stored value is the one
the TypeScript adapter stores for the same document (test/policy/derived.test.ts covers that side).
Failures print the seed: VETO_DERIVED_SEED=<seed> pytest tests/test_derived.py
"""

from __future__ import annotations

import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest

from veto_crm.bundle import DERIVED_ENTRYPOINT, load_bundle
from veto_crm.evaluator import PolicyEvaluator, _Instance
from veto_crm.jsontext import stringify

from .conftest import ACTOR, FIXTURE_DATA, ROOT

SEED = int(os.environ.get("VETO_DERIVED_SEED", "20261201"))
DOCUMENTS = int(os.environ.get("VETO_DERIVED_DOCUMENTS", "40"))
CALLS = 30

FIELD_NAMES = [
    "ssn", "SSN", " ssn", "\u017fsn", "\u017f\u017fn", "tax_id", "TAX_\u0130D", "stage", "Stage", "\u017ftage",
    "email", "amount", "Amount", "AMOUNT", "d\u0130scount_amount", "discount_amount", "refund_amount",
    "\u212aey", "key", "note", "name", "",
]
OBJECT_NAMES = ["*", "account", "Account", " ACCOUNT ", "opportunity", "OPPORTUN\u0130TY", "contact", "\u212aontact", "lead", " "]


def entry(rng: random.Random) -> Any:
    return rng.choice(FIELD_NAMES) if rng.random() < 0.9 else rng.choice([7, None, True, ["ssn"]])


def sensitive(rng: random.Random) -> Any:
    if rng.random() < 0.12:
        return rng.choice([None, "ssn", ["ssn"], {"*": "ssn"}, {"account": None}, {}])
    return {rng.choice(OBJECT_NAMES): [entry(rng) for _ in range(rng.randint(0, 4))] for _ in range(rng.randint(0, 5))}


def amounts(rng: random.Random) -> Any:
    if rng.random() < 0.15:
        return rng.choice([None, "amount", [], {}])
    return [entry(rng) for _ in range(rng.randint(0, 4))]


BLOCKED_ENTRIES = [
    "pastebin.com", "gmail.com", "Transfer.SH.", "https://Hooks.Example.com/x", "ops@files.example.net", "[::0:1]",
    "10.0.0.1:8080", "files.example.net", "", "  ", "mailto:a@x.example",
]
DESTINATIONS = [
    "https://pastebin.com/raw/1", "x@gmail.com", "a.files.example.net", "https://hooks.example.com/x", "https://sub.transfer.sh/x",
    "http://[::1]/x", "10.0.0.1", "mailto:a@x.example", "https://example.org/x", "https://evil.example\\@pastebin.com/",
]


def blocked(rng: random.Random) -> Any:
    if rng.random() < 0.15:
        return rng.choice([None, "pastebin.com", [], {"pastebin.com": True}])
    return [rng.choice(BLOCKED_ENTRIES) if rng.random() < 0.9 else rng.choice([7, None, ["gmail.com"]]) for _ in range(rng.randint(0, 4))]


def document(sensitive_fields: Any, amount_fields: Any, blocked_destinations: Any, derived: Any = None) -> dict[str, Any]:
    config = dict(json.loads(FIXTURE_DATA.read_text())["veto"]["config"])
    config.pop("sensitive_fields", None)
    config.pop("amount_fields", None)
    config.pop("blocked_destinations", None)
    if blocked_destinations is not None:
        config["blocked_destinations"] = blocked_destinations
    if sensitive_fields is not None:
        config["sensitive_fields"] = sensitive_fields
    if amount_fields is not None:
        config["amount_fields"] = amount_fields
    veto: dict[str, Any] = {"config": config}
    if derived is not None:
        veto["derived"] = derived
    return {"veto": veto}


def call(rng: random.Random) -> dict[str, Any]:
    tool = rng.choice(["crm.update", "crm.read", "crm.export", "crm.create"])
    args: dict[str, Any] = {"recordId": "r_1", "tenantId": "acme"}
    if rng.random() < 0.85:
        args["object"] = rng.choice(OBJECT_NAMES + ["opportunity", "contact", "Opportunity"])
    if tool != "crm.read":
        args["changes"] = {rng.choice(FIELD_NAMES): rng.choice([rng.randint(-400000, 400000), "x"]) for _ in range(rng.randint(0, 4))}
    if rng.random() < 0.5:
        args["fields"] = [rng.choice(FIELD_NAMES) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.3:
        args["amount"] = rng.randint(0, 300000)
    if rng.random() < 0.25:
        args["destination"] = rng.choice(DESTINATIONS)
    context = {"actorId": ACTOR, "tenantId": "acme", "environment": "production", "reason": "Customer asked"}
    return {"tool": tool, "arguments": args, "context": context, "history": {"recentDenies": 0}}


def derived_of(evaluator: PolicyEvaluator) -> Any:
    instance = evaluator._instance
    assert instance is not None
    return instance.evaluate(b"{}", instance.entrypoints[DERIVED_ENTRYPOINT])[0]["result"]


def held(evaluator: PolicyEvaluator) -> Any:
    """What the instance's data document holds at veto.derived (dumped from the module's memory)."""
    instance = evaluator._instance
    assert instance is not None
    return instance._dump(instance.data_addr)["veto"].get("derived")


def answer(evaluator: PolicyEvaluator, text: str) -> Any:
    evaluation = evaluator.evaluate_json(text)
    return evaluation.answer if evaluation.ok else evaluation.error


@pytest.fixture(scope="module")
def wasm(bundle: Path) -> bytes:
    return load_bundle(str(bundle)).wasm


def test_stored_and_per_call_derived_values_decide_alike(wasm: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(SEED)
    seen: set[str] = set()
    for _ in range(DOCUMENTS):
        s, a, b = sensitive(rng), amounts(rng), blocked(rng)
        with monkeypatch.context() as m:
            m.setattr(_Instance, "_store_derived", lambda self, exports: False)
            each_call = PolicyEvaluator.create(wasm, stringify(document(s, a, b)))
            own = derived_of(each_call)
            stale = derived_of(PolicyEvaluator.create(wasm, stringify(document(sensitive(rng), amounts(rng), blocked(rng)))))
            # Without the step, a value left from other names is not read either.
            stale_held = PolicyEvaluator.create(wasm, stringify(document(s, a, b, stale)))
        planted: Optional[Any] = rng.choice([
            stale,
            {**own, "sensitive_star": {}, "sensitive_objects": {}, "amount_plain": {"note": True}, "amount_fields_usable": False},
            {**own, "blocked_hosts": {"hooks.example.com": True}},
            "derived",
            None,
        ])
        doc = document(s, a, b, planted)
        stored = PolicyEvaluator.create(wasm, stringify(doc))
        assert stored._instance is not None and stored._instance.derived_stored
        assert held(stored) == own, f"seed {SEED}: {doc}"
        for _ in range(CALLS):
            text = stringify(call(rng))
            expected = answer(each_call, text)
            assert answer(stored, text) == expected, f"seed {SEED}: {doc}\n{text}"
            assert answer(stale_held, text) == expected, f"seed {SEED}: {doc}\n{text}"
            seen.update(r.code for r in expected.reasons)
    for code in ["sensitive_field", "production_amount", "low_value", "read_only", "blocked_destination"]:
        assert code in seen, f"seed {SEED}: no call reached {code}"


def test_the_stored_value_is_the_typescript_adapters(wasm: bytes, bundle: Path) -> None:
    """Both adapters store the same value for the same document (derived.rego's, through each one's steps)."""
    rng = random.Random(SEED ^ 0x5A5A)
    docs = [document(sensitive(rng), amounts(rng), blocked(rng), {"from": {}}) for _ in range(12)]
    script = """
import { readFileSync } from "node:fs";
import { loadPolicy } from "@open-policy-agent/opa-wasm";
import { loadBundle, storeDerived } from "./dist/bundle.js";
const wasm = (await loadBundle(process.argv[1])).wasm;
const out = [];
for (const doc of JSON.parse(readFileSync(0, "utf8"))) {
  const policy = await loadPolicy(wasm, { initial: 32, maximum: 4096 });
  policy.setData(doc);
  const stored = storeDerived(policy);
  const exports = policy.wasmInstance.exports;
  const at = exports.opa_json_dump(policy.dataAddr);
  const bytes = new Uint8Array(policy.mem.buffer);
  out.push([stored, JSON.parse(new TextDecoder().decode(bytes.subarray(at, bytes.indexOf(0, at)))).veto.derived]);
}
process.stdout.write(JSON.stringify(out));
"""
    run = subprocess.run(
        ["node", "--input-type=module", "-e", script, str(bundle)], input=json.dumps(docs), capture_output=True, text=True, cwd=ROOT, check=True
    )
    ts = json.loads(run.stdout)
    for doc, (ts_stored, ts_value) in zip(docs, ts):
        evaluator = PolicyEvaluator.create(wasm, stringify(doc))
        assert evaluator._instance is not None
        assert (evaluator._instance.derived_stored, held(evaluator)) == (ts_stored, ts_value), f"seed {SEED}: {doc}"
        assert ts_value == derived_of(evaluator)


def test_a_documents_own_derived_value_never_reaches_the_module() -> None:
    """veto.derived is the adapter's to fill (docs/contract.md §2): the loaded text is the document without it."""
    from veto_crm.policy_data import read_policy_data

    data = json.loads(FIXTURE_DATA.read_text())
    forged = {"from": {"sensitive_fields": data["veto"]["config"].get("sensitive_fields")}, "sensitive_star": {}, "planted": True}
    planted = {**data, "veto": {**data["veto"], "derived": forged}}
    assert read_policy_data(planted, "forged").json == read_policy_data(data, "plain").json
    assert "derived" not in json.loads(read_policy_data(planted, "forged").json)["veto"]
