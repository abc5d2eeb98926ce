/**
 * The middleware chain every HTTP function shares, on @middy/core: request id, CORS, the one
 * error handler, API-key auth with the optional end user, rate limiting by the route table's
 * class, ingest admission per tenant (core/admission), and JSON body parsing with Lambda's 6 MB
 * limit. Operations get parsed input and
 * return `{ status, body, headers }`, or `{ status, headers, stream }` for a body written as it
 * is produced (server-sent events).
 *
 * Streams. A function made by `http()` has two faces. Called as a Lambda handler (API Gateway,
 * which cannot stream) it collects a stream and answers with the whole body. Its `live()` face
 * keeps the stream a stream and takes the transport's abort signal (the client went away): the
 * local server writes such a body as it comes, and ./stream.ts pipes it into Lambda response
 * streaming. Errors raised before the stream starts are ordinary JSON error responses on every path.
 */
import middy, { type MiddlewareObj, type Request } from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import * as Admission from "../../core/admission";
import {
  corsHeaders,
  errorResponse,
  parseBody,
  type Reply,
  rawBody,
  requestIdOf,
  SECURITY_HEADERS,
  toResult,
} from "../../core/api/http";
import {
  type BodyOf,
  match,
  type ParamsOf,
  type QueryOf,
  type ResponseOf,
  type Route,
  type RouteKey,
  routeKey,
  routes,
} from "../../core/api/routes";
import type { Caller } from "../../core/auth";
import * as Auth from "../../core/auth";
import { config } from "../../core/config";
import { db } from "../../core/db";
import { inLane } from "../../core/db/lane";
import { UNSTORABLE } from "../../core/db/text";
import { Id } from "../../core/document/schema";
import { EngramError } from "../../core/error";
import * as Gate from "../../core/gate";
import * as Log from "../../core/log";
import { log } from "../../core/log";
import * as RateLimit from "../../core/ratelimit";
import { isStreaming, type StreamingResult, type StreamReply } from "./stream";

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

export type { Reply, StreamReply };

/** What a route's handler is given: the query and body already validated by the route's contract. */
export interface HttpInput<K extends RouteKey = RouteKey> {
  /** The authenticated caller; only routes with `auth` have one. */
  caller: Caller;
  params: ParamsOf<K>;
  query: QueryOf<K>;
  body: BodyOf<K>;
  headers: Record<string, string | undefined>;
  requestId: string;
  method: string;
  path: string;
  /** Aborted when Lambda is about to time out (or the local client disconnects). */
  signal: AbortSignal;
}

/** A value as it may be handed to JSON.stringify for a JSON answer: Dates where strings are documented. */
type Sendable<T> = T extends string
  ? string extends T
    ? T | Date
    : T
  : T extends readonly (infer U)[]
    ? readonly Sendable<U>[]
    : T extends object
      ? { [P in keyof T]: Sendable<T[P]> }
      : T;

/** A JSON answer whose body is the route's documented 200 answer. */
export interface TypedReply<B> extends Reply {
  body: Sendable<B>;
}

/** A route's handler: typed from its contract entry, so a reply of the wrong shape fails to compile. */
export type Operation<K extends RouteKey> = (
  input: HttpInput<K>,
) => Promise<TypedReply<ResponseOf<K>> | StreamReply | Result>;

/** The input as the chain builds it, before a route's types are laid on it. */
type AnyInput = Omit<HttpInput, "params" | "query" | "body"> & {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
};

/** The catch-all for a request no route matched (404/405): nothing of it was validated. */
export type FallbackOperation = (input: AnyInput) => Promise<Reply | Result>;

/** A function's handlers by route key (a key no route has fails to compile), and its catch-all. */
export type Operations = { [K in RouteKey]?: Operation<K> } & { $default?: FallbackOperation };

export type LiveResult = Result | StreamingResult;

export interface HttpHandler {
  /** Lambda behind API Gateway: the whole response at once (a streamed body is collected first). */
  (event: Event, context: Context): Promise<Result>;
  /**
   * The local server and Lambda response streaming: a streamed body stays a stream. `signal`
   * aborts the operation's work when the client goes away.
   */
  live(event: Event, context: Context, signal?: AbortSignal): Promise<LiveResult>;
}

