/**
 * `engram mcp`: Engram as an MCP server on stdio, for desktop agents. With `--url` (ENGRAM_URL)
 * it talks to that Engram through the typed client; otherwise to the local store: through the
 * running local server when one owns the embedded folder, else in-process on the database.
 * stdout carries the protocol, so logs stay on stderr.
 */
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { EngramApiError, type EngramClient } from "../client";
import { config, setConfig } from "../core/config";
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

/** Serves until the client closes stdin. */
export async function serveStdio(options: McpOptions): Promise<void> {
  if (["debug", "info"].includes(config().logLevel)) setConfig({ LOG_LEVEL: "warn" });
  const { memory, describe } = await memoryFor(options);
  const server = Mcp.server(memory, describe);
  const closed = new Promise<void>((resolve) => {
    process.stdin.once("end", resolve);
    process.stdin.once("close", resolve);
  });
  await server.connect(new StdioServerTransport());
  await closed;
  await server.close();
}
