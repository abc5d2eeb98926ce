import { NeonDbError, type NeonQueryFunction, neon, neonConfig } from "@neondatabase/serverless";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { localFetchEndpoint, type NeonServer, neonConnectionString, startNeonServer } from "../../kit/neon-server";
// Not ../support/db: it loads core/db/pg, whose int8 parser would change what `direct` returns.
import { createDatabase, databaseUrl, dropDatabase } from "../../kit/postgres";

// This file's own database on the test server, dropped at the end.
let DATABASE: string;
const SCHEMA = `neon_server_test_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;

let server: NeonServer;
let sql: NeonQueryFunction<false, false>;
let direct: pg.Client;

async function neonError(promise: Promise<unknown>): Promise<NeonDbError> {
  const err = await promise.then(
    () => {
      throw new Error("expected the query to fail");
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(NeonDbError);
  return err as NeonDbError;
}

beforeAll(async () => {
  DATABASE = await createDatabase();
  server = await startNeonServer();
  neonConfig.fetchEndpoint = localFetchEndpoint;
  sql = neon(neonConnectionString(DATABASE, server.port));
  direct = new pg.Client({ connectionString: databaseUrl(DATABASE) });
  await direct.connect();
  await direct.query("create extension if not exists vector");
  await direct.query(`create schema ${SCHEMA}`);
  await direct.query(`create table ${SCHEMA}.items (
    id int primary key,
    name text not null,
    meta jsonb,
    tags text[],
    embedding vector(3),
    data bytea,
    note text
  )`);
});

afterAll(async () => {
  await direct?.query(`drop schema if exists ${SCHEMA} cascade`);
  await direct?.end();
  await server?.close();
  if (DATABASE) await dropDatabase(DATABASE);
});

describe("neon() against the local Neon HTTP server", () => {
  it("parses every scalar type exactly as a direct pg connection does", async () => {
    const query = `select
      42::int4 as int4, 9007199254740993::int8 as int8, 12.50::numeric as numeric,
      1.5::float8 as float8, 'NaN'::float8 as nan, 'héllo "x"'::text as text, true as bool,
      '{"a": [1, null], "b": {"c": "d"}}'::jsonb as jsonb, '[1, 2]'::json as json,
      '2024-01-02T03:04:05.678Z'::timestamptz as timestamptz, '2024-01-02'::date as date,
      array[1, 2, null]::int4[] as int4_array, array['a', 'b c', null, '"q"']::text[] as text_array,
      null::text as nothing, '\\xdeadbeef'::bytea as bytea, '[1,2.5,-3]'::vector as vector,
      '[1,2.5,-3]'::vector::text as vector_text, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid as uuid`;

    const [viaNeon] = await sql.query(query);
    const {
      rows: [viaPg],
    } = await direct.query(query);

    expect(viaNeon).toEqual(viaPg);
    expect(viaNeon).toEqual({
      int4: 42,
      int8: "9007199254740993",
      numeric: "12.50",
      float8: 1.5,
      nan: Number.NaN,
      text: 'héllo "x"',
      bool: true,
      jsonb: { a: [1, null], b: { c: "d" } },
      json: [1, 2],
      timestamptz: new Date("2024-01-02T03:04:05.678Z"),
      date: expect.any(Date),
      int4_array: [1, 2, null],
      text_array: ["a", "b c", null, '"q"'],
      nothing: null,
      bytea: Buffer.from("deadbeef", "hex"),
      vector: "[1,2.5,-3]",
      vector_text: "[1,2.5,-3]",
      uuid: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    });
  });

  it("answers in the exact shape of Neon, as raw text in array mode", async () => {
    const response = await fetch(server.url, {
      method: "POST",
      headers: {
        "Neon-Connection-String": neonConnectionString(DATABASE, server.port),
        "Neon-Raw-Text-Output": "true",
        "Neon-Array-Mode": "true",
      },
      body: JSON.stringify({ query: "select $1::int4 as n, $2::text as t", params: ["7", null] }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      rowAsArray: true,
      fields: [
        { name: "n", dataTypeID: 23, tableID: 0, columnID: 0, dataTypeSize: 4, dataTypeModifier: -1, format: "text" },
        { name: "t", dataTypeID: 25, tableID: 0, columnID: 0, dataTypeSize: -1, dataTypeModifier: -1, format: "text" },
      ],
      rows: [["7", null]],
      command: "SELECT",
      rowCount: 1,
    });
  });

  it("converts values to JSON and rows to objects when the raw-text and array-mode headers are absent", async () => {
    const response = await fetch(server.url, {
      method: "POST",
      headers: { "Neon-Connection-String": neonConnectionString(DATABASE, server.port) },
      body: JSON.stringify({
        query: `select 1::int4 as i, 5::int8 as big, true as b, 2.5::float4 as f, '{"x":1}'::jsonb as j,
          array[array[1,2],array[3,null]]::int4[] as nested, array['a,b', null]::text[] as texts,
          '{}'::int4[] as empty, null::int4 as n`,
      }),
    });
    const body = (await response.json()) as { rowAsArray: boolean; rows: unknown[] };
    expect(body.rowAsArray).toBe(false);
    expect(body.rows).toEqual([
      {
        i: 1,
        big: "5",
        b: true,
        f: 2.5,
        j: { x: 1 },
        nested: [
          [1, 2],
          [3, null],
        ],
        texts: ["a,b", null],
        empty: [],
        n: null,
      },
    ]);
  });

  it("round-trips parameters of every kind through insert and select", async () => {
    const tags = ["plain", "with space", "comma,inside", 'quote"inside', "back\\slash", "NULL", ""];
    const inserted = await sql`
      insert into ${sql.unsafe(SCHEMA)}.items (id, name, meta, tags, embedding, data, note)
      values (${1}, ${"first"}, ${{ nested: { n: 1, s: "ü" }, list: [1, "two"] }}, ${tags},
              ${"[0.5,1,-2]"}, ${Buffer.from([0, 1, 254, 255])}, ${null})
      returning *`;
    const [row] = await sql`select * from ${sql.unsafe(SCHEMA)}.items where id = ${1}`;

    for (const r of [inserted[0], row]) {
      expect(r).toEqual({
        id: 1,
        name: "first",
        meta: { nested: { n: 1, s: "ü" }, list: [1, "two"] },
        tags,
        embedding: "[0.5,1,-2]",
        data: Buffer.from([0, 1, 254, 255]),
        note: null,
      });
    }
  });

  it("returns full results and array-mode rows when asked", async () => {
    const full = await sql.query(`update ${SCHEMA}.items set note = $1 where id = $2`, ["noted", 1], {
      fullResults: true,
    });
    expect(full.command).toBe("UPDATE");
    expect(full.rowCount).toBe(1);
    expect(full.rows).toEqual([]);

    const rows = await sql.query(`select id, note from ${SCHEMA}.items where id = $1`, [1], { arrayMode: true });
    expect(rows).toEqual([[1, "noted"]]);
  });

  it("sends 1536-dimension vectors as text parameters", async () => {
    const vector = `[${Array.from({ length: 1536 }, (_, i) => ((i % 97) / 97).toFixed(6)).join(",")}]`;
    await sql.query(`create table ${SCHEMA}.vectors (id int primary key, embedding vector(1536))`);
    const ids = Array.from({ length: 50 }, (_, i) => i);
    await sql.query(`insert into ${SCHEMA}.vectors select id, $2::vector from unnest($1::int[]) as id`, [ids, vector]);
    const [stored] = await sql.query(
      `select count(*)::int as n, (array_agg(embedding))[1] = $1::vector as same from ${SCHEMA}.vectors`,
      [vector],
    );
    expect(stored).toEqual({ n: 50, same: true });
  });
});

describe("transactions", () => {
  it("commits every statement and answers one result per statement", async () => {
    const [inserted, selected] = await sql.transaction((tx) => [
      tx`insert into ${tx.unsafe(SCHEMA)}.items (id, name) values (${10}, ${"ten"}) returning id`,
      tx`select name from ${tx.unsafe(SCHEMA)}.items where id = ${10}`,
    ]);
    expect(inserted).toEqual([{ id: 10 }]);
    expect(selected).toEqual([{ name: "ten" }]);
  });

  it("rolls back the first statement when the second one fails", async () => {
    const err = await neonError(
      sql.transaction([
        sql`insert into ${sql.unsafe(SCHEMA)}.items (id, name) values (${20}, ${"twenty"})`,
        sql`insert into ${sql.unsafe(SCHEMA)}.items (id, name) values (${10}, ${"duplicate"})`,
      ]),
    );
    expect(err.code).toBe("23505");
    expect(await sql`select id from ${sql.unsafe(SCHEMA)}.items where id = ${20}`).toEqual([]);
  });

  it("honours the isolation level, read-only and deferrable options", async () => {
    const [settings] = await sql.transaction(
      [
        sql`select current_setting('transaction_isolation') as level,
          current_setting('transaction_read_only') as ro,
          current_setting('transaction_deferrable') as deferrable`,
      ],
      { isolationLevel: "Serializable", readOnly: true, deferrable: true },
    );
    expect(settings).toEqual([{ level: "serializable", ro: "on", deferrable: "on" }]);

    const err = await neonError(
      sql.transaction([sql`insert into ${sql.unsafe(SCHEMA)}.items (id, name) values (${30}, ${"x"})`], {
        readOnly: true,
      }),
    );
    expect(err.code).toBe("25006");
  });
});

describe("errors", () => {
  it("delivers a unique violation with every Postgres field", async () => {
    const err = await neonError(sql`insert into ${sql.unsafe(SCHEMA)}.items (id, name) values (${1}, ${"again"})`);
    expect(err).toMatchObject({
      name: "NeonDbError",
      code: "23505",
      severity: "ERROR",
      schema: SCHEMA,
      table: "items",
      constraint: "items_pkey",
      detail: "Key (id)=(1) already exists.",
    });
    expect(err.message).toContain("duplicate key value violates unique constraint");
  });

  it("delivers syntax errors with their position, and refuses several statements in one query", async () => {
    const syntax = await neonError(sql.query("select * fromm nowhere"));
    expect(syntax.code).toBe("42601");
    expect(syntax.position).toBe("10"); // at "fromm"

    const several = await neonError(sql.query("select 1; select 2"));
    expect(several.code).toBe("42601");
  });

  it("reports a database that does not exist", async () => {
    const other = neon(neonConnectionString("engram_no_such_database", server.port));
    const err = await neonError(other`select 1`);
    expect(err.code).toBe("3D000");
  });

  it("answers 413 like Neon when the request body is over the limit", async () => {
    const small = await startNeonServer({ maxRequestBytes: 1024 });
    try {
      const sqlSmall = neon(neonConnectionString(DATABASE, small.port));
      expect((await sqlSmall`select ${"x".repeat(100)} as s`)[0]).toEqual({ s: "x".repeat(100) });
      const err = await neonError(sqlSmall`select ${"x".repeat(2000)} as s`);
      expect(err.message).toMatch(/HTTP status 413/);
    } finally {
      await small.close();
    }
  });
});

describe("operation", () => {
  it("fails every query while down and recovers afterwards", async () => {
    server.setDown(true);
    try {
      const err = await neonError(sql`select 1`);
      expect(err.message).toMatch(/HTTP status 500/);
      expect(err.code).toBeUndefined();
      await neonError(sql.transaction([sql`select 1`]));
    } finally {
      server.setDown(false);
    }
    expect(await sql`select 1 as one`).toEqual([{ one: 1 }]);
  });

  it("serves many concurrent queries and counts queries and batches", async () => {
    const before = { ...server.stats };
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => sql`select ${i}::int as i`));
    expect(results.map((r) => r[0]?.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    await sql.transaction([sql`select 1`, sql`select 2`]);
    expect(server.stats.queries - before.queries).toBe(42);
    expect(server.stats.batches - before.batches).toBe(1);
  });

  it("also works with fetchEndpoint set to the url string", async () => {
    neonConfig.fetchEndpoint = server.url;
    try {
      expect(await sql`select current_database() as db`).toEqual([{ db: DATABASE }]);
    } finally {
      neonConfig.fetchEndpoint = localFetchEndpoint;
    }
  });
});
