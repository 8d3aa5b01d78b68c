"""
Decision records in PostgreSQL (adapter/postgres/records.ts, record-reader.ts): the file log's hash
chain in the append-only ``<schema>.records`` table, written exactly as the TypeScript sink writes it
(the same canonical JSON, the same seq and prev_hash, under the same advisory lock on the chain), so
Node and Python instances append to one chain and ``veto log verify --postgres`` checks it whole.
Inside a store unit the record joins the unit's transaction (record and history commit together);
alone, each write is its own transaction. With a checkpoint key, the instance whose record completes
``checkpoint_every`` records since the last checkpoint signs one in the same transaction, and
``close()`` signs one when the chain does not end with one; each instance signs with its own key.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from ..checkpoint import CheckpointKeyInput, CheckpointSigner, CheckpointTracker, SeenCheckpoint, Uncovered, checkpoint_public_keys, checkpoint_time, uncovered_text
from ..errors import CanonicalJsonError, DecisionLogError, RecordUnavailableError
from ..log import GENESIS_HASH, ChainChecker, LinePlace, SealedLine, canonical_json, seal_checkpoint, seal_record
from .connection import DEFAULT_SCHEMA, LOCK_SQL, check_schema, check_url, quote_ident, records_lock_key

if TYPE_CHECKING:
    from .store import PostgresStore, PostgresUnit

log = logging.getLogger("veto_crm")

DEFAULT_CHECKPOINT_EVERY = 1000


@dataclass(frozen=True)
class PostgresWrittenRecord:
    seq: int
    hash: str


@dataclass
class _Signing:
    signer: CheckpointSigner
    every: int
    clock: Callable[[], int]
    #: record_log.log_id, read once.
    log_id: Optional[str] = None


def _signing(checkpoint_key: Optional[CheckpointKeyInput], checkpoint_every: Optional[int], clock: Optional[Callable[[], int]], where: str) -> Optional[_Signing]:
    if checkpoint_key is None:
        if checkpoint_every is not None or clock is not None:
            raise DecisionLogError("invalid_options", f"{where}: checkpoint_every and clock need checkpoint_key")
        return None
    every = DEFAULT_CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise DecisionLogError("invalid_options", f"{where}: checkpoint_every must be a positive integer, got {every!r}")
    if clock is not None and not callable(clock):
        raise DecisionLogError("invalid_options", f"{where}: clock must be a function returning epoch milliseconds")
    signer = CheckpointSigner(checkpoint_key, canonical_json, f"{where}: checkpoint_key")
    return _Signing(signer, every, clock or (lambda: time.time_ns() // 1_000_000))


def _insert(conn: Any, table: str, sealed: SealedLine, prev_hash: str, type_: str, decision_id: str) -> None:
    conn.execute(
        f"INSERT INTO {table} (seq, prev_hash, hash, type, decision_id, line) VALUES (%s, %s, %s, %s, %s, %s)",
        (sealed.seq, prev_hash, sealed.hash, type_, decision_id, sealed.text),
    )


def _append_checkpoint(conn: Any, schema: str, signing: _Signing, reason: str, seq: int, head: str) -> None:
    if signing.log_id is None:
        row = conn.execute(f"SELECT log_id FROM {quote_ident(schema)}.record_log").fetchone()
        if row is None:
            raise RuntimeError(f"{schema}.record_log holds no log id")
        signing.log_id = str(row[0])
    checkpoint = signing.signer.sign(
        {
            "log_id": signing.log_id,
            "seq": seq - 1,
            "head": head,
            "reason": reason,
            "time": checkpoint_time(signing.clock()),
            "key_id": signing.signer.key_id,
        }
    )
    _insert(conn, f"{quote_ident(schema)}.records", seal_checkpoint(checkpoint, seq, head), head, "checkpoint", "")


def append_record(conn: Any, schema: str, record: dict[str, Any], signing: Optional[_Signing]) -> PostgresWrittenRecord:
    """Append ``record`` in ``conn``'s open transaction, after the chain lock (records.ts appendRecord)."""
    table = f"{quote_ident(schema)}.records"
    conn.execute(LOCK_SQL, (records_lock_key(schema),))
    # A statement after the lock: its snapshot holds every append committed before the lock was granted.
    last = conn.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
    prev_hash = GENESIS_HASH if last is None else str(last[1])
    sealed = seal_record(record, 1 if last is None else int(last[0]) + 1, prev_hash)
    type_ = record.get("type")
    decision_id = record.get("decision_id")
    _insert(conn, table, sealed, prev_hash, type_ if isinstance(type_, str) else "", decision_id if isinstance(decision_id, str) else "")
    if signing is not None:
        row = conn.execute(f"SELECT max(seq) FROM {table} WHERE type = 'checkpoint'").fetchone()
        # Every entry after the last checkpoint is a record.
        since = sealed.seq - int(row[0] if row is not None and row[0] is not None else 0)
        if since >= signing.every:
            _append_checkpoint(conn, schema, signing, "interval", sealed.seq + 1, sealed.hash)
    return PostgresWrittenRecord(sealed.seq, sealed.hash)


