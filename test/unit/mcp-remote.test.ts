/** `engram mcp` through a server: the API's refusals worded for the tool's own arguments, as in-process. */
import { describe, expect, it } from "vitest";
import { remoteMemory } from "../../cli/mcp";
import { createClient, EngramApiError } from "../../client";

/** A client whose server refuses every request with `error`. */
const refusing = (error: object) =>
  createClient({
    baseUrl: "http://x",
    fetch: async () =>
      new Response(JSON.stringify({ error }), { status: 400, headers: { "content-type": "application/json" } }),
  });

describe("the remote memory", () => {
  it("names the tool's argument where the API named its body's path (documents.0.source, messages.0.content)", async () => {
    const remember = remoteMemory(
      refusing({
        code: "request.invalid",
        message: "Invalid request at documents.0.source: Too big: expected string to have <=2048 characters",
        details: [{ path: "documents.0.source", message: "Too big", code: "too_big" }],
      }),
    ).remember({ content: "A fact." });
    const refused = await remember.catch((e) => e);
    expect(refused).toBeInstanceOf(EngramApiError);
    expect(refused).toMatchObject({
      status: 400,
      code: "request.invalid",
      message: "Invalid request at source: Too big: expected string to have <=2048 characters",
      details: [{ path: "source", message: "Too big", code: "too_big" }],
    });
    const whole = remoteMemory(
      refusing({ code: "request.invalid", message: 'Invalid request at documents.0: Unrecognized key: "x"' }),
    );
    await expect(whole.remember({ content: "A fact." })).rejects.toMatchObject({
      message: 'Invalid request: Unrecognized key: "x"',
    });
    const ask = remoteMemory(
      refusing({ code: "request.invalid", message: "Invalid request at messages.0.content: Invalid input" }),
    );
    await expect(ask.ask({ messages: [{ role: "user", content: "Why?" }] })).rejects.toMatchObject({
      message: "Invalid request at question: Invalid input",
    });
  });
});
