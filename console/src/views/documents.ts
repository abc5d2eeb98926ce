/** The caller's own documents, newest first, in cursor pages, optionally one conversation's. */

import type { DocumentView } from "../../../client/types";
import { engram } from "../api";
import { deleteDocument, openDocument, restoreDocument } from "../document";
import { field, fmtDate, fmtNumber, h, plural, replace } from "../dom";
import { session } from "../session";
import { notifyError, on } from "../ui";
import type { View } from "./view";

export function documentsView(): View {
  const conversation = h("select", null, h("option", { value: "" }, "All documents"));
  const includeDeleted = h("input", { type: "checkbox" });
  const pageSize = h(
    "select",
    null,
    [5, 10, 20, 50, 100].map((n) => h("option", { value: n, selected: n === 20 }, String(n))),
  );
  const refresh = h("button", { type: "submit" }, "Refresh");
  const toolbar = h(
    "form",
    { class: "toolbar", "aria-label": "Which documents" },
    field("Conversation", conversation),
    h("div", { class: "field checkbox" }, h("label", null, includeDeleted, " Include deleted")),
    field("Per page", pageSize),
    refresh,
  );
  const stats = h("p", { class: "lede", "data-testid": "documents-stats" });
  const tbody = h("tbody");
  const empty = h("p", { class: "empty", hidden: true });
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "documents", "data-testid": "documents-table" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", { scope: "col" }, "Document"),
          h("th", { scope: "col", class: "num" }, "Chunks"),
          h("th", { scope: "col", class: "num" }, "Importance"),
          h("th", { scope: "col", class: "num" }, "Accesses"),
          h("th", { scope: "col" }, "Created"),
          h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Actions")),
        ),
      ),
      tbody,
    ),
  );
  const title = h("h1", { id: "documents-title", tabindex: "-1" }, "Documents");
  const newer = h("button", { type: "button", disabled: true }, "← Newer");
  const older = h("button", { type: "button", disabled: true }, "Older →");
  const pageLabel = h("span", { class: "page" }, "Page 1");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" }, newer, pageLabel, older);
  const root = h(
    "section",
    { class: "view", "aria-labelledby": "documents-title" },
    title,
    stats,
    toolbar,
    table,
    empty,
    pager,
  );

  /** Cursors of the pages before the current one; the current page's cursor is last. */
  let cursors: (string | null)[] = [null];
  let next: string | null = null;
  let stale = true;
  let loading: AbortController | undefined;

  const row = (doc: DocumentView) => {
    const open = h("button", { type: "button", class: "link title", "data-action": "open" }, doc.title || doc.id);
    open.addEventListener("click", () => openDocument(doc.id, undefined, doc.scope));
    const deleted = Boolean(doc.deletedAt);
    const action = deleted
      ? h("button", { type: "button", class: "danger small", "data-action": "purge" }, "Purge…")
      : h("button", { type: "button", class: "small", "data-action": "delete" }, "Delete…");
    action.setAttribute("aria-label", `${deleted ? "Purge" : "Delete"} ${doc.title || doc.id}`);
    action.addEventListener("click", async () => {
      // The row, and the button that had the focus, are gone: the focus goes to the list's heading, not the page's top.
      if (await deleteDocument(doc.id, deleted)) title.focus();
    });
    const restore = deleted
      ? h("button", { type: "button", class: "small", "data-action": "restore" }, "Restore")
      : null;
    restore?.setAttribute("aria-label", `Restore ${doc.title || doc.id}`);
    restore?.addEventListener("click", () => void restoreDocument(doc.id));
    return h(
      "tr",
      { "data-id": doc.id, class: deleted ? "deleted" : "" },
      h(
        "td",
        { class: "doc" },
        deleted ? h("span", { class: "title" }, doc.title || doc.id) : open,
        deleted ? h("span", { class: "badge" }, "deleted") : null,
        h("small", { class: "id" }, doc.id),
        doc.conversationId ? h("small", { class: "id" }, `conversation ${doc.conversationId}`) : null,
      ),
      h("td", { class: "num" }, fmtNumber(doc.chunks)),
      h("td", { class: "num" }, String(doc.importance)),
      h("td", { class: "num" }, fmtNumber(doc.accessCount)),
      h("td", null, fmtDate(doc.createdAt)),
      h("td", { class: "row-actions" }, restore, action),
    );
  };

  const loadStats = async () => {
    try {
      const s = await engram.stats();
      replace(
        stats,
        session.userId ? `${session.userId}'s private space: ` : "Shared space: ",
        `${plural(s.documents.total, "document")}, ${plural(s.chunks, "chunk")}`,
        s.documents.deleted ? `, ${s.documents.deleted} deleted awaiting purge` : "",
        s.averageImportance !== null ? `, average importance ${s.averageImportance}` : "",
        `. Embedded by ${s.embedding.model}`,
        // Chunks of another model are found by keyword only until `engram reembed` moves them (#17).
        s.embedding.stale
          ? ` (${plural(s.embedding.stale, "chunk")} of another model, not yet vector-searched: run engram reembed)`
          : "",
        ".",
      );
      const selected = conversation.value;
      replace(
        conversation,
        h("option", { value: "" }, "All documents"),
        s.byConversation.map((c) =>
          h(
            "option",
            { value: c.conversationId, selected: c.conversationId === selected },
            `${c.conversationId} (${c.documents})`,
          ),
        ),
      );
      if (selected && conversation.value !== selected) {
        conversation.append(h("option", { value: selected, selected: true }, selected));
      }
    } catch (error) {
      notifyError(error, "Stats");
    }
  };

  const load = async () => {
    loading?.abort();
    const controller = new AbortController();
    loading = controller;
    stale = false;
    refresh.setAttribute("aria-busy", "true");
    try {
      const cursor = cursors[cursors.length - 1] ?? null;
      const page = await engram.documents.list(
        {
          limit: Number(pageSize.value),
          cursor: cursor ?? undefined,
          conversationId: conversation.value || undefined,
          includeDeleted: includeDeleted.checked || undefined,
        },
        { signal: controller.signal },
      );
      next = page.nextCursor;
      // New rows replace the old, the focused button with them: the focus moves to the same document's row (the
      // same button, else its first: Restore leaves the title), or to the list's heading once that row is gone.
      const focused = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      const focusedRow = focused && tbody.contains(focused) ? focused.closest("tr")?.dataset.id : undefined;
      replace(tbody, page.documents.map(row));
      if (focusedRow !== undefined) {
        const same = Array.from(tbody.rows).find((tr) => tr.dataset.id === focusedRow);
        const button =
          same?.querySelector<HTMLElement>(`button[data-action="${focused?.dataset.action}"]`) ??
          same?.querySelector<HTMLElement>("button");
        (button ?? title).focus();
      }
      empty.hidden = page.documents.length > 0;
      empty.textContent =
        cursors.length > 1
          ? "No more documents."
          : "No documents in this space yet. Add some on the Add page, or switch the end user.";
      newer.disabled = cursors.length <= 1;
      older.disabled = !next;
      pageLabel.textContent = `Page ${cursors.length}`;
    } catch (error) {
      stale = true;
      notifyError(error, "Documents");
    } finally {
      if (loading === controller) refresh.removeAttribute("aria-busy");
    }
  };

  const reload = () => {
    cursors = [null];
    void loadStats();
    void load();
  };

  toolbar.addEventListener("submit", (event) => {
    event.preventDefault();
    reload();
  });
  for (const control of [conversation, includeDeleted, pageSize]) control.addEventListener("change", reload);
  older.addEventListener("click", () => {
    if (!next) return;
    cursors.push(next);
    void load();
  });
  newer.addEventListener("click", () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    void load();
  });

  let visible = false;
  on("documents", () => {
    if (visible) {
      void loadStats();
      void load();
    } else stale = true;
  });

  return {
    id: "documents",
    title: "Documents",
    root,
    show() {
      visible = true;
      if (stale) reload();
    },
    hide() {
      visible = false;
    },
    reset() {
      conversation.value = "";
      stale = true;
      if (visible) reload();
    },
  };
}
