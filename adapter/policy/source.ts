/**
 * Where the policy comes from and which bundle is in force.
 *
 * A bundle given as a path or bytes is loaded once. A bundle server
 * (`{ url }`) is polled the way OPA polls a bundle service: GET with
 * `If-None-Match: <ETag of the bundle in force>`; 304 means unchanged; 200
 * brings a new bundle and its ETag. A new bundle is activated only after it
 * passed everything the first one did: signature (when a key is configured),
 * manifest, data, and a probe evaluation. Activation is one assignment of an
 * immutable {version, data, evaluator} snapshot; each decision reads the
 * snapshot once at its start and uses it throughout, so no decision mixes two
 * bundles. A bundle that cannot be downloaded, verified or loaded, or (with
 * rollback protection, bundle-rollback.ts) was signed no later than the one
 * in force, is logged and dropped; the last good bundle stays in force. The
 * same failure at every poll (a server still offering the bad bundle) is
 * logged once, as an error; its repeats only at debug level. A different
 * failure is logged again, and a poll that succeeds (304, the same version,
 * a new bundle) ends the run, so the next failure is logged afresh.
 */
import type { Logger } from "pino";
import { z } from "zod";
import { loadBundle } from "./bundle.js";
import type { BundleVersion } from "../common/decision.js";
import { checkRollback, issuedAtOf, type BundleRollbackOptions } from "./rollback.js";
import { BundleLoadError, BundleRollbackError, BundleSignatureError, toError } from "../common/errors.js";
import { PolicyEvaluator } from "./evaluator.js";
import { readPolicyData, type PolicyData } from "./data.js";
import { safeLog } from "../common/logger.js";
import type { BundleVerifier } from "./signature.js";

/** A bundle server to load from and poll (OPA bundle service conventions). */
export interface BundleServerOptions {
  /** http: or https: URL of the bundle .tar.gz. Required. */
  readonly url: string;
  /** Milliseconds from the end of one poll to the start of the next. Default: 60,000. */
  readonly pollIntervalMs?: number;
  /** Extra request headers, e.g. `authorization`. Default: none. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Milliseconds a download may take before it is abandoned (and logged). Default: 30,000. */
  readonly timeoutMs?: number;
  /** Largest response body accepted, in bytes. Default: 67,108,864 (64 MiB). */
  readonly maxBytes?: number;
}

export type BundleSpec = string | Uint8Array | BundleServerOptions;

export const DEFAULT_POLL_INTERVAL_MS = 60_000;
export const DEFAULT_DOWNLOAD_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024;

const positiveInt = z.number().int().positive();
export const bundleServerSchema = z.strictObject({
  url: z.string().refine(
    (u) => URL.canParse(u) && ["http:", "https:"].includes(new URL(u).protocol),
    { message: "bundle.url must be an http: or https: URL" },
  ),
  pollIntervalMs: z.number().int().min(10).optional(),
  headers: z.record(z.string(), z.string()).optional(),
  timeoutMs: positiveInt.optional(),
  maxBytes: positiveInt.optional(),
});

/** Everything a decision needs from one bundle, immutable. */
export interface ActivePolicy {
  readonly version: BundleVersion;
  /** The signature's `iat` (seconds since the epoch), when the bundle was verified and carries one. */
  readonly issuedAt: number | null;
  readonly data: PolicyData;
  readonly evaluator: PolicyEvaluator;
}

/** Passed to `onBundleChange` after a new bundle is in force. */
export interface BundleChangeEvent {
  readonly previous: BundleVersion;
  readonly current: BundleVersion;
  /** When the new bundle was signed (its signature's `iat`, seconds since the epoch), or null: keep it to pass as `bundleRollback.minIssuedAt` after a restart. */
  readonly issuedAt: number | null;
  readonly url: string;
  readonly etag: string | null;
}

/** What one poll of the bundle server did. */
export type BundleRefresh =
  | { readonly status: "static" } // the bundle was given as a path or bytes: nothing to poll
  | { readonly status: "not_modified" } // 304
  | { readonly status: "unchanged"; readonly version: BundleVersion } // 200, same version hash as in force
  | { readonly status: "activated"; readonly version: BundleVersion; readonly previous: BundleVersion }
  | { readonly status: "rejected"; readonly error: Error }; // the last good bundle stays in force

export interface BundleSourceOptions {
  readonly verifier: BundleVerifier | undefined;
  /** A data document replacing each bundle's data.json. */
  readonly data: Record<string, unknown> | undefined;
  readonly logger: Logger;
  readonly onBundleChange?: ((event: BundleChangeEvent) => void | Promise<void>) | undefined;
  /** Rollback protection (bundle-rollback.ts); needs `verifier`. */
  readonly rollback?: BundleRollbackOptions | undefined;
}

