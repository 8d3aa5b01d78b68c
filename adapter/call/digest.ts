/**
 * Canonical JSON of a call or a value taken from one (object keys sorted by
 * UTF-16 code units, as RFC 8785 does, numbers as JavaScript prints them), so
 * the same call always has the same digest whatever order its keys arrived in.
 *
 * For JSON values the text is exactly log/canonical.ts's. The difference is
 * deliberate: like protect()'s input snapshot (and JSON.stringify), this one
 * leaves out object members whose value is undefined, so a call that a caller
 * hands to waitForApproval({ call }) digests as the call protect() decided;
 * the log's canonicalJson refuses such a member, as a record must not lose one.
 */

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`not JSON: ${typeof value}`);
    return text;
  }
  if (Array.isArray(value)) {
    return `[${value.map((v) => canonicalJson(v)).join(",")}]`;
  }
  const entries = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(",")}}`;
}
