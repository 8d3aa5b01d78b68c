"""
The call contract's types (docs/contract.md §1), read from call.schema.json:
the JSON Schema that scripts/call-schema.mjs generates from the TypeScript
adapter's zod ``callSchema``, so both languages validate calls from one
schema.

The schema is interpreted here rather than by a general JSON Schema library
because the first problem found must be reported exactly as zod reports it
(the decision's reason and its record carry the text): zod walks an object's
properties in the schema's order, depth first, reports a missing required
property as ``expected <type>, received undefined`` and unknown keys of a
strict object last. Only the keywords the generated schema uses are known; a
schema with any other keyword is refused when this module loads, so a new
rule in the zod schema cannot be silently ignored here. The tests check this
interpreter against the ``jsonschema`` library on generated calls.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Iterator, Mapping, Optional, Union

from .jsontext import js_key_order
from .text import is_blank

PathItem = Union[str, int]

_KNOWN = frozenset(
    {
        "$schema",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "propertyNames",
        "items",
        "x-veto-not-blank",
        "x-veto-expected",
    }
)
_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})


@dataclass(frozen=True)
class Issue:
    """The first problem found: zod's ``path`` and ``message``."""

    path: tuple[PathItem, ...]
    message: str


def _check_schema(schema: Any, where: str) -> None:
    if not isinstance(schema, dict):
        raise ValueError(f"call.schema.json: {where} is not a schema object")
    unknown = set(schema) - _KNOWN
    if unknown:
        raise ValueError(f"call.schema.json: {where} uses {sorted(unknown)}, which veto_crm/call_schema.py does not enforce")
    kind = schema.get("type")
    if kind is not None and kind not in _TYPES:
        raise ValueError(f"call.schema.json: {where} has type {kind!r}")
    for name, child in schema.get("properties", {}).items():
        _check_schema(child, f"{where}.properties.{name}")
    for key in ("additionalProperties", "propertyNames", "items"):
        child = schema.get(key)
        if child is not None and child is not False:
            _check_schema(child, f"{where}.{key}")


def load_call_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("call.schema.json").read_text(encoding="utf-8")
    schema = json.loads(text)
    _check_schema(schema, "the schema")
    return schema  # type: ignore[no-any-return]


CALL_SCHEMA: Mapping[str, Any] = load_call_schema()


