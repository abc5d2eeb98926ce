/**
 * `POST /mcp`: Engram's memory tools for MCP clients over Streamable HTTP (stateless), on the same
 * chain as every route: the key and the end user; the rate limit is spent in the class of the tool
 * called (core/mcp/http.ts). A function of its own: the MCP SDK and the tools' ingest, search and
 * chat would more than double the api function's bundle.
 */
import { db } from "../../core/db";
import * as McpHttp from "../../core/mcp/http";
import { http } from "./chain";

export const handler = http(
  {
    "POST /mcp": async ({ caller, body, headers, requestId, signal }) =>
      McpHttp.handle({ db: await db(), caller, body, headers, requestId, signal }),
  },
  { rateLimit: "operation" },
);
