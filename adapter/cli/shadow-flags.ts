/**
 * `--shadow-bundle PATH [--shadow-data FILE]`, shared by the subcommands that
 * decide (`veto eval`, `veto mcp-proxy`): a candidate bundle evaluated beside
 * the enforced one on every call, its verdict recorded as `shadow` and never
 * enforced (createVeto's `shadow`, docs/policy-changes.md).
 */
import type { ShadowOptions } from "../policy/shadow.js";
import { UsageError, readDataFile } from "./common.js";

export const SHADOW_USAGE = `--shadow-bundle PATH: a candidate bundle (with --shadow-data FILE's data) evaluated
      beside --bundle on every call; its verdict is recorded as "shadow", never enforced`;

export const shadowOptions = {
  "shadow-bundle": { type: "string" },
  "shadow-data": { type: "string" },
} as const;

/** createVeto's `shadow` from the flags (undefined without --shadow-bundle); --shadow-data's file is read here. */
export async function readShadowOptions(values: {
  readonly "shadow-bundle"?: string | undefined;
  readonly "shadow-data"?: string | undefined;
}): Promise<ShadowOptions | undefined> {
  const bundle = values["shadow-bundle"];
  const dataFile = values["shadow-data"];
  if (bundle === undefined) {
    if (dataFile !== undefined) throw new UsageError("--shadow-data needs --shadow-bundle PATH");
    return undefined;
  }
  return { bundle, ...(dataFile === undefined ? {} : { data: await readDataFile(dataFile) }) };
}
