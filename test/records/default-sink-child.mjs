// Child of default-sink.test.ts: createVeto({ bundle }) with no recordSink and
// no logger, so records go to this process's standard output through the
// default sink. It decides the calls given, reports each decision and the
// close() on fd 3 (a pipe of its own), and exits by itself.
//
// usage: node default-sink-child.mjs <dist/index.js> <bundle> <calls JSON> <mode>
//   mode "go": wait for a line on stdin before deciding (the parent breaks stdout first)
//   mode "closed-fd": close fd 1 before deciding
//   mode "close-after:<ms>": decide until close() is called <ms> after the start
//   otherwise: decide at once
import { closeSync, writeSync } from "node:fs";

const [modulePath, bundle, callsJson, mode = ""] = process.argv.slice(2);
const { createVeto } = await import(modulePath);
const report = (event) => writeSync(3, `${JSON.stringify({ ...event, atMs: Math.round(performance.now()) })}\n`);

const veto = await createVeto({ bundle });
const calls = JSON.parse(callsJson);
if (mode === "go") {
  await new Promise((resolve) => process.stdin.once("data", resolve));
  process.stdin.destroy();
}
if (mode === "closed-fd") closeSync(1);

const decide = async (call) => {
  const d = await veto.protect(call);
  report({ event: "decision", id: d.id, action: d.action, codes: d.reasons.map((r) => r.code), reason: d.reason });
};

if (mode.startsWith("close-after:")) {
  // Decide the same calls again and again until close(): the reader stopped reading, so one of them waits.
  const closing = new Promise((resolve) => setTimeout(resolve, Number(mode.slice("close-after:".length))));
  let open = true;
  const loop = (async () => {
    for (let i = 0; open; i = (i + 1) % calls.length) {
      try {
        await decide(calls[i]);
      } catch (error) {
        report({ event: "threw", name: error.name, code: error.code });
        return;
      }
    }
  })();
  await closing;
  report({ event: "closing" });
  await veto.close();
  open = false;
  report({ event: "closed" });
  await loop;
} else {
  for (const call of calls) await decide(call);
  report({ event: "closing" });
  await veto.close();
  report({ event: "closed" });
}
process.on("exit", () => report({ event: "exit" }));
