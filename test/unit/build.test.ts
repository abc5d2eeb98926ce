/** `npm run build`: Lambda bundles as SST makes them, with the Neon HTTP driver only. */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build, type Metafile, type Plugin } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apiEvent, type EventInput } from "../../kit/events";
import { type BundleReport, buildLambdas, ENTRIES, esbuildOptions, findForbidden } from "../../scripts/build";

const run = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), "engram-build-test-"));
let reports: BundleReport[];

beforeAll(async () => {
  reports = await buildLambdas(join(work, "lambda"));
}, 60_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

async function metafileOf(source: string, extra: { external?: string[]; plugins?: Plugin[] } = {}): Promise<Metafile> {
  const entry = join(work, `${Math.random().toString(36).slice(2)}.ts`);
  writeFileSync(entry, source);
  const nodePaths = [join(process.cwd(), "node_modules")];
  const result = await build({ ...esbuildOptions(entry, `${entry}.mjs`), nodePaths, ...extra, write: false });
  return result.metafile as Metafile;
}

/** Imports a bundle in a fresh node process, as Lambda would, and invokes it once. */
async function coldStart(bundle: string, env: Record<string, string>, event: EventInput) {
  const script = `
    const { handler } = await import(${JSON.stringify(pathToFileURL(bundle).href)});
    const result = await handler(${JSON.stringify(apiEvent(event))}, { getRemainingTimeInMillis: () => 10000 });
    process.stdout.write("RESULT " + JSON.stringify(result) + "\\n");`;
  const { stdout, stderr } = await run(process.execPath, ["--input-type=module", "-e", script], {
    env: { PATH: process.env.PATH ?? "", AWS_LAMBDA_FUNCTION_NAME: "engram-test-ApiFunction", ...env },
  });
  const lines = `${stdout}${stderr}`.split("\n").filter(Boolean);
  const result = JSON.parse(lines.find((l) => l.startsWith("RESULT "))?.slice(7) ?? "null");
  return { result, body: JSON.parse(result.body), logs: lines.filter((l) => !l.startsWith("RESULT ")) };
}

/** Sends `messages` to SST's esbuild plugin bridge running `pluginsFile`, and returns its answers by message id. */
async function throughBridge(pluginsFile: string, messages: { command: string; value: object }[]) {
  // SST's Go bundler runs `nodejs.plugins` in this node process and talks JSON lines to it.
  const bridge = ".sst/platform/functions/nodejs-runtime/plugin.mjs";
  expect(existsSync(bridge), `${bridge} (run \`bash scripts/typecheck.sh\`, which installs SST's platform)`).toBe(true);
  const child = execFile(process.execPath, [bridge, join(process.cwd(), pluginsFile)]);
  const replies = new Promise<string>((resolve) => {
    let out = "";
    child.stdout?.on("data", (chunk) => {
      out += chunk;
      if (out.split("\n").filter(Boolean).length === messages.length) resolve(out);
    });
  });
  child.stdin?.write(messages.map((m, id) => `${JSON.stringify({ id, ...m })}\n`).join(""));
  const byId = new Map(
    (await replies)
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id: number; value: Record<string, string> })
      .map((r) => [r.id, r.value]),
  );
  child.kill();
  return byId;
}

