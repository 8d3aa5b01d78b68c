/**
 * Before and after (docs/inbox.md, "Before and after"): the app's optional
 * `readRecord` hook says what the record a pending call would change holds
 * now, and at which state (version, ETag). It is for display only: it never
 * decides anything. Whatever it does (throws, takes too long, answers another
 * shape, hands back hostile or huge values) ends in a view that says the
 * current values are unavailable, or in values copied out as plain JSON and
 * cut to a bounded length; it never breaks a page or an answer.
 */
import { deepFreeze } from "../call/input.js";
import { toError } from "../common/errors.js";
import type { StoredDecision } from "../history/store.js";

/** The call whose record is read: as the approval stores it (a deep-frozen copy). */
export interface ReadRecordCall {
  readonly decisionId: string;
  readonly tool: string;
  /** The call's arguments as the approval keeps them: sensitive values masked (docs/contract.md §7). */
  readonly arguments: Readonly<Record<string, unknown>>;
  /** The call's context as decided (actorId, tenantId, environment, reason), or null for an approval stored without it. */
  readonly context: unknown;
}

/** What the hook answers for a record it found. */
export interface RecordReading {
  /** The record's current fields; those the call changes are shown (sensitive ones never). */
  readonly fields: Readonly<Record<string, unknown>>;
  /**
   * The state these fields were read at, made as `createVeto`'s `recordState`
   * makes it (docs/contract.md §6, record state): compared as text with the
   * state the approval is bound to.
   */
  readonly state?: string;
}

/**
 * The app's read of its CRM for the inbox and `GET /api/approvals/:id`:
 * undefined when the call names no record it can read.
 */
export type ReadRecord = (call: ReadRecordCall) => RecordReading | undefined | Promise<RecordReading | undefined>;

/** The current side of a pending approval, as shown (the JSON API's `current`). */
export type CurrentView =
  | {
      readonly available: true;
      /** The current value of each changed field the record has, as plain JSON (absent: not set). */
      readonly fields: Readonly<Record<string, unknown>>;
      /** Changed fields that are sensitive: their current value is not shown. */
      readonly masked: readonly string[];
      /** Fields whose value was longer than MAX_VALUE_CHARS characters (as text): cut to that. */
      readonly truncated: readonly string[];
      /** The state the record was read at (cut to MAX_STATE_CHARS characters), when the hook gave one. */
      readonly state?: string;
      /** Whether that state differs from the one the approval is bound to; absent unless both are known. */
      readonly stateChanged?: boolean;
    }
  | { readonly available: false; readonly reason: string };

export const DEFAULT_READ_RECORD_TIMEOUT_MS = 2_000;
export const MAX_VALUE_CHARS = 1_000;
export const MAX_STATE_CHARS = 200;
/** Reads in flight at once for one page. */
const CONCURRENCY = 8;
const DIGEST = /^(hmac-)?sha256:[0-9a-f]{64}$/;

const own = (o: object, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key);
const plainObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** At most `max` code points of `text`, and whether it was cut (reads no further than the cut, however long the text). */
export function cut(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max) return { text, cut: false };
  let i = 0;
  for (let n = 0; n < max && i < text.length; n++) i += text.codePointAt(i)! > 0xffff ? 2 : 1;
  return i >= text.length ? { text, cut: false } : { text: text.slice(0, i), cut: true };
}

/** A value the hook gave, as plain JSON bounded in length; undefined when it has none. */
function copyValue(value: unknown): { value: unknown; cut: boolean } | undefined {
  if (typeof value === "string") {
    const c = cut(value, MAX_VALUE_CHARS);
    return { value: c.text, cut: c.cut };
  }
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch {
    return { value: "(a value that cannot be shown)", cut: false };
  }
  if (json === undefined) return { value: "(a value that cannot be shown)", cut: false };
  const c = cut(json, MAX_VALUE_CHARS);
  return c.cut ? { value: c.text, cut: true } : { value: JSON.parse(json) as unknown, cut: false };
}