interface State {
  requestId: string;
  routeKey: string;
  route: Route | undefined;
  params: Record<string, string>;
  /** Aborted when the client goes away (set by the transport through `live()`). */
  transport: AbortSignal | undefined;
  caller?: Caller;
  body?: unknown;
  /** The query string, validated by the route's schema when it has one. */
  query?: Record<string, unknown>;
  headers: Record<string, string>;
  /** The class the chain's own decision counted this request in (a keyless caller's: not through the gate). */
  counted?: RateLimit.RateClass;
  /** Gives an admitted ingest's place back (core/admission). */
  release?: () => Promise<void>;
  /** The operation has started: it releases its own admission. */
  running?: boolean;
}

const byKey = new Map(routes.map((route) => [routeKey(route), route]));
const states = new WeakMap<Event, State>();
const transports = new WeakMap<Event, AbortSignal>();

/**
 * API Gateway names the route; a function URL sends every request as `$default`, so the route
 * is found from the method and path the way API Gateway would.
 */
function routeOf(event: Event): { key: string; route: Route | undefined; params: Record<string, string> } {
  const route = byKey.get(event.routeKey);
  if (route || (event.routeKey && event.routeKey !== "$default")) {
    return { key: event.routeKey, route, params: (event.pathParameters ?? {}) as Record<string, string> };
  }
  const found = match(event.requestContext?.http?.method ?? "GET", event.rawPath ?? "/");
  if (found.kind !== "route") return { key: "$default", route: undefined, params: {} };
  return { key: routeKey(found.route), route: found.route, params: found.params };
}

const stateOf = (request: Request<Event, LiveResult>): State => {
  let state = states.get(request.event);
  if (!state) {
    const { key, route, params } = routeOf(request.event);
    state = {
      requestId: requestIdOf(request.event),
      routeKey: key,
      route,
      params,
      transport: transports.get(request.event),
      headers: {},
    };
    states.set(request.event, state);
  }
  return state;
};

type Middleware = MiddlewareObj<Event, LiveResult>;

const requestId = (): Middleware => {
  const stamp = (request: Request<Event, LiveResult>) => {
    const state = stateOf(request);
    if (request.response) {
      // An answer whose count was given back (429 ingest.busy, 503 database.busy) keeps the policy, not the count's state.
      const { ratelimit: _spent, ...policy } = state.headers;
      request.response.headers = {
        // The limit's headers the chain decided, unless the operation said them itself (POST /mcp: a batch's
        // refused call, whose policy is what the answer reports, after calls the gate admitted).
        ...(RateLimit.givenBack(request.error) ? policy : state.headers),
        ...request.response.headers,
        ...SECURITY_HEADERS,
        "x-request-id": state.requestId,
      };
    }
  };
  return { before: (request) => void stateOf(request), after: stamp, onError: stamp };
};

const cors = (): Middleware => {
  const add = (request: Request<Event, LiveResult>) => {
    if (request.response) request.response.headers = { ...request.response.headers, ...corsHeaders(request.event) };
  };
  return { after: add, onError: add };
};

/** Registered after the header middlewares so its onError runs before theirs. */
const errors = (): Middleware => ({
  onError: (request) => {
    const state = stateOf(request);
    // The client is gone: nobody reads this answer, and it is no failure of ours.
    if (state.transport?.aborted) {
      log.info("request cancelled by the client", { requestId: state.requestId, route: state.routeKey });
      request.response = toResult({
        status: 499,
        body: { error: { code: "request.cancelled", message: "The client closed the request." } },
      });
      return;
    }
    request.response = errorResponse(request.error, { requestId: state.requestId, route: state.routeKey });
  },
});

let keylessWarned = false;
function warnKeylessOnce(tenant: string) {
  if (keylessWarned) return;
  keylessWarned = true;
  log.warn("KEYLESS_TENANT is set: /api/* routes accept requests without a key", { tenant });
}

/**
 * The caller from the API key and `X-User-Id`; on `/api/*` without a key, the KEYLESS_TENANT's
 * caller when that is set (the Digital Twin's clients send only `x-user-id`), limited per
 * address. The key and the rate limit are one statement (core/gate); search and chat defer it
 * into their own batch (one round trip in all), and any other answer of theirs first asks it.
 * Refused keys count against the client's address (API Gateway's source IP, the socket's
 * locally; a request without a key does not); past RATE_LIMIT_AUTH_FAILURES they are 429, and the address is refused
 * before its key is even looked at until Retry-After.
 */
