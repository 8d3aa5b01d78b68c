// Input that could exhaust the command line (docs/contract.md §8): lines of
// any length on `veto eval`'s standard input, oversized and deeply nested data
// files. Run as built (node dist/cli.js), with the peak memory of the child
// measured by the child itself (process.resourceUsage, preloaded).
import { spawn } from "node:child_process";
import { createWriteStream, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createGzip, gzipSync } from "node:zlib";
import fc from "fast-check";
import { pack } from "tar-stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadBundle } from "../../adapter/policy/bundle.js";
import { MAX_BUNDLE_UNPACKED_BYTES, readTarball } from "../../adapter/policy/bundle-hash.js";
import { readLines, type InputLine } from "../../adapter/common/line-reader.js";
import { DEFAULT_INPUT_LIMITS } from "../../adapter/call/input.js";
import { openFileLog, verifyLog } from "../../adapter/audit/index.js";
import { MAX_RECORD_LINE_BYTES } from "../../adapter/records/file/segments.js";
import { MAX_DATA_DEPTH } from "../../adapter/policy/data.js";
import { BUNDLE, bundleData, read, requireBundle, requireCli, runCli, write } from "../helpers/index.js";

let dir: string;
beforeAll(() => {
  requireBundle();
  requireCli();
  dir = mkdtempSync(join(tmpdir(), "veto-cli-limits-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const LIMIT = DEFAULT_INPUT_LIMITS.maxInputBytes;
const MAX_RSS = "veto-test-max-rss=";
/** Preloaded into the child: print its peak resident set size (KiB) on exit. */
const REPORT_RSS = `data:text/javascript,process.on("exit",()=>process.stderr.write("\\n${MAX_RSS}"+process.resourceUsage().maxRSS+"\\n"))`;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  /** Peak resident set size of the child, in KiB. */
  maxRssKiB: number;
}

/** Run `node dist/cli.js args` with stdin streamed from `input` (never held whole here either). */
function runStreaming(args: string[], input: Iterable<Buffer | string> | AsyncIterable<Buffer | string>): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn("node", [`--import=${REPORT_RSS}`, requireCli(), ...args], { stdio: ["pipe", "pipe", "pipe"] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    // The child may stop reading early (it must not, but then EPIPE is the test's failure, not a crash here).
    child.stdin.on("error", () => {});
    Readable.from(input).pipe(child.stdin);
    child.on("error", reject);
    child.on("close", (status) => {
      const stderr = Buffer.concat(err).toString("utf8");
      const rss = new RegExp(`${MAX_RSS}(\\d+)`).exec(stderr);
      resolve({
        status,
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: stderr.replace(new RegExp(`\\n${MAX_RSS}\\d+\\n`), ""),
        maxRssKiB: rss === null ? Number.NaN : Number(rss[1]),
      });
    });
  });
}

/** `size` bytes of 'x' in 1 MiB chunks: a string that is never built. */
function* filler(size: number, byte = 0x78): Generator<Buffer> {
  const chunk = Buffer.alloc(1 << 20, byte);
  for (let sent = 0; sent < size; sent += chunk.length) yield size - sent >= chunk.length ? chunk : chunk.subarray(0, size - sent);
}

type Decision = { action: string; reason: string; reasons: { code: string }[] };
const decisions = (stdout: string): Decision[] =>
  stdout === ""
    ? []
    : stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Decision);

describe("veto eval: lines of any length", () => {
  it("a 300 MB line is denied as invalid_input without being held, and the next line is decided; peak memory stays bounded", async () => {
    const size = 300 * 1024 * 1024;
    const run = await runStreaming(
      ["eval", "--bundle", BUNDLE, "--records", join(dir, "big.jsonl")],
      (function* () {
        yield '{"tool":"crm.read","arguments":{"note":"';
        yield* filler(size);
        yield `"},"context":{}}\n${JSON.stringify(read())}\n`;
      })(),
    );
    // Measured: about 110 MiB (an empty input: about 70 MiB); reading the line whole took about 2 GiB.
    console.log(`veto eval, one 300 MB line then one call: peak RSS ${Math.round(run.maxRssKiB / 1024)} MiB`);
    expect(run.maxRssKiB).toBeLessThan(200 * 1024);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(run.status).toBe(0);
    const answers = decisions(run.stdout);
    expect(answers.map((d) => [d.action, d.reasons.map((r) => r.code)])).toEqual([
      ["deny", ["invalid_input"]],
      ["allow", ["read_only"]],
    ]);
    expect(answers[0]!.reason).toContain(`longer than ${LIMIT} bytes`);
  });

  it("10^6-deep nesting in a line is one invalid_input deny, no stack trace", async () => {
    const depth = 1_000_000;
    const run = await runStreaming(
      ["eval", "--bundle", BUNDLE, "--records", join(dir, "deep.jsonl")],
      [`{"tool":"crm.read","arguments":{"x":${"[".repeat(depth)}${"]".repeat(depth)}},"context":{}}\n`, `${JSON.stringify(read())}\n`],
    );
    expect(run.stderr).not.toMatch(/\n\s+at |Maximum call stack/);
    expect(run.status).toBe(0);
    expect(decisions(run.stdout).map((d) => d.reasons.map((r) => r.code))).toEqual([["invalid_input"], ["read_only"]]);
  });

  it("nesting within the line limit but over the depth limit is refused naming the depth", async () => {
    const depth = Math.floor((LIMIT - 100) / 2);
    const line = `{"tool":"crm.read","arguments":{"x":${"[".repeat(depth)}${"]".repeat(depth)}},"context":{}}`;
    expect(Buffer.byteLength(line)).toBeLessThanOrEqual(LIMIT);
    const run = await runStreaming(["eval", "--bundle", BUNDLE, "--records", join(dir, "deep2.jsonl")], [`${line}\n`]);
    expect(run.status).toBe(0);
    const [answer] = decisions(run.stdout);
    expect(answer?.reasons.map((r) => r.code)).toEqual(["invalid_input"]);
    expect(answer?.reason).toMatch(/nests deeper than 12 levels/);
  });

  it("seeded mixes of lines around the limit, CRLF endings and chunking: one answer per line, in order", async () => {
    // fast-check prints the seed of a failing run; rerun with { seed, path } to reproduce it.
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            kind: fc.constantFrom("call", "blank", "padded", "long", "not-json"),
            extra: fc.integer({ min: -2, max: 3 }),
            crlf: fc.boolean(),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        fc.integer({ min: 1, max: 70_000 }),
        fc.boolean(),
        async (lines, chunkSize, finalNewline) => {
          const expected: string[] = [];
          const texts = lines.map(({ kind, extra, crlf }, i) => {
            const call = JSON.stringify(write({ recordId: `opp_${i}` }));
            let text: string;
            if (kind === "call") text = call;
            else if (kind === "blank") text = " ".repeat(Math.max(0, extra));
            else if (kind === "not-json") text = "{not json";
            else {
              // White space padding to exactly LIMIT + extra bytes ("padded") or far beyond ("long").
              const target = kind === "padded" ? LIMIT + extra : LIMIT * 3 + extra;
              text = call + " ".repeat(target - Buffer.byteLength(call));
            }
            const bytes = Buffer.byteLength(text);
            expected.push(bytes > LIMIT ? "too long" : text.trim() === "" ? "blank" : kind === "not-json" ? "not JSON" : "decided");
            return text + (crlf ? "\r\n" : "\n");
          });
          let input = texts.join("");
          if (!finalNewline) {
            input = input.replace(/\r?\n$/, "");
            // The empty text after the last newline is not a line.
            if (texts.at(-1)?.replace(/\r?\n$/, "") === "") expected.pop();
          }
          const bytes = Buffer.from(input);
          const chunks: Buffer[] = [];
          for (let at = 0; at < bytes.length; at += chunkSize) chunks.push(bytes.subarray(at, at + chunkSize));
          const run = await runStreaming(["eval", "--bundle", BUNDLE, "--records", join(dir, "mix.jsonl")], chunks);
          expect(run.status).toBe(0);
          const got = decisions(run.stdout).map((d) =>
            /longer than/.test(d.reason)
              ? "too long"
              : /blank/.test(d.reason)
                ? "blank"
                : /not valid JSON/.test(d.reason)
                  ? "not JSON"
                  : d.reasons[0]?.code === "invalid_input"
                    ? `invalid: ${d.reason}`
                    : "decided",
          );
          expect(got).toEqual(expected);
        },
      ),
      { numRuns: 8, seed: Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31) },
    );
  });
});

