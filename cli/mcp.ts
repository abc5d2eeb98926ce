/**
 * `engram mcp`: Engram as an MCP server on stdio, for desktop agents. With `--url` (ENGRAM_URL)
 * it talks to that Engram through the typed client; otherwise to the local store: through the
 * running local server when one owns the embedded folder, else in-process on the database.
 * stdout carries the protocol, so logs stay on stderr.
 */
import { isUtf8 } from "node:buffer";
import { Transform } from "node:stream";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { ErrorCode, isJSONRPCRequest, type JSONRPCMessage } from "@modelcontextprotocol/sdk/types.js";
import { $ZodError } from "zod/v4/core";
import { EngramApiError, type EngramClient } from "../client";
import { MAX_BODY_BYTES } from "../core/api/http";
import type { Background } from "../core/background";
import { config, setConfig } from "../core/config";
import { embedder } from "../core/embedding";
import { EngramError } from "../core/error";
import type { Describe, Memory } from "../core/mcp";
import * as Mcp from "../core/mcp";
import * as Batch from "../core/mcp/batch";
import * as Local from "../core/mcp/local";
import { checkTarget, connect } from "./client";
import { exitCleanlyOnSignals, keepUp, LOCAL_TENANT } from "./local";

export interface McpOptions {
  url?: string;
  apiKey?: string;
  userId?: string;
  /** The local store's tenant (default `local`); a remote Engram serves the key's. */
  tenant?: string;
}

/**
 * A refusal of the API's body worded for the tool's argument, as the in-process tools word it (core/mcp/local.ts):
 * `Invalid request at documents.0.title` names no argument the model sent; `title` does.
 */
function asArgument(error: unknown, from: string, to: string): unknown {
  if (!(error instanceof EngramApiError)) return error;
  const moved = (path: string) =>
    path === from
      ? to
      : path.startsWith(`${from}.`)
        ? [to, path.slice(from.length + 1)].filter(Boolean).join(".")
        : path;
  const message = error.message.replace(/^Invalid request at ([^\s:]+):/, (_, path: string) =>
    moved(path) ? `Invalid request at ${moved(path)}:` : "Invalid request:",
  );
  const details = Array.isArray(error.details)
    ? error.details.map((detail: { path?: unknown }) =>
        typeof detail?.path === "string" ? { ...detail, path: moved(detail.path) } : detail,
      )
    : error.details;
  return new EngramApiError(error.status, error.code, message, { ...error, details });
}

/** The tools' memory over a remote Engram: the same routes any client calls. */
export function remoteMemory(api: EngramClient, userId?: string): Memory {
  return {
    remember: (document) =>
      api.ingest({ documents: [document] }).catch((error) => {
        throw asArgument(error, "documents.0", "");
      }),
    search: (request) => api.search(request),
    ask: (request) =>
      api.chat({ ...request, stream: false, format: undefined }).catch((error) => {
        throw asArgument(error, "messages.0.content", "question");
      }),
    list: (query) => api.documents.list(query),
    forget: (id, hard) => api.documents.delete(id, { hard }),
    // Without a user, forget acts on the shared space itself.
    inShared: async (id) =>
      userId !== undefined &&
      api.documents.get(id, { scope: "shared", track: false }).then(
        () => true,
        () => false,
      ),
  };
}

const describeRemote: Describe = (error) =>
  error instanceof EngramApiError
    ? { code: error.code, message: error.message }
    : { code: "internal", message: error instanceof Error ? error.message : String(error) };

