import pg from "pg";
import { EngramError } from "../error";
import { isConnectionError, mapDbError } from "./errors";
import { laneNow, shareNow } from "./lane";
import { compile } from "./sql";
import type { Db, Query, QueryOptions, Row } from "./types";

// int8 (counts, sums) as numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

/** pg's query config: a named statement is parsed once per connection, then only bound and run. */
function toPg(query: Query): pg.QueryConfig {
  const { name, text, params } = compile(query);
  return name ? { name, text, values: params } : { text, values: params };
}

const applied = new WeakMap<pg.PoolClient, Map<string, string>>();

/**
 * Runs `statement` with session settings on a pooled connection. Settings it already has are not sent again; the
 * others go out with the statement (the client pipelines), not a round trip before it. Until the server confirms
 * them the connection counts as having none of them, so a failure leaves them to be sent again.
 */
async function withSettings(client: pg.PoolClient, settings: Record<string, string>, statement: pg.QueryConfig) {
  const current = applied.get(client) ?? new Map<string, string>();
  applied.set(client, current);
  const changed = Object.entries(settings).filter(([name, value]) => current.get(name) !== value);
  if (!changed.length) return client.query(statement);
  for (const [name] of changed) current.delete(name);
  const calls = changed.map((_, i) => `set_config($${2 * i + 1}, $${2 * i + 2}, false)`).join(", ");
  const [set, result] = await Promise.allSettled([
    client.query(`select ${calls}`, changed.flat()),
    client.query(statement),
  ]);
  if (set.status === "rejected") throw set.reason;
  for (const [name, value] of changed) current.set(name, value);
  if (result.status === "rejected") throw result.reason;
  return result.value;
}

/**
 * Runs `work` on a client of its own. A checked-out client has no error listener (the pool's is
 * for idle ones), so a backend dying under it (terminated, a failover) threw "Connection terminated
 * unexpectedly" from the socket as an uncaught exception, which ends the process; and released
 * without its error, the dead client went back to the pool and failed the next request too.
 */
async function withClient<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  // The statement in flight fails with the same error; this only keeps it from being thrown again.
  const ignore = () => {};
  client.on("error", ignore);
  let broken: Error | undefined;
  try {
    return await work(client);
  } catch (error) {
    if (isConnectionError(error)) broken = error as Error;
    throw error;
  } finally {
    client.off("error", ignore);
    client.release(broken);
  }
}

export interface PgOptions {
  /** Connections in the pool. */
  max?: number;
  /** Connections bulk work (ingests) can never take, kept for searches and chats. */
  reserved?: number;
  /** How long a query waits for a connection before answering 503 `database.busy`. */
  connectWaitMs?: number;
}

const busy = (cause?: unknown) =>
  new EngramError("unavailable", "database.busy", "Every database connection is busy; try again in a moment.", {
    cause,
    retryAfterSeconds: 1,
  });

/**
 * At most `size` holders at once; the rest wait in order, each for at most `waitMs`, then fail
 * with `database.busy` (the caller's 503, never a 500).
 */
function gate(size: number, waitMs: number) {
  let held = 0;
  const waiting: { resolve(): void; timer: ReturnType<typeof setTimeout> }[] = [];
  return {
    /** Nobody holds or waits for a place. */
    idle: () => held === 0 && waiting.length === 0,
    async run<T>(work: () => Promise<T>): Promise<T> {
      if (held >= size) {
        await new Promise<void>((resolve, reject) => {
          const entry = {
            resolve,
            timer: setTimeout(() => {
              waiting.splice(waiting.indexOf(entry), 1);
              reject(busy());
            }, waitMs),
          };
          waiting.push(entry);
        });
      } else {
        held++;
      }
      try {
        return await work();
      } finally {
        const next = waiting.shift();
        if (next) {
          clearTimeout(next.timer);
          next.resolve(); // the place passes straight to the next waiter
        } else {
          held--;
        }
      }
    },
  };
}

/**
 * Plain Postgres over TCP with a small pool (the local server, the CLI, tests, benchmarks). Bulk
 * work (core/db/lane.ts) holds at most `max - reserved` connections, so a tenant's large ingests
 * leave searches and chats theirs, and so do one API key's requests, so one client's burst leaves
 * other clients theirs; a query that cannot get a connection in `connectWaitMs` is 503
 * `database.busy` with Retry-After.
 */
export function createPgDb(url: string, options: PgOptions = {}): Db {
  const max = options.max ?? 10;
  const connectWaitMs = options.connectWaitMs ?? 2_000;
  // Pipelined: a batch's statements are all sent at once, so it costs one round trip (see `batch`).
  const pool = new pg.Pool({ connectionString: url, max, connectionTimeoutMillis: connectWaitMs, pipeline: true });
  // An idle client losing its connection must not crash the process.
  pool.on("error", () => {});
  const part = Math.max(1, max - (options.reserved ?? Math.min(3, max - 1)));
  const bulk = gate(part, connectWaitMs);
  // One API key's requests hold at most the same part: a burst of one client's searches (120 at once) had taken every
  // connection, and every other client's waited seconds or got 503. Its own requests queue behind each other instead.
  const shares = new Map<string, ReturnType<typeof gate>>();
  const inShare = async <T>(share: string, work: () => Promise<T>): Promise<T> => {
    let own = shares.get(share);
    if (!own) {
      own = gate(part, connectWaitMs);
      shares.set(share, own);
    }
    try {
      return await own.run(work);
    } finally {
      if (own.idle()) shares.delete(share);
    }
  };
  const inLane = <T>(work: () => Promise<T>): Promise<T> => {
    const lane = laneNow() === "bulk" ? () => bulk.run(work) : work;
    const share = shareNow();
    return share === undefined ? lane() : inShare(share, lane);
  };

  return {
    driver: "pg",
    capabilities: { hnsw: true, binaryVectors: true, concurrent: true, autovacuum: true },
    async query<T = Row>(query: Query, options?: QueryOptions): Promise<T[]> {
      const statement = toPg(query);
      const settings = options?.settings;
      try {
        if (!settings) return await inLane(async () => (await pool.query(statement)).rows as T[]);
        return await inLane(() =>
          withClient(pool, async (client) => (await withSettings(client, settings, statement)).rows as T[]),
        );
      } catch (error) {
        throw mapDbError(error);
      }
    },
    async batch(queries) {
      try {
        return await inLane(() =>
          withClient(pool, async (client) => {
            // BEGIN, the statements and COMMIT go out together and are answered in order: one round trip, as
            // on Neon's HTTP driver. A statement that fails aborts the transaction, so the ones after it fail
            // too and COMMIT rolls back; the first failure is the batch's.
            const sent = [
              client.query("BEGIN"),
              ...queries.map((query) => client.query(toPg(query))),
              client.query("COMMIT"),
            ];
            const settled = await Promise.allSettled(sent);
            const failed = settled.find((result) => result.status === "rejected");
            if (failed) throw failed.reason;
            return settled.slice(1, -1).map((result) => (result as PromiseFulfilledResult<pg.QueryResult>).value.rows);
          }),
        );
      } catch (error) {
        throw mapDbError(error);
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