describe("readLines", () => {
  /** What readLines must yield: split on "\n", a "\r" before it dropped, over-limit and non-UTF-8 lines unreadable. */
  function reference(input: Buffer, max: number): InputLine[] {
    const out: InputLine[] = [];
    let start = 0;
    while (start < input.length) {
      let end = input.indexOf(0x0a, start);
      const next = end === -1 ? input.length : end + 1;
      if (end === -1) end = input.length;
      let line = input.subarray(start, end);
      if (line.at(-1) === 0x0d) line = line.subarray(0, -1);
      if (line.length > max) out.push({ unreadable: "too long" });
      else {
        try {
          out.push({ text: new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(line) });
        } catch {
          out.push({ unreadable: "not UTF-8" });
        }
      }
      start = next;
    }
    return out;
  }

  it("matches the reference for any bytes, limit and chunking (seeded)", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(0x0a, 0x0d, 0x61, 0x20, 0xc3, 0xa9, 0xff, 0xe2, 0x82, 0xac), { maxLength: 200 }),
        fc.integer({ min: 0, max: 12 }),
        fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 8 }),
        async (byteList, max, sizes) => {
          const input = Buffer.from(byteList);
          const chunks: Buffer[] = [];
          for (let at = 0, i = 0; at < input.length; i++) {
            const size = sizes[i % sizes.length]!;
            chunks.push(input.subarray(at, at + size));
            at += size;
          }
          const got: InputLine[] = [];
          for await (const line of readLines(Readable.from(chunks), max)) {
            got.push(line.text === undefined ? { unreadable: /longer/.test(line.unreadable) ? "too long" : "not UTF-8" } : line);
          }
          expect(got).toEqual(reference(input, max));
        },
      ),
      { numRuns: 2000, seed: Number(process.env["VETO_TEST_SEED"] ?? Date.now() % 2 ** 31) },
    );
  });

  it("holds at most the limit of a line that never ends", async () => {
    const max = 1024;
    let answered = -1;
    let fed = 0;
    const input = (async function* () {
      for (; fed < 100; fed++) yield Buffer.alloc(4096, 0x61);
    })();
    for await (const line of readLines(input, max)) {
      // Answered while the line is still arriving, not at its end.
      answered = fed;
      expect(line.unreadable).toMatch(/longer than 1024 bytes/);
    }
    expect(answered).toBe(0);
  });
});