async function memoryFor(
  options: McpOptions,
): Promise<{ memory: Memory; describe: Describe; background?: Background }> {
  // As every CLI command: the remote Engram, else the running local server when one owns the folder, else in-process.
  // A mistyped --tenant is refused, as by search, not made into a new tenant the memories would go to.
  // A remote Engram serves the key's tenant: a --tenant there would be silently ignored, as `engram search` says.
  if (options.url !== undefined && options.tenant !== undefined) {
    throw new EngramError(
      "input",
      "cli.invalid_option",
      "with --url (ENGRAM_URL) the API key names the tenant: drop --tenant",
    );
  }
  const client = await connect(
    {
      tenant: options.tenant ?? LOCAL_TENANT,
      tenantGiven: options.tenant !== undefined,
      user: options.userId,
      key: options.apiKey,
      url: options.url,
    },
    // A tool call the server's rate limit refuses is that tool's error at once, as over HTTP: waited out, it held the
    // MCP client past its timeout, and then ran after the client had given it up.
    { create: false, waitOutRateLimits: false },
  );
  if (client.kind === "http") {
    await checkKey(client.api, client.url);
    return { memory: remoteMemory(client.api, options.userId), describe: describeRemote };
  }
  return {
    memory: Local.memory(client.db, client.caller),
    describe: Local.describe("stdio"),
    // The embedded folder has no other process to do it; a Postgres of DATABASE_URL has its server or cleanup job.
    background: config().database.driver === "pglite" ? keepUp(client.db, embedder()) : undefined,
  };
}

/**
 * A key the Engram behind `url` refuses would fail every tool call: refused at start, as a malformed one is. One
 * authenticated read; an Engram that cannot be reached yet is only said, as it may be up by the first call.
 */
