"""
Approvals (docs/contract.md §6), as adapter/approvals.ts answers and waits:
only a listed approver, never the decision's actor, once, before expiry; an
answer is reserved, recorded, and only then committed, so no approval takes
effect without its record; a wait is bound to the call's digest when the call
is given; a wait accepts an approval only when the records back it
(evidence.py, ``approval_unverified``); a wait given the call claims the
approval for execution (use-once: approved -> executed, ``already_executed``
for a second claim), after comparing the target record's state with the one
the approval is bound to (``record_changed``). An approver may amend a
pending call instead of answering it (``amend``): the amended call is a new
decision, and a wait for the original is refused with code ``amended``,
carrying the amended call (docs/contract.md §6).
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, TypeVar

from .bundle import BundleVersion
from .decision import AmendedCall, Decision, iso_timestamp
from .errors import ApprovalError, CanonicalJsonError, VetoOptionsError
from .evidence import WrittenRecords, approval_problem, written_records_of
from .jsontext import js_number, lone_surrogate_at, stringify
from .record_state import RecordStateReading
from .records import RecordSink, amendment_record, answer_record, execution_record
from .store import ApprovalTransition, InMemoryStore, StoredDecision
from .text import is_blank
from .unit import run_unit

_T = TypeVar("_T")

log = logging.getLogger("veto_crm")


@dataclass(frozen=True)
class ApprovalAnswer:
    decision_id: str
    status: str
    reviewer_id: str
    #: ISO 8601 UTC.
    answered_at: str
    note: Optional[str] = None


@dataclass(frozen=True)
class AmendResult:
    """What amend() answers (docs/contract.md §6, amend)."""

    #: The decision amended (now "amended").
    amended: str
    #: The amended call's decision, made by the policy with the original's context.
    decision: Decision
    #: When the amended call needed approval and the amender is among its approvers: their approval of it.
    approval: Optional[ApprovalAnswer] = None


def require_text(value: Any, name: str, method: str) -> str:
    if not isinstance(value, str) or is_blank(value):
        raise VetoOptionsError(f"{method}: {name} must be a non-empty string")
    return require_recordable(value, name, method)


def require_recordable(value: str, name: str, method: str) -> str:
    """
    A str an answer's record holds: text with a UTF-8 form. A lone surrogate
    has none, so its record could not be written; refused before anything is
    reserved or recorded, naming where (approvals/desk.ts requireRecordable).
    """
    at = lone_surrogate_at(value)
    if at >= 0:
        raise VetoOptionsError(f"{method}: {name} holds a lone surrogate (code point {at}), which no record can hold: send well-formed text")
    return value


def optional_note(value: Any, method: str) -> Optional[str]:
    """An answer's optional note: a str with a UTF-8 form when given."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise VetoOptionsError(f"{method}: note must be a string when given")
    return require_recordable(value, "note", method)


