"""
The durable, tamper-evident decision log, in the TypeScript adapter's file
format (adapter/log/*), so a log written here passes ``veto log verify`` and
the other way round:

- append-only JSON Lines, one canonical JSON record per line (keys sorted by
  UTF-16 code units, no white space, JavaScript numbers and escapes);
- hash-chained: each record gets ``seq`` (1, 2, ... across every file of the
  log), ``prev_hash`` (the previous record's ``hash``, or GENESIS_HASH) and
  ``hash`` = "sha256:" + hex SHA-256 of the canonical JSON of the record
  without ``hash``; the line is the canonical JSON of the whole sealed record;
- one writer per log: the lock file PATH.lock holds the writer's pid, taken by
  hard-linking a private temporary file (the same protocol, so a Python and a
  Node writer exclude each other); a dead writer's lock is taken over;
- ``write`` returns only after the record's bytes are fdatasync'ed; records
  written by several threads while a sync is in flight are committed together
  by the next one;
- rotation by size continues the chain in PATH.1, PATH.2, ...;
- with ``checkpoint_key`` (Ed25519), signed checkpoints (checkpoint.py) on
  open, every ``checkpoint_every`` records, at the end of a file it rotates
  away from (after the next file exists) and at close;
- any write, sync or rotation error fails the log for good
  (RecordUnavailableError); opening checks the whole chain and repairs a torn
  final line (a crash mid-write), refusing anything else (LogCorruptError).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from .errors import (
    CanonicalJsonError,
    DecisionLogError,
    LogCorruptError,
    LogLockedError,
    RecordUnavailableError,
)
from .checkpoint import (
    CheckpointKeyInput,
    CheckpointSigner,
    CheckpointTracker,
    SeenCheckpoint,
    Uncovered,
    checkpoint_public_keys,
    checkpoint_time,
    parse_checkpoint,
    uncovered_text,
)
from .files import NotRegularFileError, open_regular_file
from .jsontext import JsonParseError, has_lone_surrogate, js_number, js_string, parse, utf16_key

GENESIS_HASH = "sha256:" + "0" * 64
RESERVED_FIELDS = ("seq", "prev_hash", "hash", "checkpoint")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
DEFAULT_CHECKPOINT_EVERY = 1000

_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")

# ---------------------------------------------------------------------------
# Canonical JSON of records (adapter/common/canonical-json.ts): refuses what has no JSON form.


def _pointer_token(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _write_canonical(value: Any, pointer: str, parts: list[str], depth: int = 0) -> None:
    if isinstance(value, str):
        if has_lone_surrogate(value):
            raise CanonicalJsonError(pointer, "string contains a lone surrogate (not I-JSON)")
        parts.append(js_string(value))
    elif value is None:
        parts.append("null")
    elif value is True:
        parts.append("true")
    elif value is False:
        parts.append("false")
    elif isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise CanonicalJsonError(pointer, f"{js_infinity(value)} is not a JSON number")
        parts.append(js_number(value))
    elif isinstance(value, (list, tuple)):
        if depth > 5000:
            raise CanonicalJsonError(pointer, "nested too deeply")
        parts.append("[")
        for i, item in enumerate(value):
            if i:
                parts.append(",")
            _write_canonical(item, f"{pointer}/{i}", parts, depth + 1)
        parts.append("]")
    elif isinstance(value, dict):
        if depth > 5000:
            raise CanonicalJsonError(pointer, "nested too deeply")
        parts.append("{")
        for i, key in enumerate(_sorted_keys(value, pointer)):
            child = f"{pointer}/{_pointer_token(key)}"
            if i:
                parts.append(",")
            if has_lone_surrogate(key):
                raise CanonicalJsonError(child, "string contains a lone surrogate (not I-JSON)")
            parts.append(js_string(key))
            parts.append(":")
            _write_canonical(value[key], child, parts, depth + 1)
        parts.append("}")
    else:
        raise CanonicalJsonError(pointer, f"{type(value).__name__} is not a plain object")


def js_infinity(value: float) -> str:
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def _sorted_keys(value: dict[Any, Any], pointer: str) -> list[str]:
    for key in value:
        if not isinstance(key, str):
            raise CanonicalJsonError(pointer, f"key {key!r} is not a string")
    return sorted(value, key=utf16_key)


def canonical_json(value: Any) -> str:
    """Canonical JSON (RFC 8785 style); raises CanonicalJsonError naming the JSON pointer of a value with no JSON form."""
    parts: list[str] = []
    try:
        _write_canonical(value, "", parts)
    except RecursionError:
        raise CanonicalJsonError("", "nested too deeply") from None
    return "".join(parts)


def _members(record: dict[str, Any]) -> list[tuple[str, str]]:
    """The members of an object in canonical order, each as its ``"key":value`` text."""
    out = []
    for key in _sorted_keys(record, ""):
        pointer = f"/{_pointer_token(key)}"
        if has_lone_surrogate(key):
            raise CanonicalJsonError(pointer, "string contains a lone surrogate (not I-JSON)")
        parts = [js_string(key), ":"]
        try:
            _write_canonical(record[key], pointer, parts)
        except RecursionError:
            raise CanonicalJsonError(pointer, "nested too deeply") from None
        out.append((key, "".join(parts)))
    return out


def _join(members: Sequence[tuple[str, str]], omit: Optional[str] = None) -> str:
    return "{" + ",".join(text for key, text in members if key != omit) + "}"


def _sha256(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SealedLine:
    seq: int
    hash: str
    #: Canonical JSON of the sealed record, without the newline.
    text: str


def seal_record(record: dict[str, Any], seq: int, prev_hash: str) -> SealedLine:
    """Seal ``record`` as number ``seq`` after ``prev_hash``; raises CanonicalJsonError."""
    if not isinstance(record, dict):
        raise CanonicalJsonError("", "a record must be a JSON object")
    for field in RESERVED_FIELDS:
        if field in record:
            raise CanonicalJsonError(f"/{field}", "field is reserved for the log's hash chain")
    body = dict(record)
    body["seq"] = seq
    body["prev_hash"] = prev_hash
    body["hash"] = GENESIS_HASH
    members = _members(body)
    digest = _sha256(_join(members, "hash"))
    members = [(k, f'"hash":"{digest}"' if k == "hash" else t) for k, t in members]
    return SealedLine(seq, digest, _join(members))


def seal_checkpoint(checkpoint: dict[str, Any], seq: int, prev_hash: str) -> SealedLine:
    """Seal a signed checkpoint as entry ``seq`` after ``prev_hash`` (chain.ts sealCheckpoint)."""
    body: dict[str, Any] = {"checkpoint": dict(checkpoint), "seq": seq, "prev_hash": prev_hash, "hash": GENESIS_HASH}
    members = _members(body)
    digest = _sha256(_join(members, "hash"))
    members = [(k, f'"hash":"{digest}"' if k == "hash" else t) for k, t in members]
    return SealedLine(seq, digest, _join(members))


# ---------------------------------------------------------------------------
# Checking the chain (log/chain.ts)


@dataclass(frozen=True)
class LinePlace:
    file: str
    line: int


# The writer escapes every control character inside strings and writes no white space outside them.
_CONTROL = re.compile("[\x00-\x1f]")


def _utf16_column(text: str, index: int) -> int:
    """1-based column in UTF-16 code units, as JavaScript counts it."""
    return len(text[:index].encode("utf-16-le")) // 2 + 1


class ChainChecker:
    """Checks lines in chain order; each accepted line moves the chain on. ``problem`` texts are verify's."""

    def __init__(self) -> None:
        self.count = 0
        self.head = GENESIS_HASH
        self.last_place: Optional[LinePlace] = None

    def peek(self, data: bytes, place: LinePlace) -> Union[tuple[dict[str, Any], int, str, Optional[dict[str, Any]]], str]:
        """
        The entry, its seq, hash and checkpoint (None for a record), or the
        problem. Lines are read strictly (chain.ts): a byte order mark, a
        carriage return or any other control byte, invalid UTF-8 or JSON not
        in canonical form is a failure naming the line, never normalized.
        """
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return "not valid UTF-8"
        if text == "":
            return "empty line"
        if text.startswith("\ufeff"):
            return "byte order mark (U+FEFF) at the start of the line"
        control = _CONTROL.search(text)
        if control is not None:
            code = ord(control.group(0))
            what = "carriage return (CR)" if code == 0x0D else f"control character 0x{code:02x}"
            return f"{what} at column {_utf16_column(text, control.start())}"
        try:
            parsed = parse(text)
        except JsonParseError:
            return "not valid JSON"
        if not isinstance(parsed, dict):
            return "not a JSON object"
        try:
            members: Optional[list[tuple[str, str]]] = _members(parsed)
        except CanonicalJsonError:
            members = None
        if members is None or _join(members) != text:
            return "not canonical JSON"
        seq, prev_hash, digest = parsed.get("seq"), parsed.get("prev_hash"), parsed.get("hash")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or seq > 2**53 - 1:
            return "seq missing or not a positive integer"
        if not isinstance(prev_hash, str) or not _HASH_PATTERN.match(prev_hash):
            return "prev_hash missing or malformed"
        if not isinstance(digest, str) or not _HASH_PATTERN.match(digest):
            return "hash missing or malformed"
        if _sha256(_join(members, "hash")) != digest:
            return "hash mismatch"
        checkpoint: Optional[dict[str, Any]] = None
        if "checkpoint" in parsed:
            if len(members) != 4:
                return "checkpoint line has members besides checkpoint, seq, prev_hash and hash"
            found = parse_checkpoint(parsed["checkpoint"])
            if isinstance(found, str):
                return found
            # A checkpoint vouches for exactly the entries before it.
            if found["seq"] != seq - 1:
                return f"checkpoint covers seq {found['seq']}, but it is entry {seq}"
            if found["head"] != prev_hash:
                return "checkpoint head is not its prev_hash"
            checkpoint = found
        if prev_hash != self.head:
            last = self.last_place
            if last is None:
                return "prev_hash is not the start of the chain"
            where = f"line {last.line}" if last.file == place.file else f"{last.file} line {last.line}"
            return f"prev_hash does not match {where}"
        if seq != self.count + 1:
            return f"seq {seq}, expected {self.count + 1}"
        return parsed, seq, digest, checkpoint

    def accept(self, data: bytes, place: LinePlace) -> Union[tuple[dict[str, Any], int, str, Optional[dict[str, Any]]], str]:
        result = self.peek(data, place)
        if not isinstance(result, str):
            self.count = result[1]
            self.head = result[2]
            self.last_place = place
        return result