async function checkKey(api: EngramClient, url: string): Promise<void> {
  try {
    // Bounded: an Engram that does not answer must not hold the MCP client's start.
    await api.stats({ signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    if (error instanceof EngramApiError && error.status === 401) {
      throw new EngramError(
        "input",
        "cli.invalid_option",
        `ENGRAM_API_KEY (--key) is refused by ${url}: ${error.message}`,
      );
    }
    const reason = error instanceof Error ? error.message : String(error);
    process.stderr.write(`engram: ${url} did not answer a first request (${reason}); serving anyway\n`);
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
        ? {
            code: ErrorCode.ParseError,
            message: `Parse error: ${error.message}`,
            // As `POST /mcp` answers a body that is no JSON: the API's code in `data`.
            data: { code: "request.invalid_json" },
          }
        : error instanceof $ZodError
          ? // As POST /mcp answers such a body.
            Batch.invalidRequest(
              'a line must be a JSON-RPC 2.0 message ("jsonrpc": "2.0", an id that is a string or an integer) or a non-empty batch of them',
            ).error
          : undefined;
    if (refusal) refuseLine(transport, refusal);
  };
}

/**
 * Batches on stdio, read as POST /mcp reads them (core/mcp/batch.ts). The SDK's reader takes one message a line, so a
 * line that is a JSON array is read here instead: its messages go to the server in its order, as lines' would, and
 * their answers are held and written together, each refused member's error in its place, as one array once all are
 * in (nothing, when nothing is to be answered). A line that is no JSON is left to the reader, which refuses it.
 */
function answerBatches(transport: StdioServerTransport): (line: Buffer) => boolean {
  /** The batches waiting for answers, by the ids of their requests. */
  const waiting = new Map<string | number, Waiting>();
  const send = transport.send.bind(transport);
  // Each held answer's send settles once its batch's answer is written, so answeringAll still waits for it.
  transport.send = (message: JSONRPCMessage) => {
    const id = "method" in message ? undefined : (message as { id?: string | number }).id;
    const batch = id === undefined ? undefined : waiting.get(id);
    if (id === undefined || !batch) return send(message);
    waiting.delete(id);
    batch.answers.push(message);
    if (batch.answers.length === batch.requests) {
      batch.write(send(Batch.answerOf(batch.members, batch.answers) as unknown as JSONRPCMessage));
    }
    return batch.written;
  };
  return (line) => {
    if (line[0] !== 0x5b) return false;
    let parsed: unknown[];
    try {
      parsed = JSON.parse(line.toString("utf8"));
    } catch {
      return false;
    }
    const read = Batch.read(parsed);
    if ("refusal" in read) {
      refuseLine(transport, read.refusal.error);
      return true;
    }
    const messages = Batch.messagesOf(read.members);
    const requests = messages.filter(isJSONRPCRequest);
    // Its answers are matched by id: one of a batch still being answered would be taken for that batch's.
    if (requests.some((request) => waiting.has(request.id))) {
      refuseLine(
        transport,
        Batch.invalidRequest("a batch's requests must have ids other than those of the batches still being answered")
          .error,
      );
      return true;
    }
    if (requests.length > 0) {
      const batch = waitingFor(read.members, requests.length);
      for (const request of requests) waiting.set(request.id, batch);
    } else {
      const answer = Batch.answerOf(read.members, []);
      if (answer.length > 0) send(answer as unknown as JSONRPCMessage).catch(() => {});
    }
    for (const message of messages) transport.onmessage?.(message);
    return true;
  };
}

/** A batch waiting for the answers of its `requests`; `written` settles as the write of its answer does. */
interface Waiting {
  members: Batch.Member[];
  requests: number;
  answers: JSONRPCMessage[];
  write(sent: Promise<void>): void;
  written: Promise<void>;
}

function waitingFor(members: Batch.Member[], requests: number): Waiting {
  let write: Waiting["write"] = () => {};
  const written = new Promise<void>((resolve, reject) => {
    write = (sent) => sent.then(resolve, reject);
  });
  return { members, requests, answers: [], write, written };
}

/** Answers a line that was not read, with id null as none could be. */
function refuseLine(transport: StdioServerTransport, refusal: LineRefusal): void {
  // The SDK's type allows an error response without an id, not JSON-RPC's `id: null`.
  const message = { jsonrpc: "2.0", id: null, error: refusal } as unknown as JSONRPCMessage;
  transport.send(message).catch(() => {});
}

/** A JSON-RPC error for a line refused before the SDK's reader sees it. */
export interface LineRefusal {
  code: number;
  message: string;
  data?: { code: string };
}

const LF = 0x0a;
const NEWLINE = Buffer.from([LF]);
/** JSON's whitespace other than the newline that ends a line: space, tab, carriage return. */
const BLANK = new Set([0x20, 0x09, 0x0d]);
/**
 * As `POST /mcp` answers a body over its limit (core/api/http.ts): the same limit, code and message, the API's code in
 * `data`. The limit is under what the SDK's reader holds (10 MB, a partial line and the chunk after it; past that it
 * closes the transport, and the server ended without a word), and the largest request the tools take (`remember`'s
 * 1,000,000 characters, escaped) fits, as it does in the body.
 */
const TOO_LARGE: LineRefusal = {
  code: ErrorCode.InvalidRequest,
  message: `Invalid Request: The line is larger than ${MAX_BODY_BYTES / 1024 / 1024} MB.`,
  data: { code: "request.too_large" },
};

/** As `POST /mcp` answers a body that is not UTF-8 (core/api/http.ts): the same code, the API's code in `data`. */
const NOT_UTF8: LineRefusal = {
  code: ErrorCode.ParseError,
  message: "Parse error: The line is not valid UTF-8.",
  data: { code: "request.invalid_utf8" },
};

/**
 * The input as the SDK's reader is to read it: whole lines, one at a time, each valid UTF-8, and no blank ones. The
 * reader decodes leniently, so a line of bad bytes (Latin-1 `café`) was stored with U+FFFD in their place; such a line
 * is answered as `POST /mcp` answers such a body, through `refuse`, and the lines after it are read. So is a line
 * longer than `POST /mcp`'s body limit, as soon as it grows past it; its rest is dropped, not held, up to its newline.
 * MCP transports ignore empty and whitespace-only lines ("\r" from a CRLF client, a stray Enter), which the reader
 * would answer -32700; JSON ignores whitespace before a value, so each line's leading whitespace is dropped. A line is held until its
 * newline (at most the body limit), as the reader holds it anyway, and passed on alone, so the reader never holds more.
 */
export function inputLines(refuse: (refusal: LineRefusal) => void, take?: (line: Buffer) => boolean): Transform {
  let parts: Buffer[] = [];
  /** Bytes of the current line held, or -1 while dropping the rest of a line that was too long. */
  let length = 0;
  const lineOut = (stream: Transform) => {
    const line = Buffer.concat([...parts, NEWLINE]);
    parts = [];
    length = 0;
    if (!isUtf8(line)) refuse(NOT_UTF8);
    else if (!take?.(line)) stream.push(line);
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      let i = 0;
      while (i < chunk.length) {
        const end = chunk.indexOf(LF, i);
        const stop = end === -1 ? chunk.length : end;
        if (length === 0) while (i < stop && BLANK.has(chunk[i] as number)) i++;
        if (length >= 0 && length + (stop - i) > MAX_BODY_BYTES) {
          parts = [];
          length = -1;
          refuse(TOO_LARGE);
        } else if (length >= 0 && stop > i) {
          parts.push(chunk.subarray(i, stop));
          length += stop - i;
        }
        if (end === -1) break;
        if (length > 0) lineOut(this);
        length = 0;
        i = end + 1;
      }
      done();
    },
    // A last line without its newline (`printf '{...}' | engram mcp`) is still a line: the SDK's reader waits for one.
    flush(done) {
      if (length > 0) lineOut(this);
      done();
    },
  });
}

