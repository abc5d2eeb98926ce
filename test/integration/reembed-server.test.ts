/**
 * The newcomer's switch (#17): `npm start` on embedded PGlite with the offline embedder, documents ingested, a real
 * model configured, then `engram reembed` in another terminal while the server holds the database. Real processes:
 * the server and the CLI as a person runs them, the model behind the OpenAI-compatible fake.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OFFLINE_MODEL } from "../../core/embedding/offline";
import { engram as run, type ServerProcess, startServer } from "../../kit/cli";
import { createDatabase, dropDatabase, pgUrl } from "../../kit/db";
import { type FakeOpenAI, startOpenAIServer } from "../../kit/openai-server";

describe("engram reembed while the local server holds PGlite", () => {
  let dir: string;
  let openai: FakeOpenAI;
  let server: ServerProcess | undefined;
  const base = () => {
    const env: NodeJS.ProcessEnv = { ...process.env, ENGRAM_DATA_DIR: dir, PORT: "0", LOG_LEVEL: "warn" };
    for (const name of ["DATABASE_URL", "DATABASE_DRIVER", "OPENAI_API_KEY", "OPENAI_BASE_URL", "EMBEDDING_PROVIDER"]) {
      delete env[name];
    }
    return env;
  };
  // What the user exports in the second terminal (and, later, before starting the server again).
  const configured = () => ({ ...base(), OPENAI_API_KEY: openai.apiKey, OPENAI_BASE_URL: openai.url });

  async function start(env: NodeJS.ProcessEnv) {
    server = await startServer(env);
    return server;
  }
  async function stop() {
    const running = server;
    server = undefined;
    await running?.stop();
  }
  const engram = (args: string[], env: NodeJS.ProcessEnv) => run(args, env, 240_000);
  const key = () => readFileSync(join(dir, "local-key"), "utf8").trim();
  async function api(path: string, body: unknown) {
    const res = await fetch(`${server?.url}${path}`, {
      method: "POST",
      headers: { authorization: `Bearer ${key()}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(res.status).toBe(200);
    return res.json();
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "engram-reembed-"));
    openai = await startOpenAIServer();
    await start(base());
    const documents = Array.from({ length: 12 }, (_, i) => ({ id: `n${i}`, content: `Note n${i} on topic ${i}.` }));
    await api("/v1/ingest", { documents });
  }, 240_000);
  afterAll(async () => {
    await stop();
    await openai?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("says exactly what to do when the server runs another model than the one configured, and changes nothing", async () => {
    const dry = await engram(["reembed", "--dry-run"], configured());
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/would re-embed 12 chunks of tenant local with text-embedding-3-small/);

    const res = await engram(["reembed"], configured());
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain(`embeds with ${OFFLINE_MODEL}`);
    expect(res.stderr).toMatch(/configured for text-embedding-3-small/);
    expect(res.stderr).toContain("npm start -- --reembed");
    expect(openai.stats.embeddingRequests).toBe(0);
  }, 240_000);

  it("has the server re-embed, shows the progress, and search then ranks the new model's vectors", async () => {
    await stop();
    await start(configured()); // restarted with the new model, but without --reembed
    expect(server?.output()).toMatch(/re-embed:\s+12 chunks of another model than text-embedding-3-small/);
    const stale = await api("/v1/search", { query: "Note n5 on topic 5.", mode: "vector", topK: 1 });
    expect(stale).toMatchObject({ results: [], stale: 12 });
    // The CLI says why a vector search found nothing, as the API's `stale` does.
    const said = await engram(["search", "--mode", "vector", "Note n5"], configured());
    expect(said.stdout.trim()).toBe(
      "no results (12 chunks of another model than the configured one were not vector-searched: run `engram reembed`)",
    );

    const res = await engram(["reembed", "--batch-size", "5"], configured());
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(
      /re-embedded 12 chunks of tenant local with text-embedding-3-small \(by the local server/,
    );
    expect(res.stderr).toMatch(/12\/12 chunks/);
    // The server's loop re-embeds in its own batches: the option is said not to apply, not silently dropped.
    expect(res.stderr).toContain("--batch-size is not applied: the local server");
    expect(openai.stats.embeddedInputs).toBeGreaterThanOrEqual(12);

    // The fake embeds a text to the same vector every time: the chunk of the question's own text comes first.
    const found = await api("/v1/search", { query: "Note n5 on topic 5.", mode: "vector", topK: 1 });
    expect(found.stale).toBe(0);
    expect(found.results[0]).toMatchObject({ documentId: "n5" });
    expect(found.results[0].score).toBeCloseTo(1, 4);

    const again = await engram(["reembed"], configured());
    expect(again).toMatchObject({ code: 0 });
    expect(again.stdout).toMatch(/nothing to re-embed/);
  }, 300_000);

  it("answers bad requests to its admin route as the API answers them", async () => {
    const admin = (method: string, body?: string) =>
      fetch(`${server?.url}/_local/reembed`, {
        method,
        headers: { authorization: `Bearer ${key()}`, "content-type": "application/json" },
        body,
      });
    for (const [body, code] of [
      ["{not json", "request.invalid_json"],
      ["null", "request.invalid"],
      ['{"tenant":"local","dryrun":true}', "request.invalid"],
    ]) {
      const res = await admin("POST", body);
      expect([res.status, (await res.json()).error.code], body).toEqual([400, code]);
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    }
    const put = await admin("PUT", "{}");
    expect([put.status, put.headers.get("allow")]).toEqual([405, "GET, POST"]);
    const unknown = await admin("POST", '{"tenant":"nosuch"}');
    expect([unknown.status, (await unknown.json()).error.code]).toEqual([404, "tenant.not_found"]);
  });

  it("says a second start on the folder finds the server running, and a start on a taken port creates nothing", async () => {
    const again = await engram(["start"], base());
    expect([again.code, again.stderr.trim()]).toEqual([
      1,
      expect.stringMatching(
        /^engram: a local server already serves .* \(pid \d+, http:\/\/localhost:\d+\): use that one/,
      ),
    ]);
    const port = new URL(server?.url ?? "").port;
    const elsewhere = join(dir, "other");
    const taken = await engram(["start"], { ...base(), ENGRAM_DATA_DIR: elsewhere, PORT: port });
    expect([taken.code, taken.stderr.trim()]).toEqual([
      1,
      `engram: port ${port} is in use (another engram start?): set PORT or pass --port`,
    ]);
    expect(existsSync(elsewhere)).toBe(false);
  });

  it("says an admin command needs the server stopped, and a data command for an unknown tenant needs a key", async () => {
    const keys = await engram(["keys", "list", "--tenant", "local"], base());
    expect(keys.code).not.toBe(0);
    expect(keys.stderr.trim().split("\n")).toHaveLength(1);
    expect(keys.stderr).toContain("this command needs the server stopped");
    const search = await engram(["search", "note", "--tenant", "nosuch"], base());
    expect(search.code).not.toBe(0);
    expect(search.stderr).toContain("pass --key for tenant nosuch");
    // Through the server as on the database: a key of another tenant than the one named is refused.
    const other = await engram(["search", "note", "--key", key(), "--tenant", "acme"], base());
    expect([other.code, other.stderr]).toEqual([
      1,
      expect.stringContaining("--key is an API key of tenant local, not acme"),
    ]);
    const stats = JSON.parse((await engram(["stats", "--key", key(), "--json"], base())).stdout);
    expect(stats.tenant).toBe("local");
  }, 120_000);

  it("refuses the admin route without the local key", async () => {
    const res = await fetch(`${server?.url}/_local/reembed?tenant=local`, {
      headers: { authorization: "Bearer egm_notthelocalkey" },
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("auth.invalid_key");
  });
});

describe("engram reembed on a shared database", () => {
  let database: string;
  let openai: FakeOpenAI;
  const env = (extra: NodeJS.ProcessEnv = {}) => {
    const base: NodeJS.ProcessEnv = { ...process.env, DATABASE_URL: pgUrl(database), LOG_LEVEL: "warn", ...extra };
    for (const name of ["DATABASE_DRIVER", "OPENAI_API_KEY", "OPENAI_BASE_URL", "EMBEDDING_PROVIDER"]) {
      if (!(name in extra)) delete base[name];
    }
    return base;
  };

  beforeAll(async () => {
    database = await createDatabase();
    openai = await startOpenAIServer();
  });
  afterAll(async () => {
    await openai?.close();
    await dropDatabase(database);
  });

  it("says that processes still on the old model find the moved chunks by keyword only, and nothing when none move", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-reembed-pg-"));
    writeFileSync(join(folder, "boiler.md"), "# Boiler\n\nThe boiler is serviced every March by Hartley Heating.\n");
    expect((await run(["ingest", folder], env())).code).toBe(0);
    const model = env({ OPENAI_API_KEY: openai.apiKey, OPENAI_BASE_URL: openai.url });

    const moved = await run(["reembed"], model, 120_000);
    expect(moved.code).toBe(0);
    // A server or the Lambdas still on the offline embedder had been left with no word of it.
    expect(moved.stderr).toContain(
      "engram: moving tenant local's chunks to text-embedding-3-small: a server or Lambda on this database still configured for another model finds them by keyword only",
    );
    expect(moved.stdout).toMatch(/re-embedded 1 chunks of tenant local with text-embedding-3-small/);
    const again = await run(["reembed"], model, 120_000);
    expect([again.code, again.stderr]).toEqual([0, ""]);
  }, 240_000);

  it("--all-tenants moves every tenant that has chunks of another model, where each had needed a run of its own", async () => {
    const folder = mkdtempSync(join(tmpdir(), "engram-reembed-all-"));
    writeFileSync(join(folder, "kettle.md"), "# Kettle\n\nThe kettle is descaled every Friday.\n");
    for (const tenant of ["acme", "globex"])
      expect((await run(["ingest", folder, "--tenant", tenant], env())).code).toBe(0);
    const model = env({ OPENAI_API_KEY: openai.apiKey, OPENAI_BASE_URL: openai.url });

    const both = await run(["reembed", "--tenant", "acme", "--all-tenants"], model);
    expect([both.code, both.stderr.trim()]).toEqual([
      1,
      "engram: option '--tenant <name>' cannot be used with option '--all-tenants' (run with --help for usage)",
    ]);
    const dry = await run(["reembed", "--all-tenants", "--dry-run"], model);
    expect(dry.stdout).toMatch(/would re-embed 1 chunks of tenant acme .*\n.*would re-embed 1 chunks of tenant globex/);
    const moved = await run(["reembed", "--all-tenants"], model, 120_000);
    expect(moved.code).toBe(0);
    expect(moved.stdout).toMatch(/re-embedded 1 chunks of tenant acme[^\n]*\nre-embedded 1 chunks of tenant globex/);
    const again = await run(["reembed", "--all-tenants"], model);
    expect(again.stdout.trim()).toBe("nothing to re-embed: every chunk of every tenant is of text-embedding-3-small");
  }, 240_000);
});