/** Verify, load and probe one bundle; throws BundleSignatureError / BundleRollbackError / BundleLoadError. */
export async function activatePolicy(
  source: string | Uint8Array,
  options: Pick<BundleSourceOptions, "verifier" | "rollback"> & {
    readonly data?: BundleSourceOptions["data"];
    /** `data` as read for an earlier bundle (readPolicyData): used in its place, not read again. */
    readonly dataRead?: PolicyData | undefined;
  },
  /** How messages name a data document given in `options.data`. */
  dataLabel = "given as options.data",
  /** The bundle in force, which a new bundle must be newer than under rollback protection. */
  inForce?: ActivePolicy,
): Promise<ActivePolicy> {
  const loaded = await loadBundle(source, options.verifier === undefined ? {} : { verifier: options.verifier });
  // Before anything of the bundle is compiled or evaluated.
  const issuedAt =
    options.rollback === undefined
      ? issuedAtOf(loaded)
      : checkRollback(loaded, options.rollback, inForce === undefined ? undefined : { hash: inForce.version.hash, issuedAt: inForce.issuedAt });
  const bundleLabel = typeof source === "string" ? `bundle ${source}` : "the bundle";
  const data =
    options.dataRead ?? readPolicyData(options.data ?? loaded.data, options.data === undefined ? `of ${bundleLabel}` : dataLabel);
  const evaluator = await PolicyEvaluator.create(loaded.wasm, data.text, undefined, loaded.entrypoints);
  return Object.freeze({ version: Object.freeze({ ...loaded.version }), issuedAt, data, evaluator });
}

export class BundleSource {
  #current: ActivePolicy;
  readonly #server: BundleServerOptions | undefined;
  /** Without `data`: the replacement document is kept only as read (`dataRead`), its objects left to the collector. */
  readonly #options: Omit<BundleSourceOptions, "data"> & { readonly dataRead?: PolicyData | undefined };
  readonly #log: Logger;
  #etag: string | null;
  #timer: NodeJS.Timeout | undefined;
  #inFlight: Promise<BundleRefresh> | undefined;
  #abort: AbortController | undefined;
  #closed = false;
  /** What the last poll's failure was (reason and error), while polls keep failing; undefined after a poll that succeeds. */
  #lastFailure: string | undefined;

  private constructor(current: ActivePolicy, server: BundleServerOptions | undefined, etag: string | null, options: BundleSourceOptions) {
    this.#current = current;
    this.#server = server;
    this.#etag = etag;
    const { data, ...rest } = options;
    this.#options = data === undefined ? rest : { ...rest, dataRead: current.data };
    this.#log = options.logger.child({ component: "bundle" });
  }

  /** Load the first bundle (for a server: download it; any failure rejects) and start polling. */
  static async open(spec: BundleSpec, options: BundleSourceOptions): Promise<BundleSource> {
    if (typeof spec === "string" || spec instanceof Uint8Array) {
      return new BundleSource(await activatePolicy(spec, options), undefined, null, options);
    }
    const first = await download(spec, null, new AbortController().signal);
    if (first.status === 304) {
      throw new BundleLoadError("bundle_unusable", `bundle server ${spec.url} answered 304 Not Modified to a request without If-None-Match`);
    }
    const source = new BundleSource(await activatePolicy(first.bytes, options), spec, first.etag, options);
    source.#log.info({ bundle: source.#current.version, issued_at: source.#current.issuedAt, url: spec.url, etag: first.etag }, "bundle activated");
    source.#schedule();
    return source;
  }

  /** The bundle in force. Read it once per decision. */
  get current(): ActivePolicy {
    return this.#current;
  }

