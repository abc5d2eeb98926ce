/** Hybrid, vector or keyword search with filters; each result's score on its scale and its passage highlighted. */

import type { Metadata, SearchMode as Mode, SearchFilter, SearchRequest, SearchResult } from "../../../client/types";
import { ApiError, engram } from "../api";
import { openDocument } from "../document";
import { field, fmtDate, h, plural, replace, uid } from "../dom";
import { highlighted } from "../highlight";
import { locationText } from "../location";
import { session } from "../session";
import { nextStep, notifyError } from "../ui";
import type { View } from "./view";

/** What a score means in each mode, and the range it lies in. */
export const SCALES: Record<string, { label: string; min: number; max: number }> = {
  cosine_similarity: { label: "cosine similarity, −1 to 1, higher is closer", min: -1, max: 1 },
  bm25: { label: "keyword BM25, 0 to 1 (share of the best possible for this query)", min: 0, max: 1 },
  fused: { label: "fused score, 0 to 1 (1 = first in both lists)", min: 0, max: 1 },
  rerank: { label: "re-ranking model's relevance score", min: 0, max: 1 },
};
const SCALE_OF_MODE: Record<Mode, string> = { vector: "cosine_similarity", keyword: "bm25", hybrid: "fused" };

const MODES: { value: Mode; label: string }[] = [
  { value: "hybrid", label: "Hybrid" },
  { value: "vector", label: "Vector" },
  { value: "keyword", label: "Keyword" },
];

/** A metadata filter value: JSON numbers, booleans and null as such, anything else as text. */
function metadataValue(raw: string): Metadata[string] {
  const text = raw.trim();
  if (/^(-?\d+(\.\d+)?|true|false|null)$/.test(text)) return JSON.parse(text);
  return raw;
}

/** A date input's day as an instant: the start of that day, or of the next one for an inclusive end. */
function dayStart(value: string, next = false): string | undefined {
  if (!value) return undefined;
  const [y, m, d] = value.split("-").map(Number);
  if (!y || !m || !d) return undefined;
  return new Date(y, m - 1, d + (next ? 1 : 0)).toISOString();
}

