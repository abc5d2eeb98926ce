/** One document in a dialog: content, metadata, counts; edit title/metadata/importance; soft or hard delete, restore. */

import type { DocumentView, Location } from "../../client/types";
import { ApiError, describeError, engram } from "./api";
import { field, fmtDate, fmtNumber, h, replace } from "./dom";
import { locationText } from "./location";
import { findPassage, pageSpans, type Span } from "./passage";
import { session } from "./session";
import { busy, confirmAction, emit, errorDetails, modal, notify, notifyError } from "./ui";

function facts(doc: DocumentView): HTMLElement {
  const row = (label: string, value: string | Node) => h("div", null, h("dt", null, label), h("dd", null, value));
  return h(
    "dl",
    { class: "facts" },
    row("Id", h("code", null, doc.id)),
    row("Space", doc.scope === "shared" ? "shared" : `private (${session.userId ?? "end user"})`),
    row("Source", doc.source ?? "—"),
    row("Conversation", doc.conversationId ?? "—"),
    row("Importance", String(doc.importance)),
    row("Chunks", fmtNumber(doc.chunks)),
    row("Length", `${fmtNumber(doc.contentLength)} characters`),
    row("Access count", fmtNumber(doc.accessCount)),
    row("Last accessed", fmtDate(doc.lastAccessedAt)),
    row("Created", fmtDate(doc.createdAt)),
    row("Updated", fmtDate(doc.updatedAt)),
    doc.expiresAt ? row("Expires", fmtDate(doc.expiresAt)) : null,
  );
}

/** Can the current caller change it? Listing, PATCH and DELETE act on the caller's own space only. */
const editable = (doc: DocumentView) => doc.scope === (session.userId ? "user" : "shared");

function editor(doc: DocumentView, done: (doc: DocumentView) => void): HTMLFormElement {
  const title = h("input", { type: "text", value: doc.title ?? "", maxlength: 1000 });
  const importance = h("input", { type: "number", min: 1, max: 10, step: 1, value: doc.importance, required: true });
  const metadata = h("textarea", { rows: 4, spellcheck: "false" }, JSON.stringify(doc.metadata ?? {}, null, 2));
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const problem = h("p", { class: "problem", role: "alert", hidden: true });
  const form = h(
    "form",
    { class: "editor", "aria-label": "Edit document" },
    h("h3", null, "Edit"),
    field("Title", title),
    field("Importance (1–10)", importance),
    field("Metadata (JSON object)", metadata),
    problem,
    h("div", { class: "actions" }, save),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    problem.hidden = true;
    const change: Record<string, unknown> = {};
    const newTitle = title.value.trim();
    if (newTitle !== (doc.title ?? "")) change.title = newTitle === "" ? null : newTitle;
    const n = Number(importance.value);
    if (!Number.isInteger(n) || n < 1 || n > 10) {
      problem.textContent = "Importance must be a whole number from 1 to 10.";
      problem.hidden = false;
      importance.focus();
      return;
    }
    if (n !== doc.importance) change.importance = n;
    let meta: unknown;
    try {
      meta = JSON.parse(metadata.value || "{}");
      if (typeof meta !== "object" || meta === null || Array.isArray(meta)) throw new Error();
    } catch {
      problem.textContent = 'Metadata must be a JSON object, like {"team": "sales"}.';
      problem.hidden = false;
      metadata.focus();
      return;
    }
    if (JSON.stringify(meta) !== JSON.stringify(doc.metadata ?? {})) change.metadata = meta;
    if (!Object.keys(change).length) {
      notify("Nothing changed.");
      return;
    }
    void busy(save, "Saving…", async () => {
      const updated = await engram.documents.update(doc.id, change);
      notify(`Saved ${doc.id}.`);
      emit("documents");
      done(updated);
    });
  });
  return form;
}

/** Soft delete (hidden at once, purged after retention) or hard delete (gone now), each after a confirmation. */
export async function deleteDocument(id: string, hard: boolean): Promise<boolean> {
  const ok = await confirmAction(
    hard
      ? {
          title: "Delete permanently?",
          message: `“${id}” and its chunks will be removed now. This cannot be undone.`,
          confirm: "Delete permanently",
        }
      : {
          title: "Delete this document?",
          message: `“${id}” will be hidden from listing, search and chat at once, and purged after the retention period.`,
          confirm: "Delete",
        },
  );
  if (!ok) return false;
  try {
    await engram.documents.delete(id, hard ? { hard: true } : {});
    notify(hard ? `Deleted ${id} permanently.` : `Deleted ${id}.`);
    emit("documents");
    return true;
  } catch (error) {
    notifyError(error, "Delete");
    return false;
  }
}

/** A soft-deleted document back in listing, search and chat, before the cleanup purges it. */
export async function restoreDocument(id: string): Promise<boolean> {
  try {
    await engram.documents.restore(id);
    notify(`Restored ${id}.`);
    emit("documents");
    return true;
  } catch (error) {
    notifyError(error, "Restore");
    return false;
  }
}

