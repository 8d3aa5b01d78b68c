/**
 * Bundle signature verification in OPA's own format, because the WebAssembly
 * SDK that apps embed does not verify (OPA's server does).
 *
 * A signed bundle holds `/.signatures.json`: `{"signatures": [JWT]}`, exactly
 * one JWS compact token whose payload lists every other file of the bundle as
 * `{name, hash, algorithm}`. OPA hashes ordinary files as their bytes and
 * "structured" files (data.json, data.yaml, .manifest) as a canonical form of
 * their JSON, so whitespace and key order do not matter (see {@link hashFile}).
 *
 * A bundle passes only when: the token verifies under the configured key with
 * an algorithm that key may use, its scope is the configured one, the file
 * list is exactly the bundle's files (nothing missing, nothing extra) and
 * every file's hash matches. Anything else throws a BundleSignatureError
 * naming the check and, where there is one, the file.
 */
import {
  KeyObject,
  constants,
  createHash,
  createHmac,
  createPublicKey,
  createSecretKey,
  timingSafeEqual,
  verify as verifySignature,
} from "node:crypto";
import { normaliseBundlePath, type BundleFile } from "./bundle-hash.js";
import { BundleSignatureError, VetoOptionsError, toError } from "../common/errors.js";

export const SIGNATURES_FILE = ".signatures.json";

/** JWS algorithms a bundle signature may use (RFC 7518 names; OPA's `--signing-alg`). */
export const SIGNING_ALGORITHMS = [
  "RS256", "RS384", "RS512",
  "PS256", "PS384", "PS512",
  "ES256", "ES384", "ES512",
  "HS256", "HS384", "HS512",
] as const;
export type SigningAlgorithm = (typeof SIGNING_ALGORITHMS)[number];

/** File hash algorithms accepted in the payload (OPA's names). MD5 and SHA-1 are refused as broken. */
const FILE_HASHES: ReadonlyMap<string, string> = new Map([
  ["SHA-256", "sha256"],
  ["SHA-384", "sha384"],
  ["SHA-512", "sha512"],
]);

/**
 * How to verify bundle signatures. The short forms: a PEM string or Buffer
 * (public key, or a private key whose public half is used) or a KeyObject
 * (public, or `createSecretKey(...)` for HS256/384/512).
 */
export interface BundleVerificationKey {
  /** PEM text (string or bytes) or a KeyObject. With `algorithm` HS*, a string or bytes is the HMAC secret itself. */
  readonly key: string | Uint8Array | KeyObject;
  /** The one algorithm tokens must use. Default: any the key's type allows (RS/PS for RSA, the curve's ES for EC, HS for a secret). */
  readonly algorithm?: SigningAlgorithm;
  /** The scope the token's `scope` claim must equal (OPA's `--scope`). Default: "" (the token must carry no scope). */
  readonly scope?: string;
}

export type VerificationKeyInput = string | Uint8Array | KeyObject | BundleVerificationKey;

/** One key, parsed and checked. */
export interface VerifierKey {
  readonly key: KeyObject;
  readonly algorithms: ReadonlySet<SigningAlgorithm>;
  readonly scope: string;
  /** For messages: "RSA public key", "EC P-256 public key", "HMAC secret". */
  readonly description: string;
}

/**
 * The keys a bundle may be signed with (more than one while a signing key is
 * rotated: a bundle passes when any of them verifies it). Build it once
 * (createBundleVerifier), use it for every bundle.
 */
export interface BundleVerifier {
  readonly keys: readonly VerifierKey[];
}

const HASH_OF_ALG: Record<string, string> = { "256": "sha256", "384": "sha384", "512": "sha512" };
const EC_CURVES: Record<string, { alg: SigningAlgorithm; name: string; size: number }> = {
  prime256v1: { alg: "ES256", name: "P-256", size: 32 },
  secp384r1: { alg: "ES384", name: "P-384", size: 48 },
  secp521r1: { alg: "ES512", name: "P-521", size: 66 },
};
const MIN_RSA_BITS = 2048;

