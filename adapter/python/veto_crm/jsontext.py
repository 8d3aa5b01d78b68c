"""
JSON text exactly as the TypeScript adapter writes and reads it.

Digests, record hashes and the input handed to the policy are taken over JSON
text, so the same value must give the same bytes in both languages:

- numbers as ECMAScript's Number::toString prints them (``1e+21``,
  ``0.000001``, ``5000`` for ``5000.0``); JSON numbers are IEEE doubles, so an
  integer beyond 2**53 is the double nearest to it, as ``JSON.parse`` makes it;
- strings escaped as ``JSON.stringify`` escapes them (a lone surrogate as
  ``\\udxxx``);
- object keys either in the order JavaScript lists them (``Object.keys``:
  array-index keys first in numeric order, then the others as inserted) or,
  for canonical JSON, sorted by UTF-16 code units (RFC 8785).

``parse`` is ``JSON.parse``: no NaN or Infinity literals, ``1e400`` is
infinity, duplicate keys keep the first position and the last value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Iterable, Union

JsonValue = Union[None, bool, int, float, str, list["JsonValue"], dict[str, "JsonValue"]]

#: Largest integer a double holds exactly (Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1

_encode_basestring: Callable[[str], str] = json.encoder.encode_basestring
# Written with chr(): mypyc (veto_crm compiled, hatch_build.py) refuses surrogates in string literals.
_SURROGATE = re.compile("[" + chr(0xD800) + "-" + chr(0xDFFF) + "]")


def has_lone_surrogate(text: str) -> bool:
    """A Python str holds a surrogate code point only when it is unpaired (json.loads pairs escapes)."""
    return _SURROGATE.search(text) is not None


def lone_surrogate_at(text: str) -> int:
    """Where a str holds a lone surrogate (a code point index), or -1: no record (canonical JSON) can hold it."""
    found = _SURROGATE.search(text)
    return -1 if found is None else found.start()


def js_string(text: str) -> str:
    """``JSON.stringify(text)``."""
    quoted = _encode_basestring(text)
    if _SURROGATE.search(quoted) is None:
        return quoted
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", quoted)


def js_number(value: int | float) -> str:
    """ECMAScript ``Number::toString`` of a finite number (``JSON.stringify`` of a number)."""
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        if -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            # int.__repr__: the number an int subclass (an IntEnum member) holds, not its own str().
            return int.__repr__(value)
        value = float(value)
    elif type(value) is not float:
        # The number a float subclass holds, not its own repr().
        value = float.__float__(value)
    if not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    digits, point = _shortest_digits(abs(value))
    k = len(digits)
    n = point
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exponent = f"e{'+' if e >= 0 else '-'}{abs(e)}"
        text = digits + exponent if k == 1 else digits[0] + "." + digits[1:] + exponent
    return sign + text


def _shortest_digits(value: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of ``value`` > 0 and n with value = 0.digits * 10**n."""
    text = repr(value)
    mantissa, _, exp = text.partition("e")
    exponent = int(exp) if exp else 0
    whole, _, fraction = mantissa.partition(".")
    if fraction == "0":
        fraction = ""
    digits = (whole + fraction).lstrip("0")
    # Position of the decimal point relative to the first significant digit.
    leading_zeros = len(whole + fraction) - len((whole + fraction).lstrip("0"))
    point = len(whole) - leading_zeros + exponent
    digits = digits.rstrip("0") or "0"
    return digits, point


def js_number_value(value: int | float) -> int | float:
    """The number as a JavaScript double holds it: integers beyond 2**53 become the nearest double."""
    if isinstance(value, int) and not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
        return float(value)
    return value


_DIGITS = frozenset("0123456789")


def _is_array_index(key: Any) -> bool:
    # Any: js_key_order meets a caller's keys, whatever they are (compiled, str would be checked first).
    if not key or not ("0" <= key[0] <= "9"):
        return False
    if not key.isdigit() or not key.isascii():
        return False
    if key != str(int(key)):
        return False
    return int(key) < 4294967295


