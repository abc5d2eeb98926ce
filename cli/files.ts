/** Turns files and folders into documents for ingest, with a reason for every file skipped. */
import { lstat, readdir, readFile, realpath, stat } from "node:fs/promises";
import { dirname, extname, join, relative, resolve, sep } from "node:path";
import { DocumentInput } from "../core/document/schema";
import { EngramError } from "../core/error";
import * as Extract from "../core/extract";

export type FileDocument = DocumentInput & { id: string };

export interface Skipped {
  path: string;
  reason: string;
  /** Meant to be read but could not be (encrypted, corrupt, too large), as opposed to nothing to read. */
  failed?: boolean;
}

const EXTENSIONS = new Set<string>(Extract.EXTENSIONS);
/** Refusals that mean "nothing here to ingest" rather than "this file is broken". */
const NOTHING_TO_READ = new Set(["extract.unsupported_type", "extract.empty", "extract.no_text"]);

/** The reason given for a path that does not exist. */
export const NOT_FOUND = "not found";

/** A file to ingest, and the folder its id is relative to. */
export interface FoundFile {
  path: string;
  root: string;
  /**
   * Named on the command line, not found in a folder: read whatever its name (`README`, `notes.log`, judged by content),
   * and a failure when it holds nothing to ingest, as a script that names one file means it.
   */
  given?: boolean;
  /**
   * Why it is refused without being read (its id is another file's): it is one of the run's files all the same,
   * counted with them and listed as failed when its turn comes.
   */
  refused?: string;
}

/**
 * Every supported file under the given paths, sorted, with a reason for what is skipped. A file's id is its path
 * from the current folder; for a path given outside it, from that path's parent (`/data/notes` → `notes/a.md`), so
 * the same argument names the same documents from any folder outside it, and no id starts `../`. Two files that
 * would share an id (`/a/notes` and `/b/notes` together) are not both read: the second is refused (`refused`) rather
 * than replacing the first; a file
 * reached twice (`notes/a.md notes`) is read once, under the id it was first reached by.
 */
export async function collectFiles(paths: string[]): Promise<{ files: FoundFile[]; skipped: Skipped[] }> {
  const files: FoundFile[] = [];
  const skipped: Skipped[] = [];
  const ids = new Map<string, string>();
  // A file reached twice (given alone and inside a folder also given, or through a link) is one document, named as
  // first reached; a folder reached again through a link is not read again (a link to a parent would loop).
  const seen = new Set<string>();
  const folders = new Set<string>();
  const walk = async (path: string, root: string, given = false) => {
    const info = await stat(path).catch(async (error: NodeJS.ErrnoException) => {
      // A link to nothing found in a folder is no file asked for (a path given that does not exist is a failure).
      const link = !given && error.code === "ENOENT" && (await lstat(path).catch(() => undefined))?.isSymbolicLink();
      if (link) skipped.push({ path, reason: "a link to nothing (broken link)" });
      else
        skipped.push({
          path,
          reason: error.code === "ENOENT" ? NOT_FOUND : `unreadable (${error.code})`,
          failed: true,
        });
      return undefined;
    });
    if (!info) return;
    if (info.isDirectory()) {
      const real = await realpath(path).catch(() => resolve(path));
      if (folders.has(real))
        return void skipped.push({ path, reason: "a folder already read (given twice, or through a link)" });
      folders.add(real);
      const entries = await readdir(path).catch(() => undefined);
      if (!entries) return void skipped.push({ path, reason: "unreadable folder", failed: true });
      for (const entry of entries.sort())
        if (!entry.startsWith(".") && entry !== "node_modules") await walk(join(path, entry), root);
    } else if (!info.isFile()) {
      // Reading a named pipe would wait for a writer forever; a socket or device is no document either.
      skipped.push({ path, reason: "not a regular file (a pipe, socket or device)" });
    } else if (given || EXTENSIONS.has(extname(path).toLowerCase())) {
      const real = await realpath(path).catch(() => resolve(path));
      if (seen.has(real)) return;
      seen.add(real);
      const id = fileId(path, root);
      const first = ids.get(id);
      if (first === undefined) {
        ids.set(id, path);
        files.push(given ? { path, root, given } : { path, root });
      } else if (first !== path) {
        files.push({
          path,
          root,
          refused: `its id ${id} is also ${first}'s: run this from a folder that holds both (ids are paths from the current folder), so that each keeps a document of its own`,
        });
      }
    } else {
      skipped.push({ path, reason: `unsupported file type ${extname(path) || "(none)"}` });
    }
  };
  for (const path of paths) await walk(path, rootOf(path), true);
  return { files, skipped };
}

/** The folder a path given is named from: the current one, or for a path outside it, the path's parent. */
function rootOf(path: string): string {
  const cwd = resolve(".");
  const absolute = resolve(path);
  return absolute === cwd || !relative(cwd, absolute).startsWith("..") ? cwd : dirname(absolute);
}

/** A file's document id: its path from `root`, with `/` between folders on every system. */
const fileId = (path: string, root: string) => (relative(root, resolve(path)) || path).split(sep).join("/");

/**
 * Whether a stored document came from a file that the paths given cover, by its `source`, which `ingest` sets to the
 * file's id: a relative path with a supported extension, at or under a path given, through no folder the walk skips.
 * A source a program wrote (a URL, an absolute path, no file name) is no file of these paths. Refuses the current
 * folder itself, whose files' ids are bare names.
 */
