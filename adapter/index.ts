export { createVeto } from "./veto.js";
export type { DeepReadonly, EscalationEvent, Veto, VetoOptions } from "./veto.js";
export type { AnswerOptions, ApprovalAnswer, WaitOptions } from "./approvals.js";
export type { Action, BundleVersion, Decision, PolicyAnswer, Reason } from "./decision.js";
export { ADAPTER_REASON_CODES } from "./decision.js";
export {
  ApprovalError,
  BundleLoadError,
  BundleSignatureError,
  VetoClosedError,
  VetoDeniedError,
  VetoError,
  VetoOptionsError,
} from "./errors.js";
export type { ApprovalErrorCode, BundleSignatureCheck, VetoErrorCode } from "./errors.js";
export { DEFAULT_INPUT_LIMITS, callSchema } from "./input.js";
export type { CallArguments, CallContext, InputLimits, VetoCall } from "./input.js";
export { InMemoryStore } from "./store.js";
export type {
  ApprovalState,
  ApprovalStatus,
  ApprovalTransition,
  HistoryKey,
  InMemoryStoreOptions,
  StoreUnit,
  StoredDecision,
  VetoStore,
} from "./store.js";
export type { DecisionUnit, TransactionalRecordSink } from "./unit.js";
export { PinoRecordSink, RecordMasker } from "./records.js";
export { FdRecordSink } from "./fd-sink.js";
export type { ApprovalEventRecord, DecisionEventRecord, RecordSink, VetoRecord } from "./records.js";
export { DECISION_ENTRYPOINT, loadBundle } from "./bundle.js";
export type { LoadBundleOptions, LoadedBundle } from "./bundle.js";
export { bundleVersionHash, bundleVersionHashOfTarball, readTarball } from "./bundle-hash.js";
export {
  DEFAULT_DOWNLOAD_TIMEOUT_MS,
  DEFAULT_MAX_DOWNLOAD_BYTES,
  DEFAULT_POLL_INTERVAL_MS,
} from "./bundle-source.js";
export type { BundleChangeEvent, BundleRefresh, BundleServerOptions, BundleSpec } from "./bundle-source.js";
export { SIGNING_ALGORITHMS, createBundleVerifier, verifyBundleSignature } from "./signature.js";
export type { BundleVerificationKey, BundleVerifier, SigningAlgorithm, VerificationKeyInput, VerifierKey } from "./signature.js";
export type { BundleFile } from "./bundle-hash.js";
export {
  CanonicalJsonError,
  DecisionLogError,
  FileDecisionLog,
  GENESIS_HASH,
  LogCorruptError,
  LogLockedError,
  RESERVED_FIELDS,
  RecordUnavailableError,
  canonicalJson,
  logFiles,
  openFileLog,
  readLog,
  verifyLog,
} from "./log/index.js";
export type {
  DecisionLogErrorCode,
  DecisionLogLogger,
  DecisionLogStats,
  FileDecisionLogOptions,
  LogFileHandle,
  LogFileSystem,
  RecoveryReport,
  TornTail,
  VerifyFailure,
  VerifyOk,
  VerifyOptions,
  VerifyResult,
  WalkedRecord,
  WrittenRecord,
} from "./log/index.js";
export { Replayer, changeKind, replayRecords } from "./replay.js";
export type {
  LoggedRecord,
  ReplayComparison,
  ReplayOptions,
  ReplayOutcome,
  ReplayReport,
  ReplaySkip,
  ReplayedRecord,
  Verdict,
} from "./replay.js";
export { packagedBundlePath, packagedRegoBundlePath } from "./packaged.js";
export {
  APPROVAL_CHANNEL,
  DEFAULT_SCHEMA,
  PostgresRecordSink,
  PostgresStore,
  PostgresStoreError,
  PostgresTransaction,
  defaultMigrationsDir,
  loadMigrations,
  migrate,
  verifyPostgresLog,
} from "./postgres/index.js";
export type {
  MigrateOptions,
  MigrateResult,
  Migration,
  PostgresErrorCode,
  PostgresLogger,
  PostgresOptions,
  PostgresStoreConfig,
  PostgresStoreOptions,
  PostgresVerifyResult,
  PostgresWrittenRecord,
  StoreOption,
} from "./postgres/index.js";
