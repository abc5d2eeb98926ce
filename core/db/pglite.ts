import { mkdirSync } from "node:fs";
import { PGlite, types } from "@electric-sql/pglite";
import { vector } from "@electric-sql/pglite-pgvector";
import { mapDbError } from "./errors";
import { compile } from "./sql";
import type { Db, Query, QueryOptions, Row } from "./types";

/**
 * Embedded Postgres (WASM) persisted in a folder; `memory://` for tests. Single process:
 * the caller must make sure no other process opens the same folder (see core/db/lock).
 */
export async function createPgliteDb(dataDir: string): Promise<Db> {
  if (!dataDir.startsWith("memory://")) mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir, {
    extensions: { vector },
    parsers: { [types.INT8]: (v: string) => Number(v) },
  });
  // Migrations read this to skip the HNSW index: inserting into one costs ~50 ms a row in WASM
  // (measured with PGlite 0.5 at 5,000 rows), while an exact scan of a laptop-sized corpus takes milliseconds.
  await db.exec("set engram.embedded = 'on'");

  return {
    driver: "pglite",
    capabilities: { hnsw: false, binaryVectors: false, concurrent: false, autovacuum: false },
    async query<T = Row>(query: Query, options?: QueryOptions): Promise<T[]> {
      const { text, params } = compile(query);
      try {
        // One connection, one process: session settings are as good as transaction-local ones.
        for (const [name, value] of Object.entries(options?.settings ?? {})) {
          await db.query("select set_config($1, $2, false)", [name, value]);
        }
        return (await db.query<T>(text, params)).rows;
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async batch(queries) {
      try {
        return await db.transaction(async (tx) => {
          const results: Row[][] = [];
          for (const query of queries) {
            const { text, params } = compile(query);
            results.push((await tx.query<Row>(text, params)).rows);
          }
          return results;
        });
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async ping() {
      try {
        await db.query("select 1");
        return true;
      } catch {
        return false;
      }
    },
    close: () => db.close(),
  };
}
