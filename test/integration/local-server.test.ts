/**
 * What the local server answers on its own, around the handlers: every answer in the error
 * shape (also the ones Node would write itself), CORS preflights as API Gateway answers them,
 * its time limits, and a client hanging up is no error.
 */
import { Agent, request } from "node:http";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_URL_BYTES, SERVER_TIMEOUTS, startServer } from "../../cli/server";
import { CORS } from "../../core/api/cors";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { cors as deployedCors } from "../../infra/functions";
import { freshDb, type TestDb } from "../../kit/db";

let t: TestDb;
let key: string;
let server: Awaited<ReturnType<typeof startServer>>;
let port: number;

beforeAll(async () => {
  setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "info" });
  t = await freshDb("pg");
  useDb(t.db);
  key = (await Auth.createKey(t.db, "acme")).key;
  server = await startServer({ port: 0, timeouts: { headersMs: 600, requestMs: 1_200, checkEveryMs: 100 } });
  port = Number(new URL(server.url).port);
});
afterAll(async () => {
  await server?.close();
  await t?.close();
});

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends bytes as they are (no client library to tidy them up) and reads the answer until the server closes. */
function raw(request: string | Buffer, options: { keepOpen?: boolean; endAfterMs?: number } = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    socket.on("data", (chunk) => {
      chunks.push(chunk);
      // One answer is enough: the server keeps the connection alive after a whole one.
      const text = Buffer.concat(chunks).toString("utf8");
      const head = text.indexOf("\r\n\r\n");
      const length = /content-length: (\d+)/i.exec(text)?.[1];
      const whole =
        length !== undefined ? Buffer.byteLength(text) >= head + 4 + Number(length) : text.endsWith("\r\n0\r\n\r\n");
      if (head !== -1 && whole) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      const [head = "", ...rest] = text.split("\r\n\r\n");
      const [statusLine = "", ...lines] = head.split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const at = line.indexOf(":");
        headers[line.slice(0, at).toLowerCase()] = line.slice(at + 1).trim();
      }
      let body = rest.join("\r\n\r\n");
      if (headers["transfer-encoding"] === "chunked") body = dechunk(body);
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body });
    });
    socket.write(request);
    if (!options.keepOpen) socket.end();
  });
}

