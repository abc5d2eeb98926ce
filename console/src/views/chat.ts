/**
 * Chat: answers streamed as they are written, `[n]` markers that open the cited passage, the
 * caller's conversations, and the "remember" switch.
 */

import type { ChatDone, Citation, ConversationSummary, StoredMessage } from "../../../client/types";
import { engram } from "../api";
import { openDocument } from "../document";
import { fmtDate, h, plural, replace, uid } from "../dom";
import { locationText } from "../location";
import { session } from "../session";
import { busy, confirmAction, emit, errorDetails, modal, nextStep, notifyError, on } from "../ui";
import type { View } from "./view";

const MARKER = /\[(\d{1,4})\]/g;

function openCitation(citation: Citation): void {
  const { body, dialog, open } = modal(
    `Source [${citation.index}]: ${citation.title || citation.documentId}`,
    "citation-dialog",
  );
  dialog.setAttribute("data-testid", "citation-dialog");
  const openDoc = h("button", { type: "button", class: "primary" }, "Open the document");
  openDoc.addEventListener("click", () => {
    dialog.close();
    openDocument(citation.documentId, { passage: citation.snippet, location: citation.location }, citation.scope);
  });
  replace(
    body,
    h("blockquote", { class: "passage" }, citation.snippet),
    h(
      "dl",
      { class: "facts" },
      h(
        "div",
        null,
        h("dt", null, "Document"),
        // With an end user, their own document and a shared one may have the same id: say whose this is (a
        // citation stored before citations named their space does not know).
        h(
          "dd",
          null,
          h("code", null, citation.documentId),
          session.userId && citation.scope ? ` (${citation.scope === "shared" ? "shared" : "private"})` : "",
        ),
      ),
      citation.location
        ? h(
            "div",
            { "data-testid": "citation-location" },
            h("dt", null, "Where"),
            h("dd", null, locationText(citation.location, citation.title)),
          )
        : null,
      h("div", null, h("dt", null, "Chunk"), h("dd", null, h("code", null, citation.chunkId))),
      h("div", null, h("dt", null, "Score"), h("dd", null, citation.score.toFixed(3))),
      citation.source ? h("div", null, h("dt", null, "Source"), h("dd", null, citation.source)) : null,
    ),
    h("div", { class: "actions" }, openDoc),
  );
  open();
}

/** Answer text with each known `[n]` as a button that opens its source. */
function answerText(text: string, citations: Map<number, Citation>): DocumentFragment {
  const fragment = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(MARKER)) {
    const citation = citations.get(Number(match[1]));
    if (!citation) continue;
    const at = match.index ?? 0;
    if (at > last) fragment.append(text.slice(last, at));
    const button = h(
      "button",
      {
        type: "button",
        class: "cite",
        "aria-label": `Source ${citation.index}: ${citation.title || citation.documentId}`,
      },
      `[${citation.index}]`,
    );
    button.addEventListener("click", () => openCitation(citation));
    fragment.append(button);
    last = at + match[0].length;
  }
  if (last < text.length) fragment.append(text.slice(last));
  return fragment;
}

function sourcesList(citations: Citation[]): HTMLElement | null {
  if (!citations.length) return null;
  return h(
    "ol",
    { class: "sources", "aria-label": "Sources" },
    citations.map((c) => {
      const where = locationText(c.location, c.title);
      const button = h(
        "button",
        { type: "button", class: "link" },
        `[${c.index}] ${c.title || c.documentId}${where ? ` (${where})` : ""}`,
      );
      button.addEventListener("click", () => openCitation(c));
      return h("li", null, button);
    }),
  );
}

interface Bubble {
  el: HTMLElement;
  text: HTMLElement;
  footer: HTMLElement;
}

function bubble(role: "user" | "assistant" | "system", label?: string): Bubble {
  const text = h("div", { class: "text" });
  const footer = h("div", { class: "msg-foot" });
  const el = h(
    "article",
    { class: `msg ${role}` },
    h("h2", { class: "who" }, label ?? (role === "user" ? "You" : role === "assistant" ? "Engram" : "System")),
    text,
    footer,
  );
  return { el, text, footer };
}

