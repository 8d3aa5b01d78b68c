/**
 * "veto-crm/postgres": the PostgreSQL store, record sink and migrations.
 * Many application instances, one deny history, one set of approvals, one
 * record chain (docs/postgres.md).
 */
export { DEFAULT_SCHEMA, PostgresStoreError } from "./connection.js";
export { crossCheckPostgresStore } from "./cross-check.js";
export type { CrossCheckOptions, CrossCheckResult, StoreMismatch } from "./cross-check.js";
export type { PostgresErrorCode, PostgresLogger, PostgresOptions } from "./connection.js";
export { postgres } from "./config.js";
export type { PostgresStoreConfig } from "./config.js";
export { defaultMigrationsDir, loadMigrations, migrate } from "./migrations.js";
export type { MigrateOptions, MigrateResult, Migration } from "./migrations.js";
export { PostgresRecordSink, verifyPostgresLog } from "./records.js";
export type { PostgresCheckpointOptions, PostgresVerifyResult, PostgresWrittenRecord } from "./records.js";
export { APPROVAL_CHANNEL, PostgresStore } from "./store.js";
export type { PostgresStoreOptions } from "./store.js";
export type { GroupStats } from "./batch.js";
export { PostgresTransaction } from "./transaction.js";
export { PostgresNotificationLedger } from "./notifications.js";
export type { PostgresNotificationLedgerOptions } from "./notifications.js";