function isBundleVerificationKey(v: unknown): v is BundleVerificationKey {
  return v !== null && typeof v === "object" && !(v instanceof Uint8Array) && !(v instanceof KeyObject) && "key" in v;
}

/** The shapes createBundleVerifier accepts (for options schemas); whether a key is usable is its job. */
export function isVerificationKeyInput(v: unknown): v is VerificationKeyInput | readonly VerificationKeyInput[] {
  const one = (k: unknown): boolean =>
    typeof k === "string" || k instanceof Uint8Array || k instanceof KeyObject || isBundleVerificationKey(k);
  return Array.isArray(v) ? v.length > 0 && v.every(one) : one(v);
}

/**
 * Parse and check the verification key, or keys (a list while a signing key
 * is rotated). Throws VetoOptionsError for anything unusable.
 */
export function createBundleVerifier(input: VerificationKeyInput | readonly VerificationKeyInput[]): BundleVerifier {
  const inputs: readonly VerificationKeyInput[] = Array.isArray(input) ? input : [input as VerificationKeyInput];
  if (inputs.length === 0) throw new VetoOptionsError("verificationKey: the list of keys is empty");
  return Object.freeze({ keys: Object.freeze(inputs.map(verifierKey)) });
}

function verifierKey(input: VerificationKeyInput): VerifierKey {
  const spec: BundleVerificationKey = isBundleVerificationKey(input) ? input : { key: input };
  const wanted = spec.algorithm;
  if (wanted !== undefined && !(SIGNING_ALGORITHMS as readonly string[]).includes(wanted)) {
    throw new VetoOptionsError(`verificationKey.algorithm ${String(wanted)} is not one of ${SIGNING_ALGORITHMS.join(", ")}`);
  }
  if (spec.scope !== undefined && typeof spec.scope !== "string") {
    throw new VetoOptionsError("verificationKey.scope must be a string");
  }

  let key: KeyObject;
  try {
    if (spec.key instanceof KeyObject) {
      key = spec.key.type === "private" ? createPublicKey(spec.key) : spec.key;
    } else if (wanted?.startsWith("HS")) {
      key = createSecretKey(typeof spec.key === "string" ? Buffer.from(spec.key, "utf8") : Buffer.from(spec.key));
    } else if (typeof spec.key === "string" || spec.key instanceof Uint8Array) {
      key = createPublicKey({ key: Buffer.from(spec.key), format: "pem" });
    } else {
      throw new Error("it must be PEM text, bytes or a KeyObject");
    }
  } catch (error) {
    throw new VetoOptionsError(`verificationKey is not a usable key: ${toError(error).message}`, [], { cause: error });
  }

  const { algorithms, description } = algorithmsFor(key);
  if (wanted !== undefined && !algorithms.has(wanted)) {
    throw new VetoOptionsError(`verificationKey.algorithm ${wanted} cannot be used with an ${description}`);
  }
  return Object.freeze({
    key,
    algorithms: wanted === undefined ? algorithms : new Set([wanted]),
    scope: spec.scope ?? "",
    description,
  });
}

