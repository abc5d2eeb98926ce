/** Log lines written while a request runs carry its id and tenant, at the level of what happened. */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import { callerFor, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { type FakeOpenAI, startOpenAIServer } from "../../kit/openai-server";

interface Line {
  level: string;
  message: string;
  requestId?: string;
  tenant?: string;
  tenantId?: string;
  keyPrefix?: string;
  status?: number;
  code?: string;
}

describe("request logs", () => {
  let t: TestDb;
  let fake: FakeOpenAI;
  const keys: Record<string, string> = {};
  let lines: Line[] = [];

  beforeAll(async () => {
    fake = await startOpenAIServer();
    setConfig({
      EMBEDDING_PROVIDER: "offline",
      CHAT_PROVIDER: "openai",
      OPENAI_BASE_URL: fake.url,
      OPENAI_API_KEY: "test-key",
      CHAT_MAX_RETRIES: "0",
      RATE_LIMIT_CHAT: "100000/min",
      RATE_LIMIT_DEFAULT: "100000/min",
      LOG_LEVEL: "info",
    });
    useEmbedder(createOfflineEmbedder({ dimensions: 1536 }));
    t = await freshDb("pg");
    useDb(t.db);
    for (const tenant of ["acme", "globex"]) keys[tenant] = (await Auth.createKey(t.db, tenant)).key;
    await Ingest.run(t.db, await callerFor(t.db, "acme"), [
      { id: "refunds", title: "Refund policy", content: "Customers can request a refund within 30 days of purchase." },
    ]);
  });
  afterAll(async () => {
    await fake?.close();
    await t?.close();
  });

  beforeEach(() => {
    lines = [];
    fake.reset();
    // Every line of the process in these tests, as JSON: the logger writes one line per call.
    for (const stream of [process.stdout, process.stderr]) {
      vi.spyOn(stream, "write").mockImplementation((chunk: string | Uint8Array) => {
        const text = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
        for (const raw of text.split("\n").filter(Boolean)) {
          try {
            lines.push(JSON.parse(raw) as Line);
          } catch {
            // not a log line
          }
        }
        return true;
      });
    }
  });
  afterEach(() => vi.restoreAllMocks());

  const as = (tenant: string) => ({ authorization: `Bearer ${keys[tenant]}` });

  it("a line core writes while a chat answer streams carries the request's id and tenant, at error level", async () => {
    fake.reply = () => "Refunds are possible within thirty days, as the policy says [1].";
    fake.dropNextStreams(1, 3);

    const res = await invoke({
      method: "POST",
      path: "/v1/chat",
      headers: as("acme"),
      body: { messages: [{ role: "user", content: "What is the refund window?" }], stream: true },
    });

    expect(res.status).toBe(200);
    expect(res.body).toContain("event: error");
    const failed = lines.filter((line) => line.message === "chat stream failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      level: "error",
      requestId: res.headers["x-request-id"],
      tenant: "acme",
      status: 502,
      code: "chat.failed",
    });
    expect(failed[0]?.tenantId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("logs a refused request (4xx) at info with its id and tenant, never at error", async () => {
    const res = await invoke({ method: "GET", path: "/v1/documents/missing", headers: as("acme") });

    expect(res.status).toBe(404);
    const refused = lines.filter((line) => line.requestId === res.headers["x-request-id"]);
    expect(refused.map((line) => [line.level, line.message, line.tenant, line.status, line.code])).toEqual([
      ["info", "request refused", "acme", 404, "document.not_found"],
    ]);
    expect(lines.filter((line) => line.level === "error")).toEqual([]);
  });

  it("keeps each of two concurrent requests' lines with its own tenant", async () => {
    const [acme, globex] = await Promise.all(
      ["acme", "globex"].map((tenant) => invoke({ method: "GET", path: "/v1/documents/missing", headers: as(tenant) })),
    );

    const tenantOf = (requestId: string | undefined) =>
      lines.filter((line) => line.requestId === requestId).map((line) => line.tenant);
    expect(tenantOf(acme?.headers["x-request-id"])).toEqual(["acme"]);
    expect(tenantOf(globex?.headers["x-request-id"])).toEqual(["globex"]);
  });

  it("names a request whose key is refused by its key's public prefix, with no tenant", async () => {
    const key = keys.acme as string;
    const wrong = `${key.slice(0, -1)}${key.endsWith("a") ? "b" : "a"}`;

    const res = await invoke({
      method: "POST",
      path: "/v1/search",
      headers: { authorization: `Bearer ${wrong}` },
      body: { query: "refunds" },
    });

    expect(res.status).toBe(401);
    const refused = lines.filter((line) => line.requestId === res.headers["x-request-id"]);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ level: "info", message: "request refused", status: 401 });
    expect(refused[0]?.tenant).toBeUndefined();
    expect(key.startsWith(refused[0]?.keyPrefix as string)).toBe(true);
  });
});