def received(value: Any) -> str:
    """zod's name for what it received (its message names NaN and the infinities, not "number")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "array":
        return isinstance(value, list)
    if kind == "string":
        return isinstance(value, str)
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        return isinstance(value, bool)
    return value is None


def _invalid_type(schema: Mapping[str, Any], value: Any, path: tuple[PathItem, ...], missing: bool = False) -> Issue:
    expected = schema.get("x-veto-expected", schema.get("type"))
    return Issue(path, f"Invalid input: expected {expected}, received {'undefined' if missing else received(value)}")


def _issues(schema: Mapping[str, Any], value: Any, path: tuple[PathItem, ...]) -> Iterator[Issue]:
    kind = schema.get("type")
    if kind is not None and not _type_ok(kind, value):
        yield _invalid_type(schema, value, path)
        return
    blank_message = schema.get("x-veto-not-blank")
    if blank_message is not None and isinstance(value, str) and is_blank(value):
        yield Issue(path, str(blank_message))
    if isinstance(value, list):
        items = schema.get("items")
        if items is not None:
            for i, item in enumerate(value):
                yield from _issues(items, item, path + (i,))
    if isinstance(value, dict):
        properties: Mapping[str, Any] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        for name, child in properties.items():
            if name in value:
                yield from _issues(child, value[name], path + (name,))
            elif name in required:
                yield _invalid_type(child, None, path + (name,), missing=True)
        extra = schema.get("additionalProperties")
        unknown = [k for k in js_key_order(value) if k not in properties]
        if extra is False and unknown:
            listed = ", ".join(f'"{k}"' for k in unknown)
            yield Issue(path, f"Unrecognized key{'s' if len(unknown) > 1 else ''}: {listed}")
        elif isinstance(extra, dict) and extra:
            for k in unknown:
                yield from _issues(extra, value[k], path + (k,))


_KIND_TYPES: Mapping[str, Union[type, tuple[type, ...]]] = {
    "object": dict,
    "array": list,
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "null": type(None),
}


_MISSING = object()


def _generate(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """
    The schema as one generated function answering only "valid?" (the common case), from the same keywords
    as _issues, each test written out in line: no call per property, and a strict object's unknown keys
    found by one set comparison. Which test fails first does not matter here (first_issue asks _issues for
    the issue), so the tests run in whatever order is cheapest.
    """
    constants: dict[str, Any] = {"is_blank": is_blank, "_MISSING": _MISSING}
    lines = ["def valid(v0):"]
    names = iter(range(1, 1_000_000))

    def constant(value: Any) -> str:
        name = f"_k{len(constants)}"
        constants[name] = value
        return name

    def emit(node: Mapping[str, Any], var: str, depth: int) -> bool:
        """Write the tests of ``node`` on ``var``; False when it has none (then only a pass was written)."""
        pad = "    " * depth
        start = len(lines)
        kind = node.get("type")
        if kind is not None:
            test = f"not isinstance({var}, {constant(_KIND_TYPES[kind])})"
            if kind in ("number", "integer"):
                test += f" or isinstance({var}, bool)"
            lines.append(f"{pad}if {test}:")
            lines.append(f"{pad}    return False")
        if "x-veto-not-blank" in node:
            lines.append(f"{pad}if isinstance({var}, str) and is_blank({var}):")
            lines.append(f"{pad}    return False")
        items = node.get("items")
        if isinstance(items, dict):
            item = f"v{next(names)}"
            lines.append(f"{pad}if isinstance({var}, list):")
            lines.append(f"{pad}    for {item} in {var}:")
            emit(items, item, depth + 2)
        properties: Mapping[str, Any] = node.get("properties", {})
        required = tuple(node.get("required", ()))
        extra: Any = node.get("additionalProperties")
        extra_checked = isinstance(extra, dict) and bool(extra)
        if properties or required or extra is False or extra_checked:
            lines.append(f"{pad}if isinstance({var}, dict):")
            inner = pad + "    "
            body = len(lines)
            for name in required:
                lines.append(f"{inner}if {name!r} not in {var}:")
                lines.append(f"{inner}    return False")
            if extra is False:
                lines.append(f"{inner}if not {var}.keys() <= {constant(frozenset(properties))}:")
                lines.append(f"{inner}    return False")
            for name, child in properties.items():
                value = f"v{next(names)}"
                mark = len(lines)
                lines.append(f"{inner}{value} = {var}.get({name!r}, _MISSING)")
                lines.append(f"{inner}if {value} is not _MISSING:")
                if not emit(child, value, depth + 2):
                    # The property takes anything: nothing to test.
                    del lines[mark:]
            if extra_checked:
                key, value = f"v{next(names)}", f"v{next(names)}"
                lines.append(f"{inner}for {key}, {value} in {var}.items():")
                lines.append(f"{inner}    if {key} not in {constant(frozenset(properties))}:")
                emit(extra, value, depth + 3)
            if len(lines) == body:
                lines.append(f"{inner}pass")
        if len(lines) == start:
            lines.append(f"{pad}pass")
            return False
        return True

    emit(schema, "v0", 1)
    lines.append("    return True")
    exec("\n".join(lines), constants)  # noqa: S102 - the source is built above from the schema's own keywords
    valid: Callable[[Any], bool] = constants["valid"]
    return valid


_VALID = _generate(CALL_SCHEMA)


def first_issue(value: Any, schema: Optional[Mapping[str, Any]] = None) -> Optional[Issue]:
    """The first problem zod would report for ``value``, or None when it is valid."""
    if schema is None:
        if _VALID(value):
            return None
        schema = CALL_SCHEMA
    return next(_issues(schema, value, ()), None)
