/**
 * `veto serve`: the approval service (docs/approvals.md) beside an app, on
 * the same store. Each answer is recorded before it is acknowledged: in the
 * schema's records table with --postgres, else in --log PATH (required then).
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createVeto } from "../veto.js";
import { FileDecisionLog } from "../records/file/file-log.js";
import { PostgresStore } from "../postgres/store.js";
import { InMemoryStore, type VetoStore } from "../history/store.js";
import { createApprovalServer } from "../server/server.js";
import { isLoopback, type JwtAuthOptions } from "../server/auth.js";
import { loadBundle } from "../policy/bundle.js";
import { UsageError, readDataFile, type Command } from "./common.js";

/** Every approver id the data document names (what --dev-login may name). */
function approverIdsOf(data: unknown): string[] {
  const found = new Set<string>();
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) {
      for (const x of v) {
        if (key === "approvers" && typeof x === "string") found.add(x);
        else walk(x, "");
      }
    } else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(data, "");
  return [...found];
}

export const serveCommand: Command = {
  usage: `  veto serve --bundle PATH [--data FILE] [--postgres URL] [--log PATH] [--listen HOST:PORT]
             [--jwt-public-key FILE | --jwt-jwks URL] [--jwt-issuer ISS] [--jwt-audience AUD]
             [--jwt-algorithms LIST] [--reviewer-claim NAME] [--groups-claim NAME] [--dev-login]
             [--inbox-secret-file FILE]
      the approval service (docs/approvals.md) and its web inbox at / (docs/inbox.md); default
      listen 127.0.0.1:8787. --inbox-secret-file: signs sessions and sign-in links (32+ bytes,
      the same for every instance behind one address; default random per process).`,

  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        "inbox-secret-file": { type: "string" },
        bundle: { type: "string" },
        data: { type: "string" },
        postgres: { type: "string" },
        log: { type: "string" },
        listen: { type: "string", default: "127.0.0.1:8787" },
        "jwt-public-key": { type: "string" },
        "jwt-jwks": { type: "string" },
        "jwt-issuer": { type: "string" },
        "jwt-audience": { type: "string" },
        "jwt-algorithms": { type: "string" },
        "reviewer-claim": { type: "string" },
        "groups-claim": { type: "string" },
        "dev-login": { type: "boolean", default: false },
      },
    });
    if (positionals.length > 0) throw new UsageError("serve takes no positional arguments");
    if (values.bundle === undefined) throw new UsageError("serve needs --bundle PATH");
    if (values.postgres === undefined && values.log === undefined)
      throw new UsageError("serve needs --postgres URL or --log PATH (answers are recorded there)");
    const listen = /^(\[[0-9a-fA-F:]+\]|[^:]+):(\d{1,5})$/.exec(values.listen);
    if (listen === null) throw new UsageError(`--listen must be HOST:PORT, not ${values.listen}`);
    const host = listen[1]!.replace(/^\[|\]$/g, "");
    const port = Number(listen[2]);
    const jwtKey = values["jwt-public-key"] !== undefined || values["jwt-jwks"] !== undefined;
    if (values["dev-login"] && jwtKey) throw new UsageError("--dev-login and a JWT key exclude each other");
    if (values["dev-login"] && !isLoopback(host)) throw new UsageError(`--dev-login is refused on ${host}: only on a loopback address`);
    if (!values["dev-login"] && !jwtKey)
      throw new UsageError("serve needs --jwt-public-key FILE or --jwt-jwks URL (or --dev-login on loopback)");
    if (jwtKey && (values["jwt-issuer"] === undefined || values["jwt-audience"] === undefined)) {
      throw new UsageError("serve needs --jwt-issuer and --jwt-audience with a JWT key");
    }
    const data = values.data === undefined ? undefined : await readDataFile(values.data);

    let store: VetoStore;
    const recordSink = values.postgres !== undefined ? undefined : await FileDecisionLog.open(values.log!);
    if (values.postgres !== undefined) store = await PostgresStore.connect({ connectionString: values.postgres });
    else store = new InMemoryStore();
    const sink = recordSink ?? (store as PostgresStore).recordSink();
    const veto = await createVeto({ bundle: values.bundle, ...(data === undefined ? {} : { data }), store, recordSink: sink });
    const auth = values["dev-login"]
      ? // Without --data, the approvers are the bundle's own data document's.
        { devLogin: { approverIds: approverIdsOf(data ?? (await loadBundle(values.bundle)).data) } }
      : {
          jwt: {
            ...(values["jwt-jwks"] === undefined
              ? { publicKey: await readFile(values["jwt-public-key"]!, "utf8") }
              : { jwksUrl: values["jwt-jwks"] }),
            issuer: values["jwt-issuer"]!,
            audience: values["jwt-audience"]!,
            ...(values["jwt-algorithms"] === undefined ? {} : { algorithms: values["jwt-algorithms"].split(",").map((a) => a.trim()) }),
            ...(values["reviewer-claim"] === undefined ? {} : { reviewerClaim: values["reviewer-claim"] }),
            ...(values["groups-claim"] === undefined ? {} : { groupsClaim: values["groups-claim"] }),
          } satisfies JwtAuthOptions,
        };
    if (values["dev-login"]) {
      process.stderr.write(
        "veto serve: WARNING --dev-login: anyone on this machine can answer as any approver (x-veto-dev-reviewer). Never in production.\n",
      );
    }
    const inboxSecret = values["inbox-secret-file"] === undefined ? undefined : await readFile(values["inbox-secret-file"]);
    const app = await createApprovalServer({ veto, store, auth, inbox: inboxSecret === undefined ? {} : { secret: inboxSecret } });
    const address = await app.listen({ host, port });
    process.stderr.write(`veto serve: listening on ${address}\n`);
    process.stderr.write(`veto serve: inbox at ${address}/${values["dev-login"] ? ` (sign in: ${address}/dev-login?reviewer=ID)` : ""}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    await app.close();
    await veto.close();
    await store.close();
    await recordSink?.close();
    return 0;
  },
};
