/**
 * The local server: Node's http server turning each request into the API Gateway v2 event
 * Lambda receives, running the same function handlers, and writing their results back.
 * Streamed bodies (server-sent events) are written as they are produced; a client that goes
 * away aborts the handler's signal, which stops upstream work such as a model's answer.
 */
import { isUtf8 } from "node:buffer";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import * as Cors from "../core/api/cors";
import { errorResponse, MAX_BODY_BYTES, SECURITY_HEADERS, toResult } from "../core/api/http";
import { type FunctionName, match, routeKey } from "../core/api/routes";
import { EngramError } from "../core/error";
import { log } from "../core/log";
import type { HttpHandler, LiveResult } from "../functions/http/chain";
import { httpFunctions } from "../infra/functions";

type Handler = ((event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>) &
  Partial<Pick<HttpHandler, "live">>;

/**
 * The function's handler, from the file infra/functions.ts names, loaded on its first request and kept: under tsx
 * every `import()` asks the loader's thread to resolve the path again, even for a loaded module.
 */
const loaded = new Map<FunctionName, Promise<{ handler: Handler }>>();
function load(fn: FunctionName): Promise<{ handler: Handler }> {
  let module = loaded.get(fn);
  if (!module) {
    module = (import(`../${httpFunctions[fn].file}`) as Promise<{ handler: Handler }>).catch((error) => {
      loaded.delete(fn); // a failed load is tried again by the next request
      throw error;
    });
    loaded.set(fn, module);
  }
  return module;
}

/** A Lambda-like context; `getRemainingTimeInMillis` mirrors API Gateway's 30 s limit. */
function lambdaContext(fn: string, requestId: string, timeoutMs = 30_000): Context {
  const deadline = Date.now() + timeoutMs;
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: `engram-local-${fn}`,
    functionVersion: "$LATEST",
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:engram-local-${fn}`,
    memoryLimitInMB: "1024",
    awsRequestId: requestId,
    logGroupName: "local",
    logStreamName: "local",
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** The client went away before its request was read whole (a dropped upload). */
class ClientGone extends Error {}

async function readBody(req: IncomingMessage): Promise<Buffer | "too_large"> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) return "too_large";
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    // Node ends the body's iteration with "aborted" (ECONNRESET) when the socket closes mid-body.
    if (req.destroyed || (error as { code?: string }).code === "ECONNRESET") throw new ClientGone();
    throw error;
  }
  return Buffer.concat(chunks);
}

/**
 * The request's URL. A path is appended to the origin, not resolved against it: `//v1/documents` is a path, not a
 * host. A whole URL (a proxy's absolute form, `GET http://host/v1/...`) is taken as it is.
 */
function requestUrl(req: IncomingMessage): URL {
  const target = req.url ?? "/";
  return target.startsWith("/") ? new URL(`http://localhost${target}`) : new URL(target, "http://localhost");
}

/** Builds the API Gateway v2 (HTTP API, payload 2.0) event for a Node request. */
export function toEvent(
  req: IncomingMessage,
  body: Buffer,
  requestId: string,
): { event: APIGatewayProxyEventV2; fn: FunctionName } {
  const url = requestUrl(req);
  const method = (req.method ?? "GET").toUpperCase();
  const found = match(method, url.pathname);
  const headers: Record<string, string> = {};
  // Every header sent twice is joined by commas, as API Gateway joins them (Node keeps only the first Authorization).
  for (const [name, value] of Object.entries(req.headersDistinct)) {
    if (value !== undefined) headers[name.toLowerCase()] = value.join(",");
  }
  // A body that is not UTF-8 text goes base64, as API Gateway sends binary, for the handler to refuse it whole.
  const binary = /^multipart\/form-data/i.test(headers["content-type"] ?? "") || !isUtf8(body);
  const query: Record<string, string> = {};
  for (const [name, value] of url.searchParams) query[name] = name in query ? `${query[name]},${value}` : value;
  const now = new Date();
  const event: APIGatewayProxyEventV2 = {
    version: "2.0",
    routeKey: found.kind === "route" ? routeKey(found.route) : "$default",
    rawPath: url.pathname,
    rawQueryString: url.search.slice(1),
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: found.kind === "route" && Object.keys(found.params).length ? found.params : undefined,
    // API Gateway passes binary bodies (an upload's multipart) base64-encoded, as Lambda receives them.
    body: body.length ? body.toString(binary ? "base64" : "utf8") : undefined,
    isBase64Encoded: binary,
    requestContext: {
      accountId: "local",
      apiId: "local",
      domainName: headers.host ?? "localhost",
      domainPrefix: "localhost",
      http: {
        method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp: req.socket.remoteAddress ?? "127.0.0.1",
        userAgent: headers["user-agent"] ?? "",
      },
      requestId,
      routeKey: found.kind === "route" ? routeKey(found.route) : "$default",
      stage: "$default",
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
  };
  return { event, fn: found.kind === "route" ? found.route.fn : "api" };
}

function write(res: ServerResponse, result: APIGatewayProxyStructuredResultV2) {
  const headers: Record<string, string | number | boolean> = { ...(result.headers ?? {}) };
  res.writeHead(result.statusCode ?? 200, headers as Record<string, string>);
  res.end(result.isBase64Encoded && result.body ? Buffer.from(result.body, "base64") : (result.body ?? ""));
}

/** Writes each piece as it comes, waiting for the socket when it is full; stops when the client is gone. */
async function writeStream(res: ServerResponse, result: LiveResult & { body: AsyncIterable<string> }) {
  res.writeHead(result.statusCode ?? 200, (result.headers ?? {}) as Record<string, string>);
  res.flushHeaders();
  // Leaving the loop early (client gone) returns the iterator, which ends the handler's generator.
  for await (const piece of result.body) {
    if (res.destroyed) break;
    if (!res.write(piece)) await new Promise((resolve) => res.once("drain", resolve).once("close", resolve));
  }
  res.end();
}

const isStream = (result: LiveResult): result is LiveResult & { body: AsyncIterable<string> } =>
  typeof result.body === "object" && result.body !== null && Symbol.asyncIterator in result.body;

/** An error the server answers itself (before or around the handler), with the same shape and request id. */
function failLocally(res: ServerResponse, error: unknown, requestId: string, origin?: string, route?: string) {
  const result = errorResponse(error, { requestId, route });
  // As on every answer, so that a page on another origin can read why (a body too large, a URL too long).
  write(res, { ...result, headers: { ...result.headers, ...Cors.responseHeaders(origin), "x-request-id": requestId } });
}

/**
 * Time limits of the server itself, beside each request's 30 s deadline (lambdaContext):
 * request headers must arrive within 10 s and the whole request within 30 s (API Gateway's own
 * limit; a slow client cannot hold a connection and a body buffer for Node's default 5 minutes);
 * an idle keep-alive connection is closed after 5 s. Answers are not bounded by these (a
 * streamed chat may run for minutes, as on the function URL). Checked every second.
 */
export const SERVER_TIMEOUTS = {
  headersMs: 10_000,
  requestMs: 30_000,
  keepAliveMs: 5_000,
  checkEveryMs: 1_000,
  /** On close, how long the requests being answered have to finish before their connections are cut. */
  drainMs: 10_000,
};

/** Request lines longer than this are 414 (API Gateway's limit for the request line and headers is 10 KB). */
export const MAX_URL_BYTES = 8_192;

/** The raw HTTP/1.1 answer for a request Node refused before it became a request: JSON, in our shape. */
function rawError(status: number, reason: string, code: string, message: string, requestId: string): string {
  const body = JSON.stringify({ error: { code, message } });
  const headers = {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    ...SECURITY_HEADERS,
    ...Cors.responseHeaders(undefined),
    "x-request-id": requestId,
    connection: "close",
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}`)
    .join("\r\n");
  return `HTTP/1.1 ${status} ${reason}\r\n${head}\r\n\r\n${body}`;
}

/**
 * Node answers some requests itself, before any handler sees them (headers too large, a
 * malformed request, a request that took too long to arrive), with an empty body. These answer
 * in the product's shape instead. A URL past MAX_URL_BYTES that also overflowed Node's header
 * limit is 414, as it would be had it been shorter.
 */
function onClientError(error: Error & { code?: string; rawPacket?: Buffer }, socket: Duplex): void {
  if (error.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const requestId = randomUUID();
  const firstLine = error.rawPacket ? error.rawPacket.indexOf("\r\n") : -1;
  const lineLength = firstLine === -1 ? (error.rawPacket?.length ?? 0) : firstLine;
  const answer =
    error.code === "HPE_HEADER_OVERFLOW" && lineLength > MAX_URL_BYTES
      ? rawError(
          414,
          "URI Too Long",
          "request.uri_too_long",
          `The URL is longer than ${MAX_URL_BYTES} bytes.`,
          requestId,
        )
      : error.code === "HPE_HEADER_OVERFLOW"
        ? rawError(
            431,
            "Request Header Fields Too Large",
            "request.headers_too_large",
            "The request's headers are too large.",
            requestId,
          )
        : error.code === "ERR_HTTP_REQUEST_TIMEOUT"
          ? rawError(408, "Request Timeout", "request.timeout", "The request took too long to arrive.", requestId)
          : rawError(400, "Bad Request", "request.malformed", "The request is not valid HTTP.", requestId);
  log.info("refused a malformed or slow request", { requestId, code: error.code });
  socket.end(answer);
}

/** API Gateway's answer to a CORS preflight, from the same policy it is configured with. */
function preflight(req: IncomingMessage, res: ServerResponse, requestId: string): void {
  res.writeHead(204, {
    ...Cors.preflightHeaders(req.headers.origin),
    ...SECURITY_HEADERS,
    "x-request-id": requestId,
  });
  res.end();
}

export type Extra = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** Starts the server; `extra` may answer a request first (the console's static files). */
export async function startServer(options: {
  port: number;
  host?: string;
  extra?: Extra;
  /** Tests shorten these. */
  timeouts?: Partial<typeof SERVER_TIMEOUTS>;
}): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const timeouts = { ...SERVER_TIMEOUTS, ...options.timeouts };
  const server = createServer({
    headersTimeout: timeouts.headersMs,
    requestTimeout: timeouts.requestMs,
    keepAliveTimeout: timeouts.keepAliveMs,
    connectionsCheckingInterval: timeouts.checkEveryMs,
  });
  server.on("clientError", onClientError);
  // `Expect` other than 100-continue: Node would answer an empty 417.
  server.on("checkExpectation", (_req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    const body = {
      error: { code: "request.expectation_failed", message: "Only 'Expect: 100-continue' is supported." },
    };
    write(
      res,
      toResult({ status: 417, body, headers: { ...Cors.responseHeaders(undefined), "x-request-id": requestId } }),
    );
  });
  // Closing, every answer ends its connection: one kept alive would otherwise carry a client's next request in, to be
  // cut when the drain runs out.
  let closing = false;
  const answering = new Set<ServerResponse>();
  server.on("request", async (req: IncomingMessage, res: ServerResponse) => {
    const requestId = randomUUID();
    if (closing) res.shouldKeepAlive = false;
    answering.add(res);
    res.once("close", () => answering.delete(res));
    try {
      if (req.method === "OPTIONS") return preflight(req, res, requestId);
      if (Buffer.byteLength(req.url ?? "") > MAX_URL_BYTES) {
        throw new EngramError("uri_too_long", "request.uri_too_long", `The URL is longer than ${MAX_URL_BYTES} bytes.`);
      }
      // The console's files carry the request's id too, as every answer does.
      res.setHeader("x-request-id", requestId);
      if (options.extra && (await options.extra(req, res))) return;
      const body = await readBody(req);
      if (body === "too_large") {
        // Named by its route, as the chain would: `POST /mcp` answers it as a JSON-RPC error.
        const found = match((req.method ?? "GET").toUpperCase(), requestUrl(req).pathname);
        failLocally(
          res,
          new EngramError("too_large", "request.too_large", "The request body is larger than 6 MB."),
          requestId,
          req.headers.origin,
          found.kind === "route" ? routeKey(found.route) : undefined,
        );
        req.destroy();
        return;
      }
      const { event, fn } = toEvent(req, body, requestId);
      const { handler } = await load(fn);
      const client = new AbortController();
      res.once("close", () => {
        if (!res.writableFinished) client.abort(new DOMException("The client disconnected.", "AbortError"));
      });
      const result = handler.live
        ? await handler.live(event, lambdaContext(fn, requestId), client.signal)
        : await handler(event, lambdaContext(fn, requestId));
      if (isStream(result)) await writeStream(res, result);
      else write(res, result as APIGatewayProxyStructuredResultV2);
    } catch (error) {
      if (error instanceof ClientGone) {
        // A client hanging up is not our failure: one line, no stack.
        log.info("request cancelled by the client", { requestId, method: req.method, path: req.url?.split("?")[0] });
        res.destroy();
        return;
      }
      if (!res.headersSent) failLocally(res, error, requestId, req.headers.origin);
      else res.destroy();
    }
  });
  await listen(server, options.port, options.host);
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : options.port;
  return {
    server,
    url: `http://localhost:${port}`,
    // The requests being answered finish (a stopped server cut an ingest's batch mid-request: the client could not
    // tell whether it was stored); idle connections close now, and any still open after `drainMs` are cut.
    close: () =>
      new Promise<void>((resolve) => {
        closing = true;
        for (const res of answering) if (!res.headersSent) res.shouldKeepAlive = false;
        const cut = setTimeout(() => server.closeAllConnections(), timeouts.drainMs);
        server.close(() => {
          clearTimeout(cut);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}

function listen(server: Server, port: number, host = "127.0.0.1"): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => reject(listenError(error, port, host)));
    server.listen(port, host, () => resolve());
  });
}

/**
 * Why the server cannot listen, in the flags' terms: a host that names nothing (ENOTFOUND) had read as a database that
 * cannot be reached, one that is no address of this machine as Node's own line.
 */
function listenError(error: NodeJS.ErrnoException, port: number, host: string): Error {
  if (error.code === "EADDRINUSE")
    return new EngramError(
      "conflict",
      "server.port_in_use",
      `port ${port} is in use (another engram start?): set PORT or pass --port`,
    );
  if (error.code === "EACCES")
    return new EngramError("input", "server.cannot_listen", `port ${port} needs privileges: pass --port 1024 or above`);
  const why =
    error.code === "ENOTFOUND" || error.code === "EAI_AGAIN"
      ? "names no host"
      : error.code === "EADDRNOTAVAIL"
        ? "is no address of this machine"
        : undefined;
  return why
    ? new EngramError(
        "input",
        "server.cannot_listen",
        `--host ${host} ${why}: pass --host 127.0.0.1 (this machine), 0.0.0.0 (every interface) or one of its addresses`,
      )
    : error;
}

/** Throws `server.port_in_use` now if the port is taken: before a start opens (or creates) its database. */
export async function ensurePortFree(port: number, host?: string): Promise<void> {
  const probe = createServer();
  await listen(probe, port, host);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
