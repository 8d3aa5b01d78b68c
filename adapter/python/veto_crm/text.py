"""
What counts as blank text: one definition for every check of the Python
adapter (the call's required strings, the command line's blank lines, the
approval API's ids), as the TypeScript adapter has one: ``s.trim() === ""``
with ECMAScript's trim (docs/contract.md §9, "one idea of blank").
"""

from __future__ import annotations

from .jsontext import js_trim


def is_blank(text: str) -> bool:
    """Whether ``text`` holds nothing but what ``String.prototype.trim`` removes."""
    return js_trim(text) == ""
