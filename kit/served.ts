/**
 * The local HTTP server in this process over a fresh `pg` database, as the API tests use it: offline embedder,
 * extractive answers, one tenant with a key.
 */
import { startServer } from "../cli/server";
import * as Auth from "../core/auth";
import { setConfig } from "../core/config";
import { useDb } from "../core/db";
import { freshDb, type TestDb } from "./db";

export interface Served {
  t: TestDb;
  key: string;
  server: Awaited<ReturnType<typeof startServer>>;
  close(): Promise<void>;
}

export async function served(tenant: string): Promise<Served> {
  setConfig({ EMBEDDING_PROVIDER: "offline", CHAT_PROVIDER: "extractive", LOG_LEVEL: "silent" });
  const t = await freshDb("pg");
  useDb(t.db);
  const key = (await Auth.createKey(t.db, tenant)).key;
  const server = await startServer({ port: 0 });
  return {
    t,
    key,
    server,
    async close() {
      await server.close();
      await t.close();
    },
  };
}
