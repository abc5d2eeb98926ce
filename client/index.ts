/**
 * `engram/client`: every route of Engram's HTTP API as a typed call, `call(routeKey, input)`, most of
 * them also as a named method. Types come from the route contract and the zod schemas the server
 * validates with (./types.ts), so they cannot drift; at runtime this module needs only `fetch` and
 * an SSE parser, never the server's database drivers or model SDKs.
 *
 *   const engram = createClient({ baseUrl: "http://localhost:3000", apiKey: process.env.ENGRAM_API_KEY });
 *   await engram.ingest({ documents: [{ content: "Refunds take 14 days." }] });
 *   await engram.call("GET /v1/documents/{id}", { params: { id: "refunds" } });
 *   for await (const e of engram.chatStream({ messages: [{ role: "user", content: "Refunds?" }] })) ...
 */
import { createParser } from "eventsource-parser";
import type * as T from "./types";

export type * from "./types";

const MARK = Symbol.for("engram.EngramApiError");

/**
 * An error answer with the API's dotted code; status 0 when there was no answer (the server could not be reached, or a
 * call the client refused before sending it, as an empty `userId` returned by its function). `code` is always
 * text: the API's (`document.not_found`); for POST /mcp's JSON-RPC errors, the API's code they carry in
 * `data.code`, else `jsonrpc.<number>` (`jsonrpc.-32000`); `http.<status>` for an answer that names none.
 */
export class EngramApiError extends Error {
  /** engram/ai bundles its own copy of this module: an error from either copy is an EngramApiError. */
  static [Symbol.hasInstance](value: unknown): value is EngramApiError {
    return typeof value === "object" && value !== null && MARK in value;
  }
  readonly [MARK] = true;
  /** For 400s: the failing paths, e.g. `documents.0.content`. */
  readonly details: unknown;
  readonly requestId: string | null;
  /** Seconds the server asked to wait (429, some 503s). */
  readonly retryAfter: number | null;

  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    extra: { details?: unknown; requestId?: string | null; retryAfter?: number | null } = {},
  ) {
    super(message);
    this.name = "EngramApiError";
    this.details = extra.details;
    this.requestId = extra.requestId ?? null;
    this.retryAfter = extra.retryAfter ?? null;
  }
}

