"""
The input contract (docs/contract.md §1), as the TypeScript adapter checks it
(adapter/input.ts). Two steps, both ending in a value, never an exception:

1. ``snapshot`` copies what the agent sent into fresh JSON values, enforcing
   the size and depth limits and refusing prototype-pollution keys and
   anything JSON cannot carry. The copy is what gets decided, digested,
   recorded and handed to the tool. Keys are copied in the order JavaScript
   lists them, and the size is counted as the TypeScript adapter counts it,
   so the same call is refused with the same message in both languages.
2. call.schema.json (call_schema.py) checks the contract's types on that copy,
   then the amount fields of ``changes`` must be numbers, and every amount
   precise (docs/contract.md §9 "Amount precision"), judged by its JSON text.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence, Union

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - a runtime dependency; without it every call takes snapshot()
    _orjson = None  # type: ignore[assignment,unused-ignore]

from .call_schema import first_issue
from .jsontext import _DIGITS, MAX_SAFE_INTEGER, canonical, has_lone_surrogate, js_key_order, js_number, js_string
from .text import fold_key, is_blank
from .frozen import fast_init, python_class

#: Keys that could reach Object.prototype through a careless merge in JavaScript code downstream.
FORBIDDEN_KEYS = frozenset({"__proto__", "constructor", "prototype"})


@python_class
@dataclass(frozen=True)
class InputLimits:
    #: Largest call, in UTF-8 bytes of its JSON text.
    max_input_bytes: int = 64 * 1024
    #: Deepest nesting of objects and arrays; the call object itself is depth 1.
    max_depth: int = 12


DEFAULT_INPUT_LIMITS = InputLimits()


@fast_init
@dataclass(frozen=True)
class CheckedCall:
    """A call that passed validation: its snapshot and the snapshot's canonical JSON."""

    call: dict[str, Any]
    json: str
    ok: bool = True
    #: Every object key in the snapshot (what masking needs to know first), when known.
    keys: Optional[frozenset[str]] = None


@fast_init
@dataclass(frozen=True)
class RefusedCall:
    """A call that did not: why, and as much of it as could be copied (None when nothing could)."""

    message: str
    partial: Any = None
    json: Optional[str] = None
    ok: bool = False
    #: Every object key in ``partial``, when it is a snapshot.
    keys: Optional[frozenset[str]] = None


CheckedInput = Union[CheckedCall, RefusedCall]


class _InputRefused(Exception):
    pass


def _describe(path: str) -> str:
    return "the call" if path == "" else path


def _path_of(keys: Sequence[Union[str, int]]) -> str:
    path = ""
    for key in keys:
        if isinstance(key, int):
            path = f"{path}[{key}]"
        else:
            path = key if path == "" else f"{path}.{key}"
    return path


def _utf16_length(text: str) -> int:
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _not_unicode(what: str) -> _InputRefused:
    return _InputRefused(f"{what} not well-formed Unicode (it holds a lone surrogate, which JSON text in UTF-8 cannot carry)")


#: json.dumps(ensure_ascii=False, separators=(",", ":"), sort_keys=True) of a snapshot, through the C encoder made
#: once (JSONEncoder.encode makes one per call). Without its circular-reference check: a snapshot is a tree.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_plain_encoder = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(None, json.JSONEncoder().default, json.encoder.encode_basestring, None, ":", ",", True, False, True)
)
_PLAIN_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def _PLAIN_JSON(value: Any) -> str:
    if _plain_encoder is None:
        return _PLAIN_JSON_ENCODER(value)
    return "".join(_plain_encoder(value, 0))


