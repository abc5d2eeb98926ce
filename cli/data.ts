import type { Command } from "commander";

/** ingest, search, chat, stats, cleanup (filled in as those features land). */
export function registerDataCommands(_program: Command): void {}
