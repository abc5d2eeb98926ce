/**
 * `engram` — the command line. Every command has --help; errors are one line and a
 * non-zero exit.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { $ZodError } from "zod/v4/core";
import { EngramApiError } from "../client";
import { fromZod } from "../core/api/http";
import * as Auth from "../core/auth";
import * as Cleanup from "../core/cleanup";
import { config, setConfig, VERSION } from "../core/config";
import { closeDb } from "../core/db";
import { isConnectionError } from "../core/db/errors";
import { EngramError } from "../core/error";
import * as Log from "../core/log";
import * as RateLimit from "../core/ratelimit";
import * as Tenant from "../core/tenant";
import { engramUrl, ensureSaid } from "./client";
import { registerDataCommands, wholeNumber } from "./data";
import { LOCAL_TENANT, openLocalDb } from "./local";
import { printable } from "./printable";

// `engram search … | head` closes stdout early: the reader has what it wanted, so stop quietly (no stack trace), with
// the exit code the command already set (an ingest with failed files is 1 however much of its summary was read).
process.stdout.on("error", (error: NodeJS.ErrnoException) => {
  if (error.code === "EPIPE") process.exit(typeof process.exitCode === "number" ? process.exitCode : 0);
  throw error;
});

/** A URL's origin, for a message: never its credentials or path. */
const originOf = (url: string) => {
  try {
    return new URL(url).origin;
  } catch {
    return "not a URL";
  }
};

/** Commands that open the database themselves: no API serves them. */
const DATABASE_ONLY = new Set(["migrate", "keys", "tenants", "cleanup", "reembed"]);

const program = new Command("engram")
  .description("Engram: memory and retrieval-augmented chat on Postgres + pgvector")
  .version(VERSION)
  // A usage error is one line, as every other error (commander's own hint would be a second).
  .configureOutput({
    outputError: (text, write) =>
      write(`engram: ${printable(text.trim().replace(/^error: /, ""))} (run with --help for usage)\n`),
  })
  .exitOverride()
  // A command's stdout is its answer (a key, JSON, a summary); the server's log is its output.
  .hook("preAction", (root, command) => {
    if (command.name() === "start") return;
    // These work on a database itself: with ENGRAM_URL set, the user means the deployed one, and running on this
    // machine's store instead (a new embedded one, made in the current folder) reported on the wrong data.
    let top = command;
    while (top.parent && top.parent !== root) top = top.parent;
    // With DATABASE_URL the database is named, and meant (a deploy's `engram migrate` beside a smoke test's URL).
    if (DATABASE_ONLY.has(top.name()) && process.env.ENGRAM_URL && config().database.driver === "pglite") {
      throw new EngramError(
        "input",
        "cli.invalid_option",
        `the ${top.name()} command works on a database itself (DATABASE_URL, else the embedded folder), not through ENGRAM_URL (${originOf(process.env.ENGRAM_URL)}): set DATABASE_URL to the database meant, or unset ENGRAM_URL to use this machine's embedded store`,
      );
    }
    Log.toStderr();
    // A command says what happened in its own words; the service's warnings and errors, JSON lines meant for a
    // log, came before them (`engram reembed` stopped by the provider). LOG_LEVEL set by the user still shows them.
    if (process.env.LOG_LEVEL === undefined && command.name() !== "mcp") setConfig({ LOG_LEVEL: "silent" });
  });

program
  .command("start")
  .description("run the local server (embedded PGlite unless DATABASE_URL is set)")
  .addOption(new Option("-p, --port <port>", "port to listen on (default: PORT or 3000)").argParser(parsePort))
  .option("--host <host>", "interface to listen on", "127.0.0.1")
  .option(
    "--reembed",
    "also re-embed the local tenant's chunks of other models with the configured one, in the background",
  )
  .action(async (options: { port?: number; host: string; reembed?: boolean }) => {
    if (options.port !== undefined) setConfig({ PORT: String(options.port) });
    const { start } = await import("./start");
    await start({ host: options.host, reembed: options.reembed });
  });

