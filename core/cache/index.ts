import { sql } from "drizzle-orm";
import type { Db } from "../db";

/**
 * A tenant's key-value cache in Postgres (no Redis): JSON values with a TTL. Expiry is decided
 * by the database clock on every read, so an expired entry is never returned, whether or not
 * cleanup has removed it yet. The table is UNLOGGED (migrations/0003): cheap writes, and a
 * crash only empties it.
 */

const MAX_KEY_LENGTH = 512;

function checkKey(key: string) {
  if (key.length === 0 || key.length > MAX_KEY_LENGTH) {
    throw new RangeError(`cache keys are 1-${MAX_KEY_LENGTH} characters, got ${key.length}`);
  }
}

/** The live value under `key`, or undefined when missing or expired. */
export async function get<T = unknown>(db: Db, tenantId: string, key: string): Promise<T | undefined> {
  checkKey(key);
  const rows = await db.query<{ value: T }>(sql`
    select value from cache where tenant_id = ${tenantId} and key = ${key} and expires_at > now()`);
  return rows[0]?.value;
}

/** Stores a JSON value for `ttlSeconds` (replacing any previous one). */
export async function set(db: Db, tenantId: string, key: string, value: unknown, ttlSeconds: number): Promise<void> {
  checkKey(key);
  if (!Number.isFinite(ttlSeconds) || ttlSeconds <= 0) {
    throw new RangeError(`cache TTL must be a positive number of seconds, got ${ttlSeconds}`);
  }
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError("cache values must be JSON-serialisable");
  await db.query(sql`
    insert into cache (tenant_id, key, value, expires_at)
    values (${tenantId}, ${key}, ${json}::jsonb, now() + ${ttlSeconds}::float8 * interval '1 second')
    on conflict (tenant_id, key) do update set value = excluded.value, expires_at = excluded.expires_at`);
}

/** Removes `key`; resolves whether a live entry was there. */
export async function del(db: Db, tenantId: string, key: string): Promise<boolean> {
  checkKey(key);
  const rows = await db.query<{ live: boolean }>(sql`
    delete from cache where tenant_id = ${tenantId} and key = ${key} returning expires_at > now() as live`);
  return rows[0]?.live ?? false;
}
