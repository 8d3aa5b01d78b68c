"""
The decision the adapter hands back (docs/contract.md §5) and the policy's
own answer (§4b) that it is built from, as in adapter/decision.ts.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal, Mapping, Optional

from .bundle import BundleVersion
from .frozen import fast_init, python_class

Action = Literal["allow", "deny", "require_approval"]
ACTIONS: tuple[str, ...] = ("allow", "deny", "require_approval")


@fast_init
@dataclass(frozen=True)
class Reason:
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@fast_init
@dataclass(frozen=True)
class PolicyAnswer:
    """What ``veto/crm/decision`` answers."""

    action: str
    escalated: bool
    reasons: tuple[Reason, ...]
    approvers: tuple[str, ...]
    #: The hosts the policy read from a string destination (docs/contract.md §4b), copied into the record.
    destination_hosts: Optional[tuple[str, ...]] = None


@fast_init
@dataclass(frozen=True)
class Decision:
    id: str
    action: str
    escalated: bool
    #: The first reason's message, for people.
    reason: str
    reasons: tuple[Reason, ...]
    #: Non-empty exactly when action is require_approval.
    approvers: tuple[str, ...]
    bundle: BundleVersion
    #: ISO 8601, UTC, milliseconds.
    timestamp: str

    def to_json(self) -> dict[str, Any]:
        """The decision as the TypeScript adapter serializes it (same members, same order)."""
        return {
            "id": self.id,
            "action": self.action,
            "escalated": self.escalated,
            "reason": self.reason,
            "reasons": [r.to_json() for r in self.reasons],
            "approvers": list(self.approvers),
            "bundle": self.bundle.to_json(),
            "timestamp": self.timestamp,
        }


@python_class
@dataclass(frozen=True)
class AmendedCall:
    """
    An amended call and its decision (docs/contract.md §6, amend), as a wait
    for the original is told (``ApprovalError.amended``). ``call`` is a fresh
    deep copy at every read: exactly what was decided, whatever a reader does
    with it.
    """

    decision: Decision
    _call: Mapping[str, Any] = field(repr=False)

    @property
    def call(self) -> dict[str, Any]:
        """``{"tool", "arguments", "context"}``, the amended arguments with the original's tool and context."""
        return copy.deepcopy(dict(self._call))


#: Reason codes the adapter answers itself, without (or instead of) the policy.
INVALID_INPUT = "invalid_input"
EVALUATION_ERROR = "evaluation_error"
RECORD_UNAVAILABLE = "record_unavailable"
RECORD_STATE_UNAVAILABLE = "record_state_unavailable"

#: The adapter's own fail-closed codes: the system's fault, not the actor's. A deny
#: answered with one of them is recorded and remembered but does not count towards
#: the actor's recentDenies (docs/contract.md §3, §7b).
OUTAGE_REASON_CODES = frozenset({EVALUATION_ERROR, RECORD_UNAVAILABLE, RECORD_STATE_UNAVAILABLE})


def answer_counts_towards_escalation(action: str, reasons: tuple[Reason, ...]) -> bool:
    """Whether a decision counts towards its actor's deny history: a deny, unless the adapter's own outage answered it."""
    if action != "deny":
        return False
    # A loop, not any() over a generator: this runs for every deny.
    for r in reasons:
        if r.code in OUTAGE_REASON_CODES:
            return False
    return True


#: The messages policy/veto/crm/reasons.rego defines for these codes; the adapter appends the detail.
ADAPTER_REASON_MESSAGES = {
    INVALID_INPUT: "The call does not match the input contract",
    EVALUATION_ERROR: "The policy could not be evaluated",
    RECORD_UNAVAILABLE: "The decision record could not be written durably",
    RECORD_STATE_UNAVAILABLE: "The state of the CRM record could not be read",
}


def adapter_deny(code: str, detail: str) -> PolicyAnswer:
    """A deny the adapter answers itself: the code's message from reasons.rego, then the detail."""
    return PolicyAnswer("deny", False, (Reason(code, f"{ADAPTER_REASON_MESSAGES.get(code, code)}: {detail}"),), ())


#: The last day iso_timestamp wrote, and its date text ("YYYY-MM-DDT"): a day's date is formatted once.
_LAST_DAY: tuple[int, str] = (0, "1970-01-01T")


def iso_timestamp(ms: float) -> str:
    """``new Date(ms).toISOString()``: UTC with milliseconds."""
    global _LAST_DAY
    whole = int(ms // 1)
    seconds, millis = divmod(whole, 1000)
    day, second = divmod(seconds, 86400)
    last = _LAST_DAY
    if last[0] == day:
        date = last[1]
    else:
        # The day's first second: a valid time's day always starts at a valid time, and an invalid one's never does.
        date = datetime.fromtimestamp(day * 86400, tz=timezone.utc).strftime("%Y-%m-%dT")
        _LAST_DAY = (day, date)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    two = _TWO_DIGITS
    return f"{date}{two[hour]}:{two[minute]}:{two[second]}{_MILLIS[millis]}"


#: "00" to "59", and ".000Z" to ".999Z": a time of day is put together, not formatted.
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(60))
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))
