/**
 * `POST /v1/documents/upload`: one file as multipart/form-data, extracted and ingested as one document with the
 * same atomicity, idempotency and limits as `/v1/ingest`. Lambda takes at most 6 MB per invocation and API
 * Gateway sends a binary body base64-encoded (4 bytes for 3), so a file may be at most 4 MB here (the arithmetic:
 * ./schema.ts, docs/extract.md); larger files go through `engram ingest`, which extracts on the user's machine
 * and sends text.
 */
import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { fromZod, parseBody } from "../api/http";
import type { Caller } from "../auth";
import type { Db } from "../db";
import { characters, DocumentInput } from "../document/schema";
import { EngramError, inputError } from "../error";
import * as Ingest from "../ingest";
import { extract } from "./index";
import { FORM_OVERHEAD_BYTES, MAX_UPLOAD_BYTES, UploadForm, type UploadResult } from "./schema";

/** `body`: the size is the multipart body's (the file with its form), refused before the file is read from it. */
const tooLarge = (bytes: number, what: "file" | "body") =>
  new EngramError(
    "too_large",
    "upload.too_large",
    `${what === "file" ? "The file is" : "The upload's multipart body is"} ${bytes.toLocaleString("en")} bytes; a file may be at most ${MAX_UPLOAD_BYTES.toLocaleString("en")} bytes (4 MB: API Gateway hands it to Lambda base64-encoded, and Lambda takes 6 MB). Send larger files with \`engram ingest\`, which extracts them locally.`,
    { details: { bytes, of: what, limitBytes: MAX_UPLOAD_BYTES } },
  );

const field = (form: FormData, name: string): string | undefined => {
  const value = form.get(name);
  return typeof value === "string" && value !== "" ? value : undefined;
};

/** Reads the multipart body (with Node's own WHATWG `FormData` parser, no dependency) into the file and its fields. */
async function readForm(body: unknown, contentType: string | undefined): Promise<FormData> {
  if (!Buffer.isBuffer(body) || !/^multipart\/form-data/i.test(contentType ?? "")) {
    throw inputError(
      "upload.not_multipart",
      "Send the file as multipart/form-data with a `file` field (curl -F file=@handbook.pdf).",
    );
  }
  // Refused before parsing: no file it could hold fits.
  if (body.length > MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES) throw tooLarge(body.length, "body");
  try {
    return await new Response(new Uint8Array(body), { headers: { "content-type": contentType ?? "" } }).formData();
  } catch (error) {
    throw new EngramError("input", "upload.malformed", "The multipart/form-data body cannot be parsed.", {
      cause: error,
    });
  }
}

