/** The limiter against the real PostgreSQL through every driver, and through the HTTP chain. */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RateClass } from "../../core/api/routes";
import { Auth, type Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { createPgDb } from "../../core/db/pg";
import { EngramError } from "../../core/error";
import { RateLimit } from "../../core/ratelimit";
import { callerFor, freshDb, type TestDb } from "../support/db";
import { invoke } from "../support/events";

type Attempt = { ok: true; headers: Record<string, string> } | { ok: false; error: EngramError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function attempt(db: Db, caller: Caller, rateClass: RateClass): Promise<Attempt> {
  return RateLimit.enforce(db, caller, rateClass).then(
    (headers) => ({ ok: true, headers }),
    (error: unknown) => {
      if (!(error instanceof EngramError)) throw error;
      return { ok: false, error };
    },
  );
}

async function callerWith(db: Db, tenant: string, limits: Record<string, string>, userId = ""): Promise<Caller> {
  return { ...(await callerFor(db, tenant, userId)), rateLimits: limits };
}

const admitted = (attempts: Attempt[]) => attempts.filter((a) => a.ok).length;

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_FAIL_MODE: "closed" });
});

describe.each(["pg", "neon-http", "pglite"] as const)("the limiter on %s", (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb(driver);
  });
  afterAll(() => t?.close());

  it("admits exactly 20 of 200 concurrent requests for one key with a limit of 20", async () => {
    // An hour's window: no request is regained while the 200 are decided, however slow the machine.
    const caller = await callerWith(t.db, "burst", { chat: "20/h" }, "alice");

    const attempts = await Promise.all(Array.from({ length: 200 }, () => attempt(t.db, caller, "chat")));

    expect(admitted(attempts)).toBe(20);
    for (const a of attempts) if (!a.ok) expect(a.error.code).toBe("ratelimit.exceeded");
  });

  it("gives the budget back at the documented rate, one request per window/limit, up to the limit", async () => {
    const caller = await callerWith(t.db, "refill", { search: "5/s" });
    const interval = 200; // ms
    // Sends requests one by one until one is refused. GCRA bounds what may be admitted meanwhile:
    // what the bucket held, plus one request per interval of the time it took.
    const drain = async () => {
      const started = performance.now();
      let n = 0;
      for (;;) {
        const sent = performance.now();
        if (!(await attempt(t.db, caller, "search")).ok)
          return { admitted: n, ms: performance.now() - started, lastMs: performance.now() - sent };
        n++;
      }
    };

    const first = await drain();
    await sleep(2 * interval + 20);
    const afterTwoIntervals = await drain();
    await sleep(1500);
    const afterMoreThanTheWindow = await drain();

    expect(first.admitted).toBeGreaterThanOrEqual(5);
    expect(first.admitted).toBeLessThanOrEqual(5 + Math.floor(first.ms / interval));
    expect(afterTwoIntervals.admitted).toBeGreaterThanOrEqual(2);
    // Counted from the refusal that ended the first drain, decided at most `first.lastMs` before it ended.
    const sinceRefusal = first.lastMs + 2 * interval + 20 + afterTwoIntervals.ms;
    expect(afterTwoIntervals.admitted).toBeLessThanOrEqual(1 + Math.floor(sinceRefusal / interval));
    expect(afterMoreThanTheWindow.admitted).toBeGreaterThanOrEqual(5);
    expect(afterMoreThanTheWindow.admitted).toBeLessThanOrEqual(5 + Math.floor(afterMoreThanTheWindow.ms / interval));
  });

  it("keeps separate budgets per end user, per key without a user, per class and per tenant", async () => {
    const limits = { chat: "1/min", search: "1/min" };
    const alice = await callerWith(t.db, "apart-1", limits, "alice");
    const bob = await callerWith(t.db, "apart-1", limits, "bob");
    const shared = await callerWith(t.db, "apart-1", limits);
    const otherKey = { ...shared, keyPrefix: "egm_other000" };
    const aliceElsewhere = await callerWith(t.db, "apart-2", limits, "alice");

    const first = await attempt(t.db, alice, "chat");
    const again = await attempt(t.db, alice, "chat");
    const others = [
      await attempt(t.db, bob, "chat"),
      await attempt(t.db, shared, "chat"),
      await attempt(t.db, otherKey, "chat"),
      await attempt(t.db, aliceElsewhere, "chat"),
      await attempt(t.db, alice, "search"),
    ];

    expect(first.ok).toBe(true);
    expect(again.ok).toBe(false);
    expect(others.map((a) => a.ok)).toEqual([true, true, true, true, true]);
  });

  it("answers the exact RateLimit-Policy and RateLimit headers, and Retry-After on refusal", async () => {
    const caller = await callerWith(t.db, "headers", { chat: "20/min" }); // one request every 3 s

    const first = await attempt(t.db, caller, "chat");
    const second = await attempt(t.db, caller, "chat");
    await Promise.all(Array.from({ length: 18 }, () => attempt(t.db, caller, "chat")));
    const refused = await attempt(t.db, caller, "chat");

    expect(first).toEqual({
      ok: true,
      headers: { "ratelimit-policy": '"default";q=20;w=60', ratelimit: '"default";r=19;t=3' },
    });
    expect(second).toEqual({
      ok: true,
      headers: { "ratelimit-policy": '"default";q=20;w=60', ratelimit: '"default";r=18;t=6' },
    });
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error).toMatchObject({ kind: "rate_limited", code: "ratelimit.exceeded", retryAfterSeconds: 3 });
    expect(refused.error.headers).toEqual({
      "ratelimit-policy": '"default";q=20;w=60',
      ratelimit: '"default";r=0;t=60',
    });
  });

  it("writes nothing when it refuses", async () => {
    const caller = await callerWith(t.db, "nowrite", { ingest: "1/h" });
    await attempt(t.db, caller, "ingest");
    const version = () =>
      t.db.query<{ xmin: string; tat: Date }>({
        text: "select xmin::text, tat from rate_limits where key = 'ingest/k:egm_test0000' and tenant_id = $1",
        params: [caller.tenantId],
      });
    const before = await version();

    const refusals = await Promise.all([1, 2, 3].map(() => attempt(t.db, caller, "ingest")));

    expect(refusals.map((a) => a.ok)).toEqual([false, false, false]);
    expect(await version()).toEqual(before);
  });

  it("refuses every request of a class whose limit is 0, and nothing else", async () => {
    const caller = await callerWith(t.db, "zero", { search: "0/min" }, "alice");

    const search = await attempt(t.db, caller, "search");
    const chat = await attempt(t.db, caller, "chat");
    const other = await attempt(t.db, caller, "default");

    expect(search.ok).toBe(false);
    if (!search.ok) {
      expect(search.error).toMatchObject({ status: 429, code: "ratelimit.exceeded", retryAfterSeconds: 60 });
      expect(search.error.headers).toEqual({
        "ratelimit-policy": '"default";q=0;w=60',
        ratelimit: '"default";r=0;t=60',
      });
    }
    expect(chat.ok).toBe(true);
    expect(other.ok).toBe(true);
  });

  it("stores valid overrides, removes one with null, and rejects a malformed one with the reason", async () => {
    await callerFor(t.db, "limits");

    const stored = await RateLimit.setLimits(t.db, "limits", { chat: "10/min", search: "2/s" });
    const removed = await RateLimit.setLimits(t.db, "limits", { search: null, ingest: "100/hour" });
    const bad = await RateLimit.setLimits(t.db, "limits", { chat: "10/fortnight", default: "1/s" }).catch((e) => e);
    const unknownClass = await RateLimit.setLimits(t.db, "limits", { uploads: "1/s" } as never).catch((e) => e);
    const unknownTenant = await RateLimit.setLimits(t.db, "no-such-tenant", { chat: "1/s" }).catch((e) => e);
    const [row] = await t.db.query<{ rate_limits: unknown }>({
      text: "select rate_limits from tenants where name = 'limits'",
      params: [],
    });

    expect(stored).toEqual({ chat: "10/min", search: "2/s" });
    expect(removed).toEqual({ chat: "10/min", ingest: "100/hour" });
    expect(bad).toMatchObject({
      kind: "input",
      code: "ratelimit.invalid_rate",
      details: { class: "chat", value: "10/fortnight" },
    });
    expect(bad.message).toContain('"10/fortnight"');
    expect(unknownClass).toMatchObject({ kind: "input", code: "ratelimit.invalid_class" });
    expect(unknownClass.message).toContain('"uploads"');
    expect(unknownTenant).toMatchObject({ kind: "not_found", code: "tenant.not_found" });
    expect(row?.rate_limits).toEqual({ chat: "10/min", ingest: "100/hour" });
  });
});

