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
    # Without the signing key, neither writer appends to a log that holds checkpoints.
    for run in (run_python_cli, run_ts_cli):
        appended = run(["eval", "--bundle", str(bundle), "--log", str(path)], lines)
        assert appended.returncode == 2 and "holds signed checkpoints" in appended.stderr


def _kinds(path: Path) -> list[str]:
    """Each entry of a one-file log: "record" or the checkpoint's reason."""
    out = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        out.append(entry["checkpoint"]["reason"] if "checkpoint" in entry else "record")
    return out


def _verify_signed(path: Path, public: Path) -> None:
    """Both verifiers, with the key and every record covered: the same report, and it passes."""
    args = ["log", "verify", str(path), "--public-key", str(public), "--require-checkpointed"]
    ts, py = run_ts_cli(args), run_python_cli(args)
    assert ts.returncode == 0, ts.stderr
    assert (py.returncode, py.stdout, py.stderr) == (ts.returncode, ts.stdout, ts.stderr)
    assert "signature verified" in ts.stdout


def test_the_python_writer_signs_checkpoints_that_veto_log_verify_accepts(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    path = tmp_path / "py-signed.jsonl"
    private, public = _ed25519_pem(tmp_path, "signer")
    log = FileDecisionLog.open(path, checkpoint_key=private.read_bytes(), checkpoint_every=3, clock=lambda: 1_764_000_000_123)
    assert log.checkpoint_key_id is not None and log.checkpoint_key_id.startswith("ed25519:")
    with create_veto(bundle, record_sink=log) as veto:
        for i in range(7):
            veto.protect(read_call() if i % 2 else write_call({"amount": 100 + i}))
    log.close()
    log.close()  # twice: one close checkpoint
    assert _kinds(path) == ["open", "record", "record", "record", "interval", "record", "record", "record", "interval", "record", "close"]
    first = json.loads(path.read_text().splitlines()[0])["checkpoint"]
    assert first["seq"] == 0 and first["time"] == "2025-11-24T16:00:00.123Z" and first["key_id"] == log.checkpoint_key_id
    _verify_signed(path, public)
    # The TypeScript writer appends to it with the same key, and the Python one after it again.
    more = "\n".join(json.dumps(c) for c in [read_call(), read_call()]) + "\n"
    assert run_ts_cli(["eval", "--bundle", str(bundle), "--log", str(path), "--signing-key", str(private)], more).returncode == 0
    done = run_python_cli(["eval", "--bundle", str(bundle), "--log", str(path), "--signing-key", str(private), "--checkpoint-every", "1"], more)
    assert done.returncode == 0, done.stderr
    tail = _kinds(path)[11:]
    assert tail == ["open", "record", "record", "close", "open", "record", "interval", "record", "interval", "close"]
    _verify_signed(path, public)
    # One log id across both writers.
    assert len({json.loads(line)["checkpoint"]["log_id"] for line in path.read_text().splitlines() if '"checkpoint":' in line}) == 1


@pytest.mark.parametrize("seed", range(6))
def test_signed_rotation_verifies_for_generated_sizes(seed: int, tmp_path: Path, ts_cli: Path) -> None:
    """Record sizes, file limits and checkpoint intervals drawn from a seed (printed on failure): every file ends right and verifies."""
    import random

    rng = random.Random(20261130 + seed)
    path = tmp_path / f"rot-{seed}.jsonl"
    private, public = _ed25519_pem(tmp_path, "signer")
    max_bytes, every, count = rng.choice([700, 1500, 4000]), rng.randint(1, 5), rng.randint(5, 40)
    sessions = rng.randint(1, 3)
    for _ in range(sessions):
        with FileDecisionLog.open(path, max_bytes=max_bytes, checkpoint_key=private.read_text(), checkpoint_every=every) as log:
            for i in range(count):
                log.write({"type": "test", "i": i, "pad": "x" * rng.randint(0, 600)})
    assert verify_log([str(path)]).ok, f"seed {seed}"
    _verify_signed(path, public)
    files = [path, *sorted(tmp_path.glob(f"rot-{seed}.jsonl.*[0-9]"), key=lambda f: int(f.suffix[1:]))]
    for file in files[:-1]:
        # A file the log rotated away from ends with a rotation checkpoint naming its segment.
        last = json.loads(file.read_text().splitlines()[-1])
        assert last["checkpoint"]["reason"] == "rotation", (seed, file)
    assert json.loads(files[-1].read_text().splitlines()[-1])["checkpoint"]["reason"] == "close"


def test_signing_refusals_and_checks_on_open(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    from veto_crm import DecisionLogError

    path = tmp_path / "refusals.jsonl"
    private, public = _ed25519_pem(tmp_path, "signer")
    other, _ = _ed25519_pem(tmp_path, "other")
    for bad, words in [(public.read_bytes(), "must be a private key"), (b"not a key", "not a usable private key"), (b"", "not a usable private key")]:
        with pytest.raises(DecisionLogError, match=words) as raised:
            FileDecisionLog.open(path, checkpoint_key=bad)
        assert raised.value.code == "invalid_options"
    assert not path.exists() and not (tmp_path / "refusals.jsonl.lock").exists()
    for every in (0, -1, 1.5, True):
        with pytest.raises(DecisionLogError, match="checkpoint_every"):
            FileDecisionLog.open(path, checkpoint_key=private.read_bytes(), checkpoint_every=every)  # type: ignore[arg-type]
    with FileDecisionLog.open(path, checkpoint_key=private.read_bytes()) as log:
        log.write({"type": "test"})
    # A log that holds checkpoints needs a key: the same code as the TypeScript writer's.
    with pytest.raises(DecisionLogError) as raised:
        FileDecisionLog.open(path)
    assert raised.value.code == "checkpoint_key_required"
    # Another key may continue it (key rotation): verifiers then need both public keys.
    with FileDecisionLog.open(path, checkpoint_key=other.read_bytes()) as log:
        log.write({"type": "test"})
    assert verify_log([str(path)]).ok
    # A record appended after the close checkpoint by something without the key is refused on open.
    entries = path.read_text().splitlines()
    last = json.loads(entries[-1])
    from veto_crm.log import seal_record

    forged = seal_record({"type": "test", "forged": True}, last["seq"] + 1, last["hash"])
    path.write_text("\n".join(entries + [forged.text]) + "\n")
    with pytest.raises(LogCorruptError, match="written without the signing key, or forged"):
        FileDecisionLog.open(path, checkpoint_key=private.read_bytes())


def test_the_python_cli_checks_signing_options_as_the_typescript_one(bundle: Path, tmp_path: Path, ts_cli: Path) -> None:
    private, _ = _ed25519_pem(tmp_path, "signer")
    log = str(tmp_path / "cli.jsonl")
    cases = [
        ["--signing-key", str(private)],
        ["--checkpoint-every", "2"],
        ["--log", log, "--checkpoint-every", "2"],
        ["--log", log, "--signing-key", str(private), "--checkpoint-every", "0"],
        ["--log", log, "--signing-key", str(private), "--checkpoint-every", "1e3"],
        ["--log", log, "--signing-key", str(private), "--checkpoint-every", "-2"],
    ]
    for extra in cases:
        args = ["eval", "--bundle", str(bundle), *extra]
        ts, py = run_ts_cli(args), run_python_cli(args)
        assert ts.returncode == 2 and py.returncode == 2, extra
        # Usage errors: the same first line (the usage text that follows names each CLI).
        assert py.stderr.splitlines()[0] == ts.stderr.splitlines()[0], extra
    assert not (tmp_path / "cli.jsonl").exists()
    too_big = tmp_path / "big.pem"
    too_big.write_bytes(b"x" * (1024 * 1024 + 1))
    done = run_python_cli(["eval", "--bundle", str(bundle), "--log", log, "--signing-key", str(too_big)])
    assert done.returncode == 2 and "larger than 1048576 bytes" in done.stderr


@pytest.mark.parametrize("seed", range(4))
def test_a_signing_writer_killed_mid_write_reopens_covered(seed: int, tmp_path: Path, ts_cli: Path) -> None:
    """SIGKILL at a seeded moment: reopening with the key repairs the tail and vouches for every record with an open checkpoint."""
    import random
    import signal
    import subprocess
    import sys
    import time

    rng = random.Random(4242 + seed)
    path = tmp_path / "killed.jsonl"
    private, public = _ed25519_pem(tmp_path, "signer")
    script = (
        "import sys\n"
        "from veto_crm import FileDecisionLog\n"
        "log = FileDecisionLog.open(sys.argv[1], max_bytes=3000, checkpoint_key=open(sys.argv[2], 'rb').read(), checkpoint_every=4)\n"
        "i = 0\n"
        "while True:\n"
        "    log.write({'type': 'test', 'i': i, 'pad': 'y' * (i % 300)})\n"
        "    i += 1\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(path), str(private)])
    try:
        deadline = time.monotonic() + 30
        while not (path.exists() and path.read_bytes().count(b"\n") >= 5) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.random() * 0.4)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with FileDecisionLog.open(path, max_bytes=3000, checkpoint_key=private.read_bytes()) as log:
        assert log.recovery.records > 0, f"seed {seed}"
    _verify_signed(path, public)
