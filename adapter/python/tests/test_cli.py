"""
``python -m veto_crm`` against ``node dist/cli.js``: the same exit codes and
the same one-line messages for every way a command line can go wrong, and
the same decisions for blank, CRLF and unterminated lines.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any
from pathlib import Path

import pytest

from .conftest import read_call, run_python_cli, run_ts_cli, write_call


def first_line(text: str) -> str:
    return text.splitlines()[0] if text else ""


def parser_neutral(message: str) -> str:
    """V8's, tar-stream's and Python's parsers word their errors differently; everything else must be the same."""
    return re.sub(r"(is not valid JSON|is not a readable \.tar\.gz): .*", r"\1: <parser message>", message)


@pytest.mark.parametrize(
    "make_args",
    [
        lambda b, d: ["eval", "--bundle", "/nonexistent.tar.gz"],
        lambda b, d: ["eval", "--bundle", "/etc/hostname"],
        lambda b, d: ["eval", "--bundle", "/dev/null"],
        lambda b, d: ["eval", "--bundle", str(b), "--data", "/nonexistent.json"],
        lambda b, d: ["eval", "--bundle", str(b), "--data", "/etc/hostname"],
        lambda b, d: ["eval", "--bundle", str(b), "--data", str(d / "array.json")],
        lambda b, d: ["eval", "--bundle", str(b), "--data", str(d / "bad-window.json")],
        lambda b, d: ["eval", "--bundle", str(b), "--data", str(d / "bad-shapes.json")],
        lambda b, d: ["eval", "--bundle", str(b), "--data", str(d / "infinite.json")],
        lambda b, d: ["eval"],
        lambda b, d: ["eval", "--bundle", str(b), "--log", "x", "--records", "y"],
        lambda b, d: ["eval", "--bundle", str(b), "--verification-alg", "RS256"],
        lambda b, d: ["eval", "--bundle", str(b), "--log", "/nonexistent-dir/log.jsonl"],
        lambda b, d: ["frobnicate"],
        lambda b, d: [],
        lambda b, d: ["log"],
        lambda b, d: ["log", "verify"],
        lambda b, d: ["log", "verify", "/nonexistent.jsonl"],
        lambda b, d: ["hash", "/etc/hostname"],
        lambda b, d: ["hash", str(b)],
    ],
)
def test_failures_exit_and_read_alike(make_args, bundle: Path, tmp_path: Path, ts_cli: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "array.json").write_text("[]")
    (tmp_path / "bad-window.json").write_text(json.dumps({"veto": {"config": {"escalation": {"window_seconds": "soon"}}}}))
    (tmp_path / "bad-shapes.json").write_text(
        json.dumps({"veto": {"config": {"tools": {"crm.read": 1}, "environments": "x", "tenants": {"a": {"approvers": [1]}}, "escalation": {"deny_threshold": -1}}}})
    )
    (tmp_path / "infinite.json").write_text('{"veto": {"config": {"tenants": {"a": {"max_amount": 1e400}}}}}')
    args = make_args(bundle, tmp_path)
    stdin = json.dumps(read_call()) + "\n"
    ts, py = run_ts_cli(args, stdin), run_python_cli(args, stdin)
    assert py.returncode == ts.returncode, (ts.stderr, py.stderr)
    assert parser_neutral(first_line(py.stderr)) == parser_neutral(first_line(ts.stderr))
    assert py.stdout == ts.stdout or ts.returncode == 0


def test_lines_are_split_and_decided_alike(bundle: Path, ts_cli: Path) -> None:
    call = json.dumps(read_call())
    text = f"{call}\r\n\r\n   \n{call}\r{json.dumps(write_call({'amount': 9000}))}\n\t\n{call}"
    ts = run_ts_cli(["eval", "--bundle", str(bundle)], text)
    py = run_python_cli(["eval", "--bundle", str(bundle)], text)
    def strip(out: str) -> list[dict[str, Any]]:
        decisions = [{k: v for k, v in json.loads(line).items() if k not in ("id", "timestamp")} for line in out.splitlines()]
        for d in decisions:
            d["reason"] = parser_neutral(d["reason"])
            d["reasons"] = [{**r, "message": parser_neutral(r["message"])} for r in d["reasons"]]
        return decisions

    assert strip(py.stdout) == strip(ts.stdout)
    # A line ends at "\n" only: the lone "\r" is JSON white space, so that line is two calls, not JSON.
    assert len(strip(py.stdout)) == 6


def test_a_records_path_that_is_not_a_regular_file_is_refused_alike(bundle: Path, ts_cli: Path) -> None:
    text = "\n".join(json.dumps(c) for c in [read_call(), write_call({"amount": 9000}), read_call()]) + "\n"
    args = ["eval", "--bundle", str(bundle), "--records", "/dev/full"]
    ts, py = run_ts_cli(args, text), run_python_cli(args, text)
    assert py.returncode == ts.returncode == 2 and py.stdout == ts.stdout == ""
    last = lambda err: [line for line in err.splitlines() if not line.startswith("{")]  # noqa: E731
    assert last(py.stderr) == last(ts.stderr) == ["veto: cannot open records file /dev/full: /dev/full is not a regular file (it is a character device)"]


def test_records_on_a_null_standard_error_deny_every_call_alike(bundle: Path, ts_cli: Path) -> None:
    # docs/contract.md §7: the null device keeps no record, so no call may proceed on its word.
    import subprocess

    from .conftest import ROOT

    text = "\n".join(json.dumps(c) for c in [read_call(), write_call({"amount": 9000}), read_call()]) + "\n"
    args = ["eval", "--bundle", str(bundle)]
    runs = []
    for command in (["node", str(ts_cli)], [sys.executable, "-m", "veto_crm"]):
        done = subprocess.run([*command, *args], input=text, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT / "adapter" / "python", timeout=120)
        runs.append((done.returncode, [(d["action"], d["reason"]) for d in map(json.loads, done.stdout.splitlines())]))
    assert runs[0] == runs[1]
    assert runs[0][0] == 2 and len(runs[0][1]) == 3
    assert all(action == "deny" and "it is the null device" in reason for action, reason in runs[0][1])


def test_the_record_key_comes_from_the_environment(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    call = json.dumps(write_call({"changes": {"ssn": "123"}})) + "\n"
    env = {"VETO_RECORD_KEY": "0123456789abcdef-deployment"}
    run_ts_cli(["eval", "--bundle", str(bundle), "--records", str(tmp_path / "ts.jsonl")], call, env)
    run_python_cli(["eval", "--bundle", str(bundle), "--records", str(tmp_path / "py.jsonl")], call, env)
    ts = json.loads((tmp_path / "ts.jsonl").read_text())
    py = json.loads((tmp_path / "py.jsonl").read_text())
    assert py["input"] == ts["input"] and py["input"]["arguments"]["changes"]["ssn"].startswith("hmac-sha256:")
    assert py["input_digest"] == ts["input_digest"]