/** A .tar.gz of `files`, streamed into gzip (a large entry is never held whole here). */
async function tarball(files: readonly { name: string; content?: Buffer; size?: number }[]): Promise<Buffer> {
  const p = pack();
  const out = Readable.from(p.pipe(createGzip()));
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const chunk of out) chunks.push(chunk as Buffer);
  })();
  for (const f of files) {
    if (f.content !== undefined) {
      p.entry({ name: f.name }, f.content);
      continue;
    }
    // `size` zero bytes, written in pieces.
    const entry = p.entry({ name: f.name, size: f.size ?? 0 });
    for (const piece of filler(f.size ?? 0, 0)) if (!entry.write(piece)) await new Promise<void>((r) => entry.once("drain", () => r()));
    entry.end(() => {});
  }
  p.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** An uncompressed tar of `files`. */
async function readableTar(files: readonly { name: string; content: Buffer }[]): Promise<Buffer> {
  const p = pack();
  for (const f of files) p.entry({ name: f.name }, f.content);
  p.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of p) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const deepJson = (depth: number): string => `{"veto":{"config":{}},"x":${"[".repeat(depth)}${"]".repeat(depth)}}`;
const testBundleFiles = async (): Promise<{ name: string; content: Buffer }[]> => readTarball(readFileSync(BUNDLE));

