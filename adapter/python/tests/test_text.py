"""
One case-folding rule and one idea of blank (docs/contract.md §9) in the
Python adapter: fold_key and is_blank give what the policy gives (OPA's Go
evaluator on policy/, for every code point with a case or a blank property
and a seeded sample of the rest), the generated list of code points where the
foldings differ, and the record masker, the amount-field check and the
required texts follow them on the real bundle.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from veto_crm import create_veto
from veto_crm.input import amount_field_names, check_call, InputLimits
from veto_crm.text import fold_key, is_blank
from veto_crm.unicode_tables import BLANK_RANGES, FOLD_TABLE, LOWER_RUNS

from .conftest import FIXTURE_DATA, ROOT, FakeClock, MemorySink, codes, read_call, write_call

SEED = int(os.environ.get("VETO_TEXT_SEED", "20260419"))
FIXTURE = json.loads((ROOT / "test/fixtures/case-folding.json").read_text("utf-8"))["codePoints"]

PROBE = """package probe

import data.veto.crm

folded := [crm._fold_key(ch) | some ch in input.chars]

blank := [_blank(ch) | some ch in input.chars]

_blank(ch) if crm._blank(ch)

default _blank(_) := false
"""


def probed() -> list[int]:
    picked: set[int] = set(range(0x80))
    for first, last, delta, step in LOWER_RUNS:
        for cp in range(first, last + 1, step):
            picked.update((cp, cp + delta))
    for cp, to in FOLD_TABLE.items():
        picked.add(cp)
        picked.update(ord(ch) for ch in to)
    for entry in FIXTURE:
        picked.update(ord(ch) for ch in entry["simpleCaseFoldingClass"] + entry["char"])
    for first, last in BLANK_RANGES:
        picked.update((first - 1, first, first + 1, last - 1, last, last + 1))
    rng = random.Random(SEED)
    picked.update(rng.randrange(0x110000) for _ in range(3000))
    return sorted(cp for cp in picked if 0 <= cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF)


def test_fold_key_and_is_blank_are_the_policys(opa: Path) -> None:
    chars = [chr(cp) for cp in probed()]
    with tempfile.TemporaryDirectory() as work:
        (Path(work) / "probe.rego").write_text(PROBE, "utf-8")
        (Path(work) / "input.json").write_text(json.dumps({"chars": chars}), "utf-8")
        run = subprocess.run(
            [str(opa), "eval", "-f", "raw", "--ignore", "*_test.rego", "-d", str(ROOT / "policy"), "-d", f"{work}/probe.rego", "-i", f"{work}/input.json", "data.probe"],
            capture_output=True,
            text=True,
            check=True,
        )
    policy = json.loads(run.stdout)
    wrong_fold = [f"U+{ord(ch):04X}" for ch, key in zip(chars, policy["folded"]) if fold_key(ch) != key]
    wrong_blank = [f"U+{ord(ch):04X}" for ch, blank in zip(chars, policy["blank"]) if is_blank(ch) != blank]
    assert (wrong_fold, wrong_blank, len(policy["folded"])) == ([], [], len(chars)), f"seed {SEED}"


def test_every_listed_code_point_folds_as_the_generated_list_says() -> None:
    assert len(FIXTURE) > 200
    for entry in FIXTURE:
        key = fold_key(entry["char"])
        assert (entry["codePoint"], key) == (entry["codePoint"], entry["foldKey"])
        for other in [entry["goLower"], entry["wasmLower"], entry["toLowerCase"], *entry["simpleCaseFoldingClass"]]:
            assert (entry["codePoint"], fold_key(other)) == (entry["codePoint"], key)


def test_blank_is_every_listed_code_point_and_nothing_beside() -> None:
    for first, last in BLANK_RANGES:
        assert is_blank("".join(chr(cp) for cp in range(first, last + 1)))
        for cp in (first - 1, last + 1):
            if 0 <= cp <= 0x10FFFF and not any(a <= cp <= b for a, b in BLANK_RANGES):
                assert not is_blank(chr(cp)) and not is_blank(f"\u200b{chr(cp)}")
    assert is_blank("") and is_blank("\u200b \u00a0\ufeff") and not is_blank("\u200bok")


@pytest.fixture()
def data() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(FIXTURE_DATA.read_text("utf-8"))
    document["veto"]["config"]["sensitive_fields"] = {"*": ["tax_id"], "account": ["billing_email"]}
    return document


def test_folded_names_are_sensitive_and_masked(bundle: Path, data: dict[str, Any]) -> None:
    sink = MemorySink()
    veto = create_veto(bundle, data=data, record_sink=sink, clock=FakeClock())
    for call in [
        write_call({"changes": {"TAX_İD": "12-3456789"}}),
        write_call({"object": "ACCOUNT", "changes": {"BİLLİNG_EMAİL": "ana@acme.example"}}),
        read_call({"object": "account", "fields": ["name", "BİLLİNG_EMAİL"]}),
    ]:
        assert codes(veto.protect(call)) == ["sensitive_field"]
        record = json.dumps(sink.records[-1], ensure_ascii=False)
        assert "12-3456789" not in record and "ana@acme.example" not in record
    veto.close()


def test_folded_amount_fields_must_be_numbers(bundle: Path) -> None:
    names = amount_field_names(["amount", "discount_amount"])
    limits = InputLimits(max_input_bytes=65536, max_depth=12)
    for name in ["DİSCOUNT_AMOUNT", "discount_amount", "DISCOUNT_AMOUNT", "diſcount_amount"]:
        checked = check_call(write_call({"changes": {name: "9000"}}), limits, names)
        assert not checked.ok, name
    assert check_call(write_call({"changes": {"dıscount_amount": "9000"}}), limits, names).ok


def test_invisible_texts_are_blank(bundle: Path) -> None:
    # A fresh instance for each call: three denies in a row would escalate.
    for reason in ["\u200b", "\ufeff", "\u0000", "\u001c", "\u200b \u00a0\ufeff"]:
        veto = create_veto(bundle, record_sink=MemorySink(), clock=FakeClock())
        assert codes(veto.protect(write_call(context={"reason": reason}))) == ["missing_reason"]
        veto.close()
    for actor in ["\u200b", "\u2060\ufeff"]:
        veto = create_veto(bundle, record_sink=MemorySink(), clock=FakeClock())
        decision = veto.protect(write_call(context={"actorId": actor}))
        assert codes(decision) == ["invalid_input"] and "context.actorId" in decision.reason
        veto.close()
