export * as OpenApi from "./openapi";

import { VERSION } from "../config";
import { routes } from "./routes";

/** The OpenAPI 3.1 document, generated from the route table and the request schemas. */
export function document() {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    paths[route.path] ??= {};
    (paths[route.path] as Record<string, unknown>)[route.method.toLowerCase()] = {
      summary: route.summary,
      security: route.auth ? [{ apiKey: [] }] : [],
    };
  }
  return {
    openapi: "3.1.0",
    info: { title: "Engram", version: VERSION },
    components: { securitySchemes: { apiKey: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
