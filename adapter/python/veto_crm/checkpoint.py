"""
Signed checkpoints in the decision log, as the TypeScript adapter writes them
(adapter/records/checkpoint.ts, docs/decision-log.md): a chain entry
``{"checkpoint":{...},"hash":...,"prev_hash":...,"seq":...}`` saying "log L
holds seq 1..N and entry N has hash H", signed with Ed25519 over
"veto-checkpoint/1\\n" + the canonical JSON of the statement. This module
reads, verifies and signs them; the file log (log.py) writes them when
opened with a ``checkpoint_key``, where the TypeScript writer does
(``veto eval --signing-key``): on open, every ``checkpoint_every`` records,
at the end of a file it rotates away from, and at close.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .errors import DecisionLogError

CHECKPOINT_CONTEXT = "veto-checkpoint/1\n"
HASH_PATTERN = re.compile(r"sha256:[0-9a-f]{64}")
_LOG_ID = re.compile(r"[0-9a-f]{32}")
_KEY_ID = re.compile(r"ed25519:[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_SIGNATURE = re.compile(r"[A-Za-z0-9+/]{86}==")
_REASONS = frozenset({"open", "interval", "rotation", "close"})
_MEMBERS = ("head", "key_id", "log_id", "reason", "seq", "signature", "time")

CheckpointKeyInput = Union[str, bytes, Ed25519PublicKey, Ed25519PrivateKey]


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 2**53 - 1


def _exact_keys(value: dict[str, Any], required: Sequence[str], optional: Sequence[str] = ()) -> Optional[str]:
    for key in required:
        if key not in value:
            return f"lacks {key}"
    for key in value:
        if key not in required and key not in optional:
            return f'has an unknown member "{key}"'
    return None


def parse_checkpoint(value: Any) -> Union[dict[str, Any], str]:
    """The checkpoint in ``value``, or what is wrong with it (checkpoint.ts parseCheckpoint, same words)."""
    if not isinstance(value, dict):
        return "checkpoint is not an object"
    shape = _exact_keys(value, _MEMBERS, ("segment",))
    if shape is not None:
        return f"checkpoint {shape}"
    c = value
    if not isinstance(c["log_id"], str) or not _LOG_ID.fullmatch(c["log_id"]):
        return "checkpoint log_id malformed"
    if not _is_count(c["seq"]):
        return "checkpoint seq malformed"
    if not isinstance(c["head"], str) or not HASH_PATTERN.fullmatch(c["head"]):
        return "checkpoint head malformed"
    if not isinstance(c["reason"], str) or c["reason"] not in _REASONS:
        return "checkpoint reason malformed"
    if not isinstance(c["time"], str) or not _TIME.fullmatch(c["time"]):
        return "checkpoint time malformed"
    if not isinstance(c["key_id"], str) or not _KEY_ID.fullmatch(c["key_id"]):
        return "checkpoint key_id malformed"
    if not isinstance(c["signature"], str) or not _SIGNATURE.fullmatch(c["signature"]):
        return "checkpoint signature malformed"
    if "segment" in c:
        s = c["segment"]
        if not isinstance(s, dict) or _exact_keys(s, ("after_hash", "after_seq", "index")) is not None:
            return "checkpoint segment malformed"
        if not _is_count(s["index"]) or not _is_count(s["after_seq"]) or not isinstance(s["after_hash"], str) or not HASH_PATTERN.fullmatch(s["after_hash"]):
            return "checkpoint segment malformed"
    return c


def checkpoint_key_id(key: Ed25519PublicKey) -> str:
    """"ed25519:" + hex SHA-256 of the public key's SubjectPublicKeyInfo DER."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "ed25519:" + hashlib.sha256(der).hexdigest()


def _public_key(value: CheckpointKeyInput, what: str) -> Ed25519PublicKey:
    if isinstance(value, Ed25519PublicKey):
        return value
    if isinstance(value, Ed25519PrivateKey):
        return value.public_key()
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    key: Any
    try:
        key = serialization.load_pem_public_key(data)
    except Exception:
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except Exception as error:
            raise DecisionLogError("invalid_options", f"{what}: not a usable public key: {error}") from None
    if isinstance(key, Ed25519PrivateKey):
        key = key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise DecisionLogError("invalid_options", f"{what}: must be an Ed25519 key")
    return key


def checkpoint_public_keys(keys: Union[CheckpointKeyInput, Sequence[CheckpointKeyInput]], what: str = "public_keys") -> dict[str, Ed25519PublicKey]:
    """Public keys by key id (PEM SPKI text or bytes, or key objects; a private key is reduced to its public half)."""
    items: list[CheckpointKeyInput] = list(keys) if isinstance(keys, (list, tuple)) else [keys]  # type: ignore[list-item]
    if not items:
        raise DecisionLogError("invalid_options", f"{what}: give at least one key")
    out: dict[str, Ed25519PublicKey] = {}
    for i, item in enumerate(items):
        key = _public_key(item, what if len(items) == 1 else f"{what}[{i}]")
        out[checkpoint_key_id(key)] = key
    return out


