/**
 * The upload route's form and answer, apart from the parsers (core/extract/upload.ts) so that the OpenAPI
 * document, which every function can serve, never pulls them into a bundle.
 */
import { Id } from "../document/schema";
import type { IngestResult } from "../ingest";
import * as z from "../zod";
import type { Format } from "./sniff";

/**
 * Lambda's synchronous invocation payload, which the whole API Gateway event (JSON) must fit: 6 MB, 6,291,456 bytes
 * in its own error message. API Gateway's HTTP API takes 10 MB, so Lambda's is the bound that counts.
 */
export const LAMBDA_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** The event around the body: headers (API Gateway takes at most 10 KB of them), the request context, JSON. */
export const EVENT_ENVELOPE_BYTES = 32 * 1024;
/** The largest body whose base64 (4 characters for 3 bytes, as API Gateway sends binary) fits: 4,694,016 bytes. */
export const MAX_FORM_BYTES = Math.floor((LAMBDA_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES) / 4) * 3;
/** The form around the file: field names, boundaries, the other fields. */
export const FORM_OVERHEAD_BYTES = 64 * 1024;
/** The largest file the upload route takes: 4 MB (4,194,304 bytes), the round size under MAX_FORM_BYTES less the form. */
export const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;

/** The form's fields besides `file`, as the OpenAPI document describes them (all text, as forms send them). */
export const UploadForm = z.object({
  file: z
    .string()
    .check(
      z.describe(
        "The file (binary): PDF, .docx, HTML, Markdown, AsciiDoc, text, CSV or JSON, judged by content; at most 4 MB (larger: `engram ingest`). A .json or .jsonl file is stored as one document of its raw text; `engram ingest` and the console read its records' `content` as documents",
      ),
    ),
  id: z
    .optional(Id)
    .check(
      z.describe(
        "Default (also when sent empty, as a browser form sends an empty input; so is any empty field): the file's name; for a file sent without one (a bare Blob, which browsers and Node name `blob`), derived from its content as in /v1/ingest",
      ),
    ),
  title: z
    .optional(z.string())
    .check(
      z.describe(
        "Default: the file's own title (PDF metadata, .docx properties or Title paragraph, <title>, Markdown front matter), else its first heading",
      ),
    ),
  source: z.optional(z.string()).check(z.describe("Where it came from (a path or URL); default: the file's name")),
  metadata: z.optional(z.string()).check(z.describe('A JSON object, e.g. {"team":"hr"}; at most 8 KB')),
  importance: z.optional(z.string()).check(z.describe("1 to 10; default 5")),
  conversationId: z.optional(Id),
  ttlSeconds: z.optional(z.string()).check(z.describe("Forget it after this many seconds, as in /v1/ingest")),
});

export interface UploadResult extends IngestResult {
  file: { name: string; format: Format; bytes: number; characters: number; pages: number | null };
}
