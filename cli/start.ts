import { type Config, config } from "../core/config";
import { embedder as configured } from "../core/embedding";
import { OFFLINE_MODEL } from "../core/embedding/offline";
import * as Reembed from "../core/embedding/reembed";
import { EngramError } from "../core/error";
import * as Tenant from "../core/tenant";
import { adminRoutes } from "./admin";
import { consoleSite } from "./console";
import {
  ensureLocalKey,
  exitCleanlyOnSignals,
  keepUp,
  keyPath,
  LOCAL_TENANT,
  openLocalDb,
  removeServerLock,
  runningServer,
  writeServerLock,
} from "./local";
import { type Extra, ensurePortFree, startServer } from "./server";

/**
 * Why the embedder is offline, for the start banner. Offline is the default only when nothing is reachable
 * (core/config.ts), so EMBEDDING_PROVIDER=offline, when set, is the reason, key or not.
 */
export function offlineReason(cfg: Config): string {
  return cfg.embedding.chosen ? "EMBEDDING_PROVIDER=offline" : "no OPENAI_API_KEY";
}

/** Why answers are extractive, for the start banner: as `offlineReason`, CHAT_PROVIDER=extractive set is the reason. */
export function extractiveReason(cfg: Config): string {
  return cfg.chat.chosen ? "CHAT_PROVIDER=extractive" : "no chat model configured";
}

/** `engram start`: migrate, make sure the local key exists, serve, shut down cleanly. */
export async function start(options: { host: string; reembed?: boolean }): Promise<void> {
  const cfg = config();
  const running = runningServer(cfg);
  if (running) {
    throw new EngramError(
      "conflict",
      "data.in_use",
      `a local server already serves ${cfg.database.dataDir} (pid ${running.pid}, ${running.url}): use that one (ingest, search, chat, stats and reembed go through it), or stop it before starting another`,
    );
  }
  // Before the database is opened: a start that cannot listen leaves no new data folder behind.
  await ensurePortFree(cfg.port, options.host);
  const db = await openLocalDb(cfg);
  const { key, created } = await ensureLocalKey(db, cfg);
  const site = await consoleSite({ key });
  // Chunks of another model than the configured one are not vector-searched until re-embedded (#17).
  const embedder = configured();
  // `engram reembed` in another terminal asks through the admin route; the background loop below does the work.
  const admin = adminRoutes(db, key, { model: embedder.model, dimensions: embedder.dimensions });
  const extra: Extra = async (req, res) => (await admin(req, res)) || site.extra(req, res);
  const server = await startServer({ port: cfg.port, host: options.host, extra });
  writeServerLock(server.url, cfg);
  const local = await Tenant.ensure(db, LOCAL_TENANT);
  const busy = options.reembed
    ? (await Reembed.begin(db, local.id, embedder.model, embedder.dimensions)).busy
    : undefined;
  const stale = await Reembed.pending(db, local.id, embedder.model);
  const background = keepUp(db, embedder);

  const where =
    cfg.database.driver === "pglite"
      ? `embedded PGlite in ${cfg.database.dataDir}/`
      : `${cfg.database.driver} (DATABASE_URL)`;
  const offline = cfg.embedding.provider === "offline" ? ` (offline: ${offlineReason(cfg)})` : "";
  const answers =
    cfg.chat.provider === "extractive"
      ? `extractive answers (${extractiveReason(cfg)})`
      : `chat model ${cfg.chat.model}`;
  console.log(
    [
      `Engram ${cfg.version} listening on ${server.url}`,
      `  database:  ${where}`,
      `  embedder:  ${cfg.embedding.provider} ${cfg.embedding.provider === "offline" ? OFFLINE_MODEL : cfg.embedding.model}, ${cfg.embedding.dimensions} dims${offline}`,
      ...(stale
        ? [
            `  re-embed:  ${stale.toLocaleString("en-US")} chunks of another model than ${embedder.model}: keyword search finds them, vector search not yet; ${
              busy
                ? `another run (to ${busy.model}) holds this tenant until ${busy.until}: start with --reembed again after it`
                : options.reembed
                  ? "re-embedding them in the background"
                  : "run `engram reembed` (in another terminal) to re-embed them in the background"
            }`,
          ]
        : []),
      `  answers:   ${answers}`,
      `  local key: ${key}${created ? ` (new; kept in ${keyPath(cfg)})` : ""}`,
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

  exitCleanlyOnSignals(async (signal) => {
    console.log(`\n${signal}: shutting down`);
    await server.close();
    await background.stop();
    removeServerLock(cfg);
  });
}
