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
  /** Statements put off to the next statement or COMMIT (records' appends), each with what its failure is reported as. */
  readonly #atCommit: { statement: string; failure: (error: unknown) => unknown }[] = [];

  constructor(pool: Pool, schema: string, client: PoolClient) {
    this.pool = pool;
    this.schema = schema;
    this.#client = client;
  }

  get open(): boolean {
    return this.#client !== undefined;
  }

  /** Run `fn` on the transaction's connection, after what was put off (atCommit); if it throws, roll back first. */
  async run<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return await this.#within(async (client) => {
      // What was put off runs first when anything else comes before the commit: in order, as written.
      if (this.#atCommit.length > 0) await this.#flush(client, "");
      return await fn(client);
    });
  }

  /** `fn` on the transaction's connection; if it throws, roll back first. */
  async #within<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = this.#client;
    if (client === undefined) throw new Error("the store transaction is over (committed or rolled back)");
    try {
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
   * statement would have failed, and rejects with `failure(error)` (a
   * record's append: the sink's error, as when it was written at once). A
   * record's append comes here, so that the chain's lock is taken no sooner
   * than the unit's next statement, or its commit when nothing else follows.
   */
  atCommit(statement: string, failure: (error: unknown) => unknown = (error) => error): void {
    if (this.#client === undefined) throw new Error("the store transaction is over (committed or rolled back)");
    this.#atCommit.push({ statement, failure });
  }

  /**
   * Send what was put off, then `after` (none: ""), in one round trip; a
   * failure is reported as the first put-off statement's (nothing put off:
   * `after` alone, its error as it is).
   */
  async #flush(client: PoolClient, after: string): Promise<void> {
    const pending = this.#atCommit.splice(0);
    const first = pending[0];
    if (first === undefined) {
      await client.query(after);
      return;
    }
    const text = pending.map((p) => p.statement).join("; ");
    try {
      await client.query(after === "" ? text : `${text}; ${after}`);
    } catch (error) {
      throw first.failure(error);
    }
  }

  async commit(): Promise<void> {
    // What was put off and COMMIT: one round trip.
    await this.#within((client) => this.#flush(client, "COMMIT"));
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
