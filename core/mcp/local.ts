/**
 * The MCP tools' `Memory` over the core functions the HTTP handlers call, validated by the same
 * request schemas and scoped by the same `Caller`: an MCP client can do nothing the API would refuse.
 */
import { $ZodError } from "zod/v4/core";
import type * as Api from "../../client/types";
import * as Admission from "../admission";
import { errorResponse } from "../api/http";
import type { Caller } from "../auth";
import * as Chat from "../chat";
import { ChatRequest } from "../chat/schema";
import type { Db } from "../db";
import * as Document from "../document";
import { DeleteQuery, Id, IngestRequest, ListQuery } from "../document/schema";
import * as Ingest from "../ingest";
import type * as RateLimit from "../ratelimit";
import * as Search from "../search";
import { SearchRequest } from "../search/schema";
import type { Memory } from "./index";

export interface LocalOptions {
  signal?: AbortSignal;
  requestId?: string;
  /** Spends the tool's rate class (as its route's) before it runs; the HTTP transport sets it. */
  limit?: (rateClass: RateLimit.RateClass) => Promise<void>;
}

/** Runs `parse` with issue paths under `from` (the API's body) moved to `to` (the tool's argument). */
function reroot<T>(parse: () => T, from: (string | number)[], to: string[]): T {
  try {
    return parse();
  } catch (error) {
    if (!(error instanceof $ZodError)) throw error;
    for (const issue of error.issues) {
      if (from.every((part, i) => issue.path[i] === part)) {
        (issue as { path: PropertyKey[] }).path = [...to, ...issue.path.slice(from.length)];
      }
    }
    throw error;
  }
}

/** Dates leave as ISO strings, as in an HTTP answer. */
const wire = <T>(value: unknown): T => JSON.parse(JSON.stringify(value)) as T;

export function memory(db: Db, caller: Caller, options: LocalOptions = {}): Memory {
  const { signal, requestId } = options;
  const limit = options.limit ?? (async () => {});
  return {
    async remember(document) {
      const { documents } = reroot(() => IngestRequest.parse({ documents: [document] }), ["documents", 0], []);
      await limit("ingest");
      // Admitted as POST /v1/ingest is (core/admission): the tenant's ingests in flight, and their bytes, are bounded
      // whichever way they come.
      const release = await Admission.admitIngest(db, caller, Buffer.byteLength(JSON.stringify(document)));
      return Admission.atWorkTurn(() => Ingest.run(db, caller, documents, { signal })).finally(release);
    },
    async search(request) {
      const parsed = SearchRequest.parse(request);
      await limit("search");
      return Search.query(db, caller, parsed, { signal });
    },
    async ask(request) {
      const parsed = reroot(
        () => ChatRequest.parse({ ...request, stream: false }),
        ["messages", 0, "content"],
        ["question"],
      );
      await limit("chat");
      return Chat.answer(db, caller, parsed, { signal, requestId });
    },
    async list(query) {
      const parsed = ListQuery.parse({ ...query, includeDeleted: undefined });
      await limit("default");
      return wire<Api.DocumentList>(await Document.list(db, caller, parsed));
    },
    async forget(id, hard) {
      const parsed = reroot(() => Id.parse(id), [], ["id"]);
      await limit("default");
      return Document.remove(db, caller, parsed, DeleteQuery.parse({ hard: String(hard) }));
    },
    async inShared(id) {
      if (!caller.userId) return false;
      return Document.get(db, caller, id, { track: false, scope: "shared" }).then(
        () => true,
        () => false,
      );
    },
  };
}

/** An error as the API answers it (the one mapping in core/api/http.ts): its code and message, and that answer's headers. */
export const describe = (requestId: string) => (error: unknown) => {
  const { body, headers = {} } = errorResponse(error, { requestId });
  return { ...(JSON.parse(body ?? "{}") as Api.ErrorBody).error, headers };
};
