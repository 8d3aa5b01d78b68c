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

    code = errno_module.errorcode.get(error.errno or 0)
    if code is None:
        return str(error)
    description = _NODE_DESCRIPTIONS.get(code, (error.strerror or code).lower())
    where = f", {syscall} '{error.filename}'" if error.filename is not None else f", {syscall}"
    return f"{code}: {description}{where}"
