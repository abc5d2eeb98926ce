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
 * core/provider/index.ts, offers these alone, and `npm run build` fails when the two lists differ.
 */
export const openaiResourcesCalled = ["chat", "embeddings"];

/**
 * Which module of the `openai` package (in `dir`) becomes which stand-in, read from the SDK's own
 * client.mjs: `this.<property> = new API.<Class>(this)` and `import { <Class> } from "./resources/..."`.
 * Throws (failing the build) when client.mjs no longer reads that way or a called resource
 * would be swapped.
 * @param {string} dir
 * @param {string[]} [called] the client properties the bundle calls (default: all Engram calls)
 * @returns {Map<string, string>} module path -> stand-in source
 */
export function openaiStandIns(dir, called = openaiResourcesCalled) {
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
    if (called.includes(property)) continue;
    standIns.set(
      path,
      `/** Stand-in for openai's \`client.${property}\`, which Engram never calls. */\nexport class ${name} {\n  constructor(client) {\n    this._client = client;\n  }\n}\n`,
    );
  }
  for (const property of called) {
    const path = moduleOf.get(classOf.get(property));
    if (!path) throw changed(`no resource \`${property}\``);
    if (standIns.has(path)) throw changed(`\`${property}\` shares a module with a resource left out`);
  }
  return standIns;
}

/** A thrown error naming what a Lambda bundle left out of the OpenAI SDK. */
const leftOut = (what) =>
  `throw new Error("openai: ${what} is left out of Engram's Lambda bundles (infra/esbuild-plugins.mjs)");`;

/**
 * Parts of the SDK's own machinery that serve only features Engram never uses, each replaced by a
 * stand-in with the same exports: query strings with nested values (qs, 6.5 KB: Engram's calls
 * send no query; flat values still work), list pagination, file uploads, workload-identity auth
 * (Engram authenticates with an API key) and runtime detection beyond Node. Keyed by path inside
 * the package; each stand-in names the exports it must offer, and the build fails when the SDK's
 * module no longer has them.
 * @type {Record<string, { exports: string[]; source: string }>}
 */
export const openaiInternalStandIns = {
  "internal/utils/query.mjs": {
    exports: ["stringifyQuery"],
    source: `export function stringifyQuery(query) {
  const parts = [];
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    const list = Array.isArray(value);
    for (const item of list ? value : [value]) {
      if (item !== null && typeof item === "object") { ${leftOut("a query string with nested values")} }
      parts.push(\`\${encodeURIComponent(list ? \`\${key}[]\` : key)}=\${encodeURIComponent(item ?? "")}\`);
    }
  }
  return parts.join("&");
}
`,
  },
  "core/pagination.mjs": {
    exports: ["AbstractPage", "PagePromise", "Page", "CursorPage", "ConversationCursorPage", "NextCursorPage"],
    source: `export class AbstractPage { constructor() { ${leftOut("list pagination")} } }
export class PagePromise { constructor() { ${leftOut("list pagination")} } }
export class Page extends AbstractPage {}
export class CursorPage extends AbstractPage {}
export class ConversationCursorPage extends AbstractPage {}
export class NextCursorPage extends AbstractPage {}
`,
  },
  "internal/to-file.mjs": {
    exports: ["toFile"],
    source: `export async function toFile() { ${leftOut("toFile()")} }
`,
  },
  "internal/uploads.mjs": {
    exports: [
      "toStreamingFile",
      "checkFileSupport",
      "makeFile",
      "getName",
      "isAsyncIterable",
      "maybeMultipartFormRequestOptions",
      "multipartFormRequestOptions",
      "createForm",
    ],
    source: `const uploads = () => { ${leftOut("file upload")} };
export { uploads as toStreamingFile, uploads as checkFileSupport, uploads as makeFile, uploads as getName,
  uploads as isAsyncIterable, uploads as maybeMultipartFormRequestOptions, uploads as multipartFormRequestOptions,
  uploads as createForm };
`,
  },
  // The SDK's telemetry headers, for the one runtime a Lambda bundle meets (the SDK's own module
  // also tells Deno, edge runtimes and a dozen browsers apart: 2.7 KB). Same header names and values.
  "internal/detect-platform.mjs": {
    exports: ["isRunningInBrowser", "getPlatformHeaders"],
    source: `import { VERSION } from "../version.mjs";
const os = { linux: "Linux", darwin: "MacOS", win32: "Windows", freebsd: "FreeBSD", openbsd: "OpenBSD", android: "Android" };
const arch = { x64: "x64", arm64: "arm64", arm: "arm" };
export const isRunningInBrowser = () => false;
export const getPlatformHeaders = () => ({
  "X-Stainless-Lang": "js",
  "X-Stainless-Package-Version": VERSION,
  "X-Stainless-OS": os[process.platform] ?? \`Other:\${process.platform}\`,
  "X-Stainless-Arch": arch[process.arch] ?? \`other:\${process.arch}\`,
  "X-Stainless-Runtime": "node",
  "X-Stainless-Runtime-Version": process.version,
});
`,
  },
  "auth/workload-identity-auth.mjs": {
    exports: ["WorkloadIdentityAuth"],
    source: `export class WorkloadIdentityAuth { constructor() { ${leftOut("workload identity auth")} } }
`,
  },
};