/** Extracts the uploaded file and ingests it as one document in the caller's space. */
export async function upload(
  db: Db,
  caller: Caller,
  body: unknown,
  contentType: string | undefined,
  options: { signal?: AbortSignal } = {},
): Promise<UploadResult> {
  const form = await readForm(body, contentType);
  // A misspelt field would otherwise be dropped, as in /v1/ingest: the document stored without it. So would a
  // repeated one's later values (`form.get` reads the first), as a repeated query parameter's would.
  const sent = new Set<string>();
  const repeated = new Set<string>();
  form.forEach((_value, key) => {
    if (sent.has(key) && key !== "file") repeated.add(key);
    sent.add(key);
  });
  const unknown = [...sent].filter((key) => !(key in UploadForm.shape));
  if (unknown.length) {
    throw inputError(
      "request.invalid",
      `Unknown form field ${unknown.join(", ")}; the fields are ${Object.keys(UploadForm.shape).join(", ")}.`,
      [{ path: unknown[0] }],
    );
  }
  if (repeated.size) {
    const names = [...repeated];
    throw inputError(
      "request.invalid",
      `${names.join(" and ")} ${names.length === 1 ? "is" : "are"} given more than once; send each form field once.`,
      names.map((name) => ({ path: name, message: `${name} is given more than once` })),
    );
  }
  const files = form.getAll("file");
  // Checked first: a second `file` part, even a text one, is refused as one, never read past.
  if (files.length > 1) {
    throw inputError("upload.too_many_files", "Send one file per upload (`engram ingest` takes folders).", [
      { path: "file" },
    ]);
  }
  const file = files[0];
  if (file === undefined || typeof file === "string") {
    throw inputError("upload.no_file", "The form has no `file` field holding a file.", [
      { path: "file", message: "no file" },
    ]);
  }
  if (file.size > MAX_UPLOAD_BYTES) throw tooLarge(file.size, "file");
  const bytes = new Uint8Array(await file.arrayBuffer());
  const given = (file.name ?? "").replace(/^.*[\\/]/, "");
  // A Blob sent without a name is called "blob" by browsers and Node: no name to make its id, which is then derived
  // from the content as /v1/ingest derives it (one id for every nameless upload would replace each with the next).
  const named = given !== "" && given !== "blob" ? given : undefined;
  const name = named ?? "upload";
  let metadata: unknown;
  const rawMetadata = field(form, "metadata");
  if (rawMetadata !== undefined) {
    try {
      // Parsed as a JSON body is: the same depth bound (a deeply nested value is refused, not recursed into).
      metadata = parseBody({ body: rawMetadata, headers: {}, isBase64Encoded: false } as APIGatewayProxyEventV2);
    } catch (error) {
      if (!(error instanceof EngramError) || error.code !== "request.invalid_json") throw error;
      throw inputError("request.invalid", 'metadata must be a JSON object, e.g. {"team":"hr"}.', [
        { path: "metadata" },
      ]);
    }
  }
  const whole = (name: string, range: string) => {
    const raw = field(form, name);
    // Decimal digits only: Number() would also read `0x5`, `1e1` and ` 5`, as the query string's `limit` refuses.
    const n = raw === undefined ? undefined : /^[0-9]+$/.test(raw) ? Number(raw) : Number.NaN;
    if (n !== undefined && !(Number.isInteger(n) && DocumentInput.shape[name as "importance"].safeParse(n).success))
      throw inputError("request.invalid", `${name} must be a whole number from ${range}.`, [{ path: name }]);
    return n;
  };
  const importance = whole("importance", "1 to 10");
  const ttlSeconds = whole("ttlSeconds", "1 to 315,360,000");
  // Fields are checked before the file is read: a bad form costs no extraction.
  const id = field(form, "id");
  const fields = DocumentInput.safeParse({
    id: id ?? named,
    content: "x",
    title: field(form, "title"),
    source: field(form, "source"),
    metadata,
    importance,
    conversationId: field(form, "conversationId"),
    ttlSeconds,
  });
  if (!fields.success) {
    // A refusal with a code of its own (document.metadata_too_large, request.invalid_text) answers as /v1/ingest's.
    const coded = fromZod(fields.error);
    if (coded.code !== "request.invalid") throw coded;
    const issue = fields.error.issues[0];
    const path = issue?.path.join(".");
    // Without an id the file's name is the id: say so, rather than name a field that was never sent.
    const message =
      path === "id" && id === undefined
        ? `The file's name becomes its id, and cannot: ${issue?.message}. Send an \`id\` field.`
        : `${path}: ${issue?.message}`;
    throw inputError("request.invalid", message, [{ path }]);
  }
  const extracted = await extract(bytes, { name, limits: { maxBytes: MAX_UPLOAD_BYTES } });
  const document = DocumentInput.parse({
    ...fields.data,
    content: extracted.content,
    title: fields.data.title ?? extracted.title,
    source: fields.data.source ?? named,
  });
  const result = await Ingest.run(db, caller, [document], {
    signal: options.signal,
    paged: extracted.pages !== undefined,
  });
  return {
    ...result,
    file: {
      name,
      format: extracted.format,
      bytes: bytes.length,
      characters: characters(extracted.content),
      pages: extracted.pages ?? null,
    },
  };
}
