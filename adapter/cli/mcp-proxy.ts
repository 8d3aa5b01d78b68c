/**
 * `veto mcp-proxy ... -- <upstream command> [args...]` (docs/mcp.md): an MCP
 * server on stdio that governs every tools/call of the upstream MCP server it
 * spawns. stdout is the MCP channel: records go to --log or the --postgres
 * records table, the log to stderr, never stdout.
 */
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createVeto, type Veto } from "../veto.js";
import { toError } from "../common/errors.js";
import { isBlank } from "../common/text.js";
import { standardLogDestination } from "../records/fd-sink.js";
import { openFileLog, type FileDecisionLog } from "../records/file/file-log.js";
import { InMemoryStore, type VetoStore } from "../history/store.js";
import { PostgresStore } from "../postgres/store.js";
import { createApprovalServer } from "../server/server.js";
import { isLoopback } from "../server/auth.js";
import { loadBundle } from "../policy/bundle.js";
import { DEFAULT_APPROVAL_TIMEOUT_MS, DEFAULT_PROGRESS_INTERVAL_MS, DEFAULT_UPSTREAM_TIMEOUT_MS, McpProxy } from "../mcp/proxy.js";
import { ToolMap } from "../mcp/tool-map.js";
import { UsageError, fail, readBoundedFile, readDataFile, type Command } from "./common.js";
import { RECORD_KEY_ENV } from "./eval.js";
import { approverIdsOf } from "./approvers.js";
import { SHADOW_USAGE, readShadowOptions, shadowOptions } from "./shadow-flags.js";

/** The package's version, from the package.json beside dist/ (or beside adapter/ in the repository). */
function packageVersion(): string {
  for (const relative of ["../package.json", "../../package.json"]) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), "utf8")) as { name?: string; version?: string };
      if (pkg.name === "veto-crm" && typeof pkg.version === "string") return pkg.version;
    } catch {
      // Not there: try the next place.
    }
  }
  return "unknown";
}

/** Largest --tool-map file. */
const MAX_TOOL_MAP_BYTES = 1024 * 1024;

function milliseconds(flag: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!/^(0|[1-9][0-9]*)$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new UsageError(`--${flag} must be a whole number of milliseconds, got ${value}`);
  }
  return Number(value);
}

function requiredText(flag: string, value: string | undefined): string {
  if (value === undefined || isBlank(value)) throw new UsageError(`mcp-proxy needs --${flag} (not blank)`);
  return value;
}

