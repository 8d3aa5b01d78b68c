"""
One schema, one set of migrations (adapter/postgres/migrations/*.sql): Python reads the same files
with the same checksums as the TypeScript migrator (COMMENT_ONLY_EDITS included), either side applies
them and the other uses the schema, and a schema newer than the code knows is refused on both sides.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from veto_crm import create_veto
from veto_crm.postgres import COMMENT_ONLY_EDITS, PostgresStore, PostgresStoreError, default_migrations_dir, load_migrations, migrate

from .conftest import ROOT, TEST_BUNDLE, run_python_cli
from .pg_fleet import NodeError, NodeWorker, globex, node_workers, pg, sql, start_node, ts_cli  # noqa: F401

TS_MIGRATIONS = ROOT / "adapter/postgres/migrations.ts"


def node_migrations() -> list[dict[str, Any]]:
    script = (
        "const { loadMigrations } = await import(process.argv[1]);"
        "process.stdout.write(JSON.stringify((await loadMigrations()).map(({ version, name, checksum }) => ({ version, name, checksum }))));"
    )
    run = subprocess.run(["node", "--input-type=module", "-e", script, str(ROOT / "dist/postgres.js")], capture_output=True, text=True, check=True)
    migrations: list[dict[str, Any]] = json.loads(run.stdout)
    return migrations


def test_python_reads_the_typescript_migrations_with_the_same_checksums() -> None:
    # From the source tree (editable install), or the wheel's copy of the same files (the compiled build's run).
    where = default_migrations_dir().resolve()
    source = (ROOT / "adapter/postgres/migrations").resolve()
    if os.environ.get("VETO_CRM_EXPECT_COMPILED") == "1":
        assert where == where.parent / "migrations" and where.parent.name == "postgres" and where != source
        assert sorted(os.listdir(where)) == sorted(os.listdir(source))
    else:
        assert where == source
    py = [{"version": m.version, "name": m.name, "checksum": m.checksum} for m in load_migrations()]
    assert py == node_migrations()
    assert len(py) >= 9


def test_comment_only_edits_are_the_typescript_list() -> None:
    source = TS_MIGRATIONS.read_text()
    block = source[source.index("const COMMENT_ONLY_EDITS") : source.index("]);", source.index("const COMMENT_ONLY_EDITS"))]
    ts = {name: frozenset(re.findall(r'"(sha256:[0-9a-f]{64})"', entry)) for name, entry in re.findall(r'\["(\d{3}_[a-z0-9_]+\.sql)", new Set\(\[([^\]]*)\]\)\]', block)}
    assert ts and ts == COMMENT_ONLY_EDITS


def test_the_wheel_carries_the_migrations(tmp_path: Path) -> None:
    """A wheel is built from adapter/python alone: the .sql files go in by hatch's force-include, byte for byte."""
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT / "adapter/python")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    (wheel,) = tmp_path.glob("veto_crm-*.whl")
    with zipfile.ZipFile(wheel) as z:
        packaged = {Path(n).name: z.read(n) for n in z.namelist() if n.startswith("veto_crm/postgres/migrations/")}
    shipped = {p.name: p.read_bytes() for p in (ROOT / "adapter/postgres/migrations").glob("*.sql")}
    assert packaged == shipped


@pytest.mark.parametrize("first", ["python", "node"])
def test_migrations_applied_by_one_side_are_used_by_the_other(pg: tuple[str, str], node_workers: list[Any], first: str) -> None:
    url, schema = pg
    if first == "python":
        applied = run_python_cli(["db", "migrate", "--postgres", url, "--schema", schema])
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.startswith(f"schema {schema}: applied 001_store.sql, ")
        again = ts_cli(["db", "migrate", "--postgres", url, "--schema", schema])
        assert again.returncode == 0 and again.stdout == f"schema {schema}: up to date (version {len(load_migrations())})\n"
    else:
        applied = ts_cli(["db", "migrate", "--postgres", url, "--schema", schema])
        assert applied.returncode == 0, applied.stderr
        assert migrate(url, schema).applied == ()
    checksums = sql(url, f'SELECT name, checksum FROM "{schema}".schema_migrations ORDER BY version')
    assert checksums == [(m.name, m.checksum) for m in load_migrations()]
    # Both use it without migrating.
    node = start_node(node_workers, url, schema)
    assert node.request("protect", calls=[globex("agent:m", amount=100)])[0]["action"] == "allow"
    store = PostgresStore.connect(url, schema=schema)
    try:
        with create_veto(TEST_BUNDLE, store=store) as veto:
            assert veto.protect(globex("agent:m", amount=100)).action == "allow"
    finally:
        store.close()


