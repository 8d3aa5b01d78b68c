"""
What every framework integration shares (docs/python.md "Integrations"), as
adapter/integrations/gate.ts does for the TypeScript ones: the call built from
the model's tool call and the application's context, the decision, the texts
the model reads, and the use-once claim on resume. No framework is imported
here; each lives in a module of its own, imported only when used.

The rule (docs/contract.md §6, §6b): the context (actor, tenant, environment)
comes from the application, never from the model; an allowed call runs once
with a copy of exactly what was decided; a denied call never runs; a call that
needs approval pauses the framework's way, and on resume runs only when the
store says that exact call (its digest) was approved, and at most once (the
claim, ``approved -> executed``). The claim is ``Veto.wait_for_approval`` given
the call, so every check the adapter makes there applies to every integration,
and its ApprovalError's code is the code the model reads.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import inspect
import re
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Generic, Literal, Mapping, Optional, TypeVar, Union

from ..aio import AsyncVeto
from ..decision import Decision
from ..errors import ApprovalError, VetoDeniedError, VetoError, VetoOptionsError
from ..jsontext import canonical, stringify
from ..veto import Veto

R = TypeVar("R")

#: The application's context function: the run's own context -> {actorId, tenantId, environment, ...}.
ContextFunction = Callable[[R], Union[Mapping[str, Any], Awaitable[Mapping[str, Any]]]]

#: The context fields taken from the application (docs/contract.md §1); anything else it returns is left out.
CONTEXT_FIELDS = ("actorId", "tenantId", "environment", "reason", "sourceSystem", "requestId", "sessionId", "onBehalfOf")

_DECISION_IN_MESSAGE = re.compile(r"\(veto decision ([0-9A-Za-z]{1,64})\b")


def deny_message(decision: Decision) -> str:
    """The text the model reads for a deny: every reason code, then the first message."""
    codes = ", ".join(r.code for r in decision.reasons)
    return f"Denied by policy [{codes}]: {decision.reason}"


def pause_message(decision: Decision) -> str:
    """The text of a pause: names the decision so the run can be resumed, and who may approve."""
    codes = ", ".join(r.code for r in decision.reasons)
    return f"Approval required (veto decision {decision.id}; approvers: {', '.join(decision.approvers)}) [{codes}]: {decision.reason}"


def refused_message(code: str, message: str) -> str:
    """The text the model reads when a resumed call is refused."""
    return f"Not executed [{code}]: {message}"


@dataclass(frozen=True)
class Amended:
    """An approver's amendment of a paused call (docs/contract.md §6, amend): what runs instead, and who made it (gate.ts Amended)."""

    #: The decision amended.
    from_id: str
    #: The amended call's decision, which the call runs under.
    decision_id: str
    #: The approver who amended it, when the store says.
    by: Optional[str]
    #: The amended arguments, as decided (the tool's input is these, with the reason argument).
    arguments: Mapping[str, Any]


def amended_notice(amended: Amended) -> str:
    """What the model reads before the result of an amended call: that a reviewer changed the arguments, and to what (gate.ts amendedNotice)."""
    by = "" if amended.by is None else f" {amended.by}"
    return (
        f"Note: the reviewer{by} amended this call's arguments before it ran "
        f"(veto decision {amended.from_id} -> {amended.decision_id}); it ran once with {stringify(amended.arguments)}, "
        "not with the arguments you gave."
    )


def with_amended_notice(result: Any, amended: Optional[Amended]) -> Any:
    """
    A tool's result with the amended notice (``amended_notice``): a text
    result gets it as its first line; any other result is wrapped as
    ``{"veto_amended": {"note", "by", "arguments"}, "result"}``.
    """
    if amended is None:
        return result
    note = amended_notice(amended)
    if isinstance(result, str):
        return f"{note}\n{result}"
    return {"veto_amended": {"note": note, "by": amended.by, "arguments": copy.deepcopy(dict(amended.arguments))}, "result": result}


def decision_id_in(text: Any) -> Optional[str]:
    """The decision id a pause message names, if any. Untrusted: the claim checks it is for exactly this call."""
    if not isinstance(text, str):
        return None
    found = _DECISION_IN_MESSAGE.search(text)
    return found.group(1) if found else None


