/**
 * The HNSW indexes, one per embedding model: `chunks_embedding_<hash>` over `indexed and embedding_model = <model>`
 * (partial, migrations/0005's staging still applies). Search reads only the active model's graph, so during a switch
 * it never wades through the old model's vectors, and a re-embed inserts into the new model's graph, which starts
 * empty, while the old one is left alone until cleanup drops it (docs/search.md, "The index").
 *
 * DDL takes no parameters: the model is written into the statement as a quoted literal, and every statement here
 * runs on its own (`create/drop index concurrently` refuse a transaction; a single query is none on `pg` nor on the
 * Neon HTTP driver). No lock here blocks ingest or search: both take locks the concurrent builds and drops allow.
 */
import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import { type Db, perDb, sqlState } from "../db";
import { EngramError } from "../error";
import { log } from "../log";

/** The one index every model shared before this module (migrations/0002, 0005, 0015); dropped once replaced. */
const SHARED = "chunks_embedding";

/** The index of `model`'s vectors: a stable name, the same in every process (md5, as SQL's `md5()` would give). */
export function name(model: string): string {
  return `chunks_embedding_${createHash("md5").update(model).digest("hex").slice(0, 12)}`;
}

/** A SQL string literal, safe whatever `standard_conforming_strings` is (the `E''` form when there are backslashes). */
const literal = (text: string) =>
  text.includes("\\") ? `E'${text.replaceAll("\\", "\\\\").replaceAll("'", "''")}'` : `'${text.replaceAll("'", "''")}'`;

/** The statement that builds `model`'s index, for an embedding column of `opclass` (bulk loads use it as it is). */
export function createStatement(model: string, opclass: string, options: { concurrently?: boolean } = {}): string {
  return `create index ${options.concurrently === false ? "" : "concurrently "}if not exists ${name(model)} on chunks using hnsw (embedding ${opclass}) with (m = 16, ef_construction = 64) where indexed and embedding_model = ${literal(model)}`;
}

/**
 * The operator class of this database's HNSW indexes, or undefined where there are none: embedded PGlite (inserts
 * cost ~50 ms a row there, migrations/0002) and more dimensions than pgvector indexes (2,000 of `vector`, 4,000 of
 * `halfvec`, migrations/0015). Search scans exactly without them.
 */
export const available = perDb(async (db): Promise<string | undefined> => {
  if (!db.capabilities.hnsw) return undefined;
  const [row] = await db.query<{ type: string; dims: number; embedded: boolean }>(sql`
    select format_type(atttypid, null) as type, atttypmod as dims,
           coalesce(current_setting('engram.embedded', true), '') = 'on' as embedded
    from pg_attribute where attrelid = 'chunks'::regclass and attname = 'embedding'`);
  if (!row || row.embedded) return undefined;
  if (row.type === "vector" && row.dims <= 2000) return "vector_cosine_ops";
  if (row.type === "halfvec" && row.dims <= 4000) return "halfvec_cosine_ops";
  return undefined;
});

/**
 * Per database, the models whose index this process has made sure of, and when (a failure is forgotten: the next
 * call tries again). Another process's cleanup can drop an index this one still believes in (its model had no
 * chunk left), so the belief lasts ENSURED_MS: then one catalog read checks it again, and a dropped index is rebuilt.
 */
const ensured = perDb(async () => new Map<string, { done: Promise<void>; at: number }>());

/** How long a made-sure index is trusted without looking (the indexer calls `ensure` every pass). */
export const ENSURED_MS = 60_000;

/**
 * Makes sure `model`'s index exists and is valid, building it (concurrently) when not: call it before vectors of the
 * model are flipped `indexed`. The first time on a database that still has the shared index, every model its chunks
 * hold gets its own index first, then the shared one is dropped. Costs one catalog read a minute after the first call.
 */
export async function ensure(db: Db, model: string, now = Date.now()): Promise<void> {
  const opclass = await available(db);
  if (!opclass) return;
  const known = await ensured(db);
  const entry = known.get(model);
  if (entry && now - entry.at < ENSURED_MS) return entry.done;
  const done = (entry ? Promise.resolve() : replaceShared(db, opclass, model)).then(() => build(db, opclass, model));
  done.catch(() => {
    if (known.get(model)?.done === done) known.delete(model);
  });
  known.set(model, { done, at: now });
  return done;
}

/**
 * Drops, concurrently, the index of every model no chunk holds and no tenant is moving to (the cleanup cron), never
 * `active`'s. Returns the names dropped.
 */