describe("files the command line reads: size and nesting limits, named in the message", () => {
  it("--data with 10^6-deep nesting: eval and replay exit 2 naming the file and the limit, no stack trace", () => {
    const file = join(dir, "deep-data.json");
    writeFileSync(file, deepJson(1_000_000));
    const log = join(dir, "empty.log");
    writeFileSync(log, "");
    for (const args of [
      ["eval", "--bundle", BUNDLE, "--data", file],
      ["replay", "--bundle", BUNDLE, "--data", file, log],
    ]) {
      const r = runCli(args, `${JSON.stringify(read())}\n`);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe("");
      expect(r.stderr.trim()).toBe(
        `veto: data document in file ${file} is unusable: it nests objects and arrays deeper than ${MAX_DATA_DEPTH} levels (the limit), or refers to itself`,
      );
    }
  });

  it("--data at exactly the depth limit is used; one level more is refused", () => {
    const at = bundleData() as Record<string, unknown>;
    // The document is level 1, so MAX_DATA_DEPTH - 1 arrays under it reach the limit.
    let nested: unknown = [];
    for (let i = 2; i < MAX_DATA_DEPTH; i++) nested = [nested];
    at["x"] = nested;
    const ok = join(dir, "at-limit.json");
    writeFileSync(ok, JSON.stringify(at));
    expect(
      runCli(["eval", "--bundle", BUNDLE, "--data", ok, "--records", join(dir, "records.jsonl")], `${JSON.stringify(read())}\n`).status,
    ).toBe(0);
    at["x"] = [nested];
    const over = join(dir, "over-limit.json");
    writeFileSync(over, JSON.stringify(at));
    const r = runCli(["eval", "--bundle", BUNDLE, "--data", over], "");
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/deeper than 1000 levels/);
  });

  it("--data errors name the file, never options.data: eval and replay, every kind of problem", () => {
    const log = join(dir, "empty2.log");
    writeFileSync(log, "");
    const cases: [string, string | null, RegExp][] = [
      ["missing.json", null, /^veto: cannot read data file \S+missing\.json: ENOENT/],
      ["not-json.json", "{", /^veto: data file \S+not-json\.json is not valid JSON/],
      ["array.json", "[]", /^veto: data file \S+array\.json is not a JSON object/],
      [
        "shape.json",
        JSON.stringify({ veto: { config: { environments: 5 } } }),
        /^veto: data document in file \S+shape\.json is unusable: .*veto\.config\.environments/,
      ],
      [
        "infinite.json",
        JSON.stringify({ veto: { config: { escalation: { window_seconds: -1 } } } }),
        /^veto: data document in file \S+infinite\.json is unusable/,
      ],
    ];
    for (const [name, content, message] of cases) {
      const file = join(dir, name);
      if (content !== null) writeFileSync(file, content);
      for (const args of [
        ["eval", "--bundle", BUNDLE, "--data", file],
        ["replay", "--bundle", BUNDLE, "--data", file, log],
      ]) {
        const r = runCli(args, "");
        expect(r.status, `${args[0]} ${name}`).toBe(2);
        expect(r.stderr.trim(), `${args[0]} ${name}`).toMatch(message);
        expect(r.stderr).not.toMatch(/options\.data/);
      }
    }
  });

  it("a file over its size limit is refused from its size, before it is read: --data, the bundle, hash, a key; /dev/zero refused as no regular file", async () => {
    // Sparse: 100 MB on paper, nothing on disk.
    const big = join(dir, "big.bin");
    writeFileSync(big, "");
    truncateSync(big, 100 * 1024 * 1024);
    const runs: [string[], RegExp][] = [
      [["eval", "--bundle", BUNDLE, "--data", big], /^veto: data file \S+ is unusable: it is larger than 67108864 bytes \(the limit\)$/],
      [["eval", "--bundle", big], /^veto: cannot read bundle \S+: it is larger than 67108864 bytes \(the limit\)$/],
      [["hash", big], /^veto: bundle \S+ is unusable: it is larger than 67108864 bytes \(the limit\)$/],
      [
        ["eval", "--bundle", BUNDLE, "--verification-key", big],
        /^veto: verification key \S+ is unusable: it is larger than 1048576 bytes \(the limit\)$/,
      ],
      // Not a regular file: refused at once, never read.
      [
        ["eval", "--bundle", BUNDLE, "--data", "/dev/zero"],
        /^veto: cannot read data file \/dev\/zero: \/dev\/zero is not a regular file \(it is a character device\)/,
      ],
      [["hash", "/dev/zero"], /\/dev\/zero is not a regular file \(it is a character device\)/],
    ];
    for (const [args, message] of runs) {
      const r = await runStreaming(args, []);
      expect(r.status, args.join(" ")).toBe(2);
      expect(r.stderr.trim(), args.join(" ")).toMatch(message);
      // Refused from its size: never read into memory.
      expect(r.maxRssKiB, args.join(" ")).toBeLessThan(200 * 1024);
    }
  });

  it("a bundle whose data.json nests 10^6 deep is refused naming the file, the bundle and the limit", async () => {
    const files = (await testBundleFiles()).filter((f) => f.name !== "data.json");
    const bundle = join(dir, "deep-bundle.tar.gz");
    writeFileSync(bundle, await tarball([...files, { name: "data.json", content: Buffer.from(deepJson(1_000_000)) }]));
    const r = runCli(["eval", "--bundle", bundle], "");
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      `veto: bundle ${bundle} data file data.json nests objects and arrays deeper than ${MAX_DATA_DEPTH} levels of the data document (the limit)`,
    );
    // A nested data file counts from its path: data.veto.config.x is level 4 before its own nesting.
    const nested = join(dir, "deep-nested-bundle.tar.gz");
    let value: unknown = [];
    for (let i = 1; i < MAX_DATA_DEPTH - 3; i++) value = [value];
    writeFileSync(
      nested,
      await tarball([...(await testBundleFiles()), { name: "veto/config/x/data.json", content: Buffer.from(JSON.stringify(value)) }]),
    );
    expect(runCli(["eval", "--bundle", nested, "--records", join(dir, "records.jsonl")], `${JSON.stringify(read())}\n`).status).toBe(0);
    writeFileSync(
      nested,
      await tarball([...(await testBundleFiles()), { name: "veto/config/x/data.json", content: Buffer.from(JSON.stringify([value])) }]),
    );
    expect(runCli(["eval", "--bundle", nested], "").stderr).toMatch(
      /data file veto\/config\/x\/data\.json nests .* deeper than 1000 levels/,
    );
  });

  it("a tar entry larger than the unpacked limit is refused from its header, before its content is read", async () => {
    // One header claiming 1 TiB, followed by no content at all: refused from
    // the header (reading the content would fail on the missing bytes instead).
    const tar = await readableTar([{ name: "small", content: Buffer.from("0123456789") }]);
    const claimed = 2 ** 40;
    tar.write(claimed.toString(8).padStart(11, "0") + "\0", 124, 12, "latin1");
    tar.fill(" ", 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[i]!;
    tar.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, 8, "latin1");
    await expect(loadBundle(gzipSync(tar.subarray(0, 512)))).rejects.toThrow(
      `not a readable .tar.gz: bundle unpacks to more than ${MAX_BUNDLE_UNPACKED_BYTES} bytes`,
    );
    // A real gzip bomb: zeros compress about 1000:1, the bundle is small, its entry is not.
    const files = await testBundleFiles();
    const bomb = await tarball([...files, { name: "zeros.bin", size: MAX_BUNDLE_UNPACKED_BYTES + 1 }]);
    expect(bomb.length).toBeLessThan(1024 * 1024);
    await expect(loadBundle(bomb)).rejects.toThrow(`bundle unpacks to more than ${MAX_BUNDLE_UNPACKED_BYTES} bytes`);
  });

  it("every entry's 512-byte header counts towards the limit, so countless empty entries are refused too", async () => {
    const limit = 1024 * 1024;
    const empties = Array.from({ length: limit / 512 + 1 }, (_, i) => ({ name: `e/${i}`, content: Buffer.alloc(0) }));
    await expect(readTarball(await tarball(empties), limit)).rejects.toThrow(`bundle unpacks to more than ${limit} bytes`);
    await expect(readTarball(await tarball(empties.slice(1)), limit)).resolves.toHaveLength(limit / 512);
  });
});

