/**
 * Builds the console (console/src, plain TypeScript and CSS) with esbuild into console/dist:
 * `assets/<name>-<hash>.js|css` (safe to cache forever) and an `index.html` that names them.
 * `build.json` records a hash of every input (console/ and the files it imports from client/, core/
 * and packages), so `--if-stale` rebuilds only when the sources changed: `npm install`, `npm start`
 * and `npm run dev` run it first (package.json), and a fresh clone builds it once, in well under a
 * second. The local server only serves the result (cli/console.ts).
 *
 *   npm run build:console                                        # build now
 *   node bin/run-ts.js scripts/build-console.ts --if-stale     # build when the sources changed
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import { ASSETS_PATH, DIST_DIR } from "../cli/console";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const CONSOLE_DIR = join(ROOT, "console");

export interface BuildInfo {
  inputHash: string;
  /** The files outside console/ the bundle read (esbuild's metafile), from the root: their changes count too. */
  imports: string[];
  builtAt: string;
  script: string;
  style: string;
}

function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true })
    .flatMap((entry) => (entry.isDirectory() ? listFiles(join(dir, entry.name)) : [join(dir, entry.name)]))
    .sort();
}

/** A hash of everything the build reads: the page template, the sources, this script and what they import. */
export function inputHash(imports: string[]): string {
  const hash = createHash("sha256");
  const inputs = [
    join(CONSOLE_DIR, "index.html"),
    join(CONSOLE_DIR, "tsconfig.json"),
    ...listFiles(join(CONSOLE_DIR, "src")),
    fileURLToPath(import.meta.url),
    ...imports.map((file) => join(ROOT, file)),
  ];
  for (const file of inputs) {
    if (!existsSync(file)) continue;
    hash.update(relative(ROOT, file)).update("\0").update(readFileSync(file)).update("\0");
  }
  return hash.digest("hex").slice(0, 16);
}

export function readBuildInfo(dir = DIST_DIR): BuildInfo | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, "build.json"), "utf8")) as BuildInfo;
  } catch {
    return undefined;
  }
}

/** Builds into a fresh folder, then swaps it in, so a server never serves half a build. */
export async function buildConsole(): Promise<BuildInfo> {
  const { build } = await import("esbuild");
  const staging = join(CONSOLE_DIR, `.dist-${process.pid}-${randomBytes(4).toString("hex")}`);
  const assets = join(staging, "assets");
  mkdirSync(assets, { recursive: true });
  try {
    const result = await build({
      absWorkingDir: ROOT,
      entryPoints: { app: "console/src/main.ts", style: "console/src/styles.css" },
      bundle: true,
      format: "esm",
      platform: "browser",
      target: ["es2022", "chrome111", "firefox115", "safari16.4"],
      minify: true,
      sourcemap: "linked",
      legalComments: "none",
      entryNames: "[name]-[hash]",
      assetNames: "[name]-[hash]",
      outdir: assets,
      tsconfig: "console/tsconfig.json",
      metafile: true,
      logLevel: "silent",
    });
    // What the sources import is known once they are bundled.
    const imports = Object.keys(result.metafile.inputs)
      .filter((file) => !file.startsWith("console/"))
      .sort();
    const hash = inputHash(imports);
    const outputs = Object.entries(result.metafile.outputs);
    const nameOf = (entry: string) => {
      const found = outputs.find(([, output]) => output.entryPoint === entry);
      if (!found) throw new Error(`esbuild produced no output for ${entry}`);
      return relative(assets, resolve(ROOT, found[0]));
    };
    const info: BuildInfo = {
      inputHash: hash,
      imports,
      builtAt: new Date().toISOString(),
      script: nameOf("console/src/main.ts"),
      style: nameOf("console/src/styles.css"),
    };
    const template = readFileSync(join(CONSOLE_DIR, "index.html"), "utf8");
    const html = template
      .replace("%STYLE%", `${ASSETS_PATH}${info.style}`)
      .replace("%SCRIPT%", `${ASSETS_PATH}${info.script}`);
    if (html.includes("%STYLE%") || html.includes("%SCRIPT%") || html === template) {
      throw new Error("console/index.html must name %STYLE% and %SCRIPT% once each");
    }
    writeFileSync(join(staging, "index.html"), html);
    writeFileSync(join(staging, "build.json"), `${JSON.stringify(info, null, 2)}\n`);
    swapIn(staging, hash);
    return info;
  } catch (error) {
    rmSync(staging, { recursive: true, force: true });
    throw error;
  }
}

function swapIn(staging: string, hash: string) {
  for (let attempt = 0; attempt < 3; attempt++) {
    rmSync(DIST_DIR, { recursive: true, force: true });
    try {
      renameSync(staging, DIST_DIR);
      return;
    } catch (error) {
      // Another process (a second server, a test worker) swapped in the same build first.
      if (readBuildInfo()?.inputHash === hash) {
        rmSync(staging, { recursive: true, force: true });
        return;
      }
      if (attempt === 2) throw error;
    }
  }
}

/** The current build, made first when console/dist is missing or older than its sources. */
export async function ensureConsoleBuilt(): Promise<{ info: BuildInfo; built: boolean }> {
  const current = readBuildInfo();
  // A build.json without `imports` predates this script's version, so its hash no longer matches anyway.
  if (current && current.inputHash === inputHash(current.imports ?? []) && existsSync(join(DIST_DIR, "index.html"))) {
    return { info: current, built: false };
  }
  return { info: await buildConsole(), built: true };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = performance.now();
  const { info, built } = process.argv.includes("--if-stale")
    ? await ensureConsoleBuilt()
    : { info: await buildConsole(), built: true };
  if (built) {
    console.log(
      `console built in ${Math.round(performance.now() - started)} ms: ${relative(ROOT, DIST_DIR)}/ (${info.script}, ${info.style})`,
    );
  }
}