export async function retire(db: Db, active: string): Promise<string[]> {
  if (!(await available(db))) return [];
  const models = await db.query<{ model: string }>(sql`${presentModels} union select model from embedding_state`);
  const keep = new Set([active, ...models.map((m) => m.model)].map(name));
  const indexes = await db.query<{ name: string }>(sql`
    select c.relname as name from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'chunks'::regclass and c.relname ~ '^chunks_embedding_[0-9a-f]{12}$'`);
  const dropped: string[] = [];
  for (const index of indexes) {
    if (keep.has(index.name)) continue;
    await run(db, `drop index concurrently if exists ${index.name}`);
    dropped.push(index.name);
  }
  if (dropped.length) {
    // A model used again later must be indexed again by this process too.
    const known = await ensured(db);
    for (const model of known.keys()) if (dropped.includes(name(model))) known.delete(model);
    log.info("search: dropped the HNSW indexes of models no chunk uses", { indexes: dropped });
  }
  return dropped;
}

/**
 * The models chunks hold, without reading every chunk: per tenant, a skip scan of `chunks_reuse` (tenant, model,
 * hash), one index descent per model.
 */
const presentModels = sql`
  with recursive m(tenant_id, model) as (
    select t.id, (select c.embedding_model from chunks c where c.tenant_id = t.id order by c.embedding_model limit 1)
    from tenants t
    union all
    select m.tenant_id, (
      select c.embedding_model from chunks c where c.tenant_id = m.tenant_id and c.embedding_model > m.model
      order by c.embedding_model limit 1)
    from m where m.model is not null)
  select model from m where model is not null`;

/** A DDL statement on its own: no parameters, no transaction. */
const run = (db: Db, text: string) => db.query({ text, params: [] });

/**
 * A concurrent build or drop that lost a race: another process created the index first (23505, 42P07), or was
 * building it while this one waited for the table's lock (40P01: a build's last phase waits for every older
 * snapshot, the waiting statement's included, so Postgres cancels one of the two). The other's work stands.
 */
const lostRace = (error: unknown) => ["23505", "42P07", "40P01"].includes(sqlState(error) ?? "");

/**
 * An existing database's shared index, replaced: each model its chunks hold (`active` first) gets its own index, then
 * the shared one is dropped. Search keeps the shared index until the active model's own is valid.
 */
async function replaceShared(db: Db, opclass: string, active: string): Promise<void> {
  const [shared] = await db.query<{ yes: boolean }>(sql`select to_regclass(${SHARED}) is not null as yes`);
  if (!shared?.yes) return;
  const others = (await db.query<{ model: string }>(presentModels)).map((m) => m.model).filter((m) => m !== active);
  for (const model of [active, ...new Set(others)]) await build(db, opclass, model);
  await run(db, `drop index concurrently if exists ${SHARED}`);
  log.info("search: replaced the shared HNSW index by one per model", { models: [active, ...new Set(others)] });
}

/**
 * Builds `model`'s index unless a valid one exists. An invalid one is what a failed concurrent build leaves: it is
 * dropped and built again, unless another process is still building it (pg_stat_progress_create_index), whose build
 * this one then polls for: waiting on its lock instead could deadlock (`lostRace`).
 */
async function build(db: Db, opclass: string, model: string): Promise<void> {
  const index = name(model);
  for (let attempt = 0; attempt < 3; ) {
    const [state] = await db.query<{ valid: boolean; building: boolean }>(sql`
      select i.indisvalid as valid,
             exists (select 1 from pg_stat_progress_create_index p where p.index_relid = i.indexrelid) as building
      from pg_index i where i.indexrelid = to_regclass(${index})`);
    if (state?.valid) return;
    if (state?.building) {
      await new Promise((resolve) => setTimeout(resolve, BUILD_POLL_MS));
      continue;
    }
    attempt++;
    try {
      if (state) await run(db, `drop index concurrently if exists ${index}`);
      await run(db, createStatement(model, opclass));
    } catch (error) {
      if (!lostRace(error)) throw error;
      // After a random pause, so that two processes that lost to each other (a cancelled build leaves an invalid
      // index) do not drop and build again in step: once, under load, a test saw all three attempts used up.
      await new Promise((resolve) => setTimeout(resolve, Math.random() * BUILD_POLL_MS));
    }
  }
  throw new EngramError("unavailable", "search.index_invalid", `the HNSW index of ${model} (${index}) is not valid`);
}

/** How often a build another process runs is checked on. */
const BUILD_POLL_MS = 500;
