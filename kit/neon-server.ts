/**
 * A local stand-in for Neon's serverless "SQL over HTTP" endpoint, backed by a real PostgreSQL
 * through `pg`, so tests and benchmarks exercise the real `neon()` driver of
 * `@neondatabase/serverless` end to end.
 *
 * The protocol mirrors Neon's proxy (proxy/src/serverless/sql_over_http.rs in neondatabase/neon):
 * - POST `{query, params, arrayMode?}` or `{queries: [{query, params, arrayMode?}, ...]}`.
 * - Headers: `Neon-Connection-String` (which database/user to use), `Neon-Raw-Text-Output`,
 *   `Neon-Array-Mode`, and for batches `Neon-Batch-Isolation-Level`
 *   (ReadUncommitted | ReadCommitted | RepeatableRead | Serializable), `Neon-Batch-Read-Only`,
 *   `Neon-Batch-Deferrable` (only the exact value "true" switches the last two on).
 * - 200 answers `{rowAsArray, fields, rows, command, rowCount}` (a batch: `{results: [...]}`) with
 *   every value as Postgres text output, or null; the driver parses the text by `dataTypeID`.
 * - Postgres errors answer 400 with `{message, code, detail, hint, position, ...}`: the driver turns
 *   a 400 into a `NeonDbError` carrying those fields. Any other status becomes a `NeonDbError`
 *   "Server error (HTTP status N): <body>" without a `code`.
 * - Like Neon, every statement goes through the extended protocol, so a request holds exactly one
 *   statement (several statements in one query fail with 42601), and request and response
 *   bodies are limited to 10 MiB (413 / 507).
 *
 * Pointing the driver at the server. `neonConfig.fetchEndpoint` is global to the module instance;
 * the function form routes by the port of each connection string, so it stays right even when
 * several servers (or test files sharing modules) live in one process:
 *
 *   import { neon, neonConfig } from '@neondatabase/serverless';
 *   const server = await startNeonServer();
 *   neonConfig.fetchEndpoint = localFetchEndpoint;   // or simply server.url
 *   const sql = neon(neonConnectionString('engram_test', server.port));
 *
 * `neon()` POSTs with the global `fetch` to `fetchEndpoint`: a string is used verbatim, a
 * function is called as `(host, port, {jwtAuth})`. Plain http and any host are fine (no Neon host
 * check, no TLS requirement, nothing else to configure: `poolQueryViaFetch` only concerns
 * `Pool.query`, and `fetchConnectionCache` is ignored). Only the default endpoint builds
 * `https://api.<host>/sql`. `Pool.query` with `poolQueryViaFetch` drops the port from the
 * connection string, so use the string form (`server.url`) there.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { CustomTypesConfig, FieldDef, PoolClient, QueryArrayConfig, QueryArrayResult } from "pg";
import pg from "pg";
import { serverUrl } from "./postgres";

export interface NeonServerOptions {
  /**
   * The PostgreSQL to forward to, as a URL: its host, port, password and options are used, each
   * request's connection string picks the user and database. Default: the test server.
   */
  server?: string;
  /** Overrides of the server URL's host and port. */
  pgHost?: string;
  pgPort?: number;
  /** HTTP port to listen on (127.0.0.1); default: a free port. */
  port?: number;
  /** pg pool size per database and user; default 10. */
  maxConnectionsPerDatabase?: number;
  /** Neon's proxy limits both to 10 MiB. */
  maxRequestBytes?: number;
  maxResponseBytes?: number;
  /**
   * Milliseconds each HTTP request waits before it is served: the network between a Lambda and Neon (about 5 ms in
   * one region, 20 ms across regions), so a benchmark sees what each round trip costs.
   */
  delayMs?: number;
}

export interface NeonServerStats {
  /** HTTP requests served: the driver's round trips. */
  requests: number;
  /** Statements run for clients: one per single query, one per statement of a batch. */
  queries: number;
  /** Transaction (`queries: [...]`) requests. */
  batches: number;
}

export interface NeonServer {
  /** The value for `neonConfig.fetchEndpoint`. */
  url: string;
  port: number;
  stats: NeonServerStats;
  close(): Promise<void>;
  /** While down, every request fails the way Neon does when it cannot reach the compute. */
  setDown(down: boolean): void;
  /** Changes `delayMs` for the requests that follow. */
  setDelay(ms: number): void;
}

/**
 * A connection string the driver accepts; the server reads only the user and database from it.
 * The user defaults to the test server's.
 */
export function neonConnectionString(
  database: string,
  port: number,
  user = decodeURIComponent(new URL(serverUrl()).username) || "postgres",
): string {
  return `postgresql://${encodeURIComponent(user)}@localhost:${port}/${encodeURIComponent(database)}`;
}

