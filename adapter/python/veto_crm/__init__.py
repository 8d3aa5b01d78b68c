"""
Veto for CRM writes, in Python: the same signed policy bundle as the
TypeScript adapter, the same verdicts, and records that hash identically
(docs/python.md).
"""

import logging

from .aio import AsyncVeto, create_async_veto
from .approvals import AmendResult, ApprovalAnswer
from .bundle import DECISION_ENTRYPOINT, BundleVersion, bundle_version_hash_of_tarball, load_bundle
from .decision import AmendedCall, Decision, Reason
from .errors import (
    ApprovalError,
    BundleLoadError,
    BundleSignatureError,
    CanonicalJsonError,
    DecisionLogError,
    LogCorruptError,
    LogLockedError,
    RecordUnavailableError,
    VetoClosedError,
    VetoDeniedError,
    VetoError,
    VetoOptionsError,
)
from .input import InputLimits
from .log import FileDecisionLog, open_file_log, read_log, verify_log
from .records import JsonLinesRecordSink, RecordMasker, RecordSink
from .signature import VerificationKey
from .store import InMemoryStore
from .factory import create_veto
from .veto import EscalationEvent, Veto

# A library logs, the application decides where that goes (nowhere until it configures logging).
logging.getLogger("veto_crm").addHandler(logging.NullHandler())

__all__ = [
    "AmendResult",
    "AmendedCall",
    "ApprovalAnswer",
    "ApprovalError",
    "AsyncVeto",
    "BundleLoadError",
    "BundleSignatureError",
    "BundleVersion",
    "CanonicalJsonError",
    "DECISION_ENTRYPOINT",
    "Decision",
    "DecisionLogError",
    "EscalationEvent",
    "FileDecisionLog",
    "InMemoryStore",
    "InputLimits",
    "JsonLinesRecordSink",
    "LogCorruptError",
    "LogLockedError",
    "Reason",
    "RecordMasker",
    "RecordSink",
    "RecordUnavailableError",
    "VerificationKey",
    "Veto",
    "VetoClosedError",
    "VetoDeniedError",
    "VetoError",
    "VetoOptionsError",
    "bundle_version_hash_of_tarball",
    "create_async_veto",
    "create_veto",
    "load_bundle",
    "open_file_log",
    "read_log",
    "verify_log",
]
