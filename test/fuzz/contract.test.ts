/**
 * The requests derived from a route's contract (./contract.ts), which fuzz any route that has no hand-written
 * generator: tried here on every route of the contract, with a fixed seed, against the route's own schemas.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Route, routeKey, routes } from "../../core/api/routes";
import type { EventInput } from "../../kit/events";
import { fromContract, generators } from "./contract";
import { type Ctx, ROUTES } from "./requests";

const ctx: Ctx = {
  key: "egm_test",
  otherKey: "egm_other",
  docIds: ["doc-1", "a/b"],
  conversations: ["conv-1"],
  documentCursors: [],
  conversationCursors: [],
};

/** Whether the route's schemas accept the request's query and body (a deep or broken body does not pass). */
function passes(route: Route, request: EventInput): boolean {
  try {
    const body = request.rawBody === undefined ? undefined : JSON.parse(request.rawBody);
    return (
      (route.query?.safeParse(request.query ?? {}).success ?? true) && (route.body?.safeParse(body).success ?? true)
    );
  } catch {
    return false;
  }
}

const share = (route: Route, wild: boolean) => {
  const samples = fc.sample(fromContract(route)(ctx, wild), { numRuns: 100, seed: 18 });
  return samples.filter((request) => passes(route, request)).length / samples.length;
};

const validated = routes.filter((route) => route.body || route.query);

describe("requests derived from the contract", () => {
  it("get past each route's own validation when clean, often enough to reach its core function", () => {
    expect(validated.length).toBeGreaterThan(5);
    for (const route of validated) expect(share(route, false), route.key).toBeGreaterThanOrEqual(0.2);
  });

  it("are mostly refused by validation when wild, for every route with a body", () => {
    for (const route of validated.filter((r) => r.body)) expect(share(route, true), route.key).toBeLessThan(0.5);
  });

  it("aim at the route's own path, its parameters filled in", () => {
    for (const route of routes) {
      const [request] = fc.sample(fromContract(route)(ctx, false), { numRuns: 1, seed: 18 });
      const pattern = new RegExp(`^${route.path.replace(/\{\w+\}/g, "[^/]+")}$`);
      expect(request?.method, route.key).toBe(route.method);
      expect(request?.path, route.key).toMatch(pattern);
    }
  });

  it("fuzz every route: its hand-written generator where it has one, derived where it has none", () => {
    const all = generators();
    expect(all.map((g) => g.key).sort()).toEqual(routes.map(routeKey).sort());
    for (const g of all) expect(g.derived, g.key).toBe(!ROUTES[g.key]);
    // Deletes last: they remove what the other routes aim at.
    const deletes = all.map((g) => g.key.startsWith("DELETE "));
    expect(deletes).toEqual([...deletes].sort((a, b) => Number(a) - Number(b)));
  });
});
