/**
 * `engram/client`: every route of Engram's HTTP API as a typed call. Types come from the zod
 * schemas the server validates with (./types.ts), so they cannot drift; at runtime this module
 * needs only `fetch` and an SSE parser, never the server's database drivers or model SDKs.
 *
 *   const engram = createClient({ baseUrl: "http://localhost:3000", apiKey: process.env.ENGRAM_API_KEY });
 *   await engram.ingest({ documents: [{ content: "Refunds take 14 days." }] });
 *   for await (const e of engram.chatStream({ messages: [{ role: "user", content: "Refunds?" }] })) ...
 */
import { createParser } from "eventsource-parser";
import type * as T from "./types";

export type * from "./types";

/** An error answer (or a failure to reach the server, status 0) with the API's dotted code. */
export class EngramApiError extends Error {
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
  /** Opt-in: wait out 429s as `Retry-After` says, at most `retries` times (and `maxWaitSeconds` each). */
  retry?: { retries: number; maxWaitSeconds?: number; onWait?: (seconds: number, attempt: number) => void };
  /** A fetch of your own (instrumented, proxied, or a test double). */
  fetch?: typeof fetch;
  headers?: Record<string, string>;
}

export interface CallOptions {
  signal?: AbortSignal;
}

type Query = Record<string, string | number | boolean | null | undefined>;

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

