import { USER_ID } from "../auth";
import { MessageRole, ROLES } from "../chat/schema";
import { VERSION } from "../config";
import { Bool } from "../document/schema";
import * as z from "../zod";
import { type Answer, type Route, routes } from "./routes";
import { routeSchemas } from "./schemas";

type Json = Record<string, unknown>;

const COMPONENTS = "#/components/schemas/";
const SHARED = `${COMPONENTS}__shared#/$defs/`;
const REQUEST_BODIES = "#/components/requestBodies/";

/** A JSON value, documented as any value: generators cannot type the recursive union (TypeScript calls it circular). */
const ANY_JSON = { description: "Any JSON value: string, number, boolean, null, array or object" };

type Io = "input" | "output";

/**
 * zod's JSON Schema, with what zod cannot say from the schema alone: query-string booleans are
 * booleans to a client, and a message's role is one of three (checked as text for its own code).
 */
const conversion = (io: Io) =>
  ({
    target: "draft-2020-12",
    io,
    unrepresentable: "any",
    override: ({ zodSchema, jsonSchema }: { zodSchema: unknown; jsonSchema: Json }) => {
      const replace = (by: Json) => {
        for (const key of Object.keys(jsonSchema))
          if (key !== "default" && key !== "description") delete jsonSchema[key];
        Object.assign(jsonSchema, by);
      };
      if (zodSchema === Bool) replace({ type: "boolean" });
      // zod leaves the default of a transformed value out of the input's schema; a boolean's default is plain.
      const def = (zodSchema as z.ZodMiniType)._zod.def as {
        type: string;
        innerType?: unknown;
        defaultValue?: unknown;
      };
      if (def.type === "default" && def.innerType === Bool) jsonSchema.default = def.defaultValue;
      if (zodSchema === MessageRole) replace({ type: "string", enum: [...ROLES] });
    },
  }) as const;

/**
 * Every named schema as a JSON Schema (2020-12), requests as clients send them and answers as the
 * API gives them, with references between them; definitions zod shares become components too.
 */
function componentSchemas(): { components: Record<string, Json>; refOf: Map<z.ZodMiniType, string> } {
  const refOf = new Map<z.ZodMiniType, string>();
  const components: Record<string, Json> = {};
  const { requests, responses } = routeSchemas();
  for (const [io, named] of [
    ["input", requests],
    ["output", responses],
  ] as const) {
    const registry = z.registry<{ id: string }>();
    for (const [id, schema] of Object.entries(named)) {
      // A schema both sides name alike (JsonValue: metadata sent and answered) is one component both refer to.
      const ref = `${COMPONENTS}${id}`;
      if ((refOf.get(schema) ?? ref) !== ref) continue;
      registry.add(schema, { id });
      refOf.set(schema, ref);
    }
    const { schemas: converted } = z.toJSONSchema(registry, { ...conversion(io), uri: (id) => `${COMPONENTS}${id}` });
    const { __shared, ...rest } = converted as Record<string, Json>;
    for (const [id, schema] of Object.entries({ ...rest, ...((__shared?.$defs as Record<string, Json>) ?? {}) })) {
      const { $schema: _schema, $id: _id, ...body } = schema;
      components[id] = relink(body) as Json;
    }
  }
  components.JsonValue = ANY_JSON;
  return { components, refOf };
}

