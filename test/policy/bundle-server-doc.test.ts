// The bundle server docs/deploying-policy.md shows for trying hot reload,
// taken from the doc as written and run as a user would (`node
// bundle-server.mjs FILE`), against the adapter's own polling: an unchanged
// file is a 304 and the bundle in force stays; a file replaced by another
// bundle has a new ETag and is activated; a missing file is refused and the
// bundle in force stays.
import { spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleVersionHashOfTarball } from "../../adapter/policy/index.js";
import { ROOT, makeVeto, requireBundle, write } from "../helpers/index.js";

const DOC = resolve(ROOT, "docs/deploying-policy.md");
/** The shipped bundle: the same policy with another data document, so another version hash. */
const OTHER_BUNDLE = resolve(ROOT, "bundles/crm.tar.gz");

/** The ```js block of the doc that is the bundle server. */
function documentedServer(): string {
  const blocks = [...readFileSync(DOC, "utf8").matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const server = blocks.filter((b) => b.startsWith("// bundle-server.mjs"));
  expect(server, "docs/deploying-policy.md has one ```js block starting with // bundle-server.mjs").toHaveLength(1);
  return server[0]!;
}

let dir: string;
let child: ChildProcess | undefined;
let url: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "veto-bundle-server-doc-"));
  writeFileSync(join(dir, "bundle-server.mjs"), documentedServer());
  copyFileSync(requireBundle(), join(dir, "crm.tar.gz"));
  const started = spawn(process.execPath, ["bundle-server.mjs", "./crm.tar.gz"], { cwd: dir, env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "inherit"] });
  child = started;
  const lines = createInterface({ input: started.stdout });
  const first = await new Promise<string>((resolveLine, reject) => {
    lines.once("line", resolveLine);
    started.once("exit", (code) => reject(new Error(`bundle-server.mjs exited with ${code} before it listened`)));
  });
  const match = /^serving \.\/crm\.tar\.gz at (http:\/\/127\.0\.0\.1:\d+\/crm\.tar\.gz)$/.exec(first);
  expect(match, first).not.toBeNull();
  url = match![1]!;
});

afterAll(() => {
  child?.kill();
  rmSync(dir, { recursive: true, force: true });
});

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe("the documented bundle server (docs/deploying-policy.md) with the adapter's polling", () => {
  it("304 keeps the bundle in force; a replaced file is a new ETag and is activated; a missing file is refused", async () => {
    const first = await bundleVersionHashOfTarball(readFileSync(requireBundle()));
    const second = await bundleVersionHashOfTarball(readFileSync(OTHER_BUNDLE));
    expect(second).not.toBe(first);

    const t = await makeVeto({ bundle: { url, pollIntervalMs: 3_600_000 } });
    try {
      expect(t.veto.bundle.hash).toBe(first);
      for (let i = 0; i < 3; i++) expect(await t.veto.refreshBundle()).toEqual({ status: "not_modified" });
      expect((await t.veto.protect(write())).bundle.hash).toBe(first);

      // Published as the doc says: copied beside it, then renamed over it.
      copyFileSync(OTHER_BUNDLE, join(dir, "crm.tar.gz.tmp"));
      renameSync(join(dir, "crm.tar.gz.tmp"), join(dir, "crm.tar.gz"));
      expect(await t.veto.refreshBundle()).toMatchObject({ status: "activated", version: { hash: second }, previous: { hash: first } });
      expect((await t.veto.protect(write())).bundle.hash).toBe(second);
      expect(await t.veto.refreshBundle()).toEqual({ status: "not_modified" });

      unlinkSync(join(dir, "crm.tar.gz"));
      expect(await t.veto.refreshBundle()).toMatchObject({ status: "rejected", error: { message: expect.stringMatching(/HTTP 503/) } });
      expect(t.veto.bundle.hash).toBe(second);
    } finally {
      await t.veto.close();
    }
  });

  it("the poller on its own picks up the replaced file", async () => {
    copyFileSync(requireBundle(), join(dir, "crm.tar.gz"));
    const t = await makeVeto({ bundle: { url, pollIntervalMs: 20 } });
    try {
      const first = t.veto.bundle.hash;
      await new Promise((r) => setTimeout(r, 100)); // several polls: each a 304
      expect(t.veto.bundle.hash).toBe(first);
      expect(t.logLines.filter((l) => l["msg"] === "bundle activated")).toHaveLength(1);
      copyFileSync(OTHER_BUNDLE, join(dir, "crm.tar.gz.tmp"));
      renameSync(join(dir, "crm.tar.gz.tmp"), join(dir, "crm.tar.gz"));
      const second = await bundleVersionHashOfTarball(readFileSync(OTHER_BUNDLE));
      await until(() => t.veto.bundle.hash === second, "the poller to activate the replaced bundle");
      expect(t.logLines.filter((l) => l["msg"] === "bundle activated")).toHaveLength(2);
    } finally {
      await t.veto.close();
    }
  });
});
