/** Shared pieces of the page: messages (errors with request ids), dialogs, and a small event bus. */
import { ApiError, describeError } from "./api";
import { h, replace, uid } from "./dom";
import { session } from "./session";

type Topic = "space" | "documents" | "conversations";
const bus = new EventTarget();
export const emit = (topic: Topic) => bus.dispatchEvent(new Event(topic));
export const on = (topic: Topic, fn: () => void) => bus.addEventListener(topic, fn);

let toasts: HTMLElement | undefined;
export function toastRegion(): HTMLElement {
  toasts ??= h("section", { class: "toasts", "aria-label": "Messages", "aria-live": "polite" });
  return toasts;
}

/**
 * Messages go in the topmost open dialog while there is one: a modal dialog is in the top layer, above anything
 * else on the page, and makes the rest of the page inert (a popover would show above it, but its buttons not work).
 */
function placeToasts() {
  const open = document.querySelectorAll("dialog[open]");
  (open[open.length - 1] ?? document.body).append(toastRegion());
}

const MAX_TOASTS = 4;

function addToast(el: HTMLElement, timeoutMs?: number) {
  const region = toastRegion();
  region.append(el);
  while (region.children.length > MAX_TOASTS) region.firstElementChild?.remove();
  if (timeoutMs) setTimeout(() => el.remove(), timeoutMs);
}

export function notify(message: string): void {
  const close = h("button", { type: "button", class: "close", "aria-label": "Dismiss this message" }, "×");
  const toast = h("div", { class: "toast info", role: "status" }, h("p", null, message), close);
  close.addEventListener("click", () => toast.remove());
  addToast(toast, 4000);
}

function countdown(seconds: number): HTMLElement {
  const until = Date.now() + seconds * 1000;
  const el = h("span", { class: "retry" });
  const tick = () => {
    const left = Math.ceil((until - Date.now()) / 1000);
    if (left <= 0) {
      el.textContent = "You can retry now.";
      return;
    }
    el.textContent = `Retry in ${left} s (at ${new Date(until).toLocaleTimeString()}).`;
    setTimeout(tick, 1000);
  };
  tick();
  return el;
}

/** An error as the person needs it: what happened, when to retry, and the request id to quote. */
export function errorDetails(error: ApiError): HTMLElement {
  return h(
    "p",
    { class: "meta" },
    h("span", null, error.status ? `${error.status} · ${error.code}` : error.code),
    error.requestId ? [" · request id ", h("code", { class: "request-id" }, error.requestId)] : null,
    error.retryAfter !== null ? [" · ", countdown(error.retryAfter)] : null,
  );
}

/** What to do when the key is refused (a typo, a revoked key): the choices at the top of the page. */
export function nextStep(error: ApiError): string | undefined {
  if (error.status !== 401 || error.code === "auth.missing_key") return undefined;
  return session.customKey && session.localKey
    ? "Enter another key (Use another key, at the top of the page) or go back to the local key (Use the local key)."
    : "Enter another key (Use another key, at the top of the page; npx engram keys create makes one).";
}

/** Shows an error that the page survives; an abort (the person stopped it) is not one. */
export function notifyError(error: unknown, context?: string): ApiError | undefined {
  if ((error as Error)?.name === "AbortError") return undefined;
  const api = describeError(error);
  // A lost server has its own banner.
  if (api.code === "network.unreachable") return api;
  const title = api.status === 429 ? `Rate limited: ${api.message}` : api.message;
  const next = nextStep(api);
  const dismiss = h("button", { type: "button", class: "link", "aria-label": "Dismiss this message" }, "Dismiss");
  const toast = h(
    "div",
    { class: "toast error", role: "alert" },
    h("p", { class: "title" }, context ? `${context}: ${title}` : title),
    next ? h("p", null, next) : null,
    errorDetails(api),
    dismiss,
  );
  dismiss.addEventListener("click", () => toast.remove());
  // The same failure again (say, every section without a key) replaces its message instead of stacking.
  const signature = `${api.code}|${title}`;
  toast.dataset.signature = signature;
  for (const old of Array.from(toastRegion().querySelectorAll<HTMLElement>(".toast.error"))) {
    if (old.dataset.signature === signature) old.remove();
  }
  addToast(toast);
  return api;
}

/** A modal dialog that gives focus back where it came from when it closes. */
export function modal(label: string, className = ""): { dialog: HTMLDialogElement; body: HTMLElement; open(): void } {
  const body = h("div", { class: "dialog-body" });
  const close = h("button", { type: "button", class: "close", "aria-label": "Close" }, "×");
  const heading = h("h2", { class: "dialog-title", id: uid("dialog-title") }, label);
  const dialog = h(
    "dialog",
    { class: `dialog ${className}`.trim(), "aria-labelledby": heading.id },
    h("header", { class: "dialog-head" }, heading, close),
    body,
  );
  let opener: Element | null = null;
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => {
    if (event.target === dialog) dialog.close();
  });
  dialog.addEventListener("close", () => {
    dialog.remove();
    placeToasts();
    if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
  });
  return {
    dialog,
    body,
    open() {
      opener = document.activeElement;
      document.body.append(dialog);
      dialog.showModal();
      placeToasts();
    },
  };
}

/** Asks before something that cannot be undone. */
export function confirmAction(options: { title: string; message: string; confirm: string }): Promise<boolean> {
  return new Promise((resolve) => {
    const { dialog, body, open } = modal(options.title, "confirm");
    const yes = h("button", { type: "button", class: "danger" }, options.confirm);
    const no = h("button", { type: "button" }, "Cancel");
    let answer = false;
    yes.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => resolve(answer));
    replace(body, h("p", null, options.message), h("div", { class: "actions" }, no, yes));
    open();
    no.focus();
  });
}

/** Runs `work` with the button busy (disabled, labelled) and reports its error. */
export async function busy<T>(
  button: HTMLButtonElement,
  label: string,
  work: () => Promise<T>,
): Promise<T | undefined> {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  try {
    return await work();
  } catch (error) {
    notifyError(error);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}

export { ApiError };
