/**
 * What `core/db/pg` and `core/db/pglite` become in a Lambda bundle (see infra/esbuild-plugins.mjs):
 * Lambda talks to Neon over HTTP only, so the TCP and embedded drivers stay out of the bundle.
 * A non-Neon `DatabaseUrl` reaches this and answers 503 with a message saying what to change.
 */
import type { Db } from "../core/db/types";
import { EngramError } from "../core/error";

function unavailable(driver: string): never {
  throw new EngramError(
    "unavailable",
    "config.driver_unavailable",
    `The ${driver} driver is not in the Lambda bundle; set DatabaseUrl to a Neon URL (or DATABASE_DRIVER=neon-http).`,
  );
}

export function createPgDb(_url: string, _options?: { max?: number }): Db {
  return unavailable("pg");
}

export async function createPgliteDb(_dataDir: string): Promise<Db> {
  return unavailable("PGlite");
}
