/**
 * `engram mcp`: Engram as an MCP server on stdio, for desktop agents. With `--url` (ENGRAM_URL)
 * it talks to that Engram through the typed client; otherwise to the local store: through the
 * running local server when one owns the embedded folder, else in-process on the database.
 * stdout carries the protocol, so logs stay on stderr.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { ErrorCode, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { $ZodError } from "zod/v4/core";
import { EngramApiError, type EngramClient } from "../client";
import * as Auth from "../core/auth";
import { config, setConfig } from "../core/config";
import { EngramError } from "../core/error";
import type { Describe, Memory } from "../core/mcp";
import * as Mcp from "../core/mcp";
import * as Local from "../core/mcp/local";
import { connect, remote } from "./client";

export interface McpOptions {
  url?: string;
  apiKey?: string;
  userId?: string;
  tenant: string;
}

/** The tools' memory over a remote Engram: the same routes any client calls. */
export function remoteMemory(api: EngramClient): Memory {
  return {
    remember: (document) => api.ingest({ documents: [document] }),
    search: (request) => api.search(request),
    ask: (request) => api.chat({ ...request, stream: false, format: undefined }),
    list: (query) => api.documents.list(query),
    forget: (id, hard) => api.documents.delete(id, { hard }),
  };
}

const describeRemote: Describe = (error) =>
  error instanceof EngramApiError
    ? { code: error.code, message: error.message }
    : { code: "internal", message: error instanceof Error ? error.message : String(error) };

async function memoryFor(options: McpOptions): Promise<{ memory: Memory; describe: Describe }> {
  if (options.url) {
    const api = remote(options.url, { apiKey: options.apiKey, userId: options.userId });
    return { memory: remoteMemory(api), describe: describeRemote };
  }
  // As every CLI command: through the running local server when one owns the folder, else in-process.
  const client = await connect({ tenant: options.tenant, user: options.userId, key: options.apiKey });
  if (client.kind === "http") return { memory: remoteMemory(client.api), describe: describeRemote };
  return { memory: Local.memory(client.db, client.caller), describe: Local.describe("stdio") };
}

/**
 * Refuses at start what would make every tool call fail: a remote Engram without a key, a key or an
 * end user the API would refuse. Thrown, it is the CLI's one line on stderr and a non-zero exit.
 */
function check(options: McpOptions): void {
  const refuse = (what: string, error: unknown) => {
    const reason = error instanceof EngramError ? error.message : String(error);
    throw new EngramError("input", "mcp.invalid_option", `${what} is refused: ${reason}`);
  };
  if (options.url) {
    let url: URL | undefined;
    try {
      url = new URL(options.url);
    } catch {}
    if (url?.protocol !== "http:" && url?.protocol !== "https:") {
      throw new EngramError("input", "mcp.invalid_option", `ENGRAM_URL (--url) is not an http(s) URL: ${options.url}`);
    }
    if (!options.apiKey) {
      throw new EngramError(
        "input",
        "mcp.invalid_option",
        "ENGRAM_URL (--url) needs the API key of that Engram: set ENGRAM_API_KEY or pass --key",
      );
    }
  }
  if (options.apiKey) {
    try {
      Auth.keyFrom(`Bearer ${options.apiKey}`);
    } catch (error) {
      refuse("ENGRAM_API_KEY (--key)", error);
    }
  }
  // Empty is the tenant's shared space, as without it (the client sends no X-User-Id).
  if (options.userId) {
    try {
      Auth.userIdFrom(options.userId);
    } catch (error) {
      refuse(`ENGRAM_USER_ID (--user) ${JSON.stringify(options.userId)}`, error);
    }
  }
}

/**
 * The SDK's stdio transport hands a line it cannot read to `onerror` (JSON.parse's SyntaxError, or
 * zod's error for JSON that is no JSON-RPC message) and reads on; JSON-RPC 2.0 answers such a line,
 * with id null since none could be read, so the client is not left waiting for a reply.
 */
function answerUnreadable(transport: StdioServerTransport): void {
  transport.onerror = (error) => {
    const refusal =
      error instanceof SyntaxError
        ? { code: ErrorCode.ParseError, message: `Parse error: ${error.message}` }
        : error instanceof $ZodError
          ? { code: ErrorCode.InvalidRequest, message: "Invalid Request: a line must be one JSON-RPC 2.0 message" }
          : undefined;
    if (!refusal) return;
    // The SDK's type allows an error response without an id, not JSON-RPC's `id: null`.
    const message = { jsonrpc: "2.0", id: null, error: refusal } as unknown as JSONRPCMessage;
    transport.send(message).catch(() => {});
  };
}

/** Serves until the client closes stdin. */
export async function serveStdio(options: McpOptions): Promise<void> {
  check(options);
  if (["debug", "info"].includes(config().logLevel)) setConfig({ LOG_LEVEL: "warn" });
  const { memory, describe } = await memoryFor(options);
  const server = Mcp.server(memory, describe);
  const closed = new Promise<void>((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
  });
  const transport = new StdioServerTransport();
  answerUnreadable(transport); // before connect, which keeps it and adds its own
  await Mcp.connect(server, transport);
  await closed;
  await server.close();
}
