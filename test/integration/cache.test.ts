/** The Postgres cache through every driver: TTL from the database clock, tenant isolation. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Cache from "../../core/cache";
import { setConfig } from "../../core/config";
import { callerFor, freshDb, type TestDb } from "../../kit/db";

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent" });
});

describe.each(["pg", "neon-http", "pglite"] as const)("the cache on %s", (driver) => {
  let t: TestDb;
  let acme: string;
  let globex: string;
  beforeAll(async () => {
    t = await freshDb(driver);
    acme = (await callerFor(t.db, "acme")).tenantId;
    globex = (await callerFor(t.db, "globex")).tenantId;
  });
  afterAll(() => t?.close());

  it("returns what was set, as JSON, until it is replaced or deleted", async () => {
    const value = { answer: 42, tags: ["a", "b"], nested: { ok: true, none: null }, text: "ünïcode" };

    await Cache.set(t.db, acme, "query:1", value, 60);
    const first = await Cache.get(t.db, acme, "query:1");
    await Cache.set(t.db, acme, "query:1", "replaced", 60);
    const second = await Cache.get(t.db, acme, "query:1");
    const deleted = await Cache.del(t.db, acme, "query:1");
    const third = await Cache.get(t.db, acme, "query:1");
    const deletedAgain = await Cache.del(t.db, acme, "query:1");

    expect(first).toEqual(value);
    expect(second).toBe("replaced");
    expect(deleted).toBe(true);
    expect(third).toBeUndefined();
    expect(deletedAgain).toBe(false);
  });

  it("keeps JSON null, numbers and arrays apart from a missing entry", async () => {
    await Cache.set(t.db, acme, "null", null, 60);
    await Cache.set(t.db, acme, "zero", 0, 60);
    await Cache.set(t.db, acme, "list", [1, "two"], 60);

    expect(await Cache.get(t.db, acme, "null")).toBeNull();
    expect(await Cache.get(t.db, acme, "zero")).toBe(0);
    expect(await Cache.get(t.db, acme, "list")).toEqual([1, "two"]);
    expect(await Cache.get(t.db, acme, "missing")).toBeUndefined();
  });

  it("never returns an entry past its expiry, even before cleanup removes it", async () => {
    await Cache.set(t.db, acme, "stale", "old", 60);
    await Cache.set(t.db, acme, "fresh", "new", 60);
    await t.db.query({
      text: "update cache set expires_at = now() - interval '1 second' where tenant_id = $1 and key = 'stale'",
      params: [acme],
    });
    await t.db.query({
      text: "update cache set expires_at = now() + interval '2 seconds' where tenant_id = $1 and key = 'fresh'",
      params: [acme],
    });

    const stale = await Cache.get(t.db, acme, "stale");
    const fresh = await Cache.get(t.db, acme, "fresh");
    const [row] = await t.db.query<{ n: number }>({
      text: "select count(*)::int as n from cache where key = 'stale'",
      params: [],
    });

    expect(stale).toBeUndefined();
    expect(fresh).toBe("new");
    expect(row?.n).toBe(1);
    expect(await Cache.del(t.db, acme, "stale")).toBe(false);
  });

  it("expires an entry after its TTL", async () => {
    await Cache.set(t.db, acme, "short", "soon gone", 0.3);

    const before = await Cache.get(t.db, acme, "short");
    await new Promise((resolve) => setTimeout(resolve, 400));
    const after = await Cache.get(t.db, acme, "short");

    expect(before).toBe("soon gone");
    expect(after).toBeUndefined();
  });

  it("keeps tenants apart under the same key", async () => {
    await Cache.set(t.db, acme, "shared-key", "acme's", 60);

    const elsewhere = await Cache.get(t.db, globex, "shared-key");
    const deletedElsewhere = await Cache.del(t.db, globex, "shared-key");
    await Cache.set(t.db, globex, "shared-key", "globex's", 60);

    expect(elsewhere).toBeUndefined();
    expect(deletedElsewhere).toBe(false);
    expect(await Cache.get(t.db, acme, "shared-key")).toBe("acme's");
    expect(await Cache.get(t.db, globex, "shared-key")).toBe("globex's");
  });

  it("rejects a TTL that is not positive and a value that is not JSON", async () => {
    await expect(Cache.set(t.db, acme, "k", 1, 0)).rejects.toThrow(RangeError);
    await expect(Cache.set(t.db, acme, "k", undefined, 60)).rejects.toThrow(TypeError);
    await expect(Cache.get(t.db, acme, "")).rejects.toThrow(RangeError);
  });
});
