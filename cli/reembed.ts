/** `engram reembed`: moves a tenant's chunks to the configured embedding model (core/embedding/reembed.ts). */
import { config } from "../core/config";
import type { Db } from "../core/db";
import { embedder as configured } from "../core/embedding";
import * as Reembed from "../core/embedding/reembed";
import * as Tenant from "../core/tenant";
import { ADMIN_REEMBED, type ReembedStatus } from "./admin";
import { LOCAL_TENANT, openLocalDb, runningServer, type ServerLock, storedLocalKey } from "./local";

export interface ReembedOptions {
  tenant: string;
  /** Every tenant with chunks of another model, one after another (a switch of models is a run per tenant). */
  allTenants?: boolean;
  dryRun?: boolean;
  json?: boolean;
  batchSize?: number;
}

const n = (value: number) => value.toLocaleString("en-US");

/**
 * A one-line progress bar on a terminal (stderr); a line every 10% elsewhere. `total` is what is done plus what is
 * left (both callers count it so), never a count taken before the run, so the share is at most 1 unclamped.
 */
function progressBar(label: string) {
  const tty = process.stderr.isTTY;
  let lastTenth = -1;
  return {
    update({ done, total }: { done: number; total: number }) {
      const share = total ? done / total : 1;
      if (tty) {
        const width = 30;
        const filled = Math.round(share * width);
        process.stderr.write(
          `\r${label} [${"#".repeat(filled)}${".".repeat(width - filled)}] ${n(done)}/${n(total)} chunks (${Math.floor(share * 100)}%)`,
        );
      } else if (Math.floor(share * 10) > lastTenth) {
        lastTenth = Math.floor(share * 10);
        process.stderr.write(`${label}: ${n(done)}/${n(total)} chunks\n`);
      }
    },
    end() {
      if (tty) process.stderr.write("\n");
    },
  };
}

export async function reembed(options: ReembedOptions): Promise<void> {
  const cfg = config();
  const server = runningServer(cfg);
  // Embedded PGlite has one process: while the local server holds it, the server does the work.
  if (server) {
    if (options.allTenants)
      throw new Error(
        `--all-tenants reads every tenant from the database, which the local server (${server.url}) holds: stop it, run this, then start it again`,
      );
    return throughServer(server, options);
  }
  const db = await openLocalDb(cfg);
  if (!options.allTenants) {
    // The local tenant exists from the first command on (as for every data command), so a new store has nothing to do.
    const tenant =
      options.tenant === LOCAL_TENANT ? await Tenant.ensure(db, LOCAL_TENANT) : await Tenant.get(db, options.tenant);
    return reembedTenant(db, tenant, options);
  }
  const model = configured().model;
  const tenants = await Reembed.tenantsWithStale(db, model);
  if (!tenants.length) {
    if (options.json) console.log(JSON.stringify({ tenants: [] }));
    else console.log(`nothing to re-embed: every chunk of every tenant is of ${model}`);
    return;
  }
  // One after another, each as `--tenant` would: a failure stops the run there, and running it again continues.
  for (const tenant of tenants) await reembedTenant(db, tenant, options);
}