def js_key_order(keys: Iterable[str]) -> list[str]:
    """Keys in ``Object.keys`` order: array indices ascending, then the rest as inserted."""
    # Any: a caller's dict may hold a key that is not a str, which fails below as it would in Python
    # (compiled, list[str] would refuse it first, with another error).
    items: list[Any] = list(keys)
    for key in items:
        if key[:1] in _DIGITS:
            break
    else:
        return items
    indices = [k for k in items if _is_array_index(k)]
    if not indices:
        return items
    indices.sort(key=int)
    return indices + [k for k in items if not _is_array_index(k)]


def utf16_key(key: str) -> bytes:
    """Sort key comparing strings by UTF-16 code units, as JavaScript's default sort does."""
    return key.encode("utf-16-be", "surrogatepass")


def stringify(value: Any) -> str:
    """``JSON.stringify(value)`` for JSON values (dict keys in the order JavaScript would list them)."""
    return _text(value, canonical=False)


def canonical(value: Any) -> str:
    """Canonical JSON: keys sorted by UTF-16 code units, no white space, JavaScript numbers and escapes."""
    return _text(value, canonical=True)


#: How deep _write recurses before the iterative writer takes over. Counted, not left to the interpreter:
#: compiled (hatch_build.py), a function calling itself is not stopped by Python's recursion limit.
NESTING_FOR_RECURSION = 200


def _text(value: Any, canonical: bool) -> str:
    parts: list[str] = []
    try:
        _write(value, parts, canonical, 0)
    except RecursionError:
        # Nested deeper than Python's recursion limit: the same text, without recursion.
        parts = []
        _write_iteratively(value, parts, canonical)
    return "".join(parts)


def _write_iteratively(root: Any, parts: list[str], canonical: bool) -> None:
    # A stack of pending work: a value to write, a literal text to emit, or the end of a container
    # (which leaves the set of open containers: a container met again while open is a cycle).
    stack: list[tuple[int, Any]] = [(0, root)]
    open_ids: set[int] = set()
    while stack:
        kind, item = stack.pop()
        if kind == 1:
            parts.append(item)
            continue
        if kind == 2:
            open_ids.discard(item)
            continue
        if isinstance(item, (list, tuple, dict)):
            if id(item) in open_ids:
                raise ValueError("a value that contains itself has no JSON form")
            open_ids.add(id(item))
        if isinstance(item, (list, tuple)):
            work: list[tuple[int, Any]] = [(1, "[")]
            for i, child in enumerate(item):
                if i:
                    work.append((1, ","))
                work.append((0, child))
            work.append((1, "]"))
            work.append((2, id(item)))
            stack.extend(reversed(work))
        elif isinstance(item, dict):
            keys = sorted(item, key=utf16_key) if canonical else js_key_order(item)
            work = [(1, "{")]
            for i, key in enumerate(keys):
                if not isinstance(key, str):
                    raise TypeError(f"object key {key!r} is not a string")
                work.append((1, ("," if i else "") + js_string(key) + ":"))
                work.append((0, item[key]))
            work.append((1, "}"))
            work.append((2, id(item)))
            stack.extend(reversed(work))
        else:
            _write(item, parts, canonical, 0)


def _write(value: Any, parts: list[str], canonical: bool, depth: int) -> None:
    if value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, str):
        parts.append(js_string(value))
    elif isinstance(value, (int, float)):
        parts.append(js_number(value))
    elif isinstance(value, (list, tuple)):
        if depth >= NESTING_FOR_RECURSION:
            raise RecursionError("nested too deep to write recursively")
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write(item, parts, canonical, depth + 1)
        parts.append("]")
    elif isinstance(value, dict):
        if depth >= NESTING_FOR_RECURSION:
            raise RecursionError("nested too deep to write recursively")
        keys = sorted(value, key=utf16_key) if canonical else js_key_order(value)
        parts.append("{")
        for i, key in enumerate(keys):
            if not isinstance(key, str):
                raise TypeError(f"object key {key!r} is not a string")
            if i:
                parts.append(",")
            parts.append(js_string(key))
            parts.append(":")
            _write(value[key], parts, canonical, depth + 1)
        parts.append("}")
    else:
        raise TypeError(f"{type(value).__name__} has no JSON form")


