"""
Bundle signature verification in OPA's own format, as the TypeScript adapter
does it (adapter/signature.ts): the same algorithms, the same checks in the
same order, the same refusals.

A signed bundle holds ``/.signatures.json``: ``{"signatures": [JWT]}``,
exactly one JWS compact token whose payload lists every other file of the
bundle as ``{name, hash, algorithm}``. OPA hashes ordinary files as their
bytes and "structured" files (data.json, data.yaml, .manifest) as a canonical
form of their JSON (see ``hash_file``).

A bundle passes only when: the token verifies under a configured key with an
algorithm that key may use, its scope is the configured one, the file list is
exactly the bundle's files and every file's hash matches. Anything else
raises a BundleSignatureError naming the check and, where there is one, the
file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, NoReturn, Optional, Sequence, Union

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from .bundle import SIGNATURES_FILE, BundleFile, normalise_bundle_path
from .errors import BundleSignatureCheck, BundleSignatureError, VetoOptionsError
from .jsontext import JsonParseError, parse, stringify

SigningAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"
]
SIGNING_ALGORITHMS: tuple[str, ...] = (
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512",
    "HS256", "HS384", "HS512",
)  # fmt: skip

#: File hash algorithms accepted in the payload (OPA's names). MD5 and SHA-1 are refused as broken.
FILE_HASHES = {"SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}
_HASH_OF_ALG: dict[str, type[hashes.HashAlgorithm]] = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}
_EC_CURVES = {"secp256r1": ("ES256", "P-256", 32), "secp384r1": ("ES384", "P-384", 48), "secp521r1": ("ES512", "P-521", 66)}
MIN_RSA_BITS = 2048

PublicKey = Union[rsa.RSAPublicKey, ec.EllipticCurvePublicKey]


@dataclass(frozen=True)
class VerificationKey:
    """
    One verification key: PEM text (str or bytes) of a public key (or a private
    key, whose public half is used); with ``algorithm`` HS*, the HMAC secret
    itself. ``algorithm``: the one algorithm tokens must use (default: any the
    key's type allows). ``scope``: what the token's scope claim must equal
    (default "": the token must carry no scope).
    """

    key: Union[str, bytes]
    algorithm: Optional[str] = None
    scope: Optional[str] = None


VerificationKeyInput = Union[str, bytes, VerificationKey, "dict[str, Any]"]


@dataclass(frozen=True)
class VerifierKey:
    key: Union[PublicKey, bytes]
    algorithms: frozenset[str]
    scope: str
    #: For messages: "RSA public key", "EC P-256 public key", "HMAC secret".
    description: str


@dataclass(frozen=True)
class BundleVerifier:
    """The keys a bundle may be signed with (more than one while a signing key is rotated)."""

    keys: tuple[VerifierKey, ...] = field(default_factory=tuple)


def create_bundle_verifier(source: Union[VerificationKeyInput, Sequence[VerificationKeyInput]]) -> BundleVerifier:
    """Parse and check the verification key, or keys. Raises VetoOptionsError for anything unusable."""
    inputs: list[Any] = list(source) if isinstance(source, (list, tuple)) else [source]
    if not inputs:
        raise VetoOptionsError("verification_key: the list of keys is empty")
    return BundleVerifier(tuple(_verifier_key(i) for i in inputs))


def _verifier_key(given: Any) -> VerifierKey:
    if isinstance(given, dict):
        unknown = set(given) - {"key", "algorithm", "scope"}
        if unknown or "key" not in given:
            raise VetoOptionsError("verification_key must be PEM text or bytes, a VerificationKey, or {key, algorithm?, scope?}")
        given = VerificationKey(given["key"], given.get("algorithm"), given.get("scope"))
    spec = given if isinstance(given, VerificationKey) else VerificationKey(given)
    wanted = spec.algorithm
    if wanted is not None and wanted not in SIGNING_ALGORITHMS:
        raise VetoOptionsError(f"verification_key.algorithm {wanted} is not one of {', '.join(SIGNING_ALGORITHMS)}")
    if spec.scope is not None and not isinstance(spec.scope, str):
        raise VetoOptionsError("verification_key.scope must be a string")
    if not isinstance(spec.key, (str, bytes)):
        raise VetoOptionsError("verification_key is not a usable key: it must be PEM text or bytes")
    material = spec.key.encode("utf-8") if isinstance(spec.key, str) else bytes(spec.key)

    if wanted is not None and wanted.startswith("HS"):
        if len(material) == 0:
            raise VetoOptionsError("verification_key: the HMAC secret is empty")
        return VerifierKey(material, frozenset({wanted}), spec.scope or "", "HMAC secret")

    try:
        key: Any
        try:
            key = serialization.load_pem_public_key(material)
        except ValueError:
            key = serialization.load_pem_private_key(material, password=None).public_key()
    except Exception as error:
        raise VetoOptionsError(f"verification_key is not a usable key: {error}") from None

    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise VetoOptionsError(f"verification_key: the RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        algorithms = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
        description = "RSA public key"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        curve = _EC_CURVES.get(key.curve.name)
        if curve is None:
            raise VetoOptionsError(f"verification_key: EC curve {key.curve.name} is not P-256, P-384 or P-521")
        algorithms = frozenset({curve[0]})
        description = f"EC {curve[1]} public key"
    else:
        raise VetoOptionsError(f"verification_key: {type(key).__name__} keys are not supported (use RSA, EC or an HMAC secret)")
    if wanted is not None and wanted not in algorithms:
        raise VetoOptionsError(f"verification_key.algorithm {wanted} cannot be used with an {description}")
    return VerifierKey(key, algorithms if wanted is None else frozenset({wanted}), spec.scope or "", description)


# ---------------------------------------------------------------------------
# The token


def _refuse(check: BundleSignatureCheck, message: str, file: Optional[str] = None) -> BundleSignatureError:
    return BundleSignatureError(check, message, file)


_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")


def _decode_segment(segment: str, what: str) -> bytes:
    if not _BASE64URL.match(segment) or len(segment) % 4 == 1:
        raise _refuse("token", f"the signature token's {what} is not base64url")
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    check: BundleSignatureCheck = "signatures_file" if what == "signatures file" else "token"
    try:
        value = parse(data.decode("utf-8", "replace"))
    except JsonParseError as error:
        raise _refuse(check, f"the {what} is not JSON: {error}") from None
    if not isinstance(value, dict):
        raise _refuse(check, f"the {what} is not a JSON object")
    return value


def _read_token(signatures_file: bytes) -> str:
    doc = _json_object(signatures_file, "signatures file")
    plugin = doc.get("plugin")
    if "plugin" in doc and plugin != "" and plugin != "_default":
        raise _refuse("signatures_file", f"{SIGNATURES_FILE} names signing plugin {stringify(plugin)}; only OPA's default format is supported")
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1 or not isinstance(signatures[0], str):
        raise _refuse("signatures_file", f'{SIGNATURES_FILE} must hold "signatures": [one JWT]')
    return signatures[0]


def _check_signature(algorithm: str, key: Union[PublicKey, bytes], signing_input: bytes, signature: bytes) -> bool:
    hash_alg = _HASH_OF_ALG.get(algorithm[2:], hashes.SHA256)()
    kind = algorithm[:2]
    try:
        if kind == "HS":
            if not isinstance(key, bytes):
                return False
            mac = hmac.new(key, signing_input, hash_alg.name).digest()
            return hmac.compare_digest(mac, signature)
        if kind in ("RS", "PS"):
            if not isinstance(key, rsa.RSAPublicKey):
                return False
            if kind == "RS":
                key.verify(signature, signing_input, padding.PKCS1v15(), hash_alg)
            else:
                pss = padding.PSS(mgf=padding.MGF1(hash_alg), salt_length=hash_alg.digest_size)
                key.verify(signature, signing_input, pss, hash_alg)
            return True
        if kind == "ES":
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return False
            # JWS ECDSA signatures are r || s, each the curve's size (RFC 7518 3.4), not DER.
            size = next((c[2] for c in _EC_CURVES.values() if c[0] == algorithm), 0)
            if len(signature) != 2 * size:
                return False
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            key.verify(utils.encode_dss_signature(r, s), signing_input, ec.ECDSA(hash_alg))
            return True
        return False
    except (InvalidSignature, ValueError, TypeError):
        return False


@dataclass(frozen=True)
class _FileEntry:
    name: str
    hash: str
    algorithm: str


def _verify_token(token: str, verifier: BundleVerifier) -> list[_FileEntry]:
    parts = token.split(".")
    if len(parts) != 3:
        raise _refuse("token", "the signature token is not a JWS compact token (three dot-separated parts)")
    header_part, payload_part, signature_part = parts
    header = _json_object(_decode_segment(header_part, "header"), "token header")

    keys = verifier.keys
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise _refuse("algorithm", "the signature token's header names no algorithm (alg)")
    if alg.lower() == "none":
        raise _refuse("algorithm", 'the signature token is unsigned (alg "none"), which is never accepted')
    if alg not in SIGNING_ALGORITHMS:
        raise _refuse("algorithm", f"the signature token uses algorithm {stringify(alg)}, which is not supported")
    candidates = [k for k in keys if alg in k.algorithms]
    if not candidates:
        allowed = "; ".join(f"{k.description}: {', '.join(_in_order(k.algorithms))}" for k in keys)
        raise _refuse("algorithm", f"the signature token uses {alg}, which no configured verification key allows ({allowed})")
    if "crit" in header:
        raise _refuse("token", "the signature token has critical header parameters (crit), which are not supported")

    signature = _decode_segment(signature_part, "signature")
    signing_input = f"{header_part}.{payload_part}".encode("ascii")
    signer = next((k for k in candidates if _check_signature(alg, k.key, signing_input, signature)), None)
    if signer is None:
        which = (
            f"the configured {candidates[0].description}"
            if len(candidates) == 1
            else f"any of the {len(candidates)} configured keys that allow {alg}"
        )
        raise _refuse("signature", f"the {alg} signature does not verify with {which} (wrong key, or the token was altered)")

    payload = _json_object(_decode_segment(payload_part, "payload"), "token payload")
    scope = payload.get("scope")
    if scope is None:
        scope = ""
    if scope != signer.scope:
        raise _refuse("scope", f"the signature's scope {stringify(scope)} is not the configured {stringify(signer.scope)}")
    files = payload.get("files")
    if not isinstance(files, list):
        raise _refuse("token", "the signature token's payload has no files list")
    entries: list[_FileEntry] = []
    for i, entry in enumerate(files):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("hash"), str)
            or not isinstance(entry.get("algorithm"), str)
        ):
            raise _refuse("token", f"the signature token's files[{i}] is not {{name, hash, algorithm}} strings")
        entries.append(_FileEntry(entry["name"], entry["hash"], entry["algorithm"]))
    return entries


def _in_order(algorithms: frozenset[str]) -> list[str]:
    return [a for a in SIGNING_ALGORITHMS if a in algorithms]


# ---------------------------------------------------------------------------
# The files


def verify_bundle_signature(files: Sequence[BundleFile], verifier: BundleVerifier) -> None:
    """Check a bundle's files against its signature; returns only when every check passed."""
    by_name = {normalise_bundle_path(f.name): f.content for f in files}
    signatures_file = by_name.pop(SIGNATURES_FILE, None)
    if signatures_file is None:
        raise _refuse("unsigned", f"the bundle is unsigned (no {SIGNATURES_FILE}), and a verification key is configured")

    listed: dict[str, _FileEntry] = {}
    for entry in _verify_token(_read_token(signatures_file), verifier):
        name = normalise_bundle_path(entry.name)
        if name in listed:
            raise _refuse("token", f"the signature lists {name} twice", name)
        listed[name] = entry

    def by_bytes(name: str) -> bytes:
        return name.encode("utf-8", "surrogatepass")

    for name in sorted(by_name, key=by_bytes):
        if name not in listed:
            raise _refuse("file_unlisted", f"{name} is in the bundle but not in its signature (an added file)", name)
    for name in sorted(listed, key=by_bytes):
        if name not in by_name:
            raise _refuse("file_missing", f"{name} is in the signature but not in the bundle (a removed file)", name)
    for name in sorted(listed, key=by_bytes):
        entry = listed[name]
        hash_name = FILE_HASHES.get(entry.algorithm)
        if hash_name is None:
            raise _refuse(
                "hash_algorithm",
                f"{name}: hash algorithm {stringify(entry.algorithm)} is not accepted (SHA-256, SHA-384 or SHA-512)",
                name,
            )
        expected = bytes.fromhex(entry.hash) if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", entry.hash) else b""
        actual = hash_file(name, by_name.get(name, b""), hash_name)
        if actual != expected:
            raise _refuse("file_hash", f"{name}: content does not match its signed {entry.algorithm} hash (the file was altered)", name)


# ---------------------------------------------------------------------------
# OPA's file hash

_STRUCTURED = frozenset({"data.json", "data.yaml", ".manifest"})


def hash_file(name: str, content: bytes, hash_name: str = "sha256") -> bytes:
    """
    The hash OPA signs for a bundle file: ordinary files hash as their bytes;
    data.json and .manifest (anywhere in the tree) as canonical JSON: keys
    sorted bytewise, strings as Go's encoding/json writes them (no HTML
    escaping), numbers as their literal text. YAML data files are refused.
    """
    digest = hashlib.new(hash_name)
    base = name[name.rfind("/") + 1 :]
    if base not in _STRUCTURED:
        digest.update(content)
        return digest.digest()
    if base == "data.yaml":
        raise _refuse("file_hash", f"{name}: YAML data files cannot be verified here; ship data.json", name)
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse("file_hash", f"{name}: not valid UTF-8", name) from None
    try:
        value = _GoJsonReader(text).document()
    except ValueError as error:
        raise _refuse("file_hash", f"{name}: not valid JSON ({error})", name) from None
    parts: list[str] = []
    _go_canonical(value, parts)
    digest.update("".join(parts).encode("utf-8"))
    return digest.digest()


class _JsonNumber(str):
    """A number kept as its literal text: Go decodes with UseNumber and re-encodes the literal."""


_GO_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}
_GO_ESCAPED = re.compile('["\\\\\x00-\x1f\u2028\u2029]')
_SURROGATES = re.compile("[\ud800-\udfff]")


