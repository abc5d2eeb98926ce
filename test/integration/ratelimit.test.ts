/** The limiter against the real PostgreSQL through every driver, and through the HTTP chain. */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { createNeonDb } from "../../core/db/neon";
import { createPgDb } from "../../core/db/pg";
import { EngramError } from "../../core/error";
import * as RateLimit from "../../core/ratelimit";
import * as Tenant from "../../core/tenant";
import { callerFor, freshDb, type TestDb } from "../../kit/db";
import { invoke } from "../../kit/events";
import { neonConnectionString } from "../../kit/neon-server";

type Attempt = { ok: true; headers: Record<string, string> } | { ok: false; error: EngramError };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function attempt(db: Db, caller: Caller, rateClass: RateLimit.RateClass): Promise<Attempt> {
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

/** The `RateLimit` header of an attempt, admitted or refused. */
const limitHeader = (a: Attempt) => (a.ok ? a.headers.ratelimit : a.error.headers?.ratelimit);

/** The same database handle, counting its statements (each one round trip). */
function counting(db: Db): Db & { statements: number } {
  const counted = Object.create(db) as Db & { statements: number };
  counted.statements = 0;
  counted.query = (query, options) => {
    counted.statements++;
    return db.query(query, options);
  };
  return counted;
}

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

  it("decides a request on its own in exactly one round trip", async () => {
    const db = counting(t.db);
    const caller = await callerWith(t.db, "lone", { chat: "20/min" });

    const result = await attempt(db, caller, "chat");

    expect(result).toEqual({
      ok: true,
      headers: { "ratelimit-policy": '"chat";q=20;w=60', ratelimit: '"chat";r=19;t=3' },
    });
    expect(db.statements).toBe(1);
  });

  it("decides queued duplicates of one key together, admitting what fits with one-by-one headers", async () => {
    const caller = await callerWith(t.db, "dupes", { chat: "20/min" }); // one request every 3 s
    for (let i = 0; i < 15; i++) await attempt(t.db, caller, "chat");
    const db = counting(t.db);

    const attempts = await Promise.all(Array.from({ length: 12 }, () => attempt(db, caller, "chat")));

    // Two go out on their own; the ten queued behind them share one statement. Those three
    // run concurrently, so which requests get the five places is theirs to race for.
    expect(db.statements).toBe(3);
    expect(admitted(attempts)).toBe(5);
    expect(
      attempts
        .filter((a) => a.ok)
        .map(limitHeader)
        .sort(),
    ).toEqual(['"chat";r=0;t=60', '"chat";r=1;t=57', '"chat";r=2;t=54', '"chat";r=3;t=51', '"chat";r=4;t=48']);
    for (const a of attempts) {
      if (a.ok) continue;
      expect(a.error).toMatchObject({ code: "ratelimit.exceeded", retryAfterSeconds: 3 });
      expect(a.error.headers?.ratelimit).toBe('"chat";r=0;t=3');
    }
  });

  it("decides a batch of many keys, tenants and rates as one-by-one decisions would", async () => {
    const a = await callerWith(t.db, "mixed-1", { chat: "2/min", search: "5/min" }, "alice");
    const b = await callerWith(t.db, "mixed-2", { chat: "1/min" }, "alice");
    const db = counting(t.db);
    const requests: [Caller, RateLimit.RateClass][] = [
      [a, "chat"],
      [b, "chat"],
      [a, "chat"],
      [a, "search"],
      [b, "chat"],
      [a, "chat"],
      [a, "search"],
    ];

    const attempts = await Promise.all(requests.map(([caller, rateClass]) => attempt(db, caller, rateClass)));

    expect(db.statements).toBeLessThan(requests.length);
    // Statements run concurrently (two in flight), so within a bucket the places may go to any
    // of its requests: compare each bucket's headers as a set.
    const bucket = (...at: number[]) => at.map((i) => limitHeader(attempts[i] as Attempt)).sort();
    // The refused one's reset is its wait, one interval (30 s), as its Retry-After says.
    expect(bucket(0, 2, 5)).toEqual(['"chat";r=0;t=30', '"chat";r=0;t=60', '"chat";r=1;t=30']);
    expect(admitted([0, 2, 5].map((i) => attempts[i] as Attempt))).toBe(2);
    expect(bucket(1, 4)).toEqual(['"chat";r=0;t=60', '"chat";r=0;t=60']);
    expect(admitted([1, 4].map((i) => attempts[i] as Attempt))).toBe(1);
    expect(bucket(3, 6)).toEqual(['"search";r=3;t=24', '"search";r=4;t=12']);
  });

  it("decides a bucket asked for under two rates at once in separate statements", async () => {
    const before = await callerWith(t.db, "two-rates", { chat: "2/min" });
    const after = { ...before, rateLimits: { chat: "3/min" } }; // the tenant's override changed meanwhile
    const plug = await callerWith(t.db, "two-rates", { chat: "2/min" }, "plug");
    const db = counting(t.db);

    const attempts = await Promise.all(
      [plug, plug, before, after, before, after].map((caller) => attempt(db, caller, "chat")),
    );

    // One statement may decide a bucket only once, under one rate: never an error instead.
    for (const a of attempts) if (!a.ok) expect(a.error.code).toBe("ratelimit.exceeded");
    expect(admitted(attempts.slice(2))).toBeGreaterThanOrEqual(2);
    expect(admitted(attempts.slice(2))).toBeLessThanOrEqual(3);
    expect(db.statements).toBe(4);
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
      headers: { "ratelimit-policy": '"chat";q=20;w=60', ratelimit: '"chat";r=19;t=3' },
    });
    expect(second).toEqual({
      ok: true,
      headers: { "ratelimit-policy": '"chat";q=20;w=60', ratelimit: '"chat";r=18;t=6' },
    });
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.error).toMatchObject({ kind: "rate_limited", code: "ratelimit.exceeded", retryAfterSeconds: 3 });
    expect(refused.error.headers).toEqual({
      "ratelimit-policy": '"chat";q=20;w=60',
      ratelimit: '"chat";r=0;t=3',
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
        "ratelimit-policy": '"search";q=0;w=60',
        ratelimit: '"search";r=0;t=60',
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
        text: "select generic_plans + custom_plans as runs from pg_prepared_statements where name = 'rate_limit_decide_pair'",
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

describe.each(["pg", "neon-http"] as const)("batched decisions from two pools on %s", (driver) => {
  let t: TestDb;
  let other: Db;
  beforeAll(async () => {
    t = await freshDb(driver);
    const database = t.database as string;
    other =
      driver === "pg"
        ? createPgDb(t.url as string)
        : createNeonDb(neonConnectionString(database, t.neon?.port as number), { fetchEndpoint: t.neon?.url });
  });
  afterAll(async () => {
    await other?.close();
    await t?.close();
  });

  it("never admit beyond the limit together, with each admission's headers given once, and never deadlock", async () => {
    // A hot key and 30 others, asked for in opposite orders by the two pools: batches that
    // locked their rows in request order would wait on each other in a cycle.
    // The tenant's ceiling well above its 31 users together: this is about their own buckets.
    const limits = { chat: "20/h", "tenant.chat": "100000/h" };
    const hot = await callerWith(t.db, "pools", limits, "hot"); // one request every 180 s
    const others = await Promise.all(Array.from({ length: 30 }, (_, i) => callerWith(t.db, "pools", limits, `u${i}`)));
    const requests = [...Array(100).fill(hot), ...others.flatMap((c) => [c, c, c, c, c])] as Caller[];
    const mixed = requests.map((_, i) => requests[(i * 7) % requests.length] as Caller);
    const counted = [counting(t.db), counting(other)] as const;

    const [first, second] = await Promise.all([
      Promise.all(mixed.map((caller) => attempt(counted[0], caller, "chat"))),
      Promise.all(mixed.toReversed().map((caller) => attempt(counted[1], caller, "chat"))),
    ]);

    const all = [...first, ...second.toReversed()];
    const callers = [...mixed, ...mixed];
    const hotAttempts = all.filter((_, i) => callers[i] === hot);
    expect(hotAttempts).toHaveLength(200);
    expect(admitted(hotAttempts)).toBe(20);
    expect(admitted(all)).toBe(20 + 30 * 10);
    expect(counted[0].statements + counted[1].statements).toBeLessThan(all.length / 10);
    const remaining = hotAttempts.flatMap((a) =>
      a.ok ? [Number(/r=(\d+)/.exec(a.headers.ratelimit ?? "")?.[1])] : [],
    );
    expect(remaining.sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    for (const a of hotAttempts) if (!a.ok) expect(a.error.code).toBe("ratelimit.exceeded");
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
    // The header's reset is the wait Retry-After gives, not the 60 s until the budget is full again.
    expect(refused.headers.ratelimit).toBe('"default";r=0;t=20');
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
    expect(search.headers["ratelimit-policy"]).toBe('"search";q=0;w=60');
    expect(documents.status).toBe(200);
    expect(documents.headers["ratelimit-policy"]).toBe('"default";q=300;w=60');
  });

  it("leaves routes without a rate class unlimited and without headers", async () => {
    const health = await invoke({ method: "GET", path: "/v1/health" });

    expect(health.status).toBe(200);
    expect(health.headers.ratelimit).toBeUndefined();
  });
});

describe.each(["pg", "neon-http"] as const)("an answer that did no work on %s", (driver) => {
  let t: TestDb;
  /** The name of the statement after which the next call fails with database.busy; "" fails the next call. */
  let failAfter: string | undefined;
  const named = (queries: unknown[]) =>
    queries.some((q) => String((q as { name?: string }).name).startsWith(failAfter ?? "\0"));
  const busy = () =>
    new EngramError("unavailable", "database.busy", "Every database connection is busy.", { retryAfterSeconds: 1 });
  /** Fails the call `failAfter` names once: as the pool does when no connection came free in time. */
  const fails = (queries: unknown[]) => {
    if (failAfter === undefined) return false;
    if (failAfter === "") {
      failAfter = undefined;
      return true;
    }
    if (named(queries)) failAfter = "";
    return false;
  };
  beforeAll(async () => {
    setConfig({
      LOG_LEVEL: "silent",
      EMBEDDING_PROVIDER: "offline",
      CHAT_PROVIDER: "extractive",
      KEYLESS_TENANT: "twin",
    });
    t = await freshDb(driver);
    const db = Object.create(t.db) as Db;
    db.query = (query, options) => (fails([query]) ? Promise.reject(busy()) : t.db.query(query, options));
    db.batch = (queries) => (fails(queries) ? Promise.reject(busy()) : t.db.batch(queries));
    useDb(db);
  });
  afterAll(() => {
    setConfig({ LOG_LEVEL: "silent", RATE_LIMIT_FAIL_MODE: "closed" });
    return t?.close();
  });

  it("spends no search token on a 503 database.busy: the retry it asks for is served", async () => {
    const key = (await Auth.createKey(t.db, "busy-search")).key;
    await RateLimit.setLimits(t.db, "busy-search", { search: "1/h" });
    const search = () =>
      invoke({ method: "POST", path: "/v1/search", headers: { authorization: `Bearer ${key}` }, body: { query: "x" } });

    failAfter = "";
    const refused = await search();
    const retried = await search();

    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("database.busy");
    expect(refused.headers["retry-after"]).toBe("1");
    expect(retried.status).toBe(200);
  });

  it("gives back the token of a request counted before its work met database.busy", async () => {
    const key = (await Auth.createKey(t.db, "busy-list")).key;
    await RateLimit.setLimits(t.db, "busy-list", { default: "1/h" });
    const list = () => invoke({ method: "GET", path: "/v1/documents", headers: { authorization: `Bearer ${key}` } });

    failAfter = "request_gate";
    const refused = await list();
    const retried = await list();
    const third = await list();

    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("database.busy");
    expect(retried.status).toBe(200);
    expect(third.status).toBe(429);
  });

  it("spends no token on an MCP tool call that met database.busy", async () => {
    const key = (await Auth.createKey(t.db, "busy-mcp")).key;
    await RateLimit.setLimits(t.db, "busy-mcp", { search: "1/h" });
    const call = () =>
      invoke({
        method: "POST",
        path: "/mcp",
        headers: { authorization: `Bearer ${key}`, accept: "application/json, text/event-stream" },
        body: {
          jsonrpc: "2.0",
          id: 1,
          method: "tools/call",
          params: { name: "search_memory", arguments: { query: "x" } },
        },
      });

    failAfter = "";
    const refused = await call();
    const retried = await call();

    expect(refused.body.result.isError).toBe(true);
    expect(JSON.stringify(refused.body.result.content)).toContain("database.busy");
    expect(retried.status).toBe(200);
    expect(retried.body.result.isError).toBeFalsy();
  });

  it("gives back a keyless caller's token when its chat met database.busy", async () => {
    await Tenant.ensure(t.db, "twin");
    await RateLimit.setLimits(t.db, "twin", { chat: "1/h" });
    const chat = () =>
      invoke({
        method: "POST",
        path: "/api/chat",
        headers: { "x-user-id": "visitor" },
        body: { messages: [{ role: "user", content: "When are you open?" }] },
      });

    failAfter = "rate_limit_decide_pair";
    const refused = await chat();
    const retried = await chat();

    expect(refused.status).toBe(503);
    expect(refused.body.error.code).toBe("database.busy");
    // Retry-After is its wait: the RateLimit field made when it was counted (r=0;t=3600) went with the count.
    expect(refused.headers["retry-after"]).toBe("1");
    expect(refused.headers["ratelimit-policy"]).toBe('"chat";q=1;w=3600');
    expect(refused.headers.ratelimit).toBeUndefined();
    expect(retried.status).toBe(200);
  });
});
