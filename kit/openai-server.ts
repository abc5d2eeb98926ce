/**
 * A local OpenAI-compatible server for tests. The real `openai` SDK talks to it via
 * `baseURL: server.url`. Deterministic embeddings, scriptable chat replies (plain and
 * SSE streaming), fault injection, and a log of what was asked.
 *
 * As strict as the real API where a mistake of ours would pass a kinder fake: every request
 * needs `Authorization: Bearer <the configured key>` (401 `invalid_api_key` otherwise), and the
 * parameters are checked against what OpenAI accepts: unknown arguments, `max_tokens` for
 * reasoning models (o-series, gpt-5: `max_completion_tokens` only) or a temperature other than
 * 1 for them, both token limits at once, `stream_options` without `stream`, message roles,
 * and the embedding limits (8,192 tokens an input, 300,000 a request). Each refusal is the 400
 * OpenAI answers, with its `param`.
 */
import { createHash } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface LoggedRequest {
  method: string;
  path: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed JSON body (undefined for GET or an unparsable body). Loosely typed for assertions. */
  body: any;
}

export interface ChatRequestBody {
  model: string;
  messages: Array<{ role: string; content: string | null | Array<{ type: string; text?: string }> }>;
  stream?: boolean;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  [key: string]: unknown;
}

export interface EmbeddingRequestBody {
  model?: unknown;
  input?: unknown;
  dimensions?: unknown;
  encoding_format?: unknown;
  [key: string]: unknown;
}

export interface FailOptions {
  status: 429 | 500 | 503 | number;
  /** `retry-after` header: delta-seconds, or a string sent verbatim (e.g. an HTTP date). */
  retryAfter?: number | string;
  /** `retry-after-ms` header. */
  retryAfterMs?: number;
  /** Raw response body; defaults to an OpenAI-style error JSON. */
  body?: string;
}

export interface FakeOpenAIStats {
  embeddingRequests: number;
  /** Total number of input strings embedded (successful embedding requests only). */
  embeddedInputs: number;
  chatRequests: number;
  /** Streaming responses whose client went away before the stream was finished. */
  streamsAborted: number;
  /** Any request whose client went away before its response was finished (streams included). */
  requestsAborted: number;
}

export interface FakeOpenAI {
  /** Base URL for the SDK, including `/v1`. */
  readonly url: string;
  /** The API key every request must carry as `Authorization: Bearer <apiKey>`. */
  readonly apiKey: string;
  readonly stats: FakeOpenAIStats;
  readonly requests: LoggedRequest[];
  /** Chat reply script; default: "Answer based on [1]. " + first line of the last user message. */
  reply: (request: ChatRequestBody) => string;
  /** Delay before every response is started (headers included). */
  delayMs: number;
  /** Delay between streamed deltas. */
  streamDelayMs: number;
  /** When set, every stream is cut (socket destroyed) after this many content deltas. */
  dropStreamAfter: number | undefined;
  /** When false, responses carry no `usage` (like some OpenAI-compatible servers). Default true. */
  reportUsage: boolean;
  /** Native dimensions per embedding model (used when `dimensions` is not sent). Default 1536. */
  modelDimensions: Record<string, number>;
  /** Next n requests fail with the given status. */
  failNext(n: number, opts: FailOptions): void;
  /** Next n requests get a 200 with an invalid JSON body. */
  malformedNext(n: number): void;
  /** Next n streams are cut after `afterDeltas` content deltas (one-shot variant of dropStreamAfter). */
  dropNextStreams(n: number, afterDeltas: number): void;
  /** Clears stats, the request log, faults and settings (the reply script included). */
  reset(): void;
  close(): Promise<void>;
}

/** Default chat reply. */
export function defaultReply(request: ChatRequestBody): string {
  const lastUser = [...(request.messages ?? [])].reverse().find((m) => m.role === "user");
  const text = contentText(lastUser?.content);
  return `Answer based on [1]. ${text.split("\n")[0] ?? ""}`.trimEnd();
}

function contentText(content: ChatRequestBody["messages"][number]["content"] | undefined): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => p.text ?? "").join("");
  return "";
}

export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

