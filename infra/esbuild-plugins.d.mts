import type { Plugin } from "esbuild";

export const neonOnly: Plugin;
export const openaiSlim: (called?: string[]) => Plugin;
export const builtinsViaRequire: Plugin;
export const openaiResourcesCalled: string[];
export function openaiStandIns(dir: string, called?: string[]): Map<string, string>;
export const openaiInternalStandIns: Record<string, { exports: string[]; source: string }>;
export const openaiStreamingStandIn: Record<string, { exports: string[]; source: string }>;
export function openaiInternals(dir: string, streams?: boolean): Map<string, string>;
export function pluginsFor(called?: string[]): Plugin[];
declare const plugins: Plugin[];
export default plugins;
