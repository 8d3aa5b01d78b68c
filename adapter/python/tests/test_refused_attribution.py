"""A refused call is attributed only to what a valid call could carry (docs/contract.md §3, §7).

The tool, actor, tenant and environment of an invalid call go into its record, and its deny
counts for that actor, only when each is text a valid call could carry there: non-blank,
well-formed (no lone surrogate) and at most the input limit in UTF-8 bytes. Anything else is
attributed to no one, so the record stays small and writable: never record_unavailable.
Generated cases; VETO_ATTRIBUTION_SEED=<n> reproduces a run (the seed is in every message).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from veto_crm import create_veto, open_file_log, verify_log
from veto_crm.text import is_blank

from .conftest import codes

SEED = int(os.environ.get("VETO_ATTRIBUTION_SEED", str(random.SystemRandom().randrange(1 << 30))))
LIMIT = 65_536
SURROGATES = [chr(0xD800), chr(0xDBFF), chr(0xDC00), chr(0xDFFF)]


def _field(rng: random.Random) -> Any:
    kind = rng.randrange(5)
    if kind == 0:
        return rng.choice(["agent:sales-assistant", "acme", "production", "crm.update", "ünïcödé-ключ-名前"])
    if kind == 1:
        return "a" * rng.choice([LIMIT - 1, LIMIT, LIMIT + 1, 4 * LIMIT])
    if kind == 2:
        return "é" * rng.choice([LIMIT // 2 - 1, LIMIT // 2 + 1, LIMIT])
    if kind == 3:
        s = rng.choice(SURROGATES)
        return rng.choice([f"{s}agent", f"agent{s}", f"ag{s}ent"])
    return rng.choice(["", "   ", "\u200b", 7, None])


def _recordable(value: Any, required: bool = True) -> bool:
    """Text a valid call could carry: well-formed, within the limit; non-blank where required."""
    if not isinstance(value, str) or (required and is_blank(value)):
        return False
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return False
    return len(value.encode("utf-8")) <= LIMIT


def test_refused_calls_are_recorded_invalid_input_and_attributed_only_to_recordable_text(bundle: Path, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    for case in range(60):
        actor, tenant, environment, tool, request_id = (_field(rng) for _ in range(5))
        oversized = rng.random() < 0.5
        args: Any = {"object": "contact", "recordId": "c_1", "fields": ["x" * LIMIT]} if oversized else 5
        path = tmp_path / f"refused-{case}.jsonl"
        log = open_file_log(str(path))
        veto = create_veto(bundle, record_sink=log)
        try:
            decision = veto.protect({"tool": tool, "arguments": args, "context": {"actorId": actor, "tenantId": tenant, "environment": environment, "requestId": request_id}})
        finally:
            veto.close()
            log.close()
        where = f"seed {SEED}, case {case}"
        assert codes(decision) == ["invalid_input"], where
        assert verify_log([str(path)]).count == 1, where
        text = path.read_text("utf-8")
        assert len(text) < 6 * LIMIT, where
        record = json.loads(text)
        for key, value in (("actor_id", actor), ("tenant_id", tenant), ("environment", environment), ("tool", tool)):
            assert record[key] == (value if _recordable(value) else None), f"{where}: {key}"
        assert record["request_id"] == (request_id if _recordable(request_id, False) else None), f"{where}: request_id"
