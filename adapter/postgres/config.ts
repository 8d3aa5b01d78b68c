/**
 * createVeto's `store` option: a VetoStore, or `{ postgres: {...} }` for a
 * PostgresStore that createVeto connects and close() closes.
 */
import { VetoOptionsError } from "../errors.js";
import type { RecordSink } from "../records.js";
import type { VetoStore } from "../store.js";
import type { PostgresLogger, PostgresOptions } from "./connection.js";
import { checkpointing, type PostgresCheckpointOptions } from "./records.js";
import { PostgresStore } from "./store.js";

export interface PostgresStoreConfig {
  readonly postgres: PostgresOptions & {
    /**
     * Also write the decision records to the records table of the same
     * schema, in the same transaction as the history update (the default
     * record sink becomes the PostgreSQL one; not with `recordSink`).
     * Default false.
     */
    readonly records?: boolean;
    /**
     * With `records: true`: this instance's Ed25519 private key (PEM text or
     * bytes, or a KeyObject) to sign checkpoints of the records chain with,
     * every `checkpointEvery` records (default 1,000) and at close. Instances
     * sharing the chain each use their own key. Default: none.
     */
    readonly checkpointKey?: PostgresCheckpointOptions["checkpointKey"];
    readonly checkpointEvery?: number;
  };
}

/** What createVeto accepts as `store`. */
export type StoreOption = VetoStore | PostgresStoreConfig;

const STORE_METHODS = ["appendDecision", "countRecentDenies", "getDecision", "transitionApproval", "watchDecision", "close"];

export function isStoreOption(value: unknown): value is StoreOption {
  if (value === null || typeof value !== "object") return false;
  if (STORE_METHODS.every((m) => typeof (value as Record<string, unknown>)[m] === "function")) return true;
  const keys = Object.keys(value);
  const postgres = (value as { postgres?: unknown }).postgres;
  return keys.length === 1 && keys[0] === "postgres" && postgres !== null && typeof postgres === "object";
}

export interface OpenedStore {
  /** Undefined: use the default in-memory store. */
  readonly store: VetoStore | undefined;
  /** Whether close() must close it (createVeto connected it). */
  readonly ownsStore: boolean;
  /** The record sink the configuration asks for, if any. */
  readonly recordSink: RecordSink | undefined;
}

export async function openStore(
  option: StoreOption | undefined,
  recordSink: RecordSink | undefined,
  logger: PostgresLogger,
): Promise<OpenedStore> {
  if (option === undefined || !("postgres" in option) || typeof (option as Partial<VetoStore>).appendDecision === "function") {
    return { store: option as VetoStore | undefined, ownsStore: false, recordSink: undefined };
  }
  const { records, checkpointKey, checkpointEvery, ...options } = option.postgres;
  if (records !== undefined && typeof records !== "boolean") {
    throw new VetoOptionsError("createVeto: invalid options: store.postgres.records: must be a boolean", ["store.postgres.records: must be a boolean"]);
  }
  if ((checkpointKey !== undefined || checkpointEvery !== undefined) && records !== true) {
    const issue = "store.postgres.checkpointKey: signs the records table's checkpoints, so it needs records: true";
    throw new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
  }
  if (records === true && recordSink !== undefined) {
    const issue = "store.postgres.records: cannot be used with recordSink (records would go to both)";
    throw new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
  }
  try {
    checkpointing({ checkpointKey, checkpointEvery }, "store.postgres");
  } catch (error) {
    const issue = (error as Error).message;
    throw new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
  }
  const store = await PostgresStore.connect({ logger, ...options });
  if (records !== true) return { store, ownsStore: true, recordSink: undefined };
  try {
    return { store, ownsStore: true, recordSink: store.recordSink({ checkpointKey, checkpointEvery }) };
  } catch (error) {
    await store.close();
    throw error;
  }
}