program
  .command("migrate")
  .description("apply pending database migrations")
  .action(async () => {
    let applied: string[] = [];
    await openLocalDb(config(), { migrated: (ids) => (applied = ids) });
    const driver = config().database.driver;
    console.log(
      applied.length
        ? `applied ${applied.length} migration${applied.length === 1 ? "" : "s"} (${applied[0]}${applied.length > 1 ? ` to ${applied.at(-1)}` : ""}); the database is up to date (${driver})`
        : `database is up to date (${driver})`,
    );
  });

const keys = program.command("keys").description("manage API keys");
keys
  .command("create")
  .description("create an API key; prints the key alone (shown once, never stored)")
  .option("--tenant <name>", "tenant the key belongs to (created if missing)", LOCAL_TENANT)
  .option("--name <name>", "a label for the key")
  .option("--json", "print JSON with the key, prefix and tenant")
  .action(async (options: { tenant: string; name?: string; json?: boolean }) => {
    const db = await openLocalDb();
    if (options.tenant !== LOCAL_TENANT) await ensureSaid(db, options.tenant);
    const created = await Auth.createKey(db, options.tenant, options.name);
    console.log(options.json ? JSON.stringify(created) : created.key);
  });
keys
  .command("list")
  .description("list a tenant's keys (prefixes only)")
  .option("--tenant <name>", "tenant", LOCAL_TENANT)
  .option("--json", "print JSON")
  .action(async (options: { tenant: string; json?: boolean }) => {
    const db = await openLocalDb();
    // `local` is every command's default tenant, made on first use: before that it has no keys, it is not missing.
    const list = await Auth.listKeys(db, options.tenant).catch((error) => {
      if (options.tenant === LOCAL_TENANT && error instanceof EngramError && error.code === "tenant.not_found")
        return [];
      throw error;
    });
    if (options.json) return console.log(JSON.stringify(list));
    if (!list.length) return console.log(`no keys for tenant ${options.tenant}`);
    for (const k of list) {
      const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : "active";
      const used = k.lastUsedAt ? `last used ${k.lastUsedAt.toISOString()}` : "never used";
      console.log(printable(`${k.prefix}  ${state.padEnd(33)} ${used.padEnd(35)} ${k.name ?? ""}`.trimEnd()));
    }
  });
keys
  .command("revoke")
  .description("revoke a key by its prefix, or the whole key (effective at once)")
  .argument("<prefix>", "the key's prefix, e.g. egm_AbCdEfGh, or the key itself")
  .action(async (given: string) => {
    const db = await openLocalDb();
    const revoked = await Auth.revokeKey(db, given);
    console.log(
      revoked.revokedBefore
        ? `${revoked.prefix} (tenant ${revoked.tenant}) was already revoked, at ${revoked.revokedBefore.toISOString()}`
        : `revoked ${revoked.prefix} (tenant ${revoked.tenant})`,
    );
  });

const tenants = program.command("tenants").description("manage tenants");
tenants
  .command("create")
  .description(
    "create a tenant (no-op when it exists); a new one is said on stderr, naming any that differs only in case",
  )
  .argument("<name>", "tenant name")
  .action(async (name: string) => {
    const db = await openLocalDb();
    // As keys create and ingest: `tenants create Acme` beside `acme` made a second tenant without a word.
    const tenant = await ensureSaid(db, name);
    console.log(`tenant ${tenant.name} (${tenant.id})`);
  });

tenants
  .command("list")
  .description("list the tenants, each with its active keys and the rate limits it overrides")
  .option("--json", "print JSON")
  .action(async (options: { json?: boolean }) => {
    const db = await openLocalDb();
    const all = await Tenant.list(db);
    if (options.json) return console.log(JSON.stringify(all));
    if (!all.length) return console.log("no tenants");
    for (const t of all) {
      const limits = Object.entries(t.rateLimits).map(([k, v]) => `${k} ${v}`);
      const keys = `${t.activeKeys} active key${t.activeKeys === 1 ? "" : "s"}`;
      console.log(
        printable(`${t.name}  ${keys.padEnd(14)} ${limits.length ? `limits: ${limits.join(", ")}` : "default limits"}`),
      );
    }
  });

