/** The `POST /v1/search` request; the same schema feeds the OpenAPI document and the chat route's filter. */
import * as z from "zod";
import { Id, Importance, Metadata } from "../document/schema";

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

/** Postgres refuses year 0000 and offsets beyond ±15:59 (each was a 500), which the ISO format allows. */
const Timestamp = z.iso
  .datetime({ offset: true })
  .refine((value) => !value.startsWith("0000") && !/[+-](1[6-9]|2\d)(:?\d\d)?$/.test(value), {
    message: "must be a time from year 0001 with an offset within ±15:59",
  })
  .describe("ISO 8601 date and time with Z or an offset");

export const SearchFilter = z
  .object({
    metadata: Metadata.describe("Documents whose metadata contains this JSON object (jsonb containment)"),
    documentIds: z.array(Id).min(1).max(MAX_FILTER_DOCUMENT_IDS),
    conversationId: Id,
    minImportance: Importance,
    createdAfter: Timestamp.describe("Documents created at or after this time"),
    createdBefore: Timestamp.describe("Documents created before this time"),
  })
  .partial()
  .strict();
export type SearchFilter = z.infer<typeof SearchFilter>;

export const SearchRequest = z
  .object({
    query: z
      .string()
      .max(MAX_QUERY_CHARS)
      .refine((q) => q.trim() !== "", "query is empty")
      // biome-ignore lint/suspicious/noControlCharactersInRegex: NUL cannot be sent to Postgres
      .refine((q) => !/\u0000/.test(q), "query cannot contain NUL characters"),
    topK: z.number().int().min(1).max(MAX_TOP_K).default(5),
    mode: Mode.default("hybrid"),
    filter: SearchFilter.default({}),
    minScore: z.number().optional(),
    scope: Scope.default("all"),
  })
  .strict()
  .superRefine((request, ctx) => {
    const [min, max] = SCORE_RANGE[request.mode];
    if (request.minScore !== undefined && (request.minScore < min || request.minScore > max)) {
      ctx.addIssue({
        code: "custom",
        path: ["minScore"],
        message: `minScore must be between ${min} and ${max} in ${request.mode} mode`,
      });
    }
  });
export type SearchRequest = z.infer<typeof SearchRequest>;
/** What callers of `Search.query` may pass: defaults filled in by the schema are optional. */
export type SearchInput = z.input<typeof SearchRequest>;