/** A `neonConfig.fetchEndpoint` function that routes by the connection string's port. */
export function localFetchEndpoint(_host: string, port: number | string): string {
  return `http://127.0.0.1:${port}/sql`;
}

const MIB = 1024 * 1024;
const COULD_NOT_CONNECT = "Couldn't connect to compute node";

const ISOLATION_LEVELS: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

// Keep every value as the server's text output: the driver does the parsing, as with real Neon.
const passthroughTypes = {
  getTypeParser: () => (value: string) => value,
} as unknown as CustomTypesConfig;

interface QueryData {
  query: string;
  params: unknown[];
  arrayMode?: boolean;
}

interface RequestOptions {
  rawText: boolean;
  arrayMode: boolean;
  begin: string;
  batchHeaders: Record<string, string>;
}

interface DatabaseEntry {
  pool: pg.Pool;
  /** array type oid -> element type oid; loaded only for non-raw-text requests. */
  arrayElements?: Promise<Map<number, number>>;
}

/** A failure with the HTTP status Neon's proxy would answer with. */
class HttpFailure extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly dbError?: pg.DatabaseError,
  ) {
    super(message);
  }
}

export async function startNeonServer(opts: NeonServerOptions = {}): Promise<NeonServer> {
  const postgres = opts.server ?? serverUrl();
  const maxConnections = opts.maxConnectionsPerDatabase ?? 10;
  const maxRequestBytes = opts.maxRequestBytes ?? 10 * MIB;
  const maxResponseBytes = opts.maxResponseBytes ?? 10 * MIB;

  const stats: NeonServerStats = { requests: 0, queries: 0, batches: 0 };
  let delayMs = opts.delayMs ?? 0;
  const databases = new Map<string, DatabaseEntry>();
  let down = false;

  function database(connectionString: string | string[] | undefined): DatabaseEntry {
    let url: URL;
    try {
      if (typeof connectionString !== "string") throw new Error("missing");
      url = new URL(connectionString);
    } catch {
      throw new HttpFailure(400, "missing or invalid Neon-Connection-String header");
    }
    const user = decodeURIComponent(url.username);
    const password = url.password ? decodeURIComponent(url.password) : undefined;
    const name = decodeURIComponent(url.pathname.slice(1));
    if (!user || !name) throw new HttpFailure(400, "connection string must name a user and a database");
    const key = `${user}\0${password ?? ""}\0${name}`;
    let entry = databases.get(key);
    if (!entry) {
      const target = new URL(postgres);
      if (opts.pgHost) target.hostname = opts.pgHost;
      if (opts.pgPort) target.port = String(opts.pgPort);
      target.username = user;
      if (password !== undefined) target.password = password;
      target.pathname = `/${name}`;
      const pool = new pg.Pool({
        connectionString: target.href,
        max: maxConnections,
        allowExitOnIdle: true,
      });
      // An idle client dying (e.g. its database was dropped) must not crash the test process.
      pool.on("error", () => {});
      entry = { pool };
      databases.set(key, entry);
    }
    return entry;
  }

  async function connect(entry: DatabaseEntry): Promise<PoolClient> {
    try {
      return await entry.pool.connect();
    } catch (err) {
      // Neon answers 400 when Postgres refuses the connection (bad database, auth), 500 otherwise.
      if (err instanceof pg.DatabaseError) throw new HttpFailure(400, err.message, err);
      throw new HttpFailure(500, COULD_NOT_CONNECT);
    }
  }

  async function execute(
    client: PoolClient,
    entry: DatabaseEntry,
    q: QueryData,
    options: RequestOptions,
  ): Promise<object> {
    stats.queries++;
    const config: QueryArrayConfig & { queryMode: "extended" } = {
      text: q.query,
      values: q.params,
      rowMode: "array",
      types: passthroughTypes,
      queryMode: "extended",
    };
    const result = await client.query(config);
    const arrayMode = q.arrayMode ?? options.arrayMode;
    let elements: Map<number, number> | undefined;
    if (!options.rawText) {
      entry.arrayElements ??= loadArrayElements(client).catch((err: unknown) => {
        entry.arrayElements = undefined;
        throw err;
      });
      elements = await entry.arrayElements;
    }
    return neonResult(result, arrayMode, elements);
  }

  async function runSingle(entry: DatabaseEntry, q: QueryData, options: RequestOptions): Promise<object> {
    const client = await connect(entry);
    try {
      const result = await execute(client, entry, q, options);
      client.release();
      return result;
    } catch (err) {
      client.release(err instanceof pg.DatabaseError ? undefined : (err as Error));
      throw err;
    }
  }

  async function runBatch(entry: DatabaseEntry, queries: QueryData[], options: RequestOptions): Promise<object> {
    stats.batches++;
    const client = await connect(entry);
    try {
      await client.query(options.begin);
      const results: object[] = [];
      for (const q of queries) results.push(await execute(client, entry, q, options));
      await client.query("COMMIT");
      client.release();
      return { results };
    } catch (err) {
      await client.query("ROLLBACK").then(
        () => client.release(),
        (rollbackError: Error) => client.release(rollbackError),
      );
      throw err;
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req, maxRequestBytes);
    stats.requests++;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (req.method !== "POST") throw new HttpFailure(405, "only POST is supported");
    if (body === null) throw new HttpFailure(413, `Content length exceeds limit of ${maxRequestBytes} bytes`);
    if (down) throw new HttpFailure(500, COULD_NOT_CONNECT);

    const options = requestOptions(req);
    const payload = parsePayload(body);
    const entry = database(req.headers["neon-connection-string"]);
    const result = Array.isArray(payload)
      ? await runBatch(entry, payload, options)
      : await runSingle(entry, payload, options);

    const json = Buffer.from(JSON.stringify(result));
    if (json.length > maxResponseBytes) {
      throw new HttpFailure(507, `response is too large (max is ${maxResponseBytes} bytes)`);
    }
    send(res, 200, json, Array.isArray(payload) ? options.batchHeaders : undefined);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) return;
      send(res, ...failureResponse(err));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://127.0.0.1:${port}/sql`,
    port,
    stats,
    setDown(value: boolean) {
      down = value;
    },
    setDelay(ms: number) {
      delayMs = ms;
    },
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await closed;
      const pools = [...databases.values()].map((entry) => entry.pool.end());
      databases.clear();
      await Promise.all(pools);
    },
  };
}

