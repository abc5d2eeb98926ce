import type { Plugin } from "esbuild";

export const neonOnly: Plugin;
export const builtinsViaRequire: Plugin;
declare const plugins: Plugin[];
export default plugins;
