// Signed bundles (issue 8): bundles signed by the real opa with the committed
// TEST-ONLY keys load; every kind of alteration is refused before load with a
// BundleSignatureError naming the check and the file.
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, createHmac, createPrivateKey, createPublicKey, createSecretKey, generateKeyPairSync, sign } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleSignatureError, VetoError, VetoOptionsError, type BundleSignatureCheck, type VerificationKeyInput } from "../../adapter/index.js";
import { bundleVersionHashOfTarball, createBundleVerifier, loadBundle, readTarball, verifyBundleSignature } from "../../adapter/policy/index.js";
import { replayRecords } from "../../adapter/audit/index.js";
import { BUNDLE, ROOT, jsonLines, makeVeto, requireBundle, requireOpa, runCli, write } from "../helpers/index.js";
import { filesOf, key, opaBuildWasm, pem, repack, signaturesJson, tokenParts, withFile } from "../helpers/signing.js";

let dir: string;
/** The committed bundle signed by scripts/sign-bundle.sh (opa sign, ES256). */
let es256: Buffer;
/** Built from policy/ by `opa build --signing-key --signing-alg RS256`. */
let rs256: Buffer;

beforeAll(() => {
  requireBundle();
  requireOpa();
  dir = mkdtempSync(join(tmpdir(), "veto-signature-"));
  execFileSync("bash", [resolve(ROOT, "scripts/sign-bundle.sh"), key("es256-private"), "ES256", BUNDLE, join(dir, "es256.tar.gz")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  es256 = readFileSync(join(dir, "es256.tar.gz"));
  rs256 = readFileSync(
    opaBuildWasm(dir, join(dir, "rs256.tar.gz"), { signingKey: key("rs256-private"), signingAlg: "RS256", revision: "signed-test" }),
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type KeyOption = VerificationKeyInput | readonly VerificationKeyInput[];

async function refusal(bytes: Uint8Array, verificationKey: KeyOption): Promise<BundleSignatureError> {
  const error: unknown = await loadBundle(bytes, { verifier: createBundleVerifier(verificationKey) }).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BundleSignatureError);
  return error as BundleSignatureError;
}

async function expectRefused(
  bytes: Uint8Array,
  verificationKey: KeyOption,
  check: BundleSignatureCheck,
  file?: string,
): Promise<BundleSignatureError> {
  const error = await refusal(bytes, verificationKey);
  expect(error).toBeInstanceOf(VetoError);
  expect(error.code).toBe("bundle_signature");
  expect(error.check).toBe(check);
  expect(error.message).toContain(`(${check})`);
  expect(error.file).toBe(file);
  if (file !== undefined) expect(error.message).toContain(file);
  return error;
}

/** Flip one byte of a file, keeping JSON files valid JSON (a letter inside a string changes). */
function flipped(name: string, content: Buffer): Buffer {
  const copy = Buffer.from(content);
  const at = name.endsWith(".json") || name.endsWith(".manifest") ? copy.indexOf("veto") + 1 : copy.length - 1;
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}

describe("signed bundles load", () => {
  it("signed by scripts/sign-bundle.sh (opa sign, ES256): loads, and the version hash is the unsigned bundle's", async () => {
    const loaded = await loadBundle(es256, { verifier: createBundleVerifier(pem("es256-public")) });
    expect(loaded.version.hash).toBe(await bundleVersionHashOfTarball(readFileSync(BUNDLE)));
    expect((await filesOf(es256)).map((f) => f.name)).toContain(".signatures.json");
  });

  it("scripts/sign-bundle.sh says when it signed: the token's iat is the signing time (rollback protection reads it)", async () => {
    const loaded = await loadBundle(es256, { verifier: createBundleVerifier(pem("es256-public")) });
    const iat = loaded.signature?.claims["iat"];
    expect(Number.isInteger(iat)).toBe(true);
    expect(Math.abs(Date.now() / 1000 - (iat as number))).toBeLessThan(3600);
    // SIGNING_IAT sets it; anything but seconds since the epoch is refused.
    const out = join(dir, "iat.tar.gz");
    const run = (iatValue: string): ReturnType<typeof spawnSync> =>
      spawnSync("bash", [resolve(ROOT, "scripts/sign-bundle.sh"), key("es256-private"), "ES256", BUNDLE, out], { env: { ...process.env, SIGNING_IAT: iatValue }, encoding: "utf8" });
    expect(run("1700000000").status).toBe(0);
    expect((await loadBundle(readFileSync(out), { verifier: createBundleVerifier(pem("es256-public")) })).signature?.claims["iat"]).toBe(1700000000);
    const bad = run("yesterday");
    expect([bad.status, bad.stderr]).toEqual([2, "sign-bundle: SIGNING_IAT must be seconds since the epoch, got yesterday\n"]);
  });

  it("signed by opa build --signing-key (RS256): loads with the PEM, a KeyObject, or the private key's public half", async () => {
    for (const k of [pem("rs256-public"), createPublicKey(pem("rs256-public")), createPrivateKey(pem("rs256-private")), { key: pem("rs256-public"), algorithm: "RS256" as const }]) {
      const loaded = await loadBundle(rs256, { verifier: createBundleVerifier(k) });
      expect(loaded.version.revision).toBe("signed-test");
    }
  });

  it("createVeto({ verificationKey }) decides with a signed bundle, naming its hash", async () => {
    const { veto, sink } = await makeVeto({ bundle: es256, verificationKey: pem("es256-public") });
    const decision = await veto.protect(write());
    expect(decision.action).toBe("allow");
    expect(decision.bundle.hash).toBe(await bundleVersionHashOfTarball(es256));
    expect(sink.last()).toMatchObject({ bundles: { crm: { hash: decision.bundle.hash } } });
    await veto.close();
  });

  it("without a verification key, a signed bundle loads as any other (its signature unchecked)", async () => {
    // Altered, but still a bundle OPA would load (a module that is not Rego is refused as OPA refuses it).
    await expect(loadBundle(await withFile(es256, "policy/veto/crm/tool.rego", Buffer.from("package veto.crm\n")))).resolves.toBeDefined();
  });

  it.each([
    ["opa build entries (/)", "/"],
    ["./ entries", "./"],
    ["bare entries", ""],
  ])("repacked with %s: loads, same version hash", async (_label, prefix) => {
    const repacked = await repack(await filesOf(rs256), prefix);
    const loaded = await loadBundle(repacked, { verifier: createBundleVerifier(pem("rs256-public")) });
    expect(loaded.version.hash).toBe(await bundleVersionHashOfTarball(rs256));
  });

  it("unpacked and repacked by GNU tar (`tar -czf B -C dir .`, with directory entries): loads", async () => {
    const unpacked = join(dir, "unpacked");
    mkdirSync(unpacked, { recursive: true });
    for (const f of await filesOf(rs256)) {
      mkdirSync(join(unpacked, f.name, ".."), { recursive: true });
      writeFileSync(join(unpacked, f.name), f.content);
    }
    const out = join(dir, "gnu-tar.tar.gz");
    execFileSync("tar", ["-czf", out, "-C", unpacked, "."]);
    expect(execFileSync("tar", ["-tzf", out], { encoding: "utf8" })).toContain("./policy.wasm");
    const loaded = await loadBundle(readFileSync(out), { verifier: createBundleVerifier(pem("rs256-public")) });
    expect(loaded.version.hash).toBe(await bundleVersionHashOfTarball(rs256));
  });

  it("data.json re-indented still verifies (OPA hashes JSON files in canonical form)", async () => {
    const data = (await filesOf(rs256)).find((f) => f.name === "data.json");
    const pretty = Buffer.from(JSON.stringify(JSON.parse(data?.content.toString("utf8") ?? "null"), null, 4));
    await expect(
      loadBundle(await withFile(rs256, "data.json", pretty), { verifier: createBundleVerifier(pem("rs256-public")) }),
    ).resolves.toBeDefined();
  });
});

describe("altered bundles are refused before load", () => {
  it("a flipped byte in any file: file_hash, naming the file", async () => {
    const files = await filesOf(rs256);
    const names = files.map((f) => f.name).filter((n) => n !== ".signatures.json");
    expect(names).toEqual(expect.arrayContaining(["policy.wasm", "data.json", ".manifest", "policy/veto/crm/decision.rego"]));
    for (const f of files.filter((f) => f.name !== ".signatures.json")) {
      await expectRefused(await withFile(rs256, f.name, flipped(f.name, f.content)), pem("rs256-public"), "file_hash", f.name);
    }
  });

  it("a missing file: file_missing", async () => {
    await expectRefused(await withFile(rs256, "policy/veto/crm/tool.rego", null), pem("rs256-public"), "file_missing", "policy/veto/crm/tool.rego");
  });

  it("an extra file: file_unlisted", async () => {
    const extra = Buffer.from("package veto.crm\n\nallow := true\n");
    await expectRefused(await withFile(rs256, "policy/veto/crm/backdoor.rego", extra), pem("rs256-public"), "file_unlisted", "policy/veto/crm/backdoor.rego");
  });

  it("an extra data file beside the signed ones: file_unlisted", async () => {
    await expectRefused(await withFile(es256, "veto/config/data.json", Buffer.from("{}")), pem("es256-public"), "file_unlisted", "veto/config/data.json");
  });

  it("the wrong key of the right type: signature", async () => {
    const other = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    const error = await expectRefused(es256, other, "signature");
    expect(error.message).toMatch(/ES256 signature does not verify/);
    const otherRsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    await expectRefused(rs256, otherRsa, "signature");
  });

  it("the wrong algorithm for the key: algorithm", async () => {
    const error = await expectRefused(rs256, pem("es256-public"), "algorithm");
    expect(error.message).toMatch(/uses RS256, which no configured verification key allows \(EC P-256 public key: ES256\)/);
    await expectRefused(es256, pem("rs256-public"), "algorithm");
    await expectRefused(rs256, { key: pem("rs256-public"), algorithm: "PS256" }, "algorithm");
  });

  it('alg "none" (an unsigned token): algorithm', async () => {
    const { header, payload } = tokenParts((await filesOf(rs256)).find((f) => f.name === ".signatures.json")?.content ?? Buffer.alloc(0));
    for (const alg of ["none", "None", "NONE"]) {
      const forged = await withFile(rs256, ".signatures.json", signaturesJson({ ...header, alg }, payload, ""));
      const error = await expectRefused(forged, pem("rs256-public"), "algorithm");
      expect(error.message).toContain("never accepted");
    }
  });

  it("HS256 signed with the RSA public key's PEM as the secret (key confusion): algorithm", async () => {
    const { payload } = tokenParts((await filesOf(rs256)).find((f) => f.name === ".signatures.json")?.content ?? Buffer.alloc(0));
    const header = { alg: "HS256", typ: "JWT" };
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
    const mac = createHmac("sha256", pem("rs256-public")).update(input).digest();
    const forged = await withFile(rs256, ".signatures.json", signaturesJson(header, payload, mac));
    await expectRefused(forged, pem("rs256-public"), "algorithm");
  });

  it("a file altered and its hash in the payload updated to match: signature", async () => {
    const files = await filesOf(rs256);
    const { header, payload, signature } = tokenParts(files.find((f) => f.name === ".signatures.json")?.content ?? Buffer.alloc(0));
    const wasm = files.find((f) => f.name === "policy.wasm")?.content ?? Buffer.alloc(0);
    const evil = flipped("policy.wasm", wasm);
    const patched = (payload["files"] as { name: string; hash: string }[]).map((f) => (f.name === "policy.wasm" ? { ...f, hash: createHash("sha256").update(evil).digest("hex") } : f));
    let forged = await withFile(rs256, "policy.wasm", evil);
    forged = await withFile(forged, ".signatures.json", signaturesJson(header, { ...payload, files: patched }, signature));
    await expectRefused(forged, pem("rs256-public"), "signature");
  });

  it("an unsigned bundle when a key is configured: unsigned", async () => {
    const error = await expectRefused(readFileSync(BUNDLE), pem("es256-public"), "unsigned");
    expect(error.message).toMatch(/unsigned \(no \.signatures\.json\)/);
  });

  it("createVeto refuses an altered bundle (and an unsigned one) with the BundleSignatureError", async () => {
    const tampered = await withFile(es256, "data.json", flipped("data.json", (await filesOf(es256)).find((f) => f.name === "data.json")?.content ?? Buffer.alloc(0)));
    await expect(makeVeto({ bundle: tampered, verificationKey: pem("es256-public") })).rejects.toMatchObject({ name: "BundleSignatureError", check: "file_hash", file: "data.json" });
    await expect(makeVeto({ bundle: BUNDLE, verificationKey: pem("es256-public") })).rejects.toMatchObject({ name: "BundleSignatureError", check: "unsigned" });
  });

  it("malformed signature files: signatures_file / token", async () => {
    const k = pem("rs256-public");
    await expectRefused(await withFile(rs256, ".signatures.json", Buffer.from("not json")), k, "signatures_file");
    await expectRefused(await withFile(rs256, ".signatures.json", Buffer.from('{"signatures":[]}')), k, "signatures_file");
    const sig = (await filesOf(rs256)).find((f) => f.name === ".signatures.json")?.content ?? Buffer.alloc(0);
    const token = (JSON.parse(sig.toString("utf8")) as { signatures: string[] }).signatures[0] ?? "";
    await expectRefused(await withFile(rs256, ".signatures.json", Buffer.from(JSON.stringify({ signatures: [token, token] }))), k, "signatures_file");
    await expectRefused(await withFile(rs256, ".signatures.json", Buffer.from(JSON.stringify({ signatures: ["a.b"] }))), k, "token");
    await expectRefused(await withFile(rs256, ".signatures.json", Buffer.from(JSON.stringify({ signatures: [token], plugin: "custom" }))), k, "signatures_file");
  });
});

describe("several verification keys (rotating the signing key)", () => {
  it("a bundle passes when any configured key verifies it; the message says none did otherwise", async () => {
    const oldEc = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    const rotating = [oldEc, pem("es256-public"), pem("rs256-public")];
    await expect(loadBundle(es256, { verifier: createBundleVerifier(rotating) })).resolves.toBeDefined();
    await expect(loadBundle(rs256, { verifier: createBundleVerifier(rotating) })).resolves.toBeDefined();

    const strangers = [oldEc, generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey];
    const error = await expectRefused(es256, strangers, "signature");
    expect(error.message).toContain("does not verify with any of the 2 configured keys that allow ES256");
    const wrongType = await expectRefused(rs256, strangers, "algorithm");
    expect(wrongType.message).toContain("(EC P-256 public key: ES256; EC P-256 public key: ES256)");
  });

  it("createVeto takes the list; an empty list is an options error", async () => {
    const { veto } = await makeVeto({ bundle: es256, verificationKey: [pem("rs256-public"), pem("es256-public")] });
    expect(veto.bundle.hash).toBe(await bundleVersionHashOfTarball(es256));
    await veto.close();
    await expect(makeVeto({ bundle: es256, verificationKey: [] })).rejects.toBeInstanceOf(VetoOptionsError);
    expect(() => createBundleVerifier([])).toThrow(/list of keys is empty/);
  });
});

describe("OPA's file hashes, scope and payload checks (tokens signed here with the TEST-ONLY key)", () => {
  const rsaPrivate = (): ReturnType<typeof createPrivateKey> => createPrivateKey(pem("rs256-private"));

  function signed(payload: Record<string, unknown>, header: Record<string, unknown> = { alg: "RS256", typ: "JWT" }): Buffer {
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
    return signaturesJson(header, payload, sign("sha256", Buffer.from(input), rsaPrivate()));
  }

  it("a JSON data file with escapes, unicode and number literals verifies against opa's own hash", async () => {
    const policy = join(dir, "json-policy");
    mkdirSync(policy, { recursive: true });
    // Keys out of order, HTML-ish and control characters, U+2028, a surrogate pair, literal number forms.
    writeFileSync(
      join(policy, "data.json"),
      '{"z": [1.50, 1e3, -0, 2E-7, true, null, {}], "a": "<&> \\u0001 \\b\\f\\n\\t \\u2028 é 😀 \\"q\\" \\\\", "é": {"b": 1, "B": 2}}',
    );
    writeFileSync(join(policy, "p.rego"), "package p\n\nx := 1\n");
    const out = join(dir, "json.tar.gz");
    execFileSync(requireOpa(), ["build", "-b", policy, "--signing-key", key("rs256-private"), "--signing-alg", "RS256", "-o", out]);
    const files = await readTarball(readFileSync(out));
    expect(() => verifyBundleSignature(files, createBundleVerifier(pem("rs256-public")))).not.toThrow();
  });

  it("scope: must equal the configured scope (default none)", () => {
    const files = [{ name: "a.rego", content: Buffer.from("x") }];
    const entry = { name: "a.rego", hash: "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881", algorithm: "SHA-256" };
    const bundle = (payload: Record<string, unknown>): { name: string; content: Buffer }[] => [...files, { name: ".signatures.json", content: signed(payload) }];
    const verifier = createBundleVerifier(pem("rs256-public"));
    expect(() => verifyBundleSignature(bundle({ files: [entry] }), verifier)).not.toThrow();
    expect(() => verifyBundleSignature(bundle({ files: [entry], scope: "write" }), verifier)).toThrow(/\(scope\)/);
    expect(() => verifyBundleSignature(bundle({ files: [entry], scope: "write" }), createBundleVerifier({ key: pem("rs256-public"), scope: "write" }))).not.toThrow();
  });

  it("hash algorithms: SHA-512 accepted, MD5 and SHA-1 refused; a file listed twice is refused", () => {
    const verifier = createBundleVerifier(pem("rs256-public"));
    const content = Buffer.from("x");
    const run = (files: unknown[]): unknown =>
      verifyBundleSignature([{ name: "a.rego", content }, { name: ".signatures.json", content: signed({ files }) }], verifier);
    expect(() => run([{ name: "a.rego", hash: createHash("sha512").update(content).digest("hex"), algorithm: "SHA-512" }])).not.toThrow();
    expect(() => run([{ name: "a.rego", hash: createHash("md5").update(content).digest("hex"), algorithm: "MD5" }])).toThrow(/\(hash_algorithm\).*MD5/);
    expect(() => run([{ name: "a.rego", hash: createHash("sha1").update(content).digest("hex"), algorithm: "SHA-1" }])).toThrow(/\(hash_algorithm\)/);
    const ok = { name: "/a.rego", hash: createHash("sha256").update(content).digest("hex"), algorithm: "SHA-256" };
    expect(() => run([ok])).not.toThrow(); // "/a.rego" and "a.rego" are the same file
    expect(() => run([ok, { ...ok, name: "./a.rego" }])).toThrow(/lists a\.rego twice/);
  });

  it("HS256 verifies only when an HMAC secret is configured", () => {
    const secret = "a-test-only-hmac-secret-of-32-bytes!";
    const content = Buffer.from("x");
    const payload = { files: [{ name: "a.rego", hash: createHash("sha256").update(content).digest("hex"), algorithm: "SHA-256" }] };
    const header = { alg: "HS256" };
    const input = `${Buffer.from(JSON.stringify(header)).toString("base64url")}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
    const files = [{ name: "a.rego", content }, { name: ".signatures.json", content: signaturesJson(header, payload, createHmac("sha256", secret).update(input).digest()) }];
    expect(() => verifyBundleSignature(files, createBundleVerifier({ key: secret, algorithm: "HS256" }))).not.toThrow();
    expect(() => verifyBundleSignature(files, createBundleVerifier(createSecretKey(Buffer.from(secret))))).not.toThrow();
    expect(() => verifyBundleSignature(files, createBundleVerifier({ key: "another-secret", algorithm: "HS256" }))).toThrow(/\(signature\)/);
    expect(() => verifyBundleSignature(files, createBundleVerifier(pem("rs256-public")))).toThrow(/\(algorithm\)/);
  });
});

describe("verification key options", () => {
  it.each([
    ["garbage PEM", "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n", /not a usable key/],
    ["an RSA key under 2048 bits", generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey, /1024 bits/],
    ["an unsupported curve", generateKeyPairSync("ec", { namedCurve: "secp256k1" }).publicKey, /curve secp256k1/],
    ["an Ed25519 key", generateKeyPairSync("ed25519").publicKey, /ed25519 keys are not supported/],
    ["a truncated PEM", { key: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n", algorithm: "RS256" }, /not a usable key/],
    ["an unknown algorithm", { key: "k", algorithm: "XS256" }, /not one of/],
    ["an empty HMAC secret", { key: "", algorithm: "HS256" }, /HMAC secret is empty|not a usable key/],
  ])("%s: VetoOptionsError", (_label, input, message) => {
    expect(() => createBundleVerifier(input as VerificationKeyInput)).toThrow(VetoOptionsError);
    expect(() => createBundleVerifier(input as VerificationKeyInput)).toThrow(message);
  });

  it("an algorithm the key type cannot use: VetoOptionsError", () => {
    expect(() => createBundleVerifier({ key: pem("es256-public"), algorithm: "RS256" })).toThrow(/RS256 cannot be used with an EC P-256 public key/);
  });

  it("createVeto: a bad verificationKey is an options error, before any bundle is read", async () => {
    await expect(makeVeto({ bundle: "/nonexistent.tar.gz", verificationKey: "not a key" })).rejects.toBeInstanceOf(VetoOptionsError);
  });
});

describe("veto eval --verification-key", () => {
  it("decides with a signed bundle; refuses an altered or unsigned one with exit 2 naming the failed check", async () => {
    const signedPath = join(dir, "cli-signed.tar.gz");
    writeFileSync(signedPath, es256);
    const ok = runCli(["eval", "--bundle", signedPath, "--verification-key", key("es256-public")], jsonLines(write()));
    expect(ok.status).toBe(0);
    const decision = JSON.parse(ok.stdout.trim()) as { action: string; bundle: { hash: string } };
    expect(decision.action).toBe("allow");
    expect(decision.bundle.hash).toBe(await bundleVersionHashOfTarball(es256));

    const tamperedPath = join(dir, "cli-tampered.tar.gz");
    writeFileSync(tamperedPath, await withFile(es256, "policy/veto/crm/tool.rego", null));
    const bad = runCli(["eval", "--bundle", tamperedPath, "--verification-key", key("es256-public")], jsonLines(write()));
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toMatch(/^veto: bundle signature check failed \(file_missing\): policy\/veto\/crm\/tool\.rego/);

    const unsigned = runCli(["eval", "--bundle", BUNDLE, "--verification-key", key("es256-public")], jsonLines(write()));
    expect(unsigned.status).toBe(2);
    expect(unsigned.stderr).toMatch(/\(unsigned\)/);

    const rotating = runCli(
      ["eval", "--bundle", signedPath, "--verification-key", key("rs256-public"), "--verification-key", key("es256-public")],
      jsonLines(write()),
    );
    expect(rotating.status).toBe(0);
    expect(runCli(["eval", "--bundle", signedPath, "--verification-key", key("es256-public"), "--verification-alg", "ES256"], jsonLines(write())).status).toBe(0);
    const pinnedWrong = runCli(["eval", "--bundle", signedPath, "--verification-key", key("es256-public"), "--verification-alg", "RS256"], jsonLines(write()));
    expect(pinnedWrong.status).toBe(2);
    expect(pinnedWrong.stderr).toMatch(/RS256 cannot be used with an EC P-256 public key/);

    const missingKey = runCli(["eval", "--bundle", signedPath, "--verification-key", join(dir, "nope.pem")], jsonLines(write()));
    expect(missingKey.status).toBe(2);
    expect(missingKey.stderr).toMatch(/cannot read verification key/);
  });
});

describe("veto replay and veto hash --verification-key", () => {
  it("replay refuses an altered or unsigned bundle when a key is given (exit 2), and replays against the signed one", async () => {
    const signedPath = join(dir, "replay-signed.tar.gz");
    writeFileSync(signedPath, es256);
    const tamperedPath = join(dir, "replay-tampered.tar.gz");
    writeFileSync(tamperedPath, await withFile(es256, "policy/veto/crm/tool.rego", null));
    const log = join(dir, "replay-log.jsonl");
    expect(runCli(["eval", "--bundle", signedPath, "--log", log], jsonLines(write(), write({ amount: 9000 }))).status).toBe(0);

    const ok = runCli(["replay", "--bundle", signedPath, "--verification-key", key("es256-public"), log]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/replayed 2 of 2 decisions .*0 changed, 2 unchanged/);

    const tampered = runCli(["replay", "--bundle", tamperedPath, "--verification-key", key("es256-public"), log]);
    expect(tampered.status).toBe(2);
    expect(tampered.stdout).toBe("");
    expect(tampered.stderr).toMatch(/^veto: bundle signature check failed \(file_missing\): policy\/veto\/crm\/tool\.rego/);
    // Without a key the altered bundle is replayed, as before.
    expect(runCli(["replay", "--bundle", tamperedPath, log]).status).toBe(0);

    const unsigned = runCli(["replay", "--bundle", BUNDLE, "--verification-key", key("es256-public"), log]);
    expect(unsigned.status).toBe(2);
    expect(unsigned.stderr).toMatch(/\(unsigned\)/);
  });

  it("replayRecords: verificationKey refuses an altered bundle with BundleSignatureError", async () => {
    const altered = await withFile(es256, "policy/veto/crm/tool.rego", null);
    await expect(replayRecords([], { bundle: altered, verificationKey: pem("es256-public") })).rejects.toBeInstanceOf(BundleSignatureError);
    const report = await replayRecords([], { bundle: es256, verificationKey: pem("es256-public") });
    expect(report.bundle.hash).toBe(await bundleVersionHashOfTarball(es256));
  });

  it("hash prints the version hash of a bundle that verifies, and refuses one that does not (exit 2)", async () => {
    const signedPath = join(dir, "hash-signed.tar.gz");
    writeFileSync(signedPath, es256);
    const ok = runCli(["hash", signedPath, "--verification-key", key("es256-public")]);
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stdout.trim()).toBe(await bundleVersionHashOfTarball(es256));
    const tamperedPath = join(dir, "hash-tampered.tar.gz");
    writeFileSync(tamperedPath, await withFile(es256, "policy/veto/crm/tool.rego", null));
    const bad = runCli(["hash", tamperedPath, "--verification-key", key("es256-public")]);
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe("");
    expect(bad.stderr).toMatch(/^veto: bundle signature check failed \(file_missing\)/);
  });
});
