/**
 * The status strip (database, embedder, chat model, the last response's rate limit and request
 * id) and the banner for a lost server, which polls /v1/health until the server is back.
 */

import type { Health } from "../../client/types";
import { health, isReachable, onReachability, onResponse, type ResponseInfo } from "./api";
import { h, replace } from "./dom";
import { emit, notify } from "./ui";

const NORMAL_POLL_MS = 15_000;
const LOST_POLL_MS = 2_000;

interface Parsed {
  name: string;
  params: Record<string, number>;
}

/** `"search";r=119;t=1` (IETF RateLimit draft, structured fields): the first item's name and parameters. */
export function parseRateField(value: string | null): Parsed | undefined {
  const first = value?.split(",")[0]?.trim();
  if (!first) return undefined;
  const [rawName, ...rest] = first.split(";");
  const params: Record<string, number> = {};
  for (const part of rest) {
    const [k, v] = part.split("=");
    if (k && v !== undefined && Number.isFinite(Number(v))) params[k.trim()] = Number(v);
  }
  return { name: (rawName ?? "").trim().replace(/^"|"$/g, ""), params };
}

export function describeRateLimit(info: Pick<ResponseInfo, "rateLimit" | "rateLimitPolicy">): string | undefined {
  const state = parseRateField(info.rateLimit);
  if (!state) return undefined;
  const policy = parseRateField(info.rateLimitPolicy);
  const quota = policy?.params.q !== undefined ? ` of ${policy.params.q}` : "";
  const window = policy?.params.w !== undefined ? ` per ${policy.params.w} s` : "";
  const reset = state.params.t !== undefined ? `, resets in ${state.params.t} s` : "";
  return `${state.name}: ${state.params.r ?? "?"}${quota} left${window}${reset}`;
}

function item(label: string, value: HTMLElement) {
  return h("div", { class: "status-item" }, h("dt", null, label), h("dd", null, value));
}

export function createStatus(space: HTMLElement): { strip: HTMLElement; banner: HTMLElement; start(): void } {
  const database = h("span", null, "…");
  const embedder = h("span", null, "…");
  const answers = h("span", null, "…");
  const rate = h("span", null, "no limited request yet");
  const last = h("span", null, "—");
  const strip = h(
    "dl",
    { class: "status", "aria-label": "Server status" },
    item("Space", space),
    item("Database", database),
    item("Embedder", embedder),
    item("Answers", answers),
    item("Rate limit", rate),
    item("Last request", last),
  );
  const bannerText = h("p", null);
  const banner = h("div", { class: "banner", role: "alert", hidden: true }, bannerText);

  const showHealth = (report: Health) => {
    const ok = report.database === "ok";
    replace(
      database,
      h("span", { class: `dot ${ok ? "ok" : "bad"}`, "aria-hidden": "true" }),
      `${report.driver ?? "database"} · ${ok ? "healthy" : "unreachable"}`,
    );
    const offline = report.embedder.provider === "offline";
    replace(
      embedder,
      `${report.embedder.provider} ${report.embedder.model} · ${report.embedder.dimensions} dims`,
      offline ? h("span", { class: "badge" }, "offline") : null,
      // Most stored chunks are of another model: vector search misses them until `engram reembed` moves them.
      report.embedder.warning
        ? h(
            "span",
            { class: "badge stale", title: report.embedder.warning },
            `${Math.round((report.embedder.staleShare ?? 1) * 100)}% stale: engram reembed`,
          )
        : null,
    );
    const extractive = report.chat.provider === "extractive";
    replace(
      answers,
      extractive ? "extractive (no chat model)" : `${report.chat.provider} ${report.chat.model}`,
      extractive ? h("span", { class: "badge" }, "offline") : null,
    );
    strip.dataset.version = report.version;
    if (!ok) {
      bannerText.textContent =
        "The server is running but its database is unreachable. Requests will fail until it is back; checking every few seconds.";
      banner.hidden = false;
    } else if (isReachable()) {
      banner.hidden = true;
    }
  };

  onResponse((info) => {
    const text = describeRateLimit(info);
    if (text) rate.textContent = text;
    replace(
      last,
      `${info.method} ${info.path} → ${info.status}`,
      info.requestId ? [" · ", h("code", { class: "request-id" }, info.requestId)] : null,
    );
    last.classList.toggle("failed", info.status >= 400);
  });

  let timer: ReturnType<typeof setTimeout> | undefined;
  let lost = false;
  let inFlight = false;
  const poll = async () => {
    if (inFlight) return;
    inFlight = true;
    clearTimeout(timer);
    try {
      showHealth(await health());
    } catch {
      // reported through onReachability
    } finally {
      inFlight = false;
    }
    timer = setTimeout(poll, lost || !banner.hidden ? LOST_POLL_MS : NORMAL_POLL_MS);
  };

  onReachability((reachable) => {
    if (!reachable) {
      lost = true;
      replace(database, h("span", { class: "dot bad", "aria-hidden": "true" }), "unknown (server unreachable)");
      bannerText.textContent = `Lost the Engram server at ${location.host}. Your work on this page is kept; reconnecting every few seconds…`;
      banner.hidden = false;
      void poll();
    } else if (lost) {
      lost = false;
      banner.hidden = true;
      notify("Reconnected to the Engram server.");
      emit("space");
    }
  });

  return { strip, banner, start: () => void poll() };
}
