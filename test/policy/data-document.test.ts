// The data document is checked when it loads (docs/contract.md §2): through
// createVeto({ data }), the bundle's own data.json and `--data` on the CLI, a
// document without the veto.config wrapper, a config without tools,
// environments or tenants, or a threshold, limit or escalation value that is
// not a finite non-negative number is refused as data_unusable naming the JSON
// path (and the file, for files). Generated: VETO_DATA_SEED and VETO_DATA_RUNS
// override; the seed is printed.
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BundleLoadError, createVeto } from "../../adapter/index.js";
import { readPolicyData } from "../../adapter/policy/data.js";
import { BUNDLE, bundleData, requireBundle, runCli } from "../helpers/index.js";

const SEED = Number(process.env["VETO_DATA_SEED"] ?? Date.now() % 2 ** 31);
const RUNS = Number(process.env["VETO_DATA_RUNS"] ?? 300);

/** A bad document and the JSON path its message must name. */
interface BadDocument {
  readonly document: unknown;
  readonly path: RegExp;
  readonly what: string;
}

const TENANTS = ["acme", "globex", "initech"] as const;
const NUMBERS = ["approval_threshold", "max_amount"] as const;
const REQUIRED = ["tools", "environments", "tenants"] as const;

/** Values that are not finite non-negative numbers (as JSON can carry them, plus what only an object can). */
const notANumber = fc.oneof(
  fc.string().map((s) => s),
  fc.constantFrom("5000", "", "0", "1e3", null, true, false, [], [5000], { value: 5000 }),
  fc.double({ max: -Number.MIN_VALUE, noNaN: true }),
  fc.integer({ max: -1 }),
);
const notAFiniteNumber = fc.oneof(notANumber, fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY));

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

const badDocument = (finiteOnly: boolean): fc.Arbitrary<BadDocument> => {
  const value = finiteOnly ? notANumber : notAFiniteNumber;
  return fc.oneof(
    // The configuration given bare, or under a misspelt wrapper.
    fc.constantFrom("bare", "config only", "veto only", "typo", "config null").map((kind) => {
      const config = bundleData().veto.config;
      const document =
        kind === "bare" ? config : kind === "config only" ? { config } : kind === "veto only" ? { veto: config } : kind === "typo" ? { veto: { confg: config } } : { veto: { config: null } };
      return { document, path: /veto\.config/, what: `wrapper: ${kind}` };
    }),
    // A required part missing.
    fc.constantFrom(...REQUIRED).map((key) => {
      const data = bundleData();
      delete data.veto.config[key];
      return { document: data, path: new RegExp(`veto\\.config\\.${key}`), what: `no ${key}` };
    }),
    // A tenant's threshold or limit of the wrong kind.
    fc.tuple(fc.constantFrom(...TENANTS), fc.constantFrom(...NUMBERS), value).map(([tenant, key, bad]) => {
      const data = bundleData();
      (data.veto.config["tenants"] as Record<string, Record<string, unknown>>)[tenant]![key] = bad;
      return { document: data, path: new RegExp(escape(`veto.config.tenants.${tenant}.${key}`)), what: `${tenant}.${key} = ${JSON.stringify(bad)}` };
    }),
    // An escalation value of the wrong kind (window_seconds must also be above 0).
    fc.tuple(fc.constantFrom("deny_threshold", "window_seconds"), value).map(([key, bad]) => {
      const data = bundleData();
      data.veto.config["escalation"] = { deny_threshold: 3, window_seconds: 900, [key]: bad };
      return { document: data, path: new RegExp(escape(`veto.config.escalation.${key}`)), what: `escalation.${key} = ${JSON.stringify(bad)}` };
    }),
  );
};

/** The message names the path, or (for a value that only an object can hold) data.<path>. */
function namesPath(message: string, bad: BadDocument): boolean {
  return bad.path.test(message) || bad.path.test(message.replace(/\bdata\./, ""));
}

