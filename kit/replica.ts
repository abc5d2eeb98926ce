/**
 * The test rig's streaming replica of the test server (scripts/test-postgres.sh --replica): a hot standby
 * made with pg_basebackup on the next free port, started on demand. It replays every other suite's writes
 * while it runs, so a suite that started it stops it again (`release`).
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { RIG_URL_FILE, serverUrl } from "./postgres";

const SCRIPT = fileURLToPath(new URL("../scripts/test-postgres.sh", import.meta.url));
/** Where the script keeps the replica's URL. */
const STATE_FILE = join(dirname(RIG_URL_FILE), "replica-url");

/**
 * Runs the script without blocking the event loop: the suites' in-process Neon-protocol servers must keep serving
 * (a loop blocked for seconds lets their keep-alive timers close sockets the driver is just reusing).
 */
const rig = (option: string): Promise<string> =>
  new Promise((resolve, reject) => {
    execFile(
      "bash",
      [SCRIPT, option],
      { encoding: "utf8", env: { ...process.env, TEST_DATABASE_URL: serverUrl() } },
      // The script's log lines are in the error when it fails.
      (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout.trim())),
    );
  });

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
    await client.query("select 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export interface Replica {
  /** The replica server's admin URL (its `postgres` database). */
  url: string;
  /** The URL of `database` on the replica. */
  databaseUrl(database: string): string;
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the replica if this suite started it. */
  release(): Promise<void>;
}

/** Makes (the first time: a minute or so) and starts the replica; fails loudly when it cannot. */
export async function startReplica(): Promise<Replica> {
  const earlier = existsSync(STATE_FILE) ? readFileSync(STATE_FILE, "utf8").trim() : undefined;
  const runningBefore = earlier ? await answers(earlier) : false;
  const url = await rig("--replica");
  const replica: Replica = {
    url,
    databaseUrl(database) {
      const at = new URL(url);
      at.pathname = `/${database}`;
      return at.href;
    },
    stop: async () => void (await rig("--replica-stop")),
    start: async () => void (await rig("--replica")),
    release: async () => (runningBefore ? undefined : replica.stop()),
  };
  return replica;
}

/** Resolves once the replica has replayed everything the primary had written when called. */
export async function caughtUp(primaryUrl: string, replicaUrl: string, timeoutMs = 30_000): Promise<void> {
  const primary = new pg.Client({ connectionString: primaryUrl });
  await primary.connect();
  const { rows } = await primary.query<{ lsn: string }>("select pg_current_wal_lsn()::text as lsn");
  await primary.end();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const client = new pg.Client({ connectionString: replicaUrl });
    try {
      await client.connect();
      const replayed = await client.query<{ done: boolean }>("select pg_last_wal_replay_lsn() >= $1::pg_lsn as done", [
        rows[0]?.lsn,
      ]);
      if (replayed.rows[0]?.done) return;
    } catch {
      // the database may not exist there yet
    } finally {
      await client.end().catch(() => {});
    }
    if (Date.now() > deadline) throw new Error(`the replica at ${replicaUrl} did not catch up in ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
