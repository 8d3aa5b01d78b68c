/**
 * "veto-crm/server": the approval service (docs/approvals.md). A JSON API
 * where verified reviewers list, read, approve and reject the approvals they
 * may answer.
 */
export { approvalItem, createApprovalServer } from "./server.js";
export type { ApprovalItem, ApprovalServerOptions, ItemStatus } from "./server.js";
export { CredentialError, DEFAULT_ALGORITHMS, devLoginAuthenticator, isLoopback, jwtAuthenticator } from "./auth.js";
export type { Authenticate, DevLoginOptions, JwtAuthOptions, Reviewer } from "./auth.js";
