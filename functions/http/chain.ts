/**
 * The middleware chain every HTTP function shares, on @middy/core: request id, CORS, the one
 * error handler, API-key auth with the optional end user, rate limiting by the route table's
 * class, and JSON body parsing with Lambda's 6 MB limit. Operations get parsed input and
 * return `{ status, body, headers }`.
 */
import middy, { type MiddlewareObj, type Request } from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { corsHeaders, errorResponse, parseBody, type Reply, requestIdOf, toResult } from "../../core/api/http";
import { type Route, routeKey, routes } from "../../core/api/routes";
import { Auth, type Caller } from "../../core/auth";
import { db } from "../../core/db";
import { EngramError } from "../../core/error";
import { RateLimit } from "../../core/ratelimit";

type Event = APIGatewayProxyEventV2;
type Result = APIGatewayProxyStructuredResultV2;

export type { Reply };

export interface HttpInput {
  /** The authenticated caller; only routes with `auth` have one. */
  caller: Caller;
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
  headers: Record<string, string | undefined>;
  requestId: string;
  method: string;
  path: string;
  /** Aborted when Lambda is about to time out (or the local client disconnects). */
  signal: AbortSignal;
}

export type Operation = (input: HttpInput) => Promise<Reply | Result>;

interface State {
  requestId: string;
  route: Route | undefined;
  caller?: Caller;
  body?: unknown;
  headers: Record<string, string>;
}

const byKey = new Map(routes.map((route) => [routeKey(route), route]));
const states = new WeakMap<Event, State>();
const stateOf = (request: Request<Event, Result>): State => {
  let state = states.get(request.event);
  if (!state) {
    state = { requestId: requestIdOf(request.event), route: byKey.get(request.event.routeKey), headers: {} };
    states.set(request.event, state);
  }
  return state;
};

type Middleware = MiddlewareObj<Event, Result>;

const requestId = (): Middleware => {
  const stamp = (request: Request<Event, Result>) => {
    const state = stateOf(request);
    if (request.response) {
      request.response.headers = { ...request.response.headers, ...state.headers, "x-request-id": state.requestId };
    }
  };
  return { before: (request) => void stateOf(request), after: stamp, onError: stamp };
};

const cors = (): Middleware => {
  const add = (request: Request<Event, Result>) => {
    if (request.response) request.response.headers = { ...request.response.headers, ...corsHeaders(request.event) };
  };
  return { after: add, onError: add };
};

/** Registered after the header middlewares so its onError runs before theirs. */
const errors = (): Middleware => ({
  onError: (request) => {
    request.response = errorResponse(request.error, { requestId: stateOf(request).requestId, route: request.event.routeKey });
  },
});

const auth = (): Middleware => ({
  before: async (request) => {
    const state = stateOf(request);
    if (!state.route?.auth) return;
    const headers = request.event.headers ?? {};
    const key = await Auth.authenticate(await db(), headers.authorization);
    state.caller = { ...key, userId: Auth.userIdFrom(headers["x-user-id"]) };
  },
});

const rateLimit = (): Middleware => ({
  before: async (request) => {
    const state = stateOf(request);
    if (!state.route?.rateClass || !state.caller) return;
    Object.assign(state.headers, await RateLimit.enforce(await db(), state.caller, state.route.rateClass));
  },
});

const body = (): Middleware => ({
  before: (request) => {
    stateOf(request).body = parseBody(request.event);
  },
});

const noCaller = new Proxy({} as Caller, {
  get: () => {
    throw new EngramError("internal", "internal", "This route has no authenticated caller.");
  },
});

/** Wraps a function's operations (keyed by API Gateway route key, `$default` for the rest) in the chain. */
export function http(operations: Record<string, Operation>) {
  return middy<Event, Result>()
    .use(requestId())
    .use(cors())
    .use(errors())
    .use(auth())
    .use(rateLimit())
    .use(body())
    .handler(async (event, _context, { signal }) => {
      const state = states.get(event);
      const operation = operations[event.routeKey] ?? operations.$default;
      if (!state || !operation) throw new EngramError("not_found", "route.not_found", `No route for ${event.routeKey}.`);
      const result = await operation({
        caller: state.caller ?? noCaller,
        params: (event.pathParameters ?? {}) as Record<string, string>,
        query: event.queryStringParameters ?? {},
        body: state.body,
        headers: event.headers ?? {},
        requestId: state.requestId,
        method: event.requestContext?.http?.method ?? "GET",
        path: event.rawPath ?? "/",
        signal,
      });
      return "statusCode" in result ? (result as Result) : toResult(result as Reply);
    });
}
