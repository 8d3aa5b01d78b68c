// Child of crash.test.ts: writes decision records to a log under concurrent
// load until it is killed, printing "<seq> <decision_id>" for each record
// whose write() resolved (acknowledged). stdout is a pipe, which Node writes
// synchronously on Linux, so every printed line reaches the parent even when
// SIGKILL follows at once.
//
// usage: node crash-child.mjs <built decision-log module> <log path> <maxBytes> <concurrency> <trial> [<signing key PEM file> <checkpointEvery>]
import { readFileSync } from "node:fs";

const [modulePath, logPath, maxBytes, concurrency, trial, keyFile, checkpointEvery] = process.argv.slice(2);
const { openFileLog } = await import(modulePath);

const signing = keyFile === undefined ? {} : { checkpointKey: readFileSync(keyFile, "utf8"), checkpointEvery: Number(checkpointEvery) };
const log = await openFileLog(logPath, { maxBytes: Number(maxBytes), ...signing });
process.stdout.write(`ready ${log.recovery.records}\n`);

let n = 0;
async function writer(lane) {
  for (;;) {
    n += 1;
    const id = `t${trial}-l${lane}-n${n}`;
    // Sizes vary (up to 1.2 KiB) so group writes span several pages.
    const record = {
      type: "decision",
      decision_id: id,
      timestamp: new Date().toISOString(),
      arguments: { note: "x".repeat((n * 397) % 1200) },
      result: { action: "allow", escalated: false, reasons: [] },
    };
    const { seq } = await log.write(record);
    process.stdout.write(`${seq} ${id}\n`);
  }
}
await Promise.all(Array.from({ length: Number(concurrency) }, (_, lane) => writer(lane)));
