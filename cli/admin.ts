/**
 * The local server's admin route, `/_local/reembed`, for the CLI on the same machine: embedded PGlite is
 * single-process, so while `engram start` holds the data folder, `engram reembed` asks the server to re-embed (the
 * server's background loop does the work, core/embedding/reembed.ts) and follows its progress. Served only by the
 * local server (not a Lambda route, not in the public API) and only to the local key, which is kept in the data
 * folder readable by its owner alone: whoever holds it could open the folder itself.
 */
import { randomUUID, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { errorResponse, parseBody, toResult } from "../core/api/http";
import type { Db } from "../core/db";
import * as Reembed from "../core/embedding/reembed";
import { EngramError } from "../core/error";
import * as Tenant from "../core/tenant";
import * as z from "../core/zod";
import type { Extra } from "./server";

export const ADMIN_REEMBED = "/_local/reembed";

/** The POST body: which tenant, and whether only to estimate (for which model). */
const AdminBody = z.strictObject({
  tenant: z.optional(z.string()),
  dryRun: z.optional(z.boolean()),
  model: z.optional(z.string()),
});

/** What the route answers: the server's active model and the tenant's re-embedding state. */
export interface ReembedStatus {
  server: { model: string; dimensions: number };
  tenant: string;
  state: Reembed.State;
  /** With `dryRun`: what a run to `model` would embed. */
  estimate?: Reembed.Estimate;
}

/**
 * GET `?tenant=NAME`: the state. POST `{ tenant, dryRun?, model? }`: with `dryRun`, the estimate for `model` (default
 * the server's), changing nothing; otherwise records that the tenant is to move to the server's model
 * (`Reembed.begin`), which the background loop then continues until done.
 */
export function adminRoutes(db: Db, key: string, active: { model: string; dimensions: number }): Extra {
  const expected = Buffer.from(`Bearer ${key}`);
  const allowed = (req: IncomingMessage) => {
    const given = Buffer.from(req.headers.authorization ?? "");
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  const answer = (res: ServerResponse, result: APIGatewayProxyStructuredResultV2) => {
    res.writeHead(result.statusCode ?? 200, { ...result.headers, "cache-control": "no-store" });
    res.end(result.body);
  };
  return async (req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (url.pathname !== ADMIN_REEMBED) return false;
    try {
      if (!allowed(req)) throw new EngramError("auth", "auth.invalid_key", "This route takes the local key only.");
      if (req.method !== "GET" && req.method !== "POST") {
        throw new EngramError("method_not_allowed", "route.method_not_allowed", `${req.method} is not allowed here.`, {
          headers: { allow: "GET, POST" },
        });
      }
      let body: { tenant?: string; dryRun?: boolean; model?: string } = {};
      if (req.method === "POST") {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        body = AdminBody.parse(
          parseBody({ body: Buffer.concat(chunks).toString("utf8") || "{}", headers: {} } as never),
        );
      }
      const tenant = await Tenant.get(db, body.tenant ?? url.searchParams.get("tenant") ?? "");
      let estimate: Reembed.Estimate | undefined;
      if (req.method === "POST" && body.dryRun)
        estimate = await Reembed.estimate(db, tenant.id, body.model ?? active.model);
      else if (req.method === "POST") await Reembed.begin(db, tenant.id, active.model, active.dimensions);
      const state = await Reembed.state(db, tenant.id, active.model);
      answer(
        res,
        toResult({ body: { server: active, tenant: tenant.name, state, ...(estimate ? { estimate } : {}) } }),
      );
    } catch (error) {
      // Errors as the API answers them: the one mapping (core/api/http.ts), a 500 that names no cause.
      answer(res, errorResponse(error, { requestId: randomUUID(), route: `${req.method} ${ADMIN_REEMBED}` }));
    }
    return true;
  };
}
