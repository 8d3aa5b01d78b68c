/**
 * "veto-crm/server": the approval service (docs/approvals.md). A JSON API
 * where verified reviewers list, read, approve and reject the approvals they
 * may answer.
 */
export { approvalItem, createApprovalServer } from "./server.js";
export type { AmendAnswer, AmendRefusal, ApprovalItem, ApprovalServerOptions, ItemStatus } from "./server.js";
export { CredentialError, DEFAULT_ALGORITHMS, devLoginAuthenticator, isLocalRequest, isLoopback, jwtAuthenticator } from "./auth.js";
export type { Authenticate, DevLoginOptions, JwtAuthOptions, RequestPeer, Reviewer } from "./auth.js";
export { approvalLink, itemOfEvent, signWebhook, slackText, SIGNATURE_HEADER, verifyWebhookSignature, webhookNotifier } from "./notify.js";
export type { ApprovalLink, ApproverLinks, Delivery, VerifyWebhookOptions, WebhookNotifier, WebhookNotifierOptions } from "./notify.js";
export { memoryLedger, notifyApprovals } from "./notifications.js";
export type { ApprovalNotifications, ApprovalNotificationsOptions, NotificationLedger } from "./notifications.js";
export { createSignInLinks, MemoryUsedTokens, SignInLinkError, SignInLinks } from "./inbox/links.js";
export type { RedeemedLink, SignInLinksOptions, UsedTokens } from "./inbox/links.js";
export type { InboxOptions } from "./inbox/routes.js";
export { DEFAULT_READ_RECORD_TIMEOUT_MS } from "./record-view.js";
export type { CurrentView, ReadRecord, ReadRecordCall, RecordReading } from "./record-view.js";
