"""
Signed bundles: signed by the real ``opa`` (scripts/sign-bundle.sh) with the
committed TEST-ONLY keys, then altered in every way a bundle can be. Each one
must be refused by veto_crm exactly as the TypeScript adapter refuses it:
the same check, the same file, the same one-line message from ``hash
--verification-key`` (both command lines), and a veto that loads only what
verifies.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Callable, Optional

import pytest

from veto_crm import BundleSignatureError, VerificationKey, VetoOptionsError, create_veto, load_bundle
from veto_crm.bundle import BundleFile, bundle_version_hash, read_tarball
from veto_crm.signature import create_bundle_verifier

from .conftest import KEYS, ROOT, run_python_cli, run_ts_cli

ES_PRIVATE = KEYS / "TEST-ONLY-es256-private.pem"
ES_PUBLIC = KEYS / "TEST-ONLY-es256-public.pem"
RS_PRIVATE = KEYS / "TEST-ONLY-rs256-private.pem"
RS_PUBLIC = KEYS / "TEST-ONLY-rs256-public.pem"


def sign(bundle: Path, key: Path, alg: str, out: Path) -> bytes:
    subprocess.run(["bash", str(ROOT / "scripts/sign-bundle.sh"), str(key), alg, str(bundle), str(out)], check=True, capture_output=True)
    return out.read_bytes()


def repack(files: list[BundleFile], prefix: str = "/") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for f in files:
            info = tarfile.TarInfo(prefix + f.name)
            info.size = len(f.content)
            info.mode = 0o600
            archive.addfile(info, io.BytesIO(f.content))
    return gzip.compress(raw.getvalue())


def with_file(data: bytes, name: str, content: Optional[bytes]) -> bytes:
    files = [f for f in read_tarball(data) if f.name != name]
    if content is not None:
        files.append(BundleFile(name, content))
    return repack(files)


def flipped(name: str, content: bytes) -> bytes:
    copy = bytearray(content)
    at = copy.find(b"veto") + 1 if name.endswith((".json", ".manifest")) else len(copy) - 1
    copy[at] ^= 0x01
    return bytes(copy)


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def token_parts(data: bytes) -> tuple[dict[str, object], dict[str, object], str]:
    signatures = next(f for f in read_tarball(data) if f.name == ".signatures.json").content
    token = json.loads(signatures)["signatures"][0]
    h, p, s = token.split(".")
    pad = lambda t: t + "=" * (-len(t) % 4)  # noqa: E731
    return json.loads(base64.urlsafe_b64decode(pad(h))), json.loads(base64.urlsafe_b64decode(pad(p))), s


def signatures_json(header: object, payload: object, signature: str) -> bytes:
    return json.dumps({"signatures": [f"{b64(header)}.{b64(payload)}.{signature}"]}).encode()


@pytest.fixture(scope="module")
def signed(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    tmp = tmp_path_factory.mktemp("signed")
    return {"es256": sign(bundle, ES_PRIVATE, "ES256", tmp / "es.tar.gz"), "rs256": sign(bundle, RS_PRIVATE, "RS256", tmp / "rs.tar.gz")}


Alteration = Callable[[dict[str, bytes]], tuple[bytes, Path, str, Optional[str]]]


def _tampered_wasm(s: dict[str, bytes]) -> tuple[bytes, Path, str, Optional[str]]:
    wasm = next(f for f in read_tarball(s["es256"]) if f.name == "policy.wasm").content
    return with_file(s["es256"], "policy.wasm", flipped("policy.wasm", wasm)), ES_PUBLIC, "file_hash", "policy.wasm"


def _tampered_data(s: dict[str, bytes]) -> tuple[bytes, Path, str, Optional[str]]:
    data = next(f for f in read_tarball(s["es256"]) if f.name == "data.json").content
    return with_file(s["es256"], "data.json", flipped("data.json", data)), ES_PUBLIC, "file_hash", "data.json"


def _reformatted_data(s: dict[str, bytes]) -> tuple[bytes, Path, str, Optional[str]]:
    # Structured files hash as canonical JSON: white space and key order do not matter.
    data = json.loads(next(f for f in read_tarball(s["es256"]) if f.name == "data.json").content)
    return with_file(s["es256"], "data.json", json.dumps(data, indent=3).encode()), ES_PUBLIC, "", None


def _alg_none(s: dict[str, bytes]) -> tuple[bytes, Path, str, Optional[str]]:
    header, payload, _ = token_parts(s["es256"])
    return with_file(s["es256"], ".signatures.json", signatures_json({**header, "alg": "none"}, payload, "")), ES_PUBLIC, "algorithm", None


def _forged_payload(s: dict[str, bytes]) -> tuple[bytes, Path, str, Optional[str]]:
    header, payload, signature = token_parts(s["es256"])
    return with_file(s["es256"], ".signatures.json", signatures_json(header, {**payload, "scope": "x"}, signature)), ES_PUBLIC, "signature", None


CASES: dict[str, Alteration] = {
    "signed ES256, right key": lambda s: (s["es256"], ES_PUBLIC, "", None),
    "signed RS256, right key": lambda s: (s["rs256"], RS_PUBLIC, "", None),
    "signed ES256, data.json reformatted": _reformatted_data,
    "unsigned": lambda s: (with_file(s["es256"], ".signatures.json", None), ES_PUBLIC, "unsigned", None),
    "wrong key (RSA key, ES256 token)": lambda s: (s["es256"], RS_PUBLIC, "algorithm", None),
    "wrong key (another RS256 key)": lambda s: (s["rs256"], RS_PRIVATE_OTHER, "signature", None),
    "tampered policy.wasm": _tampered_wasm,
    "tampered data.json": _tampered_data,
    "extra file": lambda s: (with_file(s["es256"], "policy/extra.rego", b"package x\n"), ES_PUBLIC, "file_unlisted", "policy/extra.rego"),
    "removed file": lambda s: (with_file(s["es256"], "data.json", None), ES_PUBLIC, "file_missing", "data.json"),
    "alg none": _alg_none,
    "payload altered": _forged_payload,
    "signatures file not JSON": lambda s: (with_file(s["es256"], ".signatures.json", b"{"), ES_PUBLIC, "signatures_file", None),
    "two tokens": lambda s: (with_file(s["es256"], ".signatures.json", b'{"signatures":["a.b.c","d.e.f"]}'), ES_PUBLIC, "signatures_file", None),
    "not a JWS": lambda s: (with_file(s["es256"], ".signatures.json", b'{"signatures":["abc"]}'), ES_PUBLIC, "token", None),
}

RS_PRIVATE_OTHER = Path("<generated>")


@pytest.fixture(scope="module")
def other_rsa_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("keys") / "other-rsa-public.pem"
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_refusals_match_the_typescript_adapter(name: str, signed: dict[str, bytes], other_rsa_key: Path, tmp_path: Path, ts_cli: Path) -> None:
    data, key, check, file = CASES[name](signed)
    if key == RS_PRIVATE_OTHER:
        key = other_rsa_key
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(data)
    ts = run_ts_cli(["hash", str(path), "--verification-key", str(key)])
    py = run_python_cli(["hash", str(path), "--verification-key", str(key)])
    assert (py.returncode, py.stdout, parser_neutral(py.stderr)) == (ts.returncode, ts.stdout, parser_neutral(ts.stderr))
    verifier = create_bundle_verifier(key.read_text())
    if check == "":
        assert ts.returncode == 0
        loaded = load_bundle(data, verifier)
        # .signatures.json is not part of the version hash: signing keeps it.
        assert loaded.version.hash == bundle_version_hash([f for f in read_tarball(data) if f.name != ".signatures.json"])
        with create_veto(data, verification_key=key.read_text(), record_sink=_NullSink()) as veto:
            assert veto.bundle.hash == loaded.version.hash
    else:
        assert ts.returncode == 2 and f"({check})" in ts.stderr
        with pytest.raises(BundleSignatureError) as refused:
            load_bundle(data, verifier)
        assert refused.value.code == "bundle_signature"
        assert refused.value.check == check
        assert refused.value.file == file
        with pytest.raises(BundleSignatureError):
            create_veto(data, verification_key=key.read_text(), record_sink=_NullSink())
        # The command line refuses it too, before reading a line.
        run = run_python_cli(["eval", "--bundle", str(path), "--verification-key", str(key)], "{}\n")
        assert run.returncode == 2 and run.stdout == "" and f"({check})" in run.stderr


def parser_neutral(message: str) -> str:
    """V8's and Python's JSON parsers word their errors differently; everything else must be the same."""
    return re.sub(r"(is not JSON): .*", r"\1: <parser message>", message)


class _NullSink:
    def write(self, record: object) -> None:
        pass


def test_key_rotation_any_listed_key_verifies(signed: dict[str, bytes]) -> None:
    verifier = create_bundle_verifier([RS_PUBLIC.read_text(), ES_PUBLIC.read_text()])
    assert load_bundle(signed["es256"], verifier).version.hash.startswith("sha256:")
    assert load_bundle(signed["rs256"], verifier).version.hash.startswith("sha256:")


def test_a_pinned_algorithm_and_scope_are_enforced(signed: dict[str, bytes]) -> None:
    with pytest.raises(BundleSignatureError) as refused:
        load_bundle(signed["rs256"], create_bundle_verifier(VerificationKey(RS_PUBLIC.read_text(), "PS256")))
    assert refused.value.check == "algorithm"
    with pytest.raises(BundleSignatureError) as scoped:
        load_bundle(signed["es256"], create_bundle_verifier(VerificationKey(ES_PUBLIC.read_text(), scope="prod")))
    assert scoped.value.check == "scope"


def test_unusable_keys_are_programmer_errors() -> None:
    for bad in ("not a pem", VerificationKey(ES_PUBLIC.read_text(), "RS256"), VerificationKey("secret", "HS999"), [], VerificationKey("", "HS256")):
        with pytest.raises(VetoOptionsError):
            create_bundle_verifier(bad)  # type: ignore[arg-type]


def test_hmac_signed_bundle(bundle: Path) -> None:
    import hashlib
    import hmac

    from veto_crm.signature import hash_file

    files = read_tarball(bundle.read_bytes())
    payload = {"files": [{"name": f.name, "hash": hash_file(f.name, f.content).hex(), "algorithm": "SHA-256"} for f in files]}
    header = {"alg": "HS256", "typ": "JWT"}
    signing_input = f"{b64(header)}.{b64(payload)}"
    mac = base64.urlsafe_b64encode(hmac.new(b"a shared secret!", signing_input.encode(), hashlib.sha256).digest()).decode().rstrip("=")
    data = repack([*files, BundleFile(".signatures.json", json.dumps({"signatures": [f"{signing_input}.{mac}"]}).encode())])
    assert load_bundle(data, create_bundle_verifier(VerificationKey("a shared secret!", "HS256"))).version.revision
    with pytest.raises(BundleSignatureError) as refused:
        load_bundle(data, create_bundle_verifier(VerificationKey("another secret!!", "HS256")))
    assert refused.value.check == "signature"
