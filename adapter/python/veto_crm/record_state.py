"""
Record state (docs/contract.md §6), as adapter/approvals/record-state.ts
reads it: the application's ``record_state(call)`` says what state the CRM
record a call targets is in (a version, an ETag, a SystemModstamp, a digest of
the fields the call changes). It is asked when a call needs approval, and
again where the approved call executes; the call runs only when the two
agree. Whatever the function does (raises, answers something other than a
string or None, takes too long) is an answer that cannot be trusted, and both
places fail closed on it.

The problems are worded as the TypeScript adapter words them, JavaScript's
type names included ("not number"), so that a deny ``record_state_unavailable``
has the same reason message, and its record the same hash, in both languages.
"""

from __future__ import annotations

import asyncio
import contextvars
import copy
import inspect
import threading
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping, Optional, Union

from .jsontext import js_number

DEFAULT_RECORD_STATE_TIMEOUT_MS = 2000

#: The application's function: the record's state, or None for "no state to bind".
#: An ``async def`` needs the asyncio API (create_async_veto).
RecordStateFn = Callable[[dict[str, Any]], Union[Optional[str], Awaitable[Optional[str]]]]

#: The event loop an AsyncVeto call came from: where an ``async def`` record_state runs.
#: Set by aio.py before it hands a step to a worker thread (asyncio.to_thread copies it there).
calling_loop: contextvars.ContextVar[Optional[asyncio.AbstractEventLoop]] = contextvars.ContextVar("veto_crm_calling_loop", default=None)


@dataclass(frozen=True)
class RecordStateReading:
    """What asking gave: the state (None: none), or why there is no answer to trust (``problem``)."""

    ok: bool
    state: Optional[str] = None
    problem: Optional[str] = None


def _js_type(value: Any) -> str:
    """JavaScript's ``typeof`` of the value as JSON would carry it: the TypeScript adapter's words."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if callable(value):
        return "function"
    return "object"


def _failed(problem: str) -> RecordStateReading:
    return RecordStateReading(False, None, problem)


async def _awaited(value: Awaitable[Any]) -> Any:
    return await value


def read_record_state(fn: RecordStateFn, call: Mapping[str, Any], timeout_ms: float) -> RecordStateReading:
    """
    Ask ``fn`` for the state of ``call``'s record (with a deep copy of the
    call, so it cannot change what was decided), within ``timeout_ms``. Never
    raises and never takes (much) longer than ``timeout_ms``: the function runs
    in a thread of its own, and one still running then is left to finish on
    its own, its answer unused. An awaitable answer is awaited on the calling
    event loop (``calling_loop``); without one it is an answer that cannot be
    trusted.
    """
    try:
        asked = copy.deepcopy({"tool": call.get("tool"), "arguments": call.get("arguments"), "context": call.get("context")})
    except Exception as error:  # pragma: no cover - the call is checked JSON
        return _failed(f"the call could not be copied for recordState: {error}")
    loop = calling_loop.get()
    done = threading.Event()
    answer: list[RecordStateReading] = []

    def ask() -> None:
        reading = _failed("recordState did not answer")
        try:
            state = fn(asked)
            if inspect.isawaitable(state):
                if loop is None or loop.is_closed():
                    close = getattr(state, "close", None)
                    if close is not None:
                        close()
                    reading = _failed("recordState answered an awaitable, which the synchronous Veto cannot wait for (use create_async_veto)")
                    return
                state = asyncio.run_coroutine_threadsafe(_awaited(state), loop).result()
            if state is None or isinstance(state, str):
                reading = RecordStateReading(True, state)
            else:
                reading = _failed(f"recordState must answer a string or undefined, not {_js_type(state)}")
        except BaseException as error:  # noqa: BLE001 - whatever it raised is an answer that cannot be trusted
            reading = _failed(f"recordState failed: {error}")
        finally:
            answer.append(reading)
            done.set()

    threading.Thread(target=ask, name="veto-record-state", daemon=True).start()
    if not done.wait(timeout_ms / 1000):
        return _failed(f"recordState did not answer within {js_number(timeout_ms)} ms")
    return answer[0]