def _unavailable(error: BaseException, schema: str) -> RecordUnavailableError:
    if isinstance(error, CanonicalJsonError):
        return RecordUnavailableError(f"record not written to {schema}.records: {error}", "record_invalid")
    return RecordUnavailableError(f"record not written to {schema}.records: {error}")


def chained_record(seq: int, prev_hash: str, hash_: str, type_: str, decision_id: str, line: str, before: Optional[str]) -> Optional[dict[str, Any]]:
    """The parsed line when the row is a sealed record in its place in the chain, else None (record-reader.ts chainedRecord)."""
    from ..jsontext import JsonParseError, parse

    try:
        parsed = parse(line)
    except (JsonParseError, ValueError):
        return None
    if not isinstance(parsed, dict):
        return None
    body = {k: v for k, v in parsed.items() if k not in ("seq", "prev_hash", "hash")}
    if parsed.get("seq") != seq or parsed.get("prev_hash") != prev_hash or parsed.get("hash") != hash_:
        return None
    if body.get("type") != type_ or body.get("decision_id") != decision_id:
        return None
    if prev_hash != (GENESIS_HASH if seq == 1 else before):
        return None
    try:
        sealed = seal_record(body, seq, prev_hash)
    except CanonicalJsonError:
        return None
    if sealed.text != line or sealed.hash != hash_:
        return None
    return parsed


