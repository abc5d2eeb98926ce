/**
 * Rate-limit decisions on local PostgreSQL through `pg`: decisions/s and p50/p99 latency with
 * 1 and 16 concurrent clients, over 10,000 keys and over one hot key, for Engram's limiter
 * (`RateLimit.enforce`, the path every request takes) and, in the same run, for
 * rate-limiter-flexible's RateLimiterPostgres on its own logged table and on an UNLOGGED copy.
 * Every limiter also gets 200 concurrent requests on one key with a limit of 20, and each case
 * counts admissions beyond what the policy allows (there must be none).
 *
 * Even-handed by construction: rate-limiter-flexible is set up the way a user would by default
 * (a `pg` pool as its store, the table it creates itself, default options), with the same pool
 * size as Engram's and the same sequence of keys; each case starts every limiter on fresh keys.
 * The logged table's cost is mostly the commit's WAL flush, so its figures follow this disk's
 * flush latency; the UNLOGGED copy shows the library without it. rate-limiter-flexible's in-memory block
 * (`inMemoryBlockOnConsumed`) stays off, as Engram keeps no limit in the process either: on Lambda one
 * instance serves one request at a time, so a block in its memory would rarely be asked again.
 *
 * The figure issue #21 sets a target for is one decision at one client (what a Lambda request pays):
 * Engram's gate against a rate-limiter-flexible consume on the UNLOGGED table. Each row gives the
 * machine's load average when it was measured, and the CPU time one decision took in the database's backends (read
 * from /proc when the server runs on this machine) and in this process (the limiter's and the driver's work, and waking
 * up for each answer): on a shared machine latency follows the other processes' load, CPU time much less. The last rows, how many of each table's updates were HOT
 * (a non-HOT update writes the index too, and a hot row's dead versions slow every read until pruned).
 *
 * Two rows labelled "floor, not a limiter" bound that target, at one client only: a named, prepared `select 1`
 * through the same pool (no limiter can be faster), and the least work an exact gate must do for an admission (the
 * key read and both bucket writes in one prepared statement, nothing decided). Each gets the same ratio columns.
 *
 *   node bin/run-ts.js bench/ratelimit.ts [--quick]
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import pg from "pg";
import type { Caller } from "../core/auth";
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { migrate } from "../core/db/migrate";
import { createPgDb } from "../core/db/pg";
import { EngramError } from "../core/error";
import * as Gate from "../core/gate";
import * as RateLimit from "../core/ratelimit";
import * as Tenant from "../core/tenant";
import { createDatabase, DIMENSIONS, dropDatabase, pgUrl } from "../kit/db";
import { percentile, round } from "./support";

/** One decision: resolves whether the request was admitted. */
type Decide = (key: string) => Promise<boolean>;

interface Limiter {
  name: string;
  /** A decider for a policy of `limit` requests per `windowSeconds`. */
  make(limit: number, windowSeconds: number): Promise<Decide>;
  /** Not a limiter: a bound on what any limiter can do here, measured at one client only. */
  floor?: boolean;
}

const CLIENTS = [1, 16];
const MANY_KEYS = 10_000;
// The policy under load: generous enough that 10,000 keys are always admitted, so the hot
// key is the case that mostly refuses.
const LIMIT = 100;
const WINDOW = 1;

const UNITS: Record<number, string> = { 1: "s", 60: "min", 3600: "h" };
let run = 0;

/**
 * What a Lambda request pays: its API key and both of its buckets (its own and the tenant's ceiling) decided in
 * one statement (core/gate, migrations/0014), one statement per request at any concurrency (never batched).
 */
function engramGate(db: ReturnType<typeof createPgDb>, key: string): Limiter {
  return {
    name: "engram, one decision per request: key + limit in one statement (what Lambda does)",
    async make(limit, windowSeconds) {
      const prefix = `g${run++}-`;
      await RateLimit.setLimits(db, "gate", { default: `${limit}/${UNITS[windowSeconds]}` });
      return async (bucket) => {
        try {
          await Gate.open(db, Gate.defer(`Bearer ${key}`, prefix + bucket, "default"));
          return true;
        } catch (error) {
          if (error instanceof EngramError && error.code === "ratelimit.exceeded") return false;
          throw error;
        }
      };
    },
  };
}

