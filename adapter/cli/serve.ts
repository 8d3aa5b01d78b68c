/**
 * `veto serve`: the approval service (docs/approvals.md) beside an app, on
 * the same store. Each answer is recorded before it is acknowledged: in the
 * schema's records table with --postgres, else in --log PATH (required then).
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { createVeto } from "../veto.js";
import { FileDecisionLog } from "../records/file/file-log.js";
import { PostgresStore } from "../postgres/store.js";
import { PostgresNotificationLedger } from "../postgres/notifications.js";
import { InMemoryStore, type VetoStore } from "../history/store.js";
import { createApprovalServer } from "../server/server.js";
import { isLoopback, type JwtAuthOptions } from "../server/auth.js";
import { approvalLink, webhookNotifier, type ApprovalLink, type ApproverLinks } from "../server/notify.js";
import { memoryLedger, notifyApprovals } from "../server/notifications.js";
import { standardLogDestination } from "../records/fd-sink.js";
import { loadBundle } from "../policy/bundle.js";
import { createSignInLinks } from "../server/inbox/links.js";
import { UsageError, readDataFile, type Command } from "./common.js";
import { approverIdsOf } from "./approvers.js";

export const serveCommand: Command = {
  usage: `  veto serve --bundle PATH [--data FILE] [--postgres URL] [--log PATH] [--listen HOST:PORT]
             [--jwt-public-key FILE | --jwt-jwks URL] [--jwt-issuer ISS] [--jwt-audience AUD]
             [--jwt-algorithms LIST] [--reviewer-claim NAME] [--groups-claim NAME] [--dev-login]
             [--schema NAME] [--webhook-url URL [--webhook-secret-file FILE] [--webhook-format json|slack]]
             [--public-url URL] [--inbox-secret-file FILE]
      the approval service (docs/approvals.md) and its web inbox at / (docs/inbox.md); default
      listen 127.0.0.1:8787. --public-url: where reviewers reach the service (the inbox's
      publicUrl; links are built under it; default http://LISTEN). With --webhook-url, each
      approval opened on the store is announced there once (signed with the secret's HMAC), with
      a link to its inbox page and, in json format, a one-time sign-in link per listed approver.
      --inbox-secret-file: signs sessions and sign-in links (32+ bytes, the same for every
      instance behind one address; default random per process).`,

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
        schema: { type: "string" },
        "webhook-url": { type: "string" },
        "webhook-secret-file": { type: "string" },
        "webhook-format": { type: "string", default: "json" },
        "public-url": { type: "string" },
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
    if (values.schema !== undefined && values.postgres === undefined) throw new UsageError("--schema needs --postgres");
    const format = values["webhook-format"];
    if (format !== "json" && format !== "slack") throw new UsageError(`--webhook-format must be json or slack, not ${format}`);
    if (values["webhook-url"] === undefined && values["webhook-secret-file"] !== undefined) {
      throw new UsageError("--webhook-secret-file needs --webhook-url");
    }
    const webhookSecret =
      values["webhook-secret-file"] === undefined ? undefined : (await readFile(values["webhook-secret-file"], "utf8")).trim();
    const data = values.data === undefined ? undefined : await readDataFile(values.data);
    const logger = pino({ name: "veto-serve" }, standardLogDestination(2));

    let store: VetoStore;
    const recordSink = values.postgres !== undefined ? undefined : await FileDecisionLog.open(values.log!);
    if (values.postgres !== undefined) {
      store = await PostgresStore.connect({
        connectionString: values.postgres,
        ...(values.schema === undefined ? {} : { schema: values.schema }),
        logger: logger.child({ component: "store" }),
      });
    } else store = new InMemoryStore();
    const sink = recordSink ?? (store as PostgresStore).recordSink();
    const veto = await createVeto({
      bundle: values.bundle,
      ...(data === undefined ? {} : { data }),
      store,
      recordSink: sink,
      logger: logger.child({ component: "veto" }),
    });
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
    // The notifier is built (and its options checked) before the service listens; its links
    // default to the address it listens on, known only then. The item link is the inbox's
    // page for the approval; the sign-in links come from the inbox's secret.
    const inboxPage = (id: string): string => `/approvals/${id}`;
    let listening: ApprovalLink | undefined;
    let approverLinks: ApproverLinks | undefined;
    const link: ApprovalLink =
      values["public-url"] !== undefined ? approvalLink(values["public-url"], inboxPage) : (item) => listening!(item);
    const webhook =
      values["webhook-url"] === undefined
        ? undefined
        : webhookNotifier({
            url: values["webhook-url"],
            format,
            ...(webhookSecret === undefined ? {} : { secret: webhookSecret }),
            link,
            // A Slack channel is shared: one-time links go only to a receiver that passes each on.
            ...(format === "json" ? { signInLinks: { linksFor: (id: string) => approverLinks!.linksFor(id) } } : {}),
            logger: logger.child({ component: "webhook" }),
          });
    // Random per process unless given: this process's sign-in links and the inbox share it.
    const inboxSecret = values["inbox-secret-file"] === undefined ? randomBytes(32) : await readFile(values["inbox-secret-file"]);
    const app = await createApprovalServer({
      veto,
      store,
      auth,
      logger: logger.child({ component: "api" }),
      inbox: { secret: inboxSecret, ...(values["public-url"] === undefined ? {} : { publicUrl: values["public-url"] }) },
    });
    const address = await app.listen({ host, port });
    listening = approvalLink(address, inboxPage);
    approverLinks =
      values["public-url"] !== undefined ? app.signInLinks! : createSignInLinks({ store, secret: inboxSecret, publicUrl: address });
    process.stderr.write(`veto serve: listening on ${address}\n`);
    let notifications: { close(): Promise<void> } | undefined;
    if (webhook !== undefined) {
      if (webhookSecret === undefined) {
        process.stderr.write("veto serve: WARNING webhook notifications are unsigned (no --webhook-secret-file)\n");
      }
      // With PostgreSQL, services on one schema share a ledger: one of them announces each approval.
      const ledger =
        store instanceof PostgresStore
          ? new PostgresNotificationLedger(store, { leaseMs: webhook.maxDurationMs + 60_000 })
          : memoryLedger();
      const watching = notifyApprovals({ store, notify: webhook.notify, ledger, logger: logger.child({ component: "notifications" }) });
      notifications = watching;
      await watching.ready;
      process.stderr.write(`veto serve: notifying ${new URL(values["webhook-url"]!).origin} (${format})\n`);
    }
    process.stderr.write(`veto serve: inbox at ${address}/${values["dev-login"] ? ` (sign in: ${address}/dev-login?reviewer=ID)` : ""}\n`);
    await new Promise<void>((resolve) => {
      const stop = (): void => resolve();
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    // Stop taking new notifications first, then cut short those under way (their claims lapse).
    const closing = notifications?.close();
    webhook?.close();
    await closing;
    await app.close();
    await veto.close();
    await store.close();
    await recordSink?.close();
    return 0;
  },
};
