/**
 * Which lane a request's database work runs in. Bulk work (ingests) may hold only part of a
 * connection pool, so searches and chats always find a connection however many ingests run
 * (core/db/pg.ts). Set per request by the HTTP chain; work outside any lane is interactive.
 */
import { AsyncLocalStorage } from "node:async_hooks";

export type Lane = "bulk" | "interactive";

const current = new AsyncLocalStorage<Lane>();

/** Runs `work`, and every query it makes, in `lane`. */
export const inLane = <T>(lane: Lane, work: () => T): T => current.run(lane, work);

export const laneNow = (): Lane => current.getStore() ?? "interactive";
