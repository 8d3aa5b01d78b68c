/**
 * How the adapter reads names and required texts: exactly as the policy does
 * (policy/veto/crm/text.rego), from the same generated tables
 * (adapter/common/unicode-tables.ts, policy/veto/crm/unicode.rego; both made by
 * scripts/unicode-tables.mjs). See docs/contract.md §9.
 *
 * - One case-folding rule: two names match when their fold keys are equal.
 *   The fold key of a name is each character listed in FOLD_TABLE replaced by
 *   its entry, then Rego's lower() — written out here from the generated
 *   table of what OPA's lower() does, so the key does not depend on the ICU
 *   data of the Node that runs the adapter. Names that match under Rego's
 *   lower() (OPA's Go or WASM evaluator), JavaScript's toLowerCase() or
 *   Unicode simple case folding have equal keys ("TAX_İD" is "tax_id").
 * - One idea of blank: a text is blank when it holds nothing but White_Space,
 *   Default_Ignorable_Code_Point, Cc and Cf characters.
 */
import { BLANK_RANGES, FOLD_TABLE, LOWER_RUNS } from "./unicode-tables.js";

/** Rego's lower() outside FOLD_TABLE, by code point. */
const LOWER: ReadonlyMap<number, number> = (() => {
  const lower = new Map<number, number>();
  for (const [first, last, delta, step] of LOWER_RUNS) for (let cp = first; cp <= last; cp += step) lower.set(cp, cp + delta);
  return lower;
})();

const ASCII = /^[\0-\x7f]*$/;

/**
 * The fold key of a field, object or amount-field name (docs/contract.md §9).
 * A name in ASCII has its ASCII lower case as key: no ASCII character is in
 * FOLD_TABLE, and lower() maps ASCII as toLowerCase() does.
 */
export function foldKey(name: string): string {
  if (ASCII.test(name)) return name.toLowerCase();
  let key = "";
  for (const ch of name) {
    const cp = ch.codePointAt(0) as number;
    const replaced = FOLD_TABLE.get(cp);
    if (replaced !== undefined) {
      // Replacements are their own lower case (the generator checks it).
      key += replaced;
    } else {
      const lowered = LOWER.get(cp);
      key += lowered === undefined ? ch : String.fromCodePoint(lowered);
    }
  }
  return key;
}

const BLANK = new RegExp(
  `^[${BLANK_RANGES.map(([first, last]) => `\\u{${first.toString(16)}}-\\u{${last.toString(16)}}`).join("")}]*$`,
  "u",
);

/** Whether a text holds nothing but blank characters (docs/contract.md §9); "" is blank. */
export function isBlank(text: string): boolean {
  return BLANK.test(text);
}
