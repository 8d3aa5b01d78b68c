/**
 * `postgres({...})`: the PostgreSQL store as createVeto's `store` option,
 * connected by createVeto and closed by its `close()`:
 *
 *   import { postgres } from "veto-crm/postgres";
 *   const veto = await createVeto({ bundle, store: postgres({ connectionString }) });
 */
import { VetoOptionsError } from "../common/errors.js";
import type { OpenedStore, StoreFactory, StoreFactoryContext } from "../history/store.js";
import type { PostgresOptions } from "./connection.js";
import { checkpointing, type PostgresCheckpointOptions } from "./records.js";
import { PostgresStore } from "./store.js";

export interface PostgresStoreConfig extends PostgresOptions {
  /**
   * Write the decision records to the records table of the same schema, in
   * the same transaction as the history update: the record sink becomes the
   * PostgreSQL one. An instance checks an approval against its records before
   * it acts on it (docs/contract.md §6), so with several instances keep the
   * records here. Not together with createVeto's `recordSink`.
   * @defaultValue true, unless createVeto is given a `recordSink`
   */
  readonly records?: boolean;
  /**
   * This instance's Ed25519 private key (PEM text or bytes, or a KeyObject)
   * to sign checkpoints of the records chain with, every `checkpointEvery`
   * records and at close. Instances sharing the chain each use their own key.
   * @defaultValue none
   */
  readonly checkpointKey?: PostgresCheckpointOptions["checkpointKey"];
  /** @defaultValue 1000 */
  readonly checkpointEvery?: number;
}

function invalid(issue: string): VetoOptionsError {
  return new VetoOptionsError(`createVeto: invalid options: ${issue}`, [issue]);
}

/**
 * The PostgreSQL store for createVeto's `store` option (docs/postgres.md).
 * The options are checked when createVeto opens it: createVeto rejects with a
 * VetoOptionsError naming each wrong one.
 */
export function postgres(config: PostgresStoreConfig): StoreFactory {
  return {
    backend: "postgres",
    async open({ recordSink, logger }: StoreFactoryContext): Promise<OpenedStore> {
      if (config === null || typeof config !== "object")
        throw invalid("store: postgres() takes { connectionString, schema?, pool?, migrate?, records? }");
      const { records, checkpointKey, checkpointEvery, ...options } = config;
      if (records !== undefined && typeof records !== "boolean") throw invalid("store.records: must be a boolean");
      try {
        checkpointing({ checkpointKey, checkpointEvery }, "store");
      } catch (error) {
        throw invalid((error as Error).message);
      }
      const keepRecords = records ?? recordSink === undefined;
      if (keepRecords && recordSink !== undefined)
        throw invalid("store.records: cannot be used with recordSink (records would go to both)");
      if ((checkpointKey !== undefined || checkpointEvery !== undefined) && !keepRecords) {
        throw invalid(
          "store.checkpointKey: signs the records table's checkpoints, so it needs the records in the store (records: true, no recordSink)",
        );
      }
      const store = await PostgresStore.connect({ logger, ...options });
      if (!keepRecords) return { store };
      try {
        return { store, recordSink: store.recordSink({ checkpointKey, checkpointEvery }) };
      } catch (error) {
        await store.close();
        throw error;
      }
    },
  };
}
