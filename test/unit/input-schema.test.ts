/** Request fields counted and read as documented: characters as code points, a page size as decimal digits. */
import { describe, expect, it } from "vitest";
import { ChatMessageInput, MAX_MESSAGE_CHARS } from "../../core/chat/schema";
import { Content, characters, DocumentInput, ListQuery, MAX_CONTENT_CHARS } from "../../core/document/schema";

const EMOJI = "\u{1F600}";

describe("characters", () => {
  it("counts code points: a surrogate pair is one, an unpaired surrogate one", () => {
    expect(characters("")).toBe(0);
    expect(characters("abc")).toBe(3);
    expect(characters(`a${EMOJI}b`)).toBe(3);
    expect(characters(EMOJI.repeat(5))).toBe(5);
    expect(characters("\uD800")).toBe(1);
    expect(characters("\uDE00\uD83D")).toBe(2); // reversed halves are no pair
    expect(characters(`\uD800${EMOJI}`)).toBe(2);
  });
});

describe("length limits in characters", () => {
  it("takes content and messages of exactly the limit in emoji, which are twice as many UTF-16 units", () => {
    expect(Content.safeParse(EMOJI.repeat(MAX_CONTENT_CHARS)).success).toBe(true);
    expect(Content.safeParse(EMOJI.repeat(MAX_CONTENT_CHARS + 1)).success).toBe(false);
    expect(ChatMessageInput.safeParse({ role: "user", content: EMOJI.repeat(MAX_MESSAGE_CHARS) }).success).toBe(true);
    expect(ChatMessageInput.safeParse({ role: "user", content: EMOJI.repeat(MAX_MESSAGE_CHARS + 1) }).success).toBe(
      false,
    );
  });
});

describe("a page's limit", () => {
  const limitOf = (limit: unknown) => {
    const parsed = ListQuery.safeParse(limit === undefined ? {} : { limit });
    return parsed.success ? parsed.data.limit : parsed.error.issues.map((issue) => issue.message);
  };

  it("reads plain decimal digits and defaults to 20", () => {
    expect([limitOf("1"), limitOf("007"), limitOf("100"), limitOf(undefined)]).toEqual([1, 7, 100, 20]);
  });

  it("takes a whole number as it is (an MCP tool's argument)", () => {
    expect(limitOf(7)).toBe(7);
    expect(limitOf(7.5)).toEqual(["limit must be a whole number from 1 to 100"]);
  });

  it.each(["0x5", "1e1", "+5", " 5", "5 ", "5.0", "-1", "0", "101", "", "5,6", "\uFF15", "Infinity"])(
    "refuses %j with the one message",
    (limit) => {
      expect(limitOf(limit)).toEqual(["limit must be a whole number from 1 to 100"]);
    },
  );
});

describe("an ingested document's ttlSeconds", () => {
  it("reads null as no TTL, the same as leaving it out", () => {
    expect(DocumentInput.parse({ content: "x", ttlSeconds: null })).toEqual(DocumentInput.parse({ content: "x" }));
    expect(DocumentInput.safeParse({ content: "x", ttlSeconds: 0 }).success).toBe(false);
  });
});

describe("an ingested document's fields read back as null", () => {
  it("takes title, source and conversationId null as none, so a document read back can be sent again", () => {
    const readBack = { id: "d", content: "x", title: null, source: null, conversationId: null, ttlSeconds: null };
    expect(DocumentInput.parse(readBack)).toEqual(DocumentInput.parse({ id: "d", content: "x" }));
    expect(DocumentInput.safeParse({ content: "x", title: 5 }).success).toBe(false);
    expect(DocumentInput.parse({ content: "x", conversationId: "c1" }).conversationId).toBe("c1");
  });
});
