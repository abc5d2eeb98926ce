/** Bounds on what extraction reads, so a hostile file is refused before memory grows (measured: docs/extract.md). */
export interface Limits {
  /** Bytes of the file itself. */
  maxBytes: number;
  /** Pages of a PDF, checked from its page tree before any page is read. */
  maxPages: number;
  /** Bytes a Word document's XML parts may expand to, checked while inflating, before the parser sees them. */
  maxExpandedBytes: number;
  /** Characters of extracted text: the most one document may hold (the API's content limit). */
  maxChars: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBytes: 64 * 1024 * 1024,
  maxPages: 2_000,
  maxExpandedBytes: 32 * 1024 * 1024,
  maxChars: 1_000_000,
};
