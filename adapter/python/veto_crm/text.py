"""
How the adapter reads names and required texts: exactly as the policy does
(policy/veto/crm/text.rego) and the TypeScript adapter does
(adapter/common/text.ts), from the same generated tables (unicode_tables.py,
made by scripts/unicode-tables.mjs). See docs/contract.md §9.

- One case-folding rule: two names match when their fold keys are equal. The
  fold key of a name is each character listed in FOLD_TABLE replaced by its
  entry, then Rego's lower() (from the generated table of what OPA's lower()
  does, not from Python's own Unicode data). Names that match under Rego's
  lower(), JavaScript's toLowerCase() or Unicode simple case folding have
  equal keys ("TAX_İD" is "tax_id").
- One idea of blank: a text is blank when it holds nothing but White_Space,
  Default_Ignorable_Code_Point, Cc and Cf characters.
"""

from __future__ import annotations

import re

from .unicode_tables import BLANK_RANGES, FOLD_TABLE, LOWER_RUNS

#: The fold key of each character that has one other than itself, for ``str.translate``.
_FOLD: dict[int, str] = {
    **{cp: chr(cp + delta) for first, last, delta, step in LOWER_RUNS for cp in range(first, last + 1, step)},
    **FOLD_TABLE,
}


def fold_key(name: str) -> str:
    """
    The fold key of a field, object or amount-field name (docs/contract.md §9).
    A name in ASCII has its ASCII lower case as key: no ASCII character is in
    FOLD_TABLE, and lower() maps ASCII as ``str.lower`` does.
    """
    if name.isascii():
        return name.lower()
    return name.translate(_FOLD)


_BLANK = re.compile("[" + "".join(f"{re.escape(chr(first))}-{re.escape(chr(last))}" for first, last in BLANK_RANGES) + "]*")


def is_blank(text: str) -> bool:
    """Whether ``text`` holds nothing but blank characters (docs/contract.md §9); "" is blank."""
    # No printable ASCII character other than the space is blank: a text that starts with one is not.
    if text and "!" <= text[0] <= "~":
        return False
    return _BLANK.fullmatch(text) is not None


#: libuv's descriptions of the errors a file can give (what Node's messages say), by errno name.
_NODE_DESCRIPTIONS = {
    "ENOENT": "no such file or directory",
    "EACCES": "permission denied",
    "EISDIR": "illegal operation on a directory",
    "ENOTDIR": "not a directory",
    "EEXIST": "file already exists",
    "ENOSPC": "no space left on device",
    "EPERM": "operation not permitted",
    "EROFS": "read-only file system",
    "EMFILE": "too many open files",
    "ELOOP": "too many symbolic links encountered",
    "ENAMETOOLONG": "name too long",
    "EIO": "i/o error",
}


def node_error_message(error: OSError, syscall: str = "open") -> str:
    """An OSError worded as Node words it ("ENOENT: no such file or directory, open '/x'"), so messages read alike in both adapters."""
    import errno as errno_module

    if getattr(error, "code", None) == "not_regular_file":
        return str(error)
    code = errno_module.errorcode.get(error.errno or 0)
    if code is None:
        return str(error)
    description = _NODE_DESCRIPTIONS.get(code, (error.strerror or code).lower())
    where = f", {syscall} '{error.filename}'" if error.filename is not None else f", {syscall}"
    return f"{code}: {description}{where}"
