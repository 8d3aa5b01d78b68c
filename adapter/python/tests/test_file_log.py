"""
The file decision log: a log written by veto_crm passes the TypeScript
``veto log verify``, a log written by the TypeScript adapter passes
veto_crm's, and every kind of tampering is caught by both with the same
words; the two writers exclude each other through the same lock file.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from veto_crm import FileDecisionLog, LogCorruptError, LogLockedError, RecordUnavailableError, create_veto, verify_log
from veto_crm.log import read_log

from .conftest import ACTOR, APPROVER, FakeClock, read_call, run_python_cli, run_ts_cli, write_call


def verify_both(*paths: Path) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    args = ["log", "verify", *map(str, paths)]
    ts, py = run_ts_cli(args), run_python_cli(args)
    return (ts.returncode, ts.stdout, ts.stderr), (py.returncode, py.stdout, py.stderr)


def python_log(path: Path, bundle: Path, calls: int = 12, max_bytes: int = 64 * 1024 * 1024) -> None:
    clock = FakeClock()
    log = FileDecisionLog.open(path, max_bytes=max_bytes)
    with create_veto(bundle, record_sink=log, clock=clock, record_key="a-record-key-of-16+bytes") as veto:
        for i in range(calls):
            clock.advance(1000)
            decision = veto.protect(write_call({"amount": 9000 + i, "changes": {"ssn": f"{i}"}}) if i % 3 == 0 else read_call())
            if decision.action == "require_approval" and i % 2 == 0:
                veto.approve(decision.id, APPROVER, "ok")
            elif decision.action == "require_approval":
                veto.reject(decision.id, APPROVER)
        veto.protect({"tool": "crm.read", "arguments": {"note": "é \u2028 \U0001F600"}, "context": {"actorId": ACTOR, "tenantId": "acme", "environment": "production"}})
    log.close()


def test_a_python_log_passes_veto_log_verify(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    python_log(path, bundle)
    ts, py = verify_both(path)
    assert ts[0] == 0, ts[2]
    assert py == ts
    assert ts[1].startswith(f"{path}: 17 records, head sha256:")
    records = read_log([str(path)])
    assert [r["type"] for r in records].count("approval") == 2
    assert [r["type"] for r in records].count("rejection") == 2
    assert all(r["input_digest"].startswith("hmac-sha256:") for r in records if r["type"] == "decision")


def test_rotation_continues_the_chain_across_files(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "rotating.jsonl"
    python_log(path, bundle, calls=20, max_bytes=4096)
    assert (tmp_path / "rotating.jsonl.3").exists()
    ts, py = verify_both(path)
    assert ts[0] == 0 and py == ts
    assert "files)" in ts[1]
    # A shell glob lists PATH.10 before PATH.2: continuations given beside PATH are folded into it.
    ts_glob, py_glob = verify_both(*sorted(tmp_path.glob("rotating.jsonl*")))
    assert py_glob == ts_glob == ts


def test_a_typescript_log_passes_veto_crm_verify_and_can_be_appended_to(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "ts.jsonl"
    lines = "\n".join(json.dumps(c) for c in [read_call(), write_call({"amount": 9000}), "{bad"]) + "\n"
    assert run_ts_cli(["eval", "--bundle", str(bundle), "--log", str(path)], lines).returncode == 0
    assert verify_log([str(path)]).count == 3
    # Python continues the chain the TypeScript writer started; TypeScript verifies the whole.
    assert run_python_cli(["eval", "--bundle", str(bundle), "--log", str(path)], lines).returncode == 0
    assert run_ts_cli(["eval", "--bundle", str(bundle), "--log", str(path)], lines).returncode == 0
    ts, py = verify_both(path)
    assert ts[0] == 0 and py == ts
    assert ": 9 records," in ts[1]


def _tamper_cases(text: str) -> dict[str, str]:
    lines = text.splitlines(keepends=True)
    record = json.loads(lines[2])
    record["result"]["action"] = "deny" if record["result"].get("action") != "deny" else "allow"
    edited = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    return {
        "edited field": "".join(lines[:2] + [edited] + lines[3:]),
        "deleted line": "".join(lines[:2] + lines[3:]),
        "swapped lines": "".join(lines[:2] + [lines[3], lines[2]] + lines[4:]),
        "torn final line": text[:-20],
        "reformatted line": "".join(lines[:2] + [json.dumps(json.loads(lines[2]), indent=1).replace("\n", "") + "\n"] + lines[3:]),
        "not JSON": "".join(lines[:2] + ["{oops\n"] + lines[3:]),
        "blank line": "".join(lines[:2] + ["\n"] + lines[2:]),
        "invalid UTF-8": "".join(lines[:2] + [lines[2].replace('"decision"', '"d\udcffcision"', 1)] + lines[3:]),
        "first line removed": "".join(lines[1:]),
        "byte order mark": "\ufeff" + text,
        "CRLF line ends": text.replace("\n", "\r\n"),
        "control byte": "".join(lines[:2] + [lines[2][:-1] + "\x0b\n"] + lines[3:]),
    }


TAMPER_CASES = [
    "edited field", "deleted line", "swapped lines", "torn final line", "reformatted line",
    "not JSON", "blank line", "invalid UTF-8", "first line removed",
    "byte order mark", "CRLF line ends", "control byte",
]  # fmt: skip


@pytest.mark.parametrize("case", TAMPER_CASES)
def test_tampering_is_caught_the_same_way(case: str, bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    python_log(path, bundle, calls=6)
    text = path.read_text(encoding="utf-8")
    tampered = _tamper_cases(text)[case]
    path.write_bytes(tampered.encode("utf-8", "surrogateescape"))
    ts, py = verify_both(path)
    assert ts[0] == 1, ts
    assert py == ts
    with pytest.raises(LogCorruptError if case != "torn final line" else LogCorruptError):
        read_log([str(path)])


def test_a_torn_final_line_is_cut_off_when_the_log_is_opened(bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    python_log(path, bundle, calls=3)
    whole = verify_log([str(path)])
    path.write_bytes(path.read_bytes() + b'{"half a rec')
    log = FileDecisionLog.open(path)
    assert log.recovery.torn_tail == "truncated"
    assert log.head == whole.head
    log.close()
    assert verify_log([str(path)]) == whole


def test_one_writer_per_log_across_languages(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "locked.jsonl"
    log = FileDecisionLog.open(path)
    try:
        ts = run_ts_cli(["eval", "--bundle", str(bundle), "--log", str(path)], "")
        assert ts.returncode == 2 and "is already being written by process" in ts.stderr
        with pytest.raises(LogLockedError):
            FileDecisionLog.open(path)
    finally:
        log.close()
    assert not Path(f"{path}.lock").exists()


def test_records_without_a_canonical_form_are_refused_and_the_log_stays_usable(tmp_path: Path) -> None:
    log = FileDecisionLog.open(tmp_path / "log.jsonl")
    with pytest.raises(RecordUnavailableError) as refused:
        log.write({"type": "decision", "bad": float("nan")})
    assert refused.value.code == "record_invalid"
    with pytest.raises(RecordUnavailableError):
        log.write({"seq": 1})
    assert log.write({"type": "decision", "ok": True}).seq == 1
    log.close()
    with pytest.raises(RecordUnavailableError) as closed:
        log.write({"type": "late"})
    assert closed.value.code == "record_unavailable"


def test_concurrent_writers_share_syncs_and_keep_the_chain(tmp_path: Path) -> None:
    log = FileDecisionLog.open(tmp_path / "log.jsonl")
    seqs: list[int] = []

    def work(n: int) -> None:
        for i in range(50):
            seqs.append(log.write({"type": "decision", "thread": n, "i": i}).seq)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    assert sorted(seqs) == list(range(1, 201))
    assert verify_log([str(tmp_path / "log.jsonl")]).count == 200


def test_a_failed_sink_denies_with_record_unavailable_and_keeps_the_deny_on_file(bundle: Path, tmp_path: Path) -> None:
    class Failing:
        def __init__(self) -> None:
            self.records: list[dict[str, object]] = []
            self.fail = True

        def write(self, record: dict[str, object]) -> None:
            if self.fail:
                self.fail = False
                raise OSError("disk full")
            self.records.append(record)

    sink = Failing()
    with create_veto(bundle, record_sink=sink) as veto:
        decision = veto.protect(read_call())
    assert decision.action == "deny"
    assert [r.code for r in decision.reasons] == ["record_unavailable"]
    assert "disk full" in decision.reason
    assert sink.records[0]["result"]["reasons"][0]["code"] == "record_unavailable"  # type: ignore[index]


def _ed25519_pem(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    private, public = tmp_path / f"{name}.pem", tmp_path / f"{name}.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def test_checkpoints_written_by_typescript_verify_alike(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "signed.jsonl"
    private, public = _ed25519_pem(tmp_path, "signer")
    _, stranger = _ed25519_pem(tmp_path, "stranger")
    lines = "\n".join(json.dumps(c) for c in [read_call(), write_call({"amount": 9000}), "{bad", read_call()]) + "\n"
    done = run_ts_cli(["eval", "--bundle", str(bundle), "--log", str(path), "--signing-key", str(private), "--checkpoint-every", "2"], lines)
    assert done.returncode == 0, done.stderr
    assert any('"checkpoint":' in line for line in path.read_text().splitlines())
    for extra in ([], ["--public-key", str(public)], ["--public-key", str(public), "--require-checkpointed"], ["--public-key", str(stranger)]):
        args = ["log", "verify", str(path), *extra]
        ts, py = run_ts_cli(args), run_python_cli(args)
        assert (py.returncode, py.stdout, py.stderr) == (ts.returncode, ts.stdout, ts.stderr), extra
    assert run_ts_cli(["log", "verify", str(path), "--public-key", str(stranger)]).returncode == 1
    assert "signature verified" in run_python_cli(["log", "verify", str(path), "--public-key", str(public)]).stdout
    # replay reads records only: the checkpoints are checked and left out.
    assert [r["type"] for r in read_log([str(path)])] == ["decision"] * 4
    # A forged checkpoint (its signature bytes changed, the chain resealed around it) fails with the key.
    entries = path.read_text().splitlines()
    at = next(i for i, line in enumerate(entries) if '"checkpoint":' in line and '"reason":"interval"' in line)
    signature = json.loads(entries[at])["checkpoint"]["signature"]
    forged = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    tampered = tmp_path / "forged.jsonl"
    tampered.write_text("\n".join(entries).replace(signature, forged) + "\n")
    args = ["log", "verify", str(tampered), "--public-key", str(public)]
    ts, py = run_ts_cli(args), run_python_cli(args)
    assert ts.returncode == 1 and (py.returncode, py.stdout, py.stderr) == (ts.returncode, ts.stdout, ts.stderr)
    # The Python writer cannot sign, so it refuses to append to a log that holds checkpoints.
    appended = run_python_cli(["eval", "--bundle", str(bundle), "--log", str(path)], lines)
    assert appended.returncode == 2 and "holds signed checkpoints" in appended.stderr