/**
 * Server-sent events, which only `chat.completions.create({ stream: true })` reads: left out of
 * bundles that never chat (ingest, search), with the line decoder behind them (5.4 KB).
 */
export const openaiStreamingStandIn = {
  "core/streaming.mjs": {
    exports: ["Stream", "_iterSSEMessages"],
    source: `export class Stream {
  static fromSSEResponse() { ${leftOut("streaming")} }
  static fromReadableStream() { ${leftOut("streaming")} }
}
export async function* _iterSSEMessages() { ${leftOut("streaming")} }
`,
  },
};

/**
 * `openaiInternalStandIns` (and, for a bundle that never `streams`, `openaiStreamingStandIn`) as
 * module path (in `dir`) -> stand-in source. Throws (failing the build) when a module is gone or
 * no longer exports a name its stand-in offers.
 * @param {string} dir
 * @param {boolean} [streams]
 * @returns {Map<string, string>}
 */
export function openaiInternals(dir, streams = true) {
  const standIns = new Map();
  const wanted = { ...openaiInternalStandIns, ...(streams ? {} : openaiStreamingStandIn) };
  for (const [relative, { exports, source }] of Object.entries(wanted)) {
    const path = join(dir, relative);
    let text;
    try {
      text = readFileSync(path, "utf8");
    } catch {
      throw new Error(`infra/esbuild-plugins.mjs: openai has no ${relative} any more; revisit openaiInternalStandIns`);
    }
    for (const name of exports) {
      const declared = new RegExp(`export\\s+(?:async\\s+)?(?:function\\*?|class|const|let)\\s+${name}\\b`);
      const listed = new RegExp(`export\\s*\\{[^}]*\\b${name}\\b[^}]*\\}`);
      if (!declared.test(text) && !listed.test(text)) {
        throw new Error(
          `infra/esbuild-plugins.mjs: openai's ${relative} no longer exports ${name}; revisit its stand-in`,
        );
      }
    }
    standIns.set(path, source);
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
 * SDK's own, less the machinery only unused features need (`openaiInternalStandIns`). A bundle
 * keeps about 36 KB of the SDK; one that never chats (`called` without "chat") also leaves out
 * the chat resource and server-sent events. test/unit/build.test.ts embeds and chats through a
 * bundled function against the fake OpenAI server.
 * @param {string[]} [called] the client properties the bundle calls
 * @returns {import("esbuild").Plugin}
 */
export const openaiSlim = (called = openaiResourcesCalled) => ({
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
          standIns = new Map([...openaiStandIns(dir, called), ...openaiInternals(dir, called.includes("chat"))]);
        } catch (error) {
          return fail(error);
        }
        plans.set(dir, standIns);
      }
      const contents = standIns.get(args.path);
      return contents === undefined ? undefined : { contents, loader: "js" };
    });
  },
});

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

/**
 * The plugins of a Lambda bundle that calls the OpenAI client's `called` properties. This file's
 * default export serves bundles that chat; infra/esbuild-plugins-embeddings.mjs those that only embed.
 * @param {string[]} [called]
 */
export const pluginsFor = (called = openaiResourcesCalled) => [neonOnly, openaiSlim(called), builtinsViaRequire];

export default pluginsFor();
