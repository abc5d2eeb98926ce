/**
 * Fresh, migrated databases for tests, on each driver Engram ships: `pg` and the Neon HTTP
 * driver on a new database of the real PostgreSQL (one per call), PGlite in memory.
 * The server is kit/postgres.ts's.
 */
import pg from "pg";
import type { Caller } from "../core/auth";
import type { Db, DriverName, Query, QueryOptions, Statement } from "../core/db";
import { loadMigrations, type MigrationSettings, migrate } from "../core/db/migrate";
import { createNeonDb } from "../core/db/neon";
import { createPgDb } from "../core/db/pg";
import { createPgliteDb } from "../core/db/pglite";
import { compile } from "../core/db/sql";
import * as Tenant from "../core/tenant";
import { type NeonServer, neonConnectionString, startNeonServer } from "./neon-server";
import { createDatabase, databaseUrl, dropDatabase, serverUrl } from "./postgres";

export { createDatabase, dropDatabase };

export const DRIVERS: DriverName[] = ["pg", "neon-http", "pglite"];
/** A database on the test server (kit/postgres.ts: TEST_DATABASE_URL or the rig's cluster). */
export const pgUrl = (database: string) => databaseUrl(database);
/** The test server's host and port, for callers that take them apart. */
export const PG = {
  get host() {
    return new URL(serverUrl()).hostname;
  },
  get port() {
    return Number(new URL(serverUrl()).port || 5432);
  },
};
export const DIMENSIONS = 1536;

let neonServer: Promise<NeonServer> | undefined;
/** One Neon-protocol server per test file (worker), started on first use, in front of the test server. */
export function sharedNeonServer(): Promise<NeonServer> {
  neonServer ??= startNeonServer();
  return neonServer;
}

export interface TestDb {
  db: Db;
  driver: DriverName;
  /** The Postgres database behind it (undefined for PGlite). */
  database?: string;
  url?: string;
  neon?: NeonServer;
  close(): Promise<void>;
}

/** A new, migrated database on the driver; `close()` drops it. */
export async function freshDb(driver: DriverName, options: { dimensions?: number } = {}): Promise<TestDb> {
  const settings = { embeddingDimensions: options.dimensions ?? DIMENSIONS, searchTextConfig: "english" };
  if (driver === "pglite") {
    const db = await createPgliteDb("memory://");
    await migrate(db, settings);
    return { db, driver, close: () => db.close() };
  }
  const database = await createDatabase();
  let db: Db;
  let neon: NeonServer | undefined;
  if (driver === "pg") {
    db = createPgDb(pgUrl(database));
  } else {
    neon = await sharedNeonServer();
    db = createNeonDb(neonConnectionString(database, neon.port), { fetchEndpoint: neon.url });
  }
  await migrate(db, settings);
  return {
    db,
    driver,
    database,
    url: pgUrl(database),
    neon,
    close: async () => {
      await db.close();
      await dropDatabase(database);
    },
  };
}

/** A caller of a (new or existing) tenant, as the auth middleware would produce. */
export async function callerFor(db: Db, tenant: string, userId = ""): Promise<Caller> {
  const row = await Tenant.ensure(db, tenant);
  return { tenantId: row.id, tenantName: row.name, keyPrefix: "egm_test0000", userId, rateLimits: row.rateLimits };
}

/**
 * The plan of the search statement `search` sends through `db`, caught on its way and explained with its own
 * settings. Sequential scans and sorts are switched off: a test table is cheaper to sort than to search through any
 * index, so this shows which index could serve the order.
 */
export async function searchPlan(db: Db, search: (spy: Db) => Promise<unknown>): Promise<string> {
  const caught = await searchStatement(db, search);
  const explained = await db.query<{ "QUERY PLAN": string }>(
    { text: `explain (costs off) ${caught.statement.text}`, params: caught.statement.params },
    { settings: { ...caught.options?.settings, enable_seqscan: "off", enable_sort: "off" } },
  );
  return explained.map((r) => r["QUERY PLAN"]).join("\n");
}

/**
 * `db`, but the first read whose statement matches `read` is followed, before its rows are handed back, by `meanwhile`
 * on the real database: a competing write that commits between a read and the write planned on it, every time.
 */