describe("the limiter on pg", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pg");
  });
  afterAll(() => t?.close());

  it("prepares its decision once per connection and then only binds it", async () => {
    // One connection: every decision below runs in the session whose prepared statements are read.
    const db = createPgDb(t.url as string, { max: 1 });
    try {
      const caller = await callerWith(db, "prepared", { chat: "2/h" });

      const attempts = [];
      for (let i = 0; i < 3; i++) attempts.push(await attempt(db, caller, "chat"));
      const prepared = await db.query<{ runs: number }>({
        text: "select generic_plans + custom_plans as runs from pg_prepared_statements where name = 'rate_limit_take'",
        params: [],
      });

      expect(attempts.map((a) => a.ok)).toEqual([true, true, false]);
      expect(prepared).toEqual([{ runs: 3 }]);
    } finally {
      await db.close();
    }
  });

  it("refuses a full bucket at once, without queueing for its row lock", async () => {
    const caller = await callerWith(t.db, "locked", { ingest: "1/h" });
    await attempt(t.db, caller, "ingest"); // spends the budget
    // Another transaction holds the bucket's row lock, as a concurrent decision would.
    const holder = new pg.Client({ connectionString: t.url });
    await holder.connect();
    await holder.query("begin");
    await holder.query("select 1 from rate_limits where tenant_id = $1 for update", [caller.tenantId]);
    try {
      const refused = await Promise.race([attempt(t.db, caller, "ingest"), sleep(2_000).then(() => "still waiting")]);

      expect(refused).toMatchObject({ ok: false, error: { code: "ratelimit.exceeded", retryAfterSeconds: 3600 } });
    } finally {
      await holder.query("rollback");
      await holder.end();
    }
  });
});