/**
 * Tidies zod's output for OpenAPI: `#/components/schemas/__shared#/$defs/x` (its registry form)
 * becomes a plain component reference, the safe-integer bounds of every `.int()` go, and a
 * property marked `REQUIRED_IN_DOCS` becomes required, without its default; a tuple of one type
 * becomes an array of it (its length stays in minItems/maxItems).
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
  // A tuple of one type (a page range) as an array of it with its length: openapi-fetch's Readable<>
  // turns tuples into arrays, so a generated client's own types would disagree with each other.
  const tuple = out.prefixItems as unknown[] | undefined;
  if (tuple?.length && tuple.every((item) => JSON.stringify(item) === JSON.stringify(tuple[0]))) {
    out.items = tuple[0];
    delete out.prefixItems;
  }
  const properties = (value as Json).properties as Record<string, Json> | undefined;
  const marked = Object.keys(properties ?? {}).filter((name) => properties?.[name]?.[z.REQUIRED_IN_DOCS] === true);
  if (marked.length) {
    out.required = [...new Set([...((out.required as string[]) ?? []), ...marked])];
    for (const name of marked) delete (out.properties as Record<string, Json>)[name]?.default;
  }
  return out;
}

function schemaFor(schema: z.ZodMiniType, refOf: Map<z.ZodMiniType, string>, io: Io): Json {
  const ref = refOf.get(schema);
  if (ref) return { $ref: ref };
  const { $schema: _schema, ...body } = z.toJSONSchema(schema, conversion(io)) as Json;
  return relink(body) as Json;
}

function queryParameters(query: z.ZodMiniObject): Json[] {
  const object = schemaFor(query, new Map(), "input") as { properties?: Record<string, Json>; required?: string[] };
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
function errorResponses(route: Route, refOf: Map<z.ZodMiniType, string>): Record<string, Json> {
  const out: Record<string, Json> = {};
  const takesBody = route.body ?? route.rawBody;
  if (takesBody || route.query || route.auth) {
    out["400"] = error(
      route.auth
        ? "Invalid input (`details` lists the failing paths), or an X-User-Id that is not 1-128 of `[A-Za-z0-9._:@-]` (`user.invalid_id`)"
        : "Invalid input; `details` lists the failing paths",
    );
  }
  if (route.auth) out["401"] = error("Missing, unknown or revoked API key");
  if (route.path.includes("{")) out["404"] = error("No such item in the caller's space");
  if (takesBody) {
    out["413"] = error(
      route.fn === "upload"
        ? "File over 4 MB (`upload.too_large`: API Gateway hands it to Lambda base64-encoded), body over 6 MB, or a file that holds too much: over 2,000 pages (`extract.too_many_pages`), over 1,000,000 characters of text (`extract.too_much_text`), a .docx whose parts mammoth reads expand past 32 MB or a PDF whose streams decode past 64 MB (`extract.too_large`)"
        : "Body over 6 MB (`request.too_large`), or a text over the limit its field states (`document.too_large`, `chat.message_too_long`)",
    );
  }
  out["414"] = error("URL longer than 8 KB");
  if (takesBody) out["415"] = error("Body sent compressed (`Content-Encoding`: `request.unsupported_encoding`)");
  if (route.rateClass) {
    out["429"] = {
      ...error(
        route.rateClass === "ingest"
          ? "Rate limited (`ratelimit.exceeded`), too many failed keys from this address (`auth.too_many_failures`), or the tenant's ingests in flight at their bound (`ingest.busy`, not counted: no `RateLimit` field); wait Retry-After seconds, which a refusal by a limit also gives as `RateLimit`'s `t`"
          : "Rate limited (or too many failed keys from this address); wait Retry-After seconds, also given as `RateLimit`'s `t`",
      ),
      headers: rateLimitHeaders(true),
    };
  }
  if (["ingest", "upload", "search", "chat", "mcp"].includes(route.fn))
    out["502"] = error("The embedding or chat model failed");
  out["500"] = error("Unexpected failure (logged with the request id)");
  out["503"] = error(
    ["ingest", "upload", "search", "chat", "mcp"].includes(route.fn)
      ? "Database unavailable (`database.unavailable`, `database.busy`), a missing secret (`config.missing`), the model provider rate limiting (`embedding.rate_limited`, `chat.rate_limited`: its Retry-After passed on), or the request past its deadline (`request.timeout`)"
      : "Database unavailable (`database.unavailable`, `database.busy`), or a missing secret (`config.missing`)",
  );
  for (const [status, { description, body }] of Object.entries(route.answers ?? {})) {
    out[status] =
      body === null
        ? { description }
        : body
          ? { description, content: { "application/json": { schema: schemaFor(answer(body), refOf, "output") } } }
          : error(description);
  }
  return out;
}

const header = (description: string, type = "string") => ({ description, schema: { type } });

function rateLimitHeaders(refused = false): Record<string, Json> {
  return {
    "RateLimit-Policy": header('The policy, e.g. `"chat";q=20;w=60` (IETF draft)'),
    RateLimit: header(
      'What is left, e.g. `"chat";r=7;t=41` (IETF draft): `r` requests now, the budget full again in `t` seconds; on a 429, `t` is its Retry-After',
    ),
    ...(refused ? { "Retry-After": header("Seconds to wait", "integer") } : {}),
  };
}

/** An answer's schema: by its name in the contract, or the one the entry holds. */
export const answer = (ref: Answer): z.ZodMiniType => (typeof ref === "string" ? routeSchemas().byName[ref] : ref);