function algorithmsFor(key: KeyObject): { algorithms: ReadonlySet<SigningAlgorithm>; description: string } {
  if (key.type === "secret") {
    if ((key.symmetricKeySize ?? 0) === 0) throw new VetoOptionsError("verificationKey: the HMAC secret is empty");
    return { algorithms: new Set(["HS256", "HS384", "HS512"]), description: "HMAC secret" };
  }
  const type = key.asymmetricKeyType;
  if (type === "rsa" || type === "rsa-pss") {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) {
      throw new VetoOptionsError(`verificationKey: the RSA key has ${bits} bits; at least ${MIN_RSA_BITS} are required`);
    }
    const pss: SigningAlgorithm[] = ["PS256", "PS384", "PS512"];
    return {
      algorithms: new Set(type === "rsa" ? ["RS256", "RS384", "RS512", ...pss] : pss),
      description: type === "rsa" ? "RSA public key" : "RSA-PSS public key",
    };
  }
  if (type === "ec") {
    const curve = EC_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ""];
    if (curve === undefined) {
      throw new VetoOptionsError(`verificationKey: EC curve ${key.asymmetricKeyDetails?.namedCurve ?? "?"} is not P-256, P-384 or P-521`);
    }
    return { algorithms: new Set([curve.alg]), description: `EC ${curve.name} public key` };
  }
  throw new VetoOptionsError(`verificationKey: ${type ?? "unknown"} keys are not supported (use RSA, EC or an HMAC secret)`);
}

// ---------------------------------------------------------------------------
// The token

interface FileEntry {
  readonly name: string;
  readonly hash: string;
  readonly algorithm: string;
}

function refuse(check: BundleSignatureError["check"], message: string, file?: string, cause?: unknown): BundleSignatureError {
  return new BundleSignatureError(check, message, { ...(file === undefined ? {} : { file }), ...(cause === undefined ? {} : { cause }) });
}

const BASE64URL = /^[A-Za-z0-9_-]*$/;

function decodeSegment(segment: string, what: string): Buffer {
  if (!BASE64URL.test(segment) || segment.length % 4 === 1) {
    throw refuse("token", `the signature token's ${what} is not base64url`);
  }
  return Buffer.from(segment, "base64url");
}

function jsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch (error) {
    throw refuse(what === "signatures file" ? "signatures_file" : "token", `the ${what} is not JSON: ${toError(error).message}`, undefined, error);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw refuse(what === "signatures file" ? "signatures_file" : "token", `the ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function readToken(signaturesFile: Buffer): string {
  const doc = jsonObject(signaturesFile, "signatures file");
  const plugin = doc["plugin"];
  if (plugin !== undefined && plugin !== "" && plugin !== "_default") {
    throw refuse("signatures_file", `${SIGNATURES_FILE} names signing plugin ${JSON.stringify(plugin)}; only OPA's default format is supported`);
  }
  const signatures = doc["signatures"];
  if (!Array.isArray(signatures) || signatures.length !== 1 || typeof signatures[0] !== "string") {
    throw refuse("signatures_file", `${SIGNATURES_FILE} must hold "signatures": [one JWT]`);
  }
  return signatures[0];
}

function checkSignature(algorithm: SigningAlgorithm, key: KeyObject, signingInput: Buffer, signature: Buffer): boolean {
  const hash = HASH_OF_ALG[algorithm.slice(2)] ?? "sha256";
  try {
    switch (algorithm.slice(0, 2)) {
      case "HS": {
        const mac = createHmac(hash, key).update(signingInput).digest();
        return mac.length === signature.length && timingSafeEqual(mac, signature);
      }
      case "RS":
        return verifySignature(hash, signingInput, key, signature);
      case "PS":
        return verifySignature(
          hash,
          signingInput,
          { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: constants.RSA_PSS_SALTLEN_DIGEST },
          signature,
        );
      case "ES": {
        // JWS ECDSA signatures are r || s, each the curve's size (RFC 7518 3.4), not DER.
        const size = Object.values(EC_CURVES).find((c) => c.alg === algorithm)?.size ?? 0;
        if (signature.length !== 2 * size) return false;
        return verifySignature(hash, signingInput, { key, dsaEncoding: "ieee-p1363" }, signature);
      }
      default:
        return false;
    }
  } catch {
    return false;
  }
}

/** The claims of a verified token other than its file list (`iat`, `iss`, `scope`, custom ones): signed, so the bundle server cannot forge them. */
export interface VerifiedSignature {
  readonly claims: Readonly<Record<string, unknown>>;
}

