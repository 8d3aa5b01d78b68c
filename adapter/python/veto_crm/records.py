"""
Decision records (docs/contract.md §7), exactly as the TypeScript adapter
makes them (adapter/records.ts and the record built in adapter/veto.ts): one
JSON object per decision, approval and rejection, written through a record
sink before the call returns. Field names follow OPA's decision-log event
where one exists (decision_id, timestamp, path, result, bundles, masked,
metrics).

Every record is built here, by ``decision_record`` and ``answer_record``: a
new field lands in one place for both kinds of record.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import stat
import sys
import threading
import time
from typing import Any, Mapping, Optional, Sequence, TextIO, Union

from .bundle import DECISION_ENTRYPOINT, BundleVersion
from .call_schema import CALL_SCHEMA
from .decision import Decision
from .frozen import python_class
from .jsontext import canonical, js_key_order, stringify
from .sinks import Record as Record, RecordSink as RecordSink  # re-exported: the protocol lives in sinks.py
from .text import fold_key

RECORD_BUNDLE_NAME = "crm"

#: Keys whose values are never masked: the contract's own fields, which the policy and the adapter read,
#: named by call.schema.json (generated from the TypeScript callSchema, as the TypeScript masker's are). Their
#: children can be.
CONTRACT_KEYS: Mapping[str, frozenset[str]] = {
    "": frozenset(CALL_SCHEMA["properties"]),
    "/arguments": frozenset(CALL_SCHEMA["properties"]["arguments"]["properties"]),
    "/context": frozenset(CALL_SCHEMA["properties"]["context"]["properties"]),
}


def _digest_text(value: Any) -> str:
    """canonicalJson with DIGEST_READING (adapter/common/canonical-json.ts): a non-finite number written as null (JSON.stringify's way)."""
    try:
        return canonical(value)
    except ValueError:
        return canonical(_finite(value))


#: How deep _finite copies (a deeper value has no digest, as when Python's recursion limit stopped it,
#: which its comprehensions reach at about 480 levels): counted, the same in both builds, because
#: compiled (hatch_build.py) a function calling itself is not stopped by that limit.
_FINITE_DEPTH = 200


def _finite(value: Any, depth: int = 0) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dict, list, tuple)) and depth >= _FINITE_DEPTH:
        raise RecursionError("nested too deep to copy")
    if isinstance(value, dict):
        return {k: _finite(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v, depth + 1) for v in value]
    return value


class RecordMasker:
    """
    Digests for records of a value's canonical JSON: "hmac-sha256:<hex>" with a
    deployment key (``record_key``; the same key gives the same digests as the
    TypeScript adapter), or "sha256:<hex>" without one.
    """

    def __init__(self, key: Union[str, bytes, None] = None) -> None:
        self._key = key.encode("utf-8") if isinstance(key, str) else key

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def digest(self, value: Any) -> str:
        return self.digest_json(_digest_text(value))

    def digest_json(self, text: str) -> str:
        """The digest of a value whose canonical JSON is already at hand."""
        data = text.encode("utf-8")
        if self._key is None:
            return f"sha256:{hashlib.sha256(data).hexdigest()}"
        return f"hmac-sha256:{hmac.new(self._key, data, hashlib.sha256).hexdigest()}"

    def call_digest(self, call: Mapping[str, Any]) -> str:
        """The digest of {tool, arguments, context} that an approval is bound to and records carry as ``call_digest``."""
        return self.digest({"tool": call.get("tool"), "arguments": call.get("arguments"), "context": call.get("context")})

    def mask_input(
        self, value: Any, sensitive_fields: frozenset[str], keys: Optional[frozenset[str]] = None, text: Optional[str] = None
    ) -> tuple[Any, list[str]]:
        """
        A copy of ``value`` (the call as received, or as much of it as is JSON)
        fit for a record and for replay: the value under every key named
        sensitive (names matched by their fold keys, text.py; any depth) replaced by its digest, the
        contract's own fields never masked themselves. Also the JSON pointers
        replaced, rooted at the record (``/input/arguments/changes/ssn``).
        ``keys``: every object key in ``value`` (input.py's snapshot collects
        them), when known: with no sensitive key among them nothing is walked.
        ``text``: ``value``'s compact JSON text (the snapshot's canonical JSON),
        when known: in ASCII text every key is written as itself, so with no
        sensitive name written as a key there nothing is walked either.
        """
        masked: list[str] = []
        if keys is not None and not _any_sensitive(keys, sensitive_fields):
            return value, masked
        if text is not None and not _sensitive_key_written(text, sensitive_fields):
            return value, masked
        if not _has_maskable(value, sensitive_fields, ""):
            return value, masked

        def walk(v: Any, pointer: str) -> Any:
            if isinstance(v, list):
                return [walk(item, f"{pointer}/{i}") for i, item in enumerate(v)]
            if not isinstance(v, dict):
                return v
            protected = CONTRACT_KEYS.get(pointer)
            out: dict[str, Any] = {}
            for key in js_key_order(v):
                child_pointer = f"{pointer}/{key.replace('~', '~0').replace('/', '~1')}"
                if fold_key(key) in sensitive_fields and not (protected is not None and key in protected):
                    masked.append(f"/input{child_pointer}")
                    out[key] = self.digest(v[key])
                else:
                    out[key] = walk(v[key], child_pointer)
            return out

        return walk(value, ""), masked


