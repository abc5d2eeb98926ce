/**
 * docs/api.md and the README's curl block: up to date with the route table and the schemas, and
 * every example is a request the API accepts, sent to the local server the way its curl sends it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bodySchema } from "../../core/api/openapi";
import { match, routeKey, routes } from "../../core/api/routes";
import type { TestDb } from "../../kit/db";
import { type Served, served } from "../../kit/served";
import {
  API_DOCS,
  curlOf,
  derivedExample,
  EXAMPLES,
  type Example,
  examples,
  renderApiDocs,
  renderCurlBlock,
  withCurlBlock,
} from "../../scripts/api-docs";

let t: TestDb;
let key: string;
let server: Served["server"];

beforeAll(async () => {
  ({ t, key, server } = await served("docs"));
});
afterAll(async () => {
  await server?.close();
  await t?.close();
});

const routeOf = (k: string) => routes.find((r) => routeKey(r) === k) as (typeof routes)[number];

describe("docs/api.md and the README's curl block", () => {
  it("are what npm run docs:api writes from the current routes and schemas", () => {
    expect(readFileSync(API_DOCS, "utf8")).toBe(renderApiDocs());
    const readme = readFileSync("README.md", "utf8");
    expect(readme).toContain(renderCurlBlock());
    expect(withCurlBlock(readme)).toBe(readme);
  });

  it("document every route, each example passing the route's own validation", () => {
    const keys = routes.map(routeKey);
    expect(Object.keys(EXAMPLES).filter((k) => !keys.includes(k))).toEqual([]);
    const doc = readFileSync(API_DOCS, "utf8");
    for (const k of keys) expect(doc).toContain(`### ${k}`);
    for (const { route, example } of examples()) {
      const k = route.key;
      const [path, query = ""] = example.path.split("?");
      const found = match(route.method, path ?? "");
      expect(found.kind === "route" && routeKey(found.route), k).toBe(k);
      const body = bodySchema(route);
      if (example.body !== undefined) expect(body?.safeParse(example.body).success, k).toBe(true);
      if (example.form !== undefined) expect(body?.safeParse(example.form).success, k).toBe(true);
      if (query) expect(route.query?.safeParse(Object.fromEntries(new URLSearchParams(query))).success, k).toBe(true);
      expect(doc).toContain(`### ${k}`);
      expect(doc).toContain(curlOf(route, example));
    }
  });

  it("quote each body so the shell hands the server the example's JSON", () => {
    const tricky: Example = { path: "/v1/ingest", body: { documents: [{ id: "it's", content: "don't 'quote' me" }] } };
    const command = curlOf(routeOf("POST /v1/ingest"), tricky);
    const quoted = /-d '((?:[^']|'\\'')*)'$/.exec(command)?.[1] ?? "";
    expect(JSON.parse(quoted.replaceAll("'\\''", "'"))).toEqual(tricky.body);
  });

  it("derive an example from its schemas for a route that has none written, except a file upload", () => {
    for (const route of routes) {
      const example = derivedExample(route);
      if (route.rawBody?.type === "multipart/form-data") expect(example, route.key).toBeUndefined();
      else expect(example?.path, route.key).toBe(route.path.replaceAll(/\{\w+\}/g, "example"));
      if (route.body) expect(route.body.safeParse(example?.body).success, route.key).toBe(true);
    }
  });

  it("run one after another against the local server, each answered 2xx (a derived one may name no item: 404)", async () => {
    for (const { route, example, derived } of examples()) {
      const k = route.key;
      const res = await send(route, example);
      const text = await res.text();
      if (derived && res.status === 404) continue;
      expect(res.status, `${k}: ${text.slice(0, 300)}`).toBeGreaterThanOrEqual(200);
      expect(res.status, `${k}: ${text.slice(0, 300)}`).toBeLessThan(300);
      if (k === "POST /v1/search") expect(JSON.parse(text).results[0]?.documentId).toBe("refunds");
      const read = (id: string) =>
        fetch(`${server.url}/v1/documents/${id}?track=false`, { headers: { authorization: `Bearer ${key}` } });
      if (k === "DELETE /v1/documents/{id}") expect((await read("note-1042")).status).toBe(404);
      // Back, and the refund policy the README's CLI examples ask about is still there after the whole block.
      if (k === "POST /v1/documents/{id}/restore") {
        expect((await read("note-1042")).status).toBe(200);
        expect((await read("refunds")).status).toBe(200);
      }
    }
  });

  it("would, derived for any route, be accepted by the API: 2xx, or 404 for the made-up id", async () => {
    for (const route of routes) {
      const example = derivedExample(route);
      if (!example) continue;
      const res = await send(route, { ...example, headers: { accept: "application/json, text/event-stream" } });
      const text = await res.text();
      const accepted = (res.status >= 200 && res.status < 300) || res.status === 404;
      expect(accepted, `${route.key}: ${res.status} ${text.slice(0, 300)}`).toBe(true);
    }
  });
});

/** An example sent to the local server the way its curl sends it. */
function send(route: (typeof routes)[number], example: Example): Promise<Response> {
  const headers: Record<string, string> = { ...example.headers };
  if (route.auth) headers.authorization = `Bearer ${key}`;
  if (example.body !== undefined) headers["content-type"] = "application/json";
  const form = example.form ? new FormData() : undefined;
  for (const [name, value] of Object.entries(example.form ?? {})) {
    if (!value.startsWith("@")) form?.set(name, value);
    else form?.set(name, new Blob([readFileSync(join(import.meta.dirname, "../..", value.slice(1)))]), value);
  }
  return fetch(`${server.url}${example.path}`, {
    method: route.method,
    headers,
    body: form ?? (example.body === undefined ? undefined : JSON.stringify(example.body)),
  });
}
