import type { SQL } from "drizzle-orm";

export type Row = Record<string, unknown>;
export type DriverName = "pglite" | "pg" | "neon-http";

/** A statement ready for a driver: `$n` placeholders and their values. */
export interface Statement {
  text: string;
  params: unknown[];
  /**
   * Names a hot statement whose text never changes, so `pg` prepares it once per connection
   * and later sends only its parameters: no parse or plan on the server per call. One name,
   * one text. The Neon HTTP driver and PGlite ignore it.
   */
  name?: string;
}

export type Query = SQL | Statement;

export interface QueryOptions {
  /**
   * Settings (GUCs) the statement needs, e.g. `hnsw.ef_search`. Neon's pooler forbids session
   * settings, so there they ride in the same transaction (`set_config(..., true)`); `pg` keeps
   * them on the pooled connection and sends them, pipelined with the statement, only when they differ.
   */
  settings?: Record<string, string>;
}

/** What a driver can do that domain code would otherwise tell from its name. */
export interface Capabilities {
  /** An HNSW index serves approximate vector search (PGlite's migrations leave it out: exact scans only). */
  readonly hnsw: boolean;
  /** Vectors can travel as binary parameters (`pg`'s extended protocol), not only as text. */
  readonly binaryVectors: boolean;
  /** The most bytes one batch may send, when the driver has a limit (Neon's HTTP endpoint: 10 MB a request). */
  readonly maxBatchBytes?: number;
  /** Runs statements on several connections at once (PGlite has one). */
  readonly concurrent: boolean;
  /** The server keeps planner statistics itself (autovacuum); PGlite has no autovacuum (core/db/statistics.ts). */
  readonly autovacuum: boolean;
}

/**
 * The one database API every core module uses, shaped by the weakest driver (Neon's HTTP
 * driver): single statements, and atomic non-interactive batches. There is deliberately no
 * interactive transaction: a write is one statement (CTEs, ON CONFLICT) or one batch.
 */
export interface Db {
  readonly driver: DriverName;
  /** Ask these, not the driver's name. */
  readonly capabilities: Capabilities;
  query<T = Row>(query: Query, options?: QueryOptions): Promise<T[]>;
  /** Runs the statements in order inside one transaction; all or nothing. */
  batch(queries: Query[]): Promise<Row[][]>;
  /** Pings the database; resolves false instead of throwing. */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
