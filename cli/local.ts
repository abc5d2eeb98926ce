/**
 * What the CLI and the local server share: opening the configured database (migrated), the
 * PGlite single-process guard, and the `local` tenant's key kept in the data folder.
 */
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as Auth from "../core/auth";
import * as Background from "../core/background";
import { type Config, config } from "../core/config";
import { closeDb, type Db, openDb, useDb } from "../core/db";
import { migrate } from "../core/db/migrate";
import * as Statistics from "../core/db/statistics";
import * as Reembed from "../core/embedding/reembed";
import type { Embedder } from "../core/embedding/types";
import { EngramError } from "../core/error";
import * as Hnsw from "../core/search/hnsw";
import * as Indexer from "../core/search/indexer";

export const LOCAL_TENANT = "local";

export interface ServerLock {
  pid: number;
  url: string;
}

const lockPath = (cfg: Config) => join(cfg.database.dataDir, "server.json");
/**
 * Where the `local` tenant's key is kept: `local-key` for the embedded database, a file of its own for each server
 * database (named by a hash of its URL without the password), since a key is valid in one database only. One file for
 * all let `DATABASE_URL=... npm start` replace the embedded server's key under it while that server ran.
 */
export function keyPath(cfg: Config = config()): string {
  if (cfg.database.driver === "pglite" || !cfg.database.url) return join(cfg.database.dataDir, "local-key");
  let identity = cfg.database.url;
  try {
    const url = new URL(cfg.database.url);
    url.password = "";
    identity = url.toString();
  } catch {
    // not a URL the parser reads: hashed as it is
  }
  return join(cfg.database.dataDir, `local-key-${createHash("sha256").update(identity).digest("hex").slice(0, 12)}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** The running local server that owns the embedded data folder, if any. */
export function runningServer(cfg: Config = config()): ServerLock | undefined {
  if (cfg.database.driver !== "pglite" || !existsSync(lockPath(cfg))) return undefined;
  try {
    const lock = JSON.parse(readFileSync(lockPath(cfg), "utf8")) as ServerLock;
    return lock.pid !== process.pid && alive(lock.pid) ? lock : undefined;
  } catch {
    return undefined;
  }
}

export function writeServerLock(url: string, cfg: Config = config()) {
  if (cfg.database.driver !== "pglite") return;
  writeFileSync(lockPath(cfg), JSON.stringify({ pid: process.pid, url } satisfies ServerLock));
}

export function removeServerLock(cfg: Config = config()) {
  if (cfg.database.driver === "pglite") rmSync(lockPath(cfg), { force: true });
}

interface Holder {
  pid: number;
  command: string;
}

const holderPath = (cfg: Config) => join(cfg.database.dataDir, "open.json");

/**
 * Takes the embedded folder for this process, or refuses it to a second one. PGlite is one process's database: a
 * second process opening the same folder (`npm start` while `engram mcp` had it open) wrote beside the first, and
 * each lost what the other stored. The server's own lock (server.json) says where to send requests instead; this
 * one is held by whatever process has the folder open, the server included, until it exits.
 */
function holdFolder(cfg: Config): void {
  const path = holderPath(cfg);
  const mine = JSON.stringify({ pid: process.pid, command: `engram ${process.argv.slice(2).join(" ")}`.trim() });
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(path, mine, { flag: "wx" });
      process.once("exit", () => {
        if (readHolder(path)?.pid === process.pid) rmSync(path, { force: true });
      });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const holder = readHolder(path);
    if (holder?.pid === process.pid) return;
    if (holder && alive(holder.pid)) {
      throw new EngramError(
        "conflict",
        "data.in_use",
        `${cfg.database.dataDir} is open in another process (pid ${holder.pid}: ${holder.command}), and the embedded database serves one process at a time: stop that one first, or start the local server (npm start) before it, which every command and engram mcp then go through (if pid ${holder.pid} is no Engram process, remove ${path})`,
      );
    }
    // Left by a process that is gone.
    rmSync(path, { force: true });
  }
}

function readHolder(path: string): Holder | undefined {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as Holder;
  } catch {
    return undefined;
  }
}

/**
 * `mkdir -p` with the owner's mode, one folder at a time: Node's recursive mkdir looped forever, at full CPU, on a path
 * under /proc (whose mkdir says ENOENT with the parent there), where this says ENOENT once, in as many steps as the
 * path has folders.
 */
function makeFolder(path: string, parentMade = false): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // There already, or made meanwhile by another process.
    if (code === "EEXIST" && statSync(path, { throwIfNoEntry: false })?.isDirectory()) return;
    if (code !== "ENOENT" || parentMade || dirname(path) === path) throw error;
    makeFolder(dirname(path));
    makeFolder(path, true);
  }
}

/** Opens and migrates the configured database (with its model's HNSW index), refusing an embedded folder a server holds. */
export async function openLocalDb(
  cfg: Config = config(),
  options: { migrated?: (applied: string[]) => void } = {},
): Promise<Db> {
  const server = runningServer(cfg);
  if (server) {
    throw new EngramError(
      "conflict",
      "data.in_use",
      // Only data commands go through the server; this one opens the database itself.
      `${cfg.database.dataDir} is in use by the local server (pid ${server.pid}, ${server.url}); this command needs the server stopped: stop it, run this again, then start it`,
    );
  }
  const embedded = cfg.database.driver === "pglite" && !cfg.database.dataDir.startsWith("memory://");
  // A command run from another folder finds no data there: said, not silently an empty store.
  const fresh = embedded && !existsSync(join(cfg.database.dataDir, "pgdata"));
  if (embedded) {
    try {
      // The owner's alone, as its key file is: PGlite writes its files readable and writable by anyone, and another
      // user of the machine read stored memories from the write-ahead log. Only a folder made here: one the user
      // chose (ENGRAM_DATA_DIR) keeps its mode.
      makeFolder(cfg.database.dataDir);
    } catch (error) {
      // Node's own message ("EEXIST: file already exists, mkdir ...") does not say which setting named the path.
      throw new EngramError(
        "unavailable",
        "config.invalid",
        `ENGRAM_DATA_DIR: ${resolve(cfg.database.dataDir)} cannot be the embedded database's folder (${(error as Error).message})`,
      );
    }
    holdFolder(cfg);
  }
  const db = await openDb(cfg.database);
  try {
    const applied = await migrate(db, {
      embeddingDimensions: cfg.embedding.dimensions,
      searchTextConfig: cfg.search.textConfig,
    });
    options.migrated?.(applied);
    // The configured model's HNSW index, before anything searches or indexes its vectors (`engram migrate` at deploy).
    await Hnsw.ensure(db, Reembed.active().model);
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  if (fresh) {
    process.stderr.write(
      `engram: new embedded database in ${resolve(cfg.database.dataDir)} (ENGRAM_DATA_DIR or DATABASE_URL to use another)\n`,
    );
  }
  useDb(db);
  return db;
}

