/** `engram reembed`: moves a tenant's chunks to the configured embedding model (core/embedding/reembed.ts). */
import { config } from "../core/config";
import { embedder as configured } from "../core/embedding";
import * as Reembed from "../core/embedding/reembed";
import * as Tenant from "../core/tenant";
import { openLocalDb, runningServer } from "./local";

export interface ReembedOptions {
  tenant: string;
  dryRun?: boolean;
  json?: boolean;
  batchSize?: number;
}

const n = (value: number) => value.toLocaleString("en-US");

/** A one-line progress bar on a terminal (stderr); a line every 10% elsewhere. */
function progressBar(label: string) {
  const tty = process.stderr.isTTY;
  let lastTenth = -1;
  return {
    update({ done, total }: { done: number; total: number }) {
      const share = total ? Math.min(1, done / total) : 1;
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
  if (server && !options.dryRun) {
    // Embedded PGlite has one process; the server continues unfinished re-embeddings itself.
    throw new Error(
      `${cfg.database.dataDir} is in use by the local server (pid ${server.pid}); restart it with \`engram start --reembed\` to re-embed in the background while it serves, or stop it and run this again`,
    );
  }
  const db = await openLocalDb(cfg);
  const tenant = await Tenant.get(db, options.tenant);
  const embedder = configured();
  const model = embedder.model;

  if (options.dryRun) {
    const estimate = await Reembed.estimate(db, tenant.id, model);
    if (options.json) return console.log(JSON.stringify({ tenant: tenant.name, ...estimate }));
    if (!estimate.chunks)
      return console.log(`nothing to re-embed: every chunk of tenant ${tenant.name} is of ${model}`);
    console.log(
      `would re-embed ${n(estimate.chunks)} chunks of tenant ${tenant.name} with ${model} (${embedder.dimensions} dims): ` +
        `${n(estimate.texts)} texts to embed, about ${n(estimate.tokens)} tokens; the other ${n(estimate.chunks - estimate.texts)} reuse vectors already computed`,
    );
    return;
  }

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
  if (report.stopped === "error") {
    throw new Error(
      `re-embedding stopped: ${report.error}; ${n(report.reembedded)} chunks done, ${n(report.remaining)} left. Run \`engram reembed\` again to continue from there`,
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