def snapshot(raw: Any, limits: InputLimits) -> tuple[Any, str, frozenset[str]]:
    """Copy ``raw`` into fresh JSON values within the limits; return the copy, its canonical JSON and every object key in it."""
    max_bytes = limits.max_input_bytes
    max_depth = limits.max_depth
    # A lower bound of the JSON size (in UTF-16 code units, as the TypeScript adapter counts), so far-over inputs stop early.
    size = 0
    keys: list[Union[str, int]] = []
    # Every key copied, for masking (records.py): a set per object, joined at the end.
    key_sets: list[Any] = []
    # Whether json.dumps(sort_keys=True) writes the copy exactly as canonical() does: no number that Python
    # prints unlike JavaScript (integral floats, exponents) and no key whose code-point order differs from
    # its UTF-16 order (a character beyond U+FFFF).
    plain = True

    def too_large() -> _InputRefused:
        return _InputRefused(f"the call is larger than {max_bytes} bytes")

    def copy(value: Any, depth: int) -> Any:
        nonlocal size, plain
        kind = type(value)
        # Objects and arrays first (their exact types cannot be any of the scalars below).
        if kind is not dict and kind is not list:
            # Nearly every string of a call is ASCII: its UTF-16 length is its length, and it holds no surrogate.
            if kind is str and value.isascii():
                size += len(value) + 2
                if size > max_bytes:
                    raise too_large()
                return value
            if isinstance(value, str):
                size += _utf16_length(value) + 2
                if size > max_bytes:
                    raise too_large()
                if has_lone_surrogate(value):
                    raise _not_unicode(f"{_describe(_path_of(keys))} is")
                # A subclass (a str-valued enum member) is copied as the plain str it holds, as JSON carries it.
                return value if kind is str else str.__str__(value)
            if isinstance(value, bool):
                size += 4
                if size > max_bytes:
                    raise too_large()
                return value
            if isinstance(value, (int, float)):
                # A subclass (an IntEnum member) is copied as the plain number it holds, as JSON carries it.
                number: Union[int, float] = (
                    value if kind is int or kind is float else int.__int__(value) if isinstance(value, int) else float.__float__(value)
                )
                if isinstance(number, int) and not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
                    try:
                        number = float(number)
                    except OverflowError:
                        number = math.inf
                if isinstance(number, float):
                    if not math.isfinite(number):
                        raise _InputRefused(f"{_describe(_path_of(keys))} is not a finite number")
                    if plain and not (1e-4 <= abs(number) < 1e16 and number != int(number)):
                        plain = False
                size += 1
                if size > max_bytes:
                    raise too_large()
                return number
            if value is None:
                size += 4
                if size > max_bytes:
                    raise too_large()
                return None
            if not isinstance(value, (dict, list, tuple)):
                raise _InputRefused(f"{_describe(_path_of(keys))} is a {type(value).__name__}, which JSON cannot carry")
        if depth >= max_depth:
            raise _InputRefused(f"{_describe(_path_of(keys))} nests deeper than {max_depth} levels")
        size += 2
        if size > max_bytes:
            raise too_large()
        # Scalars the common call is made of (ASCII strings, safe integers, booleans, null) are copied inline,
        # adding to the size and checking it exactly as copy() does; anything else goes through copy().
        if isinstance(value, (list, tuple)):
            out_list: list[Any] = []
            for i, item in enumerate(value):
                kind = type(item)
                if kind is str and item.isascii():
                    size += len(item) + 2
                    if size > max_bytes:
                        raise too_large()
                    out_list.append(item)
                    continue
                keys.append(i)
                out_list.append(copy(item, depth + 1))
                keys.pop()
            return out_list
        out: dict[str, Any] = {}
        # js_key_order, inline (a call per object): array-index keys first only when a key starts with a digit.
        # Any: a key may be anything a dict holds (compiled, list[str] would be checked before the test below).
        order: list[Any] = list(value)
        for key in order:
            if key[:1] in _DIGITS:
                order = js_key_order(order)
                break
        for given in order:
            key = given
            if type(key) is not str:
                if not isinstance(key, str):
                    raise _InputRefused(f"a key of {_describe(_path_of(keys))} is not a string ({key!r})")
                # A str subclass (a str-valued enum member) is copied as the plain str it holds, as JSON
                # carries it: its own lower() or __eq__ must not decide masking or the messages.
                key = str.__str__(key)
            if key in FORBIDDEN_KEYS:
                keys.append(key)
                raise _InputRefused(f'{_path_of(keys)}: the key "{key}" is not allowed')
            if key.isascii():
                size += len(key) + 3
            else:
                if has_lone_surrogate(key):
                    raise _not_unicode(f"a key of {_describe(_path_of(keys))} is")
                if plain and any(ord(c) > 0xFFFF for c in key):
                    plain = False
                size += _utf16_length(key) + 3
            if size > max_bytes:
                raise too_large()
            item = value[given]
            kind = type(item)
            if kind is str and item.isascii():
                size += len(item) + 2
            elif kind is int and -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                size += 1
            elif kind is bool or item is None:
                size += 4
            else:
                keys.append(key)
                out[key] = copy(item, depth + 1)
                keys.pop()
                continue
            if size > max_bytes:
                raise too_large()
            out[key] = item
        key_sets.append(out.keys())
        return out

    value = copy(raw, 0)
    text = _PLAIN_JSON(value) if plain else canonical(value)
    exact = len(text) if text.isascii() else len(text.encode("utf-8"))
    if exact > max_bytes:
        raise _InputRefused(f"the call is larger than {max_bytes} bytes ({exact})")
    return value, text, frozenset().union(*key_sets)


