/**
 * Record state (docs/contract.md §6): the application's `recordState(call)`
 * says what state the CRM record a call targets is in (a version, an ETag, a
 * SystemModstamp, a digest of the fields the call changes). It is asked when
 * a call needs approval, and again where the approved call executes; the call
 * runs only when the two agree. Whatever the function does (throws, answers
 * something other than a string or undefined, takes too long) is an answer
 * that cannot be trusted, and both places fail closed on it.
 */
import { deepFreeze, type VetoCall } from "../call/input.js";
import { toError } from "../common/errors.js";

/** The call as the state function receives it: a deep-frozen copy, so it cannot change what was decided. */
export type RecordStateCall = Readonly<Pick<VetoCall, "tool" | "arguments" | "context">>;

/** The application's function: the record's state, or undefined for "no state to bind". */
export type RecordStateFn = (call: RecordStateCall) => string | undefined | Promise<string | undefined>;

export const DEFAULT_RECORD_STATE_TIMEOUT_MS = 2_000;

/** What asking gave: the state (undefined: none), or why there is no answer to trust. */
export type RecordStateReading =
  { readonly ok: true; readonly state: string | undefined } | { readonly ok: false; readonly problem: string };

/**
 * Ask `fn` for the state of `call`'s record, within `timeoutMs`. Never throws
 * and never takes (much) longer than `timeoutMs`: a function still running
 * then is left to finish on its own, its answer unused.
 */
export async function readRecordState(fn: RecordStateFn, call: RecordStateCall, timeoutMs: number): Promise<RecordStateReading> {
  let copy: RecordStateCall;
  try {
    copy = deepFreeze(structuredClone({ tool: call.tool, arguments: call.arguments, context: call.context }));
  } catch (error) {
    return { ok: false, problem: `the call could not be copied for recordState: ${toError(error).message}` };
  }
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<RecordStateReading>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, problem: `recordState did not answer within ${timeoutMs} ms` }), timeoutMs);
  });
  const asked = (async (): Promise<RecordStateReading> => {
    let state: unknown;
    try {
      state = await fn(copy);
    } catch (error) {
      return { ok: false, problem: `recordState failed: ${toError(error).message}` };
    }
    if (state === undefined || typeof state === "string") return { ok: true, state };
    return { ok: false, problem: `recordState must answer a string or undefined, not ${state === null ? "null" : typeof state}` };
  })();
  try {
    return await Promise.race([asked, late]);
  } finally {
    clearTimeout(timer);
  }
}
