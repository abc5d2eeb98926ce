/**
 * The one CORS policy: `infra/functions.ts` hands it to API Gateway and the chat function URL,
 * the handlers stamp it on their answers, and the local server answers preflights with it the
 * way API Gateway does. Any origin, bearer keys (no cookies). Plain data, no runtime imports:
 * SST reads it while deploying.
 */
export const CORS = {
  allowOrigins: ["*"],
  // Function URLs take at most six methods of at most six letters, so no OPTIONS here.
  allowMethods: ["GET", "POST", "PATCH", "DELETE"] as ("GET" | "POST" | "PATCH" | "DELETE")[],
  // MCP clients send their protocol version on every request after `initialize` (Streamable HTTP): a browser one
  // from another origin is blocked unless the preflight allows it.
  allowHeaders: ["authorization", "content-type", "x-user-id", "mcp-protocol-version"],
  exposeHeaders: ["x-request-id", "ratelimit", "ratelimit-policy", "retry-after"],
  maxAgeSeconds: 86_400,
};

const anyOrigin = CORS.allowOrigins.includes("*");

/** The origin a response may name: `*` when any is allowed, else the request's when listed. */
function allowedOrigin(origin: string | undefined): string | undefined {
  if (anyOrigin) return "*";
  return origin && CORS.allowOrigins.includes(origin) ? origin : undefined;
}

/** CORS headers on an actual response (API Gateway adds the same ones in front of Lambda). */
export function responseHeaders(origin: string | undefined): Record<string, string> {
  const allow = allowedOrigin(origin);
  if (!allow) return {};
  return {
    "access-control-allow-origin": allow,
    "access-control-expose-headers": CORS.exposeHeaders.join(", "),
    ...(anyOrigin ? {} : { vary: "origin" }),
  };
}

/**
 * API Gateway's answer to an `OPTIONS` preflight when CORS is configured: 204 with the allowed
 * origin, methods, headers and max age (the browser then decides; API Gateway does not refuse).
 */
export function preflightHeaders(origin: string | undefined): Record<string, string> {
  const allow = allowedOrigin(origin);
  if (!allow) return {};
  return {
    "access-control-allow-origin": allow,
    "access-control-allow-methods": CORS.allowMethods.join(","),
    "access-control-allow-headers": CORS.allowHeaders.join(","),
    "access-control-max-age": String(CORS.maxAgeSeconds),
    ...(anyOrigin ? {} : { vary: "origin" }),
  };
}
