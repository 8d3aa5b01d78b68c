"""
Shared parts of the framework integration tests (veto_crm.integrations): the
application's context, a crm.update input as a model gives it, a Veto on the
real test bundle with its records kept in memory, and PostgreSQL for the
checkpointers (``VETO_TEST_PG_URL``; ``make test-python`` starts one).
"""

from __future__ import annotations

import os
import random
import uuid
from typing import Any, Iterator, Optional

import pytest

from veto_crm import InMemoryStore, Veto, create_veto

from .conftest import ACTOR, APPROVER, TEST_BUNDLE, MemorySink, require

#: The application's context: never from the model.
APP_CONTEXT = {"actorId": ACTOR, "tenantId": "acme", "environment": "production"}

#: A seed for the generated cases; VETO_TEST_SEED=<n> reproduces a failing run (the seed is in every assertion message).
SEED = int(os.environ.get("VETO_TEST_SEED") or random.SystemRandom().randrange(1 << 30))


def update(**args: Any) -> dict[str, Any]:
    """A crm.update input as a model would give it (the reason as a tool argument)."""
    return {
        "object": "opportunity",
        "recordId": "opp_1",
        "tenantId": "acme",
        "changes": {"close_date": "2026-12-01"},
        "reason": "Customer asked to move the close date",
        **args,
    }


class Recorded:
    """A Veto on the real test bundle, an in-memory store, and the records it wrote."""

    def __init__(self) -> None:
        self.sink = MemorySink()
        self.store = InMemoryStore()
        self.veto: Veto = create_veto(require(TEST_BUNDLE, "make test-bundles"), record_sink=self.sink, store=self.store, approval_poll_ms=10)

    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.sink.records if r["type"] == "decision"]

    def executions(self, decision_id: str) -> list[str]:
        return [r["result"]["execution"] for r in self.sink.records if r["type"] == "execution" and r["decision_id"] == decision_id]

    def approval_status(self, decision_id: str) -> Optional[str]:
        stored = self.store.get_decision(decision_id)
        return None if stored is None or stored.approval is None else stored.approval.status


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    r = Recorded()
    yield r
    r.veto.close()


def pg_url() -> str:
    url = os.environ.get("VETO_TEST_PG_URL")
    if not url:
        pytest.fail("VETO_TEST_PG_URL is not set: `make test-python` starts PostgreSQL, or run `bash scripts/postgres.sh start`")
    return url


def schema_url(url: str, schema: str) -> str:
    """The URL with its search_path set to ``schema`` (one schema per test session)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options=-csearch_path%3D{schema}"


def fresh_schema(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


__all__ = ["ACTOR", "APPROVER", "APP_CONTEXT", "SEED", "Recorded", "fresh_schema", "pg_url", "recorded", "schema_url", "update"]