tenants
  .command("set-limits")
  .description(
    "override a tenant's rate limits per route class: each end user's (--chat 20/min) and the tenant-wide ceiling all its users share (--tenant-chat 100/min); 'default' removes an override",
  )
  .argument("<name>", "tenant name")
  .option("--chat <rate>", "chat requests, e.g. 20/min")
  .option("--search <rate>", "search requests, e.g. 120/min")
  .option("--ingest <rate>", "ingest requests, e.g. 30/min")
  .option("--default <rate>", "every other route, e.g. 300/min")
  .option("--tenant-chat <rate>", "the tenant's chat ceiling, shared by all its end users, e.g. 100/min")
  .option("--tenant-search <rate>", "the tenant's search ceiling, e.g. 600/min")
  .option("--tenant-ingest <rate>", "the tenant's ingest ceiling, e.g. 150/min")
  .option("--tenant-default <rate>", "the tenant's ceiling for every other route, e.g. 1500/min")
  .action(async (name: string, options: Record<string, string | undefined>) => {
    const db = await openLocalDb();
    // Commander camel-cases --tenant-chat to tenantChat; stored as "tenant.chat".
    const flags = ["chat", "search", "ingest", "default"].flatMap((c) => [
      [c, c],
      [`tenant${c[0]?.toUpperCase()}${c.slice(1)}`, `tenant.${c}`],
    ]);
    const limits = Object.fromEntries(
      flags
        .filter(([flag]) => options[flag as string] !== undefined)
        .map(([flag, key]) => [key, options[flag as string] === "default" ? null : options[flag as string]]),
    );
    if (!Object.keys(limits).length) {
      throw new Error("give at least one of --chat, --search, --ingest, --default or their --tenant-* ceilings");
    }
    await Tenant.get(db, name);
    const now = await RateLimit.setLimits(db, name, limits);
    console.log(
      `tenant ${name} limits: ${
        Object.entries(now)
          .map(([k, v]) => `${k} ${v}`)
          .join(", ") || "defaults"
      }`,
    );
    // A ceiling set below one end user's rate holds (the tenant chose it); said, as one user alone can then spend it.
    for (const rateClass of RateLimit.CLASSES) {
      const asked = now[RateLimit.ceilingName(rateClass)];
      if (asked === undefined) continue;
      const ceiling = RateLimit.parseRate(asked);
      const own = RateLimit.policyFor({ tenantId: "", rateLimits: now }, rateClass);
      if (ceiling.limit > 0 && ceiling.limit / ceiling.windowSeconds < own.limit / own.windowSeconds)
        console.error(
          `note: ${RateLimit.ceilingName(rateClass)} ${asked} is below one end user's ${rateClass} rate (${own.limit} per ${own.windowSeconds} s): one user alone can spend the tenant's ceiling`,
        );
    }
  });

program
  .command("cleanup")
  .description(
    "delete expired rate-limit rows, cache entries, ingestion records and documents past TTL or retention; index waiting chunks",
  )
  .option("--json", "print JSON")
  .action(async (options: { json?: boolean }) => {
    const db = await openLocalDb();
    const report = await Cleanup.run(db);
    if (options.json) return console.log(JSON.stringify(report));
    const r = report.removed;
    console.log(
      `removed ${r.rateLimits} rate-limit rows, ${r.cache} cache entries, ${r.ingestions} ingestion records, ` +
        `${r.expiredDocuments} expired documents, ${r.deletedDocuments} deleted documents, ${r.searchTerms} empty keyword statistics; ` +
        `indexed ${report.indexed} chunks, ` +
        `re-embedded ${report.reembedded} chunks, ` +
        `dropped ${report.droppedIndexes.length} unused HNSW indexes ` +
        `(${report.tookMs} ms${report.complete ? "" : ", more left for the next run"})`,
    );
  });

