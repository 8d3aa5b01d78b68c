"""
The mixed-fleet test parts: the real PostgreSQL server (scripts/postgres.sh, started by `make
test-python` and `make test`), a fresh schema per test, and Node application instances (the built
dist/, tests/node_fleet_worker.mjs) driven over JSON lines.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Iterator

import pytest

from .conftest import ROOT, TS_CLI, require

WORKER = Path(__file__).with_name("node_fleet_worker.mjs")
_counter = itertools.count(1)


def pg_url() -> str:
    """VETO_TEST_PG_URL, else the URL scripts/postgres.sh wrote; never a silent skip."""
    url = os.environ.get("VETO_TEST_PG_URL", "")
    if url:
        return url
    file = ROOT / ".build/pg/url"
    if file.exists() and file.read_text().strip():
        return file.read_text().strip()
    pytest.fail("no PostgreSQL for the tests: set VETO_TEST_PG_URL or run `bash scripts/postgres.sh start` (make test-python does it)")


def fresh_schema(prefix: str) -> str:
    return f"t_py_{prefix}_{os.getpid()}_{int(time.time() * 1000):x}_{next(_counter)}"


def drop_schema(url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description is not None else []


class NodeError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('name')} {error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.name = error.get("name")


class NodeWorker:
    """One Node instance in a child process; ``request`` waits for the reply, ``send`` returns a Future."""

    def __init__(self) -> None:
        require(TS_CLI, "npm run build")
        self.proc = subprocess.Popen(["node", str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._ready: Future[None] = Future()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._ready.result(timeout=60)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if message.get("event") == "ready":
                self._ready.set_result(None)
                continue
            with self._lock:
                future = self._waiting.pop(message["id"], None)
            if future is None:
                continue
            if message["ok"]:
                future.set_result(message["value"])
            else:
                future.set_exception(NodeError(message["error"]))
        error = RuntimeError(f"the Node worker exited ({self.proc.poll()})")
        if not self._ready.done():
            self._ready.set_exception(error)
        with self._lock:
            for future in self._waiting.values():
                future.set_exception(error)
            self._waiting.clear()

    def send(self, cmd: str, **body: Any) -> "Future[Any]":
        future: Future[Any] = Future()
        with self._lock:
            request_id = next(self._ids)
            self._waiting[request_id] = future
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": request_id, "cmd": cmd, **body}) + "\n")
        self.proc.stdin.flush()
        return future

    def request(self, cmd: str, timeout: float = 60, **body: Any) -> Any:
        return self.send(cmd, **body).result(timeout=timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.request("close", timeout=20)
            except Exception:
                pass
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def pg() -> Iterator[tuple[str, str]]:
    """(url, schema): a schema no other test uses, dropped afterwards."""
    url = pg_url()
    schema = fresh_schema("fleet")
    try:
        yield url, schema
    finally:
        drop_schema(url, schema)


@pytest.fixture
def node_workers() -> Iterator[list[NodeWorker]]:
    """Node instances the test starts (append to the list); each is closed afterwards."""
    workers: list[NodeWorker] = []
    try:
        yield workers
    finally:
        for w in workers:
            w.close()


def start_node(workers: list[NodeWorker], url: str, schema: str, **init: Any) -> NodeWorker:
    worker = NodeWorker()
    workers.append(worker)
    worker.request("init", url=url, schema=schema, **init)
    return worker


def ts_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    require(TS_CLI, "npm run build")
    return subprocess.run(["node", str(TS_CLI), *args], capture_output=True, text=True, check=False, cwd=ROOT)


def globex(actor_id: str, reason: str = "mixed fleet test", **args: Any) -> dict[str, Any]:
    """A crm.update of globex's opportunity (instance-child.mjs globex), ``args`` merged into its arguments."""
    return {
        "tool": "crm.update",
        "arguments": {"object": "opportunity", "recordId": "opp_9", "tenantId": "globex", "changes": {"close_date": "2026-12-01"}, **args},
        "context": {"actorId": actor_id, "tenantId": "globex", "environment": "production", "reason": reason},
    }


def ed25519_pem(directory: Path, name: str) -> tuple[str, Path]:
    """A fresh Ed25519 key pair: the private PEM text, and the public key's file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public = directory / f"{name}.pub.pem"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def wait_until(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


__all__ = ["NodeError", "NodeWorker", "pg", "node_workers", "start_node", "ts_cli", "globex", "ed25519_pem", "sql", "pg_url", "wait_until"]
