/** Request schemas for documents and ingest; the same schemas feed the OpenAPI document. */

import { isWebPage } from "../chunk/html";
import { UNSTORABLE, unstorableAt } from "../db/text";
import * as z from "../zod";

export const MAX_DOCUMENTS = 100;
export const MAX_CONTENT_CHARS = 1_000_000;
export const MAX_METADATA_BYTES = 8 * 1024;
export const MAX_TITLE_CHARS = 1000;

/**
 * How many characters a string has: Unicode code points, as people, JSON Schema and zod's `maxLength` count them,
 * where `length` counts UTF-16 units (an emoji is two). Linear, and allocates nothing.
 */
export function characters(text: string): number {
  let pairs = 0;
  for (let i = 0; i < text.length - 1; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        pairs++;
        i++;
      }
    }
  }
  return text.length - pairs;
}

/** 1-256 printable characters (no control characters, not only spaces), and not `.` or `..`, which URLs drop. */
export const Id = z.string().check(
  z.minLength(1),
  z.maxLength(256),
  z.regex(/^(?!\s*$)[^\p{Cc}\p{Cs}\p{Co}\p{Cn}]+$/u, "must be 1-256 printable characters"),
  z.regex(/^(?!\.\.?$)/, "cannot be . or .. (a URL path drops them, so the document could not be read)"),
  // The embedded database drops it when reading an id back: the document could not be opened by the id listed.
  z.regex(/^(?!\uFEFF)/, "cannot start with a byte-order mark (U+FEFF)"),
);

/**
 * Text that shows nothing: white space and format characters only (a zero-width space, joiner or byte-order mark,
 * which `trim` keeps), so a document, message or query of them is refused as empty.
 */
export const blank = (text: string) => /^[\s\p{Cf}]*$/u.test(text);

/** A zod issue's own product code, and its status kind when it is not 400. */
export const coded = (code: string, kind?: "too_large") => ({ params: kind ? { code, kind } : { code } });

const UNSTORABLE_MESSAGE = "cannot contain NUL characters or unpaired surrogates";

/** The one refusal of text Postgres cannot store, whichever field of whichever route it is in. */
export const unstorable = (what: string) => ({
  message: `${what} ${UNSTORABLE_MESSAGE}`,
  ...coded("request.invalid_text"),
});

/** Text Postgres stores exactly (see core/db/text.ts), at most `max` characters. */
const StoredText = (max: number) =>
  z.string().check(
    z.maxLength(max),
    z.refine((value) => !UNSTORABLE.test(value), unstorable("text")),
  );

export const Content = z.string().check(
  z.superRefine((value, ctx) => {
    // Counted as `maxLength` counts (code points); only a string over the limit in UTF-16 units can be over it.
    const count = value.length > MAX_CONTENT_CHARS ? characters(value) : value.length;
    // A whole web page is stored as its text (core/ingest), which the limit then counts: its markup may be most of it.
    if (count > MAX_CONTENT_CHARS && !isWebPage(value)) {
      ctx.addIssue({
        code: "custom",
        message: `content is ${count} characters; the limit is ${MAX_CONTENT_CHARS}`,
        ...coded("document.too_large", "too_large"),
      });
    } else if (blank(value)) {
      ctx.addIssue({ code: "custom", message: "content is empty", ...coded("document.empty_content") });
    } else if (UNSTORABLE.test(value)) {
      ctx.addIssue({ code: "custom", ...unstorable("content") });
    }
  }),
);

