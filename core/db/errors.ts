import { EngramError } from "../error";

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

export const isUniqueViolation = (error: unknown) => sqlState(error) === "23505";

/** Whether the error means the database could not be reached (as opposed to a bad query). */
export function isConnectionError(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    const e = current as { code?: unknown; name?: string; message?: string; cause?: unknown };
    if (typeof e.code === "string" && CONNECTION_CODES.has(e.code)) return true;
    const state = sqlState(current);
    // Class 08: connection exceptions; 57P0x: server shutting down / cannot connect now; 53: resources.
    if (state && (state.startsWith("08") || state.startsWith("57P") || state.startsWith("53"))) return true;
    if (e.name === "TypeError" && /fetch failed/i.test(e.message ?? "")) return true;
    // Neon's HTTP endpoint answers 5xx (no SQLSTATE) when it cannot reach the compute.
    if (
      /Server error \(HTTP status 5\d\d\)|Couldn't connect to compute node|Connection terminated|connection.*(refused|closed|reset)|ECONNREFUSED|server closed the connection/i.test(
        e.message ?? "",
      )
    )
      return true;
    current = e.cause;
  }
  return false;
}

/** Turns driver failures into the product's errors: unreachable database is a 503. */
export function mapDbError(error: unknown): unknown {
  if (error instanceof EngramError) return error;
  if (isConnectionError(error)) {
    return new EngramError("unavailable", "database.unavailable", "The database is unreachable; try again shortly.", {
      cause: error,
      retryAfterSeconds: 2,
    });
  }
  return error;
}