const auth = (options: ChainOptions): Middleware => ({
  before: async (request) => {
    const state = stateOf(request);
    if (!state.route?.auth) return;
    const headers = request.event.headers ?? {};
    const address = addressOf(request.event);
    const keylessTenant = config().keylessTenant;
    if (keylessTenant && headers.authorization === undefined && state.route.path.startsWith("/api/")) {
      // No key to guess: the address's failed keys do not lock it out of these routes (it has their own limit).
      warnKeylessOnce(keylessTenant);
      state.caller = await Auth.keyless(await db(), keylessTenant, headers["x-user-id"], address);
      Log.setCaller(state.caller);
      return;
    }
    RateLimit.refuseBlockedAddress(address);
    const database = await db();
    const rateClass = state.route.rateClass ?? "default";
    await failedAuth(database, address, async () => {
      const caller = Gate.defer(headers.authorization, headers["x-user-id"], rateClass);
      state.caller = caller;
      Log.setCaller(caller);
      // The operation names the class (POST /mcp: its tool's) and runs the gate; else the chain does on the way out.
      if (options.rateLimit === "operation" || Gate.GATED.has(rateClass)) return;
      // An ingest is admitted (core/admission) in the same round trip as its key and limit.
      if (rateClass === "ingest")
        state.release = await Admission.admitIngest(database, caller, bodyBytes(request.event));
      else await Gate.open(database, caller);
    });
  },
  onError: async (request) => {
    const state = stateOf(request);
    const caller = state.caller;
    if (!caller || !Gate.has(caller)) return;
    const address = addressOf(request.event);
    const database = await db();
    // An answer that did no work (database.busy) costs no token: the gate is not asked (its key is checked on the
    // retry), or what it counted is given back.
    if (RateLimit.costsNothing(request.error)) {
      await Gate.refund(database, caller);
      return;
    }
    // A refusal by the key or the limit is the answer, before what the operation failed on.
    await failedAuth(database, address, async () => {
      if (Gate.unsettled(caller)) await Gate.open(database, caller);
      if (request.error instanceof EngramError && request.error.kind === "auth") throw request.error;
    }).catch((error: unknown) => {
      request.error = error as Error;
    });
    Object.assign(state.headers, Gate.headersOf(caller));
  },
});

const bodyBytes = (event: Event) => Buffer.byteLength(event.body ?? "");

const addressOf = (event: Event) => event.requestContext?.http?.sourceIp || "unknown";

/**
 * Whose part of a `pg` pool a request's queries draw on (core/db/pg.ts): its API key's, as auth reads the key
 * (`bearer` and `Bearer  ` name the same one), else its client address. Read before the key is checked, which
 * already takes a connection.
 */
const shareOf = (event: Event): string => {
  try {
    return `key:${Auth.keyFrom(event.headers?.authorization).hash.slice(0, 16)}`;
  } catch {
    return `address:${addressOf(event)}`; // no well-formed key: refused before long, counted by address meanwhile
  }
};

const counted = new WeakSet<object>();

/**
 * Runs `work`; a key it refuses counts, once, against the address (and may become 429). A request with no key guessed
 * nothing: counted, a misconfigured poller on a shared address locked out every client behind it.
 */
const failedAuth = (database: Awaited<ReturnType<typeof db>>, address: string, work: () => Promise<void>) =>
  work().catch((error: unknown) => {
    if (!(error instanceof EngramError && error.kind === "auth") || counted.has(error)) throw error;
    if (error.code === "auth.missing_key") throw error;
    counted.add(error);
    return RateLimit.countFailedAuth(database, address, error);
  });

const rateLimit = (options: ChainOptions): Middleware => ({
  before: async (request) => {
    const state = stateOf(request);
    if (options.rateLimit === "operation" || !state.route?.rateClass || !state.caller) return;
    if (Gate.has(state.caller)) return; // decided with the key
    const decided = await RateLimit.enforce(await db(), state.caller, state.route.rateClass);
    // Empty when the store was down and RATE_LIMIT_FAIL_MODE=open admitted uncounted.
    if (Object.keys(decided).length) state.counted = state.route.rateClass;
    Object.assign(state.headers, decided);
  },
  onError: async (request) => {
    const state = stateOf(request);
    // As auth's onError does for the gate's callers: an answer that did no work gives its token back.
    if (!state.counted || !state.caller || !RateLimit.costsNothing(request.error)) return;
    const rateClass = state.counted;
    state.counted = undefined;
    await RateLimit.refund(await db(), state.caller, rateClass);
  },
  after: async (request) => {
    const caller = stateOf(request).caller;
    if (!caller || !Gate.has(caller)) return;
    // Never an answer without the gate: an operation that did not run its work through it asks it now.
    if (Gate.unsettled(caller)) await Gate.open(await db(), caller);
    Object.assign(stateOf(request).headers, Gate.headersOf(caller));
  },
});

