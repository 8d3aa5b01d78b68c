"""
``python -m veto_crm``: the line protocol of ``veto eval`` (docs/contract.md
§8, adapter/cli/eval.ts), ``log verify`` and ``hash``. Exit codes as the
TypeScript CLI's: 0 done (whatever the verdicts); 1 a log does not verify;
2 the bundle, data, log or command line is unusable. Every failure is one
line on standard error, "veto: ...".
"""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, Callable, Iterator, Optional, Sequence, TextIO

from .bundle import bundle_version_hash_of_tarball, load_bundle
from .text import node_error_message
from .errors import DecisionLogError, VetoError
from .files import read_regular_file
from .input import DEFAULT_INPUT_LIMITS
from .jsontext import JsonParseError, js_trim, parse, stringify
from .checkpoint import cover_text, uncovered_text
from .decision import iso_timestamp
from .files import NotRegularFileError, open_regular_file, regular_file_exists
from .log import DEFAULT_CHECKPOINT_EVERY, FileDecisionLog, VerifyResult, expand_log_paths, verify_log
from .policy_data import read_policy_data
from .records import JsonLinesRecordSink
from .signature import SIGNING_ALGORITHMS, VerificationKey, create_bundle_verifier
from .factory import create_veto
from .veto import Veto

#: Environment variable holding the per-deployment key for record digests (kept out of argv, which ps shows).
RECORD_KEY_ENV = "VETO_RECORD_KEY"

USAGE = """usage:
  python -m veto_crm eval --bundle PATH [--data FILE] [--log PATH [--signing-key FILE [--checkpoint-every N]] | --records FILE] [--verification-key PATH [--verification-alg ALG]] [--shadow-bundle PATH [--shadow-data FILE]]
      reads one call per line (JSON {tool, arguments, context}) from stdin and writes
      one decision per line to stdout. --log PATH: records go to a durable, hash-chained
      decision log (created if missing; each decision is printed only once its record
      is synced). --signing-key FILE: an Ed25519 private key (PEM) that signs checkpoints
      into the log, at open, every N records (default 1000) and at close; a log that
      holds checkpoints needs it. --records FILE: records as JSON lines (appended). Neither: stderr.
      $VETO_RECORD_KEY: key (>= 16 bytes) for HMAC digests of sensitive values.
      --shadow-bundle PATH: a candidate bundle (with --shadow-data FILE's data) evaluated
      beside --bundle on every call; its verdict is recorded as "shadow", never enforced.
  python -m veto_crm log verify PATH... [--public-key FILE]... [--require-checkpointed]
      checks each decision log (PATH and its rotations PATH.1, PATH.2, ...): prints
      "PATH: N records, head sha256:..." per log and exits 0, or names the first bad
      file and line and why on stderr and exits 1. --public-key (repeatable: a key
      list): every signed checkpoint must verify with one of them, and the log must
      hold one; --require-checkpointed: no record may follow the last checkpoint
  python -m veto_crm log verify --postgres URL [--schema NAME] [--since TIME] [--public-key FILE]... [--require-checkpointed]
      the same checks of the PostgreSQL records table (written by Node and Python instances
      alike), then every decisions row against its records (rows and records before --since
      left out): prints "NAME.records: N records, head sha256:..." and "NAME.decisions: N rows
      match their records", or each mismatch on stderr and exit 1 (URL default $VETO_POSTGRES_URL)
  python -m veto_crm db migrate [--postgres URL] [--schema NAME]
      applies the PostgreSQL store's pending migrations (the same files and table as
      `veto db migrate`; either may run them); safe to run from several hosts at once
  python -m veto_crm hash BUNDLE [--verification-key PATH [--verification-alg ALG]]
      prints the bundle's version hash (sha256:<64 hex>)"""


class UsageError(Exception):
    pass


class CliExit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(one_line(message))
        self.code = code


def one_line(message: str) -> str:
    return re.sub(r"\s*\n\s*", " ", message)


def fail(message: str) -> CliExit:
    return CliExit(2, message)


