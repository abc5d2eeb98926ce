import { sql } from "drizzle-orm";
import { config } from "../config";
import { db } from "../db";
import * as Reembed from "../embedding/reembed";

export interface HealthReport {
  status: "ok" | "degraded";
  database: "ok" | "unreachable";
  driver: string;
  version: string;
  /** `reembedding`: tenants whose move to this model (`engram reembed`) is unfinished; absent when unreachable. */
  embedder: { provider: string; model: string; dimensions: number; reembedding?: number };
  chat: { provider: string; model: string };
}

/** Service health; `database` is probed with one query. */
export async function check(): Promise<HealthReport> {
  const cfg = config();
  // Described from configuration: building the embedder would pull the OpenAI SDK into functions that never embed.
  const e = Reembed.active();
  const reembedding = await db()
    .then((d) =>
      d.query<{ n: number }>(
        sql`select count(*)::int as n from embedding_state where finished_at is null and model = ${e.model}`,
      ),
    )
    .then(([row]) => Number(row?.n ?? 0))
    .catch(() => undefined);
  const reachable =
    reembedding !== undefined ||
    (await db()
      .then((d) => d.ping())
      .catch(() => false));
  return {
    status: reachable ? "ok" : "degraded",
    database: reachable ? "ok" : "unreachable",
    driver: cfg.database.driver,
    version: cfg.version,
    embedder: {
      provider: e.provider,
      model: e.model,
      dimensions: e.dimensions,
      ...(reembedding === undefined ? {} : { reembedding }),
    },
    chat:
      cfg.chat.provider === "openai"
        ? { provider: "openai", model: cfg.chat.model }
        : { provider: "extractive", model: "extractive" },
  };
}
