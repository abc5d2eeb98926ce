/**
 * Transport helpers shared by the Lambda middleware chain and the local server: the one
 * mapping from errors to HTTP responses, body parsing, CORS, request ids.
 */
import { isUtf8 } from "node:buffer";
import { randomUUID } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { $ZodError } from "zod/v4/core";
import { collision } from "../db/errors";
import { EngramError, errorBody, inputError, statusOf } from "../error";
import { log } from "../log";
import * as Cors from "./cors";

export const MAX_BODY_BYTES = 6 * 1024 * 1024;

export interface Reply {
  status?: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export const JSON_TYPE = "application/json; charset=utf-8";

/** On every API answer: a JSON body or a stream must never be sniffed into HTML by a browser. */
export const SECURITY_HEADERS = { "x-content-type-options": "nosniff" } as const;

export function toResult(reply: Reply): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: reply.status ?? 200,
    headers: { "content-type": JSON_TYPE, ...SECURITY_HEADERS, ...reply.headers },
    body: reply.body === undefined ? "" : JSON.stringify(reply.body),
  };
}

/** The request id: API Gateway's, or a fresh one when invoked another way. */
export function requestIdOf(event: APIGatewayProxyEventV2): string {
  return event.requestContext?.requestId || randomUUID();
}

/** The CORS headers API Gateway puts on an answer (core/api/cors.ts), so every entry point sends the same. */
export function corsHeaders(event: APIGatewayProxyEventV2): Record<string, string> {
  return Cors.responseHeaders(event.headers?.origin);
}

/**
 * JSON nested deeper than this is refused: no request needs it, and the recursive validators
 * (zod's JSON schema, JSON.stringify) overflow the stack on a few thousand levels, a 500.
 */
export const MAX_JSON_DEPTH = 64;

/** Whether arrays and objects nest deeper than `max` levels (iteratively: deep input must not recurse). */
function nestsDeeper(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [node, depth] = item;
    if (depth > max) return true;
    for (const child of Array.isArray(node) ? node : Object.values(node as object)) {
      if (child !== null && typeof child === "object") stack.push([child, depth + 1]);
    }
  }
  return false;
}

/**
 * The dotted path of the first `__proto__` key in a parsed body. JSON.parse keeps such a key as data, but any object
 * built from it (a schema's parse, a spread) sets the prototype instead, so the key and its value would vanish: a
 * metadata field dropped, a metadata filter silently widened to every document.
 */
function protoKeyAt(value: unknown, path: string[] = []): string | undefined {
  if (value === null || typeof value !== "object") return undefined;
  if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) return [...path, "__proto__"].join(".");
  for (const [key, child] of Object.entries(value)) {
    const found = protoKeyAt(child, [...path, key]);
    if (found) return found;
  }
  return undefined;
}

/** The refusal of a parsed value holding a `__proto__` key anywhere (see protoKeyAt); undefined when it holds none. */
export function protoRefusal(value: unknown): EngramError | undefined {
  const proto = protoKeyAt(value);
  if (!proto) return undefined;
  return inputError("request.invalid", `The key "__proto__" (at ${proto}) is not accepted; rename it.`, [
    { path: proto, message: "__proto__ is not accepted as a key" },
  ]);
}

/**
 * A body sent compressed (`Content-Encoding: gzip`) reached the JSON parser as its compressed bytes and was refused as
 * invalid UTF-8, which the client had sent: Engram reads bodies as they are, and says so.
 */
function refuseEncoded(event: APIGatewayProxyEventV2): void {
  const encoding = (event.headers?.["content-encoding"] ?? "").trim().toLowerCase();
  if (encoding && encoding !== "identity") {
    throw new EngramError(
      "unsupported_media_type",
      "request.unsupported_encoding",
      `The request body is sent with Content-Encoding: ${encoding}; send it uncompressed.`,
    );
  }
}

/** The body's bytes as sent, for a route that reads its own (the upload's form); an empty body is `undefined`. */
export function rawBody(event: APIGatewayProxyEventV2): Buffer | undefined {
  if (event.body === undefined || event.body === null || event.body === "") return undefined;
  refuseEncoded(event);
  return Buffer.from(event.body, event.isBase64Encoded ? "base64" : "utf8");
}

/**
 * Parses a JSON body with the 6 MB limit, whatever its Content-Type (as API Gateway passes it); an empty body is
 * `undefined`. A route that reads a form (the upload) takes `rawBody` instead.
 */
