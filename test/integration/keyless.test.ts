/**
 * The Digital Twin's own clients call /api/ingest and /api/chat with only `x-user-id`. With
 * KEYLESS_TENANT set (off by default) those two routes serve them as that tenant, limited per
 * client address; /v1/* never does.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../cli/server";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import * as RateLimit from "../../core/ratelimit";
import { freshDb, type TestDb } from "../../kit/db";
import { apiEvent, type EventInput, lambdaContext, type Response } from "../../kit/events";

const BASE = { LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive" };

let t: TestDb;
beforeAll(async () => {
  setConfig(BASE);
  t = await freshDb("pg");
  useDb(t.db);
});
afterAll(async () => {
  setConfig(BASE);
  await t?.close();
});

/** A request without a key from a client address, through the function that serves its route. */
async function from(address: string, input: EventInput): Promise<Response> {
  const fn = input.path.endsWith("chat") ? "chat" : input.path.endsWith("ingest") ? "ingest" : "search";
  const { handler } = await import(`../../functions/http/${fn}.ts`);
  const event = apiEvent(input);
  if (event.requestContext.http) event.requestContext.http.sourceIp = address;
  const result = await handler(event, lambdaContext());
  return {
    status: result.statusCode ?? 200,
    headers: result.headers as Record<string, string>,
    body: JSON.parse(result.body ?? "{}"),
  };
}

const twinIngest = (userId: string, id = "hours") => ({
  method: "POST",
  path: "/api/ingest",
  headers: { "x-user-id": userId },
  body: { documents: [{ id, title: "Opening hours", content: "We are open 9 to 5 on weekdays." }] },
});
const twinChat = (userId: string) => ({
  method: "POST",
  path: "/api/chat",
  headers: { "x-user-id": userId },
  body: { messages: [{ role: "user", content: "When are you open?" }] },
});

describe("without KEYLESS_TENANT (the default)", () => {
  it("answers 401 to the Digital Twin's keyless requests", async () => {
    setConfig(BASE);

    const ingest = await from("203.0.113.1", twinIngest("twin-user"));
    const chat = await from("203.0.113.1", twinChat("twin-user"));

    expect([ingest.status, chat.status]).toEqual([401, 401]);
    expect(ingest.body.error.code).toBe("auth.missing_key");
  });
});

describe("with KEYLESS_TENANT set", () => {
  beforeAll(() => setConfig({ ...BASE, KEYLESS_TENANT: "twin" }));

  it("serves /api/ingest and /api/chat without a key, as the named tenant and the x-user-id's user", async () => {
    setConfig({ ...BASE, KEYLESS_TENANT: "twin", LOG_LEVEL: "warn" });
    const lines: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: unknown) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;
    const ingest = await from("203.0.113.2", twinIngest("visitor-1")).finally(() => {
      process.stderr.write = write;
      setConfig({ ...BASE, KEYLESS_TENANT: "twin" });
    });
    const chat = await from("203.0.113.2", twinChat("visitor-1"));
    const owners = await t.db.query<{ tenant: string; owner: string }>({
      text: "select t.name as tenant, d.owner from documents d join tenants t on t.id = d.tenant_id where d.id = 'hours'",
      params: [],
    });

    expect(ingest.status).toBe(200);
    expect(chat.status).toBe(200);
    expect(chat.body.citations.length).toBeGreaterThan(0);
    expect(owners).toEqual([{ tenant: "twin", owner: "visitor-1" }]);
    // Said once, at warn, on first use (and in npm start's banner).
    expect(lines.filter((l) => l.includes("KEYLESS_TENANT is set"))).toHaveLength(1);
    expect(JSON.parse(lines.find((l) => l.includes("KEYLESS_TENANT")) ?? "{}")).toMatchObject({
      level: "warn",
      tenant: "twin",
    });
  });

  it("refuses requests without a key on /v1/*", async () => {
    const ingest = await from("203.0.113.2", { ...twinIngest("visitor-1"), path: "/v1/ingest" });
    const search = await from("203.0.113.2", {
      method: "POST",
      path: "/v1/search",
      headers: { "x-user-id": "visitor-1" },
      body: { query: "open" },
    });

    expect([ingest.status, search.status]).toEqual([401, 401]);
  });

  it("limits keyless requests per client address, whatever x-user-id they claim", async () => {
    await RateLimit.setLimits(t.db, "twin", { ingest: "2/min" });

    const statuses: number[] = [];
    for (let i = 0; i < 4; i++)
      statuses.push((await from("198.51.100.7", twinIngest(`claimed-${i}`, `doc-${i}`))).status);
    const elsewhere = await from("198.51.100.8", twinIngest("claimed-9", "doc-9"));

    expect(statuses).toEqual([200, 200, 429, 429]);
    expect(elsewhere.status).toBe(200);
  });

  it("keeps answering keyless requests from an address its failed keys locked out of keyed ones", async () => {
    setConfig({ ...BASE, KEYLESS_TENANT: "twin", RATE_LIMIT_AUTH_FAILURES: "2/min" });
    try {
      const guess = () =>
        from("192.0.2.44", { ...twinChat("guesser"), headers: { authorization: `Bearer egm_${"0".repeat(32)}` } });
      const guesses = [(await guess()).status, (await guess()).status, (await guess()).status];
      const keyless = await from("192.0.2.44", twinChat("guesser"));

      expect(guesses).toEqual([401, 401, 429]);
      // The lockout is for requests that need a key (docs/contract.md); these need none.
      expect(keyless.status).toBe(200);
      expect((await guess()).body.error.code).toBe("auth.too_many_failures");
    } finally {
      setConfig({ ...BASE, KEYLESS_TENANT: "twin" });
    }
  });

  it("refuses a keyless request that names no end user: the shared space takes writes only with a key", async () => {
    const ingest = await from("192.0.2.60", { ...twinIngest("x"), headers: {} });
    const chat = await from("192.0.2.60", { ...twinChat("x"), headers: {} });

    expect([ingest.status, chat.status]).toEqual([401, 401]);
    expect(ingest.body.error).toMatchObject({ code: "auth.missing_key", message: expect.stringMatching(/X-User-Id/) });
  });

  it("still validates x-user-id", async () => {
    const res = await from("203.0.113.3", twinIngest("not valid!"));

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("user.invalid_id");
  });

  it("answers the seed's curl on the local server", async () => {
    await RateLimit.setLimits(t.db, "twin", { ingest: null });
    const server = await startServer({ port: 0 });
    try {
      const res = await fetch(`${server.url}/api/ingest`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-user-id": "curl-user" },
        body: JSON.stringify({ documents: [{ id: "faq", content: "Refunds take 14 days.", title: "FAQ" }] }),
      });

      expect(res.status).toBe(200);
      expect((await res.json()).documents).toEqual([{ id: "faq", status: "created", chunks: 1 }]);
    } finally {
      await server.close();
    }
  });
});