/** The deterministic unit vector the server returns for `text` (exported for assertions). */
export function fakeEmbedding(text: string, dimensions: number): Float32Array {
  const digest = createHash("sha256").update(text).digest();
  let s = [digest.readUInt32LE(0), digest.readUInt32LE(4), digest.readUInt32LE(8), digest.readUInt32LE(12)];
  if (s.every((x) => x === 0)) s = [1, 2, 3, 4];
  // xoshiro128** PRNG
  const next = () => {
    const [a, b, c, d] = s as [number, number, number, number];
    const result = Math.imul(rotl(Math.imul(b, 5), 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    let c2 = (c ^ a) >>> 0;
    let d2 = (d ^ b) >>> 0;
    const b2 = (b ^ c2) >>> 0;
    const a2 = (a ^ d2) >>> 0;
    c2 = (c2 ^ t) >>> 0;
    d2 = rotl(d2, 11);
    s = [a2, b2, c2, d2];
    return result / 4294967296;
  };
  const v = new Float32Array(dimensions);
  let sum = 0;
  for (let i = 0; i < dimensions; i++) {
    const x = next() * 2 - 1;
    v[i] = x;
    sum += x * x;
  }
  const norm = Math.sqrt(sum) || 1;
  for (let i = 0; i < dimensions; i++) v[i] = (v[i] as number) / norm;
  return v;
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function float32ToBase64(v: Float32Array): string {
  const buf = Buffer.alloc(v.length * 4);
  for (let i = 0; i < v.length; i++) buf.writeFloatLE(v[i] as number, i * 4);
  return buf.toString("base64");
}

function splitIntoDeltas(reply: string): string[] {
  const parts = reply.match(/\S+\s*|\s+/g) ?? [];
  return parts.length > 0 ? parts : [reply];
}

class HttpError extends Error {
  constructor(
    public readonly status: number,
    message: string,
    public readonly type = "invalid_request_error",
    public readonly param: string | null = null,
  ) {
    super(message);
  }
}

function errorJson(message: string, type: string, param: string | null = null, code: string | null = null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

/** The key `startOpenAIServer` requires unless given another. */
export const FAKE_OPENAI_KEY = "test-key";

const CHAT_PARAMS = new Set([
  "model",
  "messages",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
  "temperature",
  "top_p",
  "n",
  "stop",
  "presence_penalty",
  "frequency_penalty",
  "logit_bias",
  "logprobs",
  "top_logprobs",
  "user",
  "seed",
  "tools",
  "tool_choice",
  "parallel_tool_calls",
  "response_format",
  "reasoning_effort",
  "store",
  "metadata",
  "modalities",
  "audio",
  "prediction",
  "service_tier",
  "verbosity",
  "web_search_options",
  "prompt_cache_key",
  "safety_identifier",
]);
const EMBEDDING_PARAMS = new Set(["model", "input", "dimensions", "encoding_format", "user"]);
const ROLES = new Set(["system", "developer", "user", "assistant", "tool"]);
/** Models that take only `max_completion_tokens` and the default temperature. */
export const isReasoningModel = (model: string) => /^(o\d|gpt-5)/.test(model);

function unknownArgument(body: Record<string, unknown>, allowed: Set<string>): void {
  const unknown = Object.keys(body).find((key) => !allowed.has(key));
  if (unknown) throw new HttpError(400, `Unrecognized request argument supplied: ${unknown}`, undefined, unknown);
}

function checkTokenLimit(body: ChatRequestBody, name: "max_tokens" | "max_completion_tokens"): void {
  const value = body[name];
  if (value === undefined || value === null) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 1) {
    throw new HttpError(400, `Invalid '${name}': expected an integer of at least 1.`, undefined, name);
  }
}

/** The 400s OpenAI answers to a chat request it does not accept. */
function checkChatRequest(body: ChatRequestBody): void {
  unknownArgument(body, CHAT_PARAMS);
  for (const [i, m] of body.messages.entries()) {
    if (!m || typeof m !== "object" || !ROLES.has(m.role)) {
      throw new HttpError(400, `Invalid value for 'messages[${i}].role'.`, undefined, `messages[${i}].role`);
    }
    const content = m.content;
    if (!(typeof content === "string" || Array.isArray(content) || (content === null && m.role === "assistant"))) {
      throw new HttpError(400, `Invalid type for 'messages[${i}].content'.`, undefined, `messages[${i}].content`);
    }
  }
  checkTokenLimit(body, "max_tokens");
  checkTokenLimit(body, "max_completion_tokens");
  if (body.max_tokens != null && body.max_completion_tokens != null) {
    throw new HttpError(
      400,
      "max_tokens and max_completion_tokens cannot both be set; use max_completion_tokens.",
      undefined,
      "max_tokens",
    );
  }
  if (isReasoningModel(body.model)) {
    if (body.max_tokens != null) {
      throw new HttpError(
        400,
        "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.",
        undefined,
        "max_tokens",
      );
    }
    if (body.temperature != null && body.temperature !== 1) {
      throw new HttpError(
        400,
        `Unsupported value: 'temperature' does not support ${body.temperature} with this model. Only the default (1) value is supported.`,
        undefined,
        "temperature",
      );
    }
  }
  if (body.stream_options != null && body.stream !== true) {
    throw new HttpError(
      400,
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      undefined,
      "stream_options",
    );
  }
}

export async function startOpenAIServer(options: { apiKey?: string } = {}): Promise<FakeOpenAI> {
  const apiKey = options.apiKey ?? FAKE_OPENAI_KEY;
  let failures: Array<FailOptions> = [];
  let malformed = 0;
  let drops: number[] = [];
  let counter = 0;

  const stats: FakeOpenAIStats = {
    embeddingRequests: 0,
    embeddedInputs: 0,
    chatRequests: 0,
    streamsAborted: 0,
    requestsAborted: 0,
  };
  const requests: LoggedRequest[] = [];

  const fake = {
    url: "",
    apiKey,
    stats,
    requests,
    reply: defaultReply,
    delayMs: 0,
    streamDelayMs: 0,
    dropStreamAfter: undefined as number | undefined,
    reportUsage: true,
    modelDimensions: { "text-embedding-3-large": 3072 } as Record<string, number>,
    failNext(n: number, opts: FailOptions) {
      for (let i = 0; i < n; i++) failures.push(opts);
    },
    malformedNext(n: number) {
      malformed += n;
    },
    dropNextStreams(n: number, afterDeltas: number) {
      for (let i = 0; i < n; i++) drops.push(afterDeltas);
    },
    reset() {
      failures = [];
      malformed = 0;
      drops = [];
      requests.length = 0;
      stats.embeddingRequests = 0;
      stats.embeddedInputs = 0;
      stats.chatRequests = 0;
      stats.streamsAborted = 0;
      stats.requestsAborted = 0;
      fake.reply = defaultReply;
      fake.delayMs = 0;
      fake.streamDelayMs = 0;
      fake.dropStreamAfter = undefined;
      fake.reportUsage = true;
      fake.modelDimensions = { "text-embedding-3-large": 3072 };
    },
    close: async () => {},
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500, { "content-type": "application/json" });
        res.end(errorJson(String(err), "server_error"));
      } else {
        res.destroy();
      }
    });
  });

  /** Resolves after ms, or early (false) when the client goes away. */
  function wait(ms: number, res: ServerResponse): Promise<boolean> {
    if (ms <= 0) return Promise.resolve(!res.destroyed);
    return new Promise((resolve) => {
      const onClose = () => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        res.off("close", onClose);
        resolve(!res.destroyed);
      }, ms);
      res.once("close", onClose);
    });
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
    const text = typeof body === "string" ? body : JSON.stringify(body);
    res.writeHead(status, {
      "content-type": "application/json",
      "content-length": String(Buffer.byteLength(text)),
      "x-request-id": `req_${++counter}`,
      ...headers,
    });
    res.end(text);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://localhost");
    const method = req.method ?? "GET";
    const raw = method === "GET" || method === "HEAD" ? "" : await readBody(req);
    let body: unknown;
    let badJson = false;
    if (raw !== "") {
      try {
        body = JSON.parse(raw);
      } catch {
        badJson = true;
      }
    }
    const path = url.pathname;
    requests.push({ method, path, headers: { ...req.headers }, body });
    if (path === "/v1/embeddings") stats.embeddingRequests++;
    if (path === "/v1/chat/completions") stats.chatRequests++;

    const isStream = path === "/v1/chat/completions" && (body as { stream?: unknown } | undefined)?.stream === true;
    let finished = false;
    res.on("finish", () => {
      finished = true;
    });
    let intentionalDrop = false;
    res.on("close", () => {
      if (finished || intentionalDrop) return;
      stats.requestsAborted++;
      if (isStream && res.headersSent) stats.streamsAborted++;
    });

    if (!(await wait(fake.delayMs, res))) return;

    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      const shown = /^Bearer (.*)$/.exec(req.headers.authorization ?? "")?.[1];
      sendJson(
        res,
        401,
        errorJson(
          shown
            ? `Incorrect API key provided: ${shown.slice(0, 3)}***${shown.slice(-4)}.`
            : "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
          "invalid_request_error",
          null,
          "invalid_api_key",
        ),
      );
      return;
    }

    const failure = failures.shift();
    if (failure) {
      const headers: Record<string, string> = {};
      if (failure.retryAfter !== undefined) headers["retry-after"] = String(failure.retryAfter);
      if (failure.retryAfterMs !== undefined) headers["retry-after-ms"] = String(failure.retryAfterMs);
      const type = failure.status === 429 ? "rate_limit_exceeded" : "server_error";
      sendJson(res, failure.status, failure.body ?? errorJson(`injected ${failure.status}`, type), headers);
      return;
    }
    if (malformed > 0) {
      malformed--;
      sendJson(res, 200, '{"object": "list", "data": [ {"embedding": [0.1, ');
      return;
    }

    try {
      if (badJson) throw new HttpError(400, "We could not parse the JSON body of your request.");
      if (method === "GET" && path === "/v1/models") {
        const ids = ["text-embedding-3-small", "text-embedding-3-large", "gpt-4o-mini"];
        sendJson(res, 200, {
          object: "list",
          data: ids.map((id) => ({ id, object: "model", created: 1_700_000_000, owned_by: "fake" })),
        });
        return;
      }
      if (method === "POST" && path === "/v1/embeddings") {
        handleEmbeddings((body ?? {}) as EmbeddingRequestBody, res);
        return;
      }
      if (method === "POST" && path === "/v1/chat/completions") {
        await handleChat(body as ChatRequestBody, res, () => {
          intentionalDrop = true;
        });
        return;
      }
      throw new HttpError(404, `Invalid URL (${method} ${path})`);
    } catch (err) {
      if (err instanceof HttpError) {
        sendJson(res, err.status, errorJson(err.message, err.type, err.param));
        return;
      }
      throw err;
    }
  }

  function handleEmbeddings(body: EmbeddingRequestBody, res: ServerResponse) {
    unknownArgument(body, EMBEDDING_PARAMS);
    const model = body.model;
    if (typeof model !== "string" || model === "")
      throw new HttpError(400, "you must provide a model parameter", undefined, "model");
    let inputs: unknown[];
    const input = body.input;
    if (typeof input === "string") inputs = [input];
    else if (Array.isArray(input)) inputs = input;
    else throw new HttpError(400, "'input' is a required property", undefined, "input");
    if (inputs.length === 0) throw new HttpError(400, "'$.input' is invalid: must not be empty", undefined, "input");
    if (inputs.length > 2048) {
      throw new HttpError(
        400,
        `'$.input' is invalid: ${inputs.length} items, at most 2048 are allowed`,
        undefined,
        "input",
      );
    }
    if (!inputs.every((x) => typeof x === "string")) {
      throw new HttpError(
        400,
        "'$.input' is invalid: token arrays are not supported by this server",
        undefined,
        "input",
      );
    }
    if ((inputs as string[]).some((x) => x === "")) {
      throw new HttpError(400, "'$.input' is invalid: empty strings are not allowed", undefined, "input");
    }
    const longest = Math.max(...(inputs as string[]).map(estimateTokens));
    if (longest > 8192) {
      throw new HttpError(
        400,
        `This model's maximum context length is 8192 tokens, however you requested ${longest} tokens in the input.`,
        undefined,
        "input",
      );
    }
    const requested = (inputs as string[]).reduce((n, t) => n + estimateTokens(t), 0);
    if (requested > 300_000) {
      throw new HttpError(400, `Requested ${requested} tokens, max 300000 tokens per request`, undefined, "input");
    }
    const native = fake.modelDimensions[model] ?? 1536;
    let dims = native;
    if (body.dimensions !== undefined && body.dimensions !== null) {
      if (!model.startsWith("text-embedding-3")) {
        throw new HttpError(400, "This model does not support specifying dimensions.", undefined, "dimensions");
      }
      if (
        typeof body.dimensions !== "number" ||
        !Number.isInteger(body.dimensions) ||
        body.dimensions < 1 ||
        body.dimensions > native
      ) {
        throw new HttpError(400, `'dimensions' must be between 1 and ${native}`, undefined, "dimensions");
      }
      dims = body.dimensions;
    }
    const format = body.encoding_format ?? "float";
    if (format !== "float" && format !== "base64") {
      throw new HttpError(400, "'encoding_format' must be 'float' or 'base64'", undefined, "encoding_format");
    }
    const texts = inputs as string[];
    const tokens = texts.reduce((n, t) => n + estimateTokens(t), 0);
    stats.embeddedInputs += texts.length;
    sendJson(res, 200, {
      object: "list",
      model,
      data: texts.map((t, index) => {
        const v = fakeEmbedding(t, dims);
        return { object: "embedding", index, embedding: format === "base64" ? float32ToBase64(v) : Array.from(v) };
      }),
      ...(fake.reportUsage ? { usage: { prompt_tokens: tokens, total_tokens: tokens } } : {}),
    });
  }

  async function handleChat(body: ChatRequestBody, res: ServerResponse, markDrop: () => void) {
    if (typeof body?.model !== "string" || body.model === "")
      throw new HttpError(400, "you must provide a model parameter", undefined, "model");
    if (!Array.isArray(body.messages) || body.messages.length === 0) {
      throw new HttpError(400, "'messages' must be a non-empty array", undefined, "messages");
    }
    checkChatRequest(body);
    const reply = fake.reply(body);
    const promptTokens = body.messages.reduce((n, m) => n + estimateTokens(contentText(m.content)), 0);
    const usage = {
      prompt_tokens: promptTokens,
      completion_tokens: estimateTokens(reply),
      total_tokens: promptTokens + estimateTokens(reply),
    };
    const id = `chatcmpl-${++counter}`;
    const created = Math.floor(Date.now() / 1000);

    if (body.stream !== true) {
      sendJson(res, 200, {
        id,
        object: "chat.completion",
        created,
        model: body.model,
        choices: [
          {
            index: 0,
            message: { role: "assistant", content: reply, refusal: null },
            finish_reason: "stop",
            logprobs: null,
          },
        ],
        ...(fake.reportUsage ? { usage } : {}),
      });
      return;
    }

    const includeUsage = body.stream_options?.include_usage === true && fake.reportUsage;
    const dropAfter = drops.length > 0 ? drops.shift() : fake.dropStreamAfter;
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "x-request-id": `req_${counter}`,
    });
    const chunk = (delta: object, finish: string | null, extra: object = {}) => ({
      id,
      object: "chat.completion.chunk",
      created,
      model: body.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
      ...(includeUsage ? { usage: null } : {}),
      ...extra,
    });
    /** Writes one SSE event; resolves once it has been handed to the socket. */
    const send = (data: unknown) =>
      new Promise<void>((resolve) => {
        if (res.destroyed) return resolve();
        res.write(`data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`, () => resolve());
      });
    const drop = () => {
      markDrop();
      res.destroy();
    };

    if (dropAfter === 0) return drop();
    await send(chunk({ role: "assistant", content: "", refusal: null }, null));
    const deltas = splitIntoDeltas(reply);
    for (let i = 0; i < deltas.length; i++) {
      if (i > 0 && !(await wait(fake.streamDelayMs, res))) return;
      if (res.destroyed) return;
      await send(chunk({ content: deltas[i] }, null));
      // Cut only after the deltas were flushed, so the client really sees them first.
      if (dropAfter !== undefined && i + 1 >= dropAfter) return drop();
    }
    if (!(await wait(fake.streamDelayMs, res))) return;
    await send(chunk({}, "stop"));
    if (includeUsage) {
      await send({ id, object: "chat.completion.chunk", created, model: body.model, choices: [], usage });
    }
    await send("[DONE]");
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  fake.url = `http://127.0.0.1:${port}/v1`;
  fake.close = () =>
    new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    });
  return fake;
}
