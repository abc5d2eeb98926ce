import pg from "pg";
import { mapDbError } from "./errors";
import { compile } from "./sql";
import type { Db, Query, Row } from "./types";

// int8 (counts, sums) as numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** Plain Postgres over TCP with a small pool (the local server, the CLI, tests, benchmarks). */
export function createPgDb(url: string, options: { max?: number } = {}): Db {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 5_000 });
  // An idle client losing its connection must not crash the process.
  pool.on("error", () => {});

  return {
    driver: "pg",
    async query<T = Row>(query: Query): Promise<T[]> {
      const { text, params } = compile(query);
      try {
        const result = await pool.query(text, params);
        return result.rows as T[];
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async batch(queries) {
      let client: pg.PoolClient | undefined;
      try {
        client = await pool.connect();
        await client.query("BEGIN");
        const results: Row[][] = [];
        for (const query of queries) {
          const { text, params } = compile(query);
          results.push((await client.query(text, params)).rows);
        }
        await client.query("COMMIT");
        return results;
      } catch (error) {
        await client?.query("ROLLBACK").catch(() => {});
        throw mapDbError(error);
      } finally {
        client?.release();
      }
    },
    async ping() {
      try {
        await pool.query("select 1");
        return true;
      } catch {
        return false;
      }
    },
    close: () => pool.end(),
  };
}
