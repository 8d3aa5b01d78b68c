"""
Shadow mode (docs/policy-changes.md), as adapter/policy/shadow.ts runs it: a
candidate bundle evaluated beside the one in force on every call, with the
same input and deny history. Its verdict goes into the decision record
(``shadow``, inside the hash chain) and nowhere else: it never changes the
decision, and a candidate that fails to evaluate is recorded as
``shadow.error``, never a deny (docs/contract.md §9, "A shadow verdict is a
record, never a decision").
"""

from __future__ import annotations

from typing import Any

from .bundle import BundleVersion
from .evaluator import PolicyEvaluator

#: What a decision record carries of the candidate's verdict (docs/contract.md §7):
#: {revision, hash, action, escalated, reasons} or {revision, hash, error}, members in
#: the TypeScript adapter's order.
ShadowVerdict = dict[str, Any]


class ShadowPolicy:
    """A loaded (and verified) candidate bundle; thread-safe like its evaluator."""

    def __init__(self, version: BundleVersion, evaluator: PolicyEvaluator) -> None:
        self.version = version
        self._evaluator = evaluator

    def evaluate(self, call_json: str, recent_denies: int) -> ShadowVerdict:
        """The candidate's verdict on a call already checked (its canonical JSON) with the deny history the enforced policy saw. Never raises."""
        revision, hash_ = self.version.revision, self.version.hash
        try:
            evaluation = self._evaluator.evaluate_call(call_json, recent_denies)
            if not evaluation.ok or evaluation.answer is None:
                return _failed(revision, hash_, evaluation.error or "no answer")
            answer = evaluation.answer
            return {
                "revision": revision,
                "hash": hash_,
                "action": answer.action,
                "escalated": answer.escalated,
                # Reason codes, in the candidate's order.
                "reasons": [r.code for r in answer.reasons],
            }
        except Exception as error:
            return _failed(revision, hash_, str(error))


def _failed(revision: str, hash_: str, error: str) -> ShadowVerdict:
    return {"revision": revision, "hash": hash_, "error": error}


__all__ = ["ShadowPolicy", "ShadowVerdict"]
