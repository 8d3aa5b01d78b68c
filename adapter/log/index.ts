/**
 * The durable, tamper-evident decision log (issue 4): a record sink that
 * appends hash-chained canonical JSON lines, and the tools to verify and read
 * such a log.
 */
export { canonicalJson } from "./canonical.js";
export { CHECKPOINT_CONTEXT, checkpointKeyId, checkpointPublicKeys, checkpointSignatureValid } from "./checkpoint.js";
export type {
  Checkpoint,
  CheckpointKeyInput,
  CheckpointReason,
  CheckpointStatement,
  SavedCheckpoint,
  SeenCheckpoint,
  SegmentPlace,
} from "./checkpoint.js";
export { GENESIS_HASH, RESERVED_FIELDS } from "./chain.js";
export {
  CanonicalJsonError,
  DecisionLogError,
  LogCorruptError,
  LogLockedError,
  RecordUnavailableError,
} from "./errors.js";
export type { DecisionLogErrorCode } from "./errors.js";
export { FileDecisionLog, openFileLog } from "./file-log.js";
export type {
  DecisionLogLogger,
  DecisionLogStats,
  FileDecisionLogOptions,
  LogFileHandle,
  LogFileSystem,
  RecoveryReport,
  WrittenRecord,
} from "./file-log.js";
export { logFiles } from "./segments.js";
export type { TornTail, WalkedRecord } from "./segments.js";
export { readLog, readSavedCheckpoint, readSavedCheckpointFile, verifyLog } from "./verify.js";
export type { CheckpointReport, VerifyFailure, VerifyOk, VerifyOptions, VerifyResult } from "./verify.js";