/** Ingests are admitted per tenant before their body is parsed (core/admission). */
const admission = (): Middleware => {
  const release = (request: Request<Event, LiveResult>) => {
    const state = stateOf(request);
    // A failure before the operation ran (its body, its validation) gives the place back here.
    if (state.release && !state.running) void state.release();
  };
  return {
    before: async (request) => {
      const state = stateOf(request);
      if (state.route?.rateClass !== "ingest" || !state.caller || state.release) return;
      state.release = await Admission.admitIngest(await db(), state.caller, bodyBytes(request.event));
    },
    onError: release,
  };
};

/**
 * Path ids are compared with stored text, which never holds NUL or unpaired surrogates (a 500 from Postgres), and an
 * id no document or conversation can have (a control character, over 256 characters) is refused as in a body, not
 * answered "not found".
 */
function checkParams(params: Record<string, string>): void {
  for (const [name, value] of Object.entries(params)) {
    if (UNSTORABLE.test(value)) {
      throw new EngramError(
        "input",
        "request.invalid_path",
        `The path's ${name} contains a NUL character or an unpaired surrogate, which no ${name} can.`,
      );
    }
    const checked = Id.safeParse(value);
    if (!checked.success) {
      const message = `The path's ${name} is no valid ${name}: ${checked.error.issues[0]?.message ?? "invalid"}.`;
      throw new EngramError("input", "request.invalid_path", message, {
        details: [{ path: name, message: checked.error.issues[0]?.message }],
      });
    }
  }
}

/**
 * A query parameter the route takes, sent twice, is refused, naming it: API Gateway joins the values with commas in
 * `queryStringParameters` (the local server does the same), so `limit=5&limit=6` was read as "5,6" and refused
 * with the value's message. `rawQueryString` keeps them apart. A name the route does not take is left to its
 * schema, which refuses it as unknown.
 */
function checkRepeated(rawQuery: string | undefined, taken: Record<string, unknown>): void {
  const seen = new Set<string>();
  const repeated = new Set<string>();
  for (const name of new URLSearchParams(rawQuery ?? "").keys()) {
    if (seen.has(name) && Object.hasOwn(taken, name)) repeated.add(name);
    seen.add(name);
  }
  if (repeated.size === 0) return;
  const names = [...repeated];
  throw new EngramError(
    "input",
    "request.invalid",
    `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} given more than once; send each query parameter once.`,
    { details: names.map((name) => ({ path: name, message: `${name} is given more than once` })) },
  );
}

/** No body, or one that says nothing (`{}`, `null`), as some HTTP clients send with every request. */
const emptyBody = (raw: unknown) =>
  raw === undefined ||
  raw === null ||
  (typeof raw === "object" && !Array.isArray(raw) && Object.keys(raw).length === 0);

/** Parses the body, then validates query and body with the route's contract schemas (a ZodError is a 400). */
const body = (): Middleware => ({
  before: (request) => {
    const state = stateOf(request);
    // No route, no body to read: a wrong path or method is answered 404 or 405 whatever was sent to it (a file posted to
    // a mistyped upload path had been told its body was not valid UTF-8).
    if (!state.route) return;
    checkParams(state.params);
    // A route that reads a form answers anything else with its own code (`upload.not_multipart`), not a JSON error.
    const raw =
      state.route?.rawBody?.type === "multipart/form-data" ? rawBody(request.event) : parseBody(request.event);
    const query = request.event.queryStringParameters ?? {};
    if (state.route?.query) checkRepeated(request.event.rawQueryString, state.route.query.shape);
    state.query = state.route?.query ? state.route.query.parse(query) : query;
    // A route that takes a JSON body and got none is told so, as for any body that is no JSON (not "expected object"):
    // POST /mcp, which reads its JSON itself, too (JSON-RPC's -32700, as for a body of spaces).
    if ((state.route?.body || state.route?.rawBody?.type === "application/json") && raw === undefined) {
      throw new EngramError(
        "input",
        "request.invalid_json",
        `The request body is empty; this route takes ${state.route.body ? "a JSON object" : "JSON"}.`,
      );
    }
    // A body a route would ignore is refused: `DELETE` with `{"hard": true}` had soft-deleted, answering 200.
    if (state.route && !state.route.body && !state.route.rawBody && !emptyBody(raw)) {
      const options = Object.keys(state.route.query?.shape ?? {});
      throw new EngramError(
        "input",
        "request.unexpected_body",
        `This route takes no request body${options.length ? `; send its options as query parameters (${options.join(", ")})` : ""}.`,
      );
    }
    state.body = state.route?.body ? state.route.body.parse(raw) : raw;
  },
});

