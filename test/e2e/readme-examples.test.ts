// The README's quick start is examples/quickstart.mjs, verbatim: the file is
// what test/e2e/pack.test.ts runs in a freshly installed project, so the
// README block runs as pasted.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, requireBundle, requireCli } from "../helpers/index.js";
import { policyReasonCodes } from "../helpers/reason-codes.js";

/**
 * Every command the README shows: the lines of its ```sh blocks, and the
 * `make …`, `node …` and `veto …` spans of its prose, with whitespace joined.
 */
function readmeCommands(): string[] {
  const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
  const commands = new Set<string>();
  for (const block of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
    for (const line of block[1]!.split("\n")) {
      const command = line.replace(/\s+#.*$/, "").trim();
      if (command !== "") commands.add(command);
    }
  }
  const prose = readme.replace(/```[\s\S]*?```/g, "");
  for (const m of prose.matchAll(/`((?:make|node|npx veto|veto) [^`]+)`/g)) commands.add(m[1]!.replace(/\s+/g, " ").trim());
  return [...commands];
}

/** The Makefile's targets. */
function makeTargets(): Set<string> {
  const makefile = readFileSync(resolve(ROOT, "Makefile"), "utf8");
  return new Set([...makefile.matchAll(/^([a-zA-Z][\w-]*):/gm)].map((m) => m[1]!));
}

/** `veto SUB [SUB2] args`, `npx veto …` or `node dist/cli.js …`: the subcommand words and the flags. */
function vetoCommand(command: string): { sub: string[]; flags: string[] } | undefined {
  const m = /^(?:npx veto|veto|node dist\/cli\.js) (.+)$/.exec(command);
  if (m === null) return undefined;
  const words = m[1]!.split(" ");
  const sub = ["log", "db"].includes(words[0]!) ? words.slice(0, 2) : words.slice(0, 1);
  return { sub, flags: [...new Set(words.filter((w) => /^\[?--[a-z-]+/.test(w)).map((w) => /--[a-z-]+/.exec(w)![0]))] };
}

describe("README examples", () => {
  it("the quick start block equals examples/quickstart.mjs", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const file = readFileSync(resolve(ROOT, "examples/quickstart.mjs"), "utf8");
    const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks).toContain(file);
  });

  it("every example the README names exists", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const named = [...new Set([...readme.matchAll(/examples\/([\w-]+\.mjs)/g)].map((m) => m[1]!))];
    expect(named.length).toBeGreaterThanOrEqual(3);
    for (const name of named) expect(() => readFileSync(resolve(ROOT, "examples", name))).not.toThrow();
  });

  it("no code in the README or docs/ hands the library a bundle path only a clone of this repository has", () => {
    const docs = ["README.md", ...readdirSync(resolve(ROOT, "docs")).map((f) => `docs/${f}`)].filter((f) => f.endsWith(".md"));
    const offending: string[] = [];
    for (const file of docs) {
      const text = readFileSync(resolve(ROOT, file), "utf8");
      for (const block of text.matchAll(/```(?:ts|js|typescript|javascript)\n([\s\S]*?)```/g)) {
        for (const m of block[1]!.matchAll(/bundle:\s*["'`](?:\.\/)?bundles\/[^"'`]*["'`]/g)) offending.push(`${file}: ${m[0]}`);
      }
    }
    expect(offending, "use packagedBundlePath (or a path of the user's own)").toEqual([]);
  });

  it("every reason code the README names outside its generated table is a code of the policy", () => {
    const readme = readFileSync(resolve(ROOT, "README.md"), "utf8");
    const outside = readme.replace(/<!-- reason-codes:begin[\s\S]*?<!-- reason-codes:end -->/, "");
    const codes = new Set(Object.keys(policyReasonCodes()));
    // The verdict column of the risk table, and every `code: "…"` in an example.
    const risk = outside.slice(outside.indexOf("| what the call does (the risk) | verdict |"));
    const named = [
      ...[...risk.slice(0, risk.indexOf("\n\n")).matchAll(/^\|[^|]*\|([^|]*)\|$/gm)].flatMap((row) =>
        [...row[1]!.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!),
      ),
      ...[...outside.matchAll(/code: "([a-z_]+)"/g)].map((m) => m[1]!),
    ];
    expect(named.length).toBeGreaterThanOrEqual(4);
    expect(named.filter((c) => !codes.has(c))).toEqual([]);
  });

  describe("every command the README shows works as written", () => {
    const commands = readmeCommands();

    it("finds the commands (the two commands, the install block, the veto command)", () => {
      for (const c of ["make demo", "make test", "make build && npm pack"]) expect(commands).toContain(c);
      expect(commands.filter((c) => vetoCommand(c) !== undefined).length).toBeGreaterThanOrEqual(8);
    });

    it("every make target it names exists", () => {
      const targets = makeTargets();
      const named = commands.flatMap((c) =>
        c
          .split("&&")
          .map((part) => part.trim())
          .filter((part) => part.startsWith("make "))
          .flatMap((part) =>
            part
              .split(" ")
              .slice(1)
              .filter((w) => !w.includes("=")),
          ),
      );
      expect(named.length).toBeGreaterThanOrEqual(10);
      expect(named.filter((t) => !targets.has(t))).toEqual([]);
    });

    it("every make target docs/ names exists too", () => {
      const targets = makeTargets();
      const named = readdirSync(resolve(ROOT, "docs"))
        .filter((f) => f.endsWith(".md"))
        .flatMap((f) =>
          [...readFileSync(resolve(ROOT, "docs", f), "utf8").matchAll(/`make ([^`]+)`/g)].map((m) => ({
            file: f,
            command: m[1]!.replace(/\s+/g, " "),
          })),
        );
      expect(named.map((n) => n.command)).toContain("pg-start");
      expect(named.filter((n) => n.command.split(" ").some((w) => !w.includes("=") && !targets.has(w)))).toEqual([]);
    });

    it("every veto subcommand it names has --help, which lists every flag the README uses with it", () => {
      const cli = requireCli();
      const flagsOf = new Map<string, { sub: string[]; flags: Set<string>; commands: string[] }>();
      for (const command of commands) {
        const parsed = vetoCommand(command);
        if (parsed === undefined) continue;
        const entry = flagsOf.get(parsed.sub.join(" ")) ?? { sub: parsed.sub, flags: new Set<string>(), commands: [] };
        for (const flag of parsed.flags) entry.flags.add(flag);
        entry.commands.push(command);
        flagsOf.set(parsed.sub.join(" "), entry);
      }
      expect([...flagsOf.keys()].sort()).toEqual(expect.arrayContaining(["eval", "log verify", "replay"]));
      for (const { sub, flags, commands: from } of flagsOf.values()) {
        const help = spawnSync("node", [cli, ...sub, "--help"], { encoding: "utf8" });
        expect(help.status, `veto ${sub.join(" ")} --help (for ${from.join("; ")})`).toBe(0);
        for (const flag of flags) expect(help.stdout, `veto ${sub.join(" ")}: ${flag}`).toContain(flag);
      }
    });

    it("every node script it names exists, and those without placeholders run and exit 0", () => {
      requireBundle();
      requireCli();
      // A command with " -- <upstream>" (veto mcp-proxy) is a stdio server that waits for its host:
      // test/mcp starts it as the docs do, with a real MCP client.
      const runnable = commands.filter((c) => /^node \S+ \S/.test(c) && !/[A-Z]{3,}|…|\[/.test(c) && !c.includes(" -- "));
      expect(runnable.length).toBeGreaterThanOrEqual(2);
      for (const command of commands.filter((c) => c.startsWith("node "))) {
        expect(existsSync(resolve(ROOT, command.split(" ")[1]!)), command).toBe(true);
      }
      for (const command of runnable) {
        const run = spawnSync("bash", ["-euo", "pipefail", "-c", command], { cwd: ROOT, encoding: "utf8" });
        expect(run.status, `${command}\n${run.stderr}`).toBe(0);
        expect(run.stdout.trim(), command).not.toBe("");
      }
    });
  });
});