def _go_string(text: str) -> str:
    # Lone surrogates become U+FFFD, as Go's decoder makes them.
    text = _SURROGATES.sub("\ufffd", text)
    escaped = _GO_ESCAPED.sub(lambda m: _GO_ESCAPES.get(m.group(0), f"\\u{ord(m.group(0)):04x}"), text)
    return f'"{escaped}"'


def _go_canonical(value: Any, out: list[str]) -> None:
    if isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=lambda k: k.encode("utf-8", "surrogatepass"))):
            if i:
                out.append(",")
            out.append(_go_string(key))
            out.append(":")
            _go_canonical(value[key], out)
        out.append("}")
    elif isinstance(value, list):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _go_canonical(item, out)
        out.append("]")
    elif isinstance(value, _JsonNumber):
        out.append(str(value))
    elif isinstance(value, str):
        out.append(_go_string(value))
    elif value is None:
        out.append("null")
    else:
        out.append("true" if value else "false")


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class _GoJsonReader:
    """A strict RFC 8259 reader that keeps number literals. Duplicate keys: the last wins, as in Go."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 1 if text[:1] == "\ufeff" else 0  # OPA strips a UTF-8 BOM
        self.depth = 0

    def document(self) -> Any:
        value = self._value()
        self._space()
        if self.i != len(self.text):
            self._fail("unexpected text after the value")
        return value

    def _fail(self, message: str) -> NoReturn:
        raise ValueError(f"{message} at offset {self.i}")

    def _char(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def _space(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t\n\r":
            self.i += 1

    def _value(self) -> Any:
        self._space()
        c = self._char()
        if c == "{":
            return self._nested(self._object)
        if c == "[":
            return self._nested(self._array)
        if c == '"':
            return self._string()
        for word, value in (("true", True), ("false", False), ("null", None)):
            if self.text.startswith(word, self.i):
                self.i += len(word)
                return value
        m = _NUMBER.match(self.text[self.i : self.i + 400])
        if m is None or m.group(0) == "":
            self._fail("expected a JSON value")
        self.i += len(m.group(0))
        return _JsonNumber(m.group(0))

    def _nested(self, read: Callable[[], Any]) -> Any:
        self.depth += 1
        if self.depth > 1000:
            self._fail("nested too deeply")
        value = read()
        self.depth -= 1
        return value

    def _object(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        self.i += 1
        self._space()
        if self._char() == "}":
            self.i += 1
            return result
        while True:
            self._space()
            if self._char() != '"':
                self._fail("expected a string key")
            key = self._string()
            self._space()
            c = self._char()
            self.i += 1
            if c != ":":
                self._fail("expected ':'")
            result[key] = self._value()
            self._space()
            c = self._char()
            self.i += 1
            if c == "}":
                return result
            if c != ",":
                self._fail("expected ',' or '}'")

    def _array(self) -> list[Any]:
        items: list[Any] = []
        self.i += 1
        self._space()
        if self._char() == "]":
            self.i += 1
            return items
        while True:
            items.append(self._value())
            self._space()
            c = self._char()
            self.i += 1
            if c == "]":
                return items
            if c != ",":
                self._fail("expected ',' or ']'")

    def _string(self) -> str:
        start = self.i
        self.i += 1
        while True:
            if self.i >= len(self.text):
                self._fail("unterminated string")
            c = ord(self.text[self.i])
            if c < 0x20:
                self._fail("control character in a string")
            if c == 0x5C:
                self.i += 2
            elif c == 0x22:
                break
            else:
                self.i += 1
        self.i += 1
        try:
            value = json.loads(self.text[start : self.i])
        except ValueError as error:
            self._fail(f"bad string: {error}")
        assert isinstance(value, str)
        return value
