/**
 * Dropped files and folders into documents, the way `engram ingest` reads them: .md through core/extract's own
 * Markdown reader (front matter left out, its `title` the title, else the first heading), other text as one document
 * each (Markdown when it has `#` headings, as core/extract's sniff judges), .json/.jsonl as records with `content` (or `text`). PDFs, Word files and web
 * pages go to the upload route, which extracts them on the server with the CLI's extractors. Unsupported, binary
 * and oversized files are skipped with a reason and never sent. Documents are then packed into requests under the
 * API's limits.
 */
import type { DocumentInput, Metadata } from "../../client/types";
import { extractMarkdown, tidy } from "../../core/extract/markdown";
import { decodeText, EXTENSIONS, sniff } from "../../core/extract/sniff";

export const SUPPORTED: readonly string[] = EXTENSIONS;
/** PDFs, Word files and web pages go to `POST /v1/documents/upload`, which extracts them on the server: at most 4 MB each. */
export const MAX_UPLOAD_BYTES = 4 * 1024 * 1024;
/** The API's limits (docs/contract.md): per document and per request. */
export const MAX_CONTENT_CHARS = 1_000_000;
export const MAX_DOCUMENTS_PER_REQUEST = 100;
/** A request's body is at most 6 MB; batches stay well under it. */
export const BATCH_BYTES = 4 * 1024 * 1024;
const MAX_REQUEST_BYTES = 6 * 1024 * 1024 - 64 * 1024;
/** Larger .json/.jsonl files hold many documents; larger text files cannot fit the content limit. */
const MAX_RECORDS_FILE_BYTES = 64 * 1024 * 1024;
const MAX_TEXT_FILE_BYTES = MAX_CONTENT_CHARS * 4;

export interface Picked {
  file: File;
  /** The path within what was dropped, e.g. `notes/a.md`; it becomes the document id. */
  path: string;
}

export interface FilePlan {
  path: string;
  size: number;
  documents: DocumentInput[];
  /** Why the whole file is not sent. */
  skipped?: string;
  /** Records of a .json/.jsonl file that were left out, with reasons. */
  notes: string[];
  /** A PDF or Word file (judged by its first bytes) or a web page, sent as it is to the upload route. */
  upload?: File;
}

/** Whether a file is a PDF or a ZIP (a .docx) by its first bytes, whatever its name says. */
async function isBinaryDocument(file: File): Promise<boolean> {
  const head = new Uint8Array(await file.slice(0, 1024).arrayBuffer());
  const pdf = new TextDecoder("latin1").decode(head).includes("%PDF-");
  return pdf || (head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04);
}

export const extensionOf = (path: string) => {
  const name = path.slice(path.lastIndexOf("/") + 1);
  const dot = name.lastIndexOf(".");
  return dot > 0 ? name.slice(dot).toLowerCase() : "";
};

const hidden = (name: string) => name.startsWith(".") || name === "node_modules";

/** The files of a drop, folders walked (hidden entries and node_modules left out). */
export async function filesFromDrop(transfer: DataTransfer): Promise<Picked[]> {
  // Entries must be taken synchronously, while the drop event is being handled.
  const entries: FileSystemEntry[] = [];
  const loose: File[] = [];
  for (const item of Array.from(transfer.items)) {
    if (item.kind !== "file") continue;
    const entry = item.webkitGetAsEntry?.();
    if (entry) entries.push(entry);
    else {
      const file = item.getAsFile();
      if (file) loose.push(file);
    }
  }
  const picked: Picked[] = loose.map((file) => ({ file, path: file.name }));
  for (const entry of entries) await walk(entry, picked);
  return picked;
}

