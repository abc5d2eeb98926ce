/**
 * The Lambda bundles themselves, run as Lambda runs them (a fresh `node` process, no
 * node_modules in reach of the bundle's code paths, a Neon URL): they embed, answer and stream
 * against the fake OpenAI server.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Auth from "../../core/auth";
import { freshDb, type TestDb } from "../../kit/db";
import { apiEvent, type EventInput } from "../../kit/events";
import { multipart, multipartType } from "../../kit/multipart";
import { type FakeOpenAI, startOpenAIServer } from "../../kit/openai-server";
import { buildLambdas, ENTRIES } from "../../scripts/build";

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), "engram-bundles-test-"));
let test: TestDb;
let openai: FakeOpenAI;
let key: string;
let env: Record<string, string>;
const bundles: Record<string, string> = {};

beforeAll(async () => {
  const reports = await buildLambdas(
    join(work, "lambda"),
    ENTRIES.filter((e) => ["ingest", "upload", "search", "chat", "mcp"].includes(e.name)),
  );
  for (const r of reports) bundles[r.name] = r.file;
  [test, openai] = await Promise.all([freshDb("neon-http"), startOpenAIServer()]);
  key = (await Auth.createKey(test.db, "bundles")).key;
  const neon = test.neon as NonNullable<TestDb["neon"]>;
  env = {
    PATH: process.env.PATH ?? "",
    AWS_LAMBDA_FUNCTION_NAME: "engram-test-bundle",
    // A Neon host, as on AWS, so the config picks the Neon HTTP driver; fetches go to the local server.
    DATABASE_URL: `postgresql://postgres@ep-test-000000.us-east-2.aws.neon.tech:${neon.port}/${test.database}`,
    NEON_FETCH_ENDPOINT: neon.url,
    OPENAI_API_KEY: openai.apiKey,
    OPENAI_BASE_URL: openai.url,
  };
}, 120_000);

afterAll(async () => {
  await Promise.all([test?.close(), openai?.close()]);
  rmSync(work, { recursive: true, force: true });
});

/**
 * Imports a bundle in a fresh node process and answers one request with it: through `handler`
 * (API Gateway), or through `streamHandler` (the function URL, with a stand-in for Lambda's
 * `awslambda` global that collects what is written).
 */
async function invokeBundle(name: string, input: EventInput, face: "handler" | "streamHandler" = "handler") {
  const event = apiEvent({ ...input, headers: { authorization: `Bearer ${key}`, ...input.headers } });
  const script = `
    const { Writable } = await import("node:stream");
    let prelude; let body = "";
    globalThis.awslambda = {
      streamifyResponse: (f) => f,
      HttpResponseStream: { from: (stream, p) => { prelude = p; return stream; } },
    };
    const sink = new Writable({ write(chunk, _encoding, done) { body += chunk; done(); } });
    const module = await import(${JSON.stringify(pathToFileURL(bundles[name] as string).href)});
    const context = { getRemainingTimeInMillis: () => 20000 };
    const result = ${JSON.stringify(face)} === "handler"
      ? await module.handler(${JSON.stringify(event)}, context)
      : (await module.streamHandler(${JSON.stringify(event)}, sink, context), { ...prelude, body });
    process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");`;
  const { stdout } = await run(process.execPath, ["--input-type=module", "-e", script], { env, cwd: work });
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  const result = JSON.parse(line?.slice(7) ?? "null") as { statusCode: number; body: string };
  return { status: result.statusCode, text: result.body };
}

