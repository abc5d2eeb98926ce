/** A passage's location for people: "p. 14–15 · Travel › Expenses" (pages of a PDF, headings above it). */
import type { Location } from "../../client/types";

export function locationText(location: Location | null | undefined, title?: string | null): string {
  if (!location) return "";
  const [from, to] = location.pages ?? [];
  const pages = from === undefined ? "" : from === to ? `p. ${from}` : `pp. ${from}–${to}`;
  // The document's title is often its first heading: said once.
  const headings = (location.headings ?? []).filter((h, i) => i > 0 || h !== title).join(" › ");
  return [pages, headings].filter(Boolean).join(" · ");
}