/** The fields a call changes, with their new values: its `changes` object's own keys. */
export function changesOf(args: unknown): Readonly<Record<string, unknown>> | undefined {
  if (!plainObject(args)) return undefined;
  const changes = args["changes"];
  return plainObject(changes) ? changes : undefined;
}

/** The view of what the hook answered, for a call changing `changes`, bound to `bound`. Never throws. */
export function viewOf(answer: unknown, changes: Readonly<Record<string, unknown>>, bound: string | undefined): CurrentView {
  try {
    if (answer === undefined) return { available: false, reason: "the record was not found" };
    if (!plainObject(answer) || !plainObject(answer["fields"])) {
      return { available: false, reason: "readRecord answered something other than { fields, state? }" };
    }
    const state = answer["state"];
    if (state !== undefined && typeof state !== "string") {
      return { available: false, reason: "readRecord answered a state that is not a string" };
    }
    const from = answer["fields"];
    const fields = Object.create(null) as Record<string, unknown>;
    const masked: string[] = [];
    const truncated: string[] = [];
    for (const [field, next] of Object.entries(changes)) {
      // A sensitive field's new value is masked in the approval: its current value is not shown either.
      if (typeof next === "string" && DIGEST.test(next)) {
        masked.push(field);
        continue;
      }
      if (!own(from, field)) continue;
      const copied = copyValue(from[field]);
      if (copied === undefined) continue;
      fields[field] = copied.value;
      if (copied.cut) truncated.push(field);
    }
    return {
      available: true,
      fields: { ...fields },
      masked,
      truncated,
      ...(state === undefined ? {} : { state: cut(state, MAX_STATE_CHARS).text }),
      ...(state === undefined || bound === undefined ? {} : { stateChanged: state !== bound }),
    };
  } catch {
    return { available: false, reason: "readRecord answered a record that cannot be read" };
  }
}

export interface CurrentReader {
  /**
   * The current view of each pending approval among `decisions` that changes
   * fields, by decision id; reads run a few at a time and all end by one
   * deadline (`timeoutMs` from the call).
   */
  readMany(decisions: readonly StoredDecision[]): Promise<Map<string, CurrentView>>;
}

export function currentReader(
  hook: ReadRecord,
  timeoutMs: number,
  log: { warn(fields: object, message: string): void } | undefined,
): CurrentReader {
  const readOne = async (d: StoredDecision, changes: Readonly<Record<string, unknown>>, deadline: number): Promise<CurrentView> => {
    const left = deadline - Date.now();
    if (left <= 0) return { available: false, reason: `readRecord did not answer within ${timeoutMs} ms` };
    let call: ReadRecordCall;
    try {
      call = deepFreeze(
        structuredClone({
          decisionId: d.id,
          tool: d.review?.tool ?? "",
          arguments: d.review?.arguments as Record<string, unknown>,
          context: d.review?.context ?? null,
        }),
      );
    } catch {
      return { available: false, reason: "the call could not be copied for readRecord" };
    }
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<CurrentView>((resolve) => {
      timer = setTimeout(() => resolve({ available: false, reason: `readRecord did not answer within ${timeoutMs} ms` }), left);
    });
    const asked = (async (): Promise<CurrentView> => {
      let answer: unknown;
      try {
        answer = await hook(call);
      } catch (error) {
        log?.warn({ err: toError(error), decision_id: d.id }, "readRecord failed");
        return { available: false, reason: "readRecord failed" };
      }
      return viewOf(answer, changes, d.recordState);
    })();
    try {
      return await Promise.race([asked, late]);
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    async readMany(decisions) {
      const deadline = Date.now() + timeoutMs;
      const views = new Map<string, CurrentView>();
      const queue = decisions.flatMap((d) => {
        const changes = changesOf(d.review?.arguments);
        return changes === undefined ? [] : [{ d, changes }];
      });
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < queue.length) {
          const { d, changes } = queue[next++]!;
          views.set(d.id, await readOne(d, changes, deadline));
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
      return views;
    },
  };
}
