"""
Files named by operators (a bundle, a data file, a key, a decision log) are
regular files, or they are refused at once (adapter/common/files.ts): reading
/dev/zero never ends, opening a FIFO waits for a writer that may never come,
/dev/null takes records and keeps none, and a directory is not a file. The
open is O_NONBLOCK and O_NOCTTY and the open file is checked with fstat, so a
symlink is judged by what it points to and nothing is read before the check.
"""

from __future__ import annotations

import errno
import os
import stat


class NotRegularFileError(OSError):
    """``path`` exists but is not a regular file."""

    code = "not_regular_file"

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(f"{path} is not a regular file (it is {kind})")
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def file_kind(mode: int) -> str:
    """"a directory", "a character device", ...: for messages."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISREG(mode):
        return "a regular file"
    return "not a file"


def open_regular_file(path: str, flags: int, mode: int = 0o666) -> int:
    """open(2) with ``flags`` plus O_NONBLOCK and O_NOCTTY; the descriptor only when it is a regular file."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0), mode)
    except IsADirectoryError:
        raise NotRegularFileError(path, "a directory") from None
    try:
        st = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise NotRegularFileError(path, file_kind(st.st_mode))
    return fd


def read_regular_file(path: str) -> bytes:
    """The whole of the regular file at ``path``; raises NotRegularFileError or the file system's OSError."""
    fd = open_regular_file(str(path), os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


def regular_file_exists(path: str) -> bool:
    """Whether ``path`` exists as a regular file; raises NotRegularFileError when it exists as something else."""
    try:
        st = os.stat(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR):
            return False
        raise
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFileError(path, file_kind(st.st_mode))
    return True