/** Verify the token; return its payload's file list and its other claims. */
function verifyToken(token: string, verifier: BundleVerifier): { files: FileEntry[]; claims: Record<string, unknown> } {
  const parts = token.split(".");
  if (parts.length !== 3) throw refuse("token", "the signature token is not a JWS compact token (three dot-separated parts)");
  const [headerPart = "", payloadPart = "", signaturePart = ""] = parts;
  const header = jsonObject(decodeSegment(headerPart, "header"), "token header");

  const { keys } = verifier;
  const alg = header["alg"];
  if (typeof alg !== "string") throw refuse("algorithm", "the signature token's header names no algorithm (alg)");
  if (alg.toLowerCase() === "none") throw refuse("algorithm", 'the signature token is unsigned (alg "none"), which is never accepted');
  if (!(SIGNING_ALGORITHMS as readonly string[]).includes(alg)) {
    throw refuse("algorithm", `the signature token uses algorithm ${JSON.stringify(alg)}, which is not supported`);
  }
  const candidates = keys.filter((k) => k.algorithms.has(alg as SigningAlgorithm));
  if (candidates.length === 0) {
    const allowed = keys.map((k) => `${k.description}: ${[...k.algorithms].join(", ")}`).join("; ");
    throw refuse("algorithm", `the signature token uses ${alg}, which no configured verification key allows (${allowed})`);
  }
  if (header["crit"] !== undefined) throw refuse("token", "the signature token has critical header parameters (crit), which are not supported");

  const signature = decodeSegment(signaturePart, "signature");
  const signingInput = Buffer.from(`${headerPart}.${payloadPart}`, "ascii");
  const signer = candidates.find((k) => checkSignature(alg as SigningAlgorithm, k.key, signingInput, signature));
  if (signer === undefined) {
    const which = candidates.length === 1 ? `the configured ${candidates[0]?.description}` : `any of the ${candidates.length} configured keys that allow ${alg}`;
    throw refuse("signature", `the ${alg} signature does not verify with ${which} (wrong key, or the token was altered)`);
  }

  const payload = jsonObject(decodeSegment(payloadPart, "payload"), "token payload");
  const scope = payload["scope"] ?? "";
  if (scope !== signer.scope) {
    throw refuse("scope", `the signature's scope ${JSON.stringify(scope)} is not the configured ${JSON.stringify(signer.scope)}`);
  }
  const files = payload["files"];
  if (!Array.isArray(files)) throw refuse("token", "the signature token's payload has no files list");
  const claims: Record<string, unknown> = { ...payload };
  delete claims["files"];
  return { claims, files: files.map((f: unknown, i) => {
    const entry = f as Partial<Record<keyof FileEntry, unknown>> | null;
    if (
      entry === null || typeof entry !== "object" ||
      typeof entry.name !== "string" || typeof entry.hash !== "string" || typeof entry.algorithm !== "string"
    ) {
      throw refuse("token", `the signature token's files[${i}] is not {name, hash, algorithm} strings`);
    }
    return { name: entry.name, hash: entry.hash, algorithm: entry.algorithm };
  }) };
}

// ---------------------------------------------------------------------------
// The files

/**
 * Check a bundle's files against its signature. `files` are all regular files
 * of the tarball, names normalised (readTarball). Returns normally only when
 * every check passed.
 */