export const Metadata = z.record(z.string(), z.json()).check(
  z.superRefine((value, ctx) => {
    const path = unstorableAt(value);
    if (path) {
      ctx.addIssue({
        code: "custom",
        path,
        message: `metadata strings and keys ${UNSTORABLE_MESSAGE}`,
        ...coded("request.invalid_text"),
      });
      return;
    }
    const bytes = Buffer.byteLength(JSON.stringify(value), "utf8");
    if (bytes > MAX_METADATA_BYTES) {
      ctx.addIssue({
        code: "custom",
        message: `metadata is ${bytes} bytes of JSON; the limit is ${MAX_METADATA_BYTES}`,
        ...coded("document.metadata_too_large"),
      });
    }
  }),
  z.describe("A JSON object (flat or nested), at most 8 KB"),
);
export type Metadata = z.output<typeof Metadata>;

export const Importance = z.number().check(z.int(), z.gte(1), z.lte(10));
export const TtlSeconds = z.number().check(z.int(), z.gte(1), z.lte(10 * 365 * 24 * 3600));
/**
 * A field a document is read back with as null (title, source, conversationId, ttlSeconds) may be sent as null,
 * meaning none, as leaving it out does (ingest replaces a document with what is sent): a client that reads a
 * document and sends it back is not refused. Read as undefined, so that both are the one case downstream.
 */
const orNull = <T extends z.ZodMiniType>(schema: T) =>
  z.pipe(
    z.nullable(schema),
    z.transform((value: z.output<T> | null) => value ?? undefined),
  );

/** An ingested document's TTL: null is no expiry; PATCH's null says the same. */
const IngestTtl = orNull(TtlSeconds);

// A misspelt field (`ttl` for `ttlSeconds`) is refused, not silently dropped: the document would be stored without it.
export const DocumentInput = z.strictObject({
  id: z
    .optional(Id)
    .check(z.describe("Without it, the id is derived from the content hash (and the conversationId, for a turn)")),
  content: Content.check(
    z.describe(
      `At most ${MAX_CONTENT_CHARS.toLocaleString("en")} characters (413 document.too_large). Stored as sent (Markdown and HTML fragments too), except a whole web page (starting with a doctype or an html tag): stored as its text, which the limit then counts`,
    ),
  ),
  title: z.optional(orNull(StoredText(MAX_TITLE_CHARS))),
  source: z.optional(orNull(StoredText(2048))),
  metadata: z.optional(Metadata),
  importance: z.optional(Importance),
  conversationId: z
    .optional(orNull(Id))
    .check(
      z.describe(
        "The conversation this document belongs to: a one-chunk document (a turn) is embedded after the two sent before it",
      ),
    ),
  ttlSeconds: z
    .optional(IngestTtl)
    .check(z.describe("Forget it after this many seconds; without it, or null, it never expires")),
});
export type DocumentInput = z.infer<typeof DocumentInput>;

const DOCUMENTS_NOTE = `1-${MAX_DOCUMENTS} documents, each id at most once`;

/** A request's documents: at least one, at most MAX_DOCUMENTS, no id twice (the second would replace the first). */
const documentsChecked = (docs: { id?: string }[], ctx: z.core.$RefinementCtx<{ id?: string }[]>) => {
  if (docs.length === 0) {
    ctx.addIssue({ code: "custom", message: "send at least one document", ...coded("ingest.no_documents") });
  } else if (docs.length > MAX_DOCUMENTS) {
    ctx.addIssue({
      code: "custom",
      message: `${docs.length} documents in one request; the limit is ${MAX_DOCUMENTS}`,
      ...coded("ingest.too_many_documents"),
    });
  }
  const seen = new Set<string>();
  docs.forEach((doc, index) => {
    if (doc.id === undefined) return;
    if (seen.has(doc.id)) {
      ctx.addIssue({
        code: "custom",
        path: [index, "id"],
        message: `document id ${JSON.stringify(doc.id)} appears twice in this request`,
        ...coded("ingest.duplicate_id"),
      });
    }
    seen.add(doc.id);
  });
};

export const IngestRequest = z.strictObject({
  documents: z.array(DocumentInput).check(z.superRefine(documentsChecked), z.describe(DOCUMENTS_NOTE)),
});
export type IngestRequest = z.infer<typeof IngestRequest>;