def test_an_unmigrated_schema_is_refused_with_the_command_to_run(pg: tuple[str, str]) -> None:
    url, schema = pg
    with pytest.raises(PostgresStoreError) as refused:
        PostgresStore.connect(url, schema=schema)
    assert refused.value.code == "schema_not_migrated" and "db migrate --postgres URL --schema" in str(refused.value)


def test_a_schema_newer_than_the_code_is_refused_on_both_sides(pg: tuple[str, str], node_workers: list[Any]) -> None:
    url, schema = pg
    migrate(url, schema)
    version = len(load_migrations()) + 1
    sql(url, f'INSERT INTO "{schema}".schema_migrations (version, name, checksum) VALUES (%s, %s, %s)', (version, f"{version:03d}_future.sql", "sha256:" + "0" * 64))
    for attempt in (lambda: PostgresStore.connect(url, schema=schema), lambda: migrate(url, schema)):
        with pytest.raises(PostgresStoreError) as refused:
            attempt()
        assert refused.value.code == "schema_newer" and f"version {version}" in str(refused.value)
    cli = run_python_cli(["db", "migrate", "--postgres", url, "--schema", schema])
    assert cli.returncode == 2 and "newer than this code knows" in cli.stderr
    node_cli = ts_cli(["db", "migrate", "--postgres", url, "--schema", schema])
    assert node_cli.returncode == 2 and "newer than this code knows" in node_cli.stderr
    worker = NodeWorker()
    node_workers.append(worker)
    with pytest.raises(NodeError) as node_refused:
        worker.request("init", url=url, schema=schema)
    assert node_refused.value.code == "schema_newer"


def test_a_changed_migration_is_refused(pg: tuple[str, str]) -> None:
    url, schema = pg
    migrate(url, schema)
    sql(url, f'UPDATE "{schema}".schema_migrations SET checksum = %s WHERE version = 3', ("sha256:" + "1" * 64,))
    with pytest.raises(PostgresStoreError) as refused:
        PostgresStore.connect(url, schema=schema)
    assert refused.value.code == "migration_changed" and "003_decisions_guard.sql" in str(refused.value)


def test_a_schema_migrated_before_a_comment_only_edit_is_current_for_python_too(pg: tuple[str, str]) -> None:
    """Each earlier checksum COMMENT_ONLY_EDITS lists is accepted for its file (and only for it); any other is migration_changed."""
    url, schema = pg
    migrate(url, schema)
    versions = {m.name: m.version for m in load_migrations()}
    for name, earlier in COMMENT_ONLY_EDITS.items():
        for checksum in earlier:
            sql(url, f'UPDATE "{schema}".schema_migrations SET checksum = %s WHERE version = %s', (checksum, versions[name]))
            assert migrate(url, schema).applied == ()
            PostgresStore.connect(url, schema=schema).close()
            # The same earlier checksum recorded for another file is no comment-only edit of it.
            other = next(v for n, v in versions.items() if n not in COMMENT_ONLY_EDITS)
            sql(url, f'UPDATE "{schema}".schema_migrations SET checksum = %s WHERE version = %s', (checksum, other))
            with pytest.raises(PostgresStoreError) as refused:
                migrate(url, schema)
            assert refused.value.code == "migration_changed"
            current = {m.version: m.checksum for m in load_migrations()}
            sql(url, f'UPDATE "{schema}".schema_migrations SET checksum = %s WHERE version = %s', (current[other], other))


def test_node_and_python_migrating_at_once_take_turns(pg: tuple[str, str]) -> None:
    """Started together on a fresh schema, the Node and Python migrators (twice each) take turns under one lock: one applies everything, the others find it done."""
    import sys

    url, schema = pg
    commands = [["node", str(ROOT / "dist/cli.js")], [sys.executable, "-m", "veto_crm"]] * 2
    runs = [subprocess.Popen([*c, "db", "migrate", "--postgres", url, "--schema", schema], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT) for c in commands]
    outputs = [(r.wait(timeout=120), *r.communicate()) for r in runs]
    assert all(code == 0 for code, _, _ in outputs), outputs
    applied = [out for _, out, _ in outputs if ": applied " in out]
    assert len(applied) == 1 and sum(": up to date " in out for _, out, _ in outputs) == 3, outputs
    assert sql(url, f'SELECT count(*) FROM "{schema}".schema_migrations') == [(len(load_migrations()),)]