#: Whether a key is sensitive, by key, for each set of sensitive fold keys (one per bundle): a key's fold key is
#: computed once, not on every call. Bounded: a memo past its size is emptied and refilled.
_SENSITIVE_MEMOS: dict[frozenset[str], dict[str, bool]] = {}
_MEMO_KEYS = 4096


def _sensitive_memo(sensitive_fields: frozenset[str]) -> dict[str, bool]:
    memo = _SENSITIVE_MEMOS.get(sensitive_fields)
    if memo is None:
        if len(_SENSITIVE_MEMOS) >= 8:
            _SENSITIVE_MEMOS.clear()
        memo = _SENSITIVE_MEMOS.setdefault(sensitive_fields, {})
    return memo


def _is_sensitive(key: str, sensitive_fields: frozenset[str], memo: dict[str, bool]) -> bool:
    hit = memo.get(key)
    if hit is None:
        hit = fold_key(key) in sensitive_fields
        if len(memo) >= _MEMO_KEYS:
            memo.clear()
        memo[key] = hit
    return hit


#: Keys known not to be sensitive, for each set of sensitive fold keys (bounded as _SENSITIVE_MEMOS).
_SAFE_KEYS: dict[frozenset[str], set[str]] = {}


def _any_sensitive(keys: frozenset[str], sensitive_fields: frozenset[str]) -> bool:
    """Whether any of ``keys`` is sensitive (its fold key is in ``sensitive_fields``), wherever it is."""
    safe = _SAFE_KEYS.get(sensitive_fields)
    if safe is None:
        if len(_SAFE_KEYS) >= 8:
            _SAFE_KEYS.clear()
        safe = _SAFE_KEYS.setdefault(sensitive_fields, set())
    if keys <= safe:
        return False
    memo = _sensitive_memo(sensitive_fields)
    for key in keys - safe:
        if _is_sensitive(key, sensitive_fields, memo):
            return True
        if len(safe) >= _MEMO_KEYS:
            safe.clear()
        safe.add(key)
    return False


#: Never matches: no sensitive name can be written as a key in ASCII text.
_NO_PATTERN = re.compile(r"(?!)")
#: For each set of sensitive fold keys (bounded as _SENSITIVE_MEMOS): what finds any of them written as a key in
#: compact ASCII JSON text, or None when that cannot be told from the text (a name JSON writes escaped).
_SENSITIVE_PATTERNS: dict[frozenset[str], Optional[re.Pattern[str]]] = {}


