/** The `POST /v1/search` request; the same schema feeds the OpenAPI document and the chat route's filter. */

import { UNSTORABLE } from "../db/text";
import { blank, Id, Importance, Metadata, unstorable } from "../document/schema";
import * as z from "../zod";

export const MAX_QUERY_CHARS = 2000;
export const MAX_TOP_K = 50;
export const MAX_FILTER_DOCUMENT_IDS = 1000;

export const Mode = z.enum(["vector", "keyword", "hybrid"]);
export type Mode = z.infer<typeof Mode>;

export const Scope = z.enum(["all", "user", "shared"]);
export type Scope = z.infer<typeof Scope>;

/** The range `score` lies in, per mode (see `Search.query` for what each scale means). */
export const SCORE_RANGE: Record<Mode, [min: number, max: number]> = {
  vector: [-1, 1],
  keyword: [0, 1],
  hybrid: [0, 1],
};

/**
 * Postgres refuses year 0000 and offsets beyond ±15:59 (each was a 500), which the ISO format allows. Patterns, not
 * refinements, so that the OpenAPI document says the same to a client that validates before sending.
 */
const Timestamp = z.iso.datetime({ offset: true }).check(
  z.regex(/^(?!0000).*(?:Z|[+-](?:0\d|1[0-5])(?::?\d\d)?)$/, {
    message: "must be a time from year 0001 with an offset within ±15:59",
  }),
  z.describe("ISO 8601 date and time with Z or an offset"),
  // A second pattern moves both into an allOf and drops the format, which clients and generators read.
  z.meta({ format: "date-time" }),
);

/** A date alone (`2026-12-06`) stands for its midnight UTC (`scope.ts`). */
const TimeOrDate = z.union(
  [
    Timestamp,
    z.iso.date().check(z.regex(/^(?!0000)/, { message: "must be a date from year 0001" }), z.meta({ format: "date" })),
  ],
  {
    error:
      "must be an ISO 8601 time with Z or an offset within ±15:59 (2026-12-06T09:00:00Z), or a date (2026-12-06), from year 0001",
  },
);

/**
 * Query operators of other stores (MongoDB's, and those LangChain and vector databases copied): a filter is matched
 * by containment, so `{"year": {"$gt": 2020}}` looked for the literal key "$gt" and found nothing, silently.
 */
const OPERATOR =
  /^\$(?:eq|ne|gt|gte|lt|lte|in|nin|exists|regex|and|or|not|nor|all|size|elemMatch|contains|like|ilike|between)$/;
const operatorIn = (value: unknown): string | undefined => {
  if (value === null || typeof value !== "object") return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const found = OPERATOR.test(key) ? key : operatorIn(inner);
    if (found) return found;
  }
  return undefined;
};

export const SearchFilter = z.strictObject({
  metadata: z.optional(
    Metadata.check(
      z.superRefine((value, ctx) => {
        const operator = operatorIn(value);
        if (operator)
          ctx.addIssue({
            code: "custom",
            message: `${operator} is not supported: a metadata filter matches documents whose metadata contains it ({"team": "sales"}, {"tags": ["urgent"]}), with no operators`,
          });
      }),
      z.describe("Documents whose metadata contains this JSON object (jsonb containment; no $ operators)"),
    ),
  ),
  documentIds: z.optional(z.array(Id).check(z.minLength(1), z.maxLength(MAX_FILTER_DOCUMENT_IDS))),
  conversationId: z.optional(Id),
  minImportance: z.optional(Importance),
  createdAfter: z.optional(
    TimeOrDate.check(
      z.describe(
        "Documents created at or after this time: ISO 8601 with Z or an offset (2026-12-06T09:00:00Z), or a date alone for its midnight UTC",
      ),
    ),
  ),
  createdBefore: z.optional(
    TimeOrDate.check(
      z.describe(
        "Documents created before this time: ISO 8601 with Z or an offset, or a date alone for its midnight UTC",
      ),
    ),
  ),
});
export type SearchFilter = z.infer<typeof SearchFilter>;

export const SearchRequest = z
  .strictObject({
    query: z.string().check(
      z.maxLength(MAX_QUERY_CHARS, {
        error: (issue) =>
          `the query is ${[...String(issue.input)].length} characters; the limit is ${MAX_QUERY_CHARS}: search with its key words`,
      }),
      z.refine((q) => !blank(q), "query is empty"),
      z.refine((q) => !UNSTORABLE.test(q), unstorable("query")),
    ),
    topK: z._default(z.number().check(z.int(), z.gte(1), z.lte(MAX_TOP_K)), 5),
    mode: z._default(Mode, "hybrid"),
    filter: z._default(SearchFilter, {}),
    minScore: z.optional(
      z
        .number()
        .check(
          z.describe(
            "Results scoring at least this, on the mode's scale: -1 to 1 in vector mode (cosine), 0 to 1 in keyword and hybrid",
          ),
        ),
    ),
    scope: z._default(Scope, "all"),
  })
  .check(
    z.superRefine((request, ctx) => {
      const [min, max] = SCORE_RANGE[request.mode];
      if (request.minScore !== undefined && (request.minScore < min || request.minScore > max)) {
        ctx.addIssue({
          code: "custom",
          path: ["minScore"],
          message: `minScore must be between ${min} and ${max} in ${request.mode} mode`,
        });
      }
    }),
  );
export type SearchRequest = z.infer<typeof SearchRequest>;
/** What callers of `Search.query` may pass: defaults filled in by the schema are optional. */
export type SearchInput = z.input<typeof SearchRequest>;
