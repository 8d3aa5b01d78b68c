"""
The examples of docs/python.md "Integrations" run as written: each Python block
of that section is executed with the names it leaves to the application (the
Veto, the model, the CRM, the database URL) bound to real parts (the test
bundle, the frameworks' own test models, a real PostgreSQL), while a reviewer
approves in another thread.
"""

from __future__ import annotations

import ast
import itertools
import re
import threading
from typing import Any, Iterator

import psycopg
import pytest
from agents import set_tracing_disabled
from agents.testing import ScriptedModel, assistant_message, function_call
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import StructuredTool

from .conftest import ROOT
from .integration_parts import APPROVER, Recorded, fresh_schema, pg_url, recorded, schema_url, update
from .test_integration_langgraph import CrmUpdate

__all__ = ["recorded"]

set_tracing_disabled(True)


def _blocks() -> list[str]:
    text = (ROOT / "docs/python.md").read_text(encoding="utf-8")
    section = text.split("\n## Integrations\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.DOTALL)


def _block(marker: str) -> str:
    [found] = [b for b in _blocks() if marker in b]
    return found


class Reviewer:
    """Approves every decision that needs approval, from another thread, as a reviewer on the same store would."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded
        self.answered: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.02):
            for record in self.recorded.decisions():
                if record["result"]["action"] == "require_approval" and record["decision_id"] not in self.answered:
                    self.recorded.veto.approve(record["decision_id"], APPROVER)
                    self.answered.append(record["decision_id"])

    def __enter__(self) -> "Reviewer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def database_url() -> Iterator[str]:
    schema = fresh_schema("docs")
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield schema_url(pg_url(), schema)
    with psycopg.connect(pg_url(), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_the_sections_examples_are_found() -> None:
    assert len(_blocks()) == 2


def test_the_langgraph_example_runs_the_approved_call_once(recorded: Recorded, database_url: str) -> None:
    runs: list[dict[str, Any]] = []

    def crm_update_fn(**args: Any) -> str:
        runs.append({k: v for k, v in args.items() if v is not None})
        return "updated"

    call = update(amount=9000, recordId="opp_123")
    first = AIMessage(content="", tool_calls=[{"id": "tc_docs", "name": "crm_update", "args": call}])
    namespace: dict[str, Any] = {
        "veto": recorded.veto,
        "crm_update": StructuredTool.from_function(crm_update_fn, name="crm_update", description="Update a CRM record", args_schema=CrmUpdate),
        "model": GenericFakeChatModel(messages=itertools.chain([first], (AIMessage(content="done") for _ in itertools.count()))),
        "DATABASE_URL": database_url,
    }
    with Reviewer(recorded) as reviewer:
        exec(compile(_block("veto_tool_node"), "docs/python.md", "exec"), namespace)
    assert runs == [call]
    assert len(reviewer.answered) == 1 and recorded.approval_status(reviewer.answered[0]) == "executed"


async def test_the_agents_example_runs_the_approved_call_once(recorded: Recorded) -> None:
    class Crm:
        def __init__(self) -> None:
            self.updates: list[tuple[str, dict[str, Any]]] = []

        def update(self, record_id: str, **changes: Any) -> str:
            self.updates.append((record_id, changes))
            return f"updated {record_id}"

    crm = Crm()
    args = {"object": "opportunity", "recordId": "opp_123", "tenantId": "acme", "close_date": "2026-12-01", "amount": 9000, "reason": "Customer asked"}
    namespace: dict[str, Any] = {
        "veto": recorded.veto,
        "crm": crm,
        "model": ScriptedModel([[function_call("crm_update", args, call_id="call_docs")], *([[assistant_message("done")]] * 3)]),
    }
    code = compile(_block("VetoAgents"), "docs/python.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    with Reviewer(recorded) as reviewer:
        await eval(code, namespace)
    assert crm.updates == [("opp_123", {"close_date": "2026-12-01", "amount": 9000})]
    assert namespace["result"].final_output == "done"
    assert len(reviewer.answered) == 1 and recorded.approval_status(reviewer.answered[0]) == "executed"