const noCaller = new Proxy({} as Caller, {
  get: () => {
    throw new EngramError("internal", "internal", "This route has no authenticated caller.");
  },
});

/** Time kept back from Lambda's deadline to answer 503 instead of being cut off. */
const DEADLINE_MARGIN_MS = 100;

/**
 * Lambda's deadline for one request: its signal stops the operation's work (an embedding, the
 * model), and `race` answers 503 `request.timeout` when the deadline comes first. Per request on
 * purpose: middy's own early timeout (off below) aborts one signal shared by every request in the
 * process, so on the local server one request's deadline cut short all the others, and it
 * answered 500.
 */
function deadline(context: Context | undefined) {
  const controller = new AbortController();
  const remaining = context?.getRemainingTimeInMillis?.();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    if (remaining === undefined || !Number.isFinite(remaining)) return;
    timer = setTimeout(
      () => {
        const error = new EngramError(
          "unavailable",
          "request.timeout",
          "The request ran out of time before it finished; it may or may not have taken effect.",
          { retryAfterSeconds: 1 },
        );
        controller.abort(error);
        reject(error);
      },
      Math.max(0, remaining - DEADLINE_MARGIN_MS),
    );
  });
  return {
    signal: controller.signal,
    race: <T>(work: Promise<T>): Promise<T> => Promise.race([work, expired]),
    clear: () => clearTimeout(timer),
  };
}

export interface ChainOptions {
  /**
   * `operation`: the operation spends the caller's budget itself, once, in the class of what the
   * request turns out to do (POST /mcp: the tool it calls), instead of the route's class here: it
   * names the class (`Gate.reclass`) before the gate checks the key and decides, in one statement.
   */
  rateLimit?: "route" | "operation";
}

/** Wraps a function's operations (keyed by API Gateway route key, `$default` for the rest) in the chain. */
export function http(operations: Operations, options: ChainOptions = {}): HttpHandler {
  const byRoute = operations as Record<string, (input: AnyInput) => Promise<Reply | StreamReply | Result>>;
  const chain = middy<Event, LiveResult>({ timeoutEarlyInMillis: 0 })
    .use(requestId())
    .use(cors())
    .use(errors())
    .use(auth(options))
    .use(rateLimit(options))
    .use(admission())
    .use(body())
    .handler(async (event, context): Promise<LiveResult> => {
      const state = states.get(event);
      const operation = (state && byRoute[state.routeKey]) ?? byRoute.$default;
      if (!state || !operation) {
        throw new EngramError("not_found", "route.not_found", `No route for ${event.routeKey}.`);
      }
      const time = deadline(context);
      // An admitted ingest gives its place back when it is over, even after its deadline answered 503.
      const release = state.release;
      state.running = true;
      const run = (input: AnyInput) =>
        release ? Admission.atWorkTurn(() => operation(input)).finally(release) : operation(input);
      const result = await time
        .race(
          run({
            caller: state.caller ?? noCaller,
            params: state.params,
            query: state.query ?? {},
            body: state.body,
            headers: event.headers ?? {},
            requestId: state.requestId,
            method: event.requestContext?.http?.method ?? "GET",
            path: event.rawPath ?? "/",
            signal: state.transport ? AbortSignal.any([time.signal, state.transport]) : time.signal,
          }),
        )
        .finally(time.clear);
      if ("stream" in result) {
        // Sent after the handler returns; its lines are still this request's.
        return { statusCode: result.status ?? 200, headers: result.headers, body: Log.withinRequest(result.stream) };
      }
      return "statusCode" in result ? (result as Result) : toResult(result as Reply);
    });

  // Every query of an ingest request, its key and rate-limit checks too, runs in the bulk lane:
  // however many ingests arrive, they never take the connections kept for searches and chats.
  const run = (event: Event, context: Context) => {
    const { key, route } = routeOf(event);
    return Log.withRequest({ requestId: requestIdOf(event), route: key }, () =>
      inLane(route?.rateClass === "ingest" ? "bulk" : "interactive", () => chain(event, context), shareOf(event)),
    );
  };
  const handler = (async (event: Event, context: Context): Promise<Result> => {
    const result = await run(event, context);
    if (!isStreaming(result)) return result;
    let text = "";
    for await (const piece of result.body) text += piece;
    return { ...result, body: text };
  }) as HttpHandler;
  handler.live = (event, context, signal) => {
    if (signal) transports.set(event, signal);
    return run(event, context);
  };
  return handler;
}
