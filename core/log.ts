/**
 * Structured JSON log lines (CloudWatch- and jq-friendly). Never pass secrets in fields.
 *
 * A line written while a request runs carries that request's id, route and tenant, wherever in
 * core it is written: the HTTP chain opens a context per request (`withRequest`) and names its
 * caller once the key is known (`setCaller`). Why not Powertools' Logger: docs/reliability.md#logs.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { config } from "./config";

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
type Level = Exclude<keyof typeof LEVELS, "silent">;

/** What every line of one request carries. */
interface RequestContext {
  requestId: string;
  route?: string;
  /** The caller, read when a line is written: its tenant is known only once its key is checked. */
  caller?: { readonly tenantId: string; readonly tenantName: string; readonly keyPrefix: string };
}

const requests = new AsyncLocalStorage<RequestContext>();

/** Runs `work` (and everything it starts) as one request's: its lines carry the request id and route. */
export function withRequest<T>(context: { requestId: string; route?: string }, work: () => T): T {
  return requests.run({ ...context }, work);
}

/** Names the current request's caller; from now on its lines carry the tenant. */
export function setCaller(caller: RequestContext["caller"]): void {
  const context = requests.getStore();
  if (context) context.caller = caller;
}

/**
 * `source`, iterated later by whoever sends the body (a streamed answer), still as the current
 * request's: its lines keep the request id and tenant after the handler has returned.
 */
export function withinRequest<T>(source: AsyncIterable<T>): AsyncIterable<T> {
  const context = requests.getStore();
  if (!context) return source;
  return {
    [Symbol.asyncIterator]() {
      const iterator = source[Symbol.asyncIterator]();
      const within = <R>(step: () => Promise<R>) => requests.run(context, step);
      return {
        next: () => within(() => iterator.next()),
        return: (value?: unknown) =>
          within(() => iterator.return?.(value) ?? Promise.resolve({ done: true as const, value: undefined })),
        throw: (error?: unknown) => within(() => iterator.throw?.(error) ?? Promise.reject(error)),
      } as AsyncIterator<T>;
    },
  };
}

/** The current request's fields for a line: its tenant once its key has been checked. */
function requestFields(): Record<string, unknown> {
  const context = requests.getStore();
  if (!context) return {};
  const fields: Record<string, unknown> = { requestId: context.requestId };
  if (context.route) fields.route = context.route;
  const caller = context.caller;
  if (caller) {
    try {
      fields.tenant = caller.tenantName;
      fields.tenantId = caller.tenantId;
    } catch {
      // A caller whose key is not checked yet (core/gate) has no tenant: its key's public prefix says whose it is.
      fields.keyPrefix = caller.keyPrefix;
    }
  }
  return fields;
}

function threshold(): number {
  try {
    return LEVELS[config().logLevel];
  } catch {
    return LEVELS.info;
  }
}

let allToStderr = false;

/** Every line to stderr from now on: a command's stdout is its answer, which a log line would corrupt. */
export function toStderr(): void {
  allToStderr = true;
}

function write(level: Level, message: string, fields: Record<string, unknown> = {}) {
  if (LEVELS[level] < threshold()) return;
  const line = JSON.stringify(
    { level, time: new Date().toISOString(), message, ...requestFields(), ...fields },
    (_key, value) =>
      value instanceof Error ? { name: value.name, message: value.message, stack: value.stack } : value,
  );
  (allToStderr || level === "error" || level === "warn" ? process.stderr : process.stdout).write(`${line}\n`);
}

export const log = {
  debug: (message: string, fields?: Record<string, unknown>) => write("debug", message, fields),
  info: (message: string, fields?: Record<string, unknown>) => write("info", message, fields),
  warn: (message: string, fields?: Record<string, unknown>) => write("warn", message, fields),
  error: (message: string, fields?: Record<string, unknown>) => write("error", message, fields),
};
