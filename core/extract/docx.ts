/**
 * Word (.docx) to Markdown-ish text: mammoth turns the document's styles into HTML (Heading 1 to h1, lists,
 * tables), and `htmlToText` turns that into text with `#` headings, so chunks get their heading path. The
 * archive's XML parts are inflated under a bound first: a ZIP bomb is refused before mammoth reads it.
 */
import { inflateRawSync } from "node:zlib";
import mammoth from "mammoth";
import { htmlToText } from "../chunk/html";
import { EngramError } from "../error";
import type { Limits } from "./limits";
import { centralDirectory } from "./sniff";

const corrupt = (cause?: unknown) =>
  new EngramError("unprocessable", "extract.corrupt", "The Word document cannot be read (damaged archive).", { cause });

/**
 * Inflates every XML part of the archive (what mammoth reads; images are never read) with a running bound on the
 * total, so declared sizes need not be trusted. Throws `extract.too_large` past `limits.maxExpandedBytes`.
 */
export function checkExpansion(bytes: Uint8Array, limits: Limits): number {
  const cd = centralDirectory(bytes);
  if (!cd) throw corrupt();
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let total = 0;
  let at = cd.offset;
  for (let i = 0; i < cd.entries; i++) {
    if (at + 46 > bytes.length || view.getUint32(at, true) !== 0x02014b50) throw corrupt();
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true);
    const next = at + 46 + nameLength + view.getUint16(at + 30, true) + view.getUint16(at + 32, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    const local = view.getUint32(at + 42, true);
    at = next;
    if (!/\.(xml|rels)$/i.test(name)) continue;
    if (local + 30 > bytes.length || view.getUint32(local, true) !== 0x04034b50) throw corrupt();
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = bytes.subarray(dataStart, dataStart + compressed);
    const left = limits.maxExpandedBytes - total;
    if (method === 0) total += data.length;
    else if (method === 8) {
      try {
        total += inflateRawSync(data, { maxOutputLength: Math.max(1, left) }).length;
      } catch (error) {
        if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE" || error instanceof RangeError)
          total = Infinity;
        else throw corrupt(error);
      }
    } else throw corrupt();
    if (total > limits.maxExpandedBytes) {
      throw new EngramError(
        "too_large",
        "extract.too_large",
        `The Word document's XML expands past ${limits.maxExpandedBytes / 1024 / 1024} MB (a ZIP bomb, or split it).`,
        { details: { limitBytes: limits.maxExpandedBytes } },
      );
    }
  }
  return total;
}

/** A .docx file's text, headings as `#` lines, and its first heading as a title. */
export async function extractDocx(bytes: Uint8Array, limits: Limits): Promise<{ content: string; title?: string }> {
  checkExpansion(bytes, limits);
  const result = await mammoth
    .convertToHtml(
      { buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) },
      // Images become nothing: they are never decoded, and the text has no use for them.
      { convertImage: mammoth.images.imgElement(async () => ({ src: "" })), externalFileAccess: false },
    )
    .catch((error: unknown) => {
      throw corrupt(error);
    });
  const content = htmlToText(result.value);
  const title = /^#\s+(.+)$/m.exec(content)?.[1]?.trim();
  return { content, title: title || undefined };
}