def _sensitive_key_written(text: str, sensitive_fields: frozenset[str]) -> bool:
    """
    Whether compact JSON ``text`` may hold a key whose fold key is in
    ``sensitive_fields``; False only when it holds none. An ASCII key's fold
    key is its ASCII lower case (text.py), and in ASCII text each key is
    written as itself between quotes, followed by a colon, which no string
    value can hold unescaped: a key folding to a sensitive name is found by
    that name in the text's lower case. A name with no ASCII fold (non-ASCII)
    is no ASCII key's; text with a non-ASCII character may hold one.
    """
    if not text.isascii():
        return True
    if sensitive_fields in _SENSITIVE_PATTERNS:
        pattern = _SENSITIVE_PATTERNS[sensitive_fields]
    else:
        names = sorted(f for f in sensitive_fields if f.isascii())
        if any(c in '"\\' or c < " " or c == "\x7f" for name in names for c in name):
            pattern = None
        elif not names:
            pattern = _NO_PATTERN
        else:
            # Matched against the text in lower case (several times faster than ignoring case in the match),
            # the names grouped by their first character (one alternative tried per key, not one per name).
            groups: dict[str, list[str]] = {}
            for name in sorted({name.lower() for name in names}):
                groups.setdefault(name[:1], []).append(re.escape(name[1:]))
            pattern = re.compile('"(?:' + "|".join(re.escape(first) + "(?:" + "|".join(rest) + ")" for first, rest in groups.items()) + ')":')
        if len(_SENSITIVE_PATTERNS) >= 8:
            _SENSITIVE_PATTERNS.clear()
        _SENSITIVE_PATTERNS[sensitive_fields] = pattern
    return pattern is None or pattern.search(text.lower()) is not None


def _has_maskable(v: Any, sensitive_fields: frozenset[str], pointer: Optional[str], memo: Optional[dict[str, bool]] = None) -> bool:
    """Whether mask_input would replace anything in ``v`` (the same walk, without copying); ``pointer`` None below the contract's objects."""
    if memo is None:
        memo = _sensitive_memo(sensitive_fields)
    if isinstance(v, list):
        for item in v:
            if isinstance(item, (dict, list)) and _has_maskable(item, sensitive_fields, None, memo):
                return True
        return False
    if not isinstance(v, dict):
        return False
    protected = CONTRACT_KEYS.get(pointer) if pointer is not None else None
    for key, child in v.items():
        hit = memo.get(key)
        if hit is None:
            hit = _is_sensitive(key, sensitive_fields, memo)
        if hit and not (protected is not None and key in protected):
            return True
        if isinstance(child, (dict, list)) and _has_maskable(child, sensitive_fields, f"/{key}" if pointer == "" else None, memo):
            return True
    return False


