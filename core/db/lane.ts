/**
 * Which lane a request's database work runs in, and whose share it draws on. Bulk work (ingests) may hold only part
 * of a connection pool, so searches and chats always find a connection however many ingests run; and one API key's
 * requests may hold only part of it too, so one client's burst leaves other clients connections (core/db/pg.ts). Set
 * per request by the HTTP chain; work outside any lane is interactive and nobody's.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export type Lane = "bulk" | "interactive";

const current = new AsyncLocalStorage<{ lane: Lane; share?: string }>();

/** Runs `work`, and every query it makes, in `lane`, drawing on `share`'s part of the pool when one is named. */
export const inLane = <T>(lane: Lane, work: () => T, share?: string): T => current.run({ lane, share }, work);

export const laneNow = (): Lane => current.getStore()?.lane ?? "interactive";

/** Whose part of the pool the work in progress draws on: its API key's (or keyless client's), if any. */
export const shareNow = (): string | undefined => current.getStore()?.share;