export function searchView(): View {
  const query = h("input", {
    type: "search",
    required: true,
    maxlength: 2000,
    autocomplete: "off",
    placeholder: "how do refunds work",
    "data-testid": "search-query",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Search");
  const modeName = uid("mode");
  const modes = h(
    "fieldset",
    { class: "segmented" },
    h("legend", null, "Mode"),
    MODES.map(({ value, label }) => {
      const input = h("input", { type: "radio", name: modeName, value, checked: value === "hybrid" });
      return h("label", null, input, h("span", null, label));
    }),
  );
  const topK = h("input", { type: "number", min: 1, max: 50, value: 5, required: true, inputmode: "numeric" });
  const scope = h(
    "select",
    null,
    h("option", { value: "all" }, "Private and shared"),
    h("option", { value: "user" }, "Private only"),
    h("option", { value: "shared" }, "Shared only"),
  );
  const metaKey = h("input", { type: "text", autocomplete: "off", placeholder: "team" });
  const metaValue = h("input", { type: "text", autocomplete: "off", placeholder: "sales" });
  const minImportance = h("input", { type: "number", min: 1, max: 10, inputmode: "numeric" });
  const after = h("input", { type: "date" });
  const before = h("input", { type: "date" });
  const conversation = h("input", { type: "text", autocomplete: "off" });
  const filters = h(
    "details",
    { class: "options" },
    h("summary", null, "Filters"),
    h(
      "div",
      { class: "grid" },
      field("Metadata key", metaKey),
      field("Metadata value", metaValue, "Numbers, true, false and null match as JSON values."),
      field("Minimum importance", minImportance),
      field("Created on or after", after),
      field("Created on or before", before),
      field("Conversation id", conversation),
    ),
  );
  const form = h(
    "form",
    { class: "search-form", role: "search", "aria-label": "Search documents" },
    h("div", { class: "query-row" }, field("Query", query), submit),
    h("div", { class: "row" }, modes, field("Top K", topK), field("Scope", scope)),
    filters,
  );
  const summary = h("p", { class: "lede", role: "status", "data-testid": "search-summary" });
  const list = h("ol", { class: "results", "data-testid": "search-results" });
  const root = h(
    "section",
    { class: "view", "aria-labelledby": "search-title" },
    h("h1", { id: "search-title" }, "Search"),
    form,
    summary,
    list,
  );

  const result = (r: SearchResult, rank: number, text: string, scale: { min: number; max: number }) => {
    const open = h("button", { type: "button", class: "link title" }, r.title || r.documentId);
    open.addEventListener("click", () =>
      openDocument(r.documentId, { passage: r.content, location: r.location }, r.scope),
    );
    const meta = Object.keys(r.metadata ?? {}).length ? JSON.stringify(r.metadata) : null;
    return h(
      "li",
      { class: "result", "data-document-id": r.documentId, "data-scope": r.scope },
      h(
        "header",
        null,
        h("span", { class: "rank" }, `#${rank}`),
        open,
        r.location
          ? h("span", { class: "location", "data-testid": "location" }, locationText(r.location, r.title))
          : null,
        h(
          "span",
          { class: "score" },
          h("meter", { min: scale.min, max: scale.max, value: r.score, "aria-label": `Score ${r.score.toFixed(3)}` }),
          h("span", null, `score ${r.score.toFixed(3)}`),
        ),
      ),
      h("blockquote", { class: "passage" }, highlighted(r.content, text)),
      h(
        "footer",
        null,
        // With an end user, their own document and a shared one may have the same id: say whose this is.
        h(
          "span",
          null,
          "document ",
          h("code", null, r.documentId),
          session.userId ? ` (${r.scope === "shared" ? "shared" : "private"})` : "",
        ),
        h("span", null, `chunk ${r.ordinal + 1}`),
        r.source ? h("span", null, `source ${r.source}`) : null,
        h("span", null, `created ${fmtDate(r.createdAt)}`),
        meta ? h("span", null, "metadata ", h("code", null, meta)) : null,
      ),
    );
  };

  let running: AbortController | undefined;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = query.value;
    if (!text.trim()) {
      replace(list);
      summary.classList.add("problem");
      summary.textContent = "Enter a query: words to search for (spaces alone match nothing).";
      query.focus();
      return;
    }
    const mode = (form.querySelector<HTMLInputElement>(`input[name="${modeName}"]:checked`)?.value ?? "hybrid") as Mode;
    const filter: SearchFilter = {};
    if (metaKey.value.trim()) filter.metadata = { [metaKey.value.trim()]: metadataValue(metaValue.value) };
    if (minImportance.value) filter.minImportance = Number(minImportance.value);
    const createdAfter = dayStart(after.value);
    const createdBefore = dayStart(before.value, true);
    if (createdAfter) filter.createdAfter = createdAfter;
    if (createdBefore) filter.createdBefore = createdBefore;
    if (conversation.value.trim()) filter.conversationId = conversation.value.trim();
    const body = {
      query: text,
      mode,
      topK: Number(topK.value) || 5,
      scope: scope.value as SearchRequest["scope"],
      filter,
    };

    running?.abort();
    const controller = new AbortController();
    running = controller;
    submit.setAttribute("aria-busy", "true");
    summary.classList.remove("problem");
    summary.textContent = "Searching…";
    try {
      const response = await engram.search(body, { signal: controller.signal });
      const scaleKey = response.scale ?? SCALE_OF_MODE[response.mode];
      const scale = SCALES[scaleKey] ?? { label: scaleKey, min: 0, max: 1 };
      replace(
        summary,
        `${plural(response.results.length, "result")} · ${response.mode} · score: ${scale.label} · ${Math.round(response.tookMs)} ms`,
      );
      replace(
        list,
        response.results.map((r, i) => result(r, i + 1, text, scale)),
      );
      if (!response.results.length) {
        list.append(h("li", { class: "empty" }, "Nothing matched. Try another mode, fewer filters, or add documents."));
      }
    } catch (error) {
      if ((error as Error).name === "AbortError") return;
      replace(list);
      summary.classList.add("problem");
      const api = notifyError(error, "Search");
      summary.textContent =
        api instanceof ApiError
          ? `Search failed: ${api.message}${api.requestId ? ` (request ${api.requestId})` : ""} ${nextStep(api) ?? ""}`.trim()
          : "";
    } finally {
      if (running === controller) submit.removeAttribute("aria-busy");
    }
  });

  const placeholder = () => {
    replace(list);
    summary.classList.remove("problem");
    summary.textContent = session.userId
      ? `Searching as ${session.userId}: their private documents and the shared space.`
      : "Searching the shared space (no end user).";
  };

  return {
    id: "search",
    title: "Search",
    root,
    show() {
      if (!summary.textContent) placeholder();
    },
    reset: placeholder,
  };
}