def decision_record(
    *,
    decision: Decision,
    bundle: BundleVersion,
    who: Mapping[str, Optional[str]],
    context: Optional[Mapping[str, Any]],
    input: Any,
    masked: Sequence[str],
    input_digest: Optional[str],
    call_digest: Optional[str],
    recent_denies: Optional[int],
    eval_ns: int,
    destination_hosts: Optional[Sequence[str]] = None,
    expires_at: Optional[str] = None,
    shadow: Optional[Mapping[str, Any]] = None,
    record_state: Optional[str] = None,
    amended_from: Optional[str] = None,
    amended_by: Optional[str] = None,
) -> Record:
    """The record of one decision (veto.ts's DecisionEventRecord), members in the TypeScript adapter's order."""

    if context is not None:
        source_system = context.get("sourceSystem")
        request_id = context.get("requestId")
        session_id = context.get("sessionId")
        on_behalf_of = context.get("onBehalfOf")
    else:
        source_system = request_id = session_id = on_behalf_of = None
    record: Record = {
        "type": "decision",
        "decision_id": decision.id,
        "timestamp": decision.timestamp,
        "path": DECISION_ENTRYPOINT,
        "bundles": {RECORD_BUNDLE_NAME: bundle.to_json()},
        "tool": who.get("tool"),
        "actor_id": who.get("actor_id"),
        "tenant_id": who.get("tenant_id"),
        "environment": who.get("environment"),
        "source_system": source_system if isinstance(source_system, str) else None,
        "request_id": request_id if isinstance(request_id, str) else None,
        "session_id": session_id if isinstance(session_id, str) else None,
        "on_behalf_of": on_behalf_of if isinstance(on_behalf_of, str) else None,
        "input": input,
        "masked": list(masked),
        "input_digest": input_digest,
        "call_digest": call_digest,
        "history": None if recent_denies is None else {"recent_denies": recent_denies},
        "result": {
            "action": decision.action,
            "escalated": decision.escalated,
            "reason": decision.reason,
            "reasons": [{"code": r.code, "message": r.message} for r in decision.reasons],
            "approvers": list(decision.approvers),
        },
        "metrics": {"timer_rego_query_eval_ns": eval_ns},
    }
    # The hosts the policy read, from its own answer: one parser, in the policy (docs/contract.md §4b).
    if destination_hosts is not None:
        record["destination_hosts"] = list(destination_hosts)
    # A shadow bundle's verdict, inside the hash chain (docs/policy-changes.md); never the decision.
    if shadow is not None:
        record["shadow"] = dict(shadow)
    # The state of the target CRM record the approval is bound to (docs/contract.md §6, record state).
    if record_state is not None:
        record["record_state"] = record_state
    # The decision of an amended call: the decision it amends and who amended it (docs/contract.md §6, amend).
    if amended_from is not None:
        record["amended_from"] = amended_from
        record["amended_by"] = amended_by
    # The approval's expiry, so a report tells expired from pending (docs/contract.md §7).
    if expires_at is not None:
        record["expires_at"] = expires_at
    return record


def result_of(decision: Decision) -> dict[str, Any]:
    """A record's ``result`` (decision_record writes the same inline)."""
    return {
        "action": decision.action,
        "escalated": decision.escalated,
        "reason": decision.reason,
        "reasons": [r.to_json() for r in decision.reasons],
        "approvers": list(decision.approvers),
    }


def answer_record(
    *,
    kind: str,
    decision_id: str,
    timestamp: str,
    bundle: BundleVersion,
    actor_id: Optional[str],
    tenant_id: Optional[str],
    call_digest: Optional[str],
    reviewer_id: str,
    note: Optional[str],
) -> Record:
    """The record of an approval or rejection (approvals.ts's ApprovalEventRecord)."""
    return {
        "type": kind,
        "decision_id": decision_id,
        "timestamp": timestamp,
        "path": DECISION_ENTRYPOINT,
        "bundles": {RECORD_BUNDLE_NAME: bundle.to_json()},
        "actor_id": actor_id,
        "tenant_id": tenant_id,
        "call_digest": call_digest,
        "reviewer_id": reviewer_id,
        "note": note,
        "result": {"approval": "approved" if kind == "approval" else "rejected"},
    }


def execution_record(
    *,
    decision_id: str,
    timestamp: str,
    bundle: BundleVersion,
    actor_id: Optional[str],
    tenant_id: Optional[str],
    call_digest: Optional[str],
    reviewer_id: Optional[str],
    execution: str,
    record_changed: bool = False,
    record_state: Optional[str] = None,
) -> Record:
    """
    The record of a use-once claim, "claimed" or "refused" (records.ts's
    ExecutionEventRecord). ``record_changed``: refused because the target
    record's state is not the one approved (docs/contract.md §6), with the
    state read then in ``record_state`` (null: it could not be read).
    """
    record: Record = {
        "type": "execution",
        "decision_id": decision_id,
        "timestamp": timestamp,
        "path": DECISION_ENTRYPOINT,
        "bundles": {RECORD_BUNDLE_NAME: bundle.to_json()},
        "actor_id": actor_id,
        "tenant_id": tenant_id,
        "call_digest": call_digest,
        "reviewer_id": reviewer_id,
    }
    if record_changed:
        record["result"] = {"execution": "refused", "reason": "record_changed"}
        record["record_state"] = record_state
    else:
        record["result"] = {"execution": execution}
    return record


