"""
A faster ``__init__`` for the frozen dataclasses made on every decision.

``@dataclass(frozen=True)`` writes each field through ``object.__setattr__``
(a frozen class's own ``__setattr__`` refuses), one call per field: about half
of what making a Decision or a StoredDecision costs. ``fast_init`` replaces
that ``__init__`` with one of the same signature (same parameters, same
defaults) that fills the instance's ``__dict__`` directly. Everything else the
dataclass generated (``__eq__``, ``__hash__``, ``__repr__``, ``replace``, the
refusal to set or delete a field) is untouched. Only plain fields are
supported: a class with ``__post_init__``, ``InitVar``, ``default_factory``,
keyword-only fields or slots is refused when it is decorated, so the
shortcut never skips a step the generated ``__init__`` would take.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` an ``__init__`` that writes its fields into ``__dict__`` (see the module doc)."""
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or not params.init:
        raise TypeError(f"fast_init: {cls.__name__} is not a frozen dataclass with a generated __init__")
    if hasattr(cls, "__post_init__") or hasattr(cls, "__slots__"):
        raise TypeError(f"fast_init: {cls.__name__} has __post_init__ or __slots__")
    names: list[str] = []
    signature: list[str] = []
    defaults: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not f.init or f.kw_only or f.default_factory is not dataclasses.MISSING or not f.name.isidentifier():
            raise TypeError(f"fast_init: {cls.__name__}.{f.name} is not a plain field")
        names.append(f.name)
        if f.default is dataclasses.MISSING:
            signature.append(f.name)
        else:
            defaults[f"_default_{f.name}"] = f.default
            signature.append(f"{f.name}=_default_{f.name}")
    # An InitVar is no field but a parameter of the generated __init__: the parameters must be the fields, in order.
    generated = list(inspect.signature(cls.__init__).parameters)[1:]
    if generated != names:
        raise TypeError(f"fast_init: {cls.__name__}'s __init__ takes {generated}, not its fields {names}")
    # The instance's __dict__ under a local name no field has (a field named like it would be shadowed).
    local = "_fast_init_fields"
    if local in names or "self" in names:
        raise TypeError(f"fast_init: {cls.__name__} has a field named {local} or self")
    body = "".join(f"    {local}[{name!r}] = {name}\n" for name in names)
    source = f"def __init__(self, {', '.join(signature)}):\n    {local} = self.__dict__\n{body}"
    namespace: dict[str, Any] = dict(defaults)
    exec(source, namespace)  # noqa: S102 - the source is built above from the class's own field names
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)
    return cls


def python_class(cls: type[T]) -> type[T]:
    """
    Keep ``cls`` a Python class in the compiled build (hatch_build.py). mypyc
    turns a class with only the decorators it knows into a C type, which
    cannot be weakly referenced, given attributes, subclassed in Python or,
    when it is a frozen dataclass, copied or pickled; a class with any other
    decorator, this one included, stays a Python class. For the classes an
    application holds, passes around or keeps: both builds then behave alike.
    """
    return cls