export interface ClientOptions {
  /** Where Engram answers, e.g. `https://api.example.com` or `http://localhost:3000` ("" for the page's origin). */
  baseUrl: string;
  /** The tenant's key (`egm_...`), or a function read on every request; omit for health and the OpenAPI document only. */
  apiKey?: string | (() => string | null | undefined);
  /** The end user (`X-User-Id`): their private space plus the shared one. */
  userId?: string | (() => string | null | undefined);
  /** Opt-in: wait out 429s as `Retry-After` says, at most `retries` times (and `maxWaitSeconds`, default 60, each); a policy with a quota of 0 is never waited on. */
  retry?: { retries: number; maxWaitSeconds?: number; onWait?: (seconds: number, attempt: number) => void };
  /** A fetch of your own (instrumented, proxied, or a test double). */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

type Query = Record<string, string | number | boolean | null | undefined>;

/**
 * Options of one `call`: beyond the signal, headers; `accept` replaces the Accept the route requires (JSON, or
 * POST /mcp's two types).
 */
export interface RouteCallOptions extends CallOptions {
  accept?: string;
  headers?: Record<string, string>;
}

/** A route's key, `METHOD /path`, as the contract names it. */
export type RouteKey = keyof T.Routes;
/** The arguments of `call` for a route: its input is optional when the route requires none. */
export type CallArgs<K extends RouteKey> = {} extends T.Routes[K]["input"]
  ? [input?: T.Routes[K]["input"], options?: RouteCallOptions]
  : [input: T.Routes[K]["input"], options?: RouteCallOptions];

type JsonRpcRequest = { id: string | number };
type JsonRpcNotification = { method: string; id?: undefined };
/**
 * What POST /mcp answers a body: a request its response, a notification nothing (202); a batch an array of its
 * requests' responses in its order, nothing when it holds only notifications. (`call` throws a lone request's error.)
 */
export type McpAnswerTo<B> = B extends readonly (infer M)[]
  ? [M] extends [JsonRpcNotification]
    ? undefined
    : [M] extends [JsonRpcRequest]
      ? T.McpResponse[]
      : T.McpResponse[] | undefined
  : B extends JsonRpcRequest
    ? T.McpResponse
    : B extends JsonRpcNotification
      ? undefined
      : T.McpResponse | undefined;

/** The Accept a route requires beyond JSON, as its contract entry names it (a copy the compiler holds to it). */
const ACCEPT: T.Accepts = { "POST /mcp": "application/json, text/event-stream" };
/** The routes whose body can ask for a stream, which `call` cannot read (a copy the compiler holds to the contract). */
const STREAMS: Record<T.StreamingRoute, true> = { "POST /v1/chat": true, "POST /api/chat": true };

/**
 * A path parameter as its one URL segment. An empty one would leave the route (`/v1/documents//restore`, a 404
 * route.not_found) and a URL drops `.` and `..`: refused before sending, as the API refuses such ids in a body.
 */
function segment(route: RouteKey, name: string, value: string | undefined): string {
  if (value !== undefined && !/^\.{0,2}$/.test(value)) return encodeURIComponent(value);
  throw new EngramApiError(
    0,
    "request.invalid",
    `engram/client: ${name} ${JSON.stringify(value ?? "")} cannot be sent as {${name}} of ${route}: no item has an empty id, nor . or ..`,
  );
}

/**
 * Why `call` refuses a chat body that asks for a streamed answer, or undefined: sent, the chat would be answered and
 * stored, and the answer then lost to `response.not_json`.
 */
function streamed(route: RouteKey, body: unknown): string | undefined {
  if (!(route in STREAMS) || typeof body !== "object" || body === null) return undefined;
  const { stream, format } = body as { stream?: unknown; format?: unknown };
  const start = `engram/client: call("${route}") reads a JSON answer, and`;
  if (format !== undefined) {
    return `${start} format ${JSON.stringify(format)} asks for a stream: useChat reads it, through engram/ai's engramChatTransport`;
  }
  if (stream === true) return `${start} stream: true asks for events: chatStream() reads them`;
  return undefined;
}

export interface SendOptions extends CallOptions {
  query?: Query;
  body?: unknown;
  /** A multipart/form-data body instead of JSON (fetch sets its boundary). */
  form?: FormData;
  accept?: string;
  headers?: Record<string, string>;
}

/** Seconds from a `Retry-After` header: delta-seconds or an HTTP date. */
export function retryAfterOf(headers: Headers): number | null {
  const value = headers.get("retry-after");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

/** Whether a 429's `RateLimit-Policy` names a quota of 0 (`"search";q=0;w=3600`): no wait will ever pass it. */
function closedPolicy(headers: Headers): boolean {
  return /(?:^|;)\s*q=0\s*(?:;|,|$)/.test(headers.get("ratelimit-policy") ?? "");
}

/** An error body: the API's shape, or POST /mcp's JSON-RPC error, whose code is a number. */
type Failure = { code?: unknown; message?: string; details?: unknown; data?: { code?: unknown } };

function codeOf(error: Failure | undefined): string | undefined {
  if (typeof error?.code === "string") return error.code;
  if (typeof error?.data?.code === "string") return error.data.code;
  if (typeof error?.code === "number") return `jsonrpc.${error.code}`;
  return undefined;
}

/** A lone JSON-RPC error response: `{"jsonrpc": "2.0", "id": ..., "error": {"code": -32602, ...}}`. */
const isJsonRpcError = (body: unknown): body is { error: Failure } =>
  typeof body === "object" &&
  body !== null &&
  !Array.isArray(body) &&
  (body as { jsonrpc?: unknown }).jsonrpc === "2.0" &&
  typeof (body as { error?: { code?: unknown } }).error?.code === "number";

async function errorOf(response: Response): Promise<EngramApiError> {
  let code = `http.${response.status}`;
  let message = `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
  let details: unknown;
  try {
    const body = (await response.json()) as { error?: Failure };
    code = codeOf(body.error) ?? code;
    if (body.error?.message) message = body.error.message;
    details = body.error?.details;
  } catch {
    // not JSON: keep the status line
  }
  const requestId = response.headers.get("x-request-id");
  return new EngramApiError(response.status, code, message, {
    details,
    requestId,
    retryAfter: retryAfterOf(response.headers),
  });
}

/**
 * A successful answer's JSON; undefined for an empty one (POST /mcp's 202 to a notification). A body that is not JSON
 * (a proxy's page in front of the API) is an EngramApiError too, not the parser's SyntaxError.
 */
async function jsonOf(response: Response): Promise<unknown> {
  const text = await response.text();
  if (!text.trim()) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    const type = response.headers.get("content-type") ?? "no content type";
    throw new EngramApiError(
      response.status,
      "response.not_json",
      `The server answered ${response.status} with a body that is not JSON (${type}): is something else at this address?`,
      { requestId: response.headers.get("x-request-id"), retryAfter: null },
    );
  }
}

/** What GET /v1/health answers with 200, and with 503 while the database is unreachable. */
const isHealth = (body: unknown): body is T.Health =>
  typeof body === "object" &&
  body !== null &&
  typeof (body as T.Health).status === "string" &&
  typeof (body as T.Health).database === "string";

const sleep = (seconds: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });

/** Parses a `text/event-stream` body into the chat's typed events (eventsource-parser, WHATWG rules). */
export async function* chatEvents(body: ReadableStream<Uint8Array>, requestId: string | null = null) {
  const pending: T.ChatEvent[] = [];
  const parser = createParser({
    onEvent: ({ event, data }) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(data);
      } catch {
        return;
      }
      // A failure after the answer started arrives as an event; it belongs to this request.
      if (event === "error") parsed = { ...(parsed as object), requestId };
      pending.push({ event, data: parsed } as T.ChatEvent);
    },
  });
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      parser.feed(done ? decoder.decode() : decoder.decode(value, { stream: true }));
      yield* pending.splice(0);
      if (done) return;
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/**
 * Options that would fail every call, refused at creation as a TypeError (as `new URL` refuses a malformed URL): a
 * `baseUrl` with no http(s) scheme (`localhost:3000`) would fail each call as network.unreachable, and an empty
 * `userId` (an unfilled template) would put the user's data in the shared space every user reads.
 */
function checkOptions(options: ClientOptions): void {
  const base = options.baseUrl;
  if (base !== "" && !base.startsWith("/") && !/^https?:\/\/[^/]/i.test(base)) {
    throw new TypeError(
      `engram/client: baseUrl ${JSON.stringify(base)} is not an http(s) URL (write it as http://${base.replace(/^[a-z][a-z\d+.-]*:\/\//i, "")}), nor "" for the page's origin`,
    );
  }
  if (options.userId === "") throw new TypeError(emptyUserId);
}

const emptyUserId =
  "engram/client: userId is empty, which the API refuses (user.invalid_id): leave it out (or return null) for the tenant's shared space";

/** What `chatStream` yields: the chat's events but `error`, which it throws. */
export type ChatStreamEvent = Exclude<T.ChatEvent, { event: "error" }>;

export function createClient(options: ClientOptions) {
  checkOptions(options);
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));

  function url(route: string, query?: Query): string {
    const params = new URLSearchParams();
    // "" is sent as given, for the API to judge as it judges `?conversationId=` (400): left out, a filter would widen.
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null) params.set(name, String(value));
    }
    const search = params.toString();
    return `${base}${route}${search ? `?${search}` : ""}`;
  }

  function headersOf(call: SendOptions): Record<string, string> {
    const headers: Record<string, string> = { accept: call.accept ?? "application/json", ...options.headers };
    const apiKey = typeof options.apiKey === "function" ? options.apiKey() : options.apiKey;
    const userId = typeof options.userId === "function" ? options.userId() : options.userId;
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    // Sent as given, so the API judges it; only "" is refused here, as no header would mean the shared space.
    if (userId === "") throw new EngramApiError(0, "user.invalid_id", emptyUserId);
    if (userId !== undefined && userId !== null) headers["x-user-id"] = userId;
    if (call.body !== undefined) headers["content-type"] = "application/json";
    return Object.assign(headers, call.headers);
  }

  /** One attempt, whatever it answers; a failure to reach the server throws `network.unreachable`. */
  async function reach(method: string, route: string, call: SendOptions): Promise<Response> {
    try {
      return await doFetch(url(route, call.query), {
        method,
        headers: headersOf(call),
        body: call.form ?? (call.body === undefined ? undefined : JSON.stringify(call.body)),
        signal: call.signal,
      });
    } catch (error) {
      if (error instanceof EngramApiError || (error as Error).name === "AbortError" || call.signal?.aborted)
        throw error;
      const cause =
        error instanceof Error
          ? (error.cause as (Error & { code?: unknown; reason?: unknown }) | undefined)
          : undefined;
      // OpenSSL's own message names its source files over two lines: a failed handshake is said in words, the usual
      // one (an https URL for a plain-http server) with what to check.
      if (typeof cause?.code === "string" && /^ERR_(SSL|TLS)_/.test(cause.code)) {
        const why =
          cause.code === "ERR_SSL_WRONG_VERSION_NUMBER"
            ? "does it speak plain http?"
            : typeof cause.reason === "string"
              ? cause.reason
              : cause.code;
        throw new EngramApiError(0, "network.unreachable", `TLS handshake with ${base} failed (${why})`);
      }
      const reason = ((error instanceof Error ? cause?.message || error.message : "") ?? "").trim().split("\n")[0];
      throw new EngramApiError(0, "network.unreachable", `Cannot reach Engram at ${base || "this origin"}: ${reason}`);
    }
  }

  /** One request; resolves with the (ok) response, throws `EngramApiError` for any failure but an abort. */
  async function send(method: string, route: string, call: SendOptions = {}): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const response = await reach(method, route, call);
      if (response.ok) return response;
      const error = await errorOf(response);
      const retry = options.retry;
      const wait = error.retryAfter;
      if (
        response.status === 429 &&
        retry &&
        attempt < retry.retries &&
        wait !== null &&
        wait <= (retry.maxWaitSeconds ?? 60) &&
        !closedPolicy(response.headers)
      ) {
        const seconds = Math.max(wait, 0.1);
        retry.onWait?.(seconds, attempt + 1);
        await sleep(seconds, call.signal);
        continue;
      }
      throw error;
    }
  }

  /**
   * Any route of the contract by its key, typed from it: the path's parameters, query and body it takes, and
   * the JSON answer it gives; POST /mcp's, the answer to the body sent (a request's, a batch's array, or nothing
   * for notifications). A streamed answer is read with `chatStream`.
   */
  function call<I extends T.Routes["POST /mcp"]["input"]>(
    route: "POST /mcp",
    input: I,
    options?: RouteCallOptions,
  ): Promise<McpAnswerTo<I["body"]>>;
  function call<K extends RouteKey>(route: K, ...args: CallArgs<K>): Promise<T.Routes[K]["response"]>;
  async function call(route: RouteKey, input?: object, options?: RouteCallOptions): Promise<unknown> {
    const { params, query, body, form } = (input ?? {}) as {
      params?: Record<string, string>;
      query?: Query;
      body?: unknown;
      form?: FormData;
    };
    const refusal = streamed(route, body);
    if (refusal) throw new EngramApiError(0, "chat.stream_in_call", refusal);
    const [method = "GET", template = ""] = route.split(" ");
    const path = template.replace(/\{(\w+)\}/g, (_, name: string) => segment(route, name, params?.[name]));
    const accept = options?.accept ?? (ACCEPT as Partial<Record<RouteKey, string>>)[route];
    const response = await send(method, path, { ...options, accept, query, body, form });
    const answer = await jsonOf(response);
    // POST /mcp answers a request's JSON-RPC error with 200: thrown, as every other refusal is. A batch's answers
    // resolve, each its own, as one error among them must not hide the others' results.
    if (route === "POST /mcp" && isJsonRpcError(answer)) {
      const requestId = response.headers.get("x-request-id");
      const { error } = answer;
      throw new EngramApiError(response.status, codeOf(error) ?? `http.${response.status}`, error.message ?? "", {
        requestId,
        retryAfter: null,
      });
    }
    return answer;
  }

  return {
    call,
    /** Any request at all, for what the contract does not type. */
    send,
    /**
     * The service's health report, also when the database is unreachable (a 503 that carries it); any other
     * answer (a wrong `baseUrl`'s 404, a proxy's 502 page) throws `EngramApiError` as every call does.
     */
    health: async (options?: CallOptions): Promise<T.Health> => {
      const response = await reach("GET", "/v1/health", { signal: options?.signal });
      const body: unknown = await response
        .clone()
        .json()
        .catch(() => undefined);
      if ((response.ok || response.status === 503) && isHealth(body)) return body;
      if (!response.ok) throw await errorOf(response);
      throw new EngramApiError(
        response.status,
        "health.unexpected_answer",
        `${base || "This origin"}/v1/health answered ${response.status} without a health report: is that Engram's URL?`,
      );
    },
    openapi: (options?: CallOptions): Promise<T.OpenApiDocument> => call("GET /v1/openapi.json", {}, options),
    ingest: (body: T.IngestRequest, options?: CallOptions): Promise<T.IngestResponse> =>
      call("POST /v1/ingest", { body }, options),
    documents: {
      list: (query: T.ListDocumentsQuery = {}, options?: CallOptions): Promise<T.DocumentList> =>
        call("GET /v1/documents", { query }, options),
      /** One file (PDF, .docx, web page, Markdown, text, CSV; at most 4 MB) extracted and stored as a document. */
      upload: (file: Blob, fields: T.UploadFields = {}, options?: CallOptions): Promise<T.UploadResponse> => {
        const form = new FormData();
        // A Blob without a name goes as one (browsers and Node call it "blob"): the server derives its id from its content.
        if ((file as File).name) form.set("file", file, (file as File).name);
        else form.set("file", file);
        for (const [name, value] of Object.entries(fields)) {
          if (value !== undefined) form.set(name, typeof value === "object" ? JSON.stringify(value) : String(value));
        }
        return call("POST /v1/documents/upload", { form }, options);
      },
      get: (id: string, query: T.GetDocumentQuery = {}, options?: CallOptions): Promise<T.DocumentView> =>
        call("GET /v1/documents/{id}", { params: { id }, query }, options),
      update: (id: string, body: T.PatchRequest, options?: CallOptions): Promise<T.PatchResponse> =>
        call("PATCH /v1/documents/{id}", { params: { id }, body }, options),
      delete: (id: string, query: T.DeleteDocumentQuery = {}, options?: CallOptions): Promise<T.DocumentDeleted> =>
        call("DELETE /v1/documents/{id}", { params: { id }, query }, options),
      /** A soft-deleted document back, before the cleanup purges it (30 days by default). */
      restore: (id: string, options?: CallOptions): Promise<T.DocumentView> =>
        call("POST /v1/documents/{id}/restore", { params: { id } }, options),
    },
    stats: (options?: CallOptions): Promise<T.Stats> => call("GET /v1/stats", {}, options),
    search: (body: T.SearchRequest, options?: CallOptions): Promise<T.SearchResponse> =>
      call("POST /v1/search", { body }, options),
    chat: (
      body: T.ChatRequest & { stream?: false; format?: undefined },
      options?: CallOptions,
    ): Promise<T.ChatResponse> => call("POST /v1/chat", { body: { ...body, stream: false } }, options),
    /**
     * The answer as it is written: `citations`, `delta`s, then `done`. A failure after the answer started (the
     * stream's `error` event) throws EngramApiError with its code, as every failure does: a loop that only reads
     * deltas would otherwise end as if the answer were whole. Engram's own events only: the AI SDK's UI message
     * stream (`format`) is for `useChat`, which reads it itself (client/ai.ts).
     */
    chatStream: async function* (
      body: T.ChatRequest & { format?: undefined },
      options?: CallOptions,
    ): AsyncGenerator<ChatStreamEvent> {
      const { format: _format, ...request } = body;
      const response = await send("POST", "/v1/chat", {
        ...options,
        body: { ...request, stream: true },
        accept: "text/event-stream",
      });
      const requestId = response.headers.get("x-request-id");
      if (!response.body) throw new EngramApiError(0, "chat.no_body", "The answer arrived without a body.");
      // Anything but an event stream (a proxy's page, a JSON answer) would parse as no events at all: said instead.
      const type = response.headers.get("content-type") ?? "";
      if (!/^text\/event-stream\b/i.test(type)) {
        await response.body.cancel().catch(() => {});
        throw new EngramApiError(
          response.status,
          "response.not_event_stream",
          `The server answered ${response.status} with ${type || "no content type"}, not an event stream: is something else at this address?`,
          { requestId, retryAfter: null },
        );
      }
      for await (const event of chatEvents(response.body, requestId)) {
        if (event.event !== "error") {
          yield event;
          continue;
        }
        const { code, message } = event.data.error;
        // The answer's status (200): the failure came in its body, after the headers.
        throw new EngramApiError(response.status, code, message, { requestId, retryAfter: null });
      }
    },
    conversations: {
      list: (query: T.ListConversationsQuery = {}, options?: CallOptions): Promise<T.ConversationList> =>
        call("GET /v1/conversations", { query }, options),
      /** Its newest 4 MB of messages when it holds more: `olderCursor` as `before` reads the ones before them. */
      get: (id: string, query: T.GetConversationQuery = {}, options?: CallOptions): Promise<T.ConversationView> =>
        call("GET /v1/conversations/{id}", { params: { id }, query }, options),
      delete: (id: string, options?: CallOptions): Promise<T.Deleted> =>
        call("DELETE /v1/conversations/{id}", { params: { id } }, options),
    },
    /** The Digital Twin API's routes. */
    compat: {
      ingest: (body: T.IngestRequest, options?: CallOptions): Promise<T.CompatIngestResponse> =>
        call("POST /api/ingest", { body }, options),
      chat: (
        body: T.ChatRequest & { stream?: false; format?: undefined },
        options?: CallOptions,
      ): Promise<T.CompatChatResponse> => call("POST /api/chat", { body: { ...body, stream: false } }, options),
    },
  };
}

export type EngramClient = ReturnType<typeof createClient>;