  /**
   * Poll the bundle server now (a poll already under way is joined, not
   * repeated). Never rejects: a failure is the "rejected" outcome, logged.
   */
  refresh(): Promise<BundleRefresh> {
    if (this.#server === undefined) return Promise.resolve({ status: "static" });
    this.#inFlight ??= this.#poll(this.#server).finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /** Stop polling and abandon a download under way. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#abort?.abort(new Error("the veto instance was closed"));
    await this.#inFlight;
  }

  #schedule(): void {
    if (this.#closed || this.#server === undefined) return;
    this.#timer = setTimeout(() => {
      void this.refresh().then(() => this.#schedule());
    }, this.#server.pollIntervalMs ?? DEFAULT_POLL_INTERVAL_MS);
    // Polling alone must not keep the process alive.
    this.#timer.unref();
  }

  async #poll(server: BundleServerOptions): Promise<BundleRefresh> {
    const inForce = this.#current.version;
    this.#abort = new AbortController();
    let downloaded = false;
    try {
      const answer = await download(server, this.#etag, this.#abort.signal);
      downloaded = true;
      if (answer.status === 304) {
        this.#lastFailure = undefined;
        this.#log.debug({ url: server.url, etag: this.#etag }, "bundle not modified");
        return { status: "not_modified" };
      }
      const next = await activatePolicy(answer.bytes, this.#options, undefined, this.#current);
      if (this.#closed) return { status: "rejected", error: new Error("the veto instance was closed during the download") };
      this.#lastFailure = undefined;
      this.#etag = answer.etag;
      if (next.version.hash === inForce.hash) {
        this.#log.debug({ url: server.url, etag: answer.etag, bundle: inForce }, "bundle downloaded, same version as in force");
        return { status: "unchanged", version: inForce };
      }
      // The swap: one assignment. Decisions already under way keep the snapshot they read.
      this.#current = next;
      this.#log.info({ bundle: next.version, issued_at: next.issuedAt, previous: inForce, url: server.url, etag: answer.etag }, "bundle activated");
      this.#notify({ previous: inForce, current: next.version, issuedAt: next.issuedAt, url: server.url, etag: answer.etag });
      return { status: "activated", version: next.version, previous: inForce };
    } catch (thrown) {
      const error = toError(thrown);
      if (!this.#closed) {
        const reason = !downloaded
          ? "download"
          : error instanceof BundleSignatureError
            ? "signature"
            : error instanceof BundleRollbackError
              ? "rollback"
              : "unusable";
        const fields = {
          url: server.url,
          reason,
          ...(error instanceof BundleSignatureError ? { check: error.check, file: error.file } : {}),
          ...(error instanceof BundleRollbackError ? { issued_at: error.issuedAt, floor: error.floor } : {}),
          bundle: inForce,
        };
        const failure = JSON.stringify([reason, error.name, error.message]);
        if (failure === this.#lastFailure) {
          this.#log.debug({ ...fields, error: error.message }, "new bundle rejected again, as logged before; the bundle in force stays");
        } else {
          this.#lastFailure = failure;
          safeLog(this.#log, { err: error, ...fields }, "new bundle rejected; the bundle in force stays");
        }
      }
      return { status: "rejected", error };
    } finally {
      this.#abort = undefined;
    }
  }

  #notify(event: BundleChangeEvent): void {
    const hook = this.#options.onBundleChange;
    if (hook === undefined) return;
    void Promise.resolve()
      .then(() => hook(event))
      .catch((error: unknown) => safeLog(this.#log, { err: toError(error), bundle: event.current }, "onBundleChange hook failed"));
  }
}

type Download = { readonly status: 304 } | { readonly status: 200; readonly bytes: Uint8Array; readonly etag: string | null };

/** One GET of the bundle, OPA bundle service style. Throws BundleLoadError on anything but 200 or 304. */
async function download(server: BundleServerOptions, etag: string | null, closed: AbortSignal): Promise<Download> {
  const failed = (message: string, cause?: unknown): BundleLoadError =>
    new BundleLoadError("bundle_unusable", `cannot download bundle ${server.url}: ${message}`, cause === undefined ? undefined : { cause });
  const headers = new Headers(server.headers);
  if (etag !== null) headers.set("if-none-match", etag);
  const abort = new AbortController();
  const timeoutMs = server.timeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS;
  const timer = setTimeout(() => abort.abort(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
  const onClose = (): void => abort.abort(closed.reason);
  closed.addEventListener("abort", onClose, { once: true });
  try {
    const response = await fetch(server.url, { headers, signal: abort.signal, redirect: "follow" });
    if (response.status === 304) {
      await response.body?.cancel();
      return { status: 304 };
    }
    if (response.status !== 200) {
      await response.body?.cancel();
      throw failed(`HTTP ${response.status} ${response.statusText}`.trim());
    }
    const maxBytes = server.maxBytes ?? DEFAULT_MAX_DOWNLOAD_BYTES;
    const chunks: Uint8Array[] = [];
    let total = 0;
    const reader = response.body?.getReader();
    for (let read = await reader?.read(); read !== undefined && !read.done; read = await reader?.read()) {
      total += read.value.length;
      if (total > maxBytes) {
        abort.abort(new Error("too large"));
        throw failed(`the bundle is larger than ${maxBytes} bytes`);
      }
      chunks.push(read.value);
    }
    return { status: 200, bytes: Buffer.concat(chunks), etag: response.headers.get("etag") };
  } catch (error) {
    if (error instanceof BundleLoadError) throw error;
    const reason: unknown = abort.signal.aborted ? abort.signal.reason : error;
    throw failed(toError(reason).message, error);
  } finally {
    clearTimeout(timer);
    closed.removeEventListener("abort", onClose);
  }
}