export function verifyBundleSignature(files: readonly BundleFile[], verifier: BundleVerifier): VerifiedSignature {
  const byName = new Map(files.map((f) => [normaliseBundlePath(f.name), f.content]));
  const signaturesFile = byName.get(SIGNATURES_FILE);
  if (signaturesFile === undefined) {
    throw refuse("unsigned", `the bundle is unsigned (no ${SIGNATURES_FILE}), and a verification key is configured`);
  }
  byName.delete(SIGNATURES_FILE);

  const listed = new Map<string, FileEntry>();
  const token = verifyToken(readToken(signaturesFile), verifier);
  for (const entry of token.files) {
    const name = normaliseBundlePath(entry.name);
    if (listed.has(name)) throw refuse("token", `the signature lists ${name} twice`, name);
    listed.set(name, entry);
  }

  const byBytes = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));
  for (const name of [...byName.keys()].sort(byBytes)) {
    if (!listed.has(name)) throw refuse("file_unlisted", `${name} is in the bundle but not in its signature (an added file)`, name);
  }
  for (const name of [...listed.keys()].sort(byBytes)) {
    if (!byName.has(name)) throw refuse("file_missing", `${name} is in the signature but not in the bundle (a removed file)`, name);
  }
  for (const [name, entry] of [...listed].sort(([a], [b]) => byBytes(a, b))) {
    const hashName = FILE_HASHES.get(entry.algorithm);
    if (hashName === undefined) {
      throw refuse("hash_algorithm", `${name}: hash algorithm ${JSON.stringify(entry.algorithm)} is not accepted (SHA-256, SHA-384 or SHA-512)`, name);
    }
    const expected = /^(?:[0-9a-fA-F]{2})+$/.test(entry.hash) ? Buffer.from(entry.hash, "hex") : Buffer.alloc(0);
    const actual = hashFile(name, byName.get(name) ?? Buffer.alloc(0), hashName);
    if (!actual.equals(expected)) {
      throw refuse("file_hash", `${name}: content does not match its signed ${entry.algorithm} hash (the file was altered)`, name);
    }
  }
  return { claims: Object.freeze(token.claims) };
}

// ---------------------------------------------------------------------------
// OPA's file hash

const STRUCTURED = new Set(["data.json", "data.yaml", ".manifest"]);

/**
 * The hash OPA signs for a bundle file: ordinary files hash as their bytes;
 * data.json and .manifest (anywhere in the tree) hash as canonical JSON:
 * objects `{` key `:` value `,` ... `}` with keys sorted bytewise, arrays
 * `[`...`]`, strings and keys as Go's encoding/json writes them (no HTML
 * escaping), numbers as their literal text. YAML data files are refused.
 */
export function hashFile(name: string, content: Buffer, hashName = "sha256"): Buffer {
  const hash = createHash(hashName);
  const base = name.slice(name.lastIndexOf("/") + 1);
  if (!STRUCTURED.has(base)) return hash.update(content).digest();
  if (base === "data.yaml") throw refuse("file_hash", `${name}: YAML data files cannot be verified here; ship data.json`, name);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(content);
  } catch (error) {
    throw refuse("file_hash", `${name}: not valid UTF-8`, name, error);
  }
  let value: JsonValue;
  try {
    value = new JsonReader(text).document();
  } catch (error) {
    throw refuse("file_hash", `${name}: not valid JSON (${toError(error).message})`, name, error);
  }
  const parts: string[] = [];
  canonical(value, parts);
  return hash.update(parts.join(""), "utf8").digest();
}

/** Numbers keep their literal text: Go decodes with UseNumber and re-encodes the literal. */
class JsonNumber {
  constructor(readonly literal: string) {}
}
type JsonValue = null | boolean | string | JsonNumber | JsonValue[] | Map<string, JsonValue>;