/** A passage to open the document on: a citation's snippet or a search result's chunk, and where it is. */
export interface Focus {
  passage: string;
  location?: Location | null;
}

/** Text with the part in `mark` (offsets into the whole content, which begins at `offset`) marked. */
function withMark(text: string, offset: number, mark: Span | undefined): (Node | string)[] {
  const from = mark ? Math.max(0, mark.start - offset) : 0;
  const to = mark ? Math.min(text.length, mark.end - offset) : 0;
  if (!mark || from >= to) return [text];
  const cited = h("mark", { class: "cited", "data-testid": "cited-passage" }, text.slice(from, to));
  return [text.slice(0, from), cited, text.slice(to)];
}

/**
 * The content, a PDF's page by page (its text has form feeds between pages), with the cited passage marked; and
 * the element to scroll to: the passage, else its first page.
 */
function contentView(content: string, focus: Focus | undefined): { view: HTMLElement; target?: Element } {
  const pages = pageSpans(content);
  const found = focus ? findPassage(content, focus.passage, focus.location) : undefined;
  if (pages.length === 1) {
    const view = h("pre", { class: "content", tabindex: 0, "aria-label": "Content" }, ...withMark(content, 0, found));
    return { view, target: view.querySelector("mark.cited") ?? undefined };
  }
  const view = h(
    "div",
    { class: "content pages", tabindex: 0, "aria-label": "Content" },
    pages.map(({ start, end }, i) =>
      h(
        "section",
        { class: "page", "data-page": i + 1, "aria-label": `Page ${i + 1}` },
        h("p", { class: "page-number" }, `Page ${i + 1}`),
        h(
          "pre",
          null,
          ...withMark(
            content.slice(start, end).replace(/^\n|\n$/g, ""),
            start + (content[start] === "\n" ? 1 : 0),
            found,
          ),
        ),
      ),
    ),
  );
  const page = focus?.location?.pages?.[0];
  return {
    view,
    target:
      view.querySelector("mark.cited") ?? (page ? view.querySelector(`[data-page="${page}"]`) : null) ?? undefined,
  };
}

/**
 * Opens the document of that id in the dialog: in `scope`'s space when given (a search result's or citation's, or
 * a listed document's own: the caller's document and a shared one may have the same id), else the caller's own,
 * else the shared one.
 */
export function openDocument(id: string, focus?: Focus, scope?: DocumentView["scope"]): void {
  const { dialog, body, open } = modal(`Document ${id}`, "document-dialog");
  dialog.setAttribute("data-testid", "document-dialog");
  replace(body, h("p", { class: "loading" }, "Loading…"));
  open();

  let scrolled = false;
  const render = (doc: DocumentView) => {
    const heading = dialog.querySelector(".dialog-title");
    if (heading) heading.textContent = doc.title || doc.id;
    const actions = editable(doc)
      ? (() => {
          const soft = h("button", { type: "button" }, "Delete…");
          const hard = h("button", { type: "button", class: "danger" }, "Delete permanently…");
          soft.addEventListener("click", async () => {
            if (await deleteDocument(doc.id, false)) dialog.close();
          });
          hard.addEventListener("click", async () => {
            if (await deleteDocument(doc.id, true)) dialog.close();
          });
          return h("div", { class: "actions danger-zone" }, soft, hard);
        })()
      : h(
          "p",
          { class: "note" },
          `This is a shared document: end user ${session.userId} can read it but not change it. Clear the end user to edit it.`,
        );
    const { view, target } = contentView(doc.content ?? "", focus);
    const where = focus ? locationText(focus.location, doc.title) : "";
    const cited = focus
      ? h(
          "p",
          { class: "note", role: "status", "data-testid": "cited-note" },
          target?.matches("mark.cited")
            ? `The cited passage${where ? ` (${where})` : ""} is marked below.`
            : `The cited passage was not found in the document as it is now${where ? `; it was at ${where}` : ""}.`,
        )
      : null;
    replace(
      body,
      facts(doc),
      h("h3", null, "Metadata"),
      h("pre", { class: "json", tabindex: 0, "aria-label": "Metadata" }, JSON.stringify(doc.metadata ?? {}, null, 2)),
      h("h3", null, "Content"),
      cited,
      view,
      editable(doc) ? editor(doc, render) : null,
      actions,
    );
    // Within the content's own scroll box, and the dialog's; once, not again after an edit.
    if (!scrolled) target?.scrollIntoView({ block: "center" });
    scrolled = true;
  };

  // A citation stored before citations named their scope has none: the default read (own, else shared).
  engram.documents.get(id, scope ? { scope } : {}).then(render, (error) => {
    const api = describeError(error);
    replace(
      body,
      h("p", { class: "problem" }, api.status === 404 ? `No document “${id}” in this space.` : api.message),
      errorDetails(api instanceof ApiError ? api : describeError(api)),
    );
  });
}
