/** Drop files or folders: each file's progress, then what became of it (created, updated, unchanged, skipped). */

import type { DocumentStatus as DocStatus, DocumentInput, IngestResponse, Metadata } from "../../../client/types";
import { ApiError, describeError, engram } from "../api";
import { field, fmtBytes, h, plural, replace } from "../dom";
import { batches, type FilePlan, filesFromDrop, filesFromInput, type Picked, planFile, SUPPORTED } from "../files";
import { session } from "../session";
import { emit, errorDetails, notifyError } from "../ui";
import type { View } from "./view";

/** Steps of a file's progress bar: read, sent, answered. */
const STEPS = 3;
const MAX_RATE_LIMIT_RETRIES = 3;

interface Row {
  path: string;
  size: number;
  progress: HTMLProgressElement;
  state: HTMLElement;
  el: HTMLTableRowElement;
  plan?: FilePlan;
  pending: number;
  counts: Record<DocStatus, number>;
  chunks: number;
  failed?: ApiError;
}

type Item = { document: DocumentInput; row: Row };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends, waiting out a 429 for its `Retry-After` up to MAX_RATE_LIMIT_RETRIES times; other errors are thrown. */
async function retrying<T>(send: () => Promise<T>, waiting: (seconds: number) => void): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send();
    } catch (error) {
      const api = describeError(error);
      if (api.status !== 429 || attempt >= MAX_RATE_LIMIT_RETRIES) throw api;
      const wait = Math.max(1, api.retryAfter ?? 5);
      waiting(wait);
      await sleep(wait * 1000);
    }
  }
}