export const mcpProxyCommand: Command = {
  usage: `  veto mcp-proxy --bundle PATH [--data FILE] (--postgres URL [--schema NAME] | --log PATH) --actor ID --tenant ID --environment NAME
                 [--tool-map FILE] [--approval-timeout-ms N] [--approval-ttl-ms N] [--inbox-url URL] [--upstream-timeout-ms N]
                 [--listen HOST:PORT (--dev-login | --jwt-public-key FILE --jwt-issuer ISS --jwt-audience AUD)]
                 [--on-behalf-of ID] [--source-system NAME] [--shadow-bundle PATH [--shadow-data FILE]] -- <upstream command> [args...]
      an MCP server on stdin/stdout in front of the MCP server it starts (docs/mcp.md):
      tools/list shows the tools the policy offers to the actor, each tools/call is decided
      before it is forwarded. Records go to --log PATH or, with --postgres, to the records
      table of --schema NAME (default veto, as for \`veto serve\`), never stdout. A call that
      needs approval waits for it (--approval-timeout-ms, default ${DEFAULT_APPROVAL_TIMEOUT_MS}) when it can be
      given: through \`veto serve\` on the same --postgres and --schema,
      or the approval service this process runs with --listen; otherwise it is refused with
      approval_unavailable. --approval-ttl-ms: how long an approval can be given (default one hour).
      --inbox-url: sent to hosts that take URL elicitations ({decisionId} is replaced). --upstream-timeout-ms: longest wait for the upstream (default ${DEFAULT_UPSTREAM_TIMEOUT_MS}).
      $${RECORD_KEY_ENV}: key (>= 16 bytes) for HMAC digests of sensitive values.
      ${SHADOW_USAGE}.`,

  async run(args) {
    const split = args.indexOf("--");
    if (split < 0 || split === args.length - 1) throw new UsageError("mcp-proxy needs the upstream command after --");
    const upstream = args.slice(split + 1);
    // Anything before -- that is not a flag is refused by parseArgs (the upstream command goes after --).
    const { values } = parseArgs({
      args: args.slice(0, split),
      options: {
        bundle: { type: "string" },
        data: { type: "string" },
        postgres: { type: "string" },
        schema: { type: "string" },
        log: { type: "string" },
        actor: { type: "string" },
        tenant: { type: "string" },
        environment: { type: "string" },
        "on-behalf-of": { type: "string" },
        "source-system": { type: "string" },
        "tool-map": { type: "string" },
        "approval-timeout-ms": { type: "string" },
        "approval-ttl-ms": { type: "string" },
        "upstream-timeout-ms": { type: "string" },
        "inbox-url": { type: "string" },
        listen: { type: "string" },
        "dev-login": { type: "boolean", default: false },
        "jwt-public-key": { type: "string" },
        "jwt-issuer": { type: "string" },
        "jwt-audience": { type: "string" },
        ...shadowOptions,
      },
    });
    if (values.bundle === undefined) throw new UsageError("mcp-proxy needs --bundle PATH");
    if (values.postgres === undefined && values.log === undefined) {
      throw new UsageError("mcp-proxy needs --postgres URL or --log PATH: records never go to stdout, the MCP channel");
    }
    if (values.postgres !== undefined && values.log !== undefined) throw new UsageError("mcp-proxy takes --postgres or --log, not both");
    if (values.schema !== undefined && values.postgres === undefined) throw new UsageError("--schema needs --postgres");
    const context = {
      actorId: requiredText("actor", values.actor),
      tenantId: requiredText("tenant", values.tenant),
      environment: requiredText("environment", values.environment),
      ...(values["on-behalf-of"] === undefined ? {} : { onBehalfOf: values["on-behalf-of"] }),
      ...(values["source-system"] === undefined ? {} : { sourceSystem: values["source-system"] }),
    };
    const approvalTimeoutMs = milliseconds("approval-timeout-ms", values["approval-timeout-ms"], DEFAULT_APPROVAL_TIMEOUT_MS);
    const approvalTtlMs =
      values["approval-ttl-ms"] === undefined ? undefined : milliseconds("approval-ttl-ms", values["approval-ttl-ms"], 0);
    if (approvalTtlMs === 0) throw new UsageError("--approval-ttl-ms must be positive");
    const upstreamTimeoutMs = milliseconds("upstream-timeout-ms", values["upstream-timeout-ms"], DEFAULT_UPSTREAM_TIMEOUT_MS);
    const inboxUrl = values["inbox-url"];
    if (inboxUrl !== undefined && !URL.canParse(inboxUrl.replaceAll("{decisionId}", "x")))
      throw new UsageError(`--inbox-url is not a URL: ${inboxUrl}`);
    const listen = parseListen(values.listen);
    const jwt = values["jwt-public-key"] !== undefined;
    if (listen === undefined && (values["dev-login"] || jwt)) throw new UsageError("--dev-login and --jwt-public-key configure --listen");
    if (listen !== undefined) {
      if (values["dev-login"] === jwt) throw new UsageError("--listen needs --dev-login or --jwt-public-key FILE (one of them)");
      if (values["dev-login"] && !isLoopback(listen.host))
        throw new UsageError(`--dev-login is refused on ${listen.host}: only on a loopback address`);
      if (jwt && (values["jwt-issuer"] === undefined || values["jwt-audience"] === undefined)) {
        throw new UsageError("--jwt-public-key needs --jwt-issuer and --jwt-audience");
      }
    }

    let toolMap = ToolMap.identity();
    if (values["tool-map"] !== undefined) {
      const text = (await readBoundedFile(values["tool-map"], "tool map", MAX_TOOL_MAP_BYTES)).toString("utf8");
      let document: unknown;
      try {
        document = JSON.parse(text);
      } catch (error) {
        fail(`tool map ${values["tool-map"]} is not valid JSON: ${toError(error).message}`);
      }
      try {
        toolMap = ToolMap.parse(document, `tool map ${values["tool-map"]}`);
      } catch (error) {
        fail(toError(error).message);
      }
    }
    const data = values.data === undefined ? undefined : await readDataFile(values.data);
    const shadow = await readShadowOptions(values);
    const bundle = await loadBundle(values.bundle).catch((error: unknown) => fail(toError(error).message));
    if (!bundle.entrypoints.includes("veto/crm/visible")) {
      fail(`bundle ${values.bundle} has no entrypoint veto/crm/visible (tool visibility): rebuild it with make bundle`);
    }

    // stdout is the MCP channel: the log goes to stderr, records to --log or the database.
    const logger = pino({ name: "veto" }, standardLogDestination(2));
    const log = logger.child({ component: "mcp-proxy" });
    let store: VetoStore;
    let fileLog: FileDecisionLog | undefined;
    if (values.postgres !== undefined) {
      store = await PostgresStore.connect({
        connectionString: values.postgres,
        ...(values.schema === undefined ? {} : { schema: values.schema }),
        logger: { error: (fields, message) => logger.error(fields, message) },
      }).catch((error: unknown) => fail(`cannot use --postgres: ${toError(error).message}`));
    } else {
      store = new InMemoryStore();
      fileLog = await openFileLog(values.log!, { logger: logger.child({ component: "decision-log" }) }).catch((error: unknown) =>
        fail(`cannot open decision log ${values.log}: ${toError(error).message}`),
      );
    }
    const recordSink = fileLog ?? (store as PostgresStore).recordSink();
    const recordKey = process.env[RECORD_KEY_ENV] || undefined;
    let veto: Veto;
    try {
      veto = await createVeto({
        bundle: values.bundle,
        logger,
        store,
        recordSink,
        ...(approvalTtlMs === undefined ? {} : { approvalTtlMs }),
        ...(data === undefined ? {} : { data }),
        ...(recordKey === undefined ? {} : { recordKey }),
        ...(shadow === undefined ? {} : { shadow }),
      });
    } catch (error) {
      await store.close();
      await fileLog?.close();
      fail(toError(error).message);
    }

    let approvalServer: Awaited<ReturnType<typeof createApprovalServer>> | undefined;
    if (listen !== undefined) {
      const auth = values["dev-login"]
        ? { devLogin: { approverIds: approverIdsOf(data ?? bundle.data) } }
        : {
            jwt: {
              publicKey: await readFile(values["jwt-public-key"]!, "utf8"),
              issuer: values["jwt-issuer"]!,
              audience: values["jwt-audience"]!,
            },
          };
      approvalServer = await createApprovalServer({ veto, store, auth, logger: log });
      const address = await approvalServer.listen({ host: listen.host, port: listen.port });
      if (values["dev-login"]) {
        process.stderr.write(
          "veto mcp-proxy: WARNING --dev-login: anyone on this machine can answer as any approver. Never in production.\n",
        );
      }
      process.stderr.write(`veto mcp-proxy: approval service listening on ${address}\n`);
    }

    let proxy: McpProxy;
    try {
      proxy = await McpProxy.startOnStdio({
        veto,
        context,
        approvals: values.postgres !== undefined || listen !== undefined ? "wait" : "unavailable",
        approvalTimeoutMs,
        inboxUrl,
        progressIntervalMs: DEFAULT_PROGRESS_INTERVAL_MS,
        log,
        upstream: { command: upstream[0]!, args: upstream.slice(1) },
        toolMap,
        upstreamTimeoutMs,
        version: packageVersion(),
      });
    } catch (error) {
      await approvalServer?.close();
      await veto.close();
      await store.close();
      await fileLog?.close();
      fail(toError(error).message);
    }
    const stop = (): void => void proxy.close();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
    // The host closing stdin ends the session.
    process.stdin.once("end", stop);
    await proxy.closed;
    await approvalServer?.close();
    await veto.close();
    await store.close();
    await fileLog?.close();
    process.removeListener("SIGINT", stop);
    process.removeListener("SIGTERM", stop);
    return 0;
  },
};

function parseListen(value: string | undefined): { host: string; port: number } | undefined {
  if (value === undefined) return undefined;
  const match = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(value);
  if (match === null || Number(match[2]) > 65535) throw new UsageError(`--listen must be HOST:PORT, not ${value}`);
  return { host: match[1]!.replace(/^\[|\]$/g, ""), port: Number(match[2]) };
}
