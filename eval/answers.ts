/**
 * `npm run eval:answers`: how the extractive answerer (chat without a model) does on the labelled sets' questions,
 * and how often it answers a question the sources cannot answer. Each set is ingested as `npm run eval` does; each
 * question gets what chat retrieves for a new conversation (hybrid search of the question, top 5) and `Extractive.answer`. Reported per set:
 *
 * - answered: questions given an answer rather than "The sources do not contain an answer to this question.";
 * - with evidence: answers one of whose sentences lies inside one of the question's evidence passages (strict: a
 *   right answer from other words is not counted);
 * - off-topic answered: of the 50 questions of `eval/sets/unanswerable.json` (general knowledge, nothing any set
 *   answers; "chosen-on" were written first and the answerer's bounds chosen on them, "check" written before any
 *   result and only measured), each asked as one of the set's end users, those given an answer anyway.
 *
 *   npm run eval:answers                 every set, on `pg`
 *   npm run eval:answers -- --sets git   some sets
 *   npm run eval:answers -- --out none   print only (else the table goes to bench/results/answers.md)
 */
import { readFileSync, writeFileSync } from "node:fs";
import * as Extractive from "../core/chat/extractive";
import { setConfig } from "../core/config";
import * as Search from "../core/search";
import { freshDb } from "../kit/db";
import { normalize } from "./metrics";
import { ingestSet, loadSet, SET_NAMES } from "./sets";

const TOP_K = 5;
const unanswerable = JSON.parse(readFileSync(new URL("./sets/unanswerable.json", import.meta.url), "utf8")) as Record<
  "chosen-on" | "check",
  string[]
>;

/** The answer's sentences, without markers, each checked for lying inside an evidence passage. */
function holdsEvidence(answer: string, evidence: string[]): boolean {
  const passages = evidence.map((e) => normalize(e).replace(/[.!?…]$/, ""));
  return answer
    .replace(/\s*(\[\d+\])+/g, "")
    .split(/(?<=[.!?…])\s+/)
    .map((s) => normalize(s).replace(/[.!?…]$/, ""))
    .some((s) => s.length > 8 && passages.some((p) => p.includes(s) || s.includes(p)));
}

async function main() {
  const args = process.argv.slice(2);
  const at = args.indexOf("--sets");
  const names = at >= 0 ? (args[at + 1] ?? "").split(",") : SET_NAMES;
  const outAt = args.indexOf("--out");
  const out = outAt >= 0 ? args[outAt + 1] : "bench/results/answers.md";
  setConfig({ LOG_LEVEL: "warn", EMBEDDING_PROVIDER: "offline", SEARCH_QUERY_CACHE_TTL_SECONDS: "0" });
  const lines = [
    "| set | questions | answered | with evidence | off-topic answered (chosen on) | off-topic answered (check) |",
    "|---|---|---|---|---|---|",
  ];
  for (const name of names) {
    const set = loadSet(name);
    const t = await freshDb("pg");
    try {
      const callerOf = await ingestSet(t.db, set);
      const ask = async (question: string, userId: string | undefined) => {
        const request = Search.SearchRequest.parse({ query: question, mode: "hybrid", topK: TOP_K });
        const { results } = await Search.query(t.db, await callerOf(userId), request);
        return Extractive.answer(
          question,
          results.map((r, i) => ({ ...r, index: i + 1 })),
        );
      };
      let answered = 0;
      let withEvidence = 0;
      for (const q of set.questions) {
        const text = await ask(q.question, q.userId);
        if (text === Extractive.NOT_FOUND) continue;
        answered++;
        if (
          holdsEvidence(
            text,
            q.evidence.map((e) => e.text),
          )
        )
          withEvidence++;
      }
      const users = [...new Set(set.questions.map((q) => q.userId))];
      const offTopic = async (list: string[]) => {
        let n = 0;
        for (const [i, question] of list.entries()) {
          if ((await ask(question, users[i % users.length])) !== Extractive.NOT_FOUND) n++;
        }
        return `${n} / ${list.length}`;
      };
      lines.push(
        `| ${name} | ${set.questions.length} | ${answered} | ${withEvidence} | ${await offTopic(unanswerable["chosen-on"])} | ${await offTopic(unanswerable.check)} |`,
      );
      console.log(lines.at(-1));
    } finally {
      await t.close();
    }
  }
  console.log(`\n${lines.join("\n")}`);
  if (out && out !== "none") {
    const header = `# Extractive answers (npm run eval:answers)\n\n${new Date().toISOString()}, driver pg, offline embedder, hybrid top ${TOP_K} as chat retrieves; 25 + 25 off-topic questions a set (eval/sets/unanswerable.json).\n\n`;
    writeFileSync(out, `${header}${lines.join("\n")}\n`);
    console.log(`wrote ${out}`);
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
