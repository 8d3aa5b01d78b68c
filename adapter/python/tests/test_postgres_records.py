"""
One record chain written by Node and Python instances (docs/contract.md §7): it verifies with
`veto log verify --postgres` (which also holds the decisions table to the records) and with the Python
verifier, and the checkpoints each side signs with its own key verify with the list of both keys.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from veto_crm import ApprovalError
from veto_crm.postgres import verify_postgres_log

from .conftest import run_python_cli
from .pg_fleet import ed25519_pem, globex, node_workers, pg, sql, start_node, ts_cli  # noqa: F401
from .test_postgres_fleet import GLOBEX_APPROVER, SEED, python_veto

#: Calls a worker may make: allow, deny, require_approval (the test data's globex thresholds).
CALLS = [
    {"amount": 100},
    {"destination": "https://pastebin.com/x"},
    {"amount": 30000},
]


def test_the_chain_both_languages_write_verifies_everywhere(pg: tuple[str, str], node_workers: list[Any], tmp_path: Path) -> None:
    url, schema = pg
    rng = random.Random(SEED)
    py_key, py_pub = ed25519_pem(tmp_path, "python")
    node_key, node_pub = ed25519_pem(tmp_path, "node")
    veto, store = python_veto(url, schema, checkpoint_key=py_key, checkpoint_every=3)
    node = start_node(node_workers, url, schema, checkpointKey=node_key, checkpointEvery=4)
    pending: list[tuple[str, str]] = []
    try:
        # Each side completes an interval of its own first (so each signs at least once), then a seeded mix.
        node.request("protect", calls=[globex("agent:chain-n", amount=100)] * 4)
        for _ in range(3):
            veto.protect(globex("agent:chain-p", amount=100))
        for step in range(rng.randint(12, 20)):
            actor = f"agent:chain-{rng.randint(0, 3)}"
            args = rng.choice(CALLS)
            if rng.random() < 0.5:
                d = veto.protect(globex(actor, **args)).to_json()
            else:
                d = node.request("protect", calls=[globex(actor, **args)])[0]
            if d["action"] == "require_approval":
                pending.append((d["id"], actor))
            if pending and rng.random() < 0.4:
                decision_id, _ = pending.pop(0)
                how = rng.choice(["py-approve", "py-reject", "node-approve", "node-reject"])
                if how.startswith("py"):
                    (veto.approve if how.endswith("approve") else veto.reject)(decision_id, GLOBEX_APPROVER)
                else:
                    node.request(how.split("-")[1], decisionId=decision_id, reviewerId=GLOBEX_APPROVER)
    finally:
        veto.close()
        store.close()
        node.request("close")
    checkpoints = [line for (line,) in sql(url, f'SELECT line FROM "{schema}".records WHERE type = \'checkpoint\' ORDER BY seq')]
    key_ids = {__import__("json").loads(c)["checkpoint"]["key_id"] for c in checkpoints}
    assert len(key_ids) == 2, f"seed {SEED}: checkpoints by {key_ids}, not one per language's key"

    node_verify = ts_cli(["log", "verify", "--postgres", url, "--schema", schema, "--public-key", str(py_pub), "--public-key", str(node_pub)])
    assert node_verify.returncode == 0, f"seed {SEED}: {node_verify.stderr}"
    assert f"{schema}.decisions:" in node_verify.stdout and "match their records" in node_verify.stdout

    result = verify_postgres_log(url, schema, public_keys=[py_pub.read_bytes(), node_pub.read_bytes()], require_checkpointed=True)
    assert result.ok, f"seed {SEED}: {result.reason}"
    assert result.checkpoints == len(checkpoints) and result.signatures == "verified"
    cli = run_python_cli(["log", "verify", "--postgres", url, "--schema", schema, "--public-key", str(py_pub), "--public-key", str(node_pub)])
    assert cli.returncode == 0, cli.stderr
    # The same report as the TypeScript CLI's: the chain, its checkpoints, the decisions table against it.
    assert cli.stdout == node_verify.stdout

    # One key alone does not verify the other's checkpoints, on either side.
    assert not verify_postgres_log(url, schema, public_keys=[py_pub.read_bytes()]).ok
    assert ts_cli(["log", "verify", "--postgres", url, "--schema", schema, "--public-key", str(node_pub)]).returncode == 1


def test_a_forged_row_fails_both_verifiers_at_the_same_seq(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    try:
        for i in range(3):
            veto.protect(globex(f"agent:f{i}", amount=100))
            node.request("protect", calls=[globex(f"agent:n{i}", amount=100)])
    finally:
        veto.close()
        store.close()
        node.request("close")
    # The owner can get around the append-only trigger; the chain still shows it.
    sql(url, f'ALTER TABLE "{schema}".records DISABLE TRIGGER records_append_only')
    sql(url, f'UPDATE "{schema}".records SET line = replace(line, \'"amount":100\', \'"amount":1\') WHERE seq = 4')
    py = verify_postgres_log(url, schema)
    assert not py.ok and py.seq == 4 and py.reason == "seq 4: hash mismatch"
    node_verify = ts_cli(["log", "verify", "--postgres", url, "--schema", schema])
    assert node_verify.returncode == 1 and "seq 4: hash mismatch" in node_verify.stderr
    cli = run_python_cli(["log", "verify", "--postgres", url, "--schema", schema])
    assert cli.returncode == 1 and "seq 4: hash mismatch" in cli.stderr


def test_an_approval_whose_record_is_missing_is_refused_in_python(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """A row set to approved without its record (a forged answer) is not evidence: the Python waiter reads the shared chain and refuses it."""
    url, schema = pg
    veto, store = python_veto(url, schema)
    try:
        d = veto.protect(globex("agent:forged", amount=30000))
        # Around the guard (the table owner can): approved, with no approval record.
        sql(url, f'ALTER TABLE "{schema}".decisions DISABLE TRIGGER decisions_guard')
        sql(
            url,
            f'UPDATE "{schema}".decisions SET approval_status = \'approved\', reviewer_id = %s, answered_at_ms = at_ms + 1 WHERE id = %s',
            (GLOBEX_APPROVER, d.id),
        )
        try:
            veto.wait_for_approval(d.id, timeout_ms=2000)
            raise AssertionError("a forged approval was accepted")
        except ApprovalError as error:
            assert error.code == "approval_unverified"
    finally:
        veto.close()
        store.close()


#: Ways the decisions table can disagree with its records (the table owner gets around the guard).
TAMPERING = [
    ("delete a deny", "DELETE FROM {d} WHERE id = %s", "deny"),
    ("unescalate", "UPDATE {d} SET escalated = NOT escalated WHERE id = %s", "deny"),
    ("move a deny in time", "UPDATE {d} SET at_ms = at_ms - 60000 WHERE id = %s", "deny"),
    ("approve without a record", "UPDATE {d} SET approval_status = 'approved', reviewer_id = 'user:sysadmin@globex.example', answered_at_ms = at_ms WHERE id = %s", "require_approval"),
    ("drop an approver", "UPDATE {d} SET approvers = '{{}}' WHERE id = %s", "require_approval"),
    ("change the actor", "UPDATE {d} SET actor_id = 'agent:other' WHERE id = %s", "allow"),
    ("take a deny out of the count", "UPDATE {d} SET counts_towards_escalation = false WHERE id = %s", "deny"),
]


def test_both_verifiers_report_the_same_mismatches_between_table_and_records(pg: tuple[str, str], node_workers: list[Any]) -> None:
    """Every kind of tampering with the decisions table, in seeded order: both `log verify --postgres` report the same mismatch lines and exit 1."""
    url, schema = pg
    rng = random.Random(SEED)
    veto, store = python_veto(url, schema)
    node = start_node(node_workers, url, schema)
    made: dict[str, list[str]] = {"allow": [], "deny": [], "require_approval": []}
    try:
        for i in range(18):
            args = CALLS[i % 3]
            d = veto.protect(globex(f"agent:t{i}", **args)).to_json() if rng.random() < 0.5 else node.request("protect", calls=[globex(f"agent:t{i}", **args)])[0]
            made[d["action"]].append(d["id"])
    finally:
        veto.close()
        store.close()
        node.request("close")
    sql(url, f'ALTER TABLE "{schema}".decisions DISABLE TRIGGER USER')
    chosen = rng.sample(TAMPERING, len(TAMPERING))
    for name, statement, action in chosen:
        target = made[action].pop()
        sql(url, statement.format(d=f'"{schema}".decisions'), (target,))
    py = run_python_cli(["log", "verify", "--postgres", url, "--schema", schema])
    ts = ts_cli(["log", "verify", "--postgres", url, "--schema", schema])
    assert ts.returncode == 1 and py.returncode == 1, f"seed {SEED} {[c[0] for c in chosen]}: {ts.stderr} {py.stderr}"
    assert py.stdout == ts.stdout
    assert py.stderr == ts.stderr, f"seed {SEED} {[c[0] for c in chosen]}"
    assert "mismatches between the store and its records" in py.stderr
    assert "the deny does not count towards escalation, but its decision record is a deny that counts" in py.stderr
