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
from typing import Any

import pytest

from veto_crm import ApprovalError, create_veto
from veto_crm.postgres import PostgresStore
from veto_crm.postgres.store import review_json

from .conftest import TEST_BUNDLE, require
from .pg_fleet import NodeError, globex, node_workers, pg, sql, start_node, wait_until  # noqa: F401

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


def test_concurrent_answers_in_both_languages_one_wins(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """Each approval answered at once from Node and from Python (approve or reject, seeded): exactly one answer takes effect, and the records hold exactly it."""
    url, schema = pg
    rng = random.Random(SEED)
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        for i in range(6):
            d = veto.protect(globex(f"agent:race-{i}", amount=30000))
            py_kind, node_kind = rng.choice(["approve", "reject"]), rng.choice(["approve", "reject"])
            barrier = threading.Barrier(2)
            outcome: dict[str, Any] = {}

            def in_python() -> None:
                barrier.wait()
                try:
                    outcome["python"] = (veto.approve if py_kind == "approve" else veto.reject)(d.id, GLOBEX_APPROVER).status
                except ApprovalError as error:
                    outcome["python"] = error.code

            def in_node() -> None:
                barrier.wait()
                try:
                    outcome["node"] = node.request(node_kind, decisionId=d.id, reviewerId=GLOBEX_APPROVER)["status"]
                except NodeError as error:
                    outcome["node"] = error.code

            threads = [threading.Thread(target=in_python), threading.Thread(target=in_node)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            won = [v for v in outcome.values() if v in ("approved", "rejected")]
            assert len(won) == 1 and set(outcome.values()) - set(won) == {"already_answered"}, f"seed {SEED}: {outcome}"
            answers = [r for r in records(url, schema) if r["decision_id"] == d.id and r["type"] in ("approval", "rejection")]
            assert [r["result"]["approval"] for r in answers] == won
            assert sql(url, f'SELECT approval_status FROM "{schema}".decisions WHERE id = %s', (d.id,)) == [(won[0],)]
    finally:
        veto.close()
        store.close()


def test_expiry_is_the_database_clock_in_both_languages(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """An approval past its expiry (by the database's clock) cannot be answered in either language; a wait ends approval_expired."""
    url, schema = pg
    veto, store = python_veto(url, schema, approval_ttl_ms=1500, clock=lambda: 0.0)  # the instance's own clock is never asked for times
    node = start_node(node_workers, url, schema, ttlMs=1500)
    try:
        from_python = veto.protect(globex("agent:late", amount=30000))
        from_node = node.request("protect", calls=[globex("agent:late", amount=30000)])[0]
        time.sleep(1.7)
        with pytest.raises(NodeError) as node_late:
            node.request("approve", decisionId=from_python.id, reviewerId=GLOBEX_APPROVER)
        assert node_late.value.code == "approval_expired"
        with pytest.raises(ApprovalError) as py_late:
            veto.approve(from_node["id"], GLOBEX_APPROVER)
        assert py_late.value.code == "approval_expired"
        with pytest.raises(ApprovalError) as waited:
            veto.wait_for_approval(from_python.id, timeout_ms=5000)
        assert waited.value.code == "approval_expired"
        statuses = dict(sql(url, f'SELECT id, approval_status FROM "{schema}".decisions WHERE id IN (%s, %s)', (from_python.id, from_node["id"])))
        assert statuses == {from_python.id: "expired", from_node["id"]: "expired"}
    finally:
        veto.close()
        store.close()


def test_a_record_that_cannot_be_written_is_a_deny_that_does_not_count(pg: tuple[str, str]) -> None:
    """The records table refuses one actor's records: each call is a record_unavailable deny, stored uncounted; other actors go on (no lock left held)."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    sql(
        url,
        f"""CREATE FUNCTION "{schema}".refuse_broken() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.line LIKE '%%agent:broken%%' THEN RAISE EXCEPTION 'disk full'; END IF; RETURN NEW; END $$""",
    )
    sql(url, f'CREATE TRIGGER refuse_broken BEFORE INSERT ON "{schema}".records FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_broken()')
    try:
        lost = [veto.protect(globex("agent:broken", destination="https://pastebin.com/x")) for _ in range(DENY_THRESHOLD + 1)]
        assert [d.reasons[0].code for d in lost] == ["record_unavailable"] * (DENY_THRESHOLD + 1)
        assert all(not d.escalated for d in lost)
        rows = sql(url, f'SELECT action, counts_towards_escalation FROM "{schema}".decisions WHERE actor_id = %s', ("agent:broken",))
        assert rows == [("deny", False)] * len(lost)
        assert store.count_recent_denies("agent:broken", "globex", 0) == 0
        assert veto.protect(globex("agent:fine", amount=100)).action == "allow"
    finally:
        veto.close()
        store.close()


def test_a_lost_listen_connection_is_reopened_and_waiters_still_wake(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        d = veto.protect(globex("agent:relisten", amount=30000))
        result: dict[str, Any] = {}
        waiter = threading.Thread(target=lambda: result.setdefault("answer", veto.wait_for_approval(d.id, timeout_ms=30_000)))
        waiter.start()

        def listening() -> list[Any]:
            return sql(url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'veto-listen' AND query LIKE 'LISTEN%%'")

        assert wait_until(listening)
        sql(url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'veto-listen'")
        started = time.monotonic()
        node.request("approve", decisionId=d.id, reviewerId=GLOBEX_APPROVER)
        waiter.join(timeout=20)
        assert result["answer"].status == "approved"
        assert time.monotonic() - started < 10, "woken by polling, not by the reopened LISTEN connection"
        assert wait_until(listening), "the LISTEN connection was not reopened"
    finally:
        veto.close()
        store.close()


def test_a_python_approval_shows_its_reviewer_what_a_node_one_does(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """The row's review (what an approval service, Node's included, shows and amends with) is the same whichever language decided."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        call = globex("agent:review", amount=30000, ssn="123-45-6789")
        from_python = veto.protect(call)
        from_node = node.request("protect", calls=[globex("agent:review", amount=30000, ssn="123-45-6789")])[0]
        reviews = dict(sql(url, f'SELECT id, review FROM "{schema}".decisions WHERE id IN (%s, %s)', (from_python.id, from_node["id"])))
        py_review, node_review = reviews[from_python.id], reviews[from_node["id"]]
        # The second decision saw no deny more than the first: the same recentDenies.
        assert py_review == node_review
        assert py_review["tool"] == "crm.update" and py_review["context"] == call["context"]
        assert py_review["arguments"]["amount"] == 30000
        # Read back in Python, either row is the same ApprovalReview, and writes back as the same JSON.
        read_py, read_node = store.get_decision(from_python.id).review, store.get_decision(from_node["id"]).review
        assert read_py is not None and read_py == read_node
        assert review_json(read_py) == py_review
    finally:
        veto.close()
        store.close()


def test_a_python_unit_holds_off_a_node_decision_for_the_same_actor(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """The lock is one lock across languages: while a Python unit holds (actor, tenant), Node's decision for it waits; another actor's does not."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    actor = "agent:held \u00fc \u2028 \"q\" \\\\ \U0001f600"
    try:
        with store.unit(actor, "globex"):
            held = node.send("protect", calls=[globex(actor, amount=100)])
            other = node.send("protect", calls=[globex("agent:free", amount=100)])
            assert other.result(timeout=20)[0]["action"] == "allow"
            time.sleep(1.0)
            assert not held.done(), "Node decided for the actor while a Python unit held its lock"
        assert held.result(timeout=20)[0]["action"] == "allow"
    finally:
        veto.close()
        store.close()


def test_lock_keys_are_the_typescript_keys_for_generated_names() -> None:
    """history_lock_key is JSON.stringify([...]) byte for byte, for generated actor and tenant ids (any Unicode, quotes, controls, lone surrogates)."""
    import json
    import subprocess

    from veto_crm.postgres.connection import history_lock_key, migrate_lock_key, records_lock_key

    from .conftest import ROOT

    rng = random.Random(SEED)
    alphabet = ["a", "Z", "0", ":", "\"", "\\", "\n", "\u0000", "\u001f", "\u007f", "\u00fc", "\u2028", "\u2029", "\ud800", "\udfff", "\U0001f600", " "]

    def name(n: int) -> str:
        # As a JSON text would give it: a high surrogate followed by a low one is the pair's character, as in JavaScript.
        text: str = json.loads(json.dumps("".join(rng.choice(alphabet) for _ in range(n))))
        return text

    cases = [("veto", name(rng.randint(0, 12)), name(rng.randint(0, 6))) for _ in range(200)]
    script = (
        "let d='';process.stdin.on('data',c=>d+=c).on('end',()=>{const cases=JSON.parse(d);"
        "process.stdout.write(JSON.stringify(cases.map(([s,a,t])=>[JSON.stringify(['veto:history',s,a,t]),JSON.stringify(['veto:records',s]),JSON.stringify(['veto:migrate',s])])))})"
    )
    # The cases travel as JSON with surrogates escaped, so a lone one arrives as itself.
    run = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True, cwd=ROOT)
    expected = json.loads(run.stdout)
    got = [[history_lock_key(s, a, t), records_lock_key(s), migrate_lock_key(s)] for s, a, t in cases]
    for case, mine, theirs in zip(cases, got, expected):
        assert mine == theirs, f"seed {SEED}: {case!r}"


def test_the_record_and_the_history_commit_together(pg: tuple[str, str]) -> None:
    """The decisions table refuses one actor's rows: the decision's record, written first in the same transaction, is undone with it; only the superseding deny's record stays."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    sql(
        url,
        f"""CREATE FUNCTION "{schema}".refuse_row() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN IF NEW.actor_id = 'agent:nostore' THEN RAISE EXCEPTION 'table full'; END IF; RETURN NEW; END $$""",
    )
    sql(url, f'CREATE TRIGGER refuse_row BEFORE INSERT ON "{schema}".decisions FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_row()')
    try:
        d = veto.protect(globex("agent:nostore", amount=100))
        assert d.action == "deny" and d.reasons[0].code == "record_unavailable"
        kept = [(r["type"], r["result"]["action"], r["result"]["reasons"][0]["code"]) for r in records(url, schema) if r["decision_id"] == d.id]
        assert kept == [("decision", "deny", "record_unavailable")], "the allow's record outlived its transaction"
        assert veto.protect(globex("agent:stored", amount=100)).action == "allow"
    finally:
        veto.close()
        store.close()


def test_a_small_pool_never_deadlocks_when_every_record_fails(pg: tuple[str, str]) -> None:
    """A pool of two, sixteen calls at once, every record refused: no call holds a connection while it asks for another, so each ends in a stored deny, promptly."""
    url, schema = pg
    PostgresStore.connect(url, schema=schema, migrate=True).close()
    store = PostgresStore.connect(url, schema=schema, pool_size=2, connection_timeout_s=30)
    veto = create_veto(require(TEST_BUNDLE, "make test-bundles"), store=store)
    sql(url, f"""CREATE FUNCTION "{schema}".refuse_all() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$""")
    sql(url, f'CREATE TRIGGER refuse_all BEFORE INSERT ON "{schema}".records FOR EACH ROW EXECUTE FUNCTION "{schema}".refuse_all()')
    try:
        started = time.monotonic()
        with ThreadPoolExecutor(16) as pool:
            decided = list(pool.map(lambda i: veto.protect(globex(f"agent:small-{i}", amount=100)), range(16)))
        assert time.monotonic() - started < 20
        assert [d.reasons[0].code for d in decided] == ["record_unavailable"] * 16
        assert sql(url, f'SELECT count(*) FROM "{schema}".decisions WHERE action = \'deny\' AND NOT counts_towards_escalation') == [(16,)]
    finally:
        veto.close()
        store.close()


@pytest.mark.parametrize("isolation", ["repeatable read", "serializable"])
def test_escalation_is_exact_where_transactions_default_to_another_isolation(pg: tuple[str, str], isolation: str) -> None:
    """A server or role whose transactions default to REPEATABLE READ or SERIALIZABLE: the store asks for READ COMMITTED, so each count sees every deny before it."""
    from urllib.parse import quote

    url, schema = pg
    options = quote("-c default_transaction_isolation=" + isolation.replace(" ", "\\ "))
    veto, store = python_veto(url + ("&" if "?" in url else "?") + "options=" + options, schema)
    try:
        assert sql(url + ("&" if "?" in url else "?") + "options=" + options, "SHOW default_transaction_isolation") == [(isolation,)]
        actor = f"agent:isolation-{isolation.split()[0]}"
        call = globex(actor, destination="https://pastebin.com/x")
        total = 12
        with ThreadPoolExecutor(6) as pool:
            decided = list(pool.map(lambda _: veto.protect(call), range(total)))
        assert all(d.action == "deny" for d in decided)
        mine = [r for r in records(url, schema) if r.get("actor_id") == actor and r["type"] == "decision"]
        assert sorted(r["history"]["recent_denies"] for r in mine) == list(range(total))
        assert store.count_recent_denies(actor, "globex", 0) == total
    finally:
        veto.close()
        store.close()
