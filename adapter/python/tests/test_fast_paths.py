"""
The per-call fast paths of protect() against plain reference versions, on
seeded generated values: the snapshot's inline scalar copy, the day-cached
timestamp, the paired ULID time, the memoised sensitive-key test, the call
schema's inline leaf checks and the evaluator's answers read once per text.
Each must answer exactly what the plain version answers, refusals included.
Failures print the seed: VETO_FAST_SEED=<seed> pytest tests/test_fast_paths.py
"""

from __future__ import annotations

import math
import os
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Union

import jsonschema
import pytest

from veto_crm import records
from veto_crm.bundle import load_bundle
from veto_crm.call_schema import CALL_SCHEMA, first_issue
from veto_crm.decision import iso_timestamp
from veto_crm.evaluator import PolicyEvaluator
from veto_crm.ids import ALPHABET, encode_time
from veto_crm.input import FORBIDDEN_KEYS, InputLimits, RefusedCall, check_call
from veto_crm.jsontext import MAX_SAFE_INTEGER, canonical, js_key_order, stringify
from veto_crm.text import fold_key

SEED = int(os.environ.get("VETO_FAST_SEED", str(int(time.time()))))
BUNDLE = Path(__file__).resolve().parents[3] / "bundles" / "crm.tar.gz"


def reference_copy(raw: Any, limits: InputLimits) -> Union[str, tuple[Any, str]]:
    """The snapshot rule written plainly (one recursive step per value): the copy and its canonical JSON, or the refusal's message."""
    size = 0

    class Refused(Exception):
        pass

    def where(path: str) -> str:
        return "the call" if path == "" else path

    def units(text: str) -> int:
        return len(text.encode("utf-16-le", "surrogatepass")) // 2

    def lone(text: str) -> bool:
        return any(0xD800 <= ord(c) <= 0xDFFF for c in text)

    def grow(n: int) -> None:
        nonlocal size
        size += n
        if size > limits.max_input_bytes:
            raise Refused(f"the call is larger than {limits.max_input_bytes} bytes")

    def copy(value: Any, depth: int, path: str) -> Any:
        if isinstance(value, str):
            grow(units(value) + 2)
            if lone(value):
                raise Refused(f"{where(path)} is not well-formed Unicode (it holds a lone surrogate, which JSON text in UTF-8 cannot carry)")
            return value
        if isinstance(value, bool) or value is None:
            grow(4)
            return value
        if isinstance(value, (int, float)):
            number: Any = value
            if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
                try:
                    number = float(value)
                except OverflowError:
                    number = math.inf
            if isinstance(number, float) and not math.isfinite(number):
                raise Refused(f"{where(path)} is not a finite number")
            grow(1)
            return number
        if not isinstance(value, (dict, list, tuple)):
            raise Refused(f"{where(path)} is a {type(value).__name__}, which JSON cannot carry")
        if depth >= limits.max_depth:
            raise Refused(f"{where(path)} nests deeper than {limits.max_depth} levels")
        grow(2)
        if isinstance(value, (list, tuple)):
            return [copy(item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value)]
        out = {}
        for key in js_key_order(value):
            if not isinstance(key, str):
                raise Refused(f"a key of {where(path)} is not a string ({key!r})")
            child = key if path == "" else f"{path}.{key}"
            if key in FORBIDDEN_KEYS:
                raise Refused(f'{child}: the key "{key}" is not allowed')
            if lone(key):
                raise Refused(f"a key of {where(path)} is not well-formed Unicode (it holds a lone surrogate, which JSON text in UTF-8 cannot carry)")
            grow(units(key) + 3)
            out[key] = copy(value[key], depth + 1, child)
        return out

    try:
        value = copy(raw, 0, "")
    except Refused as refused:
        return str(refused)
    except Exception as error:  # what js_key_order makes of a key that is not a string
        return f"the call cannot be read: {error}"
    text = canonical(value)
    exact = len(text.encode("utf-8"))
    if exact > limits.max_input_bytes:
        return f"the call is larger than {limits.max_input_bytes} bytes ({exact})"
    return value, text


def _text(rng: random.Random) -> str:
    pool = ["a", "Z", "0", " ", "é", "İ", "ß", "😀", "\ud800", "\x00", "~", "/", '"']
    if rng.random() < 0.7:
        return "".join(rng.choice("abcdefghij_0123456789") for _ in range(rng.randrange(0, 12)))
    return "".join(rng.choice(pool) for _ in range(rng.randrange(0, 6)))