function canonical(value: JsonValue, out: string[]): void {
  if (value instanceof Map) {
    out.push("{");
    const keys = [...value.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    keys.forEach((key, i) => {
      if (i > 0) out.push(",");
      out.push(goString(key), ":");
      canonical(value.get(key) ?? null, out);
    });
    out.push("}");
  } else if (Array.isArray(value)) {
    out.push("[");
    value.forEach((item, i) => {
      if (i > 0) out.push(",");
      canonical(item, out);
    });
    out.push("]");
  } else if (value instanceof JsonNumber) {
    out.push(value.literal);
  } else if (typeof value === "string") {
    out.push(goString(value));
  } else {
    out.push(String(value));
  }
}

const GO_ESCAPES: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** A JSON string as Go's encoding/json writes it with SetEscapeHTML(false). */
function goString(s: string): string {
  // Lone surrogates become U+FFFD, as Go's decoder makes them.
  // eslint-disable-next-line no-control-regex -- the control characters are what Go escapes
  const escaped = Buffer.from(s, "utf8").toString("utf8").replace(/["\\\u0000-\u001f\u2028\u2029]/g, (c) => {
    return GO_ESCAPES[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;
  });
  return `"${escaped}"`;
}

/** A strict RFC 8259 reader that keeps number literals (JSON.parse cannot). Duplicate keys: the last wins, as in Go. */
class JsonReader {
  #i = 0;
  #depth = 0;

  constructor(readonly text: string) {
    if (text.charCodeAt(0) === 0xfeff) this.#i = 1; // OPA strips a UTF-8 BOM
  }

  document(): JsonValue {
    const value = this.#value();
    this.#space();
    if (this.#i !== this.text.length) this.#fail("unexpected text after the value");
    return value;
  }

  #fail(message: string): never {
    throw new Error(`${message} at offset ${this.#i}`);
  }

  #space(): void {
    while (this.#i < this.text.length && " \t\n\r".includes(this.text[this.#i] ?? "")) this.#i++;
  }

  #value(): JsonValue {
    this.#space();
    const c = this.text[this.#i];
    if (c === "{") return this.#object();
    if (c === "[") return this.#array();
    if (c === '"') return this.#string();
    for (const [word, value] of [["true", true], ["false", false], ["null", null]] as const) {
      if (this.text.startsWith(word, this.#i)) {
        this.#i += word.length;
        return value;
      }
    }
    const number = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(this.text.slice(this.#i, this.#i + 400));
    if (number === null || number[0] === "") this.#fail("expected a JSON value");
    this.#i += number[0].length;
    return new JsonNumber(number[0]);
  }

  #nested<T>(read: () => T): T {
    if (++this.#depth > 1000) this.#fail("nested too deeply");
    const value = read();
    this.#depth--;
    return value;
  }

  #object(): Map<string, JsonValue> {
    return this.#nested(() => {
      const map = new Map<string, JsonValue>();
      this.#i++;
      this.#space();
      if (this.text[this.#i] === "}") {
        this.#i++;
        return map;
      }
      for (;;) {
        this.#space();
        if (this.text[this.#i] !== '"') this.#fail("expected a string key");
        const key = this.#string();
        this.#space();
        if (this.text[this.#i++] !== ":") this.#fail("expected ':'");
        map.set(key, this.#value());
        this.#space();
        const next = this.text[this.#i++];
        if (next === "}") return map;
        if (next !== ",") this.#fail("expected ',' or '}'");
      }
    });
  }

  #array(): JsonValue[] {
    return this.#nested(() => {
      const items: JsonValue[] = [];
      this.#i++;
      this.#space();
      if (this.text[this.#i] === "]") {
        this.#i++;
        return items;
      }
      for (;;) {
        items.push(this.#value());
        this.#space();
        const next = this.text[this.#i++];
        if (next === "]") return items;
        if (next !== ",") this.#fail("expected ',' or ']'");
      }
    });
  }

  #string(): string {
    // Find the closing quote, then let JSON.parse decode the escapes of just this string.
    const start = this.#i;
    this.#i++;
    for (;;) {
      const c = this.text.charCodeAt(this.#i);
      if (Number.isNaN(c)) this.#fail("unterminated string");
      if (c < 0x20) this.#fail("control character in a string");
      if (c === 0x5c) this.#i += 2;
      else if (c === 0x22) break;
      else this.#i++;
    }
    this.#i++;
    try {
      return JSON.parse(this.text.slice(start, this.#i)) as string;
    } catch (error) {
      this.#fail(`bad string: ${toError(error).message}`);
    }
  }
}