/**
 * The cheapest one-client round trip through the same `pg` pool rate-limiter-flexible uses: a named,
 * prepared `select 1`. No limiter can decide faster than this on this machine.
 */
function floorRoundTrip(pool: pg.Pool): Limiter {
  return {
    name: "floor, not a limiter: select 1, named and prepared, through the same pg pool",
    floor: true,
    async make() {
      return async () => {
        await pool.query({ name: "bench_floor_select", text: "select 1" });
        return true;
      };
    },
  };
}

/**
 * The least an exact gate must do for an admission, without deciding anything: read the key (by prefix and hash,
 * not revoked) and write both of the request's buckets (the tenant's ceiling, then the caller's own), in one
 * named, prepared statement through the same pool. A bound on any gate that keeps the key and both buckets in
 * the database (revocation and limits from the next request): rate-limiter-flexible writes one row and reads none.
 */
function floorGateWork(pool: pg.Pool, key: string): Limiter {
  const prefix = key.slice(0, 12);
  const hash = createHash("sha256").update(key).digest("hex");
  return {
    name: "floor, not a limiter: the gate's least work (key read + both bucket writes, no decision), one statement",
    floor: true,
    async make() {
      const users = `f${run++}-`;
      return async (bucket) => {
        const { rowCount } = await pool.query({
          name: "bench_floor_gate_work",
          text: `with k as (
                   select k.tenant_id from api_keys k join tenants t on t.id = k.tenant_id
                   where k.prefix = $1 and k.hash = $2 and k.revoked_at is null),
                 c as (
                   insert into rate_ceilings as c (tenant_id, key, tat) select k.tenant_id, 'floor/tenant', clock_timestamp() from k
                   on conflict (tenant_id, key) do update set tat = excluded.tat returning c.tenant_id)
                 insert into rate_limits as b (tenant_id, key, tat) select c.tenant_id, $3, clock_timestamp() from c
                 on conflict (tenant_id, key) do update set tat = excluded.tat`,
          values: [prefix, hash, `floor/u:${users}${bucket}`],
        });
        return rowCount === 1;
      };
    },
  };
}

function engram(db: ReturnType<typeof createPgDb>, tenantId: string): Limiter {
  return {
    name: "engram, RateLimit.enforce: one statement a request, queued decisions batched (one process)",
    async make(limit, windowSeconds) {
      const base: Caller = {
        tenantId,
        tenantName: "bench",
        keyPrefix: "egm_bench000",
        userId: "",
        rateLimits: { default: `${limit}/${UNITS[windowSeconds]}` },
      };
      const callers = new Map<string, Caller>();
      const prefix = `r${run++}-`;
      return async (key) => {
        let caller = callers.get(key);
        if (!caller) {
          caller = { ...base, userId: prefix + key };
          callers.set(key, caller);
        }
        try {
          await RateLimit.enforce(db, caller, "default");
          return true;
        } catch (error) {
          if (error instanceof EngramError && error.code === "ratelimit.exceeded") return false;
          throw error;
        }
      };
    },
  };
}

async function flexible(pool: pg.Pool, unlogged: boolean): Promise<Limiter | undefined> {
  let mod: typeof import("rate-limiter-flexible");
  try {
    mod = await import("rate-limiter-flexible");
  } catch {
    return undefined;
  }
  const { RateLimiterPostgres, RateLimiterRes } = (mod as { default?: typeof mod }).default ?? mod;
  const tableName = unlogged ? "rlflx_unlogged" : "rlflx";
  if (unlogged) {
    // The library's own table definition, UNLOGGED.
    await pool.query(
      `create unlogged table if not exists ${tableName} (key varchar(255) primary key, points integer not null default 0, expire bigint)`,
    );
  }
  return {
    name: `rate-limiter-flexible RateLimiterPostgres (${unlogged ? "UNLOGGED table" : "its own logged table"})`,
    async make(limit, windowSeconds) {
      let limiter: InstanceType<typeof RateLimiterPostgres> | undefined;
      // The callback may run inside the constructor (when the table exists), before it returns.
      await new Promise<void>((resolve, reject) => {
        limiter = new RateLimiterPostgres(
          {
            storeClient: pool,
            storeType: "pool",
            tableName,
            tableCreated: unlogged,
            // Only stops a 5-minute cleanup timer, which never fires within a case.
            clearExpiredByTimeout: false,
            points: limit,
            duration: windowSeconds,
            keyPrefix: `r${run++}`,
          },
          (error) => (error ? reject(error) : resolve()),
        );
      });
      const ready = limiter as InstanceType<typeof RateLimiterPostgres>;
      return async (key) => {
        try {
          await ready.consume(key);
          return true;
        } catch (error) {
          if (error instanceof RateLimiterRes) return false;
          throw error;
        }
      };
    },
  };
}

