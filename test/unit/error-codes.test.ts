/**
 * docs/contract.md's "Error codes" table against the code: every code the source can answer is listed, and every
 * listed code is one the source has. A code added without a line in the table, or a line left for a code that is
 * gone, fails here.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const FOLDERS = ["core", "functions", "cli", "client", "infra"];
const PREFIXES =
  "request|auth|user|route|ingest|document|upload|extract|search|chat|conversation|ratelimit|database|embedding|config|tenant|key|data|cli|network|reembed|server";

/** Dotted string literals of the error-code families, in every source file. */
function literals(): Set<string> {
  const found = new Set<string>();
  const pattern = new RegExp(`"((?:${PREFIXES})\\.[a-z_]+)"`, "g");
  for (const folder of FOLDERS) {
    for (const entry of readdirSync(join(ROOT, folder), { recursive: true, withFileTypes: true })) {
      if (!entry.isFile() || !entry.name.endsWith(".ts")) continue;
      const text = readFileSync(join(entry.parentPath, entry.name), "utf8");
      for (const match of text.matchAll(pattern)) found.add(match[1] as string);
    }
  }
  return found;
}

function documented(): string[] {
  const doc = readFileSync(join(ROOT, "docs/contract.md"), "utf8");
  const table = doc.slice(doc.indexOf("### Error codes"), doc.indexOf("## Routes"));
  return [...table.matchAll(/^\| `([a-z_.]+)` \| \d{3}/gm)].map((m) => m[1] as string);
}

/** Codes no HTTP answer carries: the CLI's and the client's own, and jobs' (re-embed, migrations at start). */
const NOT_ANSWERED = new Set([
  "chat.no_body", // the client: a streamed answer without a body
  "chat.stream_in_call", // the client: call() with a chat body asking for a stream, refused before sending
  "cli.invalid_option",
  "config.mismatch", // migrations, at start
  "data.in_use", // the CLI, while the local server holds the data folder
  "embedding.dimensions", // re-embedding
  "key.not_found", // `engram keys revoke`
  "network.unreachable", // the client
  "ratelimit.invalid_class", // `engram tenants set-limits`
  "ratelimit.invalid_rate",
  "reembed.lease_lost",
  "server.cannot_listen", // `engram start`
  "server.port_in_use",
  "tenant.invalid_name", // `engram tenants` / `keys create`
  "tenant.not_found", // the CLI, and the local server's own re-embed route
]);
/** Literals of the same families that are no error code. */
const NOT_CODES = new Set(["server.json", "tenant.chat"]);
/** Codes made from a template (`${what}.failed` in core/error.ts), and the bare `internal`. */
const BUILT = ["chat.failed", "chat.rate_limited", "embedding.failed", "embedding.rate_limited", "internal"];

describe("the error codes in docs/contract.md", () => {
  const table = documented();
  const source = literals();

  it("list every code the API can answer", () => {
    const missing = [...source].filter(
      (code) => !NOT_ANSWERED.has(code) && !NOT_CODES.has(code) && !table.includes(code),
    );
    expect(missing).toEqual([]);
  });

  it("list only codes the source has, each once", () => {
    expect(table.length).toBeGreaterThan(50);
    expect(table.filter((code) => !source.has(code) && !BUILT.includes(code))).toEqual([]);
    expect(table.filter((code, i) => table.indexOf(code) !== i)).toEqual([]);
    expect(BUILT.filter((code) => code !== "internal" && !table.includes(code))).toEqual([]);
  });

  it("leave out only codes the source still has", () => {
    expect([...NOT_ANSWERED, ...NOT_CODES].filter((code) => !source.has(code))).toEqual([]);
  });
});
