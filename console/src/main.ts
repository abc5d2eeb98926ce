/**
 * The Engram console: one page over the HTTP API. Sections are chosen by the URL's hash, so
 * they are plain links (keyboard, history, bookmarks); the key and the end user sit in the header.
 */
import { ApiError, checkKey, credentials, describeError, localConfig } from "./api";
import { h, replace } from "./dom";
import { maskKey, session, USER_ID } from "./session";
import { createStatus } from "./status";
import { busy, emit, notify, notifyError, on, toastRegion } from "./ui";
import { chatView } from "./views/chat";
import { documentsView } from "./views/documents";
import { ingestView } from "./views/ingest";
import { searchView } from "./views/search";
import type { View } from "./views/view";

function identity(space: HTMLElement): HTMLElement {
  const keyLabel = h("span", { class: "key", "data-testid": "key-label" });
  const change = h("button", { type: "button", class: "small" }, "Use another key");
  const local = h("button", { type: "button", class: "small", hidden: true }, "Use the local key");
  const keyInput = h("input", {
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "egm_…",
    "aria-label": "API key",
    "data-testid": "key-input",
  });
  const useKey = h("button", { type: "submit", class: "small primary" }, "Use key");
  const keyProblem = h("small", { class: "problem", role: "alert", hidden: true, "data-testid": "key-problem" });
  const keyForm = h(
    "form",
    { class: "key-form", hidden: true, "aria-label": "Use another API key" },
    keyInput,
    useKey,
    h("small", null, "Kept in this tab only (session storage)."),
    keyProblem,
  );
  const userInput = h("input", {
    type: "text",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "none: shared space",
    maxlength: 128,
    "aria-describedby": "space-label",
    "data-testid": "user-input",
  });
  userInput.id = "user-input";
  const userForm = h(
    "form",
    { class: "user-form", "aria-label": "End user" },
    h("label", { for: "user-input" }, "End user ", h("small", null, "(X-User-Id)")),
    userInput,
    h("button", { type: "submit", class: "small" }, "Switch"),
  );

  const render = () => {
    const custom = session.customKey;
    keyLabel.textContent = credentials.key
      ? `${custom ? "your key" : "local key"} ${maskKey(credentials.key)}`
      : "no key: enter one";
    local.hidden = !custom || !session.localKey;
    userInput.value = session.userId ?? "";
    space.textContent = session.userId ? `${session.userId} (private) + shared` : "shared (no end user)";
  };

  change.addEventListener("click", () => {
    keyForm.hidden = !keyForm.hidden;
    keyProblem.hidden = true;
    if (!keyForm.hidden) keyInput.focus();
  });
  const refuse = (message: string) => {
    keyProblem.textContent = message;
    keyProblem.hidden = false;
    keyInput.focus();
    return false;
  };
  keyForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = keyInput.value.trim();
    if (!key) return refuse("Enter a key: an Engram key starts with egm_ (npx engram keys create makes one).");
    if (!key.startsWith("egm_")) return refuse("That is not an Engram key: a key starts with egm_.");
    keyProblem.hidden = true;
    // Said to be in use only once the server takes it, not at the next search.
    const taken = await busy(useKey, "Checking…", () =>
      checkKey(key).then(
        () => true,
        (error) => refuse(`Not used: ${describeError(error).message}`),
      ),
    );
    if (!taken) return;
    session.useKey(key);
    keyInput.value = "";
    keyForm.hidden = true;
    render();
    notify("Using your key for this tab.");
    emit("space");
  });
  local.addEventListener("click", () => {
    session.useKey(null);
    render();
    notify("Using the local key.");
    emit("space");
  });
  userForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = userInput.value.trim();
    if (value && !USER_ID.test(value)) {
      // The box goes back to the user in effect, as the status strip shows; the message keeps the refused text.
      const still = session.userId ? `Still acting as ${session.userId}.` : "Still in the shared space.";
      notifyError(
        new ApiError(
          0,
          "user.invalid_id",
          `“${value}” is not an end user id: one is 1-128 characters of letters, digits and . _ : @ -. ${still}`,
        ),
      );
      render();
      userInput.focus();
      return;
    }
    if ((value || null) === session.userId) return;
    session.useUser(value || null);
    render();
    notify(value ? `Now acting as end user ${value}.` : "Now using the shared space (no end user).");
    emit("space");
  });
  render();
  if (!credentials.key) keyForm.hidden = false;
  return h("div", { class: "identity" }, h("div", { class: "key-row" }, keyLabel, change, local), keyForm, userForm);
}

async function main() {
  const app = document.getElementById("app");
  if (!app) return;
  const { key } = await localConfig();
  session.init(key);

  const views: View[] = [ingestView(), documentsView(), searchView(), chatView()];
  const links = views.map((view) => h("a", { href: `#${view.id}`, "data-view": view.id }, view.title));
  const space = h("span", { id: "space-label", "data-testid": "space-label" });
  const status = createStatus(space);
  const main = h(
    "main",
    { id: "main", tabindex: -1 },
    views.map((view) => view.root),
  );
  replace(
    app,
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h(
      "header",
      { class: "top" },
      h(
        "div",
        { class: "brand" },
        h("span", { class: "logo", "aria-hidden": "true" }, "◆"),
        " Engram ",
        h("span", null, "console"),
      ),
      h("nav", { "aria-label": "Sections" }, links),
      identity(space),
    ),
    status.banner,
    status.strip,
    main,
    toastRegion(),
  );

  let current: View | undefined;
  const route = () => {
    const id = location.hash.slice(1);
    // "#main" is the skip link's target, not a section.
    if (id === "main") return;
    const view = views.find((v) => v.id === id) ?? views[0]!;
    if (view !== current) current?.hide?.();
    for (const v of views) v.root.hidden = v !== view;
    for (const link of links) {
      if (link.dataset.view === view.id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    document.title = `${view.title} · Engram console`;
    const changed = view !== current;
    current = view;
    view.show();
    if (changed && id) view.root.querySelector<HTMLElement>("h1")?.focus();
  };
  for (const view of views) view.root.querySelector("h1")?.setAttribute("tabindex", "-1");
  on("space", () => {
    for (const view of views) view.reset();
  });
  window.addEventListener("hashchange", route);
  // A file dropped outside the drop zone must not replace the page.
  for (const type of ["dragover", "drop"]) window.addEventListener(type, (event) => event.preventDefault());
  route();
  status.start();
  if (!credentials.key)
    notifyError(new ApiError(401, "auth.missing_key", "No API key: enter one at the top of the page."));
}

void main().catch((error) => notifyError(error, "Starting the console"));
