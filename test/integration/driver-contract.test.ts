/**
 * The driver contract: every driver Engram ships behaves the same through the one Db API.
 */
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { arr, vectorLiteral } from "../../core/db";
import { isUniqueViolation } from "../../core/db/errors";
import { loadMigrations, migrate } from "../../core/db/migrate";
import { DIMENSIONS, DRIVERS, freshDb, type TestDb } from "../../kit/db";

describe.each(DRIVERS)("the %s driver", (driver) => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb(driver);
    await t.db.query(
      sql`create table contract (id int primary key, v vector(3), doc jsonb, at timestamptz, tags text[])`,
    );
  });
  afterAll(() => t?.close());

  it("migrates from empty and records every migration once", async () => {
    const rows = await t.db.query<{ id: string }>(sql`select id from engram_migrations order by id`);
    const expected = loadMigrations({ embeddingDimensions: DIMENSIONS, searchTextConfig: "english" }).map((m) => m.id);
    expect(rows.map((r) => r.id)).toEqual(expected);
  });

  it("re-running migrations applies nothing and changes nothing", async () => {
    const applied = await migrate(t.db, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
    expect(applied).toEqual([]);
  });

  it("refuses to start with other vector dimensions than the database was built with", async () => {
    await expect(migrate(t.db, { embeddingDimensions: 768, searchTextConfig: "english" })).rejects.toThrow(
      /EMBEDDING_DIMENSIONS is 768 but this database stores 1536/,
    );
  });

  it("round-trips vectors, jsonb, timestamps and arrays", async () => {
    const at = new Date("2026-01-02T03:04:05.678Z");
    const doc = { team: "sales", nested: { quote: `it's "x" \\ $$`, n: 1.5 }, list: [1, null, true] };
    await t.db.query(
      sql`insert into contract values (1, ${vectorLiteral([0.25, -1, 3])}::vector, ${JSON.stringify(doc)}::jsonb, ${at.toISOString()}::timestamptz, ${arr(["a", "b,c"])}::text[])`,
    );
    const [row] = await t.db.query<{ v: string; doc: unknown; at: Date; tags: string[]; n: number }>(
      sql`select v::text as v, doc, at, tags, (select count(*) from contract) as n from contract where id = 1`,
    );
    expect(row?.v).toBe("[0.25,-1,3]");
    expect(row?.doc).toEqual(doc);
    expect(row?.at).toBeInstanceOf(Date);
    expect(row?.at.toISOString()).toBe(at.toISOString());
    expect(row?.tags).toEqual(["a", "b,c"]);
    expect(Number(row?.n)).toBe(1);
  });

  it("computes cosine distance with pgvector", async () => {
    const [row] = await t.db.query<{ d: number }>(sql`select ('[1,0,0]'::vector <=> '[0,1,0]'::vector) as d`);
    expect(row?.d).toBeCloseTo(1, 6);
  });

  it("rolls a whole batch back when one statement fails", async () => {
    const attempt = t.db.batch([
      sql`insert into contract (id) values (2)`,
      sql`insert into contract (id) values (3)`,
      sql`insert into contract (id) values (1)`, // duplicate key
    ]);
    await expect(attempt).rejects.toSatisfy(isUniqueViolation);
    const rows = await t.db.query<{ id: number }>(sql`select id from contract where id in (2, 3)`);
    expect(rows).toEqual([]);
  });

  it("returns each statement's rows from a batch, in order", async () => {
    const results = await t.db.batch([
      sql`insert into contract (id) values (10) returning id`,
      sql`select count(*)::int as n from contract where id = 10`,
    ]);
    expect(results[0]).toEqual([{ id: 10 }]);
    expect(results[1]).toEqual([{ n: 1 }]);
  });

  it("keeps SET LOCAL inside the batch that issued it", async () => {
    const [, shown] = await t.db.batch([
      sql`set local statement_timeout = '1234ms'`,
      sql`select current_setting('statement_timeout') as s`,
    ]);
    expect(shown?.[0]).toEqual({ s: "1234ms" });
    const [after] = await t.db.query<{ s: string }>(sql`select current_setting('statement_timeout') as s`);
    expect(after?.s).not.toBe("1234ms");
  });

  it("applies the settings a statement asks for", async () => {
    const [first] = await t.db.query<{ s: string }>(sql`select current_setting('work_mem') as s`, {
      settings: { work_mem: "5MB" },
    });
    expect(first?.s).toBe("5MB");
    const [second] = await t.db.query<{ s: string }>(sql`select current_setting('work_mem') as s`, {
      settings: { work_mem: "6MB" },
    });
    expect(second?.s).toBe("6MB");
  });

  it("fails a statement whose setting the server refuses; the settings of the statements after it still apply", async () => {
    const ask = (value: string) =>
      t.db.query<{ s: string }>(sql`select current_setting('work_mem') as s`, { settings: { work_mem: value } });
    expect((await ask("7MB"))[0]?.s).toBe("7MB");
    await expect(ask("seven")).rejects.toThrow();
    expect((await ask("7MB"))[0]?.s).toBe("7MB");
    expect((await ask("8MB"))[0]?.s).toBe("8MB");
  });

  it("runs a named statement again with new values, alone and in a batch", async () => {
    const doubled = (n: number) => ({ name: "contract_double", text: "select $1::int * 2 as n", params: [n] });
    expect(await t.db.query(doubled(1))).toEqual([{ n: 2 }]);
    expect(await t.db.query(doubled(2))).toEqual([{ n: 4 }]);
    expect(await t.db.batch([doubled(3), doubled(4)])).toEqual([[{ n: 6 }], [{ n: 8 }]]);
  });

  it("surfaces SQLSTATE codes for constraint violations", async () => {
    const error = await t.db.query(sql`insert into contract (id) values (1)`).catch((e) => e);
    expect(isUniqueViolation(error)).toBe(true);
  });

  it("says it serves HNSW search exactly when its migrations built the HNSW index", async () => {
    const indexes = await t.db.query<{ n: number }>(
      sql`select count(*)::int as n from pg_indexes where tablename = 'chunks' and indexdef ilike '%using hnsw%'`,
    );
    expect(t.db.capabilities.hnsw).toBe(Number(indexes[0]?.n) > 0);
  });

  it("runs statements at once on several connections only where it has them", async () => {
    const started = performance.now();
    await Promise.all([1, 2].map(() => t.db.query(sql`select pg_sleep(0.5)`)));
    // Serially they take at least 1 s.
    const overlapped = performance.now() - started < 900;
    expect(t.db.capabilities.concurrent).toBe(overlapped);
  });

  it("answers ping", async () => {
    expect(await t.db.ping()).toBe(true);
  });
});

