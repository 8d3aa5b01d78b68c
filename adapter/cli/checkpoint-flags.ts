/**
 * The checkpoint flags of `veto log verify` and `veto log checkpoint`
 * (--public-key, --expect-checkpoint, --require-checkpointed), for files and
 * for the PostgreSQL records table alike, and how their results are printed.
 */
import { toError } from "../shared/errors.js";
import { uncoveredText } from "../records/checkpoint.js";
import { readSavedCheckpointFile, type CheckpointReport, type VerifyOptions } from "../audit/index.js";
import { UsageError, fail, readBoundedFile } from "./common.js";
import { MAX_KEY_FILE_BYTES } from "./verification-key.js";

/** What a line on stdout says about a log's checkpoints (nothing for a log without them, verified without keys). */
export function checkpointLines(name: string, report: CheckpointReport | undefined, unit: "line" | "seq" = "line"): string {
  if (report === undefined) return "";
  const lines: string[] = [];
  const last = report.last;
  if (last !== null) {
    const where = last.file === name ? `${unit} ${last.line}` : `${last.file} ${unit} ${last.line}`;
    const signature = last.verified ? "signature verified" : "signature not checked (give --public-key)";
    lines.push(
      `${name}: last checkpoint ${where} covers ${coverText(last.seq - 1)} (${last.checkpoint.reason}, ${last.checkpoint.time}), key ${last.checkpoint.key_id}, ${signature}`,
    );
  }
  if (report.uncovered !== null) {
    const { entries, file, line } = report.uncovered;
    const where = file === name ? `${unit} ${line}` : `${file} ${unit} ${line}`;
    lines.push(`${name}: ${uncoveredText(entries)} (from ${where}), not yet covered by a signature`);
  }
  return lines.map((l) => `${l}\n`).join("");
}

/** The summary line: the pre-checkpoint form for a log without checkpoints. */
export function countText(count: number, report: CheckpointReport | undefined): string {
  return report === undefined || report.checkpoints === 0
    ? `${count} records`
    : `${report.records} records and ${report.checkpoints} checkpoint${report.checkpoints === 1 ? "" : "s"} (seq 1..${count})`;
}

/** "seq 1..41", or "no entries" for the checkpoint a new log starts with. */
export function coverText(seq: number): string {
  return seq === 0 ? "no entries" : `seq 1..${seq}`;
}

export const checkpointFlags = {
  "public-key": { type: "string", multiple: true },
  "expect-checkpoint": { type: "string" },
  "require-checkpointed": { type: "boolean" },
} as const;

/** The flags above as verify options; files read here (exit 2 when unreadable). */
export async function checkpointChecks(values: {
  "public-key"?: string[];
  "expect-checkpoint"?: string;
  "require-checkpointed"?: boolean;
}): Promise<Pick<VerifyOptions, "publicKeys" | "expectCheckpoint" | "requireCheckpointed">> {
  const keyFiles = values["public-key"] ?? [];
  if (keyFiles.length === 0 && (values["expect-checkpoint"] !== undefined || values["require-checkpointed"] === true)) {
    throw new UsageError("--expect-checkpoint and --require-checkpointed need --public-key FILE");
  }
  const publicKeys = await Promise.all(
    keyFiles.map(async (file) => {
      return (await readBoundedFile(file, "public key", MAX_KEY_FILE_BYTES)).toString("utf8");
    }),
  );
  const expectCheckpoint =
    values["expect-checkpoint"] === undefined ? undefined : await readSavedCheckpointFile(values["expect-checkpoint"]);
  return {
    ...(publicKeys.length === 0 ? {} : { publicKeys }),
    ...(expectCheckpoint === undefined ? {} : { expectCheckpoint }),
    ...(values["require-checkpointed"] === true ? { requireCheckpointed: true } : {}),
  };
}
