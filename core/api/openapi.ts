export * as OpenApi from "./openapi";

import { USER_ID } from "../auth";
import { VERSION } from "../config";
import * as z from "../zod";
import { type Route, routeKey, routes } from "./routes";
import { type RouteSchemas, routeSchemas } from "./schemas";

type Json = Record<string, unknown>;

const COMPONENTS = "#/components/schemas/";
const SHARED = `${COMPONENTS}__shared#/$defs/`;

/**
 * Every named schema as a JSON Schema (2020-12, request schemas as clients send them), with
 * references between them; definitions zod shares (recursive JSON values) become components too.
 */
function componentSchemas(): { components: Record<string, Json>; refOf: Map<z.ZodMiniType, string> } {
  const registry = z.registry<{ id: string }>();
  const refOf = new Map<z.ZodMiniType, string>();
  for (const [id, schema] of Object.entries(routeSchemas().named)) {
    if (refOf.has(schema)) continue;
    registry.add(schema, { id });
    refOf.set(schema, `${COMPONENTS}${id}`);
  }
  const { schemas: converted } = z.toJSONSchema(registry, {
    target: "draft-2020-12",
    io: "input",
    unrepresentable: "any",
    uri: (id) => `${COMPONENTS}${id}`,
  });
  const { __shared, ...rest } = converted as Record<string, Json>;
  const components: Record<string, Json> = {};
  for (const [id, schema] of Object.entries({ ...rest, ...((__shared?.$defs as Record<string, Json>) ?? {}) })) {
    const { $schema: _schema, $id: _id, ...body } = schema;
    components[id] = relink(body) as Json;
  }
  return { components, refOf };
}

/**
 * Tidies zod's output for OpenAPI: `#/components/schemas/__shared#/$defs/x` (its registry form)
 * becomes a plain component reference, the safe-integer bounds of every `.int()` go, and a
 * property marked `REQUIRED_IN_DOCS` becomes required, without its default.
 */
function relink(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(relink);
  if (!value || typeof value !== "object") return value;
  const out: Json = {};
  for (const [k, v] of Object.entries(value)) {
    if ((k === "minimum" || k === "maximum") && Math.abs(v as number) === Number.MAX_SAFE_INTEGER) continue;
    if (k === z.REQUIRED_IN_DOCS) continue;
    out[k] =
      k === "$ref" && typeof v === "string" && v.startsWith(SHARED) ? COMPONENTS + v.slice(SHARED.length) : relink(v);
  }
  const properties = (value as Json).properties as Record<string, Json> | undefined;
  const marked = Object.keys(properties ?? {}).filter((name) => properties?.[name]?.[z.REQUIRED_IN_DOCS] === true);
  if (marked.length) {
    out.required = [...new Set([...((out.required as string[]) ?? []), ...marked])];
    for (const name of marked) delete (out.properties as Record<string, Json>)[name]?.default;
  }
  return out;
}

function schemaFor(schema: z.ZodMiniType, refOf: Map<z.ZodMiniType, string>): Json {
  const ref = refOf.get(schema);
  if (ref) return { $ref: ref };
  const { $schema: _schema, ...body } = z.toJSONSchema(schema, {
    target: "draft-2020-12",
    io: "input",
    unrepresentable: "any",
  }) as Json;
  return relink(body) as Json;
}

function queryParameters(query: z.ZodMiniObject): Json[] {
  const object = schemaFor(query, new Map()) as { properties?: Record<string, Json>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, schema]) => {
    const { description, ...rest } = schema;
    return {
      name,
      in: "query",
      required: object.required?.includes(name) ?? false,
      ...(description ? { description } : {}),
      schema: rest,
    };
  });
}

const pathParameters = (path: string): Json[] =>
  [...path.matchAll(/\{(\w+)\}/g)].map(([, name]) => ({
    name,
    in: "path",
    required: true,
    schema: { type: "string" },
  }));

