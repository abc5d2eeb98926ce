/**
 * The upload route at API Gateway's and Lambda's payload limits, with no AWS: API Gateway v2 (HTTP API) proxy
 * events carrying the multipart body base64-encoded, as API Gateway delivers binary, serialized as Lambda
 * receives them, through the real `upload` handler on pg. The arithmetic is core/extract/schema.ts's.
 */
import { randomBytes } from "node:crypto";
import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as Auth from "../../core/auth";
import { setConfig } from "../../core/config";
import { useDb } from "../../core/db";
import { useEmbedder } from "../../core/embedding";
import {
  EVENT_ENVELOPE_BYTES,
  FORM_OVERHEAD_BYTES,
  LAMBDA_PAYLOAD_BYTES,
  MAX_FORM_BYTES,
  MAX_UPLOAD_BYTES,
} from "../../core/extract/schema";
import { handler } from "../../functions/http/upload";
import { freshDb, type TestDb } from "../../kit/db";
import { apiEvent, lambdaContext } from "../../kit/events";
import { countingEmbedder } from "../../kit/factories";
import { multipart, multipartType } from "../../kit/multipart";

/** API Gateway's HTTP API refuses larger request bodies itself. */
const API_GATEWAY_PAYLOAD_BYTES = 10 * 1024 * 1024;

/**
 * A saved web page of exactly `bytes` bytes: an article, and a photo inlined as a data: URI (incompressible
 * bytes) making up the size, as "save page as a single file" writes it.
 */
function savedPage(bytes: number): Buffer {
  const head = `<!doctype html><html><head><title>Harbour survey</title></head><body><article><h1>Harbour survey</h1>
<p>${"The harbour survey counted forty-two mooring buoys, of which six need new chains before the winter storms. ".repeat(6)}</p>
<p><img alt="the north quay" src="data:image/jpeg;base64,`;
  const tail = `"></p></article></body></html>\n`;
  const room = bytes - Buffer.byteLength(head) - Buffer.byteLength(tail);
  const photo = randomBytes(Math.ceil(room / 4) * 3)
    .toString("base64")
    .slice(0, room);
  const page = Buffer.from(head + photo + tail);
  expect(page.length).toBe(bytes);
  return page;
}

/** The headers API Gateway passes on for a browser's upload, with room for a longer cookie or user agent. */
const gatewayHeaders = (key: string, extraBytes = 0) => ({
  accept: "application/json",
  authorization: `Bearer ${key}`,
  "content-type": multipartType(),
  host: "abc123.execute-api.eu-west-1.amazonaws.com",
  "user-agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
  "x-amzn-trace-id": "Root=1-67a0c1f2-3b0c4e5d6f7a8b9c0d1e2f3a",
  "x-forwarded-for": "203.0.113.7",
  "x-forwarded-port": "443",
  "x-forwarded-proto": "https",
  ...(extraBytes ? { cookie: `session=${"x".repeat(extraBytes)}` } : {}),
});

beforeAll(() => setConfig({ LOG_LEVEL: "silent" }));

