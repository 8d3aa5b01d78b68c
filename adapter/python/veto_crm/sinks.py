"""
What a record sink is (re-exported by veto_crm.records): a protocol class,
kept in a module of its own because the compiled build (hatch_build.py)
compiles records.py and mypyc cannot compile a runtime-checkable protocol.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

Record = dict[str, Any]


@runtime_checkable
class RecordSink(Protocol):
    """
    Where records go. ``write`` returns only once the record is as durable as
    the sink can make it; if it raises, the call it records fails closed
    (deny with record_unavailable, or the approval is refused).
    A FileDecisionLog (veto_crm.log) is one.
    """

    def write(self, record: Record) -> Any: ...