const error = (description: string) => ({
  description,
  content: { "application/json": { schema: { $ref: `${COMPONENTS}Error` } } },
});

/** The errors a route can answer, from what it takes and does. */
function errorResponses(route: Route, s: RouteSchemas): Record<string, Json> {
  const out: Record<string, Json> = {};
  if (s.body || s.query) out["400"] = error("Invalid input; `details` lists the failing paths");
  if (route.auth) out["401"] = error("Missing, unknown or revoked API key");
  if (route.path.includes("{")) out["404"] = error("No such item in the caller's space");
  if (s.body) out["413"] = error("Body over 6 MB, or content over its limit");
  if (route.rateClass)
    out["429"] = { ...error("Rate limited; wait Retry-After seconds"), headers: rateLimitHeaders(true) };
  if (["ingest", "search", "chat"].includes(route.fn)) out["502"] = error("The embedding or chat model failed");
  out["500"] = error("Unexpected failure (logged with the request id)");
  out["503"] = error("Database unavailable, or a missing secret (`config.missing`)");
  return out;
}

const header = (description: string, type = "string") => ({ description, schema: { type } });

function rateLimitHeaders(refused = false): Record<string, Json> {
  return {
    "RateLimit-Policy": header('The policy, e.g. `"chat";q=20;w=60` (IETF draft)'),
    RateLimit: header('What is left, e.g. `"chat";r=7;t=41` (IETF draft)'),
    ...(refused ? { "Retry-After": header("Seconds to wait", "integer") } : {}),
  };
}

function operation(route: Route, refOf: Map<z.ZodMiniType, string>): Json {
  const s = routeSchemas().schemas[routeKey(route)] ?? {};
  const parameters = [
    ...pathParameters(route.path),
    ...(s.query ? queryParameters(s.query) : []),
    ...(route.auth ? [{ $ref: "#/components/parameters/UserId" }] : []),
  ];
  const json = s.response
    ? { "application/json": { schema: schemaFor(s.response, refOf) } }
    : { "application/json": {} };
  const events = s.streams ? { "text/event-stream": { schema: { type: "string" } } } : {};
  return {
    operationId: `${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string = "") => c.toUpperCase())}`,
    summary: route.summary,
    tags: [route.path.startsWith("/api/") ? "compatibility" : (route.path.split("/")[2] ?? "")],
    security: route.auth ? [{ bearer: [] }] : [],
    ...(parameters.length ? { parameters } : {}),
    ...(s.body
      ? { requestBody: { required: true, content: { "application/json": { schema: schemaFor(s.body, refOf) } } } }
      : {}),
    responses: {
      "200": {
        description: s.streams
          ? "OK; with `stream: true`, server-sent events: `citations`, then `delta`s, then `done` with usage"
          : "OK",
        headers: {
          "X-Request-Id": header("This request's id (also in logs)"),
          ...(route.auth ? rateLimitHeaders() : {}),
        },
        content: { ...json, ...events },
      },
      ...errorResponses(route, s),
    },
  };
}

function build(): Json {
  const { components, refOf } = componentSchemas();
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    (paths[route.path] as Json)[route.method.toLowerCase()] = operation(route, refOf);
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Engram",
      version: VERSION,
      description:
        "Memory and retrieval-augmented chat over your documents. Every error is `{ error: { code, message, details? } }`; every response carries `X-Request-Id`.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer", bearerFormat: "egm_<random>" } },
      parameters: {
        UserId: {
          name: "X-User-Id",
          in: "header",
          required: false,
          description: "The end user: writes go to their private space, reads see it plus the shared space",
          schema: { type: "string", pattern: USER_ID.source },
        },
      },
      schemas: components,
    },
    paths,
  };
}

let cached: Json | undefined;

/** The OpenAPI 3.1 document, generated from the route table and the zod schemas once per process. */
export function document(): Json {
  cached ??= build();
  return cached;
}
