"""The asyncio face on the PostgreSQL store: the same units and claims, store reads off the event loop, waits woken by NOTIFY."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from veto_crm import ApprovalError, create_async_veto, create_veto
from veto_crm.postgres import PostgresRecordSink, PostgresStore, PostgresStoreError

from .conftest import TEST_BUNDLE
from .pg_fleet import globex, node_workers, pg, sql, start_node  # noqa: F401
from .test_postgres_fleet import GLOBEX_APPROVER


async def test_an_async_waiter_is_woken_by_a_node_answer_and_claims_once(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    store = await asyncio.to_thread(PostgresStore.connect, url, schema=schema, migrate=True)
    node = start_node(node_workers, url, schema)
    try:
        async with await create_async_veto(TEST_BUNDLE, store=store, approval_poll_ms=60_000) as veto:
            call = globex("agent:async", amount=30000)
            decision = await veto.protect(call)
            assert decision.action == "require_approval"
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            started = time.monotonic()
            waiting = asyncio.create_task(veto.wait_for_approval(decision.id, timeout_ms=30_000, call=call))
            await asyncio.sleep(0.5)
            await asyncio.to_thread(node.request, "approve", decisionId=decision.id, reviewerId=GLOBEX_APPROVER)
            answer = await waiting
            assert answer.status == "approved" and time.monotonic() - started < 10
            # The event loop kept running while the store was read.
            ticker.cancel()
            assert ticks > 20
            with pytest.raises(ApprovalError) as again:
                await veto.wait_for_approval(decision.id, timeout_ms=5000, call=call)
            assert again.value.code == "already_executed"
    finally:
        store.close()


def test_create_veto_keeps_records_in_the_store_and_leaves_it_open(pg: tuple[str, str]) -> None:
    url, schema = pg
    store = PostgresStore.connect(url, schema=schema, migrate=True)
    try:
        veto = create_veto(TEST_BUNDLE, store=store)
        assert isinstance(veto._sink, PostgresRecordSink)
        d = veto.protect(globex("agent:w", amount=100))
        veto.close()
        # The record and the row, committed together; the store still open.
        assert sql(url, f'SELECT count(*) FROM "{schema}".records WHERE decision_id = %s', (d.id,)) == [(1,)]
        assert store.get_decision(d.id) is not None
        # Timed by the database's clock: the record's time is the row's.
        (at_ms,) = sql(url, f'SELECT at_ms FROM "{schema}".decisions WHERE id = %s', (d.id,))[0]
        assert d.timestamp == time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at_ms // 1000)) + f".{at_ms % 1000:03d}Z"
    finally:
        store.close()


def test_an_unreachable_database_is_a_typed_error() -> None:
    with pytest.raises(PostgresStoreError) as refused:
        PostgresStore.connect("postgres://veto@127.0.0.1:1/veto", connection_timeout_s=2)
    assert refused.value.code == "connection_unavailable"


async def test_an_async_guard_runs_a_node_amended_call_once_and_refuses_a_changed_record(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """The asyncio guard on PostgreSQL: an async record_state bound at decision time, a Node amendment followed, the amended call run once; then a changed record refused."""
    url, schema = pg
    store = await asyncio.to_thread(PostgresStore.connect, url, schema=schema, migrate=True)
    node = start_node(node_workers, url, schema)
    state = {"opp_9": "v1"}

    async def record_state(call: dict[str, Any]) -> Any:
        await asyncio.sleep(0)
        return state.get(call["arguments"]["recordId"])

    try:
        async with await create_async_veto(TEST_BUNDLE, store=store, approval_poll_ms=60_000, record_state=record_state) as veto:
            runs: list[dict[str, Any]] = []

            @veto.guard("crm.update")
            async def update(args: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
                runs.append(args)
                return decision.id

            call = globex("agent:async-amend", amount=30000)
            guarded = asyncio.create_task(update(call["arguments"], call["context"]))
            for _ in range(200):
                rows = await asyncio.to_thread(
                    sql, url, f'SELECT id, record_state FROM "{schema}".decisions WHERE actor_id = %s AND approval_status = %s', ("agent:async-amend", "pending")
                )
                if rows:
                    break
                await asyncio.sleep(0.05)
            original, bound = rows[0]
            assert bound == "v1"
            amended_args = {**call["arguments"], "amount": 25000}
            result = await asyncio.to_thread(node.request, "amend", decisionId=original, reviewerId=GLOBEX_APPROVER, arguments=amended_args)
            # Approved by the amendment (the amender is among the approvers).
            assert result["decision"]["action"] == "require_approval" and result["approval"]["status"] == "approved"
            assert await asyncio.wait_for(guarded, 30) == result["decision"]["id"]
            assert runs == [amended_args]
            kept = await asyncio.to_thread(sql, url, f'SELECT record_state, approval_status FROM "{schema}".decisions WHERE id = %s', (result["decision"]["id"],))
            # The amending instance decides the amended call: this Node one binds no record state.
            assert kept == [(None, "executed")]

            # A second approval, then the record changes before it runs: refused, nothing runs.
            decision = await veto.protect(globex("agent:async-amend-2", amount=30000))
            await asyncio.to_thread(node.request, "approve", decisionId=decision.id, reviewerId=GLOBEX_APPROVER)
            state["opp_9"] = "v2"
            with pytest.raises(ApprovalError) as changed:
                await veto.wait_for_approval(decision.id, timeout_ms=5000, call=globex("agent:async-amend-2", amount=30000))
            assert changed.value.code == "record_changed"
            rows = await asyncio.to_thread(sql, url, f'SELECT approval_status FROM "{schema}".decisions WHERE id = %s', (decision.id,))
            assert rows == [("approved",)]
    finally:
        store.close()
