import type { Plugin } from "esbuild";

export const neonOnly: Plugin;
export const openaiSlim: Plugin;
export const builtinsViaRequire: Plugin;
export const openaiResourcesCalled: string[];
export function openaiStandIns(dir: string): Map<string, string>;
declare const plugins: Plugin[];
export default plugins;