function requestOptions(req: IncomingMessage): RequestOptions {
  const header = (name: string) => req.headers[name];
  const batchHeaders: Record<string, string> = {};
  const parts: string[] = [];

  const level = header("neon-batch-isolation-level");
  if (level !== undefined) {
    const sqlLevel = typeof level === "string" ? ISOLATION_LEVELS[level] : undefined;
    if (!sqlLevel) throw new HttpFailure(400, "invalid isolation level");
    parts.push(`ISOLATION LEVEL ${sqlLevel}`);
    batchHeaders["Neon-Batch-Isolation-Level"] = level as string;
  }
  if (header("neon-batch-read-only") === "true") {
    parts.push("READ ONLY");
    batchHeaders["Neon-Batch-Read-Only"] = "true";
  }
  if (header("neon-batch-deferrable") === "true") {
    parts.push("DEFERRABLE");
    batchHeaders["Neon-Batch-Deferrable"] = "true";
  }

  return {
    rawText: header("neon-raw-text-output") === "true",
    arrayMode: header("neon-array-mode") === "true",
    begin: parts.length > 0 ? `START TRANSACTION ${parts.join(", ")}` : "BEGIN",
    batchHeaders,
  };
}

function parsePayload(body: Buffer): QueryData | QueryData[] {
  let payload: unknown;
  try {
    payload = JSON.parse(body.toString("utf8"));
  } catch (err) {
    throw new HttpFailure(400, (err as Error).message);
  }
  const queries = (payload as { queries?: unknown } | null)?.queries;
  if (Array.isArray(queries)) return queries.map(queryData);
  return queryData(payload);
}

function queryData(value: unknown): QueryData {
  const { query, params, arrayMode } = (value ?? {}) as Record<string, unknown>;
  if (
    typeof query !== "string" ||
    (params !== undefined && !Array.isArray(params)) ||
    (arrayMode !== undefined && typeof arrayMode !== "boolean")
  ) {
    throw new HttpFailure(400, "data did not match any variant of untagged enum Payload");
  }
  // Neon turns non-string params into Postgres text the way pg's prepareValue does, so they pass
  // through unchanged (the driver itself only ever sends strings and nulls).
  return { query, params: params ?? [], arrayMode };
}

function neonResult(result: QueryArrayResult, arrayMode: boolean, arrayElements?: Map<number, number>) {
  const fields = result.fields.map((f: FieldDef) => ({
    name: f.name,
    dataTypeID: f.dataTypeID,
    tableID: f.tableID,
    columnID: f.columnID,
    dataTypeSize: f.dataTypeSize,
    dataTypeModifier: f.dataTypeModifier,
    format: "text",
  }));
  let rows: unknown[] = result.rows as (string | null)[][];
  if (arrayElements) {
    const types = fields.map((f) => f.dataTypeID);
    rows = (rows as (string | null)[][]).map((row) =>
      row.map((value, i) => (value === null ? null : textToJson(value, types[i] ?? 0, arrayElements))),
    );
  }
  if (!arrayMode) {
    rows = (rows as unknown[][]).map((row) => {
      const object: Record<string, unknown> = {};
      fields.forEach((f, i) => {
        object[f.name] = row[i];
      });
      return object;
    });
  }
  return { rowAsArray: arrayMode, fields, rows, command: result.command ?? "", rowCount: result.rowCount };
}

