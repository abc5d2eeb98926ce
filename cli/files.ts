/** Turns files and folders into documents for ingest, with a reason for every file skipped. */
import { readdir, readFile, stat } from "node:fs/promises";
import { extname, join, relative, resolve } from "node:path";
import { htmlToText } from "../core/chunk/split";
import { DocumentInput } from "../core/document/schema";

export type FileDocument = DocumentInput & { id: string };

export interface Skipped {
  path: string;
  reason: string;
}

const EXTENSIONS = new Set([".md", ".markdown", ".txt", ".html", ".htm", ".json", ".jsonl"]);

/** Every supported file under the given paths, sorted, with a reason for what is skipped. */
export async function collectFiles(paths: string[]): Promise<{ files: string[]; skipped: Skipped[] }> {
  const files: string[] = [];
  const skipped: Skipped[] = [];
  const walk = async (path: string) => {
    const info = await stat(path).catch((error: NodeJS.ErrnoException) => {
      skipped.push({ path, reason: error.code === "ENOENT" ? "not found" : `unreadable (${error.code})` });
      return undefined;
    });
    if (!info) return;
    if (info.isDirectory()) {
      const entries = await readdir(path).catch(() => undefined);
      if (!entries) return void skipped.push({ path, reason: "unreadable folder" });
      for (const entry of entries.sort())
        if (!entry.startsWith(".") && entry !== "node_modules") await walk(join(path, entry));
    } else if (EXTENSIONS.has(extname(path).toLowerCase())) {
      files.push(path);
    } else if (paths.includes(path)) {
      skipped.push({ path, reason: `unsupported file type ${extname(path) || "(none)"}` });
    }
  };
  for (const path of paths) await walk(path);
  return { files, skipped };
}

function decode(buffer: Buffer): string | undefined {
  if (buffer.includes(0)) return undefined;
  const text = new TextDecoder("utf-8", { fatal: false }).decode(buffer);
  // More than 1% replacement characters: not a text file.
  const bad = (text.match(/\uFFFD/g) ?? []).length;
  return bad > text.length / 100 ? undefined : text;
}

const firstHeading = (text: string) => /^#\s+(.+)$/m.exec(text)?.[1]?.trim();

/** Reads one file into documents (a .json/.jsonl file may hold many). */
export async function readDocuments(
  path: string,
  root: string,
): Promise<{ documents: FileDocument[]; skipped: Skipped[] }> {
  const buffer = await readFile(path).catch(() => undefined);
  if (!buffer) return { documents: [], skipped: [{ path, reason: "unreadable" }] };
  const text = decode(buffer);
  if (text === undefined) return { documents: [], skipped: [{ path, reason: "binary file" }] };
  const id = relative(root, resolve(path)) || path;
  const ext = extname(path).toLowerCase();
  const skipped: Skipped[] = [];
  const documents: FileDocument[] = [];
  const add = (doc: Record<string, unknown>, where = path) => {
    const parsed = DocumentInput.safeParse(doc);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return void skipped.push({ path: where, reason: `${issue?.path.join(".") || "document"}: ${issue?.message}` });
    }
    documents.push(parsed.data as FileDocument);
  };
  if (ext === ".json" || ext === ".jsonl") {
    const records: unknown[] = [];
    if (ext === ".jsonl") {
      text.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        try {
          records.push(JSON.parse(line));
        } catch {
          skipped.push({ path: `${path}:${i + 1}`, reason: "invalid JSON line" });
        }
      });
    } else {
      try {
        const parsed = JSON.parse(text) as unknown;
        const list = Array.isArray(parsed) ? parsed : ((parsed as { documents?: unknown[] }).documents ?? [parsed]);
        records.push(...list);
      } catch {
        return { documents: [], skipped: [{ path, reason: "invalid JSON" }] };
      }
    }
    for (const [i, record] of records.entries()) {
      const r = (record ?? {}) as Record<string, unknown>;
      const content = typeof r?.content === "string" ? r.content : typeof r?.text === "string" ? r.text : undefined;
      if (content === undefined) {
        skipped.push({ path: `${path}#${i}`, reason: "no content field" });
        continue;
      }
      const { text: _text, ...rest } = r;
      add(
        { ...rest, id: typeof r.id === "string" ? r.id : `${id}#${i}`, content, source: r.source ?? id },
        `${path}#${i}`,
      );
    }
  } else if (ext === ".html" || ext === ".htm") {
    const title = /<title[^>]*>([^<]*)<\/title>/i.exec(text)?.[1]?.trim();
    add({ id, content: htmlToText(text), title: title || undefined, source: id });
  } else {
    add({ id, content: text, title: firstHeading(text), source: id });
  }
  return { documents, skipped };
}