export function parseBody(event: APIGatewayProxyEventV2): unknown {
  if (event.body === undefined || event.body === null || event.body === "") return undefined;
  refuseEncoded(event);
  let raw = event.body;
  if (event.isBase64Encoded) {
    const bytes = Buffer.from(event.body, "base64");
    // Decoded leniently, bad bytes would be stored as U+FFFD without a word.
    if (!isUtf8(bytes)) throw new EngramError("input", "request.invalid_utf8", "The request body is not valid UTF-8.");
    raw = bytes.toString("utf8");
  }
  if (Buffer.byteLength(raw, "utf8") > MAX_BODY_BYTES) {
    throw new EngramError("too_large", "request.too_large", "The request body is larger than 6 MB.");
  }
  let body: unknown;
  try {
    // A byte order mark is allowed before JSON text (RFC 8259 asks parsers to tolerate it); JSON.parse is not.
    body = JSON.parse(raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw);
  } catch {
    // JSON routes read JSON whatever the Content-Type says; a form sent to one is told where forms go.
    const form = /^multipart\/form-data/i.test(event.headers?.["content-type"] ?? "")
      ? " This route takes JSON; a multipart/form-data upload goes to POST /v1/documents/upload."
      : "";
    throw new EngramError("input", "request.invalid_json", `The request body is not valid JSON.${form}`);
  }
  if (body !== null && typeof body === "object" && nestsDeeper(body, MAX_JSON_DEPTH)) {
    throw new EngramError(
      "input",
      "request.too_deep",
      `The request body nests JSON deeper than ${MAX_JSON_DEPTH} levels.`,
    );
  }
  const refused = raw.includes("__proto__") ? protoRefusal(body) : undefined;
  if (refused) throw refused;
  return body;
}

/** zod issues as `{ path, message }`, paths dotted (`documents.0.content`). */
export function zodDetails(error: $ZodError) {
  return error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
    code: issue.code,
  }));
}

/** A zod issue may carry its own product code and status (e.g. `document.too_large`, 413). */
export function fromZod(error: $ZodError): EngramError {
  const coded = error.issues.find((issue) => issue.code === "custom" && typeof issue.params?.code === "string");
  const params = coded?.code === "custom" ? (coded.params as { code: string; kind?: "too_large" }) : undefined;
  const first = error.issues[0];
  const where = first?.path.length ? ` at ${first.path.map(String).join(".")}` : "";
  return new EngramError(
    params?.kind ?? "input",
    params?.code ?? "request.invalid",
    coded?.message ?? `Invalid request${where}: ${first?.message ?? "invalid input"}`,
    { details: zodDetails(error) },
  );
}

/** The one place errors become responses. Unknown errors are 500 `internal`, logged, never leaked. */
export function errorResponse(
  error: unknown,
  context: { requestId: string; route?: string },
): APIGatewayProxyStructuredResultV2 {
  const known = error instanceof $ZodError ? fromZod(error) : error instanceof EngramError ? error : collision(error);
  if (!known) {
    log.error("request failed", { requestId: context.requestId, route: context.route, error });
    return toResult({ status: 500, body: { error: errorBody(error, context.requestId) } });
  }
  const status = statusOf(known.kind);
  // A 4xx is the client's request refused (info, no stack); a 5xx is ours or the provider's to fix (error).
  if (status >= 500) {
    log.error("request failed", {
      requestId: context.requestId,
      route: context.route,
      status,
      code: known.code,
      error: known.cause ?? known,
    });
  } else {
    log.info("request refused", { requestId: context.requestId, route: context.route, status, code: known.code });
  }
  const headers: Record<string, string> = { ...known.headers };
  if (known.retryAfterSeconds !== undefined)
    headers["retry-after"] = String(Math.max(0, Math.ceil(known.retryAfterSeconds)));
  const rpc = context.route === "POST /mcp" ? jsonRpcError(known) : undefined;
  return toResult({ status, headers, body: rpc ?? { error: errorBody(known, context.requestId) } });
}

/** Body errors JSON-RPC names: a body that is not JSON (or not UTF-8) is its parse error, any other unreadable body an invalid request. */
const JSON_RPC_CODES: Record<string, number> = {
  "request.invalid_json": -32700,
  "request.invalid_utf8": -32700,
  "request.unsupported_encoding": -32600,
  "request.too_deep": -32600,
  "request.too_large": -32600,
  "request.invalid": -32600,
};

/**
 * An MCP client reads `POST /mcp`'s refusal of its body as JSON-RPC, as the MCP server answers a line it cannot read
 * on stdio: the same HTTP status, a JSON-RPC error with id null, the API's code in `data`. Other refusals (the key,
 * the limit) keep the API's shape, as the MCP spec leaves them to HTTP.
 */
function jsonRpcError(error: EngramError) {
  const code = JSON_RPC_CODES[error.code];
  if (code === undefined) return undefined;
  const message = `${code === -32700 ? "Parse error" : "Invalid Request"}: ${error.message}`;
  return { jsonrpc: "2.0", id: null, error: { code, message, data: { code: error.code } } };
}
