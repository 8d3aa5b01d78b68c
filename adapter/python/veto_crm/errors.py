"""
Typed errors, mirroring the TypeScript adapter's: every error the package
raises is a VetoError carrying a stable, machine-readable ``code``; messages
say what to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Optional, Sequence

if TYPE_CHECKING:
    from .decision import AmendedCall, Decision

BundleSignatureCheck = Literal[
    "unsigned",
    "signatures_file",
    "token",
    "algorithm",
    "signature",
    "scope",
    "file_unlisted",
    "file_missing",
    "file_hash",
    "hash_algorithm",
]

ApprovalErrorCode = Literal[
    "unknown_decision",
    "approval_not_required",
    "not_an_approver",
    "self_approval",
    "already_answered",
    "approval_expired",
    "approval_rejected",
    "approval_unverified",
    "approval_timeout",
    "approval_aborted",
    "call_mismatch",
    "record_unavailable",
    "closed",
    #: The approved call was already claimed for execution (use-once, docs/contract.md §6).
    "already_executed",
    #: The target record's state is not the one the call was approved at, or could not be read (docs/contract.md §6).
    "record_changed",
    #: An approver amended the call; the amended call is a new decision (docs/contract.md §6, amend).
    "amended",
    #: The decision cannot be amended (no context kept with it).
    "not_amendable",
]


class VetoError(Exception):
    """Base of every error the package raises; ``code`` is stable and machine-readable."""

    code: str

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    @property
    def message(self) -> str:
        return str(self)


class VetoOptionsError(VetoError):
    """Programmer misuse: bad options or arguments to the adapter's own API."""

    def __init__(self, message: str, issues: Sequence[str] = ()) -> None:
        super().__init__("invalid_options", message)
        self.issues: tuple[str, ...] = tuple(issues)


class BundleLoadError(VetoError):
    """The bundle (or the data document replacing its data) cannot be used."""

    def __init__(self, code: Literal["bundle_unusable", "data_unusable"], message: str) -> None:
        super().__init__(code, message)


class BundleSignatureError(VetoError):
    """A verification key is configured and the bundle's signature does not prove it is exactly what was signed."""

    def __init__(self, check: BundleSignatureCheck, message: str, file: Optional[str] = None) -> None:
        super().__init__("bundle_signature", f"bundle signature check failed ({check}): {message}")
        self.check: BundleSignatureCheck = check
        self.file = file


class VetoDeniedError(VetoError):
    """Raised by a guarded tool when the call was denied; carries the decision."""

    def __init__(self, decision: "Decision") -> None:
        super().__init__("denied", f"call denied: {decision.reason}")
        self.decision = decision


class ApprovalError(VetoError):
    """
    An approval, rejection, amendment or wait that was refused, with the reason
    as ``code``. For code "amended": ``amended`` holds the amended call and its
    decision (the original call never runs; run the amended one only as its
    decision allows, as ``guard`` does).
    """

    def __init__(self, code: ApprovalErrorCode, decision_id: str, message: str, amended: Optional["AmendedCall"] = None) -> None:
        super().__init__(code, message)
        self.decision_id = decision_id
        self.amended = amended


class VetoClosedError(VetoError):
    """The adapter was closed; no further decisions are made."""

    def __init__(self) -> None:
        super().__init__("closed", "this veto instance was closed; create a new one with create_veto()")


class DecisionLogError(VetoError):
    """Errors of the file decision log."""


class CanonicalJsonError(DecisionLogError):
    """A value that has no canonical JSON form; ``pointer`` is its JSON pointer ("" for the value itself)."""

    def __init__(self, pointer: str, problem: str) -> None:
        super().__init__("not_canonical_json", f"{'value' if pointer == '' else pointer}: {problem}")
        self.pointer = pointer


class RecordUnavailableError(DecisionLogError):
    """
    The record was not written. ``record_unavailable``: the sink failed for
    good; ``record_invalid``: only this record was refused (no canonical JSON
    form, or a field the log reserves).
    """

    def __init__(self, message: str, code: Literal["record_unavailable", "record_invalid"] = "record_unavailable") -> None:
        super().__init__(code, message)


class LogLockedError(DecisionLogError):
    """Another live process (or this one) already writes this log."""

    def __init__(self, lock_path: str, pid: Optional[int], message: str) -> None:
        super().__init__("log_locked", message)
        self.lock_path = lock_path
        self.pid = pid


class LogCorruptError(DecisionLogError):
    """The log is damaged somewhere other than a torn final line; ``reason`` is verify's text."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        super().__init__("log_corrupt", f"{file}: {reason}")
        self.file = file
        self.line = line
        self.reason = reason
