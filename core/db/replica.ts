/**
 * A read replica (DATABASE_READ_URL): searches read it, everything else stays on the primary
 * (docs/replicas.md). Read-your-writes: after a write a tenant's searches must see commits, the
 * primary's WAL position is stored as the tenant's mark (`written`); a search reads the replica
 * only once it has replayed past the mark, waiting for it at most DATABASE_READ_WAIT_MS, else the
 * primary. A replica that fails is skipped for a few seconds and the search is answered by the
 * primary: a replica never turns into an error for the caller.
 */
import { EngramError } from "../error";
import { log } from "../log";
import { isConnectionError } from "./errors";
import type { Db, Query, QueryOptions, Row } from "./types";

interface Replica {
  db: Db;
  waitMs: number;
  /** The furthest WAL position the replica was seen to have replayed; 0 until asked and after a failure. */
  replayed: bigint;
  /** Until when (Date.now()) the replica is skipped after it could not be reached. */
  downUntil: number;
}

const replicas = new WeakMap<Db, Replica>();

/** How long an unreachable replica is left alone: one search per process and period pays for trying it. */
export const DOWN_MS = 5_000;

/**
 * The primary, with `replica` to read from (`reader`); closing it closes both. Both must use the
 * same driver: Lambda bundles only Neon's (infra/esbuild-plugins.mjs), and PGlite has no replicas.
 */
export function withReplica(primary: Db, replica: Db, options: { waitMs: number }): Db {
  if (primary.driver === "pglite" || replica.driver !== primary.driver) {
    throw new Error(
      `a read replica needs a pg or neon-http primary of its own driver (${primary.driver}, ${replica.driver})`,
    );
  }
  const db: Db = { ...primary, close: async () => void (await Promise.all([primary.close(), replica.close()])) };
  replicas.set(db, { db: replica, waitMs: options.waitMs, replayed: 0n, downUntil: 0 });
  return db;
}

/** The replica `db` reads from, if it has one. */
export const replicaOf = (db: Db): Db | undefined => replicas.get(db)?.db;

/** A WAL position ("16/B374D848") as a number. */
export function lsn(text: string): bigint {
  const [high = "0", low = "0"] = text.split("/");
  return (BigInt(`0x${high}`) << 32n) + BigInt(`0x${low}`);
}

/**
 * Records, once a write of the tenant's has committed, how far the primary's WAL has reached: the
 * tenant's later searches read the replica only after it has replayed that far. Does nothing
 * without a replica. A failure is logged, not thrown: the write is done (and idempotent callers
 * would only be told to repeat it); the worst it costs is one search missing it for the replica's lag.
 */
export async function written(db: Db, tenantId: string): Promise<void> {
  if (!replicas.has(db)) return;
  try {
    await db.query({
      name: "replica_mark_write",
      text: `insert into replica_marks (tenant_id, lsn) values ($1, pg_current_wal_lsn())
        on conflict (tenant_id) do update set lsn = greatest(replica_marks.lsn, excluded.lsn)`,
      params: [tenantId],
    });
  } catch (error) {
    log.warn("replica: could not record a write's WAL position; the tenant's next search may miss it", {
      tenantId,
      error,
    });
  }
}

/** Where a tenant's searches run: `db` itself without a replica. */
export type Reader = Pick<Db, "driver" | "capabilities" | "query">;

export interface ReaderOptions {
  /**
   * The tenant's mark when the caller already has it (a statement on the primary that returns it beside its own
   * work saves the lookup); null when the tenant has none. Looked up on the primary when undefined.
   */
  mark?: string | null;
}

/**
 * Where the tenant's read-only statements run: the replica once it has replayed the tenant's last write (looked
 * up now, so the lookup overlaps whatever the caller does before its first query), else the primary.
 */
