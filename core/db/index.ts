/**
 * The database handle, made once per process (warm Lambda invocations reuse it). The driver
 * follows `DATABASE_URL`: Neon HTTP for Neon, `pg` for other Postgres, PGlite when unset.
 */
import { type Config, config } from "../config";
// Static on purpose: Lambda's driver. esbuild cannot tree-shake what sits behind a dynamic
// import (drizzle's whole pg-core would ship, +55 KB per bundle); pg and PGlite stay lazy and
// are left out of Lambda bundles (infra/esbuild-plugins.mjs).
import { createNeonDb } from "./neon";
import { withReplica } from "./replica";
import type { Db } from "./types";

export { isConnectionError, isUniqueViolation, sqlState } from "./errors";
export { arr, binaryVectorArray, compile, constant, vectorLiteral } from "./sql";
export type { Db, DriverName, Query, QueryOptions, Row, Statement } from "./types";

/**
 * A fact about a database, asked once per handle and remembered (a failed ask is forgotten, so
 * the next call asks again): the type oid or index a driver or module depends on.
 */
export function perDb<T>(ask: (db: Db) => Promise<T>): (db: Db) => Promise<T> {
  const known = new WeakMap<Db, Promise<T>>();
  return (db) => {
    let answer = known.get(db);
    if (!answer) {
      answer = ask(db);
      answer.catch(() => known.delete(db));
      known.set(db, answer);
    }
    return answer;
  };
}

/**
 * Opens a database for a configuration; pg and PGlite are loaded only when used. With DATABASE_READ_URL the
 * primary comes with its read replica, on the same driver (core/db/replica.ts).
 */
export async function openDb(cfg: Config["database"]): Promise<Db> {
  const primary = await open(cfg, cfg.url);
  if (!cfg.readUrl || cfg.driver === "pglite") return primary;
  return withReplica(primary, await open(cfg, cfg.readUrl), { waitMs: cfg.readWaitMs });
}

async function open(cfg: Config["database"], url: string | undefined): Promise<Db> {
  switch (cfg.driver) {
    case "neon-http":
      return createNeonDb(requireUrl(url), { fetchEndpoint: cfg.fetchEndpoint });
    case "pg": {
      const { createPgDb } = await import("./pg");
      return createPgDb(requireUrl(url), {
        max: cfg.poolMax,
        reserved: cfg.poolReserved,
        connectWaitMs: cfg.connectWaitMs,
      });
    }
    case "pglite": {
      const { createPgliteDb } = await import("./pglite");
      return createPgliteDb(cfg.dataDir.startsWith("memory://") ? cfg.dataDir : `${cfg.dataDir}/pgdata`);
    }
  }
}

function requireUrl(url: string | undefined): string {
  if (!url) throw new Error("DATABASE_URL is required for the pg and neon-http drivers");
  return url;
}

let shared: Promise<Db> | undefined;

/** The process's database. */
export function db(): Promise<Db> {
  shared ??= openDb(config().database).catch((error) => {
    shared = undefined;
    throw error;
  });
  return shared;
}

/** Installs an already-open database as the process's (local server, CLI, tests). */
export function useDb(instance: Db): void {
  shared = Promise.resolve(instance);
}

/** Closes the process's database, if one was opened. */
export async function closeDb(): Promise<void> {
  const current = shared;
  shared = undefined;
  if (current) await (await current).close();
}
