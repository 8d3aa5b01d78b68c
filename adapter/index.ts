/**
 * "veto-crm": what an application needs to govern its agent's tool calls.
 * The flow (README "Architecture"): call -> validate -> history -> evaluate
 * -> decision -> record -> caller.
 *
 * Deliberately left to subpath exports: the PostgreSQL backend
 * ("veto-crm/postgres"), reading, verifying and replaying decision logs
 * ("veto-crm/audit"), loading, hashing and verifying bundles by hand
 * ("veto-crm/bundle"), the approval service ("veto-crm/server"), MCP
 * tools governed by proxy or wrapper ("veto-crm/mcp", docs/mcp.md), and the
 * agent framework integrations ("veto-crm/ai-sdk", "veto-crm/openai-agents",
 * "veto-crm/langchain"; docs/integrations.md).
 */
export { createVeto } from "./veto.js";
export type { AmendResult, ApprovalRequiredEvent, DeepReadonly, EscalationEvent, GuardOptions, Veto, VetoOptions } from "./veto.js";

// The call and the decision.
export { DEFAULT_INPUT_LIMITS, callSchema } from "./call/input.js";
export type { CallArguments, CallContext, InputLimits, VetoCall } from "./call/input.js";
export { ADAPTER_REASON_CODES } from "./common/decision.js";
export type { Action, BundleVersion, Decision, PolicyAnswer, Reason } from "./common/decision.js";

// Approvals.
export type { AmendOptions, AnswerOptions, ApprovalAnswer, WaitOptions } from "./approvals/desk.js";
export type { RecordStateCall, RecordStateFn } from "./approvals/record-state.js";
export type { ReadRecord, RecordReader } from "./approvals/evidence.js";

// Errors: every one a VetoError with a stable code.
export {
  ApprovalError,
  BundleLoadError,
  BundleRollbackError,
  BundleSignatureError,
  VetoClosedError,
  VetoDeniedError,
  VetoError,
  VetoOptionsError,
} from "./common/errors.js";
export type { ApprovalErrorCode, BundleSignatureCheck, VetoErrorCode } from "./common/errors.js";
export { DecisionLogError, RecordUnavailableError } from "./records/errors.js";

// History: the store interface and the in-memory store.
export { InMemoryStore } from "./history/store.js";
export type {
  ApprovalState,
  ApprovalStatus,
  ApprovalTransition,
  HistoryKey,
  InMemoryStoreOptions,
  OpenedStore,
  StoreFactory,
  StoreFactoryContext,
  StoreUnit,
  StoredDecision,
  UnitOptions,
  VetoStore,
} from "./history/store.js";
export type { DecisionUnit, TransactionalRecordSink } from "./history/unit.js";

// Records and their sinks.
export { PinoRecordSink } from "./records/records.js";
export { FdRecordSink } from "./records/fd-sink.js";
export type { ApprovalEventRecord, DecisionEventRecord, RecordSink, VetoRecord } from "./records/records.js";
export { FileDecisionLog, openFileLog } from "./records/file/file-log.js";
export type { FileDecisionLogOptions } from "./records/file/file-log.js";

// The policy bundle.
export { packagedBundlePath, packagedRegoBundlePath } from "./policy/packaged.js";
export type { BundleChangeEvent, BundleRefresh, BundleServerOptions, BundleSpec } from "./policy/source.js";
export type { BundleRollbackOptions } from "./policy/rollback.js";
export type { VerificationKeyInput } from "./policy/signature.js";