def amendment_record(
    *,
    decision_id: str,
    timestamp: str,
    bundle: BundleVersion,
    actor_id: Optional[str],
    tenant_id: Optional[str],
    call_digest: Optional[str],
    reviewer_id: str,
    note: Optional[str],
    amended_to: str,
) -> Record:
    """
    The record of an amendment (records.ts's AmendmentEventRecord,
    docs/contract.md §6): the original's approval ends "amended", and
    ``amended_to`` names the amended call's decision.
    """
    return {
        "type": "amendment",
        "decision_id": decision_id,
        "timestamp": timestamp,
        "path": DECISION_ENTRYPOINT,
        "bundles": {RECORD_BUNDLE_NAME: bundle.to_json()},
        "actor_id": actor_id,
        "tenant_id": tenant_id,
        "call_digest": call_digest,
        "reviewer_id": reviewer_id,
        "note": note,
        "amended_to": amended_to,
        "result": {"approval": "amended"},
    }


def _cause_text(error: BaseException) -> str:
    if isinstance(error, OSError) and error.errno is not None:
        from .text import node_error_message

        return node_error_message(error, "write")
    return str(error)


@python_class
class JsonLinesRecordSink:
    """
    The default sink: one JSON line per record on a text stream (standard
    error unless given), shaped like the TypeScript adapter's pino lines
    (``level``, ``time``, ``name``, ``component``, the record's members, ``msg``
    "veto decision" / "veto approval" / "veto rejection" / "veto execution" / "veto amendment"), flushed before
    ``write`` returns. It fails closed as the TypeScript FdRecordSink does
    (adapter/records/fd-sink.ts, docs/contract.md §7): the null device is
    refused (records written there are discarded), a regular file is
    fdatasync'ed before ``write`` returns, and a write that fails raises, and
    so does every later one.
    """

    def __init__(self, stream: Optional[TextIO] = None, label: Optional[str] = None) -> None:
        self._stream = stream if stream is not None else sys.stderr
        self._label = label if label is not None else ("standard error" if stream is None or stream is sys.stderr else "the records stream")
        self._lock = threading.Lock()
        self.failure: Optional[BaseException] = None
        self._checked = False
        self._sync_fd: Optional[int] = None

    def _check_destination(self) -> None:
        """Once, before the first record: what the descriptor is (a stream without one is taken as it is)."""
        self._checked = True
        try:
            fd = self._stream.fileno()
            st = os.fstat(fd)
        except (AttributeError, OSError, ValueError):
            return
        if stat.S_ISCHR(st.st_mode):
            try:
                null = os.stat(os.devnull)
                if stat.S_ISCHR(null.st_mode) and null.st_rdev == st.st_rdev:
                    raise OSError("it is the null device: records written there are discarded")
            except FileNotFoundError:
                pass
        elif stat.S_ISREG(st.st_mode):
            self._sync_fd = fd

    def write(self, record: Record) -> None:
        line = stringify(
            {"level": 30, "time": int(time.time() * 1000), "name": "veto", "component": "records", **record, "msg": f"veto {record['type']}"}
        )
        with self._lock:
            if self.failure is not None:
                raise OSError(f"{self._label} failed and accepts no more records: {_cause_text(self.failure)}")
            try:
                if not self._checked:
                    self._check_destination()
                self._stream.write(line + "\n")
                self._stream.flush()
                if self._sync_fd is not None:
                    os.fdatasync(self._sync_fd)
            except BaseException as error:
                self.failure = error
                if isinstance(error, OSError) and error.errno is None:
                    raise OSError(f"{self._label} failed and accepts no more records: {error}") from error
                raise

    def close(self) -> None:
        pass
