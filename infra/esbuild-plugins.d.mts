import type { Plugin } from "esbuild";

export const neonOnly: Plugin;
export const zodNamespace: Plugin;
declare const plugins: Plugin[];
export default plugins;
