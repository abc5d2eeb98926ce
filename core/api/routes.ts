/**
 * The one route table. `sst.config.ts` turns it into API Gateway routes and Lambda functions;
 * the local server matches requests against it; the OpenAPI document is generated from it.
 * Keep it free of runtime imports: SST evaluates it while deploying.
 */
export type RateClass = "chat" | "search" | "ingest" | "default";
/** The Lambda function that serves a route (functions/http/<fn>.ts). */
export type FunctionName = "api" | "ingest" | "upload" | "search" | "chat" | "mcp";
export type Method = "GET" | "POST" | "PATCH" | "DELETE";

export interface Route {
  method: Method;
  path: string;
  fn: FunctionName;
  auth: boolean;
  rateClass: RateClass | null;
  summary: string;
}

const r = (method: Method, path: string, fn: FunctionName, rateClass: RateClass | null, summary: string): Route => ({
  method,
  path,
  fn,
  auth: rateClass !== null,
  rateClass,
  summary,
});

export const routes: Route[] = [
  r("GET", "/v1/health", "api", null, "Service and database health"),
  r("GET", "/v1/openapi.json", "api", null, "This API's OpenAPI 3.1 document"),
  r("POST", "/v1/ingest", "ingest", "ingest", "Add or replace documents"),
  r("POST", "/v1/documents/upload", "upload", "ingest", "Upload one file (PDF, Word, web page, Markdown, text, CSV)"),
  r("GET", "/v1/documents", "api", "default", "List documents, newest first"),
  r("GET", "/v1/documents/{id}", "api", "default", "Read one document"),
  r("PATCH", "/v1/documents/{id}", "ingest", "ingest", "Change a document"),
  r("DELETE", "/v1/documents/{id}", "api", "default", "Delete a document"),
  r("GET", "/v1/stats", "api", "default", "Counts for the caller's space"),
  r("POST", "/v1/search", "search", "search", "Hybrid, vector or keyword search"),
  r("POST", "/v1/chat", "chat", "chat", "Answer from the caller's documents with citations"),
  r("GET", "/v1/conversations", "api", "default", "List conversations, newest first"),
  r("GET", "/v1/conversations/{id}", "api", "default", "One conversation with its messages"),
  r("DELETE", "/v1/conversations/{id}", "api", "default", "Delete a conversation"),
  r("POST", "/api/ingest", "ingest", "ingest", "Digital Twin compatibility: ingest"),
  r("POST", "/api/chat", "chat", "chat", "Digital Twin compatibility: chat"),
  r("POST", "/mcp", "mcp", "default", "Model Context Protocol server (Streamable HTTP, stateless)"),
];

export const routeKey = (route: Pick<Route, "method" | "path">) => `${route.method} ${route.path}`;

export const functionNames: FunctionName[] = ["api", "ingest", "upload", "search", "chat", "mcp"];

/** Compiles `/v1/documents/{id}` into a matcher that yields path parameters. */
function compilePath(path: string): RegExp {
  const pattern = path.replace(/[.*+?^$()|[\]\\]/g, "\\$&").replace(/\\?\{(\w+)\\?\}/g, "(?<$1>[^/]+)");
  return new RegExp(`^${pattern.replaceAll("{", "").replaceAll("}", "")}$`);
}

const compiled = routes.map((route) => ({ route, regex: compilePath(route.path) }));

export type Match =
  | { kind: "route"; route: Route; params: Record<string, string> }
  | { kind: "method_not_allowed"; allow: Method[] }
  | { kind: "not_found" };

/** Finds the route for a request the way API Gateway would. */
export function match(method: string, path: string): Match {
  const allow: Method[] = [];
  for (const { route, regex } of compiled) {
    const m = regex.exec(path);
    if (!m) continue;
    if (route.method === method.toUpperCase()) {
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) params[k] = safeDecode(v);
      return { kind: "route", route, params };
    }
    allow.push(route.method);
  }
  return allow.length ? { kind: "method_not_allowed", allow } : { kind: "not_found" };
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
