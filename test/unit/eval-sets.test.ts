/** The labelled retrieval evaluation sets in eval/sets: corpora and questions stay consistent with each other. */
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../eval/sets", import.meta.url));
const SETS = ["python", "git", "conversations", "memorybank", "handbook"] as const;
const MANUALS = ["python", "git", "handbook"] as const;
const KINDS = ["keyword", "paraphrase", "identifier"] as const;
const MIN_QUESTIONS: Record<(typeof SETS)[number], number> = {
  python: 65,
  git: 55,
  conversations: 60,
  memorybank: 90,
  handbook: 60,
};
const MAX_BYTES: Record<(typeof MANUALS)[number], number> = {
  python: 7 * 1024 * 1024,
  git: 4 * 1024 * 1024,
  handbook: 2 * 1024 * 1024,
};

interface Doc {
  id: string;
  title: string;
  source: string;
  content: string;
  conversationId?: string;
  userId?: string;
  metadata?: { session: number; date: string; speaker: string };
}

interface Question {
  id: string;
  question: string;
  kind: string;
  evidence: { documentId: string; text: string }[];
  userId?: string;
}

const collapse = (s: string) => s.replace(/\s+/g, " ").trim();

function corpusLines(set: string): string[] {
  return readFileSync(join(ROOT, set, "corpus.jsonl"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "");
}

function corpus(set: string): Doc[] {
  return corpusLines(set).map((line) => JSON.parse(line) as Doc);
}

function questions(set: string): Question[] {
  return JSON.parse(readFileSync(join(ROOT, set, "questions.json"), "utf8")) as Question[];
}

describe.each(SETS)("the %s evaluation set", (set) => {
  const docs = corpus(set);
  const byId = new Map(docs.map((d) => [d.id, d]));
  const qs = questions(set);

  it("has corpus lines that each parse to a document with id, title, source and content", () => {
    for (const line of corpusLines(set)) {
      const doc = JSON.parse(line) as Doc;
      for (const field of ["id", "title", "source", "content"] as const) {
        expect(typeof doc[field], `${doc.id}.${field}`).toBe("string");
        expect(doc[field].trim().length, `${doc.id}.${field}`).toBeGreaterThan(0);
      }
    }
  });

  it("gives every document a distinct id", () => {
    expect(byId.size).toBe(docs.length);
  });

  it("gives every question a distinct id, a question and a valid kind", () => {
    expect(new Set(qs.map((q) => q.id)).size).toBe(qs.length);
    for (const q of qs) {
      expect(q.question.trim().length, q.id).toBeGreaterThan(0);
      expect(KINDS, q.id).toContain(q.kind);
      expect(q.evidence.length, q.id).toBeGreaterThan(0);
    }
  });

  it("has at least the agreed number of questions", () => {
    expect(qs.length).toBeGreaterThanOrEqual(MIN_QUESTIONS[set]);
  });

  it("points every evidence item at a document that exists", () => {
    const missing = qs.flatMap((q) =>
      q.evidence.filter((e) => !byId.has(e.documentId)).map((e) => `${q.id}: ${e.documentId}`),
    );
    expect(missing).toEqual([]);
  });

  it("finds every evidence passage verbatim in its document", () => {
    const notFound: string[] = [];
    for (const q of qs) {
      for (const e of q.evidence) {
        const doc = byId.get(e.documentId);
        if (doc && !collapse(doc.content).includes(collapse(e.text))) notFound.push(`${q.id}: ${e.text}`);
      }
    }
    expect(notFound).toEqual([]);
  });

  it("keeps every evidence passage within one line of its document and 6 to 30 words long", () => {
    const bad: string[] = [];
    for (const q of qs) {
      for (const e of q.evidence) {
        const words = collapse(e.text).split(" ").length;
        if (words < 6 || words > 30) bad.push(`${q.id}: ${words} words`);
        const lines = byId.get(e.documentId)?.content.split("\n") ?? [];
        if (!lines.some((line) => collapse(line).includes(collapse(e.text)))) bad.push(`${q.id}: spans lines`);
      }
    }
    expect(bad).toEqual([]);
  });
});

describe.each(MANUALS)("the %s manual corpus", (set) => {
  it("asks questions of all three kinds", () => {
    const kinds = new Set(questions(set).map((q) => q.kind));
    expect([...kinds].sort()).toEqual([...KINDS].sort());
  });

  it("stays within its size budget", () => {
    expect(statSync(join(ROOT, set, "corpus.jsonl")).size).toBeLessThanOrEqual(MAX_BYTES[set]);
  });

  it("is Markdown with ATX headings and no leftover Sphinx roles or HTML blocks", () => {
    for (const doc of corpus(set)) {
      // A DocBook section page's own heading is its h2 (the book's chapters are h1).
      expect(doc.content, doc.id).toMatch(set === "handbook" ? /^#{1,2} /m : /^# /m);
      expect(doc.content, doc.id).not.toMatch(/:(func|meth|class|mod|attr|data|exc|ref|term|envvar|option):`/);
      expect(doc.content, doc.id).not.toMatch(/^<\/?(div|span|table)\b/m);
    }
  });
});

describe("the conversation corpus", () => {
  const turns = corpus("conversations");

  it("has at least 330 turns over at least 12 dated sessions of one conversation", () => {
    expect(turns.length).toBeGreaterThanOrEqual(330);
    const sessions = new Set(turns.map((t) => t.metadata?.session));
    expect(sessions.size).toBeGreaterThanOrEqual(12);
    expect(new Set(turns.map((t) => t.conversationId)).size).toBe(1);
  });

  it("gives every turn its session, date and speaker, and starts its content with the speaker's name", () => {
    for (const t of turns) {
      const m = t.metadata!;
      expect(Number.isInteger(m.session), t.id).toBe(true);
      expect(m.date, t.id).toMatch(/^2026-\d\d-\d\d$/);
      expect(t.title, t.id).toBe(`Session ${m.session} — ${m.date}`);
      expect(t.id, t.id).toMatch(new RegExp(`^s${String(m.session).padStart(2, "0")}-t\\d{3}$`));
      expect(t.content.startsWith(`${m.speaker}: `), t.id).toBe(true);
    }
  });
});

describe("the public dialogue corpus (memorybank)", () => {
  const turns = corpus("memorybank");
  const users = new Set(turns.map((t) => t.userId));

  it("keeps each user's dialogue in a conversation of its own, turns alternating between user and companion", () => {
    expect(users.size).toBe(15);
    for (const t of turns) {
      expect(t.conversationId, t.id).toBe(`memorybank-${t.userId}`);
      expect(t.id.startsWith(`${t.userId}-d`), t.id).toBe(true);
      expect(t.title.endsWith(` — ${t.metadata?.date}`), t.id).toBe(true);
      expect(t.content.startsWith(`${t.metadata?.speaker}: `), t.id).toBe(true);
    }
  });

  it("asks every question of one user, with evidence only in that user's turns", () => {
    const owner = new Map(turns.map((t) => [t.id, t.userId]));
    for (const q of questions("memorybank")) {
      expect(users.has(q.userId), q.id).toBe(true);
      for (const e of q.evidence) expect(owner.get(e.documentId), `${q.id}: ${e.documentId}`).toBe(q.userId);
    }
  });
});

describe("all evaluation sets together", () => {
  it("hold at least 150 questions with ids unique across sets", () => {
    const all = SETS.flatMap((set) => questions(set));
    expect(all.length).toBeGreaterThanOrEqual(150);
    expect(new Set(all.map((q) => q.id)).size).toBe(all.length);
  });
});
