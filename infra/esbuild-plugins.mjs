/**
 * esbuild plugins for every Lambda bundle, shared by SST's bundler (`nodejs.plugins` in
 * infra/functions.ts) and `npm run build` (scripts/build.ts). Plain JavaScript because SST loads
 * this file with `node`, outside TypeScript. SST's plugin bridge tests `filter` against something
 * other than the import path, so each filter matches everything and the callback decides.
 */
import { readFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const stub = join(root, "infra", "no-local-drivers.ts");
const dbIndex = join(root, "core", "db", "index.ts");
const sources = [join(root, "core") + sep, join(root, "functions") + sep];

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

const namedZ = /import\s*\{\s*z\s*\}\s*from\s*(["'])zod\1/g;

/**
 * `import { z } from "zod"` makes esbuild keep all of zod 4, every locale included (about
 * 360 KB minified); `import * as z from "zod"` lets it keep only what is used. Same binding, same
 * behaviour: this rewrites the first form into the second in our own sources.
 * @type {import("esbuild").Plugin}
 */
export const zodNamespace = {
  name: "engram-zod-namespace",
  setup(build) {
    build.onLoad({ filter: /.*/ }, async (args) => {
      if (!args.path.endsWith(".ts") || !sources.some((dir) => args.path.startsWith(dir))) return undefined;
      const text = await readFile(args.path, "utf8");
      const contents = text.replace(namedZ, 'import * as z from "zod"');
      return contents === text ? undefined : { contents, loader: "ts" };
    });
  },
};

export default [neonOnly, zodNamespace];