# ---------------------------------------------------------------------------
# The log's files (log/segments.ts)


def log_files(path: str) -> list[str]:
    """PATH and its existing continuations PATH.1, PATH.2, ... in chain order."""
    base = os.path.basename(path)
    directory = os.path.dirname(path) or "."
    try:
        names = os.listdir(directory)
    except OSError:
        return [path]
    continuations = []
    for name in names:
        if not name.startswith(base + "."):
            continue
        suffix = name[len(base) + 1 :]
        if re.fullmatch(r"[1-9][0-9]*", suffix):
            continuations.append((int(suffix), os.path.join(os.path.dirname(path), name)))
    continuations.sort()
    return [path, *(file for _, file in continuations)]


def expand_log_paths(paths: Sequence[str]) -> list[str]:
    """Each path expanded with log_files; a continuation PATH.N given beside its PATH folded into it."""
    given = {os.path.abspath(p) for p in paths}
    seen: set[str] = set()
    files = []
    for path in paths:
        m = re.fullmatch(r"(.*)\.[1-9][0-9]*", path, re.DOTALL)
        base = m.group(1) if m is not None and os.path.abspath(m.group(1)) in given else path
        for file in log_files(base):
            key = os.path.abspath(file)
            if key in seen:
                continue
            seen.add(key)
            files.append(file)
    return files


