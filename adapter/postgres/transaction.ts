import type { Pool, PoolClient } from "pg";
import { releaseClient } from "./connection.js";

/**
 * One unit's transaction on one pooled connection. Any failed statement rolls
 * it back and returns the connection at once, so its locks (the history key,
 * the record chain) never outlive the failure; after that, and after commit,
 * the transaction refuses further work.
 */
export class PostgresTransaction {
  readonly pool: Pool;
  readonly schema: string;
  #client: PoolClient | undefined;

  constructor(pool: Pool, schema: string, client: PoolClient) {
    this.pool = pool;
    this.schema = schema;
    this.#client = client;
  }

  get open(): boolean {
    return this.#client !== undefined;
  }

  /** Run `fn` on the transaction's connection; if it throws, roll back first. */
  async run<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = this.#client;
    if (client === undefined) throw new Error("the store transaction is over (committed or rolled back)");
    try {
      return await fn(client);
    } catch (error) {
      await this.rollback();
      throw error;
    }
  }

  async commit(): Promise<void> {
    await this.run((client) => client.query("COMMIT"));
    this.#finish(undefined);
  }

  async rollback(): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#client = undefined;
    // A connection that cannot even roll back (it broke: the usual cause) is destroyed, not pooled.
    let broken: unknown;
    try {
      await client.query("ROLLBACK");
    } catch (error) {
      broken = error;
    }
    releaseClient(client, broken);
  }

  #finish(failed: unknown): void {
    const client = this.#client;
    this.#client = undefined;
    if (client !== undefined) releaseClient(client, failed);
  }
}