describe("named statements on pg", () => {
  it("are prepared once per connection and then only bound", async () => {
    const { createPgDb } = await import("../../core/db/pg");
    const t = await freshDb("pg");
    // One connection, so every query below shares its session's prepared statements.
    const db = createPgDb(t.url as string, { max: 1 });
    try {
      const tripled = (n: number) => ({ name: "contract_triple", text: "select $1::int * 3 as n", params: [n] });
      for (const n of [1, 2, 3]) expect(await db.query(tripled(n))).toEqual([{ n: 3 * n }]);

      const prepared = await db.query<{ statement: string; runs: number }>(
        sql`select statement, generic_plans + custom_plans as runs from pg_prepared_statements where name = 'contract_triple'`,
      );
      expect(prepared).toEqual([{ statement: "select $1::int * 3 as n", runs: 3 }]);
    } finally {
      await db.close();
      await t.close();
    }
  });
});

describe("an unreachable database", () => {
  it("maps a refused pg connection to database.unavailable", async () => {
    const { createPgDb } = await import("../../core/db/pg");
    const db = createPgDb("postgres://postgres@127.0.0.1:1/nowhere");
    const error = await db.query(sql`select 1`).catch((e) => e);
    expect(error.code).toBe("database.unavailable");
    expect(error.status).toBe(503);
    expect(await db.ping()).toBe(false);
    await db.close();
  });

  it("maps a Neon endpoint that cannot reach its compute to database.unavailable", async () => {
    const t = await freshDb("neon-http");
    try {
      t.neon?.setDown(true);
      const error = await t.db.query(sql`select 1`).catch((e) => e);
      expect(error.code).toBe("database.unavailable");
    } finally {
      t.neon?.setDown(false);
      await t.close();
    }
  });
});