#: orjson refuses, instead of converting, what snapshot() would copy otherwise: subclasses of dict, list, str, int
#: and float (an enum member holding a number or a str excepted), dates, dataclasses and integers beyond 2**53 - 1.
_PLAIN_OPTIONS = (
    0
    if _orjson is None
    else _orjson.OPT_PASSTHROUGH_SUBCLASS | _orjson.OPT_PASSTHROUGH_DATETIME | _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_STRICT_INTEGER
)
_SORTED = 0 if _orjson is None else _orjson.OPT_SORT_KEYS
#: In compact JSON text from orjson: a forbidden key, or a key that starts with a digit (perhaps an array index,
#: which JavaScript lists first); a number with a fraction or an exponent (a float, which JavaScript may print
#: otherwise; orjson writes every float so); a character beyond U+FFFF in UTF-8 (keys holding one sort otherwise
#: in UTF-16). Each may match more than it names (inside a string), never less: a match only sends the call to
#: snapshot(). Each starts with a literal, which the regular expression engine finds fast.
_PLAIN_KEY_REFUSED = re.compile(rb'"(?:[0-9](?:[^"\\]|\\.)*|__proto__|constructor|prototype)":')
_FRACTION = re.compile(rb"\.[0-9]")
_EXPONENT = re.compile(rb"e[-+][0-9]")
_ASTRAL = re.compile(rb"[\xf0-\xf4]")


def _plain_snapshot(raw: Any, limits: InputLimits) -> Optional[tuple[dict[str, Any], str]]:
    """
    snapshot() of a plain call, through orjson's encoder and parser, or None
    (then snapshot() copies it): a dict of dicts, lists, ASCII or BMP strings,
    safe integers, booleans and null, no forbidden key, no key that starts
    with a digit, within the limits. For such a call the copy, its key order
    and its canonical JSON are snapshot()'s exactly: orjson writes strings as
    JSON.stringify does and sorts keys by code point, the same order as
    UTF-16's without characters beyond U+FFFF; the size within the limit
    means no lower bound of it was over either, and no more brackets than
    the depth limit means no deeper nesting. Whatever orjson would write
    differently from what it read (NaN and infinities as null, tuples as
    lists) fails the final comparison.
    """
    if type(raw) is not dict:
        return None
    try:
        ordered: bytes = _orjson.dumps(raw, option=_PLAIN_OPTIONS)
    except Exception:  # anything orjson refuses (a non-str key, a lone surrogate, another type): snapshot() says why
        return None
    if len(ordered) > limits.max_input_bytes or ordered.count(b"{") + ordered.count(b"[") > limits.max_depth:
        return None
    if _PLAIN_KEY_REFUSED.search(ordered) is not None or _FRACTION.search(ordered) is not None or _EXPONENT.search(ordered) is not None:
        return None
    if not ordered.isascii() and _ASTRAL.search(ordered) is not None:
        return None
    copy = _orjson.loads(ordered)
    try:
        if copy != raw:
            return None
    except Exception:  # an enum member's own __eq__ raised: snapshot() refuses the member without asking it
        return None
    return copy, _orjson.dumps(copy, option=_SORTED).decode("utf-8")


def amount_field_names(amount_fields: Sequence[str]) -> frozenset[str]:
    """The fold keys of ``amount_fields`` (text.py): a key of ``changes`` is an amount field when its fold key is one."""
    return frozenset(fold_key(f) for f in amount_fields)


_JSON_NUMBER = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)0*([0-9]*))?")

#: What amount_text_problem refuses, as the policy words it (input.rego's _imprecise).
IMPRECISE_AMOUNT = "must have at most 15 significant digits and be 0 or between 1e-307 and 1e308 in magnitude"


def amount_text_problem(text: str) -> Optional[str]:
    """
    docs/contract.md §9 "Amount precision" (adapter/call/input.ts
    amountTextProblem): None when the JSON number ``text`` has at most 15
    significant digits and is zero or between 1e-307 and 1e308 in magnitude,
    else what is wrong with it.
    """
    m = _JSON_NUMBER.fullmatch(text)
    if m is None:
        return f"{IMPRECISE_AMOUNT} ({js_string(text)} is not a JSON number)"
    whole = m.group(1)
    digits = whole + (m.group(2) or "")
    significant = digits.lstrip("0").rstrip("0")
    if significant == "":
        return None
    if len(significant) > 15:
        return f"{IMPRECISE_AMOUNT} ({text} has {len(significant)})"
    exponent_digits = m.group(4) or ""
    leading_zeros = len(digits) - len(digits.lstrip("0"))
    exponent = math.inf if len(exponent_digits) > 4 else (-1 if m.group(3) == "-" else 1) * int(exponent_digits or "0")
    decimal_exponent = exponent + len(whole) - 1 - leading_zeros
    if not -307 <= decimal_exponent <= 307:
        return f"{IMPRECISE_AMOUNT} ({text} is out of that range)"
    return None


