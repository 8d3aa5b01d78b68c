"""
create_veto and the decision flow, as adapter/veto.ts runs it:
call -> validate -> history -> evaluate -> decision -> record -> caller.
Every step fails closed: whatever goes wrong, the answer is a deny.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar, Union

from .approvals import AmendResult, ApprovalAnswer, ApprovalDesk
from .bundle import BundleVersion, load_bundle
from .decision import (
    EVALUATION_ERROR,
    INVALID_INPUT,
    RECORD_STATE_UNAVAILABLE,
    RECORD_UNAVAILABLE,
    Decision,
    PolicyAnswer,
    adapter_deny,
    answer_counts_towards_escalation,
    iso_timestamp,
)
from .errors import ApprovalError, VetoClosedError, VetoDeniedError, VetoOptionsError
from .evaluator import PolicyEvaluator
from .ids import monotonic_ulid
from .jsontext import number_texts
from .input import CheckedCall, CheckedInput, InputLimits, PartialContext, RefusedCall, check_call, partial_context
from .policy_data import PolicyData, read_policy_data
from .record_state import DEFAULT_RECORD_STATE_TIMEOUT_MS, RecordStateFn, RecordStateReading, read_record_state
from .records import JsonLinesRecordSink, Record, RecordMasker, RecordSink, decision_record, result_of
from .shadow import ShadowPolicy, ShadowVerdict
from .signature import BundleVerifier
from .store import Amendment, ApprovalReview, ApprovalState, InMemoryStore, StoredDecision
from .unit import DecisionUnit, is_transactional, run_unit
from .frozen import fast_init, python_class

log = logging.getLogger("veto_crm")

R = TypeVar("R")


@python_class
@dataclass(frozen=True)
class ActivePolicy:
    """Everything a decision needs from one bundle, immutable."""

    version: BundleVersion
    data: PolicyData
    evaluator: PolicyEvaluator


@python_class
@fast_init
@dataclass(frozen=True)
class EscalationEvent:
    decision: Decision
    actor_id: str
    tenant_id: str
    recent_denies: int


def activate_policy(
    source: Union[str, Path, bytes],
    verifier: Optional[BundleVerifier] = None,
    data: Optional[Mapping[str, Any]] = None,
    data_label: str = "given as options.data",
) -> ActivePolicy:
    """Verify, load and probe one bundle; raises BundleSignatureError / BundleLoadError."""
    loaded = load_bundle(source, verifier)
    policy_data = read_policy_data(loaded.data if data is None else data, "data.json of the bundle" if data is None else data_label)
    evaluator = PolicyEvaluator.create(loaded.wasm, policy_data.json)
    return ActivePolicy(loaded.version, policy_data, evaluator)


@fast_init
@dataclass(frozen=True)
class _Decided:
    decision: Decision
    #: The call that was decided (None when it was refused or not recorded).
    call: Optional[dict[str, Any]]
    #: Why a record_unavailable deny was given.
    cause: Optional[BaseException] = None
    #: For on_escalation, called once the unit is over.
    escalation: Optional[EscalationEvent] = None


class Veto:
    """Decides calls with one bundle. Thread-safe. Use ``create_veto`` to make one."""

    def __init__(
        self,
        policy: ActivePolicy,
        *,
        store: Optional[Any],
        record_sink: Optional[RecordSink],
        masker: RecordMasker,
        clock: Callable[[], float],
        approval_ttl_ms: int,
        approval_poll_ms: int,
        limits: InputLimits,
        on_escalation: Optional[Callable[[EscalationEvent], Any]],
        shadow: Optional[ShadowPolicy] = None,
        record_state: Optional[RecordStateFn] = None,
        record_state_timeout_ms: int = DEFAULT_RECORD_STATE_TIMEOUT_MS,
    ) -> None:
        self._policy = policy
        self._shadow = shadow
        self._owns_store = store is None
        # Retention follows the bundle in force.
        self._store = store if store is not None else InMemoryStore(
            history_retention_ms=lambda: max(self._policy.data.window_seconds * 1000, 24 * 3600 * 1000)
        )
        # A store with records of its own (PostgreSQL: the records table, in the store's transactions) keeps them there.
        default_sink = getattr(self._store, "default_record_sink", None)
        self._sink: RecordSink = (
            record_sink if record_sink is not None else default_sink() if callable(default_sink) else JsonLinesRecordSink()
        )
        self._masker = masker
        self._clock = clock
        self._ttl_ms = approval_ttl_ms
        self._limits = limits
        self._on_escalation = on_escalation
        self._next_id = monotonic_ulid()
        self._closed = False
        # A store without transactions: its units share one DecisionUnit (it holds nothing of a decision).
        self._plain_unit: Optional[DecisionUnit] = None if is_transactional(self._store) else DecisionUnit(self._store, self._sink)
        self._record_state: Optional[Callable[[Mapping[str, Any]], RecordStateReading]] = None
        if record_state is not None:
            state_fn = record_state

            def read(call: Mapping[str, Any]) -> RecordStateReading:
                return read_record_state(state_fn, call, record_state_timeout_ms)

            self._record_state = read
        self._desk = ApprovalDesk(
            self._store,
            self._sink,
            clock,
            lambda: self._policy.version,
            approval_poll_ms,
            masker.call_digest,
            record_state=self._record_state,
        )

    # -- public API --------------------------------------------------------

    @property
    def bundle(self) -> BundleVersion:
        """The revision and version hash of the bundle in force."""
        return self._policy.version

    def protect(self, call: Any) -> Decision:
        """Decide a call. Never raises because of what the call contains."""
        return self._decide(call).decision

    def wait_for_approval(
        self,
        decision_id: str,
        *,
        timeout_ms: Optional[float] = None,
        call: Optional[Mapping[str, Any]] = None,
        cancel: Optional[threading.Event] = None,
    ) -> ApprovalAnswer:
        """
        Return when the decision was approved; raise ApprovalError otherwise
        (rejected, expired, timed out, cancelled, unknown, not require_approval,
        or ``call`` is not the call that was decided: call_mismatch). Given
        ``call``, the caller is about to run it: the approval is claimed for
        execution first (use-once, docs/contract.md §6), and a second claim of
        the same approval raises ApprovalError ``already_executed``. At most
        once: a crash between the claim and the side effect loses the call.
        """
        self._open()
        return self._desk.wait(decision_id, timeout_ms, call, cancel)

    def approve(self, decision_id: str, reviewer_id: str, note: object = None) -> ApprovalAnswer:
        """``note``: a str or None, checked by the approval desk (object: see amend)."""
        self._open()
        return self._desk.answer("approval", decision_id, reviewer_id, note)

    def reject(self, decision_id: str, reviewer_id: str, note: object = None) -> ApprovalAnswer:
        """``note``: a str or None, checked by the approval desk (object: see amend)."""
        self._open()
        return self._desk.answer("rejection", decision_id, reviewer_id, note)

    def amend(self, decision_id: str, reviewer_id: str, arguments: Mapping[str, Any], note: object = None) -> AmendResult:
        """
        Amend a pending call's arguments (docs/contract.md §6, amend): a listed
        approver (never the actor), once, before expiry. The amended call (the
        original's tool and context, these arguments, which replace the
        original's entirely) is a new decision by the policy, recorded with
        the amender (``amended_from``, ``amended_by``; its deny does not count
        towards the agent's escalation); the original ends "amended", its
        ``amendment`` record naming the new decision. When the amended call
        needs approval and the amender is among its approvers (never its
        actor), the amendment approves it. Refused with ApprovalError as
        approve() is; bad arguments (not a dict, or an amended call that breaks
        the input contract: nothing changes) raise VetoOptionsError. ``note``: a str or
        None, typed ``object`` so that the desk's check, not the compiled
        build's own (hatch_build.py), refuses anything else.
        """
        self._open()
        actor: list[Optional[str]] = []

        def decide(original: StoredDecision, call: dict[str, Any]) -> Decision:
            actor.append(original.actor_id)
            return self._decide(call, amendment=(original.id, str(reviewer_id))).decision

        def check(call: dict[str, Any]) -> Optional[str]:
            # The checks protect() makes of a call before the policy sees it, under the bundle in force now.
            checked = check_call(call, self._limits, self._policy.data.amount_names)
            return checked.message if isinstance(checked, RefusedCall) else None

        decision = self._desk.amend(decision_id, reviewer_id, arguments, note, decide, check)
        if decision.action == "require_approval" and reviewer_id != actor[0] and reviewer_id in decision.approvers:
            approval = self._desk.answer("approval", decision.id, reviewer_id, note)
            return AmendResult(decision_id, decision, approval)
        return AmendResult(decision_id, decision)

    def guard(self, tool: str) -> Callable[[Callable[..., R]], Callable[[Mapping[str, Any], Mapping[str, Any]], R]]:
        """
        A decorator: the tool function ``fn(args, context, decision)`` runs only
        when ``protect({tool, arguments: args, context})`` allows it or its
        approval arrives; a deny raises VetoDeniedError and ``fn`` never runs.
        An approved call runs once (use-once claim), and only while its
        record's state is the one approved (ApprovalError ``record_changed``);
        when an approver amended the call, the amended call runs as its own
        decision allows, with the amended arguments (docs/contract.md §6).
        ``fn`` receives a fresh deep copy of exactly the arguments and context
        that were decided. An ``async def`` tool gets an async wrapper (the
        decision runs in a worker thread).
        """
        if not isinstance(tool, str) or tool == "":
            raise VetoOptionsError("guard: tool must be a non-empty string")

        def decorate(fn: Callable[..., R]) -> Callable[[Mapping[str, Any], Mapping[str, Any]], R]:
            if not callable(fn):
                raise VetoOptionsError("guard: decorate the tool function to run")
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(args: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
                    decided = await asyncio.to_thread(self._authorize, tool, args, context)
                    assert decided.call is not None
                    return await fn(copy.deepcopy(decided.call["arguments"]), copy.deepcopy(decided.call["context"]), decided.decision)

                return run_async  # type: ignore[return-value]

            @functools.wraps(fn)
            def run(args: Mapping[str, Any], context: Mapping[str, Any]) -> R:
                decided = self._authorize(tool, args, context)
                assert decided.call is not None
                return fn(copy.deepcopy(decided.call["arguments"]), copy.deepcopy(decided.call["context"]), decided.decision)

            return run

        return decorate

    def close(self) -> None:
        """Stop: waits end with VetoClosedError, and a store this Veto made is closed. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._desk.close(VetoClosedError())
        close = getattr(self._sink, "close", None) if isinstance(self._sink, JsonLinesRecordSink) else None
        if close is not None:
            close()
        if self._owns_store:
            self._store.close()

    def __enter__(self) -> "Veto":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the flow ------------------------------------------------------------

    def _open(self) -> None:
        if self._closed:
            raise VetoClosedError()

    def _authorize(self, tool: str, args: Mapping[str, Any], context: Mapping[str, Any]) -> _Decided:
        decided = self._decide({"tool": tool, "arguments": args, "context": context})
        if decided.decision.action == "deny" or decided.call is None:
            error = VetoDeniedError(decided.decision)
            error.__cause__ = decided.cause
            raise error
        if decided.decision.action == "require_approval":
            return self._wait_or_amended(decided)
        return decided

    def _wait_or_amended(self, decided: _Decided) -> _Decided:
        """
        guard's wait: the approval of exactly the decided call, claimed; or,
        when an approver amended it (docs/contract.md §6, amend), the amended
        call as its own decision says: denied (VetoDeniedError), allowed, or
        approved and claimed in turn (an amended call may itself be amended, a
        bounded number of times).
        """
        current = decided
        hops = 0
        while True:
            try:
                self.wait_for_approval(current.decision.id, call=current.call)
                return current
            except ApprovalError as error:
                current = _next_of_amended(error, hops)
                hops += 1
                if current.decision.action == "allow":
                    # An allowed amended call runs once too: claimed where it runs (docs/contract.md §6, amend).
                    self._desk.claim_allowed_amendment(current.decision.id)
                if current.decision.action != "require_approval":
                    return current

    def resume_approval(
        self,
        decision_id: str,
        call: Mapping[str, Any],
        *,
        timeout_ms: Optional[float] = 0,
        accept: Optional[Callable[[dict[str, Any]], Optional[str]]] = None,
    ) -> "ResumedCall":
        """
        Resume a paused call (the integrations, docs/python.md; veto.ts
        resumeApproval): the approval of ``decision_id`` for exactly ``call``,
        claimed use-once, or, when an approver amended it (docs/contract.md §6,
        amend), the amended call as its own decision says: denied
        (VetoDeniedError with that decision), allowed and claimed once
        (``claim_allowed_amendment``), or approved and claimed in turn (an
        amended call may itself be amended, a bounded number of times). Every
        other outcome is the wait's ApprovalError: nothing runs. ``accept`` is
        asked before an amended call is claimed: why it cannot run here (then
        refused, call_mismatch, unclaimed), or None. ``timeout_ms`` 0 asks once.
        """
        current_id, current_call = decision_id, dict(call)
        amended: Optional[ResumedAmendment] = None
        hops = 0
        while True:
            try:
                self.wait_for_approval(current_id, timeout_ms=timeout_ms, call=current_call)
                return ResumedCall(current_id, copy.deepcopy(current_call), amended)
            except ApprovalError as error:
                nxt = error.amended if error.code == "amended" else None
                if nxt is None or hops >= 8:
                    raise
                hops += 1
                stored = self._store.get_decision(nxt.decision.id)
                by = None if stored is None or stored.amendment is None else stored.amendment.by
                amended = ResumedAmendment(error.decision_id, by, nxt.decision)
                current_id, current_call = nxt.decision.id, nxt.call
                if nxt.decision.action == "deny":
                    raise VetoDeniedError(nxt.decision) from error
                # Before any claim: an amended call the caller cannot run as decided is refused unclaimed.
                problem = None if accept is None else accept(copy.deepcopy(current_call))
                if problem is not None:
                    raise ApprovalError(
                        "call_mismatch", nxt.decision.id, f"the amended call {nxt.decision.id} cannot run here: {problem}"
                    ) from error
                if nxt.decision.action == "allow":
                    self._desk.claim_allowed_amendment(nxt.decision.id)
                    return ResumedCall(current_id, copy.deepcopy(current_call), amended)

    def protect_unreadable(self, text: Any, problem: str) -> Decision:
        """
        For front ends that parse calls themselves (the command line): a call
        that could not be read, invalid_input, recorded. ``text`` is what was
        received, or None when it was not kept (a line over the input limit;
        its record then has no input digest). ``text``: typed Any, as every
        value a front end passes on from outside is (docs/python.md, "Two builds").
        """
        return self._decide(text, problem).decision

    def protect_text(self, call: Any, text: Any) -> Decision:
        """
        For front ends that read calls as JSON text (the command line): decide
        ``call``, parsed from ``text``, judging its amounts by their text there
        (docs/contract.md §9 "Amount precision"). Text that cannot be read so
        is refused (fail closed), never judged by the doubles instead.
        """
        return self._decide(call, text=text).decision

    def _decide(
        self, raw: Any, unreadable: Optional[str] = None, text: Any = None, amendment: Optional[tuple[str, str]] = None
    ) -> _Decided:
        """``amendment``: (the decision amended, its amender) for an amended call (docs/contract.md §6, amend)."""
        if self._closed:
            raise VetoClosedError()
        clock_ms = self._clock()
        # One bundle per decision.
        policy = self._policy
        checked: CheckedInput = (
            RefusedCall(unreadable)
            if unreadable is not None
            else check_call(raw, self._limits, policy.data.amount_names)
            if text is None
            else _check_text(raw, text, self._limits, policy.data.amount_names)
        )
        call = checked.call if type(checked) is CheckedCall else None
        if call is None:
            who = partial_context(raw, self._limits.max_input_bytes)
        else:
            ctx = call["context"]
            who = PartialContext(ctx["actorId"], ctx["tenantId"], ctx["environment"], call["tool"])
        try:
            # count -> evaluate -> record -> append as one unit, exclusive per (actor, tenant) (for a
            # database store, one transaction under the same lock in every process).
            # A store without transactions: its own unit for the key, and the instance's one DecisionUnit.
            with run_unit(
                self._store,
                self._sink,
                who.actor_id if call is not None else None,
                who.tenant_id if call is not None else None,
                self._plain_unit,
            ) as unit:
                # The store's clock when it has one (docs/contract.md §6), else this instance's.
                now_ms = unit.now_ms if unit.now_ms is not None else clock_ms
                decided = self._decide_in(unit, policy, raw, now_ms, self._next_id(now_ms), checked, call, who, store_ok=True, amendment=amendment)
        except _Unrecorded as unrecorded:
            return unrecorded.decided
        except Exception as error:
            # The store could not give a unit: the call cannot be remembered, so it is denied.
            log.error("decision unit unavailable; denying", exc_info=error)
            try:
                decided = self._decide_in(
                    DecisionUnit(self._store, self._sink),
                    policy,
                    raw,
                    clock_ms,
                    self._next_id(clock_ms),
                    checked,
                    call,
                    who,
                    store_ok=False,
                    store_error=error,
                    amendment=amendment,
                )
            except _Unrecorded as unrecorded:
                return unrecorded.decided
        if decided.escalation is not None:
            self._escalate(decided.escalation)
        return decided

    def _decide_in(
        self,
        unit: DecisionUnit,
        policy: ActivePolicy,
        raw: Any,
        now_ms: float,
        decision_id: str,
        checked: CheckedInput,
        call: Optional[dict[str, Any]],
        who: PartialContext,
        store_ok: bool,
        store_error: Optional[BaseException] = None,
        amendment: Optional[tuple[str, str]] = None,
    ) -> _Decided:
        recent: Optional[int] = None
        record_state: Optional[str] = None
        eval_ns = 0
        answer: PolicyAnswer
        shadow: Optional[ShadowVerdict] = None
        if call is None:
            assert isinstance(checked, RefusedCall)
            answer = adapter_deny(INVALID_INPUT, checked.message)
        else:
            answer, eval_ns, recent, shadow = self._evaluate(unit, policy, decision_id, call, checked.json or "", now_ms, store_ok)
            if self._record_state is not None:
                answer, record_state = self._bind_record_state(decision_id, call, answer)

        decision = self._decision(decision_id, now_ms, answer, policy.version)
        action = decision.action
        reasons = decision.reasons
        # Keyed like the masked values; over the call's canonical JSON, hashed once.
        digest = self._masker.digest_json(checked.json) if isinstance(checked, CheckedCall) else None
        value = checked.call if isinstance(checked, CheckedCall) else checked.partial
        masked_input, masked = self._masker.mask_input(value, policy.data.sensitive_fields, checked.keys, checked.json)
        if digest is not None:
            input_digest: Optional[str] = digest
        elif checked.json is None:
            input_digest = self._digest_of_raw(raw)
        else:
            input_digest = self._masker.digest_json(checked.json)
        record = decision_record(
            decision=decision,
            bundle=policy.version,
            who={"tool": who.tool, "actor_id": who.actor_id, "tenant_id": who.tenant_id, "environment": who.environment},
            context=(
                call["context"]
                if call is not None
                else {
                    "sourceSystem": who.source_system,
                    "requestId": who.request_id,
                    "sessionId": who.session_id,
                    "onBehalfOf": who.on_behalf_of,
                }
            ),
            input=masked_input,
            masked=masked,
            input_digest=input_digest,
            call_digest=digest,
            recent_denies=recent,
            eval_ns=eval_ns,
            destination_hosts=answer.destination_hosts,
            expires_at=iso_timestamp(now_ms + self._ttl_ms) if action == "require_approval" else None,
            shadow=shadow,
            record_state=record_state,
            amended_from=None if amendment is None else amendment[0],
            amended_by=None if amendment is None else amendment[1],
        )
        needs_approval = action == "require_approval"
        review: Optional[ApprovalReview] = None
        if needs_approval and call is not None:
            recorded_input = record.get("input")
            review = ApprovalReview(
                tool=record.get("tool") or "",
                environment=record.get("environment") or "",
                arguments=recorded_input.get("arguments") if isinstance(recorded_input, dict) else None,
                reasons=decision.reasons,
                bundle=decision.bundle,
                recent_denies=recent,
                # What an amendment of this call is decided with (docs/contract.md §6, amend).
                context=call["context"],
            )
        stored = StoredDecision(
            id=decision_id,
            action=action,
            escalated=decision.escalated,
            at_ms=now_ms,
            approvers=decision.approvers,
            actor_id=who.actor_id,
            tenant_id=who.tenant_id,
            call_digest=digest,
            approval=ApprovalState("pending", now_ms + self._ttl_ms) if needs_approval else None,
            # The adapter's own fail-closed denies are remembered but not counted (docs/contract.md §3);
            # nor is anything that becomes of an amended call (its deny, the rejection of its approval):
            # the reviewer made that call, not the agent (docs/contract.md §6, amend).
            counts_towards_escalation=amendment is None and (action != "deny" or answer_counts_towards_escalation(action, reasons)),
            review=review,
            record_state=record_state if needs_approval else None,
            amendment=None
            if amendment is None
            else Amendment(
                from_id=amendment[0],
                by=amendment[1],
                decision=decision,
                call=None if call is None else {"tool": call["tool"], "arguments": call["arguments"], "context": call["context"]},
            ),
        )
        try:
            if not store_ok:
                raise store_error if store_error is not None else RuntimeError("the store is unavailable")
            # No side effect without its evidence: the record first, then the history, committed together
            # where the sink writes in the store's transaction.
            unit.write_record(record)
            unit.append_decision(stored)
            unit.commit()
            # Kept for approval checks: require_approval decisions, and amended calls' (their amendment's evidence).
            if needs_approval or amendment is not None:
                self._desk.written.remember(record)
        except Exception as error:
            # Ended before anything else touches the store: its locks are never waited on.
            unit.rollback()
            raise _Unrecorded(self._unrecorded(error, policy, now_ms, decision_id, record, stored))
        escalation = None
        if decision.escalated and self._on_escalation is not None and who.actor_id is not None and who.tenant_id is not None:
            escalation = EscalationEvent(decision, who.actor_id, who.tenant_id, recent or 0)
        return _Decided(decision, call, None, escalation)

    def _unrecorded(self, error: Exception, policy: ActivePolicy, now_ms: float, decision_id: str, record: Record, stored: StoredDecision) -> _Decided:
        log.error("decision could not be recorded; denying", exc_info=error)
        answer = adapter_deny(RECORD_UNAVAILABLE, f"the call is denied: {error}")
        decision = self._decision(decision_id, now_ms, answer, policy.version)
        # A record the sink refused as such (no canonical JSON form) is superseded without the call.
        superseding = dict(record)
        # A deny binds no state (the stored row keeps it: it never changes).
        superseding.pop("record_state", None)
        if getattr(error, "code", None) == "record_invalid":
            superseding["input"] = None
            superseding["masked"] = []
        superseding["result"] = result_of(decision)
        try:
            self._sink.write(superseding)
        except Exception:
            pass
        try:
            self._store.append_decision(
                replace(stored, action="deny", escalated=False, approvers=(), approval=None, review=None, counts_towards_escalation=False)
            )
        except Exception:
            pass
        return _Decided(decision, None, error)

    def _bind_record_state(self, decision_id: str, call: dict[str, Any], answer: PolicyAnswer) -> tuple[PolicyAnswer, Optional[str]]:
        """
        A call that needs approval is bound to its record's state
        (docs/contract.md §6): asked once here, inside the decision's unit; an
        answer that cannot be trusted denies the call with
        record_state_unavailable (the adapter's code: not counted towards
        escalation).
        """
        if self._record_state is None or answer.action != "require_approval":
            return answer, None
        reading = self._record_state(call)
        if not reading.ok:
            log.error("record state unavailable; denying (decision %s): %s", decision_id, reading.problem)
            return adapter_deny(RECORD_STATE_UNAVAILABLE, reading.problem or "no answer"), None
        return answer, reading.state

    def _evaluate(
        self, unit: DecisionUnit, policy: ActivePolicy, decision_id: str, call: dict[str, Any], call_json: str, now_ms: float, store_ok: bool
    ) -> tuple[PolicyAnswer, int, Optional[int], Optional[ShadowVerdict]]:
        try:
            if not store_ok:
                raise RuntimeError("the store is unavailable")
            since_ms = now_ms - policy.data.window_seconds * 1000
            recent = unit.count_recent_denies(call["context"]["actorId"], call["context"]["tenantId"], since_ms)
        except Exception as error:
            log.error("deny history unavailable; denying", exc_info=error)
            return adapter_deny(EVALUATION_ERROR, "the deny history is unavailable"), 0, None, None
        evaluation = policy.evaluator.evaluate_call(call_json, recent)
        # The candidate sees the same call and history; its verdict is only recorded.
        shadow = None if self._shadow is None else self._shadow.evaluate(call_json, recent)
        if not evaluation.ok or evaluation.answer is None:
            log.error("policy evaluation failed; denying: %s (decision %s)", evaluation.error, decision_id)
            return adapter_deny(EVALUATION_ERROR, evaluation.error or "no answer"), evaluation.eval_ns, recent, shadow
        return evaluation.answer, evaluation.eval_ns, recent, shadow

    def _digest_of_raw(self, raw: Any) -> Optional[str]:
        if raw is None:
            # Nothing was kept (veto.ts: the digest of undefined is no digest).
            return None
        try:
            return self._masker.digest(raw)
        except Exception:
            return None

    @staticmethod
    def _decision(decision_id: str, now_ms: float, answer: PolicyAnswer, bundle: BundleVersion) -> Decision:
        return Decision(
            id=decision_id,
            action=answer.action,
            escalated=answer.escalated,
            reason=answer.reasons[0].message if answer.reasons else "",
            reasons=answer.reasons,
            approvers=answer.approvers,
            bundle=bundle,
            timestamp=iso_timestamp(now_ms),
        )

    def _escalate(self, event: EscalationEvent) -> None:
        hook = self._on_escalation
        assert hook is not None
        try:
            result = hook(event)
            if inspect.isawaitable(result):
                _close_awaitable(result)
        except Exception as error:
            log.error("on_escalation hook failed (decision %s)", event.decision.id, exc_info=error)


def _check_text(raw: Any, text: Any, limits: InputLimits, amount_names: frozenset[str]) -> CheckedInput:
    """check_call, with the amounts judged by their text when the call came as ``text`` (veto.ts checkText)."""
    if text is None:
        return check_call(raw, limits, amount_names)
    try:
        if not isinstance(text, str):
            raise TypeError(f"it is a {type(text).__name__}, not JSON text")
        texts = number_texts(text, 3)
    except Exception as error:
        checked = check_call(raw, limits, amount_names)
        if isinstance(checked, CheckedCall):
            return RefusedCall(f"the call's text cannot be read for its amounts: {error}", checked.call, checked.json, keys=checked.keys)
        return checked
    return check_call(raw, limits, amount_names, texts)


def _next_of_amended(error: ApprovalError, hops: int) -> _Decided:
    """What a guard's wait goes on with when the call it waits for was amended: the amended call, or ``error`` raised again."""
    amended = error.amended if error.code == "amended" else None
    if amended is None or hops >= 8:
        raise error
    if amended.decision.action == "deny":
        raise VetoDeniedError(amended.decision) from error
    return _Decided(amended.decision, amended.call)


@python_class
@dataclass(frozen=True)
class ResumedAmendment:
    """An approver's amendment of a resumed call (docs/contract.md §6, amend)."""

    #: The decision amended (the last, when an amended call was amended again).
    from_id: str
    #: The approver who amended it, when the store says.
    by: Optional[str]
    #: The amended call's decision.
    decision: Decision


@python_class
@dataclass(frozen=True)
class ResumedCall:
    """What a resumed call runs as (``Veto.resume_approval``)."""

    #: The decision the call runs under: the one resumed, or the amended call's.
    decision_id: str
    #: Exactly what to run: ``{"tool", "arguments", "context"}``, the call resumed or the amended call as decided.
    call: dict[str, Any]
    #: Present when an approver amended the call.
    amended: Optional[ResumedAmendment] = None


class _Unrecorded(Exception):
    def __init__(self, decided: _Decided) -> None:
        super().__init__("unrecorded")
        self.decided = decided


def _close_awaitable(result: Awaitable[Any]) -> None:
    close = getattr(result, "close", None)
    if close is not None:
        close()
    log.warning("on_escalation returned an awaitable; the synchronous Veto does not await it (use AsyncVeto)")


__all__ = ["Veto", "create_veto", "EscalationEvent", "ActivePolicy", "activate_policy", "ApprovalError", "AmendResult"]