def parse_options(args: Sequence[str], names: dict[str, bool]) -> tuple[dict[str, list[str]], list[str]]:
    """``--name VALUE`` / ``--name=VALUE`` options (``names``: name -> may repeat) and positionals, as node's parseArgs reads them."""
    values: dict[str, list[str]] = {}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            positionals.extend(args[i + 1 :])
            break
        if arg.startswith("--"):
            name, eq, value = arg[2:].partition("=")
            if name not in names:
                raise UsageError(f"Unknown option '--{name}'")
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"Option '--{name} <value>' argument missing")
                if args[i + 1].startswith("-"):
                    raise UsageError(
                        f"Option '--{name}' argument is ambiguous. Did you forget to specify the option argument for '--{name}'? "
                        f"To specify an option argument starting with a dash use '--{name}=-XYZ'."
                    )
                value = args[i + 1]
                i += 1
            if name in values and not names[name]:
                values[name] = [value]
            else:
                values.setdefault(name, []).append(value)
        else:
            positionals.append(arg)
        i += 1
    return values, positionals


def _last(values: dict[str, list[str]], name: str) -> Optional[str]:
    given = values.get(name)
    return given[-1] if given else None


#: As the TypeScript CLI's (adapter/cli/verification-key.ts): a key file is small.
MAX_KEY_FILE_BYTES = 1024 * 1024