#: Longest line a log may hold, in bytes without its newline (segments.ts MAX_RECORD_LINE_BYTES).
MAX_RECORD_LINE_BYTES = 64 * 1024 * 1024


def _scan_lines(file: str) -> Iterator[tuple[Optional[bytes], int, int, bool, int]]:
    """(bytes without the newline or None past the limit, 1-based line, offset, terminated, length), split on "\\n" only."""
    fd = open_regular_file(file, os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    start = 0
    line = 0
    while True:
        nl = data.find(b"\n", start)
        if nl < 0:
            break
        line += 1
        length = nl - start
        yield (data[start:nl] if length <= MAX_RECORD_LINE_BYTES else None), line, start, True, length
        start = nl + 1
    if start < len(data):
        length = len(data) - start
        yield (data[start:] if length <= MAX_RECORD_LINE_BYTES else None), line + 1, start, False, length


@dataclass(frozen=True)
class TornTail:
    file: str
    line: int
    offset: int
    length: int
    #: A whole valid next record lacking only its newline.
    complete: bool


@dataclass(frozen=True)
class ChainWalk:
    ok: bool
    files: tuple[str, ...] = ()
    count: int = 0
    head: str = GENESIS_HASH
    torn: Optional[TornTail] = None
    #: For a break: the file, the 1-based line (0: the file as a whole) and verify's text.
    file: str = ""
    line: int = 0
    reason: str = ""
    tracker: Optional[CheckpointTracker] = None
    #: The log ends with a rotation checkpoint and the file it rotated to is empty.
    dangling_rotation: Optional[tuple[str, int, str]] = None
    #: Where the last file's segment starts (index, after_seq, after_hash).
    segment: Optional[dict[str, Any]] = None


def _errno_code(error: OSError) -> str:
    import errno

    if isinstance(error, NotRegularFileError):
        return str(error)[len(f"{error.path} is ") :]
    return errno.errorcode.get(error.errno or 0, str(error))


def _continuation_index(base: str, file: str) -> Optional[int]:
    if os.path.abspath(os.path.dirname(file)) != os.path.abspath(os.path.dirname(base)):
        return None
    name = os.path.basename(file)
    prefix = os.path.basename(base) + "."
    if not name.startswith(prefix):
        return None
    suffix = name[len(prefix) :]
    return int(suffix) if re.fullmatch(r"[1-9][0-9]*", suffix) else None


def _is_empty_file(file: str) -> bool:
    try:
        return os.stat(file).st_size == 0
    except OSError:
        return False


def walk_chain(
    files: Sequence[str],
    on_record: Optional[Callable[[str, int, dict[str, Any]], None]] = None,
    keys: Optional[dict[str, Any]] = None,
    unknown_keys: str = "fail",
) -> ChainWalk:
    """
    Check the chain through ``files`` in order (files[k] is segment k),
    records and checkpoints alike (segments.ts walkChain); ``keys``: the
    public keys checkpoint signatures are checked with. ``on_record`` sees the
    records, not the checkpoints.
    """
    checker = ChainChecker()
    tracker = CheckpointTracker(keys, canonical_json, unknown_keys)
    torn: Optional[TornTail] = None
    segment: dict[str, Any] = {"index": 0, "after_seq": 0, "after_hash": checker.head}
    rotation: Optional[tuple[str, int]] = None
    base = files[0] if files else ""
    for index, file in enumerate(files):
        is_last = index == len(files) - 1
        named = None if index == 0 else _continuation_index(base, file)
        gap: Optional[ChainWalk] = None
        if named is not None and named != index:
            previous = os.path.basename(files[index - 1] if index > 0 else base)
            gap = ChainWalk(False, file=file, line=0, reason=f"segment {base}.{index} is missing ({os.path.basename(file)} follows {previous})")
        segment = {"index": index, "after_seq": checker.count, "after_hash": checker.head}
        if torn is not None:
            # Only an empty last file may follow a torn line.
            if gap is None and is_last and _is_empty_file(file):
                continue
            return ChainWalk(False, file=torn.file, line=torn.line, reason=f"line {torn.line}: torn final line")
        lines = 0
        try:
            for data, line, offset, terminated, length in _scan_lines(file):
                lines = line
                place = LinePlace(file, line)
                if rotation is not None and rotation[0] == file:
                    return ChainWalk(False, file=file, line=line, reason=f"line {line}: follows the rotation checkpoint at line {rotation[1]}, which ends its file")
                if not terminated:
                    later_empty = is_last or (index == len(files) - 2 and _is_empty_file(files[index + 1]))
                    if not later_empty:
                        return ChainWalk(False, file=file, line=line, reason=f"line {line}: torn final line")
                    result = None if data is None else checker.accept(data, place)
                    if gap is not None:
                        return gap
                    if result is not None and not isinstance(result, str):
                        problem = tracker.entry(result[1], result[2], result[3], file, line, segment)
                        if problem is not None:
                            return ChainWalk(False, file=file, line=line, reason=f"line {line}: {problem}")
                        if result[3] is None and on_record is not None:
                            on_record(file, line, result[0])
                        rotation = (file, line) if result[3] is not None and result[3]["reason"] == "rotation" else None
                    torn = TornTail(file, line, offset, length, result is not None and not isinstance(result, str))
                    break
                if data is None:
                    return ChainWalk(False, file=file, line=line, reason=f"line {line}: longer than {MAX_RECORD_LINE_BYTES} bytes, which no record is")
                result = checker.accept(data, place)
                if isinstance(result, str):
                    return ChainWalk(False, file=file, line=line, reason=f"line {line}: {result}")
                if gap is not None:
                    return gap
                problem = tracker.entry(result[1], result[2], result[3], file, line, segment)
                if problem is not None:
                    return ChainWalk(False, file=file, line=line, reason=f"line {line}: {problem}")
                if result[3] is None and on_record is not None:
                    on_record(file, line, result[0])
                rotation = (file, line) if result[3] is not None and result[3]["reason"] == "rotation" else None
        except OSError as error:
            return ChainWalk(False, file=file, line=0, reason=f"cannot read file: {_errno_code(error)}")
        if gap is not None:
            return gap
        if lines == 0 and not is_last:
            return ChainWalk(False, file=file, line=0, reason="file is empty")
    dangling: Optional[tuple[str, int, str]] = None
    if rotation is not None:
        at_end = rotation[0] == files[-1]
        following = f"{base}.{segment['index'] + (1 if at_end else 0)}"
        if at_end:
            return ChainWalk(
                False,
                file=rotation[0],
                line=rotation[1],
                reason=f"line {rotation[1]}: rotation checkpoint, but {os.path.basename(following)}, the file it continues the log in, is missing",
            )
        dangling = (rotation[0], rotation[1], following)
    return ChainWalk(True, tuple(files), checker.count, checker.head, torn, tracker=tracker, dangling_rotation=dangling, segment=segment)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int = 0
    head: str = GENESIS_HASH
    files: tuple[str, ...] = ()
    file: str = ""
    line: int = 0
    reason: str = ""
    #: Present when the log holds checkpoints or public keys were given.
    records: int = 0
    checkpoints: int = 0
    last_checkpoint: Optional[SeenCheckpoint] = None
    uncovered: Optional[Uncovered] = None
    has_checkpoint_report: bool = False


def verify_log(
    paths: Sequence[str],
    expand: bool = True,
    public_keys: Optional[Union[CheckpointKeyInput, Sequence[CheckpointKeyInput]]] = None,
    require_checkpointed: bool = False,
) -> VerifyResult:
    """
    Verify the log at ``paths`` as one chain, checkpoints included; never
    raises for a damaged or missing file. With ``public_keys`` (Ed25519, any
    one per checkpoint), every checkpoint's signature must verify and the log
    must hold one; ``require_checkpointed``: no record may follow the last.
    Raises DecisionLogError("invalid_options") for unusable options.
    """
    keys = None if public_keys is None else checkpoint_public_keys(public_keys, "verify_log: public_keys")
    if keys is None and require_checkpointed:
        raise DecisionLogError("invalid_options", "verify_log: require_checkpointed needs public_keys")
    files = expand_log_paths(paths) if expand else list(paths)
    last_file = files[-1] if files else ""
    walk = walk_chain(files, keys=keys)
    if not walk.ok:
        return VerifyResult(False, file=walk.file, line=walk.line, reason=walk.reason)
    if walk.torn is not None:
        return VerifyResult(False, file=walk.torn.file, line=walk.torn.line, reason=f"line {walk.torn.line}: torn final line")
    if walk.dangling_rotation is not None:
        file, line, following = walk.dangling_rotation
        return VerifyResult(
            False, file=following, line=0, reason=f"file is empty, but {os.path.basename(file)} line {line} is a rotation checkpoint that continues the log in it"
        )
    tracker = walk.tracker
    assert tracker is not None
    if keys is not None and tracker.checkpoints == 0:
        reason = "no signed checkpoint: the log is empty" if walk.count == 0 else f"no signed checkpoint: none of its {walk.count} entries is covered"
        return VerifyResult(False, file=last_file, line=0, reason=reason)
    uncovered = tracker.uncovered
    if require_checkpointed and uncovered is not None:
        last = tracker.last
        where = "" if last is None else f" ({'' if last.file == uncovered.file else last.file + ' '}line {last.line})"
        return VerifyResult(
            False, file=uncovered.file, line=uncovered.line, reason=f"line {uncovered.line}: {uncovered_text(uncovered.entries)}{where}, not covered by a signature"
        )
    return VerifyResult(
        True,
        walk.count,
        walk.head,
        walk.files,
        records=tracker.records,
        checkpoints=tracker.checkpoints,
        last_checkpoint=tracker.last,
        uncovered=uncovered,
        has_checkpoint_report=tracker.checkpoints > 0 or keys is not None,
    )


def read_log(paths: Sequence[str], expand: bool = True) -> list[dict[str, Any]]:
    """Every record of a log, in order, after verifying the whole chain (checkpoints checked and left out); raises LogCorruptError."""
    files = expand_log_paths(paths) if expand else list(paths)
    records: list[dict[str, Any]] = []
    walk = walk_chain(files, lambda _f, _l, record: records.append(record))
    if not walk.ok:
        raise LogCorruptError(walk.file, walk.line, walk.reason)
    if walk.torn is not None:
        raise LogCorruptError(walk.torn.file, walk.torn.line, f"line {walk.torn.line}: torn final line")
    return records


# ---------------------------------------------------------------------------
# One writer per log (log/lock.ts)

_ATTEMPTS = 4
_GONE = object()


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _lock_holder(path: str) -> Any:
    """The pid in a lock file; _GONE when the file is gone, None when it holds no pid."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            text = handle.read()
    except FileNotFoundError:
        return _GONE
    m = re.fullmatch(r"([1-9][0-9]*)\n", text)
    return int(m.group(1)) if m else None


def _link_exclusive(source: str, target: str) -> bool:
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        return False


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _locked_error(lock_path: str, pid: Optional[int], log_path: str) -> LogLockedError:
    if pid is None:
        return LogLockedError(lock_path, None, f"{lock_path} exists but holds no pid; if no process writes {log_path}, remove it")
    who = "this process" if pid == os.getpid() else f"process {pid}"
    return LogLockedError(lock_path, pid, f"{log_path} is already being written by {who} (lock {lock_path})")


class LogLock:
    def __init__(self, path: str, taken_over_from: Optional[int]) -> None:
        self.path = path
        self.taken_over_from = taken_over_from

    def release(self) -> None:
        try:
            holder = _lock_holder(self.path)
        except OSError:
            return
        if holder == os.getpid():
            _unlink_quietly(self.path)


def acquire_log_lock(log_path: str) -> LogLock:
    lock_path = f"{log_path}.lock"
    guard_path = f"{lock_path}.takeover"
    mine = f"{lock_path}.{os.getpid()}.{secrets.token_hex(6)}"
    fd = os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    finally:
        os.close(fd)
    taken_over_from: Optional[int] = None
    try:
        for _ in range(_ATTEMPTS):
            if _link_exclusive(mine, lock_path):
                return LogLock(lock_path, taken_over_from)
            holder = _lock_holder(lock_path)
            if holder is _GONE:
                continue  # released meanwhile
            if holder is None or _is_alive(holder):
                raise _locked_error(lock_path, holder, log_path)
            # Stale: its writer is dead. Take it over under the takeover guard.
            if not _link_exclusive(mine, guard_path):
                guard_holder = _lock_holder(guard_path)
                if isinstance(guard_holder, int) and not _is_alive(guard_holder):
                    _unlink_quietly(guard_path)
                    continue
                raise _locked_error(lock_path, guard_holder if isinstance(guard_holder, int) else None, log_path)
            try:
                if _lock_holder(lock_path) == holder:
                    _unlink_quietly(lock_path)
                    taken_over_from = holder
            finally:
                _unlink_quietly(guard_path)
        final = _lock_holder(lock_path)
        raise _locked_error(lock_path, final if isinstance(final, int) else None, log_path)
    finally:
        _unlink_quietly(mine)


# ---------------------------------------------------------------------------
# The writer (log/file-log.ts)


@dataclass(frozen=True)
class WrittenRecord:
    seq: int
    hash: str
    file: str


@dataclass(frozen=True)
class RecoveryReport:
    files: tuple[str, ...]
    records: int
    head: str
    #: "truncated" or "completed" when a torn final line was repaired, else None.
    torn_tail: Optional[str]
    stale_lock_from: Optional[int]


def _sync_directory(file: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(file)), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_fully(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(f"write made no progress with {len(view)} bytes left")
        view = view[written:]


_APPEND = os.O_WRONLY | os.O_APPEND


@dataclass(frozen=True)
class _Pending:
    kind: str  # "record" or a checkpoint's reason
    seq: int
    hash: str
    data: bytes
    #: Continue in the next file before writing this entry; ``closing`` (the
    #: rotation checkpoint, when the log signs) ends the current file first.
    rotate: bool = False
    closing: Optional[bytes] = None


@dataclass
class _Checkpointing:
    signer: CheckpointSigner
    every: int
    clock: Callable[[], int]
    log_id: str


def _epoch_ms() -> int:
    return time.time_ns() // 1_000_000


class FileDecisionLog:
    """A record sink: the hash-chained file log. Open with ``FileDecisionLog.open(path)``; thread-safe."""

    def __init__(
        self,
        path: str,
        lock: LogLock,
        fd: int,
        file: str,
        file_index: int,
        size: int,
        count: int,
        head: str,
        max_bytes: int,
        recovery: RecoveryReport,
        checkpointing: Optional[_Checkpointing] = None,
        segment: Optional[dict[str, Any]] = None,
        last_entry: Optional[str] = None,
        uncovered: int = 0,
    ) -> None:
        self.path = path
        self.recovery = recovery
        self._lock_file = lock
        self._fd = fd
        self._file = file
        self._file_index = file_index
        self._next_seq = count + 1
        self._head = head
        self._max_bytes = max_bytes
        self._checkpointing = checkpointing
        # Where entries go, decided as they are queued (so that a rotation
        # checkpoint can take its place in the chain before the record that
        # starts the next file).
        self._plan_size = size
        self._plan_index = file_index
        after = segment or {"after_seq": count, "after_hash": head}
        self._plan_after = (int(after["after_seq"]), str(after["after_hash"]))
        self._last_entry = last_entry
        self._records_since_checkpoint = uncovered
        self._mutex = threading.Lock()
        self._cond = threading.Condition(self._mutex)
        self._queue: list[_Pending] = []
        self._written: dict[int, str] = {}
        self._durable_seq = count
        self._flushing = False
        self._failure: Optional[RecordUnavailableError] = None
        self._closed = False

    @classmethod
    def open(
        cls,
        path: Union[str, Path],
        max_bytes: int = DEFAULT_MAX_BYTES,
        checkpoint_key: Optional[CheckpointKeyInput] = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
        clock: Optional[Callable[[], int]] = None,
    ) -> "FileDecisionLog":
        """
        Open the log at ``path`` for appending (file-log.ts FileDecisionLog.open).
        ``checkpoint_key``: an Ed25519 private key (PEM text or bytes, or a
        key object) that signs checkpoints into the log; a log that holds
        checkpoints opens only with one (DecisionLogError
        "checkpoint_key_required"). ``checkpoint_every``: records between
        interval checkpoints. ``clock``: epoch milliseconds for a
        checkpoint's ``time``.
        """
        path = str(path)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise DecisionLogError("invalid_options", f"max_bytes must be a positive integer, got {max_bytes}")
        if isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int) or checkpoint_every < 1:
            raise DecisionLogError("invalid_options", f"checkpoint_every must be a positive integer, got {checkpoint_every}")
        if clock is not None and not callable(clock):
            raise DecisionLogError("invalid_options", "clock must be a function returning epoch milliseconds")
        signer = None if checkpoint_key is None else CheckpointSigner(checkpoint_key, canonical_json)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise DecisionLogError("invalid_options", f"decision log {path}: directory {directory} does not exist (create it first)")
        lock = acquire_log_lock(path)
        fd: Optional[int] = None
        try:
            files = log_files(path)
            exists = os.path.exists(path)
            # The writer checks the signatures of its own key; it cannot check another key's.
            keys = None if signer is None else {signer.key_id: signer.public_key}
            walk = walk_chain(files if exists else [], keys=keys, unknown_keys="accept")
            if not walk.ok:
                raise LogCorruptError(walk.file, walk.line, walk.reason)
            if not exists and len(files) > 1:
                raise LogCorruptError(path, 0, "cannot read file: ENOENT (its continuations exist)")
            tracker = walk.tracker
            last_checkpoint = tracker.last if tracker is not None else None
            uncovered = tracker.uncovered if tracker is not None else None
            if signer is None and last_checkpoint is not None:
                # Appending unsigned records would leave them uncovered for good.
                raise DecisionLogError(
                    "checkpoint_key_required",
                    f"decision log {path} holds signed checkpoints (the last by key {last_checkpoint.checkpoint['key_id']}); "
                    "open it with its signing key (checkpoint_key, --signing-key) so that it stays covered",
                )
            if signer is not None and last_checkpoint is not None and last_checkpoint.checkpoint["reason"] == "close" and uncovered is not None:
                # A writer with a key ends with a close checkpoint and writes nothing after it.
                raise LogCorruptError(
                    uncovered.file,
                    uncovered.line,
                    f"line {uncovered.line}: {uncovered_text(uncovered.entries)} (the log was closed at {last_checkpoint.file} line {last_checkpoint.line}): "
                    "written without the signing key, or forged; verify the log and move it aside",
                )
            file = files[-1] if files else path
            if exists:
                fd = os.open(file, _APPEND)
            else:
                fd = os.open(file, _APPEND | os.O_CREAT | os.O_EXCL, 0o666)
                _sync_directory(file)
            torn_action: Optional[str] = None
            size = os.path.getsize(file) if exists else 0
            if walk.torn is not None:
                torn = walk.torn
                # In the last file, or in the one before an empty last file (a crash while rotating).
                torn_fd = fd if torn.file == file else os.open(torn.file, _APPEND)
                try:
                    if torn.complete:
                        _write_fully(torn_fd, b"\n")
                    else:
                        os.ftruncate(torn_fd, torn.offset)
                    os.fsync(torn_fd)
                finally:
                    if torn_fd != fd:
                        os.close(torn_fd)
                if torn.file == file:
                    size = size + 1 if torn.complete else torn.offset
                torn_action = "completed" if torn.complete else "truncated"
            recovery = RecoveryReport(walk.files if exists else (file,), walk.count, walk.head, torn_action, lock.taken_over_from)
            checkpointing = (
                None
                if signer is None
                else _Checkpointing(signer, checkpoint_every, clock or _epoch_ms, (tracker.log_id if tracker is not None else None) or secrets.token_hex(16))
            )
            last_entry = "record" if uncovered is not None else (last_checkpoint.checkpoint["reason"] if last_checkpoint is not None else None)
            log = cls(
                path,
                lock,
                fd,
                file,
                max(len(files) - 1, 0),
                size,
                walk.count,
                walk.head,
                max_bytes,
                recovery,
                checkpointing,
                walk.segment,
                last_entry,
                uncovered.entries if uncovered is not None else 0,
            )
        except BaseException:
            if fd is not None:
                os.close(fd)
            lock.release()
            raise
        # Vouch for what was found (a new log, records a crash left uncovered,
        # a rotation a crash interrupted) before taking new records. Always:
        # records of this session then follow an open checkpoint, so records
        # after a close checkpoint can only have been written without the key.
        if checkpointing is not None:
            try:
                log._checkpoint("open")
            except BaseException:
                log.close()
                raise
        return log

    @property
    def head(self) -> str:
        """Hash of the last entry written (acknowledged or still in flight)."""
        return self._head

    @property
    def checkpoint_key_id(self) -> Optional[str]:
        """The key id checkpoints are signed with, or None without a checkpoint key."""
        return None if self._checkpointing is None else self._checkpointing.signer.key_id

    @property
    def failure(self) -> Optional[RecordUnavailableError]:
        return self._failure

    def write(self, record: dict[str, Any]) -> WrittenRecord:
        """
        Append ``record``; returns once it is fdatasync'ed. Raises
        RecordUnavailableError: code "record_invalid" when the record has no
        canonical JSON form (nothing written, the log stays usable),
        "record_unavailable" when the log is failed or closed.
        """
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if self._closed:
                raise RecordUnavailableError(f"decision log {self.path} is closed")
            closing: Optional[SealedLine] = None
            rotate = False
            try:
                sealed = seal_record(record, self._next_seq, self._head)
                if self._plan_size > 0 and self._plan_size + len(sealed.text.encode("utf-8")) + 1 > self._max_bytes:
                    rotate = True
                    if self._checkpointing is not None:
                        # The file ends with a checkpoint naming it; the record comes after it, in the next file.
                        closing = self._seal_checkpoint("rotation", self._next_seq, self._head)
                        sealed = seal_record(record, self._next_seq + 1, closing.hash)
            except CanonicalJsonError as error:
                raise RecordUnavailableError(f"record not written to {self.path}: {error}", "record_invalid") from None
            data = (sealed.text + "\n").encode("utf-8")
            if len(data) - 1 > MAX_RECORD_LINE_BYTES:
                # A reader stops at such a line: it would make the log unverifiable.
                raise RecordUnavailableError(f"record not written to {self.path}: it is longer than {MAX_RECORD_LINE_BYTES} bytes", "record_invalid")
            closing_bytes: Optional[bytes] = None
            if rotate:
                if closing is not None:
                    closing_bytes = (closing.text + "\n").encode("utf-8")
                    self._plan_size += len(closing_bytes)
                    self._advance(closing, "rotation")
                self._plan_index += 1
                self._plan_size = 0
                self._plan_after = (self._next_seq - 1, self._head)
            self._plan_size += len(data)
            self._advance(sealed, "record")
            self._queue.append(_Pending("record", sealed.seq, sealed.hash, data, rotate, closing_bytes))
            checkpointing = self._checkpointing
            if checkpointing is not None and self._records_since_checkpoint >= checkpointing.every:
                # Committed with the record; its failure is the log's.
                self._queue_checkpoint("interval")
            self._wait_durable(sealed.seq)
            return WrittenRecord(sealed.seq, sealed.hash, self._written.pop(sealed.seq, self._file))

    def _advance(self, sealed: SealedLine, entry: str) -> None:
        self._next_seq = sealed.seq + 1
        self._head = sealed.hash
        self._last_entry = entry
        if entry == "record":
            self._records_since_checkpoint += 1
        else:
            self._records_since_checkpoint = 0

    def _seal_checkpoint(self, reason: str, seq: int, head: str) -> SealedLine:
        """A checkpoint for the entries before ``seq``, sealed as entry ``seq``, naming the file it will be written in."""
        c = self._checkpointing
        assert c is not None
        checkpoint = c.signer.sign(
            {
                "log_id": c.log_id,
                "seq": seq - 1,
                "head": head,
                "segment": {"index": self._plan_index, "after_seq": self._plan_after[0], "after_hash": self._plan_after[1]},
                "reason": reason,
                "time": checkpoint_time(c.clock()),
                "key_id": c.signer.key_id,
            }
        )
        return seal_checkpoint(checkpoint, seq, head)

    def _queue_checkpoint(self, reason: str) -> int:
        """Queue a checkpoint in the current file (the mutex held); returns its seq."""
        sealed = self._seal_checkpoint(reason, self._next_seq, self._head)
        data = (sealed.text + "\n").encode("utf-8")
        self._plan_size += len(data)
        self._advance(sealed, reason)
        self._queue.append(_Pending(reason, sealed.seq, sealed.hash, data))
        return sealed.seq

    def _checkpoint(self, reason: str) -> None:
        """Write a checkpoint now; returns once it is synced."""
        with self._cond:
            if self._failure is not None:
                raise self._failure
            try:
                seq = self._queue_checkpoint(reason)
            except BaseException as error:
                self._fail(error)
                raise self._failure from error  # type: ignore[misc]
            self._wait_durable(seq)

    def _wait_durable(self, seq: int) -> None:
        """With the mutex held: return once entry ``seq`` is synced, committing the queue when no other thread is."""
        while True:
            if self._durable_seq >= seq:
                return
            if self._failure is not None:
                raise self._failure
            if self._flushing:
                self._cond.wait()
                continue
            # This thread commits everything queued so far, in one write and one fdatasync per file.
            self._flushing = True
            batch, self._queue = self._queue, []
            self._mutex.release()
            failure: Optional[BaseException] = None
            placed: dict[int, str] = {}
            try:
                placed = self._commit(batch)
            except BaseException as raised:
                failure = raised
            finally:
                self._mutex.acquire()
            self._flushing = False
            if failure is not None:
                self._fail(failure)
            else:
                self._written.update((k, v) for k, v in placed.items())
                self._durable_seq = batch[-1].seq
            self._cond.notify_all()

    def _commit(self, batch: list[_Pending]) -> dict[int, str]:
        placed: dict[int, str] = {}
        done = 0
        while done < len(batch):
            first = batch[done]
            if first.rotate:
                self._rotate(first.closing)
            # Every queued entry up to the next rotation (at least one).
            end = done + 1
            while end < len(batch) and not batch[end].rotate:
                end += 1
            _write_fully(self._fd, b"".join(item.data for item in batch[done:end]))
            os.fdatasync(self._fd)
            for item in batch[done:end]:
                if item.kind == "record":
                    placed[item.seq] = self._file
            done = end
        return placed

    def _rotate(self, closing: Optional[bytes]) -> None:
        """
        Continue in PATH.(n+1). The new file exists, and its name is synced,
        before ``closing`` (the rotation checkpoint) ends the current file: a
        crash in between leaves a torn or complete checkpoint followed by an
        empty file, which opening repairs, never a checkpoint pointing at no file.
        """
        nxt = f"{self.path}.{self._file_index + 1}"
        fd = os.open(nxt, _APPEND | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            _sync_directory(nxt)
            if closing is not None:
                _write_fully(self._fd, closing)
                os.fdatasync(self._fd)
        except BaseException:
            os.close(fd)
            raise
        previous = self._fd
        self._fd = fd
        self._file = nxt
        self._file_index += 1
        os.close(previous)

    def _fail(self, cause: BaseException) -> None:
        if self._failure is None:
            self._failure = RecordUnavailableError(f"decision log {self.path} failed and accepts no more records: {cause}")
            self._failure.__cause__ = cause

    def close(self) -> None:
        """
        Wait for writes in flight, sign a close checkpoint when there is a
        key, then release the file and the lock. Later writes raise. Safe to
        call twice.
        """
        with self._cond:
            if self._closed:
                return
            if self._checkpointing is not None and self._failure is None and self._last_entry != "close":
                try:
                    self._wait_durable(self._queue_checkpoint("close"))
                except BaseException as error:
                    # The log is failed (``failure``); the file and lock are still released.
                    self._fail(error)
            self._closed = True
            while self._flushing:
                self._cond.wait()
        try:
            os.close(self._fd)
        finally:
            self._lock_file.release()

    def __enter__(self) -> "FileDecisionLog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_file_log(
    path: Union[str, Path],
    max_bytes: int = DEFAULT_MAX_BYTES,
    checkpoint_key: Optional[CheckpointKeyInput] = None,
    checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    clock: Optional[Callable[[], int]] = None,
) -> FileDecisionLog:
    """Open the log at ``path`` for appending; see FileDecisionLog.open."""
    return FileDecisionLog.open(path, max_bytes, checkpoint_key, checkpoint_every, clock)