export function reader(db: Db, tenantId: string, options: ReaderOptions = {}): Reader {
  const replica = replicas.get(db);
  if (!replica) return db;
  const mark =
    options.mark !== undefined
      ? Promise.resolve(options.mark)
      : db
          .query<{ lsn: string }>({
            name: "replica_mark_read",
            text: "select lsn::text as lsn from replica_marks where tenant_id = $1",
            params: [tenantId],
          })
          .then((rows) => rows[0]?.lsn ?? null);
  mark.catch(() => {}); // awaited by the first query; a caller that fails before it never asks
  /** The statement on the replica; undefined when the replica failed it (logged, and the primary should answer). */
  const onReplica = async <T>(query: Query, queryOptions?: QueryOptions): Promise<T[] | undefined> => {
    try {
      return await replica.db.query<T>(query, queryOptions);
    } catch (error) {
      if (!replicaFault(error)) throw error;
      failed(replica, error, tenantId);
      return undefined;
    }
  };
  return {
    driver: db.driver,
    capabilities: db.capabilities,
    async query<T = Row>(query: Query, queryOptions?: QueryOptions): Promise<T[]> {
      // Sent before the mark is known, so the lookup and the search overlap (one round trip, not two): its answer
      // counts when the replica had already replayed the mark before the statement started.
      const replayed = replica.replayed;
      const early = Date.now() >= replica.downUntil ? onReplica<T>(query, queryOptions) : undefined;
      early?.catch(() => {}); // awaited below, unless the mark says it came too soon
      const wanted = await mark;
      const target = wanted === null ? undefined : lsn(wanted);
      if (early && (target === undefined || target <= replayed))
        return (await early) ?? db.query<T>(query, queryOptions);
      if (!(await caughtUp(replica, tenantId, target))) return db.query<T>(query, queryOptions);
      return (await onReplica<T>(query, queryOptions)) ?? db.query<T>(query, queryOptions);
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether the replica may serve the tenant now: up, and past its mark (waiting for that up to the bound). */
async function caughtUp(replica: Replica, tenantId: string, mark: bigint | undefined): Promise<boolean> {
  if (Date.now() < replica.downUntil) return false;
  if (mark === undefined || mark <= replica.replayed) return true;
  const deadline = performance.now() + replica.waitMs;
  // Replay lag was milliseconds to tens of them here (docs/replicas.md): ask again soon, then less and less often.
  for (let wait = 1; ; wait = Math.min(wait * 2, 20)) {
    let replayed: bigint | undefined;
    try {
      const [row] = await replica.db.query<{ lsn: string | null }>({
        name: "replica_replayed",
        text: "select pg_last_wal_replay_lsn()::text as lsn",
        params: [],
      });
      replayed = row?.lsn ? lsn(row.lsn) : undefined;
    } catch (error) {
      failed(replica, error, tenantId);
      return false;
    }
    if (replayed === undefined) {
      log.warn("replica: DATABASE_READ_URL is not a standby (it replays no WAL); reading the primary", { tenantId });
      return false;
    }
    if (replayed > replica.replayed) replica.replayed = replayed;
    if (replayed >= mark) return true;
    const left = deadline - performance.now();
    if (left <= 0) {
      log.warn("replica: behind the tenant's last write for longer than DATABASE_READ_WAIT_MS; reading the primary", {
        tenantId,
        waitedMs: replica.waitMs,
        behindBytes: Number(mark - replayed),
      });
      return false;
    }
    await pause(Math.min(wait, left));
  }
}

/** A failure of the replica, not of the request: the primary may well answer it (not a refused value, not an abort). */
function replicaFault(error: unknown): boolean {
  if ((error as Error | null)?.name === "AbortError") return false;
  return !(error instanceof EngramError) || error.kind === "unavailable";
}

function failed(replica: Replica, error: unknown, tenantId: string): void {
  const unreachable = isConnectionError(error) || (error instanceof EngramError && error.kind === "unavailable");
  // A standby that restarts may come back at an earlier point than it had replayed: ask it again.
  replica.replayed = 0n;
  if (unreachable) replica.downUntil = Date.now() + DOWN_MS;
  log.warn(
    unreachable
      ? `replica: unreachable; reading the primary for the next ${DOWN_MS / 1000} s`
      : "replica: a search failed there; answered by the primary",
    { tenantId, error },
  );
}
