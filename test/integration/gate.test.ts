/**
 * The request gate (core/gate, migrations/0014): the key and the rate-limit decision in one
 * statement, and search and chat retrieval in one batch with them. Round trips are counted by the
 * Neon-protocol server, as Lambda's driver makes them; the gate's decisions are checked on every driver.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import * as Chat from "../../core/chat";
import { ChatRequest } from "../../core/chat/schema";
import { setConfig } from "../../core/config";
import { arr, type Db, useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import { EngramError } from "../../core/error";
import * as Gate from "../../core/gate";
import * as Ingest from "../../core/ingest";
import * as RateLimit from "../../core/ratelimit";
import { callerFor, freshDb, type TestDb } from "../../kit/db";
import { refusal } from "../../kit/errors";
import { invoke } from "../../kit/events";
import { UNLIMITED } from "../../kit/factories";

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", ...UNLIMITED });
  useEmbedder(undefined);
});

const bearer = (key: string, userId?: string) => ({
  authorization: `Bearer ${key}`,
  ...(userId ? { "x-user-id": userId } : {}),
});

describe("round trips to Neon through the handler chain", () => {
  let t: TestDb;
  let key: string;
  let requests: () => number;
  beforeAll(async () => {
    t = await freshDb("neon-http");
    useDb(t.db);
    const neon = t.neon;
    if (!neon) throw new Error("the Neon driver's test database has no server");
    requests = () => neon.stats.requests;
    key = (await Auth.createKey(t.db, "acme")).key;
    const caller = await callerFor(t.db, "acme");
    await Ingest.run(t.db, caller, [
      { id: "refunds", title: "Refund policy", content: "Refunds are issued within 14 days of a return." },
      { id: "shipping", title: "Shipping", content: "Orders ship within two business days from our warehouse." },
    ]);
  });
  afterAll(() => t?.close());

  /** The Neon requests one call makes, and its answer. */
  async function counted<T>(call: () => Promise<T>): Promise<{ trips: number; result: T }> {
    const before = requests();
    const result = await call();
    return { trips: requests() - before, result };
  }

  it.each(["hybrid", "vector", "keyword"])(
    "answers a %s search in one round trip, with its rate-limit headers",
    async (mode) => {
      const { trips, result } = await counted(() =>
        invoke({ method: "POST", path: "/v1/search", headers: bearer(key), body: { query: "refund days", mode } }),
      );

      expect(result.status).toBe(200);
      expect(result.body.results[0].documentId).toBe("refunds");
      expect(result.headers["ratelimit-policy"]).toMatch(/^"(search|tenant\.search)";q=\d+;w=60$/);
      expect(trips).toBe(1);
    },
  );

  it("retrieves for chat in one round trip, conversation history included", async () => {
    const first = await invoke({
      method: "POST",
      path: "/v1/chat",
      headers: bearer(key, "alice"),
      body: { messages: [{ role: "user", content: "How long do refunds take?" }] },
    });
    expect(first.status).toBe(200);
    const caller = Gate.defer(`Bearer ${key}`, "alice", "chat");

    const { trips, result } = await counted(() =>
      Chat.prepare(
        t.db,
        caller,
        ChatRequest.parse({
          messages: [{ role: "user", content: "And shipping times?" }],
          conversationId: first.body.conversationId,
        }),
      ),
    );

    expect(trips).toBe(1);
    expect(result.prompt.map((m) => m.content).join("\n")).toContain("How long do refunds take?");
    expect(result.sources.map((s) => s.documentId)).toContain("shipping");
    expect(caller.tenantName).toBe("acme");

    // A follow-up that names nothing reads the conversation with the gate first, then searches with the turn before.
    const again = Gate.defer(`Bearer ${key}`, "alice", "chat");
    const followUp = await counted(() =>
      Chat.prepare(
        t.db,
        again,
        ChatRequest.parse({
          messages: [{ role: "user", content: "Tell me more." }],
          conversationId: first.body.conversationId,
        }),
      ),
    );
    expect(followUp.trips).toBe(2);
    // (prepare stores nothing: the last stored user message is still the first question)
    expect(followUp.result.query).toBe("Tell me more.\nHow long do refunds take?");
    expect(followUp.result.sources.map((s) => s.documentId)).toContain("refunds");
  });

  it("answers a chat in two round trips: retrieval, then the turn's one write", async () => {
    const { trips, result } = await counted(() =>
      invoke({
        method: "POST",
        path: "/v1/chat",
        headers: bearer(key, "bob"),
        body: { messages: [{ role: "user", content: "How long do refunds take?" }] },
      }),
    );

    expect(result.status).toBe(200);
    expect(result.body.citations[0].documentId).toBe("refunds");
    expect(trips).toBe(2);
  });

  const mcpCall = (authorization: string, name: string, args: Record<string, unknown>) =>
    invoke({
      method: "POST",
      path: "/mcp",
      headers: { ...bearer(authorization), accept: "application/json, text/event-stream" },
      body: { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args } },
    });

  it("answers MCP's search_memory in one round trip: key, the search class's limit and the search", async () => {
    const { trips, result } = await counted(() => mcpCall(key, "search_memory", { query: "refund days" }));

    expect(result.status).toBe(200);
    expect(JSON.stringify(result.body.result.structuredContent.results)).toContain("refunds");
    expect(result.headers["ratelimit-policy"]).toMatch(/^"(search|tenant\.search)";q=\d+;w=60$/);
    expect(trips).toBe(1);
  });

  it("checks MCP's key in the statement that spends the tool's class, and answers a bad key 401", async () => {
    const listed = await counted(() => mcpCall(key, "list_memories", {}));
    const forged = `${key.slice(0, 20)}${"z".repeat(key.length - 20)}`;

    const bad = await mcpCall(forged, "search_memory", { query: "refund days" });

    expect(listed.result.status).toBe(200);
    expect(listed.trips).toBe(2);
    expect(bad.status).toBe(401);
    expect(bad.body.error.code).toBe("auth.invalid_key");
  });

  it("checks the key and the limit of any other route in one statement before its work", async () => {
    const { trips, result } = await counted(() =>
      invoke({ method: "GET", path: "/v1/documents/refunds", headers: bearer(key) }),
    );

    expect(result.status).toBe(200);
    expect(result.headers.ratelimit).toMatch(/^"(default|tenant\.default)";r=\d+;t=\d+$/);
    expect(trips).toBe(2);
  });

  it("admits an ingest in the same round trip as its key and limit, and leaves no lease behind", async () => {
    const leases = async () =>
      Number((await t.db.query<{ n: number }>(sql`select count(*)::int as n from ingest_leases`))[0]?.n);

    const { trips, result } = await counted(() =>
      invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: bearer(key),
        body: { documents: [{ id: "returns", content: "Returns are accepted for 30 days." }] },
      }),
    );

    expect(result.status).toBe(200);
    // Key, limit and admission; the stored documents; the known chunk texts; the atomic write, which gives the lease
    // back in the same batch.
    expect(trips).toBe(4);
    expect(await leases()).toBe(0);
  });

  it("takes no lease for an ingest its limit refuses", async () => {
    const limited = (await Auth.createKey(t.db, "slow-writer")).key;
    await RateLimit.setLimits(t.db, "slow-writer", { ingest: "1/h" });
    const ingest = () =>
      invoke({
        method: "POST",
        path: "/v1/ingest",
        headers: bearer(limited),
        body: { documents: [{ content: "One more note." }] },
      });
    expect((await ingest()).status).toBe(200);

    const refused = await ingest();

    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("ratelimit.exceeded");
    const [row] = await t.db.query<{ n: number }>(sql`
      select count(*)::int as n from ingest_leases l join tenants t on t.id = l.tenant_id where t.name = 'slow-writer'`);
    expect(row?.n).toBe(0);
  });

  it("refuses a search over its limit in one round trip with 429, Retry-After and no results", async () => {
    const limited = (await Auth.createKey(t.db, "tight")).key;
    const caller = await callerFor(t.db, "tight");
    await Ingest.run(t.db, caller, [{ id: "secret", content: "Refunds are issued within 14 days." }]);
    await RateLimit.setLimits(t.db, "tight", { search: "1/h" });
    const search = () =>
      invoke({ method: "POST", path: "/v1/search", headers: bearer(limited), body: { query: "refunds" } });
    expect((await search()).status).toBe(200);

    const { trips, result } = await counted(search);

    expect(result.status).toBe(429);
    expect(result.body.error.code).toBe("ratelimit.exceeded");
    expect(result.body.results).toBeUndefined();
    expect(result.headers["retry-after"]).toBe("3600");
    expect(result.headers["ratelimit-policy"]).toBe('"search";q=1;w=3600');
    expect(trips).toBe(1);
  });

  it("refuses a revoked key's search with 401 at once", async () => {
    const created = await Auth.createKey(t.db, "acme", "short-lived");
    const search = () =>
      invoke({ method: "POST", path: "/v1/search", headers: bearer(created.key), body: { query: "refunds" } });
    expect((await search()).status).toBe(200);
    await Auth.revokeKey(t.db, created.prefix);

    const res = await search();

    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("auth.invalid_key");
    expect(res.body.results).toBeUndefined();
  });

  it("answers 401 before 400 for a bad key with a bad body, and 400 for a good key", async () => {
    const forged = `${key.slice(0, 20)}${"z".repeat(key.length - 20)}`;

    const bad = await invoke({ method: "POST", path: "/v1/search", headers: bearer(forged), body: { topK: -1 } });
    const good = await invoke({ method: "POST", path: "/v1/search", headers: bearer(key), body: { topK: -1 } });

    expect(bad.status).toBe(401);
    expect(good.status).toBe(400);
    expect(good.headers.ratelimit).toMatch(/^"(search|tenant\.search)";r=\d+;t=\d+$/);
  });
});

