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
  /** Statements sent with COMMIT, in one round trip (the records' appends: the chain's lock is held only from there). */
  readonly #atCommit: string[] = [];

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
      // What waits for the commit runs first when anything else comes before it: in order, as written.
      if (this.#atCommit.length > 0) await client.query(this.#flush());
      return await fn(client);
    } catch (error) {
      await this.rollback();
      throw error;
    }
  }

  /**
   * Run `statement` (simple-query text, no parameters) in the transaction,
   * later: in the round trip of the next statement it runs, before that
   * statement, or of COMMIT. A failure rolls the transaction back where the
   * statement would have failed. A record's append comes here, so that the
   * chain's lock is taken in the round trip that commits, when nothing else
   * follows the record.
   */
  atCommit(statement: string): void {
    if (this.#client === undefined) throw new Error("the store transaction is over (committed or rolled back)");
    this.#atCommit.push(statement);
  }

  #flush(): string {
    const text = this.#atCommit.join("; ");
    this.#atCommit.length = 0;
    return text;
  }

  async commit(): Promise<void> {
    const text = this.#atCommit.length === 0 ? "COMMIT" : `${this.#flush()}; COMMIT`;
    await this.run((client) => client.query(text));
    this.#finish(undefined);
  }

  async rollback(): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#client = undefined;
    this.#atCommit.length = 0;
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
