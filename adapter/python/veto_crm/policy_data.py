"""
The parts of the policy's data document (docs/contract.md §2) the adapter
itself needs, and the shape checks of the TypeScript adapter
(adapter/policy-data.ts): a document of the wrong shape is refused
(data_unusable, naming the field, worded as zod's prettifyError words it)
rather than silently read as "nothing configured" by the policy.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from .call_schema import received
from .errors import BundleLoadError
from .input import amount_field_names
from .jsontext import js_key_order, js_string, stringify
from .text import fold_key

DEFAULT_WINDOW_SECONDS = 900
DEFAULT_AMOUNT_FIELDS = ("amount",)

_Path = tuple[Union[str, int], ...]
_Issue = tuple[_Path, str]
_Check = Callable[[Any, _Path, list[_Issue]], None]


def _expect(expected: str, value: Any, path: _Path, issues: list[_Issue]) -> None:
    issues.append((path, f"Invalid input: expected {expected}, received {received(value)}"))


def _string(value: Any, path: _Path, issues: list[_Issue]) -> None:
    if not isinstance(value, str):
        _expect("string", value, path, issues)


def _array_of(item: _Check) -> _Check:
    def check(value: Any, path: _Path, issues: list[_Issue]) -> None:
        if not isinstance(value, list):
            _expect("array", value, path, issues)
            return
        for i, element in enumerate(value):
            item(element, path + (i,), issues)

    return check


def _record_of(item: _Check) -> _Check:
    def check(value: Any, path: _Path, issues: list[_Issue]) -> None:
        if not isinstance(value, dict):
            _expect("record", value, path, issues)
            return
        for key in js_key_order(value):
            item(value[key], path + (key,), issues)

    return check


def _object_of(shape: Mapping[str, _Check], required: Mapping[str, str] | None = None) -> _Check:
    """A zod looseObject; `required` names the properties that must be there, with the kind zod names."""

    def check(value: Any, path: _Path, issues: list[_Issue]) -> None:
        if not isinstance(value, dict):
            _expect("object", value, path, issues)
            return
        for name, child in shape.items():
            if name in value:
                child(value[name], path + (name,), issues)
            elif required is not None and name in required:
                issues.append((path + (name,), f"Invalid input: expected {required[name]}, received undefined"))

    return check


def _number(minimum: float, inclusive: bool) -> _Check:
    def check(value: Any, path: _Path, issues: list[_Issue]) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            _expect("number", value, path, issues)
        elif value < minimum or (not inclusive and value == minimum):
            issues.append((path, f"Too small: expected number to be {'>=' if inclusive else '>'}{minimum}"))

    return check


_CONFIG = _object_of(
    {
        "tools": _record_of(_object_of({"kind": _string})),
        "environments": _array_of(_string),
        "tenants": _record_of(
            _object_of(
                {
                    "approvers": _array_of(_string),
                    "allowed_destinations": _array_of(_string),
                    "approval_threshold": _number(0, True),
                    "max_amount": _number(0, True),
                }
            )
        ),
        "sensitive_fields": _record_of(_array_of(_string)),
        "amount_fields": _array_of(_string),
        "blocked_destinations": _array_of(_string),
        "escalation": _object_of({"deny_threshold": _number(0, True), "window_seconds": _number(0, False)}),
    },
    # Required: without them the policy denies every call, which hides a mistyped document.
    {"tools": "record", "environments": "array", "tenants": "record"},
)
_DOCUMENT = _object_of({"veto": _object_of({"config": _CONFIG})})

_NO_WRAPPER = (
    "it has no veto.config: the document replaces the bundle's data.json whole, so wrap the configuration as "
    '{"veto": {"config": {"tools": …, "environments": …, "tenants": …}}}'
)


def _lacks_wrapper(document: dict[str, Any]) -> bool:
    veto = document.get("veto")
    return not isinstance(veto, dict) or not isinstance(veto.get("config"), dict)


def _dot_path(path: _Path) -> str:
    """zod's toDotPath."""
    segments: list[str] = []
    for seg in path:
        if isinstance(seg, int):
            segments.append(f"[{seg}]")
        elif re.search(r"[^\w$]", seg, re.ASCII):
            segments.append(f"[{js_string(seg)}]")
        else:
            if segments:
                segments.append(".")
            segments.append(seg)
    return "".join(segments)


def _prettify(issues: list[_Issue]) -> str:
    """zod's prettifyError: issues sorted by path length, each ``✖ message`` then ``  → at path``."""
    lines: list[str] = []
    for path, message in sorted(issues, key=lambda issue: len(issue[0])):
        lines.append(f"✖ {message}")
        if path:
            lines.append(f"  → at {_dot_path(path)}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PolicyData:
    #: The whole data document, as given to the policy.
    document: dict[str, Any]
    #: The document's JSON text (what is loaded into the policy's memory).
    json: str
    window_seconds: float
    amount_fields: tuple[str, ...]
    #: amount_fields lower-cased: the input check's amount names.
    amount_names: frozenset[str]
    #: The fold keys (text.py) of every field named sensitive for any object; used to mask record inputs.
    sensitive_fields: frozenset[str]


def _first_non_finite(root: Any) -> Optional[str]:
    keys: list[str] = []

    def walk(value: Any) -> Optional[str]:
        if isinstance(value, float) and not math.isfinite(value):
            return ".".join(["data", *keys])
        items: list[tuple[str, Any]]
        if isinstance(value, dict):
            items = [(k, value[k]) for k in js_key_order(value)]
        elif isinstance(value, list):
            items = [(str(i), v) for i, v in enumerate(value)]
        else:
            return None
        for key, child in items:
            keys.append(key)
            found = walk(child)
            keys.pop()
            if found is not None:
                return found
        return None

    return walk(root)


def read_policy_data(document: Any, label: str) -> PolicyData:
    """Check the data document; raises BundleLoadError("data_unusable") naming what is wrong."""
    issues: list[_Issue] = []
    if isinstance(document, dict) and _lacks_wrapper(document):
        raise BundleLoadError("data_unusable", f"data document {label} is unusable: {_NO_WRAPPER}")
    _DOCUMENT(document, (), issues)
    if issues:
        raise BundleLoadError("data_unusable", f"data document {label} is unusable: {_prettify(issues)}")
    assert isinstance(document, dict)
    non_finite = _first_non_finite(document)
    if non_finite is not None:
        raise BundleLoadError("data_unusable", f"data document {label} is unusable: {non_finite} is not a finite number")
    # veto.derived is the adapter's to fill (docs/contract.md §2): what a document holds there never
    # reaches the module, whatever the module can remove after loading (evaluator.py _store_derived).
    veto = document["veto"]
    loaded = {**document, "veto": {k: v for k, v in veto.items() if k != "derived"}} if "derived" in veto else document
    try:
        text = stringify(loaded)
    except (TypeError, ValueError, RecursionError) as error:
        raise BundleLoadError("data_unusable", f"data document {label} is unusable: {error}") from None
    config = document.get("veto", {}).get("config", {})
    window = config.get("escalation", {}).get("window_seconds", DEFAULT_WINDOW_SECONDS)
    amount_fields = tuple(config.get("amount_fields", DEFAULT_AMOUNT_FIELDS))
    sensitive = frozenset(fold_key(f) for fields in config.get("sensitive_fields", {}).values() for f in fields)
    return PolicyData(document, text, window, amount_fields, amount_field_names(amount_fields), sensitive)
