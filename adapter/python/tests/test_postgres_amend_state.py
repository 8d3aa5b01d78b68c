"""
Record state and amend on one PostgreSQL, Node and Python instances alike (docs/contract.md §6): an
approval bound to its record's state in one language is refused with record_changed where the other
executes it after the state changed, and claimed once when the state is back; an amendment made
through one language's approval API reaches the other's guard or wait (the amended call, run once),
and the amended call's deny is not counted. The records table verifies with both verifiers.

The CRM record's state lives in a table both languages read it from (``crm_state``), as an
application reads a record's version from its CRM.
"""

from __future__ import annotations

import json
import random
import threading
from typing import Any, Optional

import pytest

from veto_crm import ApprovalError, VetoDeniedError
from veto_crm.postgres import PostgresStore, verify_postgres_log

from .conftest import run_python_cli
from .pg_fleet import NodeError, globex, node_workers, pg, sql, start_node, ts_cli, wait_until  # noqa: F401
from .test_postgres_fleet import GLOBEX_APPROVER, SEED, python_veto, records


def crm_table(url: str, schema: str) -> str:
    table = f'"{schema}".crm_state'
    sql(url, f"CREATE TABLE IF NOT EXISTS {table} (record_id text PRIMARY KEY, state text)")
    return table


def set_state(url: str, table: str, record_id: str, state: Optional[str]) -> None:
    sql(url, f"INSERT INTO {table} VALUES (%s, %s) ON CONFLICT (record_id) DO UPDATE SET state = EXCLUDED.state", (record_id, state))


def state_reader(url: str, table: str) -> Any:
    def record_state(call: dict[str, Any]) -> Optional[str]:
        rows = sql(url, f"SELECT state FROM {table} WHERE record_id = %s", (call["arguments"]["recordId"],))
        return rows[0][0] if rows else None

    return record_state


def row(url: str, schema: str, decision_id: str) -> dict[str, Any]:
    cols = ["approval_status", "record_state", "amended_to", "amendment", "counts_towards_escalation", "reviewer_id", "action"]
    found = sql(url, f'SELECT {", ".join(cols)} FROM "{schema}".decisions WHERE id = %s', (decision_id,))
    assert found, decision_id
    return dict(zip(cols, found[0]))


def verify_both(url: str, schema: str) -> None:
    """The records table and the decisions table verify with the TypeScript and the Python verifiers alike."""
    node_verify = ts_cli(["log", "verify", "--postgres", url, "--schema", schema])
    assert node_verify.returncode == 0, f"seed {SEED}: {node_verify.stderr}"
    assert verify_postgres_log(url, schema).ok
    cli = run_python_cli(["log", "verify", "--postgres", url, "--schema", schema])
    assert cli.returncode == 0, f"seed {SEED}: {cli.stderr}"
    assert cli.stdout == node_verify.stdout


def states(rng: random.Random) -> tuple[str, str]:
    """Two different record states, seeded: versions, ETags, digests, text with quotes and non-ASCII."""
    pool = [f"v{rng.randrange(1, 10**6)}", f'W/"{rng.getrandbits(40):x}"', f"sha256:{rng.getrandbits(256):064x}", "2026-11-30T19:00:00.000Z", "état « 1 » 🧾"]
    first, second = rng.sample(pool, 2)
    return first, second


