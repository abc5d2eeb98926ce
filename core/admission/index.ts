import { randomUUID } from "node:crypto";
import type { Caller } from "../auth";
import { config } from "../config";
import type { Db, Query } from "../db";
import { EngramError } from "../error";
import * as Gate from "../gate";
import { log } from "../log";
import * as RateLimit from "../ratelimit";

/** A lease outlives the longest an ingest may run (29 s on Lambda, 30 s locally), then expires. */
const LEASE_SECONDS = 60;

const ADMIT = `
  select admitted, in_flight as "inFlight", bytes_in_flight as "bytesInFlight"
  from ingest_admit($1::uuid, $2::uuid, $3::bigint, $4::integer, $5::bigint, $6::float8)`;

/** In the gate's batch (core/gate): for the tenant it admitted, nothing when it refused. */
const ADMIT_GATED = `
  select a.admitted, a.in_flight as "inFlight", a.bytes_in_flight as "bytesInFlight"
  from (select nullif(current_setting('engram.tenant', true), '')::uuid as tenant) g
  cross join lateral ingest_admit(g.tenant, $1::uuid, $2::bigint, $3::integer, $4::bigint, $5::float8) a
  where g.tenant is not null`;

/**
 * Admits an ingest of `bytes` request bytes if its tenant has room: fewer than
 * INGEST_CONCURRENCY_PER_TENANT ingests in flight and at most INGEST_BYTES_PER_TENANT request
 * bytes among them, counted in the database so every process and Lambda instance shares the
 * count (migrations/0011). A tenant past either gets 429 `ingest.busy` with Retry-After, as its
 * own rate limit would: its other ingests are still running, and other tenants are unaffected.
 * Resolves with the release, which the caller runs when the ingest is over (the lease expires
 * on its own if it never does). Decided before the body is parsed: a refused ingest costs
 * nothing but its read. Ingest requests run in the bulk lane (functions/http/chain.ts), which
 * cannot take the connections kept for searches and chats (core/db/pg.ts).
 */
export async function admitIngest(db: Db, caller: Caller, bytes: number): Promise<() => Promise<void>> {
  const { concurrency, bytes: maxBytes } = config().ingestAdmission;
  const id = randomUUID();
  const params = [id, bytes, concurrency, maxBytes, LEASE_SECONDS];
  // A caller whose key is not checked yet: the key, its limit and the admission in one round trip.
  const [row] = (
    Gate.unsettled(caller)
      ? ((await Gate.open(db, caller, [{ name: "ingest_admit_gated", text: ADMIT_GATED, params }]))[0] ?? [])
      : await db.query({ name: "ingest_admit", text: ADMIT, params: [caller.tenantId, ...params] })
  ) as { admitted: boolean; inFlight: number; bytesInFlight: number }[];
  if (!row?.admitted) {
    // Counted by the rate limit's decision before it: given back, as a refusal to retry in a second.
    await RateLimit.refund(db, caller, "ingest");
    const full = (row?.inFlight ?? 0) >= concurrency;
    throw new EngramError(
      "rate_limited",
      "ingest.busy",
      full
        ? `This tenant already has ${row?.inFlight} ingests in flight (at most ${concurrency} at once); retry when one has finished.`
        : `This tenant's ingests in flight already carry ${Math.round(Number(row?.bytesInFlight) / 1048576)} MB (at most ${Math.round(maxBytes / 1048576)} MB at once); retry when one has finished.`,
      { retryAfterSeconds: 1, details: { inFlight: row?.inFlight, bytesInFlight: Number(row?.bytesInFlight) } },
    );
  }
  const lease: Lease = { tenantId: caller.tenantId, id, released: false };
  leases.set(caller, lease);
  return async () => {
    leases.delete(caller);
    if (lease.released) return;
    lease.released = true;
    await db
      .query(releaseQuery(lease))
      .catch((error: unknown) => log.warn("could not release an ingest lease; it expires on its own", { error }));
  };
}

interface Lease {
  tenantId: string;
  id: string;
  /** Deleted, by the release or by the ingest's own write. */
  released: boolean;
}

/** The lease each admitted caller holds while its ingest runs. */
const leases = new WeakMap<Caller, Lease>();

const releaseQuery = (lease: Lease): Query => ({
  text: "delete from ingest_leases where tenant_id = $1::uuid and id = $2::uuid",
  params: [lease.tenantId, lease.id],
});

/**
 * The statement that gives the caller's ingest lease back, for the ingest to add to its own write (one round trip
 * less than releasing after it), and `done` for when that write has committed; undefined when the caller holds none.
 * If the write fails, the lease is still held, and the release after the ingest gives it back.
 */
export function releasedWithWrite(caller: Caller): { statement: Query; done: () => void } | undefined {
  const lease = leases.get(caller);
  if (!lease || lease.released) return undefined;
  return {
    statement: releaseQuery(lease),
    done: () => {
      lease.released = true;
    },
  };
}

/**
 * Ingests this process works on at once; admitted ones beyond wait their turn. Chunking and
 * embedding run on the event loop, so each ingest at work adds its CPU-bound stretches (~0.2 s
 * for 100 documents of 12 KB) to the wait of every search and chat the process serves; two keep
 * that wait bounded and still overlap one ingest's database time with another's CPU. On Lambda
 * an instance serves one request at a time anyway.
 */
const AT_WORK = 2;
let atWork = 0;
const queued: (() => void)[] = [];

/** Runs an admitted ingest's work when fewer than AT_WORK are at work in this process. */
export async function atWorkTurn<T>(work: () => Promise<T>): Promise<T> {
  if (atWork >= AT_WORK) await new Promise<void>((resolve) => queued.push(resolve));
  else atWork++;
  try {
    return await work();
  } finally {
    const next = queued.shift();
    if (next) next();
    else atWork--;
  }
}
