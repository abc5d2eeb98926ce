/**
 * The route contract (core/api/routes.ts): the route table derived from its keys, and the types it lays on
 * handlers. The type checks run under `npm run typecheck`: each `@ts-expect-error` line fails to compile
 * the day it stops being an error, so a misspelt route key or a reply of the wrong shape staying legal
 * fails the build.
 */
import { describe, expect, it } from "vitest";
import { contract, match, type RouteKey, routes } from "../../core/api/routes";
import { http } from "../../functions/http/chain";

describe("the route contract", () => {
  it("derives each route's method, path and key from its contract key, and a key only where a rate class is", () => {
    expect(routes.map((route) => route.key)).toEqual(Object.keys(contract));
    for (const route of routes) {
      expect(`${route.method} ${route.path}`).toBe(route.key);
      expect(route.auth, route.key).toBe(route.rateClass !== null);
      const sample = route.path.replaceAll(/\{\w+\}/g, "x");
      const found = match(route.method, sample);
      expect(found.kind === "route" && found.route.key, route.key).toBe(route.key);
    }
  });

  it("validates with the schemas the handlers are typed from", () => {
    const search = contract["POST /v1/search"].body;
    expect(search.safeParse({ query: "refunds" }).data).toMatchObject({ query: "refunds", topK: 5, mode: "hybrid" });
    expect(search.safeParse({ query: "" }).success).toBe(false);
    expect(contract["GET /v1/documents"].query.parse({ limit: "7" })).toMatchObject({ limit: 7 });
  });

  it("refuses at compile time a route key no route has, a reply of the wrong shape and input a route does not take", () => {
    const handlers = [
      http({
        // @ts-expect-error: no route is keyed "POST /v1/serch"
        "POST /v1/serch": async () => ({ body: {} }),
      }),
      http({
        // @ts-expect-error: a search answers a SearchResponse, not a count
        "POST /v1/search": async () => ({ body: { count: 1 } }),
      }),
      http({
        // @ts-expect-error: the body is the route's parsed request: a search request has no `documents`
        "POST /v1/search": async ({ body }) => ({ body: body.documents }),
      }),
      http({
        // @ts-expect-error: the path's parameters come from its `{braces}`: this route has `id`, not `slug`
        "DELETE /v1/conversations/{id}": async ({ params }) => ({ body: { id: params.slug, deleted: true } }),
      }),
      http({
        // A reply of the documented shape compiles: the query is the schema's output (a number, not text).
        "GET /v1/documents": async ({ query }) => ({ body: { documents: [], nextCursor: String(query.limit) } }),
      }),
    ];
    // @ts-expect-error: a route key names a route of the contract
    const misspelt: RouteKey = "GET /v1/healt";
    expect(Object.keys(contract)).not.toContain(misspelt);
    expect(Object.keys(contract)).not.toContain("POST /v1/serch");
    expect(handlers.every((handler) => typeof handler.live === "function")).toBe(true);
  });
});
