/**
 * Requests derived from a route's contract, for a route with no hand-written generator (./requests.ts): its
 * path parameters, and its query and body as the OpenAPI document states them (the JSON Schema of the zod
 * schemas the chain validates with). Clean requests follow the schema; wild ones may break any field, add
 * hostile keys, break the body, or send a wrong key or X-User-Id. Written here because zod-fast-check, the
 * library that derives arbitraries from schemas, supports neither zod 4 nor fast-check 4.
 */
import fc from "fast-check";
import * as OpenApi from "../../core/api/openapi";
import { type Route, type RouteKey, routes } from "../../core/api/routes";
import {
  anyJson,
  arrayText,
  encodePathSegment,
  hostileString,
  numberText,
  pathId,
  queryValue,
  str,
} from "./arbitraries";
import { type Build, body, type Ctx, either, jsonField, object, query, ROUTES, request } from "./requests";

/** The parts of a JSON Schema node these generators read. */
interface Schema {
  $ref?: string;
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  required?: string[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minItems?: number;
  maxItems?: number;
}
interface Operation {
  parameters?: { $ref?: string; name: string; in: string; schema?: Schema }[];
  requestBody?: { $ref?: string; content?: Record<string, { schema?: Schema }> };
}

type Arb<T> = fc.Arbitrary<T>;

/** Cases per run for a derived route (at FUZZ_SCALE=1): the smaller hand-written routes' share. */
export const DERIVED_RUNS = 100;
/** Nesting past this is any JSON: a recursive schema must not recurse forever. */
const MAX_DEPTH = 6;

const doc = () => OpenApi.document() as unknown as Record<string, unknown>;

function deref<T extends { $ref?: string }>(node: T): T {
  if (!node.$ref) return node;
  let at: unknown = doc();
  for (const key of node.$ref.replace(/^#\//, "").split("/")) at = (at as Record<string, unknown> | undefined)?.[key];
  return deref((at ?? {}) as T);
}

/** A string the schema allows: its format, within its lengths, matching its pattern (else a plain word that does). */
function cleanString(node: Schema): Arb<string> {
  if (node.format === "date-time" || node.format === "date") {
    return fc
      .date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2100-01-01T00:00:00Z"), noInvalidDate: true })
      .map((d) => (node.format === "date" ? d.toISOString().slice(0, 10) : d.toISOString()));
  }
  const min = node.minLength ?? 0;
  const max = Math.max(min, Math.min(node.maxLength ?? 60, 60));
  const pattern = node.pattern ? new RegExp(node.pattern, "u") : undefined;
  const fallback = "example".padEnd(min, "x").slice(0, Math.max(min, Math.min(max, 7)));
  return fc
    .oneof(
      fc.constantFrom("refund", "alpha bravo", "What is the refund window?", "🧠", "ünï cödé"),
      fc.string({ unit: "grapheme", minLength: min, maxLength: max }),
    )
    .map((s) => (s.length >= min && s.length <= max && (!pattern || pattern.test(s)) ? s : fallback));
}

function cleanNumber(node: Schema, integer: boolean): Arb<string> {
  const low = node.minimum ?? (node.exclusiveMinimum !== undefined ? node.exclusiveMinimum + 1 : -1000);
  const high = node.maximum ?? (node.exclusiveMaximum !== undefined ? node.exclusiveMaximum - 1 : 1000);
  return integer
    ? fc.integer({ min: Math.ceil(low), max: Math.floor(high) }).map(String)
    : fc.double({ min: low, max: high, noNaN: true, noDefaultInfinity: true }).map((n) => JSON.stringify(n));
}

/** A value of the schema as JSON text: clean, or (wild) with any field hostile. */
export function jsonOf(node: Schema, wild: boolean, depth = 0): Arb<string> {
  node = deref(node);
  if (depth > MAX_DEPTH) return anyJson;
  if (node.const !== undefined) return either(wild, fc.constant(JSON.stringify(node.const)), anyJson);
  if (node.enum?.length) {
    return either(wild, fc.constantFrom(...node.enum.map((v) => JSON.stringify(v))), hostileString.map(str));
  }
  const members = node.anyOf ?? node.oneOf;
  if (members?.length) return fc.oneof(...members.map((m) => jsonOf(m, wild, depth + 1)));
  const types = Array.isArray(node.type) ? node.type : node.type ? [node.type] : [];
  if (types.length > 1) return fc.oneof(...types.map((type) => jsonOf({ ...node, type }, wild, depth)));
  switch (types[0]) {
    case "string":
      return either(wild, cleanString(node), hostileString).map(str);
    case "integer":
    case "number":
      return either(wild, cleanNumber(node, types[0] === "integer"), numberText);
    case "boolean":
      return either(wild, fc.boolean().map(String), anyJson);
    case "null":
      return either(wild, fc.constant("null"), anyJson);
    case "array": {
      const minLength = node.minItems ?? 0;
      const items = fc.array(jsonOf(node.items ?? {}, wild, depth + 1), {
        minLength,
        maxLength: Math.max(minLength, Math.min(node.maxItems ?? 4, 4)),
      });
      return items.map(arrayText);
    }
    case "object": {
      const fields = Object.fromEntries(
        Object.entries(node.properties ?? {}).map(([name, prop]) => [
          name,
          jsonField(wild, jsonOf(prop, wild, depth + 1)),
        ]),
      );
      const extra = typeof node.additionalProperties === "object" ? node.additionalProperties : undefined;
      if (extra && !node.properties) {
        const entries = fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), jsonOf(extra, wild, depth + 1), {
          maxKeys: 3,
        });
        return entries.map(
          (record) =>
            `{${Object.entries(record)
              .map(([k, v]) => `${str(k)}:${v}`)
              .join(",")}}`,
        );
      }
      return object(wild, fields, node.required ?? []);
    }
    default:
      // No type: any JSON value (metadata's values).
      return wild ? anyJson : fc.constantFrom('"text"', "1", "true", "null", '{"a":1}', "[1,2]");
  }
}

/** A query parameter's value as text: clean from its schema, or (wild) any query value. */
const queryText = (node: Schema, wild: boolean): Arb<string> =>
  either(
    wild,
    jsonOf(node, false).map((text) => {
      const value = JSON.parse(text) as unknown;
      return typeof value === "string" ? value : String(value);
    }),
    queryValue,
  );

/** A route's requests, from its contract. */
export function fromContract(route: Route): Build {
  const op = (doc().paths as Record<string, Record<string, Operation>>)[route.path]?.[route.method.toLowerCase()];
  const parameters = (op?.parameters ?? []).map((p) => deref(p));
  const requestBody = op?.requestBody && deref(op.requestBody);
  const bodySchema = requestBody?.content?.["application/json"]?.schema;
  return (c, wild) => {
    const ids = [...c.docIds, ...c.conversations];
    const segment = () => (wild ? pathId(ids) : fc.constantFrom(...ids).map(encodePathSegment));
    const names = [...route.path.matchAll(/\{(\w+)\}/g)].map(([, name]) => name as string);
    const path = fc
      .tuple(...names.map(() => segment()))
      .map((values) => names.reduce((p, name, i) => p.replace(`{${name}}`, values[i] ?? ""), route.path));
    const queries = parameters.filter((p) => p.in === "query");
    return request(c, wild, route.method, names.length ? path : route.path, {
      query: query(wild, Object.fromEntries(queries.map((p) => [p.name, queryText(p.schema ?? {}, wild)]))),
      body: bodySchema ? body(wild, jsonOf(bodySchema, wild)) : undefined,
    });
  };
}

export interface Generator {
  key: RouteKey;
  runs: number;
  build: Build;
  /** Derived from the contract: the route has no hand-written generator. */
  derived: boolean;
}

/**
 * Every route of the contract with its generator: the hand-written ones in their order, then the derived
 * ones; deletes last, since they remove what the other routes aim at.
 */
export function generators(): Generator[] {
  const written = Object.entries(ROUTES).map(([key, spec]) => ({ key: key as RouteKey, ...spec, derived: false }));
  const derived = routes
    .filter((route) => !ROUTES[route.key])
    .map((route) => ({ key: route.key, runs: DERIVED_RUNS, build: fromContract(route), derived: true }));
  const all = [...written, ...derived];
  return [...all.filter((g) => !g.key.startsWith("DELETE ")), ...all.filter((g) => g.key.startsWith("DELETE "))];
}

export type { Ctx };
