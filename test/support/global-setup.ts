/**
 * Runs once before the suites: the real PostgreSQL with pgvector must be there. `npm test`
 * installs and starts it (scripts/test-setup.sh); a bare `vitest` without it fails here,
 * loudly, instead of skipping anything.
 */
import pg from "pg";
import { pgUrl } from "./db";

export default async function setup() {
  const client = new pg.Client({ connectionString: pgUrl("postgres"), connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    const { rows } = await client.query("select default_version from pg_available_extensions where name = 'vector'");
    if (!rows[0]) throw new Error("pgvector is not installed in this PostgreSQL");
  } catch (error) {
    throw new Error(
      `The integration suites need PostgreSQL with pgvector on ${pgUrl("postgres")}: ${(error as Error).message}. Run \`npm test\` (it runs scripts/test-setup.sh).`,
    );
  } finally {
    await client.end().catch(() => {});
  }
}