def input_fingerprint(value: Any) -> str:
    """
    A short fingerprint of a tool's input (SHA-256 of its canonical JSON):
    tells a kept decision from one for other arguments. A value with no JSON
    form gets a fingerprint of its own that matches nothing.
    """
    try:
        text = canonical(value)
    except Exception:
        text = f"unmatchable:{uuid.uuid4()}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class GateCall:
    """
    A tool call as the policy sees it, and the input the tool receives when it
    runs. Each attribute read is a fresh deep copy: nothing the framework, the
    model or the tool holds can change what was decided.
    """

    __slots__ = ("tool", "_arguments", "_context", "_input", "fingerprint")

    def __init__(self, tool: str, arguments: Any, context: Mapping[str, Any], input: dict[str, Any]) -> None:
        self.tool = tool
        self._arguments = copy.deepcopy(arguments)
        self._context = dict(copy.deepcopy(context))
        self._input = copy.deepcopy(input)
        #: input_fingerprint of the input.
        self.fingerprint = input_fingerprint(self._input)

    @property
    def arguments(self) -> Any:
        """The policy's arguments: the input without the reason argument."""
        return copy.deepcopy(self._arguments)

    @property
    def context(self) -> dict[str, Any]:
        return copy.deepcopy(self._context)

    @property
    def input(self) -> dict[str, Any]:
        """The tool's whole input (the reason argument included): what runs is what was decided."""
        return copy.deepcopy(self._input)

    def call(self) -> dict[str, Any]:
        """``{tool, arguments, context}`` for ``Veto.protect`` and ``Veto.wait_for_approval``."""
        return {"tool": self.tool, "arguments": self.arguments, "context": self.context}


@dataclass(frozen=True)
class Verdict:
    kind: Literal["allow", "deny", "approval"]
    decision: Decision
    #: The text the model reads (deny) or the pause's text (approval); "" for allow.
    message: str


@dataclass(frozen=True)
class Claim:
    """
    The outcome of a claim on resume: ``ok`` with the call to ``run`` (the
    claimed call, or the amended call an approver made of it, with
    ``amended``), or the refusal's code and message (never raised).
    """

    ok: bool
    code: str = ""
    message: str = ""
    #: When ok: the call to run (its ``input`` is the tool's input).
    run: Optional[GateCall] = None
    #: When ok and an approver amended the call (docs/contract.md §6, amend).
    amended: Optional[Amended] = None


def _sync_veto(veto: Any, where: str) -> Veto:
    if isinstance(veto, AsyncVeto):
        return veto.sync
    if isinstance(veto, Veto):
        return veto
    raise VetoOptionsError(f"{where}: veto must be the Veto create_veto() returned (or the AsyncVeto of create_async_veto())")


