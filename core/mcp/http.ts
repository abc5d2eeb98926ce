/**
 * `POST /mcp`: the MCP Streamable HTTP transport, stateless (a server per request, JSON answers),
 * so it runs on Lambda behind API Gateway like every other route. Auth and the end user come from
 * the HTTP chain; the rate limit is spent here, in the class of the tool called.
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { Caller } from "../auth";
import type { Db } from "../db";
import * as RateLimit from "../ratelimit";
import { server } from "./index";
import * as Local from "./local";

function headersOf(response: Response): Record<string, string> {
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

export interface McpRequest {
  db: Db;
  caller: Caller;
  body: unknown;
  headers: Record<string, string | undefined>;
  requestId: string;
  signal: AbortSignal;
}

/**
 * Answers one JSON-RPC message (or batch) as a web Response would, for the chain to return.
 * Like every route, a request is one rate-limit decision: a tool spends its own class before it
 * runs (search_memory as POST /v1/search does), and a request no tool spent for (initialize,
 * tools/list, arguments refused before the tool ran) spends `default` once it is answered.
 */
export async function handle(request: McpRequest): Promise<APIGatewayProxyStructuredResultV2> {
  const { db, caller, requestId, signal } = request;
  let spent = false;
  let rateHeaders: Record<string, string> = {};
  const limit = async (rateClass: RateLimit.RateClass) => {
    spent = true;
    rateHeaders = await RateLimit.enforce(db, caller, rateClass);
  };
  const mcp = server(Local.memory(db, caller, { signal, requestId, limit }), Local.describe(requestId));
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  await mcp.connect(transport);
  try {
    const headers = new Headers();
    for (const [name, value] of Object.entries(request.headers)) {
      try {
        if (value !== undefined) headers.append(name, value);
      } catch {
        // A value fetch's Headers cannot carry (not Latin-1): left out, as if never sent.
      }
    }
    const web = new Request("http://engram/mcp", { method: "POST", headers, signal });
    const response = await transport.handleRequest(web, { parsedBody: request.body });
    const body = await response.text();
    if (!spent) rateHeaders = await RateLimit.enforce(db, caller, "default");
    return { statusCode: response.status, headers: { ...headersOf(response), ...rateHeaders }, body };
  } finally {
    await mcp.close();
  }
}
