/** The CLI's HTTP calls to a running local server (the typed client): errors keep the API's code, rate limits are waited out. */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { remote } from "../../cli/client";

let server: Server | undefined;
afterEach(() => new Promise<void>((done) => (server ? server.close(() => done()) : done())));

/** A server answering each request with the next of `answers` (status, headers), counting bodies. */
async function serve(answers: { status: number; headers?: Record<string, string> }[]) {
  const bodies: string[] = [];
  const listening = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      bodies.push(body);
      const answer = answers[Math.min(bodies.length - 1, answers.length - 1)] as (typeof answers)[number];
      const payload =
        answer.status === 200
          ? { ok: true, n: bodies.length }
          : { error: { code: "ratelimit.exceeded", message: "Too many ingest requests" } };
      res.writeHead(answer.status, { "content-type": "application/json", ...answer.headers });
      res.end(JSON.stringify(payload));
    });
  });
  server = listening;
  await new Promise<void>((done) => listening.listen(0, "127.0.0.1", done));
  const url = `http://127.0.0.1:${(listening.address() as AddressInfo).port}`;
  return { url, bodies };
}

describe("cli request", () => {
  it("waits out a 429 as its Retry-After says and sends the same request again", async () => {
    const { url, bodies } = await serve([
      { status: 429, headers: { "retry-after": "0" } },
      { status: 429, headers: { "retry-after": "0" } },
      { status: 200 },
    ]);
    const waits: number[] = [];
    const documents = [{ content: "one" }];
    const result = await remote(url, { onWait: (s) => waits.push(s) }).ingest({ documents });
    expect(result).toEqual({ ok: true, n: 3 });
    expect(waits).toEqual([0.1, 0.1]);
    expect(bodies).toEqual(Array(3).fill(JSON.stringify({ documents })));
  });

  it("fails at once with the server's code and message on a 429 that names no wait", async () => {
    const { url, bodies } = await serve([{ status: 429 }]);
    await expect(remote(url).ingest({ documents: [] })).rejects.toMatchObject({
      code: "ratelimit.exceeded",
      message: "Too many ingest requests",
    });
    expect(bodies).toHaveLength(1);
  });

  it("gives up after twenty waits", async () => {
    const { url, bodies } = await serve([{ status: 429, headers: { "retry-after": "0" } }]);
    await expect(remote(url).stats()).rejects.toMatchObject({ code: "ratelimit.exceeded" });
    expect(bodies).toHaveLength(21);
  }, 10_000);
});
