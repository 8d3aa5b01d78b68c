"""
Veto for LangGraph (docs/python.md "Integrations"): a ``ToolNode`` tool-call
wrapper that puts every tool call through Veto, as the TypeScript
``veto-crm/langchain`` middleware does (docs/integrations.md).

  allow             -> the tool runs once, with a copy of exactly what was decided;
  deny              -> an error ToolMessage naming the reason codes; the tool never runs;
  require_approval  -> ``interrupt()`` (LangGraph's pause, kept by the checkpointer);
                       resumed with ``Command(resume={"approved": True})``, the tool runs
                       only when the store says this exact call was approved, at most once.

The decision is made in a LangGraph task, so when a resumed run replays the
tools node from the top the decision is read back from the checkpoint, not made
(and recorded, and paused on) a second time. Nothing read back is trusted to let
a call run: an allow read back is decided again, an approval is claimed in the
store, and a verdict read back for other arguments is set aside.

Needs ``pip install 'veto-crm[langgraph]'``; importing this module imports
LangGraph, ``veto_crm`` itself never does.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Literal, Mapping, Optional, Sequence, Union

from langchain_core.messages import ToolMessage
from langgraph.func import task
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command, interrupt

from ..aio import AsyncVeto
from ..veto import Veto
from .gate import Amended, ContextFunction, GateCall, ToolGate, Verdict, amended_notice, refused_message, with_amended_notice

#: The name of the task that decides (part of the ids LangGraph gives the decisions it keeps).
DECISION_TASK = "veto_decision"

#: The ``type`` of the value of an interrupt raised for an approval.
INTERRUPT_TYPE = "veto_approval"


@dataclass(frozen=True)
class LangGraphRun:
    """What the application's context function receives: the tool call's runtime (``runtime.context`` is what ``invoke(..., context=...)`` gave), the graph state, the tool call."""

    runtime: Any
    state: Any
    tool_call: Mapping[str, Any]


@dataclass(frozen=True)
class PendingVetoInterrupt:
    """A pending Veto interrupt (its value), with LangGraph's id for it (to resume several at once: ``Command(resume={interrupt_id: value, ...})``)."""

    decision_id: str
    tool: str
    arguments: Any
    approvers: tuple[str, ...]
    reasons: tuple[Mapping[str, str], ...]
    message: str
    interrupt_id: Optional[str]


def veto_interrupts(source: Any) -> list[PendingVetoInterrupt]:
    """The Veto interrupts of an ``invoke`` result (``result["__interrupt__"]``) or of a state snapshot (``graph.get_state(config)``)."""
    found: list[Any] = []
    if isinstance(source, Mapping):
        found.extend(source.get("__interrupt__") or ())
    interrupts = getattr(source, "interrupts", None)
    if isinstance(interrupts, (list, tuple)):
        found.extend(interrupts)
    elif isinstance(getattr(source, "tasks", None), (list, tuple)):
        for t in source.tasks:
            found.extend(getattr(t, "interrupts", None) or ())
    pending: list[PendingVetoInterrupt] = []
    seen: set[Any] = set()
    for item in found:
        value = getattr(item, "value", None)
        interrupt_id = getattr(item, "id", None)
        if not isinstance(value, Mapping) or value.get("type") != INTERRUPT_TYPE or not isinstance(value.get("decision_id"), str):
            continue
        key = (interrupt_id, value["decision_id"])
        if key in seen:
            continue
        seen.add(key)
        pending.append(
            PendingVetoInterrupt(
                decision_id=value["decision_id"],
                tool=str(value.get("tool")),
                arguments=value.get("arguments"),
                approvers=tuple(value.get("approvers") or ()),
                reasons=tuple(value.get("reasons") or ()),
                message=str(value.get("message")),
                interrupt_id=interrupt_id if isinstance(interrupt_id, str) else None,
            )
        )
    return pending


def _kept(verdict: Verdict, call: GateCall) -> dict[str, Any]:
    """The decision as the task keeps it in the checkpoint (JSON)."""
    decision = verdict.decision
    return {
        "kind": verdict.kind,
        "decision_id": decision.id,
        "message": verdict.message,
        "approvers": list(decision.approvers),
        "reasons": [r.to_json() for r in decision.reasons],
        "input": call.fingerprint,
    }


