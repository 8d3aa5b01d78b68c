"""
The per-call fast paths of protect() against plain reference versions, on
seeded generated values: the snapshot's inline scalar copy and the keys it
collects, the day-cached timestamp, the paired ULID time and pooled
randomness, the memoised sensitive-key test and masking skipped by the keys or the text,
the call schema's generated check, orjson's copy of a plain call, the evaluator's answers read once per
text, opa_eval called directly against wasmtime's public call, and the
frozen dataclasses' direct __init__.
Each must answer exactly what the plain version answers, refusals included.
Failures print the seed: VETO_FAST_SEED=<seed> pytest tests/test_fast_paths.py
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import math
import os
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Union

import jsonschema
import pytest

from veto_crm import evaluator as evaluator_module
from veto_crm import call_schema as call_schema_module
from veto_crm import input as input_module
from veto_crm import records
from veto_crm.bundle import load_bundle
from veto_crm.call_schema import CALL_SCHEMA, first_issue
from veto_crm.decision import Decision, PolicyAnswer, Reason, iso_timestamp
from veto_crm.evaluator import Evaluation, PolicyEvaluator
from veto_crm.frozen import fast_init
from veto_crm.ids import ALPHABET, encode_time, monotonic_ulid
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
            return str.__str__(value)
        if isinstance(value, bool) or value is None:
            grow(4)
            return value
        if isinstance(value, (int, float)):
            number: Any = int.__int__(value) if isinstance(value, int) else float.__float__(value)
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
        for given in js_key_order(value):
            if not isinstance(given, str):
                raise Refused(f"a key of {where(path)} is not a string ({given!r})")
            # A str subclass is the plain str it holds, as a value is.
            key = str.__str__(given)
            child = key if path == "" else f"{path}.{key}"
            if key in FORBIDDEN_KEYS:
                raise Refused(f'{child}: the key "{key}" is not allowed')
            if lone(key):
                raise Refused(f"a key of {where(path)} is not well-formed Unicode (it holds a lone surrogate, which JSON text in UTF-8 cannot carry)")
            grow(units(key) + 3)
            out[key] = copy(value[given], depth + 1, child)
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
        rng.choice(_ODD_VALUES)(),
    ]
    weights = [40, 25, 3, 15, 10, 2, 4]
    return rng.choices(choices, weights)[0]


class _Number(enum.IntEnum):
    TWO = 2


class _Word(str, enum.Enum):
    WORD = "word"


class _Text(str):
    pass


class _Float(float, enum.Enum):
    HALF = 0.5


class _Hostile(enum.Enum):
    """An enum member whose comparison raises: orjson writes its value; what JSON cannot carry is refused, never asked."""

    A = "a"

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __hash__ = enum.Enum.__hash__


#: Values a Python caller may pass that JSON holds as something plainer (or not at all).
_ODD_VALUES: list[Any] = [
    lambda: _Number.TWO,
    lambda: _Word.WORD,
    lambda: _Text("text"),
    lambda: _Float.HALF,
    lambda: collections.OrderedDict([("a", 1), ("b", [1])]),
    lambda: uuid.UUID(int=7),
    lambda: datetime(2026, 1, 1, tzinfo=timezone.utc),
    lambda: {_Text("k"): 1},
    lambda: {"1": "a", "b": 2},
    lambda: {"a": {"b": {"c": {"d": {"e": {"f": [[[[]]]]}}}}}},
    lambda: {"text": "say \"a\": {1.5, [2.0]}, \"__proto__\":"},
    lambda: 2**53,
    lambda: "😀",
    lambda: {"😀": 1, "\ue000": 2},
    lambda: _Hostile.A,
]


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
            # Collected by the snapshot; not by the plain path, whose masking reads the text instead.
            assert checked.keys is None or checked.keys == _all_keys(copy), f"seed {SEED} case {n}"
            assert all(type(v) in (dict, list, str, int, float, bool, type(None)) for v in _all_values(got)), f"seed {SEED} case {n}"


def test_plain_snapshot_answers_as_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """The orjson path (input._plain_snapshot) against snapshot() alone: the same refusal or the same copy, key order and text."""
    rng = random.Random(SEED + 10)
    taken = 0
    for n in range(4000):
        raw = _call(rng)
        limits = InputLimits(max_input_bytes=rng.choice([60, 200, 64 * 1024]), max_depth=rng.choice([3, 5, 12]))
        if input_module._plain_snapshot(raw, limits) is not None:
            taken += 1
        fast = check_call(raw, limits, frozenset({"amount"}))
        with monkeypatch.context() as patched:
            patched.setattr(input_module, "_orjson", None)
            slow = check_call(raw, limits, frozenset({"amount"}))
        assert type(fast) is type(slow) and fast.json == slow.json, f"seed {SEED + 10} case {n}"
        if isinstance(slow, RefusedCall):
            assert isinstance(fast, RefusedCall) and fast.message == slow.message, f"seed {SEED + 10} case {n}"
        got, want = (fast.call, slow.call) if fast.ok else (fast.partial, slow.partial)  # type: ignore[union-attr]
        assert repr(got) == repr(want) and stringify(got) == stringify(want), f"seed {SEED + 10} case {n}"
        assert got is not raw or not isinstance(raw, (dict, list, tuple)), f"seed {SEED + 10} case {n}"
    # The generator makes mostly plain calls: the orjson path is what is being held to snapshot().
    assert taken > 200, f"seed {SEED + 10}: only {taken} plain calls"


def _all_values(value: Any) -> list[Any]:
    found: list[Any] = []
    stack = [value]
    while stack:
        item = stack.pop()
        found.append(item)
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _all_keys(value: Any) -> frozenset[str]:
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.update(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return frozenset(found)


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


def test_generated_schema_check_answers_as_the_walk() -> None:
    """call_schema._generate against _issues (the walk that reports zod's issue), on the call schema and on schemas using every keyword it knows."""
    rng = random.Random(SEED + 11)
    schemas: list[dict[str, Any]] = [
        dict(CALL_SCHEMA),
        {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": {"type": "string", "x-veto-not-blank": "blank"}},
        {"type": "array", "items": {"type": "object", "required": ["x"], "additionalProperties": False, "properties": {"x": {}, "y": {"type": "null"}}}},
        {"properties": {"n": {"type": "number"}, "b": {"type": "boolean"}, "l": {"type": "array", "items": {}}}},
        {"type": "string", "x-veto-not-blank": "blank"},
    ]
    for schema in schemas:
        valid = call_schema_module._generate(schema)
        for n in range(1500):
            value = _value(rng, 0) if rng.random() < 0.5 else _call(rng)
            if rng.random() < 0.3:
                value = {rng.choice(["a", "x", "y", "n", "b", "l", "z"]): _value(rng, 3) for _ in range(rng.randrange(0, 4))}
                value = [value] if rng.random() < 0.3 else value
            try:
                # What the schema is asked about: a snapshot (JSON values, string keys).
                value = input_module.snapshot(value, InputLimits())[0]
            except Exception:
                continue
            expected = next(call_schema_module._issues(schema, value, ()), None) is None
            assert valid(value) == expected, f"seed {SEED + 11} schema {schemas.index(schema)} case {n}: {value!r}"


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


def test_masking_skipped_by_keys_masks_as_the_walk_does() -> None:
    rng = random.Random(SEED + 6)
    sensitive = frozenset({"ssn", "tax_id", "email", "straße", "amount"})
    masker = records.RecordMasker()
    # "TAX_İD" folds to "tax_id" (an ASCII name) from a non-ASCII key: the text cannot rule it out.
    names = ["SSN", "Email", "STRASSE", "Straße", "TAX_İD", "tax_ID", "amount", "note", "tool", "x", "k"]
    for n in range(3000):
        raw = _call(rng)
        # Sensitive names at any depth, the contract's own fields among them (never masked themselves).
        if isinstance(raw, dict) and isinstance(raw.get("arguments"), dict):
            raw["arguments"][rng.choice(names)] = {rng.choice(names): [{rng.choice(names): 1}]}
        checked = check_call(raw, InputLimits(), frozenset())
        value = checked.call if checked.ok else checked.partial  # type: ignore[union-attr]
        if value is None:
            continue
        plain = masker.mask_input(value, sensitive)
        assert masker.mask_input(value, sensitive, checked.keys, checked.json) == plain, f"seed {SEED + 6} case {n}"
        assert masker.mask_input(value, sensitive, None, checked.json) == plain, f"seed {SEED + 6} case {n}"
        if checked.keys is not None:
            assert masker.mask_input(value, sensitive, checked.keys) == plain, f"seed {SEED + 6} case {n}"


def _bundle_and_data() -> tuple[Any, str]:
    bundle = load_bundle(str(BUNDLE))
    return bundle, canonical(bundle.data)


def test_direct_opa_eval_answers_as_wasmtime_public_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer, refusal and error of the direct path is the public Func.__call__ path's, memory growth included."""
    rng = random.Random(SEED + 7)
    bundle, data = _bundle_and_data()
    direct = PolicyEvaluator.create(bundle.wasm, data)
    assert direct._instance is not None and direct._instance.direct is not None

    class NoDirect:
        def __init__(self, *args: Any) -> None:
            raise TypeError("the public call path")

    with monkeypatch.context() as patched:
        patched.setattr(evaluator_module, "_DirectEval", NoDirect)
        public = PolicyEvaluator.create(bundle.wasm, data)
    assert public._instance is not None and public._instance.direct is None

    def both(text: str) -> tuple[Evaluation, Evaluation]:
        mine = direct.evaluate_json(text)
        with monkeypatch.context() as patched:
            patched.setattr(evaluator_module, "_DirectEval", NoDirect)
            theirs = public.evaluate_json(text)
        return mine, theirs

    texts: list[str] = []
    for _ in range(300):
        checked = check_call(_call(rng), InputLimits(), frozenset())
        if checked.ok:
            assert checked.json is not None
            texts.append(f'{checked.json[:-1]},"history":{{"recentDenies":{rng.randrange(0, 6)}}}}}')
    good = '{"tool":"crm.read","arguments":{},"context":{"actorId":"a","tenantId":"acme","environment":"production"}'
    # The module's parser refusing the text (opa_abort, raised through the host function), text that is no JSON,
    # and inputs larger than the memory: it grows (and may move) during the call.
    texts += ['{"tool":"\\ud800"}', '{"tool":"\x01"}', "{", "", good + "}"]
    texts += [good + ',"pad":"' + "x" * rng.choice([3, 5, 9]) * 300_000 + '"}' for _ in range(3)]
    rng.shuffle(texts)
    for n, text in enumerate(texts):
        mine, theirs = both(text)
        assert (mine.ok, mine.answer, mine.error) == (theirs.ok, theirs.answer, theirs.error), f"seed {SEED + 7} case {n}: {text[:80]}"
        assert direct.instantiations == public.instantiations, f"seed {SEED + 7} case {n}"
    # A trap (an entrypoint that does not exist) is an error on both paths, and the next evaluation starts afresh.
    direct._entrypoint = public._entrypoint = 9999
    mine, theirs = both(good + "}")
    assert not mine.ok and (mine.ok, mine.error) == (theirs.ok, theirs.error)
    assert direct._instance is None and public._instance is None


def test_fast_init_keeps_every_dataclass_behaviour() -> None:
    rng = random.Random(SEED + 8)

    @dataclasses.dataclass(frozen=True)
    class Plain:
        a: str
        b: int
        c: Any = None
        d: tuple[str, ...] = ()

    @fast_init
    @dataclasses.dataclass(frozen=True)
    class Fast:
        a: str
        b: int
        c: Any = None
        d: tuple[str, ...] = ()

    for n in range(500):
        args: list[Any] = [rng.choice(["x", "", "é"]), rng.randrange(-5, 5)]
        kwargs: dict[str, Any] = {}
        if rng.random() < 0.5:
            args.append(rng.choice([None, 1.5, "c"]))
        elif rng.random() < 0.5:
            kwargs["c"] = [1]
        if rng.random() < 0.5:
            kwargs["d"] = ("q",)
        plain, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
        assert [getattr(plain, f.name) for f in dataclasses.fields(plain)] == [getattr(fast, f.name) for f in dataclasses.fields(fast)], (
            f"seed {SEED + 8} case {n}"
        )
        assert repr(plain).replace("Plain", "Fast") == repr(fast)
        assert fast == Fast(*args, **kwargs) and dataclasses.replace(fast, b=7).b == 7
        if not isinstance(fast.c, list):
            assert hash(fast) == hash(Fast(*args, **kwargs))
        with pytest.raises(dataclasses.FrozenInstanceError):
            fast.a = "y"  # type: ignore[misc]
    for bad in ((), ("a",), ("a", 1, 2, 3, 4)):
        with pytest.raises(TypeError):
            Fast(*bad)
    with pytest.raises(TypeError):
        Fast("a", 1, e=2)  # type: ignore[call-arg]
    # The decision types made on every call are fast and still equal, hashable and frozen.
    reasons = (Reason("r", "m"),)
    answer = PolicyAnswer("deny", True, reasons, ())
    assert answer == PolicyAnswer(action="deny", escalated=True, reasons=reasons, approvers=()) and answer.destination_hosts is None
    decision = Decision("id", "deny", True, "m", reasons, (), None, "t")  # type: ignore[arg-type]
    assert hash(decision) == hash(dataclasses.replace(decision))
    # What it cannot do the generated __init__'s way is refused when decorated.
    with pytest.raises(TypeError):

        @fast_init
        @dataclasses.dataclass(frozen=True)
        class WithFactory:
            a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError):

        @fast_init
        @dataclasses.dataclass(frozen=True)
        class WithInitVar:
            a: int
            b: dataclasses.InitVar[int] = 0

    with pytest.raises(TypeError):

        @fast_init
        @dataclasses.dataclass
        class NotFrozen:
            a: int


def _ulid_number(text: str) -> int:
    return sum(ALPHABET.index(c) << (5 * (25 - i)) for i, c in enumerate(text))


def test_ulids_are_monotonic_and_a_forked_child_draws_afresh() -> None:
    rng = random.Random(SEED + 9)
    next_id = monotonic_ulid()
    ms = 1735689600000.0
    last = ""
    for n in range(20000):
        # Forward, the same millisecond, and back: the id never goes down.
        ms += rng.choice([0, 0, 1, 60_000, -5])
        made = next_id(ms)
        assert len(made) == 26 and made > last, f"seed {SEED + 9} case {n}"
        if last and made[:10] == last[:10] and int(ms) <= _ulid_number(last) >> 80:
            assert _ulid_number(made) == _ulid_number(last) + 1, f"seed {SEED + 9} case {n}"
        last = made
    if not hasattr(os, "fork"):
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read_end)
        os.write(write_end, next_id(ms + 10**6).encode())
        os._exit(0)
    os.close(write_end)
    child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.waitpid(pid, 0)
    parent = next_id(ms + 10**6)
    assert len(child) == 26 and child[:10] == parent[:10] and child != parent
