/**
 * `POST /mcp`: the MCP Streamable HTTP transport, stateless (a server per request, JSON answers),
 * so it runs on Lambda behind API Gateway like every other route. The caller comes from the HTTP
 * chain unchecked (core/gate); its key is checked here, in the same statement as the rate limit of
 * the tool called, which is known only once the JSON-RPC message is read.
 */
import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { isJSONRPCRequest, type JSONRPCMessage, JSONRPCMessageSchema } from "@modelcontextprotocol/sdk/types.js";
import type { APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { Caller } from "../auth";
import type { Db } from "../db";
import { EngramError } from "../error";
import * as Gate from "../gate";
import * as RateLimit from "../ratelimit";
import * as Batch from "./batch";
import { connect, type Describe, server } from "./index";
import * as Local from "./local";

function headersOf(response: Response): Record<string, string> {
  const out: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    out[name] = value;
  });
  return out;
}

/**
 * JSON-RPC's -32600, id null, for a lone body that is JSON but no JSON-RPC 2.0 message (`"jsonrpc": "1.0"`, an id
 * null or an object), as `engram mcp` answers such a line. The SDK's transport answers it -32700, which JSON-RPC keeps
 * for JSON that does not parse.
 */
function invalidMessage(body: unknown): Response | undefined {
  if (JSONRPCMessageSchema.safeParse(body).success) return undefined;
  return refuse(
    Batch.invalidRequest(
      'the body must be a JSON-RPC 2.0 message ("jsonrpc": "2.0", an id that is a string or an integer) or a non-empty batch of them',
    ),
  );
}

const refuse = (refusal: Batch.Refusal) => Response.json(refusal, { status: 400 });

/**
 * A batch's answer (core/mcp/batch.ts): its messages handed to the transport together, and each refused member's
 * error in its place among their answers, in an array (of one answer too: JSON-RPC 2.0, 6). The transport's refusal of
 * the whole (406, an unsupported protocol version) stands; with nothing to answer, its 202 does.
 */
async function answerBatch(
  members: Batch.Member[],
  pass: (messages: JSONRPCMessage[]) => Promise<Response>,
): Promise<Response> {
  const response = await pass(Batch.messagesOf(members));
  if (response.status !== 200 && response.status !== 202) return response;
  const text = await response.text();
  const answers = Batch.answerOf(members, text ? [JSON.parse(text)].flat() : []);
  if (answers.length === 0) return new Response(null, { status: 202, headers: response.headers });
  return Response.json(answers, { status: 200, headers: response.headers });
}

/** JSON-RPC's code for a server error of the implementation's own (2.0, 5.1): the limit's refusal, or its failure. */
const REFUSED = -32000;

/**
 * A batch's answer with the answers of its requests of `ids` replaced by the limit's refusal (or failure), as JSON-RPC errors
 * carrying the API's code in `data` (as POST /mcp's other JSON-RPC errors do), its tool calls' answers as they were.
 */
function refusing(body: string, ids: Set<unknown>, { code, message }: { code: string; message: string }): string {
  const answers = JSON.parse(body) as { id?: unknown }[];
  return JSON.stringify(
    answers.map((answer) =>
      ids.has(answer.id)
        ? { jsonrpc: "2.0", id: answer.id, error: { code: REFUSED, message, data: { code } } }
        : answer,
    ),
  );
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
 * tools/list, arguments refused before the tool ran) spends `default` once it is answered. In a
 * batch, each tool call is a decision, and the messages no tool spent for are one more, in `default`.
 * The key is checked by the first decision's statement, so a tool call costs no round trip of its own for it:
 * search_memory and ask run their retrieval in the same batch (core/gate), the other tools after it.
 * A refused key answers 401, whichever tool met it; a refused limit is that tool's error, and the answer
 * carries the headers the API's 429 would (RateLimit-Policy, RateLimit, Retry-After). A batch calling a tool
 * whose other messages `default` refuses answers those requests with the refusal as their JSON-RPC error, so
 * its tool calls' answers stand; a lone message, or a batch calling no tool, is refused 429 as any route's request.
 */