class ToolGate(Generic[R]):
    """
    The shared part of an integration. ``veto``: a Veto or an AsyncVeto.
    ``context``: a function of the run's own context (the framework's run
    context, never the model's output) returning ``{actorId, tenantId,
    environment, ...}``; it must give the same context when a paused run is
    resumed, since the approval is bound to it. ``tool_names``: framework tool
    name -> the policy's (frameworks forbid dots: ``{"crm_update":
    "crm.update"}``). ``reason_argument``: the tool argument in which the model
    states its reason, moved into ``context.reason`` (unless the application's
    context gives one) and left out of the policy's arguments; the tool still
    receives it. Default ``"reason"``; ``False``: the model gives none.
    """

    def __init__(
        self,
        *,
        veto: Union[Veto, AsyncVeto],
        context: ContextFunction[R],
        tool_names: Optional[Mapping[str, str]] = None,
        reason_argument: Union[str, Literal[False]] = "reason",
        where: str = "ToolGate",
    ) -> None:
        self.veto = _sync_veto(veto, where)
        if not callable(context):
            raise VetoOptionsError(f"{where}: context must be a function of the run's context returning {{actorId, tenantId, environment, ...}}")
        if tool_names is not None and (
            not isinstance(tool_names, Mapping)
            or any(not isinstance(k, str) or not isinstance(v, str) or v == "" for k, v in tool_names.items())
        ):
            raise VetoOptionsError(f"{where}: tool_names must map tool names to the policy's tool names (non-empty strings)")
        if reason_argument is not False and (not isinstance(reason_argument, str) or reason_argument == ""):
            raise VetoOptionsError(f"{where}: reason_argument must be the name of a tool argument, or False")
        self._context = context
        self._tool_names = dict(tool_names or {})
        self._reason_argument: Union[str, Literal[False]] = reason_argument

    def policy_tool(self, name: str) -> str:
        return self._tool_names.get(name, name)

    def call(self, tool_name: str, raw_input: Any, run: R) -> GateCall:
        """The call for a tool call (see ``build``), with a context function that answers synchronously."""
        given = self._context(run)
        if inspect.isawaitable(given):
            close = getattr(given, "close", None)
            if close is not None:
                close()
            raise VetoOptionsError("the context function returned an awaitable where the framework runs synchronously: return the context itself")
        return self.build(tool_name, raw_input, given)

    async def acall(self, tool_name: str, raw_input: Any, run: R) -> GateCall:
        """As ``call``; the context function may be ``async``."""
        given = self._context(run)
        if inspect.isawaitable(given):
            given = await given
        return self.build(tool_name, raw_input, given)

    def build(self, tool_name: str, raw_input: Any, given: Any) -> GateCall:
        """
        The call: the policy's tool name, the arguments without the reason
        argument, the application's context (with the model's reason when the
        application gives none). An input that is not a JSON object is passed
        on as it is: the policy denies it (invalid_input), recorded.
        """
        if not isinstance(given, Mapping):
            raise VetoOptionsError("the context function must return {actorId, tenantId, environment, ...}")
        context = {key: given[key] for key in CONTEXT_FIELDS if key in given and given[key] is not None}
        is_object = isinstance(raw_input, Mapping)
        tool_input: dict[str, Any] = {}
        if is_object:
            try:
                tool_input = copy.deepcopy(dict(raw_input))
            except Exception as error:
                # Nothing that cannot be copied is decided on: what the policy reads is not an object (invalid_input).
                is_object, raw_input = False, f"the tool's input cannot be copied: {error}"
        args: Any = dict(tool_input) if is_object else raw_input
        key = self._reason_argument
        if is_object and key is not False and key in args:
            model_reason = args.pop(key)
            if "reason" not in context and isinstance(model_reason, str):
                context["reason"] = model_reason
        return GateCall(self.policy_tool(tool_name), args, context, tool_input)

    def decide(self, call: GateCall) -> Verdict:
        """The policy's decision for the call; recorded, a deny counted towards escalation, before it returns."""
        decision = self.veto.protect(call.call())
        if decision.action == "allow":
            return Verdict("allow", decision, "")
        if decision.action == "deny":
            return Verdict("deny", decision, deny_message(decision))
        return Verdict("approval", decision, pause_message(decision))

    async def adecide(self, call: GateCall) -> Verdict:
        return await asyncio.to_thread(self.decide, call)

    def claim(self, decision_id: str, call: GateCall, *, wait_ms: Optional[float] = 0) -> Claim:
        """
        On resume: claim the approval of ``decision_id`` for exactly this call
        (``Veto.resume_approval``: the digest must match, the approval must be
        backed by its records, and ``approved -> executed`` is the use-once
        compare-and-set). When an approver amended the call
        (docs/contract.md §6, amend), the amended call is followed to its own
        decision instead: allowed or approved, it is claimed once and returned
        to run (``run``, with its arguments and the model's reason argument;
        ``amended``); denied, rejected, expired, unanswered or already
        executed, it is refused. The original never runs. ``wait_ms`` 0 (the
        default) asks "is it approved now?" once; None waits until the
        approval expires. Never raises: a refusal carries the error's code
        (``approval_pending`` when no answer came in time; the policy's code
        for an amended call it denied).
        """
        tool = call.tool

        def accept(amended: dict[str, Any]) -> Optional[str]:
            return None if amended.get("tool") == tool and isinstance(amended.get("arguments"), Mapping) else "it is not a call of this tool"

        try:
            resumed = self.veto.resume_approval(decision_id, call.call(), timeout_ms=wait_ms, accept=accept)
            if resumed.amended is None:
                return Claim(True, run=call)
            args = dict(resumed.call["arguments"])
            run = GateCall(tool, args, resumed.call["context"], self._amended_input(call, args))
            return Claim(
                True,
                run=run,
                amended=Amended(resumed.amended.from_id, resumed.decision_id, resumed.amended.by, copy.deepcopy(args)),
            )
        except VetoDeniedError as error:
            # The reviewer's amendment of the call, denied by the policy: nothing runs.
            decision = error.decision
            return Claim(
                False,
                decision.reasons[0].code if decision.reasons else "denied",
                f"the reviewer amended the call, and the policy denied the amended call (decision {decision.id}): {deny_message(decision)}",
            )
        except VetoError as error:
            if error.code == "approval_timeout":
                waited = error.decision_id if isinstance(error, ApprovalError) else decision_id
                return Claim(False, "approval_pending", f"decision {waited} has no answer yet; resume once it is approved")
            return Claim(False, error.code, str(error))
        except Exception as error:
            return Claim(False, "approval_unusable", str(error))

    async def aclaim(self, decision_id: str, call: GateCall, *, wait_ms: Optional[float] = 0) -> Claim:
        return await asyncio.to_thread(lambda: self.claim(decision_id, call, wait_ms=wait_ms))

    def _amended_input(self, call: GateCall, args: Mapping[str, Any]) -> dict[str, Any]:
        """
        The tool's input for amended arguments: them, copied, with the model's
        reason argument as the original input had it (unless the amendment set
        that argument itself: then exactly as decided).
        """
        tool_input = copy.deepcopy(dict(args))
        key = self._reason_argument
        given = call.input
        if key is not False and key in given and key not in tool_input:
            tool_input[key] = given[key]
        return tool_input


__all__ = [
    "CONTEXT_FIELDS",
    "Amended",
    "Claim",
    "GateCall",
    "ToolGate",
    "Verdict",
    "decision_id_in",
    "deny_message",
    "amended_notice",
    "input_fingerprint",
    "pause_message",
    "refused_message",
    "with_amended_notice",
]
