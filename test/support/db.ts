/**
 * Fresh, migrated databases for tests, on each driver Engram ships: `pg` and the Neon HTTP
 * driver on a new database of the real PostgreSQL (one per call), PGlite in memory.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import type { Caller } from "../../core/auth";
import type { Db, DriverName } from "../../core/db";
import { migrate } from "../../core/db/migrate";
import { createNeonDb } from "../../core/db/neon";
import { createPgDb } from "../../core/db/pg";
import { createPgliteDb } from "../../core/db/pglite";
import * as Tenant from "../../core/tenant";
import { type NeonServer, neonConnectionString, startNeonServer } from "./neon-server";

export const DRIVERS: DriverName[] = ["pg", "neon-http", "pglite"];
export const PG = {
  host: process.env.PGHOST ?? "127.0.0.1",
  port: Number(process.env.PGPORT ?? 5432),
  user: "postgres",
};
export const pgUrl = (database: string) => `postgres://${PG.user}@${PG.host}:${PG.port}/${database}`;
export const DIMENSIONS = 1536;

let neonServer: Promise<NeonServer> | undefined;
/** One Neon-protocol server per test file (worker), started on first use. */
export function sharedNeonServer(): Promise<NeonServer> {
  neonServer ??= startNeonServer({ pgHost: PG.host, pgPort: PG.port });
  return neonServer;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: pgUrl("postgres") });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export async function createDatabase(): Promise<string> {
  const name = `engram_t_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`create database ${name}`));
  return name;
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`));
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