/** A Db whose store cannot be reached: the Neon endpoint down, or pg pointed at a closed port. */
describe.each(["pg", "neon-http"] as const)("with the store unreachable on %s", (driver) => {
  let t: TestDb;
  let down: { db: Db; restore(): Promise<void> };
  let caller: Caller;
  beforeAll(async () => {
    t = await freshDb(driver);
    caller = await callerWith(t.db, "outage", { chat: "5/min" });
    if (driver === "neon-http") {
      t.neon?.setDown(true);
      down = { db: t.db, restore: async () => t.neon?.setDown(false) };
    } else {
      const closed = createPgDb("postgres://postgres@127.0.0.1:1/engram");
      down = { db: closed, restore: () => closed.close() };
    }
  });
  afterAll(async () => {
    await down?.restore();
    setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_FAIL_MODE: "closed" });
    await t?.close();
  });

  it("answers 503 ratelimit.unavailable when RATE_LIMIT_FAIL_MODE is closed", async () => {
    setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_FAIL_MODE: "closed" });

    const result = await attempt(down.db, caller, "chat");

    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error).toMatchObject({ status: 503, code: "ratelimit.unavailable" });
      expect(result.error.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    }
  });

  it("admits without headers and logs a warning when RATE_LIMIT_FAIL_MODE is open", async () => {
    setConfig({ LOG_LEVEL: "warn", RATE_LIMIT_FAIL_MODE: "open" });
    const lines: string[] = [];
    const write = process.stderr.write;
    process.stderr.write = ((chunk: string) => lines.push(String(chunk)) > 0) as typeof process.stderr.write;

    const results = await Promise.all([1, 2].map(() => attempt(down.db, caller, "chat"))).finally(() => {
      process.stderr.write = write;
    });

    expect(results).toEqual([
      { ok: true, headers: {} },
      { ok: true, headers: {} },
    ]);
    const warnings = lines
      .flatMap((line) => (line.startsWith("{") ? [JSON.parse(line)] : []))
      .filter((l) => l.level === "warn");
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatchObject({
      message: expect.stringContaining("rate limiter unavailable"),
      rateClass: "chat",
    });
  });
});