describe("npm run build", () => {
  it("bundles every function with no forbidden module and nothing left for a node_modules Lambda lacks", () => {
    expect(reports.map((r) => r.name)).toEqual(ENTRIES.map((e) => e.name));
    for (const report of reports) {
      expect(report.forbidden, report.name).toEqual([]);
      const parts = report.largest.map((p) => p.part);
      expect(parts, report.name).toContain("@neondatabase/serverless");
      expect(
        parts.filter((p) => /^(pg|@electric-sql\/.*|cli\/.*|test\/.*)$/.test(p)),
        report.name,
      ).toEqual([]);
      expect(readFileSync(report.file, "utf8")).not.toMatch(/from\s*"(pg|@electric-sql\/pglite)"/);
    }
  });

  it("fails a bundle that pulls in pg, PGlite, the CLI or test code", async () => {
    const pg = await metafileOf('import pg from "pg"; export const x = pg;');
    expect(findForbidden(pg).join("\n")).toMatch(/node_modules\/pg\/.*pg \(Lambda uses Neon's HTTP driver\)/);
    const input = { bytes: 1, imports: [] };
    const local = { inputs: { "cli/server.ts": input, "kit/db.ts": input }, outputs: {} } as Metafile;
    expect(findForbidden(local)).toEqual([
      "cli/server.ts (the CLI or the local server)",
      "kit/db.ts (test or benchmark code)",
    ]);
  });

  it("keeps the document parsers in the upload bundle alone, which also leaves out canvas", () => {
    const parsers = /^(unpdf|mammoth|linkedom)$/;
    for (const report of reports) {
      const held = report.largest.map((p) => p.part).filter((p) => parsers.test(p));
      if (report.name === "upload") expect(held).toEqual(expect.arrayContaining(["unpdf", "mammoth", "linkedom"]));
      else expect(held, report.name).toEqual([]);
    }
    const input = { bytes: 1, imports: [] };
    const meta = { inputs: { "node_modules/unpdf/dist/index.mjs": input, "core/extract/pdf.ts": input }, outputs: {} };
    expect(findForbidden(meta as Metafile)).toHaveLength(2);
    expect(findForbidden(meta as Metafile, true)).toEqual([]);
  });

  it("fails a bundle that leaves pg to be imported at run time", async () => {
    const external = await metafileOf('import pg from "pg"; export const x = pg;', { external: ["pg"] });
    expect(findForbidden(external)).toEqual(["pg (left external: Lambda has no node_modules)"]);
  });

  it("loads Node's own modules with require, not import, which would build a facade of each at cold start", () => {
    for (const report of reports) {
      const source = readFileSync(report.file, "utf8");
      // Only SST's banner imports (module, url) remain.
      const imports = [...source.matchAll(/(?:^|[;\n])import\s*[^;'"()]*?from\s*["']([^"']+)["']/g)].map((m) => m[1]);
      expect(imports, report.name).toEqual(["module", "url"]);
    }
  });

  it("applies the same plugins inside SST's deploy, through SST's own esbuild plugin bridge", async () => {
    const root = process.cwd();
    const messages = [
      { command: "resolve", value: { path: "./pg", importer: join(root, "core/db/index.ts"), kind: "dynamic-import" } },
      {
        command: "resolve",
        value: { path: "./neon", importer: join(root, "core/db/index.ts"), kind: "import-statement" },
      },
      {
        command: "resolve",
        value: { path: "process", importer: join(root, "core/config.ts"), kind: "import-statement" },
      },
      { command: "load", value: { path: "process", namespace: "engram-builtin" } },
    ];
    const byId = await throughBridge("infra/esbuild-plugins.mjs", messages);
    expect(byId.get(0)).toEqual({ path: join(root, "infra/no-local-drivers.ts") });
    expect(byId.get(1)).toEqual({});
    expect(byId.get(2)).toEqual({ path: "process", namespace: "engram-builtin" });
    expect(byId.get(3)).toEqual({ contents: 'module.exports = require("process");', loader: "js" });
  });

  it("starts without the DatabaseUrl secret, logs one line naming it, and answers 503 config.missing", async () => {
    const api = reports.find((r) => r.name === "api") as BundleReport;
    const { result, body, logs } = await coldStart(api.file, {}, { method: "GET", path: "/v1/health" });
    expect(result.statusCode).toBe(503);
    expect(body.error.code).toBe("config.missing");
    expect(logs).toHaveLength(1);
    expect(logs[0]).toContain("DatabaseUrl");
  });

  it("answers 503 saying what to change when DatabaseUrl is not a Neon URL (pg is not in the bundle)", async () => {
    const api = reports.find((r) => r.name === "api") as BundleReport;
    const { result, body } = await coldStart(
      api.file,
      { DATABASE_URL: "postgres://db.example.com/engram", OPENAI_API_KEY: "sk-test" },
      { method: "GET", path: "/v1/documents", headers: { authorization: "Bearer egm_x" } },
    );
    expect(result.statusCode).toBe(503);
    expect(body.error).toMatchObject({ code: "config.driver_unavailable", message: expect.stringContaining("Neon") });
  });
});
