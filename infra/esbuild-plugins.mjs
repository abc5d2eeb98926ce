/**
 * esbuild plugins for every Lambda bundle, shared by SST's bundler (`nodejs.plugins` in
 * infra/functions.ts) and `npm run build` (scripts/build.ts). Plain JavaScript because SST loads
 * this file with `node`, outside TypeScript. SST's plugin bridge tests `filter` against something
 * other than the import path, so each filter matches everything and the callback decides.
 * The OpenAI SDK goes in whole: trimming it bought 5-10 ms of import (docs/deploy.md#bundles).
 */
import { isBuiltin } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stub = join(root, "infra", "no-local-drivers.ts");
const dbIndex = join(root, "core", "db", "index.ts");

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
 * Node's own modules through `require` (which SST's banner defines) instead of `import`, whose facade of a
 * built-in's exports costs cold-start time (docs/deploy.md#bundles). Dynamic `import()` stays as written.
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

/** The plugins of every Lambda bundle (infra/functions.ts's `nodejs.plugins`, and `npm run build`). */
export default [neonOnly, builtinsViaRequire];
