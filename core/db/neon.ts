import { type NeonQueryFunction, neon, neonConfig } from "@neondatabase/serverless";
import { mapDbError } from "./errors";
import { compile } from "./sql";
import type { Db, Query, QueryOptions, Row } from "./types";

/**
 * Neon's HTTP driver: one HTTPS round trip per statement or per batch, no connection to set
 * up, which is what a Lambda cold start wants. Batches run as Neon's non-interactive
 * transactions. `fetchEndpoint` points the driver at another Neon-protocol server (tests,
 * local proxies).
 */
export function createNeonDb(url: string, options: { fetchEndpoint?: string } = {}): Db {
  if (options.fetchEndpoint) {
    const endpoint = options.fetchEndpoint;
    neonConfig.fetchEndpoint = () => endpoint;
  }
  const sql: NeonQueryFunction<false, false> = neon(url);
  const run = (query: Query) => {
    const { text, params } = compile(query);
    return sql.query(text, params);
  };

  return {
    driver: "neon-http",
    capabilities: {
      hnsw: true,
      binaryVectors: false,
      maxBatchBytes: 10 * 1024 * 1024,
      concurrent: true,
      autovacuum: true,
    },
    async query<T = Row>(query: Query, options?: QueryOptions): Promise<T[]> {
      try {
        if (options?.settings) {
          const results = await sql.transaction([
            ...Object.entries(options.settings).map(([name, value]) =>
              sql.query("select set_config($1, $2, true)", [name, value]),
            ),
            run(query),
          ]);
          return results[results.length - 1] as T[];
        }
        return (await run(query)) as T[];
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async batch(queries) {
      try {
        return (await sql.transaction(queries.map(run))) as Row[][];
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async ping() {
      try {
        await sql.query("select 1");
        return true;
      } catch {
        return false;
      }
    },
    close: async () => {},
  };
}
