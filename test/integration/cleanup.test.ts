/** Scheduled cleanup through every driver: rows just past and just before each expiry. */
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import * as Cleanup from "../../core/cleanup";
import { setConfig } from "../../core/config";
import { type Db, useDb } from "../../core/db";
import { createOfflineEmbedder } from "../../core/embedding/offline";
import * as Ingest from "../../core/ingest";
import { handler } from "../../functions/cron/cleanup";
import { callerFor, freshDb, type TestDb, termRecount, termStatistics } from "../../kit/db";
import { lambdaContext } from "../../kit/events";

const GONE = 5;
const LIVE = 3;
// Live rows sit this far on the safe side of their expiry: far enough for a slow run, close
// enough that a cleanup using the wrong comparison or clock would take them.
const MARGIN = "interval '20 seconds'";

const run = (db: Db, text: string, params: unknown[] = []) => db.query({ text, params });

/** `GONE` rows just past and `LIVE` rows just before the expiry of every kind cleanup handles. */
async function seed(db: Db, tenantId: string, retentionDays = 30) {
  const series = (prefix: string, n: number) => `select '${prefix}-' || i as name from generate_series(1, ${n}) i`;
  for (const [prefix, n, tat] of [
    ["gone", GONE, "now() - interval '1 second'"],
    ["live", LIVE, `now() + ${MARGIN}`],
  ] as const) {
    await run(
      db,
      `insert into rate_limits (tenant_id, key, tat) select $1, name, ${tat} from (${series(prefix, n)}) s`,
      [tenantId],
    );
    await run(
      db,
      `insert into cache (tenant_id, key, value, expires_at) select $1, name, '{"v":1}'::jsonb, ${tat} from (${series(prefix, n)}) s`,
      [tenantId],
    );
    await run(
      db,
      `insert into ingestions (id, tenant_id, owner, documents, document_count, chunk_count, embedded, reused, embedding_tokens, expires_at)
       select 'ing-' || name, $1, '', '[]'::jsonb, 0, 0, 0, 0, 0, ${tat} from (${series(prefix, n)}) s`,
      [tenantId],
    );
  }
  const retention = `interval '${retentionDays} days'`;
  const documents: [string, number, string, string][] = [
    ["ttl-gone", GONE, "now() - interval '1 second'", "null"],
    ["ttl-live", LIVE, `now() + ${MARGIN}`, "null"],
    ["deleted-gone", GONE, "null", `now() - ${retention} - interval '1 second'`],
    ["deleted-live", LIVE, "null", `now() - ${retention} + ${MARGIN}`],
    ["plain", 2, "null", "null"],
  ];
  for (const [prefix, n, expiresAt, deletedAt] of documents) {
    await run(
      db,
      `insert into documents (tenant_id, owner, id, content, content_hash, chunk_count, expires_at, deleted_at)
       select $1, '', name, 'text of ' || name, md5(name), 1, ${expiresAt}, ${deletedAt} from (${series(prefix, n)}) s`,
      [tenantId],
    );
  }
  await run(
    db,
    `insert into chunks (tenant_id, document_key, owner, ordinal, content, content_hash, tokens, embedding, embedding_model)
     select tenant_id, key, owner, 0, content, content_hash, 3, array_fill(0.1::real, array[1536])::vector, 'test'
     from documents where tenant_id = $1`,
    [tenantId],
  );
}

async function remaining(db: Db) {
  const names = async (text: string) =>
    (await db.query<{ name: string }>({ text, params: [] })).map((r) => r.name).sort();
  return {
    rateLimits: await names("select key as name from rate_limits"),
    cache: await names("select key as name from cache"),
    ingestions: await names("select substr(id, 5) as name from ingestions"),
    documents: await names("select id as name from documents"),
    chunks: await names("select d.id as name from chunks c join documents d on d.key = c.document_key"),
  };
}

