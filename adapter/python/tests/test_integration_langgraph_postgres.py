"""
The LangGraph integration on the PostgreSQL store with Node instances beside it (docs/contract.md §6,
record state): a pause approved by Node is refused with record_changed when the graph resumes after
the record changed: the tool never runs, the refusal is recorded with the state read, and the
approval stays approved.
"""

from __future__ import annotations

from typing import Any, Optional

from langgraph.types import Command

from veto_crm import create_veto
from veto_crm.integrations.langgraph import veto_interrupts
from veto_crm.postgres import PostgresStore

from .conftest import APPROVER, TEST_BUNDLE, require
from .pg_fleet import node_workers, pg, sql, start_node  # noqa: F401
from .test_integration_langgraph import Crm, ask, config, graph_for, invoke, model_calling, saver_on, tool_texts
from .test_integration_langgraph import pg_schema  # noqa: F401
from .integration_parts import update


def test_a_langgraph_pause_approved_by_node_runs_only_while_the_record_is_as_approved(
    pg: tuple[str, str], node_workers: list[Any], pg_schema: str
) -> None:
    url, schema = pg
    store = PostgresStore.connect(url, schema=schema, migrate=True)
    sql(url, f'CREATE TABLE "{schema}".crm_state (record_id text PRIMARY KEY, state text)')
    sql(url, f'INSERT INTO "{schema}".crm_state VALUES (%s, %s)', ("opp_1", "rev-7"))

    def record_state(call: dict[str, Any]) -> Optional[str]:
        rows = sql(url, f'SELECT state FROM "{schema}".crm_state WHERE record_id = %s', (call["arguments"]["recordId"],))
        return rows[0][0] if rows else None

    veto = create_veto(require(TEST_BUNDLE, "make test-bundles"), store=store, record_state=record_state, approval_poll_ms=60_000)
    node = start_node(node_workers, url, schema)
    crm = Crm()
    cfg = config()
    try:
        with saver_on(pg_schema) as saver:
            first = invoke(graph_for(crm, saver, model_calling(update(amount=9000)), veto), ask(), cfg)
        [pause] = veto_interrupts(first)
        assert sql(url, f'SELECT record_state FROM "{schema}".decisions WHERE id = %s', (pause.decision_id,)) == [("rev-7",)]
        node.request("approve", decisionId=pause.decision_id, reviewerId=APPROVER)

        # Someone edits the record after the owner approved: the resumed graph does not run the tool.
        sql(url, f'UPDATE "{schema}".crm_state SET state = %s WHERE record_id = %s', ("rev-8", "opp_1"))
        with saver_on(pg_schema) as saver:
            graph = graph_for(crm, saver, model_calling(), veto)
            refused = invoke(graph, Command(resume={"approved": True}), cfg)
        assert tool_texts(refused)[-1].startswith("Not executed [record_changed]: ")
        assert crm.runs == []
        status = sql(url, f'SELECT approval_status FROM "{schema}".decisions WHERE id = %s', (pause.decision_id,))
        assert status == [("approved",)]
        lines = sql(url, f"SELECT line::jsonb FROM \"{schema}\".records WHERE decision_id = %s AND type = 'execution'", (pause.decision_id,))
        assert [(line["result"], line["record_state"]) for (line,) in lines] == [({"execution": "refused", "reason": "record_changed"}, "rev-8")]
    finally:
        veto.close()
        store.close()
