"""
What the PostgreSQL store, record sink and migrator share (adapter/postgres/connection.ts): options, the
pool, identifiers, advisory-lock keys. The lock keys are the TypeScript adapter's, byte for byte (the JSON
text JSON.stringify gives, hashed by the server's hashtextextended), so a Node and a Python instance on one
schema take the same locks and exclude each other.
"""

from __future__ import annotations

import re
from typing import Any, Optional

from ..errors import VetoError, VetoOptionsError
from ..jsontext import stringify

DEFAULT_SCHEMA = "veto"
#: The longest a call waits for a connection (all busy, or the server not answering), seconds.
DEFAULT_CONNECTION_TIMEOUT_S = 10.0
DEFAULT_POOL_SIZE = 10
_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresStoreError(VetoError):
    """
    The PostgreSQL store's errors, with the TypeScript adapter's codes: ``schema_not_migrated``,
    ``migration_changed``, ``migrations_unreadable``, ``connection_unavailable``, ``schema_newer``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def check_schema(schema: Any, where: str) -> str:
    if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
        issue = "schema: must be a lower-case SQL identifier (letters, digits, _; at most 63)"
        raise VetoOptionsError(f"{where}: invalid options: {issue}", [issue])
    return schema


def check_url(url: Optional[str], where: str) -> Optional[str]:
    if url is not None and (not isinstance(url, str) or url == ""):
        issue = "url: must be a non-empty string (postgres://user:password@host:port/database)"
        raise VetoOptionsError(f"{where}: invalid options: {issue}", [issue])
    return url


def quote_ident(name: str) -> str:
    """``"schema"``: an identifier the SQL can embed (the schema pattern already excludes quotes)."""
    return '"' + name.replace('"', '""') + '"'


def history_lock_key(schema: str, actor_id: str, tenant_id: str) -> str:
    return stringify(["veto:history", schema, actor_id, tenant_id])


def records_lock_key(schema: str) -> str:
    return stringify(["veto:records", schema])


def migrate_lock_key(schema: str) -> str:
    return stringify(["veto:migrate", schema])


#: A transaction-scoped advisory lock on one key (connection.ts lockSql).
LOCK_SQL = "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))"

#: The database's clock, in epoch milliseconds, where a statement reads it (connection.ts DB_NOW_MS).
DB_NOW_MS = "floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

#: The channel the decisions table's trigger notifies on: the payload is ``[schema, decision_id]``.
APPROVAL_CHANNEL = "veto_approval"


def connection_unavailable(error: BaseException, timeout_s: float, size: int) -> PostgresStoreError:
    text = str(error)
    if "timeout" in text.lower() or type(error).__name__ == "PoolTimeout":
        return PostgresStoreError(
            "connection_unavailable",
            f"connection timeout: no PostgreSQL connection within {int(timeout_s * 1000)} ms (pool of {size}: all busy, or the server does not answer)",
        )
    return PostgresStoreError("connection_unavailable", f"cannot connect to PostgreSQL: {text}")