program
  .command("reembed")
  .description(
    "re-embed a tenant's chunks of other models with the configured one, in resumable batches; search keeps answering meanwhile",
  )
  .addOption(new Option("--tenant <name>", "tenant").default(LOCAL_TENANT).conflicts("allTenants"))
  .option("--all-tenants", "every tenant with chunks of another model, one after another")
  .option("--dry-run", "print what it would embed (chunks, texts, estimated tokens) and change nothing")
  // The default is shown, not set: a value set is one the user chose, said as not applied when a running server
  // re-embeds in its own batches (cli/reembed.ts). 256 is core/embedding/reembed.ts's.
  .addOption(
    new Option(
      "--batch-size <n>",
      "chunks per batch (default: 256; the local server, if running, uses its own)",
    ).argParser(wholeNumber(1, 10_000)),
  )
  .option("--json", "print JSON")
  .action(
    async (options: { tenant: string; allTenants?: boolean; dryRun?: boolean; json?: boolean; batchSize?: number }) => {
      const { reembed } = await import("./reembed");
      await reembed(options);
    },
  );

registerDataCommands(program);

program
  .command("mcp")
  .description("serve Engram's memory tools to an MCP client on stdio (local store, or ENGRAM_URL)")
  .addOption(new Option("--url <url>", "a remote Engram to talk to (default: the local store)").env("ENGRAM_URL"))
  .addOption(new Option("--key <key>", "its API key").env("ENGRAM_API_KEY"))
  .addOption(new Option("--user <id>", "the end user whose memory this is (X-User-Id)").env("ENGRAM_USER_ID"))
  .option("--tenant <name>", `tenant, for the local store (default: ${LOCAL_TENANT})`)
  .action(async (options: { url?: string; key?: string; user?: string; tenant?: string }) => {
    const { serveStdio } = await import("./mcp");
    // The URL as the data commands read it (an empty one is none, a copied /v1 dropped). An empty ENGRAM_USER_ID is
    // refused, as --user "" is: an MCP client's env block with the value left blank would put the user's memories in
    // the shared space.
    await serveStdio({
      url: engramUrl(options.url),
      apiKey: options.key,
      userId: options.user,
      tenant: options.tenant,
    });
  });

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError("expected a port number, 0 to 65535");
  return port;
}

/** One line for a person, never a stack. */
function describe(error: unknown): string {
  if (error instanceof EngramError) return error.code === "database.unavailable" ? databaseLine(error) : error.message;
  // Input the CLI validates in-process (no server running): the HTTP API's own sentence for it.
  if (error instanceof $ZodError) return fromZod(error).message;
  // The HTTP API's own answer, or that it could not be reached (a deployed Engram down is no database's fault).
  if (error instanceof EngramApiError) return error.message;
  if (isConnectionError(error)) return databaseLine(error);
  return error instanceof Error ? error.message : String(error);
}

function databaseLine(error: unknown): string {
  let host = "the database";
  try {
    const url = config().database.url;
    if (url) host = new URL(url).host || host;
  } catch {}
  const cause =
    (error as { cause?: { code?: string; message?: string } }).cause ?? (error as { code?: string; message?: string });
  // The server answered but refused (a database that does not exist, a wrong password): its own words say which.
  // A SQLSTATE has a digit; Node's EPIPE or EBUSY, five capitals too, has none.
  if (cause?.code && /^(?=.*\d)[0-9A-Z]{5}$/.test(cause.code) && cause.message)
    return `the database server at ${host} refused the connection: ${cause.message} (${cause.code})`;
  return `cannot reach the database at ${host}${cause?.code ? ` (${cause.code})` : cause?.message ? ` (${cause.message})` : ""}`;
}

try {
  await program.parseAsync(process.argv);
  if (program.args[0] !== "start") await closeDb();
} catch (error) {
  if (error instanceof CommanderError) {
    // --help and --version exit 0; usage errors were already printed by commander.
    process.exitCode = error.exitCode;
  } else {
    // A message may quote what anyone stored or typed (a path, a name, a server's answer): one line a terminal only shows.
    console.error(`engram: ${printable(describe(error))}`);
    process.exitCode = 1;
  }
  await closeDb().catch(() => {});
}