class JsonParseError(ValueError):
    """Text that ``JSON.parse`` would refuse."""


def _refuse_constant(name: str) -> Any:
    raise JsonParseError(f"{name} is not JSON")


def _parse_int(text: str) -> int | float:
    # Past 16 digits the value is beyond 2**53 anyway: the double nearest to it
    # (float() rounds correctly, and gives inf past the largest double).
    if len(text) > 17:
        return float(text)
    return js_number_value(int(text))


def parse(text: str) -> Any:
    """``JSON.parse(text)``; raises JsonParseError. Deeply nested text is parsed without recursion."""
    try:
        return json.loads(text, parse_int=_parse_int, parse_float=float, parse_constant=_refuse_constant)
    except RecursionError:
        return _IterativeParser(text).document()
    except JsonParseError:
        raise
    except ValueError as error:
        raise JsonParseError(str(error)) from None


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.DOTALL)
_WS = " \t\n\r"


class _IterativeParser:
    """A JSON parser with an explicit stack, for text nested too deeply for json's recursive scanner."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0

    def _space(self) -> None:
        text, i = self.text, self.i
        while i < len(text) and text[i] in _WS:
            i += 1
        self.i = i

    def _fail(self, message: str) -> JsonParseError:
        return JsonParseError(f"{message} at position {self.i}")

    def _scalar(self) -> Any:
        text, i = self.text, self.i
        c = text[i] if i < len(text) else ""
        if c == '"':
            m = _STRING.match(text, i)
            if m is None:
                raise self._fail("bad string")
            self.i = m.end()
            try:
                return json.loads(m.group(0))
            except ValueError as error:
                raise self._fail(str(error)) from None
        for word, value in (("true", True), ("false", False), ("null", None)):
            if text.startswith(word, i):
                self.i = i + len(word)
                return value
        m = _NUMBER.match(text, i)
        if m is None or m.group(0) == "":
            raise self._fail("expected a JSON value")
        self.i = m.end()
        literal = m.group(0)
        if "." in literal or "e" in literal or "E" in literal:
            return float(literal)
        return _parse_int(literal)

    def document(self) -> Any:
        # Stack of (container, pending key); a container is a list or dict.
        stack: list[tuple[list[Any] | dict[str, Any], str | None]] = []
        root: Any = None
        have_root = False
        while True:
            self._space()
            c = self.text[self.i] if self.i < len(self.text) else ""
            value: Any
            if c == "{" or c == "[":
                self.i += 1
                container: list[Any] | dict[str, Any] = {} if c == "{" else []
                self._space()
                close = "}" if c == "{" else "]"
                if self.i < len(self.text) and self.text[self.i] == close:
                    self.i += 1
                    value = container
                else:
                    key = self._key() if c == "{" else None
                    stack.append((container, key))
                    continue
            else:
                value = self._scalar()
            # Attach value to the innermost container, closing containers as they end.
            while True:
                if not stack:
                    root, have_root = value, True
                    break
                container, key = stack[-1]
                if isinstance(container, dict):
                    assert key is not None
                    container[key] = value
                else:
                    container.append(value)
                self._space()
                c = self.text[self.i] if self.i < len(self.text) else ""
                self.i += 1
                if c == ",":
                    if isinstance(container, dict):
                        self._space()
                        stack[-1] = (container, self._key())
                    break
                if c == ("}" if isinstance(container, dict) else "]"):
                    stack.pop()
                    value = container
                    continue
                self.i -= 1
                raise self._fail("expected ',' or a closing bracket")
            if have_root:
                self._space()
                if self.i != len(self.text):
                    raise self._fail("unexpected text after the value")
                return root

    def _key(self) -> str:
        self._space()
        if self.i >= len(self.text) or self.text[self.i] != '"':
            raise self._fail("expected a string key")
        key = self._scalar()
        self._space()
        if self.i >= len(self.text) or self.text[self.i] != ":":
            raise self._fail("expected ':'")
        self.i += 1
        assert isinstance(key, str)
        return key


def is_js_whitespace(char: str) -> bool:
    """Whether ``String.prototype.trim`` removes ``char`` (ECMAScript WhiteSpace and LineTerminator)."""
    return char in _JS_TRIMMED


# ECMAScript WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP and category Zs) and LineTerminator.
_JS_TRIMMED = frozenset(
    "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000\ufeff"
)


def js_trim(text: str) -> str:
    """``String.prototype.trim``."""
    start, end = 0, len(text)
    while start < end and text[start] in _JS_TRIMMED:
        start += 1
    while end > start and text[end - 1] in _JS_TRIMMED:
        end -= 1
    return text[start:end]


def js_lower(text: str) -> str:
    """``String.prototype.toLowerCase`` (Python's ``lower`` applies the same full Unicode mapping)."""
    return text.lower()


def number_texts(text: str, depth: int) -> dict[str, str]:
    """
    The JSON text of every number in ``text`` (JSON that parse accepted) whose
    path has at most ``depth`` keys, by JSON pointer ("/arguments/amount")
    (adapter/call/json-text.ts numberTexts): parse turns 250000.00000000001
    into 250000 and the text is gone, but an amount is judged by its text
    (docs/contract.md §9 "Amount precision"). Duplicate keys resolve as parse
    resolves them: the last one wins, with everything under it. Deeper values
    are skipped without recursion.
    """
    found: dict[str, str] = {}
    n = len(text)
    i = 0

    def at(k: int) -> str:
        return text[k] if k < n else ""

    def space() -> None:
        nonlocal i
        while i < n and text[i] in " \t\n\r":
            i += 1

    def string() -> str:
        nonlocal i
        start = i
        i += 1
        while i < n:
            c = text[i]
            if c == "\\":
                i += 1
            elif c == '"':
                break
            i += 1
        i += 1
        return text[start:i]

    def skip() -> None:
        nonlocal i
        c = at(i)
        if c == '"':
            string()
            return
        if c != "{" and c != "[":
            while i < n and text[i] not in ",]} \t\n\r":
                i += 1
            return
        depth_open = 0
        while True:
            d = at(i)
            if d == '"':
                string()
            else:
                if d == "{" or d == "[":
                    depth_open += 1
                elif d == "}" or d == "]":
                    depth_open -= 1
                i += 1
            if not (depth_open > 0 and i < n):
                return

    def forget(pointer: str) -> None:
        for key in [k for k in found if k == pointer or k.startswith(pointer + "/")]:
            del found[key]

    def value(pointer: str, level: int) -> None:
        nonlocal i
        space()
        c = at(i)
        if c == "{" and level < depth:
            i += 1
            space()
            while at(i) == '"':
                key = json.loads(string())
                child = pointer + "/" + key.replace("~", "~0").replace("/", "~1")
                forget(child)
                space()
                i += 1  # ':'
                value(child, level + 1)
                space()
                if at(i) == ",":
                    i += 1
                    space()
            i += 1  # '}'
            return
        if c == "[" and level < depth:
            i += 1
            space()
            index = 0
            while i < n and text[i] != "]":
                before = i
                value(f"{pointer}/{index}", level + 1)
                if i == before:
                    # Not JSON (a "}" where a value should be): stop rather than read the same place forever.
                    raise ValueError(f"not JSON text at offset {i}")
                space()
                if at(i) == ",":
                    i += 1
                index += 1
            i += 1  # ']'
            return
        if c == "-" or "0" <= c <= "9" and c != "":
            start = i
            skip()
            found[pointer] = text[start:i]
            return
        skip()

    value("", 0)
    return found