def _key(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.02:
        return rng.choice(sorted(FORBIDDEN_KEYS))
    if r < 0.04:
        return rng.randrange(5)
    if r < 0.1:
        return str(rng.randrange(12))
    return _text(rng)


def _value(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if depth < 5 and r < 0.15:
        return {_key(rng): _value(rng, depth + 1) for _ in range(rng.randrange(0, 5))}
    if depth < 5 and r < 0.25:
        items = [_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
        return tuple(items) if rng.random() < 0.2 else items
    choices: list[Any] = [
        _text(rng),
        rng.randrange(-1000, 1000),
        rng.choice([MAX_SAFE_INTEGER, MAX_SAFE_INTEGER + 1, -(2**60), 10**400]),
        rng.choice([True, False, None]),
        rng.choice([0.5, 1e16, 1e-5, 2.0, -0.0, math.nan, math.inf, 123.456]),
        rng.choice([b"x", object(), {1, 2}]),
    ]
    weights = [40, 25, 3, 15, 10, 2]
    return rng.choices(choices, weights)[0]


def _call(rng: random.Random) -> Any:
    call: dict[Any, Any] = {
        "tool": rng.choice(["crm.update", "crm.search", " ", ""]),
        "arguments": {k: _value(rng, 2) for k in rng.sample(["object", "recordId", "tenantId", "changes", "fields", "amount", "x"], 4)},
        "context": {"actorId": "agent:a", "tenantId": "acme", "environment": "production"},
    }
    if rng.random() < 0.5:
        call[_key(rng)] = _value(rng, 1)
    return call if rng.random() < 0.95 else _value(rng, 0)


def test_snapshot_matches_the_plain_rule() -> None:
    rng = random.Random(SEED)
    for n in range(4000):
        raw = _call(rng)
        limits = InputLimits(max_input_bytes=rng.choice([60, 200, 64 * 1024]), max_depth=rng.choice([3, 12]))
        checked = check_call(raw, limits, frozenset({"amount"}))
        expected = reference_copy(raw, limits)
        if isinstance(expected, str):
            assert isinstance(checked, RefusedCall) and checked.partial is None, f"seed {SEED} case {n}"
            assert checked.message == expected, f"seed {SEED} case {n}"
        else:
            copy, text = expected
            got = checked.call if checked.ok else checked.partial  # type: ignore[union-attr]
            assert checked.json == text, f"seed {SEED} case {n}"
            assert stringify(got) == stringify(copy) and repr(got) == repr(copy), f"seed {SEED} case {n}"


def test_schema_check_matches_jsonschema() -> None:
    rng = random.Random(SEED + 1)
    validator = jsonschema.Draft202012Validator(CALL_SCHEMA)
    for n in range(3000):
        checked = check_call(_call(rng), InputLimits(), frozenset())
        value = checked.call if checked.ok else checked.partial  # type: ignore[union-attr]
        if value is None:
            continue
        issue = first_issue(value)
        # x-veto-not-blank is the one rule jsonschema does not know: a blank required text is refused by it alone.
        if validator.is_valid(value):
            assert issue is None or issue.message == "must not be blank", f"seed {SEED + 1} case {n}: {issue}"
        else:
            assert issue is not None, f"seed {SEED + 1} case {n}"


def test_iso_timestamp_matches_datetime() -> None:
    rng = random.Random(SEED + 2)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    times: list[float] = [0, 999, -1, -1000, 1735689600000, 253402300799999, -30610224000000]
    times += [rng.uniform(-3.0e13, 2.5e14) for _ in range(20000)]
    start = rng.randrange(0, 2 * 10**12)
    times += [start + i * rng.randrange(1, 90_000) for i in range(5000)]
    for ms in times:
        whole = int(ms // 1)
        expected = (epoch + timedelta(milliseconds=whole)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert iso_timestamp(ms) == expected, f"seed {SEED + 2}: {ms}"
    for bad in (253402300800000, -62135596800001, math.inf, math.nan):
        with pytest.raises((ValueError, OverflowError, OSError)):
            iso_timestamp(bad)


def test_ulid_time_is_base32_of_the_milliseconds() -> None:
    rng = random.Random(SEED + 3)
    for ms in [0, 1, 2**48 - 1] + [rng.randrange(2**48) for _ in range(20000)]:
        text = encode_time(ms)
        assert len(text) == 10 and sum(ALPHABET.index(c) << (5 * (9 - i)) for i, c in enumerate(text)) == ms, f"seed {SEED + 3}: {ms}"
    for bad in (-1, 2**48, 1.5):
        with pytest.raises(ValueError):
            encode_time(bad)  # type: ignore[arg-type]


def test_masking_memo_answers_as_folding_does() -> None:
    rng = random.Random(SEED + 4)
    sensitive = frozenset({"ssn", "tax_id", "email", "straße"})
    names = ["SSN", "Tax_ID", "TAX_İD", "email", "Email", "STRASSE", "Straße", "note", "amount", "tool", "arguments"]
    masker = records.RecordMasker()
    # More distinct keys than the memo keeps, so it is emptied and refilled on the way.
    for n in range(records._MEMO_KEYS * 2):
        key = rng.choice(names) if rng.random() < 0.5 else f"k{n}"
        value = {"tool": "t", "arguments": {"changes": {key: "v"}, key: 1}, "context": {"actorId": "a"}, key: [{key: 2}]}
        masked_value, masked = masker.mask_input(value, sensitive)
        expected = fold_key(key) in sensitive and key not in ("tool", "arguments", "context")
        # changes, arguments and the top level; the list under a masked top-level key is not walked.
        want = 3 if expected else 0
        assert len(masked) == want, f"seed {SEED + 4}: {key} {masked}"
        assert (masked_value is value) == (not expected)


def test_answers_read_once_equal_answers_read_fresh() -> None:
    rng = random.Random(SEED + 5)
    bundle = load_bundle(str(BUNDLE))
    data = canonical(bundle.data)
    shared = PolicyEvaluator.create(bundle.wasm, data)
    for n in range(40):
        raw = _call(rng)
        checked = check_call(raw, InputLimits(), frozenset())
        if not checked.ok:
            continue
        assert checked.json is not None
        recent = rng.randrange(0, 6)
        first = shared.evaluate_call(checked.json, recent)
        again = shared.evaluate_call(checked.json, recent)
        fresh = PolicyEvaluator.create(bundle.wasm, data).evaluate_call(checked.json, recent)
        assert first.ok and again.ok and fresh.ok, f"seed {SEED + 5} case {n}"
        assert first.answer == again.answer == fresh.answer, f"seed {SEED + 5} case {n}"