describe.each(["pg", "neon-http"] as const)("rate limits through the HTTP chain on %s", (driver) => {
  let t: TestDb;
  let key: string;
  beforeAll(async () => {
    setConfig({
      LOG_LEVEL: "silent",
      RATE_LIMIT_FAIL_MODE: "closed",
      EMBEDDING_PROVIDER: "offline",
      CHAT_PROVIDER: "extractive",
      RATE_LIMIT_DEFAULT: "300/min",
    });
    t = await freshDb(driver);
    useDb(t.db);
    key = (await Auth.createKey(t.db, "acme")).key;
    await RateLimit.setLimits(t.db, "acme", { default: "3/min" }); // one request every 20 s
  });
  afterAll(() => t?.close());

  const list = (userId?: string) =>
    invoke({
      method: "GET",
      path: "/v1/documents",
      headers: { authorization: `Bearer ${key}`, ...(userId ? { "x-user-id": userId } : {}) },
    });

  it("carries the headers on every answer and refuses with 429, Retry-After and ratelimit.exceeded", async () => {
    const answers = [await list(), await list(), await list()];
    const refused = await list();
    const otherUser = await list("bob");

    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.map((a) => a.headers.ratelimit)).toEqual([
      '"default";r=2;t=20',
      '"default";r=1;t=40',
      '"default";r=0;t=60',
    ]);
    for (const a of answers) expect(a.headers["ratelimit-policy"]).toBe('"default";q=3;w=60');
    expect(refused.status).toBe(429);
    expect(refused.headers["retry-after"]).toBe("20");
    expect(refused.headers["ratelimit-policy"]).toBe('"default";q=3;w=60');
    expect(refused.headers.ratelimit).toBe('"default";r=0;t=60');
    expect(refused.headers["x-request-id"]).toMatch(/\S+/);
    expect(refused.body.error).toMatchObject({
      code: "ratelimit.exceeded",
      message: expect.stringContaining("3 per 60 s"),
    });
    expect(otherUser.status).toBe(200);
  });

  it("answers 429 on every route of a class limited to 0, and serves the other classes", async () => {
    const blocked = (await Auth.createKey(t.db, "no-search")).key;
    await RateLimit.setLimits(t.db, "no-search", { search: "0/min" });
    const headers = { authorization: `Bearer ${blocked}` };

    const search = await invoke({ method: "POST", path: "/v1/search", headers, body: { query: "refunds" } });
    const documents = await invoke({ method: "GET", path: "/v1/documents", headers });

    expect(search.status).toBe(429);
    expect(search.body.error.code).toBe("ratelimit.exceeded");
    expect(search.headers["retry-after"]).toBe("60");
    expect(search.headers["ratelimit-policy"]).toBe('"default";q=0;w=60');
    expect(documents.status).toBe(200);
    expect(documents.headers["ratelimit-policy"]).toBe('"default";q=300;w=60');
  });

  it("leaves routes without a rate class unlimited and without headers", async () => {
    const health = await invoke({ method: "GET", path: "/v1/health" });

    expect(health.status).toBe(200);
    expect(health.headers.ratelimit).toBeUndefined();
  });
});