/** The local tenant's key: the one kept in the data folder if it still works, else a new one. */
export async function ensureLocalKey(db: Db, cfg: Config = config()): Promise<{ key: string; created: boolean }> {
  const path = keyPath(cfg);
  if (existsSync(path)) {
    const key = readFileSync(path, "utf8").trim();
    try {
      await Auth.authenticate(db, `Bearer ${key}`);
      return { key, created: false };
    } catch {
      // revoked or from another database: make a new one below
    }
  }
  const { key } = await Auth.createKey(db, LOCAL_TENANT, "local server");
  makeFolder(cfg.database.dataDir);
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
  return { key, created: true };
}

/** The local key if one was kept (the CLI uses it to talk to a running server). */
export function storedLocalKey(cfg: Config = config()): string | undefined {
  const path = keyPath(cfg);
  return existsSync(path) ? readFileSync(path, "utf8").trim() : undefined;
}

/**
 * What a process holding the database keeps doing while it lives, where Lambdas rely on the cleanup's schedule: the
 * HNSW indexer, re-embedding (chunks of another model, turns whose context a deletion dropped) and, as embedded
 * PGlite has no autovacuum, the planner's statistics. The local server runs it, and so does `engram mcp` on the
 * folder itself: without it, the turns after a forgotten one stayed out of vector search until a cleanup.
 */
export function keepUp(db: Db, embedder: Embedder): Background.Background {
  const work = [
    Indexer.inBackground(db, { model: embedder.model }),
    Background.repeat("statistics", 5_000, async () => {
      await Statistics.refresh(db);
    }),
    Reembed.inBackground(db, embedder),
  ];
  return { stop: async () => void (await Promise.all(work.map((w) => w.stop()))) };
}

/**
 * On SIGINT, SIGTERM or SIGHUP, once: `first` (stop serving, stop background work), then the database is closed and the process
 * exits 0. Killed by the signal instead, a process could cut an embedded database's write short and damage its folder.
 */
export function exitCleanlyOnSignals(first: (signal: NodeJS.Signals) => Promise<void>): void {
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    // A second signal while the first waits (for requests being answered to finish) quits at once, but for an embedded
    // database: cut short, its write could damage the folder.
    if (stopping) {
      if (config().database.driver !== "pglite") process.exit(1);
      process.stderr.write("engram: still closing the embedded database; stopping now could damage it\n");
      return;
    }
    stopping = true;
    await first(signal);
    await closeDb();
    process.exit(0);
  };
  // SIGHUP: the terminal it runs in was closed, which had killed it mid-write and left server.json behind.
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void stop(signal));
}
