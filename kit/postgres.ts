/**
 * Which PostgreSQL the integration suites and benchmarks use, decided here only: `TEST_DATABASE_URL`
 * (the admin URL of any server with pgvector >= 0.8; `npm test` exports it), else the test rig's
 * own cluster, whose URL scripts/test-postgres.sh keeps in its state file. Never a server nobody
 * pointed them at. Tests work in databases of their own there (`createDatabase`).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import pg from "pg";

/** The rig's state file (written by scripts/test-postgres.sh). */
export const RIG_URL_FILE = join(
  process.env.XDG_CACHE_HOME || join(homedir(), ".cache"),
  "engram",
  "test-postgres",
  "url",
);

/** `reason`, then the paragraph on what the tests need and the two ways to provide it. */
export function needsPostgres(reason: string): string {
  return `${reason}\n${readFileSync(new URL("./needs-postgres.txt", import.meta.url), "utf8")}`;
}

let resolved: string | undefined;
/** The server's admin URL; throws the guidance paragraph when there is none. */
export function serverUrl(): string {
  resolved ??= process.env.TEST_DATABASE_URL || rigUrl();
  return resolved;
}

function rigUrl(): string {
  if (!existsSync(RIG_URL_FILE)) {
    throw new Error(
      needsPostgres(`TEST_DATABASE_URL is not set and the test rig has no cluster yet (no ${RIG_URL_FILE}).`),
    );
  }
  return readFileSync(RIG_URL_FILE, "utf8").trim();
}

/** The URL of `database` on the test server (same host, credentials and options). */
export function databaseUrl(database: string): string {
  const url = new URL(serverUrl());
  url.pathname = `/${database}`;
  return url.href;
}

/** The URL for messages: its password hidden. */
export function shown(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = "***";
  return u.href;
}

async function admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: serverUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A new, empty database on the test server; its name. */
export async function createDatabase(): Promise<string> {
  const name = `engram_t_${randomBytes(6).toString("hex")}`;
  await admin((c) => c.query(`create database ${name}`));
  return name;
}

export async function dropDatabase(name: string): Promise<void> {
  await admin((c) => c.query(`drop database if exists ${name} with (force)`));
}
