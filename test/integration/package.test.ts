/**
 * The package as a user gets it: `npm pack` (whose `prepare` builds dist/client), the tarball
 * unpacked into a new app's node_modules/engram as npm would install it, with none of its
 * dependencies (the client must need none); `ai` and `@langchain/core` linked in, as the adapters'
 * users install them. Plain `node` (no tsx) runs a search through it against the local server, and
 * `tsc` (strict, NodeNext) type-checks a consumer of every export.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { transform } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startServer } from "../../cli/server";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { freshDb, type TestDb } from "../../kit/db";

const run = promisify(execFile);
const root = fileURLToPath(new URL("../..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "engram-package-test-"));
const app = join(work, "app");
const engram = join(app, "node_modules/engram");
let packed: string[];
let t: TestDb;
let server: Awaited<ReturnType<typeof startServer>>;
let key: string;

/** The environment of a user's shell: no loader of ours (vitest's or tsx's) carried over. */
const plainEnv = () => {
  const { NODE_OPTIONS: _options, VITEST: _vitest, ...env } = process.env;
  return env;
};

beforeAll(async () => {
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", work], {
    cwd: root,
    env: plainEnv(),
    maxBuffer: 64 * 1024 * 1024,
  });
  const [info] = JSON.parse(stdout.slice(stdout.search(/^\[/m))) as { filename: string; files: { path: string }[] }[];
  packed = (info?.files ?? []).map((f) => f.path);
  mkdirSync(engram, { recursive: true });
  await run("tar", ["-xzf", join(work, info?.filename ?? ""), "-C", engram, "--strip-components=1"]);
  mkdirSync(join(app, "node_modules/@langchain"), { recursive: true });
  symlinkSync(join(root, "node_modules/ai"), join(app, "node_modules/ai"));
  symlinkSync(join(root, "node_modules/@langchain/core"), join(app, "node_modules/@langchain/core"));
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", type: "module", private: true }));

  setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
  t = await freshDb("pg");
  useDb(t.db);
  key = (await Auth.createKey(t.db, "packaged")).key;
  server = await startServer({ port: 0 });
}, 300_000);
afterAll(async () => {
  await server?.close();
  await t?.close();
  rmSync(work, { recursive: true, force: true });
});

describe("the packed package", () => {
  it("ships the built exports with their declarations, and no tests, evaluation sets or benchmarks", () => {
    for (const file of ["index", "ai", "langchain"]) {
      expect(packed).toContain(`dist/client/${file}.js`);
      expect(packed).toContain(`dist/client/${file}.d.ts`);
    }
    expect(packed).toContain("dist/client/types.d.ts");
    expect(packed.filter((path) => /^(test|eval|bench|docs)\//.test(path))).toEqual([]);
  });

  it("has a self-contained client under 15 KB minified: no import of anything, server code least of all", async () => {
    const client = readFileSync(join(engram, "dist/client/index.js"), "utf8");
    expect(client).not.toMatch(/^\s*import\s|\brequire\(|\bimport\(/m);
    const { code } = await transform(client, { minify: true, format: "esm" });
    expect(Buffer.byteLength(code)).toBeLessThan(15 * 1024);
  });

  it("runs under plain node: ingest and search through engram/client, tools from engram/ai, a retriever from engram/langchain", async () => {
    writeFileSync(
      join(app, "main.mjs"),
      `import { createClient, EngramApiError } from "engram/client";
import { engramTools } from "engram/ai";
import { EngramRetriever } from "engram/langchain";

const engram = createClient({ baseUrl: process.argv[2], apiKey: process.argv[3] });
await engram.ingest({ documents: [{ id: "refunds", content: "Refunds are issued within 14 days." }] });
const { results } = await engram.search({ query: "refund window", topK: 1 });
const docs = await new EngramRetriever({ client: engram, topK: 1 }).invoke("refund window");
const refused = await engram.documents.get("nope").catch((error) => error instanceof EngramApiError && error.code);
console.log(JSON.stringify({ found: results[0].documentId, tools: Object.keys(engramTools(engram)), doc: docs[0].metadata.documentId, refused }));
`,
    );
    const { stdout } = await run(process.execPath, ["main.mjs", server.url, key], { cwd: app, env: plainEnv() });
    expect(JSON.parse(stdout)).toEqual({
      found: "refunds",
      tools: ["searchMemory", "remember"],
      doc: "refunds",
      refused: "document.not_found",
    });
  });

  it("type-checks a strict NodeNext consumer of every export with tsc (call by route key too), and refuses a wrongly typed call", async () => {
    writeFileSync(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2023", "DOM"],
          types: [],
          strict: true,
          noUncheckedIndexedAccess: true,
          noEmit: true,
          skipLibCheck: true,
        },
        files: ["consumer.ts"],
      }),
    );
    writeFileSync(
      join(app, "consumer.ts"),
      `import { createClient, EngramApiError, type Location, type SearchResult } from "engram/client";
import { engramTools } from "engram/ai";
import { EngramRetriever } from "engram/langchain";

const engram = createClient({ baseUrl: "http://localhost:3000", apiKey: "egm_x", userId: "u1" });
const where = (location: Location): string => location?.pages?.join("-") ?? location?.headings?.join(" > ") ?? "";
export async function main(): Promise<string[]> {
  const { results } = await engram.search({ query: "refund window", topK: 3, filter: { metadata: { team: ["a", 1] } } });
  const first: SearchResult | undefined = results[0];
  // @ts-expect-error topK is a number
  await engram.search({ query: "x", topK: "3" });
  const doc = await engram.call("GET /v1/documents/{id}", { params: { id: "refunds" }, query: { track: false } });
  const importance: number = doc.importance;
  // @ts-expect-error the path's {id} is required
  await engram.call("DELETE /v1/documents/{id}", {});
  // @ts-expect-error no route has this key
  await engram.call("GET /v1/nope");
  // What an answer gives goes back as it came: a cursor (null on the last page), metadata.
  const page = await engram.documents.list({ limit: 1 });
  await engram.documents.list({ cursor: page.nextCursor });
  await engram.documents.update(doc.id, { metadata: doc.metadata });
  // POST /mcp's answer is typed by the body: a batch of requests, an array.
  const batch = await engram.call("POST /mcp", { body: [{ jsonrpc: "2.0", id: 1, method: "tools/list" }] });
  const answers: number = batch.length;
  for await (const e of engram.chatStream({ messages: [{ role: "user", content: "Refunds?" }] })) {
    if (e.event === "delta") console.log(e.data.text);
  }
  try {
    await engram.documents.get("nope");
  } catch (error) {
    if (error instanceof EngramApiError && error.code === "document.not_found") return [];
  }
  const docs = await new EngramRetriever({ client: engram, topK: 2 }).invoke("refunds");
  return [first ? where(first.location) : "", Object.keys(engramTools(engram)).join(), docs[0]?.pageContent ?? "", String(importance + answers)];
}
`,
    );
    const tsc = join(root, "node_modules/typescript/bin/tsc");
    const checked = await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, env: plainEnv() }).then(
      () => "",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked).toBe("");
  });
});
