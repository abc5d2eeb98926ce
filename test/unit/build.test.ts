/** `npm run build`: Lambda bundles as SST makes them, with the Neon HTTP driver only and a trimmed OpenAI SDK. */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { build, type Metafile, type Plugin } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import chatPlugins, { openaiInternalStandIns, openaiInternals, openaiStandIns } from "../../infra/esbuild-plugins.mjs";
import embeddingPlugins from "../../infra/esbuild-plugins-embeddings.mjs";
import {
  type BundleReport,
  buildLambdas,
  checkOpenAiResources,
  ENTRIES,
  esbuildOptions,
  findForbidden,
  pluginsOf,
} from "../../scripts/build";
import { apiEvent, type EventInput } from "../support/events";

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

/** A directory laid out like the `openai` package, holding only this client.mjs. */
function fakeOpenAi(client: string): string {
  const dir = join(work, `sdk-${Math.random().toString(36).slice(2)}`, "node_modules", "openai");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "client.mjs"), client);
  return dir;
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
    const local = { inputs: { "cli/server.ts": input, "test/support/db.ts": input }, outputs: {} } as Metafile;
    expect(findForbidden(local)).toEqual([
      "cli/server.ts (the CLI or the local server)",
      "test/support/db.ts (test or benchmark code)",
    ]);
  });

  it("keeps the document parsers in the upload bundle alone, which also leaves out canvas", () => {
    const parsers = /^(unpdf|mammoth|@mozilla\/readability|linkedom)$/;
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

  it("keeps of the OpenAI SDK only what embeddings.create and chat.completions.create need", async () => {
    const meta = await metafileOf(
      `export { createOpenAIEmbedder } from ${JSON.stringify(join(process.cwd(), "core/embedding/openai"))};
       export { createChatModel } from ${JSON.stringify(join(process.cwd(), "core/llm"))};`,
    );
    const output = Object.values(meta.outputs).find((o) => o.entryPoint) as Metafile["outputs"][string];
    const sdk = Object.entries(output.inputs).filter(([path]) => path.includes("node_modules/openai/"));
    const bytes = (suffix: string) => sdk.find(([path]) => path.endsWith(suffix))?.[1].bytesInOutput ?? 0;
    expect(bytes("openai/client.mjs")).toBeGreaterThan(10_000);
    expect(bytes("openai/resources/embeddings.mjs")).toBeGreaterThan(200);
    expect(bytes("openai/resources/chat/completions/completions.mjs")).toBeGreaterThan(500);
    // Every other resource is an empty class; the chat helpers (stream, runTools, parse) are gone.
    expect(bytes("openai/resources/beta/beta.mjs")).toBeLessThan(200);
    expect(sdk.filter(([path]) => /resources\/beta\/threads|\/lib\//.test(path))).toEqual([]);
    expect(sdk.reduce((sum, [, input]) => sum + input.bytesInOutput, 0)).toBeLessThan(60 * 1024);
  });

  it("leaves chat and server-sent events out of the bundles that only embed", async () => {
    const embedder = `export { createOpenAIEmbedder } from ${JSON.stringify(join(process.cwd(), "core/embedding/openai"))};`;
    const sdkOf = async (plugins: Plugin[]) => {
      const meta = await metafileOf(embedder, { plugins });
      const output = Object.values(meta.outputs).find((o) => o.entryPoint) as Metafile["outputs"][string];
      return Object.entries(output.inputs).filter(([path]) => path.includes("node_modules/openai/"));
    };
    const bytes = (sdk: [string, { bytesInOutput: number }][], suffix: string) =>
      sdk.find(([path]) => path.endsWith(suffix))?.[1].bytesInOutput ?? 0;
    const [chats, embeds] = await Promise.all([sdkOf(chatPlugins), sdkOf(embeddingPlugins)]);
    expect(bytes(chats, "openai/core/streaming.mjs")).toBeGreaterThan(2_000);
    expect(bytes(embeds, "openai/core/streaming.mjs")).toBeLessThan(400);
    expect(bytes(embeds, "openai/internal/decoders/line.mjs")).toBe(0);
    expect(bytes(embeds, "openai/resources/chat/chat.mjs")).toBeLessThan(
      bytes(chats, "openai/resources/chat/chat.mjs"),
    );
    expect(bytes(embeds, "openai/resources/embeddings.mjs")).toBeGreaterThan(200);
    for (const sdk of [chats, embeds]) {
      expect(bytes(sdk, "openai/internal/qs/stringify.mjs")).toBe(0);
      expect(bytes(sdk, "openai/auth/workload-identity-auth.mjs")).toBeLessThan(300);
    }
    const loaded = await Promise.all(ENTRIES.map((e) => pluginsOf(e.name)));
    expect(ENTRIES.map((e, i) => [e.name, loaded[i] === embeddingPlugins])).toEqual([
      ["api", false],
      ["ingest", true],
      ["upload", false],
      ["search", true],
      ["chat", false],
      ["mcp", false],
      ["cleanup", false],
    ]);
  });

  it("gives the SDK's left-out machinery stand-ins that keep flat query strings and name what is missing", async () => {
    const dir = join(process.cwd(), "node_modules/openai");
    const standIns = openaiInternals(dir, false);
    expect([...standIns.keys()].map((path) => path.slice(dir.length + 1)).sort()).toEqual([
      "auth/workload-identity-auth.mjs",
      "core/pagination.mjs",
      "core/streaming.mjs",
      "internal/detect-platform.mjs",
      "internal/to-file.mjs",
      "internal/uploads.mjs",
      "internal/utils/query.mjs",
    ]);
    const load = (relative: string) =>
      import(`data:text/javascript,${encodeURIComponent(standIns.get(join(dir, relative)) ?? "")}`);
    const { stringifyQuery } = await load("internal/utils/query.mjs");
    const { stringifyQuery: original } = await import(pathToFileURL(join(dir, "internal/utils/query.mjs")).href);
    for (const query of [
      { limit: 5, after: "a b&c", skip: undefined },
      { ids: ["x", "y"], order: "asc", n: null },
    ]) {
      expect(stringifyQuery(query)).toBe(original(query));
    }
    expect(() => stringifyQuery({ filter: { a: 1 } })).toThrow(/query string with nested values is left out/);
    const { toFile } = await load("internal/to-file.mjs");
    await expect(toFile("x")).rejects.toThrow(/toFile\(\) is left out of Engram's Lambda bundles/);
    const { VERSION } = await import(pathToFileURL(join(dir, "version.mjs")).href);
    const platform = (standIns.get(join(dir, "internal/detect-platform.mjs")) ?? "").replace(
      /^import \{ VERSION \} from "\.\.\/version\.mjs";/,
      `const VERSION = ${JSON.stringify(VERSION)};`,
    );
    const ours = await import(`data:text/javascript,${encodeURIComponent(platform)}`);
    const sdk = await import(pathToFileURL(join(dir, "internal/detect-platform.mjs")).href);
    expect(ours.getPlatformHeaders()).toEqual(sdk.getPlatformHeaders());
    expect(ours.isRunningInBrowser()).toBe(false);
    const { WorkloadIdentityAuth } = await load("auth/workload-identity-auth.mjs");
    expect(() => new WorkloadIdentityAuth()).toThrow(/workload identity auth is left out/);
  });

  it("fails the build when a module the trimming replaces no longer exports what its stand-in offers", () => {
    const dir = fakeOpenAi("");
    expect(() => openaiInternals(dir)).toThrow(/openai has no .* any more/);
    for (const relative of Object.keys(openaiInternalStandIns)) {
      mkdirSync(dirname(join(dir, relative)), { recursive: true });
      writeFileSync(join(dir, relative), "export const somethingElse = 1;\n");
    }
    expect(() => openaiInternals(dir)).toThrow(/no longer exports \w+; revisit its stand-in/);
  });

  it("fails the build when the OpenAI SDK's client no longer reads the way the trimming expects", () => {
    expect(() => openaiStandIns(fakeOpenAi("export class OpenAI {}\n"))).toThrow(/found 0 resources/);
    const resources = Array.from({ length: 12 }, (_, i) => `R${i}`);
    const client = (chatModule: string) =>
      [
        ...resources.map((r) => `import { ${r} } from "./resources/${r.toLowerCase()}.mjs";`),
        'import { Embeddings } from "./resources/embeddings.mjs";',
        `import { Chat } from "./resources/${chatModule}.mjs";`,
        ...resources.map((r) => `this.${r.toLowerCase()} = new API.${r}(this)`),
        "this.embeddings = new API.Embeddings(this)",
        "this.chat = new API.Chat(this)",
      ].join("\n");
    expect(openaiStandIns(fakeOpenAi(client("chat/chat"))).size).toBe(12);
    expect(() => openaiStandIns(fakeOpenAi(client("r3")))).toThrow(/`chat` shares a module/);
  });

  it("fails the build when the trimmed SDK and the client's type disagree on the resources Engram calls", () => {
    expect(() => checkOpenAiResources()).not.toThrow();
    expect(() => checkOpenAiResources(["chat", "embeddings"], ["chat", "embeddings", "responses"])).toThrow(
      /keeps the OpenAI resources chat, embeddings, but core\/provider\/index.ts lets code call chat, embeddings, responses/,
    );
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
    const openai = join(root, "node_modules/openai");
    const changedSdk = fakeOpenAi("export class OpenAI {}\n");
    const messages = [
      { command: "resolve", value: { path: "./pg", importer: join(root, "core/db/index.ts"), kind: "dynamic-import" } },
      {
        command: "resolve",
        value: { path: "./neon", importer: join(root, "core/db/index.ts"), kind: "import-statement" },
      },
      { command: "load", value: { path: join(openai, "resources/beta/beta.mjs"), namespace: "file" } },
      { command: "load", value: { path: join(openai, "resources/embeddings.mjs"), namespace: "file" } },
      {
        command: "resolve",
        value: {
          path: "../../../lib/ChatCompletionStream.mjs",
          importer: join(openai, "resources/chat/completions/completions.mjs"),
          kind: "import-statement",
        },
      },
      { command: "load", value: { path: join(changedSdk, "resources/beta/beta.mjs"), namespace: "file" } },
      {
        command: "resolve",
        value: { path: "process", importer: join(root, "core/config.ts"), kind: "import-statement" },
      },
      { command: "load", value: { path: "process", namespace: "engram-builtin" } },
    ];
    const byId = await throughBridge("infra/esbuild-plugins.mjs", messages);
    expect(byId.get(0)).toEqual({ path: join(root, "infra/no-local-drivers.ts") });
    expect(byId.get(1)).toEqual({});
    expect(byId.get(2)?.contents).toContain("export class Beta");
    expect(byId.get(3)).toEqual({});
    expect(byId.get(4)).toEqual({ path: join(root, "infra/openai-chat-helpers.mjs") });
    // SST fails the deploy on `{ error }` (a throw would leave it waiting for an answer).
    expect(byId.get(5)?.error).toMatch(/openai's client.mjs changed/);
    expect(byId.get(6)).toEqual({ path: "process", namespace: "engram-builtin" });
    expect(byId.get(7)).toEqual({ contents: 'module.exports = require("process");', loader: "js" });
  });

  it("leaves chat and streaming out of the embedding functions inside SST's deploy too", async () => {
    const openai = join(process.cwd(), "node_modules/openai");
    const messages = ["core/streaming.mjs", "resources/chat/chat.mjs", "resources/embeddings.mjs"].map((path) => ({
      command: "load",
      value: { path: join(openai, path), namespace: "file" },
    }));
    const [embeds, chats] = await Promise.all([
      throughBridge("infra/esbuild-plugins-embeddings.mjs", messages),
      throughBridge("infra/esbuild-plugins.mjs", messages),
    ]);
    expect(embeds.get(0)?.contents).toContain("streaming is left out of Engram's Lambda bundles");
    expect(embeds.get(1)?.contents).toContain("export class Chat");
    expect(embeds.get(2)).toEqual({});
    expect([chats.get(0), chats.get(1), chats.get(2)]).toEqual([{}, {}, {}]);
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
