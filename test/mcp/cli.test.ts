// `veto mcp-proxy`'s command line (docs/mcp.md, "The command"): a wrong
// command line, bundle, tool map or upstream is one line on stderr and exit
// 2, before anything is served; nothing is ever written to stdout.
import { mkdtempSync, writeFileSync, cpSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TEST_POLICY_ROOT, requireBundle, requireOpa, runCli } from "../helpers/index.js";
import { CONTEXT_FLAGS, UPSTREAM } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "veto-mcp-cli-"));
const log = join(dir, "decisions.jsonl");
const base = ["mcp-proxy", "--bundle", requireBundle(), "--log", log, ...CONTEXT_FLAGS];

function refused(args: string[], message: RegExp): void {
  const r = runCli(args);
  expect(r.status, args.join(" ")).toBe(2);
  expect(r.stdout).toBe("");
  // One refusal line (pino lines of what was opened before it may precede it).
  const refusals = r.stderr.split("\n").filter((l) => l.startsWith("veto: "));
  expect(refusals, r.stderr).toHaveLength(1);
  expect(refusals[0]).toMatch(message);
}

describe("veto mcp-proxy's command line", () => {
  it("refuses what it cannot run, with one line and exit 2", () => {
    refused([...base], /needs the upstream command after --/);
    refused([...base, "--"], /needs the upstream command after --/);
    refused(["mcp-proxy", "--bundle", requireBundle(), ...CONTEXT_FLAGS, "--", "node", UPSTREAM], /--postgres URL or --log PATH/);
    refused(
      [
        "mcp-proxy",
        "--bundle",
        requireBundle(),
        "--log",
        log,
        "--actor",
        " ",
        "--tenant",
        "acme",
        "--environment",
        "production",
        "--",
        "x",
      ],
      /--actor \(not blank\)/,
    );
    refused([...base, "--approval-timeout-ms", "soon", "--", "x"], /whole number of milliseconds/);
    refused([...base, "--dev-login", "--", "x"], /configure --listen/);
    refused([...base, "--listen", "0.0.0.0:1", "--dev-login", "--", "x"], /only on a loopback address/);
    refused([...base, "--inbox-url", "not a url", "--", "x"], /--inbox-url is not a URL/);
    refused([...base, "--schema", "crm_agents", "--", "x"], /--schema needs --postgres/);
    refused([...base, "stray", "--", "x"], /^veto: /);
  });

  it("refuses a tool map that is not one, naming the problem", () => {
    const map = join(dir, "map.json");
    writeFileSync(map, JSON.stringify({ deal_update: { tool: "crm.update", arguments: { recordId: "deal/id", amount: 5 } } }));
    refused([...base, "--tool-map", map, "--", "node", UPSTREAM], /tool map .*map\.json is not a tool map: .*recordId/);
    writeFileSync(map, "{");
    refused([...base, "--tool-map", map, "--", "node", UPSTREAM], /is not valid JSON/);
  });

  it("refuses an upstream that cannot be started", () => {
    refused([...base, "--", join(dir, "no-such-server")], /upstream MCP server .* could not be started/);
  });

  it("refuses a bundle without veto/crm/visible (an older policy): rebuild it", () => {
    const policy = join(dir, "old-policy");
    cpSync(join(TEST_POLICY_ROOT, "policy"), join(policy, "policy"), { recursive: true });
    rmSync(join(policy, "policy/veto/crm/visible.rego"));
    const bundle = join(dir, "old.tar.gz");
    execFileSync(requireOpa(), ["build", "-b", "-t", "wasm", "-e", "veto/crm/decision", "-o", bundle, "policy"], {
      cwd: policy,
      stdio: "ignore",
    });
    refused(
      ["mcp-proxy", "--bundle", bundle, "--log", log, ...CONTEXT_FLAGS, "--", "node", UPSTREAM],
      /no entrypoint veto\/crm\/visible.*make bundle/,
    );
  });
});
