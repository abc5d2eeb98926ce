/** Health, OpenAPI, document reads, deletes and restores, stats, conversations, and the catch-all 404/405. */
import * as OpenApi from "../../core/api/openapi";
import { match } from "../../core/api/routes";
import * as Conversation from "../../core/conversation";
import { db } from "../../core/db";
import * as Document from "../../core/document";
import { EngramError } from "../../core/error";
import * as Health from "../../core/health";
import { http } from "./chain";

export const handler = http({
  "GET /v1/health": async () => {
    const report = await Health.check();
    return { status: report.database === "ok" ? 200 : 503, body: report };
  },
  "GET /v1/openapi.json": async () => ({ body: OpenApi.document() }),
  "GET /v1/documents": async ({ caller, query }) => ({
    body: await Document.list(await db(), caller, query),
  }),
  "GET /v1/documents/{id}": async ({ caller, params, query }) => ({
    body: await Document.get(await db(), caller, params.id, query),
  }),
  "DELETE /v1/documents/{id}": async ({ caller, params, query }) => ({
    body: await Document.remove(await db(), caller, params.id, query),
  }),
  "POST /v1/documents/{id}/restore": async ({ caller, params }) => ({
    body: await Document.restore(await db(), caller, params.id),
  }),
  "GET /v1/stats": async ({ caller }) => ({ body: await Document.stats(await db(), caller) }),
  "GET /v1/conversations": async ({ caller, query }) => ({
    body: await Conversation.list(await db(), caller, query),
  }),
  "GET /v1/conversations/{id}": async ({ caller, params, query }) => ({
    body: await Conversation.get(await db(), caller, params.id, query),
  }),
  "DELETE /v1/conversations/{id}": async ({ caller, params }) => ({
    body: await Conversation.remove(await db(), caller, params.id),
  }),
  $default: async ({ method, path }) => {
    const found = match(method, path);
    if (found.kind === "invalid_path") {
      throw new EngramError(
        "input",
        "request.invalid_path",
        `The path's ${found.param} is not a valid percent-encoded UTF-8 string.`,
      );
    }
    if (found.kind === "method_not_allowed") {
      throw new EngramError("method_not_allowed", "route.method_not_allowed", `${method} is not allowed on ${path}.`, {
        headers: { allow: found.allow.join(", ") },
      });
    }
    throw new EngramError("not_found", "route.not_found", `No route for ${method} ${path}.${slashedId(path)}`);
  },
});

/**
 * A document or conversation id holding `/` (the CLI names files by their path: `library/json.html`) is one path
 * segment only percent-encoded; the hint a 404 for such a path gives.
 */
function slashedId(path: string): string {
  const nested = /^\/v1\/(documents|conversations)\/([^/]+\/.+?)(\/restore)?$/.exec(path);
  if (!nested) return "";
  const [, kind, id, tail = ""] = nested;
  return ` An id holding "/" is one path segment, written with %2F: /v1/${kind}/${id?.replaceAll("/", "%2F")}${tail}.`;
}