describe("decision logs: a line longer than any record", () => {
  it("veto log verify stops at a 150 MB line without holding it, in linear time", async () => {
    const log = join(dir, "long-line.log");
    const out = createWriteStream(log);
    for (const piece of filler(150 * 1024 * 1024)) if (!out.write(piece)) await new Promise<void>((r) => out.once("drain", () => r()));
    await new Promise<void>((r) => out.end("\n", () => r()));
    const started = Date.now();
    const r = await runStreaming(["log", "verify", log], []);
    const seconds = (Date.now() - started) / 1000;
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe(`veto: log verify failed: ${log}: line 1: longer than ${MAX_RECORD_LINE_BYTES} bytes, which no record is`);
    console.log(`veto log verify, one 150 MB line: ${seconds.toFixed(1)} s, peak RSS ${Math.round(r.maxRssKiB / 1024)} MiB`);
    // Joining the line chunk by chunk took a minute and a GiB for 200 MB.
    expect(r.maxRssKiB).toBeLessThan(300 * 1024);
    expect(seconds).toBeLessThan(30);
    rmSync(log);
  });

  it("the writer refuses a record longer than a reader accepts (record_invalid), and the log stays usable", async () => {
    const path = join(dir, "writer.log");
    const log = await openFileLog(path);
    try {
      await expect(log.write({ type: "decision", note: "x".repeat(MAX_RECORD_LINE_BYTES) })).rejects.toMatchObject({
        code: "record_invalid",
      });
      await log.write({ type: "decision", note: "fits" });
    } finally {
      await log.close();
    }
    expect(await verifyLog([path])).toMatchObject({ ok: true, count: 1 });
  });
});
