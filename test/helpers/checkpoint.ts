/** Keys and forgeries for the checkpoint tests: what an attacker who can write the log (but lacks the key) can do. */
import { createHash, generateKeyPairSync, sign, type KeyObject } from "node:crypto";
import { CHECKPOINT_CONTEXT, canonicalJson, checkpointKeyId } from "../../adapter/audit/index.js";

export interface KeyPair {
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly privatePem: string;
  readonly publicPem: string;
}

export function ed25519(): KeyPair {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKey,
    publicKey,
    keyId: checkpointKeyId(publicKey),
    privatePem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    publicPem: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

export type Entry = Record<string, unknown> & { seq: number; prev_hash: string; hash: string };

export const parseEntry = (line: string): Entry => JSON.parse(line) as Entry;
export const isCheckpointLine = (line: string): boolean => "checkpoint" in parseEntry(line);

/** The entry's line with its hash recomputed: a correct hash, as anyone can make one. */
export function seal(entry: Record<string, unknown>): string {
  const { hash: _old, ...body } = entry;
  const hash = `sha256:${createHash("sha256").update(canonicalJson(body)).digest("hex")}`;
  return canonicalJson({ ...body, hash });
}

/** Re-sign a checkpoint entry's statement with `key`, naming `keyId` (default: the key's own id). */
export function resign(entry: Record<string, unknown>, key: KeyObject, keyId: string): Record<string, unknown> {
  const { signature: _old, ...statement } = entry["checkpoint"] as Record<string, unknown>;
  const named = { ...statement, key_id: keyId };
  const signature = sign(null, Buffer.from(CHECKPOINT_CONTEXT + canonicalJson(named)), key).toString("base64");
  return { ...entry, checkpoint: { ...named, signature } };
}

/**
 * Re-chain `lines` from index `from` on, as a forger would after changing
 * line `from`: each prev_hash and seq follow the line before, each hash is
 * recomputed, and checkpoints are re-signed with `key` under `keyId` (they
 * cannot be signed with the real key).
 */
export function rechain(lines: string[], from: number, key: KeyObject, keyId: string): string[] {
  const out = lines.slice(0, from);
  let prev = from === 0 ? `sha256:${"0".repeat(64)}` : parseEntry(lines[from - 1] as string).hash;
  for (let i = from; i < lines.length; i++) {
    let entry: Record<string, unknown> = { ...parseEntry(lines[i] as string), prev_hash: prev, seq: i + 1 };
    if ("checkpoint" in entry) {
      entry = { ...entry, checkpoint: { ...(entry["checkpoint"] as object), seq: i, head: prev } };
      entry = resign(entry, key, keyId);
    }
    const line = seal(entry);
    out.push(line);
    prev = parseEntry(line).hash;
  }
  return out;
}
