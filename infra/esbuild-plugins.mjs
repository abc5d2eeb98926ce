/**
 * esbuild plugins for every Lambda bundle, shared by SST's bundler (`nodejs.plugins` in
 * infra/functions.ts) and `npm run build` (scripts/build.ts). Plain JavaScript because SST loads
 * this file with `node`, outside TypeScript. SST's plugin bridge tests `filter` against something
 * other than the import path, so each filter matches everything and the callback decides.
 */
import { readFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stub = join(root, "infra", "no-local-drivers.ts");
const dbIndex = join(root, "core", "db", "index.ts");
const chatHelpers = join(root, "infra", "openai-chat-helpers.mjs");

/**
 * core/db's lazy `./pg` and `./pglite` imports become infra/no-local-drivers.ts, so a bundle holds
 * the Neon HTTP driver alone. (Marking `pg` external instead leaves a top-level `import "pg"` in
 * the ESM bundle, which crashes every cold start: Lambda has no node_modules.)
 * @type {import("esbuild").Plugin}
 */
export const neonOnly = {
  name: "engram-neon-only",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.importer !== dbIndex || !/^\.\/(pg|pglite)$/.test(args.path)) return undefined;
      return { path: stub };
    });
  },
};

/**
 * The OpenAI client's properties Engram calls: `embeddings.create` (core/embedding/openai.ts) and
 * `chat.completions.create` (core/llm/index.ts). The client's type, `UpstreamClient` in
 * core/llm/retry.ts, offers these alone, and `npm run build` fails when the two lists differ.
 */
export const openaiResourcesCalled = ["chat", "embeddings"];

/**
 * Which module of the `openai` package (in `dir`) becomes which stand-in, read from the SDK's own
 * client.mjs: `this.<property> = new API.<Class>(this)` and `import { <Class> } from "./resources/..."`.
 * Throws (failing the build) when client.mjs no longer reads that way or a called resource
 * would be swapped.
 * @param {string} dir
 * @returns {Map<string, string>} module path -> stand-in source
 */
export function openaiStandIns(dir) {
  const client = readFileSync(join(dir, "client.mjs"), "utf8");
  const moduleOf = new Map();
  for (const [, name, path] of client.matchAll(
    /import\s*\{\s*(\w+)(?:\s+as\s+\w+)?\s*,?\s*\}\s*from\s*"\.\/(resources\/[\w/.-]+\.mjs)"/g,
  )) {
    moduleOf.set(name, join(dir, path));
  }
  const classOf = new Map(
    [...client.matchAll(/this\.(\w+) = new API\.(\w+)\(this\)/g)].map(([, property, name]) => [property, name]),
  );
  const changed = (why) =>
    new Error(`infra/esbuild-plugins.mjs: openai's client.mjs changed (${why}); revisit openaiSlim`);
  if (classOf.size < 10) throw changed(`found ${classOf.size} resources`);
  const standIns = new Map();
  for (const [property, name] of classOf) {
    const path = moduleOf.get(name);
    if (!path) throw changed(`no module for resource class ${name}`);
    if (openaiResourcesCalled.includes(property)) continue;
    standIns.set(
      path,
      `/** Stand-in for openai's \`client.${property}\`, which Engram never calls. */\nexport class ${name} {\n  constructor(client) {\n    this._client = client;\n  }\n}\n`,
    );
  }
  for (const property of openaiResourcesCalled) {
    const path = moduleOf.get(classOf.get(property));
    if (!path) throw changed(`no resource \`${property}\``);
    if (standIns.has(path)) throw changed(`\`${property}\` shares a module with a resource left out`);
  }
  return standIns;
}

const openaiDir = /^(.*[\\/]node_modules[\\/]openai[\\/])/;
const completions = /resources[\\/]chat[\\/]completions[\\/]completions\.mjs$/;
const completionHelpers =
  /^\.\.\/\.\.\/\.\.\/lib\/(ChatCompletionRunner|ChatCompletionStreamingRunner|ChatCompletionStream|parser)\.mjs$/;

/**
 * The OpenAI SDK's client constructs all of its ~20 resources (admin, audio, beta, files, ...),
 * so none of them tree-shakes: 155 KB of every bundle that embeds or chats. Here each resource
 * Engram does not call becomes an empty class of the same name, and the helpers behind
 * `chat.completions.stream()`, `.runTools()` and `.parse()` become stand-ins that throw
 * (infra/openai-chat-helpers.mjs); `create()`, the request machinery and the errors stay the
 * SDK's own. A bundle keeps about 50 KB of the SDK. test/unit/build.test.ts embeds and chats
 * through a bundled function against the fake OpenAI server.
 * @type {import("esbuild").Plugin}
 */
export const openaiSlim = {
  name: "engram-openai-slim",
  setup(build) {
    // SST's plugin bridge (which has no `build.resolve`) fails the build on `{ error }`; a throw
    // there would leave SST waiting for an answer.
    const fail = (error) => {
      if (typeof build.resolve === "function") throw error;
      return { error: error.message };
    };
    /** @type {Map<string, Map<string, string>>} */
    const plans = new Map();
    build.onResolve({ filter: /.*/ }, (args) => {
      if (!completions.test(args.importer ?? "") || !completionHelpers.test(args.path)) return undefined;
      return { path: chatHelpers };
    });
    build.onLoad({ filter: /.*/ }, (args) => {
      const dir = openaiDir.exec(args.path)?.[1];
      if (!dir) return undefined;
      let standIns = plans.get(dir);
      if (!standIns) {
        try {
          standIns = openaiStandIns(dir);
        } catch (error) {
          return fail(error);
        }
        plans.set(dir, standIns);
      }
      const contents = standIns.get(args.path);
      return contents === undefined ? undefined : { contents, loader: "js" };
    });
  },
};

/**
 * Node's own modules through `require` (which SST's banner defines) instead of `import`. An ESM
 * import of a built-in module makes a module facade of all its exports, and for `process` that
 * reads every lazy property (stdout, stderr, stdin: loading tty and net), for `fs` its promises
 * API: several milliseconds of each cold start, for sst/resource's `import { env } from "process"`
 * and its like. Only imports change; dynamic `import()` of a built-in stays as written.
 * @type {import("esbuild").Plugin}
 */
export const builtinsViaRequire = {
  name: "engram-builtins-via-require",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (args.kind !== "import-statement" || !isBuiltin(args.path)) return undefined;
      return { path: args.path, namespace: "engram-builtin" };
    });
    build.onLoad({ filter: /.*/ }, (args) => {
      if (args.namespace !== "engram-builtin") return undefined;
      return { contents: `module.exports = require(${JSON.stringify(args.path)});`, loader: "js" };
    });
  },
};

export default [neonOnly, openaiSlim, builtinsViaRequire];