export function ingestView(): View {
  const filesInput = h("input", { type: "file", multiple: true, hidden: true, "data-testid": "file-input" });
  const folderInput = h("input", { type: "file", multiple: true, hidden: true, "data-testid": "folder-input" });
  folderInput.setAttribute("webkitdirectory", "");
  const chooseFiles = h("button", { type: "button", class: "primary" }, "Choose files…");
  const chooseFolder = h("button", { type: "button" }, "Choose a folder…");
  chooseFiles.addEventListener("click", () => filesInput.click());
  chooseFolder.addEventListener("click", () => folderInput.click());

  const importance = h("input", { type: "number", min: 1, max: 10, step: 1, placeholder: "5", inputmode: "numeric" });
  const metadata = h("textarea", { rows: 2, spellcheck: "false", placeholder: '{"team": "sales"}' });
  const conversation = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const options = h(
    "details",
    { class: "options" },
    h("summary", null, "Options for these documents"),
    h(
      "div",
      { class: "grid" },
      field("Importance (1–10)", importance, "Used where a file does not set its own; default 5."),
      field("Metadata (JSON object)", metadata, "Added to every document; a record's own keys win."),
      field("Conversation id", conversation, "Optional: file the documents under a conversation."),
    ),
  );

  const space = h("p", { class: "lede" });
  const zone = h(
    "div",
    { class: "dropzone", "data-testid": "dropzone" },
    h("p", { class: "big" }, "Drop files or folders here"),
    h(
      "p",
      null,
      `Supported: ${SUPPORTED.join(" ")} — up to 1,000,000 characters per document; PDFs, Word files and web pages up to 4 MB (larger: engram ingest).`,
    ),
    h("div", { class: "actions" }, chooseFiles, chooseFolder),
    filesInput,
    folderInput,
  );

  const overall = h("progress", { max: 1, value: 0, "aria-label": "Files done" });
  const overallText = h("span", null, "");
  const summary = h("div", { class: "summary", hidden: true, role: "status" }, overall, overallText);
  const tbody = h("tbody");
  const table = h(
    "div",
    { class: "table-wrap", hidden: true },
    h(
      "table",
      { class: "files", "data-testid": "ingest-files" },
      h(
        "thead",
        null,
        h(
          "tr",
          null,
          h("th", { scope: "col" }, "File"),
          h("th", { scope: "col" }, "Size"),
          h("th", { scope: "col" }, "Progress"),
          h("th", { scope: "col" }, "Result"),
        ),
      ),
      tbody,
    ),
  );
  const totals = h("p", { class: "totals", "data-testid": "ingest-totals", "aria-live": "polite" });

  const root = h(
    "section",
    { class: "view", "aria-labelledby": "ingest-title" },
    h("h1", { id: "ingest-title" }, "Add documents"),
    space,
    zone,
    options,
    summary,
    table,
    totals,
  );

  let running = false;
  const queue: Picked[][] = [];

  const readOptions = (): { importance?: number; metadata?: Metadata; conversationId?: string } | undefined => {
    const out: { importance?: number; metadata?: Metadata; conversationId?: string } = {};
    if (importance.value) {
      const n = Number(importance.value);
      if (!Number.isInteger(n) || n < 1 || n > 10) {
        notifyError(new ApiError(0, "console.invalid_importance", "Importance must be a whole number from 1 to 10."));
        importance.focus();
        return undefined;
      }
      out.importance = n;
    }
    if (metadata.value.trim()) {
      try {
        const parsed = JSON.parse(metadata.value) as unknown;
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new Error("not an object");
        out.metadata = parsed as Metadata;
      } catch {
        notifyError(
          new ApiError(0, "console.invalid_metadata", 'Metadata must be a JSON object, like {"team": "sales"}.'),
        );
        options.open = true;
        metadata.focus();
        return undefined;
      }
    }
    if (conversation.value.trim()) out.conversationId = conversation.value.trim();
    return out;
  };

  const setState = (row: Row, step: number, text: string, kind = "") => {
    row.progress.value = step;
    row.progress.setAttribute("aria-valuetext", text);
    row.state.className = `state ${kind}`.trim();
    row.state.textContent = text;
  };

  const finishRow = (row: Row) => {
    if (row.failed) return;
    const parts = (["created", "updated", "unchanged"] as const)
      .filter((s) => row.counts[s])
      .map((s) => (row.plan?.documents.length === 1 || row.plan?.upload ? s : `${row.counts[s]} ${s}`));
    const notes = row.plan?.notes.length ? `; left out ${row.plan.notes.join("; ")}` : "";
    if (!parts.length) {
      setState(row, STEPS, `skipped: ${row.plan?.notes.join("; ") || "nothing to send"}`, "skipped");
      return;
    }
    const kind = row.counts.created ? "created" : row.counts.updated ? "updated" : "unchanged";
    setState(row, STEPS, `${parts.join(", ")} · ${plural(row.chunks, "chunk")}${notes}`, kind);
  };

  const run = async (picked: Picked[]) => {
    const extra = readOptions();
    if (!extra) return;
    table.hidden = false;
    summary.hidden = false;
    totals.textContent = "";
    tbody.replaceChildren();
    const rows: Row[] = picked.map(({ path, file }) => {
      const progress = h("progress", { max: STEPS, value: 0, "aria-label": `Progress of ${path}` });
      const state = h("span", { class: "state" }, "waiting");
      const el = h(
        "tr",
        { "data-path": path },
        h("th", { scope: "row" }, path),
        h("td", null, fmtBytes(file.size)),
        h("td", null, progress),
        h("td", null, state),
      );
      tbody.append(el);
      return {
        path,
        size: file.size,
        progress,
        state,
        el,
        pending: 0,
        counts: { created: 0, updated: 0, unchanged: 0 },
        chunks: 0,
      };
    });
    let done = 0;
    overall.max = rows.length;
    const tick = () => {
      overall.value = done;
      overallText.textContent = `${done} of ${plural(rows.length, "file")} done`;
    };
    tick();

    // Read every file; skipped ones are done at once and never sent.
    const items: Item[] = [];
    const uploads: Row[] = [];
    const seen = new Map<string, string>();
    for (const [i, pick] of picked.entries()) {
      const row = rows[i]!;
      setState(row, 0, "reading…");
      const plan = await planFile(pick);
      row.plan = plan;
      if (plan.upload) {
        uploads.push(row);
        row.pending = 1;
        setState(row, 1, "read: a document to extract on the server, waiting to send");
        continue;
      }
      const fresh = plan.documents.filter((doc) => {
        const id = doc.id ?? "";
        const first = seen.get(id);
        if (first !== undefined) {
          plan.notes.push(`duplicate id ${JSON.stringify(id)} (also in ${first})`);
          return false;
        }
        seen.set(id, plan.path);
        return true;
      });
      if (!plan.skipped && !fresh.length) plan.skipped = plan.notes[0] ?? "no documents";
      if (plan.skipped) {
        setState(row, STEPS, `skipped: ${plan.skipped}`, "skipped");
        row.el.classList.add("skipped");
        done++;
        tick();
        continue;
      }
      for (const doc of fresh) {
        const document: DocumentInput = { ...doc };
        if (extra.importance !== undefined && document.importance === undefined) document.importance = extra.importance;
        if (extra.metadata) document.metadata = { ...extra.metadata, ...(document.metadata ?? {}) };
        if (extra.conversationId && !document.conversationId) document.conversationId = extra.conversationId;
        items.push({ document, row });
      }
      row.pending = fresh.length;
      setState(row, 1, `read: ${plural(fresh.length, "document")}, waiting to send`);
    }

    const { batches: packed, tooLarge } = batches(items);
    for (const item of tooLarge) {
      item.row.plan?.notes.push(`${item.document.id}: too large for one request`);
      item.row.pending--;
    }
    let embedded = 0;
    let reused = 0;
    for (const batch of packed) {
      const batchRows = [...new Set(batch.items.map((item) => item.row))];
      for (const row of batchRows) if (!row.failed) setState(row, 2, "sending…", "sending");
      let response: IngestResponse | undefined;
      try {
        response = await retrying(
          () => engram.ingest({ documents: batch.items.map((item) => item.document) }),
          (wait) => {
            for (const row of batchRows) setState(row, 2, `rate limited: retrying in ${wait} s`, "sending");
          },
        );
      } catch (error) {
        const api = describeError(error);
        for (const row of batchRows) {
          row.failed = api;
          setState(row, STEPS, `failed: ${api.message}`, "failed");
          row.state.after(errorDetails(api));
        }
        notifyError(api, "Ingest");
      }
      if (response) {
        embedded += response.totals.embedded;
        reused += response.totals.reused;
        const byId = new Map(response.documents.map((doc) => [doc.id, doc]));
        batch.items.forEach((item, index) => {
          const result = byId.get(item.document.id ?? "") ?? response.documents[index];
          if (!result) return;
          item.row.counts[result.status]++;
          item.row.chunks += result.chunks;
        });
      }
      for (const item of batch.items) item.row.pending--;
      for (const row of batchRows) {
        if (row.pending === 0) {
          finishRow(row);
          done++;
        }
      }
      tick();
    }
    // PDFs, Word files and web pages, one upload each: the server extracts them (pages and headings kept for
    // citations). One request a file counts against the ingest rate limit, so a folder of pages waits out its 429s.
    for (const row of uploads) {
      const file = row.plan?.upload;
      if (!file) continue;
      setState(row, 2, "extracting and sending…", "sending");
      try {
        const result = await retrying(
          () =>
            engram.documents.upload(file, {
              id: row.path,
              source: row.path,
              importance: extra.importance,
              metadata: extra.metadata,
              conversationId: extra.conversationId,
            }),
          (wait) => setState(row, 2, `rate limited: retrying in ${wait} s`, "sending"),
        );
        embedded += result.totals.embedded;
        reused += result.totals.reused;
        for (const doc of result.documents) {
          row.counts[doc.status]++;
          row.chunks += doc.chunks;
        }
        row.pending = 0;
        finishRow(row);
        if (result.file.pages) row.state.textContent += ` · ${plural(result.file.pages, "page")}`;
      } catch (error) {
        const api = describeError(error);
        row.pending = 0;
        if (/^extract\.(no_text|empty|unsupported_type)$/.test(api.code)) {
          if (row.plan) row.plan.skipped = api.message;
          setState(row, STEPS, `skipped: ${api.message}`, "skipped");
          row.el.classList.add("skipped");
        } else {
          row.failed = api;
          setState(row, STEPS, `failed: ${api.message}`, "failed");
          row.state.after(errorDetails(api));
        }
      }
      done++;
      tick();
    }
    for (const row of rows) {
      if (row.pending === 0 && row.progress.value < STEPS) {
        finishRow(row);
        done++;
      }
    }
    tick();

    const count = (kind: DocStatus) => rows.reduce((n, row) => n + row.counts[kind], 0);
    const skipped = rows.filter((row) => row.plan?.skipped).length;
    const failed = rows.filter((row) => row.failed).length;
    totals.textContent = [
      `${count("created")} created`,
      `${count("updated")} updated`,
      `${count("unchanged")} unchanged`,
      `${plural(skipped, "file")} skipped`,
      failed ? `${plural(failed, "file")} failed` : "",
      `${plural(embedded, "chunk")} embedded, ${reused} reused`,
    ]
      .filter(Boolean)
      .join(" · ");
    if (packed.length || uploads.length) emit("documents");
  };

  const enqueue = async (picked: Picked[]) => {
    if (!picked.length) return;
    queue.push(picked);
    if (running) return;
    running = true;
    try {
      for (let next = queue.shift(); next; next = queue.shift()) await run(next);
    } catch (error) {
      notifyError(error, "Ingest");
    } finally {
      running = false;
    }
  };

  for (const input of [filesInput, folderInput]) {
    input.addEventListener("change", () => {
      const picked = input.files ? filesFromInput(input.files) : [];
      input.value = "";
      void enqueue(picked);
    });
  }
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    if (event.dataTransfer) event.dataTransfer.dropEffect = "copy";
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (!event.dataTransfer) return;
    filesFromDrop(event.dataTransfer).then(enqueue, (error) => notifyError(error, "Reading the dropped files"));
  });

  const describeSpace = () =>
    replace(
      space,
      "Documents go into ",
      session.userId
        ? [h("strong", null, `${session.userId}'s private space`), " (only that end user can find them)."]
        : [h("strong", null, "the shared space"), " (every end user of this key can find them)."],
    );

  return {
    id: "ingest",
    title: "Add",
    root,
    show: describeSpace,
    reset: describeSpace,
  };
}
