/** API Gateway v2 events and handler invocation, as Lambda would do it. */
import { randomUUID } from "node:crypto";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { type FunctionName, match, routeKey } from "../core/api/routes";
import { httpFunctions } from "../infra/functions";

export interface EventInput {
  method: string;
  path: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  /** A raw body string, sent as is (for malformed JSON). */
  rawBody?: string;
  /** A binary body (a multipart upload), sent base64-encoded as API Gateway does. */
  binaryBody?: Buffer;
}

export function apiEvent(input: EventInput): APIGatewayProxyEventV2 {
  const found = match(input.method, input.path);
  const key = found.kind === "route" ? routeKey(found.route) : "$default";
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(input.headers ?? {})) headers[k.toLowerCase()] = v;
  const body =
    input.binaryBody?.toString("base64") ??
    input.rawBody ??
    (input.body === undefined ? undefined : JSON.stringify(input.body));
  if (body !== undefined) headers["content-type"] ??= "application/json";
  const query = input.query ?? {};
  return {
    version: "2.0",
    routeKey: key,
    rawPath: input.path,
    rawQueryString: new URLSearchParams(query).toString(),
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: found.kind === "route" && Object.keys(found.params).length ? found.params : undefined,
    body,
    isBase64Encoded: input.binaryBody !== undefined,
    requestContext: {
      accountId: "test",
      apiId: "test",
      domainName: "test.local",
      domainPrefix: "test",
      http: {
        method: input.method.toUpperCase(),
        path: input.path,
        protocol: "HTTP/1.1",
        sourceIp: "127.0.0.1",
        userAgent: "vitest",
      },
      requestId: randomUUID(),
      routeKey: key,
      stage: "$default",
      time: new Date().toISOString(),
      timeEpoch: Date.now(),
    },
  };
}

export function lambdaContext(): Context {
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName: "test",
    functionVersion: "$LATEST",
    invokedFunctionArn: "arn:aws:lambda:test:0:function:test",
    memoryLimitInMB: "1024",
    awsRequestId: randomUUID(),
    logGroupName: "test",
    logStreamName: "test",
    getRemainingTimeInMillis: () => 30_000,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

type Handler = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;
/** The function's handler, from the file infra/functions.ts names. */
/** The Lambda handler module of one of the HTTP functions. */
export const load = (fn: FunctionName) =>
  // A path from the function table, resolved at run time: vite cannot (and need not) follow it.
  import(/* @vite-ignore */ `../${httpFunctions[fn].file}`) as Promise<{ handler: Handler }>;

export interface Response {
  status: number;
  headers: Record<string, string>;
  body: any;
}

/** Invokes the function that serves the route, through the whole middleware chain. */
export async function invoke(input: EventInput): Promise<Response> {
  const found = match(input.method, input.path);
  const fn = found.kind === "route" ? found.route.fn : "api";
  const { handler } = await load(fn);
  const result = await handler(apiEvent(input), lambdaContext());
  const text = result.body ?? "";
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(result.headers ?? {})) headers[k.toLowerCase()] = String(v);
  return {
    status: result.statusCode ?? 200,
    headers,
    body: text && headers["content-type"]?.startsWith("application/json") ? JSON.parse(text) : text,
  };
}
