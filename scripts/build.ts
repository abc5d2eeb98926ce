/**
 * `npm run build`: bundles every Lambda the way SST does at deploy (esbuild, ESM, node platform,
 * minified, tree-shaken, keepNames, SST's `createRequire` banner, the plugins in
 * infra/esbuild-plugins.mjs) into dist/lambda/<name>/index.mjs with a source map beside it (for
 * reading; the deploy leaves maps out, see infra/functions.ts), prints each bundle's size and its
 * largest parts, and fails when a bundle holds a module that must never reach Lambda.
 *
 *   npm run build [-- --out DIR] [-- --strict]     (--strict also fails over the size budget)
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { isBuiltin } from "node:module";
import { join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { gzipSync } from "node:zlib";
import { type BuildOptions, build, type Metafile, type Plugin } from "esbuild";
import lambdaPlugins from "../infra/esbuild-plugins.mjs";
import { type Lambda, lambdas } from "../infra/functions";

const root = fileURLToPath(new URL("..", import.meta.url));

export interface Entry {
  name: keyof typeof lambdas;
  source: string;
  /** Minified size budget in bytes. */
  budget: number;
}

const KB = 1024;
/** One bundle per handler file of infra/functions.ts's inventory (the streaming URL shares chat's). */
export const ENTRIES: Entry[] = Object.entries(lambdas as Record<keyof typeof lambdas, Lambda>).flatMap(
  ([name, lambda]) =>
    lambda.budget === undefined
      ? []
      : [{ name: name as keyof typeof lambdas, source: lambda.file, budget: lambda.budget }],
);

/** Inputs that must never be in a Lambda bundle, and why. */
export const FORBIDDEN: { pattern: RegExp; why: string }[] = [
  { pattern: /node_modules\/(pg|pg-[a-z-]+|pgpass|postgres-[a-z-]+)\//, why: "pg (Lambda uses Neon's HTTP driver)" },
  { pattern: /node_modules\/@electric-sql\/pglite/, why: "PGlite (local only)" },
  { pattern: /^core\/db\/(pg|pglite)\.ts$/, why: "a local database driver" },
  { pattern: /^cli\//, why: "the CLI or the local server" },
  { pattern: /^(kit|test|bench|eval)\//, why: "test or benchmark code" },
];

/** The document parsers: only the upload function may hold them (they would slow every other cold start). */
export const EXTRACTORS: { pattern: RegExp; why: string } = {
  pattern:
    /node_modules\/(unpdf|mammoth|@mozilla\/readability|linkedom|jszip|@asciidoctor\/core)\/|^core\/extract\/(?!schema\.ts$)/,
  why: "a document parser (only the upload function holds them)",
};

/** SST's banner for ESM bundles (pkg/runtime/node/build.go): CommonJS dependencies get `require`. */
const BANNER = [
  `import { createRequire as topLevelCreateRequire } from 'module';`,
  "const require = topLevelCreateRequire(import.meta.url);",
  `import { fileURLToPath as topLevelFileUrlToPath, URL as topLevelURL } from "url"`,
  "const __filename = topLevelFileUrlToPath(import.meta.url)",
  `const __dirname = topLevelFileUrlToPath(new topLevelURL(".", import.meta.url))`,
].join("\n");

/** The plugins infra/functions.ts gives the function `name` at deploy: its `nodejs.plugins` file, loaded as SST does. */
export async function pluginsOf(name: keyof typeof lambdas): Promise<Plugin[]> {
  return (await import(pathToFileURL(join(root, lambdas[name].settings.nodejs.plugins)).href)).default;
}

export const esbuildOptions = (entry: string, outfile: string, plugins = lambdaPlugins): BuildOptions => ({
  entryPoints: [entry],
  outfile,
  absWorkingDir: root,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  mainFields: ["module", "main"],
  minify: true,
  keepNames: true,
  sourcemap: "linked",
  metafile: true,
  banner: { js: BANNER },
  plugins,
  logLevel: "silent",
});

export interface BundleReport {
  name: string;
  file: string;
  bytes: number;
  gzipBytes: number;
  budget: number;
  /** Largest contributors: npm package or our folder, with their bytes in the output. */
  largest: { part: string; bytes: number }[];
  forbidden: string[];
}

/** What a metafile says must not ship: forbidden inputs, and imports left for runtime that Lambda cannot satisfy. */
export function findForbidden(metafile: Metafile, parsersAllowed = false): string[] {
  const found: string[] = [];
  const rules = parsersAllowed ? FORBIDDEN : [...FORBIDDEN, EXTRACTORS];
  for (const path of Object.keys(metafile.inputs)) {
    const hit = rules.find((f) => f.pattern.test(path));
    if (hit) found.push(`${path} (${hit.why})`);
  }
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      if (imported.external && !isBuiltin(imported.path)) {
        found.push(`${imported.path} (left external: Lambda has no node_modules)`);
      }
    }
  }
  return found;
}

function largestParts(metafile: Metafile, outfile: string): BundleReport["largest"] {
  const output = Object.entries(metafile.outputs).find(
    ([path]) => path.endsWith(".mjs") && resolve(root, path) === outfile,
  );
  const parts = new Map<string, number>();
  for (const [path, { bytesInOutput }] of Object.entries(output?.[1].inputs ?? {})) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
    const part = pkg ?? path.split("/").slice(0, 2).join("/");
    parts.set(part, (parts.get(part) ?? 0) + bytesInOutput);
  }
  return [...parts].map(([part, bytes]) => ({ part, bytes })).sort((a, b) => b.bytes - a.bytes);
}

