/**
 * Applies `migrations/NNNN_name.sql` in order, once each, on any driver.
 *
 * Why not drizzle-kit's migrators: they are per driver, and the Neon HTTP one cannot run a
 * migration and its bookkeeping as one atomic batch; ours also fills in values fixed at
 * migration time (vector dimensions, text search configuration) and records them, so a
 * later start with other settings fails with a clear message instead of bad vectors.
 * Statements are split on drizzle-kit's `--> statement-breakpoint` marker because the
 * HTTP driver runs one statement per query.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { sql } from "drizzle-orm";
import { EngramError } from "../error";
import type { Db } from "./types";

export interface MigrationSettings {
  embeddingDimensions: number;
  searchTextConfig: string;
}

export interface Migration {
  id: string;
  statements: string[];
}

const DIR = fileURLToPath(new URL("../../migrations/", import.meta.url));
// Any constant will do: it only has to be the same for every process running migrations.
const LOCK_ID = 7_352_019;

export function loadMigrations(settings: MigrationSettings, dir = DIR): Migration[] {
  return readdirSync(dir)
    .filter((file) => /^\d{4}_[\w-]+\.sql$/.test(file))
    .sort()
    .map((file) => {
      const text = readFileSync(`${dir}/${file}`, "utf8")
        .replaceAll("{{EMBEDDING_DIMENSIONS}}", String(settings.embeddingDimensions))
        .replaceAll("{{SEARCH_TEXT_CONFIG}}", settings.searchTextConfig);
      const statements = text
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter((s) => s.replace(/--.*$/gm, "").trim() !== "");
      return { id: file.replace(/\.sql$/, ""), statements };
    });
}

/** Applies pending migrations; returns the ids it applied. Safe to run concurrently. */
export async function migrate(db: Db, settings: MigrationSettings): Promise<string[]> {
  await db.query(
    sql`create table if not exists engram_migrations (id text primary key, applied_at timestamptz not null default now())`,
  );
  const done = new Set((await db.query<{ id: string }>(sql`select id from engram_migrations`)).map((row) => row.id));
  const applied: string[] = [];
  for (const migration of loadMigrations(settings)) {
    if (done.has(migration.id)) continue;
    // One atomic batch per migration; the advisory lock serialises concurrent runners and
    // every statement is idempotent, so a runner that waited re-applies nothing harmful.
    await db.batch([
      sql`select pg_advisory_xact_lock(${LOCK_ID})`,
      ...migration.statements.map((text) => ({ text, params: [] })),
      sql`insert into engram_migrations (id) values (${migration.id}) on conflict (id) do nothing`,
    ]);
    applied.push(migration.id);
  }
  await checkSettings(db, settings);
  return applied;
}

/** Fails when the database was migrated with other fixed settings than the current ones. */
export async function checkSettings(db: Db, settings: MigrationSettings): Promise<void> {
  const rows = await db.query<{ key: string; value: string }>(sql`select key, value from engram_meta`);
  const meta = new Map(rows.map((row) => [row.key, row.value]));
  const dims = meta.get("embedding_dimensions");
  if (dims && Number(dims) !== settings.embeddingDimensions) {
    throw new EngramError(
      "unavailable",
      "config.mismatch",
      `EMBEDDING_DIMENSIONS is ${settings.embeddingDimensions} but this database stores ${dims}-dimension vectors; set EMBEDDING_DIMENSIONS=${dims} or use a new database`,
    );
  }
  const textConfig = meta.get("search_text_config");
  if (textConfig && textConfig !== settings.searchTextConfig) {
    throw new EngramError(
      "unavailable",
      "config.mismatch",
      `SEARCH_TEXT_CONFIG is ${settings.searchTextConfig} but this database was built with ${textConfig}`,
    );
  }
}
