"""
Schema migrations (adapter/postgres/migrations.ts), from the same files: the versioned SQL in
adapter/postgres/migrations/ (shipped inside the wheel as veto_crm/postgres/migrations/), each applied
once, in order, in its own transaction, and remembered in ``<schema>.schema_migrations`` with the same
checksum ("sha256:<hex>" of the file). Either side may apply them: a Node and a Python migrator take
turns under the same advisory lock, and each finds what the other applied. Refused: a migration changed
after it was applied (``migration_changed``, comment-only edits listed in COMMENT_ONLY_EDITS excepted,
as in the TypeScript list) and a schema newer than this code knows (``schema_newer``).
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from .connection import PostgresStoreError, migrate_lock_key, quote_ident

_FILE = re.compile(r"(\d{3,})_[a-z0-9_]+\.sql")

#: Earlier checksums of migrations whose file changed in comments only, after databases recorded them
#: (migrations.ts COMMENT_ONLY_EDITS, the same entries: a test holds the two lists equal).
COMMENT_ONLY_EDITS: dict[str, frozenset[str]] = {
    "001_store.sql": frozenset({"sha256:5b9032f985a43d0c5c04bca7c6f9a3c41c8eff8aa2ec90b76676b357172b8ed0"}),
    "002_records.sql": frozenset({"sha256:4cb46ae4a26835a7db61301c77ac8b96b890137b3b615e2e60a79d5deda0c3c4"}),
}


@dataclass(frozen=True)
class Migration:
    version: int
    #: The file name, e.g. "001_store.sql".
    name: str
    sql: str
    #: "sha256:<hex>" of the file.
    checksum: str


@dataclass(frozen=True)
class MigrateResult:
    schema: str
    #: Names of the migrations this run applied (empty when the schema was current).
    applied: tuple[str, ...]
    #: The schema's version afterwards.
    version: int


def default_migrations_dir() -> Path:
    """
    The migrations inside the installed package (a wheel carries them as veto_crm/postgres/migrations,
    pyproject.toml's force-include), else those of the source tree this package sits in
    (adapter/postgres/migrations, for an editable install): one set of files for both languages.
    """
    packaged = Path(__file__).with_name("migrations")
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / "postgres" / "migrations"


def load_migrations(directory: Union[str, Path, None] = None) -> list[Migration]:
    where = Path(directory) if directory is not None else default_migrations_dir()
    try:
        names = sorted(os.listdir(where))
    except OSError as error:
        raise PostgresStoreError("migrations_unreadable", f"cannot read the migrations in {where}: {error}") from None
    migrations: list[Migration] = []
    for name in names:
        match = _FILE.fullmatch(name)
        if match is None:
            continue
        data = (where / name).read_bytes()
        migrations.append(Migration(int(match.group(1)), name, data.decode("utf-8"), "sha256:" + hashlib.sha256(data).hexdigest()))
    for i, m in enumerate(migrations):
        if m.version != i + 1:
            raise PostgresStoreError("migrations_unreadable", f"{where}: migration {m.name} should be number {i + 1} (no gaps or repeats)")
    return migrations


def _applied(conn: Any, schema: str) -> Optional[list[tuple[int, str, str]]]:
    found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{quote_ident(schema)}.schema_migrations",)).fetchone()
    if not found or found[0] is not True:
        return None
    rows = conn.execute(f"SELECT version, name, checksum FROM {quote_ident(schema)}.schema_migrations ORDER BY version").fetchall()
    return [(int(v), str(n), str(c)) for v, n, c in rows]


def check_applied(rows: Sequence[tuple[int, str, str]], migrations: Sequence[Migration], schema: str) -> None:
    """Refuse a schema newer than this code, or one whose applied migrations differ from the files."""
    unknown = [r for r in rows if r[0] > len(migrations)]
    if unknown:
        raise PostgresStoreError(
            "schema_newer",
            f"schema {schema} is at version {max(r[0] for r in unknown)} ({', '.join(r[1] for r in unknown)}), newer than this code knows "
            f"(version {len(migrations)}): upgrade veto-crm",
        )
    for version, _name, checksum in rows:
        known = migrations[version - 1]
        if known.checksum != checksum and checksum not in COMMENT_ONLY_EDITS.get(known.name, frozenset()):
            raise PostgresStoreError(
                "migration_changed",
                f"migration {known.name} was changed after it was applied to schema {schema} (applied {checksum}, file {known.checksum}); "
                "add a new migration instead",
            )


def migrate_with(conn: Any, schema: str, migrations: Sequence[Migration]) -> MigrateResult:
    """Apply every pending migration on ``conn`` (an autocommit connection), under the migration lock."""
    lock_key = migrate_lock_key(schema)
    conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (lock_key,))
    failed = False
    try:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(schema)}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(schema)}.schema_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        rows = _applied(conn, schema) or []
        check_applied(rows, migrations, schema)
        done = {r[0] for r in rows}
        applied_now: list[str] = []
        for migration in migrations:
            if migration.version in done:
                continue
            try:
                with conn.transaction():
                    conn.execute(f"SET LOCAL search_path TO {quote_ident(schema)}")
                    # No parameters: sent as a simple query, its statements as they are.
                    conn.execute(migration.sql.encode("utf-8"))
                    conn.execute(
                        f"INSERT INTO {quote_ident(schema)}.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
            except PostgresStoreError:
                raise
            except Exception as error:
                raise RuntimeError(f"migration {migration.name} failed on schema {schema}: {error}") from error
            applied_now.append(migration.name)
        version = max([0] + [r[0] for r in rows] + [m.version for m in migrations])
        return MigrateResult(schema, tuple(applied_now), version)
    except BaseException:
        failed = True
        raise
    finally:
        # After a failure the connection is closed by its owner, and the session lock goes with it.
        if not failed:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (lock_key,))


def require_migrated(conn: Any, schema: str, migrations: Sequence[Migration]) -> None:
    """Raise ``schema_not_migrated`` unless every migration this package ships is applied (unchanged)."""
    rows = _applied(conn, schema)
    done = {r[0] for r in rows or []}
    missing = [m.name for m in migrations if m.version not in done]
    if missing:
        flag = "" if schema == "veto" else f" --schema {schema}"
        raise PostgresStoreError(
            "schema_not_migrated",
            f"schema {schema} lacks migrations {', '.join(missing)}: run `python -m veto_crm db migrate --postgres URL{flag}` "
            f"or `veto db migrate --postgres URL{flag}` (or connect with migrate=True)",
        )
    check_applied(rows or [], migrations, schema)


def migrate(url: Optional[str] = None, schema: str = "veto", migrations_dir: Union[str, Path, None] = None) -> MigrateResult:
    """Apply every pending migration to ``schema`` (``veto db migrate``). Safe to run from many processes, Node or Python, at once."""
    from .connection import check_schema, check_url
    from .driver import connect

    check_url(url, "migrate")
    check_schema(schema, "migrate")
    migrations = load_migrations(migrations_dir)
    with connect(url, autocommit=True) as conn:
        return migrate_with(conn, schema, migrations)
