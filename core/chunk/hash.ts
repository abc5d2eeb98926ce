import { createHash } from "node:crypto";

/** SHA-256 of the UTF-8 encoding of text, as 64 lowercase hex digits: a chunk's identity for re-embedding. */
export function contentHash(text: string): string {
  return createHash("sha256").update(text, "utf8").digest("hex");
}
