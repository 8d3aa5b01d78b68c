// The library's own paths (adapter/common/files.ts): a bundle, a decision log and
// its lock and continuations are regular files, or they are refused at once
// with a typed error or a failed verification, never read forever (/dev/zero)
// or waited on (a FIFO). The command line's side is test/cli/cli-paths.test.ts.
import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createVeto, openFileLog } from "../../adapter/index.js";
import { loadBundle } from "../../adapter/policy/index.js";
import { readLog, verifyLog } from "../../adapter/audit/index.js";

let dir: string;
let paths: [string, string][];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "veto-files-"));
  await mkdir(join(dir, "folder"));
  spawnSync("mkfifo", [join(dir, "fifo")]);
  await symlink("/dev/zero", join(dir, "to-zero"));
  await symlink(join(dir, "fifo"), join(dir, "to-fifo"));
  paths = [
    ["a directory", join(dir, "folder")],
    ["a FIFO", join(dir, "fifo")],
    ["/dev/zero", "/dev/zero"],
    ["/dev/full", "/dev/full"],
    ["/dev/null", "/dev/null"],
    ["a symlink to /dev/zero", join(dir, "to-zero")],
    ["a symlink to a FIFO", join(dir, "to-fifo")],
  ];
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Settles well within the test timeout, or the race says it hung. */
function soon<T>(promise: Promise<T>): Promise<T> {
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error("hung: not answered within 5 s")), 5_000)),
  ]);
}

describe("paths that are not regular files", () => {
  it("loadBundle and createVeto refuse them: bundle_unusable, naming what the path is", async () => {
    for (const [kind, path] of paths) {
      await expect(soon(loadBundle(path)), kind).rejects.toMatchObject({
        code: "bundle_unusable",
        message: expect.stringMatching(/is not a regular file \(it is /),
      });
      await expect(soon(createVeto({ bundle: path })), kind).rejects.toMatchObject({ code: "bundle_unusable" });
    }
  });

  it("openFileLog refuses them before taking a lock beside them: invalid_options", async () => {
    for (const [kind, path] of paths) {
      await expect(soon(openFileLog(path)), kind).rejects.toMatchObject({
        code: "invalid_options",
        message: expect.stringMatching(/is not a regular file/),
      });
    }
  });

  it("verifyLog answers that the log does not verify; readLog rejects with LogCorruptError", async () => {
    for (const [kind, path] of paths) {
      expect(await soon(verifyLog([path])), kind).toMatchObject({
        ok: false,
        file: path,
        line: 0,
        reason: expect.stringMatching(/^cannot read file: not a regular file \(it is /),
      });
      await expect(soon(readLog([path])), kind).rejects.toMatchObject({ code: "log_corrupt" });
    }
  });
});
