"""
create_veto: the options checked and the Veto made. Kept apart from veto.py,
which the compiled build (hatch_build.py) compiles: there, every argument of a
compiled function is checked against its annotation before the function runs,
so a wrongly typed option would be refused with mypyc's TypeError instead of
the VetoOptionsError that names it. Here, as Python, the checks below are the
first to see the options in both builds.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from .errors import VetoOptionsError
from .input import DEFAULT_INPUT_LIMITS, InputLimits
from .record_state import DEFAULT_RECORD_STATE_TIMEOUT_MS, RecordStateFn
from .records import RecordMasker, RecordSink
from .shadow import ShadowPolicy
from .signature import BundleVerifier, VerificationKeyInput, create_bundle_verifier
from .veto import EscalationEvent, Veto, activate_policy


def _record_key_ok(key: Any) -> bool:
    if isinstance(key, str):
        return len(key.encode("utf-8")) >= 16
    return isinstance(key, (bytes, bytearray)) and len(key) >= 16


#: The deepest nesting a call may be allowed: the copy, the masking and the digests walk a call one
#: call per level, and the compiled build's calls are not stopped by Python's recursion limit
#: (docs/python.md, "Two builds"). The TypeScript adapter takes any positive integer.
MAX_DEPTH_LIMIT = 256


def _limits(given: Any) -> InputLimits:
    if given is None:
        return DEFAULT_INPUT_LIMITS
    if isinstance(given, InputLimits):
        limits = given
    elif isinstance(given, Mapping) and set(given) <= {"max_input_bytes", "max_depth"}:
        # Checked below with the given InputLimits: replace() takes any value.
        limits = replace(DEFAULT_INPUT_LIMITS, **dict(given))
    else:
        raise VetoOptionsError("create_veto: limits must be InputLimits or {max_input_bytes?, max_depth?}")
    if not (_positive_int(limits.max_input_bytes) and _positive_int(limits.max_depth)):
        raise VetoOptionsError("create_veto: limits.max_input_bytes and limits.max_depth must be positive integers")
    if limits.max_depth > MAX_DEPTH_LIMIT:
        raise VetoOptionsError(f"create_veto: limits.max_depth must be at most {MAX_DEPTH_LIMIT}")
    return limits


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def create_veto(
    bundle: Union[str, Path, bytes],
    *,
    data: Optional[Mapping[str, Any]] = None,
    store: Optional[Any] = None,
    record_sink: Optional[RecordSink] = None,
    record_key: Union[str, bytes, None] = None,
    verification_key: Union[VerificationKeyInput, Sequence[VerificationKeyInput], None] = None,
    clock: Optional[Callable[[], float]] = None,
    approval_ttl_ms: int = 3_600_000,
    approval_poll_ms: int = 1000,
    limits: Union[InputLimits, Mapping[str, int], None] = None,
    on_escalation: Optional[Callable[[EscalationEvent], Any]] = None,
    shadow: Optional[Mapping[str, Any]] = None,
    record_state: Optional[RecordStateFn] = None,
    record_state_timeout_ms: int = DEFAULT_RECORD_STATE_TIMEOUT_MS,
    _asyncio: bool = False,
) -> "Veto":
    """
    Load the bundle (verifying its signature when ``verification_key`` is given)
    and return a Veto. ``bundle``: path of the bundle .tar.gz or its bytes.
    ``data``: a data document replacing the bundle's data.json entirely.
    ``store``: deny history and approvals (default a new InMemoryStore; a
    ``veto_crm.postgres.PostgresStore`` shares them with every instance, Node
    or Python, on its database, and is not closed by ``close()``).
    ``record_sink``: where records go (default JSON lines on standard error,
    or with a PostgresStore its records table, written in the same
    transaction as the history update; pass a FileDecisionLog for the durable
    log). ``record_key``: at least 16
    bytes, the key of the HMAC-SHA-256 digests in records (default none: plain
    SHA-256). ``clock``: epoch milliseconds (default time.time() * 1000).
    ``limits``: {max_input_bytes: 65536, max_depth: 12}.
    ``shadow``: ``{"bundle": PATH_OR_BYTES, "data": None, "verification_key": None}``,
    a candidate bundle evaluated beside the one in force on every call the
    policy decides, with the same call and deny history. Its verdict is
    recorded (``shadow`` in the decision record) and never changes the
    decision; a candidate that fails is recorded as ``shadow.error``, never a
    deny. Default: none (docs/policy-changes.md).
    ``record_state``: ``fn(call) -> str | None``, the state of the CRM record
    the call targets (a version, ETag, SystemModstamp or a digest of the
    fields the call changes; None: no state to bind), docs/contract.md §6.
    Asked (with a deep copy of the call) once when a call needs approval: the
    state is kept with the approval and recorded as ``record_state``. Asked
    again where the approved call executes (``guard``, ``wait_for_approval``
    with ``call``): the call runs only when the state is unchanged, else
    ApprovalError ``record_changed``. At decision time a function that raises,
    answers something other than a str or None, or takes longer than
    ``record_state_timeout_ms`` (default 2,000) makes the decision a deny
    ``record_state_unavailable`` (not counted towards escalation). An ``async
    def`` needs create_async_veto. Default: none.
    """
    issues: list[str] = []
    if not isinstance(bundle, (str, Path, bytes, bytearray)) or bundle == "":
        issues.append("bundle: bundle is required: a path to the bundle .tar.gz or its bytes")
    if data is not None and not isinstance(data, Mapping):
        issues.append("data: data must be a JSON object (the whole data document)")
    if store is not None and not all(callable(getattr(store, m, None)) for m in ("unit", "append_decision", "count_recent_denies", "get_decision", "transition_approval", "watch_decision")):
        issues.append("store: store must be an InMemoryStore or a veto_crm.postgres.PostgresStore")
    if record_sink is not None and not callable(getattr(record_sink, "write", None)):
        issues.append("record_sink: record_sink must have a write(record) method")
    if record_key is not None and not _record_key_ok(record_key):
        issues.append("record_key: record_key must be a str or bytes of at least 16 bytes")
    if clock is not None and not callable(clock):
        issues.append("clock: clock must be a function returning epoch milliseconds")
    if not _positive_int(approval_ttl_ms):
        issues.append("approval_ttl_ms: must be a positive integer")
    if not _positive_int(approval_poll_ms):
        issues.append("approval_poll_ms: must be a positive integer")
    if on_escalation is not None and not callable(on_escalation):
        issues.append("on_escalation: on_escalation must be a function")
    if shadow is not None:
        issues.extend(_shadow_issues(shadow))
    if record_state is not None and not callable(record_state):
        issues.append("record_state: record_state must be a function (call) -> str | None")
    elif record_state is not None and inspect.iscoroutinefunction(record_state) and not _asyncio:
        issues.append("record_state: an async def record_state needs the asyncio API (create_async_veto); the synchronous Veto cannot await it")
    if not _positive_int(record_state_timeout_ms):
        issues.append("record_state_timeout_ms: must be a positive integer")
    if issues:
        raise VetoOptionsError(f"create_veto: invalid options: {'; '.join(issues)}", issues)
    input_limits = _limits(limits)
    verifier = None if verification_key is None else create_bundle_verifier(verification_key)
    shadow_verifier = None if shadow is None else _shadow_verifier(shadow.get("verification_key"))
    policy = activate_policy(bytes(bundle) if isinstance(bundle, bytearray) else bundle, verifier, data, "given as options.data")
    shadow_policy: Optional[ShadowPolicy] = None
    if shadow is not None:
        # Refused like the enforced bundle: an unusable candidate is a programmer's error, raised here.
        shadow_bundle = shadow["bundle"]
        candidate = activate_policy(
            bytes(shadow_bundle) if isinstance(shadow_bundle, bytearray) else shadow_bundle,
            shadow_verifier,
            shadow.get("data"),
            "given as options.data",
        )
        shadow_policy = ShadowPolicy(candidate.version, candidate.evaluator)
    return Veto(
        policy,
        store=store,
        record_sink=record_sink,
        masker=RecordMasker(bytes(record_key) if isinstance(record_key, bytearray) else record_key),
        clock=clock or (lambda: time.time() * 1000),
        approval_ttl_ms=approval_ttl_ms,
        approval_poll_ms=approval_poll_ms,
        limits=input_limits,
        on_escalation=on_escalation,
        shadow=shadow_policy,
        record_state=record_state,
        record_state_timeout_ms=record_state_timeout_ms,
    )


_SHADOW_OPTIONS = ("bundle", "data", "verification_key")


def _shadow_issues(shadow: Any) -> list[str]:
    """What is wrong with the ``shadow`` option (veto.ts's optionsSchema.shadow), each naming the option."""
    if not isinstance(shadow, Mapping):
        return ["shadow: shadow must be {bundle, data?, verification_key?}"]
    issues = [f"shadow: unknown option {name} (known: {', '.join(_SHADOW_OPTIONS)})" for name in shadow if name not in _SHADOW_OPTIONS]
    bundle = shadow.get("bundle")
    if not isinstance(bundle, (str, Path, bytes, bytearray)) or bundle in ("", b""):
        issues.append("shadow.bundle: shadow.bundle is required: a path to the candidate bundle .tar.gz or its bytes")
    data = shadow.get("data")
    if data is not None and not isinstance(data, Mapping):
        issues.append("shadow.data: shadow.data must be a JSON object (the whole data document)")
    return issues


def _shadow_verifier(key: Any) -> Optional[BundleVerifier]:
    if key is None:
        return None
    try:
        return create_bundle_verifier(key)
    except VetoOptionsError as error:
        issue = f"shadow.{error}" if str(error).startswith("verification_key") else f"shadow.verification_key: {error}"
        raise VetoOptionsError(f"create_veto: invalid options: {issue}", [issue]) from None
