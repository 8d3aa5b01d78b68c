"""
Amount precision (docs/contract.md §9 "Amount precision"): the rule of
amount_text_problem against an oracle in exact decimal arithmetic, and
number_texts against the parser, over seeded generated cases (the seed is in
the failure message).
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any, Optional

import pytest

from veto_crm.input import amount_text_problem
from veto_crm.jsontext import parse
from veto_crm.jsontext import number_texts

SEED = 20260301


def oracle(text: str) -> bool:
    """True when the text is precise: 0, or at most 15 significant digits and 1e-307 <= |x| < 1e308."""
    d = Decimal(text)
    if d == 0:
        return True
    digits = d.normalize().as_tuple().digits
    if len(digits) > 15:
        return False
    return Decimal("1e-307") <= abs(d) < Decimal("1e308")


def number_text(rng: random.Random) -> str:
    sign = rng.choice(["", "-"])
    whole = rng.choice(["0", str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 20)))])
    fraction = "" if rng.random() < 0.4 else "." + "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
    exponent = ""
    if rng.random() < 0.5:
        exponent = rng.choice("eE") + rng.choice(["", "+", "-"]) + "0" * rng.randint(0, 2) + str(rng.choice([0, 1, 5, 290, 300, 306, 307, 308, 309, 320, 99999]))
    return sign + whole + fraction + exponent


def test_the_rule_is_exact_decimal_arithmetic() -> None:
    rng = random.Random(SEED)
    for i in range(20_000):
        text = number_text(rng)
        assert (amount_text_problem(text) is None) == oracle(text), f"seed {SEED}, case {i}: {text}"


@pytest.mark.parametrize(
    "text,problem",
    [
        ("250000.00000000001", "has 17"),
        ("123456789012345", None),
        ("1234567890123456", "has 16"),
        ("1e308", "out of that range"),
        ("9.99999999999999e307", None),
        ("1e-307", None),
        ("1e-308", "out of that range"),
        ("0.000e999999", None),
        ("abc", '("abc" is not a JSON number)'),
    ],
)
def test_examples(text: str, problem: Optional[str]) -> None:
    got = amount_text_problem(text)
    assert (got is None) if problem is None else (got is not None and problem in got)


def value_at(document: Any, pointer: str) -> Any:
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        document = document[int(token)] if isinstance(document, list) else document[token]
    return document


def test_number_texts_finds_each_number_as_parse_reads_it() -> None:
    rng = random.Random(SEED)

    def value(depth: int) -> Any:
        r = rng.random()
        if depth > 4 or r < 0.4:
            return rng.choice([1, -2.5, 0, 1e21, "x", None, True, 'a"b', 123456789012345678])
        if r < 0.7:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return {rng.choice(["a", "b", "a/b", "~", "é"]): value(depth + 1) for _ in range(rng.randint(0, 3))}

    for i in range(2_000):
        doc = {"arguments": value(0), "tool": value(0)}
        text = json.dumps(doc, indent=rng.choice([None, 1]))
        if rng.random() < 0.3:
            # A duplicate key: the last one wins, with everything under it.
            text = text[:-1] + ', "arguments": ' + json.dumps(value(0)) + "}"
        parsed = parse(text)
        found = number_texts(text, 3)
        for pointer, literal in found.items():
            assert parse(literal) == value_at(parsed, pointer), f"seed {SEED}, case {i}: {pointer} in {text}"
        expected = set()

        def walk(v: Any, pointer: str, level: int) -> None:
            if isinstance(v, bool) or v is None or isinstance(v, str):
                return
            if isinstance(v, (int, float)):
                expected.add(pointer)
            elif level < 3:
                items = v.items() if isinstance(v, dict) else enumerate(v)
                for k, child in items:
                    walk(child, f"{pointer}/{str(k).replace('~', '~0').replace('/', '~1')}", level + 1)

        walk(parsed, "", 0)
        assert set(found) == expected, f"seed {SEED}, case {i}: {text}"