describe.each(["pg", "neon-http", "pglite"] as const)("the gate on %s", (driver) => {
  let t: TestDb;
  let db: Db;
  beforeAll(async () => {
    t = await freshDb(driver);
    db = t.db;
  });
  afterAll(() => t?.close());

  const deferred = (key: string, rateClass: "search" | "chat" | "default" = "search", userId?: string): Caller =>
    Gate.defer(`Bearer ${key}`, userId, rateClass);

  it("admits exactly 20 of 200 gated requests from 10 concurrent clients for one key with a limit of 20", async () => {
    const { key } = await Auth.createKey(db, "burst");
    await RateLimit.setLimits(db, "burst", { search: "20/h" });
    const one = () =>
      Gate.through(db, deferred(key), [sql`select 1 as one`]).then(
        (rows) => rows[0]?.[0]?.one === 1,
        (error: unknown) => {
          if (error instanceof EngramError && error.code === "ratelimit.exceeded") return false;
          throw error;
        },
      );

    // Each gated request holds a connection for its batch: ten clients, as many as `pg`'s pool.
    const outcomes = (
      await Promise.all(
        Array.from({ length: 10 }, async () => {
          const mine: boolean[] = [];
          for (let i = 0; i < 20; i++) mine.push(await one());
          return mine;
        }),
      )
    ).flat();

    expect(outcomes).toHaveLength(200);
    expect(outcomes.filter(Boolean)).toHaveLength(20);
  }, 120_000);

  it("admits exactly the tenant's ceiling of 200 decisions by 10 concurrent clients as 200 end users", async () => {
    const { key } = await Auth.createKey(db, "crowd");
    await RateLimit.setLimits(db, "crowd", { default: "20/h", "tenant.default": "30/h" });
    // Each decision's ceiling row may move between its read and its write (another client's admission).
    const one = (user: string) =>
      Gate.open(db, deferred(key, "default", user)).then(
        () => true,
        (error: unknown) => {
          if (error instanceof EngramError && error.code === "ratelimit.exceeded") return false;
          throw error;
        },
      );

    const outcomes = (
      await Promise.all(
        Array.from({ length: 10 }, async (_, client) => {
          const mine: boolean[] = [];
          for (let i = 0; i < 20; i++) mine.push(await one(`u${client}-${i}`));
          return mine;
        }),
      )
    ).flat();

    expect(outcomes.filter(Boolean)).toHaveLength(30);
    const [row] = await db.query<{ n: number }>(
      sql`select count(*)::int as n from rate_limits where key like 'default/u:u%' and tenant_id = (select id from tenants where name = 'crowd')`,
    );
    // A refused request leaves no bucket for the user it named.
    expect(row?.n).toBe(30);
  }, 120_000);

  it("runs the work only for the key's tenant: another tenant's rows are not in reach", async () => {
    const mine = await Auth.createKey(db, "mine");
    await Auth.createKey(db, "theirs");
    const caller = deferred(mine.key);

    const [rows = []] = await Gate.through(db, caller, [
      sql`select name from tenants where id = ${Gate.tenantOf(caller)}`,
    ]);

    expect(rows).toEqual([{ name: "mine" }]);
    expect(caller.tenantName).toBe("mine");
    expect(Gate.headersOf(caller)["ratelimit-policy"]).toMatch(/^"(search|tenant\.search)";q=\d+;w=60$/);
  });

  it("runs no work for a refused key, and reads no tenant before the gate", async () => {
    const { key, prefix } = await Auth.createKey(db, "gone");
    await Auth.revokeKey(db, prefix);
    const caller = deferred(key);
    expect(() => caller.tenantId).toThrow(/before its key was checked/);

    const error = await refusal(Gate.through(db, caller, [sql`select 1`]));

    expect(error.code).toBe("auth.invalid_key");
  });

  it("refuses, and drops the work's rows, when the bucket fills between the check and the decision", async () => {
    const { key, prefix } = await Auth.createKey(db, "race");
    await RateLimit.setLimits(db, "race", { search: "5/h" });
    const tenant = await callerFor(db, "race");
    const bucket = RateLimit.bucketKey({ userId: "", keyPrefix: prefix }, "search");
    // Inside the batch, after the check: another request takes the whole budget.
    const fill = sql`insert into rate_limits (tenant_id, key, tat) values (${tenant.tenantId}, ${bucket}, now() + interval '1 hour')
      on conflict (tenant_id, key) do update set tat = excluded.tat`;

    const error = await refusal(Gate.through(db, deferred(key), [fill, sql`select 'found' as work`]));

    expect(error.code).toBe("ratelimit.exceeded");
    // Full at 5/h: the next request fits one interval (720 s) later.
    expect(error.retryAfterSeconds).toBeGreaterThan(600);
  });

  it("leaves a caller its limit refused as its tenant's, so a later decision in another class reads its limits", async () => {
    const { key } = await Auth.createKey(db, "refused-then");
    await RateLimit.setLimits(db, "refused-then", { search: "0/min", ingest: "5/min" });
    const caller = deferred(key, "search");

    expect((await refusal(Gate.open(db, caller))).code).toBe("ratelimit.exceeded");

    expect([caller.tenantName, caller.rateLimits.ingest]).toEqual(["refused-then", "5/min"]);
    expect(await RateLimit.enforce(db, caller, "ingest")).toMatchObject({ "ratelimit-policy": '"ingest";q=5;w=60' });
  });

  it("decides a request of another route in one statement, with the tenant's overrides", async () => {
    const { key } = await Auth.createKey(db, "plain");
    await RateLimit.setLimits(db, "plain", { default: "2/min", "tenant.default": "1/min" });
    const counting = Object.create(db) as Db;
    let statements = 0;
    counting.query = (query, options) => {
      statements++;
      return db.query(query, options);
    };
    counting.batch = (queries) => {
      statements += queries.length;
      return db.batch(queries);
    };

    const caller = deferred(key, "default", "carol");
    await Gate.open(counting, caller);
    const second = await refusal(Gate.open(counting, deferred(key, "default", "carol")));
    expect(second.headers?.["ratelimit-policy"]).toBe('"tenant.default";q=1;w=60');
    const third = await refusal(Gate.open(counting, deferred(key, "default", "carol")));

    expect(statements).toBe(3);
    // A ceiling the tenant set holds even below the user's own rate: its 1/min is the nearer of the two.
    expect(Gate.headersOf(caller)).toEqual({
      "ratelimit-policy": '"tenant.default";q=1;w=60',
      ratelimit: '"tenant.default";r=0;t=60',
    });
    expect(third.code).toBe("ratelimit.exceeded");
    expect(third.headers?.["ratelimit-policy"]).toBe('"tenant.default";q=1;w=60');
    expect(third.retryAfterSeconds).toBeGreaterThan(50);
  });

  it("decides by the defaults past overrides parseRate refuses, and by a tenant's new overrides from its next request", async () => {
    const { key } = await Auth.createKey(db, "handwritten");
    // Written around setLimits' validation: a unit parseRate does not know and a number, beside a valid ceiling (its
    // spaces trimmed, as the parse trims them).
    const limits = { default: "2/fortnight", search: 5, "tenant.default": " 1000000/min " };
    await db.query(sql`update tenants set rate_limits = ${JSON.stringify(limits)}::jsonb where name = 'handwritten'`);

    const first = deferred(key, "default", "dora");
    await Gate.open(db, first);
    await RateLimit.setLimits(db, "handwritten", { default: "3/min" });
    const second = deferred(key, "default", "dora");
    await Gate.open(db, second);

    // The configured default (100000/min), then the new 3/min; the ceiling (1000000/min) is further off both times.
    expect(Gate.headersOf(first)["ratelimit-policy"]).toBe('"default";q=100000;w=60');
    expect(Gate.headersOf(second)["ratelimit-policy"]).toBe('"default";q=3;w=60');
  });

  it("holds a tenant's raised limits from when they are set, for the users and the ceiling a slower policy filled", async () => {
    const { key } = await Auth.createKey(db, "raised");
    await RateLimit.setLimits(db, "raised", { search: "2/hour", "tenant.search": "3/hour" });
    for (const user of ["dora", "dora", "eve"]) await Gate.open(db, deferred(key, "search", user));
    const full = await refusal(Gate.open(db, deferred(key, "search", "dora")));
    const ceiling = await refusal(Gate.open(db, deferred(key, "search", "fay")));
    expect([full.retryAfterSeconds, ceiling.retryAfterSeconds].every((s) => (s ?? 0) > 600)).toBe(true);

    await RateLimit.setLimits(db, "raised", { search: "1000/min", "tenant.search": "5000/min" });
    // The buckets count as full under the new policy from the raise: for one interval (60 ms), not the old hour, and
    // the first request after it is not refused for having come first.
    await new Promise((resolve) => setTimeout(resolve, 100));
    // dora's own bucket admits one a 60 ms; the ceiling, full at 5000/min, one every 12 ms: 100 ms later, a few.
    for (const user of ["dora", "fay", "gus", "hal"]) {
      const caller = deferred(key, "search", user);
      await Gate.open(db, caller);
      // Admitted, and the policy named is the new one closest to its limit: the user's or the tenant's.
      expect(Gate.headersOf(caller)["ratelimit-policy"]).toMatch(/^"(search";q=1000|tenant\.search";q=5000);w=60$/);
    }
  });

  it("reads a tenant's overrides in SQL as parseRate does", async () => {
    const values = [
      "20/min",
      " 5/s ",
      "3/hour",
      "0/min",
      "007/h",
      "20/fortnight",
      "abc",
      "9007199254740993/s",
      "1/second",
    ];

    const rows = await db.query<{ value: string; lim: number | null; win: number | null }>(
      sql`select v as value, r.lim, r.win from unnest(${arr(values)}::text[]) v, lateral engram_rate(v) r`,
    );

    const js = values.map((value) => {
      try {
        const rate = RateLimit.parseRate(value);
        return { value, lim: rate.limit, win: rate.windowSeconds };
      } catch {
        return { value, lim: null, win: null };
      }
    });
    expect(
      rows.map((r) => ({
        value: r.value,
        lim: r.lim === null ? null : Number(r.lim),
        win: r.win === null ? null : Number(r.win),
      })),
    ).toEqual(js);
  });
});