class VetoToolCallWrapper:
    """
    The wrapper: ``ToolNode(tools, wrap_tool_call=wrapper, awrap_tool_call=wrapper.awrap)``
    (``veto_tool_node`` builds that). Needs a checkpointer and a ``thread_id``,
    as ``interrupt()`` does; with ``PostgresSaver`` the pause survives the
    process. Several tool calls of one model turn: dispatch each to the tools
    node with ``Send`` (each is then a task of its own, as the prebuilt agents
    do), so that each call's decision and interrupt are its own on resume.
    """

    def __init__(
        self,
        *,
        veto: Union[Veto, AsyncVeto],
        context: ContextFunction[LangGraphRun],
        tool_names: Optional[Mapping[str, str]] = None,
        reason_argument: Union[str, Literal[False]] = "reason",
    ) -> None:
        self.gate = ToolGate[LangGraphRun](
            veto=veto, context=context, tool_names=tool_names, reason_argument=reason_argument, where="VetoToolCallWrapper"
        )
        # Nonces of the decisions made in this process just now (not read back from a checkpoint).
        self._fresh: set[str] = set()
        self._lock = threading.Lock()
        gate = self.gate

        def veto_decision(payload: dict[str, Any]) -> dict[str, Any]:
            with self._lock:
                self._fresh.add(payload["nonce"])
            call = GateCall(payload["tool"], payload["arguments"], payload["context"], payload["input"])
            return _kept(gate.decide(call), call)

        async def aveto_decision(payload: dict[str, Any]) -> dict[str, Any]:
            with self._lock:
                self._fresh.add(payload["nonce"])
            call = GateCall(payload["tool"], payload["arguments"], payload["context"], payload["input"])
            return _kept(await gate.adecide(call), call)

        # One name for both (LangGraph's id of a kept decision includes it): a pause made by invoke resumes with ainvoke.
        veto_decision.__name__ = aveto_decision.__name__ = DECISION_TASK
        self._decide = task(veto_decision)
        self._adecide = task(aveto_decision)

    def _decided_now(self, nonce: str) -> bool:
        with self._lock:
            if nonce in self._fresh:
                self._fresh.discard(nonce)
                return True
            return False

    @staticmethod
    def _payload(call: GateCall, nonce: str) -> dict[str, Any]:
        return {"tool": call.tool, "arguments": call.arguments, "context": call.context, "input": call.input, "nonce": nonce}

    @staticmethod
    def _run(request: ToolCallRequest, call: GateCall) -> ToolCallRequest:
        """The request the tool runs with: the input that was decided, not the one the framework holds."""
        return request.override(tool_call={**request.tool_call, "args": call.input})

    @staticmethod
    def _refuse(request: ToolCallRequest, content: str) -> ToolMessage:
        return ToolMessage(content=content, tool_call_id=request.tool_call.get("id") or "", name=request.tool_call.get("name"), status="error")

    def _run_of(self, request: ToolCallRequest) -> LangGraphRun:
        return LangGraphRun(runtime=request.runtime, state=request.state, tool_call=request.tool_call)

    @staticmethod
    def _pause(kept: Mapping[str, Any], call: GateCall) -> dict[str, Any]:
        return {
            "type": INTERRUPT_TYPE,
            "decision_id": kept["decision_id"],
            "tool": call.tool,
            "arguments": call.arguments,
            "approvers": list(kept["approvers"]),
            "reasons": list(kept["reasons"]),
            "message": kept["message"],
        }

    @staticmethod
    def _declined(answer: Any) -> bool:
        """``{"approved": False}``: the application gives up. Any other answer is only a wish: the claim decides."""
        return isinstance(answer, Mapping) and answer.get("approved") is False

    def __call__(self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], Union[ToolMessage, Command[Any]]]) -> Union[ToolMessage, Command[Any]]:
        call = self.gate.call(request.tool_call["name"], request.tool_call.get("args"), self._run_of(request))
        nonce = uuid.uuid4().hex
        kept = self._decide(self._payload(call, nonce)).result()
        decided_now = self._decided_now(nonce)
        if kept.get("input") != call.fingerprint:
            # Read back for other arguments (the thread's tool call was edited, or calls of one task were reordered): decided anew.
            kept, decided_now = _kept(self.gate.decide(call), call), True
        if kept["kind"] == "deny":
            return self._refuse(request, kept["message"])
        if kept["kind"] == "allow":
            if decided_now:
                return execute(self._run(request, call))
            # An allow read back from the checkpoint (the node ran again after a later pause) is not evidence: decided again.
            again = self.gate.decide(call)
            return execute(self._run(request, call)) if again.kind == "allow" else self._refuse(request, again.message)
        answer = interrupt(self._pause(kept, call))
        if self._declined(answer):
            return self._refuse(request, refused_message("declined", f"the application declined decision {kept['decision_id']}"))
        # The resume value is not evidence: the store says whether this exact call was approved, and the claim makes it once.
        claim = self.gate.claim(kept["decision_id"], call)
        if not claim.ok:
            return self._refuse(request, refused_message(claim.code, claim.message))
        if claim.amended is None or claim.run is None:
            return execute(self._run(request, call))
        # Amended by the approver: the tool runs the amended input, not the args LangGraph replays; its message says so.
        return self._noticed(execute(self._run(request, claim.run)), claim.amended)

    async def awrap(
        self, request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[Union[ToolMessage, Command[Any]]]]
    ) -> Union[ToolMessage, Command[Any]]:
        """As calling the wrapper, for ``ainvoke``/``astream`` (``awrap_tool_call``); the context function may be ``async``."""
        call = await self.gate.acall(request.tool_call["name"], request.tool_call.get("args"), self._run_of(request))
        nonce = uuid.uuid4().hex
        kept = await self._adecide(self._payload(call, nonce))
        decided_now = self._decided_now(nonce)
        if kept.get("input") != call.fingerprint:
            kept, decided_now = _kept(await self.gate.adecide(call), call), True
        if kept["kind"] == "deny":
            return self._refuse(request, kept["message"])
        if kept["kind"] == "allow":
            if decided_now:
                return await execute(self._run(request, call))
            again = await self.gate.adecide(call)
            return await execute(self._run(request, call)) if again.kind == "allow" else self._refuse(request, again.message)
        answer = interrupt(self._pause(kept, call))
        if self._declined(answer):
            return self._refuse(request, refused_message("declined", f"the application declined decision {kept['decision_id']}"))
        claim = await self.gate.aclaim(kept["decision_id"], call)
        if not claim.ok:
            return self._refuse(request, refused_message(claim.code, claim.message))
        if claim.amended is None or claim.run is None:
            return await execute(self._run(request, call))
        return self._noticed(await execute(self._run(request, claim.run)), claim.amended)

    @staticmethod
    def _noticed(result: Union[ToolMessage, Command[Any]], amended: Amended) -> Union[ToolMessage, Command[Any]]:
        """
        The amended call's ToolMessage, saying first that the reviewer amended
        the call and to what (``amended_notice``): a text content gets it as its
        first line, a list of content blocks a text block before them.
        """
        if not isinstance(result, ToolMessage):
            return result
        content = result.content
        noticed: Any = with_amended_notice(content, amended) if isinstance(content, str) else [{"type": "text", "text": amended_notice(amended)}, *content]
        return result.model_copy(update={"content": noticed})


def veto_tool_node(
    tools: Sequence[Any],
    *,
    veto: Union[Veto, AsyncVeto],
    context: ContextFunction[LangGraphRun],
    tool_names: Optional[Mapping[str, str]] = None,
    reason_argument: Union[str, Literal[False]] = "reason",
    **tool_node_options: Any,
) -> ToolNode:
    """A ``ToolNode`` whose every tool call goes through Veto (``VetoToolCallWrapper``); other options go to ``ToolNode``."""
    wrapper = VetoToolCallWrapper(veto=veto, context=context, tool_names=tool_names, reason_argument=reason_argument)
    return ToolNode(tools, wrap_tool_call=wrapper, awrap_tool_call=wrapper.awrap, **tool_node_options)


__all__ = [
    "DECISION_TASK",
    "INTERRUPT_TYPE",
    "LangGraphRun",
    "PendingVetoInterrupt",
    "VetoToolCallWrapper",
    "veto_interrupts",
    "veto_tool_node",
]
