"""
The asyncio face of Veto: the same instance, its blocking steps (policy
evaluation, the record's fdatasync) run in worker threads so the event loop
never waits on them, and approval waits that are awaitable and cancellable.
An ``async def`` record_state runs on the event loop of the call that needs
it (the worker thread deciding the call waits for it there).
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import functools
import time
from typing import Any, Awaitable, Callable, Mapping, Optional, TypeVar

from .approvals import AmendResult, ApprovalAnswer
from .bundle import BundleVersion
from .decision import Decision
from .errors import ApprovalError, VetoDeniedError, VetoOptionsError
from .jsontext import js_number
from .record_state import calling_loop
from .factory import create_veto
from .veto import Veto, _Decided, _next_of_amended

R = TypeVar("R")


async def _in_thread(fn: Callable[..., R], *args: Any) -> R:
    """``asyncio.to_thread``, telling the step which loop an ``async def`` record_state is to run on."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    context.run(calling_loop.set, loop)
    return await loop.run_in_executor(None, functools.partial(context.run, fn, *args))


class AsyncVeto:
    """``async with await create_async_veto(bundle=...) as veto: decision = await veto.protect(call)``."""

    def __init__(self, veto: Veto) -> None:
        self.sync = veto

    @property
    def bundle(self) -> BundleVersion:
        return self.sync.bundle

    async def protect(self, call: Any) -> Decision:
        return await _in_thread(self.sync.protect, call)

    async def approve(self, decision_id: str, reviewer_id: str, note: Optional[str] = None) -> ApprovalAnswer:
        return await _in_thread(self.sync.approve, decision_id, reviewer_id, note)

    async def reject(self, decision_id: str, reviewer_id: str, note: Optional[str] = None) -> ApprovalAnswer:
        return await _in_thread(self.sync.reject, decision_id, reviewer_id, note)

    async def amend(self, decision_id: str, reviewer_id: str, arguments: Mapping[str, Any], note: Optional[str] = None) -> AmendResult:
        """As Veto.amend (docs/contract.md §6, amend)."""
        return await _in_thread(self.sync.amend, decision_id, reviewer_id, arguments, note)

    async def wait_for_approval(
        self, decision_id: str, *, timeout_ms: Optional[float] = None, call: Optional[Mapping[str, Any]] = None
    ) -> ApprovalAnswer:
        """
        As Veto.wait_for_approval; cancelling the task ends the wait (the approval stays pending).
        Given ``call``, the record state is compared and the approval claimed for execution (use-once:
        a second claim raises ApprovalError ``already_executed``), as the synchronous wait does. Store
        reads run in worker threads: a database store never blocks the event loop, and its
        notifications (LISTEN/NOTIFY) wake the wait.
        """
        veto = self.sync
        veto._open()
        desk = veto._desk
        decision = await asyncio.to_thread(desk.check_wait, decision_id, timeout_ms, call)
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def notify() -> None:
            loop.call_soon_threadsafe(wake.set)

        unwatch = desk.store.watch_decision(decision.id, notify)
        deadline = None if timeout_ms is None else time.monotonic() + timeout_ms / 1000
        try:
            while True:
                if desk._closed is not None:
                    raise desk._closed
                wake.clear()
                answer = await asyncio.to_thread(desk.settled_outcome, decision.id)
                if answer is not None:
                    return answer if call is None else await _in_thread(desk.execute, decision, answer, call)
                pause = desk.poll_ms / 1000
                if decision.approval is not None:
                    now_ms = await asyncio.to_thread(desk.now)
                    pause = min(pause, max(0.0, (decision.approval.expires_at_ms - now_ms + 1) / 1000))
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ApprovalError("approval_timeout", decision.id, f"no answer for {decision.id} within {js_number(timeout_ms or 0)} ms")
                    pause = min(pause, left)
                try:
                    await asyncio.wait_for(wake.wait(), pause)
                except asyncio.TimeoutError:
                    pass
        finally:
            unwatch()

    def guard(self, tool: str) -> Callable[[Callable[..., Awaitable[R]]], Callable[[Mapping[str, Any], Mapping[str, Any]], Awaitable[R]]]:
        """As Veto.guard, for ``async def`` tools: ``fn(args, context, decision)`` runs only once the call is allowed or approved."""
        if not isinstance(tool, str) or tool == "":
            raise VetoOptionsError("guard: tool must be a non-empty string")

        def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[[Mapping[str, Any], Mapping[str, Any]], Awaitable[R]]:
            @functools.wraps(fn)
            async def run(args: Mapping[str, Any], context: Mapping[str, Any]) -> R:
                decided = await _in_thread(self.sync._decide, {"tool": tool, "arguments": args, "context": context})
                if decided.decision.action == "deny" or decided.call is None:
                    error = VetoDeniedError(decided.decision)
                    error.__cause__ = decided.cause
                    raise error
                if decided.decision.action == "require_approval":
                    decided = await self._wait_or_amended(decided)
                assert decided.call is not None
                return await fn(copy.deepcopy(decided.call["arguments"]), copy.deepcopy(decided.call["context"]), decided.decision)

            return run

        return decorate

    async def _wait_or_amended(self, decided: _Decided) -> _Decided:
        """As Veto._wait_or_amended: the decided call's approval, claimed, or the amended call as its decision says."""
        current = decided
        hops = 0
        while True:
            try:
                await self.wait_for_approval(current.decision.id, call=current.call)
                return current
            except ApprovalError as error:
                current = _next_of_amended(error, hops)
                hops += 1
                if current.decision.action == "allow":
                    # An allowed amended call runs once too: claimed where it runs (docs/contract.md §6, amend).
                    await _in_thread(self.sync._desk.claim_allowed_amendment, current.decision.id)
                if current.decision.action != "require_approval":
                    return current

    async def close(self) -> None:
        self.sync.close()

    async def __aenter__(self) -> "AsyncVeto":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


async def create_async_veto(bundle: Any, **options: Any) -> AsyncVeto:
    """create_veto (same options) in a worker thread: loading compiles the WASM module."""
    return AsyncVeto(await asyncio.to_thread(functools.partial(create_veto, bundle, _asyncio=True, **options)))
