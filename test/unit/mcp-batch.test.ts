/**
 * A JSON-RPC batch as both MCP transports read it (JSON-RPC 2.0, 6): each member a message of its own, a malformed one
 * answered with its own error, and the batch refused whole only when it cannot be answered member by member.
 */
import { describe, expect, it } from "vitest";
import * as Batch from "../../core/mcp/batch";

const ping = (id: number | string) => ({ jsonrpc: "2.0", id, method: "ping" });
const notification = { jsonrpc: "2.0", method: "notifications/initialized" };
const invalid = (id: number | string | null, message: RegExp) => ({
  refusal: { jsonrpc: "2.0", id, error: { code: -32600, message: expect.stringMatching(message) } },
});

describe("Batch.read", () => {
  it("keeps each JSON-RPC message and refuses each other member on its own, by its id when it has one", () => {
    const initialize = {
      jsonrpc: "2.0",
      id: "init",
      method: "initialize",
      params: { protocolVersion: "2025-03-26", capabilities: {}, clientInfo: { name: "t", version: "1" } },
    };
    const read = Batch.read([
      ping(1),
      { ...ping(2), jsonrpc: "1.0" },
      { foo: "boo" },
      42,
      null,
      { ...ping(5), id: 1.5 },
      initialize,
      notification,
      { jsonrpc: "2.0", id: 8 },
    ]);
    expect(read).toEqual({
      members: [
        { message: ping(1) },
        invalid(2, /^Invalid Request: batch\[1\] is no JSON-RPC 2\.0 message/),
        invalid(null, /^Invalid Request: batch\[2\] /),
        invalid(null, /^Invalid Request: batch\[3\] /),
        invalid(null, /^Invalid Request: batch\[4\] /),
        // Not an id JSON-RPC reads (a string or an integer): answered with null.
        invalid(null, /^Invalid Request: batch\[5\] /),
        // MCP 2025-03-26: initialize is never part of a batch.
        invalid("init", /^Invalid Request: batch\[6\] is initialize/),
        { message: notification },
        invalid(8, /^Invalid Request: batch\[8\] /),
      ],
    });
  });

  it("refuses whole, id null, a batch that is empty, too long, or would be answered twice with one id", () => {
    const whole = (message: RegExp) => ({
      refusal: { jsonrpc: "2.0", id: null, error: { code: -32600, message: expect.stringMatching(message) } },
    });
    expect(Batch.read([])).toEqual(whole(/^Invalid Request: an empty batch/));
    expect(Batch.read(Array.from({ length: 101 }, (_, i) => ping(i)))).toEqual(
      whole(/^Invalid Request: a batch holds at most 100 messages; this one has 101$/),
    );
    expect(Batch.read([ping(1), ping(1)])).toEqual(whole(/different ids/));
    // A member refused with a request's id: the client could not tell the two answers apart.
    expect(Batch.read([ping(1), { ...ping(1), jsonrpc: "1.0" }])).toEqual(whole(/different ids/));
    // Members refused without an id, and notifications, share none.
    expect(Batch.read([{ foo: 1 }, { bar: 2 }, notification, notification])).toHaveProperty("members");
    expect(Batch.read(Array.from({ length: 100 }, (_, i) => ping(i)))).toHaveProperty("members");
  });
});

describe("Batch.answerOf", () => {
  it("puts each answer in its member's place, refusals included, and none for notifications", () => {
    const read = Batch.read([ping("a"), notification, { foo: 1 }, ping("b")]);
    if (!("members" in read)) throw new Error("refused whole");
    const answers = [
      { jsonrpc: "2.0", id: "b", result: {} },
      { jsonrpc: "2.0", id: "a", result: {} },
    ];
    expect(Batch.answerOf(read.members, answers).map((a) => (a as { id: unknown }).id)).toEqual(["a", null, "b"]);
    // Notifications only: nothing to answer, which JSON-RPC answers with nothing at all.
    const notes = Batch.read([notification, notification]);
    expect("members" in notes && Batch.answerOf(notes.members, [])).toEqual([]);
  });
});
