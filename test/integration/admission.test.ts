/**
 * Admission instead of collapse: per-tenant limits on ingests in flight (on every driver, shared
 * by every process), connections that bulk work cannot take, and a bounded wait for a connection
 * that ends in 503 `database.busy`, never a 500.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Admission from "../../core/admission";
import { errorResponse } from "../../core/api/http";
import type { Caller } from "../../core/auth";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import { inLane } from "../../core/db/lane";
import { createPgDb } from "../../core/db/pg";
import * as Ingest from "../../core/ingest";
import { callerFor, DRIVERS, freshDb, type TestDb } from "../../kit/db";

describe.each(DRIVERS)("ingest admission on %s", (driver) => {
  let t: TestDb;
  let acme: Caller;
  let globex: Caller;
  beforeAll(async () => {
    setConfig({ LOG_LEVEL: "silent", INGEST_CONCURRENCY_PER_TENANT: "2", INGEST_BYTES_PER_TENANT: "1000" });
    t = await freshDb(driver);
    acme = await callerFor(t.db, "acme");
    globex = await callerFor(t.db, "globex");
  });
  afterAll(async () => {
    setConfig({ LOG_LEVEL: "silent" });
    await t?.close();
  });

  it("admits a tenant's ingests up to its limit in flight, then answers 429 ingest.busy with Retry-After", async () => {
    const first = await Admission.admitIngest(t.db, acme, 10);
    const second = await Admission.admitIngest(t.db, acme, 10);
    const third = await Admission.admitIngest(t.db, acme, 10).catch((error: unknown) => error);
    const otherTenant = await Admission.admitIngest(t.db, globex, 10);

    expect(third).toMatchObject({ code: "ingest.busy", status: 429, retryAfterSeconds: 1 });
    await first();
    const afterOneEnded = await Admission.admitIngest(t.db, acme, 10);
    await Promise.all([second(), afterOneEnded(), otherTenant()]);
  });

  it("bounds the bytes a tenant's ingests carry at once, but always admits one on its own", async () => {
    const alone = await Admission.admitIngest(t.db, acme, 5_000);
    const beside = await Admission.admitIngest(t.db, acme, 10).catch((error: unknown) => error);
    await alone();
    const small = await Admission.admitIngest(t.db, acme, 600);
    const tooMuch = await Admission.admitIngest(t.db, acme, 600).catch((error: unknown) => error);

    expect(beside).toMatchObject({ code: "ingest.busy", status: 429 });
    expect(tooMuch).toMatchObject({ code: "ingest.busy", message: expect.stringContaining("MB") });
    await small();
  });

  it("forgets an ingest that never ended once its lease expires", async () => {
    await Admission.admitIngest(t.db, globex, 10); // never released, as by a process that died
    await Admission.admitIngest(t.db, globex, 10);
    await t.db.query({ text: "update ingest_leases set expires_at = now() - interval '1 second'", params: [] });

    const release = await Admission.admitIngest(t.db, globex, 10);

    await release();
  });

  it("gives an ingest's lease back in its write, and keeps it when the write fails until the release", async () => {
    const leases = async () =>
      Number(
        (await t.db.query<{ n: number }>({ text: "select count(*)::int as n from ingest_leases", params: [] }))[0]?.n,
      );
    const document = (content: string) => [{ id: `lease-${content.length}`, content }];
    let sent = 0;
    let fail = false;
    const counted: Db = {
      ...t.db,
      query: async (query, options) => {
        sent++;
        return t.db.query(query, options);
      },
      batch: async (queries) => {
        sent++;
        if (fail) throw new Error("the write failed");
        return t.db.batch(queries);
      },
    };

    const release = await Admission.admitIngest(counted, acme, 10);
    await Ingest.run(counted, acme, document("Leases go back with the write."));
    expect(await leases()).toBe(0);
    const before = sent;
    await release(); // nothing left to send
    expect(sent).toBe(before);

    const again = await Admission.admitIngest(counted, acme, 10);
    fail = true;
    await expect(Ingest.run(counted, acme, document("A write that fails keeps its lease."))).rejects.toThrow();
    expect(await leases()).toBe(1);
    await again();
    expect(await leases()).toBe(0);
  });
});

describe("connections on pg", () => {
  let t: TestDb;
  let db: Db;
  beforeAll(async () => {
    setConfig({ LOG_LEVEL: "silent" });
    t = await freshDb("pg");
    db = createPgDb(t.url as string, { max: 3, reserved: 1, connectWaitMs: 300 });
  });
  afterAll(async () => {
    await db?.close();
    await t?.close();
  });

  const sleep = (seconds: number) => db.query({ text: "select pg_sleep($1)", params: [seconds] });

  it("keeps a share of connections bulk work cannot take, so a quick query is served beside it", async () => {
    const bulk = inLane("bulk", () => Promise.allSettled([sleep(1), sleep(1), sleep(1)]));
    await new Promise((resolve) => setTimeout(resolve, 100));

    const started = performance.now();
    await db.query({ text: "select 1", params: [] });
    const quick = performance.now() - started;
    const settled = await bulk;

    expect(quick).toBeLessThan(250);
    // Two bulk queries held their share; the third waited 300 ms for one and was turned away.
    expect(settled.map((s) => s.status).sort()).toEqual(["fulfilled", "fulfilled", "rejected"]);
    expect((settled.find((s) => s.status === "rejected") as PromiseRejectedResult).reason).toMatchObject({
      code: "database.busy",
    });
  });

  it("keeps one client's share of connections to a part of the pool, so another client's query is served beside it", async () => {
    const burst = inLane("interactive", () => Promise.allSettled([sleep(1), sleep(1), sleep(1)]), "key:a");
    await new Promise((resolve) => setTimeout(resolve, 100));

    const started = performance.now();
    await inLane("interactive", () => db.query({ text: "select 1", params: [] }), "key:b");
    const quick = performance.now() - started;
    const settled = await burst;

    expect(quick).toBeLessThan(250);
    // Two of the burst held its part; the third waited 300 ms behind them and was turned away: its client's 503.
    expect(settled.map((s) => s.status).sort()).toEqual(["fulfilled", "fulfilled", "rejected"]);
  });

  it("answers 503 database.busy with Retry-After, not 500, when no connection frees up in time", async () => {
    const holders = Promise.allSettled([sleep(1), sleep(1), sleep(1)]);
    await new Promise((resolve) => setTimeout(resolve, 100));

    const error = await db.query({ text: "select 1", params: [] }).catch((e: unknown) => e);
    await holders;
    const response = errorResponse(error, { requestId: "r" });

    expect(error).toMatchObject({ code: "database.busy", status: 503 });
    expect(response.statusCode).toBe(503);
    expect(response.headers?.["retry-after"]).toBe("1");
  });
});
