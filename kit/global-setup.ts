/**
 * Runs once before the suites: the real PostgreSQL with pgvector >= 0.8 must be there
 * (kit/postgres.ts says which one). `npm test` provides it (scripts/test-setup.sh);
 * a bare `vitest` without one fails here, loudly, with what to do, instead of skipping anything.
 */
import pg from "pg";
import { needsPostgres, serverUrl, shown } from "./postgres";

const atLeast = (version: string, minimum: number[]) => {
  const parts = version.split(".").map(Number);
  for (const [i, want] of minimum.entries()) {
    const have = parts[i] ?? 0;
    if (have !== want) return have > want;
  }
  return true;
};

export default async function setup() {
  const url = serverUrl();
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    const { rows } = await client.query("select default_version from pg_available_extensions where name = 'vector'");
    const version: string | undefined = rows[0]?.default_version;
    if (!version) throw new Error("pgvector is not installed there");
    if (!atLeast(version, [0, 8])) throw new Error(`its pgvector is ${version}`);
  } catch (error) {
    throw new Error(needsPostgres(`The suites cannot use PostgreSQL at ${shown(url)}: ${(error as Error).message}.`));
  } finally {
    await client.end().catch(() => {});
  }
}