async function reembedTenant(db: Db, tenant: { id: string; name: string }, options: ReembedOptions): Promise<void> {
  const cfg = config();
  const embedder = configured();
  const model = embedder.model;

  if (options.dryRun) return printEstimate(tenant.name, await Reembed.estimate(db, tenant.id, model), options);

  const bar = progressBar(`re-embedding with ${model}`);
  const abort = new AbortController();
  const stop = () => abort.abort(new Error("interrupted"));
  process.once("SIGINT", stop);
  let report: Reembed.Report;
  try {
    report = await Reembed.run(db, {
      tenantId: tenant.id,
      embedder,
      batchSize: options.batchSize,
      signal: abort.signal,
      onProgress: (p) => bar.update(p),
    });
  } finally {
    process.off("SIGINT", stop);
    bar.end();
  }
  if (options.json) console.log(JSON.stringify({ tenant: tenant.name, ...report }));
  if (report.stale === 0) {
    if (!options.json) console.log(`nothing to re-embed: every chunk of tenant ${tenant.name} is of ${model}`);
    return;
  }
  if (report.stopped === "busy") {
    throw new Error(
      `another re-embedding of tenant ${tenant.name} is running; nothing was done (if that run died, its lease expires at ${report.busyUntil}: run this again then)`,
    );
  }
  // Every process on a shared database embeds with its own configuration: one still on the old model (a server, the
  // Lambdas) finds the moved chunks by keyword only until it runs the new one too. Said, since nothing else here can;
  // from the run's own count (an estimate first had read every stale chunk once more).
  if (cfg.database.driver !== "pglite" && !options.json && report.reembedded > 0) {
    process.stderr.write(
      `engram: moving tenant ${tenant.name}'s chunks to ${model}: a server or Lambda on this database still configured for another model finds them by keyword only (its vector search skips them) until it runs ${model} too\n`,
    );
  }
  if (report.stopped === "error" && abort.signal.aborted) {
    throw new Error(
      `interrupted: ${n(report.reembedded)} chunks done, ${n(report.remaining)} left. Run \`engram reembed${options.allTenants ? " --all-tenants" : ""}\` again to continue from there`,
    );
  }
  if (report.stopped === "error") {
    throw new Error(
      `re-embedding stopped: ${String(report.error).replace(/\.$/, "")}; ${n(report.reembedded)} chunks done, ${n(report.remaining)} left. Run \`engram reembed${options.allTenants ? " --all-tenants" : ""}\` again to continue from there`,
    );
  }
  if (!options.json) {
    console.log(
      `re-embedded ${n(report.reembedded)} chunks of tenant ${tenant.name} with ${model} ` +
        `(${n(report.reembedded - report.reused)} embedded, ${n(report.reused)} reused, ${n(report.tokens)} tokens)` +
        (report.remaining ? `; ${n(report.remaining)} left (new chunks of another model arrived meanwhile)` : ""),
    );
  }
}

function printEstimate(tenant: string, estimate: Reembed.Estimate, options: ReembedOptions): void {
  if (options.json) console.log(JSON.stringify({ tenant, ...estimate }));
  else if (!estimate.chunks)
    console.log(`nothing to re-embed: every chunk of tenant ${tenant} is of ${estimate.model}`);
  else {
    console.log(
      `would re-embed ${n(estimate.chunks)} chunks of tenant ${tenant} with ${estimate.model} (${Reembed.active().dimensions} dims): ` +
        `${n(estimate.texts)} texts to embed, about ${n(estimate.tokens)} tokens; the other ${n(estimate.chunks - estimate.texts)} reuse vectors already computed`,
    );
  }
}

/** How often the CLI asks the server how far it got. */
const POLL_MS = 1_000;

/**
 * `engram reembed` while `engram start` holds the embedded database: asks the server (cli/admin.ts) to re-embed
 * with its model, which its background loop does, and shows the progress until done. The server can only embed
 * with the model it was started with, so when this shell is configured for another, says exactly what to do.
 */