interface Measured {
  decisions: number;
  admitted: number;
  seconds: number;
  latencies: number[];
}

async function load(decide: Decide, clients: number, keys: number, seconds: number): Promise<Measured> {
  const latencies: number[] = [];
  let admitted = 0;
  let next = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        const key = keys === 1 ? "hot" : `k${next++ % keys}`;
        const t0 = performance.now();
        if (await decide(key)) admitted++;
        latencies.push(performance.now() - t0);
      }
    }),
  );
  return { decisions: latencies.length, admitted, seconds: (performance.now() - started) / 1000, latencies };
}

/**
 * CPU time so far (user + system, in clock ticks of 10 ms) of each client backend of the pool's database, read from
 * /proc: undefined when the server is not on this machine. CPU time, unlike latency, hardly moves with the load
 * other processes put on a shared machine.
 */
async function backendTicks(pool: pg.Pool): Promise<Map<number, number> | undefined> {
  const { rows } = await pool.query<{ pid: number }>(
    "select pid from pg_stat_activity where datname = current_database() and backend_type = 'client backend'",
  );
  const ticks = new Map<number, number>();
  for (const { pid } of rows) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      return undefined;
    }
    // After the command's closing parenthesis: field 3 first, so utime (14) and stime (15) at 11 and 12.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    ticks.set(pid, Number(fields[11]) + Number(fields[12]));
  }
  return ticks;
}

/** Microseconds of backend CPU between two readings (a backend that connected meanwhile counts from zero). */
function backendMicros(before: Map<number, number> | undefined, after: Map<number, number> | undefined) {
  if (!before || !after) return undefined;
  let ticks = 0;
  for (const [pid, now] of after) ticks += now - (before.get(pid) ?? 0);
  return ticks * 10_000;
}

/** The most a correct limiter may admit on one key in `seconds`: a full burst plus the refill. */
const allowed = (seconds: number) => Math.floor(LIMIT * (1 + seconds / WINDOW));

