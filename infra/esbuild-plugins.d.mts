import type { Plugin } from "esbuild";

export const neonOnly: Plugin;
declare const plugins: Plugin[];
export default plugins;