async function errorOf(response: Response): Promise<EngramApiError> {
  let code = `http.${response.status}`;
  let message = `The server answered ${response.status}${response.statusText ? ` ${response.statusText}` : ""}.`;
  let details: unknown;
  try {
    const body = (await response.json()) as Partial<T.ErrorBody>;
    if (body.error?.code) code = body.error.code;
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

const sleep = (seconds: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const timer = setTimeout(resolve, seconds * 1000);
    const abort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", abort, { once: true });
  });

const path = (template: string, id: string) => template.replace("{id}", encodeURIComponent(id));

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

export function createClient(options: ClientOptions) {
  const base = options.baseUrl.replace(/\/+$/, "");
  const doFetch = options.fetch ?? ((input, init) => fetch(input, init));

  function url(route: string, query?: Query): string {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query ?? {})) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const search = params.toString();
    return `${base}${route}${search ? `?${search}` : ""}`;
  }

  /** One request; resolves with the (ok) response, throws `EngramApiError` for any failure but an abort. */
  async function send(method: string, route: string, call: SendOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { accept: call.accept ?? "application/json", ...options.headers };
    const apiKey = typeof options.apiKey === "function" ? options.apiKey() : options.apiKey;
    const userId = typeof options.userId === "function" ? options.userId() : options.userId;
    if (apiKey) headers.authorization = `Bearer ${apiKey}`;
    if (userId) headers["x-user-id"] = userId;
    if (call.body !== undefined) headers["content-type"] = "application/json";
    Object.assign(headers, call.headers);
    for (let attempt = 0; ; attempt++) {
      let response: Response;
      try {
        response = await doFetch(url(route, call.query), {
          method,
          headers,
          body: call.form ?? (call.body === undefined ? undefined : JSON.stringify(call.body)),
          signal: call.signal,
        });
      } catch (error) {
        if (error instanceof EngramApiError || (error as Error).name === "AbortError" || call.signal?.aborted)
          throw error;
        const reason = error instanceof Error ? (error.cause as Error | undefined)?.message || error.message : "";
        throw new EngramApiError(
          0,
          "network.unreachable",
          `Cannot reach Engram at ${base || "this origin"}: ${reason}`,
        );
      }
      if (response.ok) return response;
      const error = await errorOf(response);
      const retry = options.retry;
      const wait = error.retryAfter;
      if (
        response.status === 429 &&
        retry &&
        attempt < retry.retries &&
        wait !== null &&
        wait <= (retry.maxWaitSeconds ?? 60)
      ) {
        const seconds = Math.max(wait, 0.1);
        retry.onWait?.(seconds, attempt + 1);
        await sleep(seconds, call.signal);
        continue;
      }
      throw error;
    }
  }

  async function json<R>(method: string, route: string, call?: SendOptions): Promise<R> {
    return (await (await send(method, route, call)).json()) as R;
  }

  return {
    /** Any route, for what the typed methods do not cover. */
    send,
    health: async (call?: CallOptions): Promise<T.Health> => {
      // A 503 (database unreachable) still carries the report.
      const response = await doFetch(url("/v1/health"), { signal: call?.signal }).catch((error) => {
        if ((error as Error).name === "AbortError") throw error;
        throw new EngramApiError(0, "network.unreachable", `Cannot reach Engram at ${base || "this origin"}.`);
      });
      return (await response.json()) as T.Health;
    },
    openapi: (call?: CallOptions) => json<Record<string, unknown>>("GET", "/v1/openapi.json", call),
    ingest: (body: T.IngestRequest, call?: CallOptions) =>
      json<T.IngestResponse>("POST", "/v1/ingest", { ...call, body }),
    documents: {
      list: (query: T.ListDocumentsQuery = {}, call?: CallOptions) =>
        json<T.DocumentList>("GET", "/v1/documents", { ...call, query }),
      /** One file (PDF, .docx, web page, Markdown, text, CSV; at most 4 MB) extracted and stored as a document. */
      upload: (file: Blob, fields: T.UploadFields = {}, call?: CallOptions) => {
        const form = new FormData();
        form.set("file", file, (file as File).name || "upload");
        for (const [name, value] of Object.entries(fields)) {
          if (value !== undefined) form.set(name, typeof value === "object" ? JSON.stringify(value) : String(value));
        }
        return json<T.UploadResponse>("POST", "/v1/documents/upload", { ...call, form });
      },
      get: (id: string, query: T.GetDocumentQuery = {}, call?: CallOptions) =>
        json<T.DocumentView>("GET", path("/v1/documents/{id}", id), { ...call, query }),
      update: (id: string, body: T.PatchRequest, call?: CallOptions) =>
        json<T.PatchResponse>("PATCH", path("/v1/documents/{id}", id), { ...call, body }),
      delete: (id: string, query: T.DeleteDocumentQuery = {}, call?: CallOptions) =>
        json<T.Deleted>("DELETE", path("/v1/documents/{id}", id), { ...call, query }),
    },
    stats: (call?: CallOptions) => json<T.Stats>("GET", "/v1/stats", call),
    search: (body: T.SearchRequest, call?: CallOptions) =>
      json<T.SearchResponse>("POST", "/v1/search", { ...call, body }),
    chat: (body: T.ChatRequest & { stream?: false; format?: undefined }, call?: CallOptions) =>
      json<T.ChatResponse>("POST", "/v1/chat", { ...call, body: { ...body, stream: false } }),
    /** The answer as it is written: `citations`, `delta`s, then `done` (or an `error` event). */
    chatStream: async function* (body: T.ChatRequest, call?: CallOptions): AsyncGenerator<T.ChatEvent> {
      const response = await send("POST", "/v1/chat", {
        ...call,
        body: { ...body, stream: true },
        accept: "text/event-stream",
      });
      if (!response.body) throw new EngramApiError(0, "chat.no_body", "The answer arrived without a body.");
      yield* chatEvents(response.body, response.headers.get("x-request-id"));
    },
    conversations: {
      list: (query: T.ListConversationsQuery = {}, call?: CallOptions) =>
        json<T.ConversationList>("GET", "/v1/conversations", { ...call, query }),
      get: (id: string, call?: CallOptions) =>
        json<T.ConversationView>("GET", path("/v1/conversations/{id}", id), call),
      delete: (id: string, call?: CallOptions) => json<T.Deleted>("DELETE", path("/v1/conversations/{id}", id), call),
    },
    /** The Digital Twin API's routes. */
    compat: {
      ingest: (body: T.IngestRequest, call?: CallOptions) =>
        json<T.CompatIngestResponse>("POST", "/api/ingest", { ...call, body }),
      chat: (body: T.ChatRequest & { stream?: false; format?: undefined }, call?: CallOptions) =>
        json<T.CompatChatResponse>("POST", "/api/chat", { ...call, body: { ...body, stream: false } }),
    },
  };
}

export type EngramClient = ReturnType<typeof createClient>;
