import { config } from "../core/config";
import { closeDb } from "../core/db";
import * as Indexer from "../core/search/indexer";
import { consoleSite } from "./console";
import { ensureLocalKey, openLocalDb, removeServerLock, writeServerLock } from "./local";
import { startServer } from "./server";

/** `engram start`: migrate, make sure the local key exists, serve, shut down cleanly. */
export async function start(options: { host: string }): Promise<void> {
  const cfg = config();
  const db = await openLocalDb(cfg);
  const { key, created } = await ensureLocalKey(db, cfg);
  const site = await consoleSite({ key });
  const server = await startServer({ port: cfg.port, host: options.host, extra: site.extra });
  writeServerLock(server.url, cfg);
  const indexer = Indexer.inBackground(db);

  const where =
    cfg.database.driver === "pglite"
      ? `embedded PGlite in ${cfg.database.dataDir}/`
      : `${cfg.database.driver} (DATABASE_URL)`;
  const offline = cfg.embedding.provider === "offline" ? " (offline: no OPENAI_API_KEY)" : "";
  const answers =
    cfg.chat.provider === "extractive"
      ? "extractive answers (no chat model configured)"
      : `chat model ${cfg.chat.model}`;
  console.log(
    [
      `Engram ${cfg.version} listening on ${server.url}`,
      `  database:  ${where}`,
      `  embedder:  ${cfg.embedding.provider} ${cfg.embedding.provider === "offline" ? "engram-offline-v1" : cfg.embedding.model}, ${cfg.embedding.dimensions} dims${offline}`,
      `  answers:   ${answers}`,
      `  local key: ${key}${created ? ` (new; kept in ${cfg.database.dataDir}/local-key)` : ""}`,
      `  console:   ${site.error ? `unavailable: ${site.error}` : `${server.url}/`}`,
      ...(cfg.keylessTenant
        ? [
            `  WARNING:   KEYLESS_TENANT=${cfg.keylessTenant}: /api/ingest and /api/chat accept requests without a key`,
            "             (end user from x-user-id, limited per client address); anyone who reaches this server can use them",
          ]
        : []),
      "",
      `  curl ${server.url}/v1/health`,
      `  curl -H "Authorization: Bearer ${key}" ${server.url}/v1/documents`,
    ].join("\n"),
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: shutting down`);
    await server.close();
    await indexer.stop();
    removeServerLock(cfg);
    await closeDb();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}
