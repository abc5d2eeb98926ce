/**
 * esbuild plugins for the upload function's bundle (the document parsers): those of every function
 * (infra/esbuild-plugins.mjs), and `canvas` as a module that fails to load. linkedom and pdf.js each
 * try `canvas` (a native module) and fall back without it; text extraction never draws. Left unresolved, it
 * would be an import Lambda cannot satisfy.
 */
import plugins from "./esbuild-plugins.mjs";

/** @type {import("esbuild").Plugin} */
export const noCanvas = {
  name: "engram-no-canvas",
  setup(build) {
    build.onResolve({ filter: /^canvas$/ }, () => ({ path: "canvas", namespace: "engram-no-canvas" }));
    build.onLoad({ filter: /.*/, namespace: "engram-no-canvas" }, () => ({
      contents: 'throw new Error("canvas is not in the upload bundle (infra/esbuild-plugins-upload.mjs)");',
      loader: "js",
    }));
  },
};

export default [...plugins, noCanvas];