/** Serves until the client closes stdin. */
export async function serveStdio(options: McpOptions): Promise<void> {
  checkTarget({ url: options.url, key: options.apiKey, user: options.userId }, true);
  if (["debug", "info"].includes(config().logLevel)) setConfig({ LOG_LEVEL: "warn" });
  const { memory, describe, background } = await memoryFor(options);
  const server = Mcp.server(memory, describe);
  // A line refused here is answered at once, as the reader's refusals are: their order among the answers is the
  // client's to match by id, none having one.
  const input = inputLines(
    (refusal) => refuseLine(transport, refusal),
    (line) => batches(line),
  );
  const transport = new StdioServerTransport(input, process.stdout);
  const batches = answerBatches(transport); // before answeringAll, which is to count the answers it holds
  process.stdin.pipe(input);
  // Ended when the filtered input is (its last line flushed and read), or when stdin goes without ending.
  const closed = new Promise<void>((resolve) => {
    input.once("end", resolve);
    process.stdin.once("close", () => {
      if (!process.stdin.readableEnded) resolve();
    });
  });
  // On the store itself, a client closing the server (the SDK's stdio client ends stdin, then sends SIGTERM two seconds
  // later) stops the background work first: a write it cut short would damage the embedded database's folder.
  if (background) exitCleanlyOnSignals(() => background.stop());
  answerUnreadable(transport); // before connect, which keeps it and adds its own
  await Mcp.connect(server, transport);
  const answered = answeringAll(transport);
  await closed;
  await answered();
  await server.close();
  await background?.stop();
}

/**
 * Counts the requests read and the answers written, so that stdin closing (`printf ... | engram mcp`) ends the
 * server only once every request read has been answered: a tool call still in flight had been dropped.
 */
function answeringAll(transport: StdioServerTransport): () => Promise<void> {
  const pending = new Set<string | number>();
  let settled: (() => void) | undefined;
  const receive = transport.onmessage;
  transport.onmessage = (message: JSONRPCMessage) => {
    if ("method" in message && "id" in message) pending.add(message.id);
    receive?.(message);
  };
  const send = transport.send.bind(transport);
  transport.send = async (message: JSONRPCMessage) => {
    try {
      return await send(message);
    } finally {
      const id = "method" in message ? undefined : (message as { id?: string | number }).id;
      if (id !== undefined && pending.delete(id) && pending.size === 0) settled?.();
    }
  };
  return () => (pending.size === 0 ? Promise.resolve() : new Promise<void>((resolve) => (settled = resolve)));
}