let dir: string;
beforeAll(() => {
  requireBundle();
  dir = mkdtempSync(join(tmpdir(), "veto-data-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe(`data documents: ${RUNS} generated bad documents (seed ${SEED}, VETO_DATA_SEED to replay)`, () => {
  it("readPolicyData refuses each as data_unusable naming the JSON path", () => {
    console.log(`data document property: seed ${SEED}, ${RUNS} runs (VETO_DATA_SEED=${SEED} VETO_DATA_RUNS=${RUNS} to replay)`);
    fc.assert(
      fc.property(badDocument(false), (bad) => {
        let error: unknown;
        try {
          readPolicyData(bad.document, "under test");
        } catch (e) {
          error = e;
        }
        expect(error, bad.what).toBeInstanceOf(BundleLoadError);
        expect((error as BundleLoadError).code, bad.what).toBe("data_unusable");
        expect(namesPath((error as Error).message, bad), `${bad.what}: ${(error as Error).message}`).toBe(true);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("createVeto({ data }) refuses a sample of them", async () => {
    const sample = fc.sample(badDocument(false), { seed: SEED, numRuns: 20 });
    for (const bad of sample) {
      const error = await createVeto({ bundle: BUNDLE, data: bad.document as Record<string, unknown> }).catch((e: unknown) => e);
      expect(error, bad.what).toBeInstanceOf(BundleLoadError);
      expect((error as BundleLoadError).code, bad.what).toBe("data_unusable");
      expect(namesPath((error as Error).message, bad), `${bad.what}: ${(error as Error).message}`).toBe(true);
    }
  });

  it("the forgotten wrapper says how to write it, not unknown_environment", () => {
    expect(() => readPolicyData(bundleData().veto.config, "under test")).toThrow(/no veto\.config: .*replaces the bundle's data\.json whole/);
  });

  it("`--data` on eval and replay refuses a sample, naming the file and the path", () => {
    const log = join(dir, "empty.log");
    writeFileSync(log, "");
    const sample = fc.sample(badDocument(true), { seed: SEED + 1, numRuns: 6 });
    sample.forEach((bad, i) => {
      const file = join(dir, `bad-${i}.json`);
      writeFileSync(file, JSON.stringify(bad.document));
      for (const args of [["eval", "--bundle", BUNDLE, "--data", file], ["replay", "--bundle", BUNDLE, "--data", file, log]]) {
        const r = runCli(args, "");
        expect(r.status, `${args[0]} ${bad.what}`).toBe(2);
        expect(r.stderr, bad.what).toContain(`data document in file ${file} is unusable`);
        expect(namesPath(r.stderr, bad), `${bad.what}: ${r.stderr}`).toBe(true);
      }
    });
  });

  it("a bundle whose own data.json is bad is refused, naming the bundle and the path", async () => {
    const sample = fc.sample(badDocument(true), { seed: SEED + 2, numRuns: 4 });
    const unpacked = join(dir, "unpacked");
    execFileSync("mkdir", ["-p", unpacked]);
    execFileSync("tar", ["-xzf", BUNDLE, "-C", unpacked], { stdio: "pipe" }); // GNU tar warns about the leading "/"
    const files = execFileSync("tar", ["-tzf", BUNDLE], { encoding: "utf8", stdio: "pipe" }).trim().split("\n").map((f) => f.replace(/^\/+/, ""));
    expect(files).toContain("data.json");
    for (const [i, bad] of sample.entries()) {
      writeFileSync(join(unpacked, "data.json"), JSON.stringify(bad.document));
      const tarball = join(dir, `bad-${i}.tar.gz`);
      execFileSync("tar", ["-czf", tarball, "-C", unpacked, ...files], { stdio: "pipe" });
      const error = await createVeto({ bundle: tarball }).catch((e: unknown) => e);
      expect(error, bad.what).toBeInstanceOf(BundleLoadError);
      const document = bad.document;
      if (document !== null && typeof document === "object" && Object.keys(document).some((key) => key !== "veto")) {
        // Data outside the manifest's roots (["veto"]): OPA refuses such a bundle, and so does the adapter, before reading the data.
        expect((error as BundleLoadError).code, bad.what).toBe("bundle_unusable");
        continue;
      }
      expect((error as BundleLoadError).code, bad.what).toBe("data_unusable");
      expect((error as Error).message, bad.what).toMatch(/of bundle/);
      expect(namesPath((error as Error).message, bad), `${bad.what}: ${(error as Error).message}`).toBe(true);
    }
  });

  it("a document's own veto.derived never reaches the module: the adapter fills it (docs/contract.md §2)", () => {
    const data = bundleData();
    const forged = { from: { sensitive_fields: data.veto.config["sensitive_fields"] }, sensitive_star: {}, planted: true };
    const text = readPolicyData({ ...data, veto: { ...data.veto, derived: forged } }, "forged").text.toText();
    expect(JSON.parse(text)).toEqual(data);
    expect(text).toBe(readPolicyData(data, "plain").text.toText());
  });

  it("good documents still load: 0 thresholds, no escalation, extra keys", async () => {
    const data = bundleData();
    (data.veto.config["tenants"] as Record<string, Record<string, unknown>>)["acme"]!["approval_threshold"] = 0;
    delete data.veto.config["escalation"];
    data.veto.config["note"] = "kept";
    expect(readPolicyData(data, "good").windowSeconds).toBe(900);
    const veto = await createVeto({ bundle: BUNDLE, data });
    await veto.close();
  });
});
