/**
 * The embedded PGlite folder is one process's: a second process that opens it while another has it open is refused
 * (it wrote beside the first, and each lost what the other stored), and a folder left by a process that is gone is
 * taken over.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, engram, startServer } from "../../kit/cli";
import { createDatabase, dropDatabase, pgUrl } from "../../kit/db";

let env: NodeJS.ProcessEnv;
let dataDir: string;
const children: ChildProcessWithoutNullStreams[] = [];

beforeAll(() => {
  dataDir = join(mkdtempSync(join(tmpdir(), "engram-folder-")), "data");
  env = { ...process.env, ENGRAM_DATA_DIR: dataDir, LOG_LEVEL: "silent", EMBEDDING_PROVIDER: "offline" };
  for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "OPENAI_API_KEY", "ENGRAM_URL", "ENGRAM_API_KEY"]) {
    delete env[name];
  }
});
afterAll(() => {
  for (const child of children) child.kill();
});

/** `engram mcp` on the embedded folder, once it has answered `initialize` (it opens the folder before). */
async function mcp(): Promise<{ child: ChildProcessWithoutNullStreams; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, "mcp"], { env });
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  const initialize = {
    jsonrpc: "2.0",
    id: 1,
    method: "initialize",
    params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } },
  };
  child.stdin.write(`${JSON.stringify(initialize)}\n`);
  for await (const line of createInterface({ input: child.stdout })) {
    if (JSON.parse(line).id === 1) break;
  }
  return { child, exited };
}

describe("the embedded folder", () => {
  it("is refused to engram start while engram mcp has it open, and served once that one exits", async () => {
    const holder = await mcp();
    expect(JSON.parse(readFileSync(join(dataDir, "open.json"), "utf8"))).toMatchObject({
      pid: holder.child.pid,
      command: "engram mcp",
    });

    const refused = await engram(["start"], { ...env, PORT: "0" }, 60_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`is open in another process (pid ${holder.child.pid}: engram mcp)`);
    const keys = await engram(["keys", "list"], env);
    expect([keys.code, keys.stderr]).toEqual([1, expect.stringContaining("is open in another process")]);

    holder.child.stdin.end();
    expect(await holder.exited).toBe(0);
    expect(existsSync(join(dataDir, "open.json"))).toBe(false);
    const server = await startServer({ ...env, PORT: "0" });
    try {
      expect((await fetch(`${server.url}/v1/health`)).status).toBe(200);
    } finally {
      await server.stop();
    }
  }, 120_000);

  it("keeps the embedded server's local key when a server on DATABASE_URL starts from the same folder", async () => {
    const embedded = await startServer({ ...env, PORT: "0" });
    const database = await createDatabase();
    try {
      const kept = readFileSync(join(dataDir, "local-key"), "utf8");
      const other = await startServer({ ...env, PORT: "0", DATABASE_URL: pgUrl(database) });
      const path = /local key: egm_\S+ \(new; kept in (\S+)\)/.exec(other.output())?.[1];
      await other.stop();
      // Each database's key in its own file: before, the second server wrote its key over the first's.
      expect(path).toMatch(/local-key-[0-9a-f]{12}$/);
      expect(readFileSync(join(dataDir, "local-key"), "utf8")).toBe(kept);
      const stats = await engram(["stats"], env);
      expect([stats.code, stats.stderr]).toEqual([0, ""]);
    } finally {
      await embedded.stop();
      await dropDatabase(database);
    }
  }, 120_000);

  it("is closed cleanly when the terminal the server runs in is closed (SIGHUP)", async () => {
    const server = await startServer({ ...env, PORT: "0" });
    expect(existsSync(join(dataDir, "server.json"))).toBe(true);
    const exited = new Promise<number | null>((resolve) => server.child.once("exit", resolve));
    server.child.kill("SIGHUP");
    // Killed by the signal, it had exited with no code, its write possibly cut short and server.json left behind.
    expect(await exited).toBe(0);
    expect(server.output()).toContain("SIGHUP: shutting down");
    expect(existsSync(join(dataDir, "server.json"))).toBe(false);
  }, 120_000);

  it("is its owner's alone: the folder holding the database files, which PGlite makes readable by anyone", async () => {
    const keys = await engram(["keys", "list"], env);
    expect(keys.code).toBe(0);
    // Before, 0755 over files of 0666: another user of the machine read stored memories from the write-ahead log.
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  }, 120_000);

  it("is taken over from a process that is gone", async () => {
    writeFileSync(join(dataDir, "open.json"), JSON.stringify({ pid: 2 ** 22 + 1, command: "engram mcp" }));
    const keys = await engram(["keys", "list"], env);
    expect(keys.code).toBe(0);
    expect(existsSync(join(dataDir, "open.json"))).toBe(false);
  }, 120_000);
});
