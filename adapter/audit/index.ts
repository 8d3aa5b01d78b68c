/**
 * "veto-crm/audit": reading, verifying and replaying decision logs. The file
 * log appends hash-chained canonical JSON lines, optionally with signed
 * checkpoints (docs/decision-log.md); replay re-decides recorded calls with a
 * candidate bundle (docs/decision-log-cli.md).
 */
export { canonicalJson } from "../common/canonical-json.js";
export type { CanonicalJsonOptions } from "../common/canonical-json.js";
export { CHECKPOINT_CONTEXT, checkpointKeyId, checkpointPublicKeys, checkpointSignatureValid } from "../records/checkpoint.js";
export type {
  Checkpoint,
  CheckpointKeyInput,
  CheckpointReason,
  CheckpointStatement,
  SavedCheckpoint,
  SeenCheckpoint,
  SegmentPlace,
} from "../records/checkpoint.js";
export { GENESIS_HASH, RESERVED_FIELDS } from "../records/chain.js";
export { CanonicalJsonError, DecisionLogError, LogCorruptError, LogLockedError, RecordUnavailableError } from "../records/errors.js";
export type { DecisionLogErrorCode } from "../records/errors.js";
export { FileDecisionLog, openFileLog } from "../records/file/file-log.js";
export type {
  DecisionLogLogger,
  DecisionLogStats,
  FileDecisionLogOptions,
  LogFileHandle,
  LogFileSystem,
  RecoveryReport,
  WrittenRecord,
} from "../records/file/file-log.js";
export { logFiles } from "../records/file/segments.js";
export type { TornTail, WalkedRecord } from "../records/file/segments.js";
export { readLog, readSavedCheckpoint, readSavedCheckpointFile, verifyLog } from "../records/file/verify.js";
export type { CheckpointReport, VerifyFailure, VerifyOk, VerifyOptions, VerifyResult } from "../records/file/verify.js";
export { RecordMasker } from "../records/records.js";
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