export async function benchRateLimit(opts: { quick: boolean }): Promise<Record<string, unknown>[]> {
  setConfig({ LOG_LEVEL: "warn", RATE_LIMIT_FAIL_MODE: "closed" });
  const seconds = opts.quick ? 1 : 10;
  const database = await createDatabase();
  // Requests wait for a connection as long as rate-limiter-flexible's do (its pool has no limit on the wait): the
  // 200 concurrent requests of the exactness case are 200 statements on 16 connections without batching.
  const db = createPgDb(pgUrl(database), { max: 16, connectWaitMs: 120_000 });
  const pool = new pg.Pool({ connectionString: pgUrl(database), max: 16 });
  pool.on("error", () => {}); // idle clients closed by the final drop database
  try {
    await migrate(db, { embeddingDimensions: DIMENSIONS, searchTextConfig: "english" });
    const tenant = await Tenant.ensure(db, "bench");
    const { key } = await Auth.createKey(db, "gate");
    // The ceiling stays out of the way (never below the user's rate, and far above it here).
    await RateLimit.setLimits(db, "gate", { "tenant.default": "10000000/s" });
    const limiters = [
      engramGate(db, key),
      engram(db, tenant.id),
      await flexible(pool, false),
      await flexible(pool, true),
      floorRoundTrip(pool),
      floorGateWork(pool, key),
    ].filter((l): l is Limiter => l !== undefined);
    if (limiters.length === 4)
      console.error("rate-limiter-flexible is not installed: measuring Engram's limiter alone");

    const rows: Record<string, unknown>[] = [];
    const bursts = new Map<string, number>();
    for (const limiter of limiters) {
      if (limiter.floor) continue;
      // An hour's window: nothing is regained while the 200 are decided, however loaded the machine (at 20/min
      // GCRA gives one back every 3 s, and 200 statements one by one can take longer than that).
      const burst = await limiter.make(20, 3600);
      const admitted = await Promise.all(Array.from({ length: 200 }, () => burst("burst")));
      bursts.set(limiter.name, admitted.filter(Boolean).length);
      await load(await limiter.make(LIMIT, WINDOW), 16, MANY_KEYS, opts.quick ? 0.3 : 1); // warm up
    }
    // Scenario by scenario, every limiter in turn: the machine's load drifts, the ratios should not.
    for (const keys of [MANY_KEYS, 1]) {
      for (const clients of CLIENTS) {
        const scenario: Record<string, unknown>[] = [];
        for (const limiter of limiters) {
          if (limiter.floor && clients !== 1) continue;
          const decide = await limiter.make(LIMIT, WINDOW);
          const [ticks, cpu] = [await backendTicks(pool), process.cpuUsage()];
          const m = await load(decide, clients, keys, seconds);
          const { user, system } = process.cpuUsage(cpu);
          const server = backendMicros(ticks, await backendTicks(pool));
          const sorted = m.latencies.sort((a, b) => a - b);
          scenario.push({
            limiter: limiter.name,
            keys: keys === 1 ? "one hot key" : keys.toLocaleString("en"),
            clients,
            "decisions/s": Math.round(m.decisions / m.seconds),
            "p50 ms": round(percentile(sorted, 50), 3),
            "p99 ms": round(percentile(sorted, 99), 3),
            "server CPU us/decision": server === undefined ? "" : round(server / m.decisions, 1),
            "client CPU us/decision": round((user + system) / m.decisions, 1),
            admitted: limiter.floor ? "" : m.admitted,
            // Over many keys every request is within its key's budget; the hot key is the test.
            "over-admitted": keys === 1 && !limiter.floor ? Math.max(0, m.admitted - allowed(m.seconds)) : "",
            "200 at once, limit 20/h: admitted": limiter.floor ? "" : bursts.get(limiter.name),
            "load (1 min)": round(loadavg()[0] ?? 0, 2),
          });
        }
        const named = (table: string) => scenario.find((row) => String(row.limiter).includes(table));
        const logged = named("(its own logged table)");
        const unlogged = named("(UNLOGGED table)");
        for (const row of scenario.filter((r) => r !== logged && r !== unlogged)) {
          const times = (other: Record<string, unknown>) =>
            round((row["decisions/s"] as number) / (other["decisions/s"] as number), 2);
          if (logged) row["x rate-limiter-flexible"] = times(logged);
          if (unlogged) row["x rate-limiter-flexible UNLOGGED"] = times(unlogged);
        }
        rows.push(...scenario);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 1500)); // backends report their counts when idle
    const tables = await pool.query<{ relname: string; updates: number; hot: number }>(
      `select relname, n_tup_upd::int as updates, n_tup_hot_upd::int as hot from pg_stat_user_tables
       where relname in ('rate_limits', 'rate_ceilings', 'rlflx', 'rlflx_unlogged') order by relname`,
    );
    for (const t of tables.rows) {
      rows.push({
        // rate_limits and rate_ceilings include the floor's writes.
        limiter: `table ${t.relname}: HOT updates`,
        admitted: `${t.hot.toLocaleString("en")} of ${t.updates.toLocaleString("en")} (${t.updates ? Math.round((100 * t.hot) / t.updates) : 0}%)`,
      });
    }
    return rows;
  } finally {
    await pool.end();
    await db.close();
    await dropDatabase(database);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import("./support");
  console.log(`policy under load: ${LIMIT} per ${WINDOW} s; ${process.argv.includes("--quick") ? 2 : 10} s per case`);
  console.log(table(await benchRateLimit({ quick: process.argv.includes("--quick") })));
  process.exit(0);
}
