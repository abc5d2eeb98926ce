/** The search request schema: defaults, the score range per mode, and inputs Postgres could not take. */
import { describe, expect, it } from "vitest";
import { owners } from "../../core/search";
import * as Keyword from "../../core/search/keyword";
import { SearchRequest } from "../../core/search/schema";
import * as z from "../../core/zod";

const paths = (body: unknown) => {
  const result = SearchRequest.safeParse(body);
  return result.success ? [] : result.error.issues.map((issue) => issue.path.join("."));
};

describe("the search request", () => {
  it("fills in topK 5, hybrid mode, all scopes and no filter", () => {
    expect(SearchRequest.parse({ query: "refunds" })).toEqual({
      query: "refunds",
      topK: 5,
      mode: "hybrid",
      filter: {},
      scope: "all",
    });
  });

  it("accepts minScore only within the chosen mode's scale", () => {
    expect(paths({ query: "x", mode: "vector", minScore: -1 })).toEqual([]);
    expect(paths({ query: "x", mode: "vector", minScore: -1.01 })).toEqual(["minScore"]);
    expect(paths({ query: "x", mode: "keyword", minScore: 0.5 })).toEqual([]);
    expect(paths({ query: "x", mode: "keyword", minScore: 1.5 })).toEqual(["minScore"]);
    expect(paths({ query: "x", minScore: 0.2 })).toEqual([]);
    expect(paths({ query: "x", minScore: -0.2 })).toEqual(["minScore"]);
  });

  it("takes ISO timestamps with a zone, or a date alone, and refuses anything else", () => {
    expect(paths({ query: "x", filter: { createdAfter: "2026-01-01T00:00:00Z" } })).toEqual([]);
    expect(paths({ query: "x", filter: { createdAfter: "2026-01-01T00:00:00+02:00" } })).toEqual([]);
    expect(paths({ query: "x", filter: { createdAfter: "2026-01-01" } })).toEqual([]);
    expect(paths({ query: "x", filter: { createdAfter: "2026-02-30" } })).toEqual(["filter.createdAfter"]);
    expect(paths({ query: "x", filter: { createdAfter: "0000-01-01" } })).toEqual(["filter.createdAfter"]);
    expect(paths({ query: "x", filter: { createdAfter: "2026-01-01T00:00:00" } })).toEqual(["filter.createdAfter"]);
    // The refusal says which forms are taken, not only that the input is invalid.
    const noZone = SearchRequest.safeParse({ query: "x", filter: { createdAfter: "2026-01-01T00:00:00" } });
    expect(noZone.error?.issues[0]?.message).toMatch(/ISO 8601 time with Z or an offset.*or a date \(2026-12-06\)/);
    expect(paths({ query: "x", filter: { createdBefore: 1767225600000 } })).toEqual(["filter.createdBefore"]);
  });

  it("says in its JSON Schema (the OpenAPI document's) what it refuses: offsets past ±15:59, year 0000", () => {
    type Branch = { pattern?: string; allOf?: { pattern: string }[] };
    const schema = z.toJSONSchema(SearchRequest, { io: "input" }) as unknown as {
      properties: { filter: { properties: { createdAfter: { anyOf: Branch[] } } } };
    };
    const branches = schema.properties.filter.properties.createdAfter.anyOf;
    // The formats stay beside the patterns, for the clients and generators that read them.
    expect(branches.map((b) => (b as { format?: string }).format)).toEqual(["date-time", "date"]);
    // Taken by the schema as a client reads it: some branch whose every pattern matches.
    const byPatterns = (value: string) =>
      branches.some((b) =>
        [b.pattern, ...(b.allOf ?? []).map((a) => a.pattern)]
          .filter((p): p is string => p !== undefined)
          .every((p) => new RegExp(p).test(value)),
      );
    for (const value of [
      "2026-12-06T09:00:00Z",
      "2026-12-06T09:00:00+15:59",
      "2026-12-06T09:00:00+16:00",
      "2026-12-06T09:00:00-20:00",
      "0000-01-01T00:00:00Z",
      "0000-01-01",
      "0001-01-01",
    ]) {
      expect([value, byPatterns(value)]).toEqual([
        value,
        paths({ query: "x", filter: { createdAfter: value } }).length === 0,
      ]);
    }
  });

  it("refuses NUL characters and unpaired surrogates anywhere in a metadata filter, naming where", () => {
    expect(paths({ query: "x", filter: { metadata: { a: { b: ["ok", "n\u0000"] } } } })).toEqual([
      "filter.metadata.a.b.1",
    ]);
    expect(paths({ query: "x", filter: { metadata: { "\uD800": 1 } } })).toEqual(["filter.metadata.\uD800"]);
    expect(paths({ query: "x", filter: { metadata: { emoji: "\uD83D\uDE00", q: "'\"\\$$" } } })).toEqual([]);
  });

  it("refuses another store's query operators in a metadata filter, which containment would take literally", () => {
    expect(paths({ query: "x", filter: { metadata: { year: { $gt: 2020 } } } })).toEqual(["filter.metadata"]);
    expect(paths({ query: "x", filter: { metadata: { $or: [{ team: "a" }, { team: "b" }] } } })).toEqual([
      "filter.metadata",
    ]);
    const refused = SearchRequest.safeParse({ query: "x", filter: { metadata: { tag: { $in: ["a"] } } } });
    expect(refused.error?.issues[0]?.message).toMatch(
      /^\$in is not supported: a metadata filter matches .* contains it/,
    );
    // A key that only starts with $ is a key, and values are values.
    expect(paths({ query: "x", filter: { metadata: { $schema: "v2", price: "$gt" } } })).toEqual([]);
  });

  it("refuses unknown fields instead of silently searching more widely", () => {
    expect(paths({ query: "x", filters: {} })).toEqual([""]);
    expect(paths({ query: "x", filter: { metdata: {} } })).toEqual(["filter"]);
  });
});

describe("the owners a scope reads", () => {
  it("is the user's space and the shared one for all, either alone otherwise", () => {
    expect(owners("alice", "all")).toEqual(["alice", ""]);
    expect(owners("alice", "user")).toEqual(["alice"]);
    expect(owners("alice", "shared")).toEqual([""]);
  });

  it("is the shared space alone for a caller without an end user", () => {
    expect(owners("", "all")).toEqual([""]);
    expect(owners("", "user")).toEqual([""]);
  });
});

describe("a question that names an identifier", () => {
  it("is told by how code writes names, not by hyphens or capitals English uses", () => {
    for (const query of [
      "What does core.autocrlf=true do?",
      "sqlite3_prepare_v2",
      "What is coalesce() for?",
      "HEAD~3 vs HEAD^^^",
      "What does HEAD@{2} mean?",
      "How do I use git rebase --onto?",
      "journalctl -f",
      "dpkg -S /usr/bin/ls",
      "What does wget (-N) do?",
      "What does APT::Periodic::AutocleanInterval control?",
      "Should I use cProfile or profile?",
      "What does `git stash` keep?",
      "What does ERR-4012 mean?",
    ])
      expect([query, Keyword.namesIdentifier(query)]).toEqual([query, true]);
    for (const query of [
      "What is a fast-forward merge?",
      "How do I commit only some of the edits in a file?",
      "When did Caroline go to the LGBTQ support group?",
      "Is it safe, e.g. in production?",
      "Who won in 2019? I.e. the final.",
      "A well-Known e-Mail from 5-10 people, -5 degrees",
    ])
      expect([query, Keyword.namesIdentifier(query)]).toEqual([query, false]);
  });
});