@pytest.mark.parametrize("decided_in", ["node", "python"])
def test_an_approval_bound_in_one_language_is_refused_record_changed_in_the_other(
    pg: tuple[str, str], node_workers: list[Any], decided_in: str
) -> None:
    url, schema = pg
    rng = random.Random(f"{SEED}-{decided_in}")
    PostgresStore.connect(url, schema=schema, migrate=True).close()
    table = crm_table(url, schema)
    veto, store = python_veto(url, schema, record_state=state_reader(url, table))
    node = start_node(node_workers, url, schema, recordStateTable=table)
    try:
        for case in range(3):
            approved_in, changed = states(rng)
            record_id = f"opp_state_{case}"
            call = globex(f"agent:state-{case}", amount=30000 + case, recordId=record_id)
            where = f"seed {SEED}, {decided_in}, case {case}"
            set_state(url, table, record_id, approved_in)
            if decided_in == "node":
                decision_id = node.request("protect", calls=[call])[0]["id"]
                veto.approve(decision_id, GLOBEX_APPROVER)
            else:
                decision_id = veto.protect(call).id
                node.request("approve", decisionId=decision_id, reviewerId=GLOBEX_APPROVER)
            # Bound: in the row and in the decision record, the same whichever language decided.
            assert row(url, schema, decision_id)["record_state"] == approved_in, where
            made = [r for r in records(url, schema) if r["decision_id"] == decision_id and r["type"] == "decision"]
            assert made and made[0]["record_state"] == approved_in, where

            # The record changes (or its state can no longer be read): the other language refuses to run it.
            now = rng.choice([changed, None])
            set_state(url, table, record_id, now)
            if decided_in == "node":
                with pytest.raises(ApprovalError) as refused:
                    veto.wait_for_approval(decision_id, call=call, timeout_ms=10_000)
                assert refused.value.code == "record_changed", where
            else:
                with pytest.raises(NodeError) as node_refused:
                    node.request("wait", decisionId=decision_id, call=call, timeoutMs=10_000)
                assert node_refused.value.code == "record_changed", where
            # Recorded as a refused execution naming the state read; the approval is still approved, unclaimed.
            refusals = [r for r in records(url, schema) if r["decision_id"] == decision_id and r["type"] == "execution"]
            assert [(r["result"], r["record_state"]) for r in refusals] == [({"execution": "refused", "reason": "record_changed"}, now)], where
            assert row(url, schema, decision_id)["approval_status"] == "approved", where

            # Back in the approved state: the other language claims it once; the deciding one is then refused.
            set_state(url, table, record_id, approved_in)
            if decided_in == "node":
                assert veto.wait_for_approval(decision_id, call=call, timeout_ms=10_000).status == "approved"
                with pytest.raises(NodeError) as again:
                    node.request("wait", decisionId=decision_id, call=call, timeoutMs=10_000)
            else:
                assert node.request("wait", decisionId=decision_id, call=call, timeoutMs=10_000)["status"] == "approved"
                with pytest.raises(ApprovalError) as again:  # type: ignore[assignment]
                    veto.wait_for_approval(decision_id, call=call, timeout_ms=10_000)
            assert again.value.code == "already_executed", where
            assert row(url, schema, decision_id)["approval_status"] == "executed", where
        verify_both(url, schema)
    finally:
        veto.close()
        store.close()


