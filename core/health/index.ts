export * as Health from "./index";

import { config } from "../config";
import { db } from "../db";
import { OFFLINE_MODEL } from "../embedding/offline";

export interface HealthReport {
  status: "ok" | "degraded";
  database: "ok" | "unreachable";
  driver: string;
  version: string;
  embedder: { provider: string; model: string; dimensions: number };
  chat: { provider: string; model: string };
}

/** Service health; `database` is probed with one query. */
export async function check(): Promise<HealthReport> {
  const cfg = config();
  const reachable = await db()
    .then((d) => d.ping())
    .catch(() => false);
  // Described from configuration: building the embedder would pull the OpenAI SDK into functions that never embed.
  const e = cfg.embedding.provider === "openai" ? cfg.embedding : { ...cfg.embedding, model: OFFLINE_MODEL };
  return {
    status: reachable ? "ok" : "degraded",
    database: reachable ? "ok" : "unreachable",
    driver: cfg.database.driver,
    version: cfg.version,
    embedder: { provider: e.provider, model: e.model, dimensions: e.dimensions },
    chat:
      cfg.chat.provider === "openai"
        ? { provider: "openai", model: cfg.chat.model }
        : { provider: "extractive", model: "extractive" },
  };
}