def _private_key(value: CheckpointKeyInput, what: str) -> Ed25519PrivateKey:
    if isinstance(value, Ed25519PrivateKey):
        return value
    if isinstance(value, Ed25519PublicKey):
        raise DecisionLogError("invalid_options", f"{what}: must be a private key, got a public key")
    data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
    key: Any
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except Exception as error:
        try:
            serialization.load_pem_public_key(data)
        except Exception:
            raise DecisionLogError("invalid_options", f"{what}: not a usable private key: {error}") from None
        raise DecisionLogError("invalid_options", f"{what}: must be a private key, got a public key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise DecisionLogError("invalid_options", f"{what}: must be an Ed25519 key")
    return key


class CheckpointSigner:
    """The signing side of a writer with a checkpoint key (checkpoint.ts checkpointSigner): the private key and its key id."""

    def __init__(self, key: CheckpointKeyInput, canonical: Callable[[Any], str], what: str = "checkpoint_key") -> None:
        self._private = _private_key(key, what)
        self.public_key = self._private.public_key()
        self.key_id = checkpoint_key_id(self.public_key)
        self._canonical = canonical

    def sign(self, statement: dict[str, Any]) -> dict[str, Any]:
        """The checkpoint: ``statement`` (which must name this key) with its base64 Ed25519 signature."""
        if statement.get("key_id") != self.key_id:
            raise DecisionLogError("invalid_options", f"statement names key {statement.get('key_id')}, signer is {self.key_id}")
        message = (CHECKPOINT_CONTEXT + self._canonical(statement)).encode("utf-8")
        return {**statement, "signature": base64.b64encode(self._private.sign(message)).decode("ascii")}


def checkpoint_time(epoch_ms: int) -> str:
    """ISO 8601 UTC with milliseconds, as JavaScript's Date.toISOString."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def checkpoint_signature_valid(checkpoint: dict[str, Any], key: Ed25519PublicKey, canonical: Callable[[Any], str]) -> bool:
    statement = {k: v for k, v in checkpoint.items() if k != "signature"}
    try:
        key.verify(base64.b64decode(checkpoint["signature"], validate=True), (CHECKPOINT_CONTEXT + canonical(statement)).encode("utf-8"))
        return True
    except (InvalidSignature, ValueError):
        return False


@dataclass(frozen=True)
class SeenCheckpoint:
    file: str
    line: int
    seq: int
    hash: str
    checkpoint: dict[str, Any]
    verified: bool


@dataclass(frozen=True)
class Uncovered:
    entries: int
    file: str
    line: int


class CheckpointTracker:
    """Follows one chain's entries and checks each checkpoint against the chain, the log's other checkpoints, its segment and the keys."""

    def __init__(self, keys: Optional[dict[str, Ed25519PublicKey]], canonical: Callable[[Any], str], unknown_keys: str = "fail") -> None:
        self.keys = keys or None
        #: A checkpoint signed by a key not in ``keys``: "fail" (verify) or
        #: "accept" unchecked (a writer, which knows only its own key).
        self.unknown_keys = unknown_keys
        self._canonical = canonical
        self.records = 0
        self.checkpoints = 0
        self.log_id: Optional[str] = None
        self.last: Optional[SeenCheckpoint] = None
        self._uncovered = 0
        self._first_uncovered: Optional[tuple[str, int]] = None

    def entry(self, seq: int, digest: str, checkpoint: Optional[dict[str, Any]], file: str, line: int, segment: Optional[dict[str, Any]]) -> Optional[str]:
        """``segment``: the file's place in the log, or None for a chain kept in one table (a PostgreSQL records table), whose checkpoints name none."""
        if checkpoint is None:
            self.records += 1
            self._uncovered += 1
            if self._first_uncovered is None:
                self._first_uncovered = (file, line)
            return None
        c = checkpoint
        if self.log_id is not None and c["log_id"] != self.log_id:
            return f"checkpoint names log {c['log_id']}, the log's earlier checkpoints' {self.log_id}"
        if segment is None and "segment" in c:
            return "checkpoint names a segment, but this log has none"
        if segment is not None:
            if "segment" not in c:
                return "checkpoint names no segment"
            s = c["segment"]
            if s["index"] != segment["index"]:
                return f"checkpoint names segment {s['index']}, but it is in segment {segment['index']} (renamed or moved)"
            if s["after_seq"] != segment["after_seq"] or s["after_hash"] != segment["after_hash"]:
                return f"checkpoint says segment {segment['index']} starts after seq {s['after_seq']}, it starts after seq {segment['after_seq']}"
        verified = False
        if self.keys is not None:
            key = self.keys.get(c["key_id"])
            if key is None:
                if self.unknown_keys != "accept":
                    return f"checkpoint signed by key {c['key_id']}, which is not among the public keys given"
            elif not checkpoint_signature_valid(c, key, self._canonical):
                return f"checkpoint signature does not verify with key {c['key_id']}"
            else:
                verified = True
        self.log_id = c["log_id"]
        self.checkpoints += 1
        self._uncovered = 0
        self._first_uncovered = None
        self.last = SeenCheckpoint(file, line, seq, digest, c, verified)
        return None

    @property
    def uncovered(self) -> Optional[Uncovered]:
        first = self._first_uncovered
        return None if first is None else Uncovered(self._uncovered, first[0], first[1])


def uncovered_text(entries: int) -> str:
    return f"{entries} record{'' if entries == 1 else 's'} after the last checkpoint"


def cover_text(seq: int) -> str:
    return "no entries" if seq == 0 else f"seq 1..{seq}"