const live = (prefix: string) => Array.from({ length: LIVE }, (_, i) => `${prefix}-${i + 1}`);
const liveDocuments = [...live("deleted-live"), "plain-1", "plain-2", ...live("ttl-live")].sort();
const expected = {
  rateLimits: live("live"),
  cache: live("live"),
  ingestions: live("live"),
  documents: liveDocuments,
  chunks: liveDocuments,
};
const allGone = {
  rateLimits: GONE,
  cache: GONE,
  ingestions: GONE,
  expiredDocuments: GONE,
  deletedDocuments: GONE,
  searchTerms: expect.any(Number),
};
const nothing = { rateLimits: 0, cache: 0, ingestions: 0, expiredDocuments: 0, deletedDocuments: 0, searchTerms: 0 };

/** The keyword statistics' lexeme rows, and the lexemes the chunks left actually hold, per owner. */
async function terms(db: Db) {
  const rows = await db.query<{ entry: string; chunks: number }>({
    text: "select owner || '/' || lexeme as entry, chunks::int from search_terms where lexeme <> '' order by 1",
    params: [],
  });
  const held = await db.query<{ entry: string; chunks: number }>({
    text: `select c.owner || '/' || t.lexeme as entry, count(*)::int as chunks
           from chunks c cross join lateral unnest(tsvector_to_array(c.tsv)) t(lexeme) group by 1 order by 1`,
    params: [],
  });
  return { rows, held };
}

beforeAll(() => {
  setConfig({ LOG_LEVEL: "silent" });
});

describe.each(["pg", "neon-http", "pglite"] as const)("cleanup on %s", (driver) => {
  let t: TestDb;
  let tenantId: string;
  beforeAll(async () => {
    t = await freshDb(driver);
    tenantId = (await callerFor(t.db, "acme")).tenantId;
  });
  beforeEach(async () => {
    for (const table of ["rate_limits", "cache", "ingestions", "documents"]) await run(t.db, `delete from ${table}`);
  });
  afterAll(() => t?.close());

  it("removes only what has expired, in bounded batches, and counts each kind", async () => {
    await seed(t.db, tenantId);
    const before = await terms(t.db);

    const report = await Cleanup.run(t.db, { retentionDays: 30, batchSize: 2, budgetMs: 30_000 });

    expect(report.removed).toEqual(allGone);
    expect(report.complete).toBe(true);
    expect(await remaining(t.db)).toEqual(expected);
    // Lexemes only the removed documents held leave the statistics; the rest count exactly what is left.
    const after = await terms(t.db);
    expect(after.rows).toEqual(after.held);
    expect(report.removed.searchTerms).toBe(before.rows.length - after.rows.length);
    expect(report.removed.searchTerms).toBeGreaterThan(0);
  });

  it("removes nothing more when run again", async () => {
    await seed(t.db, tenantId);
    await Cleanup.run(t.db, { retentionDays: 30, batchSize: 100 });

    const again = await Cleanup.run(t.db, { retentionDays: 30, batchSize: 100 });

    expect(again).toMatchObject({ removed: nothing, complete: true });
    expect(await remaining(t.db)).toEqual(expected);
  });

  it("splits the work between two runs at once without removing anything twice or anything live", async () => {
    await seed(t.db, tenantId);

    const [a, b] = await Promise.all([
      Cleanup.run(t.db, { retentionDays: 30, batchSize: 1 }),
      Cleanup.run(t.db, { retentionDays: 30, batchSize: 1 }),
    ]);

    for (const kind of ["rateLimits", "cache", "ingestions", "expiredDocuments", "deletedDocuments"] as const) {
      expect(a.removed[kind] + b.removed[kind]).toBe(GONE);
    }
    expect(await remaining(t.db)).toEqual(expected);
    const after = await terms(t.db);
    expect(after.rows).toEqual(after.held);
  });

  it("stops when its time budget is spent and finishes on the next run", async () => {
    await seed(t.db, tenantId);

    const starved = await Cleanup.run(t.db, { retentionDays: 30, budgetMs: 0 });
    const next = await Cleanup.run(t.db, { retentionDays: 30 });

    expect(starved).toMatchObject({ removed: nothing, complete: false });
    expect(next).toMatchObject({ removed: allGone, complete: true });
  });

  it("keeps soft-deleted documents for SOFT_DELETE_RETENTION_DAYS by default", async () => {
    setConfig({ LOG_LEVEL: "silent", SOFT_DELETE_RETENTION_DAYS: "7" });
    await seed(t.db, tenantId, 7);

    const report = await Cleanup.run(t.db).finally(() => setConfig({ LOG_LEVEL: "silent" }));

    expect(report.removed.deletedDocuments).toBe(GONE);
    expect((await remaining(t.db)).documents).toEqual(liveDocuments);
  });
});