export function afterRead(db: Db, read: RegExp, meanwhile: () => Promise<unknown>): Db {
  let done = false;
  const run = async <T>(result: Promise<T>, query: Query) => {
    const rows = await result;
    if (!done && read.test(compile(query).text)) {
      done = true;
      await meanwhile();
    }
    return rows;
  };
  return {
    ...db,
    query: (query, options) => run(db.query(query, options), query),
    batch: (queries) => run(db.batch(queries), queries[0] as Query),
  };
}

/** The search statement `search` sends through `db`, and the options it is sent with. */
async function searchStatement(db: Db, search: (spy: Db) => Promise<unknown>) {
  let caught: { statement: Statement; options?: QueryOptions } | undefined;
  const spy: Db = {
    ...db,
    query: (query: Query, options?: QueryOptions) => {
      if ("name" in query && String(query.name).startsWith("search_")) caught = { statement: query, options };
      return db.query(query, options);
    },
  };
  await search(spy);
  if (!caught) throw new Error("no search statement was sent");
  return caught;
}

/**
 * As `searchPlan`, on `pg` (database `database`): the plan the statement's named, prepared form runs with its own
 * settings, and those settings. Under `plan_cache_mode = force_generic_plan` that is the one plan made for any values,
 * which an EXPLAIN of the statement with its values (planned for them) would not show.
 */
export async function preparedSearchPlan(
  database: string,
  db: Db,
  search: (spy: Db) => Promise<unknown>,
): Promise<{ plan: string; settings: Record<string, string> }> {
  const { statement, options } = await searchStatement(db, search);
  const settings = { ...options?.settings };
  const client = new pg.Client(pgUrl(database));
  await client.connect();
  try {
    for (const [name, value] of Object.entries({ ...settings, enable_seqscan: "off", enable_sort: "off" }))
      await client.query("select set_config($1, $2, false)", [name, value]);
    await client.query(`prepare engram_search as ${statement.text}`);
    const literal = (value: unknown): string => {
      if (value === null || value === undefined) return "null";
      if (typeof value === "number") return String(value);
      if (Array.isArray(value))
        return literal(`{${value.map((v) => `"${String(v).replace(/["\\]/g, "\\$&")}"`).join(",")}}`);
      return `'${String(value).replace(/'/g, "''")}'`;
    };
    const args = statement.params.map(literal).join(", ");
    const explained = await client.query<{ "QUERY PLAN": string }>(
      `explain (costs off) execute engram_search(${args})`,
    );
    return { plan: explained.rows.map((r) => r["QUERY PLAN"]).join("\n"), settings };
  } finally {
    await client.end();
  }
}

type TermRow = { tenant_id: string; owner: string; lexeme: string; chunks: number; length: number };

/** The keyword statistics (search_terms, migrations/0009) as stored, leaving out rows that count nothing. */
export const termStatistics = (db: Db) =>
  db.query<TermRow>({
    text: `select tenant_id, owner, lexeme, chunks::int, length::int from search_terms where chunks <> 0
           order by tenant_id, owner, lexeme`,
    params: [],
  });

/** The keyword statistics as a recount from the chunks would give them. */
export const termRecount = (db: Db) =>
  db.query<TermRow>({
    text: `select tenant_id, owner, lexeme, chunks::int, length::int from (
             select tenant_id, owner, '' as lexeme, count(*) as chunks, sum(length(tsv)) as length from chunks group by 1, 2
             union all
             select tenant_id, owner, l, count(*), 0 from chunks, unnest(tsvector_to_array(tsv)) l group by 1, 2, 3) x
           order by tenant_id, owner, lexeme`,
    params: [],
  });

/** Migrations that add a column ingest writes, independent of what came before them (0028: a document's TTL). */
const WRITES_NEED = ["0028"];

/**
 * Migrates a fresh database as an earlier release did: every migration whose id sorts before `before`, and those that
 * only add what today's writes need (`WRITES_NEED`), so a test can store data with today's code on the old schema it
 * upgrades. Those are applied out of order, and `migrate` then skips them.
 */
export async function migrateBefore(db: Db, settings: MigrationSettings, before: string): Promise<void> {
  await db.query({
    text: "create table engram_migrations (id text primary key, applied_at timestamptz not null default now())",
    params: [],
  });
  for (const m of loadMigrations(settings).filter(
    (m) => m.id < before || WRITES_NEED.some((id) => m.id.startsWith(id)),
  )) {
    await db.batch([
      ...m.statements.map((text) => ({ text, params: [] })),
      { text: "insert into engram_migrations (id) values ($1)", params: [m.id] },
    ]);
  }
}
