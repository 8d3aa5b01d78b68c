"""
A mixed fleet on one PostgreSQL (docs/python.md, "The PostgreSQL store"): Node instances (the built
dist/) and Python instances on the same schema share one deny history, one set of approvals and one
record chain. Everything is real: the server, the test bundle, the Node library, psycopg.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from veto_crm import ApprovalError, create_veto
from veto_crm.postgres import PostgresStore, verify_postgres_log

from .conftest import TEST_BUNDLE, require, run_python_cli
from .pg_fleet import NodeError, ed25519_pem, globex, node_workers, pg, sql, start_node, ts_cli  # noqa: F401

GLOBEX_APPROVER = "user:sysadmin@globex.example"
DENY_THRESHOLD = 3  # test/fixtures/data.json escalation.deny_threshold
SEED = int(__import__("os").environ.get("VETO_TEST_SEED", str(random.SystemRandom().randrange(2**32))))


def python_veto(url: str, schema: str, **options: Any) -> tuple[Any, PostgresStore]:
    store = PostgresStore.connect(url, schema=schema, migrate=True)
    key = options.pop("checkpoint_key", None)
    every = options.pop("checkpoint_every", None)
    sink = store.record_sink(checkpoint_key=key, checkpoint_every=every) if key is not None else None
    veto = create_veto(require(TEST_BUNDLE, "make test-bundles"), store=store, record_sink=sink, approval_poll_ms=60_000, **options)
    return veto, store


def records(url: str, schema: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(line) for (line,) in sql(url, f'SELECT line FROM "{schema}".records ORDER BY seq')]


def test_escalation_is_exact_across_node_and_python(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """Node and Python workers deny the same actor at once: one count, each decision sees every deny before it, escalation exactly at the threshold."""
    url, schema = pg
    rng = random.Random(SEED)
    veto, store = python_veto(url, schema)
    node = [start_node(node_workers, url, schema) for _ in range(2)]
    try:
        for round_ in range(3):
            actor = f"agent:fleet-{round_}"
            n_node = [rng.randint(3, 8) for _ in node]
            n_py = rng.randint(3, 8)
            call = globex(actor, destination="https://pastebin.com/x")
            futures = [w.send("protect", calls=[call] * k) for w, k in zip(node, n_node)]
            with ThreadPoolExecutor(n_py) as pool:
                py = list(pool.map(lambda _: veto.protect(call), range(n_py)))
            node_decisions = [d for f in futures for d in f.result(timeout=120)]
            total = sum(n_node) + n_py
            assert len(node_decisions) + len(py) == total
            assert all(d.action == "deny" for d in py) and all(d["action"] == "deny" for d in node_decisions)
            # Each decision counted the denies before it, exactly: the counts are 0, 1, ..., total-1.
            mine = [r for r in records(url, schema) if r.get("actor_id") == actor and r["type"] == "decision"]
            seen = sorted(r["history"]["recent_denies"] for r in mine)
            assert seen == list(range(total)), f"seed {SEED}: recent_denies {seen}"
            for r in mine:
                assert r["result"]["escalated"] == (r["history"]["recent_denies"] >= DENY_THRESHOLD), f"seed {SEED}: {r['decision_id']}"
            # Both languages decided in this round.
            assert {d.id for d in py} | {d["id"] for d in node_decisions} == {r["decision_id"] for r in mine}
            assert store.count_recent_denies(actor, "globex", 0) == total
    finally:
        veto.close()
        store.close()


def test_without_the_history_lock_python_instances_double_count(pg: tuple[str, str]) -> None:
    """The lock is what makes the count exact: the same burst with it switched off (a test-only switch) sees the same count twice."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    store._history_lock = False
    try:
        duplicated = False
        for round_ in range(5):
            actor = f"agent:unlocked-{round_}"
            call = globex(actor, destination="https://pastebin.com/x")
            barrier = threading.Barrier(12)

            def decide(_: int) -> Any:
                barrier.wait()
                return veto.protect(call)

            with ThreadPoolExecutor(12) as pool:
                list(pool.map(decide, range(12)))
            seen = [r["history"]["recent_denies"] for r in records(url, schema) if r.get("actor_id") == actor and r["type"] == "decision"]
            if len(set(seen)) < len(seen):
                duplicated = True
                break
        assert duplicated, "twelve unlocked decisions at once never read the same count: the race this lock prevents did not show"
    finally:
        veto.close()
        store.close()


@pytest.mark.parametrize("answer_in", ["python", "node"])
def test_an_answer_in_one_language_wakes_a_waiter_in_the_other(pg: tuple[str, str], node_workers: list[Any], answer_in: str) -> None:
    """Waiters poll once a minute here: only the NOTIFY can wake them within seconds."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        call = globex("agent:waiter", amount=30000)
        decided_in_node = node.request("protect", calls=[call])[0]
        decided_in_py = veto.protect(call)
        assert decided_in_node["action"] == "require_approval" and decided_in_py.action == "require_approval"
        if answer_in == "python":
            # A Node waiter on a Node decision, answered in Python.
            started = time.monotonic()
            waiting = node.send("wait", decisionId=decided_in_node["id"], timeoutMs=30_000)
            time.sleep(0.5)
            veto.approve(decided_in_node["id"], GLOBEX_APPROVER)
            answer = waiting.result(timeout=30)
            assert answer["status"] == "approved" and answer["reviewerId"] == GLOBEX_APPROVER
        else:
            # A Python waiter on a Python decision, answered in Node.
            started = time.monotonic()
            timer = threading.Timer(0.5, lambda: node.request("approve", decisionId=decided_in_py.id, reviewerId=GLOBEX_APPROVER))
            timer.start()
            answer = veto.wait_for_approval(decided_in_py.id, timeout_ms=30_000)
            timer.join()
            assert answer.status == "approved" and answer.reviewer_id == GLOBEX_APPROVER
        assert time.monotonic() - started < 10, "woken by polling, not by the notification"
    finally:
        veto.close()
        store.close()


@pytest.mark.parametrize("first", ["python", "node"])
def test_a_claim_in_one_language_blocks_the_other(pg: tuple[str, str], node_workers: list[Any], first: str) -> None:
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        call = globex("agent:claimer", amount=30000)
        decided = node.request("protect", calls=[call])[0] if first == "node" else veto.protect(call).to_json()
        decision_id = decided["id"]
        (veto.approve(decision_id, GLOBEX_APPROVER) if first == "python" else node.request("approve", decisionId=decision_id, reviewerId=GLOBEX_APPROVER))
        if first == "python":
            assert veto.wait_for_approval(decision_id, timeout_ms=5000, call=call).status == "approved"
            with pytest.raises(NodeError) as refused:
                node.request("wait", decisionId=decision_id, timeoutMs=5000, call=call)
            assert refused.value.code == "already_executed"
        else:
            assert node.request("wait", decisionId=decision_id, timeoutMs=5000, call=call)["status"] == "approved"
            with pytest.raises(ApprovalError) as refused_py:
                veto.wait_for_approval(decision_id, timeout_ms=5000, call=call)
            assert refused_py.value.code == "already_executed"
        executions = [r["result"]["execution"] for r in records(url, schema) if r["type"] == "execution" and r["decision_id"] == decision_id]
        assert executions == ["claimed", "refused"]
        assert sql(url, f'SELECT approval_status FROM "{schema}".decisions WHERE id = %s', (decision_id,)) == [("executed",)]
    finally:
        veto.close()
        store.close()
