"""
The seeded differential stream (test/generate-calls.ts, the generator of the
vitest differential test) plus hand-made raw lines, through both command
lines, ``node dist/cli.js eval`` and ``python -m veto_crm eval``: line by
line the same verdict, escalation, reasons (codes and messages), approvers
and bundle hash, and records with the same input, masking, digests and deny
history. Reproduce a failure with the seed it prints:
VETO_DIFF_SEED=<seed> pytest tests/test_differential_cli.py
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from veto_crm.jsontext import JsonParseError, parse

from .conftest import ROOT, run_python_cli, run_ts_cli

SEED = int(os.environ.get("VETO_DIFF_SEED", "20260301"))
COUNT = int(os.environ.get("VETO_DIFF_COUNT", "1200"))

VALID = '{"tool":"crm.read","arguments":{"object":"contact","fields":["name"]},"context":{"actorId":"agent:sales-assistant","tenantId":"acme","environment":"production"}}'
#: Lines the generator cannot make: not JSON, JSON that JavaScript and Python read alike only with care, limits.
RAW_LINES = [
    "",
    "   \t ",
    "\ufeff",
    "{not json",
    "[",
    "null",
    '"crm.read"',
    VALID.replace('"production"}', '"production","n":NaN}'),
    VALID.replace('"fields":["name"]', '"fields":["name"],"amount":1e400'),
    VALID.replace('"fields":["name"]', '"fields":["name"],"amount":12345678901234567890'),
    VALID.replace('"fields":["name"]', '"fields":["name"],"amount":-0.0'),
    VALID.replace('"fields":["name"]', '"fields":["name"],"x":"\\ud800"'),
    VALID.replace('"fields":["name"]', '"fields":["name"],"\\udfff":1'),
    VALID.replace('"object":"contact"', '"object":"contact","object":"account"'),
    VALID.replace('"fields":["name"]', '"fields":["ssn","name"],"ssn":"x","10":1,"2":2'),
    # Deeper than Python's recursion limit. (Past about 2,400 levels the TypeScript adapter's digest of the
    # refused call overflows V8's stack and the record's input_digest is null; Python's is a digest.)
    VALID.replace('"fields":["name"]', '"fields":["name"],"deep":' + "[" * 1500 + "]" * 1500),
    VALID.replace('"fields":["name"]', '"fields":["name"],"big":"' + "x" * 70000 + '"'),
    VALID.replace("agent:sales-assistant", "\u2003\u200a"),
    "\ufeff" + VALID,
    VALID + "\r",
    VALID + " trailing",
    '{"tool":"crm.update","arguments":{"changes":{"Amount":"9000"}},"context":{"actorId":"agent:sales-assistant","tenantId":"acme","environment":"production","reason":"x"}}',
    '{"tool":"crm.update","arguments":{},"context":{"actorId":"agent:sales-assistant","tenantId":"acme","environment":"production","reason":"x"},"history":{"recentDenies":0}}',
]


def generated() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = subprocess.run(
        ["node", str(ROOT / "scripts/generate-calls.mjs"), str(SEED), str(COUNT)], capture_output=True, text=True, check=True
    )
    lines = run.stdout.splitlines()
    return json.loads(lines[0])["altConfig"], [json.loads(line) for line in lines[1:]]


def streams(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    """Per data document: the input lines and the extra command-line arguments."""
    alt_config, cases = generated()
    # A longer window than the generator's 60 s: both runs must see the same history however long they take.
    alt_config = {**alt_config, "escalation": {**alt_config["escalation"], "window_seconds": 3600}}
    alt_file = tmp / "alt.json"
    alt_file.write_text(json.dumps({"veto": {"config": alt_config}}))
    bundle_lines = [json.dumps(c["call"]) for c in cases if c["config"] == "bundle"]
    alt_lines = [json.dumps(c["call"], ensure_ascii=False) for c in cases if c["config"] == "alt"]
    # The raw lines, spread through the stream.
    step = max(1, len(bundle_lines) // len(RAW_LINES))
    for i, raw in enumerate(RAW_LINES):
        bundle_lines.insert(i * (step + 1), raw)
    return {"bundle": (bundle_lines, []), "alt": (alt_lines, ["--data", str(alt_file)])}


def records_by_id(path: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = parse(line)
        out[record["decision_id"]] = record
    return out


#: Members of a record line that differ by nature (ids, times, the logger's own fields).
#: An approval's expiry is the decision's time plus the TTL, so it differs with the timestamp (compared as present or absent).
VOLATILE = {"decision_id", "timestamp", "expires_at", "metrics", "level", "time", "pid", "hostname", "name", "component", "msg"}


def is_json(line: str) -> bool:
    try:
        parse(line)
        return True
    except JsonParseError:
        return False


@pytest.mark.parametrize("stream", ["bundle", "alt"])
def test_both_command_lines_decide_and_record_every_line_alike(stream: str, bundle: Path, ts_cli: Path, tmp_path: Path) -> None:
    lines, extra = streams(tmp_path)[stream]
    text = "\n".join(lines) + "\n"
    ts = run_ts_cli(["eval", "--bundle", str(bundle), "--records", str(tmp_path / "ts.jsonl"), *extra], text)
    py = run_python_cli(["eval", "--bundle", str(bundle), "--records", str(tmp_path / "py.jsonl"), *extra], text)
    assert ts.returncode == 0, ts.stderr[-2000:]
    assert py.returncode == 0, py.stderr[-2000:]
    ts_out, py_out = ts.stdout.splitlines(), py.stdout.splitlines()
    assert len(ts_out) == len(py_out), f"seed {SEED}: {len(ts_out)} TypeScript decisions, {len(py_out)} Python"
    ts_records, py_records = records_by_id(tmp_path / "ts.jsonl"), records_by_id(tmp_path / "py.jsonl")
    # Lines as readline splits them (a lone \r ends a line too): pair each output with its input for messages.
    inputs = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")[: len(ts_out)]
    escalated = 0
    for i, (t_line, p_line) in enumerate(zip(ts_out, py_out)):
        t, p = json.loads(t_line), json.loads(p_line)
        where = f"seed {SEED}, {stream} line {i}: {inputs[i][:300]!r}"
        assert p["bundle"] == t["bundle"], where
        assert (p["action"], p["escalated"], p["approvers"]) == (t["action"], t["escalated"], t["approvers"]), where
        assert [r["code"] for r in p["reasons"]] == [r["code"] for r in t["reasons"]], where
        parsed = is_json(inputs[i]) or inputs[i].strip(" \t\n\r\ufeff\u2003\u200a") == ""
        if parsed:
            assert p["reasons"] == t["reasons"], where
        tr, pr = ts_records[t["id"]], py_records[p["id"]]
        if not parsed:
            # V8's and Python's JSON parsers word their errors differently: only that wording may differ.
            for record in (tr, pr):
                record["result"]["reason"] = record["result"]["reasons"][0]["message"] = "<not JSON>"
        assert {k: v for k, v in pr.items() if k not in VOLATILE} == {k: v for k, v in tr.items() if k not in VOLATILE}, where
        assert ("expires_at" in pr) == ("expires_at" in tr) == (t["action"] == "require_approval"), where
        escalated += t["escalated"]
    assert escalated > 0, "the stream should reach escalation"
