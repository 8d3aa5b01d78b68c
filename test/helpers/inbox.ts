// The inbox tests' shared steps (no browser): a pending approval, a dev-login session, a form's CSRF token.
import { expect } from "vitest";
import type { Veto } from "../../adapter/index.js";
import type { createApprovalServer } from "../../adapter/server/index.js";
import { APPROVER, write } from "./index.js";

export type InboxApp = Awaited<ReturnType<typeof createApprovalServer>>;

/** A write of 9000 (plus `args`) that needs approval; its decision id. */
export async function pending(veto: Veto, args: Record<string, unknown> = {}): Promise<string> {
  const d = await veto.protect(write({ amount: 9000, ...args }));
  expect(d.action).toBe("require_approval");
  return d.id;
}

/** The session cookie of a response, as a Cookie header. */
export function cookieOf(res: { headers: Record<string, unknown> }): string {
  const set = String(res.headers["set-cookie"]);
  return set.split(";")[0]!;
}

/** Sign in through /dev-login; the session cookie as a Cookie header. */
export async function devLogin(app: InboxApp, reviewer = APPROVER): Promise<string> {
  const res = await app.inject({ method: "GET", url: `/dev-login?reviewer=${encodeURIComponent(reviewer)}` });
  expect(res.statusCode).toBe(303);
  expect(res.headers.location).toBe("/");
  return cookieOf(res);
}

/** The CSRF token of the first form in a page. */
export function csrfOf(html: string): string {
  const m = /name="_csrf" value="([^"]+)"/.exec(html);
  expect(m).not.toBeNull();
  return m![1]!;
}

/** A form post's body and its content type. */
export const form = (fields: Record<string, string>): string => new URLSearchParams(fields).toString();
export const FORM = { "content-type": "application/x-www-form-urlencoded" };