describe("cleanup against a concurrent writer of the same keyword statistics (pg)", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pg");
  });
  afterAll(() => t?.close());

  it("runs a batch again when Postgres picks it as a deadlock's victim, leaving the statistics a recount gives", async () => {
    const users = ["a-user", "b-user"];
    for (const user of users) {
      await Ingest.run(
        t.db,
        await callerFor(t.db, "acme", user),
        [{ id: "note", content: `A note kept by ${user}.` }],
        {
          embedder: createOfflineEmbedder({ dimensions: 1536 }),
        },
      );
    }
    await run(t.db, "update documents set deleted_at = now() - interval '40 days'");
    const tenantId = (await callerFor(t.db, "acme")).tenantId;
    const other = new pg.Client({ connectionString: t.url });
    await other.connect();
    try {
      // The other writer holds b-user's statistics row, which the cleanup's batch needs after a-user's (key order),
      // then wants a-user's: a cycle. Its own deadlock check comes later, so the cleanup's batch is the victim.
      await other.query("begin");
      await other.query("set local deadlock_timeout = '10s'");
      const lock = "update search_terms set chunks = chunks where tenant_id = $1 and owner = $2 and lexeme = ''";
      await other.query(lock, [tenantId, "b-user"]);
      const cleanup = Cleanup.run(t.db, { retentionDays: 30 });
      await waitForLockWait(other);
      await other.query(lock, [tenantId, "a-user"]);
      await other.query("commit");

      const report = await cleanup;

      expect(report.removed.deletedDocuments).toBe(2);
      expect(await remaining(t.db)).toMatchObject({ documents: [], chunks: [] });
      expect(await termStatistics(t.db)).toEqual(await termRecount(t.db));
    } finally {
      await other.end();
    }
  });
});

/** Resolves once another session of the database waits for a lock (the cleanup's batch, on the row held). */
async function waitForLockWait(client: pg.Client): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const { rows } = await client.query(
      "select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database() and pid <> pg_backend_pid()",
    );
    if (rows[0].n > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error("the cleanup never waited for the row held");
}

describe("the cleanup cron function", () => {
  let t: TestDb;
  beforeAll(async () => {
    t = await freshDb("pg");
    useDb(t.db);
  });
  afterAll(() => t?.close());

  it("runs cleanup with the configured retention and logs one structured line with the counts", async () => {
    setConfig({ LOG_LEVEL: "info", SOFT_DELETE_RETENTION_DAYS: "30" });
    await seed(t.db, (await callerFor(t.db, "acme")).tenantId);
    const lines: string[] = [];
    const write = process.stdout.write;
    process.stdout.write = ((chunk: string) => lines.push(String(chunk)) > 0) as typeof process.stdout.write;

    const report = await handler({}, lambdaContext()).finally(() => {
      process.stdout.write = write;
      setConfig({ LOG_LEVEL: "silent" });
    });

    expect(report).toMatchObject({ removed: allGone, complete: true });
    const logged = lines
      .flatMap((line) => (line.startsWith("{") ? [JSON.parse(line)] : []))
      .filter((l) => l.message === "cleanup");
    expect(logged).toEqual([
      expect.objectContaining({ level: "info", ...allGone, complete: true, tookMs: expect.any(Number) }),
    ]);
  });
});
