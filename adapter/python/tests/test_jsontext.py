"""
The JSON text every digest and record hash depends on, checked against
node itself on seeded random values (numbers, strings, keys), and the call
check against an independent JSON Schema implementation (jsonschema) on
seeded random calls. Failures print the seed: VETO_JSON_SEED=<seed> pytest ...
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
import time
from typing import Any

import jsonschema

from veto_crm.call_schema import CALL_SCHEMA, first_issue
from veto_crm.input import DEFAULT_INPUT_LIMITS, CheckedCall, check_call
from veto_crm.jsontext import canonical, js_number, js_trim, number_texts, parse, stringify

from .conftest import read_call, write_call

SEED = int(os.environ.get("VETO_JSON_SEED", str(int(time.time()))))

NODE_SCRIPT = r"""
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
const canonical = (v) => v === null || typeof v !== "object" ? JSON.stringify(v)
  : Array.isArray(v) ? `[${v.map(canonical).join(",")}]`
  : `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(",")}}`;
const bits = (hex) => Buffer.from(hex, "hex").readDoubleBE(0);
process.stdout.write(JSON.stringify({
  numbers: input.numbers.map((h) => JSON.stringify(bits(h))),
  values: input.values.map((t) => { const v = JSON.parse(t); return [JSON.stringify(v), canonical(v)]; }),
  trims: input.trims.map((s) => s.trim()),
}));
"""


def random_double(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.3:
        return rng.uniform(-1e6, 1e6)
    if kind < 0.5:
        return float(rng.randint(-(2**60), 2**60))
    if kind < 0.6:
        return rng.choice([0.1, 1e21, 1e-7, 5e-324, 1.7976931348623157e308, 2**53, 2**53 + 2, 1e16, 123456789.125])
    while True:
        value: float = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if math.isfinite(value):
            return value


def random_text(rng: random.Random) -> str:
    alphabet = ["a", "Z", "0", "é", "ß", "İ", "\u00a0", "\u2028", "\u2003", "\ufeff", "\x00", "\x1f", '"', "\\", "/", "\U0001F600", "\uffff", " ", "\t", "\n"]
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.random()
    if depth > 3 or kind < 0.4:
        return rng.choice([None, True, False, random_double(rng), rng.randint(-1000, 1000), random_text(rng)])
    if kind < 0.7:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {random_text(rng) or str(rng.randint(0, 20)): random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_numbers_strings_keys_and_trim_match_node() -> None:
    rng = random.Random(SEED)
    numbers = [random_double(rng) for _ in range(3000)]
    values = [random_value(rng) for _ in range(500)]
    trims = [random_text(rng) for _ in range(500)]
    payload = {
        "numbers": [struct.pack(">d", n).hex() for n in numbers],
        "values": [json.dumps(v, ensure_ascii=True) for v in values],
        "trims": trims,
    }
    run = subprocess.run(["node", "-e", NODE_SCRIPT], input=json.dumps(payload), capture_output=True, text=True, check=True)
    node = json.loads(run.stdout)
    for n, expected in zip(numbers, node["numbers"]):
        assert js_number(n) == expected, f"seed {SEED}: {n!r}"
    for text, (expected_stringify, expected_canonical) in zip(payload["values"], node["values"]):
        value = parse(text)
        assert stringify(value) == expected_stringify, f"seed {SEED}: {text}"
        assert canonical(value) == expected_canonical, f"seed {SEED}: {text}"
    for text, expected in zip(trims, node["trims"]):
        assert js_trim(text) == expected, f"seed {SEED}: {text!r}"


def mutated_call(rng: random.Random) -> Any:
    call = rng.choice([write_call(), read_call()])
    for _ in range(rng.randint(0, 3)):
        where = rng.choice([call] + [call[k] for k in ("arguments", "context") if isinstance(call.get(k), dict)])
        key = rng.choice(["tool", "arguments", "context", "object", "changes", "fields", "amount", "actorId", "tenantId", "environment", "reason", "requestId", "extra"])
        value = rng.choice([None, 1, 2.5, "", "  ", "x", True, [], ["a", 1], {}, {"k": "v"}])
        if rng.random() < 0.2:
            where.pop(key, None)
        else:
            where[key] = value
    return call


def test_the_schema_interpreter_agrees_with_jsonschema_on_random_calls() -> None:
    rng = random.Random(SEED)
    validator = jsonschema.Draft202012Validator(dict(CALL_SCHEMA))
    for _ in range(3000):
        call = mutated_call(rng)
        issue = first_issue(call)
        valid_by_library = validator.is_valid(call)
        if issue is None:
            assert valid_by_library, f"seed {SEED}: {call!r}"
        elif valid_by_library:
            # Only the blank rule is beyond JSON Schema.
            assert issue.message == "must not be blank", f"seed {SEED}: {call!r}: {issue}"


def test_check_call_on_random_calls_never_raises_and_valid_calls_round_trip() -> None:
    rng = random.Random(SEED)
    names = frozenset({"amount", "discount_amount"})
    for _ in range(2000):
        call = mutated_call(rng)
        checked = check_call(call, DEFAULT_INPUT_LIMITS, names)
        if isinstance(checked, CheckedCall):
            assert parse(checked.json) == checked.call
            assert canonical(checked.call) == checked.json
        else:
            assert checked.message


def _random_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 4 and r < 0.3:
        return {rng.choice("abc"): _random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))}
    if depth < 4 and r < 0.5:
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    return rng.choice([1, -2.5, "x", None, True, 1e21])


def test_number_texts_ends_on_any_text_json_or_not() -> None:
    """A misplaced closer is an error, not a loop (adapter/call/json-text.ts does the same): protect_text is public."""
    try:
        number_texts("[}", 3)
        raise AssertionError("no error")
    except ValueError as error:
        assert "not JSON text at offset 1" in str(error)
    rng = random.Random(SEED + 11)
    refused = 0
    for n in range(3000):
        text = stringify(_random_json(rng))
        cut = rng.randrange(len(text) + 1)
        broken = text[:cut] + rng.choice("}],:{[") + text[cut:]
        # Returns what it found or raises ValueError (protect_text's caller refuses the call then): it returns.
        try:
            assert isinstance(number_texts(broken, 3), dict), f"seed {SEED + 11} case {n}"
        except ValueError:
            refused += 1
    assert refused > 0, f"seed {SEED + 11}"