/** Bundles every entry into `outDir/<name>/index.mjs`. */
export async function buildLambdas(outDir = join(root, "dist", "lambda"), entries = ENTRIES): Promise<BundleReport[]> {
  rmSync(outDir, { recursive: true, force: true });
  return Promise.all(
    entries.map(async (entry) => {
      const file = join(outDir, entry.name, "index.mjs");
      mkdirSync(join(outDir, entry.name), { recursive: true });
      const plugins = await pluginsOf(entry.name);
      const result = await build({ ...esbuildOptions(entry.source, file, plugins), write: false });
      let bytes = 0;
      let gzipBytes = 0;
      for (const out of result.outputFiles ?? []) {
        writeFileSync(out.path, out.contents);
        if (out.path.endsWith(".mjs")) {
          bytes = out.contents.byteLength;
          gzipBytes = gzipSync(out.contents).byteLength;
        }
      }
      const metafile = result.metafile as Metafile;
      return {
        name: entry.name,
        file,
        bytes,
        gzipBytes,
        budget: entry.budget,
        largest: largestParts(metafile, file),
        forbidden: findForbidden(metafile, entry.name === "upload"),
      };
    }),
  );
}

const kb = (bytes: number) => `${(bytes / KB).toFixed(1)} KB`;

export function formatReport(reports: BundleReport[]): string {
  const lines = ["bundle    minified   gzip      budget    largest parts"];
  for (const r of reports) {
    const over = r.bytes > r.budget ? " OVER" : "";
    const parts = r.largest
      .slice(0, 5)
      .map((p) => `${p.part} ${kb(p.bytes)}`)
      .join(", ");
    lines.push(
      `${r.name.padEnd(9)} ${kb(r.bytes).padStart(9)}  ${kb(r.gzipBytes).padStart(8)}  ${kb(r.budget).padStart(8)}${over.padEnd(5)}  ${parts}`,
    );
  }
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const outFlag = process.argv.indexOf("--out");
  const outDir = outFlag > 0 ? resolve(process.argv[outFlag + 1] ?? "") : undefined;
  const reports = await buildLambdas(outDir);
  console.log(formatReport(reports));
  console.log(`\nwritten to ${relative(process.cwd(), join(reports[0]?.file ?? "", "..", ".."))}/<name>/index.mjs`);
  const forbidden = reports.filter((r) => r.forbidden.length);
  for (const r of forbidden)
    console.error(`\n${r.name}: forbidden modules in the bundle:\n  ${r.forbidden.join("\n  ")}`);
  const over = reports.filter((r) => r.bytes > r.budget);
  if (over.length)
    console.error(`\nover budget: ${over.map((r) => `${r.name} (${kb(r.bytes)} > ${kb(r.budget)})`).join(", ")}`);
  process.exit(forbidden.length || (over.length && process.argv.includes("--strict")) ? 1 : 0);
}
