// The CLI helps (docs/decision-log-cli.md): `veto <command> --help` and
// `veto help <command>` print that command's usage and exit 0; `veto --version`
// prints the package's version; a usage error is one line plus which --help to
// run, never the whole usage; `veto --help` repeats no paragraph.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT, runCli } from "../helpers/index.js";

const COMMANDS = ["eval", "hash", "log", "replay", "db", "mcp-proxy"];

describe("veto help", () => {
  it.each(COMMANDS)("`veto %s --help`, `-h` and `veto help %s` print its usage alone, exit 0", (name) => {
    const outs = [runCli([name, "--help"]), runCli([name, "-h"]), runCli(["help", name]), runCli([name, "--bundle", "x", "--help"])];
    for (const r of outs) {
      expect(r.status).toBe(0);
      expect(r.stderr).toBe("");
      expect(r.stdout).toMatch(new RegExp(`^usage:\\n  veto ${name} `));
      // Only this command's synopsis lines.
      const synopses = r.stdout.split("\n").filter((l) => l.startsWith("  veto "));
      expect(synopses.every((l) => l.startsWith(`  veto ${name} `))).toBe(true);
    }
    expect(new Set(outs.map((r) => r.stdout)).size).toBe(1);
  });

  it("`veto --version` prints the package's version", () => {
    const { version } = JSON.parse(readFileSync(resolve(ROOT, "package.json"), "utf8")) as { version: string };
    for (const flag of ["--version", "-v", "version"]) {
      const r = runCli([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toBe(`${version}\n`);
    }
  });

  it("`veto --help` lists every command once, no paragraph repeated", () => {
    const r = runCli(["--help"]);
    expect(r.status).toBe(0);
    for (const name of COMMANDS) expect(r.stdout).toContain(`  veto ${name} `);
    const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
    expect(new Set(lines).size).toBe(lines.length);
    expect(lines.length).toBeLessThan(15);
  });

  it("a usage error is one line and the --help to run, exit 2", () => {
    const cases: [string[], RegExp, string][] = [
      [["eval"], /^veto: eval needs --bundle PATH$/, "run `veto eval --help`"],
      [["eval", "--bundle"], /^veto: /, "run `veto eval --help`"],
      [["replay", "--nope"], /^veto: Unknown option '--nope'/, "run `veto replay --help`"],
      [["hash"], /^veto: /, "run `veto hash --help`"],
      [[], /^veto: no command given$/, "run `veto --help` for the commands"],
      [["bogus"], /^veto: unknown command bogus$/, "run `veto --help` for the commands"],
      [["help", "bogus"], /^veto: unknown command bogus$/, "run `veto --help` for the commands"],
    ];
    for (const [args, first, hint] of cases) {
      const r = runCli(args);
      expect(r.status, args.join(" ")).toBe(2);
      const lines = r.stderr.trimEnd().split("\n");
      expect(lines, args.join(" ")).toHaveLength(2);
      expect(lines[0]).toMatch(first);
      expect(lines[1]).toBe(hint);
    }
  });
});
