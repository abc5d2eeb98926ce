/**
 * Serves the built console (console/dist) from the local server: `/` is the page,
 * `/console/assets/*` its hashed files, `/console/config.json` hands the local key to a page
 * opened on this machine. Everything else falls through to the API. The build is a dev-time step
 * (scripts/build-console.ts, which `npm start`, `npm run dev` and `npm install` run first), not this module's.
 */
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { dirname, extname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Extra } from "./server";

/** Where the build writes the console and this module serves it from. */
export const DIST_DIR = join(resolve(dirname(fileURLToPath(import.meta.url)), ".."), "console", "dist");
/** Where the built files are served from; the built index.html refers to assets under it. */
export const ASSETS_PATH = "/console/assets/";

export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
};

interface StaticFile {
  body: Buffer;
  type: string;
  cacheControl: string;
  etag: string;
}

const BASE_HEADERS = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
};

const file = (body: Buffer, type: string, cacheControl: string): StaticFile => ({
  body,
  type,
  cacheControl,
  etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
});

/** The files of the current build, read once: hashed assets are immutable, the page is revalidated. */
function loadFiles(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  const index = file(readFileSync(join(dir, "index.html")), TYPES[".html"]!, "no-cache");
  for (const path of ["/", "/index.html", "/console", "/console/"]) files.set(path, index);
  for (const name of readdirSync(join(dir, "assets"))) {
    const type = TYPES[extname(name)] ?? "application/octet-stream";
    files.set(
      `${ASSETS_PATH}${name}`,
      file(readFileSync(join(dir, "assets", name)), type, "public, max-age=31536000, immutable"),
    );
  }
  return files;
}

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3})$/;
const LOCAL_HOSTNAMES = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * Only a page this machine opened by a local name gets the key: the connection must come from
 * a loopback address and the Host header must name localhost (a DNS-rebinding page arrives
 * with its own host name).
 */
export function isLocalRequest(req: IncomingMessage): boolean {
  const remote = req.socket.remoteAddress ?? "";
  let hostname = "";
  try {
    hostname = new URL(`http://${req.headers.host ?? ""}`).hostname;
  } catch {
    return false;
  }
  return LOOPBACK.test(remote) && (LOCAL_HOSTNAMES.has(hostname) || /^127\.\d+\.\d+\.\d+$/.test(hostname));
}

function send(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  body: Buffer | string,
  headers: Record<string, string>,
) {
  res.writeHead(status, { ...BASE_HEADERS, "content-length": String(Buffer.byteLength(body)), ...headers });
  res.end(req.method === "HEAD" ? undefined : body);
}

function sendError(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string) {
  send(req, res, status, JSON.stringify({ error: { code, message } }), {
    "content-type": TYPES[".json"]!,
    "cache-control": "no-store",
  });
}

export interface ConsoleSite {
  /** Answers console requests; `false` for everything else (the API). */
  extra: Extra;
  /** Why the console is not available, when it is not. */
  error?: string;
}

/**
 * The console's request handler for `startServer({ extra })`, serving the build in `dir`.
 * `key` is the embedded database's local key, handed only to local pages.
 */
export async function consoleSite(options: { key?: string; dir?: string } = {}): Promise<ConsoleSite> {
  let files: Map<string, StaticFile> | undefined;
  let error: string | undefined;
  try {
    files = loadFiles(options.dir ?? DIST_DIR);
  } catch {
    error = "the console is not built (npm run build:console)";
  }

  const extra: Extra = async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const ours = path === "/" || path === "/index.html" || path === "/console" || path.startsWith("/console/");
    if (!ours) return false;
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      sendError(req, res, 405, "route.method_not_allowed", `${req.method} is not allowed on ${path}.`);
      return true;
    }
    if (path === "/console/config.json") {
      const key = options.key && isLocalRequest(req) ? options.key : null;
      send(req, res, 200, JSON.stringify({ key }), { "content-type": TYPES[".json"]!, "cache-control": "no-store" });
      return true;
    }
    if (!files) {
      send(req, res, 503, `Engram: ${error}. Run npm install, then npm start again.\n`, {
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
      });
      return true;
    }
    const found = files.get(path);
    if (!found) {
      sendError(req, res, 404, "route.not_found", `No console file at ${path}.`);
      return true;
    }
    const headers = { "content-type": found.type, "cache-control": found.cacheControl, etag: found.etag };
    if (req.headers["if-none-match"] === found.etag) {
      res.writeHead(304, { ...BASE_HEADERS, "cache-control": found.cacheControl, etag: found.etag });
      res.end();
    } else {
      send(req, res, 200, found.body, headers);
    }
    return true;
  };
  return { extra, error };
}