export function coveredBy(paths: string[]): (source: string | null) => boolean {
  // As the walk names them; the current folder itself has the empty id.
  const given = paths.map((path) => relative(rootOf(path), resolve(path)).split(sep).join("/"));
  // The current folder's files are stored under bare names, as uploads are (`handbook.pdf`): no prefix tells them apart.
  if (given.includes(""))
    throw new EngramError(
      "input",
      "cli.invalid_option",
      "--prune covers the folders named, and the current folder's files have ids without one (as uploads do): name the folder from its parent (cd .. && engram ingest <folder> --prune)",
    );
  return (source) => {
    if (source === null || source.includes("//") || source.startsWith("/")) return false;
    const parts = source.split("/");
    // Nothing the walk skips (hidden files and folders, node_modules, `..`) is a file it could have sent.
    if (parts.some((part) => part.startsWith(".") || part === "node_modules")) return false;
    return (
      EXTENSIONS.has(extname(source).toLowerCase()) && given.some((id) => source === id || source.startsWith(`${id}/`))
    );
  };
}

/** Reads one file into documents: a .json/.jsonl file may hold many, any other file is extracted into one. */
export async function readDocuments(
  path: string,
  root: string,
): Promise<{ documents: FileDocument[]; skipped: Skipped[] }> {
  const size = await stat(path).then(
    (info) => info.size,
    () => undefined,
  );
  if (size !== undefined && size > Extract.DEFAULT_LIMITS.maxBytes) {
    const mb = (n: number) => `${(n / 1048576).toFixed(0)} MB`;
    return {
      documents: [],
      skipped: [
        {
          path,
          reason: `too large: ${mb(size)} (limit ${mb(Extract.DEFAULT_LIMITS.maxBytes)}) (extract.too_large)`,
          failed: true,
        },
      ],
    };
  }
  const buffer = await readFile(path).catch(() => undefined);
  if (!buffer) return { documents: [], skipped: [{ path, reason: "unreadable", failed: true }] };
  const id = fileId(path, root);
  const skipped: Skipped[] = [];
  const documents: FileDocument[] = [];
  const add = (doc: Record<string, unknown>, where = path) => {
    const parsed = DocumentInput.safeParse(doc);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      // A record meant as a document and refused is lost: failed, as a damaged file is.
      return void skipped.push({
        path: where,
        reason: `${issue?.path.join(".") || "document"}: ${issue?.message}`,
        failed: true,
      });
    }
    documents.push(parsed.data as FileDocument);
  };
  const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const format = Extract.sniff(bytes, path).format;
  if (format === "json" || format === "jsonl") {
    const text = new TextDecoder().decode(bytes).replace(/^\uFEFF/, "");
    const records: unknown[] = [];
    /** Where each record is said to be in messages: its line in a .jsonl (as its invalid lines are), else `#index`. */
    const where: string[] = [];
    if (format === "jsonl") {
      text.split("\n").forEach((line, i) => {
        if (!line.trim()) return;
        try {
          records.push(JSON.parse(line));
          where.push(`${path}:${i + 1}`);
        } catch {
          skipped.push({ path: `${path}:${i + 1}`, reason: "invalid JSON line", failed: true });
        }
      });
    } else {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return { documents: [], skipped: [{ path, reason: "invalid JSON", failed: true }] };
      }
      const wrapped = (parsed as { documents?: unknown } | null)?.documents;
      const list = Array.isArray(parsed) ? parsed : Array.isArray(wrapped) ? wrapped : [parsed];
      records.push(...list);
      where.push(...list.map((_, i) => `${path}#${i}`));
    }
    // `[]` or `{"documents": []}`: counted as read, it had been neither stored nor listed.
    if (records.length === 0 && skipped.length === 0) skipped.push({ path, reason: "holds no documents" });
    for (const [i, record] of records.entries()) {
      // JSON that is not an object (`null`, a number, a list) holds no document: said as such, not as a parse error.
      if (typeof record !== "object" || record === null || Array.isArray(record)) {
        skipped.push({ path: where[i] as string, reason: "not a JSON object" });
        continue;
      }
      const r = record as Record<string, unknown>;
      const content = typeof r?.content === "string" ? r.content : typeof r?.text === "string" ? r.text : undefined;
      if (content === undefined) {
        skipped.push({ path: where[i] as string, reason: "no content field" });
        continue;
      }
      const { text: _text, ...rest } = r;
      add(
        // The id keeps the record's index: ids of files ingested before stay the same.
        { ...rest, id: typeof r.id === "string" ? r.id : `${id}#${i}`, content, source: r.source ?? id },
        where[i] as string,
      );
    }
    return { documents, skipped };
  }
  try {
    const extracted = await Extract.extract(bytes, { name: path });
    add({ id, content: extracted.content, title: extracted.title, source: id });
  } catch (error) {
    if (!(error instanceof EngramError) || !error.code.startsWith("extract.")) throw error;
    skipped.push({
      path,
      reason: `${error.message.replace(/^Unsupported: /, "unsupported: ").replace(/\.$/, "")} (${error.code})`,
      failed: !NOTHING_TO_READ.has(error.code),
    });
  }
  return { documents, skipped };
}
