"""
A PostgreSQL store that fails while an approval is answered, amended or waited for: every
operation ends in a typed ApprovalError (record_unavailable) that names the cause, never the
driver's own exception, and nothing changes; once the store is back the same approval is
answered as if nothing had happened (docs/contract.md §9, a wait that cannot read).

The failure is real: the decisions table is renamed away under the open store (every statement
on it fails in the server), and renamed back.
"""

from __future__ import annotations

import random
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytest

from veto_crm import ApprovalError

from .pg_fleet import globex, pg, sql  # noqa: F401
from .test_postgres_fleet import GLOBEX_APPROVER, SEED, python_veto

NEEDS_APPROVAL = {"amount": 30000}


@contextmanager
def table_gone(url: str, schema: str) -> Iterator[None]:
    sql(url, f'ALTER TABLE "{schema}".decisions RENAME TO decisions_away')
    try:
        yield
    finally:
        sql(url, f'ALTER TABLE "{schema}".decisions_away RENAME TO decisions')


OPERATIONS: list[tuple[str, Callable[[Any, str], Any]]] = [
    ("approve", lambda veto, d: veto.approve(d, GLOBEX_APPROVER)),
    ("reject", lambda veto, d: veto.reject(d, GLOBEX_APPROVER, "no")),
    ("amend", lambda veto, d: veto.amend(d, GLOBEX_APPROVER, {**globex("x")["arguments"], "amount": 10})),
    ("wait, answered now?", lambda veto, d: veto.wait_for_approval(d, timeout_ms=0)),
    ("wait a while", lambda veto, d: veto.wait_for_approval(d, timeout_ms=300)),
]


@pytest.mark.parametrize("name", [name for name, _ in OPERATIONS])
def test_a_failing_store_is_a_typed_refusal_and_changes_nothing(pg: tuple[str, str], name: str) -> None:  # noqa: F811
    url, schema = pg
    operation = dict(OPERATIONS)[name]
    veto, store = python_veto(url, schema)
    try:
        asked = veto.protect(globex("agent:down", **NEEDS_APPROVAL))
        assert asked.action == "require_approval"
        before = sql(url, f'SELECT approval_status, reviewer_id FROM "{schema}".decisions WHERE id = %s', (asked.id,))
        records = sql(url, f'SELECT count(*) FROM "{schema}".records')
        with table_gone(url, schema):
            with pytest.raises(ApprovalError) as refused:
                operation(veto, asked.id)
        assert refused.value.code == "record_unavailable", f"{name}: {refused.value}"
        assert "decisions" in str(refused.value), f"{name}: the cause is named: {refused.value}"
        assert sql(url, f'SELECT approval_status, reviewer_id FROM "{schema}".decisions WHERE id = %s', (asked.id,)) == before
        assert sql(url, f'SELECT count(*) FROM "{schema}".records') == records
        # The store is back: the same approval is answered, and a wait hears it.
        veto.approve(asked.id, GLOBEX_APPROVER)
        assert veto.wait_for_approval(asked.id, timeout_ms=0).status == "approved"
    finally:
        veto.close()
        store.close()


def test_a_wait_rides_out_a_short_outage(pg: tuple[str, str]) -> None:  # noqa: F811
    """The store fails for a seeded while during a wait, then comes back: the wait goes on and hears the answer given after."""
    url, schema = pg
    rng = random.Random(SEED)
    veto, store = python_veto(url, schema)
    try:
        asked = veto.protect(globex("agent:outage", **NEEDS_APPROVAL))

        outcome: dict[str, Any] = {}

        def wait() -> None:
            try:
                outcome["answer"] = veto.wait_for_approval(asked.id, timeout_ms=20_000)
            except Exception as error:  # recorded for the assertion below
                outcome["error"] = error

        # A fast poll so the wait reads during the outage; the outage starts once it is waiting (a wait
        # whose first read fails ends at once, as the parametrized cases show).
        veto._desk.poll_ms = 20
        waiter = threading.Thread(target=wait)
        waiter.start()
        threading.Event().wait(0.1)
        with table_gone(url, schema):
            threading.Event().wait(0.05 + rng.random() * 0.3)
        veto.approve(asked.id, GLOBEX_APPROVER)
        waiter.join(20)
        assert outcome.get("error") is None, f"seed {SEED}: {outcome.get('error')}"
        assert outcome["answer"].status == "approved"
    finally:
        veto.close()
        store.close()
