import pg from "pg";
import { mapDbError } from "./errors";
import { compile } from "./sql";
import type { Db, Query, QueryOptions, Row } from "./types";

// int8 (counts, sums) as numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

const applied = new WeakMap<pg.PoolClient, Map<string, string>>();

/** Session settings on a pooled connection, sent only when they differ from what it already has. */
async function applySettings(client: pg.PoolClient, settings: Record<string, string>): Promise<void> {
  let current = applied.get(client);
  if (!current) applied.set(client, (current = new Map()));
  const changed = Object.entries(settings).filter(([name, value]) => current.get(name) !== value);
  if (!changed.length) return;
  const calls = changed.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(", ");
  await client.query(`select ${calls}`, changed.flat());
  for (const [name, value] of changed) current.set(name, value);
}

/** Plain Postgres over TCP with a small pool (the local server, the CLI, tests, benchmarks). */
export function createPgDb(url: string, options: { max?: number } = {}): Db {
  const pool = new pg.Pool({ connectionString: url, max: options.max ?? 10, connectionTimeoutMillis: 5_000 });
  // An idle client losing its connection must not crash the process.
  pool.on("error", () => {});

  return {
    driver: "pg",
    async query<T = Row>(query: Query, options?: QueryOptions): Promise<T[]> {
      const { text, params } = compile(query);
      try {
        if (!options?.settings) return (await pool.query(text, params)).rows as T[];
        const client = await pool.connect();
        try {
          await applySettings(client, options.settings);
          return (await client.query(text, params)).rows as T[];
        } finally {
          client.release();
        }
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
