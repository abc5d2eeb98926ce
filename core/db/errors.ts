import { EngramError } from "../error";
import { log } from "../log";

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** SQLSTATE of a database error, whichever driver raised it. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

/**
 * SQLSTATE of `engram_expect` (migrations/0025): a row a write was planned on changed or went away before the write
 * locked it, and the write's batch left nothing.
 */
export const CHANGED = "EG001";

/**
 * Runs an atomic `write` again (twice at most) when it failed with one of `states` (by default 40P01: Postgres aborted
 * it to break a deadlock), which leave nothing written; `again` hears of each retry.
 */
export async function retriedOn<T>(
  write: () => Promise<T>,
  states: readonly string[] = ["40P01"],
  again?: (attempt: number, state: string) => void,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      const state = sqlState(error);
      if (attempt >= 3 || !state || !states.includes(state)) throw error;
      again?.(attempt, state);
    }
  }
}

/**
 * A transaction Postgres aborted to break a deadlock (40P01) or a serialization conflict (40001), or one whose row
 * changed before it could lock it (CHANGED), which the code that
 * ran it did not retry (or retried in vain), as the answer it is: a collision of concurrent writes that left nothing
 * behind, to retry in a moment; undefined for any other error. Read where errors become answers (core/api/http.ts),
 * not in the drivers: code that retries such a write must still see its SQLSTATE.
 */
export function collision(error: unknown): EngramError | undefined {
  const state = sqlState(error);
  // CHANGED left over: the row changed under the write each time it was planned again.
  if (state !== "40P01" && state !== "40001" && state !== CHANGED) return undefined;
  return new EngramError(
    "unavailable",
    "database.busy",
    "The request collided with concurrent writes to the same data; try again in a moment.",
    { cause: error, retryAfterSeconds: 1 },
  );
}

export const isUniqueViolation = (error: unknown) => sqlState(error) === "23505";

/** Whether the error means the database could not be reached (as opposed to a bad query). */
export function isConnectionError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    const e = current as { code?: unknown; name?: string; message?: string; cause?: unknown; sourceError?: unknown };
    if (typeof e.code === "string" && CONNECTION_CODES.has(e.code)) return true;
    const state = sqlState(current);
    // Class 08: connection exceptions; 57P0x: server shutting down / cannot connect now; 53: resources; 28: the
    // server refused the credentials, and 3D000: the database named does not exist (dropped, or a wrong
    // DATABASE_URL): no query can run until that is fixed, which is a 503, not a 500.
    // 55000 is a general "not in prerequisite state"; at connect time it is a database closed to connections
    // (`allow_connections false`), unusable until an operator opens it again.
    if (state === "55000" && /not currently accepting connections/i.test(e.message ?? "")) return true;
    if (
      state &&
      (state.startsWith("08") ||
        state.startsWith("57P") ||
        state.startsWith("53") ||
        state.startsWith("28") ||
        state === "3D000")
    )
      return true;
    if (e.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return true;
    // Neon's HTTP endpoint answers 5xx (no SQLSTATE) when it cannot reach the compute; when the endpoint
    // itself cannot be reached, the driver throws "Error connecting to database" with the fetch failure
    // as `sourceError` (not `cause`).
    if (
      /Server error \(HTTP status 5(?!07)\d\d\)|Couldn't connect to compute node|Error connecting to database|Connection terminated|connection.*(refused|closed|reset)|ECONNREFUSED|server closed the connection/i.test(
        e.message ?? "",
      )
    )
      return true;
    current = e.cause ?? e.sourceError;
  }
  return false;
}

/**
 * SQLSTATEs of a value Postgres refused: bad text (22P02, 22P05, 22021), out of range (22003,
 * 22008, 22009), malformed (22007), too long (22001). They come from request values validation let
 * through, so they are the client's 400, not our 500 (PostgREST maps them the same way).
 */
const REFUSED_VALUE = new Set(["22P02", "22P05", "22021", "22003", "22007", "22008", "22009", "22001"]);

/**
 * Neon's HTTP endpoint refuses a request body over 10 MB (413) and a result over 10 MB (507),
 * without a SQLSTATE. The ingest checks its batches' encoded size before embedding, so this is
 * the rare request that slipped past the estimate: still the client's 413, never a 500 or a
 * 503 to retry.
 */
function sizeRefusal(error: unknown): EngramError | undefined {
  const status = /Server error \(HTTP status (413|507)\)/.exec((error as Error | null)?.message ?? "")?.[1];
  if (!status) return undefined;
  return new EngramError(
    "too_large",
    "request.too_large",
    status === "413"
      ? "This request is larger than the database accepts in one request (10 MB); send fewer or smaller documents."
      : "The answer to this request is larger than the database returns in one response (10 MB); ask for less.",
    { cause: error },
  );
}

/**
 * Turns driver failures into the product's errors: unreachable database is a 503, a value the
 * database refused a 400 (logged: each one is a gap in validation to close).
 */
export function mapDbError(error: unknown): unknown {
  if (error instanceof EngramError) return error;
  // pg's pool waited connectionTimeoutMillis for a connection, or Postgres (Neon's compute
  // included) has no connection slot left (53300): the database is fine, only busy.
  if (
    /timeout exceeded when trying to connect/i.test((error as Error | null)?.message ?? "") ||
    sqlState(error) === "53300"
  ) {
    return new EngramError(
      "unavailable",
      "database.busy",
      "Every database connection is busy; try again in a moment.",
      {
        cause: error,
        retryAfterSeconds: 1,
      },
    );
  }
  const refused = sizeRefusal(error);
  if (refused) return refused;
  if (isConnectionError(error)) {
    return new EngramError("unavailable", "database.unavailable", "The database is unreachable; try again shortly.", {
      cause: error,
      retryAfterSeconds: 2,
    });
  }
  const state = sqlState(error);
  if (state && REFUSED_VALUE.has(state)) {
    const reason = (error as Error).message;
    log.warn("the database refused a request value", { sqlState: state, error: reason });
    const message = `The database refused a value in this request: ${reason}.`;
    return new EngramError("input", "request.invalid_value", message, { cause: error });
  }
  return error;
}