def _amount_problem(value: Union[int, float], text: Optional[str]) -> Optional[str]:
    """The amount check for a number held as a double: its text is its shortest round-trip form (JSON.stringify's), unless the caller's own text is known."""
    if text is None and isinstance(value, int) and -(10**15) < value < 10**15:
        return None
    return amount_text_problem(text if text is not None else js_number(value))


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_call(
    raw: Any, limits: InputLimits, amount_names: frozenset[str], number_texts: Optional[Mapping[str, str]] = None
) -> CheckedInput:
    """
    Check one call as sent by an agent. ``amount_names`` (amount_field_names of
    the data document's amount_fields): a ``changes`` entry whose key matches
    one of them ignoring case must be a finite JSON number. Amounts must also
    be precise (docs/contract.md §9 "Amount precision"), judged by their JSON
    text: ``number_texts`` (by JSON pointer, see number_texts) when the caller
    had the call as text, else the shortest text of the double.
    """
    fast = _plain_snapshot(raw, limits) if _orjson is not None else None
    # Any: whatever the caller sent (compiled, a narrower type would be checked here, before the refusals below).
    copy: Any
    text: str
    all_keys: Optional[frozenset[str]]
    if fast is not None:
        copy, text = fast
        # Not collected: the masking reads the keys from the text (records.py).
        all_keys = None
    else:
        try:
            copy, text, all_keys = snapshot(raw, limits)
        except _InputRefused as refused:
            return RefusedCall(str(refused))
        except Exception as error:  # a __getitem__ or __iter__ of what the caller passed raised
            return RefusedCall(f"the call cannot be read: {error}")
    if not isinstance(copy, dict):
        return RefusedCall("the call must be an object {tool, arguments, context}", copy, text, keys=all_keys)
    if "history" in copy:
        return RefusedCall("history is computed by the adapter and cannot be supplied", copy, text, keys=all_keys)
    issue = first_issue(copy)
    if issue is not None:
        path = ".".join(str(p) for p in issue.path)
        return RefusedCall(f"{_describe(path)}: {issue.message}", copy, text, keys=all_keys)
    amount = copy["arguments"].get("amount")
    if amount is not None and _is_number(amount):
        problem = _amount_problem(amount, number_texts.get("/arguments/amount") if number_texts is not None else None)
        if problem is not None:
            return RefusedCall(f"arguments.amount: an amount {problem}", copy, text, keys=all_keys)
    changes = copy["arguments"].get("changes")
    if changes is not None:
        for key in js_key_order(changes):
            item = changes[key]
            if _is_number(item) and number_texts is None and _amount_problem(item, None) is None:
                continue
            if fold_key(key) not in amount_names:
                continue
            if not _is_number(item):
                return RefusedCall(f"arguments.changes.{key}: an amount must be a finite number", copy, text, keys=all_keys)
            pointer_text = number_texts.get(f"/arguments/changes/{_pointer_token(key)}") if number_texts is not None else None
            problem = _amount_problem(item, pointer_text)
            if problem is not None:
                return RefusedCall(f"arguments.changes.{key}: an amount {problem}", copy, text, keys=all_keys)
    return CheckedCall(copy, text, keys=all_keys)


@fast_init
@dataclass(frozen=True)
class PartialContext:
    """What a refused call names, as far as it can be read (partial_context)."""

    actor_id: Optional[str] = None
    tenant_id: Optional[str] = None
    environment: Optional[str] = None
    tool: Optional[str] = None
    source_system: Optional[str] = None
    request_id: Optional[str] = None
    session_id: Optional[str] = None
    on_behalf_of: Optional[str] = None


def partial_context(raw: Any, max_bytes: int) -> PartialContext:
    """The parts of a refused call safe to read for history and records (input.ts's partialContext):
    the tool, the required and the optional context, each only when it is text a valid call could
    carry there (well-formed, at most ``max_bytes`` bytes of UTF-8; non-blank where §1 requires it).
    Anything else is attributed to no one, so the record of a refused call stays small and writable
    whatever the call held."""
    try:
        if not isinstance(raw, dict):
            return PartialContext()
        context = raw.get("context")
        if not isinstance(context, dict):
            context = {}

        def text(value: Any) -> Optional[str]:
            if not isinstance(value, str) or len(value) > max_bytes or has_lone_surrogate(value):
                return None
            return value if len(value.encode("utf-8")) <= max_bytes else None

        def required(value: Any) -> Optional[str]:
            found = text(value)
            return None if found is None or is_blank(found) else found

        return PartialContext(
            actor_id=required(context.get("actorId")),
            tenant_id=required(context.get("tenantId")),
            environment=required(context.get("environment")),
            tool=required(raw.get("tool")),
            source_system=text(context.get("sourceSystem")),
            request_id=text(context.get("requestId")),
            session_id=text(context.get("sessionId")),
            on_behalf_of=text(context.get("onBehalfOf")),
        )
    except Exception:
        # A mapping in what the agent sent raised: nothing is attributable.
        return PartialContext()