function dechunk(text: string): string {
  let out = "";
  for (let at = 0; ; ) {
    const eol = text.indexOf("\r\n", at);
    const size = Number.parseInt(text.slice(at, eol), 16);
    if (!size) return out;
    out += text.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
}

/** Captures the JSON log lines written while `work` runs. */
async function logsOf(work: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  const lines: string[] = [];
  const out = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  process.stdout.write = capture as typeof process.stdout.write;
  process.stderr.write = capture as typeof process.stderr.write;
  try {
    await work();
  } finally {
    process.stdout.write = out;
    process.stderr.write = err;
  }
  return lines
    .flatMap((l) => l.split("\n"))
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

const expectErrorShape = (answer: RawAnswer, status: number, code: string) => {
  expect(answer.status).toBe(status);
  expect(answer.headers["content-type"]).toMatch(/^application\/json/);
  expect(answer.headers["x-request-id"]).toMatch(/\S/);
  expect(answer.headers["x-content-type-options"]).toBe("nosniff");
  // A page on another origin can read why.
  expect(answer.headers["access-control-allow-origin"]).toBe("*");
  expect(JSON.parse(answer.body)).toEqual({ error: { code, message: expect.any(String) } });
};

describe("answers Node would write itself", () => {
  it("answers 414 request.uri_too_long in the error shape for a URL over the limit", async () => {
    const path = `/v1/documents/${"a".repeat(MAX_URL_BYTES)}`;
    expectErrorShape(await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`), 414, "request.uri_too_long");
  });

  it("takes a path that starts with // as a path, not as a host", async () => {
    const answer = await raw("GET //v1/documents HTTP/1.1\r\nHost: x\r\n\r\n", { keepOpen: true });
    expectErrorShape(answer, 404, "route.not_found");
    expect(JSON.parse(answer.body).error.message).toBe("No route for GET //v1/documents.");
  });

  it("answers 413 request.too_large in the error shape for a body over 6 MB", async () => {
    const body = Buffer.alloc(6 * 1024 * 1024 + 1, "a");
    const head = `POST /v1/ingest HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    expectErrorShape(await raw(Buffer.concat([Buffer.from(head), body])), 413, "request.too_large");
  });

  it("answers 400 request.invalid_utf8 for a JSON body that is not UTF-8", async () => {
    const body = Buffer.concat([Buffer.from('{"query":"caf'), Buffer.from([0xe9]), Buffer.from('"}')]);
    const head = `POST /v1/search HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
    const answer = await raw(Buffer.concat([Buffer.from(head), body]), { keepOpen: true });
    expectErrorShape(answer, 400, "request.invalid_utf8");
  });

  it("answers 414 in the error shape for a URL longer than Node's whole header limit", async () => {
    const path = `/v1/documents/${"a".repeat(20_000)}`;
    expectErrorShape(await raw(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`), 414, "request.uri_too_long");
  });

  it("answers 431 request.headers_too_large in the error shape for oversized headers", async () => {
    const answer = await raw(`GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: ${"b".repeat(20_000)}\r\n\r\n`);
    expectErrorShape(answer, 431, "request.headers_too_large");
  });

  it("uses neither key of two Authorization headers, as API Gateway joins them", async () => {
    const answer = await raw(
      `GET /v1/stats HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nAuthorization: Bearer egm_other\r\n\r\n`,
      { keepOpen: true },
    );
    expectErrorShape(answer, 401, "auth.invalid_key");
    expect(JSON.parse(answer.body).error.message).toContain("more than one API key");
  });

  it("answers 400 request.malformed in the error shape for a request that is not HTTP", async () => {
    expectErrorShape(await raw("HELLO THERE\r\n\r\n"), 400, "request.malformed");
  });

  it("answers 408 request.timeout in the error shape when the headers do not arrive in time", async () => {
    const answer = await raw("GET /v1/health HTTP/1.1\r\nHost: x\r\n", { keepOpen: true });
    expectErrorShape(answer, 408, "request.timeout");
  });

  it("answers 417 in the error shape for an Expect header it cannot meet", async () => {
    const answer = await raw("GET /v1/health HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n");
    expectErrorShape(answer, 417, "request.expectation_failed");
  });
});

describe("time limits", () => {
  it("on close, finishes the answers under way with Connection: close and takes no further request on their connections", async () => {
    const slow = await startServer({
      port: 0,
      extra: async (req, res) => {
        await new Promise((resolve) => setTimeout(resolve, 300));
        res.end(req.url);
        return true;
      },
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = (path: string) =>
      new Promise<string>((resolve) => {
        const req = request(`${slow.url}${path}`, { agent }, (res) => {
          let body = "";
          res.on("data", (d) => {
            body += d;
          });
          res.on("end", () => resolve(`${res.statusCode} ${body} ${res.headers.connection}`));
        });
        req.on("error", (error: NodeJS.ErrnoException) => resolve(`refused ${error.code}`));
        req.end();
      });
    try {
      const first = get("/first");
      await new Promise((resolve) => setTimeout(resolve, 100));
      const closed = slow.close();
      expect(await first).toBe("200 /first close");
      // The client's next request found no connection to go on: refused before anything was done.
      expect(await get("/next")).toBe("refused ECONNREFUSED");
      await closed;
    } finally {
      agent.destroy();
    }
  });

  it("sets header, request and keep-alive timeouts, by default as stated", async () => {
    const plain = await startServer({ port: 0 });
    try {
      expect(plain.server.headersTimeout).toBe(SERVER_TIMEOUTS.headersMs);
      expect(plain.server.requestTimeout).toBe(SERVER_TIMEOUTS.requestMs);
      expect(plain.server.keepAliveTimeout).toBe(SERVER_TIMEOUTS.keepAliveMs);
      expect(SERVER_TIMEOUTS).toEqual({
        headersMs: 10_000,
        requestMs: 30_000,
        keepAliveMs: 5_000,
        checkEveryMs: 1_000,
        drainMs: 10_000,
      });
    } finally {
      await plain.close();
    }
  });

  it("answers 408 to a body that trickles in past the request timeout", async () => {
    const head = "POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    const answer = await raw(`${head}{"documents":`, { keepOpen: true });
    expect(answer.status).toBe(408);
  });
});

describe("CORS", () => {
  it("answers a preflight with 204 and API Gateway's configured CORS settings", async () => {
    const res = await fetch(`${server.url}/v1/search`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, x-user-id",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-allow-methods")?.split(",")).toEqual(deployedCors.allowMethods);
    expect(res.headers.get("access-control-allow-headers")?.split(",")).toEqual(deployedCors.allowHeaders);
    expect(res.headers.get("access-control-max-age")).toBe(String(CORS.maxAgeSeconds));
    expect(deployedCors.maxAge).toBe(`${CORS.maxAgeSeconds} seconds`);
  });

  it("lets a browser MCP client send its protocol version header from another origin", async () => {
    const res = await fetch(`${server.url}/mcp`, {
      method: "OPTIONS",
      headers: {
        origin: "https://inspector.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type, mcp-protocol-version",
      },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get("access-control-allow-headers")?.split(",")).toContain("mcp-protocol-version");
  });

  it("lets a browser on another origin read answers and their rate-limit headers", async () => {
    const res = await fetch(`${server.url}/v1/documents`, {
      headers: { origin: "https://app.example", authorization: `Bearer ${key}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBe("*");
    expect(res.headers.get("access-control-expose-headers")?.split(", ")).toEqual(deployedCors.exposeHeaders);
  });
});

describe("starting", () => {
  it("says the port is in use, and how to choose another, instead of Node's EADDRINUSE", async () => {
    await expect(startServer({ port })).rejects.toThrow(
      `port ${port} is in use (another engram start?): set PORT or pass --port`,
    );
  });
});

describe("headers on every answer", () => {
  it("sends X-Content-Type-Options: nosniff on successes, errors and streams", async () => {
    const ok = await fetch(`${server.url}/v1/health`);
    const error = await fetch(`${server.url}/v1/documents`);
    const stream = await fetch(`${server.url}/v1/chat`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hello" }], stream: true }),
    });
    await stream.text();
    for (const res of [ok, error, stream]) expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
  });
});

describe("a client that hangs up", () => {
  it("is logged once at info, without a stack, when it drops an upload", async () => {
    const logs = await logsOf(async () => {
      await new Promise<void>((resolve) => {
        const socket = connect(port, "127.0.0.1", () => {
          socket.write(
            `POST /v1/ingest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n{"documents":[`,
          );
          setTimeout(() => {
            socket.destroy();
            resolve();
          }, 100);
        });
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
    });
    const lines = logs.filter((l) => String(l.message).includes("cancelled"));
    expect(lines).toHaveLength(1);
    expect(lines[0]?.level).toBe("info");
    expect(JSON.stringify(logs)).not.toMatch(/stack|"level":"error"/);
  });
});