async function throughServer(server: ServerLock, options: ReembedOptions): Promise<void> {
  const key = storedLocalKey();
  if (!key)
    throw new Error(
      `the local server (${server.url}) holds ${config().database.dataDir} but its local key is missing; stop it and run this again`,
    );
  const ask = async (method: "GET" | "POST", body?: Record<string, unknown>): Promise<ReembedStatus> => {
    const url = `${server.url}${ADMIN_REEMBED}${method === "GET" ? `?tenant=${encodeURIComponent(options.tenant)}` : ""}`;
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      ...(method === "POST" ? { body: JSON.stringify({ tenant: options.tenant, ...body }) } : {}),
    }).catch((error) => {
      throw new Error(
        `the local server (${server.url}) did not answer (${(error as Error).message}); the work done is kept: run \`engram reembed\` again`,
      );
    });
    const json = (await res.json()) as ReembedStatus & { error?: { message: string } };
    if (!res.ok) throw new Error(json.error?.message ?? `the local server answered ${res.status}`);
    return json;
  };
  const mine = Reembed.active();
  // The server's background loop does the work, in its own batches: said rather than silently ignored.
  if (options.batchSize && !options.dryRun) {
    process.stderr.write(
      `engram: --batch-size is not applied: the local server (${server.url}) re-embeds in its own batches; stop it and run this again to choose the size\n`,
    );
  }
  if (options.dryRun) {
    const { estimate, tenant } = await ask("POST", { dryRun: true, model: mine.model });
    if (estimate) printEstimate(tenant, estimate, options);
    return;
  }
  const first = await ask("GET");
  if (first.server.model !== mine.model || first.server.dimensions !== mine.dimensions) {
    throw new Error(
      `the local server (pid ${server.pid}, ${server.url}) embeds with ${first.server.model} (${first.server.dimensions} dims), and this shell is configured for ${mine.model} (${mine.dimensions} dims): ` +
        "it can only re-embed with its own model. Stop it (Ctrl-C in its terminal), then start it with this configuration: " +
        "`npm start -- --reembed` serves at once and re-embeds in the background (`engram reembed` then shows the progress)",
    );
  }
  if (first.state.pending === 0) {
    if (options.json)
      return console.log(JSON.stringify({ tenant: first.tenant, model: mine.model, reembedded: 0, remaining: 0 }));
    return console.log(`nothing to re-embed: every chunk of tenant ${first.tenant} is of ${mine.model}`);
  }

  const oldError = first.state.run?.lastError ?? null;
  let status = await ask("POST");
  // Done: the chunks the server's run has moved since this command asked (its record counts them); total: those plus
  // what is stale now. A total counted once before went wrong as chunks of another model arrived or left meanwhile
  // (the bar went back, to 0 when more arrived than had been moved). Not below 0: a record begun over counts from 0.
  const model = (s: ReembedStatus) => (s.state.run?.model === mine.model ? s.state.run.reembedded : 0);
  const since = model(status);
  const progress = (s: ReembedStatus) => {
    const done = Math.max(0, model(s) - since);
    return { done, total: done + s.state.pending };
  };
  let working = false; // whether the server has been seen at it since this command asked
  const bar = progressBar(`re-embedding with ${mine.model} (by the local server)`);
  let interrupted = false;
  const stop = () => {
    interrupted = true;
  };
  process.once("SIGINT", stop);
  try {
    while (status.state.pending > 0 && !interrupted) {
      bar.update(progress(status));
      const run = status.state.run;
      if (run?.runningUntil || progress(status).done > 0) working = true;
      if (run?.lastError && !run.runningUntil && (working || run.lastError !== oldError)) {
        throw new Error(
          `re-embedding stopped: ${run.lastError.replace(/\.$/, "")}; ${n(progress(status).done)} chunks done, ${n(status.state.pending)} left. ` +
            "The local server tries again every few seconds; run `engram reembed` again to follow it",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      status = await ask("GET");
    }
  } finally {
    process.off("SIGINT", stop);
    bar.update(progress(status));
    bar.end();
  }
  const { done } = progress(status);
  if (interrupted) {
    console.log(
      `stopped following: ${n(done)} chunks done, ${n(status.state.pending)} left; the local server keeps re-embedding in the background (\`engram stats\` shows how far)`,
    );
    return;
  }
  if (options.json)
    return console.log(
      JSON.stringify({ tenant: status.tenant, model: mine.model, reembedded: done, remaining: 0, by: server.url }),
    );
  console.log(
    `re-embedded ${n(done)} chunks of tenant ${status.tenant} with ${mine.model} (by the local server at ${server.url})`,
  );
}