async function walk(entry: FileSystemEntry, out: Picked[]): Promise<void> {
  if (entry.isFile) {
    const file = await new Promise<File>((resolve, reject) => (entry as FileSystemFileEntry).file(resolve, reject));
    out.push({ file, path: entry.fullPath.replace(/^\/+/, "") || file.name });
    return;
  }
  if (!entry.isDirectory || hidden(entry.name)) return;
  const reader = (entry as FileSystemDirectoryEntry).createReader();
  const children: FileSystemEntry[] = [];
  for (;;) {
    const batch = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  children.sort((a, b) => a.name.localeCompare(b.name));
  for (const child of children) if (!(child.isFile && hidden(child.name))) await walk(child, out);
}

/**
 * The files of an `<input type=file>` (with `webkitdirectory`, paths keep their folders). Hidden entries are left out
 * of a folder, as `engram ingest` leaves them; a file chosen by name is taken whatever its name (`.hidden.md`).
 */
export function filesFromInput(list: FileList): Picked[] {
  return Array.from(list)
    .filter((file) => !file.webkitRelativePath.split("/").some(hidden))
    .map((file) => ({ file, path: file.webkitRelativePath || file.name }));
}

/** Markdown as `engram ingest` stores it: core/extract's reader, tidied as every extracted text is. */
function markdown(text: string): { content: string; title?: string } {
  const { content, title } = extractMarkdown(text);
  return { content: tidy(content), title };
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Checks a record the way the API would, so a bad one is reported here instead of failing its batch. */
export function problemOf(doc: DocumentInput): string | undefined {
  if (typeof doc.content !== "string" || doc.content.trim() === "") return "content is empty";
  if (doc.content.length > MAX_CONTENT_CHARS)
    return `too large: ${doc.content.length.toLocaleString("en")} characters (the limit is ${MAX_CONTENT_CHARS.toLocaleString("en")})`;
  if (doc.id !== undefined && (typeof doc.id !== "string" || doc.id.trim() === "" || doc.id.length > 256))
    return "id must be 1-256 characters";
  if (doc.title !== undefined && (typeof doc.title !== "string" || doc.title.length > 1000))
    return "title must be text of at most 1000 characters";
  if (
    doc.importance !== undefined &&
    !(Number.isInteger(doc.importance) && doc.importance >= 1 && doc.importance <= 10)
  )
    return "importance must be a whole number from 1 to 10";
  if (doc.metadata !== undefined && !isObject(doc.metadata)) return "metadata must be a JSON object";
  if (doc.metadata && new TextEncoder().encode(JSON.stringify(doc.metadata)).length > 8 * 1024)
    return "metadata is larger than 8 KB";
  return undefined;
}

function record(raw: unknown, fallbackId: string, path: string): DocumentInput | string {
  if (!isObject(raw)) return "not a JSON object";
  const content = typeof raw.content === "string" ? raw.content : typeof raw.text === "string" ? raw.text : undefined;
  if (content === undefined) return "no content field";
  const doc: DocumentInput = {
    id: typeof raw.id === "string" ? raw.id : fallbackId,
    content,
    source: typeof raw.source === "string" ? raw.source : path,
  };
  if (raw.title !== undefined) doc.title = raw.title as string;
  if (raw.metadata !== undefined) doc.metadata = raw.metadata as Metadata;
  if (raw.importance !== undefined) doc.importance = raw.importance as number;
  if (typeof raw.conversationId === "string") doc.conversationId = raw.conversationId;
  if (typeof raw.ttlSeconds === "number") doc.ttlSeconds = raw.ttlSeconds;
  return doc;
}

/** A file for the upload route, or the reason it is too large for it. */
function uploaded(plan: FilePlan, file: File): FilePlan {
  if (file.size <= MAX_UPLOAD_BYTES) return { ...plan, upload: file };
  const mb = (file.size / 1024 / 1024).toFixed(1);
  return { ...plan, skipped: `too large: ${mb} MB (uploads are at most 4 MB; use engram ingest for larger files)` };
}

/** Reads one file into its documents, or the reason it is skipped. */
export async function planFile({ file, path }: Picked): Promise<FilePlan> {
  const plan: FilePlan = { path, size: file.size, documents: [], notes: [] };
  const ext = extensionOf(path);
  if (!SUPPORTED.includes(ext)) return { ...plan, skipped: `unsupported file type ${ext || "(none)"}` };
  if (file.size === 0) return { ...plan, skipped: "empty file" };
  const records = ext === ".json" || ext === ".jsonl";
  // A web page is extracted where the CLI's are (its main element, its headings kept): a reader of its own here
  // would make the same page a different document.
  const page = ext === ".html" || ext === ".htm";
  if (page || (!records && (await isBinaryDocument(file).catch(() => false)))) {
    return uploaded(plan, file);
  }
  const limit = records ? MAX_RECORDS_FILE_BYTES : MAX_TEXT_FILE_BYTES;
  if (file.size > limit) {
    const mb = (file.size / 1024 / 1024).toFixed(1);
    return {
      ...plan,
      skipped: records
        ? `too large: ${mb} MB (limit ${limit / 1024 / 1024} MB per file)`
        : `too large: ${mb} MB (a document holds at most ${MAX_CONTENT_CHARS.toLocaleString("en")} characters)`,
    };
  }
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch {
    return { ...plan, skipped: "unreadable" };
  }
  const text = decodeText(bytes);
  // NUL bytes, or more than one character in a hundred that is no UTF-8: the server's words for it (core/extract).
  if (text === undefined) {
    return {
      ...plan,
      skipped: bytes.subarray(0, 64 * 1024).includes(0)
        ? "not a text file"
        : "text that is not UTF-8 (save it as UTF-8)",
    };
  }

  if (records) {
    const raws: { raw: unknown; where: string }[] = [];
    if (ext === ".jsonl") {
      text.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        try {
          raws.push({ raw: JSON.parse(line), where: `line ${i + 1}` });
        } catch {
          plan.notes.push(`line ${i + 1}: invalid JSON`);
        }
      });
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { ...plan, skipped: "invalid JSON" };
      }
      const list = Array.isArray(parsed)
        ? parsed
        : isObject(parsed) && Array.isArray(parsed.documents)
          ? parsed.documents
          : [parsed];
      list.forEach((raw, i) => void raws.push({ raw, where: `record ${i + 1}` }));
    }
    raws.forEach(({ raw, where }, i) => {
      const doc = record(raw, `${path}#${i}`, path);
      const problem = typeof doc === "string" ? doc : problemOf(doc);
      if (problem) plan.notes.push(`${where}: ${problem}`);
      else plan.documents.push(doc as DocumentInput);
    });
    if (!plan.documents.length) return { ...plan, skipped: plan.notes[0] ?? "no documents in it" };
    return plan;
  }

  // The format as `engram ingest` judges it: a text file with `#` headings is Markdown, and one holding a web page
  // goes to the server like any page.
  const { format } = sniff(bytes, path, text);
  // AsciiDoc is read on the server too, by Asciidoctor, which the console does not carry.
  if (format === "html" || format === "asciidoc") {
    return uploaded(plan, file);
  }
  const doc: DocumentInput =
    format === "markdown"
      ? { id: path, ...markdown(text), source: path }
      : { id: path, content: tidy(text), source: path };
  if (doc.title === undefined) delete doc.title;
  const problem = problemOf(doc);
  if (problem) return { ...plan, skipped: problem };
  plan.documents.push(doc);
  return plan;
}

export interface Batch<T> {
  items: T[];
  bytes: number;
}

const encoder = new TextEncoder();
export const jsonBytes = (value: unknown) => encoder.encode(JSON.stringify(value)).length;

/**
 * Packs documents into requests of at most `maxDocs` documents and about `maxBytes` of JSON,
 * in order. A document too large for any request comes back in `tooLarge`.
 */
export function batches<T extends { document: DocumentInput }>(
  items: T[],
  maxDocs = MAX_DOCUMENTS_PER_REQUEST,
  maxBytes = BATCH_BYTES,
): { batches: Batch<T>[]; tooLarge: T[] } {
  const out: Batch<T>[] = [];
  const tooLarge: T[] = [];
  let current: Batch<T> = { items: [], bytes: 0 };
  for (const item of items) {
    const bytes = jsonBytes(item.document) + 1;
    if (bytes > MAX_REQUEST_BYTES) {
      tooLarge.push(item);
      continue;
    }
    if (current.items.length && (current.items.length >= maxDocs || current.bytes + bytes > maxBytes)) {
      out.push(current);
      current = { items: [], bytes: 0 };
    }
    current.items.push(item);
    current.bytes += bytes;
  }
  if (current.items.length) out.push(current);
  return { batches: out, tooLarge };
}