class ApprovalDesk:
    def __init__(
        self,
        store: Any,
        sink: RecordSink,
        clock: Callable[[], float],
        bundle: Callable[[], BundleVersion],
        poll_ms: float,
        call_digest: Callable[[Mapping[str, Any]], str],
        written: Optional[WrittenRecords] = None,
        record_state: Optional[Callable[[Mapping[str, Any]], RecordStateReading]] = None,
    ) -> None:
        self.store = store
        self.sink = sink
        self.clock = clock
        self.bundle = bundle
        self.poll_ms = poll_ms
        self.call_digest = call_digest
        #: What backs an approval: the sink's records read back when it can be read (the PostgreSQL
        #: sink: the shared chain, so an answer given by any instance, Node or Python, is checked), else
        #: this process's memory of the records written to the sink.
        self.written: Any = written if written is not None else sink if callable(getattr(sink, "read_records", None)) else written_records_of(sink)
        #: The application's record_state, asked within its timeout (never raises): where an
        #: approved call bound to a record state executes, it is asked again (docs/contract.md §6).
        self.record_state = record_state
        self._closed: Optional[Exception] = None
        self._wakers: set[threading.Event] = set()
        self._wakers_lock = threading.Lock()

    def now(self) -> float:
        """The store's clock when it has one (the database's: docs/contract.md §6, one clock for every instance), else the instance's."""
        store_now = getattr(self.store, "now", None)
        return float(store_now()) if callable(store_now) else self.clock()

    def _now_or_clock(self) -> float:
        """The store's clock, or the instance's when the store cannot tell it (a record of a refusal is still written)."""
        try:
            return self.now()
        except Exception:
            return self.clock()

    def _store_call(self, kind: str, decision_id: str, run: Callable[[], _T]) -> _T:
        """
        A store read before an answer's unit (approvals/desk.ts #storeCall): its failure, not a
        refusal, is a record_unavailable refusal naming why, never the driver's own exception.
        """
        try:
            return run()
        except ApprovalError:
            raise
        except Exception as error:
            log.error("%s could not be stored (decision %s): %s", kind, decision_id, error)
            raise ApprovalError("record_unavailable", decision_id, f"the {kind} could not be stored: {error}") from error

    def _answerable_by(self, decision_id: str, reviewer_id: str, act: str, kind: str = "approval") -> StoredDecision:
        """
        The pending decision ``reviewer_id`` may answer or amend, or ApprovalError: not its own
        call, one of its approvers, not yet settled. ``act`` ends the self-approval message.
        """
        decision = self._store_call(kind, decision_id, lambda: self.approvable(decision_id))
        if reviewer_id == decision.actor_id:
            raise ApprovalError("self_approval", decision_id, f"{reviewer_id} made the call and cannot {act}")
        if reviewer_id not in decision.approvers:
            raise ApprovalError(
                "not_an_approver",
                decision_id,
                f"{reviewer_id} is not among this decision's approvers ({', '.join(decision.approvers)})",
            )
        self._refuse_if_settled(decision, self._store_call(kind, decision_id, self.now))
        return decision

    def answer(self, kind: str, decision_id: Any, reviewer_id: Any, note: Any = None) -> ApprovalAnswer:
        method = "approve" if kind == "approval" else "reject"
        decision_id = require_text(decision_id, "decision_id", method)
        reviewer_id = require_text(reviewer_id, "reviewer_id", method)
        optional_note(note, method)
        decision = self._answerable_by(decision_id, reviewer_id, "answer its own approval", kind)

        status = "approved" if kind == "approval" else "rejected"
        # Reserve, record, settle: one unit, so with a transactional store the reservation is never seen
        # by others and a crash leaves the approval pending with no record.
        try:
            with run_unit(self.store, self.sink, None, None) as unit:
                return self._answer_in(unit, kind, status, decision, reviewer_id, note)
        except ApprovalError:
            raise
        except Exception as error:
            # The store could not give a unit or lost it: refused, naming why.
            log.error("%s could not be stored (decision %s)", kind, decision_id, exc_info=error)
            raise ApprovalError("record_unavailable", decision_id, f"the {kind} could not be stored: {error}") from error

    def _answer_in(self, unit: Any, kind: str, status: str, decision: StoredDecision, reviewer_id: str, note: Optional[str]) -> ApprovalAnswer:
        decision_id = decision.id
        # The time of the answer is read again where the reservation is made (by the store's clock when
        # it has one: the unit's), and the store refuses to reserve a pending approval at or after its
        # expiry, so no answer commits after it.
        at_ms = unit.now_ms if unit.now_ms is not None else self.clock()
        if not unit.transition_approval(decision_id, ApprovalTransition("pending", "answering", at_ms, reviewer_id)):
            again = unit.get_decision(decision_id)
            unit.rollback()
            if again is not None and again.approval is not None and again.approval.status == "pending":
                # Pending but not reservable: the store's clock says it has expired.
                try:
                    self.store.transition_approval(decision_id, ApprovalTransition("pending", "expired", at_ms))
                except Exception:
                    pass
                raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired at {iso_timestamp(again.approval.expires_at_ms)}")
            if again is not None:
                self._refuse_if_settled(again, at_ms)
            raise ApprovalError("already_answered", decision_id, f"decision {decision_id} is already being answered")
        record = answer_record(
            kind=kind,
            decision_id=decision_id,
            timestamp=iso_timestamp(at_ms),
            bundle=self.bundle(),
            actor_id=decision.actor_id,
            tenant_id=decision.tenant_id,
            call_digest=decision.call_digest,
            reviewer_id=reviewer_id,
            note=note,
        )
        try:
            unit.write_record(record)
        except Exception as error:
            # A transactional unit is already rolled back (the reservation with it).
            if not unit.records_in_transaction:
                self.store.transition_approval(decision_id, ApprovalTransition("answering", "pending", at_ms))
            raise ApprovalError(
                "record_unavailable", decision_id, f"the {kind} was refused because its record could not be written: {error}"
            ) from error
        # Known before the answer commits: a waiter that sees the approval finds its record.
        self.written.remember(record)
        try:
            unit.transition_approval(decision_id, ApprovalTransition("answering", status, at_ms, reviewer_id, note))
            unit.commit()
        except Exception:
            # A COMMIT whose connection broke may have committed all the same: read what the store holds.
            try:
                held = self.store.get_decision(decision_id)
            except Exception:
                held = None
            approval = None if held is None else held.approval
            if approval is not None and approval.status == status and approval.reviewer_id == reviewer_id and approval.answered_at_ms == at_ms:
                return ApprovalAnswer(decision_id, status, reviewer_id, record["timestamp"], note)
            raise
        return ApprovalAnswer(decision_id, status, reviewer_id, record["timestamp"], note)

    def approvable(self, decision_id: str) -> StoredDecision:
        decision: Optional[StoredDecision] = self.store.get_decision(decision_id)
        if decision is None:
            raise ApprovalError("unknown_decision", decision_id, f"no decision {decision_id} is known to this store")
        if decision.action != "require_approval" or decision.approval is None:
            raise ApprovalError(
                "approval_not_required", decision_id, f"decision {decision_id} was {decision.action}, not require_approval"
            )
        return decision

    def _refuse_if_settled(self, decision: StoredDecision, now_ms: float) -> None:
        approval = decision.approval
        assert approval is not None
        if approval.status == "pending" and now_ms >= approval.expires_at_ms:
            self.store.transition_approval(decision.id, ApprovalTransition("pending", "expired", now_ms))
            raise ApprovalError("approval_expired", decision.id, f"the approval of {decision.id} expired at {iso_timestamp(approval.expires_at_ms)}")
        if approval.status == "expired":
            raise ApprovalError("approval_expired", decision.id, f"the approval of {decision.id} expired at {iso_timestamp(approval.expires_at_ms)}")
        if approval.status != "pending":
            by = "" if approval.reviewer_id is None else f" by {approval.reviewer_id}"
            raise ApprovalError("already_answered", decision.id, f"decision {decision.id} was already answered ({approval.status}{by})")

    def settled_outcome(self, decision_id: str) -> Optional[ApprovalAnswer]:
        """The answer if the approval was approved; raises ApprovalError if it ended otherwise; None while pending."""
        decision = self.approvable(decision_id)
        approval = decision.approval
        assert approval is not None
        if approval.status in ("approved", "executed"):
            # An executed approval was approved: a wait that claims it is refused by the claim (already_executed).
            # The one place an approval is accepted: only when the records back what the store shows.
            problem = approval_problem(decision, self.written.read_records(decision_id))
            if problem is not None:
                log.error("approval refused: the records do not back it (decision %s, reviewer %s): %s", decision_id, approval.reviewer_id, problem)
                raise ApprovalError("approval_unverified", decision_id, f"the approval of {decision_id} is refused: {problem}")
            return ApprovalAnswer(
                decision_id, "approved", approval.reviewer_id or "", iso_timestamp(approval.answered_at_ms or 0), approval.note
            )
        if approval.status == "rejected":
            note = "" if approval.note is None else f": {approval.note}"
            raise ApprovalError("approval_rejected", decision_id, f"the call was rejected by {approval.reviewer_id or 'a reviewer'}{note}")
        if approval.status == "expired":
            raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired")
        if approval.status == "amended":
            raise self._amended_error(decision)
        now_ms = self.now()
        if now_ms < approval.expires_at_ms:
            return None
        # The store has the last word on expiry: if it did not move the approval (an answer came first), the next read says what happened.
        if approval.status == "pending" and not self.store.transition_approval(decision_id, ApprovalTransition("pending", "expired", now_ms)):
            return None
        raise ApprovalError("approval_expired", decision_id, f"the approval of {decision_id} expired")

    def check_wait(self, decision_id: Any, timeout_ms: Any, call: Optional[Mapping[str, Any]]) -> StoredDecision:
        """The checks a wait starts with (arguments, the decision, the call's digest)."""
        decision_id = require_text(decision_id, "decision_id", "wait_for_approval")
        if timeout_ms is not None and (isinstance(timeout_ms, bool) or not isinstance(timeout_ms, (int, float)) or not timeout_ms >= 0):
            raise VetoOptionsError("wait_for_approval: timeout_ms must be a non-negative number of milliseconds")
        if self._closed is not None:
            raise self._closed
        decision = self.approvable(decision_id)
        if call is not None and self._digest_or_none(call) != decision.call_digest:
            raise ApprovalError("call_mismatch", decision_id, f"the approval of {decision_id} is for a different call")
        return decision

    def _digest_or_none(self, call: Mapping[str, Any]) -> Optional[str]:
        """The digest of a call handed to a wait, or None when it has no canonical JSON form (then it matches no approval)."""
        try:
            return self.call_digest(call)
        except (CanonicalJsonError, ValueError, TypeError):
            return None

    def _unreadable(self, decision_id: str, error: BaseException) -> ApprovalError:
        return ApprovalError("record_unavailable", decision_id, f"the approval of {decision_id} cannot be read: {error}")

    def wait(self, decision_id: Any, timeout_ms: Optional[float] = None, call: Optional[Mapping[str, Any]] = None, cancel: Optional[threading.Event] = None) -> ApprovalAnswer:
        try:
            decision = self.check_wait(decision_id, timeout_ms, call)
            started_ms = self.now()
        except (ApprovalError, VetoOptionsError):
            raise
        except Exception as error:
            if self._closed is not None:
                raise self._closed from error
            raise self._unreadable(str(decision_id), error) from error
        approval = decision.approval
        assert approval is not None
        # When the approval expires, on this process's monotonic clock from the store's time now: how
        # long a store that cannot be read is waited for (approvals/desk.ts wait).
        expires_at = time.monotonic() + (approval.expires_at_ms - started_ms) / 1000
        wake = threading.Event()
        unwatch = self.store.watch_decision(decision.id, wake.set)
        with self._wakers_lock:
            self._wakers.add(wake)
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        #: Why the last check could not read the store or the records, until one can again.
        unread: Optional[Exception] = None
        try:
            while True:
                if self._closed is not None:
                    raise self._closed
                if cancel is not None and cancel.is_set():
                    raise ApprovalError("approval_aborted", decision.id, f"waiting for approval of {decision.id} was aborted")
                wake.clear()
                try:
                    answer = self.settled_outcome(decision.id)
                    unread = None
                except ApprovalError:
                    raise
                except Exception as error:
                    # A lost connection or a failover says nothing about the approval: read again at the
                    # next poll or notification until its time is up; after that nothing can approve it,
                    # and the wait ends failing closed (docs/contract.md §9, a wait that cannot read).
                    if time.monotonic() >= expires_at:
                        raise self._unreadable(decision.id, error) from error
                    log.warning("approval could not be read; trying again (decision %s): %s", decision.id, error)
                    unread, answer = error, None
                if answer is not None:
                    return answer if call is None else self.execute(decision, answer, call)
                pause = min(self.poll_ms / 1000, max(0.0, expires_at - time.monotonic() + 0.001))
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        if unread is not None:
                            # Out of time while the approval could not be read: say so, not "no answer".
                            raise self._unreadable(decision.id, unread) from unread
                        raise ApprovalError("approval_timeout", decision.id, f"no answer for {decision.id} within {js_number(timeout_ms or 0)} ms")
                    pause = min(pause, left)
                wake.wait(pause)
        finally:
            unwatch()
            with self._wakers_lock:
                self._wakers.discard(wake)

    def execute(self, decision: StoredDecision, answer: ApprovalAnswer, call: Mapping[str, Any]) -> ApprovalAnswer:
        """A wait given the call is about to run it: the record state compared, then the use-once claim."""
        self.check_record_state(decision, answer, call)
        return self._claim(decision, answer)

    def check_record_state(self, decision: StoredDecision, answer: ApprovalAnswer, call: Mapping[str, Any]) -> None:
        """
        Record state (docs/contract.md §6): an approval bound to the state of
        its target record runs only while the record is still in it. Asked
        before the claim, so a refusal leaves the approval unclaimed; a state
        that changed or could not be read (a function that raises, answers no
        string, is too slow, or an instance without one) is refused as
        record_changed, and the refusal is recorded (an execution record,
        "refused", reason record_changed) before the error is raised.
        """
        bound = decision.record_state
        if bound is None:
            return
        ask = self.record_state
        reading = RecordStateReading(False, None, "this instance has no recordState to read it with") if ask is None else ask(call)
        if reading.ok and reading.state == bound:
            return
        if reading.ok:
            why = "recordState now gives no state" if reading.state is None else f"the record is now in state {stringify(reading.state)}"
        else:
            why = reading.problem or "recordState gave no answer"
        record = execution_record(
            decision_id=decision.id,
            timestamp=iso_timestamp(self._now_or_clock()),
            bundle=self.bundle(),
            actor_id=decision.actor_id,
            tenant_id=decision.tenant_id,
            call_digest=decision.call_digest,
            reviewer_id=answer.reviewer_id,
            execution="refused",
            record_changed=True,
            record_state=reading.state if reading.ok else None,
        )
        try:
            self.sink.write(record)
            self.written.remember(record)
        except Exception as error:
            log.error("record_changed refusal could not be recorded (decision %s): %s", decision.id, error)
        log.warning("approved call refused: its record changed (decision %s): %s", decision.id, why)
        raise ApprovalError(
            "record_changed",
            decision.id,
            f"the call approved in {decision.id} was approved with its record in state {stringify(bound)}, but {why}; it does not run",
        )

    def amend(
        self,
        decision_id: Any,
        reviewer_id: Any,
        arguments: Any,
        note: Any,
        decide: Callable[[StoredDecision, dict[str, Any]], Decision],
        check: Optional[Callable[[dict[str, Any]], Optional[str]]] = None,
    ) -> Decision:
        """
        Amend a pending call (docs/contract.md §6, amend; approvals/desk.ts):
        the same checks as an answer (a listed approver, never the actor, once,
        before expiry), and ``check`` (the input contract: an amended call that
        breaks it raises VetoOptionsError and nothing changes), then the
        approval is reserved, ``decide`` makes the
        amended call's decision (recorded and stored before it returns), and
        the original ends "amended" with its amendment record naming the new
        decision. A failure before the amendment is settled leaves the original
        pending (the new decision, if made, stays on record, linked to nothing
        that can run).
        """
        decision_id = require_text(decision_id, "decision_id", "amend")
        reviewer_id = require_text(reviewer_id, "reviewer_id", "amend")
        optional_note(note, "amend")
        if not isinstance(arguments, Mapping):
            raise VetoOptionsError("amend: arguments must be the amended call's arguments object (a dict)")
        original = self._answerable_by(decision_id, reviewer_id, "amend it")
        review = original.review
        if review is None or review.context is None or review.tool == "":
            raise ApprovalError(
                "not_amendable", decision_id, f"decision {decision_id} was stored without the context an amendment is decided with"
            )
        # A call that breaks the input contract is the amender's mistake to correct, not a decision:
        # refused with what to fix, the approval left pending (decided, it would be an invalid_input
        # deny that used up the approval).
        if check is not None:
            invalid = check({"tool": review.tool, "arguments": arguments, "context": review.context})
            if invalid is not None:
                raise VetoOptionsError(f"amend: the amended call is not valid input: {invalid}")
        # Reserved as an answer is: no approval or second amendment can come in between. Timed by the
        # store's clock when it has one (the database's: docs/contract.md §6).
        try:
            reserved_at = self.now()
            reserved = self.store.transition_approval(decision_id, ApprovalTransition("pending", "answering", reserved_at, reviewer_id))
        except Exception as error:
            log.error("amendment could not be reserved (decision %s): %s", decision_id, error)
            raise ApprovalError("record_unavailable", decision_id, f"the approval could not be stored: {error}") from error
        if not reserved:
            again = self._store_call("approval", decision_id, lambda: self.store.get_decision(decision_id))
            if again is not None:
                self._refuse_if_settled(again, reserved_at)
            raise ApprovalError("already_answered", decision_id, f"decision {decision_id} is already being answered")

        def release() -> None:
            try:
                self.store.transition_approval(decision_id, ApprovalTransition("answering", "pending", self.clock()))
            except Exception as error:
                log.error("amendment reservation could not be released (decision %s): %s", decision_id, error)

        try:
            amended = decide(original, {"tool": review.tool, "arguments": arguments, "context": review.context})
        except BaseException:
            release()
            raise
        # The check above and the decision read the call and the bundle apart (a reload between them):
        # an amended call its decision found not valid is refused the same way, the original left pending.
        invalid_reason = next((r for r in amended.reasons if r.code == "invalid_input"), None) if amended.action == "deny" else None
        if invalid_reason is not None:
            release()
            raise VetoOptionsError(f"amend: the amended call is not valid input: {invalid_reason.message}")
        try:
            # The amendment record and the move to "amended" as one unit: with a transactional store one
            # transaction, so the original is never amended without its record, nor the record kept
            # without the move (approvals/desk.ts amend).
            with run_unit(self.store, self.sink, None, None) as unit:
                at_ms = unit.now_ms if unit.now_ms is not None else self.clock()
                record = amendment_record(
                    decision_id=decision_id,
                    timestamp=iso_timestamp(at_ms),
                    bundle=self.bundle(),
                    actor_id=original.actor_id,
                    tenant_id=original.tenant_id,
                    call_digest=original.call_digest,
                    reviewer_id=reviewer_id,
                    note=note,
                    amended_to=amended.id,
                )
                unit.write_record(record)
                self.written.remember(record)
                moved = unit.transition_approval(
                    decision_id, ApprovalTransition("answering", "amended", at_ms, reviewer_id, note, amended_to=amended.id)
                )
                if not moved:
                    raise RuntimeError(f"decision {decision_id} was no longer reserved for the amendment")
                unit.commit()
        except Exception as error:
            # Released only while still reserved: a COMMIT whose connection broke may have committed.
            try:
                held = self.store.get_decision(decision_id)
            except Exception:
                held = None
            if held is None or (held.approval is not None and held.approval.status == "answering"):
                release()
            elif held.approval is not None and held.approval.status == "amended" and held.approval.amended_to == amended.id:
                return amended
            log.error("amendment could not be stored (decision %s): %s", decision_id, error)
            raise ApprovalError("record_unavailable", decision_id, f"the approval could not be stored: {error}") from error
        return amended

    def _amended_error(self, original: StoredDecision) -> ApprovalError:
        """
        The refusal a wait for an amended call gets (docs/contract.md §6,
        amend): code "amended", carrying the amended call and its decision,
        read from the store and checked against the records: the amended call's
        decision record must name the original as amended_from, be for exactly
        that call (its digest) and say the same action; else approval_unverified.
        """
        oid = original.id
        to = original.approval.amended_to if original.approval is not None else None
        nxt = None if to is None else self.store.get_decision(to)
        amendment = None if nxt is None else nxt.amendment

        def unverified(why: str) -> ApprovalError:
            return ApprovalError("approval_unverified", oid, f"the amendment of {oid} is refused: {why}")

        if nxt is None or amendment is None or amendment.from_id != oid:
            return unverified("the store shows no amended decision for it")
        if amendment.call is None:
            return ApprovalError("amended", oid, f"the call of {oid} was amended by {amendment.by}; the amended call was not valid ({to})")
        made_list = [r for r in self.written.read_records(nxt.id) if r.get("type") == "decision"]
        made = made_list[-1] if made_list else None
        digest = self._digest_or_none(amendment.call)
        if made is None or made.get("amended_from") != oid or made.get("call_digest") != digest or digest != nxt.call_digest:
            return unverified("the amended decision's record does not name it, or is for another call")
        action = (made.get("result") or {}).get("action")
        if action != amendment.decision.action or nxt.action != amendment.decision.action:
            return unverified("the amended decision's record and the store disagree on its action")
        return ApprovalError(
            "amended",
            oid,
            f"the call of {oid} was amended by {amendment.by}: the amended call is decision {nxt.id} ({amendment.decision.action}); the original never runs",
            AmendedCall(amendment.decision, copy.deepcopy(dict(amendment.call))),
        )

    def _claim(self, decision: StoredDecision, answer: ApprovalAnswer) -> ApprovalAnswer:
        """
        The use-once claim (docs/contract.md §6): approved -> executed by
        compare-and-set, then its execution record, before the call runs (as
        approvals/desk.ts does for a sink outside the store's transaction): a
        record that cannot be written loses the call, never runs it twice or
        unrecorded. A claim that finds the approval claimed already is refused
        with already_executed, and that refusal is recorded too.
        """
        self._claim_once(
            decision,
            answer.reviewer_id,
            lambda unit, at_ms: bool(unit.transition_approval(decision.id, ApprovalTransition("approved", "executed", at_ms))),
            unclaimed=f"the approval of {decision.id} could not be claimed for execution",
            claimed_before=f"the approved call {decision.id} was already claimed for execution; it runs at most once",
        )
        return answer

    def _claim_once(
        self,
        decision: StoredDecision,
        reviewer_id: Optional[str],
        claim: Callable[[Any, float], bool],
        *,
        unclaimed: str,
        claimed_before: str,
    ) -> None:
        """
        One use-once claim, by ``claim`` (a compare-and-set in the unit) with its
        execution record by ``reviewer_id``: in the transaction, the record first
        (both commit together); else the claim first, so a record that cannot be
        written loses the call, never runs it twice or unrecorded. A claim that
        finds it claimed already is refused with already_executed (``claimed_before``),
        and that refusal is recorded; any other failure is record_unavailable
        (``unclaimed``: why).
        """

        def record(execution: str, at_ms: float) -> dict[str, Any]:
            return execution_record(
                decision_id=decision.id,
                timestamp=iso_timestamp(at_ms),
                bundle=self.bundle(),
                actor_id=decision.actor_id,
                tenant_id=decision.tenant_id,
                call_digest=decision.call_digest,
                reviewer_id=reviewer_id,
                execution=execution,
            )

        refused_at: Optional[float] = None
        try:
            with run_unit(self.store, self.sink, None, None) as unit:
                at_ms = unit.now_ms if unit.now_ms is not None else self.clock()
                claimed = record("claimed", at_ms)
                if unit.records_in_transaction:
                    unit.write_record(claimed)
                if not claim(unit, at_ms):
                    unit.rollback()
                    refused_at = at_ms
                else:
                    unit.commit()
                    if not unit.records_in_transaction:
                        unit.write_record(claimed)
                    self.written.remember(claimed)
                    return
        except Exception as error:
            log.error("the call could not be claimed; it does not run (decision %s): %s", decision.id, error)
            raise ApprovalError("record_unavailable", decision.id, f"{unclaimed}: {error}") from error
        assert refused_at is not None
        refused = record("refused", refused_at)
        try:
            self.sink.write(refused)
            self.written.remember(refused)
        except Exception as error:
            log.error("refused claim could not be recorded (decision %s): %s", decision.id, error)
        raise ApprovalError("already_executed", decision.id, claimed_before)

    def claim_allowed_amendment(self, decision_id: str) -> None:
        """
        The use-once claim of an amended call the policy allowed
        (docs/contract.md §6, amend; approvals/desk.ts claimAllowedAmendment):
        it has no approval to move to "executed", so the store's
        ``claim_execution`` sets its execution time once, with its execution
        record (by the amender), before the call runs; in one transaction when
        the sink joins the store's. A second claim is refused with
        already_executed, and that refusal is recorded; a record that cannot be
        written loses the call, never runs it twice or unrecorded.
        """
        decision = self._store_call("approval", decision_id, lambda: self.store.get_decision(decision_id))
        if decision is None or decision.action != "allow" or decision.amendment is None:
            raise ApprovalError("approval_unverified", decision_id, f"decision {decision_id} is not an allowed amended call")
        self._claim_once(
            decision,
            decision.amendment.by,
            lambda unit, at_ms: bool(unit.claim_execution(decision_id, at_ms)),
            unclaimed=f"the amended call {decision_id} could not be claimed",
            claimed_before=f"the amended call {decision_id} was already claimed for execution; it runs at most once",
        )

    def close(self, error: Exception) -> None:
        """Wake every wait with ``error``, and refuse every wait started from now on."""
        self._closed = error
        with self._wakers_lock:
            wakers = list(self._wakers)
        for wake in wakers:
            wake.set()
