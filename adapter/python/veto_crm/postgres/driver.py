"""psycopg 3, loaded on first use: applications that never configure PostgreSQL never import it."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import VetoOptionsError


def psycopg_module() -> Any:
    try:
        import psycopg
    except ImportError:
        raise VetoOptionsError(
            "the PostgreSQL store needs psycopg 3: install veto-crm[postgres] (psycopg, psycopg-binary, psycopg-pool)"
        ) from None
    return psycopg


def pool_module() -> Any:
    psycopg_module()
    try:
        import psycopg_pool
    except ImportError:
        raise VetoOptionsError("the PostgreSQL store needs psycopg-pool: install veto-crm[postgres]") from None
    return psycopg_pool


def connect(url: Optional[str], autocommit: bool = False, timeout_s: float = 10.0, **params: Any) -> Any:
    """One connection of its own (the migrator, the verifier, the LISTEN connection); ``url`` None: libpq's PG* variables."""
    psycopg = psycopg_module()
    return psycopg.connect(url or "", autocommit=autocommit, connect_timeout=max(1, int(timeout_s)), **params)