def _read_key_file(path: str, what: str) -> bytes:
    try:
        fd = open_regular_file(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as error:
        raise fail(f"cannot read {what} {path}: {node_error_message(error)}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise fail(f"{what} {path} is unusable: it is larger than {MAX_KEY_FILE_BYTES} bytes (the limit)")
    return data


def read_verification_key(paths: Optional[list[str]], algorithm: Optional[str]) -> Any:
    if not paths:
        if algorithm is not None:
            raise UsageError("--verification-alg needs --verification-key PATH")
        return None
    if algorithm is not None and algorithm not in SIGNING_ALGORITHMS:
        raise UsageError(f"--verification-alg {algorithm} is not one of {', '.join(SIGNING_ALGORITHMS)}")
    keys: list[Any] = []
    for path in paths:
        try:
            text = read_regular_file(path).decode("utf-8", "replace")
        except OSError as error:
            raise fail(f"cannot read verification key {path}: {node_error_message(error)}") from None
        if algorithm is not None and algorithm.startswith("HS"):
            keys.append(VerificationKey(re.sub(r"\r?\n$", "", text), algorithm))
        else:
            keys.append(text if algorithm is None else VerificationKey(text, algorithm))
    return keys[0] if len(keys) == 1 else keys


def read_data_file(path: str) -> dict[str, Any]:
    try:
        text = read_regular_file(path).decode("utf-8", "replace")
    except OSError as error:
        raise fail(f"cannot read data file {path}: {node_error_message(error)}") from None
    try:
        data = parse(text)
    except JsonParseError as error:
        raise fail(f"data file {path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise fail(f"data file {path} is not a JSON object")
    # Checked as the data document it will be, so every problem with it names the file.
    try:
        read_policy_data(data, f"in file {path}")
    except VetoError as error:
        raise fail(str(error)) from None
    return data


def read_lines(fd: int, max_bytes: int) -> Iterator[tuple[Optional[str], Optional[str]]]:
    """
    The lines of a byte stream as the TypeScript CLI reads them
    (adapter/common/line-reader.ts), each as (text, None) or (None, why it cannot
    be read): a line ends at "\n", a "\r" just before it belongs to the line
    ending, a lone "\r" is JSON white space. A line of more than ``max_bytes``
    bytes is answered as soon as the limit is passed and the rest of it is
    skipped as it arrives, never held; a line that is not UTF-8 is unreadable.
    """
    too_long = (None, f"the line is longer than {max_bytes} bytes (the input limit), so it was not read")

    def finish(line: bytes) -> tuple[Optional[str], Optional[str]]:
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > max_bytes:
            return too_long
        try:
            return (line.decode("utf-8"), None)
        except UnicodeDecodeError:
            return (None, "the line is not valid UTF-8, so it is not JSON text")

    held = bytearray()
    skipping = False
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        start = 0
        while start < len(chunk):
            newline = chunk.find(b"\n", start)
            end = len(chunk) if newline == -1 else newline
            if skipping:
                if newline == -1:
                    break
                skipping = False
            elif len(held) + (end - start) > max_bytes + 1:
                # Over the limit even if its last byte is the "\r" of a "\r\n".
                held = bytearray()
                yield too_long
                if newline == -1:
                    skipping = True
                    break
            else:
                held += chunk[start:end]
                if newline == -1:
                    break
                line = bytes(held)
                held = bytearray()
                yield finish(line)
            start = end + 1
    if not skipping and held:
        yield finish(bytes(held))


def decide_lines(veto: Veto, fd: int, out: TextIO) -> None:
    # Every line has its decision, so output pairs with input line by line.
    for line, unreadable in read_lines(fd, DEFAULT_INPUT_LIMITS.max_input_bytes):
        if line is None:
            decision = veto.protect_unreadable(None, unreadable or "the line cannot be read")
            out.write(stringify(decision.to_json()) + "\n")
            out.flush()
            continue
        problem: Optional[str] = None
        call: Any = None
        # As the TypeScript CLI's line.trim() === "": a line, not a contract text.
        if js_trim(line) == "":
            problem = "the line is blank, not a JSON call"
        else:
            try:
                call = parse(line)
            except JsonParseError as error:
                problem = f"the line is not valid JSON: {error}"
        # Amounts are judged by their text on the line, which parse does not keep (docs/contract.md §9).
        decision = veto.protect_text(call, line) if problem is None else veto.protect_unreadable(line, problem)
        out.write(stringify(decision.to_json()) + "\n")
        out.flush()


def eval_command(args: Sequence[str]) -> int:
    values, positionals = parse_options(
        args,
        {
            "bundle": False,
            "data": False,
            "records": False,
            "log": False,
            "signing-key": False,
            "checkpoint-every": False,
            "verification-key": True,
            "verification-alg": False,
            "shadow-bundle": False,
            "shadow-data": False,
        },
    )
    if positionals:
        raise UsageError(f"unexpected argument {positionals[0]}")
    bundle = _last(values, "bundle")
    if bundle is None:
        raise UsageError("eval needs --bundle PATH")
    log_path, records_path = _last(values, "log"), _last(values, "records")
    if log_path is not None and records_path is not None:
        raise UsageError("eval takes --log or --records, not both")
    signing_key_path, every_text = _last(values, "signing-key"), _last(values, "checkpoint-every")
    if log_path is None and (signing_key_path is not None or every_text is not None):
        raise UsageError("--signing-key and --checkpoint-every sign a decision log: they need --log PATH")
    if signing_key_path is None and every_text is not None:
        raise UsageError("--checkpoint-every needs --signing-key FILE")
    if every_text is not None and (re.fullmatch(r"[1-9][0-9]*", every_text) is None or int(every_text) > 2**53 - 1):
        raise UsageError(f"--checkpoint-every must be a positive integer, got {every_text}")
    signing_key: Optional[bytes] = None
    if signing_key_path is not None:
        signing_key = _read_key_file(signing_key_path, "signing key")
    data_path = _last(values, "data")
    data = None if data_path is None else read_data_file(data_path)
    shadow_bundle, shadow_data_path = _last(values, "shadow-bundle"), _last(values, "shadow-data")
    if shadow_data_path is not None and shadow_bundle is None:
        raise UsageError("--shadow-data needs --shadow-bundle PATH")
    shadow_data = None if shadow_data_path is None else read_data_file(shadow_data_path)
    verification_key = read_verification_key(values.get("verification-key"), _last(values, "verification-alg"))
    record_key = os.environ.get(RECORD_KEY_ENV) or None

    records: Optional[JsonLinesRecordSink] = None
    records_file: Optional[TextIO] = None
    if log_path is None:
        if records_path is not None:
            try:
                directory = os.path.dirname(records_path)
                if directory:
                    os.makedirs(directory, exist_ok=True)
                fd = open_regular_file(records_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                records_file = os.fdopen(fd, "a", encoding="utf-8")
            except OSError as error:
                raise fail(f"cannot open records file {records_path}: {node_error_message(error)}") from None
        records = JsonLinesRecordSink(records_file, None if records_file is None else f"records file {records_path}")

    decision_log: Optional[FileDecisionLog] = None
    if log_path is not None:
        try:
            if signing_key is None:
                decision_log = FileDecisionLog.open(log_path)
            else:
                decision_log = FileDecisionLog.open(
                    log_path, checkpoint_key=signing_key, checkpoint_every=DEFAULT_CHECKPOINT_EVERY if every_text is None else int(every_text)
                )
        except (DecisionLogError, OSError) as error:
            raise fail(f"cannot open decision log {log_path}: {error}") from None

    try:
        veto = create_veto(
            bundle,
            data=data,
            record_sink=decision_log if decision_log is not None else records,
            record_key=record_key,
            verification_key=verification_key,
            shadow=None if shadow_bundle is None else {"bundle": shadow_bundle, "data": shadow_data},
        )
    except VetoError as error:
        if decision_log is not None:
            decision_log.close()
        raise fail(str(error)) from None

    try:
        decide_lines(veto, sys.stdin.fileno(), sys.stdout)
    finally:
        veto.close()
        if decision_log is not None:
            decision_log.close()
        if records_file is not None:
            try:
                records_file.close()
            except OSError:
                pass
    if records is not None and records.failure is not None:
        where = "on standard error" if records_path is None else f"file {records_path}"
        failure = records.failure
        why = node_error_message(failure, "write") if isinstance(failure, OSError) else str(failure)
        raise CliExit(2, f"records {where} failed, every call from then on was denied with record_unavailable: {why}")
    if decision_log is not None and decision_log.failure is not None:
        raise CliExit(2, f"decision log {log_path} failed, every call from then on was denied with record_unavailable: {decision_log.failure}")
    return 0


def distinct_logs(paths: Sequence[str]) -> list[str]:
    """The logs named by ``paths``: continuations PATH.N given beside their PATH dropped."""
    given = {os.path.abspath(p) for p in paths}
    seen: set[str] = set()
    out = []
    for path in paths:
        m = re.fullmatch(r"(.*)\.[1-9][0-9]*", path, re.DOTALL)
        if m is not None and os.path.abspath(m.group(1)) in given:
            continue
        if os.path.abspath(path) in seen:
            continue
        seen.add(os.path.abspath(path))
        out.append(path)
    return out


def _read_public_keys(paths: Sequence[str]) -> list[bytes]:
    keys = []
    for path in paths:
        try:
            keys.append(read_regular_file(path))
        except OSError as error:
            raise fail(f"cannot read public key {path}: {node_error_message(error)}") from None
    return keys


def log_command(args: Sequence[str]) -> int:
    if not args:
        raise UsageError("log needs a subcommand (verify, checkpoint)")
    if args[0] == "checkpoint":
        raise UsageError("log checkpoint is not in the Python command line: use the TypeScript one (veto log checkpoint)")
    if args[0] != "verify":
        raise UsageError(f"unknown log subcommand {args[0]}")
    rest = list(args[1:])
    require_checkpointed = "--require-checkpointed" in rest
    rest = [a for a in rest if a != "--require-checkpointed"]
    values, positionals = parse_options(rest, {"public-key": True, "postgres": False, "schema": False, "since": False})
    key_files = values.get("public-key", [])
    if not key_files and require_checkpointed:
        raise UsageError("--expect-checkpoint and --require-checkpointed need --public-key FILE")
    if "postgres" in values or "schema" in values or "since" in values:
        if positionals:
            raise UsageError("log verify takes log PATHs or --postgres URL, not both")
        return _verify_postgres(
            _postgres_url(_last(values, "postgres"), "log verify --postgres"), _last(values, "schema") or "veto", key_files, require_checkpointed, _last(values, "since")
        )
    if not positionals:
        raise UsageError("log verify needs at least one log PATH")
    public_keys = _read_public_keys(key_files) if key_files else None
    logs = distinct_logs(positionals)
    # A file of the log that exists but is not a regular file is unusable input (exit 2), not a log that fails to verify.
    for path in logs:
        for file in expand_log_paths([path]):
            try:
                regular_file_exists(file)
            except NotRegularFileError as error:
                raise fail(f"log {path}: {error}") from None
            except OSError:
                pass
    for path in logs:
        try:
            result = verify_log([path], public_keys=public_keys, require_checkpointed=require_checkpointed)
        except DecisionLogError as error:
            raise fail(str(error)) from None
        if not result.ok:
            raise CliExit(1, f"log verify failed: {result.file}: {result.reason}")
        files = f" ({len(result.files)} files)" if len(result.files) > 1 else ""
        sys.stdout.write(f"{path}: {_count_text(result)}, head {result.head}{files}\n{_checkpoint_lines(path, result)}")
    return 0


POSTGRES_URL_ENV = "VETO_POSTGRES_URL"


def _postgres_url(flag: Optional[str], command: str) -> str:
    """--postgres URL, else $VETO_POSTGRES_URL (db.ts postgresUrl)."""
    url = flag if flag is not None else os.environ.get(POSTGRES_URL_ENV)
    if not url:
        raise UsageError(f"{command} needs --postgres URL (or {POSTGRES_URL_ENV})")
    return url


def _verify_postgres(url: str, schema: str, key_files: Sequence[str], require_checkpointed: bool, since: Optional[str] = None) -> int:
    """
    ``veto log verify --postgres`` (db.ts verifyPostgresCommand): the chain, then the decisions table against it.
    Exit 2 when unreachable, 1 when the chain does not verify or a row and its records disagree.
    """
    from .postgres import verify_postgres_log
    from .postgres.cross_check import cross_check_postgres_store, time_ms

    since_ms = None if since is None else time_ms(since)
    if since is not None and since_ms is None:
        raise UsageError(f"--since must be an ISO 8601 time (2026-03-01T00:00:00Z), not {stringify(since)}")

    public_keys = _read_public_keys(key_files) if key_files else None
    try:
        result = verify_postgres_log(url, schema, public_keys=public_keys, require_checkpointed=require_checkpointed)
    except VetoError:
        raise
    except Exception as error:
        raise fail(f"log verify on {schema}.records: {one_line(str(error))}") from None
    if not result.ok:
        raise CliExit(1, f"log verify failed: {result.table}: {result.reason}")
    verified = VerifyResult(
        True,
        result.count,
        result.head,
        records=result.records,
        checkpoints=result.checkpoints,
        last_checkpoint=result.last_checkpoint,
        uncovered=result.uncovered,
        has_checkpoint_report=result.has_checkpoint_report,
    )
    sys.stdout.write(f"{result.table}: {_count_text(verified)}, head {result.head}\n{_checkpoint_lines(result.table, verified, 'seq')}")
    sys.stdout.flush()
    try:
        checked = cross_check_postgres_store(url, schema, since_ms)
    except VetoError:
        raise
    except Exception as error:
        raise fail(f"log verify on {schema}.decisions: {one_line(str(error))}") from None
    since_text = "" if since_ms is None else f" since {iso_timestamp(since_ms)}"
    if checked.ok:
        sys.stdout.write(f"{schema}.decisions: {checked.rows} rows{since_text} match their records\n")
        return 0
    for m in checked.mismatches:
        seq = "" if m.seq is None else f" (record seq {m.seq})"
        sys.stderr.write(f"veto: {schema}: decision {m.decision_id}{seq}: {one_line(m.problem)}\n")
    more = f" (the first {len(checked.mismatches)} listed)" if checked.total > len(checked.mismatches) else ""
    raise CliExit(1, f"log verify failed: {schema}.decisions: {checked.total} mismatches between the store and its records{since_text}{more}")


def db_command(args: Sequence[str]) -> int:
    """``db migrate [--postgres URL] [--schema NAME]`` (db.ts migrateCommand)."""
    if not args:
        raise UsageError("db needs a subcommand (migrate)")
    if args[0] != "migrate":
        raise UsageError(f"unknown db subcommand {args[0]}")
    values, positionals = parse_options(args[1:], {"postgres": False, "schema": False})
    if positionals:
        raise UsageError(f"unexpected argument {positionals[0]}")
    url = _postgres_url(_last(values, "postgres"), "db migrate")
    schema = _last(values, "schema") or "veto"
    from .postgres import migrate

    try:
        result = migrate(url, schema)
    except VetoError:
        raise
    except Exception as error:
        raise fail(f"db migrate on schema {schema}: {one_line(str(error))}") from None
    if result.applied:
        sys.stdout.write(f"schema {schema}: applied {', '.join(result.applied)} (version {result.version})\n")
    else:
        sys.stdout.write(f"schema {schema}: up to date (version {result.version})\n")
    return 0


def _count_text(result: VerifyResult) -> str:
    """The summary: the pre-checkpoint form for a log without checkpoints (checkpoint-flags.ts countText)."""
    if not result.has_checkpoint_report or result.checkpoints == 0:
        return f"{result.count} records"
    plural = "" if result.checkpoints == 1 else "s"
    return f"{result.records} records and {result.checkpoints} checkpoint{plural} (seq 1..{result.count})"


def _checkpoint_lines(name: str, result: VerifyResult, unit: str = "line") -> str:
    if not result.has_checkpoint_report:
        return ""
    lines = []
    last = result.last_checkpoint
    if last is not None:
        where = f"{unit} {last.line}" if last.file == name else f"{last.file} {unit} {last.line}"
        signature = "signature verified" if last.verified else "signature not checked (give --public-key)"
        c = last.checkpoint
        lines.append(f"{name}: last checkpoint {where} covers {cover_text(last.seq - 1)} ({c['reason']}, {c['time']}), key {c['key_id']}, {signature}")
    if result.uncovered is not None:
        u = result.uncovered
        where = f"{unit} {u.line}" if u.file == name else f"{u.file} {unit} {u.line}"
        lines.append(f"{name}: {uncovered_text(u.entries)} (from {where}), not yet covered by a signature")
    return "".join(line + "\n" for line in lines)


def hash_command(args: Sequence[str]) -> int:
    values, positionals = parse_options(args, {"verification-key": True, "verification-alg": False})
    if len(positionals) != 1:
        raise UsageError("hash takes exactly one bundle path")
    path = positionals[0]
    try:
        data = read_regular_file(path)
    except OSError as error:
        raise fail(f"cannot read bundle {path}: {node_error_message(error)}") from None
    key = read_verification_key(values.get("verification-key"), _last(values, "verification-alg"))
    if key is not None:
        try:
            load_bundle(data, create_bundle_verifier(key))
        except VetoError as error:
            raise fail(str(error)) from None
    try:
        digest = bundle_version_hash_of_tarball(data)
    except Exception as error:
        raise fail(f"bundle {path} is not a readable .tar.gz: {error}") from None
    sys.stdout.write(digest + "\n")
    return 0


COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"eval": eval_command, "log": log_command, "hash": hash_command, "db": db_command}


class _JsonLogLines(logging.Handler):
    """The adapter's own log on standard error as JSON lines (pino's shape), never able to change an outcome."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line: dict[str, Any] = {"level": 50 if record.levelno >= logging.ERROR else 40 if record.levelno >= logging.WARNING else 30}
            line.update(time=int(record.created * 1000), name="veto", msg=record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                line["err"] = {"type": type(record.exc_info[1]).__name__, "message": str(record.exc_info[1])}
            sys.stderr.write(stringify(line) + "\n")
            sys.stderr.flush()
        except Exception:
            pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logger = logging.getLogger("veto_crm")
    logger.addHandler(_JsonLogLines())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if args and args[0] in ("help", "--help", "-h"):
        sys.stdout.write(USAGE + "\n")
        return 0
    try:
        if not args:
            raise UsageError("no command given")
        command = COMMANDS.get(args[0])
        if command is None:
            raise UsageError(f"unknown command {args[0]}")
        return command(args[1:])
    except UsageError as error:
        sys.stderr.write(f"veto: {one_line(str(error))}\n{USAGE}\n")
        return 2
    except CliExit as error:
        sys.stderr.write(f"veto: {error}\n")
        return error.code
    except VetoError as error:
        sys.stderr.write(f"veto: {one_line(str(error))}\n")
        return 2
