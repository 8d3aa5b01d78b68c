"""
Veto for the OpenAI Agents SDK for Python: function tools governed through the
SDK's own approval machinery (docs/python.md "Integrations"), as the
TypeScript ``veto-crm/openai-agents`` does (docs/integrations.md).

  needs_approval    decides the call (once per call id): True only for
                    require_approval, so a deny never becomes an approval request;
  input guardrail   runs just before execution: a deny -> reject_content (the
                    model reads the codes, the tool never runs); an approved
                    call -> the store's use-once claim for exactly this call,
                    whatever the RunState says (``state.approve()`` is the
                    application's wish, not evidence).

The decision of each call id is kept in the run's context (its ``"veto"`` key,
or ``veto`` attribute), so it travels in ``RunState.to_string()`` and a run
restored in another process resumes without deciding again. Nothing kept there
is trusted to let a call run: an allow read back from a restored state is
decided again, an approval is claimed in the store.

Needs ``pip install 'veto-crm[openai-agents]'``; importing this module imports
the SDK (``agents``), ``veto_crm`` itself never does.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Union

from agents import FunctionTool, RunContextWrapper, ToolGuardrailFunctionOutput, ToolInputGuardrail, ToolInputGuardrailData
from agents.items import ToolApprovalItem

from ..aio import AsyncVeto
from ..errors import VetoOptionsError
from ..jsontext import parse, stringify
from ..veto import Veto
from .gate import Amended, ContextFunction, GateCall, ToolGate, input_fingerprint, refused_message, with_amended_notice

#: Where the decisions are kept in the run's context.
FIELD = "veto"

#: Allowed calls remembered in this process; an allowed call whose guardrail never ran (an abandoned run) is forgotten, oldest first.
_ALLOWED_KEPT = 10_000


@dataclass(frozen=True)
class PendingApproval:
    """A call the run is paused on, with the Veto decision to approve (``veto.approve``)."""

    item: ToolApprovalItem
    call_id: str
    decision_id: Optional[str]
    message: Optional[str]


def _kept_of(context: Any, create: bool = True) -> Optional[MutableMapping[str, Any]]:
    """
    The decisions kept in the run's context: its ``"veto"`` key (a mapping
    context, which RunState serializes as it is) or its ``veto`` attribute.
    A context that cannot take it keeps nothing: every call is then decided
    where it runs, and an approval cannot be resumed (``unknown_decision``).
    """
    if isinstance(context, MutableMapping):
        field = context.get(FIELD)
        if field is None and create:
            field = {"decisions": {}}
            context[FIELD] = field
    elif context is not None and not isinstance(context, Mapping):
        field = getattr(context, FIELD, None)
        if field is None and create:
            try:
                setattr(context, FIELD, {"decisions": {}})
            except (AttributeError, TypeError):
                return None
            field = getattr(context, FIELD, None)
    else:
        return None
    decisions = field.get("decisions") if isinstance(field, MutableMapping) else None
    return decisions if isinstance(decisions, MutableMapping) else None


def _kept_decision(context: Any, call_id: Optional[str]) -> Optional[Mapping[str, Any]]:
    decisions = _kept_of(context, create=False)
    if call_id is None or decisions is None:
        return None
    kept = decisions.get(call_id)
    return kept if isinstance(kept, Mapping) and isinstance(kept.get("decision_id"), str) else None


def _tool_input(arguments: Any) -> Any:
    """The tool's input as JSON.parse reads it (no NaN, no Infinity); text that is not JSON is passed on as text: the policy denies it."""
    if not isinstance(arguments, str):
        return arguments
    try:
        return parse(arguments)
    except Exception:
        return arguments