async function loadArrayElements(client: PoolClient): Promise<Map<number, number>> {
  const { rows } = await client.query<{ oid: number; elem: number }>(
    "select oid::int as oid, typelem::int as elem from pg_type where typinput = 'array_in'::regproc",
  );
  return new Map(rows.map((r) => [r.oid, r.elem]));
}

/** Neon's conversion when raw text output is off (proxy/src/serverless/json.rs). */
function textToJson(text: string, oid: number, arrayElements: Map<number, number>): unknown {
  const element = arrayElements.get(oid);
  if (element !== undefined) return parsePgArray(text, (item) => textToJson(item, element, arrayElements));
  switch (oid) {
    case 16:
      return text === "t";
    case 21:
    case 23:
      return Number.parseInt(text, 10);
    case 700:
    case 701: {
      const n = Number(text);
      return Number.isFinite(n) ? n : text;
    }
    case 114:
    case 3802:
      return JSON.parse(text);
    default:
      return text;
  }
}

/** Parses Postgres array text output (comma-delimited) into nested JS arrays. */
function parsePgArray(text: string, convert: (item: string) => unknown): unknown[] {
  // Skip the bounds decoration of arrays not starting at 1, e.g. `[0:1]={a,b}`.
  let pos = text.startsWith("[") ? text.indexOf("=") + 1 : 0;
  const fail = () => new Error(`malformed array literal: ${text}`);

  const list = (): unknown[] => {
    if (text[pos++] !== "{") throw fail();
    const out: unknown[] = [];
    if (text[pos] === "}") {
      pos++;
      return out;
    }
    for (;;) {
      if (text[pos] === "{") {
        out.push(list());
      } else if (text[pos] === '"') {
        let item = "";
        pos++;
        while (text[pos] !== '"') {
          if (text[pos] === "\\") pos++;
          if (pos >= text.length) throw fail();
          item += text[pos++];
        }
        pos++;
        out.push(convert(item));
      } else {
        let end = pos;
        while (end < text.length && text[end] !== "," && text[end] !== "}") end++;
        const item = text.slice(pos, end);
        pos = end;
        out.push(item === "NULL" ? null : convert(item));
      }
      const next = text[pos++];
      if (next === "}") return out;
      if (next !== ",") throw fail();
    }
  };
  return list();
}

/** Reads the whole body; null when it exceeds the limit (drained, so the client sees the answer). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = Number(req.headers["content-length"] ?? 0) > limit;
    req.on("data", (chunk: Buffer) => {
      if (tooLarge) return;
      size += chunk.length;
      if (size > limit) {
        tooLarge = true;
        chunks.length = 0;
      } else {
        chunks.push(chunk);
      }
    });
    req.on("end", () => resolve(tooLarge ? null : Buffer.concat(chunks, size)));
    req.on("error", reject);
  });
}

function failureResponse(err: unknown): [number, Buffer] {
  if (err instanceof HttpFailure) return [err.status, errorBody(err.message, err.dbError)];
  // Errors of the statements themselves: Neon answers 400 even when they carry no SQLSTATE.
  if (err instanceof pg.DatabaseError) return [400, errorBody(err.message, err)];
  return [400, errorBody(err instanceof Error ? err.message : String(err))];
}

/** Neon's error body: every field present, `code` and `severity` '' and the others null when absent. */
function errorBody(message: string, db?: pg.DatabaseError): Buffer {
  return Buffer.from(
    JSON.stringify({
      message,
      code: db?.code ?? "",
      detail: db?.detail ?? null,
      hint: db?.hint ?? null,
      position: db?.position ?? null,
      internalPosition: db?.internalPosition ?? null,
      internalQuery: db?.internalQuery ?? null,
      severity: db?.severity ?? "",
      where: db?.where ?? null,
      table: db?.table ?? null,
      column: db?.column ?? null,
      schema: db?.schema ?? null,
      dataType: db?.dataType ?? null,
      constraint: db?.constraint ?? null,
      file: db?.file ?? null,
      line: db?.line ?? null,
      routine: db?.routine ?? null,
    }),
  );
}

function send(res: ServerResponse, status: number, body: Buffer, headers?: Record<string, string>): void {
  res.writeHead(status, {
    "Content-Type": "application/json",
    "Content-Length": body.length,
    "Access-Control-Allow-Origin": "*",
    ...headers,
  });
  res.end(body);
}
