/**
 * Every approver id a data document names: whom `--dev-login` may sign in
 * as (`veto serve`, `veto mcp-proxy --listen`).
 */
export function approverIdsOf(data: unknown): string[] {
  const found = new Set<string>();
  const walk = (v: unknown, key: string): void => {
    if (Array.isArray(v)) {
      for (const x of v) {
        if (key === "approvers" && typeof x === "string") found.add(x);
        else walk(x, "");
      }
    } else if (v !== null && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, k);
  };
  walk(data, "");
  return [...found];
}