class VetoAgents:
    """
    ``governed = VetoAgents(veto=veto, context=lambda run: run.context["app"], tool_names={...})``;
    ``agent = Agent(..., tools=[governed.tool(crm_update)])``. ``context``
    receives the SDK's ``RunContextWrapper`` (``run.context`` is what
    ``Runner.run(..., context=...)`` was given). Use a dict as the run's
    context (a fresh one per run) so the decisions travel in the RunState.
    """

    def __init__(
        self,
        *,
        veto: Union[Veto, AsyncVeto],
        context: ContextFunction[RunContextWrapper[Any]],
        tool_names: Optional[Mapping[str, str]] = None,
        reason_argument: Union[str, Literal[False]] = "reason",
    ) -> None:
        self.gate = ToolGate[RunContextWrapper[Any]](
            veto=veto, context=context, tool_names=tool_names, reason_argument=reason_argument, where="VetoAgents"
        )
        # Allows decided in this process, by call id: the only allows trusted without deciding again.
        self._allowed: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._lock = threading.Lock()
        # Calls whose approval an approver amended, claimed by the guardrail, by call id, until the tool's
        # invoke takes them: the input the SDK will invoke with, the amended call to run instead, and the
        # amendment (docs/contract.md §6, amend).
        self._amended_runs: OrderedDict[str, tuple[dict[str, Any], GateCall, Amended]] = OrderedDict()
        self.guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(guardrail_function=self._guardrail, name="veto")

    def _remember(self, call_id: str, decision_id: str, fingerprint: str) -> None:
        with self._lock:
            self._allowed[call_id] = (decision_id, fingerprint)
            while len(self._allowed) > _ALLOWED_KEPT:
                self._allowed.popitem(last=False)

    def _forget(self, call_id: str) -> Optional[tuple[str, str]]:
        with self._lock:
            return self._allowed.pop(call_id, None)

    async def _decide_and_keep(self, run: RunContextWrapper[Any], call_id: Optional[str], call: GateCall) -> dict[str, Any]:
        verdict = await self.gate.adecide(call)
        kept = {
            "decision_id": verdict.decision.id,
            "action": verdict.decision.action,
            "message": verdict.message,
            "input": call.fingerprint,
        }
        if call_id is not None:
            decisions = _kept_of(run.context)
            if decisions is not None:
                decisions[call_id] = dict(kept)
            if kept["action"] == "allow":
                self._remember(call_id, kept["decision_id"], call.fingerprint)
        return kept

    async def _guardrail(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        call_id, name = ctx.tool_call_id, ctx.tool_name
        # The same JSON text the SDK parses for the tool: what runs is what is decided here.
        call = await self.gate.acall(name, _tool_input(ctx.tool_arguments), ctx)
        kept = _kept_decision(ctx.context, call_id)
        sdk = ctx.is_tool_approved(name, call_id)
        if kept is None:
            # Not decided by needs_approval: the SDK skipped it (an approval given with always_approve=True
            # covers later calls of the tool), or the context that kept the decision was replaced on restore.
            # Decided here; an approval the SDK holds is no Veto approval, so a call needing one is refused.
            fresh = await self._decide_and_keep(ctx, call_id, call)
            if fresh["action"] == "allow":
                self._forget(call_id)
                return ToolGuardrailFunctionOutput.allow({"decision_id": fresh["decision_id"]})
            if fresh["action"] == "require_approval" and sdk is True:
                return ToolGuardrailFunctionOutput.reject_content(
                    refused_message(
                        "unknown_decision",
                        f"no Veto decision was kept for call {call_id} in this run's context; decided now as {fresh['decision_id']}, it needs its own approval",
                    )
                )
            if fresh["action"] == "require_approval":
                if sdk is None and _pre_approval(ctx):
                    # Before the SDK asks for approval: let the run pause on the decision just kept.
                    return ToolGuardrailFunctionOutput.allow({"decision_id": fresh["decision_id"], "pending": True})
                return ToolGuardrailFunctionOutput.reject_content(
                    refused_message("approval_pending", f"decision {fresh['decision_id']} has no answer yet")
                )
            return ToolGuardrailFunctionOutput.reject_content(fresh["message"])
        if kept.get("action") == "deny":
            return ToolGuardrailFunctionOutput.reject_content(str(kept.get("message")))
        if kept.get("action") == "allow":
            mine = self._forget(call_id)
            if mine == (kept["decision_id"], call.fingerprint):
                return ToolGuardrailFunctionOutput.allow({"decision_id": kept["decision_id"]})
            # An allow read back from a restored state, or for other arguments: decided again.
            again = await self.gate.adecide(call)
            if again.kind == "allow":
                return ToolGuardrailFunctionOutput.allow({"decision_id": again.decision.id})
            return ToolGuardrailFunctionOutput.reject_content(again.message)
        # require_approval. Before the SDK has an answer (pre-approval guardrails), let the run pause.
        if sdk is None and _pre_approval(ctx):
            return ToolGuardrailFunctionOutput.allow({"decision_id": kept["decision_id"], "pending": True})
        if sdk is not True:
            return ToolGuardrailFunctionOutput.reject_content(
                refused_message("approval_pending", f"decision {kept['decision_id']} has no answer yet; resume once it is approved")
            )
        claim = await self.gate.aclaim(kept["decision_id"], call)
        if claim.ok and claim.amended is not None and claim.run is not None and call_id is not None:
            # The SDK invokes the tool with the arguments the model gave: the wrapped invoke runs the amendment instead, once.
            with self._lock:
                self._amended_runs[call_id] = (call.input, claim.run, claim.amended)
                while len(self._amended_runs) > _ALLOWED_KEPT:
                    self._amended_runs.popitem(last=False)
            return ToolGuardrailFunctionOutput.allow({"decision_id": claim.amended.decision_id, "amended_from": kept["decision_id"]})
        if claim.ok and claim.amended is None:
            return ToolGuardrailFunctionOutput.allow({"decision_id": kept["decision_id"]})
        if claim.ok:
            # Claimed, but with no call id to hand it to the invoke: nothing runs (at most once).
            return ToolGuardrailFunctionOutput.reject_content(
                refused_message("call_mismatch", f"the amended call {claim.amended.decision_id if claim.amended else ''} has no tool call id to run under")
            )
        return ToolGuardrailFunctionOutput.reject_content(refused_message(claim.code, claim.message))

    def tool(self, tool: FunctionTool) -> FunctionTool:
        """A copy of the tool, governed: ``needs_approval`` and Veto's input guardrail set (its own ``needs_approval`` is replaced; its guardrails stay, after Veto's)."""
        if not isinstance(tool, FunctionTool):
            raise VetoOptionsError("VetoAgents.tool: pass a FunctionTool (made by @function_tool or FunctionTool(...)) from the agents package")
        name = tool.name

        async def needs_approval(run: RunContextWrapper[Any], params: dict[str, Any], call_id: str) -> bool:
            # Answered at the SDK level already (a resumed run asks again): the guardrail decides.
            if call_id is not None and run.is_tool_approved(name, call_id) is not None:
                return True
            call = await self.gate.acall(name, params, run)
            kept = _kept_decision(run.context, call_id)
            if kept is not None and kept.get("input") == call.fingerprint:
                return bool(kept.get("action") == "require_approval")
            return bool((await self._decide_and_keep(run, call_id, call))["action"] == "require_approval")

        governed = copy.copy(tool)
        invoker = governed.on_invoke_tool

        async def on_invoke_tool(ctx: Any, arguments: str) -> Any:
            call_id = getattr(ctx, "tool_call_id", None)
            with self._lock:
                amended = None if call_id is None else self._amended_runs.pop(call_id, None)
            if amended is None:
                return await invoker(ctx, arguments)
            asked, run, amendment = amended
            given = _tool_input(arguments)
            # Not the input the guardrail claimed for: run nothing (the amendment stays claimed, unrun: at most once).
            if input_fingerprint(given if isinstance(given, Mapping) else {}) != input_fingerprint(asked):
                return refused_message("call_mismatch", f"the amended call {amendment.decision_id} was claimed for other input")
            return with_amended_notice(await invoker(ctx, stringify(run.input)), amendment)

        # The SDK asks needs_approval only about inputs its own validation leaves unchanged (an integer
        # for a float parameter is "changed") and asks a person about the rest without it. Through a plain
        # invoker every call is put to Veto; the tool still validates the same JSON text itself.
        governed.on_invoke_tool = on_invoke_tool
        governed.needs_approval = needs_approval
        governed.tool_input_guardrails = [self.guardrail, *(tool.tool_input_guardrails or [])]
        return governed

    def pending_approvals(self, source: Any) -> list[PendingApproval]:
        """The calls a run result or a (restored) RunState is paused on, each with its Veto decision id."""
        if hasattr(source, "get_interruptions"):
            items = source.get_interruptions()
            wrapper = getattr(source, "_context", None)
        else:
            items = list(getattr(source, "interruptions", None) or [])
            wrapper = getattr(source, "context_wrapper", None)
        context = getattr(wrapper, "context", None)
        pending: list[PendingApproval] = []
        for item in items:
            call_id = getattr(item.raw_item, "call_id", None) or ""
            kept = _kept_decision(context, call_id)
            pending.append(
                PendingApproval(
                    item=item,
                    call_id=call_id,
                    decision_id=None if kept is None else kept["decision_id"],
                    message=None if kept is None else str(kept.get("message")),
                )
            )
        return pending


def _pre_approval(ctx: Any) -> bool:
    """Whether the SDK runs input guardrails before asking for approval (``RunConfig.tool_execution``)."""
    execution = getattr(getattr(ctx, "run_config", None), "tool_execution", None)
    return bool(getattr(execution, "pre_approval_tool_input_guardrails", False))


__all__ = ["FIELD", "PendingApproval", "VetoAgents"]
