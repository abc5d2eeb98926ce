/** The labelled sets in eval/sets/<name>/ (corpus.jsonl, questions.json; see eval/sets/README.md), and their ingest. */
import { readFileSync } from "node:fs";
import type { Caller } from "../core/auth";
import type { Db } from "../core/db";
import type { DocumentInput } from "../core/document/schema";
import * as Ingest from "../core/ingest";
import * as Indexer from "../core/search/indexer";
import { callerFor } from "../kit/db";
import type { Question } from "./metrics";

export const SET_NAMES = ["python", "git", "conversations", "memorybank", "handbook"];

export interface EvalSet {
  name: string;
  /** Each with the end user it belongs to ("" for the tenant's shared space). */
  documents: (DocumentInput & { userId: string })[];
  questions: Question[];
}

const dir = (name: string) => new URL(`./sets/${name}/`, import.meta.url);

export function loadSet(name: string): EvalSet {
  const documents = readFileSync(new URL("corpus.jsonl", dir(name)), "utf8")
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => {
      const d = JSON.parse(line) as DocumentInput & Record<string, unknown>;
      return {
        id: d.id,
        content: d.content,
        title: d.title,
        source: d.source,
        ...(d.metadata ? { metadata: d.metadata } : {}),
        ...(d.conversationId ? { conversationId: d.conversationId } : {}),
        userId: typeof d.userId === "string" ? d.userId : "",
      } as DocumentInput & { userId: string };
    });
  const questions = JSON.parse(readFileSync(new URL("questions.json", dir(name)), "utf8")) as Question[];
  return { name, documents, questions };
}

/**
 * Stores a set as a user would: `POST /v1/ingest`'s core, 100 documents a request, into a tenant of its own (each
 * document as its end user, `x-user-id`), then lets the indexer catch up (the steady state searches see). Returns
 * the caller a question is asked as: its own end user's.
 */
export async function ingestSet(db: Db, set: EvalSet): Promise<(userId: string | undefined) => Promise<Caller>> {
  const tenant = `eval-${set.name}`;
  const byUser = new Map<string, DocumentInput[]>();
  for (const { userId, ...document } of set.documents) {
    const list = byUser.get(userId) ?? [];
    list.push(document);
    byUser.set(userId, list);
  }
  for (const [userId, documents] of byUser) {
    const caller = await callerFor(db, tenant, userId);
    for (let i = 0; i < documents.length; i += 100) {
      await Ingest.run(db, caller, documents.slice(i, i + 100));
    }
  }
  await Indexer.catchUp(db, { budgetMs: Number.POSITIVE_INFINITY });
  return (userId) => callerFor(db, tenant, userId ?? "");
}