def amended_arguments(rng: random.Random, call: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Seeded amended arguments and the action the policy gives them (the test data's globex thresholds)."""
    kind = rng.choice(["allow", "require_approval", "deny"])
    args = dict(call["arguments"])
    if kind == "allow":
        args["amount"] = rng.randrange(1, 20000)
    elif kind == "require_approval":
        args["amount"] = rng.randrange(20000, 200_000)
    else:
        args["destination"] = "https://pastebin.com/amended"
    return args, kind


def test_a_node_amendment_reaches_a_python_guard_which_runs_the_amended_call_once(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    rng = random.Random(SEED)
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        for case in range(4):
            actor = f"agent:amend-py-{case}"
            call = globex(actor, amount=90000 + case)
            args, kind = amended_arguments(rng, call)
            where = f"seed {SEED}, case {case}, {kind}"
            runs: list[tuple[dict[str, Any], str]] = []
            outcome: dict[str, Any] = {}

            @veto.guard("crm.update")
            def update(a: dict[str, Any], context: dict[str, Any], decision: Any) -> str:
                runs.append((a, decision.id))
                return "written"

            def agent() -> None:
                try:
                    outcome["value"] = update(call["arguments"], call["context"])
                except Exception as error:  # noqa: BLE001 - what the guard raised is the outcome
                    outcome["error"] = error

            thread = threading.Thread(target=agent)
            thread.start()
            pending = wait_until(lambda: sql(url, f'SELECT id FROM "{schema}".decisions WHERE actor_id = %s AND approval_status = %s', (actor, "pending")))
            assert pending, where
            original = pending[0][0]
            result = node.request("amend", decisionId=original, reviewerId=GLOBEX_APPROVER, arguments=args, note=f"case {case}")
            thread.join(timeout=30)
            assert not thread.is_alive(), where
            amended = result["decision"]["id"]
            assert result["amended"] == original and result["decision"]["action"] == kind, where
            assert row(url, schema, original)["approval_status"] == "amended" and row(url, schema, original)["amended_to"] == amended, where
            if kind == "deny":
                assert isinstance(outcome.get("error"), VetoDeniedError) and runs == [], where
                # The reviewer's call, not the agent's: not counted, in either language.
                assert row(url, schema, amended)["counts_towards_escalation"] is False, where
                assert store.count_recent_denies(actor, "globex", 0) == 0, where
                follow = node.request("protect", calls=[globex(actor, amount=10)])[0]
                assert follow["action"] == "allow", where
            else:
                assert outcome.get("value") == "written" and runs == [(args, amended)], where
            # The original never runs: a wait for it with its call is told the amended call instead.
            with pytest.raises(ApprovalError) as told:
                veto.wait_for_approval(original, call=call, timeout_ms=5_000)
            assert told.value.code == "amended" and told.value.amended is not None, where
            assert told.value.amended.call == {**call, "arguments": args} and told.value.amended.decision.id == amended, where
            if kind == "require_approval":
                # Approved by the amendment (the amender is an approver) and claimed by the guard: once.
                assert row(url, schema, amended)["approval_status"] == "executed", where
                with pytest.raises(NodeError) as again:
                    node.request("wait", decisionId=amended, call={**call, "arguments": args}, timeoutMs=5_000)
                assert again.value.code == "already_executed", where
        amendments = [r for r in records(url, schema) if r["type"] == "amendment"]
        assert len(amendments) == 4 and all(r["reviewer_id"] == GLOBEX_APPROVER for r in amendments)
        verify_both(url, schema)
    finally:
        veto.close()
        store.close()


def test_a_python_amendment_reaches_a_node_wait_which_runs_the_amended_call_once(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    rng = random.Random(SEED + 1)
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        for case in range(4):
            actor = f"agent:amend-node-{case}"
            call = globex(actor, amount=90000 + case)
            args, kind = amended_arguments(rng, call)
            where = f"seed {SEED + 1}, case {case}, {kind}"
            original = node.request("protect", calls=[call])[0]["id"]
            waiting = node.send("follow", decisionId=original, call=call, timeoutMs=30_000)
            result = veto.amend(original, GLOBEX_APPROVER, args, note=f"case {case}")
            assert result.amended == original and result.decision.action == kind, where
            amended = result.decision.id
            assert row(url, schema, original)["approval_status"] == "amended" and row(url, schema, original)["amended_to"] == amended, where
            # The amended call's decision keeps its amendment as Node writes one.
            kept = row(url, schema, amended)["amendment"]
            assert kept["from"] == original and kept["by"] == GLOBEX_APPROVER and kept["call"] == {**call, "arguments": args}, where
            assert kept["decision"] == json.loads(json.dumps(result.decision.to_json())), where
            if kind == "deny":
                with pytest.raises(NodeError) as denied:
                    waiting.result(timeout=30)
                assert denied.value.code == "denied", where
                assert row(url, schema, amended)["counts_towards_escalation"] is False, where
                follow = node.request("protect", calls=[globex(actor, amount=10)])[0]
                mine = [r for r in records(url, schema) if r["decision_id"] == follow["id"]]
                assert follow["action"] == "allow" and mine[0]["history"]["recent_denies"] == 0, where
            else:
                ran = waiting.result(timeout=30)
                assert ran == {"decisionId": amended, "call": {**call, "arguments": args}}, where
            if kind == "require_approval":
                assert result.approval is not None and result.approval.status == "approved", where
                assert row(url, schema, amended)["approval_status"] == "executed", where
                with pytest.raises(ApprovalError) as again:
                    veto.wait_for_approval(amended, call={**call, "arguments": args}, timeout_ms=5_000)
                assert again.value.code == "already_executed", where
            # Node's wait for the original is told the amended call too.
            with pytest.raises(NodeError) as told:
                node.request("wait", decisionId=original, call=call, timeoutMs=5_000)
            assert told.value.code == "amended", where
        verify_both(url, schema)
    finally:
        veto.close()
        store.close()


def test_an_amendment_the_database_refuses_leaves_no_record_and_the_call_pending(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """The amendment record and the move to amended are one transaction: when the move fails, the record is gone with it."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        call = globex("agent:amend-refused", amount=50000)
        original = veto.protect(call).id
        # The database refuses the move to amended (as it would a lost connection mid-transaction).
        sql(
            url,
            f'CREATE FUNCTION "{schema}".no_amend() RETURNS trigger LANGUAGE plpgsql AS '
            "$$ BEGIN IF NEW.approval_status = 'amended' THEN RAISE EXCEPTION 'test: no amendment'; END IF; RETURN NEW; END $$",
        )
        sql(url, f'CREATE TRIGGER no_amend BEFORE UPDATE ON "{schema}".decisions FOR EACH ROW EXECUTE FUNCTION "{schema}".no_amend()')
        args = {**call["arguments"], "amount": 100}
        with pytest.raises(ApprovalError) as refused:
            veto.amend(original, GLOBEX_APPROVER, args)
        assert refused.value.code == "record_unavailable"
        assert [r for r in records(url, schema) if r["type"] == "amendment"] == []
        assert row(url, schema, original)["approval_status"] == "pending"
        sql(url, f'DROP TRIGGER no_amend ON "{schema}".decisions')
        # Still amendable, by either language; the chain verifies.
        result = node.request("amend", decisionId=original, reviewerId=GLOBEX_APPROVER, arguments=args)
        assert row(url, schema, original)["amended_to"] == result["decision"]["id"]
        assert len([r for r in records(url, schema) if r["type"] == "amendment"]) == 1
        verify_both(url, schema)
    finally:
        veto.close()
        store.close()


def test_racing_amendments_and_answers_from_both_languages_settle_once(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """Python and Node amend, approve and reject one call at once (seeded mixes): exactly one wins, the rest are refused."""
    url, schema = pg
    rng = random.Random(SEED + 2)
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        for case in range(6):
            call = globex(f"agent:amend-race-{case}", amount=40000 + case)
            original = (veto.protect(call).id if rng.random() < 0.5 else node.request("protect", calls=[call])[0]["id"])
            moves = [(rng.choice(["python", "node"]), rng.choice(["amend", "approve", "reject"])) for _ in range(rng.randrange(2, 6))]
            args = {**call["arguments"], "amount": rng.randrange(1, 20000)}
            barrier = threading.Barrier(len(moves))
            outcomes: list[str] = [""] * len(moves)

            def move(i: int) -> None:
                side, kind = moves[i]
                barrier.wait()
                try:
                    if side == "node":
                        body: dict[str, Any] = {"decisionId": original, "reviewerId": GLOBEX_APPROVER}
                        node.request(kind, **({**body, "arguments": args} if kind == "amend" else body))
                    elif kind == "amend":
                        veto.amend(original, GLOBEX_APPROVER, args)
                    else:
                        getattr(veto, kind)(original, GLOBEX_APPROVER)
                    outcomes[i] = "ok"
                except (ApprovalError, NodeError) as error:
                    outcomes[i] = str(error.code)

            threads = [threading.Thread(target=move, args=(i,)) for i in range(len(moves))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            where = f"seed {SEED + 2}, case {case}, {moves} -> {outcomes}"
            assert outcomes.count("ok") == 1 and all(o in ("ok", "already_answered") for o in outcomes), where
            winner = moves[outcomes.index("ok")][1]
            status = row(url, schema, original)["approval_status"]
            assert status == {"amend": "amended", "approve": "approved", "reject": "rejected"}[winner], where
            answers = [r["type"] for r in records(url, schema) if r["decision_id"] == original and r["type"] != "decision"]
            assert answers == [{"amend": "amendment", "approve": "approval", "reject": "rejection"}[winner]], where
        verify_both(url, schema)
    finally:
        veto.close()
        store.close()


def test_an_allowed_amendment_is_claimed_once_across_python_instances_on_postgresql(pg: tuple[str, str]) -> None:
    """An allowed amended call has no approval to claim: its execution time is set once, with its execution record, in the transaction."""
    url, schema = pg
    first, first_store = python_veto(url, schema)
    second, second_store = python_veto(url, schema)
    try:
        call = globex("agent:allowed-amendment", amount=90000)
        original = first.protect(call)
        assert original.action == "require_approval"
        amended_args = {**call["arguments"], "amount": 100}
        low = first.amend(original.id, GLOBEX_APPROVER, amended_args).decision
        assert low.action == "allow" and row(url, schema, low.id)["counts_towards_escalation"] is False
        outcomes: list[Any] = []

        def resume(veto: Any) -> None:
            try:
                outcomes.append(veto.resume_approval(original.id, call).call["arguments"]["amount"])
            except ApprovalError as error:
                outcomes.append(error.code)

        threads = [threading.Thread(target=resume, args=(v,)) for v in (first, second, first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(map(str, outcomes)) == ["100", "already_executed", "already_executed", "already_executed"], outcomes
        executed = sql(url, f'SELECT executed_at_ms FROM "{schema}".decisions WHERE id = %s', (low.id,))
        assert executed and executed[0][0] is not None
        executions = [r["result"]["execution"] for r in records(url, schema) if r["type"] == "execution" and r["decision_id"] == low.id]
        assert executions.count("claimed") == 1 and executions.count("refused") == 3
        verify_both(url, schema)
    finally:
        for veto, store in ((first, first_store), (second, second_store)):
            veto.close()
            store.close()