class PostgresRecordSink:
    """
    A record sink on the records table of a PostgresStore's schema (``store.record_sink()``); thread-safe.
    ``read_records`` reads a decision's records back from the shared chain: what an approval is checked
    against, so an instance checks answers given on any other, Node or Python.
    """

    def __init__(self, store: "PostgresStore", signing: Optional[_Signing]) -> None:
        self._store = store
        self.schema = store.schema
        self._signing = signing
        self._closed = False
        self._close_lock = threading.Lock()

    @property
    def checkpoint_key_id(self) -> Optional[str]:
        return None if self._signing is None else self._signing.signer.key_id

    def write(self, record: dict[str, Any]) -> PostgresWrittenRecord:
        """Append in a transaction of its own; returns once committed. Raises RecordUnavailableError."""
        try:
            with self._store.connection() as conn:
                with conn.transaction():
                    return append_record(conn, self.schema, record, self._signing)
        except RecordUnavailableError:
            raise
        except Exception as error:
            raise _unavailable(error, self.schema) from error

    def joins_transaction(self, transaction: Any) -> bool:
        from .store import PostgresUnit

        return isinstance(transaction, PostgresUnit) and transaction.open and transaction.store is self._store

    def write_in_transaction(self, transaction: "PostgresUnit", record: dict[str, Any]) -> None:
        try:
            transaction.run(lambda conn: append_record(conn, self.schema, record, self._signing))
        except Exception as error:
            raise _unavailable(error, self.schema) from error

    def read_records(self, decision_id: str) -> list[dict[str, Any]]:
        """The chained records of ``decision_id`` in chain order; a row slipped in without its link is left out."""
        table = f"{quote_ident(self.schema)}.records"
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT r.seq, r.prev_hash, r.hash, r.type, r.decision_id, r.line, p.hash FROM {table} r "
                f"LEFT JOIN {table} p ON p.seq = r.seq - 1 WHERE r.decision_id = %s ORDER BY r.seq",
                (decision_id,),
            ).fetchall()
        out = []
        for seq, prev_hash, hash_, type_, did, line, before in rows:
            record = chained_record(int(seq), prev_hash, hash_, type_, did, line, before)
            if record is not None:
                out.append(record)
        return out

    def remember(self, record: dict[str, Any]) -> None:
        """Nothing to remember: the records are read back from the table."""

    def close(self) -> None:
        """With a checkpoint key, sign a close checkpoint when the chain does not already end with one. Safe to call twice."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        signing = self._signing
        if signing is None:
            return
        table = f"{quote_ident(self.schema)}.records"
        try:
            with self._store.connection() as conn:
                with conn.transaction():
                    conn.execute(LOCK_SQL, (records_lock_key(self.schema),))
                    last = conn.execute(f"SELECT seq, hash, type FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
                    if last is not None and last[2] != "checkpoint":
                        _append_checkpoint(conn, self.schema, signing, "close", int(last[0]) + 1, str(last[1]))
        except Exception as error:
            raise _unavailable(error, self.schema) from error


@dataclass(frozen=True)
class PostgresVerifyResult:
    ok: bool
    table: str
    count: int = 0
    head: str = GENESIS_HASH
    #: The first bad seq, when not ok.
    seq: int = 0
    reason: str = ""
    records: int = 0
    checkpoints: int = 0
    last_checkpoint: Optional[SeenCheckpoint] = None
    uncovered: Optional[Uncovered] = None
    #: Present when the table holds checkpoints or public keys were given.
    has_checkpoint_report: bool = False
    signatures: str = "unchecked"


_LINE = re.compile(r"\bline (\d+)")
PAGE = 1000


def _seq_text(problem: str) -> str:
    return _LINE.sub(r"seq \1", problem)


def verify_postgres_log(
    url: Optional[str] = None,
    schema: str = DEFAULT_SCHEMA,
    public_keys: Union[CheckpointKeyInput, Sequence[CheckpointKeyInput], None] = None,
    require_checkpointed: bool = False,
) -> PostgresVerifyResult:
    """
    Verify ``<schema>.records`` as one chain from its first entry, the way ``verify_log`` checks a file
    and ``veto log verify --postgres`` checks the table (records.ts verifyPostgresLog): canonical JSON,
    every hash and prev_hash, seq 1, 2, 3 ... with no gap, the columns agreeing with the line, and the
    checkpoints (signed with one of ``public_keys``). Never raises for a damaged chain; the result names
    the first bad seq and why. Raises DecisionLogError("invalid_options") for unusable options.
    """
    from .driver import connect

    check_url(url, "verify_postgres_log")
    check_schema(schema, "verify_postgres_log")
    keys = None if public_keys is None else checkpoint_public_keys(public_keys, "verify_postgres_log: public_keys")
    if keys is None and require_checkpointed:
        raise DecisionLogError("invalid_options", "verify_postgres_log: require_checkpointed needs public_keys")
    table = f"{schema}.records"
    checker = ChainChecker()
    tracker = CheckpointTracker(keys, canonical_json, "fail")
    with connect(url, autocommit=True) as conn:
        after = 0
        while True:
            rows = conn.execute(
                f"SELECT seq, prev_hash, hash, type, decision_id, line FROM {quote_ident(schema)}.records WHERE seq > %s ORDER BY seq LIMIT {PAGE}",
                (after,),
            ).fetchall()
            for seq_value, prev_hash, hash_, type_, decision_id, line in rows:
                seq = int(seq_value)
                place = LinePlace(table, seq)
                result = checker.accept(line.encode("utf-8"), place)
                if isinstance(result, str):
                    return PostgresVerifyResult(False, table, seq=seq, reason=f"seq {seq}: {_seq_text(result)}")
                record, _, digest, checkpoint = result
                kind, did = (record.get("type"), record.get("decision_id")) if checkpoint is None else ("checkpoint", "")
                if record.get("seq") != seq or record.get("prev_hash") != prev_hash or record.get("hash") != hash_ or kind != type_ or did != decision_id:
                    return PostgresVerifyResult(False, table, seq=seq, reason=f"seq {seq}: columns do not match the record's line")
                problem = tracker.entry(seq, digest, checkpoint, table, seq, None)
                if problem is not None:
                    return PostgresVerifyResult(False, table, seq=seq, reason=f"seq {seq}: {_seq_text(problem)}")
                after = seq
            if len(rows) < PAGE:
                break
    count = checker.count
    if keys is not None and tracker.checkpoints == 0:
        reason = "no signed checkpoint: the log is empty" if count == 0 else f"no signed checkpoint: none of its {count} entries is covered"
        return PostgresVerifyResult(False, table, seq=count, reason=reason)
    uncovered = tracker.uncovered
    if require_checkpointed and uncovered is not None:
        last = tracker.last
        where = "" if last is None else f" (line {last.line})"
        reason = _seq_text(f"line {uncovered.line}: {uncovered_text(uncovered.entries)}{where}, not covered by a signature")
        return PostgresVerifyResult(False, table, seq=uncovered.line, reason=reason)
    return PostgresVerifyResult(
        True,
        table,
        count,
        checker.head,
        records=tracker.records,
        checkpoints=tracker.checkpoints,
        last_checkpoint=tracker.last,
        uncovered=uncovered,
        has_checkpoint_report=tracker.checkpoints > 0 or keys is not None,
        signatures="unchecked" if keys is None else "verified",
    )