export const PatchRequest = z.strictObject({
  content: z.optional(
    Content.check(
      z.describe(
        `The new text, re-chunked and re-embedded: at most ${MAX_CONTENT_CHARS.toLocaleString("en")} characters (413 document.too_large)`,
      ),
    ),
  ),
  title: z.optional(z.nullable(StoredText(MAX_TITLE_CHARS))),
  metadata: z.optional(Metadata),
  importance: z.optional(Importance),
  ttlSeconds: z.optional(z.nullable(TtlSeconds)),
});
export type PatchRequest = z.infer<typeof PatchRequest>;

/** A query-string boolean: `true`/`false` (or `1`/`0`); the OpenAPI document calls it a boolean. */
export const Bool = z.pipe(
  z.enum(["true", "false", "1", "0"]),
  z.transform((v) => v === "true" || v === "1"),
);

/**
 * A page size: plain decimal digits, 1 to 100, with one message for every way it can be wrong (`limit=abc`,
 * `limit=`, and `0x5`, `1e1`, `+5`, ` 5`, which Number() would read). A number (an MCP tool's argument) is
 * checked as it is.
 */
const PAGE_LIMIT = "limit must be a whole number from 1 to 100";
export const Limit = z.prefault(
  z.pipe(
    // A transform first: the OpenAPI document gives the integer it reads (a prefault, unlike a default, stays in it).
    z.transform((raw: unknown) => (typeof raw === "string" && /^[0-9]+$/.test(raw) ? Number(raw) : raw)),
    z
      .number({ error: PAGE_LIMIT })
      .check(z.int({ error: PAGE_LIMIT }), z.gte(1, { error: PAGE_LIMIT }), z.lte(100, { error: PAGE_LIMIT })),
  ),
  20,
);

/**
 * A page's cursor. One longer than any this API makes is forged, and refused as every other forged cursor is (400
 * `request.invalid_cursor`, core/db/cursor.ts), not as a malformed request; `maxLength` stays for the documents.
 */
export const PageCursor = z.string().check(
  z.maxLength(200),
  z.superRefine((value, ctx) => {
    if (value.length > 200) {
      ctx.addIssue({
        code: "custom",
        message: "The cursor is not one this API returned.",
        ...coded("request.invalid_cursor"),
      });
    }
  }),
);

// Query parameters, like body fields, are refused when unknown: `?hrad=true` must not delete softly in silence.
export const ListQuery = z.strictObject({
  limit: Limit,
  cursor: z.optional(PageCursor),
  conversationId: z.optional(Id),
  includeDeleted: z._default(Bool, false),
});
export type ListQuery = z.infer<typeof ListQuery>;

/** The space one document is in: the caller's own (`user`) or the tenant's shared one (`shared`). */
export const DocumentScope = z.enum(["user", "shared"]);
export type DocumentScope = z.infer<typeof DocumentScope>;

export const GetQuery = z.strictObject({
  track: z._default(Bool, true),
  scope: z.optional(
    DocumentScope.check(
      z.describe(
        "Read that space's document of this id: `user`, the caller's own (the shared space without `X-User-Id`); `shared`, the tenant's. Without it: the caller's own, else the shared one. Pass a search result's or citation's `scope` to open its document",
      ),
    ),
  ),
});
export const DeleteQuery = z.strictObject({ hard: z._default(Bool, false) });

/**
 * The Digital Twin API's body: `{documents:[{id,content,title}]}`. Other fields of a document are
 * validated like `/v1/ingest`'s when they are ours and dropped otherwise: passed through unchecked,
 * they reached the database (an `importance` of "high" was a 500).
 */
export const CompatDocumentInput = z.object(DocumentInput.shape);
export const CompatIngestRequest = z.object({
  documents: z.array(CompatDocumentInput).check(z.superRefine(documentsChecked), z.describe(DOCUMENTS_NOTE)),
});