/** The body a route documents: the one the chain validates, or the one its core function reads. */
export function bodySchema(route: Route): z.ZodMiniType | undefined {
  const raw = route.rawBody?.schema;
  return route.body ?? (raw && answer(raw));
}

function operation(route: Route, refOf: Map<z.ZodMiniType, string>, requestBodies: Map<string, string>): Json {
  const parameters = [
    ...pathParameters(route.path),
    ...(route.query ? queryParameters(route.query) : []),
    ...(route.auth ? [{ $ref: "#/components/parameters/UserId" }] : []),
  ];
  const request = bodySchema(route);
  const body = request ? schemaFor(request, refOf, "input") : undefined;
  const named = typeof body?.$ref === "string" ? requestBodies.get(body.$ref) : undefined;
  return {
    operationId: `${route.method.toLowerCase()}${route.path.replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string = "") => c.toUpperCase())}`,
    summary: route.summary,
    tags: [
      route.path.startsWith("/api/")
        ? "compatibility"
        : route.path === "/mcp"
          ? "mcp"
          : (route.path.split("/")[2] ?? ""),
    ],
    security: route.auth ? [{ bearer: [] }] : [],
    ...(parameters.length ? { parameters } : {}),
    ...(body
      ? {
          requestBody: named
            ? { $ref: named }
            : { required: true, content: { [route.rawBody?.type ?? "application/json"]: { schema: body } } },
        }
      : {}),
    responses: {
      "200": {
        description: route.streams
          ? "OK. With `stream: true` the answer is `text/event-stream` instead: one `citations` event, `delta`s, then `done` (or `error`); `x-events` gives each event's data schema. With `format: \"ui-message-stream\"` it is the Vercel AI SDK's UI message stream protocol (for useChat). Only JSON is listed under content, so generated clients type the JSON answer."
          : "OK",
        headers: {
          "X-Request-Id": header("This request's id (also in logs)"),
          ...(route.auth ? rateLimitHeaders() : {}),
        },
        content: { "application/json": { schema: schemaFor(answer(route.response), refOf, "output") } },
        ...(route.streams
          ? {
              // Inline: OpenAPI 3.1 has no place for an event stream's items that generators read (3.2's itemSchema).
              "x-events": Object.fromEntries(
                Object.entries(route.streams).map(([event, name]) => [
                  event,
                  schemaFor(answer(name), new Map(), "output"),
                ]),
              ),
            }
          : {}),
      },
      ...errorResponses(route, refOf),
    },
  };
}

/** The document, as much typed as its answer schema (OpenApiDocument) says. */
export type Document = Json & { openapi: string; info: Json & { title: string; version: string }; paths: Json };

function build(): Document {
  const { components, refOf } = componentSchemas();
  // Bodies go to components.requestBodies: generators (openapi-typescript) then keep fields with defaults optional.
  const requestBodies = new Map<string, string>();
  const bodies: Record<string, Json> = {};
  for (const route of routes) {
    const body = bodySchema(route);
    const ref = body && refOf.get(body);
    if (!ref || requestBodies.has(ref)) continue;
    const name = ref.slice(COMPONENTS.length);
    requestBodies.set(ref, `${REQUEST_BODIES}${name}`);
    bodies[name] = { required: true, content: { "application/json": { schema: components[name] } } };
    delete components[name];
  }
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    (paths[route.path] as Json)[route.method.toLowerCase()] = operation(route, refOf, requestBodies);
  }
  return {
    openapi: "3.1.0",
    jsonSchemaDialect: "https://json-schema.org/draft/2020-12/schema",
    info: {
      title: "Engram",
      version: VERSION,
      description:
        "Memory and retrieval-augmented chat over your documents. Every error is `{ error: { code, message, details? } }`; every response carries `X-Request-Id`.",
      // No licence has been granted for Engram yet (package.json is private); change both together.
      license: { name: "UNLICENSED", url: "https://docs.npmjs.com/cli/configuring-npm/package-json#license" },
    },
    servers: [{ url: "/", description: "The host serving this document (http://localhost:3000 under npm start)" }],
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
      requestBodies: bodies,
      schemas: components,
    },
    paths,
  };
}

let cached: Document | undefined;

/** The OpenAPI 3.1 document, generated from the route table and the zod schemas once per process. */
export function document(): Document {
  cached ??= build();
  return cached;
}