export function chatView(): View {
  const list = h("ul", { class: "conversations", "data-testid": "conversations" });
  const more = h("button", { type: "button", hidden: true }, "More conversations");
  const fresh = h("button", { type: "button" }, "New conversation");
  const listTitle = h("h2", { id: "conversations-title", tabindex: -1 }, "Conversations");
  const aside = h(
    "aside",
    { class: "conversation-list", "aria-labelledby": "conversations-title" },
    h("div", { class: "aside-head" }, listTitle, fresh),
    list,
    more,
  );
  const heading = h("p", { class: "lede" });
  const log = h("div", { class: "messages", role: "log", "aria-label": "Messages", "data-testid": "messages" });
  const question = h("textarea", {
    rows: 3,
    required: true,
    maxlength: 32000,
    placeholder: "Ask something your documents answer",
    "data-testid": "chat-input",
  });
  question.id = uid("question");
  const remember = h("input", { type: "checkbox" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const stop = h("button", { type: "button", hidden: true }, "Stop");
  const problem = h("p", { class: "problem", role: "alert", hidden: true, "data-testid": "chat-problem" });
  const composer = h(
    "form",
    { class: "composer", "aria-label": "Ask" },
    h("label", { for: question.id }, "Your question ", h("small", null, "(Enter sends, Shift+Enter adds a line)")),
    question,
    problem,
    h(
      "div",
      { class: "row" },
      h(
        "label",
        { class: "checkbox" },
        remember,
        " Remember this message",
        h("small", null, " (also stored as a memory document of the conversation)"),
      ),
      h("span", { class: "spacer" }),
      stop,
      send,
    ),
  );
  const root = h(
    "section",
    { class: "view chat", "aria-labelledby": "chat-title" },
    h("h1", { id: "chat-title" }, "Chat"),
    heading,
    h("div", { class: "chat-layout" }, aside, h("div", { class: "chat-main" }, log, composer)),
  );

  let conversationId: string | null = null;
  let nextCursor: string | null = null;
  let stale = true;
  let visible = false;
  let streaming: AbortController | undefined;

  const describe = () => {
    replace(
      heading,
      "Answers come from ",
      h(
        "strong",
        null,
        session.userId ? `${session.userId}'s private documents and the shared space` : "the shared space",
      ),
      conversationId ? [" · conversation ", h("code", null, conversationId)] : " · a new conversation",
      ".",
    );
  };

  const markCurrent = () => {
    for (const button of list.querySelectorAll<HTMLButtonElement>("button.conversation")) {
      if (button.dataset.id === conversationId) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  };

  const conversationItem = (c: ConversationSummary) => {
    const open = h(
      "button",
      { type: "button", class: "conversation", "data-id": c.id },
      h("span", { class: "title" }, c.title || c.id),
      h("small", null, `${plural(c.messageCount, "message")} · ${fmtDate(c.updatedAt)}`),
    );
    open.addEventListener("click", () => void openConversation(c.id));
    const remove = h(
      "button",
      { type: "button", class: "small", "aria-label": `Delete conversation ${c.title || c.id}` },
      "Delete…",
    );
    remove.addEventListener("click", async () => {
      const ok = await confirmAction({
        title: "Delete this conversation?",
        message: `“${c.title || c.id}” and its messages will be deleted.`,
        confirm: "Delete",
      });
      if (!ok) return;
      try {
        await engram.conversations.delete(c.id);
        // Its item, and the button that had the focus, go with the list's reload: the focus goes to the list's heading.
        listTitle.focus();
        if (conversationId === c.id) startNew();
        void loadConversations();
      } catch (error) {
        notifyError(error, "Delete conversation");
      }
    });
    return h("li", null, open, remove);
  };

  const loadConversations = async (append = false) => {
    stale = false;
    try {
      const page = await engram.conversations.list({
        limit: 20,
        cursor: append ? (nextCursor ?? undefined) : undefined,
      });
      nextCursor = page.nextCursor;
      const items = page.conversations.map(conversationItem);
      if (append) list.append(...items);
      else replace(list, items.length ? items : h("li", { class: "empty" }, "No conversations yet."));
      more.hidden = !nextCursor;
      markCurrent();
    } catch (error) {
      stale = true;
      notifyError(error, "Conversations");
    }
  };

  const renderStored = (message: StoredMessage) => {
    const b = bubble(message.role);
    const { citations } = message;
    b.text.append(answerText(message.content, new Map(citations.map((c) => [c.index, c]))));
    b.footer.append(
      ...[sourcesList(citations), message.model ? h("small", null, message.model) : null].filter((n) => n !== null),
    );
    return b.el;
  };

  const openConversation = async (id: string) => {
    streaming?.abort();
    try {
      const conversation = await engram.conversations.get(id);
      conversationId = conversation.id;
      replace(log, conversation.messages.map(renderStored));
      describe();
      markCurrent();
      question.focus();
    } catch (error) {
      notifyError(error, "Conversation");
    }
  };

  const startNew = () => {
    streaming?.abort();
    conversationId = null;
    replace(log, h("p", { class: "empty" }, "Ask a question: the answer cites the passages it used."));
    describe();
    markCurrent();
  };

  const ask = async (text: string) => {
    const user = bubble("user");
    user.text.textContent = text;
    const answer = bubble("assistant");
    answer.el.setAttribute("aria-busy", "true");
    answer.text.textContent = "…";
    log.querySelector(".empty")?.remove();
    log.append(user.el, answer.el);
    answer.el.scrollIntoView({ block: "nearest" });

    const controller = new AbortController();
    streaming = controller;
    stop.hidden = false;
    send.disabled = true;
    let content = "";
    let citations = new Map<number, Citation>();
    let done: ChatDone | undefined;
    const render = () => replace(answer.text, answerText(content, citations));
    try {
      for await (const event of engram.chatStream(
        {
          messages: [{ role: "user", content: text }],
          ...(conversationId ? { conversationId } : {}),
          remember: remember.checked,
        },
        { signal: controller.signal },
      )) {
        if (event.event === "citations") citations = new Map(event.data.citations.map((c) => [c.index, c]));
        else if (event.event === "delta") {
          content += event.data.text;
          render();
        } else if (event.event === "done") {
          done = event.data;
          // The final citations' snippets show what the answer cited; the first event's could only show passage starts.
          for (const c of done.citations) citations.set(c.index, c);
        }
      }
      if (!content) answer.text.textContent = "(no answer)";
      render();
      if (done) {
        const used = done.citations.length ? done.citations : [...citations.values()];
        answer.footer.append(
          ...[
            sourcesList(used),
            h(
              "small",
              null,
              `${done.model} · ${done.usage.promptTokens + done.usage.completionTokens} model tokens, ${done.usage.embeddingTokens} embedding tokens`,
            ),
          ].filter((n) => n !== null),
        );
        const started = conversationId === null;
        conversationId = done.conversationId;
        describe();
        if (started || remember.checked) void loadConversations();
        else markCurrent();
        if (remember.checked) emit("documents");
        // "Remember this message" is said of one message: the next is not stored unless ticked again.
        remember.checked = false;
      }
    } catch (error) {
      if ((error as Error).name === "AbortError") {
        answer.footer.append(h("small", null, "Stopped."));
        if (!content) answer.text.textContent = "(stopped)";
      } else {
        const api = notifyError(error, "Chat");
        // A failure after the answer started (the stream's error event, thrown) keeps what was written.
        if (content) render();
        else answer.text.textContent = "No answer.";
        const said = content && api ? `The answer stopped: ${api.message}` : api?.message;
        const next = api && nextStep(api);
        if (api) answer.footer.append(h("p", { class: "problem" }, said, next ? ` ${next}` : null), errorDetails(api));
      }
    } finally {
      answer.el.removeAttribute("aria-busy");
      if (streaming === controller) {
        streaming = undefined;
        stop.hidden = true;
        send.disabled = false;
      }
    }
  };

  composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (streaming) return;
    if (!text) {
      problem.textContent = "Enter a question: spaces alone ask nothing.";
      problem.hidden = false;
      question.focus();
      return;
    }
    question.value = "";
    void ask(text);
  });
  question.addEventListener("input", () => {
    problem.hidden = true;
  });
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      composer.requestSubmit();
    }
  });
  stop.addEventListener("click", () => streaming?.abort());
  fresh.addEventListener("click", () => {
    startNew();
    question.focus();
  });
  more.addEventListener("click", () => void busy(more, "Loading…", () => loadConversations(true)));
  on("conversations", () => {
    if (visible) void loadConversations();
    else stale = true;
  });

  startNew();
  return {
    id: "chat",
    title: "Chat",
    root,
    show() {
      visible = true;
      describe();
      if (stale) void loadConversations();
    },
    hide() {
      visible = false;
    },
    reset() {
      startNew();
      stale = true;
      if (visible) void loadConversations();
    },
  };
}
