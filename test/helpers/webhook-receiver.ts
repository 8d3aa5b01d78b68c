/**
 * A real local HTTP receiver for webhook tests: keeps every request (headers
 * and raw body) and answers with the statuses it is given, in turn (the last
 * one repeated).
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Received {
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  readonly at: number;
}

export interface Receiver {
  readonly url: string;
  readonly received: Received[];
  /** The statuses to answer with from now on, in turn; the last one repeats. */
  respond(...statuses: number[]): void;
  close(): Promise<void>;
}

export async function startReceiver(...statuses: number[]): Promise<Receiver> {
  let answers = statuses.length === 0 ? [200] : statuses;
  let next = 0;
  const received: Received[] = [];
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => {
      received.push({ headers: request.headers, body: Buffer.concat(chunks).toString("utf8"), at: Date.now() });
      const status = answers[Math.min(next++, answers.length - 1)]!;
      response.writeHead(status, { "content-type": "text/plain" }).end(String(status));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    respond: (...s) => {
      answers = s;
      next = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