export async function handle(request: McpRequest): Promise<APIGatewayProxyStructuredResultV2> {
  const { db, caller, requestId, signal } = request;
  // Tool calls that reached their limit: the batch's other messages count once, in default.
  let spent = 0;
  let rateHeaders: Record<string, string> = {};
  let decided: Promise<unknown> | undefined;
  const batch = Array.isArray(request.body) ? Batch.read(request.body) : undefined;
  const lone = batch === undefined;
  const limit = async (rateClass: RateLimit.RateClass) => {
    spent++;
    await decided?.catch(() => {});
    const refused = Gate.keyRefusalOf(caller);
    if (refused) throw refused;
    // The first tool call to reach the gate (or the next, when the gate failed without deciding) names its class.
    if (Gate.unsettled(caller)) {
      Gate.reclass(caller, rateClass);
      // A lone call's search or ask runs its retrieval in the gate's own batch; any other opens the gate now.
      decided = lone && Gate.GATED.has(rateClass) ? Promise.resolve() : Gate.open(db, caller);
      await decided;
      return;
    }
    // A batch's later tool calls, once the gate has decided its first (admitted or refused: its refusal is its own
    // answer), or a caller made without the chain: a decision of their own, in their own class.
    rateHeaders = await RateLimit.enforce(db, caller, rateClass);
  };
  // A refused limit stays the tool's error, which the model reads (and a batch's other answers stand);
  // the HTTP client still gets the 429's headers to pace by.
  let refusal: APIGatewayProxyStructuredResultV2["headers"];
  const describeLocally = Local.describe(requestId);
  // A lone call that met database.busy did no work: it costs no token, as the HTTP routes' 503 does (functions/http/chain.ts).
  let costsNothing = false;
  const describe: Describe = (error) => {
    costsNothing = lone && RateLimit.costsNothing(error);
    const answer = describeLocally(error);
    if (error instanceof EngramError && error.kind === "rate_limited") refusal ??= answer.headers;
    return answer;
  };
  const mcp = server(Local.memory(db, caller, { signal, requestId, limit }), describe);
  const transport = new WebStandardStreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });
  await connect(mcp, transport);
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
    const pass = (parsedBody: unknown) => transport.handleRequest(web, { parsedBody });
    const response = !batch
      ? (invalidMessage(request.body) ?? (await pass(request.body)))
      : "refusal" in batch
        ? refuse(batch.refusal)
        : await answerBatch(batch.members, pass);
    let body = await response.text();
    const refused = Gate.keyRefusalOf(caller);
    if (refused) throw refused;
    const messages: unknown[] = Array.isArray(request.body) ? request.body : [request.body];
    try {
      if (costsNothing) await Gate.refund(db, caller);
      else if (Gate.unsettled(caller)) await Gate.open(db, caller);
      else if (spent < messages.length) rateHeaders = await RateLimit.enforce(db, caller, "default");
    } catch (error) {
      // A refused key is the whole answer's; any other failure of the batch's last decision (the limit's refusal, the
      // limiter unavailable) is its other requests' answer: the tool calls have run, and their answers must stand.
      // Of the batch's messages read: a member refused keeps its own error.
      const calls = batch && "members" in batch ? Batch.messagesOf(batch.members).filter(isJSONRPCRequest) : [];
      const keyRefused = error instanceof EngramError && error.kind === "auth";
      if (lone || keyRefused || response.status !== 200 || !body || !calls.some((m) => m.method === "tools/call")) {
        throw error;
      }
      const answer = describeLocally(error);
      if (error instanceof EngramError && error.kind === "rate_limited") refusal ??= answer.headers;
      body = refusing(body, new Set(calls.filter((m) => m.method !== "tools/call").map((m) => m.id)), answer);
    }
    // When a call was refused, its refusal is what the answer says of the limit (content-type stays the transport's).
    const limits = refusal ?? { ...Gate.headersOf(caller), ...rateHeaders };
    return { statusCode: response.status, headers: { ...limits, ...headersOf(response) }, body };
  } finally {
    await mcp.close();
  }
}
