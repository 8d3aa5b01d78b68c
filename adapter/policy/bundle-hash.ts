/**
 * Reading a bundle tarball and its version hash. Kept free of the rest of the
 * adapter so that build scripts can use the same single implementation (via
 * `node dist/cli.js hash BUNDLE`).
 *
 * The version hash: every regular file of the tarball, its name normalised by
 * stripping leading "./" and "/" segments, ".signatures.json" excluded, sorted
 * by the UTF-8 bytes of the name; SHA-256 over, for each file in turn,
 * `name "\n" byteLength "\n" content`. Printed as "sha256:" + 64 hex digits.
 */
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import { extract } from "tar-stream";

export interface BundleFile {
  readonly name: string;
  readonly content: Buffer;
}

/** Largest total of file contents (and their 512-byte tar headers) a bundle may unpack to (guards against gzip bombs). */
export const MAX_BUNDLE_UNPACKED_BYTES = 64 * 1024 * 1024;

const SIGNATURES_FILE = ".signatures.json";
const TAR_BLOCK = 512;

export function normaliseBundlePath(name: string): string {
  return name.replace(/^(?:\.\/|\/)+/, "");
}

function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/**
 * The regular files of a .tar.gz (or plain .tar), names normalised. Rejects
 * duplicate names and archives that unpack to more than the limit.
 */
export async function readTarball(
  bytes: Uint8Array,
  maxUnpackedBytes = MAX_BUNDLE_UNPACKED_BYTES,
): Promise<BundleFile[]> {
  const source = Readable.from([Buffer.from(bytes)]);
  const tarStream = isGzip(bytes) ? source.pipe(createGunzip()) : source;
  const extractor = extract();
  // Errors from gunzip must reach the iterator below, not go unhandled.
  tarStream.on("error", (error) => extractor.destroy(error));
  tarStream.pipe(extractor);

  const files = new Map<string, Buffer>();
  const tooLarge = (): Error => new Error(`bundle unpacks to more than ${maxUnpackedBytes} bytes`);
  let total = 0;
  for await (const entry of extractor) {
    // Refused from its header, before its content is read; each entry counts
    // its 512-byte header too, so countless empty entries are refused as well.
    total += TAR_BLOCK + (entry.header.size ?? 0);
    if (total > maxUnpackedBytes) throw tooLarge();
    const chunks: Buffer[] = [];
    let read = 0;
    for await (const chunk of entry) {
      read += (chunk as Buffer).length;
      if (read > (entry.header.size ?? 0)) throw tooLarge();
      chunks.push(chunk as Buffer);
    }
    const type = entry.header.type ?? "file";
    if (type !== "file" && type !== "contiguous-file") continue;
    const name = normaliseBundlePath(entry.header.name);
    if (name === "") continue;
    if (files.has(name)) throw new Error(`bundle holds ${name} twice`);
    files.set(name, Buffer.concat(chunks));
  }
  return [...files].map(([name, content]) => ({ name, content }));
}

export function bundleVersionHash(files: readonly BundleFile[]): string {
  const hashed = files
    .map((f) => ({ ...f, name: normaliseBundlePath(f.name), nameBytes: Buffer.from(normaliseBundlePath(f.name), "utf8") }))
    .filter((f) => f.name !== SIGNATURES_FILE)
    .sort((a, b) => Buffer.compare(a.nameBytes, b.nameBytes));
  const hash = createHash("sha256");
  for (const file of hashed) {
    hash.update(file.nameBytes);
    hash.update(`\n${file.content.length}\n`);
    hash.update(file.content);
  }
  return `sha256:${hash.digest("hex")}`;
}

export async function bundleVersionHashOfTarball(bytes: Uint8Array): Promise<string> {
  return bundleVersionHash(await readTarball(bytes));
}
