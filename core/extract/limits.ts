/** Bounds on what extraction reads, so a hostile file is refused before memory grows (measured: docs/extract.md). */
export interface Limits {
  /** Bytes of the file itself. */
  maxBytes: number;
  /** Pages of a PDF, checked from its page tree before any page is read. */
  maxPages: number;
  /** Bytes a Word document's XML parts may expand to, checked while inflating, before the parser sees them. */
  maxExpandedBytes: number;
  /**
   * Bytes a PDF's streams may decode to, all of them but images and attached files (which text extraction never
   * decodes), checked while decoding, before pdf.js opens the file.
   */
  maxPdfDecodedBytes: number;
  /** Characters of extracted text: the most one document may hold (the API's content limit). */
  maxChars: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBytes: 64 * 1024 * 1024,
  maxPages: 2_000,
  maxExpandedBytes: 32 * 1024 * 1024,
  // 1,000,000 characters at debian-reference's 11 decoded bytes a character is 11 MB: room for fonts and drawings.
  maxPdfDecodedBytes: 64 * 1024 * 1024,
  maxChars: 1_000_000,
};
