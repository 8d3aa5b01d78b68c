/**
 * The PostgreSQL store, record sink and migrations (issue 7): many
 * application instances, one deny history, one set of approvals, one record
 * chain.
 */
export { DEFAULT_SCHEMA, PostgresStoreError } from "./connection.js";
export { crossCheckPostgresStore } from "./cross-check.js";
export type { CrossCheckOptions, CrossCheckResult, StoreMismatch } from "./cross-check.js";
export type { PostgresErrorCode, PostgresLogger, PostgresOptions } from "./connection.js";
export type { PostgresStoreConfig, StoreOption } from "./config.js";
export { defaultMigrationsDir, loadMigrations, migrate } from "./migrations.js";
export type { MigrateOptions, MigrateResult, Migration } from "./migrations.js";
export { PostgresRecordSink, verifyPostgresLog } from "./records.js";
export type { PostgresCheckpointOptions, PostgresVerifyResult, PostgresWrittenRecord } from "./records.js";
export { APPROVAL_CHANNEL, PostgresStore } from "./store.js";
export type { PostgresStoreOptions } from "./store.js";
export { PostgresTransaction } from "./transaction.js";
