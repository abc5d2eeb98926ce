/**
 * esbuild plugins for the MCP function's bundle: those of infra/esbuild-plugins.mjs (its tools
 * chat and embed), and stand-ins for what the MCP SDK carries but Engram's server never reaches:
 * Zod 3 support (every schema here is Zod 4) with its JSON Schema converter, and ajv, which
 * validates tool output schemas and elicitation answers (Engram's tools declare neither). Together
 * ~210 KB of the bundle. Each stand-in names what is missing if it is ever called.
 */
import { join } from "node:path";
import plugins from "./esbuild-plugins.mjs";

const sdk = /[\\/]node_modules[\\/]@modelcontextprotocol[\\/]sdk[\\/]/;
const leftOut = (what) =>
  `throw new Error("Engram's MCP bundle leaves out ${what} of the MCP SDK (infra/esbuild-plugins-mcp.mjs)");`;

/** import path (as the SDK writes it, or resolved for relative ones) -> stand-in source */
const STAND_INS = [
  [/^zod\/v3$/, `export function object() { ${leftOut("Zod 3 schemas")} }`],
  [/^zod-to-json-schema$/, `export function zodToJsonSchema() { ${leftOut("Zod 3 schemas")} }`],
  [
    /[\\/]validation[\\/]ajv-provider\.js$/,
    `export class AjvJsonSchemaValidator { getValidator() { ${leftOut("JSON Schema validation (ajv)")} } }`,
  ],
];

/** @type {import("esbuild").Plugin} */
export const mcpSlim = {
  name: "engram-mcp-slim",
  setup(build) {
    build.onResolve({ filter: /.*/ }, (args) => {
      if (!sdk.test(args.importer)) return undefined;
      const path = args.path.startsWith(".") ? join(args.resolveDir, args.path) : args.path;
      const index = STAND_INS.findIndex(([pattern]) => pattern.test(path));
      return index === -1 ? undefined : { path: String(index), namespace: "engram-mcp-stand-in" };
    });
    build.onLoad({ filter: /.*/ }, (args) => {
      if (args.namespace !== "engram-mcp-stand-in") return undefined;
      return { contents: STAND_INS[Number(args.path)]?.[1], loader: "js" };
    });
  },
};

export default [mcpSlim, ...plugins];
