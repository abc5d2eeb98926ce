/** Planner statistics on embedded PGlite, which has no autovacuum: analyzed as the corpus grows, not on servers. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setConfig } from "../../core/config";
import type { Db } from "../../core/db";
import * as Statistics from "../../core/db/statistics";
import * as Ingest from "../../core/ingest";
import { callerFor, freshDb, type TestDb } from "../../kit/db";
import { countingEmbedder, prose } from "../../kit/factories";

const analyzed = async (db: Db) =>
  (
    await db.query<{ name: string; tuples: number }>({
      text: `select relname as name, reltuples::int as tuples from pg_class
             where relname in ('chunks', 'documents', 'search_terms') and relkind = 'r' order by relname`,
      params: [],
    })
  ).map((row) => `${row.name}:${row.tuples}`);

async function ingest(db: Db, from: number, count: number) {
  const caller = await callerFor(db, "stats");
  const documents = Array.from({ length: count }, (_, i) => ({ id: `d${from + i}`, content: prose(from + i) }));
  await Ingest.run(db, caller, documents, { embedder: countingEmbedder() });
}

beforeAll(() => setConfig({ LOG_LEVEL: "silent" }));

describe("planner statistics on pglite", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pglite");
  });
  afterAll(() => t?.close());

  it("analyzes the search tables when never analyzed, again only after they grow, and not otherwise", async () => {
    await ingest(t.db, 0, 40);

    const first = await Statistics.refresh(t.db);
    const afterFirst = await analyzed(t.db);
    const idle = await Statistics.refresh(t.db);
    await ingest(t.db, 40, 400);
    const grown = await Statistics.refresh(t.db);

    expect(first.sort()).toEqual(["chunks", "documents", "search_terms"]);
    expect(afterFirst).toContain("documents:40");
    expect(idle).toEqual([]);
    expect(grown).toContain("chunks");
    expect(await analyzed(t.db)).toContain("documents:440");
  });
});

describe("planner statistics on a server", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pg");
  });
  afterAll(() => t?.close());

  it("leaves them to autovacuum", async () => {
    await ingest(t.db, 0, 40);

    expect(await Statistics.refresh(t.db)).toEqual([]);
  });
});
