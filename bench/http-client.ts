/**
 * The HTTP benchmark's client (bench/http.ts), in a process of its own as a real client is, so the server's
 * process pays only for serving. Each message from the parent is one request, sent over one keep-alive socket
 * with `node:http`; the reply is its wall time from the first byte written to the last byte read.
 */
import { Agent, request } from "node:http";

interface Ask {
  url: string;
  headers: Record<string, string>;
  body: string;
}

const agent = new Agent({ keepAlive: true, maxSockets: 1 });

function send(ask: Ask): Promise<{ ms: number; status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request(ask.url, { method: "POST", headers: ask.headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => {
        const ms = performance.now() - started;
        resolve({ ms, status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") });
      });
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(ask.body);
  });
}

process.on("message", (ask: Ask) => {
  send(ask).then(
    (reply) => process.send?.(reply),
    (error: Error) => process.send?.({ ms: 0, status: 0, text: String(error.message) }),
  );
});
process.on("disconnect", () => agent.destroy());