describe("a Lambda bundle with the OpenAI SDK", () => {
  it("embeds the documents it ingests through the OpenAI API", async () => {
    const before = openai.stats.embeddingRequests;
    const res = await invokeBundle("ingest", {
      method: "POST",
      path: "/v1/ingest",
      body: { documents: [{ id: "refunds", content: "Refunds are accepted within 30 days of purchase." }] },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).totals).toMatchObject({ documents: 1, embedded: 1 });
    expect(openai.stats.embeddingRequests).toBeGreaterThan(before);
  });

  it("embeds a search's query through the OpenAI API", async () => {
    const before = openai.stats.embeddingRequests;
    const res = await invokeBundle("search", {
      method: "POST",
      path: "/v1/search",
      body: { query: "how long do refunds take", mode: "vector", topK: 3 },
    });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).results.map((r: { documentId: string }) => r.documentId)).toContain("refunds");
    expect(openai.stats.embeddingRequests).toBe(before + 1);
  });

  it("reads an uploaded AsciiDoc file with Asciidoctor, loaded inside the bundle when the file comes", async () => {
    const res = await invokeBundle("upload", {
      method: "POST",
      path: "/v1/documents/upload",
      headers: { "content-type": multipartType() },
      binaryBody: multipart([
        {
          name: "file",
          value: readFileSync(join(import.meta.dirname, "../fixtures/extract/guide.adoc")),
          filename: "guide.adoc",
        },
      ]),
    });
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.text);
    expect(answer.file).toMatchObject({ name: "guide.adoc", format: "asciidoc" });
    expect(answer.documents).toEqual([expect.objectContaining({ id: "guide.adoc", status: "created" })]);
  });

  it("answers a chat from the ingested document with the chat model", async () => {
    const res = await invokeBundle("chat", {
      method: "POST",
      path: "/v1/chat",
      body: { messages: [{ role: "user", content: "How long do I have to ask for a refund?" }] },
    });
    expect(res.status).toBe(200);
    const answer = JSON.parse(res.text);
    expect(answer.message.content).toContain("How long do I have to ask for a refund?");
    expect(answer.citations.map((c: { documentId: string }) => c.documentId)).toContain("refunds");
    expect(answer.model).not.toBe("extractive");
  });

  it("streams a chat answer as server-sent events", async () => {
    const res = await invokeBundle("chat", {
      method: "POST",
      path: "/v1/chat",
      body: { messages: [{ role: "user", content: "Refund window?" }], stream: true },
    });
    expect(res.status).toBe(200);
    const events = [...res.text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]);
    expect(events[0]).toBe("citations");
    expect(events).toContain("delta");
    expect(events.at(-1)).toBe("done");
  });

  it("streams through the function URL's response-streaming handler", async () => {
    const res = await invokeBundle(
      "chat",
      { method: "POST", path: "/v1/chat", body: { messages: [{ role: "user", content: "Refunds?" }], stream: true } },
      "streamHandler",
    );
    expect(res.status).toBe(200);
    expect([...res.text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1]).at(-1)).toBe("done");
  });
});

describe("the MCP function's bundle, with the SDK's Zod 3 support and ajv left out", () => {
  const rpc = (id: number, method: string, params: Record<string, unknown>) => ({
    method: "POST" as const,
    path: "/mcp",
    headers: { accept: "application/json, text/event-stream" },
    body: { jsonrpc: "2.0", id, method, params },
  });

  it("lists its tools and answers a search and an ask through them", async () => {
    const listed = await invokeBundle("mcp", rpc(1, "tools/list", {}));
    expect(listed.status).toBe(200);
    const tools = JSON.parse(listed.text).result.tools as { name: string; inputSchema: { properties: object } }[];
    expect(tools.map((t) => t.name)).toContain("search_memory");
    expect(tools.find((t) => t.name === "search_memory")?.inputSchema.properties).toHaveProperty("query");
    const search = await invokeBundle(
      "mcp",
      rpc(2, "tools/call", { name: "search_memory", arguments: { query: "refunds" } }),
    );
    expect(JSON.parse(search.text).result.structuredContent.results[0].documentId).toBe("refunds");
    const ask = await invokeBundle(
      "mcp",
      rpc(3, "tools/call", { name: "ask", arguments: { question: "Refund window?" } }),
    );
    expect(JSON.parse(ask.text).result.structuredContent.citations[0].documentId).toBe("refunds");
    const bad = await invokeBundle("mcp", rpc(4, "tools/call", { name: "remember", arguments: {} }));
    expect(JSON.parse(bad.text).result).toMatchObject({ isError: true });
  });
});
