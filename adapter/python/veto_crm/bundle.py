"""
Bundle loading, as the TypeScript adapter does it (adapter/bundle.ts,
adapter/bundle-hash.ts): read the tarball, verify its signature when a key is
configured, check the manifest names our entrypoint and its module is
present, parse data.json, and compute the version hash.

The version hash: every regular file of the tarball, its name normalised by
stripping leading "./" and "/" segments, ".signatures.json" excluded, sorted
by the UTF-8 bytes of the name; SHA-256 over, for each file in turn,
``name "\\n" byteLength "\\n" content``. Printed as "sha256:" + 64 hex digits.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from .text import node_error_message
from .errors import BundleLoadError
from .files import read_regular_file

if TYPE_CHECKING:
    from .signature import BundleVerifier

DECISION_ENTRYPOINT = "veto/crm/decision"
#: What the policy derives from the data document alone: evaluated once per instance and stored at
#: data.veto.derived (policy/veto/crm/derived.rego; evaluator.py).
DERIVED_ENTRYPOINT = "veto/crm/derived"
#: Largest total of file contents a bundle may unpack to (guards against gzip bombs).
MAX_BUNDLE_UNPACKED_BYTES = 64 * 1024 * 1024
SIGNATURES_FILE = ".signatures.json"

_LEADING = re.compile(r"^(?:\./|/)+")


@dataclass(frozen=True)
class BundleFile:
    name: str
    content: bytes


@dataclass(frozen=True)
class BundleVersion:
    revision: str
    #: "sha256:" followed by 64 lowercase hex digits.
    hash: str

    def to_json(self) -> dict[str, str]:
        return {"revision": self.revision, "hash": self.hash}


@dataclass(frozen=True)
class LoadedBundle:
    version: BundleVersion
    wasm: bytes
    #: The bundle's own data document ({} when it ships none).
    data: dict[str, Any]


def normalise_bundle_path(name: str) -> str:
    return _LEADING.sub("", name)


def read_tarball(data: bytes, max_unpacked_bytes: int = MAX_BUNDLE_UNPACKED_BYTES) -> list[BundleFile]:
    """The regular files of a .tar.gz (or plain .tar), names normalised. Refuses duplicate names and archives over the limit."""
    if len(data) == 0:
        return []  # an empty archive, as tar-stream reads it
    mode = "r|gz" if data[:2] == b"\x1f\x8b" else "r|"
    files: dict[str, bytes] = {}
    total = 0
    with tarfile.open(fileobj=io.BytesIO(data), mode=mode) as archive:  # type: ignore[call-overload]
        for member in archive:
            total += member.size
            if total > max_unpacked_bytes:
                raise ValueError(f"bundle unpacks to more than {max_unpacked_bytes} bytes")
            if not (member.isreg() or member.type == tarfile.CONTTYPE):
                continue
            stream = archive.extractfile(member)
            content = stream.read() if stream is not None else b""
            name = normalise_bundle_path(member.name)
            if name == "":
                continue
            if name in files:
                raise ValueError(f"bundle holds {name} twice")
            files[name] = content
    return [BundleFile(name, content) for name, content in files.items()]


def bundle_version_hash(files: list[BundleFile]) -> str:
    hashed = sorted(
        ((normalise_bundle_path(f.name).encode("utf-8"), f.content) for f in files if normalise_bundle_path(f.name) != SIGNATURES_FILE),
        key=lambda item: item[0],
    )
    digest = hashlib.sha256()
    for name, content in hashed:
        digest.update(name)
        digest.update(f"\n{len(content)}\n".encode("ascii"))
        digest.update(content)
    return f"sha256:{digest.hexdigest()}"


def bundle_version_hash_of_tarball(data: bytes) -> str:
    return bundle_version_hash(read_tarball(data))


def _unusable(message: str) -> BundleLoadError:
    return BundleLoadError("bundle_unusable", message)


def _parse_json_file(name: str, content: bytes) -> Any:
    from .jsontext import JsonParseError, parse

    try:
        return parse(content.decode("utf-8", "replace"))
    except JsonParseError as error:
        raise _unusable(f"bundle file {name} is not valid JSON: {error}") from None


def _manifest_problem(manifest: Any) -> Optional[str]:
    """The manifest schema of bundle.ts: revision string, roots strings, rego_version number, wasm [{entrypoint, module}]."""
    if not isinstance(manifest, dict):
        return "expected object"
    if "revision" in manifest and not isinstance(manifest["revision"], str):
        return "revision: expected string"
    roots = manifest.get("roots")
    if "roots" in manifest and not (isinstance(roots, list) and all(isinstance(r, str) for r in roots)):
        return "roots: expected array of strings"
    version = manifest.get("rego_version")
    if "rego_version" in manifest and (isinstance(version, bool) or not isinstance(version, (int, float))):
        return "rego_version: expected number"
    wasm = manifest.get("wasm")
    if "wasm" in manifest:
        if not isinstance(wasm, list):
            return "wasm: expected array"
        for i, entry in enumerate(wasm):
            if not isinstance(entry, dict) or not isinstance(entry.get("entrypoint"), str) or not isinstance(entry.get("module"), str):
                return f"wasm.{i}: expected {{entrypoint: string, module: string}}"
    return None


def load_bundle(source: Union[str, Path, bytes], verifier: Optional["BundleVerifier"] = None) -> LoadedBundle:
    """Read and check a bundle; raises BundleLoadError, or BundleSignatureError when ``verifier`` refuses it."""
    label = str(source) if isinstance(source, (str, Path)) else "<bundle bytes>"
    if isinstance(source, (str, Path)):
        try:
            data = read_regular_file(str(source))
        except OSError as error:
            raise _unusable(f"cannot read bundle {label}: {node_error_message(error)}") from None
    else:
        data = bytes(source)
    try:
        files = read_tarball(data)
    except Exception as error:
        raise _unusable(f"bundle {label} is not a readable .tar.gz: {error}") from None
    # Before anything of the bundle is read or trusted.
    if verifier is not None:
        from .signature import verify_bundle_signature

        verify_bundle_signature(files, verifier)
    by_name = {f.name: f.content for f in files}

    manifest_bytes = by_name.get(".manifest")
    if manifest_bytes is None:
        raise _unusable(f"bundle {label} has no .manifest")
    manifest = _parse_json_file(".manifest", manifest_bytes)
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise _unusable(f"bundle {label} has a malformed .manifest: {problem}")

    entry = next((w for w in manifest.get("wasm", []) if w["entrypoint"] == DECISION_ENTRYPOINT), None)
    if entry is None:
        raise _unusable(f"bundle {label} .manifest lists no wasm module for entrypoint {DECISION_ENTRYPOINT}")
    wasm = by_name.get(normalise_bundle_path(entry["module"]))
    if wasm is None:
        raise _unusable(f"bundle {label} lacks its wasm module {entry['module']}")

    data_bytes = by_name.get("data.json")
    document = {} if data_bytes is None else _parse_json_file("data.json", data_bytes)
    if not isinstance(document, dict):
        raise _unusable(f"bundle {label} data.json is not a JSON object")
    return LoadedBundle(BundleVersion(manifest.get("revision", ""), bundle_version_hash(files)), wasm, document)
