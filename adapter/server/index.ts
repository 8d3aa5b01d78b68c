/**
 * "veto-crm/server": the approval service (docs/approvals.md). A JSON API
 * where verified reviewers list, read, approve and reject the approvals they
 * may answer.
 */
export { approvalItem, createApprovalServer } from "./server.js";
export type { ApprovalItem, ApprovalServerOptions, ItemStatus } from "./server.js";
export { CredentialError, DEFAULT_ALGORITHMS, devLoginAuthenticator, isLoopback, jwtAuthenticator } from "./auth.js";
export type { Authenticate, DevLoginOptions, JwtAuthOptions, Reviewer } from "./auth.js";
export { createSignInLinks, MemoryUsedTokens, SignInLinkError, SignInLinks } from "./inbox/links.js";
export type { RedeemedLink, SignInLinksOptions, UsedTokens } from "./inbox/links.js";
export type { InboxOptions, ReadCrmRecord, RecordTarget } from "./inbox/routes.js";