describe("upload behind API Gateway and Lambda", () => {
  let t: TestDb;
  let key: string;
  const embedder = countingEmbedder();

  beforeAll(async () => {
    t = await freshDb("pg");
    useDb(t.db);
    useEmbedder(embedder);
    key = (await Auth.createKey(t.db, "acme")).key;
  }, 60_000);
  afterAll(() => t?.close());

  const documentCount = async () =>
    Number((await t.db.query<{ n: number }>(sql`select count(*)::int as n from documents`))[0]?.n);

  /** The event API Gateway would send for this form, its size as Lambda counts it, and the handler's answer. */
  async function send(file: Buffer, name: string) {
    const body = multipart([
      { name: "file", value: file, filename: name },
      { name: "metadata", value: '{"team":"ports"}' },
    ]);
    const event = apiEvent({
      method: "POST",
      path: "/v1/documents/upload",
      headers: { ...gatewayHeaders(key), "content-length": String(body.length) },
      binaryBody: body,
    });
    const payload = JSON.stringify(event);
    // Lambda hands the function the event it parsed from that JSON.
    const result = await handler(JSON.parse(payload), lambdaContext());
    return {
      bodyBytes: body.length,
      eventBytes: Buffer.byteLength(payload),
      base64: event.isBase64Encoded,
      status: result.statusCode,
      answer: JSON.parse(result.body ?? "{}"),
    };
  }

  it("stores a file of exactly 4 MB, whose base64 event fits Lambda's 6 MB payload", async () => {
    const before = await documentCount();
    const sent = await send(savedPage(MAX_UPLOAD_BYTES), "harbour-survey.html");
    expect(sent.base64).toBe(true);
    expect(sent.bodyBytes).toBeLessThan(API_GATEWAY_PAYLOAD_BYTES);
    expect(sent.eventBytes).toBeLessThanOrEqual(LAMBDA_PAYLOAD_BYTES);
    expect(sent.status).toBe(200);
    expect(sent.answer).toMatchObject({
      documents: [{ id: "harbour-survey.html", status: "created" }],
      file: { name: "harbour-survey.html", format: "html", bytes: MAX_UPLOAD_BYTES },
    });
    // The page's text; the inlined photo is not text.
    expect(sent.answer.file.characters).toBeLessThan(2_000);
    expect(await documentCount()).toBe(before + 1);
  }, 60_000);

  it("answers one byte more with a clear 413 upload.too_large that reaches the client, storing nothing", async () => {
    const before = await documentCount();
    const sent = await send(savedPage(MAX_UPLOAD_BYTES + 1), "harbour-survey-2.html");
    // The event still fits Lambda's payload: this 413 is Engram's answer, not API Gateway's.
    expect(sent.eventBytes).toBeLessThanOrEqual(LAMBDA_PAYLOAD_BYTES);
    expect(sent.status).toBe(413);
    expect(sent.answer.error).toMatchObject({
      code: "upload.too_large",
      details: { bytes: MAX_UPLOAD_BYTES + 1, of: "file", limitBytes: MAX_UPLOAD_BYTES },
    });
    expect(sent.answer.error.message).toContain("The file is 4,194,305 bytes");
    expect(sent.answer.error.message).toContain("at most 4,194,304 bytes");
    expect(sent.answer.error.message).toContain("engram ingest");
    expect(await documentCount()).toBe(before);
  }, 60_000);

  it("refuses a form too big to hold any allowed file before parsing it, with the same 413", async () => {
    const sent = await send(savedPage(MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES), "big.html");
    expect(sent.status).toBe(413);
    expect(sent.answer.error.code).toBe("upload.too_large");
    expect(sent.answer.error.details).toMatchObject({ bytes: sent.bodyBytes, of: "body" });
    // The size said is the body's, not the file's, and says so.
    expect(sent.answer.error.message).toMatch(/^The upload's multipart body is [\d,]+ bytes; a file may be at most/);
  }, 60_000);

  it("counts the file's text in code points, an emoji as one character, as every other length limit does", async () => {
    // 1,000,000 characters (MAX_CONTENT_CHARS), 1,500,000 UTF-16 units: `length` would put it past the limit.
    const text = "😀a".repeat(500_000);
    const sent = await send(Buffer.from(text), "emoji.txt");
    expect(sent.status).toBe(200);
    expect(sent.answer.file).toMatchObject({ format: "text", characters: 1_000_000 });
    const over = await send(Buffer.from(`${text}😀`), "emoji-over.txt");
    expect(over.status).toBe(413);
    expect(over.answer.error).toMatchObject({
      code: "extract.too_much_text",
      message: "The file holds 1,000,001 characters of text; a document holds at most 1,000,000.",
      details: { chars: 1_000_001, limit: 1_000_000 },
    });
  }, 60_000);

  it("accepts no form whose event could miss Lambda's payload, even with API Gateway's largest headers", () => {
    // Every body the route takes, base64-encoded (4 characters for 3 bytes), in an event with 10 KB of headers.
    const largest = MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES;
    expect(largest).toBeLessThanOrEqual(MAX_FORM_BYTES);
    const event = apiEvent({
      method: "POST",
      path: "/v1/documents/upload",
      headers: gatewayHeaders("engram_live_0123456789abcdef0123456789abcdef", 10 * 1024),
      binaryBody: Buffer.alloc(largest),
    });
    expect(event.body?.length).toBe(Math.ceil(largest / 3) * 4);
    const envelope = Buffer.byteLength(JSON.stringify({ ...event, body: "" }));
    expect(envelope).toBeLessThan(EVENT_ENVELOPE_BYTES);
    expect(Buffer.byteLength(JSON.stringify(event))).toBeLessThanOrEqual(LAMBDA_PAYLOAD_BYTES);
    // And the bound is tight: a form of MAX_FORM_BYTES plus one base64 block would not fit with that envelope.
    expect(Math.ceil((MAX_FORM_BYTES + 3) / 3) * 4 + EVENT_ENVELOPE_BYTES).toBeGreaterThan(LAMBDA_PAYLOAD_BYTES);
  });
});
